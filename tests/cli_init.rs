//! `culvert init` and `culvert quickstart`: the working directory they write validates,
//! and a server started in it runs the sample pipeline; files are never overwritten
//! without --force.

use crate::harness::{culvert, Server};
use std::process::Command;

#[test]
fn init_writes_a_directory_a_server_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("work");
    let dir_text = dir.to_str().unwrap();
    let (code, out, err) = culvert(&["init", dir_text]);
    assert_eq!(code, 0, "{out}{err}");
    for path in [
        "culvert.yaml",
        "pipelines/generator-to-log.yaml",
        "connectors",
        "processors",
    ] {
        assert!(dir.join(path).exists(), "{path} missing; {out}");
    }
    let config = std::fs::read_to_string(dir.join("culvert.yaml")).unwrap();
    assert!(config.contains("    # path: \"./data\""), "{config}");
    assert!(config.contains("  path: \"./pipelines\""), "{config}");

    // The sample validates.
    let pipelines = dir.join("pipelines");
    let (code, out, err) = culvert(&["pipelines", "validate", pipelines.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("valid (1 pipeline(s): generator-to-log)"),
        "{out}"
    );

    // Again: refused, nothing changed; with --force: rewritten.
    std::fs::write(dir.join("culvert.yaml"), "# mine\n").unwrap();
    let (code, _, err) = culvert(&["init", dir_text]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("already exist") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("culvert.yaml")).unwrap(),
        "# mine\n"
    );
    let (code, _, err) = culvert(&["init", "--force", dir_text]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("culvert.yaml")).unwrap(),
        config
    );

    // `culvert run` in the directory reads its culvert.yaml (so ./pipelines) and runs the
    // sample pipeline: records reach the log destination.
    let mut command = Command::new(env!("CARGO_BIN_EXE_culvert"));
    command
        .current_dir(&dir)
        .arg("run")
        .args(["--log.format", "json", "--db.fsync", "false"])
        .args(["--api.grpc.address", "127.0.0.1:0"])
        .args(["--api.http.address", "127.0.0.1:0"]);
    let mut server = Server::spawn(command);
    server.wait_for_line("pipeline started");
    let line = server.wait_for_line("sample record");
    assert!(
        line.contains("generator-to-log:example-destination"),
        "{line}"
    );
    server.terminate();
    assert!(server.wait().success());
    assert!(dir.join("data").is_dir(), "the data directory is ./data");
}

#[test]
fn quickstart_runs_the_demo_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let mut command = Command::new(env!("CARGO_BIN_EXE_culvert"));
    command
        .args(["quickstart", dir.to_str().unwrap(), "--json"])
        // Free ports (the server inherits the environment), not the defaults.
        .env("CULVERT_API_GRPC_ADDRESS", "127.0.0.1:0")
        .env("CULVERT_API_HTTP_ADDRESS", "127.0.0.1:0");
    let mut server = Server::spawn(command);
    server.wait_for_line("pipeline started");
    server.wait_for_line("sample record");
    assert!(!dir.join("data").exists(), "state is in memory");
    // SIGTERM is passed on to the server, which drains: both exit 0.
    server.terminate();
    assert!(server.wait().success());
    assert!(
        dir.join("culvert.yaml").exists(),
        "a given directory is kept"
    );
}

/// `pipelines init`: the demo it writes runs (dry-run prints its records), a template
/// from the gallery validates, the file is never overwritten without --force, and --json
/// is Conduit's envelope.
#[test]
fn pipelines_init_writes_files_that_validate_and_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pipelines");
    let dir_text = dir.to_str().unwrap();

    let (code, out, err) = culvert(&["pipelines", "init", "--pipelines.path", dir_text]);
    assert_eq!(code, 0, "{out}{err}");
    let demo = dir.join("demo-pipeline.yaml");
    assert!(
        out.contains(&format!("written to {}", demo.display())),
        "{out}"
    );
    let (code, out, err) = culvert(&[
        "pipelines",
        "dry-run",
        demo.to_str().unwrap(),
        "--records",
        "2",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let records: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{out}");
    assert!(
        records[0].to_string().contains("scheduledDeparture"),
        "{out}"
    );

    // Again: refused with Conduit's reason, the file kept.
    let before = std::fs::read_to_string(&demo).unwrap();
    std::fs::write(&demo, "# mine\n").unwrap();
    let (code, _, err) = culvert(&["pipelines", "init", "--pipelines.path", dir_text]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("pipelines.init_destination_exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&demo).unwrap(), "# mine\n");
    let (code, _, err) = culvert(&["pipelines", "init", "--pipelines.path", dir_text, "--force"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&demo).unwrap(), before);

    // A template under another name, as JSON.
    let (code, out, err) = culvert(&[
        "pipelines",
        "init",
        "orders-cdc",
        "--template",
        "postgres-cdc-kafka",
        "--pipelines.path",
        dir_text,
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let envelope: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(envelope["command"], "pipelines.init");
    assert_eq!(envelope["ok"], true);
    assert_eq!(envelope["summary"]["written"], true);
    assert_eq!(envelope["result"]["template"], "postgres-cdc-kafka");
    assert_eq!(envelope["result"]["pipelineName"], "orders-cdc");
    let file = dir.join("orders-cdc.yaml");
    assert_eq!(
        envelope["result"]["config"],
        std::fs::read_to_string(&file).unwrap()
    );
    let (code, out, err) = culvert(&["pipelines", "validate", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("orders-cdc"), "{out}");

    // Flags that contradict each other are a usage error; a failure in JSON is an envelope.
    let (code, _, err) = culvert(&[
        "pipelines",
        "init",
        "--template",
        "generator-log",
        "--source",
        "postgres",
    ]);
    assert_eq!(code, 2, "{err}");
    let (code, out, _) = culvert(&["pipelines", "init", "--template", "nope", "--json"]);
    assert_eq!(code, 2);
    let envelope: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(envelope["ok"], false);
    assert_eq!(envelope["error"]["code"], "pipelines.init_unknown_template");
}
