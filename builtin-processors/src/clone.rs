//! `clone`: each record goes on as itself and `count` copies, told apart by the metadata
//! key `clone.index` (0 for the original, 1 to `count` for the copies).

use crate::params::{invalid, setting, with_schema_parameters};
use crate::{AUTHOR, VERSION};
use culvert_domain::Record;
use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{PluginError, Settings};

/// The metadata key holding a copy's index.
pub const INDEX_KEY: &str = "clone.index";

/// `clone`: copies of every record it sees.
pub struct CloneProcessor {
    spec: ProcessorSpecification,
}

impl CloneProcessor {
    /// The plugin.
    pub fn new() -> Self {
        let parameters = with_schema_parameters(
            vec![Parameter::new(
                "count",
                ParameterType::Int,
                "How many copies of each record to make besides the record itself.",
            )
            .validate(Validation::Required)
            .validate(Validation::GreaterThan(0.0))],
            "true",
        );
        Self {
            spec: ProcessorSpecification {
                name: "clone",
                summary: "Make copies of records.",
                description: "Every record goes on followed by `count` copies of it, all \
                              alike but for the metadata key `clone.index` (0 for the \
                              original, then 1 to `count`). Give the processor a \
                              `condition` to copy only some records. The copies share the \
                              original's position: it counts as handled once every copy is.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for CloneProcessor {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for CloneProcessor {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let count: usize = match setting(settings, "count").trim().parse() {
            Ok(0) => return Err(invalid("count", "must be greater than 0")),
            Ok(count) => count,
            Err(e) => return Err(invalid("count", format!("not a whole number: {e}"))),
        };
        Ok(Box::new(Cloner { count }))
    }
}

struct Cloner {
    count: usize,
}

#[async_trait::async_trait]
impl Processor for Cloner {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        for (record, outcome) in records.iter_mut().zip(outcomes.iter_mut()) {
            let original = std::mem::take(record);
            let copies = (0..=self.count)
                .map(|index| {
                    let mut copy = original.clone();
                    copy.metadata
                        .insert(INDEX_KEY.to_owned(), index.to_string());
                    copy
                })
                .collect();
            *outcome = Outcome::Split(copies);
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

    fn alice(metadata: &[(&str, &str)]) -> Record {
        Record {
            operation: Operation::Create,
            metadata: meta(metadata),
            key: structured(json!({"id": 123})),
            payload: Change {
                before: None,
                after: structured(json!({"age": 30, "name": "Alice"})),
            },
            ..Record::default()
        }
    }

    #[test]
    fn conduits_example_one_copy() {
        let mut processor = configure(&CloneProcessor::new(), &[("count", "1")]).unwrap();
        let mut records = vec![alice(&[("foo", "bar")])];
        let outcomes = run(processor.as_mut(), &mut records);
        assert_eq!(
            outcomes,
            vec![Outcome::Split(vec![
                alice(&[("clone.index", "0"), ("foo", "bar")]),
                alice(&[("clone.index", "1"), ("foo", "bar")]),
            ])]
        );
    }

    #[test]
    fn every_record_of_a_batch_is_copied() {
        let mut processor = configure(&CloneProcessor::new(), &[("count", "3")]).unwrap();
        let mut records = vec![alice(&[]), Record::default()];
        let outcomes = run(processor.as_mut(), &mut records);
        for outcome in outcomes {
            let Outcome::Split(copies) = outcome else {
                panic!("{outcome:?}")
            };
            let indexes: Vec<&str> = copies
                .iter()
                .map(|c| c.metadata[INDEX_KEY].as_str())
                .collect();
            assert_eq!(indexes, ["0", "1", "2", "3"]);
        }
    }

    #[test]
    fn count_must_be_a_positive_whole_number() {
        for (count, problem) in [
            ("0", "greater than 0"),
            ("-1", "greater than 0"),
            ("x", "count"),
            ("", "required"),
        ] {
            let error = refusal(&CloneProcessor::new(), &[("count", count)]);
            assert!(
                error.contains("count") && error.contains(problem),
                "{count:?}: {error}"
            );
        }
    }
}
