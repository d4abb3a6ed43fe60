//! Pipelines running for real behind the API: generator -> file delivers exactly the
//! configured records; a stop drains and a later start continues with nothing lost; a
//! destination that cannot write degrades the pipeline with the error visible; a server
//! restart resumes a running pipeline.

use crate::harness::{data_dir, decode_base64, wait_until, Server};
use crate::http_client::{call, request};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// A pipeline generator -> file; returns its id.
fn pipeline(address: &str, name: &str, generator: Value, out: &Path) -> String {
    let p = call(
        address,
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": name}})),
    );
    let id = p["id"].as_str().unwrap().to_owned();
    let mut settings = json!({"format.type": "structured", "format.options.id": "int"});
    for (k, v) in generator.as_object().unwrap() {
        settings[k] = v.clone();
    }
    call(
        address,
        "POST",
        "/v1/connectors",
        Some(
            json!({"type": "TYPE_SOURCE", "plugin": "builtin:generator", "pipelineId": id,
                    "config": {"name": "gen", "settings": settings}}),
        ),
    );
    call(
        address,
        "POST",
        "/v1/connectors",
        Some(
            json!({"type": "TYPE_DESTINATION", "plugin": "builtin:file", "pipelineId": id,
                    "config": {"name": "out", "settings": {"path": out.to_str().unwrap()}}}),
        ),
    );
    id
}

fn status(address: &str, id: &str) -> (String, String) {
    let p = call(address, "GET", &format!("/v1/pipelines/{id}"), None);
    (
        p["state"]["status"].as_str().unwrap().to_owned(),
        p["state"]["error"].as_str().unwrap().to_owned(),
    )
}

/// Positions (record numbers) in the output file and how often each appears.
fn delivered(out: &Path) -> BTreeMap<u64, usize> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let mut seen = BTreeMap::new();
    // A line still being written has no newline yet: leave it for the next look.
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let record: Value = serde_json::from_str(line).expect("a JSON record per line");
        let position = record["position"].as_str().expect("a base64 position");
        let number = decode_base64(position);
        *seen.entry(number.parse::<u64>().unwrap()).or_insert(0) += 1;
        assert_eq!(record["operation"], "create");
        assert!(record["payload"]["after"]["id"].is_i64(), "{line}");
    }
    seen
}

#[test]
fn generator_to_file_delivers_exactly_the_count_and_stops() {
    let (dir, data) = data_dir();
    let out = dir.path().join("out.jsonl");
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    let id = pipeline(&address, "exact", json!({"recordCount": "1000"}), &out);
    call(&address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    // The start returned once the engine reported the pipeline running.
    assert_eq!(status(&address, &id).0, "STATUS_RUNNING");
    wait_until("1000 records in the file", || {
        delivered(&out).values().sum::<usize>() >= 1000
    });
    wait_until("running", || status(&address, &id).0 == "STATUS_RUNNING");
    call(&address, "POST", &format!("/v1/pipelines/{id}/stop"), None);
    wait_until("stopped", || status(&address, &id).0 == "STATUS_STOPPED");
    let seen = delivered(&out);
    assert_eq!(seen.len(), 1000);
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (1..=1000).collect::<Vec<_>>()
    );
    assert!(
        seen.values().all(|n| *n == 1),
        "no duplicates after a drained stop"
    );
}

#[test]
fn a_stop_drains_and_a_later_start_continues_with_nothing_lost() {
    let (dir, data) = data_dir();
    let out = dir.path().join("out.jsonl");
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    let id = pipeline(
        &address,
        "resume",
        json!({"recordCount": "3000", "rate": "3000"}),
        &out,
    );
    call(&address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    wait_until("some records", || delivered(&out).len() > 200);
    call(&address, "POST", &format!("/v1/pipelines/{id}/stop"), None);
    wait_until("stopped", || status(&address, &id).0 == "STATUS_STOPPED");
    let first = delivered(&out).len();
    assert!(first < 3000, "stopped mid-flight ({first})");

    // Across a server restart too.
    server.terminate();
    assert!(server.wait().success());
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    call(&address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    wait_until("all 3000", || delivered(&out).len() >= 3000);
    let seen = delivered(&out);
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (1..=3000).collect::<Vec<_>>()
    );
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    assert_eq!(duplicates, 0, "a drained stop leaves nothing to redeliver");
}

#[test]
fn an_unwritable_destination_degrades_the_pipeline_with_the_error() {
    let (dir, data) = data_dir();
    let out = dir.path().join("no-such-dir").join("out.jsonl");
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    let id = pipeline(&address, "broken", json!({"recordCount": "10"}), &out);
    // The start call waits for the engine's verdict and returns the error.
    let start = format!("/v1/pipelines/{id}/start");
    let reply = request(&address, "POST", &start, &[], None);
    assert_eq!(reply.status, 500, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["code"], 13);
    assert!(
        body["message"].as_str().unwrap().contains("no-such-dir"),
        "{body}"
    );
    let (state, error) = status(&address, &id);
    assert_eq!(state, "STATUS_DEGRADED");
    assert!(error.contains("no-such-dir"), "{error}");
    // A degraded pipeline can be started again (and fails again the same way).
    assert_eq!(request(&address, "POST", &start, &[], None).status, 500);
    assert_eq!(status(&address, &id).0, "STATUS_DEGRADED");
    // Readiness lists it as Conduit's /readyz does (Go's name of the status).
    let ready = request(&address, "GET", "/readyz", &[], None).json();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["pipelines"]["degraded"], 1, "{ready}");
    let listed = &ready["pipelines"]["degradedPipelines"][0];
    assert_eq!(
        (&listed["id"], &listed["status"]),
        (&json!(id), &json!("Degraded"))
    );
    assert!(
        listed["error"].as_str().unwrap().contains("no-such-dir"),
        "{ready}"
    );
}

