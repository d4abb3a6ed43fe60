//! The source: a snapshot of the objects under `prefix`, then their changes, polled every
//! `pollingPeriod`.
//!
//! **Snapshot.** Objects are listed in the bucket's key order (ListObjectsV2, one page at a
//! time) and each becomes a `snapshot` record. Its position (`KEY_sT`) says which key was
//! read last, so a restart resumes after it (`StartAfter`); `T` is the second the change
//! reader starts from, fixed when the snapshot starts: [`SETTLE_SECS`] before its start, so
//! that an object changed while the snapshot ran is read again as a change.
//!
//! **Changes.** Every poll lists every version under the prefix (ListObjectVersions).
//! The latest version of each key whose (last-modified second, key) comes after the
//! cursor is a record, in that order: a delete marker is a `delete`, an object with older
//! versions an `update`, else a `create` (deletes and updates need bucket versioning, as in
//! Conduit). A change becomes a record only once its second is [`SETTLE_SECS`] old, so
//! that every change of a second is listed before the cursor passes it: nothing written
//! in the same second as the cursor is skipped. A version the snapshot read that was
//! written at or after `T` is not read again as a change (an in-memory set, kept while
//! that version is the latest and after the cursor; after a restart mid-snapshot these
//! few may come twice).
//!
//! **Records.** Key: the object's key (raw); payload: its bytes (raw; none for deletes);
//! metadata: `s3.header.contentType` and the object's user metadata.
//!
//! **Cancel-safety.** Everything `read` takes from S3 (listed keys, fetched objects, built
//! records, a partial listing) is kept in `self` before the next await, and a key is taken
//! off the queue only once its record is built, so a dropped read loses nothing.

use crate::client::{self, failed};
use crate::config::SourceConfig;
use crate::position::Cursor;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::Client;
use culvert_domain::{Change, Data, Metadata, Operation, Position, Record};
use culvert_plugins::connector::{PluginError, Source, IDLE_READ};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// How old (in whole seconds) a change must be before it is read, and how far before a
/// snapshot's start its change reader begins.
pub const SETTLE_SECS: i64 = 2;

/// Metadata key of an object's `Content-Type`.
pub const CONTENT_TYPE: &str = "s3.header.contentType";

/// The S3 source (see the module docs).
pub struct S3Source {
    config: SourceConfig,
    client: Option<Client>,
    stage: Stage,
    /// Keys listed and not yet made records, in order.
    queue: VecDeque<Pending>,
    /// Records made and not yet returned (a read dropped after making them).
    ready: VecDeque<Record>,
    /// A change listing under way (its pages so far).
    scan: Option<Scan>,
    /// When the next change listing starts.
    next_poll: Instant,
    /// Objects the snapshot read that changed at or after the change reader's start:
    /// (key, ETag, last-modified second), not to be read again as changes.
    seen: HashSet<(String, String, i64)>,
}

#[derive(Debug)]
enum Stage {
    Snapshot {
        /// The last key read (resume after it).
        after: Option<String>,
        /// The change reader's first second.
        from: i64,
        /// Where the next page starts (`None`: the first page).
        token: Option<String>,
        /// The last page has been listed.
        listed: bool,
    },
    Changes {
        second: i64,
        key: String,
    },
}

#[derive(Debug)]
struct Pending {
    key: String,
    operation: Operation,
    /// Last-modified second (changes only).
    second: i64,
    /// The version to fetch (changes in a versioned bucket).
    version: Option<String>,
}

#[derive(Debug, Default)]
struct Scan {
    key_marker: Option<String>,
    version_marker: Option<String>,
    /// Latest versions: key -> (second, ETag, version id, is a delete marker).
    latest: BTreeMap<String, (i64, String, Option<String>, bool)>,
    /// Keys with a version that is not the latest.
    older: HashSet<String>,
}

/// An object read.
struct Object {
    body: Vec<u8>,
    metadata: Metadata,
    etag: String,
    second: i64,
}

