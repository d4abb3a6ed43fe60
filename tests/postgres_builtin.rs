//! The built-in `builtin:postgres` connector end to end, in a `culvert` server against a
//! real PostgreSQL (started by each test on loopback):
//!
//! * a snapshot of a 100,000-row table and changes made while it is read and after it
//!   reach a file destination exactly once each, the changes in commit order, and the
//!   replication slot's lag returns to 0;
//! * a table copied by a postgres source into a postgres destination stays identical
//!   (row count and checksum) after a mixed workload.
//!
//! What it proves: no change is lost or doubled between snapshot and stream (the slot's
//! exported snapshot), acks move the slot. What it does not: behaviour across crashes
//! (`postgres_builtin_kill`).

use crate::harness::{data_dir, json_lines, wait_until_within, Server, DEADLINE};
use crate::pg::Postgres;
use serde_json::Value;
use std::path::Path;

/// Rows in the table before the pipeline starts.
pub const ROWS: i64 = 100_000;

/// Whole lines written to `path` so far (cheap: no parsing).
pub fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .unwrap_or_default()
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

/// A change the test makes, as the record for it must show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub operation: &'static str,
    pub id: i64,
    /// `payload.after.v` (none for deletes).
    pub v: Option<i64>,
}

/// `count` transactions of one to three changes each, numbered from `start`: inserts of
/// new ids above `ROWS`, updates (unique values) of ids 1..=50,000, deletes of ids from
/// 50,001 up; returns the SQL (one transaction per BEGIN/COMMIT) and the changes in order.
pub fn workload(start: i64, count: i64) -> (String, Vec<Change>) {
    let mut sql = String::new();
    let mut changes = Vec::new();
    let mut n = start;
    for tx in 0..count {
        sql.push_str("BEGIN;");
        for _ in 0..=(tx % 3) {
            let change = match n % 3 {
                0 => {
                    let id = ROWS + 1 + n;
                    sql.push_str(&format!("INSERT INTO items VALUES ({id}, {n}, 'new');"));
                    Change {
                        operation: "create",
                        id,
                        v: Some(n),
                    }
                }
                1 => {
                    let id = 1 + (n * 7919) % 50_000;
                    let v = 1_000_000 + n;
                    sql.push_str(&format!("UPDATE items SET v = {v} WHERE id = {id};"));
                    Change {
                        operation: "update",
                        id,
                        v: Some(v),
                    }
                }
                _ => {
                    let id = 50_001 + n;
                    sql.push_str(&format!("DELETE FROM items WHERE id = {id};"));
                    Change {
                        operation: "delete",
                        id,
                        v: None,
                    }
                }
            };
            changes.push(change);
            n += 1;
        }
        sql.push_str("COMMIT;");
    }
    (sql, changes)
}

/// The change a record in the file describes.
pub fn change_of(record: &Value) -> Change {
    let operation = match record["operation"].as_str().unwrap() {
        "create" => "create",
        "update" => "update",
        "delete" => "delete",
        "snapshot" => "snapshot",
        other => panic!("unexpected operation {other}"),
    };
    Change {
        operation,
        id: record["key"]["id"].as_i64().unwrap(),
        v: record["payload"]["after"]["v"].as_i64(),
    }
}

/// The replication slot's lag in bytes (empty when the slot does not exist).
pub fn slot_lag(pg: &Postgres, db: &str, slot: &str) -> String {
    pg.query(
        db,
        &format!(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) \
             FROM pg_replication_slots WHERE slot_name = '{slot}'"
        ),
    )
}

fn pipeline_to_file(id: &str, slot: &str, out: &str) -> String {
    format!(
        "version: \"2.2\"
pipelines:
  - id: {id}
    status: running
    connectors:
      - id: source
        type: source
        plugin: builtin:postgres
        settings:
          url: ${{PG_URL}}
          tables: items
          logrepl.slotName: {slot}
          logrepl.publicationName: {slot}_pub
      - id: destination
        type: destination
        plugin: builtin:file
        settings:
          path: ${{OUT_DIR}}/{out}
"
    )
}

/// The items table with `ROWS` rows (`v` = id).
pub fn items_table(pg: &Postgres, db: &str) {
    pg.sql("postgres", &format!("CREATE DATABASE {db}"));
    pg.sql(
        db,
        &format!(
            "CREATE TABLE items (id int8 PRIMARY KEY, v int8 NOT NULL, note text);
             INSERT INTO items SELECT g, g, 'row ' || g FROM generate_series(1, {ROWS}) g;"
        ),
    );
}

/// Start a server running the pipeline files in `pipelines` with `PG_URL` and `OUT_DIR`.
pub fn server(data: &Path, pipelines: &Path, url: &str, out_dir: &Path) -> Server {
    Server::start_with_env(
        data,
        &["--pipelines.path", pipelines.to_str().unwrap()],
        &[("PG_URL", url.as_ref()), ("OUT_DIR", out_dir.as_os_str())],
    )
}

