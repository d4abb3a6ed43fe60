//! The RocksDB implementation of the event log and the position store.

use crate::layout::{Cf, Layout, MigrationTx};
use crate::letters::{self, DeadLetterStore, Kept, LetterLimits, StoredLetter};
use crate::{AppendRequest, EventLog, PositionStore, Snapshot, StoreError, StoredEvent};
use chrono::{DateTime, Utc};
use culvert_domain::{Seq, StreamId};
use parking_lot::Mutex;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode,
    Options, ReadOptions, WriteBatch, WriteOptions, DB,
};
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::sync::watch;

const LAYOUT_KEY: &[u8] = b"layout_version";

/// How the store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// fsync the write-ahead log on every event append (default true). Off, an append
    /// survives a crash of the process but not of the machine.
    pub fsync: bool,
    /// fsync on every position write (default true).
    pub positions_fsync: bool,
    /// Size of the shared block cache in bytes (default 8 MiB). It also holds the SST
    /// files' index and filter blocks, so their memory does not grow with the log.
    pub block_cache_bytes: usize,
    /// Open read-only (no writes, no migrations; the server may have it open).
    pub read_only: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            fsync: true,
            positions_fsync: true,
            block_cache_bytes: 8 << 20,
            read_only: false,
        }
    }
}

/// The event log and position store on one RocksDB database.
pub struct RocksStore {
    db: DB,
    /// The block cache every column family shares (read for [`RocksStore::memory`]).
    cache: Cache,
    path: PathBuf,
    options: StoreOptions,
    writer: Mutex<Writer>,
    head: watch::Sender<Seq>,
    /// The last letter number and the number of letters kept, per pipeline seen since open.
    letter_books: Mutex<HashMap<String, LetterBook>>,
}

/// Memtable size of the events column family.
const EVENTS_WRITE_BUFFER: usize = 4 << 20;
/// Memtable size of the snapshot names' column family (a few bytes per snapshot).
const NAMES_WRITE_BUFFER: usize = 256 << 10;
/// Memtable size of every other column family (positions are the busiest: saved on every
/// checkpoint, the same keys over and over).
const WRITE_BUFFER: usize = 1 << 20;

/// The memtable size of a column family.
const fn write_buffer(cf: Cf) -> usize {
    match cf {
        Cf::Events => EVENTS_WRITE_BUFFER,
        Cf::SnapshotNames => NAMES_WRITE_BUFFER,
        _ => WRITE_BUFFER,
    }
}

/// The most the memtables can hold together: two of each column family's (one filling,
/// one being flushed), 18.5 MiB.
pub const MEMTABLE_BOUND: usize = {
    let mut bound = 0;
    let mut i = 0;
    while i < Cf::ALL.len() {
        bound += 2 * write_buffer(Cf::ALL[i]);
        i += 1;
    }
    bound
};
// The figure the docs give (docs/architecture-notes.md, docs/metrics.md).
const _: () = assert!(MEMTABLE_BOUND == (18 << 20) + (512 << 10));

/// The memory a [`RocksStore`] holds, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreMemory {
    /// Every column family's memtables, flushed or not yet.
    pub memtables: u64,
    /// The open SST files' readers, outside the block cache.
    pub table_readers: u64,
    /// The shared block cache's use (data, index and filter blocks).
    pub block_cache: u64,
}

/// A pipeline's dead letters, in brief.
#[derive(Debug, Clone, Copy)]
struct LetterBook {
    last: u64,
    count: u64,
}

/// State owned by the single writer: the next sequence number, the last recorded time and
/// a cache of stream versions.
struct Writer {
    last_seq: Seq,
    last_time: DateTime<Utc>,
    versions: HashMap<StreamId, u64>,
}

/// The most stream versions [`Writer::versions`] keeps: a server that creates and deletes
/// entities for weeks writes to ever new streams, and a cache of them all would grow
/// without end. Past it the cache starts again (a stream not in it is read from the log).
const VERSION_CACHE_LIMIT: usize = 4096;

impl Writer {
    /// Cache the versions an append wrote, within [`VERSION_CACHE_LIMIT`].
    fn remember(&mut self, versions: HashMap<StreamId, u64>) {
        if self.versions.len() + versions.len() > VERSION_CACHE_LIMIT {
            self.versions.clear();
        }
        self.versions.extend(versions);
    }
}

/// The envelope as written, borrowing the payload to avoid a copy.
#[derive(Serialize)]
struct EnvelopeRef<'a> {
    seq: Seq,
    stream: &'a StreamId,
    stream_version: u64,
    #[serde(rename = "type")]
    event_type: &'a str,
    #[serde(rename = "schema")]
    schema_version: u32,
    recorded_at: DateTime<Utc>,
    actor: &'a str,
    correlation_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    causation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    payload: &'a RawValue,
}

