#![allow(missing_docs)] // criterion_group! generates undocumented items
//! Benchmarks of the control plane's event log and read models (criterion).
//!
//! * append throughput: 1-event and 10-event batches, fsync on and off;
//! * open + rebuild of the read model over 1,000,000 events, with and without a snapshot;
//! * time travel: fold to the middle of 1,000,000 events.
//!
//! Run: `make bench` (or `cargo bench --bench event_log`). Figures go in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use culvert_domain::{
    ConnectorId, ConnectorType, DeadLetterQueue, Event, PipelineId, Seq, Settings,
};
use culvert_migrations::{encode, layout, Provenance};
use culvert_projections::{fold_to, ProjectionOptions, Projections};
use culvert_store::{AppendRequest, EventLog, RocksStore, StoreOptions};
use std::path::Path;
use std::time::Duration;

const EVENTS: u64 = 1_000_000;
/// Each pipeline gets 200 events: created, two connectors (2 events each), 195 updates.
const PER_PIPELINE: u64 = 200;

fn who() -> Provenance {
    Provenance {
        actor: "user:bench".into(),
        correlation_id: "00000000-0000-0000-0000-000000000000".into(),
        causation_id: None,
        reason: None,
    }
}

fn options(fsync: bool) -> StoreOptions {
    StoreOptions {
        fsync,
        positions_fsync: fsync,
        ..StoreOptions::default()
    }
}

/// The events of pipeline `i`, as the domain would produce them.
fn pipeline_events(i: u64) -> Vec<Event> {
    let id = PipelineId(format!("pipeline-{i:07}"));
    let mut events = vec![Event::PipelineCreated {
        id: id.clone(),
        name: format!("pipeline {i}"),
        description: "a benchmark pipeline".into(),
        dlq: DeadLetterQueue::default(),
    }];
    for (n, t) in [(0, ConnectorType::Source), (1, ConnectorType::Destination)] {
        let cid = ConnectorId(format!("connector-{i:07}-{n}"));
        events.push(Event::ConnectorCreated {
            id: cid.clone(),
            pipeline_id: id.clone(),
            connector_type: t,
            plugin: "builtin:generator".into(),
            name: format!("c{n}"),
            settings: Settings::from([
                ("format.type".to_owned(), "structured".to_owned()),
                ("recordCount".to_owned(), "1000".to_owned()),
            ]),
        });
        events.push(Event::PipelineConnectorAdded {
            id: id.clone(),
            connector_id: cid,
        });
    }
    while (events.len() as u64) < PER_PIPELINE {
        events.push(Event::PipelineUpdated {
            id: id.clone(),
            name: format!("pipeline {i}"),
            description: format!("revision {}", events.len()),
        });
    }
    events
}

/// Fill `path` with `EVENTS` events in batches of one pipeline each (fsync off).
fn populate(path: &Path) {
    let store = RocksStore::open(path, options(false), &layout()).unwrap();
    for i in 0..EVENTS / PER_PIPELINE {
        let events = pipeline_events(i)
            .iter()
            .map(|e| encode(e, &who()))
            .collect();
        store
            .append(AppendRequest {
                events,
                expected: vec![],
                clear_positions: Vec::new(),
                set_positions: Vec::new(),
                clear_letters: Vec::new(),
                queue_letters: Vec::new(),
            })
            .unwrap();
    }
    assert_eq!(store.head(), Seq(EVENTS));
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    for fsync in [false, true] {
        for batch in [1usize, 10] {
            let dir = tempfile::tempdir().unwrap();
            let store = RocksStore::open(dir.path().join("db"), options(fsync), &layout()).unwrap();
            let events: Vec<_> = pipeline_events(0)
                .iter()
                .skip(5)
                .take(batch)
                .map(|e| encode(e, &who()))
                .collect();
            group.throughput(Throughput::Elements(batch as u64));
            if fsync {
                group
                    .sample_size(20)
                    .measurement_time(Duration::from_secs(5));
            } else {
                group
                    .sample_size(50)
                    .measurement_time(Duration::from_secs(5));
            }
            let name = format!(
                "{batch}-event batch, fsync {}",
                if fsync { "on" } else { "off" }
            );
            group.bench_function(name, |b| {
                b.iter_batched(
                    || AppendRequest {
                        events: events.clone(),
                        expected: vec![],
                        clear_positions: Vec::new(),
                        set_positions: Vec::new(),
                        clear_letters: Vec::new(),
                        queue_letters: Vec::new(),
                    },
                    |request| store.append(request).unwrap(),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

fn rebuild_and_time_travel(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    populate(&path);
    let mut group = c.benchmark_group("1M events");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("open + rebuild, no snapshot", |b| {
        b.iter(|| {
            let store = RocksStore::open(&path, options(false), &layout()).unwrap();
            let (p, report) = Projections::open(&store, ProjectionOptions::default()).unwrap();
            assert_eq!(report.folded, EVENTS);
            p
        })
    });
    {
        let store = RocksStore::open(&path, options(false), &layout()).unwrap();
        let (p, _) = Projections::open(&store, ProjectionOptions::default()).unwrap();
        p.write_snapshot(&store).unwrap();
    }
    group.bench_function("open + rebuild, with snapshot", |b| {
        b.iter(|| {
            let store = RocksStore::open(&path, options(false), &layout()).unwrap();
            let (p, report) = Projections::open(&store, ProjectionOptions::default()).unwrap();
            assert_eq!(report.folded, 0);
            p
        })
    });
    let store = RocksStore::open(&path, options(false), &layout()).unwrap();
    group.throughput(Throughput::Elements(EVENTS / 2));
    group.bench_function("time travel to seq 500,000", |b| {
        b.iter(|| {
            let state = fold_to(&store, Seq(EVENTS / 2)).unwrap();
            assert_eq!(state.last_seq(), Seq(EVENTS / 2));
            state
        })
    });
    group.finish();
}

criterion_group!(benches, append, rebuild_and_time_travel);
criterion_main!(benches);
