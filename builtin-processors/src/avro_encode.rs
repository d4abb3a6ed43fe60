//! `avro.encode`: encode a field's structured data as Avro in the Confluent wire format,
//! with a schema from the schema registry (`preRegistered`) or inferred from the data and
//! registered on the fly (`autoRegister`).

use crate::avro::{encode, encoding, infer, parse_schema, with_header, Encoding, ShapeCache};
use crate::params::{invalid, reference, setting, setting_or, with_schema_parameters};
use crate::per_record::{PerRecord, RecordProcessor};
use crate::reference::{FieldValue, Reference};
use crate::resolve::{resolve, structured_data};
use crate::{AUTHOR, VERSION};
use culvert_domain::Record;
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::schema::{SchemaRegistry, SchemaType};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{PluginError, Settings};
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};

/// How many inferred schemas an `autoRegister` processor keeps parsed.
const INFERRED_CACHE: usize = 1024;

/// `avro.encode`: encode a field as Avro.
pub struct AvroEncode {
    spec: ProcessorSpecification,
    registry: Arc<dyn SchemaRegistry>,
}

impl AvroEncode {
    /// The plugin, encoding with schemas from `registry`.
    pub fn new(registry: Arc<dyn SchemaRegistry>) -> Self {
        let parameters = with_schema_parameters(
            vec![
                Parameter::new(
                    "field",
                    ParameterType::String,
                    "The field to encode (a reference such as `.Key` or `.Payload.After`).",
                )
                .default_value(".Payload.After"),
                Parameter::new(
                    "schema.autoRegister.subject",
                    ParameterType::String,
                    "The subject the inferred schema is registered under (strategy \
                     `autoRegister`).",
                ),
                Parameter::new(
                    "schema.preRegistered.subject",
                    ParameterType::String,
                    "The subject of the registered schema to encode with (strategy \
                     `preRegistered`).",
                ),
                Parameter::new(
                    "schema.preRegistered.version",
                    ParameterType::Int,
                    "The version of the registered schema to encode with (strategy \
                     `preRegistered`).",
                )
                .validate(Validation::GreaterThan(0.0)),
                Parameter::new(
                    "schema.strategy",
                    ParameterType::String,
                    "Where the schema comes from: `preRegistered` (recommended) downloads a \
                     registered schema (`schema.preRegistered.*`); `autoRegister` (for \
                     development) infers it from each record and registers it under \
                     `schema.autoRegister.subject`.",
                )
                .validate(Validation::Required)
                .validate(Validation::Inclusion(vec![
                    "preRegistered".into(),
                    "autoRegister".into(),
                ])),
            ],
            "true",
        );
        Self {
            spec: ProcessorSpecification {
                name: "avro.encode",
                summary: "Encode a record's field into the Avro format.",
                description: "Encodes the field's structured data (or JSON text) as Avro, with \
                              the Confluent wire format's header (a zero byte and the schema \
                              id), and stores the bytes in the same field. With \
                              `preRegistered` the schema is read from the schema registry once \
                              and cached; with `autoRegister` it is inferred from each record \
                              (objects become records with fields sorted by name, integers \
                              longs, other numbers doubles, null a nullable string) and \
                              registered, so two records of different shapes get different \
                              schemas. The counterpart of `avro.decode`.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
            registry,
        }
    }
}

impl ProcessorPlugin for AvroEncode {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let field = reference("field", setting_or(settings, "field", ".Payload.After"))?;
        let strategy = match setting(settings, "schema.strategy") {
            "preRegistered" => {
                let subject = setting(settings, "schema.preRegistered.subject");
                if subject.is_empty() {
                    return Err(invalid(
                        "schema.preRegistered.subject",
                        "subject required for schema strategy 'preRegistered'",
                    ));
                }
                let version = setting(settings, "schema.preRegistered.version");
                let version = version
                    .parse::<u32>()
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| {
                        invalid(
                            "schema.preRegistered.version",
                            format!("version needs to be positive: {version:?}"),
                        )
                    })?;
                Strategy::PreRegistered {
                    subject: subject.to_owned(),
                    version,
                    schema: Mutex::new(None),
                }
            }
            "autoRegister" => {
                let subject = setting(settings, "schema.autoRegister.subject");
                if subject.is_empty() {
                    return Err(invalid(
                        "schema.autoRegister.subject",
                        "subject required for schema strategy 'autoRegister'",
                    ));
                }
                Strategy::AutoRegister {
                    subject: subject.to_owned(),
                    schemas: Mutex::new(ShapeCache::new(INFERRED_CACHE)),
                }
            }
            "" => {
                return Err(invalid(
                    "schema.strategy",
                    "required parameter is not provided",
                ))
            }
            other => {
                return Err(invalid(
                    "schema.strategy",
                    format!("unknown schema strategy {other:?}"),
                ))
            }
        };
        Ok(Box::new(PerRecord(Encoder {
            field,
            strategy,
            registry: self.registry.clone(),
        })))
    }
}

