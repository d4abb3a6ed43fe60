//! Provisioning at start: 1,000 pipeline configuration files (one pipeline each: a
//! generator source with a processor, a file destination, a pipeline processor) into a
//! fresh RocksDB event log, with fsync on as the server defaults; then the same files
//! again (nothing changed, nothing written).
//!
//! Prints the time, pipelines/s and events written for both runs. Run:
//! `make bench-provisioning` (= `cargo bench --locked --bench provisioning`); copy the
//! figures into BENCHMARKS.md. `CULVERT_BENCH_FILES` changes the count.

use culvert_commands::ControlPlaneWriter;
use culvert_projections::{ProjectionOptions, Projections};
use culvert_provisioning::Provisioner;
use culvert_store::{EventLog, RocksStore, StoreOptions};
use std::sync::Arc;
use std::time::Instant;

fn file(i: usize) -> String {
    format!(
        r#"version: "2.2"
pipelines:
  - id: pipeline-{i:04}
    status: stopped
    description: benchmark pipeline {i}
    connectors:
      - id: gen
        type: source
        plugin: builtin:generator
        settings:
          format.type: structured
          format.options.id: int
          format.options.name: string
          rate: "10"
        processors:
          - id: tag
            plugin: field.set
            settings: {{ field: .Metadata.pipeline, value: "{i}" }}
      - id: out
        type: destination
        plugin: builtin:file
        settings: {{ path: /tmp/out-{i}.jsonl }}
    processors:
      - id: drop-deletes
        plugin: filter
        condition: '{{{{ eq .Operation "delete" }}}}'
"#
    )
}

fn main() {
    // `cargo test --benches` runs bench targets with --bench absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let count: usize = std::env::var("CULVERT_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let dir = tempfile::tempdir().unwrap();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    for i in 0..count {
        std::fs::write(pipelines.join(format!("p{i:04}.yaml")), file(i)).unwrap();
    }
    let log: Arc<dyn EventLog> = Arc::new(
        RocksStore::open(
            dir.path().join("data"),
            StoreOptions::default(),
            &culvert_migrations::layout(),
        )
        .unwrap(),
    );
    let (projections, _) = Projections::open(log.as_ref(), ProjectionOptions::default()).unwrap();
    let writer = ControlPlaneWriter::new(log, Arc::new(projections));
    let provisioner = Provisioner::new(
        writer,
        Arc::new(culvert_connectors::registry()),
        Arc::new(culvert_processors::registry()),
    );
    for run in ["first start", "unchanged restart"] {
        let started = Instant::now();
        let report = provisioner
            .provision(&pipelines, &|name| std::env::var(name).ok())
            .unwrap();
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(report.errors().count(), 0, "{:?}", report.problems);
        println!(
            "provisioning {count} files, {run}: {:.2} s ({:.0} pipelines/s), {} created, \
             {} unchanged, {} events written",
            seconds,
            count as f64 / seconds,
            report.created.len(),
            report.unchanged.len(),
            report.events,
        );
    }
}
