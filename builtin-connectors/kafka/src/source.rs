//! The source: one member of a Kafka consumer group reading one or more topics.
//!
//! Records (as Conduit's connector makes them): operation `create`, the message key as raw
//! `key`, its value as raw `payload.after`, metadata `opencdc.collection` (the topic),
//! `opencdc.createdAt` (the message timestamp, unix nanoseconds) and `kafka.header.<name>`
//! per header. The position is Conduit's, JSON `{"GroupID","Topic","Partition","Offset"}`:
//! the group id is what a restart needs (the group's committed offsets say where each
//! partition resumes); topic, partition and offset say which message the record was, so
//! an acknowledgement commits exactly the records it covers.
//!
//! Delivery is at least once:
//!
//! * invariant: the group's offsets are committed only in `ack` (and when partitions are
//!   revoked or the source tears down, only of records already acknowledged), never on
//!   read, so a committed offset never passes a record the destinations have not handled;
//! * a crash between an acknowledgement and its commit, or a rebalance that hands a
//!   partition to another member with records in flight, makes those records come again
//!   (duplicates, never gaps).
//!
//! `read` is cancel-safe: a message taken from librdkafka becomes a record in
//! `self.pending` before the next await (`StreamConsumer::recv` itself is cancel-safe), and
//! a read returns only from `self.pending`.

use crate::config::SourceConfig;
use culvert_domain::opencdc::{metadata, MetaText, ToCompactString as _};
use culvert_domain::{Change, Data, Metadata, Operation, Position, Record};
use culvert_plugins::connector::{PluginError, Source, IDLE_READ};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// Prefix of the metadata keys that carry a message's headers.
pub const HEADER_PREFIX: &str = "kafka.header.";

/// A source position, Conduit's JSON form (field names and order as Conduit writes them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaPosition {
    /// The consumer group.
    #[serde(rename = "GroupID")]
    pub group_id: String,
    /// The message's topic.
    #[serde(rename = "Topic")]
    pub topic: String,
    /// The message's partition.
    #[serde(rename = "Partition")]
    pub partition: i32,
    /// The message's offset.
    #[serde(rename = "Offset")]
    pub offset: i64,
}

impl KafkaPosition {
    /// As a record position.
    pub fn encode(&self) -> Position {
        Position(serde_json::to_vec(self).expect("a position always serialises"))
    }

    /// From a record position.
    pub fn decode(position: &Position) -> Result<Self, PluginError> {
        serde_json::from_slice(&position.0).map_err(|e| PluginError::InvalidPosition {
            position: String::from_utf8_lossy(&position.0).into_owned(),
            reason: format!("not a kafka position (JSON GroupID/Topic/Partition/Offset): {e}"),
        })
    }
}

/// Which message a record was: its topic, partition and offset.
#[derive(Clone, Debug)]
struct Taken {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
}

/// Offsets acknowledged and not yet committed, shared with the rebalance callback so that
/// a partition taken away is committed up to what was acknowledged first.
type Uncommitted = Arc<Mutex<BTreeMap<(Arc<str>, i32), i64>>>;

/// The consumer's context: logs librdkafka's errors, commits acknowledged offsets of
/// partitions being revoked.
pub struct SourceContext {
    uncommitted: Uncommitted,
}

impl ClientContext for SourceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka consumer");
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(
        &self,
        consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        // invariant: only acknowledged offsets are committed (they are the only ones in
        // `uncommitted`). Committing them now spares the next owner of these partitions
        // records that were handled already.
        let revoked: Vec<(String, i32)> = revoked
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let offsets = take_offsets(&self.uncommitted, |topic, partition| {
            revoked
                .iter()
                .any(|(t, p)| (t.as_str(), *p) == (topic, partition))
        });
        if offsets.count() > 0 {
            // Asynchronous, as this runs inside a poll on the async runtime: the request
            // goes to the group coordinator before this member's JoinGroup, on the same
            // connection, so it lands before the partitions change hands.
            if let Err(error) = consumer.commit(&offsets, CommitMode::Async) {
                tracing::warn!(%error, "committing acknowledged offsets of revoked partitions");
            }
        }
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        offsets: &TopicPartitionList,
    ) {
        if let Err(error) = result {
            tracing::warn!(%error, ?offsets, "committing consumer-group offsets failed; \
                the records after the last commit will be read again after a restart");
        }
    }
}

