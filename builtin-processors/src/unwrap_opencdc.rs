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

use crate::reference::{FieldValue, Reference};
use crate::unwrap_debezium::{field_value_type, go_sprint, go_type, parse_object, DEFAULT_FIELD};
use crate::{invalid, schema_parameters, setting, AUTHOR, VERSION};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use culvert_domain::{Change, Data, Operation, Record};
use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType};
use culvert_plugins::{PluginError, Settings};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `unwrap.opencdc`: replace a record with the OpenCDC record it carries.
pub struct UnwrapOpenCdc {
    spec: ProcessorSpecification,
}

impl UnwrapOpenCdc {
    /// The plugin.
    pub fn new() -> Self {
        let mut parameters = vec![Parameter::new(
            "field",
            ParameterType::String,
            "Where the wrapped OpenCDC record is (a reference such as `.Payload.After` or `.Payload.After.record`).",
        )
        .default_value(DEFAULT_FIELD)];
        parameters.extend(schema_parameters("true"));
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
        let raw = match setting(settings, "field") {
            "" => DEFAULT_FIELD,
            raw => raw,
        };
        let field = Reference::parse(raw).map_err(|e| invalid("field", e))?;
        Ok(Box::new(OpenCdcProcessor { field }))
    }
}

struct OpenCdcProcessor {
    field: Reference,
}

#[async_trait::async_trait]
impl Processor for OpenCdcProcessor {
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
        .map_err(|e| format!("failed resolving record reference: {e}"))?;
    let parse = |bytes: &[u8]| {
        parse_object(bytes)
            .map(|object| (object, true))
            .map_err(|e| format!("failed to unmarshal raw data as JSON: {e}"))
    };
    let (wrapped, floats) = match value {
        FieldValue::Data(Some(Data::Raw(bytes))) => parse(&bytes)?,
        FieldValue::Text(text) | FieldValue::Json(Value::String(text)) => parse(text.as_bytes())?,
        FieldValue::Data(Some(Data::Structured(object))) => (object, false),
        // Conduit takes only top-level structured data, and fails on an object nested in
        // it; Culvert's nested objects are the same JSON, so they are taken too.
        FieldValue::Json(Value::Object(object)) => (object, false),
        FieldValue::Data(None) | FieldValue::Json(Value::Null) => {
            return Err("field to unmarshal is nil".to_owned())
        }
        other => return Err(format!("unexpected data type {}", field_value_type(&other))),
    };
    let mut unwrapped =
        from_object(&wrapped, floats).map_err(|e| format!("failed unmarshalling record: {e}"))?;
    unwrapped.position = record.position.clone();
    Ok(unwrapped)
}

