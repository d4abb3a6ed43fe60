//! WASM processors: a real processor written with Conduit's processor SDK
//! (`tests/fixtures/processor`, built here with `GOOS=wasip1 GOARCH=wasm` from the Go
//! module proxy) is discovered in `--processors.path`, listed, and transforms and drops
//! records in a pipeline with exactly the expected output; a module that never answers is
//! stopped at the time limit and fails only its own pipeline; a file that is not a module
//! is skipped with a warning naming it.

use crate::harness::{data_dir, decode_base64, json_lines, wait_until, Server};
use crate::http_client::call_any as call;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Build the fixture processor (Go caches make a rebuild take seconds).
pub fn fixture_processor() -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-fixtures/fixture-processor.wasm");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/processor"))
        .env("GOOS", "wasip1")
        .env("GOARCH", "wasm")
        .env("GONOSUMDB", "github.com/conduitio")
        .status()
        .expect("`go` on the PATH (make deps installs it) to build the fixture processor");
    assert!(status.success(), "building the fixture processor failed");
    out
}

/// A module (WAT text; wasmtime reads either form) that answers Specify, Configure and
/// Open like a processor named `spinner`, then loops forever on the first batch.
const SPINNER: &str = r#"(module
  (import "conduit" "command_request" (func $request (param i32 i32) (result i32)))
  (import "conduit" "command_response" (func $respond (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 1024) "\12\11\0a\07spinner\22\06v0.0.1")
  (data (i32.const 1100) "\1a\00")
  (data (i32.const 1110) "\22\00")
  (data (i32.const 1120) "\32\00")
  (func (export "_start")
    (local $n i32)
    (loop $next
      (local.set $n (call $request (i32.const 4096) (i32.const 60000)))
      (if (i32.ge_u (local.get $n) (i32.const 0xffffff9b)) (then (return)))
      (block $done
        (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 0x0a))
          (then (drop (call $respond (i32.const 1024) (i32.const 19))) (br $done)))
        (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 0x12))
          (then (drop (call $respond (i32.const 1100) (i32.const 2))) (br $done)))
        (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 0x1a))
          (then (drop (call $respond (i32.const 1110) (i32.const 2))) (br $done)))
        (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 0x2a))
          (then (drop (call $respond (i32.const 1120) (i32.const 2))) (br $done)))
        (loop $spin (br $spin)))
      (br $next))))"#;

