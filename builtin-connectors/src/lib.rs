//! The built-in connectors, one module each, and the registry that holds them.
//!
//! * [`generator`]: made-up records at a rate or in bursts (Conduit's `builtin:generator`);
//! * [`file`]: lines of a file as records, and records written as lines;
//! * [`log`]: a destination that logs each record;
//! * [`oracle`]: records with checkable ids and hashes, a destination that writes down what
//!   arrived, and the verdict that counts lost, duplicated, reordered and corrupted records
//!   (the reliability suite's data oracle);
//! * `s3` (crate `culvert-connector-s3`): the objects of an S3 bucket and their changes as
//!   records, and records written as objects (Conduit's `builtin:s3`);
//! * `kafka` (crate `culvert-connector-kafka`, re-exported as [`kafka`]): Kafka topics
//!   read as a consumer group, and records written as messages (Conduit's `builtin:kafka`);
//! * `postgres` (crate `culvert-connector-postgres`): a snapshot of PostgreSQL tables then
//!   their changes through logical replication, and records upserted/deleted by key
//!   (Conduit's `builtin:postgres`);
//! * [`sdk_schema`]: the schema settings Conduit's connector SDK gives each of them.
//!
//! They implement the `Source` and `Destination` traits of `culvert-plugins`, the same
//! contract standalone connectors (in `culvert-hosts`) implement, so the engine never knows
//! which is which. [`registry()`] gives a `Registry` holding them; the binary adds the
//! standalone ones found in the plugin folder. A new built-in connector is a module here
//! and one line in [`registry()`].

pub mod file;
pub mod generator;
pub mod log;
pub mod oracle;
pub mod sdk_schema;

/// The Kafka connector's crate (its `admin` look-ups serve the end-to-end tests).
pub use culvert_connector_kafka as kafka;

use culvert_plugins::schema::SchemaRegistry;
use culvert_plugins::{ConnectorPlugin, Registry};
use std::sync::Arc;

/// The built-in connector plugins, each with whether its source extracts schemas by
/// default (Conduit's file source does not: its lines are raw).
fn builtins() -> Vec<(Arc<dyn ConnectorPlugin>, bool)> {
    vec![
        (Arc::new(generator::Generator::new()), true),
        (Arc::new(file::File::new()), false),
        (Arc::new(log::Log::new()), true),
        // The oracle's payloads are raw bytes: no schemas.
        (Arc::new(oracle::Oracle::new()), false),
        // Conduit's S3 source does not extract schemas by default (objects are raw).
        (Arc::new(culvert_connector_s3::S3::new()), false),
        // Conduit's Kafka source does not extract schemas by default (messages are raw).
        (Arc::new(culvert_connector_kafka::Kafka::new()), false),
        // Conduit's postgres source attaches schemas to its structured records.
        (Arc::new(culvert_connector_postgres::Postgres::new()), true),
    ]
}

/// A registry of the built-in connectors, without the SDK's schema settings.
pub fn registry() -> Registry {
    let mut registry = Registry::default();
    for (plugin, _) in builtins() {
        registry.add(plugin);
    }
    registry
}

/// A registry of the built-in connectors with the SDK's schema settings (see
/// [`sdk_schema`]), schemas kept in `schemas`: what the server runs.
pub fn registry_with_schemas(schemas: Arc<dyn SchemaRegistry>) -> Registry {
    let mut registry = Registry::default();
    for (plugin, extract) in builtins() {
        registry.add(sdk_schema::with_schemas(plugin, extract, schemas.clone()));
    }
    registry
}

#[cfg(test)]
mod tests {
    use super::registry;
    use culvert_plugins::{LookupError, Settings, Side};

    #[test]
    fn references_resolve_like_conduits() {
        let registry = registry();
        for reference in [
            "generator",
            "builtin:generator",
            "any:generator",
            "generator@latest",
        ] {
            assert_eq!(
                registry.lookup(reference).unwrap().specification().name,
                "generator"
            );
        }
        // Conduit's versions of its built-ins, as Conduit bundles them.
        for (reference, version) in [
            ("builtin:file@v0.10.8", "v0.10.8"),
            ("builtin:generator@v0.10.4", "v0.10.4"),
            ("log@v0.7.5", "v0.7.5"),
            ("builtin:file", "v0.10.8"),
        ] {
            let found = registry.lookup(reference).unwrap();
            assert_eq!(found.specification().version, version, "{reference}");
        }
        let wrong = registry.lookup("builtin:file@v9").err().unwrap();
        assert!(wrong.is_not_found());
        assert_eq!(
            wrong.to_string(),
            "plugin \"builtin:file@v9\" not found; available versions: [v0.10.8]"
        );
        let missing = registry.lookup("builtin:mysql").err().unwrap().to_string();
        assert!(missing.contains("file, generator, kafka, log"), "{missing}");
        assert!(matches!(
            registry.lookup("standalone:generator"),
            Err(LookupError::NotFound { .. })
        ));
        assert!(matches!(
            registry.lookup("weird:x"),
            Err(LookupError::Malformed(_))
        ));
        assert!(matches!(
            registry.lookup(""),
            Err(LookupError::Malformed(_))
        ));
    }

    #[test]
    fn validate_checks_the_side_and_the_settings() {
        let registry = registry();
        let settings: Settings = [("level".to_owned(), "warn".to_owned())].into();
        assert_eq!(
            registry
                .validate("builtin:log", Side::Destination, &settings)
                .unwrap()["level"],
            "warn"
        );
        let error = registry
            .validate("builtin:log", Side::Source, &settings)
            .unwrap_err()
            .to_string();
        assert_eq!(error, "plugin \"log\" has no source");
        let error = registry
            .validate("builtin:file", Side::Destination, &Settings::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains("setting \"path\": required"), "{error}");
    }
}
