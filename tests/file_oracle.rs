//! The file -> file oracle (issue 27): 200,000 lines, each with a unique id, through a
//! `builtin:file` source and a `builtin:file` destination on the running server, created
//! over the HTTP API. The output is read back and every id counted: lost (never arrived),
//! duplicated (arrived more than once) and torn lines (not a whole JSON record).
//!
//! * Without a kill: every line arrives exactly once, in order.
//! * Across five SIGKILLs (each while lines are in flight; the input grows between them and
//!   the server resumes the running pipeline at each restart): none lost, none torn in the
//!   end (the destination cuts off a line a kill tore); duplicates are allowed
//!   (at-least-once) and reported.
//!
//! What it does not prove: loss at a machine crash (the destination does not fsync by
//! default) — the store's crash test and the destination's `sync` cover that separately.

use crate::harness::{data_dir, xorshift, LineCounter, Server};
use crate::http_client::call;
use culvert_domain::{Data, Record};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const LINES: usize = 200_000;
const KILLS: usize = 5;
/// How long the pipeline may take to deliver everything (the debug build is slow; this is
/// a bound, not a goal).
const RUN_DEADLINE: Duration = Duration::from_secs(600);

/// Line `n`: its unique id, then padding of varying length (so lines straddle the reader's
/// buffer at every offset).
fn line(n: usize) -> String {
    format!("id-{n:07} {}", "x".repeat(n * 7 % 61))
}

/// Append lines `range` to `path`.
fn append(path: &Path, range: std::ops::Range<usize>) {
    let mut text = String::new();
    for n in range {
        text.push_str(&line(n));
        text.push('\n');
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// What the output holds, counted against the ids `0..LINES`.
#[derive(Debug)]
struct Tally {
    /// How often each id arrived.
    seen: Vec<u32>,
    /// Lines that are not a whole record (a line still being written at the end excepted).
    torn: usize,
    /// Whether the ids arrived in increasing order, each repeat aside.
    ordered: bool,
}

impl Tally {
    fn read(out: &Path, complete: bool) -> Tally {
        let bytes = std::fs::read(out).unwrap_or_default();
        let mut seen = vec![0u32; LINES];
        let mut torn = 0;
        let mut ordered = true;
        let mut last = None;
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            if !line.ends_with(b"\n") && !complete {
                break; // being written right now
            }
            let Some(id) = id_of(line) else {
                torn += 1;
                continue;
            };
            seen[id] += 1;
            if seen[id] == 1 {
                ordered &= last.is_none_or(|l| id > l);
                last = Some(id);
            }
        }
        Tally {
            seen,
            torn,
            ordered,
        }
    }

    fn delivered(&self) -> usize {
        self.seen.iter().filter(|n| **n > 0).count()
    }

    fn lost(&self) -> Vec<usize> {
        (0..LINES).filter(|n| self.seen[*n] == 0).collect()
    }

    fn duplicated(&self) -> u64 {
        self.seen
            .iter()
            .map(|n| u64::from(n.saturating_sub(1)))
            .sum()
    }

    /// The missing ids as ranges, for the failure message.
    fn gaps(&self) -> String {
        let lost = self.lost();
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for n in lost {
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == n => *end = n,
                _ => ranges.push((n, n)),
            }
        }
        let shown: Vec<String> = ranges
            .iter()
            .take(10)
            .map(|(a, b)| format!("{a}-{b}"))
            .collect();
        format!("{} gaps, first {}", ranges.len(), shown.join(", "))
    }
}

/// The id in an output line (a JSON record whose raw payload is an input line).
fn id_of(output: &[u8]) -> Option<usize> {
    let record = Record::from_json(output.strip_suffix(b"\n")?).ok()?;
    let Some(Data::Raw(payload)) = record.payload.after else {
        return None;
    };
    let text = std::str::from_utf8(&payload).ok()?;
    let id: usize = text.strip_prefix("id-")?.get(..7)?.parse().ok()?;
    (id < LINES && line(id) == text).then_some(id)
}

/// A file -> file pipeline, started; its id.
fn start_pipeline(address: &str, input: &Path, out: &Path) -> String {
    let p = call(
        address,
        "POST",
        "/v1/pipelines",
        Some(json!({"config": {"name": "file-to-file"}})),
    );
    let id = p["id"].as_str().unwrap().to_owned();
    for (kind, name, path) in [
        ("TYPE_SOURCE", "in", input),
        ("TYPE_DESTINATION", "out", out),
    ] {
        call(
            address,
            "POST",
            "/v1/connectors",
            Some(
                json!({"type": kind, "plugin": "builtin:file", "pipelineId": id,
                "config": {"name": name, "settings": {"path": path.to_str().unwrap()}}}),
            ),
        );
    }
    call(address, "POST", &format!("/v1/pipelines/{id}/start"), None);
    id
}

