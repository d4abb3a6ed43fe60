//! Power-loss test of the event log: what survives when the machine loses power with writes
//! that never reached the disk.
//!
//! Each round opens a small store with fsync off, appends random batches (several events
//! across a few streams, some checked against `expected` versions, some setting connector
//! positions in the same write), and sometimes reopens it half-way (recovery writes the
//! earlier batches into table files, so they are on disk for good). At a few random points
//! (while the store is open, or after it closed) it takes a disk image a power loss could
//! leave behind: a copy of the directory whose newest write-ahead log (`*.log`) is cut at a
//! random byte, sometimes with zeros after the cut (a block allocated but never written).
//! Losing any suffix of the newest log is a legal outcome of a power loss when nothing synced
//! it. The copy is opened with [`RocksStore::open`] and must hold:
//!
//! * a prefix of what was written, every event equal to the one written at its seq;
//! * whole batches only: events and the positions written with them, together or not at all;
//! * at least every batch written before the last reopen;
//! * gapless stream versions 1..=n, each pointing at the right event;
//! * `head()` at the last event, and a new append continuing at head + 1.
//!
//! The write-ahead log's recovery mode is RocksDB's default, point-in-time recovery, which
//! replays the log up to the first record that is torn or fails its checksum and stops there;
//! this test is the evidence that it opens every such image and yields a prefix of batches.
//!
//! `CULVERT_POWER_LOSS_ITERATIONS` sets the number of images (default 1000) and
//! `CULVERT_POWER_LOSS_SEED` the seed (default: from the clock; printed either way).

