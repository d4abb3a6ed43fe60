//! `builtin:file`: a source that reads a file line by line and follows appends, and a
//! destination that appends one record per line in Conduit's JSON form.
//!
//! Source records: the line (without its newline) as raw `payload.after`, operation
//! `create`, key the line's number (from 1, raw), metadata `file.path`; the position is the
//! byte offset just past the line, so a restart resumes at the next line. A last line
//! without a newline is not read until its newline arrives.
//!
//! The destination writes each batch after the previous one returned; records survive a
//! crash of the server process once `write` returns (they are in the operating system's
//! hands). Set `sync: true` to also fsync each batch, for machine crashes, at a cost in
//! speed. A crash in the middle of a write can leave a torn last line: the destination cuts
//! it off when it opens (those records were never acked and come again).

use culvert_domain::parse_bool;
use culvert_domain::{Change, Data, Operation, Position, Record};
use culvert_plugins::connector::{
    ConnectorPlugin, Destination, PluginError, Settings, Source, Specification,
};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};

/// The version listed and accepted in references (`builtin:file@v0.10.8`): the version of
/// Conduit's `conduit-connector-file` that Conduit bundles and this connector matches.
pub const CONDUIT_VERSION: &str = "v0.10.8";

/// How often a source at the end of its file looks for appended lines.
const POLL: Duration = Duration::from_millis(50);

/// The file plugin.
pub struct File {
    spec: Specification,
}

impl File {
    /// The plugin with its specification.
    pub fn new() -> Self {
        let path = || {
            Parameter::new("path", ParameterType::String, "Path to the file.")
                .validate(Validation::Required)
        };
        Self {
            spec: Specification {
                name: "file",
                summary: "Reads lines from a file (following appends); writes records to a \
                          file as JSON lines.",
                description: "The source emits each line as a raw record and keeps reading \
                    as the file grows; its position is a byte offset. The destination appends \
                    one record per line in OpenCDC JSON.",
                version: CONDUIT_VERSION,
                author: "Culvert",
                source: Some(vec![path()]),
                destination: Some(vec![
                    path(),
                    Parameter::new(
                        "sync",
                        ParameterType::Bool,
                        "fsync after every batch (survives machine crashes; slower).",
                    )
                    .default_value("false"),
                ]),
                standalone: false,
            },
        }
    }
}

impl Default for File {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectorPlugin for File {
    fn specification(&self) -> &Specification {
        &self.spec
    }

    fn new_source(&self, settings: &Settings) -> Result<Box<dyn Source>, PluginError> {
        let path = path(settings);
        Ok(Box::new(FileSource {
            path_text: path.display().to_string(),
            path,
            reader: None,
            offset: 0,
            line_number: 0,
            line: Vec::new(),
            pending: Vec::new(),
        }))
    }

    fn new_destination(&self, settings: &Settings) -> Result<Box<dyn Destination>, PluginError> {
        Ok(Box::new(FileDestination {
            path: path(settings),
            sync: settings
                .get("sync")
                .and_then(|v| parse_bool(v))
                .unwrap_or(false),
            file: None,
            buffer: Vec::new(),
        }))
    }
}

fn path(settings: &Settings) -> PathBuf {
    PathBuf::from(settings.get("path").cloned().unwrap_or_default())
}

/// A file being read.
pub struct FileSource {
    path: PathBuf,
    reader: Option<BufReader<tokio::fs::File>>,
    /// Offset just past the last whole line emitted.
    offset: u64,
    /// Number of the last line emitted.
    line_number: u64,
    /// Bytes of the line being read (kept across cancelled reads).
    line: Vec<u8>,
    /// Whole lines read and not yet returned (kept across cancelled reads).
    pending: Vec<Record>,
    /// The path as it goes in each record's `file.path`.
    path_text: String,
}

/// A file position: `offset:line` (both decimal).
fn encode_position(offset: u64, line: u64) -> Position {
    Position(format!("{offset}:{line}").into_bytes())
}

fn decode_position(p: &Position) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(&p.0).ok()?;
    let (offset, line) = text.split_once(':')?;
    Some((offset.parse().ok()?, line.parse().ok()?))
}

