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
//! Conduit does (numbers parsed from JSON print like Go's `float64`: `1e+06`).

use crate::gofmt::{go_json_type, go_sprint, Numbers};
use crate::params::{payload_field, payload_field_setting, with_schema_parameters};
use crate::per_record::{PerRecord, RecordProcessor};
use crate::reference::Reference;
use crate::wrapped::{take_whole_object, unwrap_key_owned, wrapped_object};
use crate::{AUTHOR, VERSION};
use culvert_domain::opencdc::metadata;
use culvert_domain::{Change, Data, Metadata, Operation, Record};
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::{PluginError, Settings};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt::Write as _;

/// `unwrap.debezium`: replace a record with the Debezium change event it carries.
pub struct UnwrapDebezium {
    spec: ProcessorSpecification,
}

impl UnwrapDebezium {
    /// The plugin.
    pub fn new() -> Self {
        let parameters = with_schema_parameters(
            vec![payload_field(
                "Where the Debezium event is (a reference into the payload, such as `.Payload.After` or `.Payload.After.event`).",
            )],
            "true",
        );
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
        let field = payload_field_setting(settings)?;
        Ok(Box::new(PerRecord(Unwrapper { field })))
    }
}

/// The processor: the record is unwrapped in place. Everything that can fail is checked
/// first, on the event where it lies, so a failed record is left as it came; then the
/// event's parts are moved (not copied) into the record, which keeps its position and its
/// metadata map (added to). This saves the copies of `before`, `after`, the key's payload,
/// the metadata and the source's strings that building a new record took.
struct Unwrapper {
    field: Reference,
}

impl RecordProcessor for Unwrapper {
    fn process_record(&self, record: &mut Record) -> Result<(), String> {
        let (event, numbers) = wrapped_object(&self.field, record, "")?;
        let operation = check(&event)?;
        // Structured data in the whole field is read where it lies; it becomes the
        // record's, so take it (the field is overwritten below).
        let event = match event {
            Cow::Owned(event) => event,
            Cow::Borrowed(_) => take_whole_object(&self.field, record),
        };
        apply(record, event, numbers, operation);
        Ok(())
    }
}

/// Check the event (see the module documentation): the operation it holds, or why it
/// cannot be unwrapped. The checks and their messages come in Conduit's order.
fn check(event: &Map<String, Value>) -> Result<Operation, String> {
    let Some(Value::Object(envelope)) = event.get("payload") else {
        return Err("data to be unwrapped doesn't contain a payload field".to_owned());
    };
    const REQUIRED: [&str; 3] = ["after", "source", "op"];
    if !REQUIRED.iter().all(|name| envelope.contains_key(*name)) {
        let missing: Vec<String> = REQUIRED
            .iter()
            .filter(|name| !envelope.contains_key(**name))
            .map(|name| format!("the {name:?} field is missing from debezium payload"))
            .collect();
        return Err(format!("invalid record: {}", missing.join("; ")));
    }
    check_side(envelope.get("before")).map_err(|e| format!("failed to parse field before: {e}"))?;
    check_side(envelope.get("after")).map_err(|e| format!("failed to parse field after: {e}"))?;
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
                go_json_type(other.unwrap_or(&Value::Null), Numbers::Float64)
            ))
        }
    };
    if envelope
        .get("ts_ms")
        .is_some_and(|ts| ts.as_f64().is_none())
    {
        return Err("error unwrapping metadata: ts_ms is not a float".to_owned());
    }
    Ok(operation)
}

/// One side of the payload must be an object (structured data), a string (raw data), null
/// or absent (no data).
fn check_side(value: Option<&Value>) -> Result<(), String> {
    match value {
        None | Some(Value::Null | Value::Object(_) | Value::String(_)) => Ok(()),
        Some(other) => Err(format!(
            "expected a map or a string, got {}",
            go_json_type(other, Numbers::Float64)
        )),
    }
}

/// Make `record` the change `event` (checked by [`check`]) holds.
fn apply(
    record: &mut Record,
    mut event: Map<String, Value>,
    numbers: Numbers,
    operation: Operation,
) {
    let Some(Value::Object(envelope)) = event.remove("payload") else {
        return;
    };
    let metadata = &mut record.metadata;
    let (mut before, mut after, mut source) = (None, None, None);
    // In the envelope's order, as the metadata was always merged (a later field's key wins).
    for (field, value) in envelope {
        match field.as_str() {
            "before" => before = Some(value),
            "after" => after = Some(value),
            "op" => {}
            "ts_ms" => {
                // Checked to be a number. Go converts the float to an integer (truncating),
                // then to nanoseconds.
                let millis = value.as_f64().unwrap_or_default();
                let nanos = (millis as i64).wrapping_mul(1_000_000);
                match metadata.get_mut(metadata::READ_AT) {
                    Some(read_at) => {
                        read_at.clear();
                        let _ = write!(read_at, "{nanos}");
                    }
                    None => {
                        metadata.insert(metadata::key(metadata::READ_AT), nanos.to_string());
                    }
                }
            }
            "source" => source = Some(value),
            // Null adds nothing: no key to print for it.
            _ if value.is_null() => {}
            other => {
                let key = format!("debezium.{other}");
                flatten(key, value, numbers, metadata);
            }
        }
    }
    // The source's fields go in last, so they win.
    if let Some(source) = source {
        flatten(String::new(), source, numbers, metadata);
    }
    record.operation = operation;
    record.key = unwrap_key_owned(record.key.take());
    record.payload = Change {
        before: side(before),
        after: side(after),
    };
}

