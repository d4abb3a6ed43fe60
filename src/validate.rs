//! `culvert pipelines validate` and `culvert pipelines lint`: offline checks of pipeline
//! configuration files, as Conduit's verbs of the same names. No server is needed or
//! contacted.
//!
//! Both read each file (or each `*.yml`/`*.yaml` file of a directory, not recursed) with the
//! server's own parser ([`culvert_provisioning::config`]), then check every pipeline's
//! plugins and settings against the built-in registries exactly as provisioning does
//! ([`culvert_provisioning::Provisioner::check_plugins`], on a throw-away in-memory control
//! plane), and pipeline ids across all the files given. Each problem is printed as
//! `file:line:column: error|warning: <field>: <message>`, followed by a `  suggestion: ...`
//! line when there is a fix to suggest.
//!
//! `lint` adds style warnings: a pipeline without a description, ids with characters
//! that are awkward in URLs and shells, processors written with the deprecated `type`.
//! Plugin references that are not `builtin:` and are not built in (a standalone plugin,
//! loaded only by a server from its `--connectors.path`) cannot be checked offline: they
//! are warnings, as Conduit leaves them alone.
//!
//! Exit codes as Conduit's: 0 when no file has an error (warnings do not count, unless
//! `lint --strict`), 2 when one has, or when a path cannot be read.

use culvert_plugins::spec::{Parameter, Validation};
use culvert_provisioning::config::{self, Parsed, PipelineConfig, Problem, Severity};
use culvert_provisioning::yaml::{self, Location};
use culvert_provisioning::Provisioner;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// How findings are printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// `file:line:column: severity: field: message` lines and a summary.
    Text,
    /// A JSON array of `{file, line, column, severity, field, message, suggestion}`.
    Json,
}

/// `culvert pipelines validate`'s arguments.
#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// Pipeline configuration files, or directories of them (`*.yml`, `*.yaml`; not
    /// recursed).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// `text` (default) or `json`.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Print only problems and the summary (no line per valid file).
    #[arg(long, short)]
    pub quiet: bool,
}

/// `culvert pipelines lint`'s arguments.
#[derive(clap::Args, Debug)]
pub struct LintArgs {
    #[command(flatten)]
    pub files: ValidateArgs,
    /// Warnings fail the run too (exit 2).
    #[arg(long)]
    pub strict: bool,
}

/// One problem as printed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Finding {
    /// The file.
    pub file: String,
    /// Its line, from 1 (0: the whole file).
    pub line: usize,
    /// Its column, from 1 (0: the whole file).
    pub column: usize,
    /// `error` or `warning`.
    pub severity: &'static str,
    /// The field, as a JSON pointer (`/pipelines/0/connectors/1/plugin`).
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it, when there is something to suggest.
    pub suggestion: Option<String>,
}

/// Why a run ended with a non-zero exit code: the code and a one-line reason.
pub type Failed = (u8, String);

/// Run `pipelines validate`.
pub fn validate(args: &ValidateArgs) -> Result<(), Failed> {
    check(args, false, false)
}

/// Run `pipelines lint`.
pub fn lint(args: &LintArgs) -> Result<(), Failed> {
    check(&args.files, true, args.strict)
}

fn check(args: &ValidateArgs, lint: bool, strict: bool) -> Result<(), Failed> {
    let report = run(&args.paths, lint)?;
    let errors = report.count("error");
    let warnings = report.count("warning");
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report.findings).expect("findings serialise")
        ),
        Output::Text => report.print(args.quiet),
    }
    if errors > 0 {
        return Err((2, format!("{errors} error(s) found")));
    }
    if strict && warnings > 0 {
        return Err((
            2,
            format!("{warnings} warning(s) treated as errors (--strict)"),
        ));
    }
    Ok(())
}

/// `validate`'s findings for `paths`, in order (for `doctor`).
pub fn findings(paths: &[PathBuf]) -> Result<Vec<Finding>, Failed> {
    Ok(run(paths, false)?.findings)
}

/// The findings of one file's `text` (named `name`), as `validate` reports them.
pub fn text_findings(name: &str, text: &str) -> Vec<Finding> {
    let env = |var: &str| std::env::var(var).ok();
    let parsed = config::parse(name, text, &env);
    let mut report = Report::default();
    report.files.push(name.to_owned());
    report.add(&Checker::new(), text, parsed, false);
    report.duplicates();
    report.findings.sort();
    report.findings
}

