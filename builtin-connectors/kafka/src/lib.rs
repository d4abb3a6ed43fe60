//! Conduit's `builtin:kafka` connector, native: a consumer-group source and an idempotent
//! producer destination, with the parameters, record shape and positions of Conduit's
//! `conduit-connector-kafka` (the version in [`CONDUIT_VERSION`]). Registered in
//! `culvert-connectors`' registry.
//!
//! * [`config`]: the parameter specification and its translation to librdkafka settings;
//! * [`source`]: reads topics as a consumer-group member; offsets are committed only for
//!   acknowledged records (at least once, across restarts and rebalances);
//! * [`destination`]: writes each record as a message and reports each refused one;
//! * [`admin`]: small cluster look-ups (topics, committed offsets) for tests and operators.
//!
//! The Kafka client is librdkafka through the `rdkafka` crate, on tokio; see
//! `docs/connectors/kafka.md` for why, and for what differs from Conduit's connector.
//! This crate owns talking to Kafka; it knows nothing of pipelines (the engine calls it
//! through the `Source` and `Destination` traits of `culvert-plugins`).

pub mod admin;
pub mod config;
pub mod destination;
pub mod source;

use culvert_plugins::connector::{
    ConnectorPlugin, Destination, PluginError, Settings, Source, Specification,
};

/// The version listed and accepted in references (`builtin:kafka@v0.12.5`): the version of
/// Conduit's `conduit-connector-kafka` this connector matches.
pub const CONDUIT_VERSION: &str = "v0.12.5";

/// The kafka plugin.
pub struct Kafka {
    spec: Specification,
}

impl Kafka {
    /// The plugin with its specification.
    pub fn new() -> Self {
        Self {
            spec: Specification {
                name: "kafka",
                summary: "Reads records from Kafka topics as a consumer group; writes records \
                          to Kafka topics.",
                description: "The source is one member of a consumer group; its position \
                    names the group (and the message), and the group's offsets are committed \
                    once records are acknowledged. The destination writes each record as a \
                    message (value: the record in OpenCDC JSON; key: the record's key) with \
                    an idempotent producer, to a topic named by a setting or a template.",
                version: CONDUIT_VERSION,
                author: "Culvert",
                source: Some(config::source_parameters()),
                destination: Some(config::destination_parameters()),
                standalone: false,
            },
        }
    }
}

impl Default for Kafka {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectorPlugin for Kafka {
    fn specification(&self) -> &Specification {
        &self.spec
    }

    fn new_source(&self, settings: &Settings) -> Result<Box<dyn Source>, PluginError> {
        let config = config::SourceConfig::parse(settings)?;
        Ok(Box::new(source::KafkaSource::new(config)))
    }

    fn new_destination(&self, settings: &Settings) -> Result<Box<dyn Destination>, PluginError> {
        let config = config::DestinationConfig::parse(settings)?;
        Ok(Box::new(destination::KafkaDestination::new(config)))
    }
}

#[cfg(test)]
mod tests;
