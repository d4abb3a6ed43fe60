//! Dead letters kept in Culvert's own store: the records a pipeline's DLQ took, readable
//! back (listed, inspected) and queued for re-injection into the pipeline.
//!
//! Letters are opaque bytes to the store (the supervisor encodes them, see
//! `culvert_domain::dead_letter`), each with the time it was kept and a sequence number per
//! pipeline (from 1, never reused while the pipeline exists). Space is bounded per pipeline
//! by [`LetterLimits`]: keeping a letter drops the oldest beyond the count and every letter
//! older than the age, in the same write.
//!
//! Re-injection is two steps. A user's request queues letters in the same atomic write as
//! its `DeadLettersReinjected` event ([`crate::AppendRequest::queue_letters`]); the running
//! pipeline reads the queue ([`DeadLetterStore::queued_letters`]) and, once every
//! destination has the records, removes them and their queue entries in one write
//! ([`DeadLetterStore::letters_delivered`]), so a letter is delivered and gone together.
//!
//! Layout (column family `dead_letters`): `pipeline, 0x00, b'L', seq (u64 BE)` -> time kept
//! (unix milliseconds, u64 BE) then the letter; `pipeline, 0x00, b'Q', seq` -> nothing (the
//! letter is queued for re-injection).

use crate::StoreError;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// How many dead letters a pipeline keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LetterLimits {
    /// The most letters kept per pipeline (the oldest go first).
    pub max_letters: u64,
    /// Letters older than this are dropped.
    pub max_age: Duration,
}

impl Default for LetterLimits {
    /// 10,000 letters, 7 days.
    fn default() -> Self {
        Self {
            max_letters: 10_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// A kept letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLetter {
    /// Its number within its pipeline (from 1).
    pub seq: u64,
    /// When it was kept.
    pub at: DateTime<Utc>,
    /// Whether it is queued for re-injection.
    pub queued: bool,
    /// The letter as its writer encoded it.
    pub payload: Vec<u8>,
}

/// A letter of a pipeline, named by an [`crate::AppendRequest`] that queues it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LetterRef {
    /// The pipeline.
    pub pipeline: String,
    /// The letter's number.
    pub seq: u64,
}

/// What [`DeadLetterStore::keep_letters`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    /// The number of the last new letter (the new ones are numbered up to it, in order).
    pub seq: u64,
    /// How many letters went to stay within the limits: older ones, and the first of the
    /// new ones when more came at once than the count allows.
    pub dropped: u64,
}

/// Dead letters per pipeline.
///
/// Contract: `keep_letters` is durable when it returns (as the position store's writes),
/// and keeps all of its letters or none;
/// sequence numbers of a pipeline only grow; the letters listed are in sequence order;
/// `letters_delivered` removes queued letters and their queue entries atomically and
/// leaves letters that are not queued.
pub trait DeadLetterStore: Send + Sync + 'static {
    /// Keep letters (a batch's, in order) in one durable write, dropping the oldest beyond
    /// `limits` in the same write. None given: nothing is written.
    fn keep_letters(
        &self,
        pipeline: &str,
        at: DateTime<Utc>,
        payloads: &[Vec<u8>],
        limits: &LetterLimits,
    ) -> Result<Kept, StoreError>;

    /// Keep one letter (see [`keep_letters`](Self::keep_letters)).
    fn keep_letter(
        &self,
        pipeline: &str,
        at: DateTime<Utc>,
        payload: &[u8],
        limits: &LetterLimits,
    ) -> Result<Kept, StoreError> {
        self.keep_letters(pipeline, at, &[payload.to_vec()], limits)
    }

    /// Up to `limit` letters of `pipeline` numbered above `after`, in order.
    fn letters(
        &self,
        pipeline: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredLetter>, StoreError>;

    /// One letter, if it is kept.
    fn letter(&self, pipeline: &str, seq: u64) -> Result<Option<StoredLetter>, StoreError>;

    /// Up to `limit` letters queued for re-injection numbered above `after`, in order.
    fn queued_letters(
        &self,
        pipeline: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredLetter>, StoreError>;

    /// The queued letters numbered up to `through` reached every destination: remove them
    /// and their queue entries in one write. Returns how many went.
    fn letters_delivered(&self, pipeline: &str, through: u64) -> Result<u64, StoreError>;
}

/// Key kinds under a pipeline's prefix.
pub(crate) const LETTER: u8 = b'L';
pub(crate) const QUEUED: u8 = b'Q';

/// `pipeline, 0x00, kind`.
pub(crate) fn prefix(pipeline: &str, kind: u8) -> Vec<u8> {
    let mut key = Vec::with_capacity(pipeline.len() + 10);
    key.extend_from_slice(pipeline.as_bytes());
    key.push(0);
    key.push(kind);
    key
}

/// `pipeline, 0x00, kind, seq`.
pub(crate) fn key(pipeline: &str, kind: u8, seq: u64) -> Vec<u8> {
    let mut key = prefix(pipeline, kind);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The sequence number at the end of a key under `prefix`.
pub(crate) fn seq_of(key: &[u8], prefix_len: usize) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key
        .get(prefix_len..)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt {
            location: "dead_letters".into(),
            reason: format!("a key of {} bytes", key.len()),
        })?;
    Ok(u64::from_be_bytes(bytes))
}

/// A letter's stored value: the time it was kept, then the letter.
pub(crate) fn value(at: DateTime<Utc>, payload: &[u8]) -> Vec<u8> {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut value = Vec::with_capacity(8 + payload.len());
    value.extend_from_slice(&millis.to_be_bytes());
    value.extend_from_slice(payload);
    value
}

/// The time and letter of a stored value.
pub(crate) fn split_value(value: &[u8]) -> Result<(DateTime<Utc>, Vec<u8>), StoreError> {
    let corrupt = || StoreError::Corrupt {
        location: "dead_letters".into(),
        reason: format!("a value of {} bytes", value.len()),
    };
    let millis: [u8; 8] = value
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(corrupt)?;
    let millis = i64::try_from(u64::from_be_bytes(millis)).map_err(|_| corrupt())?;
    let at = DateTime::from_timestamp_millis(millis).ok_or_else(corrupt)?;
    Ok((at, value[8..].to_vec()))
}

/// The oldest time a letter kept at `now` under `limits` may have.
pub(crate) fn oldest_allowed(now: DateTime<Utc>, limits: &LetterLimits) -> DateTime<Utc> {
    chrono::Duration::from_std(limits.max_age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}
