//! Parity of `builtin:s3` with Conduit's own S3 connector (v0.9.3, built from the Go
//! module proxy, pinned in `tests/fixtures/upstream`) run as a standalone plugin, on the
//! same bucket on moto.
//!
//! * Source: both read the bucket at once, into the built-in file destination, and every
//!   record matches field by field: operation, key, payload and metadata, for a snapshot
//!   and for a create, an update and a delete made while both run. Left out: positions
//!   (this connector's carry more, see `docs/connectors/s3.md`), the time the engine
//!   stamps (`opencdc.readAt`), the connector id, and the plugin name/version keys
//!   Conduit's SDK may add to a standalone plugin's records.
//! * Destination: one generator fans out to both (so both get the very same records), and
//!   the JSON lines they store are the same byte for byte.

use crate::harness::{data_dir, Server};
use crate::http_client::call;
use crate::s3::Moto;
use culvert_domain::{Operation, Record};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// What is compared of a record.
#[derive(Debug, PartialEq)]
struct Seen {
    operation: Operation,
    key: Option<culvert_domain::Data>,
    before: Option<culvert_domain::Data>,
    after: Option<culvert_domain::Data>,
    metadata: culvert_domain::Metadata,
}

fn seen(record: &Record) -> Seen {
    let mut metadata = record.metadata.clone();
    metadata.retain(|k, _| {
        !matches!(
            k,
            "opencdc.readAt"
                | "conduit.source.connector.id"
                | "conduit.source.plugin.name"
                | "conduit.source.plugin.version"
        )
    });
    Seen {
        operation: record.operation,
        key: record.key.clone(),
        before: record.payload.before.clone(),
        after: record.payload.after.clone(),
        metadata,
    }
}

fn records(path: &Path) -> Vec<Record> {
    crate::harness::written_records(path)
}

fn wait_for_count(paths: &[&Path], count: usize) {
    crate::harness::poll_until(Duration::from_secs(300), Duration::from_millis(100), || {
        let counts: Vec<usize> = paths.iter().map(|p| records(p).len()).collect();
        match counts.iter().all(|n| *n >= count) {
            true => Ok(()),
            false => Err(format!("waiting for {count} records, have {counts:?}")),
        }
    });
}

/// Wait for the clock's next whole second. Conduit's S3 connector (v0.9.3,
/// `source/iterator/cdc_iterator.go`) takes an object as new or changed only if its
/// `LastModified`, whole seconds in S3, is after the newest it has seen: a change made in the
/// same second as the write before it is never read. The test's changes come once the
/// previous records arrived, so with a fast pipeline they can fall in that same second.
fn next_second() {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let start = now();
    crate::harness::poll_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || match now() > start {
            true => Ok(()),
            false => Err("waiting for the next second".to_owned()),
        },
    );
}

#[test]
fn builtin_s3_reads_what_conduits_s3_connector_reads() {
    let moto = Moto::start();
    moto.python(
        "for i in range(5):\n    s3.put_object(Bucket=BUCKET, Key='parity/obj-%d.txt' % i, \
         Body=('body %d <&>' % i).encode(), ContentType='text/plain', \
         Metadata={'origin': 'parity', 'n': str(i)})\n\
         s3.put_object(Bucket=BUCKET, Key='elsewhere.txt', Body=b'not read')",
    );
    let (dir, data) = data_dir();
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).unwrap();
    std::fs::copy(
        crate::standalone::upstream_connector("s3", "v0.9.3"),
        connectors.join("s3"),
    )
    .unwrap();
    let (theirs, ours) = (
        dir.path().join("conduit.jsonl"),
        dir.path().join("culvert.jsonl"),
    );
    let mut server = Server::start_with_env(
        &data,
        &["--connectors.path", connectors.to_str().unwrap()],
        &[("AWS_ENDPOINT_URL", std::ffi::OsStr::new(&moto.endpoint))],
    );
    let address = server.http_address();
    let settings = json!({
        "aws.accessKeyId": "test", "aws.secretAccessKey": "test",
        "aws.region": "us-east-1", "aws.bucket": "culvert-e2e",
        "prefix": "parity/", "pollingPeriod": "200ms",
    });
    for (name, plugin, out) in [
        ("conduit", "standalone:s3@v0.9.3", &theirs),
        ("culvert", "builtin:s3", &ours),
    ] {
        let p = call(
            &address,
            "POST",
            "/v1/pipelines",
            Some(json!({"config": {"name": name}})),
        );
        let id = p["id"].as_str().unwrap().to_owned();
        for (kind, connector, plugin, settings) in [
            ("TYPE_SOURCE", "in", plugin, settings.clone()),
            (
                "TYPE_DESTINATION",
                "out",
                "builtin:file",
                json!({"path": out.to_str().unwrap()}),
            ),
        ] {
            call(
                &address,
                "POST",
                "/v1/connectors",
                Some(json!({"type": kind, "plugin": plugin, "pipelineId": id,
                    "config": {"name": connector, "settings": settings}})),
            );
        }
        call(&address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    }
    wait_for_count(&[&theirs, &ours], 5);
    // Changes while both run, each waited for so that neither sees two as one.
    let steps = [
        "s3.put_object(Bucket=BUCKET, Key='parity/new.txt', Body=b'new', \
         ContentType='text/plain', Metadata={'origin': 'later'})",
        "s3.put_object(Bucket=BUCKET, Key='parity/obj-1.txt', Body=b'changed', \
         ContentType='application/x-changed')",
        "s3.delete_object(Bucket=BUCKET, Key='parity/obj-3.txt')",
    ];
    for (n, step) in steps.iter().enumerate() {
        next_second();
        moto.python(step);
        wait_for_count(&[&theirs, &ours], 6 + n);
    }
    let (theirs, ours) = (records(&theirs), records(&ours));
    for (side, records) in [("Conduit's", &theirs), ("ours", &ours)] {
        let shown: Vec<String> = records
            .iter()
            .map(|r| {
                format!(
                    "{} {} {:?}",
                    r.operation.as_str(),
                    String::from_utf8_lossy(&r.position.0),
                    r.metadata.keys().collect::<Vec<_>>()
                )
            })
            .collect();
        println!("{side} records:\n  {}", shown.join("\n  "));
    }
    server.terminate();
    assert!(server.wait().success(), "{:#?}", server.seen);
    let problems: Vec<&String> = server
        .seen
        .iter()
        .filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\""))
        .collect();
    assert_eq!(
        (theirs.len(), ours.len()),
        (8, 8),
        "records of each; {problems:#?}"
    );
    for (n, (t, o)) in theirs.iter().zip(&ours).enumerate() {
        assert_eq!(
            seen(o),
            seen(t),
            "record {n}:\nConduit's {t:#?}\nours {o:#?}"
        );
    }
}