/// Remove from `uncommitted` the offsets whose partition `pick` chooses, as a list to
/// commit (the next offset to read: acknowledged offset + 1).
fn take_offsets(uncommitted: &Uncommitted, pick: impl Fn(&str, i32) -> bool) -> TopicPartitionList {
    let mut map = uncommitted.lock().expect("offsets lock");
    let mut list = TopicPartitionList::new();
    let picked: Vec<(Arc<str>, i32)> = map
        .keys()
        .filter(|(topic, partition)| pick(topic, *partition))
        .cloned()
        .collect();
    for key in picked {
        if let Some(offset) = map.remove(&key) {
            // The partition exists: it came from a message.
            let _ = list.add_partition_offset(&key.0, key.1, Offset::Offset(offset + 1));
        }
    }
    list
}

/// A Kafka source; see the module docs.
pub struct KafkaSource {
    config: SourceConfig,
    group_id: String,
    consumer: Option<Arc<StreamConsumer<SourceContext>>>,
    /// Records taken from librdkafka and not yet returned (kept across dropped reads),
    /// each with the message it was.
    pending: VecDeque<(Record, Taken)>,
    /// The message of each record returned and not yet acknowledged, in the order they
    /// were returned.
    inflight: VecDeque<Taken>,
    /// The topics read so far, shared by the messages of each.
    topic_names: Vec<Arc<str>>,
    uncommitted: Uncommitted,
    /// Acknowledged records since the last commit.
    acked_since_commit: u64,
    last_commit: Instant,
}

impl KafkaSource {
    /// A source with this configuration (connects when opened).
    pub fn new(config: SourceConfig) -> Self {
        Self {
            group_id: config.group_id.clone(),
            config,
            consumer: None,
            pending: VecDeque::new(),
            inflight: VecDeque::new(),
            topic_names: Vec::new(),
            uncommitted: Arc::default(),
            acked_since_commit: 0,
            last_commit: Instant::now(),
        }
    }

    /// The consumer group this source reads as (known once opened).
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// Commit the acknowledged offsets, asynchronously (librdkafka sends the request;
    /// failures are logged by the context and the records come again after a restart).
    fn commit_async(&mut self) -> Result<(), PluginError> {
        let Some(consumer) = &self.consumer else {
            return Ok(());
        };
        let offsets = take_offsets(&self.uncommitted, |_, _| true);
        self.acked_since_commit = 0;
        self.last_commit = Instant::now();
        if offsets.count() == 0 {
            return Ok(());
        }
        match consumer.commit(&offsets, CommitMode::Async) {
            Ok(()) => Ok(()),
            // Not a member of the group right now (rebalancing): the partitions' next
            // owner reads the records again (at least once).
            Err(KafkaError::ConsumerCommit(code)) if group_state_error(code) => {
                tracing::warn!(%code, "could not commit offsets while the group rebalances");
                Ok(())
            }
            Err(error) => Err(PluginError::Other(format!(
                "committing offsets of consumer group {}: {error}",
                self.group_id
            ))),
        }
    }

    /// The topic's shared name (a consumer reads a handful of topics: a short list).
    fn topic_name(&mut self, topic: &str) -> Arc<str> {
        match self.topic_names.iter().find(|t| &***t == topic) {
            Some(name) => name.clone(),
            None => {
                let name: Arc<str> = Arc::from(topic);
                self.topic_names.push(name.clone());
                name
            }
        }
    }

