//! `builtin:log`: a destination that logs every record (Conduit's log connector), at a
//! chosen level, with an optional message.

use culvert_domain::Record;
use culvert_plugins::connector::{
    ConnectorPlugin, Destination, PluginError, Settings, Source, Specification,
};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};

/// The version listed and accepted in references (`builtin:log@v0.7.5`): the version of
/// Conduit's `conduit-connector-log` that Conduit bundles and this connector matches.
pub const CONDUIT_VERSION: &str = "v0.7.5";

/// The log plugin.
pub struct Log {
    spec: Specification,
}

impl Log {
    /// The plugin with its specification.
    pub fn new() -> Self {
        Self {
            spec: Specification {
                name: "log",
                summary: "Logs every record it receives.",
                description: "A destination for trying pipelines out: each record is logged \
                    as OpenCDC JSON at the given level.",
                version: CONDUIT_VERSION,
                author: "Culvert",
                source: None,
                destination: Some(vec![
                    Parameter::new("level", ParameterType::String, "The log level.")
                        .default_value("info")
                        .validate(Validation::Inclusion(
                            ["trace", "debug", "info", "warn", "error"]
                                .map(String::from)
                                .to_vec(),
                        )),
                    Parameter::new(
                        "message",
                        ParameterType::String,
                        "A message logged with each record.",
                    ),
                ]),
                standalone: false,
            },
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectorPlugin for Log {
    fn specification(&self) -> &Specification {
        &self.spec
    }

    fn new_source(&self, _settings: &Settings) -> Result<Box<dyn Source>, PluginError> {
        Err(PluginError::Other("the log plugin has no source".into()))
    }

    fn new_destination(&self, settings: &Settings) -> Result<Box<dyn Destination>, PluginError> {
        let level = match settings.get("level").map(String::as_str).unwrap_or("info") {
            "trace" => tracing::Level::TRACE,
            "debug" => tracing::Level::DEBUG,
            "info" => tracing::Level::INFO,
            "warn" => tracing::Level::WARN,
            "error" => tracing::Level::ERROR,
            other => return Err(PluginError::Other(format!("unknown log level {other:?}"))),
        };
        Ok(Box::new(LogDestination {
            level,
            message: settings.get("message").cloned().unwrap_or_default(),
        }))
    }
}

/// Logs records.
pub struct LogDestination {
    level: tracing::Level,
    message: String,
}

#[async_trait::async_trait]
impl Destination for LogDestination {
    async fn open(&mut self) -> Result<(), PluginError> {
        Ok(())
    }

    async fn write(&mut self, records: &[Record]) -> Result<(), PluginError> {
        for record in records {
            let json = String::from_utf8_lossy(&record.to_json()).into_owned();
            let message = self.message.as_str();
            match self.level {
                tracing::Level::TRACE => tracing::trace!(record = %json, "{message}"),
                tracing::Level::DEBUG => tracing::debug!(record = %json, "{message}"),
                tracing::Level::INFO => tracing::info!(record = %json, "{message}"),
                tracing::Level::WARN => tracing::warn!(record = %json, "{message}"),
                _ => tracing::error!(record = %json, "{message}"),
            }
        }
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}
