//! The connector against a real S3-compatible server (moto, see [`crate::moto`]).

use crate::config::{Common, DestinationConfig, SourceConfig};
use crate::destination::S3Destination;
use crate::format::Format;
use crate::moto::Moto;
use crate::source::{S3Source, CONTENT_TYPE};
use crate::S3;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use aws_sdk_s3::Client;
use culvert_domain::{Change, Data, Operation, Position, Record};
use culvert_plugins::connector::{ConnectorPlugin, Destination, Settings, Source};
use culvert_plugins::testing::{check_cancel_safety, CancelSafety};
use std::time::Duration;

fn settings(pairs: &[(&str, &str)]) -> Settings {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn common(moto: &Moto, bucket: &str, prefix: &str) -> Common {
    Common {
        access_key_id: "test-key".into(),
        secret_access_key: "test-secret".into(),
        region: "us-east-1".into(),
        bucket: bucket.into(),
        prefix: prefix.into(),
        endpoint: Some(moto.endpoint.clone()),
    }
}

fn source(moto: &Moto, bucket: &str, prefix: &str) -> S3Source {
    S3Source::new(SourceConfig {
        common: common(moto, bucket, prefix),
        polling_period: Duration::from_millis(100),
    })
}

/// A bucket (versioned or not) and a client for it.
async fn bucket(moto: &Moto, name: &str, versioned: bool) -> Client {
    let client = crate::client::client(&common(moto, name, ""));
    client.create_bucket().bucket(name).send().await.unwrap();
    if versioned {
        client
            .put_bucket_versioning()
            .bucket(name)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    client
}

async fn put(client: &Client, bucket: &str, key: &str, body: &str) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("text/plain")
        .metadata("origin", "test")
        .body(ByteStream::from(body.as_bytes().to_vec()))
        .send()
        .await
        .unwrap();
}

fn raw(data: &Option<Data>) -> String {
    match data {
        Some(Data::Raw(bytes)) => String::from_utf8(bytes.clone()).unwrap(),
        None => String::new(),
        other => panic!("raw data expected, got {other:?}"),
    }
}

/// Read until `want` records came (or a minute passed).
async fn read_n(source: &mut S3Source, want: usize) -> Vec<Record> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while got.len() < want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {want} records came: {got:?}",
            got.len()
        );
        got.extend(source.read(want - got.len()).await.unwrap());
    }
    got
}

#[test]
fn the_specification_is_conduits() {
    let plugin = S3::new();
    let spec = plugin.specification();
    assert_eq!((spec.name, spec.version), ("s3", "v0.9.3"));
    let names = |params: &[culvert_plugins::spec::Parameter]| {
        params.iter().map(|p| p.name).collect::<Vec<_>>()
    };
    let source = spec.source.as_ref().unwrap();
    let destination = spec.destination.as_ref().unwrap();
    assert_eq!(
        names(source),
        [
            "aws.accessKeyId",
            "aws.bucket",
            "aws.region",
            "aws.secretAccessKey",
            "pollingPeriod",
            "prefix"
        ]
    );
    assert_eq!(
        names(destination),
        [
            "aws.accessKeyId",
            "aws.bucket",
            "aws.region",
            "aws.secretAccessKey",
            "format",
            "prefix"
        ]
    );
    for params in [source, destination] {
        for p in params.iter() {
            assert_eq!(
                p.sensitive,
                p.name == "aws.accessKeyId" || p.name == "aws.secretAccessKey",
                "{}",
                p.name
            );
        }
    }
    assert_eq!(source[4].default, "1s");
}

#[test]
fn bad_settings_are_named() {
    let plugin = S3::new();
    let spec = plugin.specification();
    let error = culvert_plugins::spec::validate(
        spec.destination.as_ref().unwrap(),
        &settings(&[("aws.bucket", "b"), ("format", "csv")]),
    )
    .unwrap_err()
    .to_string();
    for key in [
        "aws.accessKeyId",
        "aws.secretAccessKey",
        "aws.region",
        "format",
    ] {
        assert!(error.contains(key), "{key} in {error}");
    }
    let full = settings(&[
        ("aws.accessKeyId", "k"),
        ("aws.secretAccessKey", "s"),
        ("aws.region", "r"),
        ("aws.bucket", "b"),
        ("pollingPeriod", "0s"),
    ]);
    let error = plugin.new_source(&full).err().unwrap().to_string();
    assert!(error.contains("pollingPeriod"), "{error}");
    let error = plugin
        .new_source(&settings(&[("pollingPeriod", "soon")]))
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("\"aws.bucket\"") && error.contains("soon"),
        "{error}"
    );
    let config = SourceConfig::parse(&settings(&[
        ("aws.accessKeyId", "AKIDSECRETID"),
        ("aws.secretAccessKey", "VERYSECRET"),
        ("aws.region", "r"),
        ("aws.bucket", "b"),
        ("pollingPeriod", "250ms"),
    ]))
    .unwrap();
    assert_eq!(config.polling_period, Duration::from_millis(250));
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("AKIDSECRETID") && !shown.contains("VERYSECRET"),
        "{shown}"
    );
}

