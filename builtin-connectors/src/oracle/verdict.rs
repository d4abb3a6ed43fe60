//! The verdict: what arrived, counted against what the oracle source emitted.
//!
//! Per partition, in the order things arrived ([`Tally::observe`]):
//!
//! * an entry without a readable id, whose hash did not match (`hash_ok` 0), or whose id
//!   the source never emits (a partition or a sequence number out of range) is
//!   **corrupted**, and does not count as a delivery;
//! * a sequence number already seen is **duplicated** (redelivery after a crash re-sends
//!   records already delivered: duplicates, not reorders);
//! * a first occurrence below the highest sequence number already seen in its partition is
//!   **reordered** (it came after a later record). A gap is not a reorder: the records after
//!   it are in order, and the gap's records are missing;
//! * at the end, every expected sequence number never seen is **missing**. With `records`
//!   0 (a source with no end) the expected numbers of a partition are 1 up to the highest
//!   one seen.
//!
//! A last line without its newline (being written, or torn by a kill) is not read.

use super::observe;
use culvert_domain::Record;
use std::io::BufRead;
use std::path::Path;

/// How many missing ids a [`Verdict`] names.
const NAMED_MISSING: usize = 10;

/// One entry of what arrived: the record's id `(partition, seq)` if it has one, and
/// whether its payload matched its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// `(partition, seq)`, `None` when the record carries no readable oracle id.
    pub id: Option<(u64, u64)>,
    /// Whether the payload hashed to the record's `oracle.hash`.
    pub hash_ok: bool,
}

impl Observation {
    /// The entry of a ledger line `partition,seq,hash_ok` (anything else has no id).
    pub fn from_ledger_line(line: &str) -> Self {
        let mut parts = line.trim_end_matches('\r').split(',');
        let (Some(p), Some(s), Some(ok), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Self::unreadable();
        };
        match (p.parse::<u64>(), s.parse::<u64>(), ok) {
            (Ok(p), Ok(s), "1" | "0") => Self {
                id: Some((p, s)),
                hash_ok: ok == "1",
            },
            _ => Self::unreadable(),
        }
    }

    /// The entry of one OpenCDC JSON line (a line that is not a record has no id).
    pub fn from_opencdc_line(line: &[u8]) -> Self {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match Record::from_json(line) {
            Ok(record) => observe(&record),
            Err(_) => Self::unreadable(),
        }
    }

    fn unreadable() -> Self {
        Self {
            id: None,
            hash_ok: false,
        }
    }
}

/// What a ledger (or an output file) holds, counted against the oracle's records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Entries read.
    pub received: u64,
    /// Distinct expected ids received intact.
    pub unique: u64,
    /// Expected ids never received intact.
    pub missing: u64,
    /// Entries of an id already received.
    pub duplicated: u64,
    /// First occurrences that came after a later record of their partition.
    pub reordered: u64,
    /// Entries without a readable id, with a payload that fails its hash, or with an id the
    /// source never emits.
    pub corrupted: u64,
    /// The first few missing ids `(partition, seq)`, by partition then sequence number.
    pub first_missing: Vec<(u64, u64)>,
}

impl Verdict {
    /// Nothing missing, reordered or corrupted (duplicates are allowed: at-least-once).
    pub fn ok(&self) -> bool {
        self.missing == 0 && self.reordered == 0 && self.corrupted == 0
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "received {}, unique {}, missing {}, duplicated {}, reordered {}, corrupted {}",
            self.received,
            self.unique,
            self.missing,
            self.duplicated,
            self.reordered,
            self.corrupted
        )?;
        if !self.first_missing.is_empty() {
            let ids: Vec<String> = self
                .first_missing
                .iter()
                .map(|(p, s)| format!("{p}-{s}"))
                .collect();
            write!(f, " (first missing: {})", ids.join(", "))?;
        }
        Ok(())
    }
}

