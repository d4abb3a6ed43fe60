//! The connector against a real broker (started by `tests/kafka.rs`, included here). One
//! broker serves every scenario: they run in sequence in one test, each on its own topics
//! and groups, and the broker stops when the test ends.

use super::*;
use crate::source::KafkaPosition;
use culvert_domain::{Change, Data, Operation, Position, Record};
use culvert_plugins::spec;
use culvert_plugins::testing::{check_cancel_safety, CancelSafety};
use std::collections::BTreeMap;
use std::time::Duration;

#[path = "../../../tests/kafka.rs"]
mod broker;

fn settings(pairs: &[(&str, &str)]) -> Settings {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Settings as the engine passes them: validated against the specification, defaults
/// applied.
fn source_settings(pairs: &[(&str, &str)]) -> Settings {
    spec::validate(&config::source_parameters(), &settings(pairs)).unwrap()
}

fn destination_settings(pairs: &[(&str, &str)]) -> Settings {
    spec::validate(&config::destination_parameters(), &settings(pairs)).unwrap()
}

fn record(n: usize, collection: &str) -> Record {
    Record {
        position: Position(n.to_string().into_bytes()),
        operation: Operation::Create,
        metadata: [
            ("opencdc.collection".to_owned(), collection.to_owned()),
            ("kafka.header.seq".to_owned(), format!("h-{n}")),
            ("other".to_owned(), "x".to_owned()),
        ]
        .into(),
        key: Some(Data::Raw(format!("key-{n}").into_bytes())),
        payload: Change {
            before: None,
            after: Some(Data::Raw(format!("value-{n}").into_bytes())),
        },
    }
}

async fn write(servers: &str, topic_setting: &str, records: &[Record]) {
    let plugin = Kafka::new();
    let mut dest = plugin
        .new_destination(&destination_settings(&[
            ("servers", servers),
            ("topic", topic_setting),
        ]))
        .unwrap();
    dest.open().await.unwrap();
    for chunk in records.chunks(5_000) {
        let refused = dest.write_each(chunk).await.unwrap();
        assert!(refused.is_empty(), "{refused:?}");
    }
    dest.teardown().await.unwrap();
}

/// Read until `count` records came (or the deadline passes).
async fn read_n(source: &mut Box<dyn Source>, count: usize) -> Vec<Record> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while got.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {count} records came",
            got.len()
        );
        got.extend(source.read(count - got.len()).await.unwrap());
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_real_broker() {
    let kafka = broker::KafkaBroker::start();
    let servers = kafka.servers();
    records_round_trip_with_keys_headers_and_topic_templates(&servers).await;
    offsets_are_committed_only_for_acknowledged_records(&servers).await;
    a_position_of_another_group_is_refused(&servers).await;
    refused_records_are_reported_each(&servers).await;
    a_batch_waits_for_room_held_by_the_batch_before(&servers).await;
    reads_are_cancel_safe(&servers).await;
    sasl_authenticates_with_each_mechanism(&kafka).await;
    tls_trusts_the_given_authority(&kafka).await;
    mutual_tls_presents_the_client_certificate(&kafka).await;
}

async fn mutual_tls_presents_the_client_certificate(kafka: &broker::KafkaBroker) {
    let servers = kafka.mtls_servers();
    let ca = kafka.ca_pem();
    let (cert, key) = kafka.client_pem();
    let plugin = Kafka::new();
    let tls = [
        ("servers", servers.as_str()),
        ("tls.enabled", "true"),
        ("caCert", &ca),
        ("clientCert", cert),
        ("clientKey", key),
    ];
    let mut settings = tls.to_vec();
    settings.push(("topic", "mtls"));
    let mut dest = plugin
        .new_destination(&destination_settings(&settings))
        .unwrap();
    dest.open().await.unwrap();
    let refused = dest.write_each(&[record(9, "mtls")]).await.unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    dest.teardown().await.unwrap();
    let mut settings = tls.to_vec();
    settings.extend([("topics", "mtls"), ("readFromBeginning", "true")]);
    let mut source = plugin.new_source(&source_settings(&settings)).unwrap();
    source.open(None).await.unwrap();
    let got = read_n(&mut source, 1).await;
    assert_eq!(got[0].key, Some(Data::Raw(b"key-9".to_vec())));
    source.teardown().await.unwrap();
    // Without a client certificate the listener refuses the connection: opening fails.
    let mut anonymous = plugin
        .new_destination(&destination_settings(&[
            ("servers", &servers),
            ("topic", "mtls"),
            ("tls.enabled", "true"),
            ("caCert", &ca),
        ]))
        .unwrap();
    let error = anonymous.open().await.unwrap_err().to_string();
    assert!(error.contains(&servers), "{error}");
}

