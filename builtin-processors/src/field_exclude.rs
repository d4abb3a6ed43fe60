//! `field.exclude`: remove fields from the record.

use crate::params::{invalid, list, reference, setting, with_schema_parameters};
use crate::per_record::{PerRecord, RecordProcessor};
use crate::reference::Reference;
use crate::{AUTHOR, VERSION};
use culvert_domain::Record;
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{PluginError, Settings};

/// `field.exclude`: remove fields.
pub struct FieldExclude {
    spec: ProcessorSpecification,
}

impl FieldExclude {
    /// The plugin.
    pub fn new() -> Self {
        let parameters = with_schema_parameters(
            vec![Parameter::new(
                "fields",
                ParameterType::String,
                "A comma-separated list of fields to remove (references such as `.Metadata.x`); `.Position` and `.Operation` cannot be excluded.",
            )
            .validate(Validation::Required)],
            "true",
        );
        Self {
            spec: ProcessorSpecification {
                name: "field.exclude",
                summary: "Remove a subset of fields from the record.",
                description: "Removes the listed fields, leaving the others untouched; a field \
                              holding nested data is removed with all of it. `.Position` and \
                              `.Operation` cannot be excluded. Works on structured data.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for FieldExclude {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for FieldExclude {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let mut fields = Vec::new();
        for field in list(setting(settings, "fields")) {
            if field == ".Position" || field == ".Operation" {
                return Err(invalid(
                    "fields",
                    "it is not allowed to exclude the fields \".Operation\" and \".Position\"",
                ));
            }
            fields.push(reference("fields", field)?);
        }
        if fields.is_empty() {
            return Err(invalid("fields", "no field to exclude"));
        }
        Ok(Box::new(PerRecord(ExcludeProcessor { fields })))
    }
}

struct ExcludeProcessor {
    fields: Vec<Reference>,
}

impl RecordProcessor for ExcludeProcessor {
    fn process_record(&self, record: &mut Record) -> Result<(), String> {
        for field in &self.fields {
            field.delete(record).map_err(|e| e.0)?;
        }
        Ok(())
    }
}
