//! Benchmark (ignored by default): `builtin:kafka` against Conduit's connector v0.12.5 run as
//! a standalone plugin, on the running server, 1 KiB records (the generator's structured
//! payload of 36 string fields and a few others, as `benches/pipeline.rs`).
//!
//! * generator -> kafka: records/s from the first to the last message the broker appended
//!   (the topic stamps messages with the broker's append time), and the latency of each
//!   record from `opencdc.readAt` (the engine read it from the generator) to its append
//!   (durably in the broker's log), p50/p99. Read back through `builtin:kafka`'s source.
//! * kafka -> file, over a topic already holding the records: records/s from the first to
//!   the last line seen in the file, and the latency from `opencdc.readAt` (read from
//!   Kafka) to the line being seen in the file (polled every 20 ms: figures are up to 20 ms
//!   late), p50/p99.
//!
//! Run: `cargo test --workspace --test e2e kafka_bench:: -- --ignored --nocapture`
//! (`CULVERT_KAFKA_BENCH_RECORDS`, default 100,000). The figures go in BENCHMARKS.md, with
//! the build profile they were taken with.

use crate::harness::Server;
use crate::kafka::KafkaBroker;
use culvert_connectors::kafka::admin;
use culvert_domain::{Data, Record};
use culvert_plugins::connector::ConnectorPlugin;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

fn percentile(sorted: &[i128], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1e6
}

fn generator_settings() -> String {
    let mut fields = String::from(
        "format.type: structured\n          format.options.id: int\n          \
         format.options.at: time\n          format.options.ok: bool\n",
    );
    for i in 0..36 {
        fields.push_str(&format!("          format.options.field_{i:02}: string\n"));
    }
    fields
}

fn start(dir: &Path, name: &str, yaml: &str, servers: &str, connectors: &Path) -> Server {
    let pipelines = dir.join(format!("pipelines-{name}"));
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(pipelines.join("bench.yaml"), yaml).unwrap();
    Server::start_with_env(
        &dir.join(format!("data-{name}")),
        &[
            "--pipelines.path",
            pipelines.to_str().unwrap(),
            "--connectors.path",
            connectors.to_str().unwrap(),
        ],
        &[("SERVERS", servers.as_ref())],
    )
}

/// Every message of `topic`, read through the built-in source.
pub(crate) fn read_topic(servers: &str, topic: &str, count: usize) -> Vec<Record> {
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
        let mut got = Vec::with_capacity(count);
        let deadline = Instant::now() + Duration::from_secs(300);
        while got.len() < count {
            assert!(
                Instant::now() < deadline,
                "read back {} of {count}",
                got.len()
            );
            got.extend(source.read(10_000).await.unwrap());
        }
        source.teardown().await.unwrap();
        got
    })
}

/// generator -> kafka with `plugin`: (records/s, p50 ms, p99 ms, bytes per message).
fn generator_to_kafka(
    dir: &Path,
    servers: &str,
    connectors: &Path,
    plugin: &str,
    topic: &str,
    records: usize,
) -> (f64, f64, f64, usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(admin::create_topic_with(
        servers,
        topic,
        3,
        &[("message.timestamp.type", "LogAppendTime")],
    ))
    .unwrap();
    let yaml = format!(
        r#"
version: "2.2"
pipelines:
  - id: to-kafka
    status: running
    connectors:
      - id: gen
        type: source
        plugin: builtin:generator
        settings:
          recordCount: "{records}"
          {}
      - id: out
        type: destination
        plugin: {plugin}
        settings: {{ servers: "${{SERVERS}}", topic: {topic} }}
"#,
        generator_settings().trim_start()
    );
    let mut server = start(dir, topic, &yaml, servers, connectors);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let ends = rt.block_on(admin::end_offsets(servers, topic)).unwrap();
        if ends.values().sum::<i64>() as usize >= records {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{plugin} wrote {ends:?} of {records}"
        );
        // The broker has no change notification to wait on: poll.
        std::thread::sleep(Duration::from_millis(200));
    }
    let address = server.http_address();
    crate::http_client::call(&address, "POST", "/v1/pipelines/to-kafka/stop", None);
    server.terminate();
    server.wait();
    let messages = read_topic(servers, topic, records);
    let mut appended = Vec::with_capacity(records);
    let mut latencies = Vec::with_capacity(records);
    let mut bytes = 0;
    for m in &messages {
        let at: i128 = m.metadata["opencdc.createdAt"].parse().unwrap();
        let Some(Data::Raw(value)) = &m.payload.after else {
            panic!("raw value")
        };
        bytes += value.len();
        let inner = Record::from_json(value).unwrap();
        let read_at: i128 = inner.metadata["opencdc.readAt"].parse().unwrap();
        appended.push(at);
        latencies.push(at - read_at);
    }
    appended.sort();
    latencies.sort();
    let span = (appended[records - 1] - appended[0]).max(1) as f64 / 1e9;
    (
        records as f64 / span,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        bytes / records,
    )
}

