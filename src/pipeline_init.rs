//! `culvert pipelines init [NAME]`: write a pipeline configuration file to start from, as
//! Conduit's verb of the same name. Offline: it reads the built-in connectors'
//! specifications and writes one file, never a server's store.
//!
//! Three ways to choose what goes in it:
//! - `--source S --destination D`: a pipeline from built-in connector `S` to `D`, every
//!   parameter of each written out with its default and, as comments, its description,
//!   type and whether it is required (fill in the required ones before `culvert run`);
//! - neither: a demo that runs as written (the generator, one structured record a second,
//!   into the log destination), named `demo-pipeline`;
//! - `--template NAME`: one of a small gallery of complete pipelines ([`GALLERY`]);
//!   `--template list` lists them. A template's settings are checked against this build's
//!   connectors before anything is written (`pipelines.init_template_version_mismatch`).
//!
//! The file is `<--pipelines.path>/<NAME>.yaml` (default `./pipelines`); an existing file
//! is kept unless `--force` (`pipelines.init_destination_exists`, exit 2). It is written to a
//! temporary file first and linked (or, with `--force`, renamed) into place, so it is
//! either whole or absent. `--dry-run` prints what would be written and writes nothing.
//! `--json` (or `-o json`) prints Conduit's result envelope
//! `{command, ok, summary, result, error}`; the reasons are Conduit's (see docs/errors.md).

use crate::envelope::{CommandError as InitError, Done};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_provisioning::config;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// How the outcome is printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitOutput {
    /// For a person: where the file went (or, with --dry-run, the file).
    Text,
    /// Conduit's result envelope: `{command, ok, summary, result, error}`.
    Json,
}

/// `culvert pipelines init`'s arguments.
#[derive(clap::Args, Debug)]
pub struct PipelineInitArgs {
    /// The pipeline's name, id and file name (default: SOURCE-to-DESTINATION, the
    /// template's name, or demo-pipeline).
    pub name: Option<String>,
    /// The source: a built-in connector (`postgres`, `builtin:kafka`, ...).
    #[arg(long)]
    pub source: Option<String>,
    /// The destination: a built-in connector.
    #[arg(long)]
    pub destination: Option<String>,
    /// A gallery template to start from instead of --source/--destination; `list` lists
    /// them.
    #[arg(long)]
    pub template: Option<String>,
    /// The directory the file goes in (created if missing).
    #[arg(long = "pipelines.path", default_value = "./pipelines")]
    pub pipelines_path: PathBuf,
    /// Overwrite the file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print the file that would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// `text` or `json` (Conduit's result envelope).
    #[arg(long, short = 'o', value_enum, default_value_t = InitOutput::Text)]
    pub output: InitOutput,
    /// The same as `--output json` (Conduit's flag).
    #[arg(long)]
    pub json: bool,
}

/// One pipeline of the gallery: complete, with placeholders only where a user's own
/// address or credentials go.
pub struct Template {
    /// Its `--template` name, also the pipeline's id.
    pub name: &'static str,
    /// One line about it.
    pub description: &'static str,
    /// The built-in connectors it reads from and writes to.
    pub source: &'static str,
    /// See [`Template::source`].
    pub destination: &'static str,
    /// What a user can count on: at-least-once, and what a restart does.
    pub delivery: &'static str,
    /// The file, as written.
    pub yaml: &'static str,
}

