//! Load program: PostgreSQL CDC -> file through a `culvert` server (the release build
//! `cargo bench` makes), once with `builtin:postgres` and once with Conduit's postgres
//! connector v0.14.2 (built from the Go module proxy) as a standalone plugin, each with its
//! own PostgreSQL (`tests/pg.rs`, loopback) and server, one after the other.
//! `snapshotMode: never`, one table `(id int8 PRIMARY KEY, ts int8, pad text)`, the
//! built-in file destination.
//!
//! * Throughput: transactions of 2,500 inserted rows (100-byte `pad`) sent at once;
//!   records/s from just before the first commit to the moment the file holds every record
//!   (the file is polled every 10 ms).
//! * Latency: 400 single-row transactions, one every 10 ms (paced by the server,
//!   `pg_sleep`); for each, the time from its row's `clock_timestamp()` to the moment its
//!   line is seen in the file (polled every millisecond); p50 and p99.
//!
//! Prints one line per connector (with the peak resident memory of its server and plugin)
//! and the ratio built-in / Conduit's connector; copy them into BENCHMARKS.md.
//!
//! Run: `make bench-postgres` (= `cargo bench --locked --bench postgres`). Needs PostgreSQL
//! and go (`make deps`). `CULVERT_BENCH_RECORDS` (default 200,000, rounded to whole
//! transactions) sets the throughput run's rows; `CULVERT_BENCH_PERF=<dir>` records
//! `perf record -g` of the server during the throughput run.

#[allow(dead_code)]
mod connectors;
#[allow(dead_code, unused_imports)]
#[path = "../tests/harness.rs"]
mod harness;
#[allow(dead_code, unused_imports)]
#[path = "../tests/http_client.rs"]
mod http_client;
#[allow(dead_code, unused_imports)]
#[path = "../tests/pg.rs"]
mod pg;
#[allow(dead_code, unused_imports)]
#[path = "../tests/standalone.rs"]
mod standalone;

use connectors::{poll, LineCounter, PeakRss, Profile};
use harness::{data_dir, Server, DEADLINE};
use pg::Postgres;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TX_ROWS: usize = 2500;
const LATENCY_ROWS: usize = 400;

struct Figures {
    records_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    memory: PeakRss,
}

