//! `split`: a record whose field holds an array goes on as one record per element, the
//! field holding that element and the metadata key `split.index` its index.

use crate::params::{
    invalid, key_or_payload_field, reference, required_field, under_key_or_payload,
    with_schema_parameters,
};
use crate::reference::{FieldValue, Reference};
use crate::{AUTHOR, VERSION};
use culvert_domain::Record;
use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::{PluginError, Settings};
use serde_json::Value;

/// The metadata key holding an element's index.
pub const INDEX_KEY: &str = "split.index";

/// `split`: one record per element of an array field.
pub struct Split {
    spec: ProcessorSpecification,
}

impl Split {
    /// The plugin.
    pub fn new() -> Self {
        let parameters = with_schema_parameters(
            vec![key_or_payload_field(
                "The array field to split on (a reference under `.Key` or `.Payload`, e.g. \
                 `.Payload.After.items`); it must hold structured data.",
            )],
            "true",
        );
        Self {
            spec: ProcessorSpecification {
                name: "split",
                summary: "Make one record of each element of an array field.",
                description: "For a record whose `field` holds an array, one record per \
                              element goes on instead, in order: a copy of the record with \
                              `field` holding that element and the metadata key \
                              `split.index` its index. An empty array leaves no record \
                              (the original is acked). Works on structured data: decode raw \
                              JSON first with `json.decode`. The records share the \
                              original's position: it counts as handled once every one is.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for Split {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for Split {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let field = required_field(settings)?;
        if !under_key_or_payload(field) {
            return Err(invalid(
                "field",
                format!("{field:?} is not under .Key or .Payload"),
            ));
        }
        Ok(Box::new(Splitter {
            field: reference("field", field)?,
        }))
    }
}

struct Splitter {
    field: Reference,
}

impl Splitter {
    /// The records `record` splits into, or why it cannot be split.
    fn split(&self, record: &Record) -> Result<Vec<Record>, String> {
        let elements = match self.field.get(record).map_err(|e| e.0)? {
            FieldValue::Json(Value::Array(elements)) => elements,
            _ => return Err(format!("field {:?} is not a slice", self.field.as_str())),
        };
        elements
            .into_iter()
            .enumerate()
            .map(|(index, element)| {
                let mut copy = record.clone();
                self.field
                    .set_value(&mut copy, FieldValue::Json(element))
                    .map_err(|e| format!("failed to set the item: {e}"))?;
                copy.metadata
                    .insert(INDEX_KEY.to_owned(), index.to_string());
                Ok(copy)
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl Processor for Splitter {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        for (record, outcome) in records.iter().zip(outcomes.iter_mut()) {
            *outcome = match self.split(record) {
                Ok(copies) => Outcome::Split(copies),
                Err(error) => Outcome::Fail(error),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{configure, meta, refusal, run, structured};
    use culvert_domain::{Change, Operation};
    use serde_json::json;

    fn users(after: Value, metadata: &[(&str, &str)]) -> Record {
        Record {
            operation: Operation::Update,
            metadata: meta(metadata),
            key: structured(json!({"id": 123})),
            payload: Change {
                before: None,
                after: structured(after),
            },
            ..Record::default()
        }
    }

    #[test]
    fn conduits_example_splits_an_array_of_users() {
        let mut processor = configure(&Split::new(), &[("field", ".Payload.After.users")]).unwrap();
        let mut records = vec![users(
            json!({"users": [
                {"age": 30, "name": "Alice"},
                {"age": 25, "name": "Bob"},
                {"age": 35, "name": "Charlie"}
            ]}),
            &[],
        )];
        let outcomes = run(processor.as_mut(), &mut records);
        assert_eq!(
            outcomes,
            vec![Outcome::Split(vec![
                users(
                    json!({"users": {"age": 30, "name": "Alice"}}),
                    &[("split.index", "0")]
                ),
                users(
                    json!({"users": {"age": 25, "name": "Bob"}}),
                    &[("split.index", "1")]
                ),
                users(
                    json!({"users": {"age": 35, "name": "Charlie"}}),
                    &[("split.index", "2")]
                ),
            ])]
        );
    }

    #[test]
    fn an_empty_array_leaves_no_record_and_a_non_array_fails_alone() {
        let mut processor = configure(&Split::new(), &[("field", ".Payload.After.items")]).unwrap();
        let mut records = vec![
            users(json!({"items": []}), &[]),
            users(json!({"items": "not a list"}), &[]),
            users(json!({}), &[]),
            users(json!({"items": [1]}), &[]),
        ];
        let outcomes = run(processor.as_mut(), &mut records);
        assert_eq!(outcomes[0], Outcome::Split(vec![]));
        assert_eq!(
            outcomes[1],
            Outcome::Fail("field \".Payload.After.items\" is not a slice".into())
        );
        assert!(
            matches!(&outcomes[2], Outcome::Fail(_)),
            "a missing field is not a slice"
        );
        assert_eq!(
            outcomes[3],
            Outcome::Split(vec![users(json!({"items": 1}), &[("split.index", "0")])])
        );
    }

    #[test]
    fn the_key_can_be_split_too_and_the_field_must_be_under_key_or_payload() {
        let mut processor = configure(&Split::new(), &[("field", ".Key.ids")]).unwrap();
        let mut record = users(json!({}), &[]);
        record.key = structured(json!({"ids": [7, 8]}));
        let outcomes = run(processor.as_mut(), &mut [record]);
        let Outcome::Split(copies) = &outcomes[0] else {
            panic!("{outcomes:?}")
        };
        assert_eq!(copies.len(), 2);
        assert_eq!(copies[1].key, structured(json!({"ids": 8})));
        for field in [".Metadata.x", ".Position", ""] {
            let error = refusal(&Split::new(), &[("field", field)]);
            assert!(error.contains("field"), "{field:?}: {error}");
        }
    }
}
