//! `field.rename`: give fields new names.

use crate::params::{invalid, list, reference, setting, with_schema_parameters};
use crate::per_record::{PerRecord, RecordProcessor};
use crate::reference::Reference;
use crate::{AUTHOR, VERSION};
use culvert_domain::Record;
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{PluginError, Settings};

/// `field.rename`: give fields new names.
pub struct FieldRename {
    spec: ProcessorSpecification,
}

impl FieldRename {
    /// The plugin.
    pub fn new() -> Self {
        let parameters = with_schema_parameters(
            vec![Parameter::new(
                "mapping",
                ParameterType::String,
                "A comma-separated list of `field:newName` pairs, e.g. `.Metadata.key:id,.Payload.After.foo:bar`.",
            )
            .validate(Validation::Required)],
            "true",
        );
        Self {
            spec: ProcessorSpecification {
                name: "field.rename",
                summary: "Rename a group of fields.",
                description: "Renames fields to new names within the same object. Top-level \
                              fields (`.Operation`, `.Position`, `.Key`, `.Metadata`, \
                              `.Payload.Before`, `.Payload.After`) cannot be renamed. Works on \
                              structured data.",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for FieldRename {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for FieldRename {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        const TOP_LEVEL: [&str; 7] = [
            ".Metadata",
            ".Payload",
            ".Payload.Before",
            ".Payload.After",
            ".Position",
            ".Key",
            ".Operation",
        ];
        let mut mapping = Vec::new();
        for pair in list(setting(settings, "mapping")) {
            let Some((field, name)) = pair.split_once(':').filter(|(_, n)| !n.contains(':')) else {
                return Err(invalid(
                    "mapping",
                    "wrong format, should be a comma separated list of keys and values, \
                     ex: .Metadata.key:id,.Payload.After.foo:bar",
                ));
            };
            let (field, name) = (field.trim(), name.trim());
            if TOP_LEVEL.contains(&field) {
                return Err(invalid(
                    "mapping",
                    format!("cannot rename one of the top-level fields {field:?}"),
                ));
            }
            if name.is_empty() {
                return Err(invalid(
                    "mapping",
                    format!("cannot rename the key {field:?} to an empty string"),
                ));
            }
            let field = reference("mapping", field)?;
            mapping.push((field, name.to_owned()));
        }
        if mapping.is_empty() {
            return Err(invalid("mapping", "no field to rename"));
        }
        Ok(Box::new(PerRecord(RenameProcessor { mapping })))
    }
}

struct RenameProcessor {
    mapping: Vec<(Reference, String)>,
}

impl RecordProcessor for RenameProcessor {
    fn process_record(&self, record: &mut Record) -> Result<(), String> {
        for (field, name) in &self.mapping {
            field.rename(record, name).map_err(|e| e.0)?;
        }
        Ok(())
    }
}
