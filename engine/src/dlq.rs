//! The dead-letter queue: where a record a processor failed (a nack) goes instead of
//! stopping the pipeline, within a tolerance.
//!
//! As Conduit's DLQ handler: a window of the last `window_size` outcomes (acks and nacks)
//! is kept; a nack is accepted (the record is written to the DLQ destination and then
//! counts as handled, so its position may be acked) while the nacks in the window do not
//! exceed `window_nack_threshold`. Past it the pipeline stops with the error; with a
//! threshold of 0 (Conduit's default) that is the first nack, and the error is the
//! record's own. A window size of 0 turns the window off: every nack goes to the DLQ. Once
//! exceeded the window stays exceeded. A failed DLQ write stops the pipeline.
//!
//! A DLQ with a [`LetterBox`] also keeps each letter in Culvert's store (with the error, the
//! node and where in the pipeline it failed), durably before the record counts as handled,
//! so it can be listed and re-injected later (`run`'s replay task sends queued letters back
//! from where they failed and tells the box when every destination has them).
//!
//! The DLQ record is Conduit's: operation `create`, metadata `opencdc.createdAt`,
//! `conduit.dlq.nack.error` and `conduit.dlq.nack.node.id`, the failed record (in its JSON
//! form) as `payload.after`, and the failed record's position.

use culvert_domain::dead_letter::{DeadLetter, Stage};
use culvert_domain::opencdc::metadata;
use culvert_domain::{Change, Data, Operation, Record};
use culvert_plugins::{Destination, PluginError};
use std::sync::Arc;

/// Where a running pipeline's dead letters are kept, and read back for re-injection (the
/// store's dead-letter column family, in production). Calls block: the engine makes them
/// on a blocking thread.
pub trait LetterBox: Send + Sync {
    /// Keep a letter, durably.
    fn keep(&self, letter: &DeadLetter) -> Result<(), String>;
    /// Up to `limit` letters queued for re-injection numbered above `after`, in order.
    fn queued(&self, after: u64, limit: usize) -> Result<Vec<(u64, DeadLetter)>, String>;
    /// The queued letters numbered up to `through` reached every destination: remove them.
    fn delivered(&self, through: u64) -> Result<(), String>;
}

/// Where in the pipeline a record failed: its stage, the processor (none: a destination's
/// write) and that processor's place in the stage's chain.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The stage.
    pub stage: Stage,
    /// The processor's id, if a processor failed it.
    pub processor: Option<String>,
    /// The processor's index in its chain (the chain's length for a write).
    pub index: usize,
}

/// The DLQ of a running pipeline: a destination and its tolerance.
pub struct DeadLetterNode {
    /// The destination nacked records are written to (e.g. `builtin:log`).
    pub destination: Box<dyn Destination>,
    /// How many of the last outcomes the window holds (0: no window, every nack goes to
    /// the DLQ).
    pub window_size: u64,
    /// How many nacks in the window are tolerated.
    pub window_nack_threshold: u64,
    /// Where letters are also kept and read back from, if anywhere.
    pub letters: Option<Arc<dyn LetterBox>>,
}

/// The window of the last outcomes (true = nack), Conduit's ring buffer.
#[derive(Debug)]
pub struct Window {
    slots: Vec<bool>,
    cursor: usize,
    threshold: u64,
    nacks: u64,
}

impl Window {
    /// A window of `size` outcomes (all acks at first) tolerating `threshold` nacks.
    pub fn new(size: u64, threshold: u64) -> Self {
        // With a threshold of 0 the first nack exceeds it whatever the size.
        let size = if size > 0 && threshold == 0 { 1 } else { size };
        Self {
            slots: vec![false; size as usize],
            cursor: 0,
            threshold,
            nacks: 0,
        }
    }

    /// Record an ack.
    pub fn ack(&mut self) {
        self.store(false);
    }

    /// Record a nack; false once the nacks in the window exceed the threshold (and for
    /// every nack after).
    pub fn nack(&mut self) -> bool {
        self.store(true);
        self.threshold >= self.nacks
    }

    fn store(&mut self, nack: bool) {
        if self.slots.is_empty() || self.threshold < self.nacks {
            return; // no window, or already exceeded: frozen
        }
        self.cursor = (self.cursor + 1) % self.slots.len();
        if self.slots[self.cursor] == nack {
            return;
        }
        self.slots[self.cursor] = nack;
        if nack {
            self.nacks += 1;
        } else {
            self.nacks -= 1;
        }
    }
}

/// Why a nack was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum NackError {
    /// The nacks exceeded the tolerance (or there is none): the record's own error, or
    /// the threshold's when one was set.
    #[error("{0}")]
    Refused(String),
    /// Writing to the DLQ failed.
    #[error("writing to the dead-letter queue: {0}")]
    Write(#[source] PluginError),
    /// Keeping the letter in the store failed.
    #[error("keeping the dead letter in the store: {0}")]
    Keep(String),
}

