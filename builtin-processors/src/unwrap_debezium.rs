//! `unwrap.debezium`: turn a record carrying a Debezium change event into the change itself.
//!
//! The event is read from `field` (default `.Payload.After`, which must point into the
//! payload). Raw data and strings are parsed as JSON; structured data is used as it is. The
//! event's `payload` object is the Debezium envelope (`before`, `after`, `op`, `source`,
//! `ts_ms`, ...); it must have `after`, `source` and `op` (they may be null). The result
//! keeps only the position of the record it came from:
//!
//! * operation: `c` create, `u` update, `d` delete, `r` snapshot, `$unset` (MongoDB) update;
//! * payload: `before` and `after` of the envelope (an object is structured data, a string
//!   raw data, null nothing);
//! * metadata: the record's own, plus `opencdc.readAt` from `ts_ms` (milliseconds, stored as
//!   nanoseconds), plus every other envelope field flattened under `debezium.` (nested
//!   objects become dotted keys), plus the `source` object flattened without a prefix, which
//!   wins over everything else;
//! * key: if the record's key (structured, or raw JSON) has a `payload` field, that field
//!   (an object becomes structured data, anything else raw text); otherwise the key as is.
//!
//! Values that are not strings become text the way Go's `fmt.Sprint` prints them, as
//! Conduit does (numbers parsed from JSON print like Go's `float64`: `1e+06`). The helpers
//! doing that are shared with `unwrap.opencdc` and `unwrap.kafkaconnect`.

use crate::reference::{FieldValue, Reference};
use crate::{invalid, schema_parameters, setting, AUTHOR, VERSION};
use culvert_domain::opencdc::metadata;
use culvert_domain::{Change, Data, Operation, Record};
use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{PluginError, Settings};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The default for `field` in the unwrap processors.
pub(crate) const DEFAULT_FIELD: &str = ".Payload.After";

/// The pattern the `field` of `unwrap.debezium` and `unwrap.kafkaconnect` must match.
pub(crate) const PAYLOAD_PATTERN: &str = "^.Payload";

/// `unwrap.debezium`: replace a record with the Debezium change event it carries.
pub struct UnwrapDebezium {
    spec: ProcessorSpecification,
}