async fn tls_trusts_the_given_authority(kafka: &broker::KafkaBroker) {
    let servers = kafka.tls_servers();
    let ca = kafka.ca_pem();
    let plugin = Kafka::new();
    let mut dest = plugin
        .new_destination(&destination_settings(&[
            ("servers", &servers),
            ("topic", "tls"),
            ("tls.enabled", "true"),
            ("caCert", &ca),
        ]))
        .unwrap();
    dest.open().await.unwrap();
    let refused = dest.write_each(&[record(7, "tls")]).await.unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    dest.teardown().await.unwrap();
    // Without the authority, only with insecureSkipVerify.
    let mut source = plugin
        .new_source(&source_settings(&[
            ("servers", &servers),
            ("topics", "tls"),
            ("readFromBeginning", "true"),
            ("tls.enabled", "true"),
            ("insecureSkipVerify", "true"),
        ]))
        .unwrap();
    source.open(None).await.unwrap();
    let got = read_n(&mut source, 1).await;
    assert_eq!(got[0].key, Some(Data::Raw(b"key-7".to_vec())));
    source.teardown().await.unwrap();
    let mut untrusting = plugin
        .new_destination(&destination_settings(&[
            ("servers", &servers),
            ("topic", "tls"),
            ("tls.enabled", "true"),
        ]))
        .unwrap();
    let error = untrusting.open().await.unwrap_err().to_string();
    assert!(error.contains(&servers), "{error}");
}

async fn sasl_authenticates_with_each_mechanism(kafka: &broker::KafkaBroker) {
    let servers = kafka.sasl_servers();
    let plugin = Kafka::new();
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let topic = format!("sasl-{}", mechanism.to_lowercase());
        let auth = [
            ("servers", servers.as_str()),
            ("saslMechanism", mechanism),
            ("saslUsername", broker::SASL_USER),
            ("saslPassword", broker::SASL_PASSWORD),
        ];
        let mut dest_settings = auth.to_vec();
        dest_settings.push(("topic", &topic));
        let mut dest = plugin
            .new_destination(&destination_settings(&dest_settings))
            .unwrap();
        dest.open().await.unwrap();
        let refused = dest.write_each(&[record(1, &topic)]).await.unwrap();
        assert!(refused.is_empty(), "{mechanism}: {refused:?}");
        dest.teardown().await.unwrap();
        let mut source_settings_ = auth.to_vec();
        source_settings_.extend([("topics", topic.as_str()), ("readFromBeginning", "true")]);
        let mut source = plugin
            .new_source(&source_settings(&source_settings_))
            .unwrap();
        source.open(None).await.unwrap();
        let got = read_n(&mut source, 1).await;
        assert_eq!(
            got[0].key,
            Some(Data::Raw(b"key-1".to_vec())),
            "{mechanism}"
        );
        source.teardown().await.unwrap();
    }
    // A wrong password: opening fails (the broker refuses the login), naming the servers.
    let mut dest = plugin
        .new_destination(&destination_settings(&[
            ("servers", &servers),
            ("topic", "sasl-plain"),
            ("saslMechanism", "SCRAM-SHA-512"),
            ("saslUsername", broker::SASL_USER),
            ("saslPassword", "wrong"),
        ]))
        .unwrap();
    let error = dest.open().await.unwrap_err().to_string();
    assert!(error.contains(&servers), "{error}");
}

