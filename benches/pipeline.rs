//! Pipeline throughput: the built-in generator -> file destination through the engine,
//! 1,000,000 structured records of about 1 KiB each, as fast as the engine takes them.
//!
//! Prints records/s, MB/s written, end-to-end latency (a record's `opencdc.readAt`, set
//! by the generator, to the moment its batch was handed to the file destination) at p50
//! and p99, and the process's peak RSS. Run: `make bench-pipeline` (=
//! `cargo bench --locked --bench pipeline`); copy the figures into BENCHMARKS.md. The
//! count can be lowered with `CULVERT_BENCH_RECORDS` for a quick look.
//!
//! With `CULVERT_BENCH_POSITIONS=rocksdb` positions are saved in the server's RocksDB
//! position store (fsync on every save, as in production) instead of memory.
//!
//! With `CULVERT_BENCH_PROCESSORS=4` four built-in processors sit in the path: `field.set`
//! (a template) and `field.rename` on the source, `field.exclude` on the pipeline, and a
//! `filter` whose condition is false for every record on the destination (so every record
//! is still written and the figures compare). The pipeline's run in the task that feeds
//! them, as the server runs built-ins; `CULVERT_BENCH_INLINE=off` gives them a fan-in task
//! of their own, as standalone processors have.
//!
//! The connectors and processors carry the SDK's schema handling as in the server (the
//! generator names a schema for its payloads, processors keep it up to date; schemas in
//! memory); `CULVERT_BENCH_SCHEMAS=off` leaves it out.
//!
//! The engine counts into the server's Prometheus metrics as in the server;
//! `CULVERT_BENCH_METRICS=off` runs it without them. `CULVERT_BENCH_INSPECTOR=stalled` opens
//! an inspector session on the source that never reads (it must not slow the pipeline).

use culvert_domain::opencdc::metadata;
use culvert_domain::{Position, Record};
use culvert_engine::{
    run_observed, DestinationNode, Graph, Inspectors, Metrics, Options, Positions, ProcessorNode,
    SourceNode,
};
use culvert_plugins::{Destination, PluginError, Receipt, Settings, Side};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The server's allocator, with the server's options, so the figures are the server's.
#[path = "../src/allocator.rs"]
mod allocator;

/// Where positions go: memory (this measures the engine and connectors, not the store), or
/// with `CULVERT_BENCH_POSITIONS=rocksdb` the server's RocksDB position store, fsync on.
#[derive(Default)]
struct BenchPositions {
    memory: Mutex<HashMap<String, Position>>,
    store: Option<culvert_store::RocksStore>,
    acked: AtomicU64,
}

impl Positions for BenchPositions {
    fn load(&self, connector: &str) -> Result<Option<Position>, String> {
        Ok(self.memory.lock().unwrap().get(connector).cloned())
    }
    fn save(&self, connector: &str, position: &Position) -> Result<(), String> {
        use culvert_store::PositionStore as _;
        if let Some(store) = &self.store {
            store
                .put(connector, "position", &position.0)
                .map_err(|e| e.to_string())?;
        } else {
            self.memory
                .lock()
                .unwrap()
                .insert(connector.to_owned(), position.clone());
        }
        let count = String::from_utf8_lossy(&position.0).parse().unwrap_or(0);
        self.acked.store(count, Ordering::Release);
        Ok(())
    }
}

/// The file destination, timing each record from its read time to its write.
struct Timed {
    inner: Box<dyn Destination>,
    latencies_us: Arc<Mutex<Vec<u32>>>,
    seen: u64,
}

/// One record in this many is timed (keeps the samples out of the RSS figure).
const SAMPLE_EVERY: u64 = 16;

#[async_trait::async_trait]
impl Destination for Timed {
    async fn open(&mut self) -> Result<(), PluginError> {
        self.inner.open().await
    }
    async fn write(&mut self, records: &[Record]) -> Result<(), PluginError> {
        self.submit(records).await?.await.map(drop)
    }
    async fn submit(&mut self, records: &[Record]) -> Result<Receipt, PluginError> {
        // The read times of the sampled records, timed when the inner write is done.
        let mut read_at = Vec::new();
        for record in records {
            self.seen += 1;
            if !self.seen.is_multiple_of(SAMPLE_EVERY) {
                continue;
            }
            if let Some(at) = record
                .metadata
                .get(metadata::READ_AT)
                .and_then(|v| v.parse::<u128>().ok())
            {
                read_at.push(at);
            }
        }
        let receipt = self.inner.submit(records).await?;
        let latencies = self.latencies_us.clone();
        Ok(Box::pin(async move {
            let refused = receipt.await?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let mut latencies = latencies.lock().unwrap();
            for at in read_at {
                latencies.push((now.saturating_sub(at) / 1_000) as u32);
            }
            Ok(refused)
        }))
    }
    async fn teardown(&mut self) -> Result<(), PluginError> {
        self.inner.teardown().await
    }
}