/// Read and check every file under `paths`.
fn run(paths: &[PathBuf], lint: bool) -> Result<Report, Failed> {
    let mut files = Vec::new();
    for path in paths {
        let found = Provisioner::files(path)
            .map_err(|e| (2, format!("could not resolve path {}: {e}", path.display())))?;
        if found.is_empty() {
            return Err((
                2,
                format!(
                    "{} holds no pipeline configuration files (*.yml, *.yaml)",
                    path.display()
                ),
            ));
        }
        files.extend(found);
    }
    let checker = Checker::new();
    let env = |name: &str| std::env::var(name).ok();
    let mut report = Report::default();
    for file in &files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file);
        let parsed = match &text {
            Ok(text) => config::parse(&name, text, &env),
            Err(e) => Parsed {
                problems: vec![Problem {
                    file: name.clone(),
                    at: Default::default(),
                    severity: Severity::Error,
                    path: String::new(),
                    message: format!("cannot read the file: {e}"),
                }],
                ..Parsed::default()
            },
        };
        report.files.push(name);
        report.add(&checker, text.as_deref().unwrap_or_default(), parsed, lint);
    }
    report.duplicates();
    report.findings.sort();
    Ok(report)
}

/// The files read, their pipelines and findings.
#[derive(Default)]
struct Report {
    files: Vec<String>,
    pipelines: Vec<PipelineConfig>,
    findings: Vec<Finding>,
}

impl Report {
    fn add(&mut self, checker: &Checker, text: &str, parsed: Parsed, lint: bool) {
        let (documents, _) = yaml::parse(text);
        let place = |finding: &mut Finding| {
            // A problem placed at its entity's start, whose field is written further on,
            // is moved to that field's line.
            if let Some(at) = locate(&documents, &finding.field) {
                if at.line != finding.line {
                    (finding.line, finding.column) = (at.line, at.column);
                }
            }
        };
        for problem in &parsed.problems {
            let mut finding = checker.finding(problem, None);
            place(&mut finding);
            self.findings.push(finding);
        }
        for pipeline in parsed.pipelines {
            for problem in checker.provisioner.check_plugins(&pipeline) {
                let mut finding = checker.finding(&problem, Some(&pipeline));
                place(&mut finding);
                self.findings.push(finding);
            }
            if lint {
                self.findings.extend(style(&pipeline));
            }
            self.pipelines.push(pipeline);
        }
    }

    /// The same pipeline id in several places (files or entries): every copy is an error,
    /// as provisioning skips them all.
    fn duplicates(&mut self) {
        let mut by_id: BTreeMap<&str, Vec<&PipelineConfig>> = BTreeMap::new();
        for p in &self.pipelines {
            by_id.entry(p.id.as_str()).or_default().push(p);
        }
        for (id, copies) in by_id {
            if copies.len() < 2 {
                continue;
            }
            let places: Vec<String> = copies
                .iter()
                .map(|c| format!("{}:{}", c.file, c.at))
                .collect();
            for copy in &copies {
                self.findings.push(Finding {
                    file: copy.file.clone(),
                    line: copy.at.line,
                    column: copy.at.column,
                    severity: "error",
                    field: format!("{}/id", copy.path),
                    message: format!(
                        "pipeline id {id:?} is used {} times (at {}); a server skips every copy",
                        copies.len(),
                        places.join(", ")
                    ),
                    suggestion: Some(format!(
                        "give each pipeline its own id (rename all but one of the {id:?})"
                    )),
                });
            }
        }
    }

    fn count(&self, severity: &str) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    fn print(&self, quiet: bool) {
        for finding in &self.findings {
            let field = if finding.field.is_empty() {
                String::new()
            } else {
                format!("{}: ", finding.field)
            };
            println!(
                "{}:{}:{}: {}: {field}{}",
                finding.file, finding.line, finding.column, finding.severity, finding.message
            );
            if let Some(suggestion) = &finding.suggestion {
                println!("  suggestion: {suggestion}");
            }
        }
        let mut failed = 0;
        for file in &self.files {
            let errors = self
                .findings
                .iter()
                .filter(|f| &f.file == file && f.severity == "error")
                .count();
            if errors > 0 {
                failed += 1;
            } else if !quiet {
                let ids: Vec<&str> = self
                    .pipelines
                    .iter()
                    .filter(|p| &p.file == file)
                    .map(|p| p.id.as_str())
                    .collect();
                println!(
                    "{file}: valid ({} pipeline(s): {})",
                    ids.len(),
                    ids.join(", ")
                );
            }
        }
        println!(
            "summary: {} file(s), {} passed, {failed} failed, {} error(s), {} warning(s)",
            self.files.len(),
            self.files.len() - failed,
            self.count("error"),
            self.count("warning")
        );
    }
}