async fn records_round_trip_with_keys_headers_and_topic_templates(servers: &str) {
    // The default topic setting is a template over opencdc.collection: two topics.
    let records: Vec<Record> = (0..200)
        .map(|n| record(n, if n % 2 == 0 { "rt-even" } else { "rt-odd" }))
        .collect();
    write(servers, "", &records).await;
    let plugin = Kafka::new();
    let mut source = plugin
        .new_source(&source_settings(&[
            ("servers", servers),
            ("topics", "rt-even,rt-odd"),
            ("readFromBeginning", "true"),
            ("groupID", "round-trip"),
        ]))
        .unwrap();
    source.open(None).await.unwrap();
    let got = read_n(&mut source, 200).await;
    let mut by_key = BTreeMap::new();
    for r in &got {
        let Some(Data::Raw(key)) = &r.key else {
            panic!("raw key expected: {r:?}")
        };
        by_key.insert(String::from_utf8(key.clone()).unwrap(), r.clone());
    }
    assert_eq!(by_key.len(), 200, "every record once");
    for (n, original) in records.iter().enumerate() {
        let r = &by_key[&format!("key-{n}")];
        let topic = &original.metadata["opencdc.collection"];
        assert_eq!(r.operation, Operation::Create);
        assert_eq!(&r.metadata["opencdc.collection"], topic);
        assert_eq!(r.metadata["kafka.header.seq"], format!("h-{n}"));
        assert!(r.metadata["opencdc.createdAt"].parse::<i64>().unwrap() > 0);
        assert!(!r.metadata.contains_key("kafka.header.other"));
        // The value is the whole record in OpenCDC JSON (Conduit's default format).
        let Some(Data::Raw(value)) = &r.payload.after else {
            panic!("raw payload expected")
        };
        assert_eq!(&Record::from_json(value).unwrap(), original);
        let position = KafkaPosition::decode(&r.position).unwrap();
        assert_eq!(position.group_id, "round-trip");
        assert_eq!(&position.topic, topic);
        assert_eq!(position.partition, 0);
    }
    // Conduit's position form, field names and order.
    let text = String::from_utf8(got[0].position.0.clone()).unwrap();
    assert!(
        text.starts_with(r#"{"GroupID":"round-trip","Topic":"rt-"#),
        "{text}"
    );
    source.teardown().await.unwrap();
}

async fn offsets_are_committed_only_for_acknowledged_records(servers: &str) {
    let records: Vec<Record> = (0..100).map(|n| record(n, "acks")).collect();
    write(servers, "acks", &records).await;
    let plugin = Kafka::new();
    let make = || {
        plugin
            .new_source(&source_settings(&[
                ("servers", servers),
                ("topics", "acks"),
                ("readFromBeginning", "true"),
                ("commitOffsetsSize", "1"),
            ]))
            .unwrap()
    };
    // Read everything, acknowledge nothing: nothing is committed.
    let mut source = make();
    source.open(None).await.unwrap();
    let got = read_n(&mut source, 100).await;
    let group = KafkaPosition::decode(&got[0].position).unwrap().group_id;
    source.teardown().await.unwrap();
    let committed = admin::committed_offsets(servers, &group, "acks")
        .await
        .unwrap();
    assert!(
        committed.is_empty(),
        "nothing acknowledged, yet {committed:?}"
    );

    // Resume from a position (of the same group): everything comes again; acknowledge the
    // first 40 (cumulatively, by the 40th's position).
    let mut source = make();
    source.open(Some(got[99].position.clone())).await.unwrap();
    let again = read_n(&mut source, 100).await;
    assert_eq!(again[0].key, records[0].key, "nothing was committed");
    source.ack(again[39].position.clone()).await.unwrap();
    source.teardown().await.unwrap();
    let committed = admin::committed_offsets(servers, &group, "acks")
        .await
        .unwrap();
    assert_eq!(committed, BTreeMap::from([(0, 40)]));

    // The group resumes after the acknowledged records.
    let mut source = make();
    source.open(Some(again[39].position.clone())).await.unwrap();
    let rest = read_n(&mut source, 60).await;
    assert_eq!(rest[0].key, records[40].key);
    assert_eq!(rest[59].key, records[99].key);
    source.ack(rest[59].position.clone()).await.unwrap();
    source.teardown().await.unwrap();
    let committed = admin::committed_offsets(servers, &group, "acks")
        .await
        .unwrap();
    assert_eq!(committed, BTreeMap::from([(0, 100)]));
}

async fn a_position_of_another_group_is_refused(servers: &str) {
    let plugin = Kafka::new();
    let mut source = plugin
        .new_source(&source_settings(&[
            ("servers", servers),
            ("topics", "acks"),
            ("groupID", "mine"),
        ]))
        .unwrap();
    let theirs = KafkaPosition {
        group_id: "theirs".into(),
        topic: "acks".into(),
        partition: 0,
        offset: 3,
    };
    let error = source.open(Some(theirs.encode())).await.unwrap_err();
    assert!(error.to_string().contains("\"theirs\""), "{error}");
}

async fn refused_records_are_reported_each(servers: &str) {
    // A record the topic template gives no topic for, and one over the broker's 1 MiB
    // limit: each is reported alone (the others are written), as Conduit's per-record
    // nack. (The broker refuses a whole batch; the oversized record is written on its own.)
    let plugin = Kafka::new();
    let mut dest = plugin
        .new_destination(&destination_settings(&[
            ("servers", servers),
            ("batchBytes", "4000000"),
            ("compression", "none"),
            ("deliveryTimeout", "20s"),
        ]))
        .unwrap();
    dest.open().await.unwrap();
    let mut records: Vec<Record> = (0..5).map(|n| record(n, "refusals")).collect();
    records[2].metadata.remove("opencdc.collection");
    let refused = dest.write_each(&records).await.unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, 2);
    assert!(refused[0].1.contains("gives no topic"), "{}", refused[0].1);
    let mut big = record(5, "refusals");
    big.payload.after = Some(Data::Raw(vec![b'x'; 2_000_000]));
    let refused = dest.write_each(&[big]).await.unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].1.contains("MessageSizeTooLarge"),
        "{}",
        refused[0].1
    );
    dest.teardown().await.unwrap();
    let ends = admin::end_offsets(servers, "refusals").await.unwrap();
    assert_eq!(ends, BTreeMap::from([(0, 4)]));
}

