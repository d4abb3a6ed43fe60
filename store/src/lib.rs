//! Persistence for Culvert's control plane and engine.
//!
//! This crate owns two stores, each behind a trait with a RocksDB implementation (the
//! default, [`RocksStore`]) and an in-memory twin ([`MemoryStore`]) that pass one
//! conformance suite:
//!
//! * the **event log** ([`EventLog`]): an append-only, gapless, totally ordered log of
//!   domain events, grouped into streams (one per entity) with optimistic concurrency per
//!   stream. [`EventLog::append`] writes a whole batch atomically or nothing of it. A
//!   [`Subscription`] reads from any sequence number and then follows the live tail
//!   without missing or repeating an event. Projection snapshots are kept beside the log;
//! * the **position store** ([`PositionStore`]): connector positions and plugin state,
//!   written on the engine's hot path. They are not domain events and never enter the log.
//!
//! The store knows nothing of what an event means: payloads are opaque JSON. Decoding and
//! upcasting belong to the `migrations` crate, deciding to `commands`. RocksDB is linked by
//! this crate only, and only [`rocks`] names its types.
//!
//! On-disk layout (column families): `events` (seq, u64 big-endian -> envelope JSON),
//! `streams` (stream id, 0x00, version u64 BE -> seq), `meta` (layout version),
//! `snapshots` (name -> seq, format, bytes), `positions` (connector id, 0x00, slot -> bytes),
//! `dead_letters` (pipeline id, 0x00, kind, seq -> letter; see [`letters`]),
//! `snapshot_names` (name -> nothing: the snapshots' names, written in the same batch as the
//! snapshot, so listing them does not read the snapshots).
//! A directory written by a newer layout is refused; an older one is migrated on open by the
//! [`Layout`] the caller passes in.

pub mod checkpoints;
mod error;
mod event;
pub mod layout;
pub mod letters;
mod memory;
pub mod rocks;
mod subscription;

#[cfg(test)]
mod conformance;

pub use error::StoreError;
pub use event::{AppendRequest, ExpectedVersion, NewEvent, PositionWrite, Snapshot, StoredEvent};

/// The slot under which a source connector's position is kept (what the engine resumes
/// from).
pub const POSITION_SLOT: &str = "position";

/// The slot under which a source connector's sampled position checkpoints are kept (JSON,
/// oldest first, bounded): what a seek to an earlier point picks from.
pub const CHECKPOINTS_SLOT: &str = "position-checkpoints";
pub use layout::{Cf, Layout, LayoutMigration, MigrationTx};
pub use letters::{DeadLetterStore, Kept, LetterLimits, LetterRef, StoredLetter};
pub use memory::MemoryStore;
pub use rocks::{RocksStore, StoreMemory, StoreOptions};
pub use subscription::Subscription;

use culvert_domain::{Seq, StreamId};
use tokio::sync::watch;

/// The append-only event log.
///
/// Contract:
/// * Sequence numbers start at 1 and are gapless: after appends that returned events with
///   sequences up to N, every sequence 1..=N exists and nothing above N does.
/// * [`append`](EventLog::append) is atomic: every event of the request is durable (with
///   fsync on, which is the default) or none is, also across a crash of the process.
/// * Optimistic concurrency: each `(stream, expected)` pair of a request is checked against
///   the stream's current version under the writer lock; any mismatch fails the whole
///   request with [`StoreError::Conflict`] and writes nothing.
/// * Appends are serialised; reads run concurrently with them and see only whole batches.
/// * Events are never rewritten or deleted.
pub trait EventLog: Send + Sync + 'static {
    /// Append a batch atomically, returning the stored events with their sequence numbers,
    /// stream versions and recorded times. An empty batch appends nothing.
    fn append(&self, request: AppendRequest) -> Result<Vec<StoredEvent>, StoreError>;

    /// Up to `limit` events with sequence `>= from`, in order.
    fn read_from(&self, from: Seq, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;

    /// Up to `limit` events of one stream with stream version `>= from_version`, in order.
    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// The sequence of the last appended event (`Seq::ZERO` for an empty log).
    fn head(&self) -> Seq;

    /// The current version of a stream: the number of events in it (0 if none).
    fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError>;

    /// A receiver that observes [`head`](EventLog::head) changing after each append.
    fn watch_head(&self) -> watch::Receiver<Seq>;

    /// Store (replace) the named snapshot.
    fn put_snapshot(&self, name: &str, snapshot: &Snapshot) -> Result<(), StoreError>;

    /// The named snapshot, if one was stored.
    fn get_snapshot(&self, name: &str) -> Result<Option<Snapshot>, StoreError>;

    /// The names of the stored snapshots starting with `prefix`, in byte order.
    fn snapshot_names(&self, prefix: &str) -> Result<Vec<String>, StoreError>;

    /// Remove the named snapshot (nothing if there is none).
    fn delete_snapshot(&self, name: &str) -> Result<(), StoreError>;
}

/// Connector positions and plugin state, keyed by connector id and a slot name
/// (`"position"`, `"state"`, ...). Written on the engine's hot path.
///
/// Contract: [`put`](PositionStore::put) returns once the value is durable to the degree
/// configured (`positions_fsync`); a later [`get`](PositionStore::get), also after a crash and
/// reopen, returns it. Each `put` is atomic. Values of different connectors are independent.
pub trait PositionStore: Send + Sync + 'static {
    /// The stored value, if any.
    fn get(&self, connector: &str, slot: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Store (replace) a value.
    fn put(&self, connector: &str, slot: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Remove every slot of a connector.
    fn delete_connector(&self, connector: &str) -> Result<(), StoreError>;
}
