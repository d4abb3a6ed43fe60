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

/// A conduit.yaml as `conduit init` writes it in `dir`: every setting at its default, with
/// absolute paths and empty lists as `'[]'`; the API addresses are `api` (Go's `:PORT`
/// spelling or an address).
fn conduit_init_yaml(dir: &Path, api: &str) -> String {
    let dir = dir.display();
    format!(
        "config:\n  path: {dir}/conduit.yaml\n\
         db:\n  type: badger\n  badger:\n    path: {dir}/conduit.db\n  postgres:\n    table: conduit_kv_store\n\
         \x20 sqlite:\n    path: {dir}/conduit.db\n    table: conduit_kv_store\n\
         api:\n  enabled: true\n  http:\n    address: {api}\n    cors:\n      allowed-origins: '[]'\n\
         \x20   ui:\n      enabled: true\n  grpc:\n    address: {api}\n  allow-live-restart-apply: false\n\
         log:\n  level: info\n  format: cli\n\
         connectors:\n  path: {dir}/connectors\n  max-receive-record-size: 4194304\n\
         install:\n  allow-unsigned: false\n  max-staleness: 168h0m0s\n  allow-stale-bundle: false\n\
         processors:\n  path: {dir}/processors\n  egress:\n    enabled: false\n    allow: '[]'\n\
         \x20   secret-refs: '[]'\n    timeout: 0s\n    max-response-bytes: 0\n\
         pipelines:\n  path: {dir}/pipelines\n  exit-on-degraded: false\n  error-recovery:\n\
         \x20   min-delay: 1s\n    max-delay: 10m0s\n    backoff-factor: 2\n    max-retries: -1\n\
         \x20   max-retries-window: 5m0s\n\
         schema-registry:\n  type: builtin\n  confluent:\n    auth:\n      type: none\n\
         preview:\n  pipeline-arch-v2: false\n  pipeline-arch-v2-disable-metrics: false\n\
         dev:\n  enabled: false\n  json: false\n"
    )
}

/// A generator -> file pipeline file moving `records` records into `out`.
fn generator_to_file(out: &Path, records: usize) -> String {
    format!(
        "version: \"2.2\"\npipelines:\n  - id: moved\n    status: running\n    connectors:\n\
         \x20     - id: gen\n        type: source\n        plugin: builtin:generator\n\
         \x20       settings:\n          format.type: structured\n          format.options.id: int\n\
         \x20         operations: create\n          recordCount: \"{records}\"\n\
         \x20     - id: out\n        type: destination\n        plugin: builtin:file\n\
         \x20       settings:\n          path: {}\n",
        out.display()
    )
}

/// Wait until `out` holds `expected` records, then check none is lost or duplicated.
fn wait_for_records(out: &Path, expected: usize) {
    let mut lines = crate::harness::LineCounter::default();
    crate::harness::wait_until("every generated record in the file", || {
        lines.count(out) >= expected
    });
    let records = crate::harness::written_records(out);
    let positions: std::collections::BTreeSet<Vec<u8>> =
        records.iter().map(|r| r.position.0.clone()).collect();
    assert_eq!(records.len(), expected, "no record duplicated");
    assert_eq!(positions.len(), expected, "every record unique");
}

