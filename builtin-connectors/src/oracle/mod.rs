//! `builtin:oracle`: a source of records with checkable identities, a destination that
//! writes down what arrived, and the [`verdict`](mod@verdict) that counts what was lost,
//! duplicated, reordered or corrupted on the way. The reliability suite's data oracle
//! (issue 24).
//!
//! # Source
//!
//! Records come round-robin over `partitions`: record `i` (from 0, over all partitions) is
//! in partition `p = i % partitions` with sequence number `seq = i / partitions + 1`, so
//! each partition's records are numbered 1, 2, 3, ... Each record:
//!
//! * key `"{p}-{seq}"` (raw bytes), operation `create`;
//! * `payload.after`: `payloadSize` raw bytes made from `(p, seq)` alone ([`payload`]);
//! * metadata `oracle.partition`, `oracle.seq`, `oracle.hash` (the payload's 64-bit FNV-1a
//!   hash, 16 lower-case hex digits: [`hash`]) and, on a pseudo-random `poisonPercent`% of
//!   the records chosen from `(p, seq)` alone ([`is_poison`]), `oracle.poison: "true"`. A
//!   redelivered record is the same record, bytes and poison mark included.
//!
//! The position of a record is `{"emitted":N}`, N the count of records emitted up to and
//! including it; a source opened at it resumes with record N. With `records` > 0 the source
//! stops after that many (in all partitions): reads then wait [`IDLE_READ`] and return
//! nothing, as the generator does when it is done. `batchSize` caps the records a read
//! returns.
//!
//! ## The replication slot (`slot`)
//!
//! Some systems discard upstream data once the reader confirms it (a PostgreSQL
//! replication slot, a queue that deletes acked messages). With `slot` set the source
//! models one: the file at `slot` holds the count of records confirmed by `ack` (the
//! acked position's N; it only moves forward), written atomically (temporary file, fsync,
//! rename, fsync of the folder). Upstream data below the confirmed count is gone: `open`
//! resumes at `max(P, C)`, P the count in the position it is given (0 for none) and C the
//! confirmed count (0 when the file does not exist). A source acked for records no
//! destination has durably written (against invariant 1 of ARCHITECTURE.md) never emits
//! them again after a crash: the verdict reports them missing. A source acked before its
//! position is persisted (against invariant 2) skips from P to C at the restart.
//!
//! # Destination
//!
//! Each record written appends one line `{partition},{seq},{hash_ok}` to the `ledger`
//! file: `hash_ok` is `1` when the hash of the record's raw `payload.after` equals its
//! `oracle.hash`, else `0`; a record without a readable `oracle.partition` and
//! `oracle.seq` writes `?,?,0`. A batch is one write; with `sync` (the default) the file is
//! fsynced (`fdatasync`) before `write` returns, so an acked record is on disk. Opening the
//! ledger cuts off a torn last line (no newline: a kill in the middle of a write; its
//! records were never acked and come again).
//!
//! # Verdict
//!
//! [`verdict()`] walks ledger lines in order, per partition (see [`mod@verdict`] for the
//! rules); [`verdict_from_ledger`] reads a ledger file and [`verdict_from_opencdc_file`] a
//! file of OpenCDC JSON lines (what `builtin:file` writes), so the oracle checks a
//! pipeline through any destination that writes records as JSON.
//!
//! [`IDLE_READ`]: culvert_plugins::connector::IDLE_READ

mod destination;
mod source;
pub mod verdict;

pub use destination::OracleDestination;
pub use source::OracleSource;
pub use verdict::{
    verdict, verdict_from_ledger, verdict_from_opencdc_file, Observation, Tally, Verdict,
};

use culvert_domain::opencdc::metadata::DLQ_NACK_ERROR;
use culvert_domain::{Data, Record};
use culvert_plugins::connector::{
    ConnectorPlugin, Destination, PluginError, Settings, Source, Specification,
};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};

/// The version listed and accepted in references (`builtin:oracle@v0.1.0`).
pub const VERSION: &str = "v0.1.0";

