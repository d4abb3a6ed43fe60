//! WASM processors: a real processor written with Conduit's processor SDK
//! (`tests/fixtures/processor`, built here with `GOOS=wasip1 GOARCH=wasm` from the Go
//! module proxy) is discovered in `--processors.path`, listed, and transforms and drops
//! records in a pipeline with exactly the expected output; a module that never answers is
//! stopped at the time limit and fails only its own pipeline; a file that is not a module
//! is skipped with a warning naming it.

use crate::harness::{data_dir, decode_base64, wait_until, Server};
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

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
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

    let (status, plugins) = call(
        &address,
        "GET",
        "/v1/processors/plugins?name=standalone:.*",
        None,
    );
    assert_eq!(status, 200, "{plugins}");
    let names: Vec<&str> = plugins
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["standalone:fixture@v0.1.0", "standalone:spinner@v0.0.1"]
    );
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
        lines(&out).len() >= expected.len()
    });
    let records = lines(&out);
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
        lines(&kept).len() >= 9 && !lines(&dead).is_empty()
    });
    let kept_positions: Vec<String> = lines(&kept)
        .iter()
        .map(|r| decode_base64(r["position"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kept_positions,
        ["1", "2", "3", "4", "6", "7", "8", "9", "10"]
    );
    let dead = lines(&dead);
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
    assert!(lines(&spun).is_empty());

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