impl RocksStore {
    /// Open (creating if missing) the store in `path`, bringing an older layout up to
    /// `layout.version` and refusing a newer one.
    pub fn open(
        path: impl AsRef<Path>,
        options: StoreOptions,
        layout: &Layout,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        check_is_ours(&path)?;
        let mut db_opts = Options::default();
        db_opts.create_if_missing(!options.read_only);
        db_opts.create_missing_column_families(!options.read_only);
        db_opts.set_max_open_files(256);
        db_opts.set_keep_log_file_num(3);
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        // Read-only, open only the column families there are: an older layout lacks newer
        // ones, and the layout check below then says to open it read-write once first.
        let present: Option<Vec<String>> = if options.read_only {
            DB::list_cf(&db_opts, &path).ok()
        } else {
            None
        };
        let wanted = Cf::ALL.into_iter().filter(|cf| {
            present
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n == cf.name()))
        });
        let descriptors = wanted.map(|cf| {
            let mut cf_opts = Options::default();
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            // Index and filter blocks are charged to the cache (bounded) rather than held
            // by every open table reader (which grows with the number of SST files); the
            // newest level's stay pinned, as they are read most.
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            cf_opts.set_block_based_table_factory(&table);
            // Small memtables: the control plane writes little, and RSS matters. At most two
            // each (one filling, one being flushed): see MEMTABLE_BOUND.
            cf_opts.set_write_buffer_size(write_buffer(cf));
            cf_opts.set_max_write_buffer_number(2);
            ColumnFamilyDescriptor::new(cf.name(), cf_opts)
        });
        let db = if options.read_only {
            if !path.join("CURRENT").exists() {
                return Err(StoreError::NotOurs {
                    path,
                    reason: "no database here".into(),
                });
            }
            DB::open_cf_descriptors_read_only(&db_opts, &path, descriptors, false)
        } else {
            DB::open_cf_descriptors(&db_opts, &path, descriptors)
        }
        .map_err(|e| {
            if e.to_string().contains("Column famil") {
                StoreError::NotOurs {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            } else {
                StoreError::Rocks(e)
            }
        })?;
        apply_layout(&db, &path, layout, options.read_only)?;
        let (last_seq, last_time) = last_event(&db)?;
        Ok(Self {
            db,
            cache,
            path,
            options,
            writer: Mutex::new(Writer {
                last_seq,
                last_time,
                versions: HashMap::new(),
            }),
            head: watch::Sender::new(last_seq),
            letter_books: Mutex::new(HashMap::new()),
        })
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What RocksDB holds in memory now (RocksDB's own estimates).
    pub fn memory(&self) -> Result<StoreMemory, StoreError> {
        let stats = rocksdb::perf::get_memory_usage_stats(Some(&[&self.db]), Some(&[&self.cache]))?;
        Ok(StoreMemory {
            memtables: stats.mem_table_total,
            table_readers: stats.mem_table_readers_total,
            block_cache: stats.cache_total,
        })
    }

    /// Append events copied from another log as they are (sequence numbers, stream
    /// versions, recorded times and provenance kept), in one atomic batch: how `culvert
    /// replay` builds a new data directory from a prefix of a log. The events must continue
    /// this log exactly: the next sequence numbers, each stream's next version, times not
    /// going back.
    pub fn import(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let mut writer = self.writer.lock();
        let mut versions: HashMap<StreamId, u64> = HashMap::new();
        let mut seq = writer.last_seq;
        let mut time = writer.last_time;
        let mut batch = WriteBatch::default();
        for event in events {
            let refuse = |reason: String| StoreError::Corrupt {
                location: format!("import/seq {}", event.seq.0),
                reason,
            };
            if event.seq != seq.next() {
                return Err(refuse(format!("expected sequence {}", seq.next().0)));
            }
            seq = event.seq;
            let version = match versions.get(&event.stream) {
                Some(v) => *v,
                None => match writer.versions.get(&event.stream) {
                    Some(v) => *v,
                    None => self.stored_version(&event.stream)?,
                },
            };
            if event.stream_version != version + 1 {
                return Err(refuse(format!(
                    "{} is at version {version}, the event says {}",
                    event.stream, event.stream_version
                )));
            }
            versions.insert(event.stream.clone(), event.stream_version);
            if event.recorded_at < time {
                return Err(refuse("recorded before the event it follows".into()));
            }
            time = event.recorded_at;
            let envelope = EnvelopeRef {
                seq: event.seq,
                stream: &event.stream,
                stream_version: event.stream_version,
                event_type: &event.event_type,
                schema_version: event.schema_version,
                recorded_at: event.recorded_at,
                actor: &event.actor,
                correlation_id: &event.correlation_id,
                causation_id: event.causation_id.as_deref(),
                reason: event.reason.as_deref(),
                payload: &event.payload,
            };
            let bytes = serde_json::to_vec(&envelope).map_err(|source| StoreError::Encode {
                what: "event envelope",
                source,
            })?;
            batch.put_cf(self.cf(Cf::Events), event.seq.0.to_be_bytes(), bytes);
            let mut stream_key = stream_prefix(&event.stream);
            stream_key.extend_from_slice(&event.stream_version.to_be_bytes());
            batch.put_cf(self.cf(Cf::Streams), stream_key, event.seq.0.to_be_bytes());
        }
        // invariant: every state write is atomic — the whole batch is one WriteBatch.
        self.db
            .write_opt(batch, &self.write_options(self.options.fsync))?;
        writer.last_seq = last.seq;
        writer.last_time = time;
        writer.remember(versions);
        self.head.send_replace(last.seq);
        Ok(())
    }

    fn cf(&self, cf: Cf) -> &ColumnFamily {
        // The handles of every Cf were opened in `open`.
        cf_handle(&self.db, cf).expect("column family opened at start")
    }

    fn write_options(&self, sync: bool) -> WriteOptions {
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        wo
    }

    fn stored_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let prefix = stream_prefix(stream);
        let mut upper = prefix.clone();
        upper.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut iter = self.db.raw_iterator_cf(self.cf(Cf::Streams));
        iter.seek_for_prev(&upper);
        if iter.valid() {
            if let Some(key) = iter.key() {
                if key.len() == prefix.len() + 8 && key.starts_with(&prefix) {
                    return Ok(u64::from_be_bytes(
                        key[prefix.len()..].try_into().unwrap_or([0; 8]),
                    ));
                }
            }
        }
        iter.status()?;
        Ok(0)
    }

    fn read_seqs(&self, seqs: &[u64]) -> Result<Vec<StoredEvent>, StoreError> {
        let cf = self.cf(Cf::Events);
        let keys: Vec<_> = seqs.iter().map(|s| (cf, s.to_be_bytes())).collect();
        let mut out = Vec::with_capacity(seqs.len());
        for (seq, value) in seqs.iter().zip(self.db.multi_get_cf(keys)) {
            let value = value?.ok_or_else(|| StoreError::Corrupt {
                location: format!("events/seq {seq}"),
                reason: "indexed by its stream but missing from the log".into(),
            })?;
            out.push(decode_event(*seq, &value)?);
        }
        Ok(out)
    }

    fn position_key(connector: &str, slot: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(connector.len() + slot.len() + 1);
        key.extend_from_slice(connector.as_bytes());
        key.push(0);
        key.extend_from_slice(slot.as_bytes());
        key
    }
}

