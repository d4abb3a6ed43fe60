//! The reliability suite's end-to-end tests (issue 24; how to rerun each and its last
//! figures: RELIABILITY.md). Each drives a real server process on a real data directory
//! with the data oracle (`builtin:oracle`): a source of records numbered per partition with
//! a hash of their payload, a destination that fsyncs a ledger of what arrived, and the
//! verdict that counts missing, duplicated, reordered and corrupted records.
//!
//! * Crashes: SIGKILLs at seeded moments, and a crash of the process at each named fail
//!   point, while records flow; nothing lost, reordered or corrupted, duplicates bounded
//!   by what can be in flight at a crash.
//! * A source that discards upstream data once acked (a replication slot), crashed right
//!   after it was acked, again and again: no gap. This fails if the engine ever acks a
//!   source before persisting the position (the crash then lands between the two).
//! * SIGTERM at full rate: the process drains and exits 0; nothing duplicated, nothing lost.
//! * Poison records with a dead-letter queue: each one in the DLQ, every other one in the
//!   destination, each exactly once.
//!
//! Scale: the defaults are the short versions `make test` runs; `make reliability` runs the
//! long ones through the environment variables below.

use crate::harness::{data_dir, poll_until, xorshift, LineCounter, Server};
use crate::http_client::{call, create_connector};
use culvert_connectors::oracle::{self, verdict_from_ledger, Observation, Verdict};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PARTITIONS: u64 = 4;

/// Records a crash can leave delivered but not yet acknowledged (and so delivered again):
/// the engine's channels hold a batch of 512 each between about seven tasks, plus the
/// batch each node holds and the positions the acker has released but not saved. A bound,
/// with room; a duplicate count above `crashes` times this means records were redelivered
/// from further back than the last persisted position.
const IN_FLIGHT_BOUND: u64 = 20_000;

/// The engine's fail points a crash test stops the process at (`fail` crate syntax: pass
/// `n` evaluations, then crash). See RELIABILITY.md for what each window means.
const ENGINE_FAIL_POINTS: &[&str] = &[
    "engine::destination::after_write_before_ack",
    "engine::acker::after_release_before_persist",
    "engine::acker::after_persist_before_source_ack",
];

/// A number from the environment (the long runs), or the short default.
fn scale(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        })
        .unwrap_or(default)
}

/// The oracle's ledger destination writing to `path`.
fn ledger_destination(path: &Path) -> Value {
    json!({"plugin": "builtin:oracle", "settings": {"ledger": path.to_str().unwrap()}})
}

