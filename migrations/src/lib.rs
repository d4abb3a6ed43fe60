//! Event schema versions, upcasters and on-disk layout migrations.
//!
//! Events are never rewritten in the log. When the shape of an event changes, its schema
//! version goes up and an [`Upcaster`] here turns the old shape into the next one on read;
//! chained, they bring any stored event to the current shape before the domain sees it.
//! [`encode`] and [`decode`] are the only way between domain events and stored envelopes.
//!
//! The on-disk layout of the store is versioned too: [`layout`] is the layout this build
//! writes and the steps that bring an older directory up to it, run by the store on open.
//!
//! Schema history:
//! * `PipelineCreated` v1 nested the name and description in a `config` object, the way
//!   Conduit's API shapes `Pipeline.Config`; v2 (current) has them flat beside `id`.
//! * Every other event type is at v1.

use culvert_domain::{Event, EventMeta, RecordedEvent};
use culvert_store::{Cf, Layout, LayoutMigration, MigrationTx, NewEvent, StoredEvent};
use serde_json::value::{to_raw_value, RawValue};
use serde_json::Value;
use thiserror::Error;

/// The store layout this build writes.
///
/// Layout history:
/// * 1: events, streams, meta, snapshots, positions.
/// * 2: adds the `dead_letters` column family (dead letters kept per pipeline).
/// * 3: adds the `snapshot_names` column family (the names of the projection snapshots,
///   so listing them does not read them).
pub const LAYOUT_VERSION: u32 = 3;

/// The current layout and the migrations from older ones.
pub fn layout() -> Layout {
    Layout {
        version: LAYOUT_VERSION,
        migrations: vec![Box::new(AddDeadLetters), Box::new(IndexSnapshotNames)],
    }
}

/// Layout 1 -> 2: the `dead_letters` column family, created empty when the store opens;
/// nothing else changes, so the step only moves the version on (and an older build then
/// refuses the directory instead of ignoring the letters).
struct AddDeadLetters;

impl LayoutMigration for AddDeadLetters {
    fn source_version(&self) -> u32 {
        1
    }

    fn name(&self) -> &str {
        "add the dead_letters column family"
    }

    fn migrate(&self, _tx: &mut MigrationTx<'_>) -> Result<(), String> {
        Ok(())
    }
}

/// Layout 2 -> 3: the `snapshot_names` column family (created empty when the store opens)
/// gets the name of every snapshot there is; from then on the store writes a snapshot and
/// its name together.
struct IndexSnapshotNames;

impl LayoutMigration for IndexSnapshotNames {
    fn source_version(&self) -> u32 {
        2
    }

    fn name(&self) -> &str {
        "index the snapshot names"
    }

