//! Conduit's `builtin:postgres` connector (conduit-connector-postgres v0.14.2), native: a
//! snapshot + logical-replication (pgoutput) source and a batched destination. Registered
//! in `culvert-connectors`' registry.
//!
//! * [`source`]: an initial snapshot of the configured tables, read in one transaction
//!   that uses the snapshot the replication slot exported when it was created, then the
//!   changes streamed from that slot's consistent point over a publication. The slot's
//!   confirmed flush position moves only in `ack`, after the engine has persisted the
//!   position of everything delivered.
//! * [`destination`]: inserts (upserts on the key) and deletes by key, one transaction per
//!   batch, into the table the `table` setting (a Go template) names for each record.
//! * [`values`]: PostgreSQL values (text format) as the JSON values records carry.
//! * [`position`]: the position format (Conduit's JSON, with what an exact resume needs).
//!
//! Settings and defaults are Conduit's (see [`config`]); what differs is listed in
//! `docs/connectors/postgres.md`. The connector owns only its own connections: it spawns
//! no task that outlives the source or destination that started it.

pub mod config;
pub mod destination;
pub mod position;
pub mod source;
pub mod values;

#[cfg(test)]
pub(crate) mod test_pg;
#[cfg(test)]
mod tests;

use culvert_plugins::connector::{
    ConnectorPlugin, Destination, PluginError, Settings, Source, Specification,
};

/// The version listed and accepted in references (`builtin:postgres@v0.14.2`): the version
/// of Conduit's `conduit-connector-postgres` this connector matches.
pub const CONDUIT_VERSION: &str = "v0.14.2";

/// The postgres plugin.
pub struct Postgres {
    spec: Specification,
}

impl Postgres {
    /// The plugin with its specification.
    pub fn new() -> Self {
        Self {
            spec: Specification {
                name: "postgres",
                summary: "Conduit connector for PostgreSQL",
                description: "The source takes a snapshot of the configured tables, then \
                    streams their changes through logical replication (pgoutput) from a \
                    replication slot and publication it creates or reuses. The destination \
                    upserts and deletes rows by key, one transaction per batch, in the table \
                    named by the `table` template.",
                version: CONDUIT_VERSION,
                author: "Culvert",
                source: Some(config::source_parameters()),
                destination: Some(config::destination_parameters()),
                standalone: false,
            },
        }
    }
}

impl Default for Postgres {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectorPlugin for Postgres {
    fn specification(&self) -> &Specification {
        &self.spec
    }

    fn new_source(&self, settings: &Settings) -> Result<Box<dyn Source>, PluginError> {
        let config = config::SourceConfig::from_settings(settings)?;
        Ok(Box::new(source::PostgresSource::new(config)))
    }

    fn new_destination(&self, settings: &Settings) -> Result<Box<dyn Destination>, PluginError> {
        let config = config::DestinationConfig::from_settings(settings)?;
        Ok(Box::new(destination::PostgresDestination::new(config)))
    }
}

/// Connect with tokio-postgres (no TLS: `sslmode=require` is refused by the driver with
/// a clear error), driving the connection on a task owned by the returned handle.
pub(crate) async fn connect(
    config: &tokio_postgres::Config,
    what: &str,
) -> Result<Connection, PluginError> {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| PluginError::Other(format!("{what}: connecting to PostgreSQL: {e}")))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
    Ok(Connection { client, driver })
}

/// A tokio-postgres client and the task that drives its connection (aborted on drop, so
/// the connection never outlives its owner).
pub(crate) struct Connection {
    pub(crate) client: tokio_postgres::Client,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A PostgreSQL error with what was being done, as a plugin error.
pub(crate) fn pg_error(
    context: impl std::fmt::Display,
    error: tokio_postgres::Error,
) -> PluginError {
    // The driver's Display hides the server's message behind "db error"; show it.
    let detail = match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    };
    PluginError::Other(format!("{context}: {detail}"))
}

/// A SQL identifier, double-quoted as a whole (as Conduit quotes table and column names).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod plugin_tests {
    use super::*;
    use culvert_plugins::Registry;
    use std::sync::Arc;

    #[test]
    fn the_plugin_is_listed_as_conduits() {
        let mut registry = Registry::default();
        registry.add(Arc::new(Postgres::new()));
        let spec = registry
            .lookup("builtin:postgres@v0.14.2")
            .unwrap()
            .specification();
        assert_eq!(spec.full_name(), "builtin:postgres@v0.14.2");
        let settings: Settings = [
            ("url".to_owned(), "postgres://u@127.0.0.1/db".to_owned()),
            ("tables".to_owned(), "users".to_owned()),
        ]
        .into();
        let applied = registry
            .validate("postgres", culvert_plugins::Side::Source, &settings)
            .unwrap();
        assert_eq!(applied["logrepl.slotName"], "conduitslot");
        assert_eq!(applied["logrepl.publicationName"], "conduitpub");
        assert_eq!(applied["snapshotMode"], "initial");
        assert_eq!(applied["cdcMode"], "auto");
        assert_eq!(applied["snapshot.fetchSize"], "50000");
        let applied = registry
            .validate(
                "postgres",
                culvert_plugins::Side::Destination,
                &settings_url(),
            )
            .unwrap();
        assert_eq!(
            applied["table"],
            "{{ index .Metadata \"opencdc.collection\" }}"
        );
    }

    fn settings_url() -> Settings {
        [("url".to_owned(), "postgres://u@127.0.0.1/db".to_owned())].into()
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let registry = {
            let mut r = Registry::default();
            r.add(Arc::new(Postgres::new()));
            r
        };
        let settings: Settings = [
            ("url".to_owned(), "postgres://u@127.0.0.1/db".to_owned()),
            ("tables".to_owned(), "users".to_owned()),
            ("logrepl.slotName".to_owned(), "Bad-Slot".to_owned()),
            ("snapshotMode".to_owned(), "sometimes".to_owned()),
        ]
        .into();
        let error = registry
            .validate("postgres", culvert_plugins::Side::Source, &settings)
            .unwrap_err()
            .to_string();
        assert!(error.contains("logrepl.slotName"), "{error}");
        assert!(error.contains("snapshotMode"), "{error}");
        let settings: Settings = [("tables".to_owned(), "users".to_owned())].into();
        let error = registry
            .validate("postgres", culvert_plugins::Side::Source, &settings)
            .unwrap_err()
            .to_string();
        assert!(error.contains("setting \"url\": required"), "{error}");
        let settings: Settings = [
            ("url".to_owned(), "not a url ===".to_owned()),
            ("tables".to_owned(), "users".to_owned()),
        ]
        .into();
        let error = registry
            .validate("postgres", culvert_plugins::Side::Source, &settings)
            .unwrap_err()
            .to_string();
        assert!(error.contains("url"), "{error}");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("users"), "\"users\"");
        assert_eq!(quote_ident("Users"), "\"Users\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