/// The gallery, by name. Conduit's also has `postgres-pgvector-rag`, which needs a
/// standalone pgvector connector this build cannot check the template against.
pub const GALLERY: &[Template] = &[
    Template {
        name: "generator-file",
        description: "Made-up structured records appended as OpenCDC JSON lines to a local file.",
        source: "generator",
        destination: "file",
        delivery: "At-least-once: a record is acknowledged once the file has it; the file is \
                   only appended to.",
        yaml: include_str!("pipeline_templates/generator-file.yaml"),
    },
    Template {
        name: "generator-log",
        description: "Made-up structured records printed by the log destination: the quickest \
                      way to see a pipeline run.",
        source: "generator",
        destination: "log",
        delivery: "At-least-once; the generator keeps no position, so a restart makes new \
                   records rather than repeating old ones.",
        yaml: include_str!("pipeline_templates/generator-log.yaml"),
    },
    Template {
        name: "postgres-cdc-kafka",
        description: "A Postgres table's changes, by logical replication from now on (no \
                      snapshot), produced to a Kafka topic.",
        source: "postgres",
        destination: "kafka",
        delivery: "At-least-once, not exactly-once; cdcMode is logrepl, so the pipeline fails \
                   instead of falling back to polling.",
        yaml: include_str!("pipeline_templates/postgres-cdc-kafka.yaml"),
    },
    Template {
        name: "postgres-s3",
        description: "A Postgres table's snapshot, then its changes, each record written as JSON \
                      into an S3 bucket.",
        source: "postgres",
        destination: "s3",
        delivery: "At-least-once, not exactly-once; cdcMode is auto (logical replication where \
                   the server allows it, else polling).",
        yaml: include_str!("pipeline_templates/postgres-s3.yaml"),
    },
];

/// The `--template` value that lists the gallery instead of writing a file.
const LIST: &str = "list";
/// The demo's pipeline name (no --source, --destination or --template).
const DEMO_NAME: &str = "demo-pipeline";

const DESTINATION_EXISTS: &str = "pipelines.init_destination_exists";
const UNKNOWN_TEMPLATE: &str = "pipelines.init_unknown_template";
const TEMPLATE_FLAGS_EXCLUSIVE: &str = "pipelines.init_template_flags_exclusive";
const TEMPLATE_MISMATCH: &str = "pipelines.init_template_version_mismatch";
const INVALID_ARGUMENT: &str = "common.invalid_argument";
const INTERNAL: &str = "internal.error";

/// What a successful run wrote (or would write).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Written {
    path: String,
    pipeline_name: String,
    source: String,
    destination: String,
    dry_run: bool,
    forced: bool,
    config: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    template: Option<&'static str>,
}

/// One row of `--template list`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    name: &'static str,
    description: &'static str,
    source: &'static str,
    destination: &'static str,
    delivery_semantics: &'static str,
}

enum Outcome {
    Written(Written),
    Listed(Vec<Listed>),
}

/// Run the verb.
pub fn run(args: PipelineInitArgs) -> ExitCode {
    let json = args.json || args.output == InitOutput::Json;
    let outcome = execute(&args).map(|outcome| match outcome {
        Outcome::Written(written) => Done {
            text: render_written(&written),
            summary: serde_json::json!({ "written": !written.dry_run }),
            result: serde_json::to_value(&written).expect("a result serialises"),
        },
        Outcome::Listed(listed) => Done {
            text: render_list(&listed),
            summary: serde_json::json!({ "count": listed.len() }),
            result: serde_json::json!({ "templates": listed }),
        },
    });
    crate::envelope::finish("pipelines.init", json, outcome)
}

