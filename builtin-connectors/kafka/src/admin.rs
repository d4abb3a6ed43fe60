//! Small look-ups and changes on a cluster, for tests and operators: create a topic, read
//! a consumer group's committed offsets and a topic's end offsets. Each call is a
//! short-lived client; blocking librdkafka calls run off the async runtime.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

fn client_config(servers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", servers);
    config
}

/// Create `topic` with `partitions` partitions (replication 1); an existing topic is fine.
pub async fn create_topic(servers: &str, topic: &str, partitions: i32) -> Result<(), String> {
    create_topic_with(servers, topic, partitions, &[]).await
}

/// As [`create_topic`], with topic configuration entries (`message.timestamp.type`, ...).
pub async fn create_topic_with(
    servers: &str,
    topic: &str,
    partitions: i32,
    config: &[(&str, &str)],
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = client_config(servers)
        .create()
        .map_err(|e| format!("creating an admin client for {servers}: {e}"))?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (key, value) in config {
        new = new.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = admin
        .create_topics([&new], &options)
        .await
        .map_err(|e| format!("creating topic {topic}: {e}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(format!("creating topic {name}: {code}")),
        }
    }
    Ok(())
}

/// The partitions of `topic` and the offset after each one's last message.
pub async fn end_offsets(servers: &str, topic: &str) -> Result<BTreeMap<i32, i64>, String> {
    let servers = servers.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client_config(&servers)
            .create()
            .map_err(|e| format!("creating a client for {servers}: {e}"))?;
        let metadata = consumer
            .fetch_metadata(Some(&topic), TIMEOUT)
            .map_err(|e| format!("reading the metadata of topic {topic}: {e}"))?;
        let mut ends = BTreeMap::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                let (_, high) = consumer
                    .fetch_watermarks(&topic, p.id(), TIMEOUT)
                    .map_err(|e| format!("reading the end of {topic}/{}: {e}", p.id()))?;
                ends.insert(p.id(), high);
            }
        }
        Ok(ends)
    })
    .await
    .map_err(|e| format!("reading end offsets: {e}"))?
}

/// The offsets consumer group `group` committed for each partition of `topic` (the next
/// offset it will read); partitions without a commit are left out.
pub async fn committed_offsets(
    servers: &str,
    group: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, String> {
    let ends = end_offsets(servers, topic).await?;
    let servers = servers.to_owned();
    let group = group.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client_config(&servers)
            .set("group.id", &group)
            .create()
            .map_err(|e| format!("creating a client for {servers}: {e}"))?;
        let mut list = TopicPartitionList::new();
        for partition in ends.keys() {
            list.add_partition(&topic, *partition);
        }
        let committed = consumer
            .committed_offsets(list, TIMEOUT)
            .map_err(|e| format!("reading the offsets of group {group}: {e}"))?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(offset) => Some((e.partition(), offset)),
                _ => None,
            })
            .collect())
    })
    .await
    .map_err(|e| format!("reading committed offsets: {e}"))?
}
