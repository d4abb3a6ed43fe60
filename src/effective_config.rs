//! `culvert config`: the configuration `culvert run` would use with these flags, each
//! setting with where its value came from — a flag, a `CULVERT_*` environment variable
//! (or Conduit's `CONDUIT_*` spelling of it), the config file, or the default — as
//! Conduit's `config` (which prints the values only). It takes every `culvert run` flag and
//! resolves them the same way (flags, then the environment, then the file, then defaults);
//! an invalid value exits 2 as `run` would. Secrets (passwords, tokens, a PostgreSQL
//! connection string) are shown as `***`; Conduit's settings that Culvert only answers are
//! listed when given.

use crate::RunArgs;
use clap::parser::ValueSource;
use std::process::ExitCode;

/// How to print.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Aligned columns: setting, value, source.
    Table,
    /// A JSON array of `{key, value, source}`.
    Json,
    /// `key: value  # source` lines.
    Yaml,
}

/// `culvert config`'s arguments: `culvert run`'s, and the output format.
#[derive(clap::Args, Debug)]
pub(crate) struct ConfigArgs {
    #[command(flatten)]
    run: RunArgs,
    /// `table` (default), `json` or `yaml`.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

/// One setting as resolved.
#[derive(serde::Serialize)]
struct Setting {
    key: String,
    value: String,
    source: String,
}

/// Print the effective configuration. `command` is the whole CLI (to re-read the
/// command line without the config file's values, so that each value's origin shows).
pub(crate) fn run(args: ConfigArgs, command: clap::Command) -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let matches = match command.clone().try_get_matches_from(&argv) {
        Ok(matches) => matches,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(("config", matches)) = matches.subcommand() else {
        eprintln!("error: not the config command");
        return ExitCode::from(2);
    };
    let file = args.run.config_path.clone();
    let from_file = match file_values(&file) {
        Ok(values) => values,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let config = command
        .find_subcommand("config")
        .expect("the config subcommand exists");
    let mut settings = Vec::new();
    for arg in config.get_arguments() {
        let Some(key) = arg.get_long() else { continue };
        if key == "output" || key == "help" {
            continue;
        }
        let id = arg.get_id().as_str();
        let raw = || {
            matches
                .get_raw(id)
                .map(|values| {
                    values
                        .map(|v| v.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        let (value, source) = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => (raw(), format!("flag --{key}")),
            Some(ValueSource::EnvVariable) => {
                let name = arg
                    .get_env()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // Read from Conduit's spelling of the variable when only that was set.
                let name = if crate::conduit_config::adopted(&name) {
                    crate::conduit_config::conduit_name(&name)
                } else {
                    name
                };
                (raw(), format!("env {name}"))
            }
            // The file may name a setting by an alias (Conduit's `dev.enabled`).
            _ => match from_file.iter().find(|(k, _)| {
                k == key
                    || arg
                        .get_all_aliases()
                        .is_some_and(|aliases| aliases.contains(&k.as_str()))
            }) {
                Some((_, value)) if key != "config.path" => {
                    (value.clone(), format!("file {}", file.display()))
                }
                _ if matches.value_source(id) == Some(ValueSource::DefaultValue) => {
                    (raw(), "default".to_owned())
                }
                _ => (String::new(), "unset".to_owned()),
            },
        };
        // Conduit's settings that Culvert only answers (hidden from --help) show when given.
        if arg.is_hide_set() && matches!(source.as_str(), "default" | "unset") {
            continue;
        }
        let secret = ["password", "token", "postgres.connection-string"]
            .iter()
            .any(|s| key.ends_with(s));
        let value = if secret && !value.is_empty() {
            "***".to_owned()
        } else {
            value
        };
        settings.push(Setting {
            key: key.to_owned(),
            value,
            source,
        });
    }
    print(&settings, args.output);
    ExitCode::SUCCESS
}

/// The config file's settings as `(dotted key, value)` (none if it is missing).
pub(crate) fn file_values(path: &std::path::Path) -> Result<Vec<(String, String)>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(format!("reading the config file {}: {e}", path.display())),
    };
    let documents = yaml_rust2::YamlLoader::load_from_str(&text)
        .map_err(|e| format!("parsing the config file {}: {e}", path.display()))?;
    let mut values = Vec::new();
    if let Some(document) = documents.first() {
        crate::flatten("", document, &mut values)
            .map_err(|e| format!("in the config file {}: {e:#}", path.display()))?;
    }
    Ok(values)
}

fn print(settings: &[Setting], format: Format) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(settings).expect("settings serialise")
        ),
        Format::Yaml => {
            for s in settings {
                println!("{}: {:?}  # {}", s.key, s.value, s.source);
            }
        }
        Format::Table => {
            let key = settings
                .iter()
                .map(|s| s.key.len())
                .max()
                .unwrap_or(3)
                .max(3);
            let value = settings
                .iter()
                .map(|s| s.value.len())
                .max()
                .unwrap_or(5)
                .max(5);
            println!("{:key$}  {:value$}  SOURCE", "KEY", "VALUE");
            for s in settings {
                println!("{:key$}  {:value$}  {}", s.key, s.value, s.source);
            }
        }
    }
}
