//! The oracle's destination: one ledger line per record written (see the module docs of
//! [`super`]).

use super::{invalid, observe};
use culvert_domain::{parse_bool, Record};
use culvert_plugins::connector::{Destination, PluginError, Settings};
use std::io::Write as _;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// A ledger being appended to.
pub struct OracleDestination {
    ledger: PathBuf,
    sync: bool,
    /// Opened (and its torn last line cut) with tokio; written from a blocking thread.
    file: Option<std::sync::Arc<std::fs::File>>,
    buffer: Vec<u8>,
}

impl OracleDestination {
    /// A destination with these settings; every problem names its setting.
    pub fn new(settings: &Settings) -> Result<Self, PluginError> {
        let ledger = settings.get("ledger").map(|s| s.trim()).unwrap_or("");
        if ledger.is_empty() {
            return Err(invalid(
                "ledger",
                "required parameter is not provided".into(),
            ));
        }
        let sync = match settings.get("sync").map(|s| s.trim()).unwrap_or("") {
            "" => true,
            text => parse_bool(text)
                .ok_or_else(|| invalid("sync", format!("{text:?} is not a boolean")))?,
        };
        Ok(Self {
            ledger: PathBuf::from(ledger),
            sync,
            file: None,
            buffer: Vec::new(),
        })
    }
}

/// Append the ledger line of `record` to `out`: `partition,seq,hash_ok` or `?,?,0`.
pub(super) fn ledger_line(record: &Record, out: &mut Vec<u8>) {
    let seen = observe(record);
    let written = match seen.id {
        Some((partition, seq)) => writeln!(out, "{partition},{seq},{}", u8::from(seen.hash_ok)),
        None => writeln!(out, "?,?,0"),
    };
    written.expect("writing to a Vec cannot fail");
}

#[async_trait::async_trait]
impl Destination for OracleDestination {
    async fn open(&mut self) -> Result<(), PluginError> {
        let context = |what: &str| format!("{what} the oracle ledger {}", self.ledger.display());
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.ledger)
            .await
            .map_err(|e| PluginError::io(context("opening"), e))?;
        let length = file
            .metadata()
            .await
            .map_err(|e| PluginError::io(context("reading the size of"), e))?
            .len();
        // A kill in the middle of a write can leave a last line without its newline; that
        // write never returned, so its records were not acked and come again.
        let keep = whole_lines_length(&mut file, length)
            .await
            .map_err(|e| PluginError::io(context("checking the end of"), e))?;
        if keep < length {
            tracing::warn!(
                ledger = %self.ledger.display(),
                bytes = length - keep,
                "cutting off a torn last ledger line left by an interrupted write"
            );
            file.set_len(keep)
                .await
                .map_err(|e| PluginError::io(context("truncating"), e))?;
            file.sync_data()
                .await
                .map_err(|e| PluginError::io(context("syncing"), e))?;
        }
        self.file = Some(std::sync::Arc::new(file.into_std().await));
        Ok(())
    }

    async fn write(&mut self, records: &[Record]) -> Result<(), PluginError> {
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| PluginError::Other("write before open".into()))?;
        self.buffer.clear();
        for record in records {
            ledger_line(record, &mut self.buffer);
        }
        let context = || format!("writing to the oracle ledger {}", self.ledger.display());
        crate::file::append_durably(file, &mut self.buffer, self.sync, context).await
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        // Every write went to the operating system before it returned: nothing to flush.
        self.file = None;
        Ok(())
    }
}

/// The length of the file up to and including its last newline.
async fn whole_lines_length(file: &mut tokio::fs::File, length: u64) -> std::io::Result<u64> {
    const CHUNK: u64 = 4096;
    let mut end = length;
    let mut buffer = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        buffer.resize((end - start) as usize, 0);
        file.seek(std::io::SeekFrom::Start(start)).await?;
        file.read_exact(&mut buffer).await?;
        if let Some(i) = buffer.iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::{Oracle, OracleSource};
    use super::*;
    use culvert_domain::Data;
    use culvert_plugins::connector::{ConnectorPlugin, Source};

    fn destination(ledger: &std::path::Path, sync: &str) -> Box<dyn Destination> {
        let settings: Settings = [
            ("ledger".to_owned(), ledger.to_str().unwrap().to_owned()),
            ("sync".to_owned(), sync.to_owned()),
        ]
        .into();
        Oracle::new().new_destination(&settings).unwrap()
    }

    async fn records(n: usize) -> Vec<Record> {
        let settings: Settings = [("partitions".to_owned(), "2".to_owned())].into();
        let mut source = OracleSource::new(&settings).unwrap();
        source.open(None).await.unwrap();
        source.read(n).await.unwrap()
    }

    #[tokio::test]
    async fn writes_a_ledger_line_per_record_and_marks_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger");
        let mut dest = destination(&ledger, "true");
        dest.open().await.unwrap();
        let mut batch = records(4).await;
        // A payload changed on the way, and a record that is not the oracle's.
        batch[2].payload.after = Some(Data::Raw(b"tampered".to_vec()));
        batch.push(Record::default());
        dest.write(&batch).await.unwrap();
        dest.write(&records(1).await).await.unwrap();
        dest.teardown().await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&ledger).unwrap(),
            "0,1,1\n1,1,1\n0,2,0\n1,2,1\n?,?,0\n0,1,1\n"
        );
    }

    #[tokio::test]
    async fn a_torn_last_line_is_cut_off_when_the_ledger_opens() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger");
        std::fs::write(&ledger, "0,1,1\n1,1,1\n0,2").unwrap();
        let mut dest = destination(&ledger, "false");
        dest.open().await.unwrap();
        dest.write(&records(3).await[2..]).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&ledger).unwrap(),
            "0,1,1\n1,1,1\n0,2,1\n"
        );
        // A ledger with no newline at all is one torn line; a long one spans chunks.
        std::fs::write(&ledger, "7".repeat(10_000)).unwrap();
        let mut dest = destination(&ledger, "true");
        dest.open().await.unwrap();
        assert_eq!(std::fs::read_to_string(&ledger).unwrap(), "");
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let plugin = Oracle::new();
        let error = |pairs: &[(&str, &str)]| {
            let settings: Settings = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let params = plugin.specification().destination.as_ref().unwrap();
            match culvert_plugins::spec::validate(params, &settings) {
                Err(e) => e.to_string(),
                Ok(settings) => plugin.new_destination(&settings).err().unwrap().to_string(),
            }
        };
        assert!(error(&[]).contains("\"ledger\""));
        assert!(error(&[("ledger", "/tmp/x"), ("sync", "maybe")]).contains("\"sync\""));
        let direct = OracleDestination::new(&Settings::new()).err().unwrap();
        assert!(direct.to_string().contains("\"ledger\""), "{direct}");
    }
}
