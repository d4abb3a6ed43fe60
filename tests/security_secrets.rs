//! Secrets never appear in clear: a PostgreSQL password given over the API, in pipeline
//! files (literal and `${VAR}`) and by import is found nowhere afterwards — not in any API
//! answer, the server's log, the event-log tools' output, an export, nor any file of the
//! data directory — while every pipeline still connects with the real password (the
//! PostgreSQL server checks it).

use crate::harness::{culvert, data_dir, json_lines, wait_until, Server};
use crate::http_client::{call, request};
use crate::pg::Postgres;
use std::path::Path;

const SETUP: &str = "CREATE TABLE users (id int PRIMARY KEY, name text); \
    ALTER TABLE users REPLICA IDENTITY FULL; \
    INSERT INTO users (id, name) VALUES (1, 'alice'), (2, 'bob'), (3, 'carol');";

/// A pipeline document reading `users` through Conduit's postgres connector into a file.
fn pipeline_yaml(id: &str, url: &str, out: &Path) -> String {
    format!(
        "version: \"2.2\"\npipelines:\n  - id: {id}\n    status: running\n    connectors:\n      \
         - id: source\n        type: source\n        plugin: standalone:postgres@v0.14.2\n        \
         settings:\n          url: \"{url}\"\n          tables: users\n          cdcMode: logrepl\n          \
         snapshotMode: initial\n          logrepl.slotName: {id}_slot\n          \
         logrepl.publicationName: {id}_pub\n      - id: destination\n        type: destination\n        \
         plugin: builtin:file\n        settings:\n          path: {}\n",
        out.display()
    )
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_password_given_every_way_is_found_nowhere_and_the_pipelines_still_run_with_it() {
    let secret = format!("Pw-{:016x}-never-printed", rand_u64());
    let pg = Postgres::start_with_password(&secret);
    pg.sql("postgres", "CREATE DATABASE users_db");
    pg.sql("users_db", SETUP);
    let url = pg.url("users_db");
    assert!(url.contains(&secret));

    let (dir, data) = data_dir();
    let connectors = crate::standalone::connectors_with_postgres(dir.path());
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    let out = |name: &str| dir.path().join(format!("{name}.jsonl"));
    // A pipeline file with the URL written out, and one with `${PG_URL}`.
    std::fs::write(
        pipelines.join("literal.yaml"),
        pipeline_yaml("literal", &url, &out("literal")),
    )
    .unwrap();
    std::fs::write(
        pipelines.join("env.yaml"),
        pipeline_yaml("env", "${PG_URL}", &out("env")),
    )
    .unwrap();
    let key_file = dir.path().join("secrets.key");
    let mut server = Server::start_with_env(
        &data,
        &[
            "--pipelines.path",
            pipelines.to_str().unwrap(),
            "--connectors.path",
            connectors.to_str().unwrap(),
            "--secrets.key-file",
            key_file.to_str().unwrap(),
        ],
        &[("PG_URL", url.as_ref())],
    );
    let grpc = server.grpc_address();
    let http = server.http_address();

    // Over the API.
    let pipeline = call(
        &http,
        "POST",
        "/v1/pipelines",
        Some(serde_json::json!({"config": {"name": "api"}})),
    );
    let api_id = pipeline["id"].as_str().unwrap().to_owned();
    let source = call(
        &http,
        "POST",
        "/v1/connectors",
        Some(serde_json::json!({
            "type": "TYPE_SOURCE",
            "plugin": "standalone:postgres@v0.14.2",
            "pipelineId": api_id,
            "config": {"name": "source", "settings": {
                "url": url,
                "tables": "users",
                "cdcMode": "logrepl",
                "snapshotMode": "initial",
                "logrepl.slotName": "api_slot",
                "logrepl.publicationName": "api_pub",
            }},
        })),
    );
    let api_source = source["id"].as_str().unwrap().to_owned();
    assert_eq!(source["config"]["settings"]["url"], "***", "{source}");
    assert_eq!(source["config"]["settings"]["tables"], "users", "{source}");
    call(
        &http,
        "POST",
        "/v1/connectors",
        Some(serde_json::json!({
            "type": "TYPE_DESTINATION",
            "plugin": "builtin:file",
            "pipelineId": api_id,
            "config": {"name": "destination", "settings": {"path": out("api").to_str().unwrap()}},
        })),
    );
    // A client that writes back what it read (`***` for the URL) keeps the real URL: the
    // plugin validates the stored value, and the pipeline below connects with it.
    let mut config = source["config"].clone();
    config["settings"]["snapshotMode"] = "initial".into();
    let updated = call(
        &http,
        "PUT",
        &format!("/v1/connectors/{api_source}"),
        Some(serde_json::json!({"config": config})),
    );
    assert_eq!(updated["config"]["settings"]["url"], "***", "{updated}");
    call(
        &http,
        "POST",
        &format!("/v1/pipelines/{api_id}/start"),
        None,
    );

    // By import (ApplyPipeline through the CLI).
    let import = dir.path().join("import.yaml");
    std::fs::write(&import, pipeline_yaml("imported", &url, &out("imported"))).unwrap();
    let (code, stdout, stderr) = culvert(&[
        "pipelines",
        "import",
        import.to_str().unwrap(),
        "--grpc.address",
        &grpc,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (status, _) =
        crate::http_client::call_any(&http, "POST", "/v1/pipelines/imported/start", None);
    assert!(status == 200 || status == 400, "start imported: {status}");

    // Every pipeline read its snapshot: each connected with the real password.
    for name in ["literal", "env", "api", "imported"] {
        wait_until(&format!("the snapshot of {name}"), || {
            json_lines(&out(name)).len() >= 3
        });
    }

    // What the API answers.
    let mut seen: Vec<(String, Vec<u8>)> = Vec::new();
    let mut get = |what: &str, path: &str| {
        let reply = request(&http, "GET", path, &[], None);
        seen.push((format!("{what} {path}"), reply.body.clone()));
    };
    for path in [
        "/v1/pipelines".to_owned(),
        "/v1/connectors".to_owned(),
        "/v1/processors".to_owned(),
        format!("/v1/pipelines/{api_id}"),
        format!("/v1/connectors/{api_source}"),
        "/v1/connectors/literal:source".to_owned(),
        "/v1/connectors/env:source".to_owned(),
        "/v1/connectors/imported:source".to_owned(),
        "/v1/events?limit=1000".to_owned(),
        format!("/v1/events/at/{api_source}"),
        "/v1/events/at/literal:source".to_owned(),
        format!("/v1/events/diff/{api_source}"),
    ] {
        get("HTTP", &path);
    }
    // The CLI (gRPC) and an export of each pipeline.
    for args in [
        vec!["connectors", "ls", "--json"],
        vec!["connectors", "describe", &api_source, "--json"],
        vec!["pipelines", "describe", "literal", "--json"],
        vec!["pipelines", "export", "literal"],
        vec!["pipelines", "export", "env"],
        vec!["pipelines", "export", &api_id],
        vec!["pipelines", "export", "imported"],
    ] {
        let mut full = args.clone();
        full.extend(["--grpc.address", &grpc]);
        let (code, stdout, stderr) = culvert(&full);
        assert_eq!(code, 0, "{args:?}: {stdout}{stderr}");
        seen.push((
            format!("culvert {args:?}"),
            format!("{stdout}{stderr}").into_bytes(),
        ));
    }
    let export = &seen
        .iter()
        .find(|(w, _)| w.contains("\"export\", \"literal\""))
        .unwrap()
        .1;
    assert!(
        contains(export, b"culvert:sealed:v1:"),
        "an export keeps the sealed value: {}",
        String::from_utf8_lossy(export)
    );

    server.terminate();
    assert!(server.wait().success());
    seen.push(("server log".into(), server.seen.join("\n").into_bytes()));

    // The event-log tools, on the stopped server's data directory.
    let data_flag = ["--db.rocksdb.path", data.to_str().unwrap()];
    let now = chrono::Utc::now().to_rfc3339();
    for args in [
        vec!["events", "ls"],
        vec!["events", "ls", "--json"],
        vec!["audit", &api_source],
        vec!["audit", "literal:source", "--json"],
        vec!["audit", "imported:source"],
        vec!["at", "--time", &now, "connectors", "describe", &api_source],
        vec!["at", "--time", &now, "connectors", "describe", "env:source"],
    ] {
        let mut full = args.clone();
        full.extend(data_flag);
        let (code, stdout, stderr) = culvert(&full);
        assert_eq!(code, 0, "{args:?}: {stdout}{stderr}");
        seen.push((
            format!("culvert {args:?}"),
            format!("{stdout}{stderr}").into_bytes(),
        ));
    }

    // Every file of the data directory: SSTs, WAL, manifest, options.
    for file in files(&data) {
        seen.push((file.display().to_string(), std::fs::read(&file).unwrap()));
    }

    let leaks: Vec<&String> = seen
        .iter()
        .filter(|(_, bytes)| contains(bytes, secret.as_bytes()))
        .map(|(what, _)| what)
        .collect();
    assert!(leaks.is_empty(), "the secret leaked into: {leaks:#?}");
    assert!(seen.len() > 30, "looked at {} outputs", seen.len());
}

/// A random number from the OS (no extra crate).
fn rand_u64() -> u64 {
    use std::io::Read;
    let mut buf = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    u64::from_le_bytes(buf)
}

/// The number of keys in a key file.
fn keys_in(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count()
}

#[test]
fn a_rotation_reseals_by_appending_and_a_lost_key_stops_the_start_with_a_clear_error() {
    let (dir, data) = data_dir();
    let key_file = dir.path().join("keys").join("secrets.key");
    let flags = [
        "--secrets.key-file".to_owned(),
        key_file.to_str().unwrap().to_owned(),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let secret = format!("Bearer tok-{:016x}", rand_u64());

    let mut server = Server::start(&data, &flags);
    let http = server.http_address();
    let pipeline = call(
        &http,
        "POST",
        "/v1/pipelines",
        Some(serde_json::json!({"config": {"name": "rotating"}})),
    );
    let id = pipeline["id"].as_str().unwrap().to_owned();
    let processor = call(
        &http,
        "POST",
        "/v1/processors",
        Some(serde_json::json!({
            "plugin": "webhook.http",
            "parent": {"type": "TYPE_PIPELINE", "id": id},
            "config": {"settings": {
                "request.url": "http://127.0.0.1:9/hook",
                "headers.Authorization": secret,
            }},
        })),
    );
    let processor_id = processor["id"].as_str().unwrap().to_owned();
    assert_eq!(
        processor["config"]["settings"]["headers.Authorization"], "***",
        "{processor}"
    );
    server.terminate();
    assert!(server.wait().success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the generated key file is private");
    }
    assert_eq!(keys_in(&key_file), 1);

    let data_flag = ["--db.rocksdb.path", data.to_str().unwrap()];
    let rotate = |extra: &[&str]| {
        let mut args = vec!["secrets", "rotate"];
        args.extend(data_flag);
        args.extend(&flags);
        args.extend(extra);
        culvert(&args)
    };
    let (code, stdout, stderr) = rotate(&[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("1 settings sealed again"), "{stdout}");
    assert_eq!(
        keys_in(&key_file),
        2,
        "the old key stays for what it sealed"
    );
    let mut args = vec!["events", "ls", "--json"];
    args.extend(data_flag);
    let (code, events, stderr) = culvert(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(events.contains("ProcessorSecretsResealed"), "{events}");
    assert!(events.contains("cli:secrets-rotate"), "{events}");
    assert!(!events.contains(&secret));

    // The server starts on the rotated key ring; then only the new key is kept, and it
    // still starts.
    let (code, stdout, stderr) = rotate(&["--drop-old-keys"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(keys_in(&key_file), 1);
    let mut server = Server::start(&data, &flags);
    let http = server.http_address();
    let shown = call(
        &http,
        "GET",
        &format!("/v1/processors/{processor_id}"),
        None,
    );
    assert_eq!(shown["config"]["settings"]["headers.Authorization"], "***");
    server.terminate();
    assert!(server.wait().success());

    // Without the key file the server refuses to start, and says what to do.
    std::fs::remove_file(&key_file).unwrap();
    let mut server = Server::start(&data, &flags);
    let status = server.wait();
    assert!(!status.success());
    let said = server.seen.join("\n");
    assert!(
        said.contains("holds sealed secrets") && said.contains("restore it"),
        "{said}"
    );
    assert!(!key_file.exists(), "no new key is made over sealed secrets");

    // Another key (from the environment) is a clear error too, naming the setting.
    let other_key = {
        use base64::Engine as _;
        let bytes: Vec<u8> = (0..4).flat_map(|_| rand_u64().to_le_bytes()).collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let mut server = Server::start_with_env(
        &data,
        &flags,
        &[("CULVERT_SECRETS_KEY", other_key.as_ref())],
    );
    assert!(!server.wait().success());
    let said = server.seen.join("\n");
    assert!(
        said.contains(&format!("processor {processor_id}"))
            && said.contains("headers.Authorization")
            && said.contains("not in the key ring"),
        "{said}"
    );

    // Rotating a directory that is not a data directory: exit 3.
    let (code, _, stderr) = culvert(&["secrets", "rotate", "--db.rocksdb.path", "/nonexistent"]);
    assert_eq!(code, 3, "{stderr}");
}