/// The registries and a provisioner on a throw-away in-memory control plane.
struct Checker {
    provisioner: Provisioner,
    connectors: Arc<culvert_plugins::Registry>,
    processors: Arc<culvert_processors::ProcessorRegistry>,
}

impl Checker {
    fn new() -> Self {
        use culvert_projections::{ProjectionOptions, Projections};
        let log: Arc<dyn culvert_store::EventLog> = Arc::new(culvert_store::MemoryStore::new());
        let (projections, _) = Projections::open(log.as_ref(), ProjectionOptions::default())
            .expect("an empty in-memory log opens");
        let writer = culvert_commands::ControlPlaneWriter::new(log, Arc::new(projections));
        let connectors = Arc::new(culvert_connectors::registry());
        let processors = Arc::new(culvert_processors::registry());
        Self {
            provisioner: Provisioner::new(writer, connectors.clone(), processors.clone()),
            connectors,
            processors,
        }
    }

    /// A problem as a finding, with a suggestion; a plugin that is not built in and not
    /// asked for as `builtin:` becomes a warning (only a server can check it).
    fn finding(&self, problem: &Problem, pipeline: Option<&PipelineConfig>) -> Finding {
        let mut finding = Finding {
            file: problem.file.clone(),
            line: problem.at.line,
            column: problem.at.column,
            severity: match problem.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            field: problem.path.clone(),
            message: problem.message.clone(),
            suggestion: None,
        };
        let reference = pipeline.and_then(|p| plugin_at(p, &problem.path));
        if let Some((reference, processor)) = &reference {
            if problem.path.ends_with("/plugin") && problem.message.contains("not found") {
                let (suggestion, typo) = self.plugin_suggestion(reference, *processor);
                // `standalone:x`, or a bare name no built-in is close to: a plugin only a
                // server can load (Conduit's validate leaves these alone too).
                let standalone =
                    reference.starts_with("standalone:") || (!reference.contains(':') && !typo);
                if standalone {
                    finding.severity = "warning";
                    finding.message.push_str(&format!(
                        "; it is not built in, so only a server with it in its {} can check it",
                        if *processor {
                            "--processors.path"
                        } else {
                            "--connectors.path"
                        }
                    ));
                }
                finding.suggestion = Some(suggestion);
                return finding;
            }
        }
        finding.suggestion = self.suggestion(problem, reference.as_ref());
        finding
    }

    /// What to suggest for a plugin reference that is not found, and whether it looks
    /// like a misspelt built-in.
    fn plugin_suggestion(&self, reference: &str, processor: bool) -> (String, bool) {
        let bare = reference
            .split_once(':')
            .map_or(reference, |(_, name)| name);
        let bare = bare.split_once('@').map_or(bare, |(name, _)| name);
        let names: Vec<&str> = if processor {
            self.processors.specifications().map(|s| s.name).collect()
        } else {
            self.connectors
                .specifications()
                .filter(|s| !s.standalone)
                .map(|s| s.name)
                .collect()
        };
        match config::closest(bare, &names) {
            Some(name) if processor => (format!("did you mean {name:?}?"), true),
            Some(name) => (format!("did you mean \"builtin:{name}\"?"), true),
            None => (
                format!(
                    "built-in {} plugins: {}; a standalone one goes in the server's {}",
                    if processor { "processor" } else { "connector" },
                    names.join(", "),
                    if processor {
                        "--processors.path"
                    } else {
                        "--connectors.path"
                    }
                ),
                false,
            ),
        }
    }

