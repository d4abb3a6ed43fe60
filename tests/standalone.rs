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