/// `--pipelines.exit-on-degraded` (Conduit's flag): the server ends, with an error after
/// its usual drain, once a pipeline becomes degraded; and at start when a pipeline file
/// cannot be provisioned.
#[test]
fn exit_on_degraded_ends_the_server_when_a_pipeline_fails() {
    let (dir, data) = data_dir();
    let out = dir.path().join("no-such-dir").join("out.jsonl");
    let mut server = Server::start(&data, &["--pipelines.exit-on-degraded"]);
    let address = server.http_address();
    let id = pipeline(&address, "broken", json!({"recordCount": "10"}), &out);
    // The start call's own answer races with the shutdown; the exit is what counts.
    let _ = request(
        &address,
        "POST",
        &format!("/v1/pipelines/{id}/start"),
        &[],
        None,
    );
    let status = server.wait();
    assert!(!status.success(), "{status:?}: {:#?}", server.seen);
    assert!(
        server
            .seen
            .iter()
            .any(|l| l.contains(&format!("pipeline {id} is degraded"))
                && l.contains("--pipelines.exit-on-degraded")),
        "{:#?}",
        server.seen
    );

    // A pipeline file with an error: no start at all.
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(
        pipelines.join("bad.yaml"),
        "version: \"2.2\"\npipelines:\n  - id: bad\n    status: bogus\n",
    )
    .unwrap();
    let (_other, data) = data_dir();
    let mut server = Server::start(
        &data,
        &[
            "--pipelines.exit-on-degraded",
            "--pipelines.path",
            pipelines.to_str().unwrap(),
        ],
    );
    let status = server.wait();
    assert!(!status.success(), "{status:?}");
    assert!(
        server
            .seen
            .iter()
            .any(|l| l.contains("could not be provisioned")),
        "{:#?}",
        server.seen
    );
    // Without the flag the same files only log their errors.
    let (_third, data) = data_dir();
    let mut server = Server::start(&data, &["--pipelines.path", pipelines.to_str().unwrap()]);
    server.http_address();
    server.terminate();
    assert!(server.wait().success(), "{:#?}", server.seen);
}

#[test]
fn a_server_restart_resumes_a_running_pipeline() {
    let (dir, data) = data_dir();
    let out = dir.path().join("out.jsonl");
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    let id = pipeline(
        &address,
        "survivor",
        json!({"recordCount": "2000", "rate": "2000"}),
        &out,
    );
    call(&address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    wait_until("some records", || delivered(&out).len() > 100);
    server.terminate();
    let exit = server.wait();
    assert!(
        exit.success(),
        "SIGTERM drains and exits 0: {exit:?} {:#?}",
        server.seen
    );
    let before = delivered(&out).len();
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    wait_until("the rest after the restart", || {
        delivered(&out).len() >= 2000
    });
    assert!(before < 2000);
    assert_eq!(status(&address, &id).0, "STATUS_RUNNING");
    let seen = delivered(&out);
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (1..=2000).collect::<Vec<_>>()
    );
}

#[test]
fn a_failing_pipeline_is_restarted_with_backoff_then_left_degraded() {
    let (_dir, data) = data_dir();
    let mut server = Server::start(
        &data,
        &[
            "--pipelines.error-recovery.min-delay",
            "20ms",
            "--pipelines.error-recovery.max-retries",
            "2",
        ],
    );
    let address = server.http_address();
    // /dev/full opens fine and fails every write: a failure after the start.
    let id = pipeline(
        &address,
        "flaky",
        json!({"recordCount": "100"}),
        Path::new("/dev/full"),
    );
    call(&address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    for attempt in [1, 2] {
        let line = server.wait_for_line("pipeline failed; recovering");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["fields"]["attempt"], attempt, "{line}");
    }
    server.wait_for_line("no retries left");
    wait_until("degraded", || status(&address, &id).0 == "STATUS_DEGRADED");
    let (_, error) = status(&address, &id);
    assert!(error.contains("No space left on device"), "{error}");
}

