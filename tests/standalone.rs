//! Standalone connector plugins: real connectors built with Conduit's Go SDK — our fixture
//! (`tests/fixtures/connector`) and the published generator and file connectors pinned in
//! `tests/fixtures/upstream` — built here from the Go module proxy, discovered in
//! `--connectors.path`, listed with their specifications, run in pipelines with built-ins
//! (exact counts, stop/start resumes without loss, lifecycle events), and their faults:
//! a plugin killed mid-flight (pipeline degraded with the plugin's name, a restart loses
//! nothing), a bad handshake, a file that is not executable, a server killed outright (its
//! plugins die with it).

use crate::harness::{data_dir, Server};
use crate::http_client::call_any as call;
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

/// Conduit's published connectors, built from the Go module proxy (shared with the soak).
pub(crate) use crate::harness::upstream_connector;

/// A `connectors` directory in `dir` holding Conduit's postgres connector v0.14.2 (built
/// from the Go module proxy), for `--connectors.path`.
pub(crate) fn connectors_with_postgres(dir: &Path) -> PathBuf {
    let connectors = dir.join("connectors");
    std::fs::create_dir(&connectors).unwrap();
    std::fs::copy(
        upstream_connector("postgres", "v0.14.2"),
        connectors.join("postgres"),
    )
    .unwrap();
    connectors
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
    // Speaks go-plugin, but an older connector protocol than Conduit (and Culvert) speak.
    let old_protocol = connectors.join("old-protocol");
    std::fs::write(
        &old_protocol,
        "#!/bin/sh\necho '1|1|unix|/tmp/nowhere.sock|grpc|'\nsleep 30\n",
    )
    .unwrap();
    std::fs::set_permissions(&old_protocol, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut server = Server::start(&data, &["--connectors.path", connectors.to_str().unwrap()]);
    let address = server.http_address();
    let warnings: Vec<&String> = server
        .seen
        .iter()
        .filter(|l| l.contains("standalone connector plugin skipped"))
        .collect();
    assert_eq!(warnings.len(), 3, "{:#?}", server.seen);
    assert!(warnings.iter().any(|w| w.contains("old-protocol")
        && w.contains("bad handshake")
        && w.contains("connector protocol version 1, want 2")));
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
    let (dir, mut server) = with_fixture(&[]);
    let address = server.http_address();
    // A standalone source into the built-in file destination: exactly its records.
    let out = dir.path().join("from-plugin.jsonl");
    let (from_plugin, _) = pipeline(
        &address,
        "from-plugin",
        json!({"plugin": "standalone:fixture", "settings": {"recordCount": "20"}}),
        json!({"plugin": "builtin:file", "settings": {"path": out.to_str().unwrap()}}),
    );
    start(&address, &from_plugin);
    crate::harness::wait_until("20 records from the plugin", || positions(&out).len() >= 20);
    assert_eq!(
        positions(&out),
        (0..20).map(|n| n.to_string()).collect::<Vec<_>>()
    );

    // The built-in generator into the standalone destination: every record, once, in order.
    let written = dir.path().join("to-plugin.jsonl");
    let (to_plugin, _) = pipeline(
        &address,
        "to-plugin",
        json!({"plugin": "builtin:generator", "settings": {"format.type": "raw",
               "format.options.id": "int", "recordCount": "30"}}),
        json!({"plugin": "standalone:fixture", "settings": {"path": written.to_str().unwrap()}}),
    );
    start(&address, &to_plugin);
    crate::harness::wait_until("30 records through the plugin", || {
        positions(&written).len() >= 30
    });
    assert_eq!(
        positions(&written),
        (1..=30).map(|n| n.to_string()).collect::<Vec<_>>()
    );

    // Stop both (the plugins are stopped and torn down), then the server exits cleanly.
    for id in [&from_plugin, &to_plugin] {
        stop(&address, id);
    }
    server.terminate();
    assert!(server.wait().success());
}

/// A server whose connectors directory holds the fixture connector, started with `extra`
/// flags too.
fn with_fixture(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let (dir, data) = data_dir();
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).unwrap();
    std::fs::copy(fixture_connector(), connectors.join("fixture")).unwrap();
    let mut args = vec!["--connectors.path", connectors.to_str().unwrap()];
    args.extend_from_slice(extra);
    let server = Server::start(&data, &args);
    (dir, server)
}

