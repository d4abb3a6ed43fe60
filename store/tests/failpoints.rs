//! Fail-point tests of the store, in their own process because fail points are global.

use culvert_domain::{Seq, StreamId};
use culvert_store::{
    AppendRequest, EventLog, Layout, NewEvent, RocksStore, StoreError, StoreOptions,
};
use serde_json::value::to_raw_value;

fn event(stream: &str) -> NewEvent {
    NewEvent {
        stream: StreamId(stream.into()),
        event_type: "Tested".into(),
        schema_version: 1,
        actor: "t".into(),
        correlation_id: "c".into(),
        causation_id: None,
        reason: None,
        payload: to_raw_value(&serde_json::json!({})).unwrap(),
    }
}

fn append(
    store: &RocksStore,
    streams: &[&str],
) -> Result<Vec<culvert_store::StoredEvent>, StoreError> {
    store.append(AppendRequest {
        events: streams.iter().map(|s| event(s)).collect(),
        expected: vec![],
        clear_positions: Vec::new(),
        set_positions: Vec::new(),
        clear_letters: Vec::new(),
        queue_letters: Vec::new(),
    })
}

#[test]
fn a_failure_just_before_the_write_leaves_nothing_and_no_gap() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout {
        version: 1,
        migrations: vec![],
    };
    let store = RocksStore::open(dir.path().join("db"), StoreOptions::default(), &layout).unwrap();
    append(&store, &["a"]).unwrap();
    fail::cfg("store::append::before_write", "return").unwrap();
    assert!(matches!(
        append(&store, &["a", "b"]),
        Err(StoreError::Injected(_))
    ));
    fail::remove("store::append::before_write");
    assert_eq!(store.head(), Seq(1));
    assert_eq!(store.stream_version(&StreamId("a".into())).unwrap(), 1);
    assert_eq!(store.stream_version(&StreamId("b".into())).unwrap(), 0);
    let next = append(&store, &["a"]).unwrap();
    assert_eq!((next[0].seq, next[0].stream_version), (Seq(2), 2));
    drop(store);
    scenario.teardown();
}
