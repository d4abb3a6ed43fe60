//! The plugin catalogues over the API: connector and processor specifications as `api.v1`
//! messages, and plugin references and settings checked before a connector or processor is
//! created or changed.

use crate::error::{invalid, reason, status_with_info};
use crate::pb::api::v1 as pb;
use crate::pb::config::v1 as config;
use culvert_domain::ConnectorType;
use culvert_plugins::processor::ProcessorSpecification;
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{Registry, Settings, Side, Specification, ValidateError};
use culvert_processors::ProcessorRegistry;
use std::collections::HashMap;
use tonic::{Code, Status};

/// The name a plugin is listed under: `builtin:NAME@VERSION` or `standalone:NAME@VERSION`,
/// as Conduit lists them.
pub(crate) fn full_name(spec: &Specification) -> String {
    spec.full_name()
}

fn parameter_type(ty: ParameterType) -> config::parameter::Type {
    use config::parameter::Type;
    match ty {
        ParameterType::String => Type::String,
        ParameterType::Int => Type::Int,
        ParameterType::Float => Type::Float,
        ParameterType::Bool => Type::Bool,
        ParameterType::File => Type::File,
        ParameterType::Duration => Type::Duration,
    }
}

fn validation(v: &Validation) -> config::Validation {
    use config::validation::Type;
    let (ty, value) = match v {
        Validation::Required => (Type::Required, String::new()),
        Validation::GreaterThan(n) => (Type::GreaterThan, n.to_string()),
        Validation::LessThan(n) => (Type::LessThan, n.to_string()),
        Validation::Inclusion(list) => (Type::Inclusion, list.join(",")),
        Validation::Exclusion(list) => (Type::Exclusion, list.join(",")),
        Validation::Regex(re) => (Type::Regex, re.clone()),
    };
    config::Validation {
        r#type: ty as i32,
        value,
    }
}

fn parameters(params: Option<&Vec<Parameter>>) -> HashMap<String, config::Parameter> {
    params
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p.name.to_owned(),
                config::Parameter {
                    default: p.default.to_owned(),
                    description: p.description.to_owned(),
                    r#type: parameter_type(p.ty) as i32,
                    validations: p.validations.iter().map(validation).collect(),
                },
            )
        })
        .collect()
}

/// A plugin's specification as ListConnectorPlugins answers it.
pub(crate) fn connector_plugin(spec: &Specification) -> pb::ConnectorPluginSpecifications {
    pb::ConnectorPluginSpecifications {
        name: full_name(spec),
        summary: spec.summary.to_owned(),
        description: spec.description.to_owned(),
        version: spec.version.to_owned(),
        author: spec.author.to_owned(),
        destination_params: parameters(spec.destination.as_ref()),
        source_params: parameters(spec.source.as_ref()),
    }
}

/// A processor plugin's specification as ListProcessorPlugins answers it.
pub(crate) fn processor_plugin(spec: &ProcessorSpecification) -> pb::ProcessorPluginSpecifications {
    pb::ProcessorPluginSpecifications {
        name: processor_full_name(spec),
        summary: spec.summary.to_owned(),
        description: spec.description.to_owned(),
        version: spec.version.to_owned(),
        author: spec.author.to_owned(),
        parameters: parameters(Some(&spec.parameters)),
    }
}

/// The name a processor plugin is listed under: `builtin:NAME@VERSION` or
/// `standalone:NAME@VERSION`.
pub(crate) fn processor_full_name(spec: &ProcessorSpecification) -> String {
    spec.full_name()
}

/// Check that a processor plugin exists (as Conduit does when a processor is created or its
/// plugin changed; its settings and condition are checked when the pipeline starts, as in
/// Conduit). Unknown plugins are NOT_FOUND, malformed references INVALID_ARGUMENT.
pub(crate) fn check_processor(registry: &ProcessorRegistry, plugin: &str) -> Result<(), Status> {
    if plugin.is_empty() {
        return Err(invalid("plugin", "must not be empty"));
    }
    match registry.lookup(plugin) {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Err(status_with_info(
            Code::NotFound,
            format!("could not get processor: {e}"),
            reason::PROCESSOR_PLUGIN_NOT_FOUND,
            &[("field", "plugin")],
        )),
        Err(e) => Err(invalid("plugin", &e.to_string())),
    }
}

/// The same in the deprecated PluginService's shape.
pub(crate) fn legacy_plugin(spec: &Specification) -> pb::PluginSpecifications {
    use pb::plugin_specifications::parameter::{validation, Type, Validation as V};
    use pb::plugin_specifications::Parameter as P;
    let convert = |params: Option<&Vec<Parameter>>| {
        parameters(params)
            .into_iter()
            .map(|(name, p)| {
                let parameter = P {
                    description: p.description,
                    default: p.default,
                    // The two enums share their numbers.
                    r#type: Type::try_from(p.r#type).unwrap_or(Type::Unspecified) as i32,
                    validations: p
                        .validations
                        .into_iter()
                        .map(|v| V {
                            r#type: validation::Type::try_from(v.r#type)
                                .unwrap_or(validation::Type::Unspecified)
                                as i32,
                            value: v.value,
                        })
                        .collect(),
                };
                (name, parameter)
            })
            .collect()
    };
    pb::PluginSpecifications {
        name: full_name(spec),
        summary: spec.summary.to_owned(),
        description: spec.description.to_owned(),
        version: spec.version.to_owned(),
        author: spec.author.to_owned(),
        destination_params: convert(spec.destination.as_ref()),
        source_params: convert(spec.source.as_ref()),
    }
}

