//! The connector's settings: Conduit's parameter specification (names, defaults and
//! validations of `conduit-connector-kafka` v0.12.5), their parsing into typed
//! configurations, and their translation into librdkafka client properties.
//!
//! Checks the specification cannot express (both SASL username and password or neither, a
//! client certificate with its key, a topic that is neither a Kafka name nor a template)
//! are made when a source or destination is made, so the API refuses them before the
//! connector runs, as Conduit's `Configure` does.

use culvert_domain::parse_bool;
use culvert_plugins::connector::Settings;
use culvert_plugins::spec::{InvalidSettings, Parameter, ParameterType, SettingError, Validation};
use culvert_template::Template;
use rdkafka::ClientConfig;
use std::time::Duration;

/// How long a consumer-group member may stay silent before the group gives its
/// partitions to others. librdkafka's and franz-go's default is 45 s; a restarted
/// pipeline would wait that long for its own dead predecessor, so it is shorter here.
pub(crate) const SESSION_TIMEOUT_MS: &str = "10000";

/// How long librdkafka waits before fetching again for a partition once its local queue
/// of prefetched messages is over the bounds below. librdkafka's default, 1 s, made a
/// consumer that drains the queue faster than the broker fills it idle for most of each
/// second: kafka -> file ran at 110-118k records/s of 1 KiB in bursts, using about half the
/// two cores; with 10 ms, 295-307k in the same bench (BENCHMARKS.md, Kafka, fourteenth
/// session).
pub(crate) const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// The bound of librdkafka's queue of prefetched messages, in KiB: half its default
/// (64 MiB). Measured on kafka -> file with 1 KiB records: 32 MiB kept the rate of 64 MiB
/// (350k records/s) at 92 MiB peak RSS instead of 130; 16 MiB cost a fifth of the rate.
pub(crate) const QUEUED_MAX_KBYTES: &str = "32768";

/// A topic name Kafka accepts: letters, digits, `.`, `_` and `-`, at most 249 of them.
const MAX_TOPIC_LENGTH: usize = 249;

fn is_topic_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The parameters both sides share (connection, TLS, SASL).
fn common_parameters() -> Vec<Parameter> {
    vec![
        Parameter::new(
            "servers",
            ParameterType::String,
            "Comma-separated Kafka bootstrap servers (host:port), used to discover the \
             whole cluster.",
        )
        .validate(Validation::Required),
        Parameter::new(
            "clientID",
            ParameterType::String,
            "The client id this connector's connections announce to the brokers.",
        )
        .default_value("conduit-connector-kafka"),
        Parameter::new(
            "tls.enabled",
            ParameterType::Bool,
            "Connect to the brokers over TLS.",
        ),
        Parameter::new(
            "caCert",
            ParameterType::String,
            "PEM certificate(s) of the authority that signed the brokers' certificates \
             (with TLS; the system's authorities are trusted too).",
        ),
        Parameter::new(
            "clientCert",
            ParameterType::String,
            "PEM certificate this client presents to the brokers (with TLS; needs clientKey).",
        ),
        Parameter::new(
            "clientKey",
            ParameterType::String,
            "PEM private key of clientCert.",
        )
        .sensitive(),
        Parameter::new(
            "insecureSkipVerify",
            ParameterType::Bool,
            "Accept any certificate and host name the brokers present (with TLS). \
             Only for tests.",
        ),
        Parameter::new(
            "saslMechanism",
            ParameterType::String,
            "SASL mechanism to authenticate with; empty for none.",
        )
        .validate(Validation::Inclusion(vec![
            "PLAIN".into(),
            "SCRAM-SHA-256".into(),
            "SCRAM-SHA-512".into(),
        ])),
        Parameter::new(
            "saslUsername",
            ParameterType::String,
            "SASL user name (with saslPassword).",
        ),
        Parameter::new(
            "saslPassword",
            ParameterType::String,
            "SASL password (with saslUsername).",
        )
        .sensitive(),
    ]
}