impl EventLog for RocksStore {
    fn append(&self, request: AppendRequest) -> Result<Vec<StoredEvent>, StoreError> {
        if request.events.is_empty() {
            return Ok(vec![]);
        }
        let mut writer = self.writer.lock();
        // Current versions of every stream the request checks or writes.
        let mut versions: HashMap<StreamId, u64> = HashMap::new();
        let streams = request
            .expected
            .iter()
            .map(|(s, _)| s)
            .chain(request.events.iter().map(|e| &e.stream));
        for stream in streams {
            if versions.contains_key(stream) {
                continue;
            }
            let version = match writer.versions.get(stream) {
                Some(v) => *v,
                None => self.stored_version(stream)?,
            };
            versions.insert(stream.clone(), version);
        }
        for (stream, expected) in &request.expected {
            let actual = versions[stream];
            if !expected.matches(actual) {
                return Err(StoreError::Conflict {
                    stream: stream.clone(),
                    expected: *expected,
                    actual,
                });
            }
        }
        let now = writer.last_time.max(Utc::now());
        let mut batch = WriteBatch::default();
        let mut seq = writer.last_seq;
        let mut stored = Vec::with_capacity(request.events.len());
        for new in request.events {
            seq = seq.next();
            let version = versions
                .get_mut(&new.stream)
                .map(|v| {
                    *v += 1;
                    *v
                })
                .unwrap_or(1);
            let envelope = EnvelopeRef {
                seq,
                stream: &new.stream,
                stream_version: version,
                event_type: &new.event_type,
                schema_version: new.schema_version,
                recorded_at: now,
                actor: &new.actor,
                correlation_id: &new.correlation_id,
                causation_id: new.causation_id.as_deref(),
                reason: new.reason.as_deref(),
                payload: &new.payload,
            };
            let bytes = serde_json::to_vec(&envelope).map_err(|source| StoreError::Encode {
                what: "event envelope",
                source,
            })?;
            batch.put_cf(self.cf(Cf::Events), seq.0.to_be_bytes(), bytes);
            let mut stream_key = stream_prefix(&new.stream);
            stream_key.extend_from_slice(&version.to_be_bytes());
            batch.put_cf(self.cf(Cf::Streams), stream_key, seq.0.to_be_bytes());
            stored.push(StoredEvent::from_new(new, seq, version, now));
        }
        for connector in &request.clear_positions {
            let mut from = connector.as_bytes().to_vec();
            from.push(0);
            let mut to = connector.as_bytes().to_vec();
            to.push(1);
            batch.delete_range_cf(self.cf(Cf::Positions), from, to);
        }
        for write in &request.set_positions {
            let key = Self::position_key(&write.connector, &write.slot);
            match &write.value {
                Some(value) => batch.put_cf(self.cf(Cf::Positions), key, value),
                None => batch.delete_cf(self.cf(Cf::Positions), key),
            }
        }
        for pipeline in &request.clear_letters {
            let mut from = pipeline.as_bytes().to_vec();
            from.push(0);
            let mut to = pipeline.as_bytes().to_vec();
            to.push(1);
            batch.delete_range_cf(self.cf(Cf::DeadLetters), from, to);
        }
        for letter in &request.queue_letters {
            let key = letters::key(&letter.pipeline, letters::QUEUED, letter.seq);
            batch.put_cf(self.cf(Cf::DeadLetters), key, []);
        }
        fail::fail_point!("store::append::before_write", |_| Err(
            StoreError::Injected("store::append::before_write".into())
        ));
        // invariant: every state write is atomic — the whole batch is one WriteBatch (events,
        // stream index, cleared and set positions).
        self.db
            .write_opt(batch, &self.write_options(self.options.fsync))?;
        // Reliability tests crash the process here: the batch is in the WAL but (with fsync
        // off) not synced, and no caller has been told. There is no error to return: the
        // write happened, so only a crash is a faithful failure at this point.
        fail::fail_point!("store::append::after_write", |_| {
            eprintln!("fail point store::append::after_write: crashing the process");
            std::process::abort()
        });
        writer.last_seq = seq;
        writer.last_time = now;
        writer.remember(versions);
        self.head.send_replace(seq);
        if !request.clear_letters.is_empty() {
            let mut books = self.letter_books.lock();
            for pipeline in &request.clear_letters {
                books.remove(pipeline);
            }
        }
        Ok(stored)
    }

