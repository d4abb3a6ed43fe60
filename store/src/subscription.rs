//! Catch-up-then-live subscriptions to the event log.

use crate::{EventLog, StoreError, StoredEvent};
use culvert_domain::Seq;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::watch;

/// Reads the log from a sequence number on, then follows appends as they happen.
///
/// Never misses an event between catch-up and live tail: it always reads by sequence number
/// from the log itself, and the head watch only tells it when to read again. The head is
/// marked seen *before* each read, so an append that lands during the read wakes the next
/// wait.
pub struct Subscription {
    log: Arc<dyn EventLog>,
    next: Seq,
    head: watch::Receiver<Seq>,
    buffer: VecDeque<StoredEvent>,
    batch: usize,
}

impl Subscription {
    /// Events from sequence `from` (inclusive) on. `Seq(1)` or `Seq::ZERO` read everything.
    pub fn new(log: Arc<dyn EventLog>, from: Seq) -> Self {
        let head = log.watch_head();
        Self {
            log,
            next: from.max(Seq(1)),
            head,
            buffer: VecDeque::new(),
            batch: 1024,
        }
    }

    /// The sequence number of the next event this subscription will return.
    pub fn position(&self) -> Seq {
        self.next
    }

    /// The next event, waiting for one to be appended if the subscription is caught up.
    pub async fn next(&mut self) -> Result<StoredEvent, StoreError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                if event.seq != self.next {
                    return Err(StoreError::Gap {
                        expected: self.next,
                        found: event.seq,
                    });
                }
                self.next = event.seq.next();
                return Ok(event);
            }
            let head = *self.head.borrow_and_update();
            if head >= self.next {
                let events = self.log.read_from(self.next, self.batch)?;
                if events.is_empty() {
                    return Err(StoreError::Gap {
                        expected: self.next,
                        found: head,
                    });
                }
                self.buffer.extend(events);
                continue;
            }
            self.head.changed().await.map_err(|_| StoreError::Closed)?;
        }
    }
}
