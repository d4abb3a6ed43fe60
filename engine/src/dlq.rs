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
    /// Keep a batch's letters, in order, durably (all or none: a store does it in one
    /// write).
    fn keep_all(&self, letters: &[DeadLetter]) -> Result<(), String>;
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

    /// A batch's failed records, in order, to the DLQ (or refused): each is counted in the
    /// window; those it takes are written to the DLQ in one write and kept in the letter
    /// box in one write. If the window refuses one, the ones before it are written and
    /// kept, and the error names the refused one's index in `nacks`; if a write fails, the
    /// error has index 0 (what of the batch reached the DLQ is unknown, and it is all sent
    /// again after a restart).
    pub async fn nack_all(&mut self, nacks: Vec<Nack<'_>>) -> Result<(), (usize, NackError)> {
        let mut taken = Vec::with_capacity(nacks.len());
        let mut refused = None;
        for (index, nack) in nacks.into_iter().enumerate() {
            if !self.window.nack() {
                let message = if self.threshold > 0 {
                    format!(
                        "DLQ nack threshold exceeded ({}/{}), original error: {}",
                        self.threshold, self.size, nack.reason
                    )
                } else {
                    nack.reason
                };
                refused = Some((index, NackError::Refused(message)));
                break;
            }
            taken.push(nack);
        }
        if !taken.is_empty() {
            self.write(&taken).await.map_err(|error| (0, error))?;
        }
        match refused {
            Some(refused) => Err(refused),
            None => Ok(()),
        }
    }

    /// Write `taken` to the DLQ, then keep them in the letter box.
    async fn write(&mut self, taken: &[Nack<'_>]) -> Result<(), NackError> {
        let created_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_string();
        let letters: Vec<Record> = taken
            .iter()
            .map(|nack| {
                let failed = match serde_json::from_slice(&nack.record.to_json()) {
                    Ok(serde_json::Value::Object(map)) => map,
                    _ => serde_json::Map::new(),
                };
                Record {
                    position: nack.record.position.clone(),
                    operation: Operation::Create,
                    metadata: [
                        (metadata::key(metadata::CREATED_AT), created_at.as_str()),
                        (
                            metadata::key(metadata::DLQ_NACK_ERROR),
                            nack.reason.as_str(),
                        ),
                        (
                            metadata::key(metadata::DLQ_NACK_NODE_ID),
                            nack.node.as_str(),
                        ),
                    ]
                    .into(),
                    key: None,
                    payload: Change {
                        before: None,
                        after: Some(Data::Structured(failed.into())),
                    },
                }
            })
            .collect();
        let began = std::time::Instant::now();
        self.destination
            .write(&letters)
            .await
            .map_err(NackError::Write)?;
        if let Some(duration) = &self.duration {
            duration.observe(began.elapsed().as_secs_f64());
        }
        if let Some(bytes) = &self.bytes {
            bytes.observe_records(&letters);
        }
        // Kept after the DLQ's own write: a failed write stops the pipeline before the
        // records are handled, so a restart sends them again and they are not kept twice.
        if let Some(letters) = &self.letters {
            let kept: Vec<DeadLetter> = taken
                .iter()
                .map(|nack| DeadLetter {
                    node: nack.node.clone(),
                    error: nack.reason.clone(),
                    stage: nack.origin.stage.clone(),
                    processor: nack.origin.processor.clone(),
                    index: nack.origin.index,
                    record: nack.record.clone(),
                })
                .collect();
            let letters = letters.clone();
            tokio::task::spawn_blocking(move || letters.keep_all(&kept))
                .await
                .map_err(|e| NackError::Keep(e.to_string()))?
                .map_err(NackError::Keep)?;
        }
        Ok(())
    }
}

/// A record that failed: what [`DeadLetters::nack_all`] takes.
pub struct Nack<'a> {
    /// The record as it failed.
    pub record: &'a Record,
    /// Why.
    pub reason: String,
    /// The node that failed it, as the letter's `dlq.nack.node.id` names it.
    pub node: String,
    /// Where in the pipeline.
    pub origin: Origin,
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
