//! Parity with Conduit's own Kafka connector: `conduit-connector-kafka` v0.12.5 (pinned in
//! `tests/fixtures/upstream`, built from the Go module proxy) runs as a standalone plugin
//! beside `builtin:kafka`, each in its own pipeline and consumer group, both reading the
//! same topic into a file. The two files hold the same records, field by field: operation,
//! key, payload, metadata (those the engine stamps per connector aside) and the position's
//! topic, partition and offset (the group id is each pipeline's own), in the same order.
//!
//! The topic holds records with and without keys, with structured keys, with headers, and
//! values of every kind the destination writes, put there by `builtin:kafka`'s destination.

use crate::harness::{data_dir, json_lines, wait_until, Server};
use crate::kafka::KafkaBroker;
use culvert_connectors::kafka::admin;
use culvert_domain::{Change, Data, Operation, Record};
use culvert_plugins::connector::ConnectorPlugin;
use serde_json::Value;

const RECORDS: usize = 60;

const PIPELINES: &str = r#"
version: "2.2"
pipelines:
  - id: builtin
    status: running
    connectors:
      - id: in
        type: source
        plugin: builtin:kafka
        settings: { servers: "${SERVERS}", topics: parity, groupID: parity-builtin, readFromBeginning: "true" }
      - id: out
        type: destination
        plugin: builtin:file
        settings: { path: "${OUT_DIR}/builtin.jsonl" }
  - id: standalone
    status: running
    connectors:
      - id: in
        type: source
        plugin: standalone:kafka@v0.12.5
        settings: { servers: "${SERVERS}", topics: parity, groupID: parity-standalone, readFromBeginning: "true" }
      - id: out
        type: destination
        plugin: builtin:file
        settings: { path: "${OUT_DIR}/standalone.jsonl" }
"#;

fn records() -> Vec<Record> {
    (0..RECORDS)
        .map(|n| {
            let mut metadata = culvert_domain::Metadata::new();
            if n % 3 == 0 {
                metadata.insert("kafka.header.trace", format!("t-{n}"));
                metadata.insert("kafka.header.empty", String::new());
            }
            let key = match n % 4 {
                0 => None,
                1 => Some(Data::Raw(format!("key-{n}").into_bytes())),
                2 => Some(Data::Structured(
                    serde_json::json!({"id": n, "name": format!("n{n}")})
                        .as_object()
                        .unwrap()
                        .clone()
                        .into(),
                )),
                _ => Some(Data::Raw(Vec::new())),
            };
            Record {
                operation: [Operation::Create, Operation::Update, Operation::Delete][n % 3],
                metadata,
                key,
                payload: Change {
                    before: (n % 2 == 0).then(|| Data::Raw(b"before".to_vec())),
                    after: Some(Data::Raw(format!("value {n} \u{e9}").into_bytes())),
                },
                ..Record::default()
            }
        })
        .collect()
}

fn produce(servers: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        admin::create_topic(servers, "parity", 1).await.unwrap();
        let plugin = culvert_connectors::kafka::Kafka::new();
        let settings = culvert_plugins::spec::validate(
            plugin.specification().destination.as_ref().unwrap(),
            &[
                ("servers".to_owned(), servers.to_owned()),
                ("topic".to_owned(), "parity".to_owned()),
            ]
            .into(),
        )
        .unwrap();
        let mut dest = plugin.new_destination(&settings).unwrap();
        dest.open().await.unwrap();
        let refused = dest.write_each(&records()).await.unwrap();
        assert!(refused.is_empty(), "{refused:?}");
        dest.teardown().await.unwrap();
    });
}

/// Metadata the engine or the SDK stamps per connector or per read, not the connector's
/// record.
const STAMPED: &[&str] = &[
    "conduit.source.connector.id",
    "opencdc.readAt",
    "conduit.source.plugin.name",
    "conduit.source.plugin.version",
];

