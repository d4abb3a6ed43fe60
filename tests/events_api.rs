//! The EventLogService over gRPC and HTTP on a log built by real API calls: filtered and
//! paginated lists, an entity at a sequence number, a diff between two points, a watch
//! from the start while writes happen (every event once, in order), bad input, and a
//! server that shuts down cleanly with a watch open.

use crate::harness::{data_dir, Server, DEADLINE};
use crate::http_client::{call, request};
use culvert_api::pb::culvert::api::v1 as ev;
use ev::event_log_service_client::EventLogServiceClient;
use serde_json::{json, Value};
use tonic::transport::Channel;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_over_the_api() {
    let (_dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let grpc = server.grpc_address();
    let http = server.http_address();
    let p = call(
        &http,
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": "v0"}})),
    );
    let id = p["id"].as_str().unwrap().to_owned();
    for n in 1..=5 {
        call(
            &http,
            "PUT",
            &format!("/v1/pipelines/{id}"),
            Some(json!({"config": {"name": format!("v{n}")}})),
        );
    }

    // Filtered list over HTTP.
    let updates = call(
        &http,
        "GET",
        &format!("/v1/events?entity_id={id}&type=PipelineUpdated"),
        None,
    );
    let events = updates["events"].as_array().unwrap();
    assert_eq!(events.len(), 5);
    assert_eq!(events[1]["data"]["name"], "v2");
    assert_eq!(events[1]["actor"], "api");
    assert!(events[1]["recordedAt"].as_str().unwrap().ends_with('Z'));
    let second = events[1]["seq"].as_str().unwrap().parse::<u64>().unwrap();
    let fourth = events[3]["seq"].as_str().unwrap().parse::<u64>().unwrap();

    // Pages of two cover the whole log once.
    let mut seen = vec![];
    let mut token = String::new();
    loop {
        let page = call(
            &http,
            "GET",
            &format!("/v1/events?page_size=2&page_token={token}"),
            None,
        );
        for e in page["events"].as_array().unwrap() {
            seen.push(e["seq"].as_str().unwrap().parse::<u64>().unwrap());
        }
        token = page["nextPageToken"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, (1..=6).collect::<Vec<_>>());

    // At and diff.
    let at = call(
        &http,
        "GET",
        &format!("/v1/events/at/{id}?seq={second}"),
        None,
    );
    assert_eq!(at["pipeline"]["config"]["name"], "v2");
    assert_eq!(at["asOfSeq"], second.to_string());
    let diff = call(
        &http,
        "GET",
        &format!("/v1/events/diff/{id}?from_seq={second}&to_seq={fourth}"),
        None,
    );
    assert_eq!(
        diff["changes"],
        json!([{"field": "name", "before": "\"v2\"", "after": "\"v4\""}])
    );

    // Bad input: past the end, before the first event, an unknown entity.
    let past = request(&http, "GET", "/v1/events?from_seq=999", &[], None);
    assert_eq!(
        (past.status, past.json()["code"].as_i64()),
        (400, Some(11)),
        "{}",
        past.text()
    );
    let early = request(
        &http,
        "GET",
        &format!("/v1/events/at/{id}?time=2000-01-01T00:00:00Z"),
        &[],
        None,
    );
    assert_eq!(early.status, 400, "{}", early.text());
    assert!(early.text().contains("before the first event"));
    let unknown = request(&http, "GET", "/v1/events/at/nope", &[], None);
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    let bad = request(&http, "GET", "/v1/events?page_token=x", &[], None);
    assert_eq!(bad.status, 400);

    // A watch from the start while writes happen: every event once, in order.
    let channel = Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = EventLogServiceClient::new(channel);
    let mut stream = client
        .watch_events(ev::WatchEventsRequest {
            from_seq: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let writer = {
        let http = http.clone();
        let id = id.clone();
        std::thread::spawn(move || {
            for n in 6..=25 {
                call(
                    &http,
                    "PUT",
                    &format!("/v1/pipelines/{id}"),
                    Some(json!({"config": {"name": format!("v{n}")}})),
                );
            }
        })
    };
    let mut received = vec![];
    while received.len() < 26 {
        let next = tokio::time::timeout(DEADLINE, stream.message())
            .await
            .expect("an event in time")
            .unwrap()
            .expect("the stream stays open");
        received.push(next.event.unwrap().seq);
    }
    writer.join().unwrap();
    assert_eq!(received, (1..=26).collect::<Vec<_>>());

    // `culvert events tail -f`: the last three, then new ones as they are recorded.
    let mut tail = std::process::Command::new(env!("CARGO_BIN_EXE_culvert"))
        .args([
            "events",
            "tail",
            "-f",
            "-n",
            "3",
            "--json",
            "--grpc.address",
            &grpc,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_seq = |lines: &std::sync::mpsc::Receiver<String>| -> u64 {
        let line = lines
            .recv_timeout(DEADLINE)
            .expect("a line from tail in time");
        serde_json::from_str::<Value>(&line).unwrap()["seq"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        [next_seq(&lines), next_seq(&lines), next_seq(&lines)],
        [24, 25, 26]
    );
    for n in 26..=27 {
        call(
            &http,
            "PUT",
            &format!("/v1/pipelines/{id}"),
            Some(json!({"config": {"name": format!("v{n}")}})),
        );
    }
    assert_eq!([next_seq(&lines), next_seq(&lines)], [27, 28]);
    tail.kill().unwrap();
    tail.wait().unwrap();

    // Shutting down with the watch open ends it, and the server exits cleanly.
    server.terminate();
    assert!(server.wait().success());
    // The first watch saw the two events tail printed too, then ends.
    let mut rest = vec![];
    while let Ok(Some(message)) = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .expect("the stream ends")
    {
        rest.push(message.event.unwrap().seq);
    }
    assert_eq!(rest, [27, 28]);
}
