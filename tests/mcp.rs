//! `culvert mcp` driven by an MCP client (the official Rust SDK's, over stdio with the
//! binary as a child process; and raw JSON-RPC over streamable HTTP): the tools listed with
//! and without `--allow-writes`, reads of a real server, server errors as tool errors, a
//! start through MCP that the audit trail (over MCP and over the HTTP API) records with the
//! actor `mcp:<client name>`, and time travel.

use crate::harness::{data_dir, Server, DEADLINE};
use crate::http_client::{call, request};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const READ_TOOLS: [&str; 8] = [
    "list_pipelines",
    "describe_pipeline",
    "list_connectors",
    "inspect_records",
    "audit",
    "pipeline_at",
    "list_dead_letters",
    "repair",
];
const WRITE_TOOLS: [&str; 4] = [
    "create_pipeline",
    "start_pipeline",
    "stop_pipeline",
    "repair_apply",
];

/// A pipeline file with two fixes `repair` makes (a status with stray spaces, a
/// processor's deprecated `type` key).
const NEEDS_REPAIR: &str = "version: \"2.2\"\npipelines:\n  - id: fixme\n    status: \" Running \"\n    connectors:\n      - id: src\n        type: source\n        plugin: builtin:generator\n        settings:\n          format.type: raw\n      - id: dst\n        type: destination\n        plugin: builtin:log\n    processors:\n      - id: tag\n        type: field.set\n        settings:\n          field: .Metadata.x\n          value: \"y\"\n";

type Client = RunningService<RoleClient, ClientConfig>;

/// `culvert mcp` on the server at `grpc` (with `extra` flags), as a child process spoken to
/// over stdio by a client that calls itself `name`.
async fn mcp_client(grpc: &str, extra: &[&str], name: &str) -> Client {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_culvert"));
    command.args(["mcp", "--grpc.address", grpc]).args(extra);
    let transport = TokioChildProcess::new(command).expect("spawn culvert mcp");
    let config = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new(name, "1.0.0"),
    );
    tokio::time::timeout(DEADLINE, config.serve(transport))
        .await
        .expect("the MCP handshake in time")
        .expect("the MCP handshake")
}

async fn tool_names(client: &Client) -> Vec<String> {
    client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect()
}

