//! Property tests: for random valid command sequences, the projection rebuilt from a
//! snapshot plus the tail equals the full fold, and time travel to N equals the state after
//! the first N events.

use super::*;
use culvert_domain::{
    Command, ConnectorId, ConnectorType, DeadLetterQueue, PipelineId, ProcessorId, ProcessorParent,
    StoppedReason,
};
use culvert_migrations::{encode, Provenance};
use culvert_store::{AppendRequest, MemoryStore};
use proptest::prelude::*;

fn command() -> impl Strategy<Value = Command> {
    let p = (0..3u8).prop_map(|i| PipelineId(format!("p{i}")));
    let c = (0..5u8).prop_map(|i| ConnectorId(format!("c{i}")));
    let r = (0..4u8).prop_map(|i| ProcessorId(format!("r{i}")));
    let name = (0..4u8).prop_map(|i| format!("name-{i}"));
    let settings = prop::collection::btree_map("[a-c]", "[x-z]{0,3}", 0..3);
    let parent = prop_oneof![
        c.clone().prop_map(ProcessorParent::Connector),
        p.clone().prop_map(ProcessorParent::Pipeline),
    ];
    prop_oneof![
        4 => (p.clone(), name.clone()).prop_map(|(id, name)| Command::CreatePipeline {
            id, name, description: "d".into() }),
        1 => (p.clone(), name.clone(), "[a-z]{0,5}").prop_map(|(id, name, description)|
            Command::UpdatePipeline { id, name, description }),
        1 => (p.clone(), 1..5u64).prop_map(|(id, w)| Command::UpdatePipelineDlq {
            id, dlq: DeadLetterQueue { window_size: w, ..DeadLetterQueue::default() } }),
        1 => p.clone().prop_map(|id| Command::DeletePipeline { id }),
        2 => p.clone().prop_map(|id| Command::StartPipeline { id }),
        1 => (p.clone(), any::<bool>()).prop_map(|(id, force)| Command::StopPipeline { id, force }),
        2 => p.clone().prop_map(|id| Command::ReportPipelineStarted { id }),
        1 => p.clone().prop_map(|id| Command::ReportPipelineStopped { id, reason: StoppedReason::System }),
        1 => (p.clone(), "[a-z ]{1,10}").prop_map(|(id, error)| Command::ReportPipelineDegraded { id, error }),
        1 => (p.clone(), "[a-z ]{1,10}", 1..5u32).prop_map(|(id, error, attempt)|
            Command::ReportPipelineRecovering { id, error, attempt }),
        5 => (c.clone(), p.clone(), any::<bool>(), settings.clone()).prop_map(|(id, pipeline_id, src, settings)|
            Command::CreateConnector {
                id: id.clone(), pipeline_id,
                connector_type: if src { ConnectorType::Source } else { ConnectorType::Destination },
                plugin: "builtin:generator".into(), name: id.0, settings }),
        1 => (c.clone(), name.clone(), settings.clone()).prop_map(|(id, name, settings)|
            Command::UpdateConnector { id, name, settings, plugin: None }),
        1 => c.prop_map(|id| Command::DeleteConnector { id }),
        3 => (r.clone(), parent, settings.clone(), 0..3i32).prop_map(|(id, parent, settings, workers)|
            Command::CreateProcessor { id, parent, plugin: "field.set".into(), settings,
                condition: String::new(), workers }),
        1 => (r.clone(), settings, 0..3i32).prop_map(|(id, settings, workers)|
            Command::UpdateProcessor { id, settings, workers, plugin: None }),
        1 => r.prop_map(|id| Command::DeleteProcessor { id }),
    ]
}

