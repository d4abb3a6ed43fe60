//! The built-in processors, the processor registry, and `condition` handling.
//!
//! Each built-in has a module of its own, named after it (`field.set` is [`field_set`]):
//! [`avro_decode`], [`avro_encode`] (with [`avro`], the codec), [`base64_decode`],
//! [`base64_encode`], [`clone`](mod@clone), [`cohere`] (`cohere.command`, `.embed`,
//! `.rerank`), [`custom_javascript`], [`error`], [`field_convert`], [`field_exclude`],
//! [`field_rename`], [`field_set`], [`filter`], [`json_decode`], [`json_encode`],
//! [`ollama`], [`openai`] (`openai.embeddings`, `.textgen`), [`split`](mod@split),
//! [`unwrap_debezium`], [`unwrap_kafkaconnect`], [`unwrap_opencdc`] and [`webhook_http`]:
//! all 25 of Conduit's. [`confluent`] is the Confluent schema-registry client the server
//! uses with `schema-registry.type: confluent`. They follow
//! Conduit's: same names, parameters, defaults, validations and behaviour, checked against
//! Conduit's own examples, and their specifications against a fixture derived from
//! Conduit's (`fixtures/conduit-processor-specs.json`, by
//! `scripts/conduit-processor-specs.py`). Their `sdk.schema.*` parameters are accepted
//! (Conduit's processor SDK adds them) and do what the SDK does: `sdk_schema` decodes keys
//! and payloads that come with a schema before a built-in and encodes them after. [`registry()`] gives a
//! [`ProcessorRegistry`] holding them all; the binary adds the standalone (WASM) ones found
//! in the plugin folder.
//!
//! * [`registry`](mod@registry): lookup by reference and configuration into instances;
//! * [`condition`]: the `condition` template that chooses which records a processor sees;
//! * [`parallel`]: Conduit's `workers`, one processor run by several instances, order kept;
//! * [`reference`](mod@reference): field references (`.Payload.After.name`) as processors use them.
//!
//! What the built-ins share has modules of its own, inside the crate: `params` (parameters
//! and settings), `per_record` (processors that take one record at a time), `resolve`
//! (reading a field as Conduit's resolver does), `wrapped` (records carried in a field),
//! `gofmt` (Go's printing of values and type names), `gojson` (JSON as Go writes it), `http` (the HTTP client, retries and
//! service URLs of the processors that call web services) and, for tests, `testing`.
//!
//! The processor trait itself is the contract in `culvert-plugins`.

pub mod avro;
pub mod avro_decode;
pub mod avro_encode;
pub mod base64_decode;
pub mod base64_encode;
pub mod clone;
pub mod cohere;
pub mod condition;
pub mod confluent;
pub mod custom_javascript;
pub mod error;
pub mod field_convert;
pub mod field_exclude;
pub mod field_rename;
pub mod field_set;
pub mod filter;
pub mod json_decode;
pub mod json_encode;
pub mod ollama;
pub mod openai;
pub mod parallel;
pub mod reference;
pub mod registry;
pub mod schema_codec;
mod sdk_schema;
pub mod split;
pub mod unwrap_debezium;
pub mod unwrap_kafkaconnect;
pub mod unwrap_opencdc;
pub mod webhook_http;

mod gofmt;
mod gojson;
mod http;
/// A URL as logs and errors show it: the password of `user:password@` as `***`.
pub use http::without_password as url_without_password;
mod params;
mod per_record;
mod resolve;
#[cfg(test)]
mod testing;
mod wrapped;

pub use field_exclude::FieldExclude;
pub use field_rename::FieldRename;
pub use field_set::FieldSet;
pub use filter::Filter;
pub use parallel::Parallel;
pub use reference::{FieldValue, Reference, ReferenceError};
pub use registry::{ConfigureError, ProcessorRegistry};

use culvert_plugins::schema::SchemaRegistry;
use std::sync::Arc;

/// A registry of the built-in processors; the `avro.*` ones use a schema registry in memory
/// (the server gives them its own with [`registry_with_schemas`]).
pub fn registry() -> ProcessorRegistry {
    registry_with_schemas(Arc::new(avro::MemoryRegistry::default()))
}

/// A registry of the built-in processors whose `avro.*` processors use `schemas`.
pub fn registry_with_schemas(schemas: Arc<dyn SchemaRegistry>) -> ProcessorRegistry {
    let mut registry = ProcessorRegistry::default();
    registry.use_schemas(schemas.clone());
    registry.add(Arc::new(avro_decode::AvroDecode::new(schemas.clone())));
    registry.add(Arc::new(avro_encode::AvroEncode::new(schemas)));
    registry.add(Arc::new(base64_decode::Base64Decode::new()));
    registry.add(Arc::new(base64_encode::Base64Encode::new()));
    registry.add(Arc::new(clone::CloneProcessor::new()));
    registry.add(Arc::new(cohere::CohereCommand::new()));
    registry.add(Arc::new(cohere::CohereEmbed::new()));
    registry.add(Arc::new(cohere::CohereRerank::new()));
    registry.add(Arc::new(custom_javascript::CustomJavascript::new()));
    registry.add(Arc::new(error::ErrorProcessor::new()));
    registry.add(Arc::new(field_convert::FieldConvert::new()));
    registry.add(Arc::new(FieldExclude::new()));
    registry.add(Arc::new(FieldRename::new()));
    registry.add(Arc::new(FieldSet::new()));
    registry.add(Arc::new(Filter::new()));
    registry.add(Arc::new(json_decode::JsonDecode::new()));
    registry.add(Arc::new(json_encode::JsonEncode::new()));
    registry.add(Arc::new(ollama::Ollama::new()));
    registry.add(Arc::new(openai::OpenAiEmbeddings::new()));
    registry.add(Arc::new(openai::OpenAiTextgen::new()));
    registry.add(Arc::new(split::Split::new()));
    registry.add(Arc::new(unwrap_debezium::UnwrapDebezium::new()));
    registry.add(Arc::new(unwrap_kafkaconnect::UnwrapKafkaConnect::new()));
    registry.add(Arc::new(unwrap_opencdc::UnwrapOpenCdc::new()));
    registry.add(Arc::new(webhook_http::WebhookHttp::new()));
    registry
}

pub(crate) const AUTHOR: &str = "Culvert";
pub(crate) const VERSION: &str = "v0.1.0";

#[cfg(test)]
mod tests;