fn execute(args: &PipelineInitArgs) -> Result<Outcome, InitError> {
    if args.template.is_some() && (args.source.is_some() || args.destination.is_some()) {
        return Err(InitError::new(
            TEMPLATE_FLAGS_EXCLUSIVE,
            "--template cannot be given with --source or --destination: a template already \
             chooses its source, destination and settings",
            "drop --template, or drop --source and --destination",
        ));
    }
    let (name, source, destination, config, template) = match args.template.as_deref() {
        Some(LIST) => return Ok(Outcome::Listed(list())),
        Some(wanted) => {
            let template = GALLERY.iter().find(|t| t.name == wanted).ok_or_else(|| {
                InitError::new(
                    UNKNOWN_TEMPLATE,
                    format!("--template: there is no template {wanted:?}"),
                    format!(
                        "the templates: {} (`culvert pipelines init --template list` describes \
                         them)",
                        names().join(", ")
                    ),
                )
            })?;
            check_template(template)?;
            let name = args
                .name
                .clone()
                .unwrap_or_else(|| template.name.to_owned());
            let config = match args.name.as_deref() {
                // The file as vendored names its pipeline after the template.
                Some(name) if name != template.name => rename(template, name),
                _ => template.yaml.to_owned(),
            };
            (
                name,
                template.source.to_owned(),
                template.destination.to_owned(),
                config,
                Some(template.name),
            )
        }
        None => {
            let demo = args.source.is_none() && args.destination.is_none();
            let source = connector(args.source.as_deref().unwrap_or("generator"), Side::Source)?;
            let destination = connector(
                args.destination.as_deref().unwrap_or("log"),
                Side::Destination,
            )?;
            let name = match (&args.name, demo) {
                (Some(name), _) => name.clone(),
                (None, true) => DEMO_NAME.to_owned(),
                (None, false) => format!("{}-to-{}", source.name, destination.name),
            };
            let config = if demo {
                render_demo(&name)
            } else {
                render(&name, &source, &destination)
            };
            (
                name,
                source.name.to_owned(),
                destination.name.to_owned(),
                config,
                None,
            )
        }
    };
    check_name(&name)?;
    let path = args.pipelines_path.join(format!("{name}.yaml"));
    if !args.dry_run {
        write(&path, &config, args.force)?;
    }
    Ok(Outcome::Written(Written {
        path: path.display().to_string(),
        pipeline_name: name,
        source,
        destination,
        dry_run: args.dry_run,
        forced: args.force,
        config,
        template,
    }))
}

fn names() -> Vec<&'static str> {
    GALLERY.iter().map(|t| t.name).collect()
}

fn list() -> Vec<Listed> {
    GALLERY
        .iter()
        .map(|t| Listed {
            name: t.name,
            description: t.description,
            source: t.source,
            destination: t.destination,
            delivery_semantics: t.delivery,
        })
        .collect()
}

/// A template's errors under this build's `validate` (a setting a connector no longer
/// takes, a value it no longer accepts): refused before anything is written.
fn check_template(template: &Template) -> Result<(), InitError> {
    let findings = crate::validate::text_findings(template.name, template.yaml);
    match findings.iter().find(|f| f.severity == "error") {
        None => Ok(()),
        Some(finding) => Err(InitError {
            code: TEMPLATE_MISMATCH,
            message: format!(
                "template {:?} does not fit this build's connectors: {}: {}",
                template.name, finding.field, finding.message
            ),
            suggestion: Some(
                "this is a fault of the vendored template, not of your input: start from \
                 --source/--destination instead, and report it"
                    .to_owned(),
            ),
            config_path: Some(finding.field.clone()),
        }),
    }
}