    fn read_from(&self, from: Seq, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let start = from.0.max(1).to_be_bytes();
        let mut out = Vec::with_capacity(limit.min(4096));
        let iter = self.db.iterator_cf_opt(
            self.cf(Cf::Events),
            ReadOptions::default(),
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in iter.take(limit) {
            let (key, value) = item?;
            let seq = decode_seq(&key, "events")?;
            out.push(decode_event(seq.0, &value)?);
        }
        Ok(out)
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let prefix = stream_prefix(stream);
        let mut start = prefix.clone();
        start.extend_from_slice(&from_version.max(1).to_be_bytes());
        let mut seqs = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(Cf::Streams),
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in iter {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || key.len() != prefix.len() + 8 || seqs.len() >= limit {
                break;
            }
            seqs.push(decode_seq(&value, "streams")?.0);
        }
        self.read_seqs(&seqs)
    }

    fn head(&self) -> Seq {
        *self.head.borrow()
    }

    fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        if let Some(v) = self.writer.lock().versions.get(stream) {
            return Ok(*v);
        }
        self.stored_version(stream)
    }

    fn watch_head(&self) -> watch::Receiver<Seq> {
        self.head.subscribe()
    }

    fn put_snapshot(&self, name: &str, snapshot: &Snapshot) -> Result<(), StoreError> {
        let mut value = Vec::with_capacity(12 + snapshot.data.len());
        value.extend_from_slice(&snapshot.seq.0.to_be_bytes());
        value.extend_from_slice(&snapshot.format.to_be_bytes());
        value.extend_from_slice(&snapshot.data);
        // The snapshot and its name in one atomic write.
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(Cf::Snapshots), name.as_bytes(), value);
        batch.put_cf(self.cf(Cf::SnapshotNames), name.as_bytes(), []);
        self.db
            .write_opt(batch, &self.write_options(self.options.fsync))?;
        Ok(())
    }

    fn get_snapshot(&self, name: &str) -> Result<Option<Snapshot>, StoreError> {
        let Some(value) = self.db.get_cf(self.cf(Cf::Snapshots), name.as_bytes())? else {
            return Ok(None);
        };
        if value.len() < 12 {
            return Err(StoreError::Corrupt {
                location: format!("snapshots/{name}"),
                reason: format!("{} bytes, shorter than its header", value.len()),
            });
        }
        Ok(Some(Snapshot {
            seq: Seq(u64::from_be_bytes(value[..8].try_into().expect("8 bytes"))),
            format: u32::from_be_bytes(value[8..12].try_into().expect("4 bytes")),
            data: value[12..].to_vec(),
        }))
    }

    fn snapshot_names(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        // From the names' own column family: iterating `snapshots` itself would read every
        // snapshot's bytes (a snapshot fills its data blocks), tens of megabytes for the
        // snapshots kept along a long log.
        let mut names = Vec::new();
        let mut iter = self.db.raw_iterator_cf(self.cf(Cf::SnapshotNames));
        iter.seek(prefix.as_bytes());
        while let Some(key) = iter.key() {
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            names.push(String::from_utf8_lossy(key).into_owned());
            iter.next();
        }
        iter.status()?;
        Ok(names)
    }

    fn delete_snapshot(&self, name: &str) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(Cf::Snapshots), name.as_bytes());
        batch.delete_cf(self.cf(Cf::SnapshotNames), name.as_bytes());
        self.db
            .write_opt(batch, &self.write_options(self.options.fsync))?;
        Ok(())
    }
}

impl PositionStore for RocksStore {
    fn get(&self, connector: &str, slot: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .db
            .get_cf(self.cf(Cf::Positions), Self::position_key(connector, slot))?)
    }

    fn put(&self, connector: &str, slot: &str, value: &[u8]) -> Result<(), StoreError> {
        self.db.put_cf_opt(
            self.cf(Cf::Positions),
            Self::position_key(connector, slot),
            value,
            &self.write_options(self.options.positions_fsync),
        )?;
        Ok(())
    }

    fn delete_connector(&self, connector: &str) -> Result<(), StoreError> {
        let mut prefix = connector.as_bytes().to_vec();
        prefix.push(0);
        let mut batch = WriteBatch::default();
        let iter = self.db.iterator_cf(
            self.cf(Cf::Positions),
            IteratorMode::From(&prefix, Direction::Forward),
        );
        for item in iter {
            let (key, _) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            batch.delete_cf(self.cf(Cf::Positions), key);
        }
        self.db
            .write_opt(batch, &self.write_options(self.options.positions_fsync))?;
        Ok(())
    }
}

impl RocksStore {
    /// A pipeline's letter book as stored: the last number (kept under `pipeline, 0, N`,
    /// so numbers are not reused when every letter went) and the count.
    fn read_letter_book(&self, pipeline: &str) -> Result<LetterBook, StoreError> {
        let last = match self
            .db
            .get_cf(self.cf(Cf::DeadLetters), letters::prefix(pipeline, b'N'))?
        {
            Some(bytes) => letters::seq_of(&bytes, 0)?,
            None => 0,
        };
        let prefix = letters::prefix(pipeline, letters::LETTER);
        let mut count = 0;
        let iter = self.db.iterator_cf(
            self.cf(Cf::DeadLetters),
            IteratorMode::From(&prefix, Direction::Forward),
        );
        for item in iter {
            let (key, _) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            count += 1;
        }
        Ok(LetterBook { last, count })
    }

    /// Letters under `pipeline`'s `kind` prefix above `after`, with their values looked up
    /// in the letters (`kind` = queued) or read directly.
    fn scan_letters(
        &self,
        pipeline: &str,
        kind: u8,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredLetter>, StoreError> {
        let prefix = letters::prefix(pipeline, kind);
        let start = letters::key(pipeline, kind, after.saturating_add(1));
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(Cf::DeadLetters),
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let seq = letters::seq_of(&key, prefix.len())?;
            if kind == letters::QUEUED {
                // A queue entry whose letter went (dropped by the limits) is skipped.
                if let Some(letter) = self.letter(pipeline, seq)? {
                    out.push(letter);
                }
            } else {
                let (at, payload) = letters::split_value(&value)?;
                let queued = self
                    .db
                    .get_cf(
                        self.cf(Cf::DeadLetters),
                        letters::key(pipeline, letters::QUEUED, seq),
                    )?
                    .is_some();
                out.push(StoredLetter {
                    seq,
                    at,
                    queued,
                    payload,
                });
            }
        }
        Ok(out)
    }
}