fn position_text(record: &Value) -> String {
    crate::harness::decode_base64(record["position"].as_str().unwrap())
}

#[test]
fn builtin_and_conduits_kafka_source_read_the_same_records() {
    let kafka = KafkaBroker::start();
    let servers = kafka.servers();
    produce(&servers);
    let (dir, data) = data_dir();
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).unwrap();
    std::fs::copy(
        crate::standalone::upstream_connector("kafka", "v0.12.5"),
        connectors.join("kafka"),
    )
    .unwrap();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(pipelines.join("parity.yaml"), PIPELINES).unwrap();
    let mut server = Server::start_with_env(
        &data,
        &[
            "--pipelines.path",
            pipelines.to_str().unwrap(),
            "--connectors.path",
            connectors.to_str().unwrap(),
        ],
        &[
            ("SERVERS", servers.as_ref()),
            ("OUT_DIR", dir.path().as_os_str()),
        ],
    );
    let (builtin_out, standalone_out) = (
        dir.path().join("builtin.jsonl"),
        dir.path().join("standalone.jsonl"),
    );
    wait_until("both pipelines wrote every record", || {
        json_lines(&builtin_out).len() >= RECORDS && json_lines(&standalone_out).len() >= RECORDS
    });
    server.terminate();
    assert!(server.wait().success());

    let ours = json_lines(&builtin_out);
    let theirs = json_lines(&standalone_out);
    assert_eq!(ours.len(), RECORDS);
    assert_eq!(theirs.len(), RECORDS);
    for (n, (ours, theirs)) in ours.iter().zip(&theirs).enumerate() {
        for field in ["operation", "key", "payload"] {
            assert_eq!(
                ours[field], theirs[field],
                "record {n}, {field}:\n{ours}\n{theirs}"
            );
        }
        let mut a = ours["metadata"].as_object().unwrap().clone();
        let mut b = theirs["metadata"].as_object().unwrap().clone();
        for key in STAMPED {
            a.remove(*key);
            b.remove(*key);
        }
        assert_eq!(a, b, "record {n}, metadata:\n{ours}\n{theirs}");
        // What was compared is what was sent.
        assert_eq!(a["opencdc.collection"], "parity");
        if n % 3 == 0 {
            assert_eq!(a["kafka.header.trace"], format!("t-{n}"), "{ours}");
        }
        let value = crate::harness::decode_base64_bytes(ours["payload"]["after"].as_str().unwrap());
        let sent = Record::from_json(&value).expect("the value is the record sent");
        assert_eq!(sent.key, records()[n].key);
        // The position's JSON, byte for byte, but for each pipeline's own group id.
        let pa = position_text(ours).replace("parity-builtin", "GROUP");
        let pb = position_text(theirs).replace("parity-standalone", "GROUP");
        assert_eq!(pa, pb, "record {n}, position");
    }
}

const DESTINATIONS: &str = r#"
version: "2.2"
pipelines:
  - id: builtin
    status: running
    connectors:
      - id: in
        type: source
        plugin: builtin:file
        settings: { path: "${IN}" }
      - id: out
        type: destination
        plugin: builtin:kafka
        settings: { servers: "${SERVERS}", topic: dest-builtin }
  - id: standalone
    status: running
    connectors:
      - id: in
        type: source
        plugin: builtin:file
        settings: { path: "${IN}" }
      - id: out
        type: destination
        plugin: standalone:kafka@v0.12.5
        settings: { servers: "${SERVERS}", topic: dest-standalone }
"#;

