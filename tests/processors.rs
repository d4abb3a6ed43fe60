//! Conduit's built-in processors chained in a real pipeline on the running server: a
//! pipeline file reads Debezium change events from a file, decodes them (`json.decode`),
//! unwraps them (`unwrap.debezium`), changes and filters them in JavaScript
//! (`custom.javascript`), encodes the payload as Avro with a schema it infers and registers
//! (`avro.encode`) and writes the records to a file. Every output record is checked against
//! its input with a decoder of its own (none lost, none repeated, in order), the filtered
//! ones are acked (the pipeline's position reaches the last line), and the registered
//! schema is an event in the log that outlives a restart.

use crate::harness::{data_dir, wait_until, written_records, Server};
use crate::http_client::call;
use culvert_domain::{Data, Operation};
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
        plugin: avro.encode
        settings:
          schema.strategy: autoRegister
          schema.autoRegister.subject: users
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

/// An Avro varint (zigzag long) at the front of `bytes`, and the rest.
fn zigzag(bytes: &[u8]) -> (i64, &[u8]) {
    let (mut value, mut shift) = (0u64, 0);
    for (index, byte) in bytes.iter().enumerate() {
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return (
                ((value >> 1) as i64) ^ -((value & 1) as i64),
                &bytes[index + 1..],
            );
        }
        shift += 7;
    }
    panic!("a truncated varint");
}

/// `.Payload.After` as avro.encode writes it for `{"id": long, "name": string}`: the
/// Confluent header (magic 0, schema id) and the fields in name order. Returns the schema
/// id, the id and the name.
fn decode_user(after: &[u8]) -> (u32, i64, String) {
    assert_eq!(after[0], 0, "the magic byte");
    let schema = u32::from_be_bytes(after[1..5].try_into().unwrap());
    let (id, rest) = zigzag(&after[5..]);
    let (length, rest) = zigzag(rest);
    let length = usize::try_from(length).unwrap();
    assert_eq!(rest.len(), length, "nothing after the name");
    (schema, id, String::from_utf8(rest.to_vec()).unwrap())
}

/// The ids of the users written so far.
fn written_ids(out: &Path) -> Vec<u64> {
    written_records(out)
        .iter()
        .map(|r| match &r.payload.after {
            Some(Data::Raw(after)) => decode_user(after).1 as u64,
            other => panic!("{other:?}"),
        })
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
        written_records(&out).len() >= kept.len()
    });
    let records = written_records(&out);
    let mut ids = Vec::new();
    for record in &records {
        let Some(Data::Raw(after)) = &record.payload.after else {
            panic!("avro.encode leaves raw bytes: {record:?}");
        };
        let (schema, id, name) = decode_user(after);
        assert_eq!(schema, 1, "the first schema registered");
        let id = id as u64;
        assert_eq!(name, format!("USER-{id}"));
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
    let http = server.http_address();
    server.wait_for_line("pipeline started");
    let more: Vec<String> = (EVENTS + 1..=EVENTS + 10).map(event).collect();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    std::io::Write::write_all(&mut file, (more.join("\n") + "\n").as_bytes()).unwrap();
    let kept: Vec<u64> = (1..=EVENTS + 10).filter(|n| n % 5 != 0).collect();
    wait_until("the appended events written", || {
        written_records(&out).len() >= kept.len()
    });
    assert_eq!(
        written_ids(&out),
        kept,
        "nothing read twice after the restart"
    );

    // The schema is one event in the log, recorded once: after the restart the registry
    // knew it (from the log) and the same shape registered nothing new.
    let events = call(&http, "GET", "/v1/events?type=SchemaRegistered", None);
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["subject"], "users");
    assert_eq!(events[0]["data"]["id"].as_f64(), Some(1.0));
    let schema: Value =
        serde_json::from_str(events[0]["data"]["schema"].as_str().unwrap()).unwrap();
    assert_eq!(
        schema["fields"],
        json!([{"name": "id", "type": "long"}, {"name": "name", "type": "string"}])
    );
}