/// The source's parameters, Conduit's names and defaults.
pub fn source_parameters() -> Vec<Parameter> {
    let mut params = common_parameters();
    params.extend([
        Parameter::new(
            "topics",
            ParameterType::String,
            "Comma-separated topics to read from.",
        )
        .validate(Validation::Required),
        Parameter::new(
            "groupID",
            ParameterType::String,
            "Consumer group id; empty: a new random one, kept in the position so a restart \
             joins the same group.",
        ),
        Parameter::new(
            "readFromBeginning",
            ParameterType::Bool,
            "Where to start in a partition the group has no committed offset for: its \
             first message (true) or its end (false).",
        ),
        Parameter::new(
            "retryGroupJoinErrors",
            ParameterType::Bool,
            "Keep retrying when joining the consumer group fails (false: fail the source).",
        )
        .default_value("true"),
        Parameter::new(
            "commitOffsetsSize",
            ParameterType::Int,
            "Commit the group's offsets once this many records were acknowledged since \
             the last commit.",
        )
        .default_value("1000")
        .validate(Validation::GreaterThan(-1.0)),
        Parameter::new(
            "commitOffsetsDelay",
            ParameterType::Duration,
            "Commit the group's offsets of acknowledged records at least this often.",
        )
        .default_value("5s"),
    ]);
    params
}

/// The destination's parameters, Conduit's names and defaults.
pub fn destination_parameters() -> Vec<Parameter> {
    let mut params = common_parameters();
    params.extend([
        Parameter::new(
            "topic",
            ParameterType::String,
            "Topic to write to: a topic name, or a Go template rendered per record \
             (by default the record's opencdc.collection).",
        )
        .default_value(r#"{{ index .Metadata "opencdc.collection" }}"#),
        Parameter::new(
            "acks",
            ParameterType::String,
            "Acknowledgements a write waits for: none, one (the leader) or all (every \
             in-sync replica; idempotent writes need it).",
        )
        .default_value("all")
        .validate(Validation::Inclusion(vec![
            "none".into(),
            "one".into(),
            "all".into(),
        ])),
        Parameter::new(
            "deliveryTimeout",
            ParameterType::Duration,
            "How long a record may take to be delivered, retries included; empty or 0: \
             no limit.",
        ),
        Parameter::new(
            "compression",
            ParameterType::String,
            "Compression codec of record batches.",
        )
        .default_value("snappy")
        .validate(Validation::Inclusion(vec![
            "none".into(),
            "gzip".into(),
            "snappy".into(),
            "lz4".into(),
            "zstd".into(),
        ])),
        Parameter::new(
            "batchBytes",
            ParameterType::Int,
            "Largest batch of records sent to one partition, in bytes (Kafka's \
             max.message.bytes).",
        )
        .default_value("1000012"),
    ]);
    params
}

/// Connection settings shared by both sides.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Bootstrap servers, `host:port` each.
    pub servers: Vec<String>,
    /// The client id.
    pub client_id: String,
    tls: Option<Tls>,
    sasl: Option<Sasl>,
}

#[derive(Clone, Debug)]
struct Tls {
    ca_cert: String,
    client_cert: String,
    client_key: String,
    insecure_skip_verify: bool,
}

#[derive(Clone)]
struct Sasl {
    mechanism: String,
    username: String,
    password: String,
}

impl std::fmt::Debug for Sasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sasl")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The source's configuration.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// How to reach the cluster.
    pub connection: Connection,
    /// Topics to read.
    pub topics: Vec<String>,
    /// The consumer group (empty: a new one, unless the position names one).
    pub group_id: String,
    /// Start partitions without a committed offset at their first message.
    pub read_from_beginning: bool,
    /// Retry failures to join the group rather than failing.
    pub retry_group_join_errors: bool,
    /// Commit after this many acknowledged records.
    pub commit_offsets_size: u64,
    /// Commit at least this often while records are acknowledged.
    pub commit_offsets_delay: Duration,
}

/// Required acknowledgements of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// Fire and forget.
    None,
    /// The leader wrote it.
    One,
    /// Every in-sync replica wrote it (needed for idempotence).
    All,
}