impl S3Source {
    /// A source with these settings; connects when opened.
    pub fn new(config: SourceConfig) -> Self {
        Self {
            config,
            client: None,
            stage: Stage::Changes {
                second: 0,
                key: String::new(),
            },
            queue: VecDeque::new(),
            ready: VecDeque::new(),
            scan: None,
            next_poll: Instant::now(),
            seen: HashSet::new(),
        }
    }

    fn client(&self) -> Result<&Client, PluginError> {
        self.client
            .as_ref()
            .ok_or_else(|| PluginError::Other("the S3 source was not opened".to_owned()))
    }

    /// One step of reading: fetch the next queued object, list the next page, or poll.
    /// Returns `false` when there is nothing to do before the next poll.
    async fn step(&mut self) -> Result<bool, PluginError> {
        if let Some(pending) = self.queue.front() {
            let object = match pending.operation {
                Operation::Delete => None,
                _ => {
                    let fetched = self.fetch(&pending.key, pending.version.as_deref()).await?;
                    if fetched.is_none() {
                        // Gone since it was listed: its deletion is a later change.
                        self.skip_front();
                        return Ok(true);
                    }
                    fetched
                }
            };
            let pending = self.queue.pop_front().expect("the front was just read");
            let record = self.record(pending, object);
            self.ready.push_back(record);
            return Ok(true);
        }
        match &self.stage {
            Stage::Snapshot { listed: false, .. } => {
                self.list_snapshot_page().await?;
                Ok(true)
            }
            Stage::Snapshot { from, .. } => {
                // The snapshot was empty from here on: read changes.
                self.stage = Stage::Changes {
                    second: *from,
                    key: String::new(),
                };
                Ok(true)
            }
            Stage::Changes { .. } => {
                if self.scan.is_none() && Instant::now() < self.next_poll {
                    return Ok(false);
                }
                self.list_versions_page().await?;
                Ok(true)
            }
        }
    }

    /// Drop the front of the queue without a record (the object is gone).
    fn skip_front(&mut self) {
        let pending = self.queue.pop_front().expect("a front to skip");
        if let Stage::Snapshot {
            after,
            from,
            listed,
            ..
        } = &mut self.stage
        {
            *after = Some(pending.key);
            if *listed && self.queue.is_empty() {
                self.stage = Stage::Changes {
                    second: *from,
                    key: String::new(),
                };
            }
        }
    }

    /// The record of a queued key, moving the cursor past it.
    fn record(&mut self, pending: Pending, object: Option<Object>) -> Record {
        let position = match &mut self.stage {
            Stage::Snapshot {
                after,
                from,
                listed,
                ..
            } => {
                if let Some(object) = &object {
                    if object.second >= *from {
                        self.seen
                            .insert((pending.key.clone(), object.etag.clone(), object.second));
                    }
                }
                if *listed && self.queue.is_empty() {
                    // The snapshot's last record: its position moves to the changes.
                    let cursor = Cursor::Changes {
                        second: *from,
                        key: String::new(),
                    };
                    self.stage = Stage::Changes {
                        second: *from,
                        key: String::new(),
                    };
                    cursor
                } else {
                    *after = Some(pending.key.clone());
                    Cursor::Snapshot {
                        after: Some(pending.key.clone()),
                        from: *from,
                    }
                }
            }
            Stage::Changes { second, key } => {
                *second = pending.second;
                key.clone_from(&pending.key);
                Cursor::Changes {
                    second: pending.second,
                    key: pending.key.clone(),
                }
            }
        };
        let (metadata, after) = match object {
            Some(object) => (object.metadata, Some(Data::Raw(object.body))),
            None => (Metadata::new(), None),
        };
        Record {
            position: position.to_position(),
            operation: pending.operation,
            metadata,
            key: Some(Data::Raw(pending.key.into_bytes())),
            payload: Change {
                before: None,
                after,
            },
        }
    }

