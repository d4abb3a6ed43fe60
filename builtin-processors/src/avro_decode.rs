//! `avro.decode`: decode a field's Avro bytes in the Confluent wire format into structured
//! data, with the schema the bytes name, read from the schema registry (and cached).

use crate::avro::{decode, encoding, parse_schema, split_header, Encoding};
use crate::params::{reference, setting_or, with_schema_parameters};
use crate::per_record::{PerRecord, RecordProcessor};
use crate::reference::{FieldValue, Reference};
use crate::resolve::{resolve, unexpected_type};
use crate::{AUTHOR, VERSION};
use culvert_domain::{Data, Record};
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::schema::SchemaRegistry;
use culvert_plugins::spec::{Parameter, ParameterType};
use culvert_plugins::{PluginError, Settings};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// `avro.decode`: decode a field from Avro.
pub struct AvroDecode {
    spec: ProcessorSpecification,
    registry: Arc<dyn SchemaRegistry>,
}

impl AvroDecode {
    /// The plugin, decoding with schemas from `registry`.
    pub fn new(registry: Arc<dyn SchemaRegistry>) -> Self {
        let parameters = with_schema_parameters(
            vec![Parameter::new(
                "field",
                ParameterType::String,
                "The field to decode (a reference such as `.Key` or `.Payload.After`).",
            )
            .default_value(".Payload.After")],
            "true",
        );
        Self {
            spec: ProcessorSpecification {
                name: "avro.decode",
                summary: "Decode a field's raw data in the Avro format.",
                description: "Takes the field's raw data (bytes or text) in the Confluent wire \
                              format, reads the schema id from its header, fetches that schema \
                              from the schema registry (once; it is cached) and stores the \
                              decoded structured data in the same field. Structured data, or \
                              bytes that cannot be decoded, fail the record. The counterpart \
                              of `avro.encode`.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
            registry,
        }
    }
}

impl ProcessorPlugin for AvroDecode {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let field = reference("field", setting_or(settings, "field", ".Payload.After"))?;
        Ok(Box::new(PerRecord(Decoder {
            field,
            registry: self.registry.clone(),
            schemas: Mutex::new(HashMap::new()),
        })))
    }
}

struct Decoder {
    field: Reference,
    registry: Arc<dyn SchemaRegistry>,
    /// Schemas by id, parsed, as they are first needed (ids never change meaning).
    schemas: Mutex<HashMap<u32, Arc<Encoding>>>,
}

impl Decoder {
    fn schema(&self, id: u32) -> Result<Arc<Encoding>, String> {
        if let Some(schema) = self.schemas.lock().expect("schema lock").get(&id) {
            return Ok(schema.clone());
        }
        let (_, text) = self.registry.by_id(id).map_err(|e| e.to_string())?;
        let schema = Arc::new(encoding(parse_schema(&text)?)?);
        self.schemas
            .lock()
            .expect("schema lock")
            .insert(id, schema.clone());
        Ok(schema)
    }
}

impl RecordProcessor for Decoder {
    fn process_record(&self, record: &mut Record) -> Result<(), String> {
        let value =
            resolve(&self.field, record).map_err(|e| format!("failed resolving field: {e}"))?;
        let bytes = match value {
            Some(FieldValue::Data(Some(Data::Raw(bytes))) | FieldValue::Bytes(bytes)) => bytes,
            Some(FieldValue::Text(text) | FieldValue::Json(Value::String(text))) => {
                text.into_bytes()
            }
            Some(other) => {
                return Err(format!(
                    "failed getting raw data: {}",
                    unexpected_type(&other)
                ))
            }
            None => return Err("failed getting raw data: unexpected data type <nil>".into()),
        };
        let (id, datum) = split_header(&bytes).map_err(|e| format!("failed decoding data: {e}"))?;
        let schema = self
            .schema(id)
            .map_err(|e| format!("failed decoding data: failed to get schema: {e}"))?;
        let decoded = decode(&schema, datum).map_err(|e| {
            format!("failed decoding data: failed to unmarshal data with schema (ID: {id}): {e}")
        })?;
        let decoded = match decoded {
            object @ Value::Object(_) => object,
            // A schema that is not a record decodes to a plain value; Conduit's structured
            // data is an object, so it is kept under the key "value".
            other => Value::Object(serde_json::Map::from_iter([("value".to_owned(), other)])),
        };
        self.field
            .set_value(record, FieldValue::Json(decoded))
            .map_err(|e| format!("failed setting the decoded value: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::MemoryRegistry;
    use crate::avro_encode::tests::run_one;
    use crate::avro_encode::AvroEncode;
    use crate::testing::*;
    use culvert_plugins::schema::SchemaType;
    use serde_json::json;

    const SCHEMA: &str = r#"
{
  "type":"record",
  "name":"record",
  "fields":[
    {"name":"myString","type":"string"},
    {"name":"myInt","type":"int"}
  ]
}"#;

    #[test]
    fn conduits_example() {
        let registry = Arc::new(MemoryRegistry::default());
        registry
            .create("example-decode", SchemaType::Avro, SCHEMA)
            .unwrap();
        let plugin = AvroDecode::new(registry);
        let input = example(
            None,
            Some(Data::Raw(vec![0, 0, 0, 0, 1, 6, 98, 97, 114, 2])),
        );
        let want = example(None, structured(json!({"myString": "bar", "myInt": 1})));
        assert_eq!(run_one(&plugin, &[("field", ".Key")], input), Ok(want));
    }

    #[test]
    fn what_encode_writes_decode_reads_back() {
        let registry = Arc::new(MemoryRegistry::default());
        let encode = AvroEncode::new(registry.clone());
        let decode = AvroDecode::new(registry);
        let data = json!({"a": 1, "b": "x", "c": [1.5, null], "d": {"e": true}, "f": null});
        let original = example(structured(data), None);
        let encoded = run_one(
            &encode,
            &[
                ("schema.strategy", "autoRegister"),
                ("schema.autoRegister.subject", "s"),
            ],
            original.clone(),
        )
        .unwrap();
        assert_ne!(encoded, original);
        assert_eq!(run_one(&decode, &[], encoded), Ok(original));
    }

    #[test]
    fn records_that_cannot_be_decoded_fail_with_the_reason() {
        let registry = Arc::new(MemoryRegistry::default());
        registry.create("s", SchemaType::Avro, SCHEMA).unwrap();
        let plugin = AvroDecode::new(registry);
        let cases = [
            (
                example(structured(json!({"a": 1})), None),
                "unexpected data type opencdc.StructuredData",
            ),
            (example(None, None), "unexpected data type <nil>"),
            (example(raw("\u{1}abcd"), None), "magic byte"),
            (
                example(Some(Data::Raw(vec![0, 0, 0, 0, 9, 1])), None),
                "schema with ID 9 not found",
            ),
            (
                example(Some(Data::Raw(vec![0, 0, 0, 0, 1, 6, 98])), None),
                "failed to unmarshal data with schema (ID: 1)",
            ),
        ];
        for (input, reason) in cases {
            let error = run_one(&plugin, &[], input).unwrap_err();
            assert!(error.contains(reason), "{error}");
        }
    }
}
