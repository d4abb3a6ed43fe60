//! Fail-point tests of the projections, in their own process because fail points are global:
//! a fold interrupted half-way through a batch, and a snapshot write interrupted between its
//! parts (the latest snapshot is stored, its copy along the log not yet). Whatever is read
//! afterwards is the state before or after, never half of it, and the projection opened
//! again (snapshot plus log) equals the log folded from the start.

mod support;

use culvert_domain::{Command, ConnectorId, ConnectorType, PipelineId, ProcessorId, Seq};
use culvert_projections::{
    fold_all, fold_to, ProjectionOptions, Projections, HISTORY_PREFIX, SNAPSHOT_NAME,
};
use culvert_store::{EventLog, StoreError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use support::{append, bytes, execute, open_store, run, Workload};

const MID_UPDATE: &str = "projections::apply::mid_update";
const MID_WRITE: &str = "projections::snapshot::mid_write";

fn options() -> ProjectionOptions {
    ProjectionOptions { snapshot_every: 0 }
}

/// A command whose batch has several events: a connector (created and added to its
/// pipeline) is one; a provisioning batch is a pipeline with its children.
fn big_batch(n: u32) -> Command {
    let pipeline = PipelineId(format!("provisioned-{n}"));
    let source = ConnectorId(format!("provisioned-{n}-source"));
    Command::Provision {
        pipeline: pipeline.clone(),
        file: Some(format!("pipelines/p{n}.yaml")),
        commands: vec![
            Command::CreatePipeline {
                id: pipeline.clone(),
                name: format!("provisioned {n}"),
                description: "from a file".into(),
            },
            Command::CreateConnector {
                id: source.clone(),
                pipeline_id: pipeline.clone(),
                connector_type: ConnectorType::Source,
                plugin: "builtin:generator".into(),
                name: "source".into(),
                settings: [("rate".to_owned(), "10".to_owned())].into(),
            },
            Command::CreateConnector {
                id: ConnectorId(format!("provisioned-{n}-destination")),
                pipeline_id: pipeline.clone(),
                connector_type: ConnectorType::Destination,
                plugin: "builtin:file".into(),
                name: "destination".into(),
                settings: [("path".to_owned(), "/tmp/out".to_owned())].into(),
            },
            Command::CreateProcessor {
                id: ProcessorId(format!("provisioned-{n}-processor")),
                parent: culvert_domain::ProcessorParent::Connector(source),
                plugin: "builtin:field.set".into(),
                settings: [("field".to_owned(), ".Payload.After.x".to_owned())].into(),
                condition: String::new(),
                workers: 1,
            },
        ],
    }
}

#[test]
fn an_interrupted_fold_leaves_the_state_before_the_batch() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = open_store(&path);
    let (projections, _) = Projections::open(&store, options()).unwrap();
    run(&store, &projections, &mut Workload::new(7, 10), 500);
    projections.write_snapshot(&store).unwrap();
    run(&store, &projections, &mut Workload::new(8, 10), 200);

    for (round, action) in ["return", "panic"].into_iter().enumerate() {
        let batch = append(&store, &projections, &big_batch(round as u32), 0).unwrap();
        assert!(batch.len() >= 4, "a batch of {} events", batch.len());
        let before = bytes(&projections.read());
        fail::cfg(MID_UPDATE, action).unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(|| projections.apply(&batch)));
        fail::remove(MID_UPDATE);
        match (action, outcome) {
            (
                "return",
                Ok(Err(culvert_projections::ProjectionError::Store(StoreError::Injected(_)))),
            ) => {}
            ("panic", Err(_)) => {}
            (action, other) => panic!("{action}: unexpected outcome {other:?}"),
        }
        // Before, to the byte, and a reader sees the same.
        assert_eq!(bytes(&projections.read()), before, "{action}: half a batch");
        assert_eq!(projections.read().last_seq().next(), batch[0].seq);
        // The batch is in the log: the command layer folds it again (apply, or catch_up),
        // and then it is after.
        projections.apply(&batch).unwrap();
        assert_eq!(
            bytes(&projections.read()),
            bytes(&fold_all(&store).unwrap()),
            "{action}: after"
        );
        // Life goes on: more commands, a snapshot, more commands.
        run(
            &store,
            &projections,
            &mut Workload::new(9 + round as u64, 10),
            100,
        );
        projections.write_snapshot(&store).unwrap();
        run(
            &store,
            &projections,
            &mut Workload::new(20 + round as u64, 10),
            50,
        );
    }

    // The rollback point moves with catch_up too: interrupt a fold after one.
    let batch = append(&store, &projections, &big_batch(9), 0).unwrap();
    projections.catch_up(&store).unwrap();
    let batch2 = append(&store, &projections, &big_batch(10), 0).unwrap();
    let before = bytes(&projections.read());
    fail::cfg(MID_UPDATE, "return").unwrap();
    assert!(projections.apply(&batch2).is_err());
    fail::remove(MID_UPDATE);
    assert_eq!(bytes(&projections.read()), before);
    assert!(batch.last().unwrap().seq < batch2[0].seq);
    projections.catch_up(&store).unwrap();

    let live = bytes(&projections.read());
    assert_eq!(live, bytes(&fold_all(&store).unwrap()));
    drop(projections);
    drop(store);
    // Reopened from the disk: snapshot plus tail equals the whole log folded.
    let store = open_store(&path);
    let (reopened, report) = Projections::open(&store, options()).unwrap();
    assert!(report.snapshot_seq.is_some());
    assert_eq!(bytes(&reopened.read()), live);
    assert_eq!(bytes(&fold_all(&store).unwrap()), live);
    scenario.teardown();
}