/// The template's file with its pipeline (and connector ids) named `name` instead.
fn rename(template: &Template, name: &str) -> String {
    template
        .yaml
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            for key in ["- id: ", "id: ", "name: "] {
                if let Some(value) = trimmed.strip_prefix(key) {
                    if let Some(rest) = value.strip_prefix(template.name) {
                        return format!("{indent}{key}{}", yaml_string(&format!("{name}{rest}")));
                    }
                }
            }
            line.to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A pipeline name is also a file name: letters, digits, `-`, `_` and `.`, not starting
/// with a dot.
fn check_name(name: &str) -> Result<(), InitError> {
    let fits = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    match fits {
        true => Ok(()),
        false => Err(InitError::new(
            INVALID_ARGUMENT,
            format!("NAME: {name:?} cannot name a pipeline file"),
            "use letters, digits, '-', '_' and '.' (up to 128, not starting with '.')",
        )),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Destination,
}

impl Side {
    fn flag(self) -> &'static str {
        match self {
            Side::Source => "--source",
            Side::Destination => "--destination",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Destination => "destination",
        }
    }
}

/// A built-in connector's name and the parameters of the side asked for.
struct Connector {
    name: &'static str,
    parameters: Vec<Parameter>,
}

/// The built-in connector `reference` names (`kafka`, `builtin:kafka`, `kafka@v0.12.5`),
/// with that side's parameters.
fn connector(reference: &str, side: Side) -> Result<Connector, InitError> {
    let registry = culvert_connectors::registry();
    let builtins: Vec<_> = registry
        .specifications()
        .filter(|s| !s.standalone)
        .collect();
    let bare = reference.strip_prefix("builtin:").unwrap_or(reference);
    let bare = bare.split_once('@').map_or(bare, |(name, _)| name);
    let with_side: Vec<&str> = builtins
        .iter()
        .filter(|s| match side {
            Side::Source => s.source.is_some(),
            Side::Destination => s.destination.is_some(),
        })
        .map(|s| s.name)
        .filter(|name| *name != "oracle")
        .collect();
    let Some(spec) = builtins.iter().find(|s| s.name == bare) else {
        let suggestion = match config::closest(bare, &with_side) {
            Some(name) => format!("did you mean {name:?}?"),
            None => format!("built-in {}s: {}", side.word(), with_side.join(", ")),
        };
        return Err(InitError::new(
            INVALID_ARGUMENT,
            format!(
                "{}: {reference:?} is not a built-in connector (a standalone plugin's \
                 parameters are only known to a server that has it)",
                side.flag()
            ),
            suggestion,
        ));
    };
    let parameters = match side {
        Side::Source => spec.source.clone(),
        Side::Destination => spec.destination.clone(),
    };
    let Some(mut parameters) = parameters else {
        return Err(InitError::new(
            INVALID_ARGUMENT,
            format!("{}: {:?} has no {}", side.flag(), spec.name, side.word()),
            format!("built-in {}s: {}", side.word(), with_side.join(", ")),
        ));
    };
    parameters.sort_by_key(|p| p.name);
    Ok(Connector {
        name: spec.name,
        parameters,
    })
}

/// A YAML double-quoted scalar (JSON's string syntax is YAML's).
fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

fn type_name(ty: ParameterType) -> &'static str {
    match ty {
        ParameterType::String => "string",
        ParameterType::Int => "int",
        ParameterType::Float => "float",
        ParameterType::Bool => "bool",
        ParameterType::File => "file",
        ParameterType::Duration => "duration",
    }
}

/// The file's head: version, the pipeline, and the line before its connectors.
fn head(name: &str, description: &str) -> String {
    format!(
        "version: \"2.2\"\npipelines:\n  - id: {id}\n    name: {id}\n    status: running\n    \
         description: {description}\n    connectors:\n",
        id = yaml_string(name),
        description = yaml_string(description),
    )
}

/// One connector's entry with `settings` (key, value, comment lines above it).
fn connector_entry(
    id: &str,
    side: Side,
    plugin: &str,
    settings: &[(String, String, Vec<String>)],
) -> String {
    let mut out = format!(
        "      - id: {}\n        type: {}\n        plugin: {}\n",
        yaml_string(id),
        side.word(),
        yaml_string(&format!("builtin:{plugin}"))
    );
    if !settings.is_empty() {
        out.push_str("        settings:\n");
    }
    for (key, value, comments) in settings {
        for comment in comments {
            out.push_str(&format!(
                "          #{}{comment}\n",
                if comment.is_empty() { "" } else { " " }
            ));
        }
        out.push_str(&format!("          {key}: {}\n", yaml_string(value)));
    }
    out
}

