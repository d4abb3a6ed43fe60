//! The store's errors.

use crate::event::ExpectedVersion;
use culvert_domain::{Seq, StreamId};
use std::path::PathBuf;
use thiserror::Error;

/// Everything that can go wrong in the store. Nothing is written when an error is returned
/// from a write.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A stream's version was not the expected one (another writer got there first).
    /// Retry after re-reading the state.
    #[error("version conflict on stream {stream}: expected {expected}, found version {actual}")]
    Conflict {
        /// The stream.
        stream: StreamId,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's actual version.
        actual: u64,
    },
    /// The directory was written by a newer Culvert; upgrade before opening it.
    #[error(
        "data directory {path} has layout version {found}, newer than the {supported} this \
         build supports; use a newer culvert"
    )]
    NewerLayout {
        /// The directory.
        path: PathBuf,
        /// Its layout version.
        found: u32,
        /// The newest layout this build knows.
        supported: u32,
    },
    /// The directory is not a Culvert data directory.
    #[error("{path} is not a culvert data directory: {reason}")]
    NotOurs {
        /// The directory.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },
    /// An on-disk layout migration is missing or failed; the directory is unchanged by the
    /// failed step.
    #[error("layout migration from version {from} failed: {reason}")]
    Migration {
        /// The layout version being migrated from.
        from: u32,
        /// Why.
        reason: String,
    },
    /// A stored record could not be decoded.
    #[error("corrupt record at {location}: {reason}")]
    Corrupt {
        /// Where (`events/seq 42`, `snapshots/control-plane`, ...).
        location: String,
        /// Why.
        reason: String,
    },
    /// The expected sequence was missing from the log.
    #[error("gap in the event log: expected seq {expected}, found {found}")]
    Gap {
        /// What should have come next.
        expected: Seq,
        /// What came.
        found: Seq,
    },
    /// A failure injected by a test fail point.
    #[error("injected failure at {0}")]
    Injected(String),
    /// The store was closed while a subscriber waited.
    #[error("the event log was closed")]
    Closed,
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// Encoding a record failed.
    #[error("encoding {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The serde error.
        source: serde_json::Error,
    },
}