#[test]
fn an_interrupted_snapshot_write_leaves_the_old_or_the_new_snapshot() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = open_store(&path);
    let (projections, _) = Projections::open(&store, options()).unwrap();
    run(&store, &projections, &mut Workload::new(1, 10), 300);
    let first = projections.write_snapshot(&store).unwrap();
    let first_snapshot = store.get_snapshot(SNAPSHOT_NAME).unwrap().unwrap();

    for (round, action) in ["return", "panic"].into_iter().enumerate() {
        run(
            &store,
            &projections,
            &mut Workload::new(2 + round as u64, 10),
            150,
        );
        let state = bytes(&projections.read());
        let seq = projections.read().last_seq();
        let old = store.get_snapshot(SNAPSHOT_NAME).unwrap().unwrap();
        fail::cfg(MID_WRITE, action).unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(|| projections.write_snapshot(&store)));
        fail::remove(MID_WRITE);
        match (action, &outcome) {
            ("return", Ok(Err(_))) | ("panic", Err(_)) => {}
            (action, other) => panic!("{action}: unexpected outcome {other:?}"),
        }
        // The latest snapshot is the old one or the new one, whole.
        let now = store.get_snapshot(SNAPSHOT_NAME).unwrap().unwrap();
        assert!(
            now == old || (now.seq == seq && now.data == state),
            "{action}: a snapshot that is neither the old nor the new one (seq {})",
            now.seq.0
        );
        // The copy along the log was not written (the second part), the earlier one is kept.
        let names = store.snapshot_names(HISTORY_PREFIX).unwrap();
        assert!(names
            .iter()
            .any(|n| n.ends_with(&format!("{:020}", first.0))));
        assert!(!names.iter().any(|n| n.ends_with(&format!("{:020}", seq.0))));
        // The live state is untouched by a failed snapshot.
        assert_eq!(bytes(&projections.read()), state);
        // Opened now (as after a crash right here): snapshot plus tail equals the log.
        let (reopened, report) = Projections::open(&store, options()).unwrap();
        assert_eq!(report.snapshot_seq, Some(now.seq));
        assert_eq!(bytes(&reopened.read()), state);
        // Time travel to points before, at and after the old snapshot agrees with a fold
        // of the log up to there.
        for target in [Seq(1), Seq(first.0 - 1), first, Seq(first.0 + 1), seq] {
            let mut expected = culvert_domain::ControlPlane::new();
            for event in store.read_from(Seq(1), target.0 as usize).unwrap() {
                expected.evolve(&culvert_migrations::decode(&event).unwrap());
            }
            assert_eq!(
                bytes(&fold_to(&store, target).unwrap()),
                bytes(&expected),
                "{action}: time travel to {}",
                target.0
            );
        }
        // The next snapshot goes through whole.
        projections.write_snapshot(&store).unwrap();
        let names = store.snapshot_names(HISTORY_PREFIX).unwrap();
        assert!(names.iter().any(|n| n.ends_with(&format!("{:020}", seq.0))));
    }
    assert_ne!(
        first_snapshot,
        store.get_snapshot(SNAPSHOT_NAME).unwrap().unwrap()
    );

    // More traffic, then reopen the store from the disk.
    run(&store, &projections, &mut Workload::new(5, 10), 120);
    let live = bytes(&projections.read());
    drop(projections);
    drop(store);
    let store = open_store(&path);
    let (reopened, report) = Projections::open(&store, options()).unwrap();
    assert!(report.folded > 0, "the tail after the snapshot is folded");
    assert_eq!(bytes(&reopened.read()), live);
    assert_eq!(bytes(&fold_all(&store).unwrap()), live);
    // And a command runs on the reopened projection as before.
    let command = Command::CreatePipeline {
        id: PipelineId("after-reopen".into()),
        name: "after reopen".into(),
        description: String::new(),
    };
    execute(&store, &reopened, &command, 1).unwrap();
    assert_eq!(bytes(&reopened.read()), bytes(&fold_all(&store).unwrap()));
    scenario.teardown();
}
