//! The destination: each batch of records becomes one object, stored whole with one
//! `PutObject` before `write` returns, so a record is acknowledged only once its object is
//! in the bucket (a failed or interrupted write stores nothing and acks nothing).
//!
//! Objects are named as Conduit's connector names them: the time of the write in Unix
//! nanoseconds and the format's extension (`1700000000123456789.json`), under `prefix`
//! joined as a path (Go's `path.Join`). Names are kept strictly increasing within a
//! destination, so two writes in the same nanosecond cannot overwrite each other. Objects
//! carry Conduit's headers: the format's `Content-Type`, `Content-Disposition: attachment`,
//! the `private` ACL and AES-256 server-side encryption.

use crate::client::{self, failed};
use crate::config::DestinationConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectCannedAcl, ServerSideEncryption};
use aws_sdk_s3::Client;
use culvert_domain::Record;
use culvert_plugins::connector::{Destination, PluginError};
use std::time::{SystemTime, UNIX_EPOCH};

/// The S3 destination (see the module docs).
pub struct S3Destination {
    config: DestinationConfig,
    client: Option<Client>,
    /// The nanoseconds of the last object's name.
    last: u128,
}

impl S3Destination {
    /// A destination with these settings; connects when opened.
    pub fn new(config: DestinationConfig) -> Self {
        Self {
            config,
            client: None,
            last: 0,
        }
    }

    /// The next object's name.
    fn next_key(&mut self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        self.last = now.max(self.last + 1);
        object_key(
            &self.config.common.prefix,
            &format!("{}.{}", self.last, self.config.format.extension()),
        )
    }
}

/// `name` under `prefix`, as Go's `path.Join(prefix, name)` gives it (no prefix: the name).
pub fn object_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        return name.to_owned();
    }
    clean(&format!("{prefix}/{name}"))
}

/// Go's `path.Clean`: one slash between elements, no `.` elements, `..` resolved lexically.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

#[async_trait::async_trait]
impl Destination for S3Destination {
    async fn open(&mut self) -> Result<(), PluginError> {
        let client = client::client(&self.config.common);
        client::check_bucket(&client, &self.config.common).await?;
        self.client = Some(client);
        Ok(())
    }

    async fn write(&mut self, records: &[Record]) -> Result<(), PluginError> {
        if records.is_empty() {
            return Ok(());
        }
        let body = self.config.format.encode(records)?;
        let key = self.next_key();
        let format = self.config.format;
        let bucket = &self.config.common.bucket;
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| PluginError::Other("the S3 destination was not opened".to_owned()))?;
        let length = body.len() as i64;
        // invariant: ack only after durable downstream handling — `write` returns (and the
        // engine acks these records) only once S3 has stored the whole object.
        client
            .put_object()
            .bucket(bucket)
            .key(&key)
            .acl(ObjectCannedAcl::Private)
            .content_length(length)
            .content_type(format.content_type())
            .content_disposition("attachment")
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| {
                failed(
                    format_args!("writing object {key:?} to bucket {bucket:?}"),
                    e,
                )
            })?;
        tracing::trace!(key, records = records.len(), "s3 object written");
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        self.client = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_join_like_go() {
        for (prefix, want) in [
            ("", "1.json"),
            ("out", "out/1.json"),
            ("out/", "out/1.json"),
            ("a//b/./c/..", "a/b/1.json"),
            ("/abs", "/abs/1.json"),
        ] {
            assert_eq!(object_key(prefix, "1.json"), want, "{prefix:?}");
        }
    }
}
