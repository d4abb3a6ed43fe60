//! The server's schema registry: Conduit's built-in one, whose schemas are
//! `SchemaRegistered` events in the log (so they survive restarts, and a replay of the log
//! gives every schema the id it had). Connectors reach it through the connector utilities
//! service, WASM processors through host functions, `avro.*` processors directly.

use culvert_commands::{CommandError, Context, SchemaOrchestrator};
use culvert_plugins::schema::{RegisteredSchema, SchemaError, SchemaRegistry, SchemaType};

/// The built-in registry over the log.
pub struct LogRegistry(pub SchemaOrchestrator);

impl SchemaRegistry for LogRegistry {
    fn create(
        &self,
        subject: &str,
        schema_type: SchemaType,
        text: &str,
    ) -> Result<RegisteredSchema, SchemaError> {
        match schema_type {
            SchemaType::Avro => {
                culvert_processors::avro::parse_schema(text).map_err(SchemaError::InvalidSchema)?
            }
        };
        self.0
            .register(&Context::system(), subject, schema_type, text)
            .map_err(|error| match error {
                CommandError::Domain(e) => SchemaError::InvalidSchema(e.to_string()),
                other => SchemaError::Unavailable(other.to_string()),
            })
    }

    fn get(&self, subject: &str, version: u32) -> Result<RegisteredSchema, SchemaError> {
        self.0
            .get(subject, version)
            .ok_or_else(|| SchemaError::missing_version(self.0.has_subject(subject)))
    }

    fn by_id(&self, id: u32) -> Result<(SchemaType, String), SchemaError> {
        self.0.by_id(id).ok_or(SchemaError::IdNotFound(id))
    }
}