/// A pipeline: built-in generator (raw, `count` records) -> `processor` -> built-in file.
fn pipeline(
    address: &str,
    name: &str,
    count: u32,
    out: &Path,
    processor: Value,
    dlq: Option<Value>,
) -> String {
    let (status, p) = call(
        address,
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": name}})),
    );
    assert_eq!(status, 200, "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    for (kind, plugin, settings) in [
        (
            "TYPE_SOURCE",
            "builtin:generator",
            json!({"format.type": "raw", "format.options.id": "int",
                   "recordCount": count.to_string()}),
        ),
        (
            "TYPE_DESTINATION",
            "builtin:file",
            json!({"path": out.to_str().unwrap()}),
        ),
    ] {
        let (status, created) = call(
            address,
            "POST",
            "/v1/connectors",
            Some(json!({"type": kind, "plugin": plugin, "pipelineId": id,
                        "config": {"name": kind, "settings": settings}})),
        );
        assert_eq!(status, 200, "{created}");
    }
    let (status, created) = call(
        address,
        "POST",
        "/v1/processors",
        Some(json!({"plugin": processor["plugin"],
                    "parent": {"type": "TYPE_PIPELINE", "id": id},
                    "config": {"settings": processor["settings"],
                               "workers": processor["workers"].as_i64().unwrap_or(1)}})),
    );
    assert_eq!(status, 200, "{created}");
    if let Some(dlq) = dlq {
        let (status, set) = call(
            address,
            "PUT",
            &format!("/v1/pipelines/{id}/dead-letter-queue"),
            Some(dlq),
        );
        assert_eq!(status, 200, "{set}");
    }
    let (status, started) = call(address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    assert_eq!(status, 200, "{started}");
    id
}

fn state(address: &str, id: &str) -> Value {
    call(address, "GET", &format!("/v1/pipelines/{id}"), None).1["state"].clone()
}

#[test]
fn wasm_processors_transform_drop_and_are_contained() {
    let (dir, data) = data_dir();
    let processors = dir.path().join("processors");
    std::fs::create_dir(&processors).unwrap();
    std::fs::copy(fixture_processor(), processors.join("fixture.wasm")).unwrap();
    std::fs::write(processors.join("spinner.wasm"), SPINNER).unwrap();
    std::fs::write(processors.join("broken.wasm"), "not a module").unwrap();
    let mut server = Server::start(
        &data,
        &[
            "--processors.path",
            processors.to_str().unwrap(),
            "--processors.wasm.call-timeout",
            "1s",
            "--pipelines.error-recovery.max-retries",
            "0",
        ],
    );
    let address = server.http_address();
    let skipped: Vec<&String> = server
        .seen
        .iter()
        .filter(|l| l.contains("standalone processor plugin skipped"))
        .collect();
    assert_eq!(skipped.len(), 1, "{:#?}", server.seen);
    assert!(skipped[0].contains("broken.wasm") && skipped[0].contains("not a WASM module"));

    let route = "/v1/processors/plugins?name=standalone:.*";
    assert_eq!(
        crate::harness::listed_names(&address, route),
        ["standalone:fixture@v0.1.0", "standalone:spinner@v0.0.1"]
    );
    let (_, plugins) = call(&address, "GET", route, None);
    let fixture = plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "standalone:fixture@v0.1.0")
        .unwrap();
    assert_eq!(fixture["parameters"]["dropEvery"]["default"], "0");

    // Through the Go processor, two workers (two instances, each batch split between them):
    // every third record dropped, the others marked, in order.
    let out = dir.path().join("out.jsonl");
    let good = pipeline(
        &address,
        "through-wasm",
        30,
        &out,
        json!({"plugin": "standalone:fixture", "settings": {"dropEvery": "3"}, "workers": 2}),
        None,
    );
    let expected: Vec<String> = (1..=30)
        .filter(|n| n % 3 != 0)
        .map(|n| n.to_string())
        .collect();
    wait_until("20 records through the WASM processor", || {
        json_lines(&out).len() >= expected.len()
    });
    let records = json_lines(&out);
    let positions: Vec<String> = records
        .iter()
        .map(|r| decode_base64(r["position"].as_str().unwrap()))
        .collect();
    assert_eq!(positions, expected);
    assert!(records
        .iter()
        .all(|r| r["metadata"]["fixture.seen"] == "true"));

    // A record the module fails goes to the pipeline's dead-letter queue; the rest go on.
    let kept = dir.path().join("kept.jsonl");
    let dead = dir.path().join("dead.jsonl");
    let with_dlq = pipeline(
        &address,
        "with-dlq",
        10,
        &kept,
        json!({"plugin": "standalone:fixture", "settings": {"failAt": "5"}}),
        Some(
            json!({"plugin": "builtin:file", "settings": {"path": dead.to_str().unwrap()},
                    "windowSize": 10, "windowNackThreshold": 5}),
        ),
    );
    wait_until("9 records and 1 dead letter", || {
        json_lines(&kept).len() >= 9 && !json_lines(&dead).is_empty()
    });
    let kept_positions: Vec<String> = json_lines(&kept)
        .iter()
        .map(|r| decode_base64(r["position"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kept_positions,
        ["1", "2", "3", "4", "6", "7", "8", "9", "10"]
    );
    let dead = json_lines(&dead);
    assert_eq!(dead.len(), 1);
    assert_eq!(decode_base64(dead[0]["position"].as_str().unwrap()), "5");
    assert!(
        dead[0]["metadata"]["conduit.dlq.nack.error"]
            .as_str()
            .unwrap_or_default()
            .contains("fixture fails the record at position 5"),
        "{}",
        dead[0]
    );
    assert_eq!(state(&address, &with_dlq)["status"], "STATUS_RUNNING");

    // A module that never answers fails its own pipeline, naming the processor.
    let spun = dir.path().join("spun.jsonl");
    let bad = pipeline(
        &address,
        "spinning",
        10,
        &spun,
        json!({"plugin": "standalone:spinner", "settings": {}}),
        None,
    );
    wait_until("the spinning pipeline degraded", || {
        state(&address, &bad)["status"] == "STATUS_DEGRADED"
    });
    let error = state(&address, &bad)["error"].as_str().unwrap().to_owned();
    assert!(error.contains("processor"), "{error}");
    assert!(error.contains("spinner.wasm"), "{error}");
    assert!(error.contains("did not answer within 1 s"), "{error}");
    assert!(json_lines(&spun).is_empty());

    // The server and the other pipeline are unaffected.
    assert_eq!(state(&address, &good)["status"], "STATUS_RUNNING");
    let (status, _) = call(&address, "GET", "/v1/pipelines", None);
    assert_eq!(status, 200);
    let (status, stopped) = call(
        &address,
        "POST",
        &format!("/v1/pipelines/{good}/stop"),
        None,
    );
    assert_eq!(status, 200, "{stopped}");
    wait_until("stopped", || {
        state(&address, &good)["status"] == "STATUS_STOPPED"
    });
    server.terminate();
    assert!(server.wait().success());
}

/// Build the fixture processor made with the current SDK (`tests/fixtures/processor-current`,
/// whose module imports `conduit.http_request`): per record, an HTTP GET through the host
/// to its `url` setting, with the outcome in the record's `egress.*` metadata.
pub fn fixture_processor_current() -> PathBuf {
    let out =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-fixtures/fixture-processor-current.wasm");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/processor-current"))
        .env("GOOS", "wasip1")
        .env("GOARCH", "wasm")
        .env("GONOSUMDB", "github.com/conduitio")
        .status()
        .expect("`go` on the PATH (make deps installs it) to build the fixture processor");
    assert!(
        status.success(),
        "building the current-SDK fixture processor failed"
    );
    out
}

