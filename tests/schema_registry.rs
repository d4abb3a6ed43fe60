//! `schema-registry.type: confluent`: the server registers the schemas `avro.encode` infers
//! in an external Confluent schema registry (here a minimal one the test serves on
//! loopback, answering the REST calls Confluent's registry answers), with the configured
//! credentials, and the records carry the id that registry gave.

use crate::harness::{data_dir, wait_until, written_records, Server};
use culvert_domain::Data;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

const FILE: &str = r#"
version: "2.2"
pipelines:
  - id: avro
    status: running
    connectors:
      - id: in
        type: source
        plugin: builtin:file
        settings: { path: "${IN}" }
      - id: out
        type: destination
        plugin: builtin:file
        settings: { path: "${OUT}" }
    processors:
      - id: encode
        plugin: avro.encode
        settings:
          schema.strategy: autoRegister
          schema.autoRegister.subject: users-value
"#;

/// The id the fake registry gives every schema.
const ID: u32 = 4242;

/// One request: request line, the authorization header, the body.
type Seen = (String, String, String);

/// A registry on loopback answering registration and lookup; returns its URL and what it
/// was asked.
fn fake_registry() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let request = line.trim_end().to_owned();
                    let (mut length, mut auth) = (0, String::new());
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        let (name, value) = header.split_once(':').unwrap();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap(),
                            "authorization" => auth = value.trim().to_owned(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let body = String::from_utf8(body).unwrap();
                    let answer = if request.starts_with("POST /subjects/users-value/versions ") {
                        format!(r#"{{"id":{ID}}}"#)
                    } else if request.starts_with("POST /subjects/users-value ") {
                        format!(r#"{{"subject":"users-value","id":{ID},"version":1,"schema":"x"}}"#)
                    } else {
                        String::from(r#"{"error_code":40401,"message":"not found"}"#)
                    };
                    log.lock().unwrap().push((request, auth, body));
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    reader.get_mut().write_all(reply.as_bytes()).unwrap();
                }
            });
        }
    });
    (url, seen)
}

#[test]
fn avro_encode_registers_in_a_confluent_registry_with_credentials() {
    let (registry, seen) = fake_registry();
    let (dir, data) = data_dir();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(pipelines.join("avro.yaml"), FILE).unwrap();
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");
    let lines: Vec<String> = (1..=100)
        .map(|n| format!(r#"{{"id":{n},"name":"user-{n}"}}"#))
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();

    let mut server = Server::start_with_env(
        &data,
        &[
            "--pipelines.path",
            pipelines.to_str().unwrap(),
            "--schema-registry.type",
            "confluent",
            "--schema-registry.confluent.connection-string",
            &registry,
            "--schema-registry.confluent.auth.type",
            "bearer",
        ],
        &[
            ("IN", input.as_os_str()),
            ("OUT", out.as_os_str()),
            (
                "CULVERT_SCHEMA_REGISTRY_CONFLUENT_AUTH_BEARER_TOKEN",
                std::ffi::OsStr::new("s3cr3t"),
            ),
        ],
    );
    wait_until("every record written", || {
        written_records(&out).len() >= 100
    });
    for record in written_records(&out) {
        let Some(Data::Raw(after)) = &record.payload.after else {
            panic!("{record:?}");
        };
        assert_eq!(after[0], 0, "the magic byte");
        assert_eq!(
            u32::from_be_bytes(after[1..5].try_into().unwrap()),
            ID,
            "the id the external registry gave"
        );
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        2,
        "registered once and looked up once: {seen:?}"
    );
    assert!(seen[0]
        .0
        .starts_with("POST /subjects/users-value/versions "));
    assert_eq!(seen[0].1, "Bearer s3cr3t");
    let body: serde_json::Value = serde_json::from_str(&seen[0].2).unwrap();
    let schema: serde_json::Value = serde_json::from_str(body["schema"].as_str().unwrap()).unwrap();
    assert_eq!(schema["name"], "record");
    server.terminate();
    assert!(server.wait().success());
}
