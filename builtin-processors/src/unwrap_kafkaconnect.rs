//! `unwrap.kafkaconnect`: replace a record's payload with the Kafka Connect record it
//! carries.
//!
//! The Kafka Connect record (`{"schema": ..., "payload": {...}}`) is read from `field`
//! (default `.Payload.After`, which must point into the payload); raw data and strings are
//! parsed as JSON, structured data is used as it is. Its `payload` object, which must be
//! there, becomes the record's `.Payload.After` (`.Payload.Before` is cleared) and the
//! operation becomes `create`. The key is unwrapped the same way: if it (structured, or raw
//! JSON) has a `payload` field, that field becomes the key (an object as structured data,
//! anything else as raw text). Position and metadata are kept.

use crate::params::{payload_field, payload_field_setting, with_schema_parameters};
use crate::reference::Reference;
use crate::wrapped::{unwrap_key, wrapped_object, Unwrap};
use crate::{AUTHOR, VERSION};
use culvert_domain::{Change, Data, Operation, Record};
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::{PluginError, Settings};
use serde_json::Value;

/// `unwrap.kafkaconnect`: replace the payload with the Kafka Connect record's payload.
pub struct UnwrapKafkaConnect {
    spec: ProcessorSpecification,
}

impl UnwrapKafkaConnect {
    /// The plugin.
    pub fn new() -> Self {
        let parameters = with_schema_parameters(
            vec![payload_field(
                "Where the Kafka Connect record is (a reference into the payload, such as `.Payload.After` or `.Payload.After.record`).",
            )],
            "true",
        );
        Self {
            spec: ProcessorSpecification {
                name: "unwrap.kafkaconnect",
                summary: "Turn a Kafka Connect message held in a field into the record itself.",
                description: "Reads the Kafka Connect record (schema and payload) stored in \
                              `field`, as JSON text or structured data, and makes its payload \
                              the record's new `.Payload.After`, with operation `create`. A key \
                              in Kafka Connect form is unwrapped to its payload too. Position \
                              and metadata stay. Useful when Conduit sits between a Debezium \
                              source and a Debezium destination.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for UnwrapKafkaConnect {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for UnwrapKafkaConnect {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let field = payload_field_setting(settings)?;
        Ok(Unwrap::processor(field, unwrap))
    }
}

fn unwrap(field: &Reference, record: &Record) -> Result<Record, String> {
    let (wrapped, _) = wrapped_object(field, record, " (only structured data is supported)")?;
    let Some(Value::Object(payload)) = wrapped.get("payload") else {
        return Err("referenced record field doesn't contain a payload field".to_owned());
    };
    Ok(Record {
        position: record.position.clone(),
        operation: Operation::Create,
        metadata: record.metadata.clone(),
        key: unwrap_key(&record.key),
        payload: Change {
            before: None,
            after: Some(Data::Structured(payload.clone().into())),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use culvert_domain::Position;
    use culvert_plugins::processor::Outcome;
    use serde_json::{json, Map};

    fn run(pairs: &[(&str, &str)], record: Record) -> (Record, Outcome) {
        process(&UnwrapKafkaConnect::new(), pairs, record)
    }

    /// Conduit's example (`kafka_connect_examples_test.go`) and the cases of its
    /// `kafka_connect_test.go`: (name, settings, record in, record out).
    #[test]
    fn conduits_examples() {
        // A record as those of Conduit's tests.
        let record = |operation, key, after| Record {
            position: Position(b"test position".to_vec()),
            operation,
            metadata: meta(&[("metadata-key", "metadata-value")]),
            key,
            ..payload(None, after)
        };
        let cases: [Case; 3] = [
            (
                "example: raw Kafka Connect record, structured key",
                &[],
                record(
                    Operation::Create,
                    structured(json!({"payload": {"id": 27}, "schema": {}})),
                    raw("{\n\"payload\": {\n  \"description\": \"test2\"\n},\n\"schema\": {}\n}"),
                ),
                record(
                    Operation::Create,
                    structured(json!({"id": 27})),
                    structured(json!({"description": "test2"})),
                ),
            ),
            (
                "structured payload",
                &[],
                Record {
                    payload: Change {
                        before: Some(Data::Structured(Map::new().into())),
                        after: structured(json!({
                            "payload": {"description": "test2", "id": 27},
                            "schema": {}
                        })),
                    },
                    key: structured(json!({"payload": {"id": 27}, "schema": {}})),
                    ..Record::default()
                },
                Record {
                    operation: Operation::Create,
                    payload: Change {
                        before: None,
                        after: structured(json!({"description": "test2", "id": 27})),
                    },
                    key: structured(json!({"id": 27})),
                    ..Record::default()
                },
            ),
            (
                "raw payload, snapshot becomes create, raw key kept",
                &[],
                record(
                    Operation::Snapshot,
                    raw("key"),
                    raw(r#"{
                            "payload": {
                                "description": "test2"
                            },
                            "schema": {}
                        }"#),
                ),
                record(
                    Operation::Create,
                    raw("key"),
                    structured(json!({"description": "test2"})),
                ),
            ),
        ];
        assert_kept_with(&UnwrapKafkaConnect::new(), cases);
    }

    #[test]
    fn other_fields_and_keys() {
        let record = Record {
            position: Position(b"p".to_vec()),
            operation: Operation::Delete,
            key: raw(r#"{"payload": 1234567, "schema": {"type": "int64"}}"#),
            payload: Change {
                before: raw("old"),
                after: structured(json!({
                    "wrapped": "{\"payload\": {\"id\": 1}}",
                    "other": 1
                })),
            },
            ..Record::default()
        };
        let (got, outcome) = run(&[("field", ".Payload.After.wrapped")], record);
        assert_eq!(outcome, Outcome::Keep);
        assert_eq!(got.operation, Operation::Create);
        assert_eq!(got.position.0, b"p");
        // Numbers parsed from JSON print as Go's float64 does.
        assert_eq!(got.key, raw("1.234567e+06"));
        assert_eq!(got.payload.before, None);
        assert_eq!(got.payload.after, structured(json!({"id": 1})));

        let record = payload(structured(json!({"payload": {"id": 2}})), None);
        let (got, outcome) = run(&[("field", ".Payload.Before")], record);
        assert_eq!(outcome, Outcome::Keep);
        assert_eq!(got.payload.after, structured(json!({"id": 2})));
        assert_eq!(got.key, None);
    }

    #[test]
    fn records_that_cannot_be_unwrapped_fail_unchanged() {
        let after = |data: Option<Data>| Record {
            position: Position(b"p".to_vec()),
            ..payload(None, data)
        };
        let cases = [
            (
                ".Payload.After",
                after(structured(json!({"schema": {}}))),
                "referenced record field doesn't contain a payload field",
            ),
            (
                ".Payload.After",
                after(structured(json!({"payload": "text"}))),
                "referenced record field doesn't contain a payload field",
            ),
            (
                ".Payload.After",
                after(raw("null")),
                "referenced record field doesn't contain a payload field",
            ),
            (
                ".Payload.After",
                after(raw("{oops")),
                "failed unmarshalling JSON from raw data: key must be a string",
            ),
            (
                ".Payload.After.x",
                after(structured(json!({"x": "1"}))),
                "failed unmarshalling JSON from string: cannot unmarshal a number",
            ),
            (
                ".Payload.After",
                after(None),
                "unexpected data type <nil> (only structured data is supported)",
            ),
            (
                ".Payload.After.x",
                after(structured(json!({"x": [1]}))),
                "unexpected data type []interface {} (only structured data is supported)",
            ),
            (
                ".Payload.After.x",
                after(raw("{}")),
                "failed resolving reference: .Payload.After does not contain structured data",
            ),
        ];
        assert_failed_containing(&UnwrapKafkaConnect::new(), cases);
    }

    #[test]
    fn settings() {
        let plugin = UnwrapKafkaConnect::new();
        assert_parameters(&plugin, &[("field", ".Payload.After")], "true");
        let validated = validated_settings(&plugin, &[]);
        assert_eq!(validated["field"], ".Payload.After");
        configure(&plugin, &[]).unwrap();
        configure(&plugin, &[("field", ".Payload.After.something")]).unwrap();
        assert_field_refused(
            &plugin,
            [
                (".Key", "must match"),
                (".Metadata.x", "must match"),
                (".Payload.Nope", "unexpected field \"Nope\""),
            ],
        );
        assert!(plugin
            .configure(&crate::testing::settings(&[("field", ".Key")]))
            .is_err());
    }
}
