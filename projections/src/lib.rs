//! Read models of the control plane, folded from the event log.
//!
//! [`Projections`] holds the current [`ControlPlane`] in memory; the API serves every read
//! from it. On open it loads the latest snapshot and folds the tail of the log after it (or
//! the whole log when there is no usable snapshot); afterwards the command layer hands it
//! each appended batch, in order, so a client reads its own write. A batch is folded all or
//! nothing: a fold cut short puts the state back as it was before the batch. Snapshots are
//! written every [`ProjectionOptions::snapshot_every`] events.
//!
//! Fail points (tests only, feature `failpoints` of the `fail` crate):
//! `projections::apply::mid_update` half-way through folding a batch, and
//! `projections::snapshot::mid_write` between storing the latest snapshot (one atomic put)
//! and its copy along the log.
//!
//! Time travel is a fold up to a sequence number ([`fold_to`]) or a time
//! ([`fold_to_time`]), starting from the nearest snapshot not past the target: besides the
//! latest snapshot, a copy of each is kept along the log (`control-plane@<seq>`, at most
//! [`MAX_HISTORY`], thinned so they stay spread over the whole log), and a rebuild at open
//! that folds many events keeps one every `snapshot_every` events on the way. A point in
//! time then costs at most about `snapshot_every` events of folding (more only in parts of
//! a long log the thinning has spread out).
//!
//! This crate reads the log and writes snapshots; it never appends events.

use chrono::{DateTime, Utc};
use culvert_domain::{ControlPlane, RecordedEvent, Seq};
use culvert_migrations::{decode, DecodeError};
use culvert_store::{EventLog, Snapshot, StoreError};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use thiserror::Error;

/// The name under which the control-plane snapshot is stored.
pub const SNAPSHOT_NAME: &str = "control-plane";
/// The snapshot format this build writes and reads; bump it when [`ControlPlane`]'s
/// serialised shape changes (older snapshots are then ignored and the log folded instead).
pub const SNAPSHOT_FORMAT: u32 = 1;
/// The prefix of the snapshots kept along the log; the name ends in the snapshot's sequence
/// number as 20 digits, so names sort by it.
pub const HISTORY_PREFIX: &str = "control-plane@";
/// The most snapshots kept along the log (each the size of the state at its point).
pub const MAX_HISTORY: usize = 100;
/// How many events are read from the log at a time while folding.
const READ_CHUNK: usize = 4096;
/// How often a long rebuild at start logs its progress.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a projection could not be built or advanced.
#[derive(Debug, Error)]
pub enum ProjectionError {
    /// Reading the log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An event in the log does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Events were handed over out of order.
    #[error("projection at seq {at} was handed seq {got}; events must be contiguous")]
    OutOfOrder {
        /// The projection's last seq.
        at: Seq,
        /// The first seq handed over.
        got: Seq,
    },
}

/// Tuning of the projections.
#[derive(Debug, Clone)]
pub struct ProjectionOptions {
    /// Write a snapshot after this many events since the last one (0 = never).
    pub snapshot_every: u64,
}

impl Default for ProjectionOptions {
    fn default() -> Self {
        Self {
            snapshot_every: 10_000,
        }
    }
}

/// How the projection was built on open, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenReport {
    /// The seq of the snapshot used, if any.
    pub snapshot_seq: Option<Seq>,
    /// How many events were folded after it.
    pub folded: u64,
}

/// The in-memory read models.
pub struct Projections {
    state: RwLock<ControlPlane>,
    /// Where an interrupted [`apply`](Self::apply) puts the state back from.
    rollback: Mutex<Rollback>,
    options: ProjectionOptions,
    last_snapshot: Mutex<Seq>,
    /// The sequence number of the last event folded, for readers that wait for a change.
    applied: tokio::sync::watch::Sender<Seq>,
}