/// Create a pipeline with one source and one destination; returns its id and the
/// connectors' ids.
fn pipeline(address: &str, name: &str, source: Value, destination: Value) -> (String, [String; 2]) {
    let (status, p) = call(
        address,
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": name}})),
    );
    assert_eq!(status, 200, "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for (kind, c) in [("TYPE_SOURCE", source), ("TYPE_DESTINATION", destination)] {
        let (status, created) = call(
            address,
            "POST",
            "/v1/connectors",
            Some(
                json!({"type": kind, "plugin": c["plugin"], "pipelineId": id,
                        "config": {"name": kind, "settings": c["settings"]}}),
            ),
        );
        assert_eq!(status, 200, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    (id, [ids[0].clone(), ids[1].clone()])
}

fn start(address: &str, id: &str) {
    let (status, started) = call(address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    assert_eq!(status, 200, "{started}");
}

fn pipeline_state(address: &str, id: &str) -> Value {
    call(address, "GET", &format!("/v1/pipelines/{id}"), None).1["state"].clone()
}

fn stop(address: &str, id: &str) {
    let (status, stopped) = call(address, "POST", &format!("/v1/pipelines/{id}/stop"), None);
    assert_eq!(status, 200, "{stopped}");
    crate::harness::wait_until("the pipeline stopped", || {
        pipeline_state(address, id)["status"] == "STATUS_STOPPED"
    });
}

/// Lines of a file (whole lines only).
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| l.trim_end().to_owned())
        .collect()
}

/// Processes whose parent is `parent` and whose command name is `name`.
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let ppid: u32 = stat[close + 2..]
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if ppid == parent && comm == name {
            found.push(pid);
        }
    }
    found
}

/// Whether a process is gone for good (exited and reaped: no zombie left).
fn reaped(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether a process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rfind(')').map(|i| &stat[i + 2..i + 3]);
            state != Some("Z")
        })
        .unwrap_or(false)
}

