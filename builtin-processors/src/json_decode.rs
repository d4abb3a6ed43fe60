//! `json.decode`: parse JSON text (raw data or a string) in a field under `.Key` or
//! `.Payload` and store the decoded value in its place.

use crate::gofmt::{go_json_type, Numbers};
use crate::params::{json_field, json_field_setting, with_schema_parameters};
use crate::per_record::{PerRecord, RecordProcessor};
use crate::reference::{FieldValue, Reference};
use crate::resolve::{resolve, unexpected_type};
use crate::{AUTHOR, VERSION};
use culvert_domain::{Data, Record};
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::{PluginError, Settings};
use serde_json::Value;

/// `json.decode`: decode a field from JSON text.
pub struct JsonDecode {
    spec: ProcessorSpecification,
}

impl JsonDecode {
    /// The plugin.
    pub fn new() -> Self {
        let parameters = with_schema_parameters(
            vec![json_field(
                "The field holding JSON text (a reference under `.Key` or `.Payload`, such as \
                 `.Payload.After.address`); `.Payload` itself cannot be decoded.",
            )],
            "true",
        );
        Self {
            spec: ProcessorSpecification {
                name: "json.decode",
                summary: "Parse a field's JSON text into structured data.",
                description: "Parses the field's raw data or string as JSON and stores the \
                              result in the same field: an object becomes structured data, \
                              other JSON values become the field's new value. Empty text \
                              becomes null; data that is already structured, and a missing or \
                              null field, are left alone. Only fields under `.Key`, \
                              `.Payload.Before` and `.Payload.After` can be decoded.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for JsonDecode {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for JsonDecode {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let field = json_field_setting(settings)?;
        // `.Key`, `.Payload.Before` and `.Payload.After` take data, not any JSON value.
        let data = [
            (&["Key"][..], ".Key"),
            (&["Payload", "Before"][..], ".Payload.Before"),
            (&["Payload", "After"][..], ".Payload.After"),
        ]
        .into_iter()
        .find(|(path, _)| field.is(path))
        .map(|(_, name)| name);
        Ok(Box::new(PerRecord(DecodeProcessor { field, data })))
    }
}

struct DecodeProcessor {
    field: Reference,
    /// The name of the data the field is, if it is `.Key` or a payload side.
    data: Option<&'static str>,
}

impl RecordProcessor for DecodeProcessor {
    fn process_record(&self, record: &mut Record) -> Result<(), String> {
        // Conduit reports a field it cannot resolve as it is, without a prefix.
        let text = match resolve(&self.field, record).map_err(|e| e.0)? {
            None => return Ok(()),
            Some(FieldValue::Data(Some(Data::Raw(bytes)))) => bytes,
            Some(FieldValue::Text(text) | FieldValue::Json(Value::String(text))) => {
                text.into_bytes()
            }
            // Already decoded.
            Some(
                FieldValue::Data(Some(Data::Structured(_))) | FieldValue::Json(Value::Object(_)),
            ) => return Ok(()),
            Some(other) => return Err(unexpected_type(&other)),
        };
        // Empty text is no value at all.
        let value = if text.is_empty() {
            Value::Null
        } else {
            parse(&text).map_err(|e| format!("failed to unmarshal raw data as JSON: {e}"))?
        };
        if let Some(name) = self.data {
            // Data takes an object, a string (raw data) or null.
            if matches!(value, Value::Number(_) | Value::Bool(_) | Value::Array(_)) {
                return Err(format!(
                    "can't set type {} for {name}: unexpected type",
                    go_json_type(&value, Numbers::Float64)
                ));
            }
        }
        self.field
            .set_value(record, FieldValue::Json(value))
            .map_err(|e| e.0)
    }
}

/// Parse one JSON value. Bytes that are not UTF-8 become replacement characters (Go keeps
/// them in its strings and writes them out as U+FFFD); anything but whitespace after the
/// value is refused with Go's message.
fn parse(bytes: &[u8]) -> Result<Value, String> {
    let text = String::from_utf8_lossy(bytes);
    let mut values = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
    let value = match values.next() {
        Some(Ok(value)) => value,
        Some(Err(error)) => return Err(error.to_string()),
        None => return Err("unexpected end of JSON input".to_owned()),
    };
    let rest = &text[values.byte_offset()..];
    if let Some(c) = rest
        .chars()
        .find(|c| !matches!(c, ' ' | '\t' | '\n' | '\r'))
    {
        return Err(format!("invalid character '{c}' after top-level value"));
    }
    Ok(whole_numbers(value))
}

/// Go holds every decoded JSON number as a float64, so `4.0` is `4`. Here a whole number
/// that an integer holds exactly becomes one (as numbers from connectors do), so it is
/// written back as `4`.
fn whole_numbers(value: Value) -> Value {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(whole_numbers).collect()),
        Value::Object(object) => Value::Object(
            object
                .into_iter()
                .map(|(k, v)| (k, whole_numbers(v)))
                .collect(),
        ),
        other => other,
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
                "decode record key as JSON",
                ".Key",
                keyed(raw(r#"{"after":{"data":4,"id":3}}"#)),
                keyed(structured(json!({"after": {"data": 4, "id": 3}}))),
            ),
            (
                "decode nested field as JSON",
                ".Payload.Before.foo",
                snapshot(structured(
                    json!({"foo": r#"{"before":{"data":4,"id":3},"baz":"bar"}"#}),
                )),
                snapshot(structured(
                    json!({"foo": {"before": {"data": 4, "id": 3}, "baz": "bar"}}),
                )),
            ),
        ];
        assert_kept(&JsonDecode::new(), cases);
    }

    #[test]
    fn decodes_like_conduit() {
        let after = |value: Value| payload(None, structured(json!({ "foo": value })));
        let cases = [
            (
                "raw key to structured",
                ".Key",
                keyed(raw(r#"{"after":{"data":4,"id":3}}"#)),
                keyed(structured(json!({"after": {"data": 4, "id": 3}}))),
            ),
            (
                "raw payload.after.foo to structured",
                ".Payload.After.foo",
                after(json!(r#"{"after":{"data":4,"id":3},"baz":"bar"}"#)),
                after(json!({"after": {"data": 4, "id": 3}, "baz": "bar"})),
            ),
            (
                "a list in a field",
                ".Payload.After.foo",
                after(json!(r#"["one", "two", "three"]"#)),
                after(json!(["one", "two", "three"])),
            ),
            (
                "a JSON string in a field",
                ".Payload.After.foo",
                after(json!(r#""bar""#)),
                after(json!("bar")),
            ),
            (
                "a number and a boolean in a field",
                ".Payload.After.foo",
                after(json!(" [4.0, 1.5, -2, true, null] \n")),
                after(json!([4, 1.5, -2, true, null])),
            ),
            (
                "raw payload.before to structured",
                ".Payload.Before",
                payload(raw(r#"{"before":{"data":4},"foo":"bar"}"#), None),
                payload(
                    structured(json!({"before": {"data": 4}, "foo": "bar"})),
                    None,
                ),
            ),
            (
                "already structured data",
                ".Key",
                keyed(structured(json!({"after": {"data": 4, "id": 3}}))),
                keyed(structured(json!({"after": {"data": 4, "id": 3}}))),
            ),
            (
                "a map in a field is already decoded",
                ".Payload.After.foo",
                after(json!({"a": 1})),
                after(json!({"a": 1})),
            ),
            (
                "empty raw data becomes no data",
                ".Key",
                keyed(raw("")),
                keyed(None),
            ),
            (
                "an empty string becomes null",
                ".Payload.After.foo",
                after(json!("")),
                after(Value::Null),
            ),
            (
                "JSON null becomes no data",
                ".Key",
                keyed(raw("null")),
                keyed(None),
            ),
            (
                "a JSON string in raw data stays raw data",
                ".Key",
                keyed(raw(r#""bar""#)),
                keyed(raw("bar")),
            ),
            (
                "nil",
                ".Payload.After",
                payload(None, None),
                payload(None, None),
            ),
            (
                "missing field: its parents are created, as in Conduit",
                ".Payload.After.a.b",
                payload(None, None),
                payload(None, structured(json!({"a": {}}))),
            ),
        ];
        assert_kept(&JsonDecode::new(), cases);
    }

    #[test]
    fn records_that_cannot_be_decoded_fail_with_the_reason_and_stay_as_they_were() {
        let after = |value: Value| payload(None, structured(json!({ "foo": value })));
        let cases = [
            (
                ".Key",
                keyed(raw(r#""invalid":"json""#)),
                "failed to unmarshal raw data as JSON: invalid character ':' after top-level \
                 value",
            ),
            (
                ".Key",
                keyed(raw("{\"a\":")),
                "failed to unmarshal raw data as JSON: EOF while parsing a value at line 1 \
                 column 5",
            ),
            (
                ".Key",
                keyed(raw("  ")),
                "failed to unmarshal raw data as JSON: unexpected end of JSON input",
            ),
            (
                ".Key",
                keyed(raw("[1, 2]")),
                "can't set type []interface {} for .Key: unexpected type",
            ),
            (
                ".Payload.After",
                payload(None, raw("4")),
                "can't set type float64 for .Payload.After: unexpected type",
            ),
            (
                ".Payload.Before",
                payload(raw("true"), None),
                "can't set type bool for .Payload.Before: unexpected type",
            ),
            (
                ".Payload.After.foo",
                after(json!(1)),
                "unexpected data type int",
            ),
            (
                ".Payload.After.foo",
                after(json!([1])),
                "unexpected data type []interface {}",
            ),
            (
                ".Payload.After.foo.bar",
                after(json!("x")),
                ".Payload.After.foo does not contain structured data: cannot resolve reference",
            ),
        ];
        assert_failed(&JsonDecode::new(), cases);
        // The others in the batch go on.
        let mut processor = configure(&JsonDecode::new(), &[("field", ".Key")]).unwrap();
        let mut records = vec![keyed(raw("{")), keyed(raw("{\"a\":\"<\\u00e9>\"}"))];
        let outcomes = run(processor.as_mut(), &mut records);
        assert!(matches!(outcomes[0], Outcome::Fail(_)));
        assert_eq!(outcomes[1], Outcome::Keep);
        assert_eq!(records[1], keyed(structured(json!({"a": "<é>"}))));
    }

    #[test]
    fn text_that_is_not_utf8_is_decoded_with_replacement_characters() {
        let input = keyed(Some(Data::Raw(b"{\"a\":\"x\xffy\"}".to_vec())));
        let (got, outcome) = process_one(&JsonDecode::new(), ".Key", input);
        assert_eq!(outcome, Outcome::Keep);
        assert_eq!(got, keyed(structured(json!({"a": "x\u{fffd}y"}))));
    }

    #[test]
    fn settings_are_validated() {
        let plugin = JsonDecode::new();
        assert_field_settings(
            &plugin,
            ".Key",
            &[
                ".Key",
                ".Payload.After",
                ".Payload.Before",
                ".Payload.After.foo",
            ],
            [
                (".Metadata", "\".Metadata\" must match"),
                (".Payload", "\".Payload\" must not be one of .Payload"),
                (".Key[", "invalid reference"),
            ],
        );
        assert_field_refused_directly(&plugin, &[".Payload", ".Operation", ""]);
    }
}
