//! The stream inspector: live copies of the records a connector or a processor handles.
//!
//! As Conduit's `pkg/inspector`: every session has a bounded buffer
//! ([`DEFAULT_BUFFER_SIZE`] records); a record that does not fit is dropped for that
//! session only (and counted), so an inspector never slows or blocks the pipeline. Nodes
//! call [`Inspectors::send`] once per batch; with no session anywhere that is one atomic
//! load, and records are copied only when a session watches that node (once per record,
//! shared by every session).
//!
//! A session ends (its receiver yields `None` once its buffer is read) when its entity is
//! deleted or its pipeline's run ends; [`Session::closed`] says which.

use culvert_domain::Record;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::mpsc;

use crate::metrics::ComponentLabel;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// Records a session buffers before it drops (Conduit's `inspector.DefaultBufferSize`).
pub const DEFAULT_BUFFER_SIZE: usize = 1000;

/// Which records of an entity a session sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// A connector's: the records a source produced or a destination received.
    Connector,
    /// The records going into a processor.
    In,
    /// The records coming out of a processor (the ones it kept, split or changed).
    Out,
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The connector or processor was deleted.
    Deleted,
    /// Its pipeline stopped (or its run ended with an error).
    Stopped,
    /// The server is shutting down.
    Shutdown,
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Closed::Deleted => "the entity was deleted",
            Closed::Stopped => "the pipeline stopped",
            Closed::Shutdown => "the server is shutting down",
        })
    }
}

type Key = (String, Side);

struct Sink {
    id: u64,
    tx: mpsc::Sender<Arc<Record>>,
    dropped: Arc<AtomicU64>,
    closed: Arc<OnceLock<Closed>>,
}

type Sessions = Family<ComponentLabel, Gauge>;
type Dropped = Family<ComponentLabel, Counter>;
/// The entities with inspector series (shared with `Metrics::retain`).
type Inspected = Arc<Mutex<HashSet<String>>>;

/// The live inspector sessions of a server, by entity.
pub struct Inspectors {
    /// Conduit's `conduit_inspector_sessions` and `..._dropped_records_total`, if served.
    metrics: OnceLock<(Sessions, Dropped, Inspected)>,
    /// Open sessions in all (the nodes' shortcut: nothing to do when 0).
    active: AtomicUsize,
    sessions: Mutex<HashMap<Key, Vec<Sink>>>,
    next_id: AtomicU64,
    buffer: usize,
}

impl Default for Inspectors {
    fn default() -> Self {
        Self::new(DEFAULT_BUFFER_SIZE)
    }
}

impl std::fmt::Debug for Inspectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspectors")
            .field("active", &self.active())
            .field("buffer", &self.buffer)
            .finish()
    }
}

/// One client's view of an entity's records.
pub struct Session {
    rx: mpsc::Receiver<Arc<Record>>,
    id: u64,
    key: Key,
    dropped: Arc<AtomicU64>,
    closed: Arc<OnceLock<Closed>>,
    registry: std::sync::Weak<Inspectors>,
}

impl Session {
    /// The next record; `None` once the session was closed and its buffer is read.
    pub async fn recv(&mut self) -> Option<Arc<Record>> {
        self.rx.recv().await
    }

    /// Records dropped for this session because its buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Why the session ended, once it has.
    pub fn closed(&self) -> Option<Closed> {
        self.closed.get().copied()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.remove(&self.key, self.id);
        }
    }
}

impl Inspectors {
    /// A registry whose sessions buffer `buffer` records each.
    pub fn new(buffer: usize) -> Self {
        Self {
            metrics: OnceLock::new(),
            active: AtomicUsize::new(0),
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            buffer: buffer.max(1),
        }
    }

    /// Count sessions and drops in `metrics` (set once; later calls are ignored).
    pub fn set_metrics(&self, metrics: &crate::Metrics) {
        let _ = self.metrics.set((
            metrics.inspector_sessions.clone(),
            metrics.inspector_dropped.clone(),
            metrics.inspected.clone(),
        ));
    }

    fn label(id: &str) -> ComponentLabel {
        ComponentLabel {
            component_id: id.to_owned(),
        }
    }

    /// Sessions on `id` changed by `delta`.
    fn count(&self, id: &str, delta: i64) {
        if let Some((sessions, _, inspected)) = self.metrics.get() {
            if delta > 0 {
                // Noted so the series can go when the entity is deleted (Metrics::retain).
                let mut inspected = inspected.lock().expect("metrics series lock");
                if !inspected.contains(id) {
                    inspected.insert(id.to_owned());
                }
            }
            sessions.get_or_create(&Self::label(id)).inc_by(delta);
        }
    }

