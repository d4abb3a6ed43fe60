//! The oracle's source: records round-robin over partitions, resumable from a count, with
//! an optional replication slot (see the module docs of [`super`]).

use super::{hash, invalid, is_poison, payload, HASH, PARTITION, POISON, SEQ};
use culvert_domain::{Change, Data, Metadata, Operation, Position, Record};
use culvert_plugins::connector::{PluginError, Settings, Source, IDLE_READ};
use std::path::{Path, PathBuf};

/// A running oracle source.
pub struct OracleSource {
    partitions: u64,
    /// Total to emit (0: no end).
    records: u64,
    payload_size: usize,
    poison_percent: f64,
    batch_size: usize,
    /// The replication slot's file, if any.
    slot: Option<PathBuf>,
    /// Records emitted so far, this run and earlier ones (the next record's index).
    emitted: u64,
    /// The count the slot holds (what was confirmed by acks).
    confirmed: u64,
}

impl OracleSource {
    /// A source with these settings (defaults applied where a setting is missing); every
    /// problem names its setting.
    pub fn new(settings: &Settings) -> Result<Self, PluginError> {
        let text = |key: &str| settings.get(key).map(String::as_str).unwrap_or("").trim();
        let integer = |key: &str, default: u64, min: u64| -> Result<u64, PluginError> {
            match text(key) {
                "" => Ok(default),
                t => match t.parse::<u64>() {
                    Ok(n) if n >= min => Ok(n),
                    _ => Err(invalid(
                        key,
                        format!("{t:?} must be an integer of at least {min}"),
                    )),
                },
            }
        };
        let partitions = integer("partitions", 4, 1)?;
        let records = integer("records", 0, 0)?;
        let payload_size = integer("payloadSize", 32, 0)?;
        let batch_size = integer("batchSize", 1000, 1)?;
        let poison_percent = match text("poisonPercent") {
            "" => 0.0,
            t => match t.parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => p,
                _ => {
                    return Err(invalid(
                        "poisonPercent",
                        format!("{t:?} must be a number from 0 to 100"),
                    ))
                }
            },
        };
        let payload_size = usize::try_from(payload_size)
            .map_err(|_| invalid("payloadSize", format!("{payload_size} is too large")))?;
        let slot = match text("slot") {
            "" => None,
            path => Some(PathBuf::from(path)),
        };
        Ok(Self {
            partitions,
            records,
            payload_size,
            poison_percent,
            batch_size: usize::try_from(batch_size).unwrap_or(usize::MAX),
            slot,
            emitted: 0,
            confirmed: 0,
        })
    }

    /// Record `index` (from 0, over every partition).
    fn record(&self, index: u64) -> Record {
        let partition = index % self.partitions;
        let seq = index / self.partitions + 1;
        let bytes = payload(partition, seq, self.payload_size);
        let mut metadata = Metadata::from([
            (PARTITION, partition.to_string()),
            (SEQ, seq.to_string()),
            (HASH, format!("{:016x}", hash(&bytes))),
        ]);
        if is_poison(partition, seq, self.poison_percent) {
            metadata.insert(POISON, "true");
        }
        Record {
            position: encode_position(index + 1),
            operation: Operation::Create,
            metadata,
            key: Some(Data::Raw(format!("{partition}-{seq}").into_bytes())),
            payload: Change {
                before: None,
                after: Some(Data::Raw(bytes)),
            },
        }
    }
}

/// The position after `emitted` records: `{"emitted":N}`.
pub(super) fn encode_position(emitted: u64) -> Position {
    Position(format!("{{\"emitted\":{emitted}}}").into_bytes())
}

/// The count in a position made by [`encode_position`].
pub(super) fn decode_position(position: &Position) -> Result<u64, PluginError> {
    let bad = || PluginError::InvalidPosition {
        position: String::from_utf8_lossy(&position.0).into_owned(),
        reason: "an oracle position is {\"emitted\":N}".into(),
    };
    let value: serde_json::Value = serde_json::from_slice(&position.0).map_err(|_| bad())?;
    value["emitted"].as_u64().ok_or_else(bad)
}