fn settings(pairs: &[(String, String)]) -> Settings {
    pairs.iter().cloned().collect()
}

fn processor(plugin: &str, pairs: &[(&str, &str)], condition: &str) -> Vec<ProcessorNode> {
    let settings: Settings = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    vec![ProcessorNode {
        id: plugin.to_owned(),
        processor: processor_registry()
            .configure(plugin, &settings, condition)
            .unwrap(),
        inline: inline_processors(),
    }]
}

/// Whether the pipeline's built-in processors run in the task that feeds them, as the
/// server runs them (`CULVERT_BENCH_INLINE=off`: in a fan-in task, as standalone processors
/// run).
fn inline_processors() -> bool {
    match std::env::var("CULVERT_BENCH_INLINE").as_deref() {
        Ok("on") | Err(_) => true,
        Ok("off") => false,
        Ok(other) => panic!("CULVERT_BENCH_INLINE: expected on or off, got {other:?}"),
    }
}

/// Whether the SDK's schema handling is in the path (`CULVERT_BENCH_SCHEMAS`).
fn with_schemas() -> bool {
    match std::env::var("CULVERT_BENCH_SCHEMAS").as_deref() {
        Ok("on") | Err(_) => true,
        Ok("off") => false,
        Ok(other) => panic!("CULVERT_BENCH_SCHEMAS: on or off, not {other}"),
    }
}

/// Whether the engine counts into Prometheus metrics (`CULVERT_BENCH_METRICS`).
fn with_metrics() -> bool {
    match std::env::var("CULVERT_BENCH_METRICS").as_deref() {
        Ok("on") | Err(_) => true,
        Ok("off") => false,
        Ok(other) => panic!("CULVERT_BENCH_METRICS: on or off, not {other}"),
    }
}

/// Whether a stalled inspector session watches the source (`CULVERT_BENCH_INSPECTOR`).
fn with_stalled_inspector() -> bool {
    match std::env::var("CULVERT_BENCH_INSPECTOR").as_deref() {
        Ok("off") | Err(_) => false,
        Ok("stalled") => true,
        Ok(other) => panic!("CULVERT_BENCH_INSPECTOR: off or stalled, not {other}"),
    }
}

fn schemas() -> Arc<dyn culvert_plugins::schema::SchemaRegistry> {
    static SCHEMAS: std::sync::OnceLock<Arc<culvert_processors::avro::MemoryRegistry>> =
        std::sync::OnceLock::new();
    SCHEMAS.get_or_init(Default::default).clone()
}

