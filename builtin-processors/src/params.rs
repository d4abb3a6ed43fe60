//! Parameters and settings the built-in processors share: the `sdk.schema.*` parameters
//! Conduit's processor SDK adds, the `field` parameter in the forms several processors
//! give it, and reading settings at configure time (the parameters' validations checked
//! again, for callers that skip them, with errors naming the setting).

use crate::reference::Reference;
use culvert_plugins::spec::{InvalidSettings, Parameter, ParameterType, SettingError, Validation};
use culvert_plugins::{PluginError, Settings};

/// The default `field` of the unwrap processors.
pub(crate) const DEFAULT_FIELD: &str = ".Payload.After";

/// The pattern the `field` of `unwrap.debezium` and `unwrap.kafkaconnect` must match.
pub(crate) const PAYLOAD_PATTERN: &str = "^.Payload";

/// The pattern a `field` under `.Key` or `.Payload` must match (Conduit's validation).
pub(crate) const KEY_OR_PAYLOAD_PATTERN: &str = r"^\.(Payload|Key).*";

/// The parameters Conduit's processor SDK adds to every processor (decoding and encoding
/// with a schema registry), with the plugin's default.
pub(crate) fn schema_parameters(default: &'static str) -> Vec<Parameter> {
    let param = |name, description| {
        Parameter::new(name, ParameterType::Bool, description).default_value(default)
    };
    vec![
        param(
            "sdk.schema.decode.key.enabled",
            "Whether to decode the record key using its corresponding schema from the schema registry.",
        ),
        param(
            "sdk.schema.decode.payload.enabled",
            "Whether to decode the record payload using its corresponding schema from the schema registry.",
        ),
        param(
            "sdk.schema.encode.key.enabled",
            "Whether to encode the record key using its corresponding schema from the schema registry.",
        ),
        param(
            "sdk.schema.encode.payload.enabled",
            "Whether to encode the record payload using its corresponding schema from the schema registry.",
        ),
    ]
}

/// A processor's own parameters followed by the `sdk.schema.*` ones with `schema_default`.
pub(crate) fn with_schema_parameters(
    mut parameters: Vec<Parameter>,
    schema_default: &'static str,
) -> Vec<Parameter> {
    parameters.extend(schema_parameters(schema_default));
    parameters
}

/// The `field` parameter: a string, described.
fn field(description: &'static str) -> Parameter {
    Parameter::new("field", ParameterType::String, description)
}

/// A required `field` that must not be `.Position` (`base64.*`, `field.set`).
pub(crate) fn field_except_position(description: &'static str) -> Parameter {
    field(description)
        .validate(Validation::Required)
        .validate(Validation::Exclusion(vec![".Position".to_owned()]))
}

/// A required `field` under `.Key` or `.Payload` (`field.convert`).
pub(crate) fn key_or_payload_field(description: &'static str) -> Parameter {
    field(description)
        .validate(Validation::Required)
        .validate(Validation::Regex(KEY_OR_PAYLOAD_PATTERN.to_owned()))
}

/// The `field` of `json.decode` and `json.encode`: under `.Key` or `.Payload`, not
/// `.Payload` itself.
pub(crate) fn json_field(description: &'static str) -> Parameter {
    key_or_payload_field(description).validate(Validation::Exclusion(vec![".Payload".to_owned()]))
}

/// The `field` of the unwrap processors: where the wrapped record is, by default
/// [`DEFAULT_FIELD`].
pub(crate) fn wrapped_field(description: &'static str) -> Parameter {
    field(description).default_value(DEFAULT_FIELD)
}

/// The `field` of `unwrap.debezium` and `unwrap.kafkaconnect`: as [`wrapped_field`], and
/// in the payload.
pub(crate) fn payload_field(description: &'static str) -> Parameter {
    wrapped_field(description).validate(Validation::Regex(PAYLOAD_PATTERN.to_owned()))
}

/// A setting's value, empty when it is not set.
pub(crate) fn setting<'s>(settings: &'s Settings, key: &str) -> &'s str {
    settings.get(key).map(String::as_str).unwrap_or("")
}

/// A setting's value, `default` when it is not set or empty.
pub(crate) fn setting_or<'s>(settings: &'s Settings, key: &str, default: &'s str) -> &'s str {
    match setting(settings, key) {
        "" => default,
        value => value,
    }
}

/// The error of a setting that is wrong.
pub(crate) fn invalid(key: &str, problem: impl std::fmt::Display) -> PluginError {
    PluginError::InvalidSettings(InvalidSettings(vec![SettingError {
        key: key.to_owned(),
        problem: problem.to_string(),
    }]))
}

/// Conduit's comma-separated list settings: items trimmed, empty ones skipped.
pub(crate) fn list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// A field reference given in the setting `key`.
pub(crate) fn reference(key: &str, text: &str) -> Result<Reference, PluginError> {
    Reference::parse(text).map_err(|e| invalid(key, e))
}

/// The `field` setting's text, which is required.
pub(crate) fn required_field(settings: &Settings) -> Result<&str, PluginError> {
    match setting(settings, "field") {
        "" => Err(invalid("field", "required parameter is not provided")),
        field => Ok(field),
    }
}

/// Whether a `field` setting names a field under `.Key` or `.Payload`.
pub(crate) fn under_key_or_payload(field: &str) -> bool {
    field.starts_with(".Payload") || field.starts_with(".Key")
}

/// The `field` setting of [`field_except_position`]. `action` names what the processor
/// does, for the error (`decoding`).
pub(crate) fn field_except_position_setting(
    settings: &Settings,
    action: &str,
) -> Result<Reference, PluginError> {
    let field = required_field(settings)?;
    if field == ".Position" {
        return Err(invalid(
            "field",
            format!("{action} \".Position\" is not allowed"),
        ));
    }
    reference("field", field)
}

/// The `field` setting of [`json_field`].
pub(crate) fn json_field_setting(settings: &Settings) -> Result<Reference, PluginError> {
    let field = required_field(settings)?;
    if !under_key_or_payload(field) {
        return Err(invalid(
            "field",
            format!("{field:?} is not a field under .Key or .Payload"),
        ));
    }
    if field == ".Payload" {
        return Err(invalid(
            "field",
            "\".Payload\" cannot be used, name .Payload.Before or .Payload.After",
        ));
    }
    reference("field", field)
}

/// The `field` setting of [`wrapped_field`].
pub(crate) fn wrapped_field_setting(settings: &Settings) -> Result<Reference, PluginError> {
    reference("field", setting_or(settings, "field", DEFAULT_FIELD))
}

/// The `field` setting of [`payload_field`]: it must match [`PAYLOAD_PATTERN`].
pub(crate) fn payload_field_setting(settings: &Settings) -> Result<Reference, PluginError> {
    let field = setting_or(settings, "field", DEFAULT_FIELD);
    // The pattern's `.` matches any character, as in Conduit.
    let mut chars = field.chars();
    if chars.next().is_none() || !chars.as_str().starts_with("Payload") {
        return Err(invalid(
            "field",
            format!("{field:?} must match {PAYLOAD_PATTERN:?}"),
        ));
    }
    reference("field", field)
}
