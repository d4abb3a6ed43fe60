//! `builtin:kafka` in real pipelines on the running server, against a real broker
//! (`tests/kafka.rs`), proven by oracles: every record carries a unique id, and the
//! output file is read back and each id counted.
//!
//! * `generator_to_kafka_to_file_delivers_every_record_exactly_once`: pipeline one,
//!   generator -> kafka (a processor copies each record's position, its unique id, into
//!   metadata `kafka.header.id`); pipeline two, kafka -> file. Every id arrives exactly
//!   once after a clean stop, with its key (the message key) and header intact, and the
//!   message value is the generated record itself (OpenCDC JSON).
//! * `kafka_to_file_loses_nothing_across_sigkills`: records already in a three-partition
//!   topic; the server is SIGKILLed five times while they move. Nothing is lost; at each
//!   kill the group's committed offsets cover only records already in the file; the
//!   duplicates are records past those committed offsets (the in-flight window).
//! * `a_consumer_group_rebalance_loses_nothing`: two pipelines in one consumer group, the
//!   second joining mid-way, the first then stopping: every record in one file or the other.
//! * `generator_to_kafka_loses_nothing_across_sigkills`: the destination side, five
//!   SIGKILLs while messages flow: every generated record is in the topic in the end.
//!
//! Record counts: `CULVERT_KAFKA_E2E_RECORDS` (default 1,000,000),
//! `CULVERT_KAFKA_KILL_RECORDS` (default 200,000, both kill tests) and
//! `CULVERT_KAFKA_REBALANCE_RECORDS` (default 200,000).
//!
//! What they do not prove: a broker crash (one broker, its data on a temp dir), or a
//! member killed while others in its group keep reading.