    /// What to do about a problem, from its field and message.
    fn suggestion(&self, problem: &Problem, plugin: Option<&(String, bool)>) -> Option<String> {
        let message = problem.message.as_str();
        let field = problem.path.rsplit('/').next().unwrap_or_default();
        if let Some(rest) = message.split("did you mean ").nth(1) {
            let meant = rest.split('?').next().unwrap_or_default();
            if message.starts_with("unknown field") {
                return Some(format!("rename {field:?} to {meant}"));
            }
            return Some(format!("did you mean {meant}?"));
        }
        if message.starts_with("unknown field") {
            let known = known_fields(&problem.path);
            return Some(format!(
                "remove it; the fields allowed here are {}",
                known.join(", ")
            ));
        }
        if message.starts_with("malformed YAML") {
            return Some(
                "check the indentation (spaces, not tabs), the ':' after each key and \
                 matching quotes and brackets on this line and the one before"
                    .to_owned(),
            );
        }
        if message.starts_with("version 1.x wants a mapping") {
            return Some(format!(
                "key each entry by its id (ID: {{ ... }}), or convert the file to version {}",
                config::LATEST
            ));
        }
        if field == "version" {
            return Some(format!("set version: \"{}\"", config::LATEST));
        }
        if field == "status" {
            return Some("use \"running\" or \"stopped\"".to_owned());
        }
        if field == "type" && problem.path.contains("/connectors/") {
            return Some("use \"source\" or \"destination\"".to_owned());
        }
        if message.contains("must be unique") {
            return Some("give each one its own id".to_owned());
        }
        if message.contains("is mandatory") {
            return Some(format!("add {field:?}"));
        }
        if message.contains("\"workers\" can't be negative") {
            return Some("use 1 or more (0 means 1)".to_owned());
        }
        if message.contains("can't be negative") {
            return Some("use 0 or more".to_owned());
        }
        if message.contains("a running pipeline needs") {
            return Some(
                "add the missing connector, or set status: stopped until it is complete".to_owned(),
            );
        }
        if let Some(kind) = message
            .strip_prefix("want a ")
            .and_then(|m| m.split(',').next())
        {
            return Some(format!("write {field:?} as a {kind}"));
        }
        if message.contains("setting's name can't be empty") {
            return Some("remove the entry, or give it the setting's name".to_owned());
        }
        if message.contains("without a closing") {
            return Some("close it: ${NAME}".to_owned());
        }
        if problem.path.contains("/settings/") {
            return self.setting_suggestion(problem, plugin);
        }
        None
    }

    /// For a setting a plugin refused: the setting meant (an unknown one), or its valid
    /// values.
    fn setting_suggestion(
        &self,
        problem: &Problem,
        plugin: Option<&(String, bool)>,
    ) -> Option<String> {
        let (reference, processor) = plugin?;
        let key = problem.path.split("/settings/").nth(1)?;
        let parameters: Vec<Parameter> = if *processor {
            self.processors
                .lookup(reference)
                .ok()?
                .specification()
                .parameters
                .clone()
        } else {
            let spec = self.connectors.lookup(reference).ok()?.specification();
            let mut all = spec.source.clone().unwrap_or_default();
            all.extend(spec.destination.clone().unwrap_or_default());
            all
        };
        if problem.message.contains("unrecognized parameter") {
            let names: Vec<&str> = parameters.iter().map(|p| p.name).collect();
            return Some(match config::closest(key, &names) {
                Some(name) => format!("did you mean {name:?}?"),
                None => format!("the plugin's settings are: {}", names.join(", ")),
            });
        }
        let parameter = parameters.iter().find(|p| p.name == key)?;
        parameter.validations.iter().find_map(|v| match v {
            Validation::Inclusion(values) => Some(format!("valid values: {}", values.join(", "))),
            _ => None,
        })
    }
}

/// Where the key of the field at a JSON pointer is written (a list item: where the item
/// starts), if the pointer names a field that is there. With several documents the
/// pointer starts with the document's index.
fn locate(documents: &[yaml::Node], pointer: &str) -> Option<Location> {
    let mut segments = pointer.split('/').skip(1).peekable();
    segments.peek()?;
    let mut node = if documents.len() > 1 {
        documents.get(segments.next()?.parse::<usize>().ok()?)?
    } else {
        documents.first()?
    };
    let mut at = node.at;
    for segment in segments {
        match &node.value {
            yaml::Value::Map(entries) => {
                let (key, value) = entries.iter().find(|(k, _)| {
                    matches!(&k.value, yaml::Value::Scalar { text, .. } if text == segment)
                })?;
                at = key.at;
                node = value;
            }
            yaml::Value::Seq(items) => {
                node = items.get(segment.parse::<usize>().ok()?)?;
                at = node.at;
            }
            yaml::Value::Scalar { .. } => return None,
        }
    }
    Some(at)
}

/// The plugin reference of the connector or processor a problem's field is in, and
/// whether it is a processor's.
fn plugin_at(pipeline: &PipelineConfig, path: &str) -> Option<(String, bool)> {
    let within = |entity: &str| path == entity || path.starts_with(&format!("{entity}/"));
    for c in &pipeline.connectors {
        for p in &c.processors {
            if within(&p.path) {
                return Some((p.plugin.clone(), true));
            }
        }
        if within(&c.path) {
            return Some((c.plugin.clone(), false));
        }
    }
    for p in &pipeline.processors {
        if within(&p.path) {
            return Some((p.plugin.clone(), true));
        }
    }
    None
}