    /// An object's bytes and metadata (`None`: it, or that version, no longer exists).
    async fn fetch(&self, key: &str, version: Option<&str>) -> Result<Option<Object>, PluginError> {
        let bucket = &self.config.common.bucket;
        let answer = self
            .client()?
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await;
        let output = match answer {
            Ok(output) => output,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => {
                return Err(failed(
                    format_args!("reading object {key:?} of bucket {bucket:?}"),
                    error,
                ))
            }
        };
        let mut metadata: Metadata = output
            .metadata()
            .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
            .unwrap_or_default();
        if let Some(content_type) = output.content_type() {
            metadata.insert(CONTENT_TYPE, content_type);
        }
        let etag = output.e_tag().unwrap_or_default().to_owned();
        let second = output.last_modified().map_or(0, |t| t.secs());
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| {
                failed(
                    format_args!("reading object {key:?} of bucket {bucket:?}"),
                    e,
                )
            })?
            .into_bytes()
            .to_vec();
        Ok(Some(Object {
            body,
            metadata,
            etag,
            second,
        }))
    }

    async fn list_snapshot_page(&mut self) -> Result<(), PluginError> {
        let Stage::Snapshot { after, token, .. } = &self.stage else {
            return Ok(());
        };
        let common = &self.config.common;
        let mut request = self
            .client()?
            .list_objects_v2()
            .bucket(&common.bucket)
            .prefix(&common.prefix);
        request = match token {
            Some(token) => request.continuation_token(token),
            None => request.set_start_after(after.clone()),
        };
        let page = request.send().await.map_err(|e| {
            failed(
                format_args!(
                    "listing objects of bucket {:?} under prefix {:?}",
                    common.bucket, common.prefix
                ),
                e,
            )
        })?;
        for object in page.contents() {
            if let Some(key) = object.key() {
                self.queue.push_back(Pending {
                    key: key.to_owned(),
                    operation: Operation::Snapshot,
                    second: 0,
                    version: None,
                });
            }
        }
        let Stage::Snapshot { token, listed, .. } = &mut self.stage else {
            unreachable!("the stage is the snapshot's")
        };
        *token = page.next_continuation_token().map(str::to_owned);
        *listed = !page.is_truncated().unwrap_or(false) || token.is_none();
        Ok(())
    }

    async fn list_versions_page(&mut self) -> Result<(), PluginError> {
        let scan = self.scan.get_or_insert_with(Scan::default);
        let common = &self.config.common;
        let request = self
            .client
            .as_ref()
            .ok_or_else(|| PluginError::Other("the S3 source was not opened".to_owned()))?
            .list_object_versions()
            .bucket(&common.bucket)
            .prefix(&common.prefix)
            .set_key_marker(scan.key_marker.clone())
            .set_version_id_marker(scan.version_marker.clone());
        let page = request.send().await.map_err(|e| {
            failed(
                format_args!(
                    "listing object versions of bucket {:?} under prefix {:?}",
                    common.bucket, common.prefix
                ),
                e,
            )
        })?;
        let scan = self.scan.as_mut().expect("a scan under way");
        for version in page.versions() {
            let Some(key) = version.key() else { continue };
            if version.is_latest().unwrap_or(false) {
                scan.latest.insert(
                    key.to_owned(),
                    (
                        version.last_modified().map_or(0, |t| t.secs()),
                        version.e_tag().unwrap_or_default().to_owned(),
                        version
                            .version_id()
                            .filter(|v| *v != "null")
                            .map(str::to_owned),
                        false,
                    ),
                );
            } else {
                scan.older.insert(key.to_owned());
            }
        }
        for marker in page.delete_markers() {
            let Some(key) = marker.key() else { continue };
            if marker.is_latest().unwrap_or(false) {
                scan.latest.insert(
                    key.to_owned(),
                    (
                        marker.last_modified().map_or(0, |t| t.secs()),
                        String::new(),
                        None,
                        true,
                    ),
                );
            }
        }
        if page.is_truncated().unwrap_or(false) {
            scan.key_marker = page.next_key_marker().map(str::to_owned);
            scan.version_marker = page.next_version_id_marker().map(str::to_owned);
            if scan.key_marker.is_some() {
                return Ok(());
            }
        }
        let scan = self.scan.take().expect("a scan under way");
        self.finish_scan(scan, unix_seconds());
        self.next_poll = Instant::now() + self.config.polling_period;
        Ok(())
    }

    /// Queue the changes a complete listing shows after the cursor, settled by `now`.
    fn finish_scan(&mut self, scan: Scan, now: i64) {
        let Stage::Changes { second, key } = &self.stage else {
            return;
        };
        let cursor = (*second, key.as_str());
        let mut changes: Vec<Pending> = Vec::new();
        for (name, (modified, etag, version, deleted)) in &scan.latest {
            if (*modified, name.as_str()) <= cursor || *modified > now - SETTLE_SECS {
                continue;
            }
            if !deleted && self.seen.contains(&(name.clone(), etag.clone(), *modified)) {
                // The snapshot read this very version.
                continue;
            }
            let operation = if *deleted {
                Operation::Delete
            } else if scan.older.contains(name) {
                Operation::Update
            } else {
                Operation::Create
            };
            changes.push(Pending {
                key: name.clone(),
                operation,
                second: *modified,
                version: version.clone(),
            });
        }
        // Remember snapshot reads only while they are the latest versions and after the
        // cursor: a skipped one does not move the cursor, so later polls see it again.
        self.seen.retain(|(name, etag, modified)| {
            (*modified, name.as_str()) > cursor
                && scan
                    .latest
                    .get(name)
                    .is_some_and(|(m, e, _, deleted)| !deleted && m == modified && e == etag)
        });
        changes.sort_by(|a, b| (a.second, &a.key).cmp(&(b.second, &b.key)));
        self.queue.extend(changes);
    }
}