/// A schema ready to encode with: its id and the parsed schema.
type Ready = (u32, Arc<Encoding>);

enum Strategy {
    PreRegistered {
        subject: String,
        version: u32,
        /// Downloaded on first use.
        schema: Mutex<Option<Ready>>,
    },
    AutoRegister {
        subject: String,
        schemas: Mutex<ShapeCache<Ready>>,
    },
}

struct Encoder {
    field: Reference,
    strategy: Strategy,
    registry: Arc<dyn SchemaRegistry>,
}

impl Encoder {
    fn schema(&self, data: &Map<String, Value>) -> Result<Ready, String> {
        match &self.strategy {
            Strategy::PreRegistered {
                subject,
                version,
                schema,
            } => {
                let mut cached = schema.lock().expect("schema lock");
                if let Some(ready) = &*cached {
                    return Ok(ready.clone());
                }
                let registered = self.registry.get(subject, *version).map_err(|e| {
                    format!(
                        "could not get schema with subject {subject:?} and version {version}: {e}"
                    )
                })?;
                let parsed = encoding(parse_schema(&registered.text)?)?;
                let ready = (registered.id, Arc::new(parsed));
                *cached = Some(ready.clone());
                Ok(ready)
            }
            Strategy::AutoRegister { subject, schemas } => {
                let key = match schemas.lock().expect("schema lock").get("", data) {
                    Ok(ready) => return Ok(ready),
                    Err(key) => key,
                };
                let text = infer(data)
                    .map_err(|e| format!("could not extract avro schema: {e}"))?
                    .to_string();
                let parsed = parse_schema(&text)
                    .and_then(encoding)
                    .map_err(|e| format!("could not extract avro schema: {e}"))?;
                let registered = self
                    .registry
                    .create(subject, SchemaType::Avro, &text)
                    .map_err(|e| format!("could not create schema: {e}"))?;
                let ready = (registered.id, Arc::new(parsed));
                schemas.lock().expect("schema lock").insert(
                    String::new(),
                    key,
                    data,
                    ready.clone(),
                );
                Ok(ready)
            }
        }
    }
}

