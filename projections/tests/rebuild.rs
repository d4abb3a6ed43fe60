//! Rebuilding the control-plane projection from the log gives, to the byte, the read model
//! the live projection built while the events were appended.
//!
//! Realistic traffic (pipelines, connectors and processors created, renamed, reconfigured,
//! started, stopped and deleted, schemas registered) runs the way the server runs it: each
//! command decided on the live state, appended to a RocksDB log as one batch, folded into
//! the live projection, with a snapshot every 10,000 events (the server's default). Then
//! the read model is rebuilt from the whole log, from the latest snapshot plus the tail (on
//! the open store and after reopening it from the disk), and from an older snapshot kept
//! along the log; each serialised read model (the snapshot encoding) must equal the live one.
//!
//! `CULVERT_REBUILD_EVENTS` sets how many events (default 100,000; the figure is
//! 1,000,000, which takes minutes in a debug build).

mod support;

use culvert_projections::{
    fold_all, ProjectionOptions, Projections, HISTORY_PREFIX, SNAPSHOT_NAME,
};
use culvert_store::EventLog;
use std::time::Instant;
use support::{bytes, open_store, run, Workload};

#[test]
fn rebuilds_from_the_log_are_byte_identical_to_the_live_projection() {
    let events: u64 = std::env::var("CULVERT_REBUILD_EVENTS")
        .ok()
        .map(|v| v.parse().expect("CULVERT_REBUILD_EVENTS: not a number"))
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = open_store(&path);
    let options = ProjectionOptions::default();
    let (live, _) = Projections::open(&store, options.clone()).unwrap();

    let began = Instant::now();
    let mut workload = Workload::new(2024, 60);
    let (appended, refused) = run(&store, &live, &mut workload, events);
    let state = live.read();
    println!(
        "rebuild test: {appended} events appended and folded live in {:.1?} ({refused} commands \
         refused by the domain); {} pipelines, {} connectors, {} processors at the end",
        began.elapsed(),
        state.pipelines().count(),
        state.connectors().count(),
        state.processors().count(),
    );
    let live_bytes = bytes(&state);
    drop(state);
    assert!(appended >= events);

    // 1. The whole log folded from the start, no snapshot.
    let t = Instant::now();
    let folded = fold_all(&store).unwrap();
    println!(
        "rebuild test: fold_all of {} events in {:.1?}",
        store.head().0,
        t.elapsed()
    );
    assert_eq!(folded.last_seq(), store.head());
    assert!(
        bytes(&folded) == live_bytes,
        "fold_all differs from the live projection"
    );
    drop(folded);

    // 2. The latest snapshot plus the tail, on the open store.
    let t = Instant::now();
    let (opened, report) = Projections::open(&store, options.clone()).unwrap();
    println!(
        "rebuild test: open from snapshot at {:?} + {} events in {:.1?}",
        report.snapshot_seq.map(|s| s.0),
        report.folded,
        t.elapsed()
    );
    assert!(
        report.snapshot_seq.is_some() || events < options.snapshot_every,
        "no snapshot was used"
    );
    assert!(
        bytes(&opened.read()) == live_bytes,
        "open-from-snapshot differs from the live projection"
    );
    drop(opened);
    drop(live);
    drop(store);

    // 3. The same after reopening the store from the disk.
    let store = open_store(&path);
    let (opened, report) = Projections::open(&store, options.clone()).unwrap();
    assert!(
        bytes(&opened.read()) == live_bytes,
        "open-from-snapshot after reopening the store differs"
    );
    drop(opened);

    // 4. From an older snapshot kept along the log: without the latest one and the newest
    //    kept copy, the open starts further back and folds a longer tail.
    if let Some(seq) = report.snapshot_seq {
        store.delete_snapshot(SNAPSHOT_NAME).unwrap();
        store
            .delete_snapshot(&format!("{HISTORY_PREFIX}{:020}", seq.0))
            .unwrap();
        let (opened, older) =
            Projections::open(&store, ProjectionOptions { snapshot_every: 0 }).unwrap();
        println!(
            "rebuild test: open from the older snapshot at {:?} + {} events",
            older.snapshot_seq.map(|s| s.0),
            older.folded
        );
        assert!(older.snapshot_seq.is_none_or(|s| s < seq));
        assert!(
            bytes(&opened.read()) == live_bytes,
            "open from an older snapshot differs"
        );
    }
    println!("rebuild test: {:.1?} in all", began.elapsed());
}