/// Check that `plugin` exists, has the connector's side, and accepts `settings`.
/// Unknown plugins are NOT_FOUND, malformed references and a missing side
/// INVALID_ARGUMENT, settings that fail the plugin's specification FAILED_PRECONDITION (as
/// Conduit answers a plugin's validation error); each message names the plugin or setting.
pub(crate) fn check(
    registry: &Registry,
    kind: ConnectorType,
    plugin: &str,
    settings: &Settings,
) -> Result<(), Status> {
    if plugin.is_empty() {
        return Err(invalid("plugin", "must not be empty"));
    }
    let side = match kind {
        ConnectorType::Source => Side::Source,
        ConnectorType::Destination => Side::Destination,
    };
    match registry.validate(plugin, side, settings) {
        Ok(_) => Ok(()),
        Err(ValidateError::Lookup(e)) if e.is_not_found() => Err(status_with_info(
            Code::NotFound,
            e.to_string(),
            reason::CONNECTOR_PLUGIN_NOT_FOUND,
            &[("field", "plugin")],
        )),
        Err(ValidateError::Lookup(e)) => Err(invalid("plugin", &e.to_string())),
        Err(ValidateError::Settings(e)) => {
            let first = e.0.first().map(|s| s.key.clone()).unwrap_or_default();
            let field = format!("config.settings.{first}");
            Err(status_with_info(
                Code::FailedPrecondition,
                without_secrets(
                    registry,
                    plugin,
                    settings,
                    format!("invalid settings for plugin {plugin:?}: {e}"),
                ),
                "connector.invalid_settings",
                &[("field", &field)],
            ))
        }
        Err(ValidateError::Plugin(e)) => Err(status_with_info(
            Code::FailedPrecondition,
            without_secrets(
                registry,
                plugin,
                settings,
                format!("invalid settings for plugin {plugin:?}: {e}"),
            ),
            "connector.invalid_settings",
            &[("field", "config.settings")],
        )),
    }
}

/// The shortest sensitive value [`without_secrets`] hides: a shorter one would mangle the
/// message wherever its characters occur.
const MIN_HIDDEN: usize = 4;

/// `message` with the value of every sensitive setting in `settings` replaced by `***`: the
/// specification's checks never repeat one, but a plugin's own check might.
fn without_secrets(
    registry: &Registry,
    plugin: &str,
    settings: &Settings,
    message: String,
) -> String {
    let mut secrets: Vec<&str> = settings
        .iter()
        .filter(|(key, value)| {
            let marked = crate::redact::connector_marked(registry, plugin, key)
                .unwrap_or(culvert_secrets::Marked::Unknown);
            value.len() >= MIN_HIDDEN
                && culvert_secrets::sensitive::is_sensitive(marked, key, value)
        })
        .map(|(_, value)| value.as_str())
        .collect();
    // Longest first, so a value that contains another is hidden whole.
    secrets.sort_by_key(|v| std::cmp::Reverse(v.len()));
    secrets
        .into_iter()
        .fold(message, |message, secret| message.replace(secret, "***"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_plugins::connector::{Destination, PluginError, Source};
    use std::sync::Arc;

    /// A built-in whose own check echoes every setting it is given.
    struct Echo(Specification);

    impl culvert_plugins::ConnectorPlugin for Echo {
        fn specification(&self) -> &Specification {
            &self.0
        }
        fn new_source(&self, settings: &Settings) -> Result<Box<dyn Source>, PluginError> {
            Err(PluginError::Other(format!("refused {settings:?}")))
        }
        fn new_destination(&self, _: &Settings) -> Result<Box<dyn Destination>, PluginError> {
            Err(PluginError::Other("no destination".into()))
        }
    }

    #[test]
    fn a_refusal_never_repeats_a_sensitive_value() {
        let mut registry = Registry::default();
        registry.add(Arc::new(Echo(Specification {
            name: "echo",
            summary: "",
            description: "",
            version: "v1",
            author: "",
            source: Some(vec![
                Parameter::new("pin", ParameterType::String, "a secret").sensitive(),
                Parameter::new("password", ParameterType::String, "a password"),
                Parameter::new("table", ParameterType::String, "a table"),
            ]),
            destination: None,
            standalone: false,
        })));
        let settings: Settings = [
            ("pin", "pin-5150"),
            ("password", "hunter2-pw"),
            ("table", "orders"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let status =
            check(&registry, ConnectorType::Source, "builtin:echo", &settings).unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        let message = status.message();
        assert!(!message.contains("pin-5150"), "{message}");
        assert!(!message.contains("hunter2-pw"), "{message}");
        assert!(message.contains("\"orders\""), "{message}");
        assert!(message.contains("\"pin\": \"***\""), "{message}");
    }
}