/// Call a tool; the result as sent (success or tool error).
async fn call_tool(client: &Client, name: &str, arguments: Value) -> CallToolResult {
    let Value::Object(arguments) = arguments else {
        panic!("arguments must be an object")
    };
    let params = CallToolRequestParams::new(name.to_owned()).with_arguments(arguments);
    tokio::time::timeout(DEADLINE, client.call_tool(params))
        .await
        .unwrap_or_else(|_| panic!("{name} answered in time"))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The text of a result's first content block.
fn text(result: &CallToolResult) -> String {
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_else(|| panic!("no text content: {result:?}"))
}

/// Call a tool that must succeed; its JSON answer.
async fn read(client: &Client, name: &str, arguments: Value) -> Value {
    let result = call_tool(client, name, arguments).await;
    assert_ne!(result.is_error, Some(true), "{name}: {}", text(&result));
    serde_json::from_str(&text(&result)).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"))
}

/// Poll `describe_pipeline` until the pipeline's status is `status`.
async fn wait_for_status(client: &Client, id: &str, status: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let described = read(client, "describe_pipeline", json!({ "id": id })).await;
        if described["pipeline"]["state"]["status"] == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pipeline {id} never reached {status}: {described}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn post(address: &str, path: &str, body: Value) -> Value {
    call(address, "POST", path, Some(body))
}

/// A pipeline with a generator source and a log destination; (pipeline id, source id).
fn demo_pipeline(http: &str, name: &str) -> (String, String) {
    let p = post(http, "/v1/pipelines", json!({"config": {"name": name}}));
    let id = p["id"].as_str().unwrap().to_owned();
    let source = post(
        http,
        "/v1/connectors",
        json!({"type": "TYPE_SOURCE", "plugin": "builtin:generator", "pipelineId": id,
               "config": {"name": "src", "settings": {"format.type": "raw",
               "format.options.id": "int", "rate": "200"}}}),
    );
    post(
        http,
        "/v1/connectors",
        json!({"type": "TYPE_DESTINATION", "plugin": "builtin:log", "pipelineId": id,
               "config": {"name": "out"}}),
    );
    (id, source["id"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_over_stdio_reads_and_with_the_flag_starts_a_pipeline_as_the_mcp_actor() {
    let (_dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let grpc = server.grpc_address();
    let http = server.http_address();
    let (id, source) = demo_pipeline(&http, "mcp-demo");

    // Without --allow-writes: the read tools only, and they read the server.
    let reader = mcp_client(&grpc, &[], "culvert-e2e-reader").await;
    let info = reader.peer_info().expect("server info");
    let implementation = info.server_info.as_ref().expect("server info");
    assert_eq!(implementation.name, "culvert");
    let names = tool_names(&reader).await;
    for tool in READ_TOOLS {
        assert!(names.iter().any(|n| n == tool), "{tool} not in {names:?}");
    }
    for tool in WRITE_TOOLS {
        assert!(!names.iter().any(|n| n == tool), "{tool} listed: {names:?}");
    }
    let listed = read(&reader, "list_pipelines", json!({})).await;
    let pipelines = listed["pipelines"].as_array().unwrap();
    assert_eq!(pipelines.len(), 1, "{listed}");
    assert_eq!(pipelines[0]["id"], id.as_str());
    assert_eq!(pipelines[0]["config"]["name"], "mcp-demo");
    let described = read(&reader, "describe_pipeline", json!({ "id": id })).await;
    assert_eq!(described["pipeline"]["state"]["status"], "STATUS_STOPPED");
    let plugins: Vec<&str> = described["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["plugin"].as_str().unwrap())
        .collect();
    assert_eq!(plugins.len(), 2, "{described}");
    assert!(
        plugins.iter().any(|p| p.starts_with("builtin:generator"))
            && plugins.iter().any(|p| p.starts_with("builtin:log")),
        "{plugins:?}"
    );
    assert!(described["dlq"]["plugin"].is_string(), "{described}");
    let connectors = read(&reader, "list_connectors", json!({ "pipeline": id })).await;
    assert_eq!(connectors["connectors"].as_array().unwrap().len(), 2);
    // A server error is a tool error carrying the server's message.
    let missing = call_tool(&reader, "describe_pipeline", json!({"id": "no-such"})).await;
    assert_eq!(missing.is_error, Some(true), "{missing:?}");
    assert!(text(&missing).contains("NotFound"), "{}", text(&missing));
    assert!(text(&missing).contains("no-such"), "{}", text(&missing));
    // So is a bad argument.
    let bad = call_tool(
        &reader,
        "inspect_records",
        json!({"id": source, "count": 0}),
    )
    .await;
    assert_eq!(bad.is_error, Some(true));
    assert!(text(&bad).starts_with("count: "), "{}", text(&bad));
    // A write tool is refused, naming the flag.
    let refused = reader
        .call_tool(
            CallToolRequestParams::new("start_pipeline")
                .with_arguments(json!({ "id": id }).as_object().unwrap().clone()),
        )
        .await;
    let message = match refused {
        Err(e) => e.to_string(),
        Ok(result) => {
            assert_eq!(
                result.is_error,
                Some(true),
                "a write went through: {result:?}"
            );
            text(&result)
        }
    };
    assert!(message.contains("--allow-writes"), "{message}");
    reader.cancel().await.unwrap();

    // With --allow-writes: start the pipeline; the log records the MCP client as the actor.
    let writer = mcp_client(&grpc, &["--allow-writes"], "culvert-e2e-writer").await;
    let names = tool_names(&writer).await;
    for tool in READ_TOOLS.iter().chain(&WRITE_TOOLS) {
        assert!(names.iter().any(|n| n == tool), "{tool} not in {names:?}");
    }
    // repair plans a file's fixes; repair_apply applies the plan whose hash it is given.
    let planned = read(&writer, "repair", json!({ "config": NEEDS_REPAIR })).await;
    let fixes: Vec<&str> = planned["plan"]["fixes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["configPath"].as_str().unwrap())
        .collect();
    assert_eq!(
        fixes,
        ["/pipelines/0/processors/0/type", "/status"],
        "{planned}"
    );
    let stale = call_tool(
        &writer,
        "repair_apply",
        json!({"config": NEEDS_REPAIR, "hash": "0".repeat(64)}),
    )
    .await;
    assert_eq!(stale.is_error, Some(true));
    assert!(
        text(&stale).starts_with("repair.plan_stale"),
        "{}",
        text(&stale)
    );
    let applied = read(
        &writer,
        "repair_apply",
        json!({"config": NEEDS_REPAIR, "hash": planned["plan"]["hash"]}),
    )
    .await;
    let repaired = applied["result"]["content"].as_str().unwrap();
    assert!(
        repaired.contains("status: running") && repaired.contains("plugin: field.set"),
        "{repaired}"
    );

    let started = read(&writer, "start_pipeline", json!({ "id": id })).await;
    assert_eq!(started["id"], id.as_str());
    wait_for_status(&writer, &id, "STATUS_RUNNING").await;

    let inspected = read(
        &writer,
        "inspect_records",
        json!({"id": source, "count": 3, "timeout_seconds": 30}),
    )
    .await;
    assert_eq!(inspected["count"], 3, "{inspected}");
    assert_eq!(inspected["records"].as_array().unwrap().len(), 3);
    assert_eq!(inspected["inspected"], "connector");

    let audit = read(&writer, "audit", json!({ "id": id })).await;
    let events = audit["events"].as_array().unwrap();
    let start = events
        .iter()
        .find(|e| e["type"] == "PipelineStartRequested")
        .unwrap_or_else(|| panic!("no start event: {audit}"));
    assert_eq!(start["actor"], "mcp:culvert-e2e-writer", "{start}");
    assert!(start["time"].as_str().unwrap().ends_with('Z'), "{start}");
    let created = events
        .iter()
        .find(|e| e["type"] == "PipelineCreated")
        .unwrap_or_else(|| panic!("no create event: {audit}"));
    assert_eq!(created["actor"], "api", "{created}");
    let limited = read(&writer, "audit", json!({"id": id, "limit": 1})).await;
    assert_eq!(limited["events"].as_array().unwrap().len(), 1);
    assert_eq!(limited["events"][0]["seq"], events.last().unwrap()["seq"]);

    // The same over the server's HTTP audit API.
    let by_mcp = call(
        &http,
        "GET",
        &format!("/v1/events?entity_id={id}&actor=mcp:culvert-e2e-writer"),
        None,
    );
    let by_mcp = by_mcp["events"].as_array().unwrap();
    assert!(
        by_mcp.iter().any(|e| e["type"] == "PipelineStartRequested"),
        "{by_mcp:?}"
    );

    // Time travel to just after the pipeline was created: stopped, no connectors yet.
    let seq = created["seq"].as_u64().unwrap();
    let then = read(&writer, "pipeline_at", json!({"id": id, "seq": seq})).await;
    assert_eq!(then["pipeline"]["config"]["name"], "mcp-demo", "{then}");
    assert!(
        then["pipeline"]["connectorIds"]
            .as_array()
            .is_none_or(|c| c.is_empty()),
        "{then}"
    );
    let both = call_tool(
        &writer,
        "pipeline_at",
        json!({"id": id, "seq": seq, "time": "2026-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(both.is_error, Some(true));

    let dead = read(&writer, "list_dead_letters", json!({ "pipeline": id })).await;
    assert!(
        dead.get("letters")
            .is_none_or(|l| l.as_array().is_some_and(|l| l.is_empty())),
        "{dead}"
    );

    read(&writer, "stop_pipeline", json!({ "id": id })).await;
    wait_for_status(&writer, &id, "STATUS_STOPPED").await;
    let made = read(&writer, "create_pipeline", json!({"name": "made-by-mcp"})).await;
    let made_id = made["pipeline"]["id"].as_str().unwrap().to_owned();
    let events = call(
        &http,
        "GET",
        &format!("/v1/events?entity_id={made_id}"),
        None,
    );
    assert_eq!(events["events"][0]["type"], "PipelineCreated");
    assert_eq!(events["events"][0]["actor"], "mcp:culvert-e2e-writer");
    writer.cancel().await.unwrap();
    drop(server);
}

/// The JSON-RPC messages of a streamable HTTP answer: the body itself (JSON), or each
/// `data:` line of an event stream.
fn messages(reply: &crate::http_client::Reply) -> Vec<Value> {
    let body = reply.text();
    if reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json"))
    {
        return vec![serde_json::from_str(&body).unwrap()];
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| d.starts_with('{'))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// POST one JSON-RPC message to the MCP endpoint; its answer.
fn rpc(
    address: &str,
    session: Option<&str>,
    message: Value,
) -> (crate::http_client::Reply, Vec<Value>) {
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    if let Some(session) = session {
        headers.push(("Mcp-Session-Id", session));
        headers.push(("MCP-Protocol-Version", "2025-06-18"));
    }
    let body = serde_json::to_vec(&message).unwrap();
    let reply = request(address, "POST", "/mcp", &headers, Some(&body));
    let messages = messages(&reply);
    (reply, messages)
}

/// The status of an MCP `ping` POSTed with the Host header `host` (the test client always
/// sends the address it connects to).
fn status_with_host(address: &str, host: &str) -> u16 {
    use std::io::{Read as _, Write as _};
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        stream,
        "POST /mcp HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: \
         application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: \
         {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    raw.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {raw:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_over_streamable_http() {
    let (_dir, data) = data_dir();
    let mut server = Server::start(&data, &[]);
    let grpc = server.grpc_address();
    let http = server.http_address();
    let (id, _) = demo_pipeline(&http, "over-http");

    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_culvert"));
    command.args([
        "mcp",
        "--transport",
        "http",
        "--http.address",
        "127.0.0.1:0",
        "--grpc.address",
        &grpc,
    ]);
    let mut mcp = Server::spawn(command);
    let line = mcp.wait_for_line("listening on http://");
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.strip_suffix("/mcp"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();

    let (reply, answers) = rpc(
        &address,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "http-e2e", "version": "1.0"}}}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let session = reply
        .header("mcp-session-id")
        .unwrap_or_else(|| panic!("no session id: {:?}", reply.headers))
        .to_owned();
    let init = answers
        .iter()
        .find(|m| m["id"] == 1)
        .expect("initialize answer");
    assert_eq!(init["result"]["serverInfo"]["name"], "culvert", "{init}");
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );

    let (reply, _) = rpc(
        &address,
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert!(
        reply.status == 202 || reply.status == 200,
        "{}",
        reply.text()
    );

    let (reply, answers) = rpc(
        &address,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let listed = answers
        .iter()
        .find(|m| m["id"] == 2)
        .expect("tools/list answer");
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for tool in READ_TOOLS {
        assert!(names.contains(&tool), "{tool} not in {names:?}");
    }
    assert!(!names.contains(&"start_pipeline"), "{names:?}");
    let schema = &listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "describe_pipeline")
        .unwrap()["inputSchema"];
    assert_eq!(schema["required"], json!(["id"]), "{schema}");

    let (reply, answers) = rpc(
        &address,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
               "params": {"name": "list_pipelines", "arguments": {}}}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let called = answers
        .iter()
        .find(|m| m["id"] == 3)
        .expect("tools/call answer");
    assert_ne!(called["result"]["isError"], true, "{called}");
    let listed: Value =
        serde_json::from_str(called["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(listed["pipelines"][0]["id"], id.as_str());

    // Only the MCP path, and only for loopback host names (DNS rebinding).
    let elsewhere = request(&address, "GET", "/", &[], None);
    assert_eq!(elsewhere.status, 404);
    let rebound = status_with_host(&address, "evil.example");
    assert_eq!(rebound, 403, "a foreign Host header is refused");

    mcp.terminate();
    assert!(mcp.wait().success(), "culvert mcp exits cleanly on SIGTERM");
    drop(server);
}
