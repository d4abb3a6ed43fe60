//! Conduit's PostgreSQL connector (v0.14.2, built from the Go module proxy, pinned in
//! `tests/fixtures/upstream`) as a standalone plugin against a real PostgreSQL, into the
//! built-in file destination: the pipeline file Conduit ran to record
//! `tests/fixtures/conduit-recorded/postgres-users.jsonl` (its plugin made standalone), the
//! same table and changes, and every record's key and payload are the JSON objects
//! Conduit's file connector wrote (the connector sends them Avro-encoded under schemas it
//! registers with the host; the destination decodes them). A `field.set` on
//! `.Payload.After.name` sees and changes them.

use crate::harness::{data_dir, json_lines, wait_until, Server};
use crate::pg::Postgres;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

fn recorded(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/conduit-recorded")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The statements of a section (`-- @setup`, `-- @changes`) of a recorded SQL file.
fn statements(sql: &str, section: &str) -> Vec<String> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in sql.lines() {
        if let Some(rest) = line.strip_prefix("-- @") {
            inside = rest.starts_with(section);
            continue;
        }
        let line = line.trim();
        if inside && !line.is_empty() && !line.starts_with("--") {
            out.push(line.to_owned());
        }
    }
    out
}

fn metadata_keys(record: &Value) -> BTreeSet<&String> {
    record["metadata"].as_object().unwrap().keys().collect()
}

#[test]
fn conduits_postgres_connector_into_the_file_destination_writes_what_conduit_writes() {
    let pg = Postgres::start();
    pg.sql("postgres", "CREATE DATABASE users_db");
    let sql = recorded("postgres-users.sql");
    for statement in statements(&sql, "setup") {
        pg.sql("users_db", &statement);
    }

    let (dir, data) = data_dir();
    let connectors = crate::standalone::connectors_with_postgres(dir.path());
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    // Conduit's file, with its built-in connector run as a standalone plugin here.
    let file = recorded("postgres-users.yaml").replace(
        "plugin: builtin:postgres",
        "plugin: standalone:postgres@v0.14.2",
    );
    std::fs::write(pipelines.join("postgres-users.yaml"), &file).unwrap();
    // The same again with a field.set on the name (its own slot and publication).
    let renamed = file
        .replace("id: postgres-users", "id: renamed")
        .replace("postgres_users_", "renamed_")
        .replace("postgres-users.jsonl", "renamed.jsonl")
        .replace(
            "    connectors:\n",
            "    processors:\n      - id: shout\n        plugin: field.set\n        \
             condition: '{{ ne .Operation \"delete\" }}'\n        settings:\n          \
             field: .Payload.After.name\n          value: '{{ upper .Payload.After.name }}'\n    \
             connectors:\n",
        );
    std::fs::write(pipelines.join("renamed.yaml"), &renamed).unwrap();

    let url = pg.url("users_db");
    let mut server = Server::start_with_env(
        &data,
        &[
            "--pipelines.path",
            pipelines.to_str().unwrap(),
            "--connectors.path",
            connectors.to_str().unwrap(),
        ],
        &[
            ("PG_URL", url.as_ref()),
            ("OUT_DIR", dir.path().as_os_str()),
        ],
    );
    let out = dir.path().join("postgres-users.jsonl");
    let renamed_out = dir.path().join("renamed.jsonl");
    wait_until("the snapshot in both files", || {
        json_lines(&out).len() >= 3 && json_lines(&renamed_out).len() >= 3
    });
    for statement in statements(&sql, "changes") {
        pg.sql("users_db", &statement);
    }
    let expected: Vec<Value> = recorded("postgres-users.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    wait_until("every change in both files", || {
        json_lines(&out).len() >= expected.len() && json_lines(&renamed_out).len() >= expected.len()
    });

    let got = json_lines(&out);
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (got, want) in got.iter().zip(&expected) {
        for field in ["operation", "key", "payload"] {
            assert_eq!(got[field], want[field], "{field}:\n{got}\n{want}");
        }
        assert_eq!(metadata_keys(got), metadata_keys(want), "{got}\n{want}");
        for exact in [
            "conduit.source.connector.id",
            "opencdc.collection",
            "opencdc.key.schema.subject",
            "opencdc.key.schema.version",
            "opencdc.payload.schema.subject",
            "opencdc.payload.schema.version",
        ] {
            assert_eq!(
                got["metadata"][exact], want["metadata"][exact],
                "{exact}: {got}"
            );
        }
        // Snapshot positions name rows (stable); CDC ones name WAL positions.
        if want["operation"] == "snapshot" {
            assert_eq!(got["position"], want["position"]);
        }
    }

    let renamed = json_lines(&renamed_out);
    assert_eq!(renamed.len(), expected.len(), "{renamed:#?}");
    for (got, want) in renamed.iter().zip(&expected) {
        let mut want = want.clone();
        if want["operation"] != "delete" {
            let name = want["payload"]["after"]["name"]
                .as_str()
                .unwrap()
                .to_uppercase();
            want["payload"]["after"]["name"] = name.into();
        }
        assert_eq!(got["payload"], want["payload"], "{got}");
        assert_eq!(got["key"], want["key"], "{got}");
    }
    server.terminate();
    assert!(server.wait().success());
}
