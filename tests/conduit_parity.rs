//! Culvert against output recorded from the real Conduit (`tests/fixtures/conduit-recorded`,
//! made by `scripts/record-conduit-fixtures.sh`): the same pipeline file, run here, writes
//! records of the same shape — the same metadata keys (values that are times or random
//! aside, schema subjects exactly), positions, operations and payload layout.

use crate::harness::{data_dir, json_lines, wait_until, Server};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn recorded(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/conduit-recorded")
        .join(name)
}

fn metadata_keys(record: &Value) -> BTreeSet<String> {
    record["metadata"]
        .as_object()
        .unwrap_or_else(|| panic!("no metadata: {record}"))
        .keys()
        .cloned()
        .collect()
}

/// The kind of every value of an object (or of the value itself).
fn layout(value: &Value) -> Value {
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), layout(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
    }
}

/// Run Conduit's recorded pipeline file `name.yaml` on Culvert and compare what its file
/// destination writes with `name.jsonl` as Conduit wrote it.
fn same_as_conduit(name: &str) {
    let expected = json_lines(&recorded(&format!("{name}.jsonl")));
    let (dir, data) = data_dir();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::copy(
        recorded(&format!("{name}.yaml")),
        pipelines.join(format!("{name}.yaml")),
    )
    .unwrap();
    let out = dir.path().join(format!("{name}.jsonl"));
    let mut server = Server::start_with_env(
        &data,
        &["--pipelines.path", pipelines.to_str().unwrap()],
        &[("OUT_DIR", dir.path().as_os_str())],
    );
    wait_until("the recorded number of records", || {
        json_lines(&out).len() >= expected.len()
    });
    let got = json_lines(&out);
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (got, want) in got.iter().zip(&expected) {
        assert_eq!(metadata_keys(got), metadata_keys(want), "{got}\n{want}");
        for exact in [
            "conduit.source.connector.id",
            "opencdc.payload.schema.subject",
            "opencdc.payload.schema.version",
        ] {
            assert_eq!(got["metadata"][exact], want["metadata"][exact], "{exact}");
        }
        for exact in ["position", "operation"] {
            assert_eq!(got[exact], want[exact], "{exact}");
        }
        assert_eq!(layout(&got["key"]), layout(&want["key"]), "key of {got}");
        assert_eq!(
            layout(&got["payload"]),
            layout(&want["payload"]),
            "payload of {got}"
        );
    }
    server.terminate();
    assert!(server.wait().success());
}

#[test]
fn generator_structured_records_match_conduits() {
    same_as_conduit("generator-structured");
}

#[test]
fn generator_raw_records_match_conduits() {
    same_as_conduit("generator-raw");
}

#[test]
fn generator_records_with_decoding_off_are_written_encoded_as_conduits() {
    // Conduit's generator sends its payloads Avro-encoded; with the destination's decoding
    // off the file has the bytes.
    same_as_conduit("generator-structured-nodecode");
}
