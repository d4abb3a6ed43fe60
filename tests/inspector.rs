//! The stream inspector against the `culvert` binary: InspectConnector on a source and a
//! destination and InspectProcessorIn/Out on a processor of a running generator ->
//! field.set -> file pipeline see the right records; a session that never reads loses
//! records for itself only (the pipeline still writes every record); stopping the
//! pipeline or deleting the entity ends the stream with a clear status; NOT_FOUND for an
//! unknown id; the HTTP route streams `{"result": record}` lines; the CLI prints records.

use crate::harness::{
    culvert, data_dir, grpc_clients as connect, wait_until, GrpcClients as Clients, Server,
};
use culvert_api::pb::api::v1 as pb;
use culvert_api::pb::opencdc::v1 as cdc;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use tonic::transport::Channel;
use tonic::Code;

/// More than a session buffers (1000), so a session that never reads must drop some.
const RECORDS: usize = 1500;

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// A pipeline: generator (`settings`) -> field.set (sets `.Payload.After.inspected`) ->
/// file at `out`; the ids of the pipeline, source, processor and destination.
async fn pipeline(
    c: &mut Clients,
    name: &str,
    settings: &[(&str, &str)],
    out: &Path,
) -> (String, String, String, String) {
    let p = c
        .pipelines
        .create_pipeline(pb::CreatePipelineRequest {
            config: Some(pb::pipeline::Config {
                name: name.into(),
                description: String::new(),
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .pipeline
        .unwrap();
    let connector = |kind: pb::connector::Type, plugin: &str, settings: HashMap<String, String>| {
        let mut connectors = c.connectors.clone();
        let pipeline_id = p.id.clone();
        let plugin = plugin.to_owned();
        async move {
            connectors
                .create_connector(pb::CreateConnectorRequest {
                    r#type: kind as i32,
                    plugin,
                    pipeline_id,
                    config: Some(pb::connector::Config {
                        name: format!("{kind:?}"),
                        settings,
                    }),
                })
                .await
                .unwrap()
                .into_inner()
                .connector
                .unwrap()
                .id
        }
    };
    let mut generator: HashMap<String, String> = HashMap::from([
        ("format.type".into(), "structured".into()),
        ("format.options.id".into(), "int".into()),
    ]);
    for (k, v) in settings {
        generator.insert((*k).into(), (*v).into());
    }
    let source = connector(pb::connector::Type::Source, "builtin:generator", generator).await;
    let destination = connector(
        pb::connector::Type::Destination,
        "builtin:file",
        HashMap::from([("path".into(), out.to_str().unwrap().into())]),
    )
    .await;
    let processor = c
        .processors
        .create_processor(pb::CreateProcessorRequest {
            parent: Some(pb::processor::Parent {
                r#type: pb::processor::parent::Type::Pipeline as i32,
                id: p.id.clone(),
            }),
            config: Some(pb::processor::Config {
                settings: HashMap::from([
                    ("field".into(), ".Payload.After.inspected".into()),
                    ("value".into(), "yes".into()),
                ]),
                workers: 0,
            }),
            plugin: "field.set".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .processor
        .unwrap()
        .id;
    (p.id, source, processor, destination)
}

/// The structured payload (after) of a record.
fn after(record: &cdc::Record) -> serde_json::Value {
    let data = record
        .payload
        .as_ref()
        .and_then(|p| p.after.as_ref())
        .and_then(|d| d.data.as_ref())
        .expect("a payload");
    match data {
        cdc::data::Data::StructuredData(s) => serde_json::to_value(s).unwrap(),
        cdc::data::Data::RawData(_) => panic!("raw payload, want structured"),
    }
}

/// Read a stream to its end: the records and the status it ended with.
async fn collect<T>(
    mut stream: tonic::Streaming<T>,
    record: fn(T) -> Option<cdc::Record>,
) -> (Vec<cdc::Record>, tonic::Status) {
    let mut records = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(message)) => records.push(record(message).expect("a record")),
            Ok(None) => return (records, tonic::Status::ok("ended without a status")),
            Err(status) => return (records, status),
        }
    }
}

fn code<T>(result: Result<T, tonic::Status>) -> Code {
    result.err().expect("an error").code()
}

fn check_closed(status: &tonic::Status, why: &str) {
    assert_eq!(status.code(), Code::Unknown, "{status:?}");
    assert!(
        status.message().starts_with("inspector session closed") && status.message().contains(why),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspectors_see_a_running_pipelines_records() {
    let (dir, data) = data_dir();
    let out = dir.path().join("out.jsonl");
    let mut server = Server::start(&data, &[]);
    let address = server.grpc_address();
    let http = server.http_address();
    let mut c = connect(&address).await;
    let count = RECORDS.to_string();
    let (id, source, processor, destination) = pipeline(
        &mut c,
        "inspected",
        &[("recordCount", &count), ("rate", "3000")],
        &out,
    )
    .await;

    // Sessions opened before the start see every record from the first.
    let mut connectors = c.connectors.clone();
    let mut processors = c.processors.clone();
    let source_stream = connectors
        .inspect_connector(pb::InspectConnectorRequest { id: source.clone() })
        .await
        .unwrap()
        .into_inner();
    let destination_stream = connectors
        .inspect_connector(pb::InspectConnectorRequest {
            id: destination.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let in_stream = processors
        .inspect_processor_in(pb::InspectProcessorInRequest {
            id: processor.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let out_stream = processors
        .inspect_processor_out(pb::InspectProcessorOutRequest {
            id: processor.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    // A second session on the source that never reads, over a connection whose HTTP/2
    // window holds only a few records (so the session's own buffer fills and drops).
    let small = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .initial_stream_window_size(1024)
        .connect()
        .await
        .unwrap();
    let stalled = pb::connector_service_client::ConnectorServiceClient::new(small)
        .inspect_connector(pb::InspectConnectorRequest { id: source.clone() })
        .await
        .unwrap()
        .into_inner();

    let source_task = tokio::spawn(collect(source_stream, |r| r.record));
    let destination_task = tokio::spawn(collect(destination_stream, |r| r.record));
    let in_task = tokio::spawn(collect(in_stream, |r| r.record));
    let out_task = tokio::spawn(collect(out_stream, |r| r.record));

    c.pipelines
        .start_pipeline(pb::StartPipelineRequest { id: id.clone() })
        .await
        .unwrap();
    // The stalled session loses records; the pipeline does not wait for it.
    wait_until("every record written", || lines(&out) >= RECORDS);
    // Conduit's inspector metrics: five sessions on three entities, drops on the source.
    let metrics = crate::http_client::request(&http, "GET", "/metrics", &[], None).text();
    let sample = |name: &str, id: &str| -> f64 {
        let prefix = format!("{name}{{component_id=\"{id}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
            .parse()
            .unwrap()
    };
    assert_eq!(sample("conduit_inspector_sessions", &source), 2.0);
    assert_eq!(sample("conduit_inspector_sessions", &processor), 2.0);
    assert_eq!(sample("conduit_inspector_sessions", &destination), 1.0);
    assert!(sample("conduit_inspector_dropped_records_total", &source) > 0.0);
    c.pipelines
        .stop_pipeline(pb::StopPipelineRequest {
            id: id.clone(),
            force: false,
        })
        .await
        .unwrap();

    for (name, task, set) in [
        ("source", source_task, false),
        ("processor in", in_task, false),
        ("processor out", out_task, true),
        ("destination", destination_task, true),
    ] {
        let (records, status) = task.await.unwrap();
        check_closed(&status, "pipeline stopped");
        assert!(
            !records.is_empty() && records.len() <= RECORDS,
            "{name}: {} records",
            records.len()
        );
        for record in &records {
            let payload = after(record);
            assert!(payload.get("id").is_some(), "{name}: {payload}");
            assert_eq!(
                payload.get("inspected").is_some(),
                set,
                "{name}: inspected is set after the processor only: {payload}"
            );
            assert_eq!(record.operation, cdc::Operation::Create as i32);
            assert!(!record.position.is_empty());
        }
    }
    // The stalled session lost what did not fit its buffer, then ended.
    let (stalled_records, status) = collect(stalled, |r| r.record).await;
    check_closed(&status, "pipeline stopped");
    assert!(
        !stalled_records.is_empty() && stalled_records.len() < RECORDS,
        "{}",
        stalled_records.len()
    );
    assert_eq!(lines(&out), RECORDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_entity_ends_the_stream() {
    let (dir, data) = data_dir();
    let out = dir.path().join("out.jsonl");
    let mut server = Server::start(&data, &[]);
    let mut c = connect(&server.grpc_address()).await;
    let (_, _, processor, destination) =
        pipeline(&mut c, "deleted", &[("recordCount", "1")], &out).await;

    for id in ["", "nope"] {
        let want = if id.is_empty() {
            Code::InvalidArgument
        } else {
            Code::NotFound
        };
        assert_eq!(
            code(
                c.connectors
                    .inspect_connector(pb::InspectConnectorRequest { id: id.into() })
                    .await
            ),
            want
        );
        assert_eq!(
            code(
                c.processors
                    .inspect_processor_in(pb::InspectProcessorInRequest { id: id.into() })
                    .await
            ),
            want
        );
        assert_eq!(
            code(
                c.processors
                    .inspect_processor_out(pb::InspectProcessorOutRequest { id: id.into() })
                    .await
            ),
            want
        );
    }

    // Sessions on a stopped pipeline's entities wait; a deletion ends them.
    let processor_stream = c
        .processors
        .inspect_processor_out(pb::InspectProcessorOutRequest {
            id: processor.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let destination_stream = c
        .connectors
        .inspect_connector(pb::InspectConnectorRequest {
            id: destination.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    c.processors
        .delete_processor(pb::DeleteProcessorRequest {
            id: processor,
            ..Default::default()
        })
        .await
        .unwrap();
    let (records, status) = collect(processor_stream, |r| r.record).await;
    assert!(records.is_empty());
    check_closed(&status, "deleted");
    c.connectors
        .delete_connector(pb::DeleteConnectorRequest {
            id: destination,
            ..Default::default()
        })
        .await
        .unwrap();
    let (records, status) = collect(destination_stream, |r| r.record).await;
    assert!(records.is_empty());
    check_closed(&status, "deleted");
}

/// The first `n` `{"result": ...}` lines of a grpc-gateway style stream over HTTP/1.1.
fn http_stream_lines(address: &str, path: &str, n: usize) -> Vec<serde_json::Value> {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut found = Vec::new();
    let mut line = String::new();
    while found.len() < n {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended");
        // Chunked transfer: the JSON lines sit between chunk-size lines.
        if let Some(start) = line.find('{') {
            found.push(serde_json::from_str(line[start..].trim()).unwrap());
        } else if found.is_empty() && line.starts_with("HTTP/1.1") {
            assert!(line.contains(" 200 "), "{line}");
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_http_route_print_live_records() {
    let (dir, data) = data_dir();
    let out = dir.path().join("out.jsonl");
    let mut server = Server::start(&data, &[]);
    let grpc = server.grpc_address();
    let http = server.http_address();
    let mut c = connect(&grpc).await;
    // An endless generator at a modest rate.
    let (id, source, processor, destination) =
        pipeline(&mut c, "cli", &[("rate", "50")], &out).await;
    c.pipelines
        .start_pipeline(pb::StartPipelineRequest { id: id.clone() })
        .await
        .unwrap();

    let cli = {
        let source = source.clone();
        let grpc = grpc.clone();
        tokio::task::spawn_blocking(move || {
            culvert(&[
                "pipelines",
                "inspect",
                &source,
                "--count",
                "3",
                "--json",
                "--grpc.address",
                &grpc,
            ])
        })
    };
    let table = {
        let processor = processor.clone();
        let grpc = grpc.clone();
        tokio::task::spawn_blocking(move || {
            culvert(&[
                "pipelines",
                "inspect",
                &processor,
                "--out",
                "--filter",
                "inspected",
                "--count",
                "2",
                "--grpc.address",
                &grpc,
            ])
        })
    };
    let whole = {
        let id = id.clone();
        let grpc = grpc.clone();
        tokio::task::spawn_blocking(move || {
            culvert(&[
                "pipelines",
                "inspect",
                &id,
                "--count",
                "10",
                "--json",
                "--grpc.address",
                &grpc,
            ])
        })
    };
    let http_lines = {
        let path = format!("/v1/processors/{processor}/inspect-out");
        tokio::task::spawn_blocking(move || http_stream_lines(&http, &path, 2))
    };

    let (code, stdout, stderr) = cli.await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    let printed: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(printed.len(), 3, "{stdout}");
    for record in &printed {
        assert_eq!(record["operation"], "OPERATION_CREATE", "{record}");
        let payload = &record["payload"]["after"]["structuredData"];
        assert!(payload.get("id").is_some(), "{record}");
        assert!(payload.get("inspected").is_none(), "{record}");
    }

    let (code, stdout, stderr) = table.await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<&str> = stdout.lines().collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    for row in rows {
        assert!(
            row.contains("  create  ") && row.contains("\"inspected\":\"yes\""),
            "{row}"
        );
    }

    // The whole pipeline: both connectors' records, each naming its connector; what the
    // destination receives has been through the processor, what the source produced not.
    let (code, stdout, stderr) = whole.await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    let printed: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(printed.len(), 10, "{stdout}");
    let mut seen = std::collections::BTreeSet::new();
    for line in &printed {
        let connector = line["connector"].as_str().unwrap();
        let payload = &line["record"]["payload"]["after"]["structuredData"];
        if connector == source {
            assert!(payload.get("inspected").is_none(), "{line}");
        } else {
            assert_eq!(connector, destination, "{line}");
            assert_eq!(payload["inspected"], "yes", "{line}");
        }
        seen.insert(connector.to_owned());
    }
    assert_eq!(seen.len(), 2, "records of both connectors: {stdout}");
    let (code, _, stderr) = culvert(&[
        "pipelines",
        "inspect",
        "no-such-thing",
        "--grpc.address",
        &grpc,
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no pipeline, connector or processor with id \"no-such-thing\""),
        "{stderr}"
    );

    for line in http_lines.await.unwrap() {
        let payload = &line["result"]["payload"]["after"]["structuredData"];
        assert_eq!(payload["inspected"], "yes", "{line}");
    }

    c.pipelines
        .stop_pipeline(pb::StopPipelineRequest { id, force: false })
        .await
        .unwrap();
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open a WebSocket on an HTTP route, with `origin` as the handshake's `Origin`.
async fn websocket(
    address: &str,
    path: &str,
    origin: Option<&str>,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = format!("ws://{address}{path}")
        .into_client_request()
        .unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

/// The next text message as JSON, or `None` once the server closed the socket.
async fn next_json(socket: &mut Socket) -> Option<serde_json::Value> {
    use tokio_stream::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let message = tokio::time::timeout(crate::harness::DEADLINE, socket.next())
            .await
            .expect("a message in time")?;
        match message.expect("a readable message") {
            Message::Text(text) => return Some(serde_json::from_str(text.as_str()).unwrap()),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_carry_any_route_line_by_line() {
    let (dir, data) = data_dir();
    let out = dir.path().join("out.jsonl");
    let mut server = Server::start(
        &data,
        &["--api.http.cors.allowed-origins", "http://ui.example:3000"],
    );
    let grpc = server.grpc_address();
    let http = server.http_address();
    let mut c = connect(&grpc).await;
    let (id, source, _, destination) = pipeline(&mut c, "ws", &[("rate", "50")], &out).await;
    c.pipelines
        .start_pipeline(pb::StartPipelineRequest { id: id.clone() })
        .await
        .unwrap();

    // An inspect stream: one record per text message.
    let inspect = format!("/v1/connectors/{source}/inspect");
    let mut socket = websocket(&http, &inspect, None).await.unwrap();
    for _ in 0..3 {
        let line = next_json(&mut socket).await.expect("a record");
        let payload = &line["result"]["payload"]["after"]["structuredData"];
        assert!(payload.get("id").is_some(), "{line}");
        assert_eq!(line["result"]["operation"], "OPERATION_CREATE", "{line}");
    }

    // A browser page of this server's own origin, or of an allowed one, may open a stream;
    // another origin's handshake is refused.
    let own = format!("http://{http}");
    for origin in [own.as_str(), "http://ui.example:3000"] {
        let mut other = websocket(&http, &inspect, Some(origin)).await.unwrap();
        assert!(next_json(&mut other).await.is_some(), "{origin}");
    }
    match websocket(&http, &inspect, Some("http://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        Err(other) => panic!("refused for the wrong reason: {other}"),
        Ok(_) => panic!("a foreign origin opened a stream"),
    }

    // Closing the socket ends the session behind it.
    let sessions = {
        let (http, destination) = (http.clone(), destination.clone());
        move || {
            let metrics = crate::http_client::request(&http, "GET", "/metrics", &[], None).text();
            let prefix = format!("conduit_inspector_sessions{{component_id=\"{destination}\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .map_or(0.0, |v| v.parse::<f64>().unwrap())
        }
    };
    let mut watched = websocket(
        &http,
        &format!("/v1/connectors/{destination}/inspect"),
        None,
    )
    .await
    .unwrap();
    assert!(next_json(&mut watched).await.is_some());
    let check = sessions.clone();
    tokio::task::spawn_blocking(move || wait_until("a session open", || check() == 1.0))
        .await
        .unwrap();
    watched.close(None).await.unwrap();
    drop(watched);
    tokio::task::spawn_blocking(move || wait_until("the session closed", || sessions() == 0.0))
        .await
        .unwrap();

    // Stopping the pipeline ends the stream: the gateway's error line, then the close.
    c.pipelines
        .stop_pipeline(pb::StopPipelineRequest {
            id: id.clone(),
            force: false,
        })
        .await
        .unwrap();
    let end = loop {
        let line = next_json(&mut socket).await.expect("the stream's end");
        if line.get("result").is_none() {
            break line;
        }
    };
    assert_eq!(end["error"]["code"], 2, "{end}");
    assert!(
        end["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("inspector session closed"),
        "{end}"
    );
    assert!(next_json(&mut socket).await.is_none());

    // A route that answers once: the same JSON as over plain HTTP, then the close (once
    // the stop is recorded, so the two see the same pipeline).
    let path = format!("/v1/pipelines/{id}");
    let get = {
        let (http, path) = (http.clone(), path.clone());
        move || crate::http_client::request(&http, "GET", &path, &[], None).json()
    };
    let plain = {
        let get = get.clone();
        tokio::task::spawn_blocking(move || {
            wait_until("the pipeline recorded stopped", || {
                get()["state"]["status"] == "STATUS_STOPPED"
            });
            get()
        })
        .await
        .unwrap()
    };
    let mut once = websocket(&http, &path, None).await.unwrap();
    assert_eq!(next_json(&mut once).await, Some(plain));
    assert!(next_json(&mut once).await.is_none());
    // An unknown id: grpc-gateway's stream error line, then the close.
    let mut unknown = websocket(&http, "/v1/connectors/nope/inspect", None)
        .await
        .unwrap();
    let error = next_json(&mut unknown).await.expect("the error");
    assert_eq!(error["error"]["code"], 5, "{error}");
    assert!(next_json(&mut unknown).await.is_none());

    // A socket left open (its session waits for the stopped pipeline) does not hold up a
    // shutdown.
    let mut waiting = websocket(&http, &inspect, None).await.unwrap();
    server.terminate();
    let status = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let ended = tokio::time::timeout(crate::harness::DEADLINE, async {
        use tokio_stream::StreamExt as _;
        while let Some(Ok(message)) = waiting.next().await {
            if message.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the socket outlived the server");
}

/// The WebSocket proxy races the answer's next chunk against the peer's frames, a ping
/// timer and a silence timer (`api/src/http/browser.rs`); a branch that wins must not cost
/// the others anything. A watch of a few thousand events, sent while the client pings
/// without pause, arrives whole and in order: every sequence number once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_loses_no_line_while_the_peer_keeps_talking() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    const PIPELINES: usize = 1500;
    let (_dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let mut c = connect(&server.grpc_address()).await;
    let http = server.http_address();
    for i in 0..PIPELINES {
        c.pipelines
            .create_pipeline(pb::CreatePipelineRequest {
                config: Some(pb::pipeline::Config {
                    name: format!("p{i}"),
                    description: String::new(),
                }),
            })
            .await
            .unwrap();
    }
    let socket = websocket(&http, "/v1/events/watch?from_seq=1", None)
        .await
        .unwrap();
    let (mut sink, mut stream) = socket.split();
    let talker = tokio::spawn(async move {
        // Until the server closes or the reader is done (the send then fails).
        while sink.send(Message::Ping(b"x".to_vec().into())).await.is_ok() {
            tokio::task::yield_now().await;
        }
    });
    let mut next = 1u64;
    while next <= PIPELINES as u64 {
        let message = tokio::time::timeout(crate::harness::DEADLINE, stream.next())
            .await
            .expect("a line in time")
            .expect("the stream open")
            .unwrap();
        let Message::Text(text) = message else {
            continue;
        };
        let line: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        let seq: u64 = line["result"]["seq"].as_str().unwrap().parse().unwrap();
        assert_eq!(seq, next, "lost or reordered: {line}");
        next += 1;
    }
    drop(stream);
    talker.abort();
}
