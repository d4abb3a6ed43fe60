//! Load program: `builtin:kafka` against Conduit's Kafka connector v0.12.5 (built from the
//! Go module proxy, run as a standalone plugin) on the same `culvert` server (the release
//! build `cargo bench` makes), one Kafka broker (`tests/kafka.rs`: KRaft, loopback), topics
//! of 3 partitions stamped with the broker's append time. Records: the generator's
//! structured payload of 36 string fields and 3 others (about 1.1 KiB per message, as
//! `benches/pipeline.rs`).
//!
//! * generator -> kafka: records/s from the first to the last message the broker appended,
//!   and each record's latency from `opencdc.readAt` (the engine read it from the generator)
//!   to its append (in the broker's log), p50/p99. Read back through `builtin:kafka`'s
//!   source.
//! * kafka -> file, over a topic already holding the records: records/s from the first to
//!   the last line seen in the file, and the latency from `opencdc.readAt` (read from Kafka)
//!   to the line being seen in the file (polled every 20 ms: up to 20 ms late), p50/p99.
//! * kafka -> filter, the source alone: the same topic read into a `filter` processor that
//!   drops (acks) every record, so the file destination (whose JSON encoding bounds
//!   kafka -> file) gets nothing; records/s from the server's metrics (source records read,
//!   polled every 20 ms) from the first poll that saw records to the one that saw them all.
//!
//! Each pipeline runs alone in its own server process. Prints one line per figure, with the
//! peak resident memory (`VmHWM`) of the server and, for Conduit's connector, of its plugin
//! process (read before the pipeline stops), and the ratio built-in / Conduit's connector;
//! copy them into BENCHMARKS.md.
//!
//! Run: `make bench-kafka` (= `cargo bench --locked --bench kafka`). Needs java, maven and
//! go (`make deps`). `CULVERT_BENCH_RECORDS` (default 500,000) sets the count;
//! `CULVERT_BENCH_PERF=<dir>` records `perf record -g` of the server during each run.

#[allow(dead_code)]
mod connectors;
#[allow(dead_code, unused_imports)]
#[path = "../tests/harness.rs"]
mod harness;
#[allow(dead_code, unused_imports)]
#[path = "../tests/http_client.rs"]
mod http_client;
// (`tests/kafka.rs` allows its own dead code.)
#[path = "../tests/kafka.rs"]
mod kafka;
#[allow(dead_code, unused_imports)]
#[path = "../tests/kafka_pipeline.rs"]
mod kafka_pipeline;
#[allow(dead_code, unused_imports)]
#[path = "../tests/standalone.rs"]
mod standalone;

use connectors::{now_nanos, percentile_ms, PeakRss, Profile};
use culvert_connectors::kafka::admin;
use culvert_domain::{Data, Record};
use harness::Server;
use std::path::Path;
use std::time::{Duration, Instant};

const CONDUIT: &str = "standalone:kafka@v0.12.5";

struct Figures {
    records_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    memory: PeakRss,
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

fn start(dir: &Path, name: &str, yaml: &str, servers: &str, plugins: &Path) -> Server {
    let pipelines = dir.join(format!("pipelines-{name}"));
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(pipelines.join("bench.yaml"), yaml).unwrap();
    Server::start_with_env(
        &dir.join(format!("data-{name}")),
        &[
            "--pipelines.path",
            pipelines.to_str().unwrap(),
            "--connectors.path",
            plugins.to_str().unwrap(),
        ],
        &[("SERVERS", servers.as_ref())],
    )
}

/// generator -> kafka with `plugin`: the figures and the bytes per message.
fn generator_to_kafka(
    dir: &Path,
    servers: &str,
    plugins: &Path,
    plugin: &str,
    topic: &str,
    records: usize,
) -> (Figures, usize) {
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
    let mut server = start(dir, topic, &yaml, servers, plugins);
    let address = server.http_address();
    let profile = Profile::start(server.pid(), topic);
    // The broker has no change notification to wait on: poll its end offsets.
    connectors::poll(
        &format!("{plugin} to write {records} messages"),
        Duration::from_secs(900),
        Duration::from_millis(200),
        || {
            let ends = rt.block_on(admin::end_offsets(servers, topic)).unwrap();
            ends.values().sum::<i64>() as usize >= records
        },
    );
    drop(profile);
    let memory = PeakRss::of(server.pid());
    http_client::call(&address, "POST", "/v1/pipelines/to-kafka/stop", None);
    server.terminate();
    server.wait();
    let messages = kafka_pipeline::read_topic(servers, topic, records);
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
        Figures {
            records_per_s: records as f64 / span,
            p50_ms: percentile_ms(&latencies, 0.5),
            p99_ms: percentile_ms(&latencies, 0.99),
            memory,
        },
        bytes / records,
    )
}

