//! What the API load scripts share: a control plane on a temporary RocksDB (fsync off)
//! holding `count` pipelines, and a 2-worker runtime to serve and load it.

use culvert_commands::{Context, ControlPlaneWriter, PipelineOrchestrator};
use culvert_projections::{ProjectionOptions, Projections};
use culvert_store::{EventLog, RocksStore, StoreOptions};
use std::sync::Arc;

/// A control plane with pipelines in it; the temp dir lives as long as this does.
pub struct Fixture {
    /// The writer (and read model) the API serves.
    pub writer: Arc<ControlPlaneWriter>,
    /// The ids of the pipelines created.
    pub ids: Vec<String>,
    /// The runtime to run server and load client on (2 workers: the target machine).
    pub runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

/// Open a fresh store and create `count` pipelines.
pub fn fixture(count: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(
        RocksStore::open(
            dir.path().join("db"),
            StoreOptions {
                fsync: false,
                ..StoreOptions::default()
            },
            &culvert_migrations::layout(),
        )
        .unwrap(),
    );
    let (projections, _) = Projections::open(log.as_ref(), ProjectionOptions::default()).unwrap();
    let writer = ControlPlaneWriter::new(log, Arc::new(projections));
    let pipelines = PipelineOrchestrator::new(writer.clone());
    let ctx = Context::new("user:bench");
    let ids = (0..count)
        .map(|i| {
            pipelines
                .create(&ctx, &format!("pipeline-{i}"), "a benchmark pipeline")
                .unwrap()
                .id
                .to_string()
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    Fixture {
        writer,
        ids,
        runtime,
        _dir: dir,
    }
}