    /// Open sessions in all.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Open a session on `side` of the entity `id` (it ends when dropped, or when the
    /// entity is closed).
    pub fn open(self: &Arc<Self>, id: &str, side: Side) -> Session {
        let (tx, rx) = mpsc::channel(self.buffer);
        let number = self.next_id.fetch_add(1, Ordering::Relaxed);
        let dropped = Arc::new(AtomicU64::new(0));
        let closed = Arc::new(OnceLock::new());
        let key = (id.to_owned(), side);
        {
            let mut sessions = self.sessions.lock().expect("inspector lock");
            sessions.entry(key.clone()).or_default().push(Sink {
                id: number,
                tx,
                dropped: dropped.clone(),
                closed: closed.clone(),
            });
            self.active.fetch_add(1, Ordering::Relaxed);
        }
        self.count(id, 1);
        tracing::info!(
            entity = id,
            ?side,
            session = number,
            "inspector session opened"
        );
        Session {
            rx,
            id: number,
            key,
            dropped,
            closed,
            registry: Arc::downgrade(self),
        }
    }

    /// Hand a copy of `records` to every session watching `side` of `id`; a session whose
    /// buffer is full loses the record (never waits).
    pub fn send(&self, id: &str, side: Side, records: &[Record]) {
        if self.active.load(Ordering::Relaxed) == 0 || records.is_empty() {
            return;
        }
        let sessions = self.sessions.lock().expect("inspector lock");
        // The lookup borrows `id` without building an owned key.
        let Some(sinks) = sessions
            .iter()
            .find(|((key, s), _)| *s == side && key == id)
            .map(|(_, sinks)| sinks)
        else {
            return;
        };
        // A full session costs nothing per record: it is skipped for the batch (its buffer
        // only drains, never fills, while this runs); a record is copied once, and only if
        // some session has room for it, the copy shared by all of them.
        let mut dropped: Vec<u64> = vec![0; sinks.len()];
        let open: Vec<bool> = sinks.iter().map(|sink| sink.tx.capacity() > 0).collect();
        for record in records {
            let mut copy: Option<Arc<Record>> = None;
            for (index, sink) in sinks.iter().enumerate() {
                let permit = if open[index] {
                    sink.tx.try_reserve().ok()
                } else {
                    None
                };
                match permit {
                    Some(permit) => {
                        let shared = copy.get_or_insert_with(|| Arc::new(record.clone()));
                        permit.send(shared.clone());
                    }
                    None => dropped[index] += 1,
                }
            }
        }
        for (sink, lost) in sinks.iter().zip(dropped) {
            if lost == 0 {
                continue;
            }
            if let Some((_, counter, _)) = self.metrics.get() {
                counter.get_or_create(&Self::label(id)).inc_by(lost);
            }
            let before = sink.dropped.fetch_add(lost, Ordering::Relaxed);
            let after = before + lost;
            // The first drop, then every thousandth.
            if before == 0 || before / 1000 != after / 1000 {
                tracing::warn!(
                    entity = id,
                    session = sink.id,
                    dropped = after,
                    "inspector session buffer full, records are dropped for it"
                );
            }
        }
    }

    /// End every session on any side of `id`, for `reason` (they yield what they buffered,
    /// then `None`).
    pub fn close(&self, id: &str, reason: Closed) {
        self.close_where(|key| key == id, reason);
    }

    /// End every session whose entity id `gone` says, for `reason`.
    pub fn close_where(&self, gone: impl Fn(&str) -> bool, reason: Closed) {
        if self.active() == 0 {
            return;
        }
        let mut sessions = self.sessions.lock().expect("inspector lock");
        let keys: Vec<Key> = sessions
            .keys()
            .filter(|(id, _)| gone(id))
            .cloned()
            .collect();
        for key in keys {
            if let Some(sinks) = sessions.remove(&key) {
                self.active.fetch_sub(sinks.len(), Ordering::Relaxed);
                self.count(&key.0, -i64::try_from(sinks.len()).unwrap_or(i64::MAX));
                for sink in sinks {
                    let _ = sink.closed.set(reason);
                    tracing::info!(entity = %key.0, session = sink.id, %reason, "inspector session closed");
                }
            }
        }
    }

