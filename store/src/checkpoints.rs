//! Sampled checkpoints of a source's position: where it was at moments in the past, so a
//! user can seek a stopped pipeline's source back to "where it was at 10:00" without knowing
//! the position's bytes.
//!
//! The engine saves a source's position after every acked batch; the server keeps one of
//! those as a checkpoint at most every [`CHECKPOINT_EVERY`] (and the first save of every
//! run), the newest [`MAX_CHECKPOINTS`] of them, in the connector's
//! [`CHECKPOINTS_SLOT`](crate::CHECKPOINTS_SLOT) as JSON (oldest first). Space is bounded
//! whatever the pipeline's speed.

use crate::{PositionStore, StoreError, CHECKPOINTS_SLOT};
use chrono::{DateTime, Utc};
use culvert_domain::Position;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The most checkpoints kept per source (the oldest go first).
pub const MAX_CHECKPOINTS: usize = 100;

/// The least time between two checkpoints of a source.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);

/// A source's position at a moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// When the position was saved.
    pub at: DateTime<Utc>,
    /// The position (base64 in the JSON).
    pub position: Position,
}

/// The checkpoints kept for `connector`, oldest first.
pub fn load(store: &dyn PositionStore, connector: &str) -> Result<Vec<Checkpoint>, StoreError> {
    match store.get(connector, CHECKPOINTS_SLOT)? {
        None => Ok(Vec::new()),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            location: format!("position checkpoints of connector {connector}"),
            reason: e.to_string(),
        }),
    }
}

/// Keep `checkpoint` as the newest of `connector`'s, dropping the oldest beyond
/// [`MAX_CHECKPOINTS`].
pub fn record(
    store: &dyn PositionStore,
    connector: &str,
    checkpoint: Checkpoint,
) -> Result<(), StoreError> {
    let mut kept = load(store, connector)?;
    kept.push(checkpoint);
    if kept.len() > MAX_CHECKPOINTS {
        kept.drain(..kept.len() - MAX_CHECKPOINTS);
    }
    let bytes = serde_json::to_vec(&kept).map_err(|source| StoreError::Encode {
        what: "position checkpoints",
        source,
    })?;
    store.put(connector, CHECKPOINTS_SLOT, &bytes)
}

/// The newest checkpoint saved at or before `time`, if any.
pub fn at_or_before(checkpoints: &[Checkpoint], time: DateTime<Utc>) -> Option<&Checkpoint> {
    checkpoints.iter().rev().find(|c| c.at <= time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + second, 0).unwrap()
    }

    #[test]
    fn checkpoints_are_bounded_and_found_by_time() {
        let store = MemoryStore::new();
        assert!(load(&store, "c").unwrap().is_empty());
        for n in 0..(MAX_CHECKPOINTS as i64 + 5) {
            let checkpoint = Checkpoint {
                at: at(n * 60),
                position: Position(n.to_be_bytes().to_vec()),
            };
            record(&store, "c", checkpoint).unwrap();
        }
        let kept = load(&store, "c").unwrap();
        assert_eq!(kept.len(), MAX_CHECKPOINTS);
        assert_eq!(kept[0].at, at(5 * 60), "the oldest five went");
        assert_eq!(
            at_or_before(&kept, at(10 * 60 + 30)).unwrap().at,
            at(10 * 60)
        );
        assert_eq!(
            at_or_before(&kept, at(60)),
            None,
            "older than every kept one"
        );
        assert!(load(&store, "other").unwrap().is_empty());
    }

    #[test]
    fn a_damaged_slot_is_an_error_not_an_empty_history() {
        let store = MemoryStore::new();
        store.put("c", CHECKPOINTS_SLOT, b"not json").unwrap();
        assert!(matches!(load(&store, "c"), Err(StoreError::Corrupt { .. })));
    }
}
