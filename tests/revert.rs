//! `culvert revert` and EventLogService.Revert on a real server: a connector's and a
//! pipeline's configuration come back exactly as they were at a point of the log, by new
//! events (history stays), shown first with --dry-run, recorded with the actor and a reason
//! in the audit; refused while the pipeline runs and for a deleted entity, changing nothing.

use crate::harness::{culvert, data_dir, wait_until, Server};
use crate::http_client::{call, call_any, create_connector, number};
use serde_json::json;

fn head(address: &str) -> u64 {
    number(&call(address, "GET", "/v1/events?page_size=1", None)["lastSeq"])
}

#[test]
fn revert_restores_old_configuration_with_new_events_and_refuses_what_it_cannot() {
    let (dir, data) = data_dir();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "one\ntwo\n").unwrap();
    let mut server = Server::start(&data, &[]);
    let grpc = server.grpc_address();
    let address = server.http_address();
    let p = call(
        &address,
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": "reverted", "description": "v1"}})),
    );
    let pipeline = p["id"].as_str().unwrap().to_owned();
    let settings = json!({"path": input.to_str().unwrap()});
    let source = create_connector(
        &address,
        &pipeline,
        "TYPE_SOURCE",
        "builtin:file",
        "in",
        settings,
    );
    create_connector(
        &address,
        &pipeline,
        "TYPE_DESTINATION",
        "builtin:log",
        "out",
        json!({}),
    );
    let good = head(&address);
    let original = call(&address, "GET", &format!("/v1/connectors/{source}"), None);

    // Later edits: a wrong path and name on the source; a new description and DLQ.
    call(
        &address,
        "PUT",
        &format!("/v1/connectors/{source}"),
        Some(json!({"config": {"name": "broken", "settings": {"path": "/nowhere"}}})),
    );
    call(
        &address,
        "PUT",
        &format!("/v1/pipelines/{pipeline}"),
        Some(json!({"config": {"name": "renamed", "description": "v2"}})),
    );
    call(
        &address,
        "PUT",
        &format!("/v1/pipelines/{pipeline}/dead-letter-queue"),
        Some(
            json!({"plugin": "builtin:log", "settings": {"level": "warn"},
            "windowSize": 5, "windowNackThreshold": 2}),
        ),
    );
    let before_revert = head(&address);

    // Dry run: the changes, nothing recorded.
    let (code, stdout, stderr) = culvert(&[
        "revert",
        &source,
        "--to",
        &good.to_string(),
        "--dry-run",
        "--grpc.address",
        &grpc,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("Would change"), "{stdout}");
    assert!(
        stdout.contains("settings.path: \"/nowhere\" -> "),
        "{stdout}"
    );
    assert!(stdout.contains("name: \"broken\" -> \"in\""), "{stdout}");
    assert_eq!(head(&address), before_revert, "a dry run records nothing");

    // The revert: the connector is exactly as it was; history keeps every step.
    let (code, stdout, stderr) = culvert(&[
        "revert",
        &source,
        "--to",
        &good.to_string(),
        "--grpc.address",
        &grpc,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("Changed"), "{stdout}");
    let restored = call(&address, "GET", &format!("/v1/connectors/{source}"), None);
    assert_eq!(restored["config"], original["config"]);
    assert_eq!(restored["plugin"], original["plugin"]);
    assert!(number(&restored["version"]) > number(&original["version"]));
    let events = call(
        &address,
        "GET",
        &format!("/v1/events?entity_id={source}&type=ConnectorUpdated"),
        None,
    );
    let updates = events["events"].as_array().unwrap();
    assert_eq!(updates.len(), 2, "the bad edit and the revert: {events}");
    assert_eq!(updates[1]["actor"], "api");
    assert_eq!(updates[1]["reason"], format!("revert to seq {good}"));
    // The audit tool shows it too.
    let (code, audit, stderr) = culvert(&[
        "audit",
        &source,
        "--db.rocksdb.path",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(audit.contains(&format!("revert to seq {good}")), "{audit}");
    // Again: nothing left to change.
    let (code, stdout, _) = culvert(&[
        "revert",
        &source,
        "--to",
        &good.to_string(),
        "--grpc.address",
        &grpc,
    ]);
    assert_eq!(code, 0);
    assert!(stdout.contains("nothing to do"), "{stdout}");

    // The pipeline (over HTTP): name, description and DLQ back in one atomic batch.
    let reverted = call(
        &address,
        "POST",
        &format!("/v1/events/revert/{pipeline}"),
        Some(json!({"seq": good.to_string()})),
    );
    let last = number(&reverted["lastSeq"]);
    assert!(last > 0, "{reverted}");
    let fields: Vec<&str> = reverted["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"name") && fields.contains(&"dlq.window_size"),
        "{fields:?}"
    );
    let now = call(&address, "GET", &format!("/v1/pipelines/{pipeline}"), None);
    assert_eq!(
        now["config"],
        json!({"name": "reverted", "description": "v1"})
    );
    let dlq = call(
        &address,
        "GET",
        &format!("/v1/pipelines/{pipeline}/dead-letter-queue"),
        None,
    );
    assert_eq!(
        number(&dlq["windowSize"]),
        1,
        "Conduit's default again: {dlq}"
    );
    let batch = call(
        &address,
        "GET",
        &format!(
            "/v1/events?entity_id={pipeline}&from_seq={}",
            before_revert + 1
        ),
        None,
    );
    let batch = batch["events"].as_array().unwrap();
    assert_eq!(batch.len(), 2, "{batch:?}");
    assert_eq!(
        batch[0]["correlationId"], batch[1]["correlationId"],
        "one operation"
    );

    // Refused while running, and nothing changes.
    call(
        &address,
        "POST",
        &format!("/v1/pipelines/{pipeline}/start"),
        None,
    );
    // Running for the engine too: its start report is the last event it writes (the API
    // shows "starting" as running already).
    wait_until("running", || {
        let events = call(
            &address,
            "GET",
            &format!("/v1/events?entity_id={pipeline}"),
            None,
        );
        events["events"].as_array().unwrap().last().unwrap()["type"] == "PipelineStarted"
    });
    let head_running = head(&address);
    let (status, reply) = call_any(
        &address,
        "POST",
        &format!("/v1/events/revert/{source}"),
        Some(json!({"seq": before_revert.to_string()})),
    );
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("running"),
        "{reply}"
    );
    assert_eq!(head(&address), head_running);
    // A point before the entity existed, or no point at all: clear errors.
    let (status, reply) = call_any(
        &address,
        "POST",
        &format!("/v1/events/revert/{source}"),
        Some(json!({"seq": "1"})),
    );
    assert_eq!(status, 404, "{reply}");
    let (status, reply) = call_any(
        &address,
        "POST",
        &format!("/v1/events/revert/{source}"),
        Some(json!({})),
    );
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("seq"),
        "{reply}"
    );
    drop(server);
}
