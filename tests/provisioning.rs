//! Pipeline configuration files provisioned by a real server: the pipeline runs as its file
//! says, the API may stop it but not change it, and a removed file deletes it at the next
//! start. A `--pipelines.path` that does not exist is a usage error (exit code 2).

use crate::harness::{culvert, data_dir, json_lines, wait_until, Server};
use crate::http_client::request;
use serde_json::{json, Value};
use std::path::Path;

const FILE: &str = r#"
version: "2.2"
pipelines:
  - id: provisioned
    status: running
    description: from a file
    connectors:
      - id: gen
        type: source
        plugin: builtin:generator
        settings: { format.type: structured, format.options.id: int, recordCount: "50" }
        processors:
          - id: tag
            plugin: field.set
            settings: { field: .Metadata.via, value: "${VIA}" }
      - id: out
        type: destination
        plugin: builtin:file@v0.10.8
        settings: { path: "${OUT}" }
"#;

fn start(data: &Path, pipelines: &Path, out: &Path) -> Server {
    let pipelines = pipelines.to_str().unwrap();
    Server::start_with_env(
        data,
        &["--pipelines.path", pipelines],
        &[("VIA", "config-file".as_ref()), ("OUT", out.as_os_str())],
    )
}

fn provisioned_line(server: &Server) -> Value {
    let line = server
        .seen
        .iter()
        .find(|l| l.contains("pipelines provisioned"))
        .unwrap_or_else(|| panic!("no provisioning summary in {:#?}", server.seen));
    serde_json::from_str::<Value>(line).unwrap()["fields"].clone()
}

#[test]
fn a_file_provisions_a_running_pipeline_the_api_cannot_change_and_removing_it_deletes_it() {
    let (dir, data) = data_dir();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(pipelines.join("provisioned.yaml"), FILE).unwrap();
    let out = dir.path().join("out.jsonl");

    let mut server = start(&data, &pipelines, &out);
    let address = server.http_address();
    let summary = provisioned_line(&server);
    assert_eq!(
        (summary["created"].as_u64(), summary["errors"].as_u64()),
        (Some(1), Some(0))
    );

    // It runs: 50 records, tagged by the connector's processor with the env variable.
    wait_until("the provisioned pipeline delivered 50 records", || {
        json_lines(&out).len() >= 50
    });
    let records = json_lines(&out);
    assert_eq!(records.len(), 50);
    assert!(records
        .iter()
        .all(|r| r["metadata"]["via"] == "config-file"));

    let get = request(&address, "GET", "/v1/pipelines/provisioned", &[], None);
    assert_eq!(get.status, 200);
    let pipeline = get.json();
    assert_eq!(pipeline["state"]["status"], "STATUS_RUNNING");
    assert_eq!(pipeline["config"]["name"], "provisioned");
    assert_eq!(
        pipeline["connectorIds"],
        json!(["provisioned:gen", "provisioned:out"])
    );

    // Changing it over the API is refused with Conduit's error; stopping it is allowed.
    let body = serde_json::to_vec(&json!({"config": {"name": "renamed"}})).unwrap();
    let refused = request(
        &address,
        "PUT",
        "/v1/pipelines/provisioned",
        &[],
        Some(&body),
    );
    assert_eq!(refused.status, 400, "{}", refused.text());
    let error = refused.json();
    assert_eq!(error["code"], 9);
    assert!(
        error["message"].as_str().unwrap().starts_with(
            "entity was provisioned by a config file and cannot be mutated through the API"
        ),
        "{error}"
    );
    let refused = request(
        &address,
        "DELETE",
        "/v1/connectors/provisioned:out",
        &[],
        None,
    );
    assert_eq!(refused.status, 400, "{}", refused.text());
    let stop = request(
        &address,
        "POST",
        "/v1/pipelines/provisioned/stop",
        &[],
        None,
    );
    assert_eq!(stop.status, 200, "{}", stop.text());
    server.terminate();
    assert!(server.wait().success());

    // Its file is gone: the next start deletes it.
    std::fs::remove_file(pipelines.join("provisioned.yaml")).unwrap();
    let mut server = start(&data, &pipelines, &out);
    let address = server.http_address();
    assert_eq!(provisioned_line(&server)["deleted"].as_u64(), Some(1));
    let gone = request(&address, "GET", "/v1/pipelines/provisioned", &[], None);
    assert_eq!(gone.status, 404, "{}", gone.text());
    server.terminate();
    assert!(server.wait().success());
}

#[test]
fn a_pipelines_path_that_does_not_exist_is_a_usage_error() {
    let (dir, data) = data_dir();
    let missing = dir.path().join("no-such-dir");
    let mut server = start(&data, &missing, &dir.path().join("out"));
    let status = server.wait();
    assert_eq!(status.code(), Some(2), "{:#?}", server.seen);
    assert!(
        server
            .seen
            .iter()
            .any(|l| l.contains("\"pipelines.path\" config value is invalid")),
        "{:#?}",
        server.seen
    );
}