impl Projections {
    /// Build the read models from the newest snapshot (the latest, or one kept along the
    /// log) plus the tail of `log`.
    pub fn open(
        log: &dyn EventLog,
        options: ProjectionOptions,
    ) -> Result<(Self, OpenReport), ProjectionError> {
        // The newest kept snapshot: the latest, or one along the log if that is newer.
        // Listed once: the nearest snapshot is chosen from them, and the rebuild below keeps
        // more only where there are none.
        let kept = history_seqs(log)?;
        let nearest = nearest_state(log, &kept, |_| Ok(true))?;
        let snapshot_seq = nearest.as_ref().map(|n| n.state.last_seq());
        let (mut state, snapshot_data) = match nearest {
            Some(Nearest { state, data }) => (state, Some(data)),
            None => (ControlPlane::new(), None),
        };
        // A long rebuild says how far it is, every PROGRESS_EVERY.
        let total = log.head().0.saturating_sub(state.last_seq().0);
        let began = std::time::Instant::now();
        let mut logged = began;
        let mut progress = |folded: u64| {
            let now = std::time::Instant::now();
            if now.duration_since(logged) >= PROGRESS_EVERY {
                logged = now;
                let rate = folded as f64 / now.duration_since(began).as_secs_f64();
                tracing::info!(
                    folded,
                    total,
                    percent = folded.saturating_mul(100) / total.max(1),
                    per_second = rate as u64,
                    "rebuilding control-plane projections"
                );
            }
        };
        // Snapshots along the log on the way, where there are none yet, so later time
        // travel into this stretch starts close by.
        let mut keeper = HistoryKeeper {
            log,
            every: options.snapshot_every,
            kept,
        };
        let folded = fold_range_keeping(
            &mut state,
            log,
            Seq(u64::MAX),
            &mut progress,
            &mut |state: &ControlPlane| keeper.maybe_keep(state),
        )?;
        let report = OpenReport {
            snapshot_seq,
            folded,
        };
        tracing::info!(
            snapshot_seq = snapshot_seq.map(|s| s.0),
            folded,
            head = state.last_seq().0,
            "control-plane projections rebuilt"
        );
        let applied = tokio::sync::watch::Sender::new(state.last_seq());
        let mut rollback = Rollback {
            base: Vec::new(),
            base_seq: Seq::ZERO,
            since: Vec::new(),
        };
        match snapshot_data {
            // Nothing folded after the snapshot: its bytes are the state's.
            Some(data) if folded == 0 => rollback.rebased(state.last_seq(), data),
            _ => rollback.rebase(&state)?,
        }
        Ok((
            Self {
                state: RwLock::new(state),
                rollback: Mutex::new(rollback),
                options,
                last_snapshot: Mutex::new(snapshot_seq.unwrap_or(Seq::ZERO)),
                applied,
            },
            report,
        ))
    }