/// Wait until every id has arrived (polling the file: it has no change notification).
/// Fails at the run's deadline, or sooner once nothing new has arrived for `STALL`.
fn wait_for_all(out: &Path, started: Instant) -> Tally {
    const STALL: Duration = Duration::from_secs(30);
    let mut last = (0, Instant::now());
    loop {
        let tally = Tally::read(out, false);
        let delivered = tally.delivered();
        if delivered == LINES {
            return tally;
        }
        if delivered > last.0 {
            last = (delivered, Instant::now());
        }
        assert!(
            started.elapsed() < RUN_DEADLINE && last.1.elapsed() < STALL,
            "only {delivered} of {LINES} lines arrived; {}",
            tally.gaps()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stop the pipeline and the server gracefully, then count the output.
fn finish(mut server: Server, address: &str, id: &str, out: &Path) -> Tally {
    call(address, "POST", &format!("/v1/pipelines/{id}/stop"), None);
    server.terminate();
    assert!(server.wait().success(), "{:#?}", server.seen);
    Tally::read(out, true)
}

#[test]
fn file_to_file_delivers_every_line_exactly_once() {
    let (dir, data) = data_dir();
    let (input, out) = (dir.path().join("in.txt"), dir.path().join("out.jsonl"));
    append(&input, 0..LINES);
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    let started = Instant::now();
    let id = start_pipeline(&address, &input, &out);
    wait_for_all(&out, started);
    let elapsed = started.elapsed();
    let tally = finish(server, &address, &id, &out);
    println!(
        "file -> file: {LINES} lines, {} lost, {} duplicated, {} torn, {:.1} s",
        tally.lost().len(),
        tally.duplicated(),
        tally.torn,
        elapsed.as_secs_f64()
    );
    assert!(tally.lost().is_empty(), "lines lost: {}", tally.gaps());
    assert_eq!(tally.duplicated(), 0, "no duplicate without a crash");
    assert_eq!(tally.torn, 0, "no torn line");
    assert!(tally.ordered, "lines arrive in order");
}

#[test]
fn file_to_file_loses_nothing_across_sigkills() {
    let (dir, data) = data_dir();
    let (input, out) = (dir.path().join("in.txt"), dir.path().join("out.jsonl"));
    let chunk = LINES / KILLS;
    append(&input, 0..chunk);
    let mut server = Server::start(&data, &[]);
    let address = server.http_address();
    let started = Instant::now();
    let id = start_pipeline(&address, &input, &out);
    let mut at_kills = Vec::new();
    let mut seed = 0x0f11_e0ac_1e5e_u64;
    // (A restart may cut a torn last line off the output; the counter is then a line or so
    // ahead, which does not matter for choosing kill points.)
    let mut counter = LineCounter::default();
    for round in 0..KILLS {
        // Kill while lines are moving: at a seeded point 20-80% into this round's chunk.
        let point = round * chunk + chunk / 5 + (xorshift(&mut seed) as usize) % (chunk * 3 / 5);
        while counter.count(&out) < point {
            assert!(
                started.elapsed() < RUN_DEADLINE,
                "the pipeline did not reach line {point} in round {round}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        // The next chunk is on its way before the kill, so there is always more to read.
        if round + 1 < KILLS {
            append(&input, (round + 1) * chunk..(round + 2) * chunk);
        }
        server.kill();
        at_kills.push(counter.count(&out));
        // The pipeline was running: the server starts it again, from its persisted position.
        server = Server::start(&data, &[]);
    }
    wait_for_all(&out, started);
    let address = server.http_address();
    let tally = finish(server, &address, &id, &out);
    println!(
        "file -> file, {KILLS} SIGKILLs (output lines at each: {at_kills:?}): {LINES} lines, \
         {} lost, {} duplicated, {} torn, {:.1} s",
        tally.lost().len(),
        tally.duplicated(),
        tally.torn,
        started.elapsed().as_secs_f64()
    );
    assert!(tally.lost().is_empty(), "lines lost: {}", tally.gaps());
    assert_eq!(
        tally.torn, 0,
        "torn lines are cut off when the destination reopens"
    );
    assert!(tally.ordered, "first arrivals in order");
}