const DOCUMENT: &str = r#"
version: "2.2"
pipelines:
  - id: roundtrip
    status: stopped
    name: Round trip
    description: "exported, then imported into a fresh server"
    connectors:
      - id: gen
        type: source
        plugin: builtin:generator
        settings:
          format.type: structured
          format.options.id: int
          operations: "create,update"
        processors:
          - id: tag
            plugin: field.set
            condition: '{{ eq .Operation "update" }}'
            settings: { field: .Metadata.kind, value: "changed" }
            workers: 2
      - id: out
        type: destination
        plugin: builtin:log
        settings: { level: info }
    processors:
      - id: drop
        plugin: filter
        condition: '{{ eq .Metadata.kind "never" }}'
    dead-letter-queue:
      plugin: builtin:log
      settings: { level: error }
      window-size: 3
      window-nack-threshold: 1
"#;

/// The pipeline and its children over HTTP, without what differs between servers (times).
fn snapshot(address: &str, id: &str) -> Value {
    let get = |path: String| {
        let reply = request(address, "GET", &path, &[], None);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        let mut value = reply.json();
        if let Some(object) = value.as_object_mut() {
            object.remove("createdAt");
            object.remove("updatedAt");
        }
        value
    };
    let pipeline = get(format!("/v1/pipelines/{id}"));
    let mut processors = vec![];
    let mut connectors = vec![];
    for c in pipeline["connectorIds"].as_array().unwrap() {
        let connector = get(format!("/v1/connectors/{}", c.as_str().unwrap()));
        for p in connector["processorIds"].as_array().unwrap() {
            processors.push(get(format!("/v1/processors/{}", p.as_str().unwrap())));
        }
        connectors.push(connector);
    }
    for p in pipeline["processorIds"].as_array().unwrap() {
        processors.push(get(format!("/v1/processors/{}", p.as_str().unwrap())));
    }
    let dlq = get(format!("/v1/pipelines/{id}/dead-letter-queue"));
    json!({"pipeline": pipeline, "connectors": connectors, "processors": processors, "dlq": dlq})
}

#[test]
fn an_exported_pipeline_imported_into_a_fresh_server_is_identical() {
    let (dir, data_a) = data_dir();
    let file = dir.path().join("roundtrip.yaml");
    std::fs::write(&file, DOCUMENT).unwrap();
    let mut a = Server::start(&data_a, &[]);
    let grpc_a = a.grpc_address();
    let http_a = a.http_address();
    let (code, stdout, stderr) = culvert(&[
        "pipelines",
        "import",
        file.to_str().unwrap(),
        "--grpc.address",
        &grpc_a,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("create pipeline roundtrip"), "{stdout}");
    let (code, exported, stderr) = culvert(&[
        "pipelines",
        "export",
        "roundtrip",
        "--grpc.address",
        &grpc_a,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        exported.starts_with("version: \"2.2\"\npipelines:\n  - id: \"roundtrip\""),
        "{exported}"
    );
    let exported_file = dir.path().join("exported.yaml");
    std::fs::write(&exported_file, &exported).unwrap();

    let data_b = dir.path().join("data-b");
    let mut b = Server::start(&data_b, &[]);
    let grpc_b = b.grpc_address();
    let http_b = b.http_address();
    let (code, stdout, stderr) = culvert(&[
        "pipelines",
        "import",
        exported_file.to_str().unwrap(),
        "--grpc.address",
        &grpc_b,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, again, _) = culvert(&[
        "pipelines",
        "export",
        "roundtrip",
        "--grpc.address",
        &grpc_b,
    ]);
    assert_eq!(code, 0);
    assert_eq!(again, exported, "the same file from both servers");
    assert_eq!(
        snapshot(&http_a, "roundtrip"),
        snapshot(&http_b, "roundtrip")
    );

    // Importing the same file again changes nothing.
    let (code, stdout, _) = culvert(&[
        "pipelines",
        "import",
        exported_file.to_str().unwrap(),
        "--grpc.address",
        &grpc_b,
    ]);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), "pipeline roundtrip: up to date");

    // Exit codes: an unknown id and a file with errors are usage errors (2), no server an
    // environment error (3).
    let (code, _, stderr) = culvert(&["pipelines", "export", "nope", "--grpc.address", &grpc_b]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("nope"), "{stderr}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "version: \"2.2\"\npipelines:\n  - id: x\n    status: Running\n",
    )
    .unwrap();
    let (code, _, stderr) = culvert(&[
        "pipelines",
        "import",
        bad.to_str().unwrap(),
        "--grpc.address",
        &grpc_b,
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("bad.yaml:4:13: error: /pipelines/0/status: \"status\" is invalid"),
        "{stderr}"
    );
    a.terminate();
    assert!(a.wait().success());
    let (code, _, stderr) = culvert(&[
        "pipelines",
        "export",
        "roundtrip",
        "--grpc.address",
        &grpc_a,
    ]);
    assert_eq!(code, 3, "{stderr}");
    b.terminate();
    assert!(b.wait().success());
}