use culvert_domain::{Seq, StreamId};
use culvert_store::{
    AppendRequest, EventLog, ExpectedVersion, Layout, NewEvent, PositionStore, PositionWrite,
    RocksStore, StoreError, StoreOptions, StoredEvent,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::value::to_raw_value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const STREAMS: [&str; 4] = ["pipeline:p", "connector:c1", "connector:c2", "processor:x"];
const CONNECTORS: [&str; 3] = ["c1", "c2", "c3"];
const SLOTS: [&str; 2] = ["position", "state"];

fn layout() -> Layout {
    Layout {
        version: 1,
        migrations: vec![],
    }
}

fn unsynced() -> StoreOptions {
    StoreOptions {
        fsync: false,
        positions_fsync: false,
        ..StoreOptions::default()
    }
}

/// What the writer did: the events of every batch that was appended, and the positions
/// every batch set.
#[derive(Default)]
struct Written {
    /// Events by seq (index 0 is seq 1).
    events: Vec<StoredEvent>,
    /// The seq each batch ended at, in order.
    batch_ends: Vec<u64>,
    /// The position writes of each batch.
    positions: Vec<Vec<PositionWrite>>,
}

impl Written {
    /// The positions after the first `batches` batches, by (connector, slot).
    fn positions_after(&self, batches: usize) -> BTreeMap<(String, String), Vec<u8>> {
        let mut out = BTreeMap::new();
        for writes in &self.positions[..batches] {
            for w in writes {
                let key = (w.connector.clone(), w.slot.clone());
                match &w.value {
                    Some(v) => out.insert(key, v.clone()),
                    None => out.remove(&key),
                };
            }
        }
        out
    }
}

fn new_event(stream: &str, batch: usize, index: usize, rng: &mut StdRng) -> NewEvent {
    // Payloads of varied size, so batches straddle the log's 32 KiB blocks now and then.
    let filler = "x".repeat(rng.gen_range(0..3000));
    NewEvent {
        stream: StreamId(stream.into()),
        event_type: "PowerLossTested".into(),
        schema_version: 1,
        actor: "power-loss".into(),
        correlation_id: format!("batch-{batch}"),
        causation_id: (index > 0).then(|| format!("batch-{batch}/{}", index - 1)),
        reason: None,
        payload: to_raw_value(
            &serde_json::json!({"batch": batch, "index": index, "filler": filler}),
        )
        .unwrap(),
    }
}

/// Append one random batch (or, now and then, one that must conflict and write nothing).
fn append_batch(store: &RocksStore, written: &mut Written, rng: &mut StdRng) {
    let batch = written.batch_ends.len();
    let size = rng.gen_range(1..=6);
    let events: Vec<NewEvent> = (0..size)
        .map(|i| new_event(STREAMS[rng.gen_range(0..STREAMS.len())], batch, i, rng))
        .collect();
    let mut expected = Vec::new();
    for stream in STREAMS {
        if rng.gen_bool(0.3) {
            let id = StreamId(stream.into());
            let version = written.events.iter().filter(|e| e.stream == id).count() as u64;
            let want = if version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(version)
            };
            expected.push((id, want));
        }
    }
    let set_positions: Vec<PositionWrite> = (0..rng.gen_range(0..=3))
        .map(|_| PositionWrite {
            connector: CONNECTORS[rng.gen_range(0..CONNECTORS.len())].into(),
            slot: SLOTS[rng.gen_range(0..SLOTS.len())].into(),
            value: rng
                .gen_bool(0.85)
                .then(|| format!("batch-{batch}").into_bytes()),
        })
        .collect();
    if rng.gen_bool(0.05) {
        // A stale expectation: refused whole, nothing written.
        let stream = StreamId(STREAMS[0].into());
        let version = written.events.iter().filter(|e| e.stream == stream).count() as u64;
        let head = store.head();
        let result = store.append(AppendRequest {
            events: events.clone(),
            expected: vec![(stream, ExpectedVersion::Exact(version + 1))],
            set_positions: set_positions.clone(),
            ..AppendRequest::default()
        });
        assert!(
            matches!(result, Err(StoreError::Conflict { .. })),
            "a stale expected version must conflict, got {result:?}"
        );
        assert_eq!(store.head(), head, "a refused batch moved the head");
    }
    let stored = store
        .append(AppendRequest {
            events,
            expected,
            set_positions: set_positions.clone(),
            ..AppendRequest::default()
        })
        .expect("append");
    assert_eq!(stored[0].seq.0, written.events.len() as u64 + 1);
    written.events.extend(stored);
    written.batch_ends.push(written.events.len() as u64);
    written.positions.push(set_positions);
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// The write-ahead logs in `dir`, oldest first.
fn wal_files(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name()?.to_str()?.to_owned();
            let number = name.strip_suffix(".log")?.parse().ok()?;
            Some((number, path))
        })
        .collect();
    logs.sort();
    logs.into_iter().map(|(_, p)| p).collect()
}

/// Lose what a power cut could lose: cut the newest log at a random byte and maybe leave an
/// unwritten block (zeros) after the cut. Returns a description for messages.
fn lose_unsynced_tail(dir: &Path, rng: &mut StdRng) -> String {
    let Some(newest) = wal_files(dir).pop() else {
        return "no write-ahead log".into();
    };
    let len = fs::metadata(&newest).unwrap().len();
    let cut = match rng.gen_range(0..10) {
        0 => len, // nothing lost
        1 => 0,   // everything since the log was created lost
        _ => rng.gen_range(0..=len),
    };
    let mut bytes = fs::read(&newest).unwrap();
    bytes.truncate(cut as usize);
    // A block the file system had allocated but not written reads back as zeros (ext4 and
    // xfs never show stale bytes there). Not random bytes: RocksDB 11.8.1 loops forever
    // opening a log whose tail holds a header of a "recyclable" record type (5-8) in a log
    // that is not recycled (log::Reader::ReadPhysicalRecord returns kBadRecord without
    // consuming it, and ReadRecord asks again), whatever the recovery mode. That needs bytes
    // no power loss writes; the open below has a deadline so such a hang fails, not stalls.
    let tail = if rng.gen_bool(0.3) {
        let n = rng.gen_range(1..4096);
        bytes.extend(std::iter::repeat_n(0u8, n));
        format!("{n} zero bytes")
    } else {
        "nothing".into()
    };
    fs::write(&newest, &bytes).unwrap();
    format!(
        "{} cut at byte {cut} of {len}, then {tail}",
        newest.file_name().unwrap().to_string_lossy()
    )
}

