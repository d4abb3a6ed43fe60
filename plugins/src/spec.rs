//! Parameter specifications and the validation of settings against them, with
//! conduit-commons' semantics (`config.Config.Validate` / `ApplyDefaults`):
//!
//! * a setting must match a parameter by name, or a wildcard parameter (`format.options.*`,
//!   `collections.*.format.type`: `*` stands for one dot-free segment, a trailing `*` for the
//!   rest of the key); anything else is unrecognised;
//! * an empty value is valid for every type; otherwise `int`, `float`, `bool` and
//!   `duration` values must parse;
//! * validations (`required`, `greater-than`, `less-than`, `inclusion`, `exclusion`,
//!   `regex`) apply to non-empty values, and `required` also to empty ones;
//! * defaults fill settings that are missing or blank.
//!
//! Every problem is reported, each naming the setting, so a user fixes them all at once.

use culvert_domain::parse_bool;
use std::collections::BTreeMap;
use std::time::Duration;

/// The type of a parameter's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParameterType {
    /// Any text.
    String,
    /// A whole number.
    Int,
    /// A number.
    Float,
    /// `true` or `false` (Go's `strconv.ParseBool` spellings).
    Bool,
    /// A path to a file.
    File,
    /// A Go duration (`1s`, `1m30s`, `250ms`).
    Duration,
}

/// A rule a parameter's value must follow.
#[derive(Clone, Debug, PartialEq)]
pub enum Validation {
    /// The value must not be empty.
    Required,
    /// The value must be a number greater than this.
    GreaterThan(f64),
    /// The value must be a number less than this.
    LessThan(f64),
    /// The value must be one of these.
    Inclusion(Vec<String>),
    /// The value must not be one of these.
    Exclusion(Vec<String>),
    /// The value must match this regular expression.
    Regex(String),
}

/// One parameter a plugin accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct Parameter {
    /// The setting's key; may contain `*` wildcards.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// The value used when the setting is missing or blank (empty = none).
    pub default: &'static str,
    /// The value's type.
    pub ty: ParameterType,
    /// Rules for the value.
    pub validations: Vec<Validation>,
    /// The value is a secret: sealed at rest, never shown (see `culvert-secrets`; names
    /// like `password` are treated so whether marked or not).
    pub sensitive: bool,
}

impl Parameter {
    /// A parameter with no default and no validations.
    pub fn new(name: &'static str, ty: ParameterType, description: &'static str) -> Self {
        Self {
            name,
            description,
            default: "",
            ty,
            validations: vec![],
            sensitive: false,
        }
    }

    /// Marked as holding a secret.
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    /// With a default value.
    pub fn default_value(mut self, default: &'static str) -> Self {
        self.default = default;
        self
    }

    /// With one more validation.
    pub fn validate(mut self, validation: Validation) -> Self {
        self.validations.push(validation);
        self
    }
}