impl UnwrapDebezium {
    /// The plugin.
    pub fn new() -> Self {
        let mut parameters = vec![Parameter::new(
            "field",
            ParameterType::String,
            "Where the Debezium event is (a reference into the payload, such as `.Payload.After` or `.Payload.After.event`).",
        )
        .default_value(DEFAULT_FIELD)
        .validate(Validation::Regex(PAYLOAD_PATTERN.to_owned()))];
        parameters.extend(schema_parameters("true"));
        Self {
            spec: ProcessorSpecification {
                name: "unwrap.debezium",
                summary: "Turn a Debezium change event held in a field into the record itself.",
                description: "Reads the Debezium change event stored in `field` (JSON text or \
                              structured data) and makes the record that change: operation, \
                              before and after come from the event, the key is taken from the \
                              key's `payload` field when it has one, and the event's `source` \
                              and other fields are merged into the record's metadata, the \
                              event's taking precedence. Only the position is kept from the \
                              original record. Useful when Conduit sits between a Debezium \
                              source and a Debezium destination.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for UnwrapDebezium {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for UnwrapDebezium {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let field = payload_field(settings)?;
        Ok(Box::new(DebeziumProcessor { field }))
    }
}

/// The `field` setting of `unwrap.debezium` and `unwrap.kafkaconnect`: a reference that
/// must start with `.Payload` (checked again here in case the settings were not validated).
pub(crate) fn payload_field(settings: &Settings) -> Result<Reference, PluginError> {
    let raw = match setting(settings, "field") {
        "" => DEFAULT_FIELD,
        raw => raw,
    };
    // The pattern's `.` matches any character, as in Conduit.
    let mut chars = raw.chars();
    if chars.next().is_none() || !chars.as_str().starts_with("Payload") {
        return Err(invalid(
            "field",
            format!("{raw:?} must match {PAYLOAD_PATTERN:?}"),
        ));
    }
    Reference::parse(raw).map_err(|e| invalid("field", e))
}

struct DebeziumProcessor {
    field: Reference,
}

#[async_trait::async_trait]
impl Processor for DebeziumProcessor {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        for (record, outcome) in records.iter_mut().zip(outcomes.iter_mut()) {
            match unwrap(&self.field, record) {
                Ok(unwrapped) => *record = unwrapped,
                Err(error) => *outcome = Outcome::Fail(error),
            }
        }
        Ok(())
    }
}

fn unwrap(field: &Reference, record: &Record) -> Result<Record, String> {
    let value = field
        .get(record)
        .map_err(|e| format!("failed resolving reference: {e}"))?;
    let (event, floats) = wrapped_object(value, "")?;
    let Some(Value::Object(envelope)) = event.get("payload") else {
        return Err("data to be unwrapped doesn't contain a payload field".to_owned());
    };
    let missing: Vec<String> = ["after", "source", "op"]
        .iter()
        .filter(|name| !envelope.contains_key(**name))
        .map(|name| format!("the {name:?} field is missing from debezium payload"))
        .collect();
    if !missing.is_empty() {
        return Err(format!("invalid record: {}", missing.join("; ")));
    }
    let before =
        side(envelope.get("before")).map_err(|e| format!("failed to parse field before: {e}"))?;
    let after =
        side(envelope.get("after")).map_err(|e| format!("failed to parse field after: {e}"))?;
    let operation = match envelope.get("op") {
        Some(Value::String(op)) => match op.as_str() {
            "c" => Operation::Create,
            "u" | "$unset" => Operation::Update,
            "d" => Operation::Delete,
            "r" => Operation::Snapshot,
            other => {
                return Err(format!(
                    "error unwrapping operation: {other:?} is an invalid operation"
                ))
            }
        },
        other => {
            return Err(format!(
                "the \"op\" field is not a string, got {}",
                go_type(other.unwrap_or(&Value::Null))
            ))
        }
    };
    let metadata = merge_metadata(&record.metadata, envelope, floats)
        .map_err(|e| format!("error unwrapping metadata: {e}"))?;
    Ok(Record {
        position: record.position.clone(),
        operation,
        metadata,
        key: unwrap_key(&record.key),
        payload: Change { before, after },
    })
}

/// One side of the payload from the envelope: an object is structured data, a string raw
/// data, null (or nothing) no data.
fn side(value: Option<&Value>) -> Result<Option<Data>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(object)) => Ok(Some(Data::Structured(object.clone()))),
        Some(Value::String(text)) => Ok(Some(Data::Raw(text.clone().into_bytes()))),
        Some(other) => Err(format!(
            "expected a map or a string, got {}",
            go_type(other)
        )),
    }
}

/// The record's metadata with the envelope's merged in (see the module documentation).
fn merge_metadata(
    own: &BTreeMap<String, String>,
    envelope: &Map<String, Value>,
    floats: bool,
) -> Result<BTreeMap<String, String>, String> {
    let mut metadata = own.clone();
    let mut source = Vec::new();
    for (field, value) in envelope {
        match field.as_str() {
            "before" | "after" | "op" => {}
            "ts_ms" => {
                let Some(millis) = value.as_f64() else {
                    return Err("ts_ms is not a float".to_owned());
                };
                // Go converts the float to an integer (truncating), then to nanoseconds.
                let nanos = (millis as i64).wrapping_mul(1_000_000);
                metadata.insert(metadata::READ_AT.to_owned(), nanos.to_string());
            }
            "source" => flatten("", value, floats, &mut source),
            other => {
                let mut flat = Vec::new();
                flatten(&format!("debezium.{other}"), value, floats, &mut flat);
                metadata.extend(flat);
            }
        }
    }
    // The source's fields go in last, so they win.
    metadata.extend(source);
    Ok(metadata)
}

/// Flatten a value into dotted keys under `key`: objects are walked, null gives nothing,
/// anything else one entry (printed as Go prints it).
fn flatten(key: &str, value: &Value, floats: bool, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(object) => {
            for (name, inner) in object {
                let nested = if key.is_empty() {
                    name.clone()
                } else {
                    format!("{key}.{name}")
                };
                flatten(&nested, inner, floats, out);
            }
        }
        Value::Null => {}
        other => out.push((key.to_owned(), go_sprint(other, floats))),
    }
}

