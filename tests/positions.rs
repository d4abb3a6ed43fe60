//! Source positions a user can move (`culvert.api.v1.SourcePositionService`, its HTTP routes
//! and `culvert connectors position|seek|reset`), on a real server with a file -> file
//! pipeline: a seek re-delivers from that point, a reset from the start, a seek to a
//! checkpoint goes back to a saved position; every move is refused while the pipeline runs,
//! for a destination, and on a stale expected version, and each one is in the audit with
//! its actor and the old and new position.

use crate::harness::{culvert, data_dir, wait_until, written_records, Server};
use crate::http_client::{call, call_any, file_to_file_pipeline, number};
use culvert_domain::Data;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

const LINES: usize = 100;

/// Line `n` (from 1) of the input; every line is 11 bytes and a newline.
fn line(n: usize) -> String {
    format!("line-{n:06}")
}

/// How many times each input line reached the destination.
fn delivered(out: &Path) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for record in written_records(out) {
        let Some(Data::Raw(bytes)) = record.payload.after else {
            panic!("a raw payload: {record:?}");
        };
        *seen.entry(String::from_utf8(bytes).unwrap()).or_default() += 1;
    }
    seen
}

fn lines_in(out: &Path) -> usize {
    std::fs::read_to_string(out)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Start the pipeline, wait until the destination holds `total` lines, stop it and wait
/// until it is stopped.
fn run_until(address: &str, pipeline: &str, out: &Path, total: usize) {
    call(
        address,
        "POST",
        &format!("/v1/pipelines/{pipeline}/start"),
        None,
    );
    wait_until(&format!("{total} lines written"), || lines_in(out) >= total);
    call(
        address,
        "POST",
        &format!("/v1/pipelines/{pipeline}/stop"),
        None,
    );
    wait_until("the pipeline stopped", || {
        call(address, "GET", &format!("/v1/pipelines/{pipeline}"), None)["state"]["status"]
            == "STATUS_STOPPED"
    });
    assert_eq!(lines_in(out), total, "nothing more than expected");
}

#[test]
fn positions_can_be_read_moved_back_and_reset_while_stopped_and_every_move_is_audited() {
    let (dir, data) = data_dir();
    let input = dir.path().join("in.txt");
    let out = dir.path().join("out.jsonl");
    let text: String = (1..=LINES).map(|n| format!("{}\n", line(n))).collect();
    std::fs::write(&input, text).unwrap();
    let mut server = Server::start(&data, &[]);
    let grpc = server.grpc_address();
    let address = server.http_address();
    let (pipeline, source, destination) = file_to_file_pipeline(&address, "moved", &input, &out);
    let route = format!("/v1/connectors/{source}/position");

    // Before any run: no position, no checkpoints.
    let fresh = call(&address, "GET", &route, None);
    assert_eq!(fresh["hasPosition"], false, "{fresh}");
    assert_eq!(fresh["checkpoints"], json!([]), "{fresh}");

    // First run: every line once; the position is past the last line (the file source's
    // position is `<byte offset>:<line>`), and the first save was kept as a checkpoint.
    run_until(&address, &pipeline, &out, LINES);
    let after_first = call(&address, "GET", &route, None);
    assert_eq!(after_first["hasPosition"], true, "{after_first}");
    assert_eq!(
        after_first["positionText"],
        format!("{}:{LINES}", LINES * 12)
    );
    // api.v1 shows it too, as Conduit does: the source state's position.
    let connector = call(&address, "GET", &format!("/v1/connectors/{source}"), None);
    assert_eq!(
        connector["sourceState"]["position"],
        base64(format!("{}:{LINES}", LINES * 12).as_bytes()),
        "{connector}"
    );
    let checkpoints = after_first["checkpoints"].as_array().unwrap();
    assert!(!checkpoints.is_empty(), "{after_first}");

    // Refused: a destination has no position; a running pipeline's source cannot move.
    let (status, reply) = call_any(
        &address,
        "PUT",
        &format!("/v1/connectors/{destination}/position"),
        Some(json!({"reset": true})),
    );
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("destination"),
        "{reply}"
    );
    call(
        &address,
        "POST",
        &format!("/v1/pipelines/{pipeline}/start"),
        None,
    );
    let (status, reply) = call_any(&address, "PUT", &route, Some(json!({"reset": true})));
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("running"),
        "{reply}"
    );
    call(
        &address,
        "POST",
        &format!("/v1/pipelines/{pipeline}/stop"),
        None,
    );
    wait_until("the pipeline stopped", || {
        call(&address, "GET", &format!("/v1/pipelines/{pipeline}"), None)["state"]["status"]
            == "STATUS_STOPPED"
    });
    let version = number(&call(&address, "GET", &route, None)["version"]);

    // A stale expected version changes nothing.
    let (status, reply) = call_any(
        &address,
        "PUT",
        &route,
        Some(json!({"position": base64(b"720:60"), "expectedVersion": version + 7})),
    );
    assert_eq!(status, 409, "{reply}");
    assert_eq!(
        call(&address, "GET", &route, None)["positionText"],
        format!("{}:{LINES}", LINES * 12)
    );

    // Seek back to just after line 60 (over HTTP): the next run re-delivers 61..=100.
    let moved = call(
        &address,
        "PUT",
        &route,
        Some(json!({"position": base64(b"720:60"), "expectedVersion": version})),
    );
    assert!(number(&moved["seq"]) > 0, "{moved}");
    assert_eq!(moved["position"]["positionText"], "720:60", "{moved}");
    assert_eq!(
        number(&moved["position"]["version"]),
        version + 1,
        "{moved}"
    );
    run_until(&address, &pipeline, &out, LINES + 40);
    let seen = delivered(&out);
    for n in 1..=LINES {
        let expected = if n > 60 { 2 } else { 1 };
        assert_eq!(seen.get(&line(n)), Some(&expected), "line {n}");
    }

    // Reset (the CLI, over gRPC): the next run reads everything again.
    let (code, stdout, stderr) =
        culvert(&["connectors", "reset", &source, "--grpc.address", &grpc]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Moved (event"), "{stdout}");
    assert!(stdout.contains("Position:    none"), "{stdout}");
    run_until(&address, &pipeline, &out, 2 * LINES + 40);
    let seen = delivered(&out);
    assert!(
        (1..=LINES).all(|n| seen[&line(n)] == if n > 60 { 3 } else { 2 }),
        "{seen:?}"
    );

    // Seek to a checkpoint (the CLI): the newest one saved at or before now. First move
    // somewhere no checkpoint is (by text, the CLI), so that going back changes something.
    let (code, stdout, stderr) = culvert(&[
        "connectors",
        "position",
        &source,
        "--json",
        "--grpc.address",
        &grpc,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let shown: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let kept = shown["checkpoints"].as_array().unwrap();
    let newest = kept.last().unwrap().clone();
    let elsewhere = ["12:1", "24:2"]
        .into_iter()
        .find(|p| kept.iter().all(|c| c["positionText"] != *p))
        .unwrap();
    let (code, stdout, stderr) = culvert(&[
        "connectors",
        "seek",
        &source,
        "--position",
        elsewhere,
        "--grpc.address",
        &grpc,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("Position:    {elsewhere}")),
        "{stdout}"
    );
    let now = chrono::Utc::now().to_rfc3339();
    let (code, stdout, stderr) = culvert(&[
        "connectors",
        "seek",
        &source,
        "--checkpoint",
        &now,
        "--grpc.address",
        &grpc,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let position = call(&address, "GET", &route, None);
    assert_eq!(
        position["positionText"], newest["positionText"],
        "{stdout}\n{position}"
    );
    // Before every checkpoint: a clear refusal naming the field.
    let (code, _, stderr) = culvert(&[
        "connectors",
        "seek",
        &source,
        "--checkpoint",
        "2001-01-01T00:00:00Z",
        "--grpc.address",
        &grpc,
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("checkpoint_at"), "{stderr}");

    // The audit: four moves, each with its actor, how, and old -> new.
    let events = call(
        &address,
        "GET",
        &format!("/v1/events?entity_id={source}&type=SourcePositionSet"),
        None,
    );
    let events = events["events"].as_array().unwrap();
    let hows: Vec<&str> = events
        .iter()
        .map(|e| e["data"]["how"].as_str().unwrap())
        .collect();
    assert_eq!(hows.len(), 4, "{events:?}");
    assert_eq!(hows[..3], ["set", "reset", "set"]);
    assert!(hows[3].starts_with("checkpoint:"), "{hows:?}");
    assert_eq!(events[3]["data"]["old"], base64(elsewhere.as_bytes()));
    assert_eq!(events[0]["data"]["old"], base64(b"1200:100"));
    assert_eq!(events[0]["data"]["new"], base64(b"720:60"));
    assert_eq!(events[1]["data"]["new"], serde_json::Value::Null);
    assert!(events.iter().all(|e| e["actor"] == "api"), "{events:?}");
    drop(server);
}
