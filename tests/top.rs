//! `culvert top --once`: against a running server with a generator -> file pipeline it
//! shows the pipeline with its status, records moving while it runs, and once the
//! generator is done and the pipeline stopped, totals equal to what the file destination
//! wrote; it takes a token like the other verbs, and exits 3 when there is no server.

use crate::harness::{culvert, data_dir, wait_until, Server};
use crate::http_client::call;
use serde_json::{json, Value};
use std::path::Path;

const RECORDS: u64 = 5000;

/// `culvert top --once --json` against `address` (extra arguments after).
fn top(address: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "top",
        "--once",
        "--json",
        "--interval",
        "200ms",
        "--http.address",
        address,
    ];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = culvert(&args);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The pipeline `name` in a view.
fn pipeline<'a>(view: &'a Value, name: &str) -> Option<&'a Value> {
    view["pipelines"]
        .as_array()
        .expect("a list of pipelines")
        .iter()
        .find(|p| p["name"] == name)
}

fn lines(path: &Path) -> u64 {
    std::fs::read(path)
        .unwrap_or_default()
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64
}

#[test]
fn top_shows_a_pipelines_status_rates_and_totals() {
    let (dir, data) = data_dir();
    let out = dir.path().join("out.jsonl");
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    let p = call(
        &address,
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": "topped"}})),
    );
    let id = p["id"].as_str().unwrap().to_owned();
    call(
        &address,
        "POST",
        "/v1/connectors",
        Some(
            json!({"type": "TYPE_SOURCE", "plugin": "builtin:generator", "pipelineId": id,
            "config": {"name": "gen", "settings": {"format.type": "structured",
                "format.options.id": "int", "recordCount": RECORDS.to_string(),
                "rate": "1000"}}}),
        ),
    );
    let destination = call(
        &address,
        "POST",
        "/v1/connectors",
        Some(
            json!({"type": "TYPE_DESTINATION", "plugin": "builtin:file", "pipelineId": id,
            "config": {"name": "out", "settings": {"path": out.to_str().unwrap()}}}),
        ),
    );
    let destination_id = destination["id"].as_str().unwrap().to_owned();

    // Not started: listed, stopped, nothing moved.
    let view = top(&address, &[]);
    let stopped = pipeline(&view, "topped").expect("the pipeline is listed");
    assert_eq!(stopped["status"], "userstopped", "{view}");
    assert_eq!(stopped["records_out"], 0);
    assert!(view["interval_seconds"].as_f64().unwrap() >= 0.2, "{view}");

    // Running: records per second in and out, per connector.
    call(&address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    let mut during = None;
    wait_until("top shows records moving", || {
        let view = top(&address, &[]);
        let p = pipeline(&view, "topped").cloned();
        if p.as_ref().is_some_and(|p| {
            p["status"] == "running" && p["records_out_per_second"].as_f64().unwrap() > 0.0
        }) {
            during = p;
        }
        during.is_some()
    });
    let during = during.unwrap();
    assert!(during["records_in_per_second"].as_f64().unwrap() > 0.0);
    let connectors = during["connectors"].as_array().unwrap();
    assert_eq!(connectors.len(), 2, "{during}");
    assert_eq!(connectors[0]["type"], "source");
    assert_eq!(connectors[0]["plugin"], "builtin:generator");
    assert_eq!(connectors[1]["type"], "destination");
    assert_eq!(connectors[1]["id"], destination_id.as_str());
    assert!(connectors[1]["records_per_second"].as_f64().unwrap() > 0.0);

    // Done and stopped: the totals are what the destination wrote; nothing moves.
    wait_until("every record written", || lines(&out) >= RECORDS);
    call(&address, "POST", &format!("/v1/pipelines/{id}/stop"), None);
    let mut after = None;
    wait_until("top shows the pipeline stopped", || {
        let view = top(&address, &[]);
        after = pipeline(&view, "topped")
            .filter(|p| p["status"] == "userstopped")
            .cloned();
        after.is_some()
    });
    let after = after.unwrap();
    assert_eq!(lines(&out), RECORDS);
    assert_eq!(after["records_in"], RECORDS, "{after}");
    assert_eq!(after["records_out"], RECORDS, "{after}");
    assert_eq!(after["connectors"][1]["records"], RECORDS);
    assert!(after["connectors"][1]["bytes"].as_u64().unwrap() > RECORDS);
    assert_eq!(after["records_out_per_second"], 0.0);
    assert_eq!(after["acks_pending"], 0);
    // Positions were saved as the records were acked, moments ago.
    let age = after["position_age_seconds"]
        .as_f64()
        .expect("a saved position");
    assert!((0.0..600.0).contains(&age), "{after}");
    assert_eq!(after["dlq_records"], 0);

    // The table says the same.
    let (code, table, stderr) = culvert(&[
        "top",
        "--once",
        "--interval",
        "100ms",
        "--http.address",
        &address,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0][..3], ["NAME", "KIND", "STATUS"], "{table}");
    let total = RECORDS.to_string();
    assert!(
        rows.iter().any(|r| r[..3] == ["topped", "pipeline", "userstopped"]
            && r.contains(&total.as_str())),
        "{table}"
    );
    assert!(
        rows.iter()
            .any(|r| r[..2] == [destination_id.as_str(), "destination"]
                && r.contains(&total.as_str())),
        "{table}"
    );
    drop(server);
}

#[test]
fn top_sends_the_token_and_says_when_it_cannot_reach_the_server() {
    let (dir, data) = data_dir();
    let tokens = dir.path().join("tokens");
    let (code, stdout, stderr) = culvert(&[
        "tokens",
        "create",
        "top",
        "--tokens-file",
        tokens.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let token = stdout.trim().to_owned();
    let mut server = Server::start(&data, &["--api.auth.tokens-file", tokens.to_str().unwrap()]);
    let address = server.http_address();
    let once = ["top", "--once", "--interval", "50ms", "--http.address"];

    let (code, _, stderr) = culvert(&[&once[..], &[address.as_str()]].concat());
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("--token"), "a hint: {stderr}");
    let view = top(&address, &["--token", &token]);
    assert_eq!(view["pipelines"], json!([]));
    drop(server);

    let (code, _, stderr) = culvert(&[&once[..], &[address.as_str()]].concat());
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("cannot reach the server"), "{stderr}");
    let (code, _, stderr) = culvert(&["top", "--json", "--http.address", &address]);
    assert_eq!(code, 2, "--json needs --once: {stderr}");
}