/// Where a destination writes each record.
#[derive(Clone, Debug)]
pub enum TopicChoice {
    /// Always this topic.
    Static(String),
    /// This template rendered over the record.
    Template {
        /// The template's text (for error messages).
        text: String,
        /// The parsed template.
        template: Template,
    },
}

/// The destination's configuration.
#[derive(Clone, Debug)]
pub struct DestinationConfig {
    /// How to reach the cluster.
    pub connection: Connection,
    /// The topic of each record.
    pub topic: TopicChoice,
    /// Acknowledgements to wait for.
    pub acks: Acks,
    /// Largest time to deliver a record (`None`: no limit).
    pub delivery_timeout: Option<Duration>,
    /// Compression codec (librdkafka's name).
    pub compression: String,
    /// Largest batch in bytes.
    pub batch_bytes: i64,
}

/// A setting's problem, for [`InvalidSettings`].
fn problem(key: &str, text: impl Into<String>) -> SettingError {
    SettingError {
        key: key.to_owned(),
        problem: text.into(),
    }
}

fn get<'s>(settings: &'s Settings, key: &str) -> &'s str {
    settings.get(key).map(|v| v.trim()).unwrap_or("")
}

fn get_bool(settings: &Settings, key: &str, errors: &mut Vec<SettingError>) -> bool {
    let value = get(settings, key);
    if value.is_empty() {
        return false;
    }
    parse_bool(value).unwrap_or_else(|| {
        errors.push(problem(key, format!("{value:?} is not a boolean")));
        false
    })
}

fn get_int(settings: &Settings, key: &str, default: i64, errors: &mut Vec<SettingError>) -> i64 {
    let value = get(settings, key);
    if value.is_empty() {
        return default;
    }
    value.parse().unwrap_or_else(|_| {
        errors.push(problem(key, format!("{value:?} is not a whole number")));
        default
    })
}

fn get_duration(
    settings: &Settings,
    key: &str,
    errors: &mut Vec<SettingError>,
) -> Option<Duration> {
    let value = get(settings, key);
    if value.is_empty() {
        return None;
    }
    match culvert_plugins::spec::parse_duration(value) {
        Some(d) => Some(d),
        None => {
            errors.push(problem(key, format!("{value:?} is not a duration")));
            None
        }
    }
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn finish<T>(value: T, mut errors: Vec<SettingError>) -> Result<T, InvalidSettings> {
    if errors.is_empty() {
        Ok(value)
    } else {
        errors.sort_by(|a, b| a.key.cmp(&b.key));
        Err(InvalidSettings(errors))
    }
}

impl Connection {
    fn parse(settings: &Settings, errors: &mut Vec<SettingError>) -> Self {
        let servers = list(get(settings, "servers"));
        if servers.is_empty() {
            errors.push(problem(
                "servers",
                "at least one bootstrap server is required",
            ));
        }
        let client_id = match get(settings, "clientID") {
            "" => "conduit-connector-kafka".to_owned(),
            id => id.to_owned(),
        };
        let tls = get_bool(settings, "tls.enabled", errors).then(|| Tls {
            ca_cert: get(settings, "caCert").to_owned(),
            client_cert: get(settings, "clientCert").to_owned(),
            client_key: get(settings, "clientKey").to_owned(),
            insecure_skip_verify: get_bool(settings, "insecureSkipVerify", errors),
        });
        if let Some(tls) = &tls {
            if tls.client_cert.is_empty() != tls.client_key.is_empty() {
                errors.push(problem(
                    if tls.client_cert.is_empty() {
                        "clientCert"
                    } else {
                        "clientKey"
                    },
                    "clientCert and clientKey go together: set both or neither",
                ));
            }
            for (key, pem) in [
                ("caCert", &tls.ca_cert),
                ("clientCert", &tls.client_cert),
                ("clientKey", &tls.client_key),
            ] {
                if !pem.is_empty() && !pem.contains("-----BEGIN ") {
                    errors.push(problem(key, "is not PEM (no -----BEGIN line)"));
                }
            }
        }
        let mechanism = get(settings, "saslMechanism").to_owned();
        let username = get(settings, "saslUsername").to_owned();
        let password = get(settings, "saslPassword").to_owned();
        if username.is_empty() != password.is_empty() {
            errors.push(problem(
                if username.is_empty() {
                    "saslUsername"
                } else {
                    "saslPassword"
                },
                "saslUsername and saslPassword go together: set both or neither",
            ));
        }
        let sasl = (!mechanism.is_empty()).then_some(Sasl {
            mechanism,
            username,
            password,
        });
        Connection {
            servers,
            client_id,
            tls,
            sasl,
        }
    }

    /// librdkafka properties for this connection.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.servers.join(","))
            .set("client.id", &self.client_id);
        let protocol = match (&self.tls, &self.sasl) {
            (None, None) => "plaintext",
            (Some(_), None) => "ssl",
            (None, Some(_)) => "sasl_plaintext",
            (Some(_), Some(_)) => "sasl_ssl",
        };
        config.set("security.protocol", protocol);
        if let Some(tls) = &self.tls {
            if !tls.ca_cert.is_empty() {
                config.set("ssl.ca.pem", &tls.ca_cert);
            }
            if !tls.client_cert.is_empty() {
                config
                    .set("ssl.certificate.pem", &tls.client_cert)
                    .set("ssl.key.pem", &tls.client_key);
            }
            if tls.insecure_skip_verify {
                config
                    .set("enable.ssl.certificate.verification", "false")
                    .set("ssl.endpoint.identification.algorithm", "none");
            }
        }
        if let Some(sasl) = &self.sasl {
            config
                .set("sasl.mechanism", &sasl.mechanism)
                .set("sasl.username", &sasl.username)
                .set("sasl.password", &sasl.password);
        }
        config
    }
}

