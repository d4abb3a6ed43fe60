//! `culvert config`: each setting's effective value and where it came from (default,
//! config file, environment, flag), secrets hidden; an invalid file value exits 2.

use std::process::Command;

#[test]
fn each_setting_shows_its_value_and_source() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("culvert.yaml"),
        "db:\n  type: inmemory\napi:\n  http:\n    address: 127.0.0.1:7000\n  grpc:\n    address: 127.0.0.1:7001\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_culvert"))
        .current_dir(tmp.path())
        .args([
            "config",
            "--output",
            "json",
            "--api.http.address",
            "127.0.0.1:9999",
        ])
        .env("CULVERT_LOG_LEVEL", "debug")
        .env(
            "CULVERT_SCHEMA_REGISTRY_CONFLUENT_AUTH_BASIC_PASSWORD",
            "hunter2",
        )
        .output()
        .unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(!out.contains("hunter2"), "a secret is never printed: {out}");
    let settings: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let find = |key: &str| {
        let s = settings
            .iter()
            .find(|s| s["key"] == key)
            .unwrap_or_else(|| panic!("no {key} in {out}"));
        (
            s["value"].as_str().unwrap().to_owned(),
            s["source"].as_str().unwrap().to_owned(),
        )
    };
    let pairs = |v: &str, s: &str| (v.to_owned(), s.to_owned());
    assert_eq!(find("db.type"), pairs("inmemory", "file ./culvert.yaml"));
    assert_eq!(
        find("api.grpc.address"),
        pairs("127.0.0.1:7001", "file ./culvert.yaml")
    );
    // A flag wins over the file.
    assert_eq!(
        find("api.http.address"),
        pairs("127.0.0.1:9999", "flag --api.http.address")
    );
    assert_eq!(find("log.level"), pairs("debug", "env CULVERT_LOG_LEVEL"));
    assert_eq!(find("db.rocksdb.path"), pairs("./data", "default"));
    assert_eq!(find("config.path"), pairs("./culvert.yaml", "default"));
    assert_eq!(
        find("schema-registry.confluent.auth.basic.password"),
        pairs(
            "***",
            "env CULVERT_SCHEMA_REGISTRY_CONFLUENT_AUTH_BASIC_PASSWORD"
        )
    );
    assert_eq!(find("pipelines.path"), pairs("", "unset"));

    // The table and YAML forms carry the same.
    let output = Command::new(env!("CARGO_BIN_EXE_culvert"))
        .current_dir(tmp.path())
        .args(["config", "--output", "yaml"])
        .output()
        .unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    assert!(
        out.contains("db.type: \"inmemory\"  # file ./culvert.yaml"),
        "{out}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_culvert"))
        .current_dir(tmp.path())
        .arg("config")
        .output()
        .unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    let line = out.lines().find(|l| l.starts_with("db.type ")).unwrap();
    assert!(
        line.ends_with("file ./culvert.yaml") && line.contains(" inmemory "),
        "{out}"
    );
}

#[test]
fn an_invalid_file_value_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("culvert.yaml"), "db:\n  type: bogus\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_culvert"))
        .current_dir(tmp.path())
        .arg("config")
        .output()
        .unwrap();
    let err = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("invalid value 'bogus'"), "{err}");
}

#[test]
fn conduits_file_and_variables_show_under_their_own_names() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("conduit.yaml"),
        "db:\n  type: badger\n  badger:\n    path: ./conduit.db\ndev:\n  enabled: true\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_culvert"))
        .current_dir(tmp.path())
        .args(["config", "--output", "json"])
        .env("CONDUIT_LOG_LEVEL", "warn")
        .env("CONDUIT_LOG_FORMAT", "json")
        .env("CULVERT_LOG_FORMAT", "cli")
        .env_remove("CULVERT_LOG_LEVEL")
        .output()
        .unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{out}");
    let settings: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let find = |key: &str| {
        settings.iter().find(|s| s["key"] == key).map(|s| {
            (
                s["value"].as_str().unwrap().to_owned(),
                s["source"].as_str().unwrap().to_owned(),
            )
        })
    };
    let pair = |v: &str, s: &str| Some((v.to_owned(), s.to_owned()));
    // Without a culvert.yaml, Conduit's file is read; its `dev.enabled` is the watcher.
    assert_eq!(find("config.path"), pair("./conduit.yaml", "default"));
    assert_eq!(find("db.type"), pair("badger", "file ./conduit.yaml"));
    assert_eq!(find("pipelines.watch"), pair("true", "file ./conduit.yaml"));
    // Conduit's settings Culvert only answers show when given, not otherwise.
    assert_eq!(
        find("db.badger.path"),
        pair("./conduit.db", "file ./conduit.yaml")
    );
    assert_eq!(find("dev.cpuprofile"), None);
    // CONDUIT_ is read; CULVERT_ wins when both are set.
    assert_eq!(find("log.level"), pair("warn", "env CONDUIT_LOG_LEVEL"));
    assert_eq!(find("log.format"), pair("cli", "env CULVERT_LOG_FORMAT"));
}