    /// Read access to the current state. Hold the guard briefly: writers wait for it.
    pub fn read(&self) -> RwLockReadGuard<'_, ControlPlane> {
        self.state.read()
    }

    /// Fold a batch of just-appended events, which must directly follow the current state.
    ///
    /// All or nothing: readers wait while the batch is folded, and if the fold is cut short
    /// (a panic, or the `projections::apply::mid_update` fail point half-way through the
    /// batch) the state is put back as it was before the batch, so nobody ever reads half a
    /// batch. Putting it back costs a fold from the last rollback point (a snapshot's bytes);
    /// a fold that completes costs nothing extra but keeping the events.
    pub fn apply(&self, events: &[RecordedEvent]) -> Result<(), ProjectionError> {
        let mut state = self.state.write();
        if let Some(first) = events.first() {
            if first.seq != state.last_seq().next() {
                return Err(ProjectionError::OutOfOrder {
                    at: state.last_seq(),
                    got: first.seq,
                });
            }
        }
        let mut folding = Folding {
            before: state.last_seq(),
            state: &mut state,
            rollback: &self.rollback,
            done: false,
        };
        for (i, event) in events.iter().enumerate() {
            if i > 0 && i == events.len() / 2 {
                fail::fail_point!("projections::apply::mid_update", |_| Err(
                    StoreError::Injected("projections::apply::mid_update".into()).into()
                ));
            }
            folding.state.evolve(event);
        }
        folding.done = true;
        let last = folding.state.last_seq();
        let mut rollback = self.rollback.lock();
        rollback.since.extend_from_slice(events);
        // Bounded: a fresh rollback point now and then (snapshots also make one).
        if rollback.since.len() as u64 >= self.rebase_every() {
            if let Err(error) = rollback.rebase(folding.state) {
                // The batch is folded; only the rollback point stays further back.
                tracing::warn!(%error, "could not move the projection's rollback point");
            }
        }
        drop(rollback);
        drop(folding);
        self.applied.send_replace(last);
        Ok(())
    }

    /// How many events the rollback keeps before it takes a fresh rollback point: twice the
    /// snapshot interval (a snapshot normally comes first and resets it), at least 1,000.
    fn rebase_every(&self) -> u64 {
        (self.options.snapshot_every.saturating_mul(2)).max(1_000)
    }

    /// Changes whenever events are folded; its value is the last folded sequence number.
    /// Unlike the log's head, which moves when an event is appended (a moment before it is
    /// folded), a reader woken by this sees the event in [`read`](Self::read).
    pub fn watch_applied(&self) -> tokio::sync::watch::Receiver<Seq> {
        self.applied.subscribe()
    }

    /// Fold whatever the log has beyond the current state (after another writer, or when
    /// [`apply`](Self::apply) was refused). Returns how many events were folded.
    pub fn catch_up(&self, log: &dyn EventLog) -> Result<u64, ProjectionError> {
        let mut state = self.state.write();
        let folded = fold_range(&mut state, log, Seq(u64::MAX));
        // Whatever was folded (all of it or, after an error, part), the rollback point
        // follows: events folded here did not pass through `apply`.
        if let Err(error) = self.rollback.lock().rebase(&state) {
            tracing::warn!(%error, "could not move the projection's rollback point");
        }
        self.applied.send_replace(state.last_seq());
        folded
    }

    /// Write a snapshot if `snapshot_every` events have passed since the last one.
    pub fn snapshot_if_due(&self, log: &dyn EventLog) -> Result<bool, ProjectionError> {
        let every = self.options.snapshot_every;
        let last = *self.last_snapshot.lock();
        if every == 0 || self.state.read().last_seq().0 < last.0 + every {
            return Ok(false);
        }
        self.write_snapshot(log)?;
        Ok(true)
    }

    /// Write a snapshot of the current state now.
    pub fn write_snapshot(&self, log: &dyn EventLog) -> Result<Seq, ProjectionError> {
        let snapshot = snapshot_of(&self.state.read())?;
        let seq = snapshot.seq;
        // The latest snapshot is one atomic put in the store (seq, format and bytes in one
        // value): a reader finds the old one or the new one, never a mix.
        log.put_snapshot(SNAPSHOT_NAME, &snapshot)?;
        // Between the two parts of a snapshot write: the latest is stored, its copy along
        // the log not yet, and `last_snapshot` not advanced (the next due check retries).
        fail::fail_point!("projections::snapshot::mid_write", |_| Err(
            StoreError::Injected("projections::snapshot::mid_write".into()).into()
        ));
        *self.last_snapshot.lock() = seq;
        self.rollback.lock().rebased(seq, snapshot.data.clone());
        // A copy along the log for time travel; losing it costs only a longer fold.
        if let Err(error) = keep_history(log, &history_name(seq), &snapshot) {
            tracing::warn!(%error, seq = seq.0, "could not keep a snapshot along the log");
        }
        tracing::debug!(seq = seq.0, "control-plane snapshot written");
        Ok(seq)
    }
}

/// What an interrupted [`Projections::apply`] rebuilds the state before its batch from: the
/// state at a rollback point, serialised (the snapshot format), and every event folded
/// since. A snapshot (whose bytes it reuses), a [`Projections::catch_up`] or a long run of
/// applied events moves the point forward. Costs the state's serialised size plus the
/// events since the point; a fold that completes never reads it.
struct Rollback {
    /// The serialised state at `base_seq`.
    base: Vec<u8>,
    base_seq: Seq,
    /// Events folded after `base_seq`, in order.
    since: Vec<RecordedEvent>,
}