/// The key of an unwrapped Debezium or Kafka Connect record: when the key (structured data,
/// or raw data holding a JSON object) has a `payload` field, that field (an object becomes
/// structured data, anything else raw text as Go prints it); otherwise the key unchanged.
pub(crate) fn unwrap_key(key: &Option<Data>) -> Option<Data> {
    let (object, floats) = match key {
        Some(Data::Structured(object)) => (object.clone(), false),
        Some(Data::Raw(bytes)) => match parse_object(bytes) {
            Ok(object) => (object, true),
            Err(_) => return key.clone(),
        },
        None => return None,
    };
    match object.get("payload") {
        None => key.clone(),
        Some(Value::Object(payload)) => Some(Data::Structured(payload.clone())),
        Some(other) => Some(Data::Raw(go_sprint(other, floats).into_bytes())),
    }
}

/// The object a reference points at, for `unwrap.debezium` and `unwrap.kafkaconnect`:
/// structured data is used as it is, raw data and strings are parsed as JSON. The flag says
/// whether it was parsed (its numbers then print as Go's `float64`). `suffix` is added to
/// the error for other kinds of value.
pub(crate) fn wrapped_object(
    value: FieldValue,
    suffix: &str,
) -> Result<(Map<String, Value>, bool), String> {
    match value {
        FieldValue::Data(Some(Data::Structured(object)))
        | FieldValue::Json(Value::Object(object)) => Ok((object, false)),
        FieldValue::Data(Some(Data::Raw(bytes))) => parse_object(&bytes)
            .map(|object| (object, true))
            .map_err(|e| format!("failed unmarshalling JSON from raw data: {e}")),
        FieldValue::Text(text) | FieldValue::Json(Value::String(text)) => {
            parse_object(text.as_bytes())
                .map(|object| (object, true))
                .map_err(|e| format!("failed unmarshalling JSON from string: {e}"))
        }
        other => Err(format!(
            "unexpected data type {}{suffix}",
            field_value_type(&other)
        )),
    }
}

/// Parse JSON text that must hold an object; `null` is an empty object (as Go decodes it
/// into a map).
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(bytes).map_err(|e| e.to_string())? {
        Value::Object(object) => Ok(object),
        Value::Null => Ok(Map::new()),
        other => Err(format!(
            "cannot unmarshal {} into an object",
            json_kind(&other)
        )),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The Go type name Conduit reports for a JSON value (numbers from JSON are `float64`).
pub(crate) fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// The Go type name Conduit reports for a value a reference resolves to.
pub(crate) fn field_value_type(value: &FieldValue) -> &'static str {
    match value {
        FieldValue::Position(_) => "opencdc.Position",
        FieldValue::Operation(_) => "opencdc.Operation",
        FieldValue::Metadata(_) => "opencdc.Metadata",
        FieldValue::Text(_) => "string",
        FieldValue::Bytes(_) => "[]uint8",
        FieldValue::Payload(_) => "opencdc.Change",
        FieldValue::Data(None) => "<nil>",
        FieldValue::Data(Some(Data::Raw(_))) => "opencdc.RawData",
        FieldValue::Data(Some(Data::Structured(_))) => "opencdc.StructuredData",
        FieldValue::Json(value) => go_type(value),
    }
}

/// A JSON value as Go's `fmt.Sprint` prints it: null `<nil>`, strings bare, arrays
/// `[a b]`, objects `map[k:v]` with sorted keys. With `floats` (data parsed from JSON, where
/// Go holds every number as `float64`) numbers print as Go's `float64`; otherwise whole
/// numbers print as integers.
pub(crate) fn go_sprint(value: &Value, floats: bool) -> String {
    match value {
        Value::Null => "<nil>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if floats || n.is_f64() => go_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|v| go_sprint(v, floats)).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(object) => {
            let mut entries: Vec<(&String, &Value)> = object.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let entries: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", go_sprint(v, floats)))
                .collect();
            format!("map[{}]", entries.join(" "))
        }
    }
}

