//! The store's view of events: opaque JSON payloads in envelopes.

use chrono::{DateTime, Utc};
use culvert_domain::{Seq, StreamId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;

/// What the writer expects a stream's version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must have no events.
    NoStream,
    /// The stream must be at exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at `actual` satisfies the expectation.
    pub fn matches(self, actual: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual == 0,
            Self::Exact(v) => actual == v,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The stream it belongs to.
    pub stream: StreamId,
    /// Its type name.
    pub event_type: String,
    /// The schema version of the payload's shape.
    pub schema_version: u32,
    /// Who caused it.
    pub actor: String,
    /// The operation it belongs to.
    pub correlation_id: String,
    /// The event or request that caused it.
    pub causation_id: Option<String>,
    /// Why, in the actor's words (the API's `culvert-reason`), if they said.
    pub reason: Option<String>,
    /// The payload (JSON).
    pub payload: Box<RawValue>,
}

/// One atomic append: the events, and the stream versions they expect.
#[derive(Debug, Clone, Default)]
pub struct AppendRequest {
    /// The events, in order.
    pub events: Vec<NewEvent>,
    /// Version checks; streams not listed are not checked.
    pub expected: Vec<(StreamId, ExpectedVersion)>,
    /// Connectors whose positions and state (every slot) are removed in the same atomic
    /// write as the events: a connector id created again must never resume from its
    /// predecessor's position, at any crash point.
    pub clear_positions: Vec<String>,
    /// Position slots set (or, with `None`, removed) in the same atomic write as the events
    /// (after `clear_positions`): a position a user sets is recorded and takes effect
    /// together, or neither.
    pub set_positions: Vec<PositionWrite>,
    /// Pipelines whose dead letters (every one, queued or not) are removed in the same
    /// write: a deleted pipeline's letters go with it, and an id created again starts with
    /// none.
    pub clear_letters: Vec<String>,
    /// Dead letters queued for re-injection in the same write (after `clear_letters`): a
    /// re-injection is recorded and in effect together, or neither.
    pub queue_letters: Vec<crate::letters::LetterRef>,
}

/// One position slot written by an [`AppendRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionWrite {
    /// The connector.
    pub connector: String,
    /// The slot (e.g. [`crate::POSITION_SLOT`]).
    pub slot: String,
    /// The new value; `None` removes the slot.
    pub value: Option<Vec<u8>>,
}

/// An event as stored: the envelope and its payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Global sequence number.
    pub seq: Seq,
    /// Its stream.
    pub stream: StreamId,
    /// The stream's version after this event.
    pub stream_version: u64,
    /// Its type name.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The schema version of the payload.
    #[serde(rename = "schema")]
    pub schema_version: u32,
    /// When it was appended (non-decreasing along the log).
    pub recorded_at: DateTime<Utc>,
    /// Who caused it.
    pub actor: String,
    /// The operation it belongs to.
    pub correlation_id: String,
    /// What caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// Why, in the actor's words, if they said (absent in events recorded before reasons
    /// existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The payload (JSON).
    pub payload: Box<RawValue>,
}

impl PartialEq for StoredEvent {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
            && self.stream == other.stream
            && self.stream_version == other.stream_version
            && self.event_type == other.event_type
            && self.schema_version == other.schema_version
            && self.recorded_at == other.recorded_at
            && self.actor == other.actor
            && self.correlation_id == other.correlation_id
            && self.causation_id == other.causation_id
            && self.reason == other.reason
            && self.payload.get() == other.payload.get()
    }
}

impl StoredEvent {
    pub(crate) fn from_new(
        new: NewEvent,
        seq: Seq,
        stream_version: u64,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            seq,
            stream: new.stream,
            stream_version,
            event_type: new.event_type,
            schema_version: new.schema_version,
            recorded_at: at,
            actor: new.actor,
            correlation_id: new.correlation_id,
            causation_id: new.causation_id,
            reason: new.reason,
            payload: new.payload,
        }
    }
}

/// A stored projection snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The last sequence folded into it.
    pub seq: Seq,
    /// The snapshot's own format version; a reader ignores a snapshot whose format it does
    /// not know and folds the log instead.
    pub format: u32,
    /// The serialised read model.
    pub data: Vec<u8>,
}