/// Metadata key: the record's partition (decimal).
pub const PARTITION: &str = "oracle.partition";
/// Metadata key: the record's sequence number in its partition (decimal, from 1).
pub const SEQ: &str = "oracle.seq";
/// Metadata key: the [`hash`] of the record's payload (16 lower-case hex digits).
pub const HASH: &str = "oracle.hash";
/// Metadata key: `"true"` on a poisoned record (absent otherwise).
pub const POISON: &str = "oracle.poison";

/// The oracle plugin.
pub struct Oracle {
    spec: Specification,
}

impl Oracle {
    /// The plugin with its specification.
    pub fn new() -> Self {
        use ParameterType::{Bool, Float, Int, String};
        Self {
            spec: Specification {
                name: "oracle",
                summary: "Records with checkable ids and hashes; a destination that writes \
                          down what arrived, for counting loss, duplicates and reorders.",
                description: "The source emits records round-robin over partitions, each \
                    with a partition, a sequence number and a payload hash in its metadata; \
                    with `slot` it discards upstream data once acked, like a replication \
                    slot. The destination appends `partition,seq,hash_ok` per record to a \
                    ledger file that `culvert oracle verdict` checks.",
                version: VERSION,
                author: "Culvert",
                source: Some(vec![
                    Parameter::new("partitions", Int, "Number of partitions (1 or more).")
                        .default_value("4")
                        .validate(Validation::GreaterThan(0.0)),
                    Parameter::new(
                        "records",
                        Int,
                        "Records to emit in all partitions together (0: no end).",
                    )
                    .default_value("0")
                    .validate(Validation::GreaterThan(-1.0)),
                    Parameter::new("payloadSize", Int, "Bytes of each record's payload.")
                        .default_value("32")
                        .validate(Validation::GreaterThan(-1.0)),
                    Parameter::new(
                        "poisonPercent",
                        Float,
                        "Percentage (0-100) of records marked oracle.poison=true.",
                    )
                    .default_value("0"),
                    Parameter::new(
                        "slot",
                        String,
                        "File holding the count of acked records; upstream data below it \
                         is discarded (a replication slot). None: no slot.",
                    ),
                    Parameter::new("batchSize", Int, "Most records a read returns.")
                        .default_value("1000")
                        .validate(Validation::GreaterThan(0.0)),
                ]),
                destination: Some(vec![
                    Parameter::new("ledger", String, "Path of the ledger file.")
                        .validate(Validation::Required),
                    Parameter::new(
                        "sync",
                        Bool,
                        "fdatasync the ledger before a write returns (an ack means on disk).",
                    )
                    .default_value("true"),
                ]),
                standalone: false,
            },
        }
    }
}

impl Default for Oracle {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectorPlugin for Oracle {
    fn specification(&self) -> &Specification {
        &self.spec
    }

    fn new_source(&self, settings: &Settings) -> Result<Box<dyn Source>, PluginError> {
        Ok(Box::new(OracleSource::new(settings)?))
    }