impl Rollback {
    /// Make `state` the rollback point.
    fn rebase(&mut self, state: &ControlPlane) -> Result<(), ProjectionError> {
        let snapshot = snapshot_of(state)?;
        self.rebased(snapshot.seq, snapshot.data);
        Ok(())
    }

    /// The state at `seq` (not before the current point), serialised, is the rollback point.
    fn rebased(&mut self, seq: Seq, data: Vec<u8>) {
        if seq < self.base_seq {
            return;
        }
        self.base = data;
        self.base_seq = seq;
        self.since.retain(|event| event.seq > seq);
    }

    /// The state as of `seq`, which must be at or after the rollback point.
    fn state_at(&self, seq: Seq) -> Result<ControlPlane, serde_json::Error> {
        let mut state: ControlPlane = serde_json::from_slice(&self.base)?;
        state.reindex();
        for event in self.since.iter().take_while(|event| event.seq <= seq) {
            state.evolve(event);
        }
        Ok(state)
    }
}

/// A batch being folded into the state under the write lock. Dropped before it is `done`
/// (an early return or a panic half-way), it puts the state back as it was before the batch.
struct Folding<'a> {
    before: Seq,
    state: &'a mut ControlPlane,
    rollback: &'a Mutex<Rollback>,
    done: bool,
}

impl Drop for Folding<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        match self.rollback.lock().state_at(self.before) {
            Ok(state) if state.last_seq() == self.before => {
                *self.state = state;
                tracing::warn!(
                    seq = self.before.0,
                    "folding a batch into the control-plane projection was interrupted; \
                     the state is back before the batch"
                );
            }
            Ok(state) => tracing::error!(
                wanted = self.before.0,
                got = state.last_seq().0,
                "could not put the control-plane projection back: the rollback misses events"
            ),
            Err(error) => tracing::error!(
                %error,
                "could not put the control-plane projection back: unreadable rollback point"
            ),
        }
    }
}

/// The name of the snapshot kept along the log at `seq`.
fn history_name(seq: Seq) -> String {
    format!("{HISTORY_PREFIX}{:020}", seq.0)
}

/// The sequence numbers of the snapshots kept along the log, ascending.
fn history_seqs(log: &dyn EventLog) -> Result<Vec<u64>, ProjectionError> {
    Ok(log
        .snapshot_names(HISTORY_PREFIX)?
        .iter()
        .filter_map(|name| name.strip_prefix(HISTORY_PREFIX)?.parse().ok())
        .collect())
}

/// `state` as a snapshot.
fn snapshot_of(state: &ControlPlane) -> Result<Snapshot, ProjectionError> {
    let data = serde_json::to_vec(state).map_err(|source| StoreError::Encode {
        what: "control-plane snapshot",
        source,
    })?;
    Ok(Snapshot {
        seq: state.last_seq(),
        format: SNAPSHOT_FORMAT,
        data,
    })
}

/// Store `snapshot` along the log as `name`, then thin the kept ones to [`MAX_HISTORY`]:
/// each time drop the one (never the first or the last) whose neighbours are closest, so
/// the rest stay spread over the whole log.
fn keep_history(
    log: &dyn EventLog,
    name: &str,
    snapshot: &Snapshot,
) -> Result<(), ProjectionError> {
    log.put_snapshot(name, snapshot)?;
    let mut seqs = history_seqs(log)?;
    while seqs.len() > MAX_HISTORY {
        let drop = (1..seqs.len() - 1)
            .min_by_key(|&i| seqs[i + 1] - seqs[i - 1])
            .expect("more than MAX_HISTORY >= 3 snapshots");
        log.delete_snapshot(&history_name(Seq(seqs[drop])))?;
        seqs.remove(drop);
    }
    Ok(())
}

/// Keeps a snapshot along the log every `every` events of a fold, where none is kept yet.
struct HistoryKeeper<'a> {
    log: &'a dyn EventLog,
    every: u64,
    kept: Vec<u64>,
}