    fn take_message(&mut self, message: &rdkafka::message::BorrowedMessage<'_>) {
        let topic = message.topic().to_owned();
        let taken = Taken {
            topic: self.topic_name(&topic),
            partition: message.partition(),
            offset: message.offset(),
        };
        let headers = message.headers();
        // Room for what the engine adds too (`opencdc.readAt`, the source connector).
        let mut meta = Metadata::with_capacity(4 + headers.map_or(0, |h| h.count()));
        meta.insert(metadata::key(metadata::COLLECTION), topic.as_str());
        if let Some(millis) = message.timestamp().to_millis() {
            meta.insert(
                metadata::key(metadata::CREATED_AT),
                (i128::from(millis) * 1_000_000).to_compact_string(),
            );
        }
        if let Some(headers) = headers {
            for header in headers.iter() {
                // Straight into metadata text: no intermediate `String` (none at all for
                // text up to 24 bytes).
                let value = header
                    .value
                    .map(MetaText::from_utf8_lossy)
                    .unwrap_or_default();
                let mut key = MetaText::with_capacity(HEADER_PREFIX.len() + header.key.len());
                key.push_str(HEADER_PREFIX);
                key.push_str(header.key);
                meta.insert(key, value);
            }
        }
        let position = KafkaPosition {
            group_id: self.group_id.clone(),
            topic,
            partition: message.partition(),
            offset: message.offset(),
        };
        let record = Record {
            position: position.encode(),
            operation: Operation::Create,
            metadata: meta,
            key: Some(Data::Raw(message.key().unwrap_or_default().to_vec())),
            payload: Change {
                before: None,
                after: Some(Data::Raw(message.payload().unwrap_or_default().to_vec())),
            },
        };
        self.pending.push_back((record, taken));
    }

    /// What to do about an error the consumer reported: `Ok` to go on (librdkafka retries
    /// by itself), `Err` to fail the source.
    fn on_consumer_error(&self, error: KafkaError) -> Result<(), PluginError> {
        let code = error.rdkafka_error_code();
        let fatal = matches!(
            code,
            Some(
                RDKafkaErrorCode::Fatal
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::GroupAuthorizationFailed
                    | RDKafkaErrorCode::SaslAuthenticationFailed
                    | RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::InvalidGroupId
            )
        );
        let group_join = code.is_some_and(group_state_error);
        if fatal || (group_join && !self.config.retry_group_join_errors) {
            return Err(PluginError::Other(format!(
                "reading topics {:?} as consumer group {}: {error}",
                self.config.topics, self.group_id
            )));
        }
        tracing::warn!(%error, group = %self.group_id, "kafka consumer error (retrying)");
        Ok(())
    }
}

/// Errors of group membership (a rebalance under way, a member that was dropped).
fn group_state_error(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::FencedInstanceId
            | RDKafkaErrorCode::State
    )
}