impl DeadLetterStore for RocksStore {
    fn keep_letters(
        &self,
        pipeline: &str,
        at: DateTime<Utc>,
        payloads: &[Vec<u8>],
        limits: &LetterLimits,
    ) -> Result<Kept, StoreError> {
        let mut books = self.letter_books.lock();
        let book = match books.get(pipeline) {
            Some(book) => *book,
            None => self.read_letter_book(pipeline)?,
        };
        let new = payloads.len() as u64;
        if new == 0 {
            return Ok(Kept {
                seq: book.last,
                dropped: 0,
            });
        }
        let cf = self.cf(Cf::DeadLetters);
        let first = book.last + 1;
        let last = book.last + new;
        // More at once than the count allows: the first of them go at once (as if kept one
        // by one), and so does every older letter.
        let skipped = new.saturating_sub(limits.max_letters);
        let mut batch = WriteBatch::default();
        for (seq, payload) in (first..=last).zip(payloads).skip(skipped as usize) {
            batch.put_cf(
                cf,
                letters::key(pipeline, letters::LETTER, seq),
                letters::value(at, payload),
            );
        }
        batch.put_cf(cf, letters::prefix(pipeline, b'N'), last.to_be_bytes());
        // Drop the oldest letters beyond the count, and those past the age (the iterator
        // sees the store as it was: only older letters).
        let oldest = letters::oldest_allowed(at, limits);
        let prefix = letters::prefix(pipeline, letters::LETTER);
        let mut count = book.count + (new - skipped);
        let mut dropped = skipped;
        let iter = self
            .db
            .iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward));
        for item in iter {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let (kept_at, _) = letters::split_value(&value)?;
            if count <= limits.max_letters && kept_at >= oldest {
                break;
            }
            let old = letters::seq_of(&key, prefix.len())?;
            batch.delete_cf(cf, &key);
            batch.delete_cf(cf, letters::key(pipeline, letters::QUEUED, old));
            count -= 1;
            dropped += 1;
        }
        self.db
            .write_opt(batch, &self.write_options(self.options.positions_fsync))?;
        books.insert(pipeline.to_owned(), LetterBook { last, count });
        Ok(Kept { seq: last, dropped })
    }

    fn letters(
        &self,
        pipeline: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredLetter>, StoreError> {
        self.scan_letters(pipeline, letters::LETTER, after, limit)
    }

    fn letter(&self, pipeline: &str, seq: u64) -> Result<Option<StoredLetter>, StoreError> {
        let cf = self.cf(Cf::DeadLetters);
        let Some(value) = self
            .db
            .get_cf(cf, letters::key(pipeline, letters::LETTER, seq))?
        else {
            return Ok(None);
        };
        let (at, payload) = letters::split_value(&value)?;
        let queued = self
            .db
            .get_cf(cf, letters::key(pipeline, letters::QUEUED, seq))?
            .is_some();
        Ok(Some(StoredLetter {
            seq,
            at,
            queued,
            payload,
        }))
    }

    fn queued_letters(
        &self,
        pipeline: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredLetter>, StoreError> {
        self.scan_letters(pipeline, letters::QUEUED, after, limit)
    }

    fn letters_delivered(&self, pipeline: &str, through: u64) -> Result<u64, StoreError> {
        let mut books = self.letter_books.lock();
        let cf = self.cf(Cf::DeadLetters);
        let prefix = letters::prefix(pipeline, letters::QUEUED);
        let mut batch = WriteBatch::default();
        let mut gone = 0;
        let iter = self
            .db
            .iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward));
        for item in iter {
            let (key, _) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let seq = letters::seq_of(&key, prefix.len())?;
            if seq > through {
                break;
            }
            let letter = letters::key(pipeline, letters::LETTER, seq);
            if self.db.get_cf(cf, &letter)?.is_some() {
                gone += 1;
            }
            batch.delete_cf(cf, &key);
            batch.delete_cf(cf, letter);
        }
        self.db
            .write_opt(batch, &self.write_options(self.options.positions_fsync))?;
        if let Some(book) = books.get_mut(pipeline) {
            book.count = book.count.saturating_sub(gone);
        }
        Ok(gone)
    }
}

pub(crate) fn cf_handle(db: &DB, cf: Cf) -> Result<&ColumnFamily, StoreError> {
    db.cf_handle(cf.name()).ok_or_else(|| StoreError::Corrupt {
        location: cf.name().to_owned(),
        reason: "column family missing".into(),
    })
}

fn stream_prefix(stream: &StreamId) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.0.len() + 9);
    key.extend_from_slice(stream.0.as_bytes());
    key.push(0);
    key
}

fn decode_seq(bytes: &[u8], cf: &str) -> Result<Seq, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        location: cf.to_owned(),
        reason: format!("sequence number of {} bytes, expected 8", bytes.len()),
    })?;
    Ok(Seq(u64::from_be_bytes(arr)))
}

fn decode_event(seq: u64, bytes: &[u8]) -> Result<StoredEvent, StoreError> {
    let event: StoredEvent = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        location: format!("events/seq {seq}"),
        reason: e.to_string(),
    })?;
    if event.seq.0 != seq {
        return Err(StoreError::Corrupt {
            location: format!("events/seq {seq}"),
            reason: format!("envelope says seq {}", event.seq),
        });
    }
    Ok(event)
}