#[test]
fn published_connectors_run_with_built_ins_and_the_schema_service() {
    let (dir, data) = data_dir();
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).unwrap();
    std::fs::copy(
        upstream_connector("generator", "v0.10.4"),
        connectors.join("generator"),
    )
    .unwrap();
    std::fs::copy(
        upstream_connector("file", "v0.10.8"),
        connectors.join("file"),
    )
    .unwrap();
    let mut server = Server::start(&data, &["--connectors.path", connectors.to_str().unwrap()]);
    let address = server.http_address();
    assert_eq!(
        crate::harness::listed_names(&address, "/v1/connectors/plugins?name=standalone:.*"),
        ["standalone:file@v0.10.8", "standalone:generator@v0.10.4"]
    );

    // The published generator with structured payloads (its SDK registers their schema
    // with the host's schema service) into the built-in file destination.
    let out = dir.path().join("from-generator.jsonl");
    let (from_generator, _) = pipeline(
        &address,
        "from-generator",
        json!({"plugin": "standalone:generator", "settings": {"format.type": "structured",
               "format.options.id": "int", "format.options.name": "string",
               "recordCount": "50"}}),
        json!({"plugin": "builtin:file", "settings": {"path": out.to_str().unwrap()}}),
    );
    start(&address, &from_generator);
    crate::harness::wait_until("50 records from the generator plugin", || {
        lines(&out).len() >= 50
    });
    let records: Vec<Value> = lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 50);
    // The SDK encodes structured payloads with the schema it registered (Avro bytes);
    // the records name it, version 1 of the payload subject, and the built-in file
    // destination decodes them with it as Conduit's does (`sdk.schema.extract.*`).
    for record in &records {
        let after = &record["payload"]["after"];
        assert!(
            after["id"].is_i64() && after["name"].is_string(),
            "{record}"
        );
        let subject = record["metadata"]["opencdc.payload.schema.subject"]
            .as_str()
            .unwrap_or_default();
        assert!(subject.ends_with(":payload"), "{record}");
        assert_eq!(
            record["metadata"]["opencdc.payload.schema.version"], "1",
            "{record}"
        );
    }

    // A built-in processor between them sees the payload decoded (`sdk.schema.decode.*`);
    // what it writes is encoded again with the schema inferred from it, registered as the
    // subject's version 2, and the file destination decodes it with that version.
    let processed = dir.path().join("processed.jsonl");
    let (with_processor, _) = pipeline(
        &address,
        "processed",
        json!({"plugin": "standalone:generator", "settings": {"format.type": "structured",
               "format.options.id": "int", "format.options.name": "string",
               "recordCount": "20"}}),
        json!({"plugin": "builtin:file", "settings": {"path": processed.to_str().unwrap()}}),
    );
    let (status, created) = call(
        &address,
        "POST",
        "/v1/processors",
        Some(json!({"plugin": "field.set",
                    "parent": {"type": "TYPE_PIPELINE", "id": with_processor},
                    "config": {"settings": {"field": ".Payload.After.tag",
                                            "value": "seen-{{ .Payload.After.id }}"}}})),
    );
    assert_eq!(status, 200, "{created}");
    start(&address, &with_processor);
    crate::harness::wait_until("20 processed records", || lines(&processed).len() >= 20);
    let (_, events) = call(&address, "GET", "/v1/events?type=SchemaRegistered", None);
    for line in lines(&processed) {
        let record: Value = serde_json::from_str(&line).unwrap();
        let subject = record["metadata"]["opencdc.payload.schema.subject"]
            .as_str()
            .unwrap();
        assert_eq!(
            record["metadata"]["opencdc.payload.schema.version"], "2",
            "{record}"
        );
        let text = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["data"]["subject"] == subject && e["data"]["version"].as_f64() == Some(2.0))
            .and_then(|e| e["data"]["schema"].as_str())
            .unwrap_or_else(|| panic!("no version 2 of {subject}: {events}"));
        assert!(text.contains("\"tag\""), "{text}");
        let after = &record["payload"]["after"];
        let id = after["id"].as_i64().unwrap_or_else(|| panic!("{record}"));
        assert_eq!(after["tag"], format!("seen-{id}"), "{record}");
    }

    // The built-in generator into the published file destination: every record, once.
    let written = dir.path().join("to-file-plugin.jsonl");
    let (to_file, _) = pipeline(
        &address,
        "to-file",
        json!({"plugin": "builtin:generator", "settings": {"format.type": "raw",
               "format.options.id": "int", "recordCount": "40"}}),
        json!({"plugin": "standalone:file", "settings": {"path": written.to_str().unwrap()}}),
    );
    start(&address, &to_file);
    crate::harness::wait_until("40 records through the file plugin", || {
        lines(&written).len() >= 40
    });
    let positions: Vec<String> = lines(&written)
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            crate::harness::decode_base64(v["position"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        positions,
        (1..=40).map(|n| n.to_string()).collect::<Vec<_>>()
    );

    // The built-in generator's structured records name the schema extracted from them
    // (as a source built with the SDK does), and the published file destination, built
    // with the SDK, decodes them by it.
    let structured = dir.path().join("structured-to-file-plugin.jsonl");
    let (to_file_structured, [generator_id, _]) = pipeline(
        &address,
        "to-file-structured",
        json!({"plugin": "builtin:generator", "settings": {"format.type": "structured",
               "format.options.id": "int", "format.options.name": "string",
               "recordCount": "20"}}),
        json!({"plugin": "standalone:file",
               "settings": {"path": structured.to_str().unwrap()}}),
    );
    start(&address, &to_file_structured);
    crate::harness::wait_until("20 structured records through the file plugin", || {
        lines(&structured).len() >= 20
    });
    for line in lines(&structured) {
        let record: Value = serde_json::from_str(&line).unwrap();
        let after = &record["payload"]["after"];
        assert!(
            after["id"].is_i64() && after["name"].is_string(),
            "{record}"
        );
        assert_eq!(
            record["metadata"]["opencdc.payload.schema.subject"],
            format!("{generator_id}:payload"),
            "{record}"
        );
        assert_eq!(record["metadata"]["opencdc.payload.schema.version"], "1");
        assert_eq!(
            record["metadata"]["conduit.source.connector.id"],
            generator_id
        );
    }

    for id in [&from_generator, &to_file, &to_file_structured] {
        stop(&address, id);
    }
    server.terminate();
    assert!(server.wait().success());
}