impl HistoryKeeper<'_> {
    /// After each event: keep `state` if it ends a stretch of `every` events and no kept
    /// snapshot is in that stretch. A store that cannot keep one (opened read-only, say)
    /// turns the keeping off with a warning: it only makes later time travel slower.
    fn maybe_keep(&mut self, state: &ControlPlane) -> Result<(), ProjectionError> {
        let seq = state.last_seq().0;
        if self.every == 0 || !seq.is_multiple_of(self.every) {
            return Ok(());
        }
        if self.kept.iter().any(|k| *k > seq - self.every && *k <= seq) {
            return Ok(());
        }
        match keep_history(self.log, &history_name(Seq(seq)), &snapshot_of(state)?) {
            Ok(()) => self.kept.push(seq),
            Err(error) => {
                tracing::warn!(%error, "not keeping snapshots along the log while folding");
                self.every = 0;
            }
        }
        Ok(())
    }
}

/// A kept snapshot decoded: the state and the bytes it was decoded from (a rollback point
/// can reuse them instead of encoding the state again).
struct Nearest {
    state: ControlPlane,
    data: Vec<u8>,
}

/// The nearest kept snapshot (the latest, or one along the log at the ascending sequence
/// numbers `history`) not past the target, or `None` when there is none. `not_past` says, for a kept sequence number, whether the
/// snapshot is not past the target.
///
/// Only the chosen snapshot is decoded (a snapshot's sequence number is known before its
/// state is: the latest's is stored beside its bytes, the others' are in their names). One
/// that cannot be decoded gives way to the other.
fn nearest_state(
    log: &dyn EventLog,
    history: &[u64],
    mut not_past: impl FnMut(u64) -> Result<bool, ProjectionError>,
) -> Result<Option<Nearest>, ProjectionError> {
    // The kept sequence numbers are ascending and `not_past` holds for a prefix of them:
    // find the last it holds for by bisection.
    let (mut low, mut high) = (0, history.len());
    while low < high {
        let mid = (low + high) / 2;
        if not_past(history[mid])? {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    let along = low.checked_sub(1).map(|i| history[i]);
    let latest = match stored_snapshot(log, SNAPSHOT_NAME)? {
        Some(snapshot) if not_past(snapshot.seq.0)? => Some(snapshot),
        _ => None,
    };
    // The newer of the two first (the latest when they are at the same point: it is read
    // already).
    let latest_first = match (&latest, along) {
        (Some(latest), Some(along)) => latest.seq.0 >= along,
        (latest, _) => latest.is_some(),
    };
    let mut latest = latest;
    if latest_first {
        if let Some(found) = latest.take().and_then(|s| decoded(log, s)) {
            return Ok(Some(found));
        }
    }
    if let Some(seq) = along {
        if let Some(found) = stored_snapshot(log, &history_name(Seq(seq)))?
            .and_then(|snapshot| decoded(log, snapshot))
        {
            return Ok(Some(found));
        }
    }
    Ok(latest.and_then(|snapshot| decoded(log, snapshot)))
}

/// The state of [`nearest_state`]'s snapshot, or a fresh state when there is none.
fn nearest_or_fresh(
    log: &dyn EventLog,
    not_past: impl FnMut(u64) -> Result<bool, ProjectionError>,
) -> Result<ControlPlane, ProjectionError> {
    Ok(nearest_state(log, &history_seqs(log)?, not_past)?
        .map_or_else(ControlPlane::new, |nearest| nearest.state))
}

/// The state as of sequence `seq` (inclusive): time travel by sequence number.
pub fn fold_to(log: &dyn EventLog, seq: Seq) -> Result<ControlPlane, ProjectionError> {
    let mut state = nearest_or_fresh(log, |kept| Ok(kept <= seq.0))?;
    fold_range(&mut state, log, seq)?;
    Ok(state)
}

/// The state as of time `at` (inclusive): every event recorded at or before it.
pub fn fold_to_time(
    log: &dyn EventLog,
    at: DateTime<Utc>,
) -> Result<ControlPlane, ProjectionError> {
    // A kept snapshot is not past `at` when the event it ends with was recorded by then.
    let mut state = nearest_or_fresh(log, |kept| {
        Ok(log
            .read_from(Seq(kept), 1)?
            .first()
            .is_some_and(|event| event.seq == Seq(kept) && event.recorded_at <= at))
    })?;
    loop {
        let events = log.read_from(state.last_seq().next(), READ_CHUNK)?;
        if events.is_empty() {
            return Ok(state);
        }
        for stored in &events {
            // recorded_at is non-decreasing along the log, so the first later event ends it.
            if stored.recorded_at > at {
                return Ok(state);
            }
            state.evolve(&decode(stored)?);
        }
    }
}

/// Fold the full log from the start, ignoring snapshots.
pub fn fold_all(log: &dyn EventLog) -> Result<ControlPlane, ProjectionError> {
    let mut state = ControlPlane::new();
    fold_range(&mut state, log, Seq(u64::MAX))?;
    Ok(state)
}

/// Fold events after `state.last_seq()` up to `until` (inclusive); returns how many.
fn fold_range(
    state: &mut ControlPlane,
    log: &dyn EventLog,
    until: Seq,
) -> Result<u64, ProjectionError> {
    fold_range_with(state, log, until, &mut |_| {})
}

/// As [`fold_range`], telling `progress` the events folded so far after each chunk.
fn fold_range_with(
    state: &mut ControlPlane,
    log: &dyn EventLog,
    until: Seq,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, ProjectionError> {
    fold_range_keeping(state, log, until, progress, &mut |_| Ok(()))
}

/// As [`fold_range_with`], handing the state to `after_each` after every event.
fn fold_range_keeping(
    state: &mut ControlPlane,
    log: &dyn EventLog,
    until: Seq,
    progress: &mut dyn FnMut(u64),
    after_each: &mut dyn FnMut(&ControlPlane) -> Result<(), ProjectionError>,
) -> Result<u64, ProjectionError> {
    let mut folded = 0;
    while state.last_seq() < until {
        let want = (until.0 - state.last_seq().0).min(READ_CHUNK as u64) as usize;
        let events = log.read_from(state.last_seq().next(), want)?;
        if events.is_empty() {
            break;
        }
        for stored in &events {
            if stored.seq != state.last_seq().next() {
                return Err(StoreError::Gap {
                    expected: state.last_seq().next(),
                    found: stored.seq,
                }
                .into());
            }
            state.evolve(&decode(stored)?);
            folded += 1;
            after_each(state)?;
        }
        progress(folded);
    }
    Ok(folded)
}

/// The snapshot stored as `name`, if there is one in a format this build reads (not yet
/// decoded).
fn stored_snapshot(log: &dyn EventLog, name: &str) -> Result<Option<Snapshot>, ProjectionError> {
    let Some(snapshot) = log.get_snapshot(name)? else {
        return Ok(None);
    };
    if snapshot.format != SNAPSHOT_FORMAT {
        tracing::warn!(
            found = snapshot.format,
            supported = SNAPSHOT_FORMAT,
            "ignoring a control-plane snapshot of another format; folding the whole log"
        );
        return Ok(None);
    }
    Ok(Some(snapshot))
}

/// A stored snapshot's state, if it decodes and agrees with the log.
fn decoded(log: &dyn EventLog, snapshot: Snapshot) -> Option<Nearest> {
    match serde_json::from_slice::<ControlPlane>(&snapshot.data) {
        Ok(mut state) if state.last_seq() == snapshot.seq && snapshot.seq <= log.head() => {
            state.reindex();
            Some(Nearest {
                state,
                data: snapshot.data,
            })
        }
        Ok(_) => {
            tracing::warn!("ignoring a control-plane snapshot that disagrees with the log");
            None
        }
        Err(error) => {
            tracing::warn!(%error, "ignoring an unreadable control-plane snapshot");
            None
        }
    }
}

pub mod history;

#[cfg(test)]
mod tests;
