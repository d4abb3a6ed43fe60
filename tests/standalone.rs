//! Standalone connector plugins: a real connector built with Conduit's Go SDK (our fixture,
//! `tests/fixtures/connector`, built here from the Go module proxy) is discovered in
//! `--connectors.path`, listed with its specification, and checks settings on create; a
//! binary that is not a plugin and a file that is not executable are skipped with a
//! warning naming them.

use crate::harness::{data_dir, Server};
use crate::http_client::request;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Build the fixture connector (Go caches make a rebuild take seconds).
fn fixture_connector() -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-fixtures/fixture-connector");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/connector");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&source)
        // go.sum holds every hash; conduitio modules are not in the public checksum
        // database some proxies answer from, so never ask it about them.
        .env("GONOSUMDB", "github.com/conduitio")
        .status()
        .expect("`go` on the PATH (make deps installs it) to build the fixture connector");
    assert!(status.success(), "building the fixture connector failed");
    out
}

fn call(address: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
    let reply = request(address, method, path, &[], bytes.as_deref());
    (reply.status, reply.json())
}

#[test]
fn standalone_plugins_are_discovered_listed_and_checked() {
    let (dir, data) = data_dir();
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).unwrap();
    std::fs::copy(fixture_connector(), connectors.join("fixture")).unwrap();
    let not_a_plugin = connectors.join("not-a-plugin");
    std::fs::write(
        &not_a_plugin,
        "#!/bin/sh\necho 'no plugin here' >&2\necho hello\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&not_a_plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(connectors.join("notes.txt"), "not executable").unwrap();

    let mut server = Server::start(&data, &["--connectors.path", connectors.to_str().unwrap()]);
    let address = server.http_address();
    let warnings: Vec<&String> = server
        .seen
        .iter()
        .filter(|l| l.contains("standalone connector plugin skipped"))
        .collect();
    assert_eq!(warnings.len(), 2, "{:#?}", server.seen);
    assert!(warnings
        .iter()
        .any(|w| w.contains("not-a-plugin") && w.contains("no plugin here")));
    assert!(warnings
        .iter()
        .any(|w| w.contains("notes.txt") && w.contains("cannot start it")));

    let (status, plugins) = call(
        &address,
        "GET",
        "/v1/connectors/plugins?name=standalone:.*",
        None,
    );
    assert_eq!(status, 200);
    let plugins = plugins.as_array().unwrap();
    assert_eq!(plugins.len(), 1, "{plugins:?}");
    let fixture = &plugins[0];
    assert_eq!(fixture["name"], "standalone:fixture@v0.1.0");
    assert_eq!(fixture["author"], "Culvert");
    assert_eq!(fixture["sourceParams"]["recordCount"]["default"], "10");
    assert_eq!(
        fixture["destinationParams"]["path"]["validations"][0]["type"],
        "TYPE_REQUIRED"
    );

    // Settings are checked against the plugin's own specification.
    let (_, p) = call(
        &address,
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": "p"}})),
    );
    let id = p["id"].as_str().unwrap();
    let connector = |settings: Value| {
        json!({"type": "TYPE_DESTINATION", "plugin": "standalone:fixture", "pipelineId": id,
               "config": {"name": "out", "settings": settings}})
    };
    let (status, refused) = call(
        &address,
        "POST",
        "/v1/connectors",
        Some(connector(json!({}))),
    );
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("\"path\""),
        "{refused}"
    );
    let (status, created) = call(
        &address,
        "POST",
        "/v1/connectors",
        Some(connector(
            json!({"path": dir.path().join("out").to_str().unwrap()}),
        )),
    );
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["plugin"], "standalone:fixture");
    server.terminate();
    assert!(server.wait().success());
}

/// Positions (decoded from base64) of the JSON records in a file, in order.
fn positions(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            crate::harness::decode_base64(v["position"].as_str().unwrap())
        })
        .collect()
}

#[test]
fn standalone_connectors_run_in_pipelines_with_built_ins() {
    let (dir, data) = data_dir();
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).unwrap();
    std::fs::copy(fixture_connector(), connectors.join("fixture")).unwrap();
    let mut server = Server::start(&data, &["--connectors.path", connectors.to_str().unwrap()]);
    let address = server.http_address();
    let pipeline = |name: &str, source: Value, destination: Value| -> String {
        let (_, p) = call(
            &address,
            "POST",
            "/v1/pipelines",
            Some(json!({"config": {"name": name}})),
        );
        let id = p["id"].as_str().unwrap().to_owned();
        for (kind, c) in [("TYPE_SOURCE", source), ("TYPE_DESTINATION", destination)] {
            let (status, created) = call(
                &address,
                "POST",
                "/v1/connectors",
                Some(
                    json!({"type": kind, "plugin": c["plugin"], "pipelineId": id,
                            "config": {"name": kind, "settings": c["settings"]}}),
                ),
            );
            assert_eq!(status, 200, "{created}");
        }
        id
    };

    // A standalone source into the built-in file destination: exactly its records.
    let out = dir.path().join("from-plugin.jsonl");
    let from_plugin = pipeline(
        "from-plugin",
        json!({"plugin": "standalone:fixture", "settings": {"recordCount": "20"}}),
        json!({"plugin": "builtin:file", "settings": {"path": out.to_str().unwrap()}}),
    );
    let (status, started) = call(
        &address,
        "POST",
        &format!("/v1/pipelines/{from_plugin}/start"),
        None,
    );
    assert_eq!(status, 200, "{started}");
    crate::harness::wait_until("20 records from the plugin", || positions(&out).len() >= 20);
    assert_eq!(
        positions(&out),
        (0..20).map(|n| n.to_string()).collect::<Vec<_>>()
    );

    // The built-in generator into the standalone destination: every record, once, in order.
    let written = dir.path().join("to-plugin.jsonl");
    let to_plugin = pipeline(
        "to-plugin",
        json!({"plugin": "builtin:generator", "settings": {"format.type": "raw",
               "format.options.id": "int", "recordCount": "30"}}),
        json!({"plugin": "standalone:fixture", "settings": {"path": written.to_str().unwrap()}}),
    );
    let (status, started) = call(
        &address,
        "POST",
        &format!("/v1/pipelines/{to_plugin}/start"),
        None,
    );
    assert_eq!(status, 200, "{started}");
    crate::harness::wait_until("30 records through the plugin", || {
        positions(&written).len() >= 30
    });
    assert_eq!(
        positions(&written),
        (1..=30).map(|n| n.to_string()).collect::<Vec<_>>()
    );

    // Stop both (the plugins are stopped and torn down), then the server exits cleanly.
    for id in [&from_plugin, &to_plugin] {
        let (status, stopped) = call(&address, "POST", &format!("/v1/pipelines/{id}/stop"), None);
        assert_eq!(status, 200, "{stopped}");
        crate::harness::wait_until("stopped", || {
            call(&address, "GET", &format!("/v1/pipelines/{id}"), None).1["state"]["status"]
                == "STATUS_STOPPED"
        });
    }
    server.terminate();
    assert!(server.wait().success());
}