/// A directory that exists, is not empty and holds no RocksDB database is someone else's.
fn check_is_ours(path: &Path) -> Result<(), StoreError> {
    if path.exists() && !path.is_dir() {
        return Err(StoreError::NotOurs {
            path: path.to_path_buf(),
            reason: "it is not a directory".into(),
        });
    }
    if path.is_dir() && !path.join("CURRENT").exists() {
        let not_empty = std::fs::read_dir(path)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if not_empty {
            return Err(StoreError::NotOurs {
                path: path.to_path_buf(),
                reason: "the directory has files but no database".into(),
            });
        }
    }
    Ok(())
}

fn read_layout(db: &DB) -> Result<Option<u32>, StoreError> {
    let Some(bytes) = db.get_cf(cf_handle(db, Cf::Meta)?, LAYOUT_KEY)? else {
        return Ok(None);
    };
    let arr: [u8; 4] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::Corrupt {
            location: "meta/layout_version".into(),
            reason: format!("{} bytes, expected 4", bytes.len()),
        })?;
    Ok(Some(u32::from_be_bytes(arr)))
}

fn apply_layout(db: &DB, path: &Path, layout: &Layout, read_only: bool) -> Result<(), StoreError> {
    let found = match read_layout(db)? {
        Some(v) => v,
        None => {
            let empty = db
                .iterator_cf(cf_handle(db, Cf::Events)?, IteratorMode::Start)
                .next()
                .is_none();
            if !empty {
                return Err(StoreError::NotOurs {
                    path: path.to_path_buf(),
                    reason: "events without a layout version".into(),
                });
            }
            if read_only {
                return Ok(());
            }
            let mut batch = WriteBatch::default();
            batch.put_cf(
                cf_handle(db, Cf::Meta)?,
                LAYOUT_KEY,
                layout.version.to_be_bytes(),
            );
            let mut wo = WriteOptions::default();
            wo.set_sync(true);
            db.write_opt(batch, &wo)?;
            return Ok(());
        }
    };
    if found > layout.version {
        return Err(StoreError::NewerLayout {
            path: path.to_path_buf(),
            found,
            supported: layout.version,
        });
    }
    if found < layout.version && read_only {
        return Err(StoreError::Migration {
            from: found,
            reason: format!(
                "layout {found} needs migrating to {}; open it read-write once first",
                layout.version
            ),
        });
    }
    let mut current = found;
    while current < layout.version {
        let step = layout
            .migrations
            .iter()
            .find(|m| m.source_version() == current)
            .ok_or_else(|| StoreError::Migration {
                from: current,
                reason: "no migration step registered from this version".into(),
            })?;
        let mut tx = MigrationTx::new(db);
        step.migrate(&mut tx)
            .map_err(|reason| StoreError::Migration {
                from: current,
                reason: format!("{}: {reason}", step.name()),
            })?;
        let mut batch = tx.into_batch();
        batch.put_cf(
            cf_handle(db, Cf::Meta)?,
            LAYOUT_KEY,
            (current + 1).to_be_bytes(),
        );
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        // invariant: a migration step and its new version number are one atomic write.
        db.write_opt(batch, &wo)?;
        current += 1;
    }
    Ok(())
}