use crate::harness::{poll_until, xorshift, LineCounter, Server};
use crate::http_client::call;
use crate::kafka::KafkaBroker;
use culvert_connectors::kafka::{admin, source::KafkaPosition};
use culvert_domain::{Data, Record};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Every message of `topic`, read through the built-in source (also used by
/// `benches/kafka.rs`).
pub(crate) fn read_topic(servers: &str, topic: &str, count: usize) -> Vec<Record> {
    use culvert_plugins::connector::ConnectorPlugin as _;
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

fn records_from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Wait until `out` has at least `lines` lines; fails after `stall` without progress.
fn wait_for_lines(out: &Path, lines: usize, stall: Duration) -> usize {
    let mut counter = LineCounter::default();
    let mut last = (0, Instant::now());
    loop {
        let n = counter.count(out);
        if n >= lines {
            return n;
        }
        if n > last.0 {
            last = (n, Instant::now());
        }
        assert!(
            last.1.elapsed() < stall,
            "only {n} of {lines} lines after {stall:?} without progress"
        );
        // A file has no change notification: poll.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every whole record in the file.
fn read_records(out: &Path) -> Vec<Record> {
    let bytes = std::fs::read(out).unwrap_or_default();
    bytes
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| l.ends_with(b"\n"))
        .map(|l| Record::from_json(&l[..l.len() - 1]).expect("a whole record"))
        .collect()
}

/// The ids in 1..=`records` that no message of generator -> kafka carries (each message's
/// payload is the generator's record, its position the id).
fn missing(messages: &[Record], records: usize) -> Vec<usize> {
    let mut seen = vec![false; records + 1];
    for m in messages {
        let inner = Record::from_json(raw(&m.payload.after)).expect("an OpenCDC record");
        let id: usize = std::str::from_utf8(&inner.position.0)
            .unwrap()
            .parse()
            .unwrap();
        seen[id] = true;
    }
    (1..=records).filter(|id| !seen[*id]).collect()
}

fn raw(data: &Option<Data>) -> &[u8] {
    match data {
        Some(Data::Raw(bytes)) => bytes,
        other => panic!("raw data expected, got {other:?}"),
    }
}

fn stop(mut server: Server, address: &str, pipelines: &[&str]) {
    for id in pipelines {
        call(address, "POST", &format!("/v1/pipelines/{id}/stop"), None);
    }
    server.terminate();
    assert!(server.wait().success(), "{:#?}", server.seen);
}

const GENERATOR_TO_FILE: &str = r#"
version: "2.2"
pipelines:
  - id: to-kafka
    status: running
    connectors:
      - id: gen
        type: source
        plugin: builtin:generator
        settings:
          format.type: raw
          format.options.id: int
          format.options.pad: string
          recordCount: "${RECORDS}"
        processors:
          - id: header
            plugin: field.set
            settings: { field: '.Metadata["kafka.header.id"]', value: "{{ .Position.String }}" }
      - id: kafka-out
        type: destination
        plugin: builtin:kafka
        settings: { servers: "${SERVERS}", topic: e2e }
  - id: from-kafka
    status: running
    connectors:
      - id: kafka-in
        type: source
        plugin: builtin:kafka
        settings: { servers: "${SERVERS}", topics: e2e, groupID: e2e-file, readFromBeginning: "true" }
      - id: file-out
        type: destination
        plugin: builtin:file
        settings: { path: "${OUT}" }
"#;

#[test]
fn generator_to_kafka_to_file_delivers_every_record_exactly_once() {
    let records = records_from_env("CULVERT_KAFKA_E2E_RECORDS", 1_000_000);
    let kafka = KafkaBroker::start();
    let servers = kafka.servers();
    runtime()
        .block_on(admin::create_topic(&servers, "e2e", 3))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (data, pipelines, out) = (
        dir.path().join("data"),
        dir.path().join("pipelines"),
        dir.path().join("out.jsonl"),
    );
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(pipelines.join("kafka.yaml"), GENERATOR_TO_FILE).unwrap();
    let started = Instant::now();
    let mut server = Server::start_with_env(
        &data,
        &["--pipelines.path", pipelines.to_str().unwrap()],
        &[
            ("SERVERS", servers.as_ref()),
            ("OUT", out.as_os_str()),
            ("RECORDS", records.to_string().as_ref()),
        ],
    );
    let address = server.http_address();
    wait_for_lines(&out, records, Duration::from_secs(60));
    let elapsed = started.elapsed();
    stop(server, &address, &["to-kafka", "from-kafka"]);

    let written = read_records(&out);
    let mut seen = vec![0u32; records + 1];
    for record in &written {
        // The message value is the generated record, in OpenCDC JSON.
        let inner = Record::from_json(raw(&record.payload.after)).expect("an OpenCDC record");
        let id: usize = std::str::from_utf8(&inner.position.0)
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=records).contains(&id), "unknown id {id}");
        seen[id] += 1;
        // Key and header intact; the collection is the topic.
        assert_eq!(raw(&record.key), raw(&inner.key), "record {id}: key");
        assert_eq!(record.metadata["kafka.header.id"], id.to_string());
        assert_eq!(inner.metadata["kafka.header.id"], id.to_string());
        assert_eq!(record.metadata["opencdc.collection"], "e2e");
    }
    let lost = seen[1..].iter().filter(|n| **n == 0).count();
    let duplicated: u64 = seen[1..]
        .iter()
        .map(|n| u64::from(n.saturating_sub(1)))
        .sum();
    println!(
        "generator -> kafka -> kafka -> file: {records} records in {:.1} s ({:.0} records/s), \
         {lost} lost, {duplicated} duplicated",
        elapsed.as_secs_f64(),
        records as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(lost, 0);
    assert_eq!(duplicated, 0, "exactly once after a clean stop");
    assert_eq!(written.len(), records);
}

const KAFKA_TO_FILE: &str = r#"
version: "2.2"
pipelines:
  - id: from-kafka
    status: running
    connectors:
      - id: kafka-in
        type: source
        plugin: builtin:kafka
        settings:
          servers: "${SERVERS}"
          topics: kills
          groupID: kills-file
          readFromBeginning: "true"
          commitOffsetsDelay: 1s
      - id: file-out
        type: destination
        plugin: builtin:file
        settings: { path: "${OUT}" }
"#;

/// Put `count` records with keys `id-N` into `topic`, through the connector's destination.
fn produce(servers: &str, topic: &str, count: usize) {
    use culvert_plugins::connector::ConnectorPlugin;
    runtime().block_on(async {
        let plugin = culvert_connectors::kafka::Kafka::new();
        let settings = culvert_plugins::spec::validate(
            plugin.specification().destination.as_ref().unwrap(),
            &[
                ("servers".to_owned(), servers.to_owned()),
                ("topic".to_owned(), topic.to_owned()),
            ]
            .into(),
        )
        .unwrap();
        let mut dest = plugin.new_destination(&settings).unwrap();
        dest.open().await.unwrap();
        let ids: Vec<usize> = (0..count).collect();
        for chunk in ids.chunks(10_000) {
            let batch: Vec<Record> = chunk
                .iter()
                .map(|n| Record {
                    key: Some(Data::Raw(format!("id-{n}").into_bytes())),
                    ..Record::default()
                })
                .collect();
            let refused = dest.write_each(&batch).await.unwrap();
            assert!(refused.is_empty(), "{refused:?}");
        }
        dest.teardown().await.unwrap();
    });
}

/// The id, partition and offset of each output record.
fn tally(out: &Path) -> Vec<(usize, i32, i64)> {
    read_records(out)
        .iter()
        .map(|r| {
            let key = std::str::from_utf8(raw(&r.key)).unwrap();
            let id = key.strip_prefix("id-").unwrap().parse().unwrap();
            let p = KafkaPosition::decode(&r.position).unwrap();
            (id, p.partition, p.offset)
        })
        .collect()
}

#[test]
fn kafka_to_file_loses_nothing_across_sigkills() {
    const KILLS: usize = 5;
    let records = records_from_env("CULVERT_KAFKA_KILL_RECORDS", 200_000);
    let kafka = KafkaBroker::start();
    let servers = kafka.servers();
    let rt = runtime();
    rt.block_on(admin::create_topic(&servers, "kills", 3))
        .unwrap();
    produce(&servers, "kills", records);

    let dir = tempfile::tempdir().unwrap();
    let (data, pipelines, out) = (
        dir.path().join("data"),
        dir.path().join("pipelines"),
        dir.path().join("out.jsonl"),
    );
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(pipelines.join("kafka.yaml"), KAFKA_TO_FILE).unwrap();
    let env = [("SERVERS", servers.as_ref()), ("OUT", out.as_os_str())];
    let args = ["--pipelines.path", pipelines.to_str().unwrap()];
    let started = Instant::now();
    let mut server = Server::start_with_env(&data, &args, &env);
    let mut seed = 0x006b_6166_6b61_u64;
    // Per kill: the committed offsets (per partition) once the server was dead.
    let mut committed_at_kills: Vec<BTreeMap<i32, i64>> = Vec::new();
    let mut counter = LineCounter::default();
    for round in 0..KILLS {
        // Kill while records are moving: at a seeded point of this round's share.
        let share = records / (KILLS + 1);
        let point = round * share + share / 4 + (xorshift(&mut seed) as usize) % (share / 2);
        poll_until(
            Duration::from_secs(300),
            Duration::from_millis(5),
            || match counter.count(&out) >= point {
                true => Ok(()),
                false => Err(format!(
                    "the pipeline did not reach record {point} in round {round}"
                )),
            },
        );
        server.kill();
        // invariant checked: the group's committed offsets never pass a record that is not
        // in the file (the server is dead: neither changes now).
        let committed = rt
            .block_on(admin::committed_offsets(&servers, "kills-file", "kills"))
            .unwrap();
        let written: std::collections::HashSet<(i32, i64)> =
            tally(&out).iter().map(|(_, p, o)| (*p, *o)).collect();
        for (partition, next) in &committed {
            for offset in 0..*next {
                assert!(
                    written.contains(&(*partition, offset)),
                    "kill {round}: offset {offset} of partition {partition} is committed \
                     (next {next}) but not in the file"
                );
            }
        }
        committed_at_kills.push(committed);
        server = Server::start_with_env(&data, &args, &env);
    }
    let address = server.http_address();
    wait_for_lines(&out, records, Duration::from_secs(90));
    // Every id there (duplicates may make the count reach `records` early): wait for the
    // last missing ones.
    poll_until(Duration::from_secs(120), Duration::from_millis(500), || {
        let ids: std::collections::HashSet<usize> =
            tally(&out).iter().map(|(id, _, _)| *id).collect();
        match ids.len() == records {
            true => Ok(()),
            false => Err(format!("{} of {records} ids arrived", ids.len())),
        }
    });
    let elapsed = started.elapsed();
    stop(server, &address, &["from-kafka"]);

    let output = tally(&out);
    let mut seen = vec![0u32; records];
    let mut first_seen: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for (index, (id, partition, offset)) in output.iter().enumerate() {
        seen[*id] += 1;
        if first_seen.insert((*partition, *offset), index).is_some() {
            duplicates.push((*partition, *offset));
        }
    }
    let lost: Vec<usize> = (0..records).filter(|id| seen[*id] == 0).collect();
    // The in-flight window: a record comes again only if some kill found it past its
    // partition's committed offset.
    let outside: Vec<&(i32, i64)> = duplicates
        .iter()
        .filter(|(partition, offset)| {
            !committed_at_kills
                .iter()
                .any(|c| *offset >= c.get(partition).copied().unwrap_or(0))
        })
        .collect();
    println!(
        "kafka -> file, {KILLS} SIGKILLs: {records} records, {} lost, {} duplicated \
         ({} outside the in-flight window), committed at kills {committed_at_kills:?}, {:.1} s",
        lost.len(),
        duplicates.len(),
        outside.len(),
        elapsed.as_secs_f64()
    );
    assert!(
        lost.is_empty(),
        "lost {} records, first {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(
        outside.is_empty(),
        "duplicates outside the in-flight window: {outside:?}"
    );
}

/// A kafka -> file pipeline created over the API in group `group`, started; its id.
fn start_api_pipeline(address: &str, name: &str, servers: &str, group: &str, out: &Path) -> String {
    use serde_json::json;
    let p = call(
        address,
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": name}})),
    );
    let id = p["id"].as_str().unwrap().to_owned();
    call(
        address,
        "POST",
        "/v1/connectors",
        Some(
            json!({"type": "TYPE_SOURCE", "plugin": "builtin:kafka", "pipelineId": id,
            "config": {"name": "in", "settings": {"servers": servers, "topics": "rebalance",
            "groupID": group, "readFromBeginning": "true", "commitOffsetsDelay": "1s"}}}),
        ),
    );
    call(
        address,
        "POST",
        "/v1/connectors",
        Some(
            json!({"type": "TYPE_DESTINATION", "plugin": "builtin:file", "pipelineId": id,
            "config": {"name": "out", "settings": {"path": out.to_str().unwrap()}}}),
        ),
    );
    call(address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    id
}

/// Two pipelines share one consumer group: the second joins while the first is reading
/// (its partitions are split between them), then the first stops (the second takes them
/// all). Every record arrives in one file or the other; duplicates are counted.
#[test]
fn a_consumer_group_rebalance_loses_nothing() {
    let records = records_from_env("CULVERT_KAFKA_REBALANCE_RECORDS", 200_000);
    let kafka = KafkaBroker::start();
    let servers = kafka.servers();
    runtime()
        .block_on(admin::create_topic(&servers, "rebalance", 3))
        .unwrap();
    produce(&servers, "rebalance", records);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let mut server = Server::start(&dir.path().join("data"), &[]);
    let address = server.http_address();
    let started = Instant::now();
    let first = start_api_pipeline(&address, "first", &servers, "shared", &a);
    wait_for_lines(&a, records / 5, Duration::from_secs(60));
    let second = start_api_pipeline(&address, "second", &servers, "shared", &b);
    // The second gets partitions (and records, unless the first read everything already).
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut count_a, mut count_b) = (LineCounter::default(), LineCounter::default());
    while count_b.count(&b) == 0 && count_a.count(&a) < records {
        assert!(Instant::now() < deadline, "the second member read nothing");
        // A file has no change notification: poll.
        std::thread::sleep(Duration::from_millis(100));
    }
    call(
        &address,
        "POST",
        &format!("/v1/pipelines/{first}/stop"),
        None,
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    let (lost, duplicated, in_b) = loop {
        let mut seen = vec![0u32; records];
        let from_b = tally(&b);
        for (id, _, _) in tally(&a).iter().chain(&from_b) {
            seen[*id] += 1;
        }
        let lost = seen.iter().filter(|n| **n == 0).count();
        if lost == 0 || Instant::now() > deadline {
            let duplicated: u64 = seen.iter().map(|n| u64::from(n.saturating_sub(1))).sum();
            break (lost, duplicated, from_b.len());
        }
        // A file has no change notification: poll.
        std::thread::sleep(Duration::from_millis(500));
    };
    println!(
        "kafka -> file, two members of one group (join, then leave): {records} records, \
         {lost} lost, {duplicated} duplicated, {in_b} read by the second, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    stop(server, &address, &[&second]);
    assert_eq!(lost, 0, "records lost across the rebalances");
}

const GENERATOR_TO_KAFKA: &str = r#"
version: "2.2"
pipelines:
  - id: to-kafka
    status: running
    connectors:
      - id: gen
        type: source
        plugin: builtin:generator
        settings: { format.type: raw, format.options.id: int, recordCount: "${RECORDS}" }
      - id: kafka-out
        type: destination
        plugin: builtin:kafka
        settings: { servers: "${SERVERS}", topic: produced }
"#;

/// The destination side: generator -> kafka, the server SIGKILLed five times while
/// messages flow. The generator resumes from its persisted position (acknowledged only
/// once the brokers acknowledged the messages), so every record is in the topic in the
/// end; duplicates (records produced but not yet acknowledged at a kill) are counted.
#[test]
fn generator_to_kafka_loses_nothing_across_sigkills() {
    const KILLS: usize = 5;
    let records = records_from_env("CULVERT_KAFKA_KILL_RECORDS", 200_000);
    let kafka = KafkaBroker::start();
    let servers = kafka.servers();
    let rt = runtime();
    rt.block_on(admin::create_topic(&servers, "produced", 3))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (data, pipelines) = (dir.path().join("data"), dir.path().join("pipelines"));
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(pipelines.join("kafka.yaml"), GENERATOR_TO_KAFKA).unwrap();
    let count = records.to_string();
    let env = [("SERVERS", servers.as_ref()), ("RECORDS", count.as_ref())];
    let args = ["--pipelines.path", pipelines.to_str().unwrap()];
    let started = Instant::now();
    let produced = || -> usize {
        let ends = rt
            .block_on(admin::end_offsets(&servers, "produced"))
            .unwrap();
        ends.values().sum::<i64>() as usize
    };
    let mut server = Server::start_with_env(&data, &args, &env);
    let mut seed = 0x0067_656e_6b61_u64;
    let mut at_kills = Vec::new();
    for round in 0..KILLS {
        let share = records / (KILLS + 1);
        let point = round * share + share / 4 + (xorshift(&mut seed) as usize) % (share / 2);
        // The broker has no change notification to wait on: poll.
        poll_until(
            Duration::from_secs(300),
            Duration::from_millis(20),
            || match produced() >= point {
                true => Ok(()),
                false => Err(format!(
                    "the pipeline did not reach record {point} in round {round}"
                )),
            },
        );
        server.kill();
        at_kills.push(produced());
        server = Server::start_with_env(&data, &args, &env);
    }
    let address = server.http_address();
    // Wait for every id to be in the topic. The message count is no measure: duplicates
    // make it reach `records` while the generator's last records are still to come, and
    // stopping then would cut them off. So read the topic and look for the missing ids,
    // again whenever more messages have arrived; stop waiting once nothing has arrived for
    // `STALL` (then the assertion below names what is missing). The broker has no change
    // notification to wait on: poll.
    const STALL: Duration = Duration::from_secs(60);
    let (mut seen, mut since) = (0, Instant::now());
    poll_until(Duration::from_secs(300), Duration::from_millis(200), || {
        let now = produced();
        if now > seen {
            (seen, since) = (now, Instant::now());
            if now >= records && missing(&read_topic(&servers, "produced", now), records).is_empty()
            {
                return Ok(());
            }
        }
        match since.elapsed() > STALL {
            true => Ok(()),
            false => Err(format!(
                "{now} messages; ids of the {records} still missing"
            )),
        }
    });
    stop(server, &address, &["to-kafka"]);
    let total = produced();
    let lost = missing(&read_topic(&servers, "produced", total), records);
    println!(
        "generator -> kafka, {KILLS} SIGKILLs (messages at each: {at_kills:?}): {records} \
         records, {} lost, {} duplicated, {:.1} s",
        lost.len(),
        total - (records - lost.len()),
        started.elapsed().as_secs_f64()
    );
    assert!(
        lost.is_empty(),
        "lost {} records, first {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}