#[test]
fn a_standalone_source_resumes_after_a_stop_and_hears_of_its_lifecycle() {
    let (dir, mut server) = with_fixture(&[]);
    let address = server.http_address();
    let out = dir.path().join("out.jsonl");
    let lifecycle = dir.path().join("lifecycle.log");
    let source_settings =
        |count: &str| json!({"recordCount": count, "lifecycleLog": lifecycle.to_str().unwrap()});
    let (id, [source, _]) = pipeline(
        &address,
        "resume",
        json!({"plugin": "standalone:fixture", "settings": source_settings("30")}),
        json!({"plugin": "builtin:file", "settings": {"path": out.to_str().unwrap()}}),
    );
    start(&address, &id);
    crate::harness::wait_until("30 records", || positions(&out).len() >= 30);
    stop(&address, &id);
    // Unchanged settings: no lifecycle event at the next start.
    start(&address, &id);
    stop(&address, &id);
    // More records: the plugin hears of the update, and resumes after the last position.
    let (status, updated) = call(
        &address,
        "PUT",
        &format!("/v1/connectors/{source}"),
        Some(json!({"config": {"name": "TYPE_SOURCE", "settings": source_settings("50")}})),
    );
    assert_eq!(status, 200, "{updated}");
    start(&address, &id);
    crate::harness::wait_until("50 records", || positions(&out).len() >= 50);
    stop(&address, &id);
    assert_eq!(
        positions(&out),
        (0..50).map(|n| n.to_string()).collect::<Vec<_>>(),
        "every record once, in order, across the stops"
    );
    let (status, deleted) = call(
        &address,
        "DELETE",
        &format!("/v1/connectors/{source}"),
        None,
    );
    assert_eq!(status, 200, "{deleted}");
    crate::harness::wait_until("the deleted event", || lines(&lifecycle).len() >= 3);
    assert_eq!(
        lines(&lifecycle),
        [
            "created recordCount=30",
            "updated recordCount=50",
            "deleted recordCount=50"
        ]
    );
    server.terminate();
    assert!(server.wait().success());
}

