//! What the engine's benchmarks share: a pipeline into the built-in file destination
//! timed until a count of records is written, and building the Go fixtures.

use culvert_domain::{Position, Record};
use culvert_engine::{run, DestinationNode, Graph, Options, Positions, ProcessorNode, SourceNode};
use culvert_plugins::{Destination, PluginError, Settings, Side, Source};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Positions are not what is measured.
struct NoPositions;

impl Positions for NoPositions {
    fn load(&self, _: &str) -> Result<Option<Position>, String> {
        Ok(None)
    }
    fn save(&self, _: &str, _: &Position) -> Result<(), String> {
        Ok(())
    }
}

/// The file destination, counting what it has written (watchable).
struct Counted {
    inner: Box<dyn Destination>,
    written: Arc<tokio::sync::watch::Sender<u64>>,
}

#[async_trait::async_trait]
impl Destination for Counted {
    async fn open(&mut self) -> Result<(), PluginError> {
        self.inner.open().await
    }
    async fn write(&mut self, records: &[Record]) -> Result<(), PluginError> {
        self.inner.write(records).await?;
        self.written
            .send_modify(|written| *written += records.len() as u64);
        Ok(())
    }
    async fn teardown(&mut self) -> Result<(), PluginError> {
        self.inner.teardown().await
    }
}

/// Settings from pairs.
pub fn settings(pairs: &[(&str, &str)]) -> Settings {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The record count to run (`CULVERT_BENCH_RECORDS`, default 500,000).
pub fn records() -> u64 {
    std::env::var("CULVERT_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000)
}

/// The built-in generator making `records` small raw records.
pub fn generator(records: u64) -> Box<dyn Source> {
    let registry = culvert_connectors::registry();
    let count = records.to_string();
    let settings = registry
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
    registry
        .lookup("generator")
        .unwrap()
        .new_source(&settings)
        .unwrap()
}

/// Build the Go fixture in `tests/fixtures/<fixture>` into `out` (for WASM with `wasm`).
pub fn go_fixture(fixture: &str, out: &Path, wasm: bool) -> PathBuf {
    let binary = out.join(fixture);
    let mut command = std::process::Command::new("go");
    command
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures")
                .join(fixture),
        )
        .env("GONOSUMDB", "github.com/conduitio");
    if wasm {
        command.env("GOOS", "wasip1").env("GOARCH", "wasm");
    }
    let status = command
        .status()
        .expect("`go` on the PATH (make deps installs it)");
    assert!(status.success(), "building the {fixture} fixture failed");
    binary
}

/// Run `source` through `processors` into a file at `out` until `records` are written,
/// timed from the moment every connector opened; the time and the bytes written.
pub fn measure(
    source: Box<dyn Source>,
    processors: Vec<ProcessorNode>,
    out: &Path,
    records: u64,
) -> (Duration, u64) {
    let registry = culvert_connectors::registry();
    let file = registry
        .validate(
            "builtin:file",
            Side::Destination,
            &settings(&[("path", out.to_str().unwrap())]),
        )
        .unwrap();
    let written = Arc::new(tokio::sync::watch::channel(0u64).0);
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
        // The plugins' start-up is not per-record cost.
        started_rx.await.unwrap();
        let started = Instant::now();
        written
            .subscribe()
            .wait_for(|written| *written >= records)
            .await
            .unwrap();
        let elapsed = started.elapsed();
        stop_tx.send(true).unwrap();
        engine.await.unwrap().unwrap();
        elapsed
    });
    (elapsed, std::fs::metadata(out).unwrap().len())
}
