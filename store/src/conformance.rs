//! One conformance suite for every store implementation: the RocksDB store and its
//! in-memory twin must behave the same.

use crate::{
    AppendRequest, DeadLetterStore, EventLog, ExpectedVersion, LetterLimits, LetterRef, NewEvent,
    PositionStore, Snapshot, StoreError, Subscription,
};
use culvert_domain::{Seq, StreamId};
use serde_json::value::to_raw_value;
use std::sync::Arc;

/// A store under test plus whatever must live as long as it (a temp dir).
pub(crate) struct Subject<S> {
    pub store: Arc<S>,
    pub _guard: Option<tempfile::TempDir>,
}

pub(crate) fn event(stream: &str, n: u64) -> NewEvent {
    NewEvent {
        stream: StreamId(stream.into()),
        event_type: "Tested".into(),
        schema_version: 1,
        actor: "tester".into(),
        correlation_id: format!("corr-{n}"),
        causation_id: n.is_multiple_of(2).then(|| format!("cause-{n}")),
        reason: n.is_multiple_of(3).then(|| format!("reason {n}")),
        payload: to_raw_value(&serde_json::json!({ "n": n })).unwrap(),
    }
}

pub(crate) fn request(
    events: Vec<NewEvent>,
    expected: Vec<(&str, ExpectedVersion)>,
) -> AppendRequest {
    AppendRequest {
        events,
        expected: expected
            .into_iter()
            .map(|(s, v)| (StreamId(s.into()), v))
            .collect(),
        ..AppendRequest::default()
    }
}

/// Runs every case against stores made by `make`.
pub(crate) fn run_all<S: EventLog + PositionStore + DeadLetterStore>(
    make: impl Fn() -> Subject<S>,
) {
    appends_are_gapless_and_readable(make());
    version_checks_are_all_or_nothing(make());
    streams_read_in_order(make());
    snapshots_replace(make());
    positions_roundtrip(make());
    positions_clear_with_the_events_or_not_at_all(make());
    positions_set_with_the_events_or_not_at_all(make());
    subscription_catches_up_then_follows(make());
    dead_letters_are_bounded_queued_and_delivered(make());
}