/// A tiny HTTP/1.1 server on 127.0.0.1 answering every request with 200 and a fixed body
/// (and closing the connection); it counts the requests it answered.
struct TestWebServer {
    port: u16,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

const TEST_WEB_BODY: &str = "hello from the test server";

impl TestWebServer {
    fn start() -> Self {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(&stream);
                    let mut line = String::new();
                    // The request head (GETs have no body).
                    while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                        line.clear();
                    }
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
                         connection: close\r\n\r\n{TEST_WEB_BODY}",
                        TEST_WEB_BODY.len()
                    );
                    let _ = (&stream).write_all(answer.as_bytes());
                });
            }
        });
        Self { port, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The `egress.*` metadata of the records written to `out`, once `count` are there.
fn egress_outcomes(out: &Path, count: usize) -> Vec<Value> {
    wait_until(&format!("{count} records in {}", out.display()), || {
        json_lines(out).len() >= count
    });
    json_lines(out)
        .into_iter()
        .map(|r| r["metadata"].clone())
        .collect()
}

#[test]
fn current_sdk_processors_load_and_egress_is_refused_by_default() {
    let web = TestWebServer::start();
    let (dir, data) = data_dir();
    let processors = dir.path().join("processors");
    std::fs::create_dir(&processors).unwrap();
    std::fs::copy(fixture_processor_current(), processors.join("current.wasm")).unwrap();
    // No processors.egress.* flags: the ceiling is closed.
    let mut server = Server::start(&data, &["--processors.path", processors.to_str().unwrap()]);
    let address = server.http_address();
    let route = "/v1/processors/plugins?name=standalone:.*";
    assert_eq!(
        crate::harness::listed_names(&address, route),
        ["standalone:fixture-current@v0.2.0"]
    );
    let (_, plugins) = call(&address, "GET", route, None);
    // Its own parameter, and the host's reserved egress settings.
    let parameters = &plugins[0]["parameters"];
    assert!(parameters["url"].is_object(), "{parameters}");
    assert!(parameters["sdk.egress.allow"].is_object(), "{parameters}");

    // Not opted in, and opted in under a closed ceiling: both refused as "disabled", with
    // the SDK's own error, and nothing reaches the server.
    let allow = format!("http://127.0.0.1:{}", web.port);
    let url = format!("{allow}/hello");
    for (name, settings) in [
        ("not-opted-in", json!({"url": url})),
        ("opted-in", json!({"url": url, "sdk.egress.allow": allow})),
    ] {
        let out = dir.path().join(format!("{name}.jsonl"));
        pipeline(
            &address,
            name,
            3,
            &out,
            json!({"plugin": "standalone:fixture-current", "settings": settings}),
            None,
        );
        for metadata in egress_outcomes(&out, 3) {
            assert_eq!(metadata["egress.code"], "disabled", "{name}: {metadata}");
            let error = metadata["egress.error"].as_str().unwrap_or_default();
            assert!(
                error.contains("http egress is not enabled for this processor"),
                "{name}: {error}"
            );
            assert!(metadata.get("egress.status").is_none(), "{metadata}");
        }
    }
    assert_eq!(web.requests(), 0);
    server.terminate();
    assert!(server.wait().success());
}

#[test]
fn egress_reaches_an_allow_listed_loopback_server_and_refuses_denied_addresses() {
    let web = TestWebServer::start();
    let (dir, data) = data_dir();
    let processors = dir.path().join("processors");
    std::fs::create_dir(&processors).unwrap();
    std::fs::copy(fixture_processor_current(), processors.join("current.wasm")).unwrap();
    // Loopback is reachable only through its exact address-and-port entry; `localhost`
    // is allowed by name, but it resolves to loopback, which the dial-time check refuses.
    let exact = format!("http://127.0.0.1:{}", web.port);
    let by_name = format!("localhost:{}", web.port);
    let mut server = Server::start(
        &data,
        &[
            "--processors.path",
            processors.to_str().unwrap(),
            "--processors.egress.enabled",
            "--processors.egress.allow",
            &exact,
            "--processors.egress.allow",
            &by_name,
        ],
    );
    let address = server.http_address();

    let allowed = dir.path().join("allowed.jsonl");
    pipeline(
        &address,
        "allowed",
        3,
        &allowed,
        json!({"plugin": "standalone:fixture-current",
               "settings": {"url": format!("{exact}/hello"), "sdk.egress.allow": exact}}),
        None,
    );
    for metadata in egress_outcomes(&allowed, 3) {
        assert_eq!(metadata["egress.status"], "200", "{metadata}");
        assert_eq!(metadata["egress.body"], TEST_WEB_BODY, "{metadata}");
        // The host-reserved settings never reach the module (it would not know them).
        assert!(metadata.get("egress.error").is_none(), "{metadata}");
    }
    assert_eq!(web.requests(), 3);

    // Allowed by name, refused at dial time: `localhost` is a loopback address.
    let by_name_out = dir.path().join("by-name.jsonl");
    pipeline(
        &address,
        "by-name",
        2,
        &by_name_out,
        json!({"plugin": "standalone:fixture-current",
               "settings": {"url": format!("https://{by_name}/hello"),
                            "sdk.egress.allow": by_name}}),
        None,
    );
    for metadata in egress_outcomes(&by_name_out, 2) {
        assert_eq!(metadata["egress.code"], "forbidden", "{metadata}");
        let error = metadata["egress.error"].as_str().unwrap_or_default();
        assert!(error.contains("forbidden by policy"), "{error}");
    }
    // The refusal is in the audit log, with why.
    let denied = server.wait_for_line("ip_refused_");
    assert!(denied.contains("egress call denied"), "{denied}");

    // The same loopback address on another port, and the cloud metadata address: not
    // on the processor's list (and the ceiling would drop them anyway).
    let other = dir.path().join("other.jsonl");
    let other_port = format!("http://127.0.0.1:{}", web.port + 1);
    pipeline(
        &address,
        "other",
        2,
        &other,
        json!({"plugin": "standalone:fixture-current",
               "settings": {"url": "http://169.254.169.254/latest/meta-data",
                            "sdk.egress.allow": format!("{exact},{other_port}")}}),
        None,
    );
    for metadata in egress_outcomes(&other, 2) {
        assert_eq!(metadata["egress.code"], "forbidden", "{metadata}");
    }
    assert_eq!(
        web.requests(),
        3,
        "only the allowed pipeline reached the server"
    );
    server.terminate();
    assert!(server.wait().success());
}