/// Each parameter with its default and, above it, its description, type and whether it
/// is required. A wildcard parameter (`format.options.*`) is a comment only: its keys
/// are the user's to choose.
fn settings_of(parameters: &[Parameter]) -> Vec<(String, String, Vec<String>)> {
    let mut settings = Vec::new();
    let mut wildcards = Vec::new();
    for p in parameters {
        let mut comments: Vec<String> = p.description.lines().map(str::to_owned).collect();
        comments.push(format!("Type: {}", type_name(p.ty)));
        let required = p.validations.contains(&Validation::Required);
        comments.push(if required { "Required" } else { "Optional" }.to_owned());
        if let Some(values) = p.validations.iter().find_map(|v| match v {
            Validation::Inclusion(values) => Some(values),
            _ => None,
        }) {
            comments.push(format!("One of: {}", values.join(", ")));
        }
        if p.name.contains('*') {
            comments.push(format!(
                "{}: set keys of this shape, e.g. {}",
                p.name,
                p.name.replace('*', "example")
            ));
            wildcards.push(comments);
            continue;
        }
        settings.push((p.name.to_owned(), p.default.to_owned(), comments));
    }
    // A wildcard's comment rides above the next setting, after a blank comment line.
    if let (Some(first), false) = (settings.first_mut(), wildcards.is_empty()) {
        let mut above: Vec<String> = wildcards
            .into_iter()
            .flat_map(|c| c.into_iter().chain([String::new()]))
            .collect();
        above.append(&mut first.2);
        first.2 = above;
    }
    settings
}

fn render(name: &str, source: &Connector, destination: &Connector) -> String {
    let description = format!(
        "Written by `culvert pipelines init`: from a {} source to a {} destination. Fill in \
         the required settings, then check it with `culvert pipelines validate` and run it \
         with `culvert run`.",
        source.name, destination.name
    );
    let mut out = head(name, &description);
    out.push_str(&connector_entry(
        &format!("{}-source", source.name),
        Side::Source,
        source.name,
        &settings_of(&source.parameters),
    ));
    out.push_str(&connector_entry(
        &format!("{}-destination", destination.name),
        Side::Destination,
        destination.name,
        &settings_of(&destination.parameters),
    ));
    out
}

/// The demo: a pipeline that runs as written.
fn render_demo(name: &str) -> String {
    let description = "Written by `culvert pipelines init`: a demo that makes one structured \
                       record a second and prints it. Run it with `culvert run`.";
    let mut out = head(name, description);
    let setting = |key: &str, value: &str, comment: &str| {
        (key.to_owned(), value.to_owned(), vec![comment.to_owned()])
    };
    out.push_str(&connector_entry(
        "generator-source",
        Side::Source,
        "generator",
        &[
            setting("format.type", "structured", "Records with typed fields."),
            setting(
                "format.options.scheduledDeparture",
                "time",
                "A field scheduledDeparture holding a time.",
            ),
            setting(
                "format.options.airline",
                "string",
                "A field airline holding text.",
            ),
            setting("rate", "1", "Records a second."),
        ],
    ));
    out.push_str(&connector_entry(
        "log-destination",
        Side::Destination,
        "log",
        &[],
    ));
    out
}

/// Write `config` to `path` whole or not at all: a synced temporary file beside it, then
/// linked into place (which fails if the file exists) or, with `force`, renamed over it.
fn write(path: &Path, config: &str, force: bool) -> Result<(), InitError> {
    let internal = |what: &str, e: std::io::Error| InitError {
        code: INTERNAL,
        message: format!("{what} {}: {e}", path.display()),
        suggestion: Some(
            "check the directory exists and is writable, or pass another --pipelines.path"
                .to_owned(),
        ),
        config_path: Some(path.display().to_string()),
    };
    let exists = || InitError {
        code: DESTINATION_EXISTS,
        message: format!("pipeline file {} already exists", path.display()),
        suggestion: Some(format!(
            "pass --force to overwrite {}, or choose another NAME or --pipelines.path",
            path.display()
        )),
        config_path: Some(path.display().to_string()),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| internal("could not create the directory of", e))?;
    if !force && path.exists() {
        return Err(exists());
    }
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let written = std::fs::File::create_new(&temp).and_then(|mut file| {
        std::io::Write::write_all(&mut file, config.as_bytes())?;
        file.sync_all()
    });
    let placed = written.and_then(|()| match force {
        true => std::fs::rename(&temp, path),
        // A link fails if the file exists: no window between looking and writing.
        false => std::fs::hard_link(&temp, path),
    });
    let _ = std::fs::remove_file(&temp);
    match placed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists()),
        Err(e) => Err(internal("could not write", e)),
    }
}

