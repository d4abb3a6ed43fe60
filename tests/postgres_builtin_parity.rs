//! Parity of the built-in postgres source with Conduit's own connector: the same tables
//! and changes read, in one server, by Conduit's postgres connector v0.14.2 (the
//! standalone plugin built from the Go module proxy) and by `builtin:postgres`, each into
//! a file destination; the records are compared field by field.
//!
//! Compared exactly: operation, key, payload before/after, the metadata keys, and every
//! metadata value but `opencdc.readAt` (a clock), `conduit.source.connector.id` (each
//! pipeline's own) and the schema subjects (Culvert's SDK layer names them
//! `<connector>:<table>.payload`, Conduit's connector `<connector>:<table>_payload`; the
//! versions are compared). Positions: the kind (snapshot or change), and a snapshot
//! position's progress of its own table. `numeric` values are compared by value (see
//! `same_decimal`). (No array column: Conduit's connector cannot
//! make an Avro schema for one and fails the snapshot; ours reads arrays as JSON arrays. No NULLs either, and
//! REPLICA IDENTITY FULL: it cannot encode a NULL, such as the non-key columns of a delete's
//! old row under the default identity, under the schema it makes.)

use crate::harness::{data_dir, json_lines, wait_until_within, Server, DEADLINE};
use crate::pg::Postgres;
use crate::postgres_builtin::count_lines;
use serde_json::Value;
use std::collections::BTreeMap;

fn pipeline(id: &str, plugin: &str, slot: &str) -> String {
    format!(
        "  - id: {id}
    status: running
    connectors:
      - id: source
        type: source
        plugin: {plugin}
        settings:
          url: ${{PG_URL}}
          tables: users,typed
          logrepl.slotName: {slot}
          logrepl.publicationName: {slot}_pub
      - id: destination
        type: destination
        plugin: builtin:file
        settings:
          path: ${{OUT_DIR}}/{id}.jsonl
"
    )
}

/// The records of `path` by collection, in file order.
fn by_collection(path: &std::path::Path) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for record in json_lines(path) {
        let collection = record["metadata"]["opencdc.collection"]
            .as_str()
            .unwrap()
            .to_owned();
        out.entry(collection).or_default().push(record);
    }
    out
}

/// `numeric` differs in form only: Conduit's connector sends an Avro decimal, which the
/// host decodes to its unscaled big-endian bytes (base64 in JSON); ours is the decimal
/// text. Equal when the unscaled integer is the text without its point.
fn same_decimal(theirs: &Value, ours: Option<&Value>) -> bool {
    let (Some(theirs), Some(Value::String(ours))) = (theirs.as_str(), ours) else {
        return false;
    };
    let bytes = crate::harness::decode_base64_bytes(theirs);
    let mut unscaled: i128 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    for b in bytes {
        unscaled = (unscaled << 8) | i128::from(b);
    }
    ours.replace('.', "").parse::<i128>().ok() == Some(unscaled)
}

