//! `json.encode`: replace a field under `.Key` or `.Payload` with its JSON text, written
//! as Conduit writes it (keys sorted, HTML characters escaped, Go's number forms).

use crate::gojson::{write_json, write_string, Writer};
use crate::params::{json_field, json_field_setting, with_schema_parameters};
use crate::per_record::{PerRecord, RecordProcessor};
use crate::reference::{FieldValue, Reference};
use crate::resolve::{resolve, unexpected_type};
use crate::{AUTHOR, VERSION};
use base64::Engine as _;
use culvert_domain::{Data, Record};
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::{PluginError, Settings};
use serde_json::Value;

/// `json.encode`: encode a field as JSON text.
pub struct JsonEncode {
    spec: ProcessorSpecification,
}

impl JsonEncode {
    /// The plugin.
    pub fn new() -> Self {
        let parameters = with_schema_parameters(
            vec![json_field(
                "The field to encode (a reference under `.Key` or `.Payload`, such as \
                 `.Payload.After.address`); `.Payload` itself cannot be encoded.",
            )],
            "true",
        );
        Self {
            spec: ProcessorSpecification {
                name: "json.encode",
                summary: "Write a field's value as JSON text.",
                description: "Writes the value of the field as JSON and stores that text in the \
                              same field: `.Key` and the payload sides become raw data, a field \
                              inside structured data becomes a string. Object keys are sorted. \
                              A missing or null field is left alone. Only fields under `.Key`, \
                              `.Payload.Before` and `.Payload.After` can be encoded.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for JsonEncode {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for JsonEncode {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let field = json_field_setting(settings)?;
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
        let mut json = String::new();
        match value {
            None => return Ok(()),
            // Raw data is a byte slice to Go's JSON: base64 text.
            Some(FieldValue::Data(Some(Data::Raw(bytes)))) => write_string(
                &mut json,
                &base64::engine::general_purpose::STANDARD.encode(bytes),
                Writer::Goccy,
            ),
            Some(FieldValue::Data(Some(Data::Structured(object)))) => {
                write_json(&mut json, &Value::Object(object.into_map()))
            }
            Some(FieldValue::Json(value)) => write_json(&mut json, &value),
            Some(FieldValue::Text(text)) => write_string(&mut json, &text, Writer::Goccy),
            // Not under `.Key` or `.Payload`: the setting's validations keep these out.
            Some(other) => return Err(unexpected_type(&other)),
        }
        self.field
            .set(record, json)
            .map_err(|e| format!("failed to set the JSON encoded value into the record: {e}"))
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
                "encode record key to JSON",
                ".Key",
                keyed(structured(json!({"tables": ["table1,table2"]}))),
                keyed(raw(r#"{"tables":["table1,table2"]}"#)),
            ),
            (
                "encode nested field to JSON",
                ".Payload.Before.foo",
                snapshot(structured(
                    json!({"foo": {"before": {"data": 4, "id": 3}, "baz": "bar"}}),
                )),
                snapshot(structured(
                    json!({"foo": r#"{"baz":"bar","before":{"data":4,"id":3}}"#}),
                )),
            ),
        ];
        assert_kept(&JsonEncode::new(), cases);
    }

    #[test]
    fn encodes_like_conduit() {
        let after = |data| payload(None, data);
        let cases = [
            (
                "structured key to raw data",
                ".Key",
                keyed(structured(json!({"after": {"data": 4.0, "id": 3}}))),
                keyed(raw(r#"{"after":{"data":4,"id":3}}"#)),
            ),
            (
                "a map field",
                ".Payload.After.foo",
                after(structured(
                    json!({"foo": {"after": {"data": 4, "id": 3}, "baz": "bar"}}),
                )),
                after(structured(
                    json!({"foo": r#"{"after":{"data":4,"id":3},"baz":"bar"}"#}),
                )),
            ),
            (
                "a list under .Payload.After",
                ".Payload.After",
                after(structured(json!({"foo": ["one", "two", "three"]}))),
                after(raw(r#"{"foo":["one","two","three"]}"#)),
            ),
            (
                "an int",
                ".Payload.After.foo",
                after(structured(json!({"foo": 123}))),
                after(structured(json!({"foo": "123"}))),
            ),
            (
                "a string",
                ".Payload.After.foo",
                after(structured(json!({"foo": "a\"b"}))),
                after(structured(json!({"foo": r#""a\"b""#}))),
            ),
            (
                "raw data is base64 text to Go",
                ".Key",
                keyed(raw("foo")),
                keyed(raw(r#""Zm9v""#)),
            ),
            ("nil", ".Payload.After", after(None), after(None)),
            (
                "null field",
                ".Payload.After.foo",
                after(structured(json!({"foo": null}))),
                after(structured(json!({"foo": null}))),
            ),
            (
                "missing field: its parents are created, as in Conduit",
                ".Key.a.b",
                keyed(None),
                keyed(structured(json!({"a": {}}))),
            ),
        ];
        assert_kept(&JsonEncode::new(), cases);
        // A field that cannot be walked into fails the record, leaving it as it was.
        let input = keyed(raw("x"));
        let (got, outcome) = process_one(&JsonEncode::new(), ".Key.a", input.clone());
        assert_eq!(
            outcome,
            Outcome::Fail(
                "failed to resolve the field: .Key does not contain structured data: cannot \
                 resolve reference"
                    .into()
            )
        );
        assert_eq!(got, input);
    }

    #[test]
    fn json_is_written_as_go_writes_it() {
        let json = |value: Value| {
            let mut out = String::new();
            write_json(&mut out, &value);
            out
        };
        assert_eq!(
            json(json!({"<k>": 1, "B": 2, "a": [null, true, 0.000001, 0.0000001, 123456789.0, 1e20],
                        "é": "x\u{7f}é😀", "c": "\u{8}\u{c}\u{1}\n\r\t\\&\u{2028}\u{2029}"})),
            r#"{"B":2,"\u003ck\u003e":1,"a":[null,true,0.000001,1e-07,123456789,100000000000000000000],"c":"\u0008\u000c\u0001\n\r\t\\\u0026\u2028\u2029","é":"x\u{7f}é😀"}"#
                .replace("\\u{7f}", "\u{7f}")
        );
        // Checked against goccy/go-json: keys in the order of their written form.
        assert_eq!(
            json(json!({"a": 1, "a!": 2, "a ": 3, "a\"": 4, "a#": 5, "<": 6, "B": 7})),
            r#"{"B":7,"\u003c":6,"a ":3,"a!":2,"a":1,"a#":5,"a\"":4}"#
        );
        assert_eq!(json(json!(-2.5)), "-2.5");
        assert_eq!(json(json!(u64::MAX)), "18446744073709551615");
        assert_eq!(json(json!(i64::MIN)), "-9223372036854775808");
    }

    #[test]
    fn settings_are_validated() {
        let plugin = JsonEncode::new();
        assert_field_settings(
            &plugin,
            ".Payload.After.foo",
            &[".Key", ".Payload.After", ".Payload.Before", ".Key.a.b"],
            [
                (".Metadata", "\".Metadata\" must match"),
                (".Payload", "\".Payload\" must not be one of .Payload"),
                (".Position", "\".Position\" must match"),
                (".Payload.Middle", "invalid reference"),
            ],
        );
        // Refused by the plugin too when asked directly.
        assert_field_refused_directly(&plugin, &[".Payload", ".Metadata.x", ""]);
    }
}
