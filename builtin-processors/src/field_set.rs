//! `field.set`: set a field to the output of a Go template evaluated with the record.

use crate::reference::Reference;
use crate::{invalid, schema_parameters, setting, AUTHOR, VERSION};
use culvert_domain::Record;
use culvert_plugins::processor::{Outcome, Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{PluginError, Settings};
use culvert_template::Template;

/// `field.set`: set a field to a Go template's output.
pub struct FieldSet {
    spec: ProcessorSpecification,
}

impl FieldSet {
    /// The plugin.
    pub fn new() -> Self {
        let mut parameters = vec![
            Parameter::new(
                "field",
                ParameterType::String,
                "The field to set (a reference such as `.Payload.After.name`); `.Position` cannot be set.",
            )
            .validate(Validation::Required)
            .validate(Validation::Exclusion(vec![".Position".to_owned()])),
            Parameter::new(
                "value",
                ParameterType::String,
                "A Go template evaluated with the record; its output is stored in `field` (e.g. `{{ .Payload.After.id }}`).",
            )
            .validate(Validation::Required),
        ];
        parameters.extend(schema_parameters("true"));
        Self {
            spec: ProcessorSpecification {
                name: "field.set",
                summary: "Set the value of a certain field.",
                description: "Sets a field to the output of a Go template evaluated with the \
                              record, creating the field if it does not exist. `.Position` \
                              cannot be set. Works on structured data.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for FieldSet {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for FieldSet {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let field =
            Reference::parse(setting(settings, "field")).map_err(|e| invalid("field", e))?;
        let value = Template::parse(setting(settings, "value")).map_err(|e| invalid("value", e))?;
        Ok(Box::new(SetProcessor { field, value }))
    }
}

struct SetProcessor {
    field: Reference,
    value: Template,
}

#[async_trait::async_trait]
impl Processor for SetProcessor {
    async fn process(
        &mut self,
        records: &mut [Record],
        outcomes: &mut [Outcome],
    ) -> Result<(), PluginError> {
        for (record, outcome) in records.iter_mut().zip(outcomes.iter_mut()) {
            let result = self
                .value
                .render(record)
                .map_err(|e| e.to_string())
                .and_then(|value| self.field.set(record, value).map_err(|e| e.0));
            if let Err(error) = result {
                *outcome = Outcome::Fail(error);
            }
        }
        Ok(())
    }
}