/// kafka -> file with `plugin` over `topic`.
fn kafka_to_file(
    dir: &Path,
    servers: &str,
    plugins: &Path,
    plugin: &str,
    topic: &str,
    name: &str,
    records: usize,
) -> Figures {
    use std::io::{Read, Seek, SeekFrom};
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
    let mut server = start(dir, name, &yaml, servers, plugins);
    let address = server.http_address();
    let profile = Profile::start(server.pid(), name);
    let mut offset = 0u64;
    let mut pending: Vec<u8> = Vec::new();
    let mut seen_lines = 0usize;
    let mut latencies = Vec::with_capacity(records);
    let (mut first, mut last) = (None, None);
    let read_at_key = read_at_key();
    // A file has no change notification: poll it, reading only what was appended.
    connectors::poll(
        &format!("{plugin}: {records} lines"),
        Duration::from_secs(900),
        Duration::from_millis(20),
        || {
            if let Ok(mut file) = std::fs::File::open(&out) {
                file.seek(SeekFrom::Start(offset)).unwrap();
                let n = file.read_to_end(&mut pending).unwrap();
                offset += n as u64;
            }
            let seen_at = now_nanos();
            let whole = memchr::memrchr(b'\n', &pending).map_or(0, |i| i + 1);
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', &pending[..whole]) {
                latencies.push(seen_at - read_at(&read_at_key, &pending[start..end]));
                seen_lines += 1;
                start = end + 1;
            }
            if whole > 0 {
                first.get_or_insert(seen_at);
                last = Some(seen_at);
            }
            pending.drain(..whole);
            seen_lines >= records
        },
    );
    drop(profile);
    let memory = PeakRss::of(server.pid());
    http_client::call(&address, "POST", "/v1/pipelines/to-file/stop", None);
    server.terminate();
    server.wait();
    latencies.sort();
    // From the first poll that saw lines to the last: the first poll's lines count as if
    // they took no time, so the rate is slightly optimistic for small counts.
    let span = (last.unwrap() - first.unwrap()).max(1) as f64 / 1e9;
    Figures {
        records_per_s: records as f64 / span,
        p50_ms: percentile_ms(&latencies, 0.5),
        p99_ms: percentile_ms(&latencies, 0.99),
        memory,
    }
}

/// The `opencdc.readAt` of a record's JSON line, found without parsing the whole line (the
/// poller shares the server's two cores: a full parse of every line would slow the server;
/// `key` is `read_at_key()`, built once).
fn read_at(key: &memchr::memmem::Finder<'_>, line: &[u8]) -> i128 {
    let at = key.find(line).expect("opencdc.readAt in the line") + key.needle().len();
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&line[at..at + digits])
        .unwrap()
        .parse()
        .expect("a readAt in nanoseconds")
}

/// What `read_at` looks for: the key of `opencdc.readAt` and the quote opening its value.
fn read_at_key() -> memchr::memmem::Finder<'static> {
    memchr::memmem::Finder::new(b"\"opencdc.readAt\":\"")
}

