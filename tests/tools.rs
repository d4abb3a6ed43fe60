//! The offline event-log tools on a log built by real API calls: events ls (also while the
//! server runs), audit, at, replay (a server started on the result is in that state),
//! verify (and a corrupted copy it catches), and their answers to bad input.

use crate::harness::{culvert, data_dir, Server};
use crate::http_client::request;
use culvert_store::{AppendRequest, EventLog, NewEvent, RocksStore, StoreOptions};
use serde_json::{json, Value};
use std::path::Path;

fn call(address: &str, method: &str, path: &str, body: Value) -> Value {
    let bytes = serde_json::to_vec(&body).unwrap();
    let reply = request(address, method, path, &[], Some(&bytes));
    assert_eq!(reply.status, 200, "{method} {path}: {}", reply.text());
    reply.json()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn event_log_tools_answer_from_the_log() {
    let (dir, data) = data_dir();
    let data_arg = data.to_str().unwrap().to_owned();
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    let p = call(
        &address,
        "POST",
        "/v1/pipelines",
        json!({"config": {"name": "v0"}}),
    );
    let id = p["id"].as_str().unwrap().to_owned();
    for n in 1..=5 {
        call(
            &address,
            "PUT",
            &format!("/v1/pipelines/{id}"),
            json!({"config": {"name": format!("v{n}"), "description": format!("change {n}")}}),
        );
    }
    call(
        &address,
        "POST",
        "/v1/connectors",
        json!({"type": "TYPE_DESTINATION", "plugin": "builtin:log", "pipelineId": id,
               "config": {"name": "out"}}),
    );
    // A processor with a secret (every header of webhook.http is one): never shown again.
    let secret = "Bearer tools-e2e-s3cr3t";
    let q = call(
        &address,
        "POST",
        "/v1/processors",
        json!({"plugin": "builtin:webhook.http", "parent": {"type": "TYPE_PIPELINE", "id": id},
               "config": {"settings": {"request.url": "http://example.invalid/hook",
                                       "headers.Authorization": secret}}}),
    );
    assert_eq!(
        q["config"]["settings"]["headers.Authorization"], "***",
        "{q}"
    );
    let processor_id = q["id"].as_str().unwrap().to_owned();
    // The tools read while the server runs.
    let (code, table, stderr) = culvert(&["events", "ls", "--db.rocksdb.path", &data_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        table.lines().next().unwrap().contains("RECORDED AT"),
        "{table}"
    );
    assert!(table.contains("PipelineCreated"), "{table}");
    server.terminate();
    assert!(server.wait().success());

    // No tool shows the secret; each shows the setting, redacted, beside the others.
    let (_, all, _) = culvert(&["events", "ls", "--json", "--db.rocksdb.path", &data_arg]);
    let last: Value = serde_json::from_str(all.lines().last().unwrap()).unwrap();
    let head = last["seq"].to_string();
    for args in [
        vec!["events", "ls", "--json"],
        vec!["audit", &processor_id],
        vec!["audit", &processor_id, "--json"],
        vec![
            "at",
            "--seq",
            &head,
            "processors",
            "describe",
            &processor_id,
        ],
        vec!["at", "--seq", &head, "pipelines", "describe", &id],
    ] {
        let mut full = args.clone();
        full.extend(["--db.rocksdb.path", &data_arg]);
        let (code, out, stderr) = culvert(&full);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(!out.contains("tools-e2e-s3cr3t"), "{args:?}: {out}");
        assert!(out.contains("headers.Authorization"), "{args:?}: {out}");
        assert!(out.contains("***"), "{args:?}: {out}");
        assert!(
            out.contains("http://example.invalid/hook"),
            "{args:?}: {out}"
        );
    }

    // events ls with filters, as JSON.
    let (code, lines, stderr) = culvert(&[
        "events",
        "ls",
        "--db.rocksdb.path",
        &data_arg,
        "--entity",
        &id,
        "--type",
        "PipelineUpdated",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let updates: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(updates.len(), 5);
    assert!(updates.iter().all(|u| u["actor"] == "api"));
    let names: Vec<&str> = updates
        .iter()
        .map(|u| u["data"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["v1", "v2", "v3", "v4", "v5"]);
    let second = updates[1]["seq"].as_u64().unwrap();
    let second_time = updates[1]["recorded_at"].as_str().unwrap().to_owned();
    let (_, limited, _) = culvert(&[
        "events",
        "ls",
        "--db.rocksdb.path",
        &data_arg,
        "--json",
        "--limit",
        "2",
    ]);
    assert_eq!(limited.lines().count(), 2);

    // audit: who, when, what, for each change.
    let (code, audit, stderr) = culvert(&["audit", &id, "--db.rocksdb.path", &data_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(audit.matches(" api PipelineUpdated").count(), 5, "{audit}");
    assert!(audit.contains("    name: \"v1\" -> \"v2\""), "{audit}");
    assert!(
        audit.contains("    description: \"change 1\" -> \"change 2\""),
        "{audit}"
    );
    assert!(audit.contains(" api PipelineCreated"), "{audit}");
    assert!(audit.contains("PipelineConnectorAdded"), "{audit}");

    // at: as it was after its second change, by sequence and by time.
    let second_text = second.to_string();
    for (flag, value) in [
        ("--seq", second_text.as_str()),
        ("--time", second_time.as_str()),
    ] {
        let full = [
            "at",
            flag,
            value,
            "pipelines",
            "describe",
            &id,
            "--db.rocksdb.path",
            &data_arg,
        ];
        let (code, described, stderr) = culvert(&full);
        assert_eq!(code, 0, "{stderr}");
        let v: Value = serde_json::from_str(&described).unwrap();
        assert_eq!(v["pipeline"]["name"], "v2", "{described}");
        assert_eq!(v["connectors"], json!([]), "the connector came later");
    }

    // replay to the second change; a server on the copy is in that state.
    let replayed = dir.path().join("replayed");
    let (code, out, stderr) = culvert(&[
        "replay",
        "--to",
        &second.to_string(),
        "--into",
        replayed.to_str().unwrap(),
        "--db.rocksdb.path",
        &data_arg,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        out.starts_with(&format!("replayed {second} events")),
        "{out}"
    );
    // Progress goes to stderr (not a terminal here: plain lines), ending with a summary.
    assert!(
        stderr.contains(&format!("replay: {second}/{second} events in ")),
        "{stderr}"
    );
    let mut server = Server::start(&replayed, &[]);
    let address = server.http_address();
    let reply = request(&address, "GET", &format!("/v1/pipelines/{id}"), &[], None);
    assert_eq!(reply.json()["config"]["name"], "v2");
    server.terminate();
    assert!(server.wait().success());

    // verify: fine; a copy with an event that does not decode is caught, by number.
    let (code, out, stderr) = culvert(&["verify", "--db.rocksdb.path", &data_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.starts_with("ok: "), "{out}");
    let events = out.split_whitespace().nth(1).unwrap();
    assert!(
        stderr.contains(&format!("verify: {events}/{events} events in ")),
        "{stderr}"
    );
    let corrupt = dir.path().join("corrupt");
    copy_dir(&data, &corrupt);
    let bad_seq = {
        let store = RocksStore::open(
            &corrupt,
            StoreOptions::default(),
            &culvert_migrations::layout(),
        )
        .unwrap();
        let stored = store
            .append(AppendRequest {
                events: vec![NewEvent {
                    stream: culvert_domain::StreamId::pipeline(&culvert_domain::PipelineId(
                        id.clone(),
                    )),
                    event_type: "PipelineUpdated".into(),
                    schema_version: 1,
                    actor: "intruder".into(),
                    correlation_id: "x".into(),
                    causation_id: None,
                    reason: None,
                    payload: serde_json::value::to_raw_value(
                        &json!({"type": "PipelineUpdated", "data": {"garbage": true}}),
                    )
                    .unwrap(),
                }],
                expected: vec![],
                clear_positions: Vec::new(),
                set_positions: Vec::new(),
                clear_letters: Vec::new(),
                queue_letters: Vec::new(),
            })
            .unwrap();
        stored[0].seq.0
    };
    let (code, _, stderr) = culvert(&["verify", "--db.rocksdb.path", corrupt.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("event {bad_seq}: does not decode")),
        "{stderr}"
    );

    // Bad input.
    let (code, _, stderr) = culvert(&["audit", "nope", "--db.rocksdb.path", &data_arg]);
    assert_eq!(
        (
            code,
            stderr.contains("no pipeline, connector or processor \"nope\"")
        ),
        (2, true),
        "{stderr}"
    );
    let (code, _, stderr) = culvert(&[
        "at",
        "--seq",
        "99999",
        "pipelines",
        "describe",
        &id,
        "--db.rocksdb.path",
        &data_arg,
    ]);
    assert_eq!(
        (code, stderr.contains("past the end of the log")),
        (2, true),
        "{stderr}"
    );
    let (code, _, stderr) = culvert(&[
        "at",
        "--time",
        "2000-01-01T00:00:00Z",
        "pipelines",
        "describe",
        &id,
        "--db.rocksdb.path",
        &data_arg,
    ]);
    assert_eq!(
        (code, stderr.contains("is before the first event")),
        (2, true),
        "{stderr}"
    );
    let missing = dir.path().join("missing");
    let (code, _, stderr) = culvert(&[
        "events",
        "ls",
        "--db.rocksdb.path",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(
        (code, stderr.contains("does not exist")),
        (3, true),
        "{stderr}"
    );
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "not a database").unwrap();
    let (code, _, stderr) = culvert(&["verify", "--db.rocksdb.path", foreign.to_str().unwrap()]);
    assert_eq!(
        (code, stderr.contains("is not a culvert data directory")),
        (3, true),
        "{stderr}"
    );
    let (code, _, stderr) = culvert(&[
        "replay",
        "--to",
        "99999",
        "--into",
        dir.path().join("x").to_str().unwrap(),
        "--db.rocksdb.path",
        &data_arg,
    ]);
    assert_eq!(code, 2, "{stderr}");
}
