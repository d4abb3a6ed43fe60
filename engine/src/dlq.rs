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
//! The DLQ record is Conduit's: operation `create`, metadata `opencdc.createdAt`,
//! `conduit.dlq.nack.error` and `conduit.dlq.nack.node.id`, the failed record (in its JSON
//! form) as `payload.after`, and the failed record's position.

use culvert_domain::opencdc::metadata;
use culvert_domain::{Change, Data, Operation, Record};
use culvert_plugins::{Destination, PluginError};

/// The DLQ of a running pipeline: a destination and its tolerance.
pub struct DeadLetterNode {
    /// The destination nacked records are written to (e.g. `builtin:log`).
    pub destination: Box<dyn Destination>,
    /// How many of the last outcomes the window holds (0: no window, every nack goes to
    /// the DLQ).
    pub window_size: u64,
    /// How many nacks in the window are tolerated.
    pub window_nack_threshold: u64,
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
}

/// A running DLQ.
pub struct DeadLetters {
    destination: Box<dyn Destination>,
    window: Window,
    size: u64,
    threshold: u64,
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

    /// `record` failed in `node` with `reason`: write it to the DLQ, or refuse.
    pub async fn nack(
        &mut self,
        record: &Record,
        reason: &str,
        node: &str,
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