/// The running count behind a [`Verdict`] (see the module docs for the rules).
#[derive(Clone, Debug)]
pub struct Tally {
    partitions: u64,
    records: u64,
    /// Per partition: a bit per sequence number seen (bit `seq - 1`).
    seen: Vec<Vec<u64>>,
    /// Per partition: the highest sequence number seen.
    highest: Vec<u64>,
    /// Per partition: how many distinct sequence numbers were seen.
    distinct: Vec<u64>,
    verdict: Verdict,
}

impl Tally {
    /// An empty count for a source of `partitions` partitions that emits `records` records
    /// in all (0: no end).
    pub fn new(partitions: u64, records: u64) -> Self {
        let n = partitions.max(1) as usize;
        Self {
            partitions: partitions.max(1),
            records,
            seen: vec![Vec::new(); n],
            highest: vec![0; n],
            distinct: vec![0; n],
            verdict: Verdict::default(),
        }
    }

    /// How many records partition `p` gets (`None`: no end).
    fn expected(&self, p: u64) -> Option<u64> {
        (self.records > 0)
            .then(|| self.records / self.partitions + u64::from(p < self.records % self.partitions))
    }

    /// Count one entry, in arrival order.
    pub fn observe(&mut self, entry: Observation) {
        self.verdict.received += 1;
        let Some((p, seq)) = entry.id.filter(|_| entry.hash_ok) else {
            self.verdict.corrupted += 1;
            return;
        };
        let in_range = p < self.partitions && seq >= 1 && self.expected(p).is_none_or(|n| seq <= n);
        if !in_range {
            self.verdict.corrupted += 1;
            return;
        }
        let p = p as usize;
        let (word, bit) = (((seq - 1) / 64) as usize, (seq - 1) % 64);
        let bits = &mut self.seen[p];
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        if bits[word] & (1 << bit) != 0 {
            self.verdict.duplicated += 1;
            return;
        }
        bits[word] |= 1 << bit;
        self.distinct[p] += 1;
        self.verdict.unique += 1;
        if seq < self.highest[p] {
            self.verdict.reordered += 1;
        }
        self.highest[p] = self.highest[p].max(seq);
    }

    /// The verdict: the counts so far, and what never came.
    pub fn finish(mut self) -> Verdict {
        for p in 0..self.partitions {
            let expected = self.expected(p).unwrap_or(self.highest[p as usize]);
            let distinct = self.distinct[p as usize];
            self.verdict.missing += expected - distinct;
            if expected > distinct && self.verdict.first_missing.len() < NAMED_MISSING {
                let bits = &self.seen[p as usize];
                let missing = (1..=expected).filter(|seq| {
                    let word = ((seq - 1) / 64) as usize;
                    bits.get(word)
                        .is_none_or(|w| w & (1 << ((seq - 1) % 64)) == 0)
                });
                let room = NAMED_MISSING - self.verdict.first_missing.len();
                self.verdict
                    .first_missing
                    .extend(missing.take(room).map(|seq| (p, seq)));
            }
        }
        self.verdict
    }
}

/// The verdict on ledger lines (`partition,seq,hash_ok`, in the order written) for a source
/// of `partitions` partitions that emitted `records` records (0: no end).
pub fn verdict<I>(lines: I, partitions: u64, records: u64) -> Verdict
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut tally = Tally::new(partitions, records);
    for line in lines {
        tally.observe(Observation::from_ledger_line(line.as_ref()));
    }
    tally.finish()
}

/// The verdict on a ledger file (see [`verdict`]); a torn last line is not read.
pub fn verdict_from_ledger(path: &Path, partitions: u64, records: u64) -> std::io::Result<Verdict> {
    let mut tally = Tally::new(partitions, records);
    for_each_whole_line(path, |line| {
        tally.observe(Observation::from_ledger_line(&String::from_utf8_lossy(
            line,
        )));
    })?;
    Ok(tally.finish())
}