#[test]
fn builtin_postgres_snapshot_and_live_changes_arrive_exactly_once_in_commit_order() {
    let pg = Postgres::start();
    items_table(&pg, "shop");
    let (dir, data) = data_dir();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(
        pipelines.join("p.yaml"),
        pipeline_to_file("pg-to-file", "e2e_slot", "out.jsonl"),
    )
    .unwrap();
    let out = dir.path().join("out.jsonl");
    let mut server = server(&data, &pipelines, &pg.url("shop"), dir.path());

    // Changes while the snapshot is read: once the slot exists, everything committed
    // belongs to the stream.
    wait_until_within("the replication slot", DEADLINE, || {
        pg.query(
            "shop",
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'e2e_slot'",
        ) == "1"
    });
    let written_before = count_lines(&out);
    let (during_sql, mut expected) = workload(0, 150);
    pg.sql("shop", &during_sql);
    assert!(
        written_before < ROWS as usize,
        "the snapshot was over ({written_before} records) before the changes"
    );
    wait_until_within("the snapshot", DEADLINE * 3, || {
        count_lines(&out) >= ROWS as usize
    });
    // Changes after the snapshot.
    let (after_sql, after) = workload(expected.len() as i64, 150);
    pg.sql("shop", &after_sql);
    expected.extend(after);
    let total = ROWS as usize + expected.len();
    wait_until_within("every change", DEADLINE * 3, || count_lines(&out) >= total);
    // Acks reach the slot: with nothing in flight its lag returns to 0.
    wait_until_within("the slot's lag to return to 0", DEADLINE, || {
        slot_lag(&pg, "shop", "e2e_slot") == "0"
    });
    let records = json_lines(&out);
    assert_eq!(records.len(), total, "records beyond the expected ones");
    let (snapshot, changes) = records.split_at(ROWS as usize);
    let mut ids: Vec<i64> = Vec::with_capacity(snapshot.len());
    for record in snapshot {
        let change = change_of(record);
        assert_eq!(change.operation, "snapshot", "{record}");
        // The snapshot shows the rows as they were when the slot was created.
        assert_eq!(change.v, Some(change.id), "{record}");
        assert_eq!(record["metadata"]["opencdc.collection"], "items");
        ids.push(change.id);
    }
    ids.sort_unstable();
    assert_eq!(
        ids,
        (1..=ROWS).collect::<Vec<_>>(),
        "snapshot rows lost or doubled"
    );
    let got: Vec<Change> = changes.iter().map(change_of).collect();
    for (i, (got, want)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "change {i} of {}", expected.len());
    }
    server.terminate();
    assert!(server.wait().success());
}

#[test]
fn builtin_postgres_to_postgres_keeps_the_target_identical() {
    let pg = Postgres::start();
    pg.sql("postgres", "CREATE DATABASE src");
    pg.sql("postgres", "CREATE DATABASE dst");
    let columns = "id int8 PRIMARY KEY, n int4, amount numeric(12,3), label text, \
                   at timestamptz, doc jsonb, blob bytea, tags int4[], flag bool, uid uuid";
    pg.sql("src", &format!("CREATE TABLE accounts ({columns})"));
    pg.sql("dst", &format!("CREATE TABLE accounts ({columns})"));
    pg.sql(
        "src",
        "INSERT INTO accounts SELECT g, g % 7, g / 3.0, 'row ' || g,
           '2024-01-01'::timestamptz + g * interval '1 second', jsonb_build_object('g', g),
           decode(md5(g::text), 'hex'), ARRAY[g, g + 1], g % 2 = 0,
           md5(g::text)::uuid FROM generate_series(1, 20000) g",
    );
    let (dir, data) = data_dir();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(
        pipelines.join("copy.yaml"),
        "version: \"2.2\"
pipelines:
  - id: pg-to-pg
    status: running
    connectors:
      - id: source
        type: source
        plugin: builtin:postgres
        settings:
          url: ${PG_URL}
          tables: accounts
          logrepl.slotName: copy_slot
          logrepl.publicationName: copy_pub
      - id: destination
        type: destination
        plugin: builtin:postgres
        settings:
          url: ${PG_DST_URL}
",
    )
    .unwrap();
    let mut server = Server::start_with_env(
        &data,
        &["--pipelines.path", pipelines.to_str().unwrap()],
        &[
            ("PG_URL", pg.url("src").as_ref()),
            ("PG_DST_URL", pg.url("dst").as_ref()),
        ],
    );
    wait_until_within("the replication slot", DEADLINE, || {
        pg.query(
            "src",
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'copy_slot'",
        ) == "1"
    });
    // A mixed workload, during the snapshot and after it: inserts, updates of every
    // column kind, deletes, multi-row transactions, NULLs.
    for round in 0..5 {
        let base = 20_000 + round * 1000;
        pg.sql(
            "src",
            &format!(
                "BEGIN;
                 INSERT INTO accounts SELECT g, NULL, 0.5, NULL, now(), NULL, NULL, NULL, NULL,
                   NULL FROM generate_series({base} + 1, {base} + 500) g;
                 UPDATE accounts SET label = 'r{round}', doc = '{{\"x\": [1, null]}}',
                   amount = amount * 2 WHERE id % 17 = {round};
                 COMMIT;
                 DELETE FROM accounts WHERE id % 29 = {round};
                 UPDATE accounts SET tags = ARRAY[{round}], blob = '\\x00ff', flag = NULL
                   WHERE id BETWEEN {base} + 1 AND {base} + 100;
                 DELETE FROM accounts WHERE id BETWEEN {base} + 400 AND {base} + 450;"
            ),
        );
    }
    let checksum =
        "SELECT count(*) || ' ' || md5(string_agg(t::text, '|' ORDER BY id)) FROM accounts t";
    let want = pg.query("src", checksum);
    wait_until_within("the target to match the source", DEADLINE * 3, || {
        pg.query("dst", checksum) == want
    });
    wait_until_within("the slot's lag to return to 0", DEADLINE, || {
        slot_lag(&pg, "src", "copy_slot") == "0"
    });
    assert_eq!(pg.query("dst", checksum), want);
    server.terminate();
    assert!(server.wait().success());
}
