//! `unwrap.opencdc`: replace a record with the OpenCDC record stored in one of its fields.
//!
//! Useful when records pass through another system (say Kafka) between two pipelines: the
//! second pipeline reads the first one's records, whole, as its payload. The wrapped record
//! is read from `field` (default `.Payload.After`): structured data is taken as the record
//! in Conduit's JSON form, raw data and strings are parsed as JSON first.
//!
//! The wrapped record must have `operation` (a name such as `update`, or a number 1-4, also
//! written `Operation(2)`), `metadata` (an object; values that are not strings become text
//! as Go's `fmt.Sprint` prints them) and `payload` (an object whose `before` and `after`
//! are structured data, base64 raw data, or null); `key` is optional (same forms). Its
//! `position` is ignored: the result keeps the position of the record that carried it, so
//! acknowledgements still reach the right source.

use crate::gofmt::{go_json_type, go_sprint, go_type, Numbers};
use crate::params::{with_schema_parameters, wrapped_field, wrapped_field_setting};
use crate::reference::{FieldValue, Reference};
use crate::wrapped::{parse_object, Unwrap};
use crate::{AUTHOR, VERSION};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use culvert_domain::{Change, Data, Metadata, Operation, Record};
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::{PluginError, Settings};
use serde_json::{Map, Value};

/// `unwrap.opencdc`: replace a record with the OpenCDC record it carries.
pub struct UnwrapOpenCdc {
    spec: ProcessorSpecification,
}

