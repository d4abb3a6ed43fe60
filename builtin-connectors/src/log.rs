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
            // Serde's JSON is UTF-8: the bytes become the string without a copy.
            let json = String::from_utf8(record.to_json())
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn each_record_is_logged_as_its_json_at_the_level_set() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let settings = Settings::from([
            ("level".to_owned(), "warn".to_owned()),
            ("message".to_owned(), "seen".to_owned()),
        ]);
        let mut destination = Log::new().new_destination(&settings).unwrap();
        let records: Vec<Record> = (0..3)
            .map(|i| Record {
                position: culvert_domain::Position(format!("{i}").into_bytes()),
                metadata: [("n".to_owned(), format!("é{i}"))].into(),
                ..Record::default()
            })
            .collect();
        destination.write(&records).await.unwrap();
        // Below the level set: not logged.
        let mut quiet = Log::new()
            .new_destination(&Settings::from([("level".to_owned(), "info".to_owned())]))
            .unwrap();
        quiet.write(&records).await.unwrap();

        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        for (line, record) in lines.iter().zip(&records) {
            assert_eq!(line["level"], "WARN");
            assert_eq!(line["fields"]["message"], "seen");
            let logged = line["fields"]["record"].as_str().unwrap();
            assert_eq!(logged.as_bytes(), record.to_json(), "{logged}");
        }
    }
}