/// Whether a failed call found nothing (no such key or version).
fn is_not_found<E>(error: &SdkError<E, HttpResponse>) -> bool {
    error
        .raw_response()
        .is_some_and(|r| r.status().as_u16() == 404)
}

fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[async_trait::async_trait]
impl Source for S3Source {
    async fn open(&mut self, position: Option<Position>) -> Result<(), PluginError> {
        let client = client::client(&self.config.common);
        client::check_bucket(&client, &self.config.common).await?;
        self.client = Some(client);
        self.stage = match position.as_ref().map(Cursor::parse).transpose()? {
            None => Stage::Snapshot {
                after: None,
                from: unix_seconds() - SETTLE_SECS,
                token: None,
                listed: false,
            },
            Some(Cursor::Snapshot { after, from }) => Stage::Snapshot {
                after,
                from,
                token: None,
                listed: false,
            },
            Some(Cursor::Changes { second, key }) => Stage::Changes { second, key },
        };
        tracing::debug!(stage = ?self.stage, bucket = %self.config.common.bucket, "s3 source opened");
        Ok(())
    }

    async fn read(&mut self, max: usize) -> Result<Vec<Record>, PluginError> {
        let max = max.max(1);
        let deadline = Instant::now() + IDLE_READ;
        while self.ready.len() < max && Instant::now() < deadline {
            // Each step keeps what it took in `self` before returning (module docs).
            if !self.step().await? {
                if !self.ready.is_empty() {
                    break;
                }
                // Nothing until the next poll; sleeping is cancel-safe (nothing taken).
                tokio::time::sleep_until(self.next_poll.min(deadline)).await;
            }
        }
        let n = self.ready.len().min(max);
        Ok(self.ready.drain(..n).collect())
    }

    async fn ack(&mut self, _position: Position) -> Result<(), PluginError> {
        // Positions are kept by the engine; S3 needs no acknowledgement.
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        self.client = None;
        Ok(())
    }
}
