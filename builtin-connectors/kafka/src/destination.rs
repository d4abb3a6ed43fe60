//! The destination: an idempotent Kafka producer (librdkafka batches, compresses and
//! retries; `enable.idempotence` with `acks: all`, so retries never duplicate or reorder
//! a partition's records).
//!
//! Each record becomes one message, as Conduit's connector writes it: the value is the
//! whole record in OpenCDC JSON (Conduit's default `sdk.record.format`, `opencdc/json`),
//! the key is the record's key (raw bytes as they are, structured keys as JSON), the topic
//! is the `topic` setting or that template rendered over the record. Beyond Conduit,
//! metadata `kafka.header.<name>` becomes header `<name>`, so a kafka-to-kafka pipeline
//! keeps headers (records from other sources have none, and their messages are the same
//! as Conduit's).
//!
//! `submit` hands the whole batch to librdkafka and returns; its receipt waits for every
//! delivery report, so the engine hands over the next batch while the brokers acknowledge
//! this one. A record is reported written only once the brokers acknowledged it (with
//! `acks`), and a record the brokers refused (or that timed out, `deliveryTimeout`) is
//! returned as refused, with why (to the DLQ, while later batches go on, as a refusal
//! does within a batch). A producer in a fatal state fails the whole write.

use crate::config::{DestinationConfig, TopicChoice};
use crate::source::HEADER_PREFIX;
use culvert_domain::{Data, Record};
use culvert_plugins::connector::{Destination, PluginError, Receipt};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long teardown waits for messages still queued to be delivered.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a record looks for room again in a full librdkafka queue.
const QUEUE_RETRY: Duration = Duration::from_millis(1);

/// How long `open` waits for the cluster to answer (Conduit's dial timeout).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A Kafka destination; see the module docs.
pub struct KafkaDestination {
    config: DestinationConfig,
    producer: Option<Arc<FutureProducer>>,
    /// librdkafka properties set over the configuration's (tests bound the queue).
    overrides: Vec<(&'static str, String)>,
}

impl KafkaDestination {
    /// A destination with this configuration (connects when opened).
    pub fn new(config: DestinationConfig) -> Self {
        Self {
            config,
            producer: None,
            overrides: Vec::new(),
        }
    }

    /// The same with a librdkafka property set over the configuration's.
    #[cfg(test)]
    pub(crate) fn with_property(mut self, key: &'static str, value: &str) -> Self {
        self.overrides.push((key, value.to_owned()));
        self
    }

    /// How long a record waits for room in librdkafka's queue while earlier batches are
    /// delivered: the delivery timeout, or [`FLUSH_TIMEOUT`] without one.
    fn queue_wait(&self) -> Duration {
        self.config.delivery_timeout.unwrap_or(FLUSH_TIMEOUT)
    }

    /// The topic `record` goes to.
    fn topic_for(&self, record: &Record) -> Result<String, String> {
        match &self.config.topic {
            TopicChoice::Static(topic) => Ok(topic.clone()),
            TopicChoice::Template { text, template } => {
                let topic = template
                    .render(record)
                    .map_err(|e| format!("rendering the topic template {text:?}: {e}"))?;
                if topic.is_empty() {
                    return Err(format!(
                        "the topic template {text:?} gives no topic for the record with key {}",
                        key_text(record)
                    ));
                }
                Ok(topic)
            }
        }
    }
}

fn key_text(record: &Record) -> String {
    key_bytes(record)
        .map(|k| String::from_utf8_lossy(&k).into_owned())
        .unwrap_or_else(|| "<none>".to_owned())
}

/// The message key: raw bytes as they are, structured data as JSON, none without a key.
fn key_bytes(record: &Record) -> Option<Vec<u8>> {
    match &record.key {
        None => None,
        Some(Data::Raw(bytes)) => Some(bytes.clone()),
        Some(Data::Structured(map)) => {
            Some(serde_json::to_vec(map).expect("JSON objects always serialise"))
        }
    }
}

/// Headers from `kafka.header.*` metadata, if there are any.
fn headers(record: &Record) -> Option<OwnedHeaders> {
    let mut headers: Option<OwnedHeaders> = None;
    for (key, value) in record.metadata.with_prefix(HEADER_PREFIX) {
        let name = &key[HEADER_PREFIX.len()..];
        headers = Some(headers.unwrap_or_default().insert(Header {
            key: name,
            value: Some(value.as_bytes()),
        }));
    }
    headers
}

/// Why a delivery failed, as the refusal's text.
fn delivery_error(error: &KafkaError) -> String {
    format!("kafka refused the record: {error}")
}

#[async_trait::async_trait]
impl Destination for KafkaDestination {
    async fn open(&mut self) -> Result<(), PluginError> {
        let mut config = self.config.producer_config();
        for (key, value) in &self.overrides {
            config.set(*key, value);
        }
        let producer: FutureProducer = config
            .create()
            .map_err(|e| PluginError::Other(format!("creating the kafka producer: {e}")))?;
        let producer = Arc::new(producer);
        // As Conduit's connector, fail early when no broker answers.
        let probe = producer.clone();
        let servers = self.config.connection.servers.join(",");
        tokio::task::spawn_blocking(move || {
            probe
                .client()
                .fetch_metadata(None, CONNECT_TIMEOUT)
                .map(drop)
        })
        .await
        .map_err(|e| PluginError::Other(format!("connecting to kafka: {e}")))?
        .map_err(|e| PluginError::Other(format!("connecting to kafka at {servers}: {e}")))?;
        self.producer = Some(producer);
        Ok(())
    }