impl SourceConfig {
    /// The source's configuration from validated settings (defaults applied).
    pub fn parse(settings: &Settings) -> Result<Self, InvalidSettings> {
        let mut errors = Vec::new();
        let connection = Connection::parse(settings, &mut errors);
        let topics = list(get(settings, "topics"));
        if topics.is_empty() {
            errors.push(problem("topics", "at least one topic is required"));
        }
        for topic in &topics {
            if !is_topic_name(topic) || topic.len() > MAX_TOPIC_LENGTH {
                errors.push(problem(
                    "topics",
                    format!("{topic:?} is not a valid Kafka topic name"),
                ));
            }
        }
        let size = get_int(settings, "commitOffsetsSize", 1000, &mut errors);
        if size < 0 {
            errors.push(problem("commitOffsetsSize", "must be 0 or more"));
        }
        let config = SourceConfig {
            connection,
            topics,
            group_id: get(settings, "groupID").to_owned(),
            read_from_beginning: get_bool(settings, "readFromBeginning", &mut errors),
            retry_group_join_errors: match get(settings, "retryGroupJoinErrors") {
                "" => true,
                _ => get_bool(settings, "retryGroupJoinErrors", &mut errors),
            },
            commit_offsets_size: size.max(0) as u64,
            commit_offsets_delay: get_duration(settings, "commitOffsetsDelay", &mut errors)
                .unwrap_or(Duration::from_secs(5)),
        };
        finish(config, errors)
    }

    /// librdkafka consumer properties for group `group_id`.
    pub fn consumer_config(&self, group_id: &str) -> ClientConfig {
        let mut config = self.connection.client_config();
        config
            .set("group.id", group_id)
            // invariant: offsets are committed only for acknowledged records, by the
            // source itself (see `source.rs`), never by librdkafka on its own.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                if self.read_from_beginning {
                    "earliest"
                } else {
                    "latest"
                },
            )
            .set("session.timeout.ms", SESSION_TIMEOUT_MS)
            .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS)
            .set("queued.max.messages.kbytes", QUEUED_MAX_KBYTES)
            .set("enable.partition.eof", "false");
        config
    }
}

