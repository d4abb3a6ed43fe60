//! `base64.encode`: replace a field's value with its base64 text (standard alphabet,
//! padded).

use crate::base64_decode::{field_setting, go_type, resolve};
use crate::json_encode::{go_float, GoFloat};
use crate::reference::{FieldValue, Reference};
use crate::{schema_parameters, AUTHOR, VERSION};
use base64::Engine as _;
use culvert_domain::{Data, Record};
use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{PluginError, Settings};
use serde_json::{Number, Value};

/// `base64.encode`: encode a field to base64.
pub struct Base64Encode {
    spec: ProcessorSpecification,
}

impl Base64Encode {
    /// The plugin.
    pub fn new() -> Self {
        let mut parameters = vec![Parameter::new(
            "field",
            ParameterType::String,
            "The field to encode (a reference such as `.Key` or `.Payload.After.secret`); \
             `.Position` cannot be encoded.",
        )
        .validate(Validation::Required)
        .validate(Validation::Exclusion(vec![".Position".to_owned()]))];
        parameters.extend(schema_parameters("true"));
        Self {
            spec: ProcessorSpecification {
                name: "base64.encode",
                summary: "Encode a field as base64 text.",
                description: "Encodes the value of the field as base64 (standard alphabet, with \
                              padding) and stores the text back in the same field. Raw data, \
                              text, numbers and booleans can be encoded; a missing or null \
                              field is left alone. `.Position` cannot be encoded.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for Base64Encode {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for Base64Encode {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let field = field_setting(settings, "encoding")?;
        Ok(Box::new(EncodeProcessor { field }))
    }
}

struct EncodeProcessor {
    field: Reference,
}

impl EncodeProcessor {
    fn encode(&self, record: &mut Record) -> Result<(), String> {
        let value = resolve(&self.field, record)
            .map_err(|e| format!("failed to resolve the field: {e}"))?;
        let bytes = match value {
            None => return Ok(()),
            Some(FieldValue::Data(Some(Data::Raw(bytes)))) => bytes,
            Some(FieldValue::Text(text) | FieldValue::Json(Value::String(text))) => {
                text.into_bytes()
            }
            // Numbers and booleans are encoded as Go prints them (`%v`).
            Some(FieldValue::Json(Value::Number(n))) => go_verb(&n).into_bytes(),
            Some(FieldValue::Json(Value::Bool(b))) => b.to_string().into_bytes(),
            Some(other) => return Err(format!("unexpected data type {}", go_type(&other))),
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.field
            .set(record, encoded)
            .map_err(|e| format!("failed to set the encoded value into the record: {e}"))
    }
}

/// A number as Go's `%v` prints it: whole numbers as they are, others as a float64.
fn go_verb(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() => go_float(f, GoFloat::Verb),
        _ => n.to_string(),
    }
}

#[async_trait::async_trait]
impl Processor for EncodeProcessor {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        for (record, outcome) in records.iter_mut().zip(outcomes.iter_mut()) {
            if let Err(error) = self.encode(record) {
                *outcome = Outcome::Fail(error);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base64_decode::testing::*;
    use serde_json::json;

    #[test]
    fn conduits_examples() {
        // (description, field, input, expected output)
        let cases = [
            (
                "encode record key to base64",
                ".Key",
                example(structured(json!({"foo": "bar"})), raw("test-key")),
                example(structured(json!({"foo": "bar"})), raw("dGVzdC1rZXk=")),
            ),
            (
                "encode nested value to base64",
                ".Payload.After.foo",
                example(structured(json!({"foo": "bar"})), raw("test-key")),
                example(structured(json!({"foo": "YmFy"})), raw("test-key")),
            ),
        ];
        for (name, field, input, want) in cases {
            let (got, outcome) = process_one(&Base64Encode::new(), field, input);
            assert_eq!(outcome, Outcome::Keep, "{name}");
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn encodes_raw_data_text_numbers_and_booleans_and_leaves_nil_alone() {
        let field = |value: Value| keyed(structured(json!({ "foo": value })));
        let cases = [
            ("raw data", ".Key", keyed(raw("foo")), keyed(raw("Zm9v"))),
            (
                "string",
                ".Key.foo",
                field(json!("bar")),
                field(json!("YmFy")),
            ),
            ("int", ".Key.foo", field(json!(1)), field(json!("MQ=="))),
            ("float", ".Key.foo", field(json!(1.1)), field(json!("MS4x"))),
            (
                "bool",
                ".Key.foo",
                field(json!(true)),
                field(json!("dHJ1ZQ==")),
            ),
            // Go prints a float64 of a million as 1e+06.
            (
                "float, %v form",
                ".Key.foo",
                field(json!(1e6)),
                field(json!("MWUrMDY=")),
            ),
            ("nil", ".Key", keyed(None), keyed(None)),
            (
                "null field",
                ".Key.foo",
                field(Value::Null),
                field(Value::Null),
            ),
            (
                "missing field: its parents are created, as in Conduit",
                ".Payload.After.a.b",
                keyed(None),
                Record {
                    payload: culvert_domain::Change {
                        before: None,
                        after: structured(json!({"a": {}})),
                    },
                    ..keyed(None)
                },
            ),
            (
                "missing metadata",
                ".Metadata.nope",
                keyed(None),
                keyed(None),
            ),
            (
                "metadata",
                ".Metadata.key1",
                example(None, None),
                Record {
                    metadata: [("key1".to_owned(), "dmFsMQ==".to_owned())].into(),
                    ..example(None, None)
                },
            ),
            (
                "raw .Payload.After",
                ".Payload.After",
                example(raw("\u{0}\u{1}"), None),
                example(raw("AAE="), None),
            ),
        ];
        for (name, field, input, want) in cases {
            let (got, outcome) = process_one(&Base64Encode::new(), field, input);
            assert_eq!(outcome, Outcome::Keep, "{name}");
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn records_that_cannot_be_encoded_fail_with_the_reason_and_stay_as_they_were() {
        let cases = [
            (
                ".Key",
                keyed(structured(json!({"foo": "bar"}))),
                "unexpected data type opencdc.StructuredData",
            ),
            (
                ".Key.foo",
                keyed(structured(json!({"foo": {"bar": "baz"}}))),
                "unexpected data type map[string]interface {}",
            ),
            (
                ".Key.foo",
                keyed(structured(json!({"foo": [1]}))),
                "unexpected data type []interface {}",
            ),
            (
                ".Metadata",
                keyed(None),
                "unexpected data type opencdc.Metadata",
            ),
            (
                ".Payload",
                keyed(None),
                "unexpected data type opencdc.Change",
            ),
            (
                ".Payload.After.x",
                example(raw("abc"), None),
                "failed to resolve the field: .Payload.After does not contain structured data: \
                 cannot resolve reference",
            ),
        ];
        for (field, input, want) in cases {
            let (got, outcome) = process_one(&Base64Encode::new(), field, input.clone());
            assert_eq!(outcome, Outcome::Fail(want.to_owned()), "{field}");
            assert_eq!(got, input, "{field}: unchanged");
        }
        // The others in the batch go on.
        let mut processor = configure(&Base64Encode::new(), &[("field", ".Key")]).unwrap();
        let mut records = vec![keyed(structured(json!({}))), keyed(raw("a"))];
        let outcomes = run(processor.as_mut(), &mut records);
        assert!(matches!(outcomes[0], Outcome::Fail(_)));
        assert_eq!(outcomes[1], Outcome::Keep);
        assert_eq!(records[1], keyed(raw("YQ==")));
    }

    #[test]
    fn settings_are_validated() {
        let plugin = Base64Encode::new();
        let validated = culvert_plugins::spec::validate(
            &plugin.specification().parameters,
            &settings(&[("field", ".Payload.After.foo")]),
        )
        .unwrap();
        for key in [
            "sdk.schema.decode.key.enabled",
            "sdk.schema.decode.payload.enabled",
            "sdk.schema.encode.key.enabled",
            "sdk.schema.encode.payload.enabled",
        ] {
            assert_eq!(validated[key], "true", "{key}");
        }
        assert!(plugin.configure(&validated).is_ok());
        for (pairs, want) in [
            (
                vec![],
                "setting \"field\": required parameter is not provided",
            ),
            (
                vec![("field", ".Position")],
                "setting \"field\": \".Position\" must not be one of .Position",
            ),
            (
                vec![("field", "Key")],
                "setting \"field\": invalid reference",
            ),
        ] {
            let error = configure(&plugin, &pairs).err().unwrap();
            assert!(error.contains(want), "{pairs:?}: {error}");
        }
        let error = plugin
            .configure(&settings(&[("field", ".Position")]))
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("\"field\"") && error.contains(".Position"),
            "{error}"
        );
    }
}