/// A started oracle source -> `destination` (`{"plugin", "settings"}`) pipeline created over
/// the HTTP API; its id. `before_start` adds processors or a DLQ to it first.
fn oracle_pipeline(
    address: &str,
    name: &str,
    source: Value,
    destination: Value,
    before_start: impl FnOnce(&str),
) -> String {
    let p = call(
        address,
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": name}})),
    );
    let id = p["id"].as_str().unwrap().to_owned();
    create_connector(
        address,
        &id,
        "TYPE_SOURCE",
        "builtin:oracle",
        "oracle-in",
        source,
    );
    let plugin = destination["plugin"]
        .as_str()
        .expect("a destination plugin");
    let settings = destination["settings"].clone();
    create_connector(address, &id, "TYPE_DESTINATION", plugin, "out", settings);
    before_start(&id);
    call(address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    id
}

/// Start the server with fail point `point` set to crash after `after` passes (and the
/// fail points in `more`, `fail` crate syntax), and wait for the crash; fails if the
/// process ends any other way or a pipeline degrades first.
fn crash_at(data: &Path, point: &str, after: u64, more: &str) {
    let actions = match after {
        0 => format!("{point}=return;{more}"),
        _ => format!("{point}={after}*off->return;{more}"),
    };
    let env = [("FAILPOINTS", std::ffi::OsStr::new(&actions))];
    let mut server = Server::start_with_env(data, &[], &env);
    let status = server.wait_for_exit_unless(Duration::from_secs(300), "pipeline degraded");
    let said = format!("fail point {point}: crashing");
    assert!(
        !status.success() && server.seen.iter().any(|l| l.contains(&said)),
        "the server did not crash at {point} ({status}); saw {:#?}",
        server.seen
    );
}

/// Wait until the ledger holds every one of `records` records (duplicates aside).
fn wait_for_all(ledger: &Path, records: u64, limit: Duration) -> Verdict {
    let mut lines = LineCounter::default();
    poll_until(limit, Duration::from_millis(200), || {
        // Cheap first: the line count only grows; the verdict reads the whole ledger.
        let arrived = lines.count(ledger) as u64;
        if arrived < records {
            return Err(format!("{arrived} of {records} ledger lines"));
        }
        let verdict = verdict_from_ledger(ledger, PARTITIONS, records).unwrap();
        match verdict.unique == records {
            true => Ok(verdict),
            false => Err(format!("not every record arrived yet: {verdict}")),
        }
    })
}

/// Wait until the ledger has at least `lines` lines.
fn wait_for_lines(ledger: &Path, counter: &mut LineCounter, lines: u64, what: &str) {
    poll_until(Duration::from_secs(300), Duration::from_millis(5), || {
        let have = counter.count(ledger) as u64;
        match have >= lines {
            true => Ok(()),
            false => Err(format!("{what}: {have} of {lines} ledger lines")),
        }
    });
}

#[test]
fn nothing_is_lost_across_sigkills_and_crashes_at_every_fail_point() {
    let records = scale("CULVERT_RELIABILITY_RECORDS", 200_000);
    let kills = scale("CULVERT_RELIABILITY_KILLS", 5);
    let (dir, data) = data_dir();
    let ledger = dir.path().join("ledger");
    let started = Instant::now();
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    let settings = json!({"partitions": PARTITIONS.to_string(), "records": records.to_string(),
                          "payloadSize": "64"});
    oracle_pipeline(
        &address,
        "crashes",
        settings,
        ledger_destination(&ledger),
        |_| {},
    );
    let mut counter = LineCounter::default();
    wait_for_lines(
        &ledger,
        &mut counter,
        records / 20,
        "before the first crash",
    );
    server.kill();

    // A crash at each fail point, each after a seeded number of passes.
    let mut seed = 0x0063_7261_7368_u64;
    // The first control-plane append after start (the pipeline's restart is recorded).
    crash_at(&data, "store::append::after_write", 0, "");
    for point in ENGINE_FAIL_POINTS {
        crash_at(&data, point, 5 + xorshift(&mut seed) % 20, "");
    }
    let crashed_at = counter.count(&ledger) as u64;
    assert!(
        crashed_at < records,
        "the run finished before the last fail point"
    );

    // SIGKILLs at seeded points through the rest of the run.
    let share = (records - crashed_at) / (kills + 1);
    for round in 0..kills {
        let point = crashed_at + round * share + share / 4 + xorshift(&mut seed) % (share / 2);
        let mut server = Server::start(&data, &[]);
        wait_for_lines(&ledger, &mut counter, point, &format!("kill {round}"));
        server.kill();
    }

    let mut server = Server::start(&data, &[]);
    let verdict = wait_for_all(&ledger, records, Duration::from_secs(600));
    server.terminate();
    assert!(server.wait().success());
    let crashes = kills + 1 + 1 + ENGINE_FAIL_POINTS.len() as u64;
    println!(
        "reliability: {records} records over {PARTITIONS} partitions, {kills} SIGKILLs + {} \
         fail-point crashes + 1 kill: {verdict}, {:.1} s",
        ENGINE_FAIL_POINTS.len() + 1,
        started.elapsed().as_secs_f64()
    );
    assert!(verdict.ok(), "{verdict}");
    assert!(
        verdict.duplicated <= crashes * IN_FLIGHT_BOUND,
        "{} duplicates for {crashes} crashes: more than can be in flight",
        verdict.duplicated
    );
}

#[test]
fn a_source_that_drops_acked_data_never_has_a_gap() {
    let iterations = scale("CULVERT_RELIABILITY_SLOT_CRASHES", 10);
    // Each round moves the records of 1-8 position saves (~30,000 with the engine of
    // 2026-12-04): twice that per round, so the last crash comes before the last record.
    let records = 60_000 * (iterations + 1);
    let (dir, data) = data_dir();
    let ledger = dir.path().join("ledger");
    let slot = dir.path().join("slot");
    let started = Instant::now();
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    let settings = json!({"partitions": PARTITIONS.to_string(), "records": records.to_string(),
                          "slot": slot.to_str().unwrap()});
    oracle_pipeline(
        &address,
        "slot",
        settings,
        ledger_destination(&ledger),
        |_| {},
    );
    let mut counter = LineCounter::default();
    wait_for_lines(&ledger, &mut counter, 1_000, "before the first crash");
    server.kill();
    let mut seed = 0x0000_736c_6f74_u64;
    for round in 0..iterations {
        assert!(
            (counter.count(&ledger) as u64) < records,
            "the run finished before crash {round}: raise the records per round"
        );
        // Alternately: right after the source was told (the source crashes the process as
        // soon as its slot has moved), with every save held back 50 ms so that an engine
        // that told the source before saving would be caught inside that window; and right
        // after the position was saved, before the source is told.
        let (point, more) = match round % 2 {
            0 => (
                "oracle::source::after_ack",
                "engine::acker::after_release_before_persist=sleep(50)",
            ),
            _ => ("engine::acker::after_persist_before_source_ack", ""),
        };
        crash_at(&data, point, 1 + xorshift(&mut seed) % 8, more);
    }
    assert!(
        (counter.count(&ledger) as u64) < records,
        "the run finished early"
    );
    let mut server = Server::start(&data, &[]);
    let verdict = wait_for_all(&ledger, records, Duration::from_secs(600));
    server.terminate();
    assert!(server.wait().success());
    println!(
        "reliability (slot): {records} records, {iterations} crashes inside the ack window: \
         {verdict}, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(verdict.ok(), "{verdict}");
}

#[test]
fn sigterm_at_full_rate_drains_without_loss_or_duplicates() {
    let records = scale("CULVERT_RELIABILITY_DRAIN_RECORDS", 300_000);
    let (dir, data) = data_dir();
    let ledger = dir.path().join("ledger");
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    let settings = json!({"partitions": PARTITIONS.to_string(), "records": records.to_string()});
    let id = oracle_pipeline(
        &address,
        "drain",
        settings,
        ledger_destination(&ledger),
        |_| {},
    );
    let mut counter = LineCounter::default();
    wait_for_lines(&ledger, &mut counter, records / 3, "before SIGTERM");
    let asked = Instant::now();
    server.terminate();
    let status = server.wait();
    let drained_in = asked.elapsed();
    assert!(status.success(), "SIGTERM: {status}");

    // What the stopped server delivered: a prefix of each partition, once.
    let at_stop = verdict_from_ledger(&ledger, PARTITIONS, 0).unwrap();
    assert!(at_stop.ok(), "after the drain: {at_stop}");
    assert_eq!(at_stop.duplicated, 0, "after the drain: {at_stop}");
    assert!(at_stop.unique < records, "the run finished before SIGTERM");

    // A restart resumes exactly after the drained records (the pipeline is started again
    // if the server did not keep it running).
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    let status = call(&address, "GET", &format!("/v1/pipelines/{id}"), None)["state"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if status != "STATUS_RUNNING" {
        call(&address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    }
    let verdict = wait_for_all(&ledger, records, Duration::from_secs(600));
    server.terminate();
    assert!(server.wait().success());
    println!(
        "reliability (SIGTERM): {} of {records} records delivered at the stop, drained and \
         exited in {:.2} s; after the restart: {verdict}",
        at_stop.unique,
        drained_in.as_secs_f64()
    );
    assert!(verdict.ok(), "{verdict}");
    assert_eq!(verdict.duplicated, 0, "{verdict}");
}

/// The ids in a ledger, and how many lines repeat one.
fn ledger_ids(path: &Path) -> (HashSet<(u64, u64)>, u64) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut ids = HashSet::new();
    let mut repeats = 0;
    for line in text.lines() {
        let seen = Observation::from_ledger_line(line);
        assert!(
            seen.hash_ok,
            "a corrupt ledger line in {}: {line:?}",
            path.display()
        );
        if !ids.insert(seen.id.expect("an id")) {
            repeats += 1;
        }
    }
    (ids, repeats)
}

fn poison_goes_to_the_dlq_once(percent: f64) {
    let records = scale("CULVERT_RELIABILITY_DLQ_RECORDS", 50_000);
    let (dir, data): (tempfile::TempDir, PathBuf) = data_dir();
    let out = dir.path().join("ledger");
    let letters = dir.path().join("dlq-ledger");
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    let settings = json!({"partitions": PARTITIONS.to_string(), "records": records.to_string(),
                          "poisonPercent": percent.to_string()});
    oracle_pipeline(
        &address,
        &format!("poison-{percent}"),
        settings,
        ledger_destination(&out),
        |id| {
            call(
                &address,
                "POST",
                "/v1/processors",
                Some(
                    json!({"plugin": "error", "parent": {"type": "TYPE_PIPELINE", "id": id},
                        "config": {"settings": {"message": "poison"}},
                        "condition": "{{ eq (index .Metadata \"oracle.poison\") \"true\" }}"}),
                ),
            );
            // No window: every poison record goes to the DLQ and the pipeline keeps running.
            call(
                &address,
                "PUT",
                &format!("/v1/pipelines/{id}/dead-letter-queue"),
                Some(json!({"plugin": "builtin:oracle",
                        "settings": {"ledger": letters.to_str().unwrap()},
                        "windowSize": "0", "windowNackThreshold": 0})),
            );
        },
    );
    let expected_poison: HashSet<(u64, u64)> = (0..records)
        .map(|i| (i % PARTITIONS, i / PARTITIONS + 1))
        .filter(|(p, seq)| oracle::is_poison(*p, *seq, percent))
        .collect();
    let (mut out_lines, mut dlq) = (LineCounter::default(), LineCounter::default());
    // A batch's dead letters are written to the DLQ in one write and kept by the store in
    // one (fsynced) write; the limit allows for a slow machine.
    poll_until(Duration::from_secs(300), Duration::from_millis(100), || {
        let arrived = (out_lines.count(&out) + dlq.count(&letters)) as u64;
        match arrived >= records {
            true => Ok(()),
            false => Err(format!("{arrived} of {records} records in the two ledgers")),
        }
    });
    server.terminate();
    assert!(server.wait().success());
    let (delivered, repeated) = ledger_ids(&out);
    let (dead, dead_repeated) = ledger_ids(&letters);
    println!(
        "reliability (DLQ {percent}%): {records} records, {} delivered, {} dead letters \
         ({} expected)",
        delivered.len(),
        dead.len(),
        expected_poison.len()
    );
    assert_eq!((repeated, dead_repeated), (0, 0), "duplicates");
    assert_eq!(
        dead, expected_poison,
        "the DLQ holds exactly the poison records"
    );
    assert!(
        delivered.is_disjoint(&dead),
        "a poison record was delivered"
    );
    assert_eq!(
        delivered.len() as u64 + dead.len() as u64,
        records,
        "records missing"
    );
}

#[test]
fn one_percent_poison_goes_to_the_dlq_once_each() {
    poison_goes_to_the_dlq_once(1.0);
}

#[test]
fn twenty_percent_poison_goes_to_the_dlq_once_each() {
    poison_goes_to_the_dlq_once(20.0);
}

#[test]
fn the_oracle_checks_a_standalone_destination_across_sigkills() {
    // Conduit's own file connector (a standalone plugin, built from the Go module proxy)
    // writes the oracle's records as OpenCDC JSON lines; the verdict reads them back.
    let records = scale("CULVERT_RELIABILITY_STANDALONE_RECORDS", 60_000);
    let kills = 3;
    let (dir, data) = data_dir();
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).unwrap();
    std::fs::copy(
        crate::standalone::upstream_connector("file", "v0.10.8"),
        connectors.join("file"),
    )
    .unwrap();
    let args = ["--connectors.path", connectors.to_str().unwrap()];
    let out = dir.path().join("out.jsonl");
    let started = Instant::now();
    let mut server = Server::start(&data, &args);
    let address = server.http_address();
    let settings = json!({"partitions": PARTITIONS.to_string(), "records": records.to_string()});
    let destination =
        json!({"plugin": "standalone:file", "settings": {"path": out.to_str().unwrap()}});
    oracle_pipeline(&address, "standalone", settings, destination, |_| {});
    let mut counter = LineCounter::default();
    let mut seed = 0x0073_7461_6e64_u64;
    for round in 0..kills {
        let share = records / (kills + 1);
        let point = round * share + share / 4 + xorshift(&mut seed) % (share / 2);
        wait_for_lines(&out, &mut counter, point, &format!("kill {round}"));
        server.kill();
        server = Server::start(&data, &args);
    }
    let verdict = poll_until(Duration::from_secs(600), Duration::from_millis(500), || {
        let verdict = oracle::verdict_from_opencdc_file(&out, PARTITIONS, records).unwrap();
        match verdict.unique == records {
            true => Ok(verdict),
            false => Err(format!("not every record arrived yet: {verdict}")),
        }
    });
    server.terminate();
    assert!(server.wait().success());
    println!(
        "reliability (standalone file destination): {records} records, {kills} SIGKILLs: \
         {verdict}, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!((verdict.missing, verdict.reordered), (0, 0), "{verdict}");
    // Conduit's file destination does not cut off a line a kill tore (ours does), so each
    // kill may leave one torn line in the middle of the file; nothing else may be corrupt.
    assert!(verdict.corrupted <= kills, "{verdict}");
    assert!(verdict.duplicated <= kills * IN_FLIGHT_BOUND, "{verdict}");
}
