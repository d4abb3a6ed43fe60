//! At-least-once across crashes: a generator -> file pipeline of 1,000,000 records, the
//! server killed with SIGKILL at (seeded) random moments, six times, and restarted each
//! time; when the pipeline has finished, every record is in the file (none lost), and the
//! duplicates (records redelivered after a kill) are counted and reported.
//!
//! Each record's identity is its position: the generator numbers records 1..=N and resumes
//! from the last persisted number, so a missing number is a lost record.

use crate::harness::{data_dir, decode_base64, xorshift, Server};
use crate::http_client::call;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const RECORDS: u64 = 1_000_000;
const KILLS: usize = 6;
/// How long the whole run may take (the debug build is slow; this is a bound, not a goal).
const RUN_DEADLINE: Duration = Duration::from_secs(900);

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Whole lines in the file (a line being written at a kill may be cut short).
fn count_lines(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

#[test]
fn no_record_is_lost_when_the_server_is_killed_mid_flight() {
    let (dir, data) = data_dir();
    let out = dir.path().join("out.jsonl");
    let mut server = Server::start(&data, &[]);
    let mut address = server.http_address();
    let p = call(
        &address,
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": "crash"}})),
    );
    let id = p["id"].as_str().unwrap().to_owned();
    call(
        &address,
        "POST",
        "/v1/connectors",
        Some(
            json!({"type": "TYPE_SOURCE", "plugin": "builtin:generator", "pipelineId": id,
                    "config": {"name": "gen", "settings": {
                        "format.type": "structured", "format.options.id": "int",
                        "recordCount": RECORDS.to_string()}}}),
        ),
    );
    call(
        &address,
        "POST",
        "/v1/connectors",
        Some(
            json!({"type": "TYPE_DESTINATION", "plugin": "builtin:file", "pipelineId": id,
                    "config": {"name": "out", "settings": {"path": out.to_str().unwrap()}}}),
        ),
    );
    call(&address, "POST", &format!("/v1/pipelines/{id}/start"), None);

    // Kill points: random fractions of the expected output size, increasing.
    let line_bytes = 190; // about one record in JSON
    let expected = RECORDS * line_bytes;
    let mut seed = 0x5eed_c0ff_ee15_u64;
    let mut points: Vec<u64> = (0..KILLS)
        .map(|_| expected / 20 + xorshift(&mut seed) % (expected * 8 / 10))
        .collect();
    points.sort_unstable();
    let started = Instant::now();
    for (round, point) in points.iter().enumerate() {
        while size(&out) < *point {
            assert!(
                started.elapsed() < RUN_DEADLINE,
                "too slow before kill {round}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server.kill();
        server = Server::start(&data, &[]);
        address = server.http_address();
    }
    // After the last restart the pipeline resumes by itself and finishes.
    let deadline = Instant::now() + RUN_DEADLINE;
    while count_lines(&out) < RECORDS {
        assert!(Instant::now() < deadline, "pipeline did not finish");
        std::thread::sleep(Duration::from_millis(200));
    }
    call(&address, "POST", &format!("/v1/pipelines/{id}/stop"), None);
    server.terminate();
    assert!(server.wait().success());

    // Every record 1..=N present; count the repeats.
    let text = std::fs::read_to_string(&out).unwrap();
    let mut seen = vec![0u32; RECORDS as usize + 1];
    let mut cut = 0;
    for line in text.split_inclusive('\n') {
        let Ok(record) = serde_json::from_str::<Value>(line) else {
            // A line cut short by a kill (the write was interrupted) is not a record.
            cut += 1;
            continue;
        };
        let position = record["position"].as_str().expect("a position");
        let number: usize = decode_base64(position).parse().expect("a record number");
        seen[number] += 1;
    }
    let missing: Vec<usize> = (1..=RECORDS as usize).filter(|n| seen[*n] == 0).collect();
    let duplicates: u64 = seen.iter().map(|n| u64::from(n.saturating_sub(1))).sum();
    println!(
        "crash test: {RECORDS} records, {KILLS} SIGKILLs, {} missing, {duplicates} duplicates, \
         {cut} cut lines, {:.1} s",
        missing.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        missing.is_empty(),
        "{} records lost, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}