/// Check the reopened store against what was written; returns the batches it kept.
fn check(store: &RocksStore, written: &Written, durable_batches: usize, what: &str) -> usize {
    let head = store.head().0;
    let events = store.read_from(Seq(1), usize::MAX).unwrap();
    assert_eq!(
        events.len() as u64,
        head,
        "{what}: head {head} but {} events",
        events.len()
    );
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.seq.0, i as u64 + 1, "{what}: gap in the log");
        let original = written
            .events
            .get(i)
            .unwrap_or_else(|| panic!("{what}: seq {} was never written", event.seq.0));
        assert_eq!(event, original, "{what}: seq {} differs", event.seq.0);
    }
    // Whole batches only.
    let kept = if head == 0 {
        0
    } else {
        written
            .batch_ends
            .iter()
            .position(|end| *end == head)
            .unwrap_or_else(|| panic!("{what}: head {head} is inside a batch"))
            + 1
    };
    assert!(
        kept >= durable_batches,
        "{what}: lost batches written before the last reopen ({kept} < {durable_batches})"
    );
    // Positions written in the kept batches, none of the lost ones.
    let want = written.positions_after(kept);
    for connector in CONNECTORS {
        for slot in SLOTS {
            let got = store.get(connector, slot).unwrap();
            let expected = want.get(&(connector.to_owned(), slot.to_owned())).cloned();
            assert_eq!(
                got, expected,
                "{what}: position {connector}/{slot} after {kept} batches"
            );
        }
    }
    // Gapless stream versions pointing at the right events.
    for stream in STREAMS {
        let id = StreamId(stream.into());
        let mine: Vec<&StoredEvent> = events.iter().filter(|e| e.stream == id).collect();
        assert_eq!(
            store.stream_version(&id).unwrap(),
            mine.len() as u64,
            "{what}: version of {stream}"
        );
        let read = store.read_stream(&id, 1, usize::MAX).unwrap();
        assert_eq!(read.len(), mine.len(), "{what}: events of {stream}");
        for (i, (a, b)) in read.iter().zip(&mine).enumerate() {
            assert_eq!(
                a.stream_version,
                i as u64 + 1,
                "{what}: {stream} version gap"
            );
            assert_eq!(a, *b, "{what}: {stream} version {} differs", i + 1);
        }
    }
    kept
}

/// Counts over the images checked.
#[derive(Default)]
struct Stats {
    images: usize,
    kept: usize,
    written: usize,
    none_lost: usize,
    all_lost: usize,
}

/// Cut the unsynced tail off `image`, open it and check it against `written` (of which the
/// first `durable` batches were on disk for good), append to it, and delete it.
fn verify_image(
    image: &Path,
    written: &Written,
    durable: usize,
    seed: u64,
    stats: &mut Stats,
    rng: &mut StdRng,
) {
    let cut = lose_unsynced_tail(image, rng);
    let what = format!("seed {seed} image {} ({cut})", stats.images);
    let reopened = open_with_deadline(image, &what);
    let kept = check(&reopened, written, durable, &what);
    // New appends continue the log.
    let head = reopened.head();
    let stream = StreamId(STREAMS[1].into());
    let version = reopened.stream_version(&stream).unwrap();
    let next = reopened
        .append(AppendRequest {
            events: vec![new_event(STREAMS[1], usize::MAX, 0, rng)],
            expected: vec![(
                stream,
                if version == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(version)
                },
            )],
            ..AppendRequest::default()
        })
        .unwrap_or_else(|e| panic!("{what}: appending after recovery: {e}"));
    assert_eq!(next[0].seq, head.next(), "{what}: the next append's seq");
    assert_eq!(
        next[0].stream_version,
        version + 1,
        "{what}: the next append's version"
    );
    assert_eq!(reopened.head(), head.next());
    drop(reopened);
    stats.images += 1;
    stats.kept += kept;
    stats.written += written.batch_ends.len();
    if kept == written.batch_ends.len() {
        stats.none_lost += 1;
    } else if kept == durable {
        stats.all_lost += 1;
    }
    fs::remove_dir_all(image).unwrap();
}

