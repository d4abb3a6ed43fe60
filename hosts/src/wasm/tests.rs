//! Unit tests of the WASM host: scripted WAT modules against the command exchange, the
//! sandbox limits and the host functions.

use super::*;

/// A module that speaks the command exchange with canned answers: a specification
/// named `scripted`, empty Configure/Open/Teardown answers, and `process` (WAT
/// instructions) for Process commands.
fn scripted(process: &str) -> String {
    format!(
        r#"(module
  (import "conduit" "command_request" (func $request (param i32 i32) (result i32)))
  (import "conduit" "command_response" (func $respond (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; CommandResponse{{specify: {{name: "scripted"}}}}
  (data (i32.const 1024) "\12\0a\0a\08scripted")
  (data (i32.const 1100) "\1a\00")  ;; configure
  (data (i32.const 1110) "\22\00")  ;; open
  (data (i32.const 1120) "\32\00")  ;; teardown
  ;; CommandResponse{{process: {{records: [{{filter_record: {{}}}}]}}}}
  (data (i32.const 1130) "\2a\04\0a\02\12\00")
  (data (i32.const 1200) "\ff\ff\ff\ff")
  ;; CommandResponse{{process: {{records: [{{multi_record: {{records: [
  ;;   {{position: "a", operation: create}}, {{position: "b", operation: create}}]}}}}]}}}}
  (data (i32.const 1300) "\2a\12\0a\10\22\0e\0a\05\0a\01a\10\01\0a\05\0a\01b\10\01")
  (func (export "_start")
(local $n i32)
(loop $next
  (local.set $n (call $request (i32.const 4096) (i32.const 60000)))
  ;; error codes (no more commands): done
  (if (i32.ge_u (local.get $n) (i32.const 0xffffff9b)) (then (return)))
  (block $done
    (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 0x0a))
      (then (drop (call $respond (i32.const 1024) (i32.const 12))) (br $done)))
    (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 0x12))
      (then (drop (call $respond (i32.const 1100) (i32.const 2))) (br $done)))
    (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 0x1a))
      (then (drop (call $respond (i32.const 1110) (i32.const 2))) (br $done)))
    (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 0x2a))
      (then (drop (call $respond (i32.const 1120) (i32.const 2))) (br $done)))
    {process}
  )
  (br $next)))
)"#
    )
}