    async fn write(&mut self, records: &[Record]) -> Result<(), PluginError> {
        let refused = self.write_each(records).await?;
        match refused.first() {
            None => Ok(()),
            Some((index, why)) => Err(PluginError::Other(format!(
                "record {index} of the batch was not written: {why}"
            ))),
        }
    }

    async fn write_each(
        &mut self,
        records: &[Record],
    ) -> Result<Vec<(usize, String)>, PluginError> {
        self.submit(records).await?.await
    }

    async fn submit(&mut self, records: &[Record]) -> Result<Receipt, PluginError> {
        let producer = self
            .producer
            .clone()
            .ok_or_else(|| PluginError::Other("write before open".into()))?;
        let mut refused: Vec<(usize, String)> = Vec::new();
        let mut deliveries: VecDeque<(usize, DeliveryFuture)> = VecDeque::new();
        // A dropped write (the pipeline stops) leaves queued messages to librdkafka; they
        // were not acknowledged, so they come again: at least once.
        for (index, record) in records.iter().enumerate() {
            let topic = match self.topic_for(record) {
                Ok(topic) => topic,
                Err(why) => {
                    refused.push((index, why));
                    continue;
                }
            };
            let key = key_bytes(record);
            let value = record.to_json();
            let headers = headers(record);
            // Since when the queue has had no room for this record, with none of this batch's
            // messages under way to wait for.
            let mut full_since: Option<Instant> = None;
            loop {
                let mut message = FutureRecord::to(&topic).payload(&value);
                if let Some(key) = &key {
                    message = message.key(key);
                }
                if let Some(headers) = &headers {
                    message = message.headers(headers.clone());
                }
                match producer.send_result(message) {
                    Ok(delivery) => {
                        deliveries.push_back((index, delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // librdkafka's queue is full: wait for the oldest message of this
                        // batch to be delivered, which makes room, then try again. With none
                        // of this batch's under way, the room is held by the batch submitted
                        // before, whose receipt the engine is awaiting: try again shortly,
                        // for as long as a delivery may take. librdkafka signals no event
                        // when room frees, and that batch's delivery futures belong to its
                        // receipt, so this backs off and retries (as rdkafka's own
                        // `FutureProducer::send` does on a full queue).
                        if let Some((oldest, delivery)) = deliveries.pop_front() {
                            settle(oldest, delivery.await, &mut refused)?;
                            continue;
                        }
                        let since = *full_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= self.queue_wait() {
                            refused.push((
                                index,
                                "the record does not fit in the producer's queue".into(),
                            ));
                            break;
                        }
                        tokio::time::sleep(QUEUE_RETRY).await;
                    }
                    Err((error, _)) => {
                        refused.push((index, delivery_error(&error)));
                        break;
                    }
                }
            }
        }
        // The batch is with librdkafka: the engine may hand over the next one while the
        // brokers acknowledge this one (the receipt), so both fill the producer's batches.
        Ok(Box::pin(async move {
            for (index, delivery) in deliveries {
                settle(index, delivery.await, &mut refused)?;
            }
            if let Some((code, reason)) = producer.client().fatal_error() {
                return Err(PluginError::Other(format!(
                    "the kafka producer failed for good ({code}): {reason}"
                )));
            }
            refused.sort_by_key(|(index, _)| *index);
            Ok(refused)
        }))
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        let Some(producer) = self.producer.take() else {
            return Ok(());
        };
        // Flushing blocks: off the runtime.
        tokio::task::spawn_blocking(move || producer.flush(FLUSH_TIMEOUT))
            .await
            .map_err(|e| PluginError::Other(format!("closing the kafka producer: {e}")))?
            .map_err(|e| PluginError::Other(format!("flushing the kafka producer: {e}")))
    }
}

/// Record the outcome of one delivery.
fn settle(
    index: usize,
    outcome: <DeliveryFuture as std::future::Future>::Output,
    refused: &mut Vec<(usize, String)>,
) -> Result<(), PluginError> {
    match outcome {
        Ok(Ok(_delivery)) => Ok(()),
        Ok(Err((error, _message))) => {
            refused.push((index, delivery_error(&error)));
            Ok(())
        }
        Err(_) => Err(PluginError::Other(
            "the kafka producer went away before reporting a delivery".into(),
        )),
    }
}