#[test]
fn a_conduit_working_directory_starts_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("conduit.yaml"),
        conduit_init_yaml(dir.path(), ":0"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("pipelines")).unwrap();
    let out = dir.path().join("out.jsonl");
    std::fs::write(
        dir.path().join("pipelines/moved.yaml"),
        generator_to_file(&out, 5_000),
    )
    .unwrap();
    // Conduit's variables are read (the log format), Culvert's win over them (the level).
    let mut command = culvert(dir.path());
    command
        .args([
            "run",
            "--api.auth.allow-unauthenticated",
            "--db.fsync",
            "false",
        ])
        .env("CONDUIT_LOG_FORMAT", "json")
        .env("CONDUIT_LOG_LEVEL", "debug")
        .env("CULVERT_LOG_LEVEL", "info");
    let mut server = Server::spawn(command);
    let badger = server.wait_for_line("db.type badger");
    assert!(
        badger.contains("RocksDB") && badger.contains("conduit.db is not read"),
        "{badger}"
    );
    // `:0` is Go's every-interface spelling: bound everywhere, reachable on loopback.
    let http = server.http_address();
    let port = http.rsplit(':').next().unwrap().to_owned();
    assert!(
        http.starts_with("[::]:") || http.starts_with("0.0.0.0:"),
        "{http}"
    );
    server.wait_for_line("culvert ready");
    wait_for_records(&out, 5_000);
    let health =
        crate::http_client::request(&format!("127.0.0.1:{port}"), "GET", "/healthz", &[], None);
    assert_eq!(health.status, 200, "{health:?}");
    server.terminate();
    assert!(server.wait().success());
    // Every key `conduit init` writes is known, and at Conduit's defaults needs no word;
    // the JSON format came from CONDUIT_, the level from CULVERT_.
    for quiet in ["unknown key", "has no effect", "not written"] {
        assert!(
            !server.seen.iter().any(|l| l.contains(quiet)),
            "{quiet}: {:#?}",
            server.seen
        );
    }
    let ready = server
        .seen
        .iter()
        .find(|l| l.contains("culvert ready"))
        .unwrap();
    serde_json::from_str::<serde_json::Value>(ready).expect("JSON log lines from CONDUIT_");
    assert!(!server.seen.iter().any(|l| l.contains("\"DEBUG\"")));
    // Culvert's store, at its own default; Conduit's path is left alone.
    assert!(dir.path().join("data").is_dir());
    assert!(!dir.path().join("conduit.db").exists());
}

#[test]
fn conduit_settings_culvert_cannot_honour_are_refused_before_anything_changes() {
    let dir = tempfile::tempdir().unwrap();
    let output = culvert(dir.path())
        .args(["run"])
        .env("CONDUIT_DB_TYPE", "postgres")
        .env(
            "CONDUIT_DB_POSTGRES_CONNECTION_STRING",
            "postgres://u:p@127.0.0.1/db",
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("\"db.type\" config value is invalid") && stderr.contains("PostgreSQL"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("u:p@"),
        "the connection string is not echoed: {stderr}"
    );
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

#[test]
fn with_the_api_disabled_the_pipelines_run_and_nothing_listens() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    std::fs::write(
        dir.path().join("conduit.yaml"),
        format!(
            "api:\n  enabled: false\npipelines:\n  path: {}\nlog:\n  format: json\n",
            dir.path().join("moved.yaml").display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("moved.yaml"),
        generator_to_file(&out, 20_000),
    )
    .unwrap();
    let mut command = culvert(dir.path());
    command.args(["run", "--db.fsync", "false"]);
    let mut server = Server::spawn(command);
    server.wait_for_line("the API is disabled");
    server.wait_for_line("culvert ready");
    wait_for_records(&out, 20_000);
    server.terminate();
    assert!(server.wait().success());
    assert!(
        !server.seen.iter().any(|l| l.contains("API listening")),
        "{:#?}",
        server.seen
    );
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
         preview:\n  warp-drive: true\n",
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
    assert!(warning.contains("preview.warp-drive"), "{warning}");
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

#[test]
fn conduits_cli_settings_find_the_server() {
    let (_data_dir, data) = crate::harness::data_dir();
    let mut server = Server::start(&data, &[]);
    let grpc = server.grpc_address();
    let port = grpc.rsplit(':').next().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let ls = |args: &[&str], env: &[(&str, &str)]| {
        let output = Command::new(env!("CARGO_BIN_EXE_culvert"))
            .current_dir(dir.path())
            .args(["pipelines", "ls", "--json"])
            .args(args)
            // No CLI config file of the user's.
            .env("XDG_CONFIG_HOME", dir.path())
            .env_remove("CULVERT_API_GRPC_ADDRESS")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    // Conduit's flag name, and Go's `:PORT` (this machine).
    let bare = format!(":{port}");
    assert_eq!(ls(&["--api.grpc.address", &bare], &[]).0, Some(0));
    // Conduit's variable.
    assert_eq!(ls(&[], &[("CONDUIT_API_GRPC_ADDRESS", &grpc)]).0, Some(0));
    // The server's config file in the working directory, as Conduit's CLI reads it (the
    // server is not at the default address).
    std::fs::write(
        dir.path().join("conduit.yaml"),
        format!("api:\n  grpc:\n    address: \"{bare}\"\n"),
    )
    .unwrap();
    let (code, stderr) = ls(&[], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    server.terminate();
    assert!(server.wait().success());
}