#[async_trait::async_trait]
impl Source for FileSource {
    async fn open(&mut self, position: Option<Position>) -> Result<(), PluginError> {
        if let Some(p) = position {
            (self.offset, self.line_number) =
                decode_position(&p).ok_or_else(|| PluginError::InvalidPosition {
                    position: String::from_utf8_lossy(&p.0).into_owned(),
                    reason: "a file position is OFFSET:LINE".into(),
                })?;
        }
        let display = self.path.display().to_string();
        let mut file = tokio::fs::File::open(&self.path)
            .await
            .map_err(|e| PluginError::io(format!("opening {display}"), e))?;
        let length = file
            .metadata()
            .await
            .map_err(|e| PluginError::io(format!("reading the size of {display}"), e))?
            .len();
        if self.offset > length {
            return Err(PluginError::InvalidPosition {
                position: self.offset.to_string(),
                reason: format!("{display} is only {length} bytes long (was it truncated?)"),
            });
        }
        file.seek(std::io::SeekFrom::Start(self.offset))
            .await
            .map_err(|e| PluginError::io(format!("seeking in {display}"), e))?;
        self.reader = Some(BufReader::new(file));
        Ok(())
    }

    async fn read(&mut self, max: usize) -> Result<Vec<Record>, PluginError> {
        let max = max.max(1);
        let reader = self
            .reader
            .as_mut()
            .ok_or_else(|| PluginError::Other("read before open".into()))?;
        // Cancel-safety: everything taken from the file stays in `self` until it is returned
        // — the line being read in `self.line` (`read_until` appends to it and keeps what it
        // read if this future is dropped), whole lines as records in `self.pending`, with
        // `offset` and `line_number` moved past them. A dropped read loses nothing: the next
        // one returns them.
        while self.pending.len() < max {
            reader
                .read_until(b'\n', &mut self.line)
                .await
                .map_err(|e| PluginError::io(format!("reading {}", self.path.display()), e))?;
            if self.line.ends_with(b"\n") {
                self.offset += self.line.len() as u64;
                self.line_number += 1;
                let mut bytes = std::mem::take(&mut self.line);
                bytes.pop();
                if bytes.ends_with(b"\r") {
                    bytes.pop();
                }
                self.pending.push(Record {
                    position: encode_position(self.offset, self.line_number),
                    operation: Operation::Create,
                    metadata: [("file.path".to_owned(), self.path_text.clone())].into(),
                    key: Some(Data::Raw(self.line_number.to_string().into_bytes())),
                    payload: Change {
                        before: None,
                        after: Some(Data::Raw(bytes)),
                    },
                });
                continue;
            }
            // The end of the file for now (perhaps mid-line): hand over what we have, or
            // wait a little for the file to grow and return empty-handed (the engine
            // delivers acks between reads).
            if self.pending.is_empty() {
                tokio::time::sleep(POLL).await;
            }
            break;
        }
        // A read dropped earlier may have gathered more than this one may return.
        if self.pending.len() <= max {
            Ok(std::mem::take(&mut self.pending))
        } else {
            Ok(self.pending.drain(..max).collect())
        }
    }

    async fn ack(&mut self, _position: Position) -> Result<(), PluginError> {
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        self.reader = None;
        Ok(())
    }
}

/// A file being appended to.
pub struct FileDestination {
    path: PathBuf,
    sync: bool,
    /// Opened (and its torn last line cut) with tokio; written from a blocking thread.
    file: Option<Arc<std::fs::File>>,
    buffer: Vec<u8>,
}