fn render_written(written: &Written) -> String {
    if written.dry_run {
        return format!(
            "dry run: this would be written to {} (nothing was written):\n\n{}",
            written.path, written.config
        );
    }
    let next = match written.source == "generator" {
        true => format!(
            "next: culvert pipelines validate {} && culvert run",
            written.path
        ),
        false => format!(
            "next: fill in the settings marked Required (and the placeholders), then \
             culvert pipelines validate {} && culvert run",
            written.path
        ),
    };
    format!(
        "pipeline {:?} ({} -> {}) written to {}\n{next}\n",
        written.pipeline_name, written.source, written.destination, written.path
    )
}

fn render_list(listed: &[Listed]) -> String {
    let mut out = String::from("templates:\n\n");
    for t in listed {
        out.push_str(&format!(
            "  {:<20} {} -> {}\n      {}\n      {}\n\n",
            t.name, t.source, t.destination, t.description, t.delivery_semantics
        ));
    }
    out.push_str("write one with `culvert pipelines init --template NAME`\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: Option<&str>) -> PipelineInitArgs {
        PipelineInitArgs {
            name: name.map(str::to_owned),
            source: None,
            destination: None,
            template: None,
            pipelines_path: PathBuf::from("unused"),
            force: false,
            dry_run: true,
            output: InitOutput::Text,
            json: false,
        }
    }

    fn written(outcome: Outcome) -> Written {
        match outcome {
            Outcome::Written(w) => w,
            Outcome::Listed(_) => panic!("a list, not a file"),
        }
    }

    fn errors(name: &str, yaml: &str) -> Vec<String> {
        crate::validate::text_findings(name, yaml)
            .into_iter()
            .filter(|f| f.severity == "error")
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect()
    }

    #[test]
    fn every_gallery_template_validates_and_names_its_own_connectors() {
        for template in GALLERY {
            assert_eq!(
                errors(template.name, template.yaml),
                Vec::<String>::new(),
                "{}",
                template.name
            );
            assert!(template.yaml.contains(&format!("id: {}\n", template.name)));
            assert!(template
                .yaml
                .contains(&format!("plugin: builtin:{}\n", template.source)));
            assert!(template
                .yaml
                .contains(&format!("plugin: builtin:{}\n", template.destination)));
            assert_ne!(template.name, LIST);
        }
        let mut sorted = names();
        sorted.sort_unstable();
        assert_eq!(sorted, names(), "the gallery is kept in name order");
    }

    #[test]
    fn a_template_that_no_longer_fits_is_refused_with_its_field() {
        let stale = Template {
            yaml: "version: \"2.2\"\npipelines:\n  - id: stale\n    connectors:\n      - id: s\n        type: source\n        plugin: builtin:generator\n        settings:\n          format.type: structured\n          format.options.id: int\n          retired.setting: x\n      - id: d\n        type: destination\n        plugin: builtin:log\n",
            ..GALLERY[0]
        };
        let error = check_template(&stale).unwrap_err();
        assert_eq!(error.code, TEMPLATE_MISMATCH);
        assert!(
            error.message.contains("retired.setting"),
            "{}",
            error.message
        );
    }

    #[test]
    fn the_demo_runs_as_written() {
        let demo = written(execute(&args(None)).unwrap());
        assert_eq!(demo.pipeline_name, DEMO_NAME);
        assert_eq!(
            (demo.source.as_str(), demo.destination.as_str()),
            ("generator", "log")
        );
        assert_eq!(errors("demo", &demo.config), Vec::<String>::new());
    }

    #[test]
    fn source_and_destination_write_every_parameter_with_its_comments() {
        let mut a = args(None);
        a.source = Some("builtin:postgres".into());
        a.destination = Some("kafka".into());
        let w = written(execute(&a).unwrap());
        assert_eq!(w.pipeline_name, "postgres-to-kafka");
        let registry = culvert_connectors::registry();
        let spec = registry.lookup("builtin:postgres").unwrap().specification();
        for p in spec.source.as_ref().unwrap() {
            assert!(
                w.config.contains(&format!("          {}: ", p.name)),
                "{}",
                p.name
            );
        }
        assert!(w.config.contains("# Type: string\n"));
        assert!(w.config.contains("# Required\n"));
        // Only what the user must fill in is wrong: the required settings left blank.
        for error in errors("scaffold", &w.config) {
            assert!(error.contains("required"), "{error}");
        }
        // Parsed, it is the pipeline asked for.
        let parsed = config::parse("scaffold", &w.config, &|_| None);
        assert_eq!(parsed.mentioned, ["postgres-to-kafka"]);
    }

    #[test]
    fn a_wildcard_parameter_is_a_comment_not_a_key() {
        let mut a = args(Some("gen"));
        a.source = Some("generator".into());
        let w = written(execute(&a).unwrap());
        assert!(
            !w.config.contains("\n          format.options.*:"),
            "{}",
            w.config
        );
        assert!(w
            .config
            .contains("# format.options.*: set keys of this shape"));
    }

    #[test]
    fn unknown_or_one_sided_connectors_are_refused_with_a_suggestion() {
        let mut a = args(None);
        a.source = Some("postgress".into());
        let e = execute(&a).err().unwrap();
        assert_eq!((e.code, e.exit_code()), (INVALID_ARGUMENT, 2));
        assert!(e.message.starts_with("--source:"), "{}", e.message);
        assert_eq!(e.suggestion.as_deref(), Some("did you mean \"postgres\"?"));

        let mut a = args(None);
        a.source = Some("log".into());
        let e = execute(&a).err().unwrap();
        assert!(e.message.contains("has no source"), "{}", e.message);
    }

    #[test]
    fn a_template_renamed_keeps_its_settings_under_the_new_name() {
        let mut a = args(Some("orders-cdc"));
        a.template = Some("postgres-cdc-kafka".into());
        let w = written(execute(&a).unwrap());
        assert!(w.config.contains("id: \"orders-cdc\"\n"), "{}", w.config);
        assert!(w.config.contains("id: \"orders-cdc-source\"\n"));
        assert!(!w.config.contains("postgres-cdc-kafka-source"));
        assert_eq!(errors("renamed", &w.config), Vec::<String>::new());
    }

    #[test]
    fn bad_names_and_templates_are_refused() {
        let mut a = args(None);
        a.template = Some("generator-log".into());
        a.destination = Some("file".into());
        let e = execute(&a).err().unwrap();
        assert_eq!((e.code, e.exit_code()), (TEMPLATE_FLAGS_EXCLUSIVE, 2));

        let e = execute(&args(Some("../escape"))).err().unwrap();
        assert_eq!(e.code, INVALID_ARGUMENT);
        let mut a = args(None);
        a.template = Some("postgres-pgvector-rag".into());
        let e = execute(&a).err().unwrap();
        assert_eq!(e.code, UNKNOWN_TEMPLATE);
        assert!(e.suggestion.unwrap().contains("generator-log"));
        let mut a = args(None);
        a.template = Some(LIST.into());
        match execute(&a).unwrap() {
            Outcome::Listed(listed) => assert_eq!(listed.len(), GALLERY.len()),
            Outcome::Written(_) => panic!("list writes nothing"),
        }
    }

    #[test]
    fn an_existing_file_is_kept_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("p.yaml");
        write(&path, "first\n", false).unwrap();
        let e = write(&path, "second\n", false).unwrap_err();
        assert_eq!((e.code, e.exit_code()), (DESTINATION_EXISTS, 2));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\n");
        write(&path, "third\n", true).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "third\n");
        // Nothing left beside it.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }
}
