//! `field.set`: set a field to the output of a Go template evaluated with the record.

use crate::params::{field_except_position, invalid, reference, setting, with_schema_parameters};
use crate::per_record::{PerRecord, RecordProcessor};
use crate::reference::Reference;
use crate::{AUTHOR, VERSION};
use culvert_domain::Record;
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
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
        let parameters = with_schema_parameters(
            vec![
                field_except_position(
                    "The field to set (a reference such as `.Payload.After.name`); `.Position` cannot be set.",
                ),
                Parameter::new(
                    "value",
                    ParameterType::String,
                    "A Go template evaluated with the record; its output is stored in `field` (e.g. `{{ .Payload.After.id }}`).",
                )
                .validate(Validation::Required),
            ],
            "true",
        );
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
        let field = reference("field", setting(settings, "field"))?;
        let value = Template::parse(setting(settings, "value")).map_err(|e| invalid("value", e))?;
        Ok(Box::new(PerRecord(SetProcessor { field, value })))
    }
}

struct SetProcessor {
    field: Reference,
    value: Template,
}

impl RecordProcessor for SetProcessor {
    fn process_record(&self, record: &mut Record) -> Result<(), String> {
        let value = self.value.render(record).map_err(|e| e.to_string())?;
        self.field.set(record, value).map_err(|e| e.0)
    }
}