/// kafka -> file with `plugin` over `topic`: (records/s, p50 ms, p99 ms).
fn kafka_to_file(
    dir: &Path,
    servers: &str,
    connectors: &Path,
    plugin: &str,
    topic: &str,
    name: &str,
    records: usize,
) -> (f64, f64, f64) {
    let out = dir.join(format!("{name}.jsonl"));
    let yaml = format!(
        r#"
version: "2.2"
pipelines:
  - id: to-file
    status: running
    connectors:
      - id: in
        type: source
        plugin: {plugin}
        settings: {{ servers: "${{SERVERS}}", topics: {topic}, groupID: {name}, readFromBeginning: "true" }}
      - id: out
        type: destination
        plugin: builtin:file
        settings: {{ path: "{}" }}
"#,
        out.display()
    );
    let mut server = start(dir, name, &yaml, servers, connectors);
    let mut read = 0usize;
    let mut seen_lines = 0usize;
    let mut latencies = Vec::with_capacity(records);
    let (mut first, mut last) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen_lines < records {
        assert!(
            Instant::now() < deadline,
            "{plugin}: {seen_lines} of {records} lines"
        );
        let bytes = std::fs::read(&out).unwrap_or_default();
        let seen_at = now_nanos();
        let whole = bytes[read..]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        for line in bytes[read..read + whole].split_inclusive(|b| *b == b'\n') {
            let record = Record::from_json(&line[..line.len() - 1]).unwrap();
            let read_at: i128 = record.metadata["opencdc.readAt"].parse().unwrap();
            latencies.push(seen_at - read_at);
            seen_lines += 1;
        }
        if whole > 0 {
            first.get_or_insert(seen_at);
            last = Some(seen_at);
        }
        read += whole;
        // A file has no change notification: poll.
        std::thread::sleep(Duration::from_millis(20));
    }
    let address = server.http_address();
    crate::http_client::call(&address, "POST", "/v1/pipelines/to-file/stop", None);
    server.terminate();
    server.wait();
    latencies.sort();
    // From the first poll that saw lines to the last: the first poll's lines are counted
    // as if they took no time, so the rate is slightly optimistic for small counts.
    let span = (last.unwrap() - first.unwrap()).max(1) as f64 / 1e9;
    (
        records as f64 / span,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    )
}

#[test]
#[ignore = "benchmark: cargo test --workspace --test e2e kafka_bench:: -- --ignored --nocapture"]
fn builtin_kafka_against_conduits_standalone_connector() {
    let records: usize = std::env::var("CULVERT_KAFKA_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let kafka = KafkaBroker::start();
    let servers = kafka.servers();
    let dir = tempfile::tempdir().unwrap();
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).unwrap();
    std::fs::copy(
        crate::standalone::upstream_connector("kafka", "v0.12.5"),
        connectors.join("kafka"),
    )
    .unwrap();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    for (label, plugin, topic) in [
        ("built-in", "builtin:kafka", "bench-builtin"),
        (
            "Conduit standalone",
            "standalone:kafka@v0.12.5",
            "bench-standalone",
        ),
    ] {
        let (rate, p50, p99, bytes) =
            generator_to_kafka(dir.path(), &servers, &connectors, plugin, topic, records);
        println!(
            "generator -> kafka ({label}, {profile} server): {records} records, {bytes} bytes \
             per message: {rate:.0} records/s, readAt -> broker append p50 {p50:.1} ms, \
             p99 {p99:.1} ms"
        );
    }
    for (label, plugin, name) in [
        ("built-in", "builtin:kafka", "file-builtin"),
        (
            "Conduit standalone",
            "standalone:kafka@v0.12.5",
            "file-standalone",
        ),
    ] {
        let (rate, p50, p99) = kafka_to_file(
            dir.path(),
            &servers,
            &connectors,
            plugin,
            "bench-builtin",
            name,
            records,
        );
        println!(
            "kafka -> file ({label}, {profile} server): {records} records: {rate:.0} records/s, \
             readAt -> in the file p50 {p50:.1} ms, p99 {p99:.1} ms"
        );
    }
}