/// Every message of `topic` by key: (partition, the record in the value, its metadata).
fn messages(
    servers: &str,
    topic: &str,
    count: usize,
) -> std::collections::BTreeMap<Vec<u8>, (i32, Value, Record)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let plugin = culvert_connectors::kafka::Kafka::new();
        let settings = culvert_plugins::spec::validate(
            plugin.specification().source.as_ref().unwrap(),
            &[
                ("servers".to_owned(), servers.to_owned()),
                ("topics".to_owned(), topic.to_owned()),
                ("readFromBeginning".to_owned(), "true".to_owned()),
            ]
            .into(),
        )
        .unwrap();
        let mut source = plugin.new_source(&settings).unwrap();
        source.open(None).await.unwrap();
        let mut got = std::collections::BTreeMap::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while got.len() < count {
            assert!(
                std::time::Instant::now() < deadline,
                "{topic}: {} of {count}",
                got.len()
            );
            for record in source.read(1_000).await.unwrap() {
                let position =
                    culvert_connectors::kafka::source::KafkaPosition::decode(&record.position)
                        .unwrap();
                let Some(Data::Raw(key)) = &record.key else {
                    panic!("raw key")
                };
                let Some(Data::Raw(value)) = &record.payload.after else {
                    panic!("raw value")
                };
                let value: Value = serde_json::from_slice(value).expect("a JSON value");
                got.insert(key.clone(), (position.partition, value, record.clone()));
            }
        }
        source.teardown().await.unwrap();
        got
    })
}

#[test]
fn builtin_and_conduits_kafka_destination_write_the_same_messages() {
    const LINES: usize = 300;
    let kafka = KafkaBroker::start();
    let servers = kafka.servers();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for topic in ["dest-builtin", "dest-standalone"] {
        rt.block_on(admin::create_topic(&servers, topic, 3))
            .unwrap();
    }
    let (dir, data) = data_dir();
    let input = dir.path().join("in.txt");
    let text: String = (0..LINES).map(|n| format!("line {n} \u{e9}\n")).collect();
    std::fs::write(&input, text).unwrap();
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).unwrap();
    std::fs::copy(
        crate::standalone::upstream_connector("kafka", "v0.12.5"),
        connectors.join("kafka"),
    )
    .unwrap();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(pipelines.join("destinations.yaml"), DESTINATIONS).unwrap();
    let mut server = Server::start_with_env(
        &data,
        &[
            "--pipelines.path",
            pipelines.to_str().unwrap(),
            "--connectors.path",
            connectors.to_str().unwrap(),
        ],
        &[("SERVERS", servers.as_ref()), ("IN", input.as_os_str())],
    );
    wait_until("both destinations wrote every line", || {
        let ends = |topic| {
            rt.block_on(admin::end_offsets(&servers, topic))
                .unwrap()
                .values()
                .sum::<i64>()
        };
        ends("dest-builtin") >= LINES as i64 && ends("dest-standalone") >= LINES as i64
    });
    server.terminate();
    assert!(server.wait().success());

    let ours = messages(&servers, "dest-builtin", LINES);
    let theirs = messages(&servers, "dest-standalone", LINES);
    assert_eq!(ours.len(), LINES);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "the same keys (the file source's line numbers)"
    );
    let mut partitions = std::collections::BTreeSet::new();
    for (key, (partition, value, record)) in &ours {
        let (their_partition, their_value, their_record) = &theirs[key];
        // Java's murmur2 partitioner on both sides: the same key, the same partition.
        assert_eq!(partition, their_partition, "key {key:?}: partition");
        partitions.insert(*partition);
        let (mut a, mut b) = (value.clone(), their_value.clone());
        for v in [&mut a, &mut b] {
            let metadata = v["metadata"].as_object_mut().unwrap();
            for stamped in STAMPED {
                metadata.remove(*stamped);
            }
        }
        assert_eq!(
            a, b,
            "key {key:?}: the message value\n{value}\n{their_value}"
        );
        // No headers either way (the records carry no kafka.header.* metadata).
        let headers = |r: &Record| {
            r.metadata
                .keys()
                .filter(|k| k.starts_with("kafka.header."))
                .count()
        };
        assert_eq!(headers(record), 0);
        assert_eq!(headers(their_record), 0);
    }
    assert!(
        partitions.len() > 1,
        "keys spread over partitions: {partitions:?}"
    );
}