/// Letters are numbered per pipeline, bounded by count and age (oldest first), queued only
/// with an append that succeeds, and delivered (removed) only when queued.
fn dead_letters_are_bounded_queued_and_delivered<S: EventLog + DeadLetterStore>(s: Subject<S>) {
    let store = &s.store;
    let limits = LetterLimits {
        max_letters: 3,
        max_age: std::time::Duration::from_secs(3600),
    };
    let t0 = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let at = |minutes: i64| t0 + chrono::Duration::minutes(minutes);
    for n in 1..=4u64 {
        let kept = store
            .keep_letter("p", at(n as i64), format!("letter {n}").as_bytes(), &limits)
            .unwrap();
        assert_eq!(kept.seq, n);
        assert_eq!(
            kept.dropped,
            u64::from(n == 4),
            "the fourth pushes out the first"
        );
    }
    store.keep_letter("q", at(0), b"other", &limits).unwrap();
    let seqs =
        |letters: Vec<crate::StoredLetter>| letters.iter().map(|l| l.seq).collect::<Vec<_>>();

    // A batch's letters in one write: numbered in order; within the count none go, beyond
    // it the oldest go first, then the first of the batch (as if kept one by one).
    let batch = |names: &[&str]| {
        names
            .iter()
            .map(|n| n.as_bytes().to_vec())
            .collect::<Vec<_>>()
    };
    let none = store.keep_letters("r", at(1), &[], &limits).unwrap();
    assert_eq!(
        (none.seq, none.dropped),
        (0, 0),
        "nothing given, nothing kept"
    );
    let two = store
        .keep_letters("r", at(1), &batch(&["a", "b"]), &limits)
        .unwrap();
    assert_eq!((two.seq, two.dropped), (2, 0));
    let five = store
        .keep_letters("r", at(2), &batch(&["c", "d", "e", "f", "g"]), &limits)
        .unwrap();
    assert_eq!((five.seq, five.dropped), (7, 4), "a and b, then c and d");
    let kept = store.letters("r", 0, 10).unwrap();
    assert_eq!(seqs(kept.clone()), vec![5, 6, 7]);
    let payloads: Vec<&[u8]> = kept.iter().map(|l| l.payload.as_slice()).collect();
    assert_eq!(payloads, [b"e", b"f", b"g"]);
    let one = store.keep_letter("r", at(3), b"h", &limits).unwrap();
    assert_eq!(
        (one.seq, one.dropped),
        (8, 1),
        "the count is kept across batches"
    );
    assert_eq!(seqs(store.letters("p", 0, 10).unwrap()), vec![2, 3, 4]);
    assert_eq!(seqs(store.letters("p", 2, 1).unwrap()), vec![3]);
    let second = store.letter("p", 2).unwrap().unwrap();
    assert_eq!((second.at, second.queued), (at(2), false));
    assert_eq!(second.payload, b"letter 2");
    assert_eq!(store.letter("p", 1).unwrap(), None);

    // Queued only by an append that succeeds.
    let queue = |seqs: &[u64]| -> Vec<LetterRef> {
        seqs.iter()
            .map(|seq| LetterRef {
                pipeline: "p".into(),
                seq: *seq,
            })
            .collect()
    };
    let refused = AppendRequest {
        queue_letters: queue(&[2, 3]),
        ..request(vec![event("x", 1)], vec![("x", ExpectedVersion::Exact(5))])
    };
    assert!(store.append(refused).is_err());
    assert!(store.queued_letters("p", 0, 10).unwrap().is_empty());
    let accepted = AppendRequest {
        queue_letters: queue(&[2, 4]),
        ..request(vec![event("pipeline/p", 1)], vec![])
    };
    store.append(accepted).unwrap();
    assert_eq!(seqs(store.queued_letters("p", 0, 10).unwrap()), vec![2, 4]);
    assert_eq!(seqs(store.queued_letters("p", 2, 10).unwrap()), vec![4]);
    assert!(store.letter("p", 4).unwrap().unwrap().queued);

    // Delivered: queued letters up to the number go; others stay.
    assert_eq!(store.letters_delivered("p", 3).unwrap(), 1);
    assert_eq!(seqs(store.letters("p", 0, 10).unwrap()), vec![3, 4]);
    assert_eq!(seqs(store.queued_letters("p", 0, 10).unwrap()), vec![4]);
    assert_eq!(store.letters_delivered("p", 10).unwrap(), 1);
    assert_eq!(seqs(store.letters("p", 0, 10).unwrap()), vec![3]);

    // Too old: a letter kept two hours later pushes out every older one.
    let late = store.keep_letter("p", at(125), b"late", &limits).unwrap();
    assert_eq!((late.seq, late.dropped), (5, 1), "numbers are not reused");
    assert_eq!(seqs(store.letters("p", 0, 10).unwrap()), vec![5]);

    // A cleared pipeline has none, and its other pipelines keep theirs.
    let cleared = AppendRequest {
        clear_letters: vec!["p".into()],
        ..request(vec![event("pipeline/p", 2)], vec![])
    };
    store.append(cleared).unwrap();
    assert!(store.letters("p", 0, 10).unwrap().is_empty());
    assert_eq!(seqs(store.letters("q", 0, 10).unwrap()), vec![1]);
}

fn appends_are_gapless_and_readable<S: EventLog>(s: Subject<S>) {
    let log = &s.store;
    assert_eq!(log.head(), Seq::ZERO);
    assert!(log.append(AppendRequest::default()).unwrap().is_empty());
    let first = log
        .append(request(
            vec![event("a", 1), event("b", 2), event("a", 3)],
            vec![],
        ))
        .unwrap();
    assert_eq!(
        first
            .iter()
            .map(|e| (e.seq.0, e.stream_version))
            .collect::<Vec<_>>(),
        vec![(1, 1), (2, 1), (3, 2)]
    );
    let second = log.append(request(vec![event("c", 4)], vec![])).unwrap();
    assert_eq!(second[0].seq, Seq(4));
    assert!(second[0].recorded_at >= first[0].recorded_at);
    assert_eq!(log.head(), Seq(4));
    let all = log.read_from(Seq(1), 100).unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[..3], first[..]);
    assert_eq!(all[3], second[0]);
    assert_eq!(all[2].payload.get(), r#"{"n":3}"#);
    assert_eq!(all[1].causation_id.as_deref(), Some("cause-2"));
    assert_eq!(all[1].reason, None);
    assert_eq!(all[2].reason.as_deref(), Some("reason 3"));
    assert_eq!(log.read_from(Seq(3), 1).unwrap()[0].seq, Seq(3));
    assert!(log.read_from(Seq(5), 10).unwrap().is_empty());
    assert_eq!(log.read_from(Seq::ZERO, 10).unwrap().len(), 4);
}