/// A setting that failed validation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("setting {key:?}: {problem}")]
pub struct SettingError {
    /// The setting's key.
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

/// All the problems found in a set of settings (never empty).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidSettings(pub Vec<SettingError>);

/// Settings with surrounding whitespace trimmed from keys and values.
pub fn sanitize(settings: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    settings
        .iter()
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Validate `settings` against `params` and return them with defaults applied.
pub fn validate(
    params: &[Parameter],
    settings: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, InvalidSettings> {
    let mut settings = sanitize(settings);
    apply_defaults(params, &mut settings);
    let mut errors = Vec::new();
    for key in settings.keys() {
        if !params.iter().any(|p| matches(key, p.name)) {
            errors.push(SettingError {
                key: key.clone(),
                problem: "unrecognized parameter".to_owned(),
            });
        }
    }
    for param in params {
        for key in keys_for(param.name, &settings) {
            let value = settings.get(&key).map(String::as_str).unwrap_or("");
            if let Err(problem) = check(param, value) {
                // A secret's value is never echoed back.
                let problem = if param.sensitive
                    || culvert_secrets::sensitive::is_sensitive(
                        culvert_secrets::Marked::NotMarked,
                        &key,
                        value,
                    ) {
                    problem.replace(&format!("{value:?}"), "the (sensitive) value")
                } else {
                    problem
                };
                errors.push(SettingError { key, problem });
            }
        }
    }
    if errors.is_empty() {
        Ok(settings)
    } else {
        errors.sort_by(|a, b| a.key.cmp(&b.key));
        Err(InvalidSettings(errors))
    }
}

fn apply_defaults(params: &[Parameter], settings: &mut BTreeMap<String, String>) {
    for param in params.iter().filter(|p| !p.default.is_empty()) {
        for key in keys_for(param.name, settings) {
            let entry = settings.entry(key).or_default();
            if entry.is_empty() {
                *entry = param.default.to_owned();
            }
        }
    }
}

/// The keys a parameter governs: itself if it has no wildcard; otherwise every key of
/// `settings` it matches, and, for a pattern whose last part is literal
/// (`collections.*.format.type`), that key under every matched prefix, so defaults and
/// `required` apply there too.
fn keys_for(pattern: &str, settings: &BTreeMap<String, String>) -> Vec<String> {
    if !pattern.contains('*') {
        return vec![pattern.to_owned()];
    }
    let (prefix_pattern, tail) = pattern.rsplit_once('*').expect("has a wildcard");
    let mut keys: Vec<String> = Vec::new();
    for key in settings.keys() {
        if matches(key, pattern) {
            keys.push(key.clone());
        } else if !tail.is_empty() {
            // `collections.users.format.options.id` implies `collections.users.format.type`.
            if let Some(prefix) = matched_prefix(key, &format!("{prefix_pattern}*")) {
                keys.push(format!("{prefix}{tail}"));
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// What `params` say about setting `key`: marked sensitive, or not (the parameter, or a
/// wildcard parameter that matches it, is not marked; so is an unrecognised key).
pub fn marked(params: &[Parameter], key: &str) -> culvert_secrets::Marked {
    if params.iter().any(|p| p.sensitive && matches(key, p.name)) {
        culvert_secrets::Marked::Sensitive
    } else {
        culvert_secrets::Marked::NotMarked
    }
}

/// Whether `key` matches `pattern` (`*` = one dot-free segment; a trailing `*` = the rest).
pub fn matches(key: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = key;
    for (i, part) in parts.iter().enumerate() {
        let Some(after) = rest.strip_prefix(part) else {
            return false;
        };
        rest = after;
        if i == parts.len() - 1 {
            return rest.is_empty();
        }
        let last_wildcard = i == parts.len() - 2 && parts[parts.len() - 1].is_empty();
        if last_wildcard {
            return !rest.is_empty();
        }
        // A middle wildcard: one non-empty segment.
        let end = rest.find('.').unwrap_or(rest.len());
        if end == 0 {
            return false;
        }
        rest = &rest[end..];
    }
    true
}

/// The part of `key` that a pattern ending in `*` matches up to and including the wildcard
/// segment (`collections.users` for `collections.*` and `collections.users.format.x`).
fn matched_prefix(key: &str, pattern: &str) -> Option<String> {
    let body = pattern.strip_suffix('*')?;
    let parts: Vec<&str> = body.split('*').collect();
    let mut consumed = 0;
    let mut rest = key;
    for part in &parts {
        rest = rest.strip_prefix(part)?;
        consumed += part.len();
        let end = rest.find('.').unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        consumed += end;
        rest = &rest[end..];
    }
    Some(key[..consumed].to_owned())
}

fn check(param: &Parameter, value: &str) -> Result<(), String> {
    let required = param.validations.contains(&Validation::Required);
    if value.is_empty() {
        return if required {
            Err("required parameter is not provided".to_owned())
        } else {
            Ok(())
        };
    }
    match param.ty {
        ParameterType::Int if value.parse::<i64>().is_err() => {
            return Err(format!("{value:?} is not an integer"));
        }
        ParameterType::Float if value.parse::<f64>().is_err() => {
            return Err(format!("{value:?} is not a number"));
        }
        ParameterType::Bool if parse_bool(value).is_none() => {
            return Err(format!("{value:?} is not a boolean"));
        }
        ParameterType::Duration if parse_duration(value).is_none() => {
            return Err(format!(
                "{value:?} is not a duration (like 500ms, 10s or 1m30s)"
            ));
        }
        _ => {}
    }
    for validation in &param.validations {
        match validation {
            Validation::Required => {}
            Validation::GreaterThan(min) => match value.parse::<f64>() {
                Ok(n) if n > *min => {}
                _ => return Err(format!("{value:?} must be greater than {min}")),
            },
            Validation::LessThan(max) => match value.parse::<f64>() {
                Ok(n) if n < *max => {}
                _ => return Err(format!("{value:?} must be less than {max}")),
            },
            Validation::Inclusion(allowed) => {
                if !allowed.iter().any(|a| a == value) {
                    return Err(format!("{value:?} must be one of {}", allowed.join(", ")));
                }
            }
            Validation::Exclusion(denied) => {
                if denied.iter().any(|d| d == value) {
                    return Err(format!(
                        "{value:?} must not be one of {}",
                        denied.join(", ")
                    ));
                }
            }
            Validation::Regex(pattern) => {
                let re = regex::Regex::new(pattern)
                    .map_err(|e| format!("the parameter's regex {pattern:?} is invalid: {e}"))?;
                if !re.is_match(value) {
                    return Err(format!("{value:?} must match {pattern:?}"));
                }
            }
        }
    }
    Ok(())
}

/// Go's `time.ParseDuration` for non-negative durations: a sequence of decimal numbers
/// with units `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`; `0` alone is zero.
pub fn parse_duration(value: &str) -> Option<Duration> {
    if value == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = value.strip_prefix('+').unwrap_or(value);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_end == 0 {
            return None;
        }
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_end] {
            "ns" => 1e0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * nanos_per_unit;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return None;
    }
    Some(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn params() -> Vec<Parameter> {
        vec![
            Parameter::new("rate", ParameterType::Float, "records per second"),
            Parameter::new("recordCount", ParameterType::Int, "how many")
                .validate(Validation::GreaterThan(-1.0)),
            Parameter::new("operations", ParameterType::String, "ops")
                .default_value("create")
                .validate(Validation::Required),
            Parameter::new("format.type", ParameterType::String, "format").validate(
                Validation::Inclusion(vec!["raw".into(), "structured".into()]),
            ),
            Parameter::new("format.options.*", ParameterType::String, "fields"),
            Parameter::new("collections.*.format.type", ParameterType::String, "format")
                .default_value("raw"),
            Parameter::new("collections.*.format.options.*", ParameterType::String, "f"),
            Parameter::new("burst.sleepTime", ParameterType::Duration, "sleep"),
            Parameter::new("enabled", ParameterType::Bool, "on"),
            Parameter::new("name", ParameterType::String, "n")
                .validate(Validation::Regex("^[a-z]+$".into()))
                .validate(Validation::Exclusion(vec!["admin".into()])),
        ]
    }

    #[test]
    fn valid_settings_get_their_defaults() {
        let out = validate(
            &params(),
            &settings(&[
                ("rate", " 10.5 "),
                ("format.type", "structured"),
                ("format.options.id", "int"),
                ("collections.users.format.options.name", "string"),
                ("burst.sleepTime", "1m30s"),
                ("enabled", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(out["rate"], "10.5");
        assert_eq!(out["operations"], "create");
        assert_eq!(out["collections.users.format.type"], "raw");
    }

    #[test]
    fn every_problem_is_reported_naming_its_setting() {
        let error = validate(
            &params(),
            &settings(&[
                ("rate", "fast"),
                ("recordCount", "-2"),
                ("format.type", "xml"),
                ("burst.sleepTime", "soon"),
                ("enabled", "yes"),
                ("name", "admin"),
                ("colour", "blue"),
                ("collections..format.type", "raw"),
            ]),
        )
        .unwrap_err();
        let keys: Vec<&str> = error.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "burst.sleepTime",
                "collections..format.type",
                "colour",
                "enabled",
                "format.type",
                "name",
                "rate",
                "recordCount"
            ]
        );
        let text = error.to_string();
        assert!(
            text.contains("setting \"rate\": \"fast\" is not a number"),
            "{text}"
        );
        assert!(
            text.contains("setting \"colour\": unrecognized parameter"),
            "{text}"
        );
        assert!(text.contains("must be one of raw, structured"), "{text}");
    }

    #[test]
    fn wildcards_match_like_conduits() {
        assert!(matches("format.options.id", "format.options.*"));
        assert!(matches("format.options.a.b", "format.options.*"));
        assert!(!matches("format.options.", "format.options.*"));
        assert!(matches(
            "collections.users.format.type",
            "collections.*.format.type"
        ));
        assert!(!matches(
            "collections.a.b.format.type",
            "collections.*.format.type"
        ));
        assert!(!matches(
            "collections..format.type",
            "collections.*.format.type"
        ));
        assert!(matches(
            "collections.u.format.options.id",
            "collections.*.format.options.*"
        ));
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "1", "s", "1x", "-1s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_sensitive_value_is_never_echoed_in_an_error() {
        let params = vec![
            Parameter::new("pin", ParameterType::Int, "a PIN").sensitive(),
            Parameter::new("password", ParameterType::String, "a password")
                .validate(Validation::Regex("^[a-z]+$".into())),
            Parameter::new("count", ParameterType::Int, "a count"),
        ];
        let settings = BTreeMap::from([
            ("pin".to_owned(), "12x4secret".to_owned()),
            ("password".to_owned(), "Hunter2".to_owned()),
            ("count".to_owned(), "many".to_owned()),
        ]);
        let error = validate(&params, &settings).unwrap_err().to_string();
        assert!(!error.contains("12x4secret"), "{error}");
        assert!(!error.contains("Hunter2"), "{error}");
        assert!(
            error.contains("the (sensitive) value is not an integer"),
            "{error}"
        );
        assert!(error.contains("\"many\" is not an integer"), "{error}");
        assert_eq!(marked(&params, "pin"), culvert_secrets::Marked::Sensitive);
        assert_eq!(marked(&params, "count"), culvert_secrets::Marked::NotMarked);
    }
}