    fn new_destination(&self, settings: &Settings) -> Result<Box<dyn Destination>, PluginError> {
        Ok(Box::new(OracleDestination::new(settings)?))
    }
}

/// The payload of record `(partition, seq)`: `size` bytes of an xorshift64* stream seeded
/// from the pair alone.
pub fn payload(partition: u64, seq: u64, size: usize) -> Vec<u8> {
    // A zero state would stay zero: splitmix64 of the pair, forced odd.
    let mut state = splitmix64(partition.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seq) | 1;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(size);
    out
}

/// The 64-bit FNV-1a hash of `bytes` (what `oracle.hash` holds, as 16 hex digits).
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Whether record `(partition, seq)` is poisoned at `percent` (0-100): decided from the pair
/// alone, in steps of a ten-thousandth of a percent.
pub fn is_poison(partition: u64, seq: u64, percent: f64) -> bool {
    if percent <= 0.0 {
        return false;
    }
    let draw = splitmix64(splitmix64(partition ^ 0x05ee_d0f0_ac1e) ^ seq) % 1_000_000;
    (draw as f64) < percent * 10_000.0
}

/// What a record says about itself: its id from `oracle.partition` and `oracle.seq` (`None`
/// when either is missing or not a number), and whether its raw `payload.after` hashes to
/// its `oracle.hash`. A dead letter (Conduit's DLQ record: the failed record in its JSON
/// form as `payload.after`, with `conduit.dlq.nack.error` metadata) says what the record it
/// carries says, so the oracle can be a pipeline's DLQ.
pub fn observe(record: &Record) -> Observation {
    if record.metadata.contains_key(DLQ_NACK_ERROR) {
        if let Some(Data::Structured(failed)) = &record.payload.after {
            let carried = serde_json::to_vec(failed)
                .ok()
                .and_then(|json| Record::from_json(&json).ok());
            if let Some(carried) = carried {
                return observe(&carried);
            }
        }
    }
    let number = |key: &str| record.metadata.get(key).and_then(|v| v.parse::<u64>().ok());
    let id = number(PARTITION).zip(number(SEQ));
    let hash_ok = match (&record.payload.after, record.metadata.get(HASH)) {
        (Some(Data::Raw(bytes)), Some(expected)) => {
            u64::from_str_radix(expected, 16).is_ok_and(|h| h == hash(bytes))
        }
        _ => false,
    };
    Observation {
        id,
        hash_ok: id.is_some() && hash_ok,
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A settings error naming the setting.
fn invalid(key: &str, problem: String) -> PluginError {
    PluginError::InvalidSettings(culvert_plugins::spec::InvalidSettings(vec![
        culvert_plugins::spec::SettingError {
            key: key.to_owned(),
            problem,
        },
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_hashes_and_poison_depend_on_the_id_alone() {
        assert_eq!(payload(1, 7, 32), payload(1, 7, 32));
        assert_ne!(payload(1, 7, 32), payload(7, 1, 32));
        assert_ne!(payload(0, 1, 32), payload(0, 2, 32));
        assert_eq!(payload(2, 3, 5).len(), 5);
        assert_eq!(payload(2, 3, 40)[..5], payload(2, 3, 5)[..]);
        assert!(payload(0, 1, 0).is_empty());
        // FNV-1a's published test vectors.
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash(b"foobar"), 0x8594_4171_f739_67e8);
        let poisoned = (1..=100_000).filter(|s| is_poison(3, *s, 2.5)).count();
        assert!((2_000..3_000).contains(&poisoned), "{poisoned}");
        assert_eq!(is_poison(3, 17, 2.5), is_poison(3, 17, 2.5));
        assert!((1..=1000).all(|s| is_poison(0, s, 100.0)));
        assert!((1..=1000).all(|s| !is_poison(0, s, 0.0)));
    }

    #[test]
    fn a_dead_letter_is_observed_as_the_record_it_carries() {
        let bytes = payload(2, 9, 16);
        let mut failed = Record {
            position: culvert_domain::Position(b"{\"emitted\":38}".to_vec()),
            operation: culvert_domain::Operation::Create,
            metadata: [
                (PARTITION.to_owned(), "2".to_owned()),
                (SEQ.to_owned(), "9".to_owned()),
                (HASH.to_owned(), format!("{:016x}", hash(&bytes))),
            ]
            .into(),
            key: None,
            payload: culvert_domain::Change {
                before: None,
                after: Some(Data::Raw(bytes)),
            },
        };
        let letter = |failed: &Record| {
            let Ok(serde_json::Value::Object(json)) = serde_json::from_slice(&failed.to_json())
            else {
                panic!("a record's JSON is an object");
            };
            Record {
                metadata: [(DLQ_NACK_ERROR.to_owned(), "poison".to_owned())].into(),
                payload: culvert_domain::Change {
                    before: None,
                    after: Some(Data::Structured(json.into())),
                },
                ..failed.clone()
            }
        };
        let seen = observe(&letter(&failed));
        assert_eq!((seen.id, seen.hash_ok), (Some((2, 9)), true));
        // A carried record whose payload was changed fails its hash.
        failed.payload.after = Some(Data::Raw(b"changed".to_vec()));
        assert!(!observe(&letter(&failed)).hash_ok);
    }
}
