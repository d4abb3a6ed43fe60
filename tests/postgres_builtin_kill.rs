//! The built-in postgres source across crashes: a postgres -> file pipeline while a writer
//! keeps changing the table; the server is killed with SIGKILL five times mid-stream and
//! restarted each time. When the writer has stopped and the pipeline caught up, every
//! change is in the file (none lost), the first copies are in commit order, duplicates
//! (changes read again after a kill because their ack had not reached the position store)
//! are counted and bounded, and the replication slot's lag is back to 0.
//!
//! At least 200,000 changes, 25,000 records or more between two kills.
//!
//! Each change is unique (insert of a new id, update to a new value, delete of an id
//! deleted once), so its identity is its operation, id and value.

use crate::harness::{data_dir, json_lines, wait_until_within, DEADLINE};
use crate::pg::Postgres;
use crate::postgres_builtin::{count_lines, slot_lag};
use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const KILLS: usize = 5;
const INITIAL: i64 = 1000;
/// The writer keeps going at least until it made this many changes (the oracle's scale).
const CHANGES: usize = 200_000;
/// Records between two kills.
const BETWEEN_KILLS: usize = 25_000;

/// The SQL of transaction `n` (ids above `INITIAL`) and the changes it makes.
fn transaction(n: i64) -> (String, Vec<String>) {
    let mut sql = format!("BEGIN; INSERT INTO events VALUES ({n}, 0);");
    let mut changes = vec![format!("create:{n}:0")];
    if n % 3 == 0 {
        sql.push_str(&format!("UPDATE events SET v = {n} WHERE id = {};", n - 1));
        changes.push(format!("update:{}:{n}", n - 1));
    }
    if n % 5 == 0 {
        sql.push_str(&format!("DELETE FROM events WHERE id = {};", n - 4));
        changes.push(format!("delete:{}:", n - 4));
    }
    sql.push_str("COMMIT;\n");
    (sql, changes)
}

fn identity(record: &serde_json::Value) -> String {
    let v = record["payload"]["after"]["v"]
        .as_i64()
        .map(|v| v.to_string())
        .unwrap_or_default();
    format!(
        "{}:{}:{v}",
        record["operation"].as_str().unwrap(),
        record["key"]["id"].as_i64().unwrap()
    )
}

#[test]
fn builtin_postgres_loses_nothing_when_the_server_is_killed_mid_stream() {
    let pg = Postgres::start();
    pg.sql("postgres", "CREATE DATABASE kills");
    pg.sql(
        "kills",
        &format!(
            "CREATE TABLE events (id int8 PRIMARY KEY, v int8 NOT NULL);
             INSERT INTO events SELECT g, g FROM generate_series(1, {INITIAL}) g;"
        ),
    );
    let (dir, data) = data_dir();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(
        pipelines.join("kills.yaml"),
        "version: \"2.2\"
pipelines:
  - id: pg-kills
    status: running
    connectors:
      - id: source
        type: source
        plugin: builtin:postgres
        settings:
          url: ${PG_URL}
          tables: events
          logrepl.slotName: kill_slot
          logrepl.publicationName: kill_pub
      - id: destination
        type: destination
        plugin: builtin:file
        settings:
          path: ${OUT_DIR}/out.jsonl
",
    )
    .unwrap();
    let out = dir.path().join("out.jsonl");
    let url = pg.url("kills");
    let start = || crate::postgres_builtin::server(&data, &pipelines, &url, dir.path());
    let mut server = start();
    wait_until_within("the snapshot", DEADLINE, || {
        count_lines(&out) >= INITIAL as usize
    });

    // The writer: one psql session, one transaction after another, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut psql = Command::new(pg.psql())
        .args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-d", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = psql.stdin.take().unwrap();
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut changes = Vec::new();
            let mut n = INITIAL + 1;
            while !stop.load(Ordering::Relaxed) || changes.len() < CHANGES {
                let mut chunk = String::new();
                for _ in 0..100 {
                    let (sql, made) = transaction(n);
                    chunk.push_str(&sql);
                    changes.extend(made);
                    n += 1;
                }
                stdin.write_all(chunk.as_bytes()).unwrap();
                stdin.flush().unwrap();
                // Pacing the workload (about five thousand transactions a second), so that
                // the kills land mid-stream rather than after the writer is done.
                std::thread::sleep(Duration::from_millis(20));
            }
            changes
        })
    };

    for round in 0..KILLS {
        let seen = count_lines(&out);
        wait_until_within(&format!("progress before kill {round}"), DEADLINE, || {
            count_lines(&out) >= seen + BETWEEN_KILLS + round * 137
        });
        server.kill();
        server = start();
    }
    // A little more after the last restart, then stop writing.
    let seen = count_lines(&out);
    wait_until_within("progress after the last restart", DEADLINE, || {
        count_lines(&out) >= seen + BETWEEN_KILLS
    });
    stop.store(true, Ordering::Relaxed);
    let changes = writer.join().unwrap();
    assert!(psql.wait().unwrap().success(), "the writer failed");

    let mut expected: Vec<String> = (1..=INITIAL).map(|i| format!("snapshot:{i}:{i}")).collect();
    expected.extend(changes);
    assert!(expected.len() >= CHANGES, "{} changes", expected.len());
    wait_until_within("every change in the file", DEADLINE * 5, || {
        count_lines(&out) >= expected.len()
    });
    wait_until_within("the slot's lag to return to 0", DEADLINE, || {
        slot_lag(&pg, "kills", "kill_slot") == "0"
    });
    let records = json_lines(&out);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut first_order = Vec::new();
    for record in &records {
        let id = identity(record);
        let count = seen.entry(id.clone()).or_default();
        *count += 1;
        if *count == 1 {
            first_order.push(id);
        }
    }
    let index: HashMap<&String, usize> = expected.iter().enumerate().map(|(i, c)| (c, i)).collect();
    let unknown: Vec<&String> = first_order
        .iter()
        .filter(|c| !index.contains_key(c))
        .collect();
    assert!(unknown.is_empty(), "records of no change: {unknown:?}");
    let lost: Vec<&String> = expected.iter().filter(|c| !seen.contains_key(*c)).collect();
    assert!(
        lost.is_empty(),
        "{} changes lost, first {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    let order: Vec<usize> = first_order.iter().map(|c| index[c]).collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "first copies out of commit order"
    );
    let duplicates = records.len() - expected.len();
    let most = seen.values().max().copied().unwrap_or(0);
    eprintln!(
        "postgres kill test: {} changes, {} records, {duplicates} duplicates after {KILLS} kills",
        expected.len(),
        records.len()
    );
    // Duplicates only from the in-flight windows: each kill can repeat at most what was
    // written but not yet acked, never the whole stream again.
    assert!(most <= KILLS + 1, "a change came {most} times");
    assert!(
        duplicates < expected.len() / 2,
        "{duplicates} duplicates for {} changes",
        expected.len()
    );
    server.terminate();
    assert!(server.wait().success());
}
