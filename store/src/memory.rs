//! The in-memory twin of the RocksDB store, for tests and for models of the real one.

use crate::letters::{self, DeadLetterStore, Kept, LetterLimits, StoredLetter};
use crate::{AppendRequest, EventLog, PositionStore, Snapshot, StoreError, StoredEvent};
use chrono::{DateTime, Utc};
use culvert_domain::{Seq, StreamId};
use parking_lot::RwLock;
use std::collections::HashMap;
use tokio::sync::watch;

/// An [`EventLog`] and [`PositionStore`] held in memory. Same contract as
/// [`crate::RocksStore`], minus durability.
pub struct MemoryStore {
    inner: RwLock<Inner>,
    head: watch::Sender<Seq>,
}

#[derive(Default)]
struct Inner {
    events: Vec<StoredEvent>,
    streams: HashMap<StreamId, Vec<Seq>>,
    snapshots: HashMap<String, Snapshot>,
    positions: HashMap<(String, String), Vec<u8>>,
    last_time: Option<DateTime<Utc>>,
    letters: HashMap<String, Letters>,
}

/// A pipeline's dead letters.
#[derive(Default)]
struct Letters {
    last: u64,
    kept: std::collections::BTreeMap<u64, (DateTime<Utc>, Vec<u8>)>,
    queued: std::collections::BTreeSet<u64>,
}

impl Letters {
    fn stored(&self, seq: u64) -> Option<StoredLetter> {
        self.kept.get(&seq).map(|(at, payload)| StoredLetter {
            seq,
            at: *at,
            queued: self.queued.contains(&seq),
            payload: payload.clone(),
        })
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            head: watch::Sender::new(Seq::ZERO),
        }
    }
}

impl EventLog for MemoryStore {
    fn append(&self, request: AppendRequest) -> Result<Vec<StoredEvent>, StoreError> {
        let mut inner = self.inner.write();
        for (stream, expected) in &request.expected {
            let actual = inner.streams.get(stream).map_or(0, |s| s.len() as u64);
            if !expected.matches(actual) {
                return Err(StoreError::Conflict {
                    stream: stream.clone(),
                    expected: *expected,
                    actual,
                });
            }
        }
        fail::fail_point!("store::append::before_write", |_| Err(
            StoreError::Injected("store::append::before_write".into())
        ));
        let now = inner.last_time.map_or_else(Utc::now, |t| t.max(Utc::now()));
        let mut stored = Vec::with_capacity(request.events.len());
        for new in request.events {
            let seq = Seq(inner.events.len() as u64 + stored.len() as u64 + 1);
            let version = inner.streams.get(&new.stream).map_or(0, |s| s.len() as u64)
                + stored
                    .iter()
                    .filter(|e: &&StoredEvent| e.stream == new.stream)
                    .count() as u64
                + 1;
            stored.push(StoredEvent::from_new(new, seq, version, now));
        }
        for event in &stored {
            inner
                .streams
                .entry(event.stream.clone())
                .or_default()
                .push(event.seq);
            inner.events.push(event.clone());
        }
        for connector in &request.clear_positions {
            inner.positions.retain(|(c, _), _| c != connector);
        }
        for write in &request.set_positions {
            let key = (write.connector.clone(), write.slot.clone());
            match &write.value {
                Some(value) => {
                    inner.positions.insert(key, value.clone());
                }
                None => {
                    inner.positions.remove(&key);
                }
            }
        }
        for pipeline in &request.clear_letters {
            inner.letters.remove(pipeline);
        }
        for letter in &request.queue_letters {
            inner
                .letters
                .entry(letter.pipeline.clone())
                .or_default()
                .queued
                .insert(letter.seq);
        }
        if let Some(last) = stored.last() {
            inner.last_time = Some(now);
            self.head.send_replace(last.seq);
        }
        Ok(stored)
    }

    fn read_from(&self, from: Seq, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let inner = self.inner.read();
        let start = from.0.max(1) as usize - 1;
        Ok(inner
            .events
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect())
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let inner = self.inner.read();
        let Some(seqs) = inner.streams.get(stream) else {
            return Ok(vec![]);
        };
        let start = from_version.max(1) as usize - 1;
        Ok(seqs
            .iter()
            .skip(start)
            .take(limit)
            .map(|s| inner.events[s.0 as usize - 1].clone())
            .collect())
    }