/// The record an object describes, in the order Conduit checks its fields.
fn from_object(object: &Map<String, Value>, floats: bool) -> Result<Record, String> {
    let operation = operation(object.get("operation"))
        .map_err(|e| format!("failed unmarshalling operation: {e}"))?;
    let metadata = metadata(object.get("metadata"), floats)
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
                go_type(other)
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
            go_type(other)
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

fn metadata(value: Option<&Value>, floats: bool) -> Result<BTreeMap<String, String>, String> {
    match value {
        None => Err("no metadata".to_owned()),
        Some(Value::Object(object)) => Ok(object
            .iter()
            .map(|(key, value)| (key.clone(), go_sprint(value, floats)))
            .collect()),
        Some(other) => Err(format!(
            "expected a opencdc.Metadata or a map[string]interface{{}}, got {}",
            go_type(other)
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
        Some(Value::Object(inner)) => Ok(Some(Data::Structured(inner.clone()))),
        Some(Value::String(text)) => {
            let text: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
            GO_BASE64
                .decode(text)
                .map(|bytes| Some(Data::Raw(bytes)))
                .map_err(|e| format!("couldn't decode {field} as base64: {e}"))
        }
        Some(other) => Err(format!(
            "expected a map[string]interface{{}} or string, got: {}",
            go_type(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_domain::Position;
    use serde_json::json;

    fn structured(value: Value) -> Option<Data> {
        match value {
            Value::Object(object) => Some(Data::Structured(object)),
            other => panic!("not an object: {other}"),
        }
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
        let plugin = UnwrapOpenCdc::new();
        let validated =
            culvert_plugins::spec::validate(&plugin.specification().parameters, &meta(pairs))?;
        plugin.configure(&validated)
    }

    fn run(pairs: &[(&str, &str)], record: Record) -> (Record, Outcome) {
        let mut processor = configure(pairs).unwrap();
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

    /// A named case: settings, the record in and the record out.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        Record,
        Record,
    );

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
                    metadata: BTreeMap::new(),
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
                    metadata: BTreeMap::new(),
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
        for (name, settings, input, want) in cases {
            let (got, outcome) = run(settings, input);
            assert_eq!(outcome, Outcome::Keep, "{name}");
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn other_forms_of_the_wrapped_record() {
        let record = |wrapped: Value| Record {
            position: Position(b"outer".to_vec()),
            metadata: meta(&[("dropped", "yes")]),
            payload: Change {
                before: None,
                after: raw(&wrapped.to_string()),
            },
            ..Record::default()
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
            payload: Change {
                before: None,
                after: structured(json!({ "nested": text })),
            },
            ..Record::default()
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
            payload: Change {
                before: None,
                after: data,
            },
            ..Record::default()
        };
        let wrapped = |value: Value| after(raw(&value.to_string()));
        let msg = json!({"after": {"msg": "string 0e8955b3-7fb5-4dda-8064-e10dc007f00d"}});
        let cases = [
            (".Payload.After", after(None), "field to unmarshal is nil".to_owned()),
            (
                ".Payload.After",
                wrapped(json!({"operation": "foobar", "key": "MTc3", "payload": msg})),
                "failed unmarshalling record: failed unmarshalling operation: invalid operation \"foobar\"".to_owned(),
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "metadata": "invalid", "payload": msg})),
                "failed unmarshalling record: failed unmarshalling metadata: expected a opencdc.Metadata or a map[string]interface{}, got string".to_owned(),
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "metadata": {}, "key": 1, "payload": msg})),
                "failed unmarshalling record: failed unmarshalling key: expected a map[string]interface{} or string, got: float64".to_owned(),
            ),
            (
                ".Payload.After",
                after(raw("this is not a json string")),
                "failed to unmarshal raw data as JSON: expected ident at line 1 column 2".to_owned(),
            ),
            (
                ".Payload.After",
                wrapped(json!({"metadata": {}, "payload": msg})),
                "failed unmarshalling operation: no operation".to_owned(),
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": 2, "metadata": {}, "payload": msg})),
                "expected a opencdc.Operation or a string, got float64".to_owned(),
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "Operation(9)", "metadata": {}, "payload": msg})),
                "invalid operation \"Operation(9)\"".to_owned(),
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "payload": msg})),
                "failed unmarshalling metadata: no metadata".to_owned(),
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "metadata": null, "payload": msg})),
                "got <nil>".to_owned(),
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "metadata": {}, "key": "not base64!"})),
                "failed unmarshalling key: couldn't decode key as base64".to_owned(),
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "metadata": {}})),
                "failed unmarshalling record: failed unmarshalling payload: no payload".to_owned(),
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "metadata": {}, "payload": []})),
                "failed unmarshalling payload: expected a opencdc.Change or a map[string]interface{}, got []interface {}".to_owned(),
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "metadata": {}, "payload": {"after": true}})),
                "failed unmarshalling payload: expected a map[string]interface{} or string, got: bool".to_owned(),
            ),
            (
                ".Payload.After",
                wrapped(json!({"operation": "create", "metadata": {}, "payload": {"before": "%"}})),
                "failed unmarshalling payload: couldn't decode before as base64".to_owned(),
            ),
            (
                ".Payload.After",
                after(raw("null")),
                "failed unmarshalling operation: no operation".to_owned(),
            ),
            (
                ".Payload.After",
                after(raw("[]")),
                "failed to unmarshal raw data as JSON: cannot unmarshal an array into an object".to_owned(),
            ),
            (
                ".Payload.After.x",
                after(structured(json!({"x": 5}))),
                "unexpected data type float64".to_owned(),
            ),
            (
                ".Payload.After.x",
                after(structured(json!({}))),
                "field to unmarshal is nil".to_owned(),
            ),
            (".Position", after(None), "unexpected data type opencdc.Position".to_owned()),
            (".Operation", after(None), "unexpected data type opencdc.Operation".to_owned()),
            (
                ".Payload.After.x",
                after(raw("{}")),
                "failed resolving record reference: .Payload.After does not contain structured data".to_owned(),
            ),
        ];
        for (field, input, want) in cases {
            let (got, outcome) = run(&[("field", field)], input.clone());
            match outcome {
                Outcome::Fail(error) => assert!(error.contains(&want), "{field}: {error}"),
                other => panic!("{field} {input:?}: {other:?}"),
            }
            assert_eq!(got, input, "a failed record is left as it was");
        }
    }

    #[test]
    fn a_failed_record_does_not_stop_the_others() {
        let good = Record {
            payload: Change {
                before: None,
                after: structured(json!({"operation": "delete", "metadata": {}, "payload": {}})),
            },
            ..Record::default()
        };
        let mut processor = configure(&[]).unwrap();
        let mut records = [good.clone(), Record::default(), good];
        let mut outcomes = [Outcome::Keep, Outcome::Keep, Outcome::Keep];
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(processor.process(&mut records, &mut outcomes))
            .unwrap();
        assert_eq!(outcomes[0], Outcome::Keep);
        assert!(matches!(&outcomes[1], Outcome::Fail(_)));
        assert_eq!(outcomes[2], Outcome::Keep);
        assert_eq!(records[2].operation, Operation::Delete);
    }

    #[test]
    fn settings() {
        let plugin = UnwrapOpenCdc::new();
        let params = &plugin.specification().parameters;
        let names: Vec<_> = params.iter().map(|p| (p.name, p.default)).collect();
        assert_eq!(
            names,
            [
                ("field", ".Payload.After"),
                ("sdk.schema.decode.key.enabled", "true"),
                ("sdk.schema.decode.payload.enabled", "true"),
                ("sdk.schema.encode.key.enabled", "true"),
                ("sdk.schema.encode.payload.enabled", "true"),
            ]
        );
        let validated = culvert_plugins::spec::validate(params, &Settings::new()).unwrap();
        assert_eq!(validated["field"], ".Payload.After");
        configure(&[]).unwrap();
        configure(&[("field", ".Payload.Before")]).unwrap();
        configure(&[("field", ".Key")]).unwrap();
        for (bad, why) in [
            (".Payload.Something", "unexpected field \"Something\""),
            ("Payload", "invalid reference"),
        ] {
            match configure(&[("field", bad)]) {
                Ok(_) => panic!("{bad} accepted"),
                Err(e) => {
                    let e = e.to_string();
                    assert!(e.contains("\"field\"") && e.contains(why), "{bad}: {e}");
                }
            }
        }
        match configure(&[("sdk.schema.decode.key.enabled", "maybe")]) {
            Ok(_) => panic!("a non-boolean accepted"),
            Err(e) => assert!(e.to_string().contains("sdk.schema.decode.key.enabled")),
        }
    }
}
