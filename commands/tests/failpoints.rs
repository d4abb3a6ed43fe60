//! Fail-point tests. Fail points are process-global, so these live in their own test binary
//! (a process of their own) and run one at a time under `FailScenario`.
//!
//! What they prove: a multi-entity operation that fails between decide and append, or inside
//! the store just before its single write, leaves nothing visible — not in the log, not in
//! the read model — and a retry then succeeds as one batch.

use culvert_commands::{
    CommandError, ConnectorOrchestrator, Context, ControlPlaneWriter, PipelineOrchestrator,
};
use culvert_domain::{ConnectorType, Seq, Settings};
use culvert_projections::{ProjectionOptions, Projections};
use culvert_store::{EventLog, RocksStore, StoreError, StoreOptions};
use std::sync::Arc;

#[test]
fn multi_entity_operations_are_all_or_nothing_under_injected_failures() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(
        RocksStore::open(
            dir.path().join("db"),
            StoreOptions::default(),
            &culvert_migrations::layout(),
        )
        .unwrap(),
    );
    let (projections, _) = Projections::open(log.as_ref(), ProjectionOptions::default()).unwrap();
    let writer = ControlPlaneWriter::new(log.clone(), Arc::new(projections));
    let pipelines = PipelineOrchestrator::new(writer.clone());
    let connectors = ConnectorOrchestrator::new(writer.clone());
    let ctx = Context::new("user:test");
    let p = pipelines.create(&ctx, "pipe", "").unwrap();
    let create_source = || {
        connectors.create(
            &ctx,
            &p.id,
            ConnectorType::Source,
            "builtin:generator",
            "s",
            Settings::new(),
        )
    };
    for point in ["commands::after_decide", "store::append::before_write"] {
        fail::cfg(point, "return").unwrap();
        let head = log.head();
        let err = create_source().unwrap_err();
        assert!(
            matches!(err, CommandError::Store(StoreError::Injected(_))),
            "{point}: {err}"
        );
        fail::remove(point);
        assert_eq!(log.head(), head, "{point}: nothing appended");
        let state = writer.projections().read();
        assert_eq!(state.connectors().count(), 0, "{point}: no connector");
        assert!(state.pipeline(&p.id).unwrap().connector_ids.is_empty());
        assert_eq!(state.last_seq(), head);
    }
    let before = log.head();
    let c = create_source().unwrap();
    assert_eq!(
        log.head(),
        Seq(before.0 + 2),
        "connector created + added: one batch"
    );
    let state = writer.projections().read();
    assert_eq!(state.pipeline(&p.id).unwrap().connector_ids, vec![c.id]);
    drop(state);
    scenario.teardown();
}
