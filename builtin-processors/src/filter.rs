//! `filter`: drop every record it sees (used with a `condition`).

use crate::params::schema_parameters;
use crate::{AUTHOR, VERSION};
use culvert_domain::Record;
use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::{PluginError, Settings};

/// `filter`: drop every record it sees (used with a condition).
pub struct Filter {
    spec: ProcessorSpecification,
}

impl Filter {
    /// The plugin.
    pub fn new() -> Self {
        Self {
            spec: ProcessorSpecification {
                name: "filter",
                summary: "Acknowledges all records that get passed to the filter.",
                description: "Drops (acknowledges without passing on) every record it \
                              receives, so with a condition it filters out the records the \
                              condition is true for. Without a condition every record is \
                              dropped.",
                version: VERSION,
                author: AUTHOR,
                parameters: schema_parameters("false"),
                standalone: false,
            },
        }
    }
}

impl Default for Filter {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for Filter {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, _settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        Ok(Box::new(FilterProcessor))
    }
}

struct FilterProcessor;

#[async_trait::async_trait]
impl Processor for FilterProcessor {
    async fn process(
        &mut self,
        _records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        outcomes.fill(Outcome::Drop);
        Ok(())
    }
}