/// The verdict on a file of OpenCDC JSON records, one per line (as `builtin:file` and
/// Conduit's file connector write them), from each record's `oracle.*` metadata and raw
/// `payload.after` (base64 in the JSON); a torn last line is not read.
pub fn verdict_from_opencdc_file(
    path: &Path,
    partitions: u64,
    records: u64,
) -> std::io::Result<Verdict> {
    let mut tally = Tally::new(partitions, records);
    for_each_whole_line(path, |line| {
        tally.observe(Observation::from_opencdc_line(line));
    })?;
    Ok(tally.finish())
}

/// Call `each` with every newline-terminated line of the file at `path` (without it).
fn for_each_whole_line(path: &Path, mut each: impl FnMut(&[u8])) -> std::io::Result<()> {
    let file = std::fs::File::open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("opening {}: {e}", path.display())))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        match line.strip_suffix(b"\n") {
            Some(whole) => each(whole),
            // A torn (or still being written) last line.
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Oracle;
    use super::*;
    use culvert_domain::Data;
    use culvert_plugins::connector::{ConnectorPlugin, Destination, Settings, Source};
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn line(index: u64, partitions: u64) -> String {
        format!("{},{},1", index % partitions, index / partitions + 1)
    }

    #[test]
    fn every_kind_is_counted() {
        // 2 partitions, 8 records: 0-1..0-4 and 1-1..1-4.
        let v = verdict(
            [
                "0,1,1", "1,1,1", // in order
                "0,3,1", // 0-2 not yet: a gap, not a reorder
                "0,2,1", // came after 0-3: reordered
                "1,1,1", // again: duplicated
                "1,2,0", // payload does not match: corrupted, not delivered
                "1,3,1", "?,?,0", "garbage",
                "5,1,1", // corrupted x3 (the last: no partition 5)
                "1,9,1", // beyond the 4 of partition 1: corrupted
            ],
            2,
            8,
        );
        assert_eq!(
            v,
            Verdict {
                received: 11,
                unique: 5,
                missing: 3,
                duplicated: 1,
                reordered: 1,
                corrupted: 5,
                first_missing: vec![(0, 4), (1, 2), (1, 4)],
            }
        );
        assert!(!v.ok());
        assert_eq!(
            v.to_string(),
            "received 11, unique 5, missing 3, duplicated 1, reordered 1, corrupted 5 \
             (first missing: 0-4, 1-2, 1-4)"
        );
        // Duplicates alone pass; unequal partitions get their share (7 over 3: 3, 2, 2).
        let lines: Vec<String> = (0..7).chain(2..7).map(|i| line(i, 3)).collect();
        let v = verdict(&lines, 3, 7);
        assert_eq!((v.unique, v.missing, v.duplicated), (7, 0, 5));
        assert!(v.ok(), "{v}");
        assert_eq!(verdict(&lines[..6], 3, 7).first_missing, vec![(0, 3)]);
        // No end: missing below the highest seen.
        let v = verdict(["0,1,1", "0,4,1", "1,2,1"], 2, 0);
        assert_eq!((v.missing, v.reordered), (3, 0));
        assert_eq!(v.first_missing, vec![(0, 2), (0, 3), (1, 1)]);
    }

    /// A model pipeline: a source emitting records in order, a destination appending them
    /// to the ledger, acks moving a persisted position, crashes that resume from it. Some
    /// records are lost on the way every time and some of the tail never comes. The
    /// verdict must match a plain count of what the model delivered.
    #[test]
    fn random_schedules_with_redelivery_after_crashes() {
        for case in 0..400u64 {
            let mut rng = SmallRng::seed_from_u64(case);
            let partitions = rng.gen_range(1..=6u64);
            let records = rng.gen_range(1..=3_000u64);
            let loss = [0.0, 0.0, 0.001, 0.02][rng.gen_range(0..4)];
            let lost: Vec<bool> = (0..records).map(|_| rng.gen_bool(loss)).collect();
            // Where the run ends: usually everything, sometimes short of the tail.
            let end = if rng.gen_bool(0.7) {
                records
            } else {
                rng.gen_range(0..=records)
            };
            let mut delivered = vec![0u64; records as usize];
            let mut lines = Vec::new();
            let (mut next, mut persisted) = (0u64, 0u64);
            let mut crashes = 0;
            while next < end {
                let batch = rng.gen_range(1..=64).min(end - next);
                for i in next..next + batch {
                    if !lost[i as usize] {
                        delivered[i as usize] += 1;
                        lines.push(line(i, partitions));
                    }
                }
                next += batch;
                if rng.gen_bool(0.6) {
                    // An ack: the position moves forward, to somewhere written.
                    persisted = rng.gen_range(persisted..=next);
                }
                if rng.gen_bool(0.05) {
                    // A crash: what is in the ledger stays, the source resumes after the
                    // last persisted position.
                    next = persisted;
                    crashes += 1;
                }
            }
            let missing = delivered.iter().filter(|n| **n == 0).count() as u64;
            let duplicated: u64 = delivered.iter().map(|n| n.saturating_sub(1)).sum();
            let v = verdict(&lines, partitions, records);
            let context = format!(
                "case {case}: {partitions} partitions, {records} records, end {end}, \
                 {crashes} crashes: {v}"
            );
            assert_eq!(v.received, lines.len() as u64, "{context}");
            assert_eq!(v.missing, missing, "{context}");
            assert_eq!(v.duplicated, duplicated, "{context}");
            assert_eq!(v.unique, records - missing, "{context}");
            assert_eq!((v.reordered, v.corrupted), (0, 0), "{context}");
            assert_eq!(v.ok(), missing == 0, "{context}");
            let first = (0..records)
                .filter(|i| delivered[*i as usize] == 0)
                .map(|i| (i % partitions, i / partitions + 1));
            let mut first: Vec<_> = first.collect();
            first.sort();
            first.truncate(NAMED_MISSING);
            assert_eq!(v.first_missing, first, "{context}");
        }
    }

    #[tokio::test]
    async fn ledger_and_opencdc_files_give_the_same_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, json) = (dir.path().join("ledger"), dir.path().join("out.jsonl"));
        let settings: Settings = [
            ("partitions".to_owned(), "3".to_owned()),
            ("records".to_owned(), "300".to_owned()),
        ]
        .into();
        let mut source = super::super::OracleSource::new(&settings).unwrap();
        source.open(None).await.unwrap();
        let mut records = source.read(1000).await.unwrap();
        records.remove(10); // lost
        let redelivered = records[100..120].to_vec();
        records.extend(redelivered);
        records[50].payload.after = Some(Data::Raw(b"bit rot".to_vec()));
        let dest_settings: Settings =
            [("ledger".to_owned(), ledger.to_str().unwrap().to_owned())].into();
        let mut dest: Box<dyn Destination> = Oracle::new().new_destination(&dest_settings).unwrap();
        dest.open().await.unwrap();
        dest.write(&records).await.unwrap();
        dest.teardown().await.unwrap();
        let mut text = Vec::new();
        for r in &records {
            text.extend(r.to_json());
            text.push(b'\n');
        }
        text.extend(b"{\"torn"); // a line being written is not read
        std::fs::write(&json, text).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&ledger)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"2,9"))
            .unwrap();
        let from_ledger = verdict_from_ledger(&ledger, 3, 300).unwrap();
        let from_json = verdict_from_opencdc_file(&json, 3, 300).unwrap();
        assert_eq!(from_ledger, from_json);
        assert_eq!(
            (
                from_ledger.received,
                from_ledger.missing,
                from_ledger.duplicated,
                from_ledger.corrupted,
                from_ledger.reordered
            ),
            (319, 2, 20, 1, 0),
            "{from_ledger}"
        );
        // Record 10 is 1-4; record 51 (index 50 after the removal) is 0-18.
        assert_eq!(from_ledger.first_missing, vec![(0, 18), (1, 4)]);
        let error = verdict_from_ledger(&dir.path().join("nope"), 1, 1).unwrap_err();
        assert!(error.to_string().contains("nope"), "{error}");
    }
}