#[test]
fn a_killed_plugin_degrades_its_pipeline_and_a_restart_loses_nothing() {
    const RECORDS: usize = 60_000;
    let (dir, mut server) = with_fixture(&["--pipelines.error-recovery.max-retries", "0"]);
    let address = server.http_address();
    let out = dir.path().join("out.jsonl");
    let (id, _) = pipeline(
        &address,
        "killed",
        json!({"plugin": "standalone:fixture", "settings": {"recordCount": RECORDS.to_string()}}),
        json!({"plugin": "builtin:file", "settings": {"path": out.to_str().unwrap()}}),
    );
    start(&address, &id);
    crate::harness::wait_until("records flowing", || lines(&out).len() >= 1_000);
    let plugins = children_named(server.pid(), "fixture");
    assert_eq!(plugins.len(), 1, "one plugin process runs the source");
    let status = Command::new("kill")
        .args(["-KILL", &plugins[0].to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    crate::harness::wait_until("the pipeline degraded", || {
        pipeline_state(&address, &id)["status"] == "STATUS_DEGRADED"
    });
    let error = pipeline_state(&address, &id)["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("fixture"), "names the plugin: {error}");
    assert!(error.contains("signal: 9"), "says how it ended: {error}");
    crate::harness::wait_until("the killed plugin reaped", || reaped(plugins[0]));
    if lines(&out).len() >= RECORDS {
        panic!("the plugin was killed after it had sent everything; raise RECORDS");
    }

    // Start again: it resumes from the last persisted position; nothing is missing.
    start(&address, &id);
    crate::harness::wait_until("every record", || {
        let seen: std::collections::HashSet<String> = positions(&out).into_iter().collect();
        seen.len() >= RECORDS
    });
    let all = positions(&out);
    let seen: std::collections::HashSet<&String> = all.iter().collect();
    for n in 0..RECORDS {
        assert!(seen.contains(&n.to_string()), "record {n} was lost");
    }

    // Killed outright, the server takes its plugins with it.
    let plugins = children_named(server.pid(), "fixture");
    assert_eq!(plugins.len(), 1);
    let status = Command::new("kill")
        .args(["-KILL", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    server.wait();
    crate::harness::wait_until("the orphaned plugin gone", || !alive(plugins[0]));
}

#[test]
fn a_destination_that_stops_acknowledging_degrades_its_pipeline() {
    let (dir, mut server) = with_fixture(&[
        "--connectors.call-timeout",
        "2s",
        "--pipelines.error-recovery.max-retries",
        "0",
    ]);
    let address = server.http_address();
    let written = dir.path().join("written.jsonl");
    let (id, _) = pipeline(
        &address,
        "hung",
        json!({"plugin": "builtin:generator", "settings": {"format.type": "raw",
               "format.options.id": "int", "recordCount": "100"}}),
        json!({"plugin": "standalone:fixture", "settings": {"path": written.to_str().unwrap(),
               "hangAfter": "10"}}),
    );
    start(&address, &id);
    crate::harness::wait_until("the pipeline degraded", || {
        pipeline_state(&address, &id)["status"] == "STATUS_DEGRADED"
    });
    let error = pipeline_state(&address, &id)["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("fixture"), "names the plugin: {error}");
    assert!(
        error.contains("not acknowledged within 2 s"),
        "says what went wrong: {error}"
    );
    assert_eq!(lines(&written).len(), 10);
    // The hung plugin was stopped and reaped.
    crate::harness::wait_until("no plugin process left", || {
        children_named(server.pid(), "fixture").is_empty()
    });
    server.terminate();
    assert!(server.wait().success());
}

/// The standalone source host under the cancel-safety harness: reads dropped at random
/// await points (waiting on the plugin's Run stream) lose nothing, and the fixture plugin,
/// which checks that every position is acked in order, sees every ack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_source_host_is_cancel_safe() {
    use culvert_hosts::standalone::StandalonePlugin;
    use culvert_plugins::testing::{check_cancel_safety, CancelSafety};
    use culvert_plugins::ConnectorPlugin;
    let binary = tokio::task::spawn_blocking(fixture_connector)
        .await
        .unwrap();
    let plugin = StandalonePlugin::load(&binary).await.unwrap();
    let count = 5_000;
    // The plugin pauses now and then, so the host's reads wait on it: await points.
    let settings: culvert_plugins::Settings = [
        ("recordCount".to_owned(), count.to_string()),
        ("pauseEvery".to_owned(), "10".to_owned()),
    ]
    .into_iter()
    .collect();
    let expected: Vec<Vec<u8>> = (0..count).map(|n| n.to_string().into_bytes()).collect();
    let report = check_cancel_safety(
        || plugin.new_source(&settings).unwrap(),
        &expected,
        |r| r.position.0.clone(),
        &CancelSafety {
            max_passes: 1_000,
            ..CancelSafety::default()
        },
    )
    .await
    .unwrap_or_else(|violation| panic!("{violation}"));
    println!("standalone source host, cancel-safety: {report:?}");
    assert!(report.cancelled >= 2_000, "{report:?}");
}

/// `connectors.max-receive-record-size` (Conduit's setting) reaches the plugin: a record
/// larger than the SDK's 4 MiB default fails its destination unless it is raised, and then
/// every record arrives once.
#[test]
fn a_standalone_destination_takes_records_up_to_the_configured_size() {
    let run = |extra: &[&str]| {
        let mut args = vec!["--pipelines.error-recovery.max-retries", "0"];
        args.extend_from_slice(extra);
        let (dir, mut server) = with_fixture(&args);
        let address = server.http_address();
        let input = dir.path().join("in.txt");
        let big = "x".repeat(5 << 20);
        std::fs::write(&input, format!("first\n{big}\nlast\n")).unwrap();
        let written = dir.path().join("written.jsonl");
        let (id, _) = pipeline(
            &address,
            "big",
            json!({"plugin": "builtin:file", "settings": {"path": input.to_str().unwrap()}}),
            json!({"plugin": "standalone:fixture", "settings": {"path": written.to_str().unwrap()}}),
        );
        start(&address, &id);
        (dir, server, address, id, written)
    };
    // Default: the plugin refuses the 5 MiB record, and the pipeline says so.
    let (_dir, mut server, address, id, _) = run(&[]);
    crate::harness::wait_until("the pipeline degraded", || {
        pipeline_state(&address, &id)["status"] == "STATUS_DEGRADED"
    });
    let error = pipeline_state(&address, &id)["error"].to_string();
    assert!(error.contains("fixture"), "names the plugin: {error}");
    server.terminate();
    assert!(server.wait().success());
    // Raised: all three records, once each, in order.
    let (_dir, mut server, address, id, written) =
        run(&["--connectors.max-receive-record-size", "8MiB"]);
    crate::harness::wait_until("every record in the plugin's file", || {
        lines(&written).len() >= 3
    });
    let sizes: Vec<usize> = lines(&written).iter().map(String::len).collect();
    assert_eq!(sizes.len(), 3, "none lost or repeated");
    assert!(sizes[1] > 5 << 20, "{sizes:?}");
    assert_eq!(pipeline_state(&address, &id)["status"], "STATUS_RUNNING");
    server.terminate();
    assert!(server.wait().success());
}