/// One side of the payload from the envelope (checked by [`check_side`]): an object is
/// structured data, a string raw data, anything else no data.
fn side(value: Option<Value>) -> Option<Data> {
    match value {
        Some(Value::Object(object)) => Some(Data::Structured(object.into())),
        Some(Value::String(text)) => Some(Data::Raw(text.into_bytes())),
        _ => None,
    }
}

/// Flatten a value into dotted keys under `key` (empty: none) into `out`: objects are
/// walked, null gives nothing, anything else one entry (printed as Go prints it; strings
/// are moved, not printed).
fn flatten(key: String, value: Value, numbers: Numbers, out: &mut Metadata) {
    match value {
        Value::Object(object) => {
            for (name, inner) in object {
                let nested = if key.is_empty() {
                    name
                } else {
                    format!("{key}.{name}")
                };
                flatten(nested, inner, numbers, out);
            }
        }
        Value::Null => {}
        Value::String(text) => {
            out.insert(key, text);
        }
        other => {
            out.insert(key, go_sprint(&other, numbers));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use culvert_domain::Position;
    use culvert_plugins::processor::Outcome;
    use serde_json::json;

    fn run(field: &str, record: Record) -> (Record, Outcome) {
        process_one(&UnwrapDebezium::new(), field, record)
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
        // What the event unwraps to, from a record at `position` with `metadata`.
        let unwrapped = |position: &str, operation, metadata: &[(&str, &str)]| Record {
            position: Position(position.as_bytes().to_vec()),
            operation,
            metadata: meta(metadata),
            key: raw("27"),
            payload: Change {
                before: None,
                after: structured(json!({"description": "test1", "id": 27})),
            },
        };
        let unwrapped_update = |position: &str| {
            unwrapped(
                position,
                Operation::Update,
                &[
                    ("opencdc.readAt", "1674061777225000000"),
                    ("opencdc.version", "v1"),
                    ("conduit.version", "v0.4.0"),
                ],
            )
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
                unwrapped(
                    "test-position",
                    Operation::Create,
                    &[
                        ("metadata-key", "metadata-value"),
                        ("opencdc.readAt", "1674061777225877000"),
                        ("opencdc.version", "v1"),
                    ],
                ),
            ),
            (
                "raw payload",
                ".Payload.After",
                Record {
                    position: Position(b"position".to_vec()),
                    key: raw(r#"{"payload":"27"}"#),
                    ..payload(None, raw(EVENT))
                },
                unwrapped(
                    "position",
                    Operation::Create,
                    &[
                        ("opencdc.readAt", "1674061777225877000"),
                        ("opencdc.version", "v1"),
                    ],
                ),
            ),
            (
                "structured payload",
                ".Payload.After",
                Record {
                    metadata: meta(&[("conduit.version", "v0.4.0")]),
                    key: structured(json!({"payload": 27, "schema": {}})),
                    ..payload(None, structured(structured_event()))
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
                    ..payload(
                        None,
                        structured(json!({ "debezium_event": structured_event() })),
                    )
                },
                unwrapped_update("p"),
            ),
        ];
        assert_kept(&UnwrapDebezium::new(), cases);
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
                ..payload(None, raw(&event(op)))
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
    fn records_that_cannot_be_unwrapped_fail_unchanged() {
        let envelope = |envelope: Value| Record {
            position: Position(b"p".to_vec()),
            ..payload(None, structured(json!({ "payload": envelope })))
        };
        let cases = [
            (
                ".Payload.After",
                payload(None, structured(json!({"foo": "bar", "schema": {}}))),
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
                payload(None, raw("not json")),
                "failed unmarshalling JSON from raw data: expected ident",
            ),
            (
                ".Payload.After",
                payload(None, raw("[1, 2]")),
                "failed unmarshalling JSON from raw data: cannot unmarshal an array",
            ),
            (
                ".Payload.After.event",
                payload(None, structured(json!({"event": "{"}))),
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
                payload(None, structured(json!({"event": 1}))),
                "unexpected data type float64",
            ),
            (
                ".Payload",
                Record::default(),
                "unexpected data type opencdc.Change",
            ),
            (
                ".Payload.After.event",
                payload(None, raw("{}")),
                "failed resolving reference: .Payload.After does not contain structured data",
            ),
        ];
        assert_failed_containing(&UnwrapDebezium::new(), cases);
    }

    #[test]
    fn settings() {
        let plugin = UnwrapDebezium::new();
        assert_parameters(&plugin, &[("field", ".Payload.After")], "true");
        let validated = validated_settings(&plugin, &[]);
        assert_eq!(validated["field"], ".Payload.After");
        assert_eq!(validated["sdk.schema.decode.key.enabled"], "true");
        for ok in [
            &[][..],
            &[("field", ".Payload.After.something")],
            &[("field", ".Payload.Before")],
        ] {
            configure(&plugin, ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
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
            let e = refusal(&plugin, bad);
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(
                e.contains(&format!("{:?}", bad[0].0)),
                "names the setting: {e}"
            );
        }
        // Configured without validation, the pattern is still enforced.
        assert!(plugin
            .configure(&crate::testing::settings(&[("field", ".Key")]))
            .is_err());
        assert!(plugin.configure(&Settings::new()).is_ok());
    }
}
