//! Optimistic concurrency over the API: every entity answer carries its version (the
//! `version` field; an `ETag` over HTTP), updates and deletes may expect one
//! (`expected_version`, or `If-Match`) and then fail with ABORTED / 409, or 412 for
//! `If-Match`, changing nothing; without one they behave as Conduit's. Under 64 concurrent
//! writers no accepted update is lost: each pipeline's versions are contiguous and its final
//! state is the last accepted write.

use crate::harness::{data_dir, grpc_clients, Server};
use crate::http_client::{call, number, request};
use culvert_api::pb::api::v1 as pb;
use serde_json::json;
use std::collections::BTreeMap;

fn header<'a>(reply: &'a crate::http_client::Reply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn etags_and_if_match_make_http_changes_conditional() {
    let (_dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    let created = request(
        &address,
        "POST",
        "/v1/pipelines",
        &[],
        Some(&br#"{"config": {"name": "tagged"}}"#[..]),
    );
    assert_eq!(created.status, 200, "{}", created.text());
    assert_eq!(header(&created, "etag"), Some("\"1\""));
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/pipelines/{id}");
    let got = request(&address, "GET", &path, &[], None);
    assert_eq!(header(&got, "etag"), Some("\"1\""));
    assert_eq!(number(&got.json()["version"]), 1);

    // A change under the version read: applied, with the next version as its ETag.
    let body: &[u8] = br#"{"config": {"name": "tagged", "description": "first"}}"#;
    let first = request(&address, "PUT", &path, &[("If-Match", "\"1\"")], Some(body));
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(header(&first, "etag"), Some("\"2\""));
    // The same version again: someone changed it since; 412 and nothing changes.
    let body: &[u8] = br#"{"config": {"name": "tagged", "description": "lost"}}"#;
    let stale = request(&address, "PUT", &path, &[("If-Match", "\"1\"")], Some(body));
    assert_eq!(stale.status, 412, "{}", stale.text());
    assert_eq!(stale.json()["code"], 10, "ABORTED: {}", stale.text());
    assert_eq!(
        call(&address, "GET", &path, None)["config"]["description"],
        "first"
    );
    // The body's expected_version answers as grpc-gateway maps ABORTED: 409.
    let stale = request(
        &address,
        "PUT",
        &path,
        &[],
        Some(&br#"{"config": {"name": "tagged"}, "expectedVersion": "1"}"#[..]),
    );
    assert_eq!(stale.status, 409, "{}", stale.text());
    // A malformed If-Match is the client's error, named; `*` matches anything.
    let bad = request(
        &address,
        "DELETE",
        &path,
        &[("If-Match", "yesterday")],
        None,
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("If-Match"), "{}", bad.text());
    let body: &[u8] = br#"{"config": {"name": "tagged", "description": "any"}}"#;
    let any = request(&address, "PUT", &path, &[("If-Match", "*")], Some(body));
    assert_eq!(any.status, 200, "{}", any.text());
    // Deletes too: a stale version keeps the pipeline, the current one deletes it.
    let stale = request(&address, "DELETE", &path, &[("If-Match", "\"2\"")], None);
    assert_eq!(stale.status, 412, "{}", stale.text());
    let gone = request(&address, "DELETE", &path, &[("If-Match", "W/\"3\"")], None);
    assert_eq!(gone.status, 200, "{}", gone.text());
    assert_eq!(request(&address, "GET", &path, &[], None).status, 404);

    // Connectors and processors carry theirs the same way.
    let p = call(
        &address,
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": "with-children"}})),
    );
    let connector = request(
        &address,
        "POST",
        "/v1/connectors",
        &[],
        Some(
            json!({"type": "TYPE_SOURCE", "plugin": "builtin:file", "pipelineId": p["id"],
                "config": {"name": "in", "settings": {"path": "in.txt"}}})
            .to_string()
            .as_bytes(),
        ),
    );
    assert_eq!(connector.status, 200, "{}", connector.text());
    let etag = header(&connector, "etag").unwrap().to_owned();
    let connector_path = format!(
        "/v1/connectors/{}",
        connector.json()["id"].as_str().unwrap()
    );
    let body = json!({"config": {"name": "in2", "settings": {"path": "in.txt"}}}).to_string();
    let updated = request(
        &address,
        "PUT",
        &connector_path,
        &[("If-Match", etag.as_str())],
        Some(body.as_bytes()),
    );
    assert_eq!(updated.status, 200, "{}", updated.text());
    let again = request(
        &address,
        "PUT",
        &connector_path,
        &[("If-Match", etag.as_str())],
        Some(body.as_bytes()),
    );
    assert_eq!(again.status, 412, "{}", again.text());
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_updates_expecting_the_same_version_exactly_one_wins() {
    let (_dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let c = grpc_clients(&server.grpc_address()).await;
    let created = c
        .pipelines
        .clone()
        .create_pipeline(pb::CreatePipelineRequest {
            config: Some(pb::pipeline::Config {
                name: "raced".into(),
                description: String::new(),
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .pipeline
        .unwrap();
    for round in 0..20 {
        let version = c
            .pipelines
            .clone()
            .get_pipeline(pb::GetPipelineRequest {
                id: created.id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .pipeline
            .unwrap()
            .version;
        let update = |who: &str| {
            let mut client = c.pipelines.clone();
            let request = pb::UpdatePipelineRequest {
                id: created.id.clone(),
                config: Some(pb::pipeline::Config {
                    name: "raced".into(),
                    description: format!("{who}-{round}"),
                }),
                expected_version: version,
            };
            async move { client.update_pipeline(request).await }
        };
        let (a, b) = tokio::join!(update("a"), update("b"));
        let wins = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {a:?} {b:?}");
        let loser = if a.is_ok() { &b } else { &a };
        assert_eq!(
            loser.as_ref().unwrap_err().code(),
            tonic::Code::Aborted,
            "{loser:?}"
        );
        let winner = if a.is_ok() { a } else { b };
        let winner = winner.unwrap().into_inner().pipeline.unwrap();
        assert_eq!(winner.version, version + 1);
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_writers_lose_no_update() {
    const PIPELINES: usize = 16;
    const WRITERS: usize = 64;
    const UPDATES: usize = 1000;
    let (_dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let grpc = server.grpc_address();
    let address = server.http_address();
    let c = grpc_clients(&grpc).await;
    let mut ids = Vec::new();
    for n in 0..PIPELINES {
        let p = c
            .pipelines
            .clone()
            .create_pipeline(pb::CreatePipelineRequest {
                config: Some(pb::pipeline::Config {
                    name: format!("p{n}"),
                    description: String::new(),
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .pipeline
            .unwrap();
        ids.push(p.id);
    }
    // Each writer makes UPDATES accepted updates to its pipeline (writer % PIPELINES), each
    // a read of the version then an update expecting it, again after every ABORTED.
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let mut client = c.pipelines.clone();
        let id = ids[writer % PIPELINES].clone();
        let name = format!("p{}", writer % PIPELINES);
        writers.spawn(async move {
            let mut aborted = 0u64;
            for update in 0..UPDATES {
                loop {
                    let version = client
                        .get_pipeline(pb::GetPipelineRequest { id: id.clone() })
                        .await
                        .unwrap()
                        .into_inner()
                        .pipeline
                        .unwrap()
                        .version;
                    let request = pb::UpdatePipelineRequest {
                        id: id.clone(),
                        config: Some(pb::pipeline::Config {
                            name: name.clone(),
                            description: format!("w{writer}-u{update}"),
                        }),
                        expected_version: version,
                    };
                    match client.update_pipeline(request).await {
                        Ok(_) => break,
                        Err(status) if status.code() == tonic::Code::Aborted => aborted += 1,
                        Err(status) => panic!("writer {writer}: {status:?}"),
                    }
                }
            }
            aborted
        });
    }
    let mut aborted = 0;
    while let Some(done) = writers.join_next().await {
        aborted += done.unwrap();
    }
    // Every pipeline: one PipelineUpdated per accepted update, versions contiguous from the
    // creation, and the final description the last accepted one.
    for (n, id) in ids.iter().enumerate() {
        let mut versions = Vec::new();
        let mut last = String::new();
        let mut token = String::new();
        loop {
            let page = call(
                &address,
                "GET",
                &format!("/v1/events?entity_id={id}&page_size=1000&page_token={token}"),
                None,
            );
            for event in page["events"].as_array().unwrap() {
                versions.push(number(&event["streamVersion"]));
                if event["type"] == "PipelineUpdated" {
                    last = event["data"]["description"].as_str().unwrap().to_owned();
                }
            }
            token = page["nextPageToken"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if token.is_empty() {
                break;
            }
        }
        let expected: Vec<u64> = (1..=(1 + (WRITERS / PIPELINES * UPDATES) as u64)).collect();
        assert_eq!(
            versions, expected,
            "pipeline p{n}: contiguous, one per update"
        );
        let now = c
            .pipelines
            .clone()
            .get_pipeline(pb::GetPipelineRequest { id: id.clone() })
            .await
            .unwrap()
            .into_inner()
            .pipeline
            .unwrap();
        assert_eq!(now.config.unwrap().description, last, "p{n}");
        assert_eq!(now.version, *expected.last().unwrap());
    }
    // Not an assertion on timing: a record of how contended it was, for the log.
    let mut counts = BTreeMap::new();
    counts.insert("accepted", (WRITERS * UPDATES) as u64);
    counts.insert("aborted", aborted);
    eprintln!("64 writers: {counts:?}");
    drop(server);
}