fn version_checks_are_all_or_nothing<S: EventLog>(s: Subject<S>) {
    let log = &s.store;
    log.append(request(
        vec![event("a", 1)],
        vec![("a", ExpectedVersion::NoStream)],
    ))
    .unwrap();
    // One stale expectation fails the whole batch, including events for other streams.
    let err = log
        .append(request(
            vec![event("b", 2), event("a", 3)],
            vec![
                ("b", ExpectedVersion::NoStream),
                ("a", ExpectedVersion::Exact(0)),
            ],
        ))
        .unwrap_err();
    match err {
        StoreError::Conflict {
            stream,
            expected,
            actual,
        } => {
            assert_eq!(stream.as_str(), "a");
            assert_eq!(expected, ExpectedVersion::Exact(0));
            assert_eq!(actual, 1);
        }
        other => panic!("expected a conflict, got {other}"),
    }
    assert_eq!(log.head(), Seq(1));
    assert_eq!(log.stream_version(&StreamId("b".into())).unwrap(), 0);
    assert!(log
        .append(request(
            vec![event("a", 4)],
            vec![("a", ExpectedVersion::NoStream)]
        ))
        .is_err());
    log.append(request(
        vec![event("a", 5)],
        vec![("a", ExpectedVersion::Exact(1))],
    ))
    .unwrap();
    log.append(request(
        vec![event("a", 6)],
        vec![("a", ExpectedVersion::Any)],
    ))
    .unwrap();
    assert_eq!(log.stream_version(&StreamId("a".into())).unwrap(), 3);
    assert_eq!(log.head(), Seq(3));
}

fn streams_read_in_order<S: EventLog>(s: Subject<S>) {
    let log = &s.store;
    for n in 0..10 {
        let stream = if n % 3 == 0 { "x" } else { "xy" };
        log.append(request(vec![event(stream, n)], vec![])).unwrap();
    }
    let x = log.read_stream(&StreamId("x".into()), 1, 100).unwrap();
    assert_eq!(
        x.iter().map(|e| e.seq.0).collect::<Vec<_>>(),
        vec![1, 4, 7, 10]
    );
    assert_eq!(
        x.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    let tail = log.read_stream(&StreamId("x".into()), 3, 1).unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].seq, Seq(7));
    // "x" is a prefix of "xy"; their events must not mix.
    assert_eq!(
        log.read_stream(&StreamId("xy".into()), 1, 100)
            .unwrap()
            .len(),
        6
    );
    assert!(log
        .read_stream(&StreamId("none".into()), 1, 10)
        .unwrap()
        .is_empty());
    assert_eq!(log.stream_version(&StreamId("xy".into())).unwrap(), 6);
}

fn snapshots_replace<S: EventLog>(s: Subject<S>) {
    let log = &s.store;
    assert!(log.get_snapshot("p").unwrap().is_none());
    let one = Snapshot {
        seq: Seq(5),
        format: 1,
        data: b"one".to_vec(),
    };
    log.put_snapshot("p", &one).unwrap();
    assert_eq!(log.get_snapshot("p").unwrap(), Some(one));
    let two = Snapshot {
        seq: Seq(9),
        format: 2,
        data: vec![],
    };
    log.put_snapshot("p", &two).unwrap();
    assert_eq!(log.get_snapshot("p").unwrap(), Some(two));
    // Names by prefix, in order; a deleted one is gone, others stay.
    for name in ["history@002", "history@001", "other"] {
        log.put_snapshot(
            name,
            &Snapshot {
                seq: Seq(1),
                format: 1,
                data: vec![],
            },
        )
        .unwrap();
    }
    assert_eq!(
        log.snapshot_names("history@").unwrap(),
        vec!["history@001".to_owned(), "history@002".to_owned()]
    );
    log.delete_snapshot("history@001").unwrap();
    log.delete_snapshot("never").unwrap();
    assert_eq!(
        log.snapshot_names("history@").unwrap(),
        vec!["history@002".to_owned()]
    );
    assert!(log.get_snapshot("other").unwrap().is_some());
}

