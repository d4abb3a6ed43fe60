//! The connector's settings: Conduit's parameter names, types, defaults and validations
//! (conduit-connector-postgres v0.14.2 `connector.yaml`), and the typed configurations
//! built from validated settings, with the checks the specification cannot express.

use culvert_domain::parse_bool;
use culvert_plugins::connector::{PluginError, Settings};
use culvert_plugins::spec::{InvalidSettings, Parameter, ParameterType, SettingError, Validation};
use culvert_template::Template;

/// Conduit's default for the destination's `table`: the record's collection.
pub const DEFAULT_TABLE: &str = "{{ index .Metadata \"opencdc.collection\" }}";

fn url_parameter() -> Parameter {
    Parameter::new(
        "url",
        ParameterType::String,
        "The connection string of the PostgreSQL database (URL or key=value form).",
    )
    .validate(Validation::Required)
    .sensitive()
}

/// The source's parameters.
pub fn source_parameters() -> Vec<Parameter> {
    vec![
        Parameter::new(
            "tables",
            ParameterType::String,
            "Tables to read, separated by commas; `*` reads every table of schema public.",
        )
        .validate(Validation::Required),
        url_parameter(),
        Parameter::new(
            "cdcMode",
            ParameterType::String,
            "How changes are followed: `auto` or `logrepl` (both use logical replication).",
        )
        .default_value("auto")
        .validate(Validation::Inclusion(vec!["auto".into(), "logrepl".into()])),
        Parameter::new(
            "logrepl.autoCleanup",
            ParameterType::Bool,
            "Drop the replication slot and publication when the connector is deleted.",
        )
        .default_value("true"),
        Parameter::new(
            "logrepl.publicationName",
            ParameterType::String,
            "The publication to create or reuse.",
        )
        .default_value("conduitpub"),
        Parameter::new(
            "logrepl.slotName",
            ParameterType::String,
            "The replication slot to create or reuse (lower-case letters, digits, `_`).",
        )
        .default_value("conduitslot")
        .validate(Validation::Regex("^[a-z0-9_]+$".into())),
        Parameter::new(
            "logrepl.withAvroSchema",
            ParameterType::Bool,
            "Attach Avro schemas to records (done by the SDK schema settings here).",
        )
        .default_value("true"),
        Parameter::new(
            "snapshot.fetchSize",
            ParameterType::Int,
            "Rows fetched at a time during the snapshot.",
        )
        .default_value("50000"),
        Parameter::new(
            "snapshotMode",
            ParameterType::String,
            "`initial`: snapshot the tables on the first run; `never`: changes only.",
        )
        .default_value("initial")
        .validate(Validation::Inclusion(vec![
            "initial".into(),
            "never".into(),
        ])),
    ]
}

/// The destination's parameters.
pub fn destination_parameters() -> Vec<Parameter> {
    vec![
        url_parameter(),
        Parameter::new(
            "table",
            ParameterType::String,
            "The table to write to: a name, or a Go template evaluated per record.",
        )
        .default_value(DEFAULT_TABLE),
    ]
}

/// Which tables the source reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tables {
    /// These, in this order.
    Named(Vec<String>),
    /// Every table of schema `public` (`*`).
    All,
}

/// A validated source configuration.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// The parsed connection settings.
    pub connection: tokio_postgres::Config,
    /// Which tables.
    pub tables: Tables,
    /// Take a snapshot on the first run.
    pub snapshot: bool,
    /// Rows per snapshot fetch.
    pub fetch_size: usize,
    /// The publication's name.
    pub publication: String,
    /// The replication slot's name.
    pub slot: String,
    /// Drop slot and publication when the connector is deleted.
    pub auto_cleanup: bool,
}

impl SourceConfig {
    /// From settings the specification validated (defaults applied).
    pub fn from_settings(settings: &Settings) -> Result<Self, PluginError> {
        let mut errors = Vec::new();
        let get = |key: &str| settings.get(key).map(|v| v.trim()).unwrap_or("");
        let connection = parse_url(get("url"), &mut errors);
        let tables: Vec<String> = get("tables")
            .split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        if tables.is_empty() {
            errors.push(problem("tables", "required: name at least one table"));
        }
        let tables = if tables == ["*"] {
            Tables::All
        } else {
            Tables::Named(tables)
        };
        let fetch_size = match get("snapshot.fetchSize") {
            "" => 50_000,
            text => match text.parse::<i64>() {
                Ok(0) => 50_000,
                Ok(n) if n > 0 => n as usize,
                _ => {
                    errors.push(problem("snapshot.fetchSize", "must be a positive number"));
                    50_000
                }
            },
        };
        let slot = match get("logrepl.slotName") {
            "" => "conduitslot".to_owned(),
            name => name.to_owned(),
        };
        let publication = match get("logrepl.publicationName") {
            "" => "conduitpub".to_owned(),
            name => name.to_owned(),
        };
        if !errors.is_empty() {
            return Err(PluginError::InvalidSettings(InvalidSettings(errors)));
        }
        Ok(Self {
            connection: connection.expect("no error, so the url parsed"),
            tables,
            snapshot: get("snapshotMode") != "never",
            fetch_size,
            publication,
            slot,
            auto_cleanup: parse_bool(get("logrepl.autoCleanup")).unwrap_or(true),
        })
    }
}