/// A running DLQ.
pub struct DeadLetters {
    destination: Box<dyn Destination>,
    window: Window,
    size: u64,
    threshold: u64,
    letters: Option<Arc<dyn LetterBox>>,
    /// Sizes of the records written to the DLQ (Conduit's `conduit_dlq_bytes`).
    pub(crate) bytes: Option<crate::metrics::BytesHistogram>,
    /// Time of each write to the DLQ (Conduit's `conduit_dlq_execution_duration_seconds`).
    pub(crate) duration: Option<prometheus_client::metrics::histogram::Histogram>,
}

impl DeadLetters {
    /// A DLQ over `node` (not yet opened).
    pub fn new(node: DeadLetterNode) -> Self {
        Self {
            window: Window::new(node.window_size, node.window_nack_threshold),
            destination: node.destination,
            size: node.window_size,
            threshold: node.window_nack_threshold,
            letters: node.letters,
            bytes: None,
            duration: None,
        }
    }

    /// Open the destination.
    pub async fn open(&mut self) -> Result<(), PluginError> {
        self.destination.open().await
    }

    /// Tear the destination down.
    pub async fn teardown(&mut self) -> Result<(), PluginError> {
        self.destination.teardown().await
    }

    /// `count` records were handled.
    pub fn ack(&mut self, count: usize) {
        for _ in 0..count.min(self.window.slots.len().max(1)) {
            self.window.ack();
        }
    }

    /// The box letters are kept in, if any.
    pub fn letter_box(&self) -> Option<Arc<dyn LetterBox>> {
        self.letters.clone()
    }

    /// `record` failed in `node` (at `origin`) with `reason`: write it to the DLQ (and keep
    /// it in the letter box), or refuse.
    pub async fn nack(
        &mut self,
        record: &Record,
        reason: &str,
        node: &str,
        origin: Origin,
    ) -> Result<(), NackError> {
        if !self.window.nack() {
            return Err(NackError::Refused(if self.threshold > 0 {
                format!(
                    "DLQ nack threshold exceeded ({}/{}), original error: {reason}",
                    self.threshold, self.size
                )
            } else {
                reason.to_owned()
            }));
        }
        let failed = match serde_json::from_slice(&record.to_json()) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        let created_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_string();
        let letter = Record {
            position: record.position.clone(),
            operation: Operation::Create,
            metadata: [
                (metadata::CREATED_AT.to_owned(), created_at),
                (metadata::DLQ_NACK_ERROR.to_owned(), reason.to_owned()),
                (metadata::DLQ_NACK_NODE_ID.to_owned(), node.to_owned()),
            ]
            .into(),
            key: None,
            payload: Change {
                before: None,
                after: Some(Data::Structured(failed)),
            },
        };
        let began = std::time::Instant::now();
        self.destination
            .write(std::slice::from_ref(&letter))
            .await
            .map_err(NackError::Write)?;
        if let Some(duration) = &self.duration {
            duration.observe(began.elapsed().as_secs_f64());
        }
        if let Some(bytes) = &self.bytes {
            bytes.observe_records(std::slice::from_ref(&letter));
        }
        // Kept after the DLQ's own write: a failed write stops the pipeline before the
        // record is handled, so a restart sends it again and it is not kept twice.
        if let Some(letters) = &self.letters {
            let kept = DeadLetter {
                node: node.to_owned(),
                error: reason.to_owned(),
                stage: origin.stage,
                processor: origin.processor,
                index: origin.index,
                record: record.clone(),
            };
            let letters = letters.clone();
            tokio::task::spawn_blocking(move || letters.keep(&kept))
                .await
                .map_err(|e| NackError::Keep(e.to_string()))?
                .map_err(NackError::Keep)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_follows_conduits() {
        // Default: threshold 0, the first nack is refused.
        let mut w = Window::new(1, 0);
        w.ack();
        assert!(!w.nack());
        // No window: every nack accepted.
        let mut w = Window::new(0, 0);
        assert!((0..100).all(|_| w.nack()));
        // 2 of the last 3 tolerated; acks slide nacks out.
        let mut w = Window::new(3, 2);
        assert!(w.nack());
        assert!(w.nack());
        w.ack();
        w.ack();
        assert!(w.nack(), "one nack left in the window, plus this one");
        let mut w = Window::new(3, 1);
        assert!(w.nack());
        assert!(!w.nack(), "two nacks in three");
        w.ack();
        w.ack();
        w.ack();
        assert!(!w.nack(), "once exceeded, frozen");
    }
}
