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
use crate::reference::Reference;
use crate::wrapped::{unwrap_key, wrapped_object, Unwrap};
use crate::{AUTHOR, VERSION};
use culvert_domain::opencdc::metadata;
use culvert_domain::{Change, Data, Operation, Record};
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::{PluginError, Settings};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

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
        Ok(Unwrap::processor(field, unwrap))
    }
}

fn unwrap(field: &Reference, record: &Record) -> Result<Record, String> {
    let (event, numbers) = wrapped_object(field, record, "")?;
    // Read where it is: only the two sides are copied into the new record.
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
                go_json_type(other.unwrap_or(&Value::Null), Numbers::Float64)
            ))
        }
    };
    let metadata = merge_metadata(&record.metadata, envelope, numbers)
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
            go_json_type(other, Numbers::Float64)
        )),
    }
}

/// The record's metadata with the envelope's merged in (see the module documentation).
fn merge_metadata(
    own: &BTreeMap<String, String>,
    envelope: &Map<String, Value>,
    numbers: Numbers,
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
            "source" => flatten("", value, numbers, &mut source),
            other => {
                let mut flat = Vec::new();
                flatten(&format!("debezium.{other}"), value, numbers, &mut flat);
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
fn flatten(key: &str, value: &Value, numbers: Numbers, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(object) => {
            for (name, inner) in object {
                let nested = if key.is_empty() {
                    name.clone()
                } else {
                    format!("{key}.{name}")
                };
                flatten(&nested, inner, numbers, out);
            }
        }
        Value::Null => {}
        other => out.push((key.to_owned(), go_sprint(other, numbers))),
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