fn record(n: usize) -> Record {
    Record {
        position: Position(format!("pos-{n}").into_bytes()),
        operation: Operation::Create,
        metadata: [("n".to_owned(), n.to_string())].into(),
        key: Some(Data::Raw(format!("key-{n}").into_bytes())),
        payload: Change {
            before: None,
            after: Some(Data::Raw(format!("payload {n}").into_bytes())),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_destination_writes_one_object_per_batch() {
    let moto = Moto::start();
    let client = bucket(&moto, "dest", false).await;
    for format in [Format::Json, Format::Parquet] {
        let mut destination = S3Destination::new(DestinationConfig {
            common: common(&moto, "dest", format.extension()),
            format,
        });
        destination.open().await.unwrap();
        let first: Vec<Record> = (0..3).map(record).collect();
        destination.write(&first).await.unwrap();
        destination.write(&[record(3)]).await.unwrap();
        destination.write(&[]).await.unwrap();
        destination.teardown().await.unwrap();

        let listed = client
            .list_objects_v2()
            .bucket("dest")
            .prefix(format!("{}/", format.extension()))
            .send()
            .await
            .unwrap();
        let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys.len(), 2, "{keys:?}");
        for key in &keys {
            let (dir, name) = key.split_once('/').unwrap();
            assert_eq!(dir, format.extension());
            let (nanos, extension) = name.split_once('.').unwrap();
            assert!(nanos.parse::<u128>().unwrap() > 1_600_000_000_000_000_000);
            assert_eq!(extension, format.extension());
        }
        let object = client
            .get_object()
            .bucket("dest")
            .key(keys[0])
            .send()
            .await
            .unwrap();
        assert_eq!(object.content_type(), Some(format.content_type()));
        assert_eq!(object.content_disposition(), Some("attachment"));
        let body = object.body.collect().await.unwrap().into_bytes();
        if format == Format::Json {
            let text = String::from_utf8(body.to_vec()).unwrap();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines.len(), 3);
            assert_eq!(
                lines[1],
                serde_json::json!({"Operation": "create", "Position": "pos-1",
                    "Payload": "payload 1", "Key": "key-1", "Metadata": {"n": "1"}})
            );
        } else {
            assert_eq!(&body[..4], b"PAR1");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_fails_open_naming_it() {
    let moto = Moto::start();
    let mut source = source(&moto, "nowhere", "");
    let error = source.open(None).await.unwrap_err();
    assert_eq!(error.kind(), culvert_plugins::ErrorKind::Config);
    let error = error.to_string();
    assert!(
        error.contains("\"nowhere\"") && error.contains("aws.bucket"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_snapshots_then_reads_changes() {
    let moto = Moto::start();
    let client = bucket(&moto, "src", true).await;
    for n in 0..5 {
        put(&client, "src", &format!("in/{n}.txt"), &format!("v1 {n}")).await;
    }
    put(&client, "src", "other/x.txt", "not under the prefix").await;

    let mut source = source(&moto, "src", "in/");
    source.open(None).await.unwrap();
    let snapshot = read_n(&mut source, 5).await;
    for (n, record) in snapshot.iter().enumerate() {
        assert_eq!(record.operation, Operation::Snapshot);
        assert_eq!(raw(&record.key), format!("in/{n}.txt"));
        assert_eq!(raw(&record.payload.after), format!("v1 {n}"));
        assert_eq!(record.metadata[CONTENT_TYPE], "text/plain");
        assert_eq!(record.metadata["origin"], "test");
    }
    assert!(String::from_utf8_lossy(&snapshot[3].position.0).starts_with("in/3.txt_s"));
    assert!(String::from_utf8_lossy(&snapshot[4].position.0).starts_with("_c"));

    put(&client, "src", "in/new.txt", "created").await;
    put(&client, "src", "in/1.txt", "v2 1").await;
    client
        .delete_object()
        .bucket("src")
        .key("in/2.txt")
        .send()
        .await
        .unwrap();
    let mut changes = read_n(&mut source, 3).await;
    changes.sort_by_key(|r| raw(&r.key));
    let seen: Vec<(Operation, String, String)> = changes
        .iter()
        .map(|r| (r.operation, raw(&r.key), raw(&r.payload.after)))
        .collect();
    assert_eq!(
        seen,
        [
            (Operation::Update, "in/1.txt".into(), "v2 1".into()),
            (Operation::Delete, "in/2.txt".into(), String::new()),
            (Operation::Create, "in/new.txt".into(), "created".into()),
        ]
    );
    // Nothing else comes: no repeats of the snapshot's objects.
    let more = source.read(10).await.unwrap();
    let more2 = source.read(10).await.unwrap();
    assert!(more.is_empty() && more2.is_empty(), "{more:?} {more2:?}");

    // A restart from the last position repeats nothing and misses nothing.
    let last = changes
        .iter()
        .max_by_key(|r| {
            let text = String::from_utf8_lossy(&r.position.0).into_owned();
            let (key, second) = text.rsplit_once("_c").unwrap();
            (second.parse::<i64>().unwrap(), key.to_owned())
        })
        .unwrap()
        .position
        .clone();
    source.teardown().await.unwrap();
    put(&client, "src", "in/after-restart.txt", "late").await;
    let mut source2 = self::source(&moto, "src", "in/");
    source2.open(Some(last)).await.unwrap();
    let after = read_n(&mut source2, 1).await;
    assert_eq!(raw(&after[0].key), "in/after-restart.txt");
    assert_eq!(after[0].operation, Operation::Create);
    assert!(source2.read(10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_resumes_after_its_last_key() {
    let moto = Moto::start();
    let client = bucket(&moto, "resume", false).await;
    for n in 0..30 {
        put(&client, "resume", &format!("k{n:02}"), &n.to_string()).await;
    }
    let mut source = source(&moto, "resume", "");
    source.open(None).await.unwrap();
    let first = read_n(&mut source, 12).await;
    source.teardown().await.unwrap();
    let mut again = self::source(&moto, "resume", "");
    again
        .open(Some(first.last().unwrap().position.clone()))
        .await
        .unwrap();
    let rest = read_n(&mut again, 18).await;
    let keys: Vec<String> = first.iter().chain(&rest).map(|r| raw(&r.key)).collect();
    let want: Vec<String> = (0..30).map(|n| format!("k{n:02}")).collect();
    assert_eq!(keys, want);
    // Nothing new. The objects were written within SETTLE_SECS of the snapshot's start and
    // the restart dropped the in-memory set of versions the snapshot read, so once their
    // second has settled (a slow run gets there) the change reader may send them again, as
    // the module docs say: at-least-once, repeats only.
    let more = again.read(10).await.unwrap();
    assert!(
        more.iter().all(|r| want.contains(&raw(&r.key))),
        "only repeats of snapshot keys may follow: {:?}",
        more.iter().map(|r| raw(&r.key)).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_cancel_safe() {
    let moto = Moto::start();
    let client = bucket(&moto, "cancel", true).await;
    let mut expected = Vec::new();
    for n in 0..150 {
        let key = format!("obj/{n:04}");
        put(&client, "cancel", &key, &format!("body {n}")).await;
        expected.push(key.into_bytes());
    }
    let report = check_cancel_safety(
        || Box::new(source(&moto, "cancel", "obj/")) as Box<dyn Source>,
        &expected,
        |r| match &r.key {
            Some(Data::Raw(key)) => key.clone(),
            other => panic!("a raw key expected, got {other:?}"),
        },
        &CancelSafety {
            cancellations: 300,
            max_passes: 40,
            max_batch: 60,
            ..CancelSafety::default()
        },
    )
    .await
    .unwrap_or_else(|violation| panic!("{violation}"));
    assert!(report.cancelled >= 300, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_written_just_before_the_snapshot_come_once() {
    let moto = Moto::start();
    let client = bucket(&moto, "fresh", true).await;
    for n in 0..4 {
        put(&client, "fresh", &format!("f{n}"), "x").await;
    }
    // Opened at once: the objects are newer than where the change reader starts, so
    // only the snapshot's memory of them keeps them from coming again as changes.
    let mut source = source(&moto, "fresh", "");
    source.open(None).await.unwrap();
    let snapshot = read_n(&mut source, 4).await;
    assert!(snapshot.iter().all(|r| r.operation == Operation::Snapshot));
    // Nothing else comes while the reader polls past the settling time (each empty read
    // waits about 500 ms)...
    for _ in 0..10 {
        let more = source.read(10).await.unwrap();
        assert!(more.is_empty(), "{more:?}");
    }
    // ...and a later change still does.
    put(&client, "fresh", "g", "later").await;
    let after = read_n(&mut source, 1).await;
    assert_eq!(raw(&after[0].key), "g", "{after:?}");
    assert!(source.read(10).await.unwrap().is_empty());
}