    fn head(&self) -> Seq {
        Seq(self.inner.read().events.len() as u64)
    }

    fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .read()
            .streams
            .get(stream)
            .map_or(0, |s| s.len() as u64))
    }

    fn watch_head(&self) -> watch::Receiver<Seq> {
        self.head.subscribe()
    }

    fn put_snapshot(&self, name: &str, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.inner
            .write()
            .snapshots
            .insert(name.to_owned(), snapshot.clone());
        Ok(())
    }

    fn get_snapshot(&self, name: &str) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.inner.read().snapshots.get(name).cloned())
    }

    fn snapshot_names(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self
            .inner
            .read()
            .snapshots
            .keys()
            .filter(|name| name.starts_with(prefix))
            .cloned()
            .collect();
        names.sort_unstable();
        Ok(names)
    }

    fn delete_snapshot(&self, name: &str) -> Result<(), StoreError> {
        self.inner.write().snapshots.remove(name);
        Ok(())
    }
}

impl PositionStore for MemoryStore {
    fn get(&self, connector: &str, slot: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .inner
            .read()
            .positions
            .get(&(connector.to_owned(), slot.to_owned()))
            .cloned())
    }

    fn put(&self, connector: &str, slot: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner
            .write()
            .positions
            .insert((connector.to_owned(), slot.to_owned()), value.to_vec());
        Ok(())
    }

    fn delete_connector(&self, connector: &str) -> Result<(), StoreError> {
        self.inner
            .write()
            .positions
            .retain(|(c, _), _| c != connector);
        Ok(())
    }
}

impl DeadLetterStore for MemoryStore {
    fn keep_letters(
        &self,
        pipeline: &str,
        at: DateTime<Utc>,
        payloads: &[Vec<u8>],
        limits: &LetterLimits,
    ) -> Result<Kept, StoreError> {
        let mut inner = self.inner.write();
        let book = inner.letters.entry(pipeline.to_owned()).or_default();
        let oldest = letters::oldest_allowed(at, limits);
        let mut dropped = 0;
        // One by one under the one lock: all of them are seen together.
        for payload in payloads {
            book.last += 1;
            while let Some((&first, (kept_at, _))) = book.kept.first_key_value() {
                if (book.kept.len() as u64) < limits.max_letters && *kept_at >= oldest {
                    break;
                }
                book.kept.remove(&first);
                book.queued.remove(&first);
                dropped += 1;
            }
            book.kept.insert(book.last, (at, payload.clone()));
        }
        Ok(Kept {
            seq: book.last,
            dropped,
        })
    }

    fn letters(
        &self,
        pipeline: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredLetter>, StoreError> {
        let inner = self.inner.read();
        let Some(book) = inner.letters.get(pipeline) else {
            return Ok(vec![]);
        };
        Ok(book
            .kept
            .range(after.saturating_add(1)..)
            .take(limit)
            .filter_map(|(seq, _)| book.stored(*seq))
            .collect())
    }

    fn letter(&self, pipeline: &str, seq: u64) -> Result<Option<StoredLetter>, StoreError> {
        let inner = self.inner.read();
        Ok(inner
            .letters
            .get(pipeline)
            .and_then(|book| book.stored(seq)))
    }

    fn queued_letters(
        &self,
        pipeline: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredLetter>, StoreError> {
        let inner = self.inner.read();
        let Some(book) = inner.letters.get(pipeline) else {
            return Ok(vec![]);
        };
        Ok(book
            .queued
            .range(after.saturating_add(1)..)
            .filter_map(|seq| book.stored(*seq))
            .take(limit)
            .collect())
    }

    fn letters_delivered(&self, pipeline: &str, through: u64) -> Result<u64, StoreError> {
        let mut inner = self.inner.write();
        let Some(book) = inner.letters.get_mut(pipeline) else {
            return Ok(0);
        };
        let delivered: Vec<u64> = book.queued.range(..=through).copied().collect();
        let mut gone = 0;
        for seq in delivered {
            book.queued.remove(&seq);
            if book.kept.remove(&seq).is_some() {
                gone += 1;
            }
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{run_all, Subject};
    use std::sync::Arc;

    #[test]
    fn memory_store_conforms() {
        run_all(|| Subject {
            store: Arc::new(MemoryStore::new()),
            _guard: None,
        });
    }
}
