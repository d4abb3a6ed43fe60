//! The data oracle through a running server (issue 24): a `builtin:oracle` source (4
//! partitions, 200,000 records) feeding a `builtin:oracle` destination (its ledger, fsynced
//! per batch) and a `builtin:file` destination (OpenCDC JSON), created over the HTTP API.
//! Once the ledger holds every record the pipeline is stopped and both outputs get a
//! verdict — in-process and through `culvert oracle verdict` — which must find nothing
//! missing, duplicated, reordered or corrupted.
//!
//! What it does not prove: anything across a crash (the reliability kill tests use this
//! connector for that).

use crate::harness::{culvert, data_dir, Server};
use crate::http_client::{call, create_connector};
use culvert_connectors::oracle::{verdict_from_ledger, verdict_from_opencdc_file};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const PARTITIONS: u64 = 4;
const RECORDS: u64 = 200_000;
/// How long the pipeline may take to deliver everything (a bound for the debug build on a
/// loaded machine, not a goal).
const RUN_DEADLINE: Duration = Duration::from_secs(600);
/// Fail sooner when nothing new has arrived for this long.
const STALL: Duration = Duration::from_secs(60);

/// Whole lines in the file so far (a line being written is not counted).
fn lines(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|bytes| bytes.iter().filter(|b| **b == b'\n').count() as u64)
        .unwrap_or(0)
}

#[test]
fn oracle_source_to_oracle_destination_delivers_everything_once_in_order() {
    let (dir, data) = data_dir();
    let ledger = dir.path().join("ledger");
    let out = dir.path().join("out.jsonl");
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    let created = call(
        &address,
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": "oracle"}})),
    );
    let id = created["id"].as_str().unwrap().to_owned();
    create_connector(
        &address,
        &id,
        "TYPE_SOURCE",
        "builtin:oracle",
        "src",
        json!({"partitions": PARTITIONS.to_string(), "records": RECORDS.to_string(),
               "payloadSize": "64", "poisonPercent": "1"}),
    );
    create_connector(
        &address,
        &id,
        "TYPE_DESTINATION",
        "builtin:oracle",
        "ledger",
        json!({"ledger": ledger.to_str().unwrap()}),
    );
    create_connector(
        &address,
        &id,
        "TYPE_DESTINATION",
        "builtin:file",
        "json",
        json!({"path": out.to_str().unwrap()}),
    );
    let started = Instant::now();
    call(&address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    let mut last = (0, Instant::now());
    loop {
        let written = lines(&ledger).min(lines(&out));
        if written >= RECORDS {
            break;
        }
        if written > last.0 {
            last = (written, Instant::now());
        }
        assert!(
            started.elapsed() < RUN_DEADLINE && last.1.elapsed() < STALL,
            "only {written} of {RECORDS} records arrived in {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let elapsed = started.elapsed();
    call(&address, "POST", &format!("/v1/pipelines/{id}/stop"), None);
    server.terminate();
    assert!(server.wait().success(), "{:#?}", server.seen);

    let from_ledger = verdict_from_ledger(&ledger, PARTITIONS, RECORDS).unwrap();
    let from_json = verdict_from_opencdc_file(&out, PARTITIONS, RECORDS).unwrap();
    println!(
        "oracle -> oracle + file: {RECORDS} records over {PARTITIONS} partitions in {:.1} s \
         ({:.0} records/s); ledger: {from_ledger}; OpenCDC file: {from_json}",
        elapsed.as_secs_f64(),
        RECORDS as f64 / elapsed.as_secs_f64()
    );
    for (what, v) in [("ledger", &from_ledger), ("OpenCDC file", &from_json)] {
        assert_eq!(v.received, RECORDS, "{what}: {v}");
        assert_eq!(v.unique, RECORDS, "{what}: {v}");
        assert_eq!(
            (v.missing, v.duplicated, v.reordered, v.corrupted),
            (0, 0, 0, 0),
            "{what}: {v}"
        );
    }

    // The CLI verb agrees, in both forms, and fails a verdict that expects more.
    let (partitions, records) = (PARTITIONS.to_string(), RECORDS.to_string());
    let ledger_arg = ledger.to_str().unwrap();
    let (code, stdout, stderr) = culvert(&[
        "oracle",
        "verdict",
        "--ledger",
        ledger_arg,
        "--partitions",
        &partitions,
        "--records",
        &records,
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let answer: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(answer["unique"], RECORDS);
    assert_eq!(answer["ok"], true);
    let (code, stdout, stderr) = culvert(&[
        "oracle",
        "verdict",
        "--opencdc",
        out.to_str().unwrap(),
        "--partitions",
        &partitions,
        "--records",
        &records,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("verdict     ok"), "{stdout}");
    let more = (RECORDS + 4).to_string();
    let (code, stdout, _) = culvert(&[
        "oracle",
        "verdict",
        "--ledger",
        ledger_arg,
        "--partitions",
        &partitions,
        "--records",
        &more,
    ]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("missing     4"), "{stdout}");
    let (code, _, stderr) = culvert(&[
        "oracle",
        "verdict",
        "--ledger",
        "/nonexistent/ledger",
        "--partitions",
        "1",
        "--records",
        "1",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/nonexistent/ledger"), "{stderr}");
}