fn processor_registry() -> culvert_processors::ProcessorRegistry {
    if with_schemas() {
        culvert_processors::registry_with_schemas(schemas())
    } else {
        culvert_processors::registry()
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo test --benches` runs bench targets with --bench absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let records: u64 = std::env::var("CULVERT_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let with_processors = match std::env::var("CULVERT_BENCH_PROCESSORS").as_deref() {
        Ok("4") => true,
        Ok("0") | Err(_) => false,
        Ok(other) => panic!("CULVERT_BENCH_PROCESSORS: 0 or 4, not {other}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let registry = if with_schemas() {
        culvert_connectors::registry_with_schemas(schemas())
    } else {
        culvert_connectors::registry()
    };
    // 36 string fields and a few others: about 1 KiB of JSON per record.
    let mut source_settings = vec![
        ("format.type".to_owned(), "structured".to_owned()),
        ("recordCount".to_owned(), records.to_string()),
        ("format.options.id".to_owned(), "int".to_owned()),
        ("format.options.at".to_owned(), "time".to_owned()),
        ("format.options.ok".to_owned(), "bool".to_owned()),
    ];
    for i in 0..36 {
        source_settings.push((format!("format.options.field_{i:02}"), "string".to_owned()));
    }
    let source_settings = registry
        .validate(
            "builtin:generator",
            Side::Source,
            &settings(&source_settings),
        )
        .unwrap();
    let dest_settings = registry
        .validate(
            "builtin:file",
            Side::Destination,
            &settings(&[("path".to_owned(), out.to_str().unwrap().to_owned())]),
        )
        .unwrap();
    let mut source = registry
        .lookup("generator")
        .unwrap()
        .new_source(&source_settings)
        .unwrap();
    // As the supervisor tells a source (the generator then builds maps for processors).
    source.prepare(culvert_plugins::connector::Prepare {
        connector_id: "generator".into(),
        records_processed: with_processors,
        ..Default::default()
    });
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(
        (records / SAMPLE_EVERY) as usize + 1,
    )));
    let destination = Box::new(Timed {
        inner: registry
            .lookup("file")
            .unwrap()
            .new_destination(&dest_settings)
            .unwrap(),
        latencies_us: latencies.clone(),
        seen: 0,
    });
    let store = match std::env::var("CULVERT_BENCH_POSITIONS").as_deref() {
        Ok("rocksdb") => Some(
            culvert_store::RocksStore::open(
                dir.path().join("data"),
                culvert_store::StoreOptions::default(),
                &culvert_migrations::layout(),
            )
            .unwrap(),
        ),
        Ok("memory") | Err(_) => None,
        Ok(other) => panic!("CULVERT_BENCH_POSITIONS: memory or rocksdb, not {other}"),
    };
    let positions_kind = if store.is_some() {
        ", RocksDB positions (fsync)"
    } else {
        ""
    };
    let positions = Arc::new(BenchPositions {
        store,
        ..BenchPositions::default()
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let elapsed = runtime.block_on(async {
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let (mut source_processors, mut pipeline_processors, mut destination_processors) =
            (vec![], vec![], vec![]);
        if with_processors {
            source_processors = processor(
                "field.set",
                &[
                    ("field", ".Metadata.route"),
                    ("value", "bench-{{ .Operation }}"),
                ],
                "",
            );
            source_processors.extend(processor(
                "field.rename",
                &[("mapping", ".Payload.After.field_00:first")],
                "",
            ));
            pipeline_processors = processor(
                "field.exclude",
                &[("fields", ".Payload.After.field_01")],
                "",
            );
            destination_processors = processor("filter", &[], "{{ eq .Metadata.route \"never\" }}");
        }
        let metrics = with_metrics().then(|| Arc::new(Metrics::new()).pipeline("bench"));
        let inspectors = Arc::new(Inspectors::new(1000));
        // Held open, never read: the session's buffer fills and it drops for itself.
        let _stalled = with_stalled_inspector()
            .then(|| inspectors.open("generator", culvert_engine::inspect::Side::Connector));
        let engine = tokio::spawn(run_observed(
            Graph {
                sources: vec![SourceNode {
                    id: "generator".into(),
                    source,
                    processors: source_processors,
                }],
                processors: pipeline_processors,
                destinations: vec![DestinationNode {
                    id: "file".into(),
                    destination,
                    processors: destination_processors,
                }],
                dlq: None,
            },
            positions.clone(),
            Options::default(),
            stop,
            None,
            metrics,
            Some(inspectors.clone()),
        ));
        // Done when the last record's position is persisted (acked).
        while positions.acked.load(Ordering::Acquire) < records {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let elapsed = started.elapsed();
        stop_tx.send(true).unwrap();
        engine.await.unwrap().unwrap();
        elapsed
    });
    let bytes = std::fs::metadata(&out).unwrap().len();
    let mut latencies = latencies.lock().unwrap();
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        f64::from(latencies[index]) / 1000.0
    };
    let seconds = elapsed.as_secs_f64();
    println!(
        "pipeline generator -> {}file{positions_kind}{}{}, {records} records of {:.0} bytes: {:.0} records/s, \
         {:.1} MB/s, latency p50 {:.2} ms p99 {:.2} ms, peak RSS {:.1} MiB ({seconds:.2} s)",
        if with_processors { "4 processors -> " } else { "" },
        if with_metrics() { "" } else { ", metrics off" },
        if with_stalled_inspector() { ", a stalled inspector on the source" } else { "" },
        bytes as f64 / records as f64,
        records as f64 / seconds,
        bytes as f64 / seconds / 1e6,
        percentile(0.50),
        percentile(0.99),
        peak_rss_kib() as f64 / 1024.0,
    );
}