#[async_trait::async_trait]
impl Source for KafkaSource {
    async fn open(&mut self, position: Option<Position>) -> Result<(), PluginError> {
        if let Some(position) = position.filter(|p| !p.0.is_empty()) {
            let position = KafkaPosition::decode(&position)?;
            if !self.config.group_id.is_empty() && self.config.group_id != position.group_id {
                return Err(PluginError::InvalidPosition {
                    position: position.group_id.clone(),
                    reason: format!(
                        "the position is of consumer group {:?} but groupID is {:?}; was \
                         groupID changed since the connector last ran?",
                        position.group_id, self.config.group_id
                    ),
                });
            }
            self.group_id = position.group_id;
        }
        if self.group_id.is_empty() {
            self.group_id = uuid::Uuid::new_v4().to_string();
            tracing::info!(group = %self.group_id, "reading as a new consumer group");
        }
        let context = SourceContext {
            uncommitted: self.uncommitted.clone(),
        };
        let consumer: StreamConsumer<SourceContext> = self
            .config
            .consumer_config(&self.group_id)
            .create_with_context(context)
            .map_err(|e| PluginError::Other(format!("creating the kafka consumer: {e}")))?;
        // As Conduit's connector, fail early when no broker answers (blocking: off the
        // runtime).
        let consumer = Arc::new(consumer);
        let probe = consumer.clone();
        let servers = self.config.connection.servers.join(",");
        tokio::task::spawn_blocking(move || {
            probe
                .fetch_metadata(None, crate::destination::CONNECT_TIMEOUT)
                .map(drop)
        })
        .await
        .map_err(|e| PluginError::Other(format!("connecting to kafka: {e}")))?
        .map_err(|e| PluginError::Other(format!("connecting to kafka at {servers}: {e}")))?;
        let topics: Vec<&str> = self.config.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| PluginError::Other(format!("subscribing to topics {topics:?}: {e}")))?;
        self.consumer = Some(consumer);
        self.last_commit = Instant::now();
        Ok(())
    }

    async fn read(&mut self, max: usize) -> Result<Vec<Record>, PluginError> {
        let max = max.max(1);
        let consumer = self
            .consumer
            .clone()
            .ok_or_else(|| PluginError::Other("read before open".into()))?;
        if self.acked_since_commit > 0
            && self.last_commit.elapsed() >= self.config.commit_offsets_delay
        {
            // Acknowledged records wait no longer than commitOffsetsDelay for their commit,
            // even when nothing more is acknowledged.
            self.commit_async()?;
        }
        let deadline = Instant::now() + IDLE_READ;
        while self.pending.len() < max {
            // Wait for the first record until the deadline; once some are pending, take
            // only what is there already (a zero timeout polls `recv` once).
            let wait_until = if self.pending.is_empty() {
                deadline
            } else {
                Instant::now()
            };
            // Cancel-safety: `recv` is cancel-safe (a message is taken from librdkafka only
            // in the poll that returns it), and a message it returns is moved into
            // `self.pending` before the next await, so a dropped read loses nothing.
            match tokio::time::timeout_at(wait_until, consumer.recv()).await {
                Err(_elapsed) => break,
                Ok(Ok(message)) => {
                    self.take_message(&message);
                    // librdkafka prefetches: without this, a large batch is taken without
                    // ever yielding. Cancel-safe: the message is in `self.pending` already.
                    tokio::task::consume_budget().await;
                }
                Ok(Err(error)) => {
                    self.on_consumer_error(error)?;
                    if Instant::now() >= deadline {
                        break;
                    }
                }
            }
        }
        let take = self.pending.len().min(max);
        let mut records = Vec::with_capacity(take);
        for (record, taken) in self.pending.drain(..take) {
            records.push(record);
            self.inflight.push_back(taken);
        }
        Ok(records)
    }

    async fn ack(&mut self, position: Position) -> Result<(), PluginError> {
        let acked = KafkaPosition::decode(&position)?;
        let is_target = |m: &Taken| {
            (&*m.topic, m.partition, m.offset)
                == (acked.topic.as_str(), acked.partition, acked.offset)
        };
        if !self.inflight.iter().any(is_target) {
            let target = (&acked.topic, acked.partition, acked.offset);
            // Not a record of this instance, or acknowledged already: nothing to commit.
            tracing::warn!(position = ?target, "ignoring an acknowledgement of a record not in flight");
            return Ok(());
        }
        // Acknowledgements are cumulative: every record returned before this one is
        // handled too.
        {
            let mut uncommitted = self.uncommitted.lock().expect("offsets lock");
            while let Some(taken) = self.inflight.pop_front() {
                let done = is_target(&taken);
                let entry = uncommitted
                    .entry((taken.topic.clone(), taken.partition))
                    .or_insert(taken.offset);
                *entry = (*entry).max(taken.offset);
                self.acked_since_commit += 1;
                if done {
                    break;
                }
            }
        }
        if self.acked_since_commit >= self.config.commit_offsets_size
            || self.last_commit.elapsed() >= self.config.commit_offsets_delay
        {
            self.commit_async()?;
        }
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        let Some(consumer) = self.consumer.take() else {
            return Ok(());
        };
        // Commit what was acknowledged, and wait for it: this is a clean stop. The commit
        // and the consumer's close (leaving the group) block, so off the runtime.
        let offsets = take_offsets(&self.uncommitted, |_, _| true);
        let group = self.group_id.clone();
        let result = tokio::task::spawn_blocking(move || {
            let result = if offsets.count() > 0 {
                consumer.commit(&offsets, CommitMode::Sync)
            } else {
                Ok(())
            };
            consumer.unsubscribe();
            drop(consumer);
            result
        })
        .await
        .map_err(|e| PluginError::Other(format!("closing the kafka consumer: {e}")))?;
        match result {
            Ok(()) => Ok(()),
            // Not a member any more (a rebalance took the partitions): their next owner
            // reads those records again.
            Err(KafkaError::ConsumerCommit(code)) if group_state_error(code) => {
                tracing::warn!(%code, group = %group, "could not commit offsets at teardown");
                Ok(())
            }
            Err(e) => Err(PluginError::Other(format!(
                "committing the offsets of consumer group {group} at teardown: {e}"
            ))),
        }
    }
}