#[async_trait::async_trait]
impl Destination for FileDestination {
    async fn open(&mut self) -> Result<(), PluginError> {
        let context = |what: &str| format!("{what} {}", self.path.display());
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(|e| {
                PluginError::io(format!("opening {} for writing", self.path.display()), e)
            })?;
        // A crash in the middle of a write can leave a last line without its newline. That
        // write never returned, so its records were not acked and will come again: cut the
        // torn line off rather than glue the next record onto it.
        let length = file
            .metadata()
            .await
            .map_err(|e| PluginError::io(context("reading the size of"), e))?
            .len();
        if length > 0 {
            let keep = whole_lines_length(&mut file, length)
                .await
                .map_err(|e| PluginError::io(context("checking the end of"), e))?;
            if keep < length {
                tracing::warn!(
                    path = %self.path.display(),
                    bytes = length - keep,
                    "cutting off a torn last line left by an interrupted write"
                );
                file.set_len(keep)
                    .await
                    .map_err(|e| PluginError::io(context("truncating"), e))?;
            }
        }
        self.file = Some(Arc::new(file.into_std().await));
        Ok(())
    }

    async fn write(&mut self, records: &[Record]) -> Result<(), PluginError> {
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| PluginError::Other("write before open".into()))?;
        self.buffer.clear();
        for record in records {
            record.write_json(&mut self.buffer);
            self.buffer.push(b'\n');
        }
        let context = || format!("writing to {}", self.path.display());
        append_durably(file, &mut self.buffer, self.sync, context).await
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        // Every write went to the operating system before it returned: nothing to flush.
        self.file = None;
        Ok(())
    }
}