impl DestinationConfig {
    /// The destination's configuration from validated settings (defaults applied).
    pub fn parse(settings: &Settings) -> Result<Self, InvalidSettings> {
        let mut errors = Vec::new();
        let connection = Connection::parse(settings, &mut errors);
        let topic = match parse_topic(get(settings, "topic")) {
            Ok(topic) => Some(topic),
            Err(text) => {
                errors.push(problem("topic", text));
                None
            }
        };
        let acks = match get(settings, "acks") {
            "none" => Acks::None,
            "one" => Acks::One,
            _ => Acks::All,
        };
        let compression = match get(settings, "compression") {
            "none" => "none",
            "gzip" => "gzip",
            "lz4" => "lz4",
            "zstd" => "zstd",
            _ => "snappy",
        }
        .to_owned();
        let batch_bytes = get_int(settings, "batchBytes", 1_000_012, &mut errors);
        if !(1_000..=1_000_000_000).contains(&batch_bytes) {
            errors.push(problem(
                "batchBytes",
                format!("{batch_bytes} is outside 1000..=1000000000 (what librdkafka accepts)"),
            ));
        }
        let delivery_timeout =
            get_duration(settings, "deliveryTimeout", &mut errors).filter(|d| !d.is_zero());
        let config = DestinationConfig {
            connection,
            // A placeholder only when there are errors (then it is never used).
            topic: topic.unwrap_or(TopicChoice::Static(String::new())),
            acks,
            delivery_timeout,
            compression,
            batch_bytes,
        };
        finish(config, errors)
    }

    /// librdkafka producer properties.
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = self.connection.client_config();
        let acks = match self.acks {
            Acks::None => "0",
            Acks::One => "1",
            Acks::All => "all",
        };
        // Java's (and franz-go's) partitioner for keyed records, so the same key lands in
        // the same partition whichever client wrote it.
        config
            .set("acks", acks)
            .set("enable.idempotence", (self.acks == Acks::All).to_string())
            .set("compression.codec", &self.compression)
            .set("batch.size", self.batch_bytes.to_string())
            .set(
                "message.max.bytes",
                self.batch_bytes.max(1_000_000).to_string(),
            )
            .set("partitioner", "murmur2_random")
            .set(
                "message.timeout.ms",
                self.delivery_timeout
                    .map(|d| d.as_millis().clamp(1, i32::MAX as u128).to_string())
                    .unwrap_or_else(|| "0".to_owned()),
            );
        config
    }
}