impl UnwrapOpenCdc {
    /// The plugin.
    pub fn new() -> Self {
        let parameters = with_schema_parameters(
            vec![wrapped_field(
                "Where the wrapped OpenCDC record is (a reference such as `.Payload.After` or `.Payload.After.record`).",
            )],
            "true",
        );
        Self {
            spec: ProcessorSpecification {
                name: "unwrap.opencdc",
                summary: "Replace the record with the OpenCDC record held in one of its fields.",
                description: "Replaces the record with the OpenCDC record stored in `field`: \
                              its operation, metadata, key and payload take the place of the \
                              carrying record's, while the position stays (so acknowledgements \
                              reach the right source). Meant for records that went through an \
                              intermediate system (e.g. Kafka) before reaching their final \
                              destination. A wrapped record that is not structured data is \
                              parsed as JSON.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for UnwrapOpenCdc {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for UnwrapOpenCdc {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let field = wrapped_field_setting(settings)?;
        Ok(Unwrap::processor(field, unwrap))
    }
}

fn unwrap(field: &Reference, record: &Record) -> Result<Record, String> {
    let value = field
        .get(record)
        .map_err(|e| format!("failed resolving record reference: {e}"))?;
    let parse = |bytes: &[u8]| {
        parse_object(bytes)
            .map(|object| (object, Numbers::Float64))
            .map_err(|e| format!("failed to unmarshal raw data as JSON: {e}"))
    };
    let (wrapped, numbers) = match value {
        FieldValue::Data(Some(Data::Raw(bytes))) => parse(&bytes)?,
        FieldValue::Text(text) | FieldValue::Json(Value::String(text)) => parse(text.as_bytes())?,
        FieldValue::Data(Some(Data::Structured(object))) => (object.into_map(), Numbers::AsHeld),
        // Conduit takes only top-level structured data, and fails on an object nested in
        // it; Culvert's nested objects are the same JSON, so they are taken too.
        FieldValue::Json(Value::Object(object)) => (object, Numbers::AsHeld),
        FieldValue::Data(None) | FieldValue::Json(Value::Null) => {
            return Err("field to unmarshal is nil".to_owned())
        }
        other => {
            return Err(format!(
                "unexpected data type {}",
                go_type(&other, Numbers::Float64)
            ))
        }
    };
    let mut unwrapped =
        from_object(&wrapped, numbers).map_err(|e| format!("failed unmarshalling record: {e}"))?;
    unwrapped.position = record.position.clone();
    Ok(unwrapped)
}

/// The record an object describes, in the order Conduit checks its fields.
fn from_object(object: &Map<String, Value>, numbers: Numbers) -> Result<Record, String> {
    let operation = operation(object.get("operation"))
        .map_err(|e| format!("failed unmarshalling operation: {e}"))?;
    let metadata = metadata(object.get("metadata"), numbers)
        .map_err(|e| format!("failed unmarshalling metadata: {e}"))?;
    let key = data(object, "key").map_err(|e| format!("failed unmarshalling key: {e}"))?;
    let payload = match object.get("payload") {
        None => return Err("failed unmarshalling payload: no payload".to_owned()),
        Some(Value::Object(payload)) => Change {
            before: data(payload, "before")
                .map_err(|e| format!("failed unmarshalling payload: {e}"))?,
            after: data(payload, "after")
                .map_err(|e| format!("failed unmarshalling payload: {e}"))?,
        },
        Some(other) => {
            return Err(format!(
                "failed unmarshalling payload: expected a opencdc.Change or a map[string]interface{{}}, got {}",
                go_json_type(other, Numbers::Float64)
            ))
        }
    };
    Ok(Record {
        position: Default::default(),
        operation,
        metadata,
        key,
        payload,
    })
}

fn operation(value: Option<&Value>) -> Result<Operation, String> {
    match value {
        None => Err("no operation".to_owned()),
        Some(Value::String(name)) => parse_operation(name),
        Some(other) => Err(format!(
            "expected a opencdc.Operation or a string, got {}",
            go_json_type(other, Numbers::Float64)
        )),
    }
}

/// An operation as Conduit reads it from text: its name, or its number (1 create, 2
/// update, 3 delete, 4 snapshot), bare or as `Operation(N)`. Empty text is `create`, the
/// default, as when Culvert reads a record's JSON form.
fn parse_operation(name: &str) -> Result<Operation, String> {
    if name.is_empty() {
        return Ok(Operation::default());
    }
    if let Some(operation) = Operation::parse(name) {
        return Ok(operation);
    }
    let number = name.strip_prefix("Operation(").unwrap_or(name);
    let number = number.strip_suffix(')').unwrap_or(number);
    match number.parse::<i64>() {
        Ok(1) => Ok(Operation::Create),
        Ok(2) => Ok(Operation::Update),
        Ok(3) => Ok(Operation::Delete),
        Ok(4) => Ok(Operation::Snapshot),
        _ => Err(format!("invalid operation {name:?}")),
    }
}

fn metadata(value: Option<&Value>, numbers: Numbers) -> Result<Metadata, String> {
    match value {
        None => Err("no metadata".to_owned()),
        Some(Value::Object(object)) => Ok(object
            .iter()
            .map(|(key, value)| (key.clone(), go_sprint(value, numbers)))
            .collect()),
        Some(other) => Err(format!(
            "expected a opencdc.Metadata or a map[string]interface{{}}, got {}",
            go_json_type(other, Numbers::Float64)
        )),
    }
}

/// Go's standard base64 decoding: padding required, stray trailing bits and line breaks
/// tolerated.
const GO_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// The key or a payload side: an object is structured data, a string base64 raw data,
/// null or nothing no data.
fn data(object: &Map<String, Value>, field: &str) -> Result<Option<Data>, String> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(Data::Structured(inner.clone().into()))),
        Some(Value::String(text)) => {
            let text: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
            GO_BASE64
                .decode(text)
                .map(|bytes| Some(Data::Raw(bytes)))
                .map_err(|e| format!("couldn't decode {field} as base64: {e}"))
        }
        Some(other) => Err(format!(
            "expected a map[string]interface{{}} or string, got: {}",
            go_json_type(other, Numbers::Float64)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use culvert_domain::Position;
    use culvert_plugins::processor::Outcome;
    use serde_json::json;

    fn run(pairs: &[(&str, &str)], record: Record) -> (Record, Outcome) {
        process(&UnwrapOpenCdc::new(), pairs, record)
    }

    const KAFKA_POSITION: &str = "eyJHcm91cElEIjoiNGQ2ZTBhMjktNzAwZi00Yjk4LWEzY2MtZWUyNzZhZTc4MjVjIiwiVG9waWMiOiJzdHJlYW0tNzhscG5jaHg3dHpweXF6LWdlbmVyYXRvciIsIlBhcnRpdGlvbiI6MCwiT2Zmc2V0IjoyMjF9";

    /// A wrapped record in Conduit's JSON form (as Conduit's tests have them).
    fn wrapped(operation: &str, before: Value, after: Value) -> String {
        json!({
            "position": "NzgyNjJmODUtODNmMS00ZGQwLWEyZDAtNTRmNjA1ZjkyYTg0",
            "operation": operation,
            "metadata": {
                "conduit.source.connector.id": "source-generator-78lpnchx7tzpyqz:source",
                "opencdc.readAt": "1706028953595546000",
                "opencdc.version": "v1"
            },
            "key": "MTc3NzQ5NDEtNTdhMi00MmZhLWI0MzAtODkxMmE5NDI0YjNh",
            "payload": {"before": before, "after": after}
        })
        .to_string()
    }

    fn event(id: i64, msg: &str, sensor: i64) -> Value {
        json!({
            "event_id": id,
            "msg": msg,
            "pg_generator": false,
            "sensor_id": sensor,
            "triggered": false
        })
    }

    fn first() -> Value {
        event(
            1747353650,
            "string 0e8955b3-7fb5-4dda-8064-e10dc007f00d",
            1250383582,
        )
    }

    fn second() -> Value {
        event(
            1747353658,
            "string 0f5397c9-31f1-422a-9c9a-26e3574a5c31",
            1250383580,
        )
    }

    /// The record that carries another, as in Conduit's tests.
    fn carrier(after: Option<Data>) -> Record {
        Record {
            position: Position(KAFKA_POSITION.as_bytes().to_vec()),
            operation: Operation::Create,
            metadata: meta(&[
                (
                    "conduit.source.connector.id",
                    "dest-log-78lpnchx7tzpyqz:source-kafka",
                ),
                ("kafka.topic", "stream-78lpnchx7tzpyqz-generator"),
                ("opencdc.createdAt", "1706028953595000000"),
                ("opencdc.readAt", "1706028953606997000"),
                ("opencdc.version", "v1"),
            ]),
            key: raw("one-key-raw-data"),
            payload: Change {
                before: None,
                after,
            },
        }
    }

    /// What the carrier unwraps to.
    fn unwrapped(operation: Operation, key: Option<Data>, before: Value, after: Value) -> Record {
        let side = |v: Value| if v.is_null() { None } else { structured(v) };
        Record {
            position: Position(KAFKA_POSITION.as_bytes().to_vec()),
            operation,
            metadata: meta(&[
                (
                    "conduit.source.connector.id",
                    "source-generator-78lpnchx7tzpyqz:source",
                ),
                ("opencdc.readAt", "1706028953595546000"),
                ("opencdc.version", "v1"),
            ]),
            key,
            payload: Change {
                before: side(before),
                after: side(after),
            },
        }
    }

    /// Conduit's example (`opencdc_examples_test.go`) and the successful cases of its
    /// `opencdc_test.go`: (name, settings, record in, record out).
    #[test]
    fn conduits_examples() {
        let raw_key = || raw("17774941-57a2-42fa-b430-8912a9424b3a");
        let cases: Vec<Case> = vec![
            (
                "example: structured record in .Payload.After",
                &[],
                Record {
                    position: Position(b"wrapping position".to_vec()),
                    operation: Operation::Create,
                    metadata: Metadata::new(),
                    key: raw("wrapping key"),
                    payload: Change {
                        before: None,
                        after: structured(json!({
                            "position": "dGVzdC1wb3NpdGlvbg==",
                            "operation": "update",
                            "key": {"id": "test-key"},
                            "metadata": {},
                            "payload": {
                                "before": null,
                                "after": {
                                    "msg": "string 0e8955b3-7fb5-4dda-8064-e10dc007f00d",
                                    "sensor_id": 1250383582,
                                    "triggered": false
                                }
                            }
                        })),
                    },
                },
                Record {
                    position: Position(b"wrapping position".to_vec()),
                    operation: Operation::Update,
                    metadata: Metadata::new(),
                    key: structured(json!({"id": "test-key"})),
                    payload: Change {
                        before: None,
                        after: structured(json!({
                            "msg": "string 0e8955b3-7fb5-4dda-8064-e10dc007f00d",
                            "sensor_id": 1250383582,
                            "triggered": false
                        })),
                    },
                },
            ),
            (
                "create with structured data",
                &[],
                Record {
                    key: raw("one-key"),
                    ..carrier(structured(json!({
                        "position": "TnpneU5qSm1PRFV0T0RObU1TMDBaR1F3TFdFeVpEQXROVFJtTmpBMVpqa3lZVGcw",
                        "operation": "create",
                        "metadata": {
                            "conduit.source.connector.id": "source-generator-78lpnchx7tzpyqz:source",
                            "opencdc.readAt": "1706028953595546000",
                            "opencdc.version": "v1"
                        },
                        "key": {"id": "MTc3NzQ5NDEtNTdhMi00MmZhLWI0MzAtODkxMmE5NDI0YjNh"},
                        "payload": {"before": null, "after": first()}
                    })))
                },
                unwrapped(
                    Operation::Create,
                    structured(json!({"id": "MTc3NzQ5NDEtNTdhMi00MmZhLWI0MzAtODkxMmE5NDI0YjNh"})),
                    Value::Null,
                    first(),
                ),
            ),
            (
                "create with raw data",
                &[],
                carrier(raw(&wrapped("create", Value::Null, first()))),
                unwrapped(Operation::Create, raw_key(), Value::Null, first()),
            ),
            (
                "delete with before and with raw data",
                &[],
                carrier(raw(&wrapped("delete", first(), Value::Null))),
                unwrapped(Operation::Delete, raw_key(), first(), Value::Null),
            ),
            (
                "delete without before and with raw data",
                &[],
                carrier(raw(&wrapped("delete", Value::Null, Value::Null))),
                unwrapped(Operation::Delete, raw_key(), Value::Null, Value::Null),
            ),
            (
                "update with before and with raw data",
                &[],
                carrier(raw(&wrapped("update", first(), second()))),
                unwrapped(Operation::Update, raw_key(), first(), second()),
            ),
            (
                "update without before and with raw data",
                &[],
                carrier(raw(&wrapped("update", Value::Null, first()))),
                unwrapped(Operation::Update, raw_key(), Value::Null, first()),
            ),
            (
                "update without before, JSON text in a nested field",
                &[("field", ".Payload.After.nested")],
                carrier(structured(
                    json!({ "nested": wrapped("update", Value::Null, first()) }),
                )),
                unwrapped(Operation::Update, raw_key(), Value::Null, first()),
            ),
        ];
        assert_kept_with(&UnwrapOpenCdc::new(), cases);
    }

    #[test]
    fn other_forms_of_the_wrapped_record() {
        let record = |wrapped: Value| Record {
            position: Position(b"outer".to_vec()),
            metadata: meta(&[("dropped", "yes")]),
            ..payload(None, raw(&wrapped.to_string()))
        };
        for (operation, want) in [
            ("snapshot", Operation::Snapshot),
            ("", Operation::Create),
            ("3", Operation::Delete),
            ("Operation(2)", Operation::Update),
            ("Operation(4)", Operation::Snapshot),
        ] {
            let (got, outcome) = run(
                &[],
                record(json!({"operation": operation, "metadata": {}, "payload": {}})),
            );
            assert_eq!(outcome, Outcome::Keep, "{operation}");
            assert_eq!(got.operation, want, "{operation}");
            assert_eq!(got.position.0, b"outer");
            assert!(got.metadata.is_empty(), "the carrier's metadata goes");
            assert_eq!(got.key, None);
            assert_eq!(got.payload, Change::default());
        }
        let (got, outcome) = run(
            &[],
            record(json!({
                "operation": "create",
                "metadata": {"n": 1234567, "b": true, "nil": null, "s": "x", "o": {"a": 1}},
                "key": "",
                "payload": {"before": "YmVmb3Jl", "after": "YWZ0\r\nZXI="}
            })),
        );
        assert_eq!(outcome, Outcome::Keep);
        assert_eq!(
            got.metadata,
            meta(&[
                ("n", "1.234567e+06"),
                ("b", "true"),
                ("nil", "<nil>"),
                ("s", "x"),
                ("o", "map[a:1]")
            ])
        );
        assert_eq!(got.key, raw(""));
        assert_eq!(got.payload.before, raw("before"));
        assert_eq!(got.payload.after, raw("after"));

        // A wrapped record in a metadata value, and a nested object.
        let text = json!({"operation": "update", "metadata": {"n": 1234567}, "payload": {}});
        let carrier = Record {
            metadata: meta(&[("wrapped", &text.to_string())]),
            ..payload(None, structured(json!({ "nested": text })))
        };
        let (got, outcome) = run(&[("field", ".Metadata.wrapped")], carrier.clone());
        assert_eq!(outcome, Outcome::Keep);
        assert_eq!(got.operation, Operation::Update);
        assert_eq!(got.metadata, meta(&[("n", "1.234567e+06")]));
        let (got, outcome) = run(&[("field", ".Payload.After.nested")], carrier);
        assert_eq!(outcome, Outcome::Keep);
        assert_eq!(
            got.metadata,
            meta(&[("n", "1234567")]),
            "structured integers stay"
        );
    }

    #[test]
    fn records_that_cannot_be_unwrapped_fail_unchanged() {
        let after = |data: Option<Data>| Record {
            position: Position(b"test-pos".to_vec()),
            key: raw("one-key-raw-data"),
            ..payload(None, data)
        };
        let wrapped = |value: Value| after(raw(&value.to_string()));
        let msg = json!({"after": {"msg": "string 0e8955b3-7fb5-4dda-8064-e10dc007f00d"}});
        let cases = [
            (".Payload.After", after(None), "field to unmarshal is nil"),
            (
                ".Payload.After",
                wrapped(json!({"operation": "foobar", "key": "MTc3", "payload": msg})),
                "failed unmarshalling record: failed unmarshalling operation: invalid operation \"foobar\"",
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "metadata": "invalid", "payload": msg})),
                "failed unmarshalling record: failed unmarshalling metadata: expected a opencdc.Metadata or a map[string]interface{}, got string",
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "metadata": {}, "key": 1, "payload": msg})),
                "failed unmarshalling record: failed unmarshalling key: expected a map[string]interface{} or string, got: float64",
            ),
            (
                ".Payload.After",
                after(raw("this is not a json string")),
                "failed to unmarshal raw data as JSON: expected ident at line 1 column 2",
            ),
            (
                ".Payload.After",
                wrapped(json!({"metadata": {}, "payload": msg})),
                "failed unmarshalling operation: no operation",
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": 2, "metadata": {}, "payload": msg})),
                "expected a opencdc.Operation or a string, got float64",
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "Operation(9)", "metadata": {}, "payload": msg})),
                "invalid operation \"Operation(9)\"",
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "payload": msg})),
                "failed unmarshalling metadata: no metadata",
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "metadata": null, "payload": msg})),
                "got <nil>",
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "metadata": {}, "key": "not base64!"})),
                "failed unmarshalling key: couldn't decode key as base64",
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "metadata": {}})),
                "failed unmarshalling record: failed unmarshalling payload: no payload",
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "metadata": {}, "payload": []})),
                "failed unmarshalling payload: expected a opencdc.Change or a map[string]interface{}, got []interface {}",
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "metadata": {}, "payload": {"after": true}})),
                "failed unmarshalling payload: expected a map[string]interface{} or string, got: bool",
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "metadata": {}, "payload": {"before": "%"}})),
                "failed unmarshalling payload: couldn't decode before as base64",
            ),
            (
                ".Payload.After",
                after(raw("null")),
                "failed unmarshalling operation: no operation",
            ),
            (
                ".Payload.After",
                after(raw("[]")),
                "failed to unmarshal raw data as JSON: cannot unmarshal an array into an object",
            ),
            (
                ".Payload.After.x",
                after(structured(json!({"x": 5}))),
                "unexpected data type float64",
            ),
            (
                ".Payload.After.x",
                after(structured(json!({}))),
                "field to unmarshal is nil",
            ),
            (".Position", after(None), "unexpected data type opencdc.Position"),
            (".Operation", after(None), "unexpected data type opencdc.Operation"),
            (
                ".Payload.After.x",
                after(raw("{}")),
                "failed resolving record reference: .Payload.After does not contain structured data",
            ),
        ];
        assert_failed_containing(&UnwrapOpenCdc::new(), cases);
    }

    #[test]
    fn a_failed_record_does_not_stop_the_others() {
        let good = payload(
            None,
            structured(json!({"operation": "delete", "metadata": {}, "payload": {}})),
        );
        let mut processor = configure(&UnwrapOpenCdc::new(), &[]).unwrap();
        let mut records = [good.clone(), Record::default(), good];
        let outcomes = crate::testing::run(processor.as_mut(), &mut records);
        assert_eq!(outcomes[0], Outcome::Keep);
        assert!(matches!(&outcomes[1], Outcome::Fail(_)));
        assert_eq!(outcomes[2], Outcome::Keep);
        assert_eq!(records[2].operation, Operation::Delete);
    }

    #[test]
    fn settings() {
        let plugin = UnwrapOpenCdc::new();
        assert_parameters(&plugin, &[("field", ".Payload.After")], "true");
        let validated = validated_settings(&plugin, &[]);
        assert_eq!(validated["field"], ".Payload.After");
        configure(&plugin, &[]).unwrap();
        configure(&plugin, &[("field", ".Payload.Before")]).unwrap();
        configure(&plugin, &[("field", ".Key")]).unwrap();
        assert_field_refused(
            &plugin,
            [
                (".Payload.Something", "unexpected field \"Something\""),
                ("Payload", "invalid reference"),
            ],
        );
        let error = refusal(&plugin, &[("sdk.schema.decode.key.enabled", "maybe")]);
        assert!(error.contains("sdk.schema.decode.key.enabled"), "{error}");
    }
}