/// Runs the commands through decide, appending accepted ones; returns the log and the
/// state after each event (index 0 = empty).
fn build(commands: &[Command]) -> (MemoryStore, Vec<ControlPlane>) {
    let log = MemoryStore::new();
    let mut states = vec![ControlPlane::new()];
    let who = Provenance {
        actor: "prop".into(),
        correlation_id: "c".into(),
        causation_id: None,
        reason: None,
    };
    for command in commands {
        let current = states.last().unwrap().clone();
        let Ok(events) = current.decide(command) else {
            continue;
        };
        let stored = log
            .append(AppendRequest {
                events: events.iter().map(|e| encode(e, &who)).collect(),
                expected: vec![],
                clear_positions: Vec::new(),
                set_positions: Vec::new(),
                clear_letters: Vec::new(),
                queue_letters: Vec::new(),
            })
            .unwrap();
        let mut state = current;
        for s in &stored {
            state.evolve(&decode(s).unwrap());
            states.push(state.clone());
        }
    }
    (log, states)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn snapshot_plus_tail_equals_full_fold(
        commands in prop::collection::vec(command(), 1..80),
        cut in 0.0f64..=1.0,
    ) {
        let (log, states) = build(&commands);
        let full = fold_all(&log).unwrap();
        prop_assert_eq!(&full, states.last().unwrap());
        let k = ((states.len() - 1) as f64 * cut) as u64;
        // A snapshot at k, written the way the server writes it.
        let at_k = fold_to(&log, Seq(k)).unwrap();
        log.put_snapshot(SNAPSHOT_NAME, &Snapshot {
            seq: Seq(k),
            format: SNAPSHOT_FORMAT,
            data: serde_json::to_vec(&at_k).unwrap(),
        }).unwrap();
        let (projections, report) = Projections::open(&log, ProjectionOptions::default()).unwrap();
        prop_assert_eq!(report.snapshot_seq, Some(Seq(k)));
        prop_assert_eq!(report.folded, log.head().0 - k);
        prop_assert_eq!(&*projections.read(), &full);
    }

    #[test]
    fn time_travel_to_n_equals_the_state_after_n_events(
        commands in prop::collection::vec(command(), 1..80),
        pick in 0.0f64..=1.0,
        snapshot_at in 0.0f64..=1.0,
    ) {
        let (log, states) = build(&commands);
        let last = (states.len() - 1) as f64;
        let n = (last * pick) as usize;
        prop_assert_eq!(&fold_to(&log, Seq(n as u64)).unwrap(), &states[n]);
        // With a snapshot present, before or after n, the answer is the same.
        let s = (last * snapshot_at) as usize;
        log.put_snapshot(SNAPSHOT_NAME, &Snapshot {
            seq: Seq(s as u64),
            format: SNAPSHOT_FORMAT,
            data: serde_json::to_vec(&states[s]).unwrap(),
        }).unwrap();
        prop_assert_eq!(&fold_to(&log, Seq(n as u64)).unwrap(), &states[n]);
    }

    #[test]
    fn incremental_apply_equals_full_fold(commands in prop::collection::vec(command(), 1..60)) {
        let source = build(&commands).0;
        let log = MemoryStore::new();
        let (projections, _) = Projections::open(&log, ProjectionOptions::default()).unwrap();
        let mut applied = projections.watch_applied();
        let events: Vec<_> = source.read_from(Seq(1), usize::MAX).unwrap()
            .iter().map(|s| decode(s).unwrap()).collect();
        for chunk in events.chunks(3) {
            projections.apply(chunk).unwrap();
            // Whoever waits on the watch sees exactly what was folded.
            prop_assert!(applied.has_changed().unwrap());
            prop_assert_eq!(*applied.borrow_and_update(), projections.read().last_seq());
        }
        prop_assert_eq!(&*projections.read(), &fold_all(&source).unwrap());
    }
}

#[test]
fn out_of_order_batches_are_refused_and_unusable_snapshots_ignored() {
    let (log, states) = build(&[
        Command::CreatePipeline {
            id: PipelineId("a".into()),
            name: "a".into(),
            description: String::new(),
        },
        Command::CreatePipeline {
            id: PipelineId("b".into()),
            name: "b".into(),
            description: String::new(),
        },
    ]);
    let (projections, _) =
        Projections::open(&MemoryStore::new(), ProjectionOptions::default()).unwrap();
    let second = decode(&log.read_from(Seq(2), 1).unwrap()[0]).unwrap();
    assert!(matches!(
        projections.apply(&[second]),
        Err(ProjectionError::OutOfOrder { .. })
    ));
    // A snapshot of an unknown format, or garbage, is ignored: the log is folded instead.
    for (format, data) in [(99, b"{}".to_vec()), (SNAPSHOT_FORMAT, b"garbage".to_vec())] {
        log.put_snapshot(
            SNAPSHOT_NAME,
            &Snapshot {
                seq: Seq(1),
                format,
                data,
            },
        )
        .unwrap();
        let (projections, report) = Projections::open(&log, ProjectionOptions::default()).unwrap();
        assert_eq!(report.snapshot_seq, None);
        assert_eq!(&*projections.read(), states.last().unwrap());
    }
}