async fn a_batch_waits_for_room_held_by_the_batch_before(servers: &str) {
    // The engine submits a batch while the one before is still being delivered. With
    // librdkafka's queue holding 8 messages, the first batch fills it; the second waits
    // for room instead of refusing its records.
    let settings = destination_settings(&[("servers", servers), ("topic", "queue-room")]);
    let mut dest =
        destination::KafkaDestination::new(config::DestinationConfig::parse(&settings).unwrap())
            .with_property("queue.buffering.max.messages", "8");
    dest.open().await.unwrap();
    let first: Vec<Record> = (0..8).map(|n| record(n, "queue-room")).collect();
    let second: Vec<Record> = (8..16).map(|n| record(n, "queue-room")).collect();
    let first = dest.submit(&first).await.unwrap();
    let second = dest.submit(&second).await.unwrap();
    assert_eq!(first.await.unwrap(), vec![]);
    assert_eq!(second.await.unwrap(), vec![]);
    dest.teardown().await.unwrap();
    let ends = admin::end_offsets(servers, "queue-room").await.unwrap();
    assert_eq!(ends.values().sum::<i64>(), 16);
}

async fn reads_are_cancel_safe(servers: &str) {
    let records: Vec<Record> = (0..3_000).map(|n| record(n, "cancel-safety")).collect();
    write(servers, "cancel-safety", &records).await;
    let expected: Vec<Vec<u8>> = (0..3_000)
        .map(|n| format!("key-{n}").into_bytes())
        .collect();
    let plugin = Kafka::new();
    // Each pass is a fresh source in a new group, reading from the first message.
    let make = || {
        plugin
            .new_source(&source_settings(&[
                ("servers", servers),
                ("topics", "cancel-safety"),
                ("readFromBeginning", "true"),
            ]))
            .unwrap()
    };
    let identity = |r: &Record| match &r.key {
        Some(Data::Raw(key)) => key.clone(),
        other => panic!("raw key expected, got {other:?}"),
    };
    let options = CancelSafety {
        cancellations: 300,
        max_passes: 40,
        // Joining the group takes a moment before the first record.
        stall: Duration::from_secs(30),
        ..CancelSafety::default()
    };
    let report = check_cancel_safety(make, &expected, identity, &options)
        .await
        .unwrap();
    println!("cancel-safety against the broker: {report:?}");
    assert!(
        report.cancelled >= 150,
        "too few reads were dropped: {report:?}"
    );
}