/// The fields a mapping at `path` (the unknown field's pointer) may have.
fn known_fields(path: &str) -> &'static [&'static str] {
    let segments: Vec<&str> = path.split('/').collect();
    // `/.../<list>/<index>/<field>`: the list names the kind.
    let parent = segments.len().checked_sub(3).map(|i| segments[i]);
    let direct = segments.len().checked_sub(2).map(|i| segments[i]);
    match (parent, direct) {
        (_, Some("dead-letter-queue")) => {
            &["plugin", "settings", "window-size", "window-nack-threshold"]
        }
        (Some("pipelines"), _) => &[
            "id",
            "status",
            "name",
            "description",
            "connectors",
            "processors",
            "dead-letter-queue",
        ],
        (Some("connectors"), _) => &["id", "type", "plugin", "name", "settings", "processors"],
        (Some("processors"), _) => &["id", "plugin", "condition", "settings", "workers"],
        _ => &["version", "pipelines"],
    }
}

/// `lint`'s style warnings for a pipeline.
fn style(pipeline: &PipelineConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut warn = |at: Location, field: String, message: String, suggestion: String| {
        out.push(Finding {
            file: pipeline.file.clone(),
            line: at.line,
            column: at.column,
            severity: "warning",
            field,
            message,
            suggestion: Some(suggestion),
        })
    };
    if pipeline.description.trim().is_empty() {
        warn(
            pipeline.at,
            format!("{}/description", pipeline.path),
            format!("pipeline {:?} has no description", pipeline.id),
            "add a description: one line on what the pipeline moves, from where to where"
                .to_owned(),
        );
    }
    let unsafe_char = |id: &str| {
        id.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    };
    let mut ids: Vec<(Location, String, &str, &str)> = vec![(
        pipeline.at,
        pipeline.path.clone(),
        pipeline.id.as_str(),
        "pipeline",
    )];
    for c in &pipeline.connectors {
        ids.push((c.at, c.path.clone(), c.id.as_str(), "connector"));
        for p in &c.processors {
            ids.push((p.at, p.path.clone(), p.id.as_str(), "processor"));
        }
    }
    for p in &pipeline.processors {
        ids.push((p.at, p.path.clone(), p.id.as_str(), "processor"));
    }
    for (at, path, id, kind) in ids {
        if let Some(c) = unsafe_char(id) {
            let cleaned: String = id
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            warn(
                at,
                format!("{path}/id"),
                format!(
                    "{kind} id {id:?} contains {c:?}, which URLs and shells need escaped (and \
                     ':' separates a pipeline's id from its connectors')"
                ),
                format!("use letters, digits, '-' and '_' only, e.g. {cleaned:?}"),
            );
        }
        if id.chars().any(|c| c.is_ascii_uppercase()) {
            warn(
                at,
                format!("{path}/id"),
                format!("{kind} id {id:?} has upper-case letters"),
                format!("ids read best in lower case: {:?}", id.to_lowercase()),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_a_field_by_its_pointer() {
        let text = "version: \"2.2\"\npipelines:\n  - id: p\n    connectors:\n      - id: c\n        settings:\n          levle: x\n";
        let (documents, _) = yaml::parse(text);
        let at = |p: &str| locate(&documents, p).map(|l| (l.line, l.column));
        assert_eq!(
            at("/pipelines/0/connectors/0/settings/levle"),
            Some((7, 11))
        );
        assert_eq!(at("/pipelines/0/connectors/0"), Some((5, 9)));
        assert_eq!(at("/pipelines/0/connectors/0/plugin"), None);
        assert_eq!(at(""), None);
    }

    #[test]
    fn known_fields_follow_the_path() {
        assert_eq!(known_fields("/kind"), ["version", "pipelines"]);
        assert!(known_fields("/pipelines/0/descripton").contains(&"description"));
        assert!(known_fields("/pipelines/0/connectors/1/plug").contains(&"plugin"));
        assert!(known_fields("/pipelines/0/processors/1/worker").contains(&"workers"));
        assert!(known_fields("/pipelines/0/dead-letter-queue/size").contains(&"window-size"));
    }

    #[test]
    fn a_misspelt_builtin_plugin_gets_the_name_meant() {
        let checker = Checker::new();
        assert_eq!(
            checker.plugin_suggestion("builtin:generater", false),
            ("did you mean \"builtin:generator\"?".to_owned(), true)
        );
        assert_eq!(
            checker.plugin_suggestion("field.sett", true),
            ("did you mean \"field.set\"?".to_owned(), true)
        );
        assert!(!checker.plugin_suggestion("my-own", true).1);
    }
}