/// Records the source of the one pipeline on the server at `address` has read so far, from
/// `/metrics` (`conduit_connector_bytes_count`).
fn source_records(address: &str) -> usize {
    let reply = http_client::request(address, "GET", "/metrics", &[], None);
    reply
        .text()
        .lines()
        .filter(|l| {
            l.starts_with("conduit_connector_bytes_count{") && l.contains("type=\"source\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}

/// The source alone: kafka -> a `filter` that drops (and so acks) every record -> file
/// (which gets nothing). Records/s from the first poll (every 20 ms) of the server's
/// metrics that saw records read to the one that saw all of them.
fn kafka_source_alone(
    dir: &Path,
    servers: &str,
    plugins: &Path,
    plugin: &str,
    topic: &str,
    name: &str,
    records: usize,
) -> (f64, PeakRss) {
    let out = dir.join(format!("{name}.jsonl"));
    let yaml = format!(
        r#"
version: "2.2"
pipelines:
  - id: alone
    status: running
    processors:
      - id: drop
        plugin: filter
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
    let mut server = start(dir, name, &yaml, servers, plugins);
    let address = server.http_address();
    let profile = Profile::start(server.pid(), name);
    let (mut first, mut last) = (None, Instant::now());
    connectors::poll(
        &format!("{plugin}: {records} records read"),
        Duration::from_secs(900),
        Duration::from_millis(20),
        || {
            let read = source_records(&address);
            let now = Instant::now();
            if read > 0 {
                first.get_or_insert((now, read));
            }
            last = now;
            read >= records
        },
    );
    drop(profile);
    let memory = PeakRss::of(server.pid());
    http_client::call(&address, "POST", "/v1/pipelines/alone/stop", None);
    server.terminate();
    server.wait();
    assert_eq!(
        std::fs::read(&out).map(|b| b.len()).unwrap_or(0),
        0,
        "the filter dropped every record"
    );
    let (first_at, first_read) = first.unwrap();
    let rate = (records - first_read) as f64 / (last - first_at).as_secs_f64().max(1e-3);
    (rate, memory)
}

fn print(pipeline: &str, label: &str, records: usize, f: &Figures, latency: &str) {
    println!(
        "{pipeline} ({label}): {records} records: {:.0} records/s, {latency} p50 {:.1} ms, \
         p99 {:.1} ms, {} (load {})",
        f.records_per_s,
        f.p50_ms,
        f.p99_ms,
        f.memory,
        connectors::load()
    );
}

fn main() {
    if !connectors::invoked_as_bench() {
        return;
    }
    let records = connectors::records(500_000);
    println!("kafka: {}", connectors::describe_build());
    let broker = kafka::KafkaBroker::start();
    let servers = broker.servers();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("connectors");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(
        standalone::upstream_connector("kafka", "v0.12.5"),
        plugins.join("kafka"),
    )
    .unwrap();

    let mut to_kafka = vec![];
    for (label, plugin, topic) in [
        ("built-in", "builtin:kafka", "bench-builtin"),
        ("Conduit's connector", CONDUIT, "bench-conduit"),
    ] {
        let (f, bytes) = generator_to_kafka(dir.path(), &servers, &plugins, plugin, topic, records);
        print(
            &format!("generator -> kafka, {bytes} bytes per message"),
            label,
            records,
            &f,
            "readAt -> broker append",
        );
        to_kafka.push(f);
    }
    let mut to_file = vec![];
    for (label, plugin, name) in [
        ("built-in", "builtin:kafka", "file-builtin"),
        ("Conduit's connector", CONDUIT, "file-conduit"),
    ] {
        // Both read the topic the built-in destination wrote.
        let f = kafka_to_file(
            dir.path(),
            &servers,
            &plugins,
            plugin,
            "bench-builtin",
            name,
            records,
        );
        print("kafka -> file", label, records, &f, "readAt -> in the file");
        to_file.push(f);
    }
    let mut alone = vec![];
    for (label, plugin, name) in [
        ("built-in", "builtin:kafka", "alone-builtin"),
        ("Conduit's connector", CONDUIT, "alone-conduit"),
    ] {
        let (rate, memory) = kafka_source_alone(
            dir.path(),
            &servers,
            &plugins,
            plugin,
            "bench-builtin",
            name,
            records,
        );
        println!(
            "kafka -> filter (source alone, {label}): {records} records: {rate:.0} records/s, \
             {memory} (load {})",
            connectors::load()
        );
        alone.push(rate);
    }
    for (pipeline, f) in [
        ("generator -> kafka", &to_kafka),
        ("kafka -> file", &to_file),
    ] {
        println!(
            "{pipeline}: built-in / Conduit's connector = {:.2}x records/s",
            f[0].records_per_s / f[1].records_per_s
        );
    }
    println!(
        "kafka -> filter (source alone): built-in / Conduit's connector = {:.2}x records/s",
        alone[0] / alone[1]
    );
}
