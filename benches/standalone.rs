//! The cost of the process boundary: the same small records into the built-in file
//! destination, once from the built-in generator and once from a standalone plugin (the
//! Go fixture connector of `tests/fixtures/connector`, built here with `go build`) over
//! connector protocol v2 on a unix socket.
//!
//! Prints records/s for both and the per-record overhead of the plugin (the difference of
//! the per-record times). Run: `make bench-standalone` (= `cargo bench --locked --bench
//! standalone`); copy the figures into BENCHMARKS.md. `CULVERT_BENCH_RECORDS` sets the
//! count (default 500,000).

use culvert_domain::{Position, Record};
use culvert_engine::{run, DestinationNode, Graph, Options, Positions, SourceNode};
use culvert_plugins::standalone::StandalonePlugin;
use culvert_plugins::{
    ConnectorPlugin, Destination, PluginError, Registry, Settings, Side, Source,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The server's allocator (src/main.rs), so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Positions are not what is measured here.
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

fn fixture_connector(out: &Path) -> PathBuf {
    let binary = out.join("fixture-connector");
    let status = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/connector"))
        .env("GONOSUMDB", "github.com/conduitio")
        .status()
        .expect("`go` on the PATH (make deps installs it)");
    assert!(status.success(), "building the fixture connector failed");
    binary
}

/// Run `source` into the file at `out` until `records` are written; the time it took and
/// the bytes written.
fn measure(source: Box<dyn Source>, out: &Path, records: u64) -> (Duration, u64) {
    let registry = Registry::builtin();
    let settings: Settings = [("path".to_owned(), out.to_str().unwrap().to_owned())]
        .into_iter()
        .collect();
    let settings = registry
        .validate("builtin:file", Side::Destination, &settings)
        .unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let destination = Box::new(Counted {
        inner: registry
            .lookup("file")
            .unwrap()
            .new_destination(&settings)
            .unwrap(),
        written: written.clone(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let elapsed = runtime.block_on(async {
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let engine = tokio::spawn(run(
            Graph {
                sources: vec![SourceNode {
                    id: "source".into(),
                    source,
                    processors: vec![],
                }],
                processors: vec![],
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
        // Timed from the moment every connector has opened (the plugin's start-up is not
        // per-record cost).
        started_rx.await.unwrap();
        let started = Instant::now();
        while written.load(Ordering::Acquire) < records {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let elapsed = started.elapsed();
        stop_tx.send(true).unwrap();
        engine.await.unwrap().unwrap();
        elapsed
    });
    (elapsed, std::fs::metadata(out).unwrap().len())
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
    let registry = Registry::builtin();

    let generator: Settings = [
        ("format.type", "raw"),
        ("format.options.id", "int"),
        ("recordCount", &records.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let generator = registry
        .validate("builtin:generator", Side::Source, &generator)
        .unwrap();
    let source = registry
        .lookup("generator")
        .unwrap()
        .new_source(&generator)
        .unwrap();
    let (builtin, builtin_bytes) = measure(source, &dir.path().join("builtin.jsonl"), records);

    let binary = fixture_connector(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let plugin = runtime.block_on(StandalonePlugin::load(&binary)).unwrap();
    drop(runtime);
    let settings: Settings = [("recordCount".to_owned(), records.to_string())]
        .into_iter()
        .collect();
    let source = plugin.new_source(&settings).unwrap();
    let (standalone, standalone_bytes) =
        measure(source, &dir.path().join("standalone.jsonl"), records);

    let rate = |d: Duration| records as f64 / d.as_secs_f64();
    let per_record_us = |d: Duration| d.as_secs_f64() * 1e6 / records as f64;
    println!(
        "built-in generator -> file: {records} records of {:.0} bytes: {:.0} records/s ({:.2} s)",
        builtin_bytes as f64 / records as f64,
        rate(builtin),
        builtin.as_secs_f64()
    );
    println!(
        "standalone source (Go fixture) -> file: {records} records of {:.0} bytes: {:.0} records/s ({:.2} s)",
        standalone_bytes as f64 / records as f64,
        rate(standalone),
        standalone.as_secs_f64()
    );
    println!(
        "process boundary: {:.2} us per record ({:.2} vs {:.2} us)",
        per_record_us(standalone) - per_record_us(builtin),
        per_record_us(standalone),
        per_record_us(builtin)
    );
}
