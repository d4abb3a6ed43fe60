//! `culvert run` settings from a YAML config file, with flags and environment variables
//! taking precedence, and clear errors for bad files.

use crate::harness::Server;
use std::path::Path;
use std::process::Command;

fn culvert(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_culvert"));
    command
        .current_dir(dir)
        .env_remove("CULVERT_LOG_FORMAT")
        .env_remove("CULVERT_DB_TYPE");
    command
}

#[test]
fn config_file_sets_what_flags_and_env_do_not() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("culvert.yaml"),
        "# test settings\n\
         db:\n  type: rocksdb\n  rocksdb:\n    path: ./from-file\n  fsync: false\n\
         api:\n  grpc:\n    address: 127.0.0.1:0\n  http:\n    address: 127.0.0.1:0\n\
         log:\n  format: json\n  level: debug\n\
         preview:\n  pipeline-arch-v2: true\n",
    )
    .unwrap();
    // The file is found at the default path (the working directory); the flag beats it for
    // the data path, the environment beats it for the log level.
    let mut command = culvert(dir.path());
    command
        .args(["run", "--db.rocksdb.path", "./from-flag"])
        .env("CULVERT_LOG_LEVEL", "info");
    let mut server = Server::spawn(command);
    let warning = server.wait_for_line("unknown key");
    assert!(warning.contains("preview.pipeline-arch-v2"), "{warning}");
    server.http_address();
    let ready = server.wait_for_line("culvert ready");
    let v: serde_json::Value = serde_json::from_str(&ready).expect("JSON log lines from the file");
    assert_eq!(v["fields"]["db.path"], "./from-flag");
    assert!(
        !server.seen.iter().any(|l| l.contains("\"DEBUG\"")),
        "the environment's log level wins over the file's"
    );
    server.terminate();
    assert!(server.wait().success());
    assert!(dir.path().join("from-flag").is_dir());
    assert!(!dir.path().join("from-file").exists());
}

#[test]
fn bad_config_files_are_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    let run = |contents: &str| {
        std::fs::write(&file, contents).unwrap();
        let output = culvert(dir.path())
            .args(["run", "--config.path"])
            .arg(&file)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run("log:\n  format: xml\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("xml") && stderr.contains("log.format"),
        "{stderr}"
    );
    let (code, stderr) = run("api: [1, 2]\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("api"), "{stderr}");
    let (code, stderr) = run("db: {type: inmemory\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("parsing the config file"), "{stderr}");
    // Error-recovery settings are checked as Conduit checks them.
    let output = culvert(dir.path())
        .args([
            "run",
            "--pipelines.error-recovery.min-delay",
            "5s",
            "--pipelines.error-recovery.max-delay",
            "1s",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("\"min-delay\" should be smaller than \"max-delay\""),
        "{stderr}"
    );
    let output = culvert(dir.path())
        .args(["run", "--pipelines.error-recovery.min-delay", "soon"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    // A Confluent schema registry needs its URL, and its credentials.
    let (code, stderr) = run("schema-registry:\n  type: confluent\n");
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("schema-registry.confluent.connection-string is required"),
        "{stderr}"
    );
    let (code, stderr) = run(
        "schema-registry:\n  type: confluent\n  confluent:\n    connection-string: http://127.0.0.1:1\n    auth:\n      type: basic\n      basic:\n        username: u\n",
    );
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("schema-registry.confluent.auth.basic.password is required"),
        "{stderr}"
    );
    // A config file named explicitly must exist.
    let output = culvert(dir.path())
        .args(["run", "--config.path", "missing.yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.yaml"));
}