/// The length of the file up to and including its last newline.
async fn whole_lines_length(file: &mut tokio::fs::File, length: u64) -> std::io::Result<u64> {
    use tokio::io::AsyncReadExt;
    const CHUNK: u64 = 64 * 1024;
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

/// Append `bytes` to `file` so that the records in them may be acked: written to the
/// operating system and, with `sync`, on disk (invariant 1 of ARCHITECTURE.md), before this
/// returns. The write runs on a blocking thread, off the runtime's workers; `bytes` goes
/// there and back without a copy (it is left empty if this future is dropped half-way).
/// Errors name what was being written (`context`).
pub(crate) async fn append_durably(
    file: &Arc<std::fs::File>,
    bytes: &mut Vec<u8>,
    sync: bool,
    context: impl Fn() -> String,
) -> Result<(), PluginError> {
    let (file, owned) = (file.clone(), std::mem::take(bytes));
    let (owned, written) = tokio::task::spawn_blocking(move || {
        let mut writer: &std::fs::File = &file;
        let written = std::io::Write::write_all(&mut writer, &owned).and_then(|()| {
            if sync {
                file.sync_data()
            } else {
                Ok(())
            }
        });
        (owned, written)
    })
    .await
    .map_err(|e| PluginError::Other(format!("{}: the writing thread failed: {e}", context())))?;
    *bytes = owned;
    written.map_err(|e| PluginError::io(context(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[tokio::test]
    async fn destination_appends_json_lines_that_the_source_reads_back_and_follows() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        let plugin = File::new();
        let path = out.to_str().unwrap();
        let mut dest = plugin
            .new_destination(&settings(&[("path", path)]))
            .unwrap();
        dest.open().await.unwrap();
        let record = |n: u8| Record {
            position: Position(vec![n]),
            key: Some(Data::Raw(vec![n])),
            ..Record::default()
        };
        dest.write(&[record(1), record(2)]).await.unwrap();

        let mut source = plugin.new_source(&settings(&[("path", path)])).unwrap();
        source.open(None).await.unwrap();
        let lines = source.read(10).await.unwrap();
        assert_eq!(lines.len(), 2);
        let Some(Data::Raw(first)) = &lines[0].payload.after else {
            panic!("raw line expected");
        };
        assert_eq!(Record::from_json(first).unwrap(), record(1));
        // Appends are followed; a restart resumes after the last position.
        dest.write(&[record(3)]).await.unwrap();
        let third = source.read(10).await.unwrap();
        assert_eq!(third.len(), 1);
        dest.teardown().await.unwrap();
        let mut resumed = plugin.new_source(&settings(&[("path", path)])).unwrap();
        resumed.open(Some(lines[1].position.clone())).await.unwrap();
        let again = resumed.read(10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].position, third[0].position);
        assert_eq!(again[0].key, Some(Data::Raw(b"3".to_vec())));
    }

    #[tokio::test]
    async fn a_torn_last_line_is_cut_off_when_the_destination_opens() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        std::fs::write(&out, "{\"a\":1}\n{\"b\":").unwrap();
        let plugin = File::new();
        let mut dest = plugin
            .new_destination(&settings(&[("path", out.to_str().unwrap())]))
            .unwrap();
        dest.open().await.unwrap();
        dest.write(&[Record::default()]).await.unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], "{\"a\":1}");
        assert!(Record::from_json(lines[1].as_bytes()).is_ok());
        // A file with no newline at all is one torn line.
        std::fs::write(&out, "{\"torn").unwrap();
        let mut dest = plugin
            .new_destination(&settings(&[("path", out.to_str().unwrap())]))
            .unwrap();
        dest.open().await.unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
    }

    #[tokio::test]
    async fn a_partial_last_line_waits_for_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.txt");
        std::fs::write(&input, "one\ntw").unwrap();
        let plugin = File::new();
        let mut source = plugin
            .new_source(&settings(&[("path", input.to_str().unwrap())]))
            .unwrap();
        source.open(None).await.unwrap();
        assert_eq!(source.read(10).await.unwrap().len(), 1);
        // No newline yet: the read waits a little and comes back empty-handed.
        assert!(source.read(10).await.unwrap().is_empty(), "no newline yet");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&input)
            .unwrap();
        std::io::Write::write_all(&mut f, b"o\n").unwrap();
        let two = source.read(10).await.unwrap();
        assert_eq!(two[0].payload.after, Some(Data::Raw(b"two".to_vec())));
    }

    #[tokio::test]
    async fn unwritable_paths_and_bad_positions_are_clear_errors() {
        let plugin = File::new();
        let mut dest = plugin
            .new_destination(&settings(&[("path", "/nonexistent-dir/out.jsonl")]))
            .unwrap();
        let error = dest.open().await.unwrap_err().to_string();
        assert!(
            error.contains("opening /nonexistent-dir/out.jsonl for writing"),
            "{error}"
        );
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.txt");
        std::fs::write(&input, "x\n").unwrap();
        let mut source = plugin
            .new_source(&settings(&[("path", input.to_str().unwrap())]))
            .unwrap();
        let error = source
            .open(Some(Position(b"100:3".to_vec())))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("only 2 bytes long"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_are_cancel_safe() {
        use culvert_plugins::testing::{check_cancel_safety, CancelSafety};
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.txt");
        // Lines of different lengths, long enough that reads span many buffer refills (each
        // one an await point where the harness drops the read).
        let lines: Vec<Vec<u8>> = (0..20_000)
            .map(|n| format!("line {n:06} {}", "x".repeat(n % 97)).into_bytes())
            .collect();
        let mut text = lines.join(&b'\n');
        text.push(b'\n');
        std::fs::write(&input, text).unwrap();
        let plugin = File::new();
        let settings = settings(&[("path", input.to_str().unwrap())]);
        let report = check_cancel_safety(
            || plugin.new_source(&settings).unwrap(),
            &lines,
            |r| match &r.payload.after {
                Some(Data::Raw(bytes)) => bytes.clone(),
                other => panic!("a raw line expected, got {other:?}"),
            },
            // Each buffer refill is one await point: drop reads early, and allow enough
            // passes for a loaded machine (it stops at 2,000 dropped reads).
            &CancelSafety {
                max_pending: 2,
                max_passes: 2_000,
                ..CancelSafety::default()
            },
        )
        .await
        .unwrap_or_else(|violation| panic!("{violation}"));
        assert!(report.cancelled >= 2_000, "{report:?}");
    }
}