fn limits() -> Limits {
    Limits {
        memory_bytes: 8 << 20,
        call_timeout: Duration::from_millis(300),
    }
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn record() -> Record {
    Record {
        position: culvert_domain::Position(b"1".to_vec()),
        ..Record::default()
    }
}

/// Load `module`, open a processor of it and process one record.
async fn process_one(module: &str) -> Result<Outcome, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "m.wasm", module);
    let plugin = WasmProcessorPlugin::load(&path, limits())
        .await
        .map_err(|e| e.to_string())?;
    let mut processor = plugin.configure(&Settings::new()).unwrap();
    processor.identify("p1");
    processor.open().await.map_err(|e| e.to_string())?;
    let mut records = vec![record()];
    let mut outcomes = vec![Outcome::Keep];
    processor
        .process(&mut records, &mut outcomes)
        .await
        .map_err(|e| e.to_string())?;
    Ok(outcomes.remove(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_is_specified_configured_and_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "m.wasm",
        &scripted("(drop (call $respond (i32.const 1130) (i32.const 6)))"),
    );
    let plugin = WasmProcessorPlugin::load(&path, limits()).await.unwrap();
    assert_eq!(plugin.specification().full_name(), "standalone:scripted@");
    let outcome = process_one(&scripted(
        "(drop (call $respond (i32.const 1130) (i32.const 6)))",
    ))
    .await
    .unwrap();
    assert_eq!(outcome, Outcome::Drop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_records_made_of_one_take_its_place() {
    let outcome = process_one(&scripted(
        "(drop (call $respond (i32.const 1300) (i32.const 20)))",
    ))
    .await
    .unwrap();
    let Outcome::Split(copies) = outcome else {
        panic!("{outcome:?}")
    };
    let positions: Vec<&[u8]> = copies.iter().map(|r| r.position.0.as_slice()).collect();
    assert_eq!(positions, [&b"a"[..], &b"b"[..]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_is_stopped_at_the_time_limit() {
    let error = process_one(&scripted("(loop $spin (br $spin))"))
        .await
        .unwrap_err();
    assert!(error.contains("did not answer within 0.3 s"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_is_stopped_at_the_memory_limit() {
    let error = process_one(&scripted(
        "(loop $grow (drop (memory.grow (i32.const 16))) (br $grow))",
    ))
    .await
    .unwrap_err();
    assert!(error.contains("memory limit exceeded"), "{error}");
    assert!(error.contains("the limit is 8388608"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_ends_says_how() {
    let error = process_one(&scripted("(return)")).await.unwrap_err();
    assert!(error.contains("the module ended: it returned"), "{error}");
    let error = process_one(&scripted("(unreachable)")).await.unwrap_err();
    assert!(error.contains("the module ended: it trapped"), "{error}");
    assert!(error.contains("unreachable"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answer_bytes_fail_the_processor() {
    let error = process_one(&scripted(
        "(drop (call $respond (i32.const 1200) (i32.const 4)))",
    ))
    .await
    .unwrap_err();
    assert!(error.contains("not a command response"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_pointers_stop_the_module() {
    let error = process_one(&scripted(
        "(drop (call $respond (i32.const 0xfffffff0) (i32.const 1000)))",
    ))
    .await
    .unwrap_err();
    assert!(error.contains("outside the module's memory"), "{error}");
    let error = process_one(&scripted(
        "(drop (call $request (i32.const 131000) (i32.const 60000)))",
    ))
    .await
    .unwrap_err();
    assert!(error.contains("command_request"), "{error}");
    assert!(error.contains("outside the module's memory"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_missing_exports_or_imports_are_refused_at_load() {
    let no_start = scripted("").replace("(export \"_start\")", "");
    let error = process_one(&no_start).await.unwrap_err();
    assert!(error.contains("exports no _start function"), "{error}");
    let no_memory = scripted("").replace("(memory (export \"memory\") 2)", "(memory 2)");
    let error = process_one(&no_memory).await.unwrap_err();
    assert!(error.contains("exports no memory"), "{error}");
    let unknown_import = scripted("").replace(
        "(import \"conduit\" \"command_response\"",
        "(import \"conduit\" \"launch_missiles\"",
    );
    let error = process_one(&unknown_import).await.unwrap_err();
    assert!(error.contains("imports cannot be satisfied"), "{error}");
    let error = process_one("not wasm at all").await.unwrap_err();
    assert!(error.contains("not a WASM module"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_commands_are_parked_until_the_buffer_fits() {
    // A guest with a 16-byte buffer: the host answers the size, the guest asks again
    // with a buffer that fits (as the SDK does).
    let module = scripted("(drop (call $respond (i32.const 1130) (i32.const 6)))").replace(
        "(local.set $n (call $request (i32.const 4096) (i32.const 60000)))",
        "(local.set $n (call $request (i32.const 4096) (i32.const 16)))
  (if (i32.and (i32.gt_u (local.get $n) (i32.const 16))
               (i32.lt_u (local.get $n) (i32.const 0xffffff9b)))
    (then (local.set $n (call $request (i32.const 4096) (local.get $n)))))",
    );
    let mut big = record();
    big.metadata.insert("pad", "x".repeat(1000));
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "m.wasm", &module);
    let plugin = WasmProcessorPlugin::load(&path, limits()).await.unwrap();
    let mut processor = plugin.configure(&Settings::new()).unwrap();
    processor.open().await.unwrap();
    let mut records = vec![big];
    let mut outcomes = vec![Outcome::Keep];
    processor
        .process(&mut records, &mut outcomes)
        .await
        .unwrap();
    assert_eq!(outcomes, [Outcome::Drop]);
}

/// A module whose Process sends the `HTTPRequest` `request` through `http_request` with a
/// buffer just as large as the request, grows it when the host answers a larger size (as
/// the SDK does) and asks again; it filters the record when the second answer has the
/// size announced by the first, and fails the record when the first answer is the error
/// code `error` (0: none expected).
fn http_caller(request: &[u8], error: u32) -> String {
    let escaped: String = request.iter().map(|b| format!("\\{b:02x}")).collect();
    let size = request.len();
    scripted(&format!(
        "(local.set $n (call $http (i32.const 70000) (i32.const {size})))
        (if (i32.eq (local.get $n) (i32.const {error}))
          (then (drop (call $respond (i32.const 1400) (i32.const 11))) (br $done)))
        (if (i32.and (i32.gt_u (local.get $n) (i32.const {size}))
                     (i32.lt_u (local.get $n) (i32.const 0xffffff9b)))
          (then
            (if (i32.eq (call $http (i32.const 70000) (local.get $n)) (local.get $n))
              (then (drop (call $respond (i32.const 1130) (i32.const 6))) (br $done)))))
        (drop (call $respond (i32.const 1200) (i32.const 4)))"
    ))
    .replace(
        "(memory (export \"memory\") 2)",
        &format!(
            "(import \"conduit\" \"http_request\" (func $http (param i32 i32) (result i32)))
  (memory (export \"memory\") 2)
  (data (i32.const 70000) \"{escaped}\")
  ;; CommandResponse{{process: {{records: [{{error_record: {{error: {{message: x}}}}}}]}}}}
  (data (i32.const 1400) \"\\2a\\09\\0a\\07\\1a\\05\\0a\\03\\12\\01x\")"
        ),
    )
}

/// Load `module` with egress open, configure it with `settings`, process one record.
async fn process_with_egress(module: &str, settings: &[(&str, &str)]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "m.wasm", module);
    let open = egress::Policy::ceiling(true, &[], &[], Duration::ZERO, 0).unwrap();
    let plugin = WasmProcessorPlugin::load(&path, limits())
        .await
        .unwrap()
        .with_egress(open);
    let settings: Settings = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut processor = plugin.configure(&settings).unwrap();
    processor.open().await.unwrap();
    let mut records = vec![record()];
    let mut outcomes = vec![Outcome::Keep];
    processor
        .process(&mut records, &mut outcomes)
        .await
        .unwrap();
    outcomes.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_answers_are_parked_until_the_buffer_fits() {
    use prost::Message;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        for stream in listener.incoming().flatten() {
            let mut reader = std::io::BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let body = "y".repeat(500);
            let _ = (&stream).write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: 500\r\nconnection: close\r\n\r\n{body}"
                )
                .as_bytes(),
            );
        }
    });
    let request = egress::wire::HttpRequest {
        method: "GET".into(),
        url: format!("http://127.0.0.1:{port}/"),
        ..Default::default()
    }
    .encode_to_vec();
    let allow = format!("http://127.0.0.1:{port}");
    let outcome =
        process_with_egress(&http_caller(&request, 0), &[("sdk.egress.allow", &allow)]).await;
    assert_eq!(outcome, Outcome::Drop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_is_refused_with_the_sdk_codes() {
    use prost::Message;
    let request = egress::wire::HttpRequest {
        url: "http://127.0.0.1:9/".into(),
        ..Default::default()
    }
    .encode_to_vec();
    // Not opted in: egress disabled.
    let outcome =
        process_with_egress(&http_caller(&request, egress::code::EGRESS_DISABLED), &[]).await;
    assert!(matches!(outcome, Outcome::Fail(_)), "{outcome:?}");
    // Opted in for another port: forbidden.
    let outcome = process_with_egress(
        &http_caller(&request, egress::code::FORBIDDEN),
        &[("sdk.egress.allow", "http://127.0.0.1:10")],
    )
    .await;
    assert!(matches!(outcome, Outcome::Fail(_)), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_egress_settings_fail_configure_and_never_reach_the_module() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "m.wasm", &scripted(""));
    let plugin = WasmProcessorPlugin::load(&path, limits()).await.unwrap();
    let mut settings = Settings::new();
    settings.insert("sdk.egress.allow".into(), "*.example.com".into());
    let error = plugin.configure(&settings).err().unwrap().to_string();
    assert!(
        error.contains("sdk.egress.allow") && error.contains("wildcard"),
        "{error}"
    );
}