fn positions_roundtrip<S: PositionStore>(s: Subject<S>) {
    let p = &s.store;
    assert_eq!(p.get("c1", "position").unwrap(), None);
    p.put("c1", "position", b"10").unwrap();
    p.put("c1", "state", b"s").unwrap();
    p.put("c10", "position", b"99").unwrap();
    p.put("c1", "position", b"11").unwrap();
    assert_eq!(p.get("c1", "position").unwrap(), Some(b"11".to_vec()));
    p.delete_connector("c1").unwrap();
    assert_eq!(p.get("c1", "position").unwrap(), None);
    assert_eq!(p.get("c1", "state").unwrap(), None);
    // A connector whose id extends another's is untouched.
    assert_eq!(p.get("c10", "position").unwrap(), Some(b"99".to_vec()));
}

/// Positions cleared by an append go in the same atomic write as its events: all of a
/// connector's slots, no other connector's, and nothing when the append is refused.
fn positions_clear_with_the_events_or_not_at_all<S: EventLog + PositionStore>(s: Subject<S>) {
    let store = &s.store;
    store.put("c", "position", b"41").unwrap();
    store.put("c", "config", b"{}").unwrap();
    store.put("c2", "position", b"7").unwrap();
    store.put("cc", "position", b"8").unwrap();
    let refused = AppendRequest {
        clear_positions: vec!["c".into()],
        ..request(vec![event("x", 1)], vec![("x", ExpectedVersion::Exact(5))])
    };
    assert!(matches!(
        store.append(refused),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store.get("c", "position").unwrap().as_deref(),
        Some(&b"41"[..])
    );
    let created = AppendRequest {
        clear_positions: vec!["c".into()],
        ..request(vec![event("connector/c", 1)], vec![])
    };
    assert_eq!(store.append(created).unwrap().len(), 1);
    assert_eq!(store.get("c", "position").unwrap(), None);
    assert_eq!(store.get("c", "config").unwrap(), None);
    assert_eq!(
        store.get("c2", "position").unwrap().as_deref(),
        Some(&b"7"[..])
    );
    assert_eq!(
        store.get("cc", "position").unwrap().as_deref(),
        Some(&b"8"[..])
    );
}

/// Positions set by an append go in the same atomic write as its events, after the
/// clears; a refused append sets nothing.
fn positions_set_with_the_events_or_not_at_all<S: EventLog + PositionStore>(s: Subject<S>) {
    let store = &s.store;
    store.put("c", "position", b"41").unwrap();
    store.put("c", "state", b"s").unwrap();
    let write = |value: Option<&[u8]>| crate::PositionWrite {
        connector: "c".into(),
        slot: "position".into(),
        value: value.map(<[u8]>::to_vec),
    };
    let refused = AppendRequest {
        set_positions: vec![write(Some(b"7"))],
        ..request(vec![event("x", 1)], vec![("x", ExpectedVersion::Exact(5))])
    };
    assert!(matches!(
        store.append(refused),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store.get("c", "position").unwrap().as_deref(),
        Some(&b"41"[..])
    );
    let set = AppendRequest {
        set_positions: vec![write(Some(b"7"))],
        ..request(vec![event("connector/c", 1)], vec![])
    };
    assert_eq!(store.append(set).unwrap().len(), 1);
    assert_eq!(
        store.get("c", "position").unwrap().as_deref(),
        Some(&b"7"[..])
    );
    let reset = AppendRequest {
        set_positions: vec![write(None)],
        ..request(vec![event("connector/c", 2)], vec![])
    };
    assert_eq!(store.append(reset).unwrap().len(), 1);
    assert_eq!(store.get("c", "position").unwrap(), None);
    assert_eq!(
        store.get("c", "state").unwrap().as_deref(),
        Some(&b"s"[..]),
        "other slots stay"
    );
}

fn subscription_catches_up_then_follows<S: EventLog>(s: Subject<S>) {
    let log: Arc<dyn EventLog> = s.store.clone();
    for n in 0..5 {
        log.append(request(vec![event("s", n)], vec![])).unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut sub = Subscription::new(log.clone(), Seq(3));
        let writer = {
            let log = log.clone();
            tokio::spawn(async move {
                for n in 5..50 {
                    log.append(request(vec![event("s", n), event("t", n)], vec![]))
                        .unwrap();
                    tokio::task::yield_now().await;
                }
            })
        };
        for expected in 3..=95u64 {
            let event = tokio::time::timeout(std::time::Duration::from_secs(10), sub.next())
                .await
                .expect("subscription stalled")
                .unwrap();
            assert_eq!(event.seq, Seq(expected));
        }
        writer.await.unwrap();
        assert_eq!(sub.position(), Seq(96));
    });
}