/// A `topic` setting: a Kafka name, or a Go template (Conduit's rule: a text that is not a
/// valid name must contain `{{` and `}}` and parse).
fn parse_topic(text: &str) -> Result<TopicChoice, String> {
    if is_topic_name(text) {
        if text.len() > MAX_TOPIC_LENGTH {
            return Err(format!(
                "topic is too long ({} characters; at most {MAX_TOPIC_LENGTH})",
                text.len()
            ));
        }
        return Ok(TopicChoice::Static(text.to_owned()));
    }
    if !text.contains("{{") || !text.contains("}}") {
        return Err(format!(
            "{text:?} is neither a valid Kafka topic name nor a Go template"
        ));
    }
    let template = Template::parse(text).map_err(|e| {
        format!("{text:?} is neither a valid Kafka topic name nor a valid Go template: {e}")
    })?;
    Ok(TopicChoice::Template {
        text: text.to_owned(),
        template,
    })
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

    #[test]
    fn parameters_match_conduits_names_and_defaults() {
        let source = source_parameters();
        let names: Vec<&str> = source.iter().map(|p| p.name).collect();
        for name in [
            "servers",
            "topics",
            "caCert",
            "clientCert",
            "clientID",
            "clientKey",
            "commitOffsetsDelay",
            "commitOffsetsSize",
            "groupID",
            "insecureSkipVerify",
            "readFromBeginning",
            "retryGroupJoinErrors",
            "saslMechanism",
            "saslPassword",
            "saslUsername",
            "tls.enabled",
        ] {
            assert!(names.contains(&name), "source lacks {name}");
        }
        let dest = destination_parameters();
        let default = |name| dest.iter().find(|p| p.name == name).unwrap().default;
        assert_eq!(default("acks"), "all");
        assert_eq!(default("compression"), "snappy");
        assert_eq!(default("batchBytes"), "1000012");
        assert_eq!(
            default("topic"),
            r#"{{ index .Metadata "opencdc.collection" }}"#
        );
        assert!(dest.iter().any(|p| p.name == "saslPassword" && p.sensitive));
        assert!(dest.iter().any(|p| p.name == "clientKey" && p.sensitive));
    }

    #[test]
    fn settings_that_do_not_fit_together_are_refused_naming_each() {
        let error = SourceConfig::parse(&settings(&[
            ("servers", "localhost:9092"),
            ("topics", "a,b c"),
            ("saslMechanism", "PLAIN"),
            ("saslUsername", "me"),
            ("tls.enabled", "true"),
            ("clientCert", "-----BEGIN CERTIFICATE-----"),
        ]))
        .unwrap_err();
        let keys: Vec<&str> = error.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["clientKey", "saslPassword", "topics"], "{error}");
        let error = DestinationConfig::parse(&settings(&[
            ("servers", "localhost:9092"),
            ("topic", "not a topic"),
        ]))
        .unwrap_err();
        assert_eq!(error.0[0].key, "topic");
    }

    #[test]
    fn topics_are_names_or_templates() {
        assert!(matches!(parse_topic("orders.v1"), Ok(TopicChoice::Static(t)) if t == "orders.v1"));
        assert!(matches!(
            parse_topic(r#"{{ index .Metadata "opencdc.collection" }}"#),
            Ok(TopicChoice::Template { .. })
        ));
        assert!(parse_topic("a b").is_err());
        assert!(parse_topic(&"x".repeat(250)).is_err());
        assert!(parse_topic("{{ nope").is_err());
    }

    #[test]
    fn client_properties_follow_the_settings() {
        let config = DestinationConfig::parse(&settings(&[
            ("servers", "a:1, b:2"),
            ("topic", "t"),
            ("acks", "one"),
            ("compression", "zstd"),
            ("saslMechanism", "SCRAM-SHA-512"),
            ("saslUsername", "u"),
            ("saslPassword", "p"),
            ("tls.enabled", "true"),
            ("deliveryTimeout", "2s"),
        ]))
        .unwrap();
        let props = config.producer_config();
        assert_eq!(props.get("bootstrap.servers"), Some("a:1,b:2"));
        assert_eq!(props.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(props.get("acks"), Some("1"));
        assert_eq!(props.get("enable.idempotence"), Some("false"));
        assert_eq!(props.get("compression.codec"), Some("zstd"));
        assert_eq!(props.get("message.timeout.ms"), Some("2000"));
        assert!(
            !format!("{config:?}").contains("\"p\""),
            "password redacted"
        );
        let all = DestinationConfig::parse(&settings(&[("servers", "a:1"), ("topic", "t")]))
            .unwrap()
            .producer_config();
        assert_eq!(all.get("enable.idempotence"), Some("true"));
        assert_eq!(all.get("message.timeout.ms"), Some("0"));
    }

    #[test]
    fn consumer_properties_commit_nothing_by_themselves_and_keep_fetching() {
        let config = SourceConfig::parse(&settings(&[
            ("servers", "127.0.0.1:1"),
            ("topics", "t"),
            ("readFromBeginning", "true"),
        ]))
        .unwrap();
        let props = config.consumer_config("g");
        assert_eq!(props.get("group.id"), Some("g"));
        assert_eq!(props.get("enable.auto.commit"), Some("false"));
        assert_eq!(props.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(props.get("auto.offset.reset"), Some("earliest"));
        // Not librdkafka's 1 s pause once its queue is full (see FETCH_QUEUE_BACKOFF_MS).
        assert_eq!(props.get("fetch.queue.backoff.ms"), Some("10"));
        assert_eq!(props.get("queued.max.messages.kbytes"), Some("32768"));
        // librdkafka knows every property and accepts every value (creating a consumer
        // checks them; it connects only when polled).
        let consumer: rdkafka::consumer::BaseConsumer = props.create().unwrap();
        drop(consumer);
    }
}