#[test]
fn a_failure_that_a_restart_cannot_mend_is_not_retried() {
    let (dir, data) = data_dir();
    let mut server = Server::start(
        &data,
        &[
            "--pipelines.error-recovery.min-delay",
            "20ms",
            "--pipelines.error-recovery.max-retries",
            "5",
        ],
    );
    let address = server.http_address();
    let id = pipeline(
        &address,
        "refused",
        json!({"recordCount": "10"}),
        &dir.path().join("out.jsonl"),
    );
    // Every record fails this processor (the record has no field Foo): a restart would
    // only fail the same record again.
    add_processor(
        &address,
        ("TYPE_PIPELINE", &id),
        "field.set",
        json!({"field": ".Metadata.x", "value": "{{ .Foo }}"}),
        "",
    );
    // The start answers once the pipeline runs, or with the error if it failed first.
    let start = request(
        &address,
        "POST",
        &format!("/v1/pipelines/{id}/start"),
        &[],
        None,
    );
    assert!(
        start.status == 200 || start.text().contains("Foo"),
        "{}: {}",
        start.status,
        start.text()
    );
    let line = server.wait_for_line("pipeline degraded");
    assert!(line.contains("not retried"), "{line}");
    assert!(line.contains("permanent"), "{line}");
    assert!(
        !server.seen.iter().any(|l| l.contains("recovering")),
        "no restart: {:#?}",
        server.seen
    );
    wait_until("degraded", || status(&address, &id).0 == "STATUS_DEGRADED");
    let (_, error) = status(&address, &id);
    assert!(error.contains("Foo"), "{error}");
}

/// A processor on `parent` (`TYPE_CONNECTOR` or `TYPE_PIPELINE`).
fn add_processor(
    address: &str,
    parent: (&str, &str),
    plugin: &str,
    settings: Value,
    condition: &str,
) {
    call(
        address,
        "POST",
        "/v1/processors",
        Some(
            json!({"plugin": plugin, "parent": {"type": parent.0, "id": parent.1},
                    "config": {"settings": settings}, "condition": condition}),
        ),
    );
}

/// Appends `tag` to the record's `trail` metadata, to show the order processors ran in.
fn tag(address: &str, parent: (&str, &str), tag: &str) {
    let value = format!("{{{{ index .Metadata \"trail\" }}}}{tag}");
    add_processor(
        address,
        parent,
        "field.set",
        json!({"field": ".Metadata.trail", "value": value}),
        "",
    );
}

#[test]
fn processors_apply_in_order_and_filtered_records_are_acked() {
    let (dir, data) = data_dir();
    let out = dir.path().join("out.jsonl");
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    let id = pipeline(&address, "processed", json!({"recordCount": "1000"}), &out);
    let connectors = call(
        &address,
        "GET",
        &format!("/v1/connectors?pipeline_id={id}"),
        None,
    );
    let connector = |kind: &str| -> String {
        connectors
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == kind)
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let (source, destination) = (connector("TYPE_SOURCE"), connector("TYPE_DESTINATION"));
    let on_source = ("TYPE_CONNECTOR", source.as_str());
    let on_pipeline = ("TYPE_PIPELINE", id.as_str());
    let on_destination = ("TYPE_CONNECTOR", destination.as_str());
    // Created out of order on purpose: the order on each parent is what counts.
    tag(&address, on_destination, "d1");
    tag(&address, on_source, "s1,");
    tag(&address, on_pipeline, "p1,");
    // Records whose number ends in 0 (the last one among them) are filtered out.
    add_processor(
        &address,
        on_pipeline,
        "builtin:filter",
        json!({}),
        r#"{{ hasSuffix "0" (print .Position) }}"#,
    );
    tag(&address, on_source, "s2,");
    tag(&address, on_pipeline, "p2,");
    add_processor(
        &address,
        on_destination,
        "field.rename",
        json!({"mapping": ".Metadata.trail:path"}),
        "",
    );
    add_processor(
        &address,
        on_destination,
        "field.exclude",
        json!({"fields": ".Metadata[\"opencdc.readAt\"]"}),
        "",
    );

    call(&address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    assert_eq!(status(&address, &id).0, "STATUS_RUNNING");
    wait_until("900 records in the file", || {
        delivered(&out).values().sum::<usize>() >= 900
    });
    call(&address, "POST", &format!("/v1/pipelines/{id}/stop"), None);
    wait_until("stopped", || status(&address, &id).0 == "STATUS_STOPPED");
    let seen = delivered(&out);
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (1..=1000).filter(|n| n % 10 != 0).collect::<Vec<_>>()
    );
    assert!(seen.values().all(|n| *n == 1));
    let text = std::fs::read_to_string(&out).unwrap();
    for line in text.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let metadata = &record["metadata"];
        assert_eq!(metadata["path"], "s1,s2,p1,p2,d1", "{line}");
        assert!(metadata.get("trail").is_none() && metadata.get("opencdc.readAt").is_none());
    }
    server.terminate();
    assert!(server.wait().success());

    // The last record (1000) was filtered: its position is persisted only because the
    // filtered records were acked.
    let store = culvert_store::RocksStore::open(
        &data,
        culvert_store::StoreOptions::default(),
        &culvert_migrations::layout(),
    )
    .unwrap();
    let position = culvert_store::PositionStore::get(&store, &source, "position")
        .unwrap()
        .expect("a persisted position");
    assert_eq!(String::from_utf8(position).unwrap(), "1000");
}