/// Open the image, failing the test (instead of hanging it) if recovery does not finish in
/// a minute. A hung open is left behind on its thread; the test process ends anyway.
fn open_with_deadline(image: &Path, what: &str) -> RocksStore {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = image.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(RocksStore::open(&path, unsynced(), &layout()));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(Ok(store)) => store,
        Ok(Err(e)) => panic!("{what}: the store does not open: {e}"),
        Err(_) => panic!("{what}: opening the store did not finish in 60 s (recovery hung)"),
    }
}

#[test]
fn a_power_loss_keeps_a_prefix_of_whole_batches() {
    let iterations: usize = std::env::var("CULVERT_POWER_LOSS_ITERATIONS")
        .ok()
        .map(|v| {
            v.parse()
                .expect("CULVERT_POWER_LOSS_ITERATIONS: not a number")
        })
        .unwrap_or(1000);
    let seed: u64 = std::env::var("CULVERT_POWER_LOSS_SEED")
        .ok()
        .map(|v| v.parse().expect("CULVERT_POWER_LOSS_SEED: not a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("power-loss test: seed {seed} (CULVERT_POWER_LOSS_SEED={seed} repeats it), {iterations} iterations");
    let mut rng = StdRng::seed_from_u64(seed);
    // In memory when the machine has /dev/shm: the disk image is made by hand here, so a
    // real disk adds nothing but the cost of RocksDB's fsyncs when it opens a store.
    let shm = Path::new("/dev/shm");
    let root = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .unwrap();
    // An empty store, opened once: each iteration starts from a copy of it.
    let template = root.path().join("template");
    drop(RocksStore::open(&template, unsynced(), &layout()).unwrap());
    let started = std::time::Instant::now();
    let mut stats = Stats::default();
    let mut session = 0;
    while stats.images < iterations {
        // One live store; images taken under it at a few random points, and maybe one
        // after it closed.
        session += 1;
        let live = root.path().join(format!("live-{session}"));
        copy_dir(&template, &live);
        let mut written = Written::default();
        let mut durable = 0;
        let mut store = RocksStore::open(&live, unsynced(), &layout()).unwrap();
        let batches = rng.gen_range(1..=40);
        let reopen_at = rng.gen_bool(0.3).then(|| rng.gen_range(0..batches));
        for b in 0..batches {
            if reopen_at == Some(b) {
                drop(store);
                store = RocksStore::open(&live, unsynced(), &layout()).unwrap();
                durable = written.batch_ends.len();
            }
            append_batch(&store, &mut written, &mut rng);
            if stats.images < iterations && rng.gen_bool(0.1) {
                let image = root.path().join(format!("image-{}", stats.images));
                copy_dir(&live, &image);
                verify_image(&image, &written, durable, seed, &mut stats, &mut rng);
            }
        }
        drop(store);
        if stats.images < iterations && rng.gen_bool(0.5) {
            let image = root.path().join(format!("image-{}", stats.images));
            copy_dir(&live, &image);
            verify_image(&image, &written, durable, seed, &mut stats, &mut rng);
        }
        fs::remove_dir_all(&live).unwrap();
    }
    let Stats {
        kept: total_kept,
        written: total_written,
        none_lost,
        all_lost,
        ..
    } = stats;
    println!(
        "power-loss test: {iterations} images of {session} stores in {:.1?}; {total_kept} of \
         {total_written} batches kept; {none_lost} images lost nothing, {all_lost} lost every \
         unsynced batch",
        started.elapsed()
    );
}
