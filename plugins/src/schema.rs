//! The schema registry as plugins see it: connectors register the schemas of structured
//! keys and payloads (through the connector utilities service), WASM processors through
//! host functions, and the `avro.*` processors encode and decode with them.
//!
//! The server provides one registry to all of them: the built-in one (schemas are events in
//! the log, so they survive restarts and replays) or a Confluent schema registry. Calls are
//! synchronous and short (an in-memory lookup or one append); an implementation that goes
//! over the network bounds its own calls.

pub use culvert_domain::{RegisteredSchema, SchemaType};

/// Why a registry call failed. The first three messages are the ones Conduit's connector
/// protocol maps to its error values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// No such subject.
    #[error("schema subject not found")]
    SubjectNotFound,
    /// The subject has no such version.
    #[error("schema version not found")]
    VersionNotFound,
    /// The text is not a schema of its type, or the subject is not a valid one.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// No schema has that id.
    #[error("schema with ID {0} not found")]
    IdNotFound(u32),
    /// The registry could not answer (not configured, unreachable, the log refused the write).
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
}

impl SchemaError {
    /// The error for a version a registry does not have: the subject is unknown, or it is
    /// known and the version is not.
    pub fn missing_version(subject_exists: bool) -> Self {
        if subject_exists {
            Self::VersionNotFound
        } else {
            Self::SubjectNotFound
        }
    }
}

/// A schema registry.
pub trait SchemaRegistry: Send + Sync {
    /// Register `text` under `subject`; a text the subject has already answers the version
    /// it has.
    fn create(
        &self,
        subject: &str,
        schema_type: SchemaType,
        text: &str,
    ) -> Result<RegisteredSchema, SchemaError>;
    /// `subject`'s schema at `version`.
    fn get(&self, subject: &str, version: u32) -> Result<RegisteredSchema, SchemaError>;
    /// The type and text of the schema with a global id.
    fn by_id(&self, id: u32) -> Result<(SchemaType, String), SchemaError>;
}
