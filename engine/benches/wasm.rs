//! The cost of a WASM processor: the built-in generator -> file, once with no processor
//! and once through a no-op WASM processor (the Go fixture of `tests/fixtures/processor`
//! with `noop: true`, built here with `GOOS=wasip1 GOARCH=wasm`), plus the processor alone
//! on batches of 1,000 records.
//!
//! Prints records/s for both pipelines, the per-record cost of the processor in the
//! pipeline, and its per-record cost on its own. Run: `make bench-wasm` (= `cargo bench
//! --locked -p culvert-engine --bench wasm`; in this crate so that it does not link
//! RocksDB); copy the figures into BENCHMARKS.md. `CULVERT_BENCH_RECORDS`
//! sets the count (default 500,000).

use culvert_domain::{Position, Record};
use culvert_engine::{run, DestinationNode, Graph, Options, Positions, ProcessorNode, SourceNode};
use culvert_plugins::processor::{Outcome, ProcessorPlugin};
use culvert_plugins::wasm::{Limits, WasmProcessorPlugin};
use culvert_plugins::{Destination, PluginError, Registry, Settings, Side};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The server's allocator (src/main.rs), so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct NoPositions;

impl Positions for NoPositions {
    fn load(&self, _: &str) -> Result<Option<Position>, String> {
        Ok(None)
    }
    fn save(&self, _: &str, _: &Position) -> Result<(), String> {
        Ok(())
    }
}

/// The file destination, counting what it has written.
struct Counted {
    inner: Box<dyn Destination>,
    written: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl Destination for Counted {
    async fn open(&mut self) -> Result<(), PluginError> {
        self.inner.open().await
    }
    async fn write(&mut self, records: &[Record]) -> Result<(), PluginError> {
        self.inner.write(records).await?;
        self.written
            .fetch_add(records.len() as u64, Ordering::Release);
        Ok(())
    }
    async fn teardown(&mut self) -> Result<(), PluginError> {
        self.inner.teardown().await
    }
}

fn fixture_processor(out: &Path) -> PathBuf {
    let module = out.join("fixture-processor.wasm");
    let status = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&module)
        .arg(".")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/processor"))
        .env("GOOS", "wasip1")
        .env("GOARCH", "wasm")
        .env("GONOSUMDB", "github.com/conduitio")
        .status()
        .expect("`go` on the PATH (make deps installs it)");
    assert!(status.success(), "building the fixture processor failed");
    module
}

fn settings(pairs: &[(&str, &str)]) -> Settings {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// generator -> [processors] -> file until `records` are written; the time it took.
fn pipeline(processors: Vec<ProcessorNode>, out: &Path, records: u64) -> Duration {
    let registry = Registry::builtin();
    let count = records.to_string();
    let generator = registry
        .validate(
            "builtin:generator",
            Side::Source,
            &settings(&[
                ("format.type", "raw"),
                ("format.options.id", "int"),
                ("recordCount", &count),
            ]),
        )
        .unwrap();
    let file = registry
        .validate(
            "builtin:file",
            Side::Destination,
            &settings(&[("path", out.to_str().unwrap())]),
        )
        .unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let source = registry
        .lookup("generator")
        .unwrap()
        .new_source(&generator)
        .unwrap();
    let destination = Box::new(Counted {
        inner: registry
            .lookup("file")
            .unwrap()
            .new_destination(&file)
            .unwrap(),
        written: written.clone(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let engine = tokio::spawn(run(
            Graph {
                sources: vec![SourceNode {
                    id: "generator".into(),
                    source,
                    processors: vec![],
                }],
                processors,
                destinations: vec![DestinationNode {
                    id: "file".into(),
                    destination,
                    processors: vec![],
                }],
                dlq: None,
            },
            Arc::new(NoPositions),
            Options::default(),
            stop,
            Some(started_tx),
        ));
        started_rx.await.unwrap();
        let started = Instant::now();
        while written.load(Ordering::Acquire) < records {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let elapsed = started.elapsed();
        stop_tx.send(true).unwrap();
        engine.await.unwrap().unwrap();
        elapsed
    })
}

fn main() {
    // `cargo test --benches` runs bench targets with --bench absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let records: u64 = std::env::var("CULVERT_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let dir = tempfile::tempdir().unwrap();
    let module = fixture_processor(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let compile = Instant::now();
    let plugin = runtime
        .block_on(WasmProcessorPlugin::load(&module, Limits::default()))
        .unwrap();
    let compile = compile.elapsed();
    let noop = settings(&[("noop", "true")]);

    // The processor alone, on batches of 1,000 records like the generator's.
    let alone = runtime.block_on(async {
        let mut processor = plugin.configure(&noop).unwrap();
        processor.open().await.unwrap();
        let template: Vec<Record> = (0..1000)
            .map(|i| Record {
                position: Position(i.to_string().into_bytes()),
                payload: culvert_domain::Change {
                    before: None,
                    after: Some(culvert_domain::Data::Raw(vec![b'x'; 100])),
                },
                ..Record::default()
            })
            .collect();
        let batches = (records / 1000).max(1);
        let mut outcomes = vec![Outcome::Keep; 1000];
        let started = Instant::now();
        for _ in 0..batches {
            let mut batch = template.clone();
            outcomes.fill(Outcome::Keep);
            processor.process(&mut batch, &mut outcomes).await.unwrap();
        }
        started.elapsed() / (batches * 1000) as u32
    });
    drop(runtime);

    let bare = pipeline(vec![], &dir.path().join("bare.jsonl"), records);
    let processors = vec![ProcessorNode {
        id: "noop".into(),
        processor: plugin.configure(&noop).unwrap(),
    }];
    let through = pipeline(processors, &dir.path().join("wasm.jsonl"), records);

    let rate = |d: Duration| records as f64 / d.as_secs_f64();
    let per_record_us = |d: Duration| d.as_secs_f64() * 1e6 / records as f64;
    println!("module compiled in {:.2} s", compile.as_secs_f64());
    println!(
        "generator -> file: {records} records: {:.0} records/s ({:.2} s)",
        rate(bare),
        bare.as_secs_f64()
    );
    println!(
        "generator -> no-op WASM processor -> file: {records} records: {:.0} records/s ({:.2} s)",
        rate(through),
        through.as_secs_f64()
    );
    println!(
        "WASM processor in the pipeline: {:.2} us per record; alone, batches of 1,000: {:.2} us per record",
        per_record_us(through) - per_record_us(bare),
        alone.as_secs_f64() * 1e6
    );
}