/// The lines of every object under `prefix`.
fn object_lines(moto: &Moto, prefix: &str) -> Vec<String> {
    moto.python(&format!(
        "import sys\n\
         for page in s3.get_paginator('list_objects_v2').paginate(Bucket=BUCKET, Prefix='{prefix}'):\n    \
         for o in page.get('Contents', []):\n        \
         sys.stdout.write(s3.get_object(Bucket=BUCKET, Key=o['Key'])['Body'].read().decode())"
    ))
    .lines()
    .map(str::to_owned)
    .collect()
}

#[test]
fn builtin_s3_writes_what_conduits_s3_connector_writes() {
    const RECORDS: usize = 60;
    let moto = Moto::start();
    let (dir, data) = data_dir();
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).unwrap();
    std::fs::copy(
        crate::standalone::upstream_connector("s3", "v0.9.3"),
        connectors.join("s3"),
    )
    .unwrap();
    let mut server = Server::start_with_env(
        &data,
        &["--connectors.path", connectors.to_str().unwrap()],
        &[("AWS_ENDPOINT_URL", std::ffi::OsStr::new(&moto.endpoint))],
    );
    let address = server.http_address();
    // One pipeline, one generator, both destinations: they get the very same records.
    let p = call(
        &address,
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": "fan-out"}})),
    );
    let id = p["id"].as_str().unwrap().to_owned();
    let s3 = |prefix: &str| {
        json!({
            "aws.accessKeyId": "test", "aws.secretAccessKey": "test",
            "aws.region": "us-east-1", "aws.bucket": "culvert-e2e",
            "prefix": prefix, "format": "json",
        })
    };
    for (kind, name, plugin, settings) in [
        (
            "TYPE_SOURCE",
            "gen",
            "builtin:generator",
            json!({"recordCount": RECORDS.to_string(), "format.type": "raw",
                "format.options.id": "int", "format.options.name": "string"}),
        ),
        (
            "TYPE_DESTINATION",
            "conduit",
            "standalone:s3@v0.9.3",
            s3("conduit"),
        ),
        ("TYPE_DESTINATION", "culvert", "builtin:s3", s3("culvert")),
    ] {
        call(
            &address,
            "POST",
            "/v1/connectors",
            Some(json!({"type": kind, "plugin": plugin, "pipelineId": id,
                "config": {"name": name, "settings": settings}})),
        );
    }
    call(&address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    let started = Instant::now();
    let (theirs, ours) = loop {
        let (theirs, ours) = (
            object_lines(&moto, "conduit/"),
            object_lines(&moto, "culvert/"),
        );
        if theirs.len() >= RECORDS && ours.len() >= RECORDS {
            break (theirs, ours);
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "waiting for {RECORDS} lines each, have {} and {}",
            theirs.len(),
            ours.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!((theirs.len(), ours.len()), (RECORDS, RECORDS));
    // Byte for byte, in the order of the records' positions.
    let by_position = |lines: Vec<String>| {
        let mut lines = lines;
        lines.sort_by_key(|l| {
            let line: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            line["Position"].as_str().unwrap().parse::<u64>().unwrap()
        });
        lines
    };
    let (theirs, ours) = (by_position(theirs), by_position(ours));
    for (t, o) in theirs.iter().zip(&ours) {
        assert_eq!(o, t, "the same line");
    }
    println!("{RECORDS} lines alike, e.g. {}", ours[0]);
    server.terminate();
    assert!(server.wait().success(), "{:#?}", server.seen);
}