    /// The ids of the entities watched now.
    pub fn watched(&self) -> Vec<String> {
        let sessions = self.sessions.lock().expect("inspector lock");
        let mut ids: Vec<String> = sessions.keys().map(|(id, _)| id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    fn remove(&self, key: &Key, number: u64) {
        let mut sessions = self.sessions.lock().expect("inspector lock");
        let Some(sinks) = sessions.get_mut(key) else {
            return; // closed already
        };
        let before = sinks.len();
        sinks.retain(|s| s.id != number);
        if sinks.len() < before {
            self.active.fetch_sub(1, Ordering::Relaxed);
            self.count(&key.0, -1);
            tracing::info!(entity = %key.0, session = number, "inspector session removed");
        }
        if sinks.is_empty() {
            sessions.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_domain::Position;

    fn record(n: u32) -> Record {
        Record {
            position: Position(n.to_string().into_bytes()),
            ..Record::default()
        }
    }

    fn batch(range: std::ops::Range<u32>) -> Vec<Record> {
        range.map(record).collect()
    }

    #[tokio::test]
    async fn a_full_session_drops_for_itself_only() {
        let inspectors = Arc::new(Inspectors::new(3));
        let mut slow = inspectors.open("c", Side::Connector);
        let mut fast = inspectors.open("c", Side::Connector);
        inspectors.send("c", Side::Connector, &batch(0..2));
        for n in 0..2 {
            assert_eq!(fast.recv().await.unwrap().position, record(n).position);
        }
        inspectors.send("c", Side::Connector, &batch(2..5));
        for n in 2..5 {
            assert_eq!(fast.recv().await.unwrap().position, record(n).position);
        }
        // `slow` holds 0, 1, 2; 3 and 4 were dropped for it.
        assert_eq!(slow.dropped(), 2);
        assert_eq!(fast.dropped(), 0);
        for n in 0..3 {
            assert_eq!(slow.recv().await.unwrap().position, record(n).position);
        }
    }

    #[tokio::test]
    async fn sessions_see_only_their_entity_and_side() {
        let inspectors = Arc::new(Inspectors::default());
        let mut input = inspectors.open("p", Side::In);
        let mut output = inspectors.open("p", Side::Out);
        let mut other = inspectors.open("q", Side::In);
        inspectors.send("p", Side::In, &batch(0..1));
        inspectors.send("p", Side::Out, &batch(1..2));
        assert_eq!(input.recv().await.unwrap().position, record(0).position);
        assert_eq!(output.recv().await.unwrap().position, record(1).position);
        inspectors.close("q", Closed::Stopped);
        assert!(other.recv().await.is_none());
        assert_eq!(other.closed(), Some(Closed::Stopped));
        assert_eq!(inspectors.active(), 2);
    }

    #[tokio::test]
    async fn close_ends_every_session_after_its_buffer() {
        let inspectors = Arc::new(Inspectors::default());
        let mut a = inspectors.open("c", Side::Connector);
        let mut b = inspectors.open("c", Side::Connector);
        inspectors.send("c", Side::Connector, &batch(0..1));
        inspectors.close_where(|id| id == "c", Closed::Deleted);
        assert_eq!(inspectors.active(), 0);
        for session in [&mut a, &mut b] {
            assert!(session.recv().await.is_some());
            assert!(session.recv().await.is_none());
            assert_eq!(session.closed(), Some(Closed::Deleted));
        }
        // Records after the close go nowhere.
        inspectors.send("c", Side::Connector, &batch(1..2));
    }

    #[test]
    fn sessions_and_drops_are_counted() {
        let metrics = crate::Metrics::new();
        let inspectors = Arc::new(Inspectors::new(1));
        inspectors.set_metrics(&metrics);
        let a = inspectors.open("c", Side::Connector);
        let _b = inspectors.open("c", Side::Connector);
        inspectors.send("c", Side::Connector, &batch(0..3));
        let text = metrics.render();
        assert!(
            text.contains("conduit_inspector_sessions{component_id=\"c\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("conduit_inspector_dropped_records_total{component_id=\"c\"} 4"),
            "{text}"
        );
        drop(a);
        inspectors.close("c", Closed::Stopped);
        assert!(metrics
            .render()
            .contains("conduit_inspector_sessions{component_id=\"c\"} 0"));
    }

    #[test]
    fn a_dropped_session_leaves_the_registry() {
        let inspectors = Arc::new(Inspectors::default());
        let a = inspectors.open("c", Side::Connector);
        let b = inspectors.open("c", Side::Connector);
        assert_eq!(inspectors.active(), 2);
        drop(a);
        assert_eq!(inspectors.active(), 1);
        assert_eq!(inspectors.watched(), vec!["c".to_owned()]);
        drop(b);
        assert_eq!(inspectors.active(), 0);
        assert!(inspectors.watched().is_empty());
    }
}
