//! Crash test of the event log: a child process appends batches (fsync on) and is killed with
//! SIGKILL at random moments. After every kill the log must hold every batch the child
//! reported as appended, no batch partly, and gapless sequence numbers.
//!
//! What it proves: atomicity and durability of `append` against a crash of the process.
//! What it does not: power loss (the OS page cache survives SIGKILL).
//!
//! Runs without the libtest harness so that the same binary can be re-executed as the
//! child (`CULVERT_CRASH_CHILD=<dir>`).

use culvert_domain::{Seq, StreamId};
use culvert_store::{
    AppendRequest, EventLog, ExpectedVersion, Layout, NewEvent, RocksStore, StoreOptions,
};
use rand::Rng;
use serde_json::value::to_raw_value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const ROUNDS: usize = 12;
const CHILD_ENV: &str = "CULVERT_CRASH_CHILD";

fn layout() -> Layout {
    Layout {
        version: 1,
        migrations: vec![],
    }
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    parent();
    println!("crash test: 1 passed, 0 failed");
}

/// Appends batches of 1-8 events forever, reporting each after `append` returned.
fn child(dir: &str) {
    let store = RocksStore::open(dir, StoreOptions::default(), &layout()).expect("open");
    let round: u64 = std::env::var("CULVERT_CRASH_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    let mut rng = rand::thread_rng();
    let stdout = std::io::stdout();
    for batch in 0u64.. {
        let id = round * 1_000_000 + batch;
        let size = rng.gen_range(1..=8u64);
        let stream = StreamId(format!("s{}", rng.gen_range(0..5)));
        let expected = store.stream_version(&stream).unwrap();
        let events = (0..size)
            .map(|i| NewEvent {
                stream: stream.clone(),
                event_type: "CrashTested".into(),
                schema_version: 1,
                actor: "crash".into(),
                correlation_id: id.to_string(),
                causation_id: None,
                reason: None,
                payload: to_raw_value(&serde_json::json!({"batch": id, "i": i, "of": size}))
                    .unwrap(),
            })
            .collect();
        let stored = store
            .append(AppendRequest {
                events,
                expected: vec![(stream, ExpectedVersion::Exact(expected))],
                clear_positions: Vec::new(),
                set_positions: Vec::new(),
                clear_letters: Vec::new(),
                queue_letters: Vec::new(),
            })
            .expect("append");
        let mut out = stdout.lock();
        writeln!(out, "ok {id} {} {size}", stored[0].seq).unwrap();
        out.flush().unwrap();
    }
}

fn parent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut reported: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .env(CHILD_ENV, &path)
            .env("CULVERT_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let kill_after = rng.gen_range(1..300usize);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        for line in lines.by_ref() {
            record(&mut reported, &line.unwrap());
            seen += 1;
            if seen == kill_after {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
                               // Lines written before the kill are still in the pipe: those batches were appended.
        for line in lines {
            record(&mut reported, &line.unwrap());
        }
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the child must have been killed"
        );
        verify(&path, &reported, round);
    }
    println!(
        "crash test: {ROUNDS} kills, {} batches reported, all present and whole",
        reported.len()
    );
}

fn record(reported: &mut BTreeMap<u64, (u64, u64)>, line: &str) {
    let parts: Vec<u64> = line
        .strip_prefix("ok ")
        .unwrap_or_else(|| panic!("unexpected child output {line:?}"))
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    reported.insert(parts[0], (parts[1], parts[2]));
}

fn verify(path: &std::path::Path, reported: &BTreeMap<u64, (u64, u64)>, round: usize) {
    let store = RocksStore::open(path, StoreOptions::default(), &layout()).unwrap();
    let mut batches: BTreeMap<u64, Vec<(u64, u64, u64)>> = BTreeMap::new();
    let mut next = Seq(1);
    loop {
        let events = store.read_from(next, 10_000).unwrap();
        if events.is_empty() {
            break;
        }
        for e in events {
            assert_eq!(e.seq, next, "round {round}: gap in sequence numbers");
            next = next.next();
            let p: serde_json::Value = serde_json::from_str(e.payload.get()).unwrap();
            let batch = p["batch"].as_u64().unwrap();
            batches.entry(batch).or_default().push((
                e.seq.0,
                p["i"].as_u64().unwrap(),
                p["of"].as_u64().unwrap(),
            ));
        }
    }
    assert_eq!(store.head(), Seq(next.0 - 1), "round {round}: head");
    for (batch, events) in &batches {
        let of = events[0].2;
        assert_eq!(
            events.len() as u64,
            of,
            "round {round}: batch {batch} is partial"
        );
        let seqs: BTreeSet<u64> = events.iter().map(|e| e.0).collect();
        assert_eq!(
            seqs.last().unwrap() - seqs.first().unwrap() + 1,
            of,
            "round {round}: batch {batch} is not contiguous"
        );
    }
    for (batch, (first_seq, size)) in reported {
        let events = batches
            .get(batch)
            .unwrap_or_else(|| panic!("round {round}: reported batch {batch} is lost"));
        assert_eq!(events[0].0, *first_seq, "batch {batch} moved");
        assert_eq!(events.len() as u64, *size);
    }
}