fn position(record: &Value) -> Value {
    let bytes = crate::harness::decode_base64_bytes(record["position"].as_str().unwrap());
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn builtin_postgres_writes_the_records_conduits_connector_writes() {
    let pg = Postgres::start();
    pg.sql("postgres", "CREATE DATABASE parity");
    pg.sql(
        "parity",
        "CREATE TABLE users (id int PRIMARY KEY, name text);
         ALTER TABLE users REPLICA IDENTITY FULL;
         INSERT INTO users VALUES (1, 'alice'), (2, 'bob'), (3, 'carol');
         CREATE TABLE typed (id int8 PRIMARY KEY, small int2, big int8, real8 float8,
           amount numeric(12,3), flag bool, label varchar(20), at timestamptz,
           local timestamp, day date, doc jsonb, uid uuid, blob bytea, note text);
         ALTER TABLE typed REPLICA IDENTITY FULL;
         INSERT INTO typed VALUES (1, 2, 8, 2.25, 1234.5, true, 'abc',
           '2024-01-02 03:04:05.123456+00', '2024-01-02 03:04:05', '2024-01-02',
           '{\"b\": [1, 2]}', 'bd94ee0b-564f-4088-bf4e-8d5e626caf66', '\\x00ff10',
           'first');",
    );
    let (dir, data) = data_dir();
    let connectors = crate::standalone::connectors_with_postgres(dir.path());
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(
        pipelines.join("parity.yaml"),
        format!(
            "version: \"2.2\"\npipelines:\n{}{}",
            pipeline("conduit", "standalone:postgres@v0.14.2", "conduit_slot"),
            pipeline("culvert", "builtin:postgres", "culvert_slot"),
        ),
    )
    .unwrap();
    let url = pg.url("parity");
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
    let conduit = dir.path().join("conduit.jsonl");
    let culvert = dir.path().join("culvert.jsonl");
    wait_until_within("both snapshots", DEADLINE, || {
        count_lines(&conduit) >= 4 && count_lines(&culvert) >= 4
    });
    for statement in [
        "INSERT INTO users VALUES (4, 'dave')",
        "UPDATE users SET name = 'bobby' WHERE id = 2",
        "DELETE FROM users WHERE id = 3",
        "INSERT INTO typed VALUES (2, -2, -8, -0.5, 0.001, false, 'x y', \
         '2024-06-30 23:59:59+02', '2024-06-30 23:59:59.5', '1999-12-31', \
         '{\"a\": null}', '00000000-0000-0000-0000-000000000001', '\\x', 'n')",
        "UPDATE typed SET note = 'changed', amount = 99.999 WHERE id = 1",
        "DELETE FROM typed WHERE id = 2",
        "BEGIN; INSERT INTO users VALUES (5, 'erin'); UPDATE users SET name = 'eve' \
         WHERE id = 5; COMMIT",
    ] {
        pg.sql("parity", statement);
    }
    let total = 4 + 8;
    wait_until_within("every change in both files", DEADLINE, || {
        count_lines(&conduit) >= total && count_lines(&culvert) >= total
    });
    let conduit = by_collection(&conduit);
    let culvert = by_collection(&culvert);
    assert_eq!(
        conduit.keys().collect::<Vec<_>>(),
        culvert.keys().collect::<Vec<_>>()
    );
    let mut differences = Vec::new();
    for (collection, theirs) in &conduit {
        let ours = &culvert[collection];
        assert_eq!(theirs.len(), ours.len(), "{collection}: record counts");
        for (i, (want, got)) in theirs.iter().zip(ours).enumerate() {
            let at = format!("{collection} record {i}");
            for field in ["operation", "key"] {
                if want[field] != got[field] {
                    differences.push(format!("{at} {field}: {} vs {}", want[field], got[field]));
                }
            }
            for side in ["before", "after"] {
                let (w, g) = (&want["payload"][side], &got["payload"][side]);
                if w == g {
                    continue;
                }
                match (w.as_object(), g.as_object()) {
                    (Some(w), Some(g)) => {
                        for (column, value) in w {
                            if column == "amount" && same_decimal(value, g.get(column)) {
                                continue;
                            }
                            if g.get(column) != Some(value) {
                                differences.push(format!(
                                    "{at} payload.{side}.{column}: conduit {value} culvert {}",
                                    g.get(column).unwrap_or(&Value::Null)
                                ));
                            }
                        }
                        for column in g.keys().filter(|c| !w.contains_key(*c)) {
                            differences.push(format!("{at} payload.{side}.{column}: extra"));
                        }
                    }
                    _ => differences.push(format!("{at} payload.{side}: {w} vs {g}")),
                }
            }
            let (wm, gm) = (
                want["metadata"].as_object().unwrap(),
                got["metadata"].as_object().unwrap(),
            );
            if wm.keys().collect::<Vec<_>>() != gm.keys().collect::<Vec<_>>() {
                differences.push(format!(
                    "{at} metadata keys: {:?} vs {:?}",
                    wm.keys().collect::<Vec<_>>(),
                    gm.keys().collect::<Vec<_>>()
                ));
            }
            for (key, value) in wm {
                let skip = key == "opencdc.readAt"
                    || key == "conduit.source.connector.id"
                    || key.ends_with(".schema.subject");
                if !skip && gm.get(key) != Some(value) {
                    differences.push(format!("{at} metadata {key}: {value} vs {:?}", gm.get(key)));
                }
            }
            let (wp, gp) = (position(want), position(got));
            if wp["type"] != gp["type"] {
                differences.push(format!("{at} position type: {wp} vs {gp}"));
            }
            if wp["type"] == 1 && wp["snapshots"][collection] != gp["snapshots"][collection] {
                differences.push(format!("{at} snapshot position: {wp} vs {gp}"));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
    server.terminate();
    assert!(server.wait().success());
}