/// Of the latest snapshot and the newest one kept along the log, the newer is used; one
/// that cannot be decoded gives way to the other, and with neither the log is folded.
#[test]
fn the_newer_readable_snapshot_is_used() {
    let (log, states) = build(
        &(0..3)
            .map(|i| Command::CreatePipeline {
                id: PipelineId(format!("p{i}")),
                name: format!("n{i}"),
                description: String::new(),
            })
            .collect::<Vec<_>>(),
    );
    // Kept along the log at 1, 2 and 3.
    Projections::open(&log, ProjectionOptions { snapshot_every: 1 }).unwrap();
    let good = |seq: u64| {
        let mut state = states[seq as usize].clone();
        state.reindex();
        snapshot_of(&state).unwrap()
    };
    let garbage = |seq: u64| Snapshot {
        seq: Seq(seq),
        format: SNAPSHOT_FORMAT,
        data: b"garbage".to_vec(),
    };
    let opened = |log: &MemoryStore| {
        let (projections, report) = Projections::open(log, ProjectionOptions::default()).unwrap();
        assert_eq!(&*projections.read(), states.last().unwrap());
        report
    };
    let along = history_name(Seq(3));
    // The latest is unreadable: the one kept at 3.
    log.put_snapshot(SNAPSHOT_NAME, &garbage(3)).unwrap();
    assert_eq!(opened(&log).snapshot_seq, Some(Seq(3)));
    // The one kept at 3 is unreadable and the latest, at 2, is readable: the latest.
    log.put_snapshot(&along, &garbage(3)).unwrap();
    log.put_snapshot(SNAPSHOT_NAME, &good(2)).unwrap();
    assert_eq!(
        opened(&log),
        OpenReport {
            snapshot_seq: Some(Seq(2)),
            folded: 1
        }
    );
    // Both unreadable: the whole log.
    log.put_snapshot(SNAPSHOT_NAME, &garbage(3)).unwrap();
    assert_eq!(
        opened(&log),
        OpenReport {
            snapshot_seq: None,
            folded: 3
        }
    );
    // Time travel takes the same way down: to 3 past the unreadable one kept there.
    assert_eq!(&fold_to(&log, Seq(3)).unwrap(), &states[3]);
    assert_eq!(&fold_to(&log, Seq(2)).unwrap(), &states[2]);
}

#[test]
fn snapshots_are_written_when_due() {
    let (log, _) = build(
        &(0..25)
            .map(|i| Command::CreatePipeline {
                id: PipelineId(format!("p{i}")),
                name: format!("n{i}"),
                description: String::new(),
            })
            .collect::<Vec<_>>(),
    );
    let (projections, _) =
        Projections::open(&log, ProjectionOptions { snapshot_every: 10 }).unwrap();
    assert!(projections.snapshot_if_due(&log).unwrap());
    assert_eq!(
        log.get_snapshot(SNAPSHOT_NAME).unwrap().unwrap().seq,
        Seq(25)
    );
    assert!(!projections.snapshot_if_due(&log).unwrap());
    let (_, report) = Projections::open(&log, ProjectionOptions::default()).unwrap();
    assert_eq!(
        report,
        OpenReport {
            snapshot_seq: Some(Seq(25)),
            folded: 0
        }
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// With snapshots kept along the log (by a rebuild every few events), time travel to
    /// any point, by sequence or by time, still equals the state after that many events.
    #[test]
    fn time_travel_from_snapshots_along_the_log_equals_the_fold(
        commands in prop::collection::vec(command(), 1..120),
        every in 1u64..7,
        pick in 0.0f64..=1.0,
    ) {
        let (log, states) = build(&commands);
        let options = ProjectionOptions { snapshot_every: every };
        let (projections, _) = Projections::open(&log, options).unwrap();
        prop_assert_eq!(&*projections.read(), states.last().unwrap());
        let kept = history_seqs(&log).unwrap();
        let head = log.head().0;
        prop_assert_eq!(kept.len() as u64, (head / every).min(MAX_HISTORY as u64));
        let n = ((states.len() - 1) as f64 * pick) as usize;
        prop_assert_eq!(&fold_to(&log, Seq(n as u64)).unwrap(), &states[n]);
        if n > 0 {
            // Every event recorded by the n-th one's time (later ones may share it).
            let at = log.read_from(Seq(n as u64), 1).unwrap()[0].recorded_at;
            let last = log
                .read_from(Seq(1), usize::MAX)
                .unwrap()
                .iter()
                .filter(|e| e.recorded_at <= at)
                .count();
            prop_assert_eq!(&fold_to_time(&log, at).unwrap(), &states[last]);
        }
    }
}

/// Past [`MAX_HISTORY`], kept snapshots are thinned evenly: the first and the last stay,
/// and no gap grows much beyond the even spacing.
#[test]
fn snapshots_along_the_log_are_bounded_and_spread() {
    let log = MemoryStore::new();
    let snapshot = |seq: u64| Snapshot {
        seq: Seq(seq),
        format: SNAPSHOT_FORMAT,
        data: b"{}".to_vec(),
    };
    for n in 1..=1_000u64 {
        let seq = n * 10;
        keep_history(&log, &history_name(Seq(seq)), &snapshot(seq)).unwrap();
    }
    let kept = history_seqs(&log).unwrap();
    assert_eq!(kept.len(), MAX_HISTORY);
    assert_eq!((kept[0], *kept.last().unwrap()), (10, 10_000));
    let widest = kept.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    let even = 10_000 / MAX_HISTORY as u64;
    assert!(
        widest <= 3 * even,
        "a gap of {widest} events (even: {even})"
    );
}
