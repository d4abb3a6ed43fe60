//! `base64.encode`: replace a field's value with its base64 text (standard alphabet,
//! padded).

use crate::gofmt::{go_sprint_number, Numbers};
use crate::params::{field_except_position, field_except_position_setting, with_schema_parameters};
use crate::per_record::{PerRecord, RecordProcessor};
use crate::reference::{FieldValue, Reference};
use crate::resolve::{resolve, unexpected_type};
use crate::{AUTHOR, VERSION};
use base64::Engine as _;
use culvert_domain::{Data, Record};
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::{PluginError, Settings};
use serde_json::Value;

/// `base64.encode`: encode a field to base64.
pub struct Base64Encode {
    spec: ProcessorSpecification,
}

impl Base64Encode {
    /// The plugin.
    pub fn new() -> Self {
        let parameters = with_schema_parameters(
            vec![field_except_position(
                "The field to encode (a reference such as `.Key` or `.Payload.After.secret`); \
                 `.Position` cannot be encoded.",
            )],
            "true",
        );
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
        let field = field_except_position_setting(settings, "encoding")?;
        Ok(Box::new(PerRecord(EncodeProcessor { field })))
    }
}

struct EncodeProcessor {
    field: Reference,
}

impl RecordProcessor for EncodeProcessor {
    fn process_record(&self, record: &mut Record) -> Result<(), String> {
        let value = resolve(&self.field, record)
            .map_err(|e| format!("failed to resolve the field: {e}"))?;
        let bytes = match value {
            None => return Ok(()),
            Some(FieldValue::Data(Some(Data::Raw(bytes)))) => bytes,
            Some(FieldValue::Text(text) | FieldValue::Json(Value::String(text))) => {
                text.into_bytes()
            }
            // Numbers and booleans are encoded as Go prints them (`%v`).
            Some(FieldValue::Json(Value::Number(n))) => {
                go_sprint_number(&n, Numbers::AsHeld).into_bytes()
            }
            Some(FieldValue::Json(Value::Bool(b))) => b.to_string().into_bytes(),
            Some(other) => return Err(unexpected_type(&other)),
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.field
            .set(record, encoded)
            .map_err(|e| format!("failed to set the encoded value into the record: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use culvert_plugins::processor::Outcome;
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
        assert_kept(&Base64Encode::new(), cases);
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
                payload(None, structured(json!({"a": {}}))),
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
                    metadata: meta(&[("key1", "dmFsMQ==")]),
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
        assert_kept(&Base64Encode::new(), cases);
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
        assert_failed(&Base64Encode::new(), cases);
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
        assert_field_settings(
            &plugin,
            ".Payload.After.foo",
            &[],
            [
                (".Position", "\".Position\" must not be one of .Position"),
                ("Key", "invalid reference"),
            ],
        );
        let error = direct_refusal(&plugin, &[("field", ".Position")]);
        assert!(
            error.contains("\"field\"") && error.contains(".Position"),
            "{error}"
        );
    }
}