/// A float as Go's `%v` prints it: the shortest digits that round-trip, in exponent form
/// (`1.5e+06`, `1e-05`) when the exponent is below -4 or at least 6, plain otherwise.
fn go_float(f: f64) -> String {
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("Rust's exponent form has an `e`");
    let exponent: i32 = exponent.parse().expect("the exponent is an integer");
    if f != 0.0 && !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_domain::Position;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(object) => object,
            other => panic!("not an object: {other}"),
        }
    }

    fn structured(value: Value) -> Option<Data> {
        Some(Data::Structured(object(value)))
    }

    fn raw(text: &str) -> Option<Data> {
        Some(Data::Raw(text.as_bytes().to_vec()))
    }

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn configure(pairs: &[(&str, &str)]) -> Result<Box<dyn Processor>, PluginError> {
        let plugin = UnwrapDebezium::new();
        let settings: Settings = meta(pairs);
        let validated =
            culvert_plugins::spec::validate(&plugin.specification().parameters, &settings)?;
        plugin.configure(&validated)
    }

    fn run(field: &str, record: Record) -> (Record, Outcome) {
        let mut processor = configure(&[("field", field)]).unwrap();
        let mut records = [record];
        let mut outcomes = [Outcome::Keep];
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(processor.process(&mut records, &mut outcomes))
            .unwrap();
        let [record] = records;
        let [outcome] = outcomes;
        (record, outcome)
    }

    const EVENT: &str = r#"{
  "payload": {
    "after": {
      "description": "test1",
      "id": 27
    },
    "before": null,
    "op": "c",
    "source": {
      "opencdc.readAt": "1674061777225877000",
      "opencdc.version": "v1"
    },
    "transaction": null,
    "ts_ms": 1674061777225
  },
  "schema": {}
}"#;

    fn structured_event() -> Value {
        json!({
            "payload": {
                "after": {"description": "test1", "id": 27},
                "before": null,
                "op": "u",
                "source": {"opencdc.version": "v1"},
                "transaction": null,
                "ts_ms": 1674061777225.0
            },
            "schema": {}
        })
    }

    /// Conduit's examples (`debezium_examples_test.go`) and the successful cases of its
    /// `debezium_test.go`: (name, field, record in, record out).
    #[test]
    fn conduits_examples() {
        let unwrapped_update = |position: &str| Record {
            position: Position(position.as_bytes().to_vec()),
            operation: Operation::Update,
            metadata: meta(&[
                ("opencdc.readAt", "1674061777225000000"),
                ("opencdc.version", "v1"),
                ("conduit.version", "v0.4.0"),
            ]),
            key: raw("27"),
            payload: Change {
                before: None,
                after: structured(json!({"description": "test1", "id": 27})),
            },
        };
        let cases = [
            (
                "example: nested field, key unwrapped, metadata merged",
                ".Payload.After.nested",
                Record {
                    position: Position(b"test-position".to_vec()),
                    operation: Operation::Create,
                    metadata: meta(&[("metadata-key", "metadata-value")]),
                    key: raw(r#"{"payload":"27"}"#),
                    payload: Change {
                        before: None,
                        after: structured(json!({ "nested": EVENT })),
                    },
                },
                Record {
                    position: Position(b"test-position".to_vec()),
                    operation: Operation::Create,
                    metadata: meta(&[
                        ("metadata-key", "metadata-value"),
                        ("opencdc.readAt", "1674061777225877000"),
                        ("opencdc.version", "v1"),
                    ]),
                    key: raw("27"),
                    payload: Change {
                        before: None,
                        after: structured(json!({"description": "test1", "id": 27})),
                    },
                },
            ),
            (
                "raw payload",
                ".Payload.After",
                Record {
                    position: Position(b"position".to_vec()),
                    key: raw(r#"{"payload":"27"}"#),
                    payload: Change {
                        before: None,
                        after: raw(EVENT),
                    },
                    ..Record::default()
                },
                Record {
                    position: Position(b"position".to_vec()),
                    operation: Operation::Create,
                    metadata: meta(&[
                        ("opencdc.readAt", "1674061777225877000"),
                        ("opencdc.version", "v1"),
                    ]),
                    key: raw("27"),
                    payload: Change {
                        before: None,
                        after: structured(json!({"description": "test1", "id": 27})),
                    },
                },
            ),
            (
                "structured payload",
                ".Payload.After",
                Record {
                    metadata: meta(&[("conduit.version", "v0.4.0")]),
                    key: structured(json!({"payload": 27, "schema": {}})),
                    payload: Change {
                        before: None,
                        after: structured(structured_event()),
                    },
                    ..Record::default()
                },
                unwrapped_update(""),
            ),
            (
                "custom field, structured payload",
                ".Payload.After[\"debezium_event\"]",
                Record {
                    position: Position(b"p".to_vec()),
                    metadata: meta(&[("conduit.version", "v0.4.0")]),
                    key: structured(json!({"payload": 27, "schema": {}})),
                    payload: Change {
                        before: None,
                        after: structured(json!({ "debezium_event": structured_event() })),
                    },
                    ..Record::default()
                },
                unwrapped_update("p"),
            ),
        ];
        for (name, field, input, want) in cases {
            let (got, outcome) = run(field, input);
            assert_eq!(outcome, Outcome::Keep, "{name}");
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn operations_sides_and_metadata() {
        let event = |op: &str| {
            json!({"payload": {
                "before": "old", "after": {"id": 1}, "op": op,
                "source": {"table": "users", "lsn": 1234567, "nested": {"a": [1, "x", null]}},
                "transaction": {"id": "tx", "total_order": 2},
                "extra": 1.5,
                "ts_ms": 1000
            }})
            .to_string()
        };
        for (op, want) in [
            ("c", Operation::Create),
            ("u", Operation::Update),
            ("d", Operation::Delete),
            ("r", Operation::Snapshot),
            ("$unset", Operation::Update),
        ] {
            let record = Record {
                metadata: meta(&[("table", "mine"), ("kept", "yes")]),
                payload: Change {
                    before: None,
                    after: raw(&event(op)),
                },
                ..Record::default()
            };
            let (got, outcome) = run(".Payload.After", record);
            assert_eq!(outcome, Outcome::Keep, "{op}");
            assert_eq!(got.operation, want, "{op}");
            assert_eq!(got.payload.before, raw("old"));
            assert_eq!(got.payload.after, structured(json!({"id": 1})));
            assert_eq!(
                got.metadata,
                meta(&[
                    ("kept", "yes"),
                    ("table", "users"),
                    ("lsn", "1.234567e+06"),
                    ("nested.a", "[1 x <nil>]"),
                    ("debezium.transaction.id", "tx"),
                    ("debezium.transaction.total_order", "2"),
                    ("debezium.extra", "1.5"),
                    ("opencdc.readAt", "1000000000"),
                ])
            );
            assert_eq!(got.key, None);
        }
    }

    #[test]
    fn keys() {
        for (key, want) in [
            (None, None),
            (raw("not json"), raw("not json")),
            (raw("[1]"), raw("[1]")),
            (raw("null"), raw("null")),
            (raw(r#"{"id": 1}"#), raw(r#"{"id": 1}"#)),
            (
                raw(r#"{"payload": {"id": 1}}"#),
                structured(json!({"id": 1})),
            ),
            (raw(r#"{"payload": 12345678}"#), raw("1.2345678e+07")),
            (raw(r#"{"payload": null}"#), raw("<nil>")),
            (structured(json!({"payload": 12345678})), raw("12345678")),
            (structured(json!({"payload": true})), raw("true")),
            (structured(json!({"id": 1})), structured(json!({"id": 1}))),
        ] {
            assert_eq!(unwrap_key(&key), want, "{key:?}");
        }
    }

    #[test]
    fn go_printing() {
        for (value, floats, want) in [
            (json!(1674061777225_i64), true, "1.674061777225e+12"),
            (json!(1674061777225_i64), false, "1674061777225"),
            (json!(27), true, "27"),
            (json!(1000000), true, "1e+06"),
            (json!(123456), true, "123456"),
            (json!(0.0001), true, "0.0001"),
            (json!(0.00001), true, "1e-05"),
            (json!(1e21), false, "1e+21"),
            (json!(-2.5e-7), false, "-2.5e-07"),
            (json!(0), true, "0"),
            (
                json!(12345678901234567890_u64),
                true,
                "1.2345678901234567e+19",
            ),
            (
                json!([1, "x", null, {"z": 1, "a": [true]}]),
                true,
                "[1 x <nil> map[a:[true] z:1]]",
            ),
            (
                json!({"k": null, "b": 2.5e-7}),
                true,
                "map[b:2.5e-07 k:<nil>]",
            ),
        ] {
            assert_eq!(go_sprint(&value, floats), want, "{value}");
        }
    }

    #[test]
    fn records_that_cannot_be_unwrapped_fail_unchanged() {
        let envelope = |payload: Value| Record {
            position: Position(b"p".to_vec()),
            payload: Change {
                before: None,
                after: structured(json!({ "payload": payload })),
            },
            ..Record::default()
        };
        let cases = [
            (
                ".Payload.After",
                Record {
                    payload: Change {
                        before: None,
                        after: structured(json!({"foo": "bar", "schema": {}})),
                    },
                    ..Record::default()
                },
                "data to be unwrapped doesn't contain a payload field",
            ),
            (
                ".Payload.After",
                envelope(json!("not an object")),
                "doesn't contain a payload field",
            ),
            (
                ".Payload.After",
                envelope(json!({"before": null})),
                "invalid record: the \"after\" field is missing from debezium payload; \
                 the \"source\" field is missing from debezium payload; \
                 the \"op\" field is missing from debezium payload",
            ),
            (
                ".Payload.After",
                envelope(json!({"after": 5, "source": null, "op": "c"})),
                "failed to parse field after: expected a map or a string, got float64",
            ),
            (
                ".Payload.After",
                envelope(json!({"after": null, "source": null, "op": "x"})),
                "error unwrapping operation: \"x\" is an invalid operation",
            ),
            (
                ".Payload.After",
                envelope(json!({"after": null, "source": null, "op": 1})),
                "the \"op\" field is not a string, got float64",
            ),
            (
                ".Payload.After",
                envelope(json!({"after": null, "source": null, "op": "c", "ts_ms": "1"})),
                "error unwrapping metadata: ts_ms is not a float",
            ),
            (
                ".Payload.After",
                Record {
                    payload: Change {
                        before: None,
                        after: raw("not json"),
                    },
                    ..Record::default()
                },
                "failed unmarshalling JSON from raw data: expected ident",
            ),
            (
                ".Payload.After",
                Record {
                    payload: Change {
                        before: None,
                        after: raw("[1, 2]"),
                    },
                    ..Record::default()
                },
                "failed unmarshalling JSON from raw data: cannot unmarshal an array",
            ),
            (
                ".Payload.After.event",
                Record {
                    payload: Change {
                        before: None,
                        after: structured(json!({"event": "{"})),
                    },
                    ..Record::default()
                },
                "failed unmarshalling JSON from string",
            ),
            (
                ".Payload.After",
                Record::default(),
                "unexpected data type <nil>",
            ),
            (
                ".Payload.After.event",
                Record::default(),
                "unexpected data type <nil>",
            ),
            (
                ".Payload.After.event",
                Record {
                    payload: Change {
                        before: None,
                        after: structured(json!({"event": 1})),
                    },
                    ..Record::default()
                },
                "unexpected data type float64",
            ),
            (
                ".Payload",
                Record::default(),
                "unexpected data type opencdc.Change",
            ),
            (
                ".Payload.After.event",
                Record {
                    payload: Change {
                        before: None,
                        after: raw("{}"),
                    },
                    ..Record::default()
                },
                "failed resolving reference: .Payload.After does not contain structured data",
            ),
        ];
        for (field, input, want) in cases {
            let (got, outcome) = run(field, input.clone());
            match outcome {
                Outcome::Fail(error) => assert!(error.contains(want), "{field}: {error}"),
                other => panic!("{field} {input:?}: {other:?}"),
            }
            assert_eq!(got, input, "a failed record is left as it was");
        }
    }

    #[test]
    fn settings() {
        let plugin = UnwrapDebezium::new();
        let names: Vec<_> = plugin
            .specification()
            .parameters
            .iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(
            names,
            [
                "field",
                "sdk.schema.decode.key.enabled",
                "sdk.schema.decode.payload.enabled",
                "sdk.schema.encode.key.enabled",
                "sdk.schema.encode.payload.enabled"
            ]
        );
        let validated =
            culvert_plugins::spec::validate(&plugin.specification().parameters, &Settings::new())
                .unwrap();
        assert_eq!(validated["field"], ".Payload.After");
        assert_eq!(validated["sdk.schema.decode.key.enabled"], "true");
        for ok in [
            &[][..],
            &[("field", ".Payload.After.something")],
            &[("field", ".Payload.Before")],
        ] {
            configure(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for (bad, why) in [
            (&[("field", ".Key")][..], "must match"),
            (
                &[("field", ".Payload.Something")],
                "unexpected field \"Something\"",
            ),
            (&[("field", ".Payload.After.")], "invalid reference"),
            (&[("other", "x")], "unrecognized"),
        ] {
            match configure(bad) {
                Ok(_) => panic!("{bad:?} accepted"),
                Err(e) => {
                    let e = e.to_string();
                    assert!(e.contains(why), "{bad:?}: {e}");
                    assert!(
                        e.contains(&format!("{:?}", bad[0].0)),
                        "names the setting: {e}"
                    );
                }
            }
        }
        // Configured without validation, the pattern is still enforced.
        assert!(plugin.configure(&meta(&[("field", ".Key")])).is_err());
        assert!(plugin.configure(&Settings::new()).is_ok());
    }
}