    fn migrate(&self, tx: &mut MigrationTx<'_>) -> Result<(), String> {
        let mut names = Vec::new();
        tx.scan(Cf::Snapshots, &mut |key, _| {
            names.push(key.to_vec());
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        for name in names {
            tx.put(Cf::SnapshotNames, &name, &[])
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Who did it and why; the store adds the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// Actor (`user:<name>`, `system`, `provisioning:<file>`, ...).
    pub actor: String,
    /// The operation's correlation id.
    pub correlation_id: String,
    /// What caused it, if anything.
    pub causation_id: Option<String>,
    /// Why, in the actor's words, if they said.
    pub reason: Option<String>,
}

/// A stored event that cannot be turned into a domain event.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The schema version is newer than this build knows.
    #[error("event {seq} ({event_type}) has schema version {found}, newer than {supported}")]
    NewerSchema {
        /// Its sequence number.
        seq: u64,
        /// Its type.
        event_type: String,
        /// Its schema version.
        found: u32,
        /// The newest this build knows.
        supported: u32,
    },
    /// An upcaster or the final deserialisation failed.
    #[error("event {seq} ({event_type}, schema v{schema}) does not decode: {reason}")]
    Malformed {
        /// Its sequence number.
        seq: u64,
        /// Its type.
        event_type: String,
        /// Its schema version.
        schema: u32,
        /// Why.
        reason: String,
    },
}

/// Turns a payload of one schema version of an event type into the next version.
pub struct Upcaster {
    /// The event type.
    pub event_type: &'static str,
    /// The version it reads; it produces `from + 1`.
    pub from: u32,
    /// The transformation of the event's `data` object.
    pub upcast: fn(Value) -> Result<Value, String>,
}

/// Every upcaster, in no particular order.
pub const UPCASTERS: &[Upcaster] = &[Upcaster {
    event_type: "PipelineCreated",
    from: 1,
    upcast: pipeline_created_v1_to_v2,
}];

/// The current schema version of an event type.
pub fn schema_version(event_type: &str) -> u32 {
    UPCASTERS
        .iter()
        .filter(|u| u.event_type == event_type)
        .map(|u| u.from + 1)
        .max()
        .unwrap_or(1)
}

/// v1: `{"id", "config": {"name", "description"}, "dlq"}` -> v2: `{"id", "name", "description", "dlq"}`.
fn pipeline_created_v1_to_v2(mut data: Value) -> Result<Value, String> {
    let object = data.as_object_mut().ok_or("data is not an object")?;
    let config = object
        .remove("config")
        .ok_or("v1 PipelineCreated without \"config\"")?;
    let Value::Object(config) = config else {
        return Err("\"config\" is not an object".into());
    };
    for (key, value) in config {
        object.insert(key, value);
    }
    object
        .entry("description")
        .or_insert_with(|| Value::String(String::new()));
    Ok(data)
}

/// A domain event as an envelope to append, in the current schema.
pub fn encode(event: &Event, provenance: &Provenance) -> NewEvent {
    let event_type = event.event_type();
    NewEvent {
        stream: event.stream(),
        event_type: event_type.to_owned(),
        schema_version: schema_version(event_type),
        actor: provenance.actor.clone(),
        correlation_id: provenance.correlation_id.clone(),
        causation_id: provenance.causation_id.clone(),
        reason: provenance.reason.clone(),
        // Serialising our own enum into JSON cannot fail (string keys, no non-finite floats).
        payload: to_raw_value(event).expect("domain events serialise to JSON"),
    }
}

/// A stored envelope as a domain event, upcast to the current schema.
pub fn decode(stored: &StoredEvent) -> Result<RecordedEvent, DecodeError> {
    let current = schema_version(&stored.event_type);
    let malformed = |reason: String| DecodeError::Malformed {
        seq: stored.seq.0,
        event_type: stored.event_type.clone(),
        schema: stored.schema_version,
        reason,
    };
    let event: Event = if stored.schema_version == current {
        serde_json::from_str(stored.payload.get()).map_err(|e| malformed(e.to_string()))?
    } else if stored.schema_version > current {
        return Err(DecodeError::NewerSchema {
            seq: stored.seq.0,
            event_type: stored.event_type.clone(),
            found: stored.schema_version,
            supported: current,
        });
    } else {
        let mut value: Value =
            serde_json::from_str(stored.payload.get()).map_err(|e| malformed(e.to_string()))?;
        let data = value
            .get_mut("data")
            .ok_or_else(|| malformed("payload has no \"data\"".into()))?;
        let mut shape = data.take();
        for version in stored.schema_version..current {
            let step = UPCASTERS
                .iter()
                .find(|u| u.event_type == stored.event_type && u.from == version)
                .ok_or_else(|| malformed(format!("no upcaster from v{version}")))?;
            shape = (step.upcast)(shape).map_err(&malformed)?;
        }
        *data = shape;
        serde_json::from_value(value).map_err(|e| malformed(e.to_string()))?
    };
    if event.event_type() != stored.event_type || event.stream() != stored.stream {
        return Err(malformed(format!(
            "envelope says {} on {}, payload is {} on {}",
            stored.event_type,
            stored.stream,
            event.event_type(),
            event.stream()
        )));
    }
    Ok(RecordedEvent {
        seq: stored.seq,
        stream_version: stored.stream_version,
        meta: EventMeta {
            actor: stored.actor.clone(),
            correlation_id: stored.correlation_id.clone(),
            causation_id: stored.causation_id.clone(),
            reason: stored.reason.clone(),
            recorded_at: stored.recorded_at,
        },
        event,
    })
}

/// Helper for tests and tools that need a payload in an explicit (possibly old) shape.
pub fn raw(value: &Value) -> Box<RawValue> {
    to_raw_value(value).expect("a JSON value serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use culvert_domain::{
        ConnectorId, ConnectorType, DeadLetterQueue, PipelineId, Seq, Settings, StreamId,
    };
    use proptest::prelude::*;

    /// A directory as a layout-2 build left it: the column families of then, the layout
    /// number, and snapshots with no `snapshot_names` family beside them.
    fn layout_two_directory(path: &std::path::Path, names: &[&str]) {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let families = [
            "events",
            "streams",
            "meta",
            "snapshots",
            "positions",
            "dead_letters",
        ];
        let db = rocksdb::DB::open_cf(&options, path, families).unwrap();
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(meta, b"layout_version", 2u32.to_be_bytes())
            .unwrap();
        let snapshots = db.cf_handle("snapshots").unwrap();
        for (n, name) in names.iter().enumerate() {
            // seq (u64 BE), format (u32 BE), then the bytes: the store's snapshot value.
            let mut value = 0u64.to_be_bytes().to_vec();
            value.extend_from_slice(&1u32.to_be_bytes());
            value.extend_from_slice(format!("snapshot {n}").as_bytes());
            db.put_cf(snapshots, name.as_bytes(), value).unwrap();
        }
    }

    #[test]
    fn a_layout_two_directory_gets_its_snapshot_names_indexed_on_open() {
        use culvert_store::{EventLog as _, RocksStore, StoreOptions};
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "control-plane",
            "control-plane@00000000000000010000",
            "other",
        ];
        layout_two_directory(dir.path(), &names);

        // A read-only open does not migrate: it says to open read-write once.
        let read_only = StoreOptions {
            read_only: true,
            ..StoreOptions::default()
        };
        match RocksStore::open(dir.path(), read_only, &layout()) {
            Err(error) => assert!(error.to_string().contains("read-write"), "{error}"),
            Ok(_) => panic!("a read-only open migrated"),
        }

        let store = RocksStore::open(dir.path(), StoreOptions::default(), &layout()).unwrap();
        assert_eq!(
            store.snapshot_names("control-plane@").unwrap(),
            vec!["control-plane@00000000000000010000".to_owned()]
        );
        assert_eq!(store.snapshot_names("").unwrap(), names.map(String::from));
        let kept = store.get_snapshot("other").unwrap().unwrap();
        assert_eq!(kept.data, b"snapshot 2");
        // Deleting and writing keep the names in step from then on.
        store.delete_snapshot("other").unwrap();
        store
            .put_snapshot(
                "control-plane@00000000000000020000",
                &culvert_store::Snapshot {
                    seq: Seq(0),
                    format: 1,
                    data: b"new".to_vec(),
                },
            )
            .unwrap();
        drop(store);
        let store = RocksStore::open(dir.path(), StoreOptions::default(), &layout()).unwrap();
        assert_eq!(
            store.snapshot_names("").unwrap(),
            vec![
                "control-plane".to_owned(),
                "control-plane@00000000000000010000".to_owned(),
                "control-plane@00000000000000020000".to_owned(),
            ]
        );
    }

    fn stored(new: NewEvent, seq: u64) -> StoredEvent {
        StoredEvent {
            seq: Seq(seq),
            stream: new.stream,
            stream_version: 1,
            event_type: new.event_type,
            schema_version: new.schema_version,
            recorded_at: Utc::now(),
            actor: new.actor,
            correlation_id: new.correlation_id,
            causation_id: new.causation_id,
            reason: new.reason,
            payload: new.payload,
        }
    }

    fn who() -> Provenance {
        Provenance {
            actor: "user:ann".into(),
            correlation_id: "c1".into(),
            causation_id: Some("req-1".into()),
            reason: Some("ticket 7".into()),
        }
    }

    #[test]
    fn pipeline_created_v1_is_read_as_v2() {
        let v1 = StoredEvent {
            seq: Seq(7),
            stream: StreamId("pipeline/p1".into()),
            stream_version: 1,
            event_type: "PipelineCreated".into(),
            schema_version: 1,
            recorded_at: Utc::now(),
            actor: "user:ann".into(),
            correlation_id: "c".into(),
            causation_id: None,
            reason: None,
            payload: raw(&serde_json::json!({
                "type": "PipelineCreated",
                "data": {
                    "id": "p1",
                    "config": {"name": "orders", "description": "old shape"},
                    "dlq": {"plugin": "builtin:log", "settings": {"level": "warn"},
                            "window_size": 1, "window_nack_threshold": 0}
                }
            })),
        };
        let recorded = decode(&v1).unwrap();
        assert_eq!(
            recorded.event,
            Event::PipelineCreated {
                id: PipelineId("p1".into()),
                name: "orders".into(),
                description: "old shape".into(),
                // The event's own DLQ, not today's default (which gained a message).
                dlq: DeadLetterQueue {
                    settings: [("level".to_owned(), "warn".to_owned())].into(),
                    ..DeadLetterQueue::default()
                },
            }
        );
        assert_eq!(recorded.seq, Seq(7));
        assert_eq!(schema_version("PipelineCreated"), 2);
        assert_eq!(schema_version("PipelineDeleted"), 1);
    }

    #[test]
    fn newer_schema_and_mismatched_envelopes_are_refused() {
        let event = Event::PipelineDeleted {
            id: PipelineId("p".into()),
        };
        let mut newer = stored(encode(&event, &who()), 1);
        newer.schema_version = 9;
        assert!(matches!(
            decode(&newer),
            Err(DecodeError::NewerSchema { found: 9, .. })
        ));
        let mut wrong_stream = stored(encode(&event, &who()), 2);
        wrong_stream.stream = StreamId("pipeline/q".into());
        assert!(matches!(
            decode(&wrong_stream),
            Err(DecodeError::Malformed { .. })
        ));
        let mut garbage = stored(encode(&event, &who()), 3);
        garbage.payload = raw(&serde_json::json!({"type": "PipelineDeleted", "data": 5}));
        let err = decode(&garbage).unwrap_err().to_string();
        assert!(err.contains("event 3 (PipelineDeleted"), "{err}");
    }

    fn any_event() -> impl Strategy<Value = Event> {
        let id = "[a-z0-9-]{1,12}";
        let settings = prop::collection::btree_map("[a-z.]{1,8}", ".{0,16}", 0..4);
        prop_oneof![
            (id, ".{0,20}", ".{0,40}").prop_map(|(id, name, description)| Event::PipelineCreated {
                id: PipelineId(id),
                name,
                description,
                dlq: DeadLetterQueue::default(),
            }),
            (id, ".{0,200}").prop_map(|(id, error)| Event::PipelineDegraded {
                id: PipelineId(id),
                error
            }),
            (id, ".{0,200}", 1u32..100).prop_map(|(id, error, attempt)| {
                Event::PipelineRecovering {
                    id: PipelineId(id),
                    error,
                    attempt,
                }
            }),
            (id, id, "[a-z:]{1,20}", ".{0,20}", settings).prop_map(
                |(id, pipeline, plugin, name, settings): (
                    String,
                    String,
                    String,
                    String,
                    Settings
                )| {
                    Event::ConnectorCreated {
                        id: ConnectorId(id),
                        pipeline_id: PipelineId(pipeline),
                        connector_type: ConnectorType::Destination,
                        plugin,
                        name,
                        settings,
                    }
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_decode_roundtrips(event in any_event(), seq in 1u64..1_000_000) {
            let recorded = decode(&stored(encode(&event, &who()), seq)).unwrap();
            prop_assert_eq!(recorded.event, event);
            prop_assert_eq!(recorded.meta.actor, "user:ann");
            prop_assert_eq!(recorded.meta.causation_id.as_deref(), Some("req-1"));
            prop_assert_eq!(recorded.meta.reason.as_deref(), Some("ticket 7"));
        }
    }
}
