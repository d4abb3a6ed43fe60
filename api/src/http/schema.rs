//! OpenAPI schemas for the protobuf messages, read from the same descriptors the messages
//! were generated from, so the document can never drift from the wire format.
//!
//! The JSON the HTTP API speaks is protojson as grpc-gateway writes it (the serde impls come
//! from pbjson): lowerCamelCase names, enums as their names, 64-bit integers as strings,
//! bytes as base64, timestamps as RFC 3339. The schemas here say exactly that.

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type as FieldType};
use prost_types::{DescriptorProto, EnumDescriptorProto, FieldDescriptorProto};
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

pub(crate) static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// Every message and enum of the compiled protos, by full name without the leading dot.
struct Index {
    messages: HashMap<String, DescriptorProto>,
    enums: HashMap<String, EnumDescriptorProto>,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let set = prost_types::FileDescriptorSet::decode(DESCRIPTORS)
            .expect("the descriptor set written by build.rs decodes");
        let mut index = Index {
            messages: HashMap::new(),
            enums: HashMap::new(),
        };
        for file in set.file {
            let package = file.package().to_owned();
            for e in file.enum_type {
                index.enums.insert(join(&package, e.name()), e);
            }
            for m in file.message_type {
                add_message(&mut index, &package, m);
            }
        }
        index
    })
}

fn join(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}.{name}")
    }
}

fn add_message(index: &mut Index, scope: &str, mut message: DescriptorProto) {
    let name = join(scope, message.name());
    for e in std::mem::take(&mut message.enum_type) {
        index.enums.insert(join(&name, e.name()), e);
    }
    for nested in std::mem::take(&mut message.nested_type) {
        // Map entries stay reachable by name: a map field refers to its entry type.
        add_message(index, &name, nested);
    }
    index.messages.insert(name, message);
}

/// poem-openapi's schemas want `&'static str`s; the names come from the descriptors, so they
/// are interned once and live for the process (a bounded set: one per proto name).
fn intern(s: &str) -> &'static str {
    static STRINGS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut strings = STRINGS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(existing) = strings.get(s) {
        return existing;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    strings.insert(leaked);
    leaked
}

/// A reference to the named message's schema, registering it (and everything it refers to)
/// on first use.
pub(crate) fn message_ref(registry: &mut Registry, full_name: &str) -> MetaSchemaRef {
    if let Some(wkt) = well_known(full_name) {
        return MetaSchemaRef::Inline(Box::new(wkt));
    }
    if !registry.schemas.contains_key(full_name) {
        // Placeholder first, so recursive messages terminate.
        registry
            .schemas
            .insert(full_name.to_owned(), MetaSchema::new("object"));
        let schema = message_schema(registry, full_name);
        registry.schemas.insert(full_name.to_owned(), schema);
    }
    MetaSchemaRef::Reference(full_name.to_owned())
}

fn message_schema(registry: &mut Registry, full_name: &str) -> MetaSchema {
    let index = index();
    let Some(message) = index.messages.get(full_name) else {
        return MetaSchema::ANY;
    };
    let mut schema = MetaSchema::new("object");
    schema.title = Some(message.name().to_owned());
    schema.deprecated = message
        .options
        .as_ref()
        .is_some_and(|o| o.deprecated.unwrap_or(false));
    for field in &message.field {
        let field_schema = field_schema(registry, field);
        schema
            .properties
            .push((intern(field.json_name()), field_schema));
    }
    schema
}

fn field_schema(registry: &mut Registry, field: &FieldDescriptorProto) -> MetaSchemaRef {
    let type_name = field.type_name().trim_start_matches('.');
    if field.label() == Label::Repeated {
        if field.r#type() == FieldType::Message {
            if let Some(entry) = index().messages.get(type_name) {
                if entry.options.as_ref().is_some_and(|o| o.map_entry()) {
                    // map<K, V>: a JSON object whose values are V (keys are always strings).
                    let value = entry.field.iter().find(|f| f.number() == 2);
                    let mut map = MetaSchema::new("object");
                    map.additional_properties = Some(Box::new(match value {
                        Some(v) => single_schema(registry, v),
                        None => MetaSchemaRef::Inline(Box::new(MetaSchema::ANY)),
                    }));
                    return MetaSchemaRef::Inline(Box::new(map));
                }
            }
        }
        let mut array = MetaSchema::new("array");
        array.items = Some(Box::new(single_schema(registry, field)));
        return MetaSchemaRef::Inline(Box::new(array));
    }
    single_schema(registry, field)
}

