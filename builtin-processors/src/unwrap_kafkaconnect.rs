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

use crate::reference::Reference;
use crate::unwrap_debezium::{
    payload_field, unwrap_key, wrapped_object, DEFAULT_FIELD, PAYLOAD_PATTERN,
};
use crate::{schema_parameters, AUTHOR, VERSION};
use culvert_domain::{Change, Data, Operation, Record};
use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{PluginError, Settings};
use serde_json::Value;

/// `unwrap.kafkaconnect`: replace the payload with the Kafka Connect record's payload.
pub struct UnwrapKafkaConnect {
    spec: ProcessorSpecification,
}

impl UnwrapKafkaConnect {
    /// The plugin.
    pub fn new() -> Self {
        let mut parameters = vec![Parameter::new(
            "field",
            ParameterType::String,
            "Where the Kafka Connect record is (a reference into the payload, such as `.Payload.After` or `.Payload.After.record`).",
        )
        .default_value(DEFAULT_FIELD)
        .validate(Validation::Regex(PAYLOAD_PATTERN.to_owned()))];
        parameters.extend(schema_parameters("true"));
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
        let field = payload_field(settings)?;
        Ok(Box::new(KafkaConnectProcessor { field }))
    }
}

struct KafkaConnectProcessor {
    field: Reference,
}

#[async_trait::async_trait]
impl Processor for KafkaConnectProcessor {
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
    let (wrapped, _) = wrapped_object(value, " (only structured data is supported)")?;
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
            after: Some(Data::Structured(payload.clone())),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_domain::Position;
    use serde_json::{json, Map};
    use std::collections::BTreeMap;

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
        let plugin = UnwrapKafkaConnect::new();
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

    /// A named case: settings, the record in and the record out.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        Record,
        Record,
    );

    /// Conduit's example (`kafka_connect_examples_test.go`) and the cases of its
    /// `kafka_connect_test.go`: (name, settings, record in, record out).
    #[test]
    fn conduits_examples() {
        let cases: [Case; 3] = [
            (
                "example: raw Kafka Connect record, structured key",
                &[],
                Record {
                    position: Position(b"test position".to_vec()),
                    operation: Operation::Create,
                    metadata: meta(&[("metadata-key", "metadata-value")]),
                    key: structured(json!({"payload": {"id": 27}, "schema": {}})),
                    payload: Change {
                        before: None,
                        after: raw("{\n\"payload\": {\n  \"description\": \"test2\"\n},\n\"schema\": {}\n}"),
                    },
                },
                Record {
                    position: Position(b"test position".to_vec()),
                    operation: Operation::Create,
                    metadata: meta(&[("metadata-key", "metadata-value")]),
                    key: structured(json!({"id": 27})),
                    payload: Change {
                        before: None,
                        after: structured(json!({"description": "test2"})),
                    },
                },
            ),
            (
                "structured payload",
                &[],
                Record {
                    payload: Change {
                        before: Some(Data::Structured(Map::new())),
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
                Record {
                    position: Position(b"test position".to_vec()),
                    operation: Operation::Snapshot,
                    metadata: meta(&[("metadata-key", "metadata-value")]),
                    key: raw("key"),
                    payload: Change {
                        before: None,
                        after: raw(r#"{
                            "payload": {
                                "description": "test2"
                            },
                            "schema": {}
                        }"#),
                    },
                },
                Record {
                    position: Position(b"test position".to_vec()),
                    operation: Operation::Create,
                    metadata: meta(&[("metadata-key", "metadata-value")]),
                    key: raw("key"),
                    payload: Change {
                        before: None,
                        after: structured(json!({"description": "test2"})),
                    },
                },
            ),
        ];
        for (name, settings, input, want) in cases {
            let (got, outcome) = run(settings, input);
            assert_eq!(outcome, Outcome::Keep, "{name}");
            assert_eq!(got, want, "{name}");
        }
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

        let record = Record {
            payload: Change {
                before: structured(json!({"payload": {"id": 2}})),
                after: None,
            },
            ..Record::default()
        };
        let (got, outcome) = run(&[("field", ".Payload.Before")], record);
        assert_eq!(outcome, Outcome::Keep);
        assert_eq!(got.payload.after, structured(json!({"id": 2})));
        assert_eq!(got.key, None);
    }

    #[test]
    fn records_that_cannot_be_unwrapped_fail_unchanged() {
        let after = |data: Option<Data>| Record {
            position: Position(b"p".to_vec()),
            payload: Change {
                before: None,
                after: data,
            },
            ..Record::default()
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
        for (field, input, want) in cases {
            let (got, outcome) = run(&[("field", field)], input.clone());
            match outcome {
                Outcome::Fail(error) => assert!(error.contains(want), "{field}: {error}"),
                other => panic!("{field} {input:?}: {other:?}"),
            }
            assert_eq!(got, input, "a failed record is left as it was");
        }
    }

    #[test]
    fn settings() {
        let plugin = UnwrapKafkaConnect::new();
        let params = &plugin.specification().parameters;
        assert_eq!(params.len(), 5);
        assert_eq!(params[0].name, "field");
        assert_eq!(params[0].default, ".Payload.After");
        assert!(params[1..]
            .iter()
            .all(|p| p.name.starts_with("sdk.schema.") && p.default == "true"));
        let validated = culvert_plugins::spec::validate(params, &Settings::new()).unwrap();
        assert_eq!(validated["field"], ".Payload.After");
        configure(&[]).unwrap();
        configure(&[("field", ".Payload.After.something")]).unwrap();
        for (bad, why) in [
            (".Key", "must match"),
            (".Metadata.x", "must match"),
            (".Payload.Nope", "unexpected field \"Nope\""),
        ] {
            match configure(&[("field", bad)]) {
                Ok(_) => panic!("{bad} accepted"),
                Err(e) => {
                    let e = e.to_string();
                    assert!(e.contains("\"field\"") && e.contains(why), "{bad}: {e}");
                }
            }
        }
        assert!(plugin.configure(&meta(&[("field", ".Key")])).is_err());
    }
}