/// A validated destination configuration.
#[derive(Clone, Debug)]
pub struct DestinationConfig {
    /// The parsed connection settings.
    pub connection: tokio_postgres::Config,
    /// The table for each record.
    pub table: TableName,
}

/// The destination's table: a fixed name or a template (Conduit treats `table` as a
/// template only when it starts with `{{` or ends with `}}`).
#[derive(Clone, Debug)]
pub enum TableName {
    /// Always this table.
    Fixed(String),
    /// Rendered per record.
    Template(Template),
}

impl TableName {
    /// The table for `record`.
    pub fn for_record(&self, record: &culvert_domain::Record) -> Result<String, String> {
        match self {
            Self::Fixed(name) => Ok(name.clone()),
            Self::Template(template) => template
                .render(record)
                .map_err(|e| format!("setting \"table\": rendering the template: {e}")),
        }
    }
}

impl DestinationConfig {
    /// From settings the specification validated (defaults applied).
    pub fn from_settings(settings: &Settings) -> Result<Self, PluginError> {
        let mut errors = Vec::new();
        let get = |key: &str| settings.get(key).map(|v| v.trim()).unwrap_or("");
        let connection = parse_url(get("url"), &mut errors);
        let table_text = match get("table") {
            "" => DEFAULT_TABLE,
            text => text,
        };
        let table = if table_text.starts_with("{{") || table_text.ends_with("}}") {
            match Template::parse(table_text) {
                Ok(template) => Some(TableName::Template(template)),
                Err(e) => {
                    errors.push(problem(
                        "table",
                        &format!("neither a table name nor a valid Go template: {e}"),
                    ));
                    None
                }
            }
        } else {
            Some(TableName::Fixed(table_text.to_owned()))
        };
        if !errors.is_empty() {
            return Err(PluginError::InvalidSettings(InvalidSettings(errors)));
        }
        Ok(Self {
            connection: connection.expect("no error, so the url parsed"),
            table: table.expect("no error, so the table parsed"),
        })
    }
}

fn problem(key: &str, problem: &str) -> SettingError {
    SettingError {
        key: key.to_owned(),
        problem: problem.to_owned(),
    }
}

/// Parse a connection string; the error never echoes the value (it may hold a password).
fn parse_url(url: &str, errors: &mut Vec<SettingError>) -> Option<tokio_postgres::Config> {
    if url.is_empty() {
        errors.push(problem("url", "required"));
        return None;
    }
    match url.parse::<tokio_postgres::Config>() {
        Ok(config) => Some(config),
        Err(e) => {
            errors.push(problem("url", &format!("invalid connection string: {e}")));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn source_settings_parse() {
        let config = SourceConfig::from_settings(&settings(&[
            ("url", "postgres://u:secret@127.0.0.1:5433/db"),
            ("tables", "a, b"),
            ("snapshotMode", "never"),
            ("snapshot.fetchSize", "10"),
        ]))
        .unwrap();
        assert_eq!(config.tables, Tables::Named(vec!["a".into(), "b".into()]));
        assert!(!config.snapshot);
        assert_eq!(config.fetch_size, 10);
        assert_eq!(config.slot, "conduitslot");
        let all = SourceConfig::from_settings(&settings(&[
            ("url", "host=127.0.0.1 user=u dbname=db"),
            ("tables", "*"),
        ]))
        .unwrap();
        assert_eq!(all.tables, Tables::All);
    }

    #[test]
    fn a_bad_url_is_named_without_its_value() {
        let error = SourceConfig::from_settings(&settings(&[
            ("url", "postgres://u:topsecret@127.0.0.1:notaport/db"),
            ("tables", "a"),
        ]))
        .err()
        .unwrap()
        .to_string();
        assert!(error.contains("setting \"url\""), "{error}");
        assert!(!error.contains("topsecret"), "{error}");
    }

    #[test]
    fn the_table_is_a_template_only_in_braces() {
        let record = culvert_domain::Record {
            metadata: [("opencdc.collection".to_owned(), "users".to_owned())].into(),
            ..Default::default()
        };
        let config =
            DestinationConfig::from_settings(&settings(&[("url", "postgres://u@127.0.0.1/db")]))
                .unwrap();
        assert_eq!(config.table.for_record(&record).unwrap(), "users");
        let config = DestinationConfig::from_settings(&settings(&[
            ("url", "postgres://u@127.0.0.1/db"),
            ("table", "fixed"),
        ]))
        .unwrap();
        assert_eq!(config.table.for_record(&record).unwrap(), "fixed");
        let error = DestinationConfig::from_settings(&settings(&[
            ("url", "postgres://u@127.0.0.1/db"),
            ("table", "{{ .Broken "),
        ]))
        .err()
        .unwrap()
        .to_string();
        assert!(error.contains("setting \"table\""), "{error}");
    }
}