fn last_event(db: &DB) -> Result<(Seq, DateTime<Utc>), StoreError> {
    let mut iter = db.iterator_cf(cf_handle(db, Cf::Events)?, IteratorMode::End);
    match iter.next() {
        None => Ok((Seq::ZERO, DateTime::<Utc>::MIN_UTC)),
        Some(item) => {
            let (key, value) = item?;
            let seq = decode_seq(&key, "events")?;
            let event = decode_event(seq.0, &value)?;
            Ok((seq, event.recorded_at))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{event, request, run_all, Subject};
    use crate::{ExpectedVersion, LayoutMigration};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn layout() -> Layout {
        Layout {
            version: 1,
            migrations: vec![],
        }
    }

    fn fast() -> StoreOptions {
        StoreOptions {
            fsync: false,
            positions_fsync: false,
            ..StoreOptions::default()
        }
    }

    #[test]
    fn rocks_store_conforms() {
        run_all(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = RocksStore::open(dir.path().join("db"), fast(), &layout()).unwrap();
            Subject {
                store: Arc::new(store),
                _guard: Some(dir),
            }
        });
    }

    #[test]
    fn reopen_keeps_log_versions_and_positions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let before = {
            let store = RocksStore::open(&path, StoreOptions::default(), &layout()).unwrap();
            store
                .append(request(vec![event("a", 1), event("a", 2)], vec![]))
                .unwrap();
            store.put("c", "position", b"p1").unwrap();
            store.read_from(Seq(1), 10).unwrap()
        };
        let store = RocksStore::open(&path, StoreOptions::default(), &layout()).unwrap();
        assert_eq!(store.head(), Seq(2));
        assert_eq!(store.read_from(Seq(1), 10).unwrap(), before);
        assert_eq!(store.stream_version(&StreamId("a".into())).unwrap(), 2);
        assert_eq!(store.get("c", "position").unwrap(), Some(b"p1".to_vec()));
        let next = store
            .append(request(
                vec![event("a", 3)],
                vec![("a", ExpectedVersion::Exact(2))],
            ))
            .unwrap();
        assert_eq!((next[0].seq, next[0].stream_version), (Seq(3), 3));
        assert!(next[0].recorded_at >= before[1].recorded_at);
    }

    #[test]
    fn memtables_stay_small_however_much_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path().join("db"), fast(), &layout()).unwrap();
        store.append(request(vec![event("a", 1)], vec![])).unwrap();
        assert!(store.memory().unwrap().memtables > 0);
        // 16 MiB of positions (the busiest column family): its memtables are switched and
        // flushed at their size, two at most, whatever is written.
        let value = vec![7u8; 4096];
        let mut most = 0;
        for i in 0..4096 {
            store
                .put(&format!("c{}", i % 500), "position", &value)
                .unwrap();
            if i % 64 == 0 {
                most = most.max(store.memory().unwrap().memtables);
            }
        }
        let bound = (2 * WRITE_BUFFER + EVENTS_WRITE_BUFFER / 4) as u64;
        assert!(
            most <= bound,
            "memtables held {most} bytes, more than {bound}"
        );
    }

    #[test]
    fn the_version_cache_is_bounded_and_versions_stay_right() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path().join("db"), fast(), &layout()).unwrap();
        store
            .append(request(vec![event("first", 1)], vec![]))
            .unwrap();
        for n in 0..VERSION_CACHE_LIMIT + 10 {
            store
                .append(request(vec![event(&format!("s{n}"), 1)], vec![]))
                .unwrap();
        }
        assert!(store.writer.lock().versions.len() <= VERSION_CACHE_LIMIT);
        // A stream the cache forgot is read from the log: its next version follows on, and
        // a stale expectation is still refused.
        let next = store
            .append(request(
                vec![event("first", 2)],
                vec![("first", ExpectedVersion::Exact(1))],
            ))
            .unwrap();
        assert_eq!(next[0].stream_version, 2);
        assert!(store
            .append(request(
                vec![event("first", 3)],
                vec![("first", ExpectedVersion::Exact(1))],
            ))
            .is_err());
    }

    #[test]
    fn read_only_open_sees_the_log_and_refuses_a_missing_dir() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let writer = RocksStore::open(&path, fast(), &layout()).unwrap();
        writer.append(request(vec![event("a", 1)], vec![])).unwrap();
        let ro = StoreOptions {
            read_only: true,
            ..fast()
        };
        let reader = RocksStore::open(&path, ro.clone(), &layout()).unwrap();
        assert_eq!(reader.read_from(Seq(1), 10).unwrap().len(), 1);
        let missing = RocksStore::open(dir.path().join("nope"), ro, &layout());
        assert!(matches!(missing, Err(StoreError::NotOurs { .. })));
    }

    #[test]
    fn newer_layout_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        drop(
            RocksStore::open(
                &path,
                fast(),
                &Layout {
                    version: 7,
                    migrations: vec![],
                },
            )
            .unwrap(),
        );
        let err = match RocksStore::open(&path, fast(), &layout()) {
            Err(e) => e,
            Ok(_) => panic!("a newer layout must be refused"),
        };
        assert!(matches!(
            err,
            StoreError::NewerLayout {
                found: 7,
                supported: 1,
                ..
            }
        ));
        assert!(err.to_string().contains("layout version 7"), "{err}");
    }

    #[test]
    fn foreign_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
        assert!(matches!(
            RocksStore::open(dir.path(), fast(), &layout()),
            Err(StoreError::NotOurs { .. })
        ));
        let file = dir.path().join("notes.txt");
        assert!(matches!(
            RocksStore::open(&file, fast(), &layout()),
            Err(StoreError::NotOurs { .. })
        ));
    }

    /// A directory written before the `dead_letters` column family existed: read-only it
    /// opens far enough to say it needs one read-write open; read-write the family is
    /// created and letters can be kept.
    #[test]
    fn a_directory_without_the_dead_letters_family_is_brought_up_to_date() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let mut old = RocksStore::open(&path, fast(), &layout()).unwrap();
            old.append(request(vec![event("a", 1)], vec![])).unwrap();
            old.db.drop_cf(Cf::DeadLetters.name()).unwrap();
        }
        struct Nothing;
        impl LayoutMigration for Nothing {
            fn source_version(&self) -> u32 {
                1
            }
            fn name(&self) -> &str {
                "nothing"
            }
            fn migrate(&self, _tx: &mut MigrationTx<'_>) -> Result<(), String> {
                Ok(())
            }
        }
        let v2 = || Layout {
            version: 2,
            migrations: vec![Box::new(Nothing)],
        };
        let ro = StoreOptions {
            read_only: true,
            ..fast()
        };
        match RocksStore::open(&path, ro, &v2()) {
            Err(StoreError::Migration { from: 1, reason }) => {
                assert!(reason.contains("read-write"), "{reason}")
            }
            Err(other) => panic!("wrong error: {other}"),
            Ok(_) => panic!("a read-only open cannot migrate"),
        }
        let store = RocksStore::open(&path, fast(), &v2()).unwrap();
        assert_eq!(store.read_from(Seq(1), 10).unwrap().len(), 1);
        let kept = store
            .keep_letter("p", Utc::now(), b"letter", &LetterLimits::default())
            .unwrap();
        assert_eq!(kept.seq, 1);
    }

    /// Layout 1 -> 2 in this test: copy every position into a second slot named `copy`.
    struct CopyPositions;

    impl LayoutMigration for CopyPositions {
        fn source_version(&self) -> u32 {
            1
        }
        fn name(&self) -> &str {
            "copy positions"
        }
        fn migrate(&self, tx: &mut MigrationTx<'_>) -> Result<(), String> {
            let mut found = vec![];
            tx.scan(Cf::Positions, &mut |k, v| {
                found.push((k.to_vec(), v.to_vec()));
                Ok(())
            })
            .map_err(|e| e.to_string())?;
            for (k, v) in found {
                let connector = k.split(|b| *b == 0).next().unwrap_or_default().to_vec();
                let mut key = connector;
                key.push(0);
                key.extend_from_slice(b"copy");
                tx.put(Cf::Positions, &key, &v).map_err(|e| e.to_string())?;
            }
            Ok(())
        }
    }

    #[test]
    fn older_layouts_are_migrated_on_open_and_missing_steps_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let v1 = RocksStore::open(&path, fast(), &layout()).unwrap();
            v1.put("c", "position", b"42").unwrap();
        }
        let no_step = Layout {
            version: 2,
            migrations: vec![],
        };
        assert!(matches!(
            RocksStore::open(&path, fast(), &no_step),
            Err(StoreError::Migration { from: 1, .. })
        ));
        let v2 = Layout {
            version: 2,
            migrations: vec![Box::new(CopyPositions)],
        };
        let store = RocksStore::open(&path, fast(), &v2).unwrap();
        assert_eq!(store.get("c", "copy").unwrap(), Some(b"42".to_vec()));
        drop(store);
        // Now at layout 2: the v1 build refuses it.
        assert!(matches!(
            RocksStore::open(&path, fast(), &layout()),
            Err(StoreError::NewerLayout { found: 2, .. })
        ));
    }

    #[test]
    fn concurrent_writers_with_the_same_expected_version_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RocksStore::open(dir.path().join("db"), fast(), &layout()).unwrap());
        store.append(request(vec![event("p", 0)], vec![])).unwrap();
        for round in 0..20u64 {
            let version = store.stream_version(&StreamId("p".into())).unwrap();
            let barrier = Arc::new(std::sync::Barrier::new(4));
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let store = store.clone();
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        store.append(request(
                            vec![event("p", round * 10 + i)],
                            vec![("p", ExpectedVersion::Exact(version))],
                        ))
                    })
                })
                .collect();
            let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            let wins = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(wins, 1, "round {round}");
            assert!(results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .all(|e| matches!(e, StoreError::Conflict { .. })));
        }
        assert_eq!(store.head(), Seq(21));
    }

    #[derive(Debug, Clone)]
    enum Action {
        Append {
            streams: Vec<u8>,
            expect: Option<(u8, u64)>,
        },
        ReadFrom(u64, usize),
        ReadStream(u8, u64),
        Reopen,
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            4 => (prop::collection::vec(0u8..4, 1..5), prop::option::of((0u8..4, 0u64..4)))
                .prop_map(|(streams, expect)| Action::Append { streams, expect }),
            2 => (0u64..30, 1usize..10).prop_map(|(f, l)| Action::ReadFrom(f, l)),
            2 => (0u8..4, 0u64..5).prop_map(|(s, v)| Action::ReadStream(s, v)),
            1 => Just(Action::Reopen),
        ]
    }

    fn strip_time(events: Vec<StoredEvent>) -> Vec<(u64, String, u64, String)> {
        events
            .into_iter()
            .map(|e| {
                (
                    e.seq.0,
                    e.stream.0,
                    e.stream_version,
                    e.payload.get().to_owned(),
                )
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Model-based test: the RocksDB store against the in-memory model, over random
        /// appends (some with stale expectations), reads and reopens.
        #[test]
        fn rocks_store_matches_the_memory_model(actions in prop::collection::vec(action(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db");
            let model = crate::MemoryStore::new();
            let mut real = Some(RocksStore::open(&path, fast(), &layout()).unwrap());
            let mut n = 0u64;
            for action in actions {
                let store = real.as_ref().unwrap();
                match action {
                    Action::Append { streams, expect } => {
                        let make = |n: &mut u64| streams.iter().map(|s| {
                            *n += 1;
                            event(&format!("s{s}"), *n)
                        }).collect::<Vec<_>>();
                        let saved = n;
                        let model_events = make(&mut n);
                        n = saved;
                        let real_events = make(&mut n);
                        let expected: Vec<_> = expect
                            .map(|(s, v)| {
                                let version = if v == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(v) };
                                (StreamId(format!("s{s}")), version)
                            })
                            .into_iter()
                            .collect();
                        let m = model.append(AppendRequest { events: model_events, expected: expected.clone(), clear_positions: Vec::new(), set_positions: Vec::new(), ..AppendRequest::default() });
                        let r = store.append(AppendRequest { events: real_events, expected, clear_positions: Vec::new(), set_positions: Vec::new(), ..AppendRequest::default() });
                        prop_assert_eq!(m.is_ok(), r.is_ok());
                        if let (Ok(m), Ok(r)) = (m, r) {
                            prop_assert_eq!(strip_time(m), strip_time(r));
                        }
                    }
                    Action::ReadFrom(from, limit) => {
                        prop_assert_eq!(
                            strip_time(model.read_from(Seq(from), limit).unwrap()),
                            strip_time(store.read_from(Seq(from), limit).unwrap())
                        );
                    }
                    Action::ReadStream(s, v) => {
                        let stream = StreamId(format!("s{s}"));
                        prop_assert_eq!(
                            strip_time(model.read_stream(&stream, v, 100).unwrap()),
                            strip_time(store.read_stream(&stream, v, 100).unwrap())
                        );
                        prop_assert_eq!(model.stream_version(&stream).unwrap(), store.stream_version(&stream).unwrap());
                    }
                    Action::Reopen => {
                        drop(real.take());
                        real = Some(RocksStore::open(&path, fast(), &layout()).unwrap());
                    }
                }
                prop_assert_eq!(model.head(), real.as_ref().unwrap().head());
            }
        }
    }
}