impl RecordProcessor for Encoder {
    fn process_record(&self, record: &mut Record) -> Result<(), String> {
        let value =
            resolve(&self.field, record).map_err(|e| format!("failed resolving field: {e}"))?;
        let data = structured_data(value, "unexpected data type <nil>")
            .map_err(|e| format!("failed getting structured data: {e}"))?;
        let (id, schema) = self
            .schema(&data)
            .map_err(|e| format!("failed encoding data: failed to get schema: {e}"))?;
        let datum = encode(&schema, &Value::Object(data)).map_err(|e| {
            format!("failed encoding data: failed to marshal data with schema (ID: {id}): {e}")
        })?;
        self.field
            .set_value(record, FieldValue::Bytes(with_header(id, datum)))
            .map_err(|e| format!("failed setting encoded value into the record: {e}"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::avro::MemoryRegistry;
    use crate::testing::*;
    use culvert_domain::Data;
    use culvert_plugins::processor::Outcome;
    use serde_json::json;

    /// Configure (validated) and process one record: the record out, or why it failed.
    pub(crate) fn run_one(
        plugin: &dyn ProcessorPlugin,
        pairs: &[(&str, &str)],
        record: Record,
    ) -> Result<Record, String> {
        match process(plugin, pairs, record) {
            (record, Outcome::Keep) => Ok(record),
            (_, Outcome::Fail(error)) => Err(error),
            (_, other) => panic!("unexpected outcome {other:?}"),
        }
    }

    const PRE_REGISTERED: &str = r#"
{
  "type":"record",
  "name":"record",
  "fields":[
    {"name":"myString","type":"string"},
    {"name":"myInt","type":"int"}
  ]
}"#;

    #[test]
    fn conduits_examples() {
        // Auto-register: the schema is inferred and registered as id 1.
        let registry = Arc::new(MemoryRegistry::default());
        let plugin = AvroEncode::new(registry.clone());
        let input = Record {
            metadata: meta(&[("key1", "val1")]),
            ..example(
                structured(json!({
                    "myString": "bar", "myInt": 1, "myFloat": 2.3,
                    "myMap": {"foo": true, "bar": 2.2},
                    "myStruct": {"foo": 1, "bar": false}
                })),
                None,
            )
        };
        let want = Record {
            metadata: meta(&[("key1", "val1")]),
            ..example(
                Some(Data::Raw(vec![
                    0, 0, 0, 0, 1, 102, 102, 102, 102, 102, 102, 2, 64, 2, 154, 153, 153, 153, 153,
                    153, 1, 64, 1, 6, 98, 97, 114, 0, 2,
                ])),
                None,
            )
        };
        let config = [
            ("schema.strategy", "autoRegister"),
            ("schema.autoRegister.subject", "example-autoRegister"),
        ];
        assert_eq!(run_one(&plugin, &config, input), Ok(want));
        assert_eq!(registry.get("example-autoRegister", 1).unwrap().id, 1);

        // Pre-registered: the schema is in the registry before the processor runs.
        let registry = Arc::new(MemoryRegistry::default());
        registry
            .create("example-preRegistered", SchemaType::Avro, PRE_REGISTERED)
            .unwrap();
        let plugin = AvroEncode::new(registry);
        let input = Record {
            metadata: meta(&[("key1", "val1")]),
            ..example(None, structured(json!({"myString": "bar", "myInt": 1})))
        };
        let want = Record {
            metadata: meta(&[("key1", "val1")]),
            ..example(
                None,
                Some(Data::Raw(vec![0, 0, 0, 0, 1, 6, 98, 97, 114, 2])),
            )
        };
        let config = [
            ("schema.strategy", "preRegistered"),
            ("schema.preRegistered.subject", "example-preRegistered"),
            ("schema.preRegistered.version", "1"),
            ("field", ".Key"),
        ];
        assert_eq!(run_one(&plugin, &config, input), Ok(want));
    }

    #[test]
    fn bad_settings_are_refused_naming_the_setting() {
        let plugin = AvroEncode::new(Arc::new(MemoryRegistry::default()));
        for (pairs, key) in [
            (vec![], "schema.strategy"),
            (vec![("schema.strategy", "guess")], "schema.strategy"),
            (
                vec![("schema.strategy", "preRegistered")],
                "schema.preRegistered.subject",
            ),
            (
                vec![
                    ("schema.strategy", "preRegistered"),
                    ("schema.preRegistered.subject", "s"),
                    ("schema.preRegistered.version", "0"),
                ],
                "schema.preRegistered.version",
            ),
            (
                vec![("schema.strategy", "autoRegister")],
                "schema.autoRegister.subject",
            ),
            (
                vec![
                    ("schema.strategy", "autoRegister"),
                    ("schema.autoRegister.subject", "s"),
                    ("field", "Key"),
                ],
                "field",
            ),
        ] {
            let error = refusal(&plugin, &pairs);
            assert!(error.contains(key), "{pairs:?}: {error}");
            let error = direct_refusal(&plugin, &pairs);
            assert!(error.contains(key), "{pairs:?}, unvalidated: {error}");
        }
    }

    #[test]
    fn records_that_cannot_be_encoded_fail_with_the_reason() {
        let registry = Arc::new(MemoryRegistry::default());
        registry
            .create("s", SchemaType::Avro, PRE_REGISTERED)
            .unwrap();
        let plugin = AvroEncode::new(registry);
        let pre = [
            ("schema.strategy", "preRegistered"),
            ("schema.preRegistered.subject", "s"),
            ("schema.preRegistered.version", "1"),
        ];
        let cases = [
            (
                &pre,
                example(structured(json!({"myString": "bar"})), None),
                "failed to marshal data with schema (ID: 1)",
            ),
            (
                &pre,
                example(raw("not json"), None),
                "failed unmarshalling JSON",
            ),
            (&pre, example(None, None), "unexpected data type <nil>"),
        ];
        for (config, input, reason) in cases {
            let error = run_one(&plugin, config, input).unwrap_err();
            assert!(error.contains(reason), "{error}");
        }
        let missing = [
            ("schema.strategy", "preRegistered"),
            ("schema.preRegistered.subject", "nope"),
            ("schema.preRegistered.version", "1"),
        ];
        let error = run_one(&plugin, &missing, example(structured(json!({})), None)).unwrap_err();
        assert!(error.contains("schema subject not found"), "{error}");
    }

    #[test]
    fn json_text_is_encoded_and_the_same_shape_reuses_its_schema() {
        let registry = Arc::new(MemoryRegistry::default());
        let plugin = AvroEncode::new(registry.clone());
        let config = [
            ("schema.strategy", "autoRegister"),
            ("schema.autoRegister.subject", "s"),
        ];
        let a = run_one(&plugin, &config, example(raw(r#"{"a":1}"#), None)).unwrap();
        let b = run_one(&plugin, &config, example(structured(json!({"a": 2})), None)).unwrap();
        let c = run_one(
            &plugin,
            &config,
            example(structured(json!({"b": "x"})), None),
        )
        .unwrap();
        let id = |r: &Record| match &r.payload.after {
            Some(Data::Raw(bytes)) => bytes[4],
            other => panic!("{other:?}"),
        };
        assert_eq!((id(&a), id(&b), id(&c)), (1, 1, 2));
        assert_eq!(registry.get("s", 2).unwrap().id, 2);
    }

    #[test]
    fn one_instance_encodes_each_record_with_its_own_shapes_schema() {
        let registry = Arc::new(MemoryRegistry::default());
        let plugin = AvroEncode::new(registry.clone());
        let config = [
            ("schema.strategy", "autoRegister"),
            ("schema.autoRegister.subject", "s"),
        ];
        let mut processor = plugin
            .configure(&validated_settings(&plugin, &config))
            .unwrap();
        // Shapes alternate and repeat: the last shape seen must not be taken for another.
        let values = [
            json!({"a": 1}),
            json!({"a": 2}),
            json!({"b": "x"}),
            json!({"a": 3}),
            json!({"a": "text"}),
            json!({"a": {"n": 1}}),
            json!({"a": {"n": "x"}}),
            json!({"a": {"n": 2}}),
            json!({"b": "y"}),
        ];
        let mut records: Vec<Record> = values
            .iter()
            .map(|v| example(structured(v.clone()), None))
            .collect();
        let outcomes = run(processor.as_mut(), &mut records);
        assert!(outcomes.iter().all(|o| matches!(o, Outcome::Keep)));
        let ids: Vec<u8> = records
            .iter()
            .map(|r| match &r.payload.after {
                Some(Data::Raw(bytes)) => bytes[4],
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, [1, 1, 2, 1, 3, 4, 5, 4, 2]);
    }
}