/// Every line appended to `path` with the wall-clock time (unix µs) it was first seen,
/// by the `id` of its record's key, until `want` ids from `first` up were seen (or `stop`).
fn watch(
    path: PathBuf,
    first: i64,
    want: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<HashMap<i64, i64>> {
    std::thread::spawn(move || {
        let mut seen = HashMap::new();
        let mut offset = 0u64;
        let mut partial = String::new();
        while !stop.load(Ordering::Relaxed) && seen.keys().filter(|id| **id >= first).count() < want
        {
            if let Ok(mut file) = std::fs::File::open(&path) {
                file.seek(SeekFrom::Start(offset)).unwrap();
                let mut reader = BufReader::new(file);
                loop {
                    let mut line = String::new();
                    let n = reader.read_line(&mut line).unwrap();
                    if n == 0 {
                        break;
                    }
                    offset += n as u64;
                    partial.push_str(&line);
                    if !partial.ends_with('\n') {
                        continue;
                    }
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
                    let record: serde_json::Value = serde_json::from_str(&partial).unwrap();
                    partial.clear();
                    if let Some(id) = record["key"]["id"].as_i64() {
                        seen.entry(id).or_insert(now.as_micros() as i64);
                    }
                }
            }
            // Polling the file: there is no notification for an append.
            std::thread::sleep(Duration::from_millis(1));
        }
        seen
    })
}

fn run(plugin: &str, plugins: Option<&Path>, transactions: usize) -> Figures {
    let pg = Postgres::start();
    pg.sql("postgres", "CREATE DATABASE bench");
    pg.sql(
        "bench",
        "CREATE TABLE bench (id int8 PRIMARY KEY, ts int8 NOT NULL, pad text NOT NULL)",
    );
    let (dir, data) = data_dir();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(
        pipelines.join("bench.yaml"),
        format!(
            "version: \"2.2\"
pipelines:
  - id: bench
    status: running
    connectors:
      - id: source
        type: source
        plugin: {plugin}
        settings:
          url: ${{PG_URL}}
          tables: bench
          snapshotMode: never
          logrepl.slotName: bench_slot
          logrepl.publicationName: bench_pub
      - id: destination
        type: destination
        plugin: builtin:file
        settings:
          path: ${{OUT_DIR}}/out.jsonl
"
        ),
    )
    .unwrap();
    let mut args = vec!["--pipelines.path", pipelines.to_str().unwrap()];
    let connectors_text;
    if let Some(c) = plugins {
        connectors_text = c.to_str().unwrap().to_owned();
        args.extend(["--connectors.path", &connectors_text]);
    }
    let out = dir.path().join("out.jsonl");
    let mut lines = LineCounter::new(out.clone());
    let mut server = Server::start_with_env(
        &data,
        &args,
        &[
            ("PG_URL", pg.url("bench").as_ref()),
            ("OUT_DIR", dir.path().as_os_str()),
        ],
    );
    // Streaming: the slot is in use and a first row went through.
    poll("the slot", DEADLINE, Duration::from_millis(50), || {
        pg.query(
            "bench",
            "SELECT count(*) FROM pg_replication_slots WHERE active",
        ) == "1"
    });
    let now_us = "(extract(epoch from clock_timestamp()) * 1000000)::int8";
    pg.sql(
        "bench",
        &format!("INSERT INTO bench VALUES (0, {now_us}, 'warm-up')"),
    );
    poll(
        "the warm-up row",
        DEADLINE,
        Duration::from_millis(10),
        || lines.count() >= 1,
    );

    // Throughput.
    let mut sql = String::new();
    for tx in 0..transactions {
        let from = 1 + tx * TX_ROWS;
        let to = from + TX_ROWS - 1;
        sql.push_str(&format!(
            "BEGIN; INSERT INTO bench SELECT g, {now_us}, repeat('x', 100) \
             FROM generate_series({from}, {to}) g; COMMIT;"
        ));
    }
    let profile = Profile::start(
        server.pid(),
        &format!("postgres-{}", plugin.replace(':', "-")),
    );
    let started = Instant::now();
    pg.sql("bench", &sql);
    let total = 1 + transactions * TX_ROWS;
    poll(
        "every bulk record",
        Duration::from_secs(900),
        Duration::from_millis(10),
        || lines.count() >= total,
    );
    let elapsed = started.elapsed();
    drop(profile);
    let records_per_s = (transactions * TX_ROWS) as f64 / elapsed.as_secs_f64();

    // Latency.
    let stop = Arc::new(AtomicBool::new(false));
    let first = 1_000_000_000i64;
    let watcher = watch(out.clone(), first, LATENCY_ROWS, stop.clone());
    let mut sql = String::new();
    for i in 0..LATENCY_ROWS as i64 {
        sql.push_str(&format!(
            "INSERT INTO bench VALUES ({}, {now_us}, 'latency'); SELECT pg_sleep(0.01);\n",
            first + i
        ));
    }
    // One psql session, statements one after another (each its own transaction).
    let mut psql = std::process::Command::new(pg.psql())
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &pg.url("bench")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = psql.stdin.take().unwrap();
        stdin.write_all(sql.as_bytes()).unwrap();
    }
    assert!(psql.wait().unwrap().success());
    poll(
        "every latency record",
        DEADLINE,
        Duration::from_millis(10),
        || lines.count() >= total + LATENCY_ROWS,
    );
    // The watcher sees the last lines within its next poll and ends.
    poll("the watcher", DEADLINE, Duration::from_millis(10), || {
        watcher.is_finished()
    });
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    let committed: HashMap<i64, i64> = pg
        .query(
            "bench",
            &format!("SELECT id, ts FROM bench WHERE id >= {first} ORDER BY id"),
        )
        .lines()
        .map(|l| {
            let (id, ts) = l.split_once('|').unwrap();
            (id.parse().unwrap(), ts.parse().unwrap())
        })
        .collect();
    let mut latencies: Vec<f64> = committed
        .iter()
        .filter_map(|(id, ts)| seen.get(id).map(|s| (s - ts) as f64 / 1000.0))
        .collect();
    assert!(
        latencies.len() >= LATENCY_ROWS * 9 / 10,
        "only {} latency rows were seen",
        latencies.len()
    );
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let memory = PeakRss::of(server.pid());
    server.terminate();
    assert!(server.wait().success());
    Figures {
        records_per_s,
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
        memory,
    }
}

fn main() {
    if !connectors::invoked_as_bench() {
        return;
    }
    let transactions = connectors::records(200_000).div_ceil(TX_ROWS).max(1);
    println!("postgres: {}", connectors::describe_build());
    let (dir, _) = data_dir();
    let plugins = standalone::connectors_with_postgres(dir.path());
    let mut figures = vec![];
    for (name, plugin, path) in [
        ("builtin:postgres", "builtin:postgres", None),
        (
            "standalone:postgres@v0.14.2 (Conduit's)",
            "standalone:postgres@v0.14.2",
            Some(plugins.as_path()),
        ),
    ] {
        let f = run(plugin, path, transactions);
        println!(
            "postgres -> file, {name}: {:.0} CDC records/s ({} rows in {transactions} \
             transactions); latency p50 {:.1} ms, p99 {:.1} ms ({LATENCY_ROWS} single-row \
             transactions), {} (load {})",
            f.records_per_s,
            transactions * TX_ROWS,
            f.p50_ms,
            f.p99_ms,
            f.memory,
            connectors::load()
        );
        figures.push(f);
    }
    println!(
        "postgres -> file: built-in / Conduit's connector = {:.2}x records/s",
        figures[0].records_per_s / figures[1].records_per_s
    );
}
