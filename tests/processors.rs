//! Conduit's built-in processors chained in a real pipeline on the running server: a
//! pipeline file reads Debezium change events from a file, decodes them (`json.decode`),
//! unwraps them (`unwrap.debezium`), changes and filters them in JavaScript
//! (`custom.javascript`), encodes the payload again (`json.encode`) and writes the records
//! to a file. Every output record is checked against its input: none lost, none repeated,
//! in order, and the filtered ones acked (the pipeline's position reaches the last line).

use crate::harness::{data_dir, wait_until, Server};
use culvert_domain::{Data, Operation, Record};
use serde_json::{json, Value};
use std::path::Path;

const EVENTS: u64 = 2_000;

const FILE: &str = r#"
version: "2.2"
pipelines:
  - id: cdc
    status: running
    connectors:
      - id: in
        type: source
        plugin: builtin:file
        settings: { path: "${IN}" }
      - id: out
        type: destination
        plugin: builtin:file
        settings: { path: "${OUT}" }
    processors:
      - id: decode
        plugin: json.decode
        settings: { field: .Payload.After }
      - id: unwrap
        plugin: unwrap.debezium
      - id: js
        plugin: custom.javascript
        settings:
          script: |
            function process(r) {
              if (r.Payload.After.id % 5 == 0) {
                return null;
              }
              r.Payload.After.name = r.Payload.After.name.toUpperCase();
              r.Metadata["checked.by"] = "js";
              return r;
            }
      - id: encode
        plugin: json.encode
        settings: { field: .Payload.After }
"#;

/// Event `n`: a Debezium envelope; even ids are inserts, odd ones updates.
fn event(n: u64) -> String {
    let op = if n.is_multiple_of(2) { "c" } else { "u" };
    json!({
        "schema": {},
        "payload": {
            "before": null,
            "after": {"id": n, "name": format!("user-{n}")},
            "source": {"connector": "postgresql", "table": "users"},
            "op": op,
            "ts_ms": 1_700_000_000_000_u64 + n
        }
    })
    .to_string()
}

fn start(data: &Path, pipelines: &Path, input: &Path, out: &Path) -> Server {
    let pipelines = pipelines.to_str().unwrap();
    Server::start_with_env(
        data,
        &["--pipelines.path", pipelines],
        &[("IN", input.as_os_str()), ("OUT", out.as_os_str())],
    )
}

/// The whole records written so far.
fn written(out: &Path) -> Vec<Record> {
    std::fs::read(out)
        .unwrap_or_default()
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| l.ends_with(b"\n"))
        .map(|l| Record::from_json(&l[..l.len() - 1]).expect("a whole record"))
        .collect()
}

#[test]
fn debezium_events_are_decoded_unwrapped_scripted_and_encoded_with_nothing_lost() {
    let (dir, data) = data_dir();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(pipelines.join("cdc.yaml"), FILE).unwrap();
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");
    let lines: Vec<String> = (1..=EVENTS).map(event).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();

    let mut server = start(&data, &pipelines, &input, &out);
    let kept: Vec<u64> = (1..=EVENTS).filter(|n| n % 5 != 0).collect();
    wait_until("every kept record written", || {
        written(&out).len() >= kept.len()
    });
    let records = written(&out);
    let mut ids = Vec::new();
    for record in &records {
        let Some(Data::Raw(after)) = &record.payload.after else {
            panic!("json.encode leaves raw JSON: {record:?}");
        };
        let after: Value = serde_json::from_slice(after).unwrap();
        let id = after["id"].as_u64().unwrap();
        assert_eq!(after, json!({"id": id, "name": format!("USER-{id}")}));
        let operation = if id.is_multiple_of(2) {
            Operation::Create
        } else {
            Operation::Update
        };
        assert_eq!(record.operation, operation, "{record:?}");
        assert_eq!(record.payload.before, None);
        assert_eq!(record.metadata["checked.by"], "js");
        assert_eq!(record.metadata["table"], "users", "the source's fields");
        assert_eq!(
            record.metadata["opencdc.readAt"],
            ((1_700_000_000_000 + id) * 1_000_000).to_string(),
            "ts_ms as the read time"
        );
        ids.push(id);
    }
    assert_eq!(
        ids, kept,
        "every kept event once, in order; the filtered ones gone"
    );

    // The filtered events were acked too: after a restart, events appended later arrive
    // and none before them is read again.
    server.terminate();
    assert!(server.wait().success());
    let mut server = start(&data, &pipelines, &input, &out);
    server.wait_for_line("pipeline started");
    let more: Vec<String> = (EVENTS + 1..=EVENTS + 10).map(event).collect();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    std::io::Write::write_all(&mut file, (more.join("\n") + "\n").as_bytes()).unwrap();
    let kept: Vec<u64> = (1..=EVENTS + 10).filter(|n| n % 5 != 0).collect();
    wait_until("the appended events written", || {
        written(&out).len() >= kept.len()
    });
    let ids: Vec<u64> = written(&out)
        .iter()
        .map(|r| match &r.payload.after {
            Some(Data::Raw(after)) => serde_json::from_slice::<Value>(after).unwrap()["id"]
                .as_u64()
                .unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, kept, "nothing read twice after the restart");
}