fn single_schema(registry: &mut Registry, field: &FieldDescriptorProto) -> MetaSchemaRef {
    let inline = |schema: MetaSchema| MetaSchemaRef::Inline(Box::new(schema));
    match field.r#type() {
        FieldType::Message | FieldType::Group => {
            message_ref(registry, field.type_name().trim_start_matches('.'))
        }
        FieldType::Enum => enum_ref(registry, field.type_name().trim_start_matches('.')),
        FieldType::String => inline(MetaSchema::new("string")),
        FieldType::Bytes => inline(MetaSchema::new_with_format("string", "byte")),
        FieldType::Bool => inline(MetaSchema::new("boolean")),
        FieldType::Double => inline(MetaSchema::new_with_format("number", "double")),
        FieldType::Float => inline(MetaSchema::new_with_format("number", "float")),
        FieldType::Int32 | FieldType::Sint32 | FieldType::Sfixed32 => {
            inline(MetaSchema::new_with_format("integer", "int32"))
        }
        FieldType::Uint32 | FieldType::Fixed32 => {
            inline(MetaSchema::new_with_format("integer", "int64"))
        }
        // protojson writes 64-bit integers as strings (JavaScript loses precision past 2^53).
        FieldType::Int64 | FieldType::Sint64 | FieldType::Sfixed64 => {
            inline(MetaSchema::new_with_format("string", "int64"))
        }
        FieldType::Uint64 | FieldType::Fixed64 => {
            inline(MetaSchema::new_with_format("string", "uint64"))
        }
    }
}

fn enum_ref(registry: &mut Registry, full_name: &str) -> MetaSchemaRef {
    if !registry.schemas.contains_key(full_name) {
        let mut schema = MetaSchema::new("string");
        if let Some(e) = index().enums.get(full_name) {
            schema.title = Some(e.name().to_owned());
            schema.enum_items = e
                .value
                .iter()
                .map(|v| serde_json::Value::String(v.name().to_owned()))
                .collect();
            if let Some(first) = e.value.first() {
                schema.default = Some(serde_json::Value::String(first.name().to_owned()));
            }
        }
        registry.schemas.insert(full_name.to_owned(), schema);
    }
    MetaSchemaRef::Reference(full_name.to_owned())
}

/// The JSON forms protojson gives the well-known types we use.
fn well_known(full_name: &str) -> Option<MetaSchema> {
    Some(match full_name {
        "google.protobuf.Timestamp" => MetaSchema::new_with_format("string", "date-time"),
        "google.protobuf.Duration" => MetaSchema::new("string"),
        "google.protobuf.Struct" => MetaSchema::new("object"),
        "google.protobuf.Value" => MetaSchema::ANY,
        "google.protobuf.ListValue" => {
            let mut array = MetaSchema::new("array");
            array.items = Some(Box::new(MetaSchemaRef::Inline(Box::new(MetaSchema::ANY))));
            array
        }
        _ => return None,
    })
}

/// Names of every message the descriptors know (for tests).
#[cfg(test)]
pub(crate) fn message_names() -> Vec<String> {
    index().messages.keys().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn property<'a>(schema: &'a MetaSchema, name: &str) -> &'a MetaSchemaRef {
        &schema
            .properties
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no property {name}"))
            .1
    }

    fn inline(r: &MetaSchemaRef) -> &MetaSchema {
        match r {
            MetaSchemaRef::Inline(s) => s,
            MetaSchemaRef::Reference(name) => panic!("expected an inline schema, got ${name}"),
        }
    }

    #[test]
    fn pipeline_schema_uses_protojson_names_and_types() {
        let mut registry = Registry::new();
        let r = message_ref(&mut registry, "api.v1.Pipeline");
        assert_eq!(r, MetaSchemaRef::Reference("api.v1.Pipeline".into()));
        let pipeline = &registry.schemas["api.v1.Pipeline"];
        assert_eq!(inline(property(pipeline, "connectorIds")).ty, "array");
        assert_eq!(
            inline(property(pipeline, "createdAt")).format,
            Some("date-time")
        );
        assert_eq!(
            property(pipeline, "state"),
            &MetaSchemaRef::Reference("api.v1.Pipeline.State".into())
        );
        message_ref(&mut registry, "api.v1.Pipeline.DLQ");
        let dlq = &registry.schemas["api.v1.Pipeline.DLQ"];
        let window = inline(property(dlq, "windowSize"));
        assert_eq!((window.ty, window.format), ("string", Some("uint64")));
        assert_eq!(inline(property(dlq, "settings")).ty, "object");
        let status = &registry.schemas["api.v1.Pipeline.Status"];
        assert!(status
            .enum_items
            .contains(&serde_json::Value::String("STATUS_RUNNING".into())));
    }

    #[test]
    fn every_message_registers_without_dangling_references() {
        let mut registry = Registry::new();
        for name in message_names() {
            message_ref(&mut registry, &name);
        }
        let json = serde_json::to_string(&registry.schemas).expect("schemas serialise");
        assert!(registry.schemas.keys().all(|name| !name.is_empty()));
        // Every $ref points at a registered schema.
        let mut rest = json.as_str();
        while let Some(at) = rest.find("#/components/schemas/") {
            let tail = &rest[at + "#/components/schemas/".len()..];
            let end = tail.find('"').expect("a closing quote");
            assert!(
                registry.schemas.contains_key(&tail[..end]),
                "dangling reference {}",
                &tail[..end]
            );
            rest = &tail[end..];
        }
    }
}