/// The count a slot file holds (0 when it does not exist).
async fn read_slot(path: &Path) -> Result<u64, PluginError> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => text.trim().parse().map_err(|_| {
            PluginError::Other(format!(
                "the oracle slot {} holds {:?}, not a record count",
                path.display(),
                text.trim()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(PluginError::io(
            format!("reading the oracle slot {}", path.display()),
            e,
        )),
    }
}

/// Replace the slot file with `count`, atomically: a temporary file written and fsynced,
/// renamed over the slot, then the folder fsynced so the rename survives a machine crash.
fn write_slot(path: &Path, count: u64) -> std::io::Result<()> {
    use std::io::Write;
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(format!("{count}\n").as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, path)?;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::File::open(folder)?.sync_all()
}

#[async_trait::async_trait]
impl Source for OracleSource {
    async fn open(&mut self, position: Option<Position>) -> Result<(), PluginError> {
        let from_position = match &position {
            Some(p) => decode_position(p)?,
            None => 0,
        };
        self.confirmed = match &self.slot {
            Some(slot) => read_slot(slot).await?,
            None => 0,
        };
        // Upstream data below the confirmed count is gone. A real slot would resume after
        // it, silently; the oracle refuses: it is told a position only after the engine
        // persisted it (invariant 2), so a position behind the slot means the engine acked
        // before persisting (or the position was moved back by hand).
        if from_position < self.confirmed {
            return Err(PluginError::Other(format!(
                "the oracle slot has confirmed {} records but the position resumes after {}: \
                 records {}..{} are gone upstream (the source was acked before its position \
                 was persisted); delete the slot file to start over",
                self.confirmed,
                from_position,
                from_position + 1,
                self.confirmed
            )));
        }
        self.emitted = from_position;
        Ok(())
    }

    async fn read(&mut self, max: usize) -> Result<Vec<Record>, PluginError> {
        // Cancel-safety: records are made only after the last await, and `emitted` moves
        // past them in the same step, so a dropped read has taken nothing.
        let mut wanted = max.clamp(1, self.batch_size) as u64;
        if self.records > 0 {
            let left = self.records.saturating_sub(self.emitted);
            if left == 0 {
                // All emitted: nothing more, ever (the pipeline stays up until stopped).
                tokio::time::sleep(IDLE_READ).await;
                return Ok(Vec::new());
            }
            wanted = wanted.min(left);
        }
        // Let other tasks run between batches: this source never waits for input.
        tokio::task::yield_now().await;
        let first = self.emitted;
        let records = (first..first + wanted).map(|i| self.record(i)).collect();
        self.emitted = first + wanted;
        Ok(records)
    }

    async fn ack(&mut self, position: Position) -> Result<(), PluginError> {
        let Some(slot) = self.slot.clone() else {
            return Ok(());
        };
        let count = decode_position(&position)?;
        if count <= self.confirmed {
            return Ok(());
        }
        let path = slot.clone();
        tokio::task::spawn_blocking(move || write_slot(&path, count))
            .await
            .map_err(|e| PluginError::Other(format!("writing the oracle slot: {e}")))?
            .map_err(|e| {
                PluginError::io(format!("writing the oracle slot {}", slot.display()), e)
            })?;
        self.confirmed = count;
        // Reliability tests crash here: the slot has moved (upstream data is gone); if the
        // engine had not persisted the position yet, the restart would resume behind it.
        fail::fail_point!("oracle::source::after_ack", |_| {
            eprintln!("fail point oracle::source::after_ack: crashing the process");
            std::process::abort()
        });
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{observe, Oracle};
    use super::*;
    use culvert_plugins::connector::ConnectorPlugin;
    use culvert_plugins::spec;

    fn source(pairs: &[(&str, &str)]) -> Result<Box<dyn Source>, PluginError> {
        let plugin = Oracle::new();
        let settings: Settings = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let settings = spec::validate(plugin.specification().source.as_ref().unwrap(), &settings)?;
        plugin.new_source(&settings)
    }

    fn id(record: &Record) -> (u64, u64) {
        observe(record).id.expect("an oracle id")
    }

    #[tokio::test]
    async fn emits_round_robin_ids_with_hashes_and_resumes_from_a_position() {
        let mut s = source(&[
            ("partitions", "3"),
            ("records", "10"),
            ("payloadSize", "20"),
        ])
        .unwrap();
        s.open(None).await.unwrap();
        let first = s.read(4).await.unwrap();
        let ids: Vec<_> = first.iter().map(id).collect();
        assert_eq!(ids, [(0, 1), (1, 1), (2, 1), (0, 2)]);
        let r = &first[3];
        assert_eq!(r.key, Some(Data::Raw(b"0-2".to_vec())));
        assert_eq!(r.operation, Operation::Create);
        assert_eq!(r.position, Position(br#"{"emitted":4}"#.to_vec()));
        assert_eq!(r.payload.after, Some(Data::Raw(payload(0, 2, 20))));
        assert_eq!(
            r.metadata[HASH],
            format!("{:016x}", hash(&payload(0, 2, 20)))
        );
        assert_eq!(r.metadata[HASH].len(), 16);
        assert!(first.iter().all(|r| observe(r).hash_ok));
        assert!(!r.metadata.contains_key(POISON));
        let rest = s.read(100).await.unwrap();
        assert_eq!(rest.len(), 6, "only `records` in all");
        assert_eq!(id(&rest[5]), (0, 4));
        assert!(s.read(100).await.unwrap().is_empty(), "done: nothing more");

        // Resumed right after a record's position: the same records again, byte for byte.
        let mut again = source(&[
            ("partitions", "3"),
            ("records", "10"),
            ("payloadSize", "20"),
        ])
        .unwrap();
        again.open(Some(first[1].position.clone())).await.unwrap();
        let resumed = again.read(100).await.unwrap();
        assert_eq!(resumed.len(), 8);
        assert_eq!(resumed[..2], first[2..]);
        assert_eq!(resumed[2..], rest[..]);

        let error = again
            .open(Some(Position(b"12".to_vec())))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("{\"emitted\":N}"), "{error}");
    }

    #[tokio::test]
    async fn batch_size_caps_reads_and_poison_is_deterministic() {
        let mut s = source(&[("batchSize", "7"), ("poisonPercent", "30")]).unwrap();
        s.open(None).await.unwrap();
        let mut records = Vec::new();
        for _ in 0..100 {
            let batch = s.read(1000).await.unwrap();
            assert_eq!(batch.len(), 7);
            records.extend(batch);
        }
        let poisoned: Vec<(u64, u64)> = records
            .iter()
            .filter(|r| r.metadata.get(POISON) == Some("true"))
            .map(id)
            .collect();
        assert!((140..280).contains(&poisoned.len()), "{}", poisoned.len());
        assert!(poisoned.iter().all(|(p, s)| is_poison(*p, *s, 30.0)));
        assert_eq!(id(&records[699]), (3, 175), "4 partitions by default");
    }

    #[tokio::test]
    async fn the_slot_discards_what_was_acked_and_a_reopen_skips_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let slot = dir.path().join("slot");
        let settings = [
            ("partitions", "2"),
            ("records", "100"),
            ("slot", slot.to_str().unwrap()),
        ];
        let mut s = source(&settings).unwrap();
        s.open(None).await.unwrap();
        let batch = s.read(30).await.unwrap();
        assert!(!slot.exists(), "nothing confirmed yet");
        s.ack(batch[19].position.clone()).await.unwrap();
        assert_eq!(std::fs::read_to_string(&slot).unwrap(), "20\n");
        // An older ack does not move the slot back.
        s.ack(batch[4].position.clone()).await.unwrap();
        assert_eq!(std::fs::read_to_string(&slot).unwrap(), "20\n");
        s.teardown().await.unwrap();

        // Reopened at an older position (as if the position were never persisted): records
        // 6..20 are gone upstream; the source refuses to go on with a gap.
        let mut reopened = source(&settings).unwrap();
        let refused = reopened
            .open(Some(batch[4].position.clone()))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("records 6..20 are gone upstream"),
            "{refused}"
        );
        // At the confirmed position (or after it) it resumes.
        let mut reopened = source(&settings).unwrap();
        reopened
            .open(Some(batch[19].position.clone()))
            .await
            .unwrap();
        let next = reopened.read(1).await.unwrap();
        assert_eq!(next[0].position, encode_position(21));
        assert_eq!(id(&next[0]), (0, 11));
        // A position ahead of the slot wins.
        let mut ahead = source(&settings).unwrap();
        ahead.open(Some(batch[29].position.clone())).await.unwrap();
        assert_eq!(
            ahead.read(1).await.unwrap()[0].position,
            encode_position(31)
        );
        // No slot file: from the position (or the start).
        std::fs::remove_file(&slot).unwrap();
        let mut fresh = source(&settings).unwrap();
        fresh.open(None).await.unwrap();
        assert_eq!(fresh.read(1).await.unwrap()[0].position, encode_position(1));
        // A slot that holds no count is a clear error.
        std::fs::write(&slot, "garbage").unwrap();
        let mut broken = source(&settings).unwrap();
        let error = broken.open(None).await.unwrap_err().to_string();
        assert!(error.contains("not a record count"), "{error}");
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let error = |pairs: &[(&str, &str)]| source(pairs).err().expect("refused").to_string();
        assert!(error(&[("partitions", "0")]).contains("\"partitions\""));
        assert!(error(&[("partitions", "x")]).contains("\"partitions\""));
        assert!(error(&[("records", "-1")]).contains("\"records\""));
        assert!(error(&[("payloadSize", "big")]).contains("\"payloadSize\""));
        assert!(error(&[("batchSize", "0")]).contains("\"batchSize\""));
        assert!(error(&[("poisonPercent", "101")]).contains("\"poisonPercent\""));
        assert!(error(&[("poisonPercent", "-1")]).contains("\"poisonPercent\""));
        assert!(error(&[("colour", "red")]).contains("\"colour\""));
        assert!(source(&[("poisonPercent", "0.5")]).is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_are_cancel_safe() {
        use culvert_plugins::testing::{check_cancel_safety, CancelSafety};
        let dir = tempfile::tempdir().unwrap();
        let count = 20_000u64;
        let expected: Vec<Vec<u8>> = (0..count)
            .map(|i| format!("{}-{}", i % 3, i / 3 + 1).into_bytes())
            .collect();
        let key = |r: &Record| match &r.key {
            Some(Data::Raw(bytes)) => bytes.clone(),
            other => panic!("a raw key expected, got {other:?}"),
        };
        let plain = [
            ("partitions", "3"),
            ("records", "20000"),
            ("batchSize", "250"),
        ];
        let report = check_cancel_safety(
            || source(&plain).unwrap(),
            &expected,
            key,
            &CancelSafety::default(),
        )
        .await
        .unwrap_or_else(|violation| panic!("{violation}"));
        assert!(report.cancelled >= 2_000, "{report:?}");
        // With a slot too (acks write it): each pass gets a slot of its own, or it would
        // start where the last one was confirmed.
        let mut pass = 0;
        let report = check_cancel_safety(
            || {
                pass += 1;
                let slot = dir.path().join(format!("slot-{pass}"));
                source(&[
                    ("partitions", "3"),
                    ("records", "20000"),
                    ("slot", slot.to_str().unwrap()),
                ])
                .unwrap()
            },
            &expected,
            key,
            &CancelSafety {
                cancellations: 500,
                ..CancelSafety::default()
            },
        )
        .await
        .unwrap_or_else(|violation| panic!("{violation}"));
        assert!(report.cancelled >= 500, "{report:?}");
    }
}
