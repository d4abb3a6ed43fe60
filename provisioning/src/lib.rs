//! Pipeline configuration files: Conduit's YAML format, provisioned as events.
//!
//! At start the server reads `--pipelines.path` (a file, or every `*.yml`/`*.yaml` file of
//! a directory) and makes the control plane match it:
//!
//! * a pipeline new in a file is created, one that changed is updated (only what changed),
//!   one whose file no longer names it is deleted, an unchanged one is left alone;
//! * each pipeline's changes are one `Provision` command, so one atomic batch of events,
//!   with the actor `provisioning:<file>`; the pipeline is marked as provisioned by that
//!   file, and the API may then start and stop it but not change it;
//! * a pipeline whose file says `running` is started;
//! * every problem is reported with its file, line, column and field, all at once; a bad
//!   pipeline (or file) never keeps the others from being provisioned.
//!
//! [`config`] parses and validates files; [`plan`] turns the difference between a file and
//! the control plane into commands; [`Provisioner`] does the whole run; [`export`] writes
//! pipelines back as a file.

pub mod config;
pub mod export;
pub mod plan;
pub mod yaml;

use crate::config::{Parsed, PipelineConfig, Problem, Severity};
use culvert_commands::{CommandError, Context, ControlPlaneWriter};
use culvert_domain::{
    Command, ConnectorId, ControlPlane, DomainError, EntityKind, PipelineId, ProcessorId,
    ProcessorParent,
};
use culvert_plugins::{LookupError, Registry, Side, ValidateError};
use culvert_processors::{ConfigureError, ProcessorRegistry};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a provisioning run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The files read.
    pub files: Vec<String>,
    /// Pipelines created.
    pub created: Vec<String>,
    /// Pipelines changed (configuration or status).
    pub updated: Vec<String>,
    /// Pipelines deleted (their file no longer names them).
    pub deleted: Vec<String>,
    /// Pipelines that already matched their file.
    pub unchanged: Vec<String>,
    /// Pipelines left out because of errors.
    pub skipped: Vec<String>,
    /// Every problem found, errors and warnings, by file and place.
    pub problems: Vec<Problem>,
    /// Events written.
    pub events: usize,
}

impl Report {
    /// The errors among the problems.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }
}

/// One change a plan makes (ApplyPipeline's `Diff.Change`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// `pipeline`, `connector` or `processor`.
    pub resource: &'static str,
    /// The entity's id.
    pub id: String,
    /// `create`, `update` or `delete`.
    pub action: &'static str,
    /// `in_place` (safe on a running pipeline) or `restart` (Conduit's classification:
    /// adding or removing a connector or processor, or deleting the pipeline, restarts
    /// it; a first deploy is `in_place` throughout).
    pub effect: &'static str,
    /// Conduit's stable code of the kind of change, `provisioning.<resource>.<action>`.
    pub code: String,
}

/// What applying a document did (or would do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The pipeline.
    pub pipeline: String,
    /// The changes, in order.
    pub changes: Vec<Change>,
    /// Identifies this plan against this state: apply only if it still holds.
    pub hash: String,
    /// Events written (0 for a plan, or when nothing changes).
    pub events: usize,
}

/// Why a document cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The document has errors (each with its field).
    #[error("invalid pipeline document: {}", .0.iter().map(|p| format!("{}: {}", p.path, p.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
    /// The plan changed since the hash the caller had.
    #[error(
        "the plan changed since it was computed (hash {expected:?}, now {actual:?}); plan again"
    )]
    Stale {
        /// The hash given.
        expected: String,
        /// The current plan's hash.
        actual: String,
    },
    /// The pipeline runs and the document changes it: applying would stop and start it
    /// again, which the server allows only when started with
    /// `--api.allow-live-restart-apply` (Conduit's gate).
    #[error(
        "pipeline {pipeline:?} is running: applying a change to it stops it (draining what is \
         in flight, nothing lost) and starts it again, which this server allows only when \
         started with --api.allow-live-restart-apply; stop the pipeline and apply again, or \
         have the operator restart the server with that flag"
    )]
    LiveApplyUnauthorized {
        /// The running pipeline.
        pipeline: String,
    },
    /// Writing failed or the domain refused.
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// Why provisioning could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The pipelines path cannot be read.
    #[error("pipelines path {path:?}: {source}")]
    Path {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Provisions pipelines from configuration files.
pub struct Provisioner {
    writer: Arc<ControlPlaneWriter>,
    connectors: Arc<Registry>,
    processors: Arc<ProcessorRegistry>,
    /// Whether [`Provisioner::apply`] may change a running pipeline (stopping and starting
    /// it); off by default, as in Conduit.
    live_restart_apply: bool,
}

impl Provisioner {
    /// A provisioner writing through `writer`, checking plugins against the registries.
    pub fn new(
        writer: Arc<ControlPlaneWriter>,
        connectors: Arc<Registry>,
        processors: Arc<ProcessorRegistry>,
    ) -> Self {
        Self {
            writer,
            connectors,
            processors,
            live_restart_apply: false,
        }
    }

    /// Let [`Provisioner::apply`] change a running pipeline: it is stopped (in-flight records
    /// drained and their positions saved), changed and started again in one batch. Off, such
    /// an apply is refused ([`ApplyError::LiveApplyUnauthorized`]); the server's
    /// `--api.allow-live-restart-apply` turns it on.
    pub fn with_live_restart_apply(mut self, allow: bool) -> Self {
        self.live_restart_apply = allow;
        self
    }

    /// The configuration files under `path`: the file itself, or a directory's `*.yml` and
    /// `*.yaml` files (any case), by name.
    pub fn files(path: &Path) -> Result<Vec<PathBuf>, ProvisionError> {
        let error = |source| ProvisionError::Path {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(error)?;
        if meta.is_file() {
            return Ok(vec![path.to_owned()]);
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(error)? {
            let entry = entry.map_err(error)?;
            let file = entry.path();
            let yaml = file
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"));
            if yaml && file.is_file() {
                files.push(file);
            }
        }
        files.sort();
        Ok(files)
    }

    /// The pipelines of `files` that are running (or starting, or recovering) and that
    /// the files would change: a live reload stops these first and waits, so that what a
    /// file changes never changes under a running engine. Files that do not parse, and
    /// pipelines with errors, name nothing (provisioning leaves them as they are).
    pub fn running_to_change(
        &self,
        files: &[PathBuf],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Vec<(PipelineId, String)> {
        let mut found = Vec::new();
        for file in files {
            let name = file.display().to_string();
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            let parsed = config::parse(&name, &text, env);
            let state = self.writer.projections().read();
            for pipeline in &parsed.pipelines {
                let id = PipelineId(pipeline.id.clone());
                let active = state.pipeline(&id).is_some_and(|p| {
                    p.provisioned_by.is_some()
                        && matches!(
                            p.status,
                            culvert_domain::PipelineStatus::Running
                                | culvert_domain::PipelineStatus::Starting
                                | culvert_domain::PipelineStatus::Recovering
                        )
                });
                if active && self.check_plugins(pipeline).is_empty() {
                    let pipeline = self.with_stored_secrets(&state, pipeline);
                    if !plan::plan(&state, &pipeline).is_empty() {
                        found.push((id, name.clone()));
                    }
                }
            }
        }
        found
    }

    /// Read, check and provision every file under `path`; `env` resolves `$VAR`.
    pub fn provision(
        &self,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Report, ProvisionError> {
        let files = Self::files(path)?;
        let mut report = Report::default();
        let mut parsed: Vec<(String, Parsed)> = Vec::new();
        let mut ticker = Ticker::new("reading files", files.len());
        for file in &files {
            ticker.tick(parsed.len());
            let name = file.display().to_string();
            report.files.push(name.clone());
            let one = match std::fs::read_to_string(file) {
                Ok(text) => config::parse(&name, &text, env),
                Err(e) => Parsed {
                    problems: vec![Problem {
                        file: name.clone(),
                        at: yaml::Location::default(),
                        severity: Severity::Error,
                        path: String::new(),
                        message: format!("cannot read the file: {e}"),
                    }],
                    truncated: true,
                    ..Parsed::default()
                },
            };
            parsed.push((name, one));
        }
        self.run(parsed, &mut report);
        report.problems.sort();
        Ok(report)
    }

    /// Provision already parsed files.
    fn run(&self, parsed: Vec<(String, Parsed)>, report: &mut Report) {
        // Which files name which ids, and which files may not have been read whole.
        let mut mentioned: BTreeSet<String> = BTreeSet::new();
        // How many entries name each id, with errors or not: Conduit skips every copy of a
        // duplicated id before it validates any.
        let mut entries: BTreeMap<String, usize> = BTreeMap::new();
        let mut unreliable: BTreeSet<String> = BTreeSet::new();
        let mut candidates: Vec<PipelineConfig> = Vec::new();
        for (name, one) in parsed {
            for id in &one.mentioned {
                *entries.entry(id.clone()).or_default() += 1;
            }
            mentioned.extend(one.mentioned.iter().cloned());
            if one.truncated {
                unreliable.insert(name);
            }
            report.problems.extend(one.problems);
            candidates.extend(one.pipelines);
        }
        // Pipelines with unusable plugins or settings are left out.
        let mut valid = Vec::new();
        for pipeline in candidates {
            let problems = self.check_plugins(&pipeline);
            if problems.is_empty() {
                valid.push(pipeline);
            } else {
                report.skipped.push(pipeline.id.clone());
                report.problems.extend(problems);
            }
        }
        // The same id in several places: every copy is skipped (Conduit's rule).
        let mut by_id: BTreeMap<String, Vec<PipelineConfig>> = BTreeMap::new();
        for pipeline in valid {
            by_id.entry(pipeline.id.clone()).or_default().push(pipeline);
        }
        let mut ticker = Ticker::new("provisioning pipelines", by_id.len());
        for (done, (id, copies)) in by_id.into_iter().enumerate() {
            ticker.tick(done);
            let named = entries.get(&id).copied().unwrap_or(0).max(copies.len());
            if named > 1 {
                let places: Vec<String> = copies
                    .iter()
                    .map(|c| format!("{}:{}", c.file, c.at))
                    .collect();
                let invalid = match named - copies.len() {
                    0 => String::new(),
                    1 => " and one entry with errors".to_owned(),
                    n => format!(" and {n} entries with errors"),
                };
                for copy in &copies {
                    report.problems.push(Problem {
                        file: copy.file.clone(),
                        at: copy.at,
                        severity: Severity::Error,
                        path: format!("{}/id", copy.path),
                        message: format!(
                            "{named} pipelines with ID {id:?} will be skipped (at {}{invalid})",
                            places.join(", ")
                        ),
                    });
                }
                report.skipped.push(id);
                continue;
            }
            let pipeline = copies.into_iter().next().expect("one copy");
            self.provision_one(&pipeline, report);
        }
        // Provisioned pipelines no file names any more.
        let state = self.writer.projections().read();
        let gone: Vec<(PipelineId, String)> = state
            .pipelines()
            .filter_map(|p| p.provisioned_by.clone().map(|file| (p.id.clone(), file)))
            .filter(|(id, file)| !mentioned.contains(id.as_str()) && !unreliable.contains(file))
            .collect();
        drop(state);
        for (id, file) in gone {
            let commands = plan::plan_deletion(&self.writer.projections().read(), &id);
            match self.execute(&id, &file, commands) {
                Ok(events) => {
                    tracing::info!(pipeline = %id, %file, "provisioned pipeline deleted: its file no longer has it");
                    report.events += events;
                    report.deleted.push(id.to_string());
                }
                Err(error) => report.problems.push(Problem {
                    file,
                    at: yaml::Location::default(),
                    severity: Severity::Error,
                    path: String::new(),
                    message: format!("could not delete pipeline {id}: {error}"),
                }),
            }
        }
    }

    fn provision_one(&self, pipeline: &PipelineConfig, report: &mut Report) {
        let id = PipelineId(pipeline.id.clone());
        let (commands, existed, moved) = {
            let state = self.writer.projections().read();
            let existing = state.pipeline(&id);
            if existing.is_some_and(|p| p.provisioned_by.is_none()) {
                report.problems.push(Problem {
                    file: pipeline.file.clone(),
                    at: pipeline.at,
                    severity: Severity::Error,
                    path: format!("{}/id", pipeline.path),
                    message: format!(
                        "pipeline {id} exists and was created over the API; the file's \
                         pipeline is skipped and the existing one left as it is"
                    ),
                });
                report.skipped.push(id.to_string());
                return;
            }
            // A pipeline moved to another file gets the new file recorded, even unchanged.
            let moved = existing
                .and_then(|p| p.provisioned_by.as_deref())
                .is_some_and(|file| file != pipeline.file);
            let pipeline = self.with_stored_secrets(&state, pipeline);
            (plan::plan(&state, &pipeline), existing.is_some(), moved)
        };
        if commands.is_empty() && !moved {
            report.unchanged.push(id.to_string());
            return;
        }
        match self.execute(&id, &pipeline.file, commands) {
            Ok(events) => {
                report.events += events;
                if existed {
                    tracing::info!(pipeline = %id, file = %pipeline.file, events, "provisioned pipeline updated");
                    report.updated.push(id.to_string());
                } else {
                    tracing::info!(pipeline = %id, file = %pipeline.file, events, "provisioned pipeline created");
                    report.created.push(id.to_string());
                }
            }
            Err(error) => {
                report.problems.push(Problem {
                    file: pipeline.file.clone(),
                    at: pipeline.at,
                    severity: Severity::Error,
                    path: pipeline.path.clone(),
                    message: format!("could not provision pipeline {id}: {error}"),
                });
                report.skipped.push(id.to_string());
            }
        }
    }

    /// Plan (and unless `dry_run`, apply) one pipeline document that came over the API
    /// (PlanPipeline / ApplyPipeline): the same checks and plan as a file, recorded with
    /// `actor`; the pipeline stays API-managed. With `expected_hash` (ApplyPipeline: always,
    /// an empty one too, as in Conduit), the plan must still be the one the caller saw. As
    /// in Conduit the document's status counts only for a pipeline it creates: an existing
    /// one keeps running or stopped as it is, and a change to a running one is refused
    /// unless [`Provisioner::with_live_restart_apply`] allows it.
    pub fn apply(
        &self,
        document: &PipelineConfig,
        actor: &str,
        expected_hash: Option<&str>,
        dry_run: bool,
    ) -> Result<Applied, ApplyError> {
        let mut pipeline = self.checked(document)?;
        let id = PipelineId(pipeline.id.clone());
        let pipeline_id_text = pipeline.id.clone();
        let (commands, running) = {
            let state = self.writer.projections().read();
            let running = state.pipeline(&id).map(|p| plan::is_running(&p.status));
            if let Some(running) = running {
                pipeline.running = running;
            }
            let commands = plan::plan(&state, &self.with_stored_secrets(&state, &pipeline));
            (commands, running == Some(true))
        };
        let changes = changes(&commands);
        let hash = plan_hash(&id, &commands);
        if let Some(expected) = expected_hash {
            if expected != hash {
                return Err(ApplyError::Stale {
                    expected: expected.to_owned(),
                    actual: hash,
                });
            }
        }
        if !dry_run && running && !commands.is_empty() && !self.live_restart_apply {
            return Err(ApplyError::LiveApplyUnauthorized {
                pipeline: pipeline_id_text,
            });
        }
        let mut events = 0;
        if !dry_run && !commands.is_empty() {
            let command = Command::Provision {
                pipeline: id,
                file: None,
                commands,
            };
            events = self
                .writer
                .execute(&Context::new(actor), &command, None)?
                .len();
        }
        Ok(Applied {
            pipeline: pipeline_id_text,
            changes,
            hash,
            events,
        })
    }

    /// Create the pipeline `document` describes (ImportPipeline), with the same checks as
    /// [`Provisioner::apply`] and as one `Provision` batch recorded with `actor`; the
    /// pipeline stays API-managed and stopped whatever the document's status. Connectors
    /// and processors get the ids `ids` maps their file ids to (`<pipeline>:<connector>`,
    /// `<parent>:<processor>`, see [`plan::connector_id`]) when it names them, so that
    /// entities created over the API keep theirs. A pipeline with the document's id that
    /// exists already is refused ([`DomainError::IdAlreadyExists`]); nothing is written on
    /// any error.
    pub fn import(
        &self,
        document: &PipelineConfig,
        ids: &BTreeMap<String, String>,
        actor: &str,
    ) -> Result<Applied, ApplyError> {
        let exists = |state: &ControlPlane| {
            let id = PipelineId(document.id.clone());
            state.pipeline(&id).is_some().then(|| {
                ApplyError::Command(CommandError::Domain(DomainError::IdAlreadyExists {
                    kind: EntityKind::Pipeline,
                    id: document.id.clone(),
                }))
            })
        };
        // An existing pipeline is the first thing to say, before any problem of the
        // document.
        if let Some(error) = exists(&self.writer.projections().read()) {
            return Err(error);
        }
        let mut pipeline = self.checked(document)?;
        pipeline.running = false;
        let id = PipelineId(pipeline.id.clone());
        let commands = {
            let state = self.writer.projections().read();
            if let Some(error) = exists(&state) {
                return Err(error);
            }
            plan::plan(&state, &pipeline)
        };
        let commands: Vec<Command> = commands
            .into_iter()
            .map(|command| renamed(command, ids))
            .collect();
        let changes = changes(&commands);
        let hash = plan_hash(&id, &commands);
        let command = Command::Provision {
            pipeline: id,
            file: None,
            commands,
        };
        // A pipeline created meanwhile makes the batch's CreatePipeline fail: still nothing
        // is written.
        let events = self
            .writer
            .execute(&Context::new(actor), &command, None)?
            .len();
        Ok(Applied {
            pipeline: pipeline.id,
            changes,
            hash,
            events,
        })
    }

    /// `document` through the file format's own validation and the plugins' checks.
    fn checked(&self, document: &PipelineConfig) -> Result<PipelineConfig, ApplyError> {
        let text = export::to_yaml(std::slice::from_ref(document));
        let parsed = config::parse_verbatim("document", &text);
        let mut problems: Vec<Problem> = parsed
            .problems
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .collect();
        let Some(pipeline) = parsed.pipelines.into_iter().next() else {
            return Err(ApplyError::Invalid(strip_prefix(problems)));
        };
        problems.extend(self.check_plugins(&pipeline));
        if !problems.is_empty() {
            return Err(ApplyError::Invalid(strip_prefix(problems)));
        }
        Ok(pipeline)
    }

    fn execute(
        &self,
        id: &PipelineId,
        file: &str,
        commands: Vec<Command>,
    ) -> Result<usize, CommandError> {
        let context = Context::new(format!("provisioning:{file}"));
        let command = Command::Provision {
            pipeline: id.clone(),
            file: Some(file.to_owned()),
            commands,
        };
        Ok(self.writer.execute(&context, &command, None)?.len())
    }

    /// `pipeline` with each secret that equals what is stored for it (or is `***`) in the
    /// stored, sealed form, so that the plan sees an unchanged secret as unchanged (a sealed
    /// value never equals its plaintext).
    fn with_stored_secrets(
        &self,
        state: &ControlPlane,
        pipeline: &PipelineConfig,
    ) -> PipelineConfig {
        let mut pipeline = pipeline.clone();
        let Some(secrets) = self.writer.secrets() else {
            return pipeline;
        };
        let reuse = |settings: &mut BTreeMap<String, String>,
                     stored: Option<&BTreeMap<String, String>>| {
            if let Some(stored) = stored {
                *settings = secrets.reuse_stored(settings, stored);
            }
        };
        let processors = |parent: &str, list: &mut [config::ProcessorConfig]| {
            for p in list {
                let stored = state.processor(&plan::processor_id(parent, &p.id));
                reuse(&mut p.settings, stored.map(|s| &s.settings));
            }
        };
        for c in &mut pipeline.connectors {
            let cid = plan::connector_id(&pipeline.id, &c.id);
            reuse(&mut c.settings, state.connector(&cid).map(|s| &s.settings));
            processors(cid.as_str(), &mut c.processors);
        }
        processors(&pipeline.id, &mut pipeline.processors);
        let stored_dlq = state
            .pipeline(&PipelineId(pipeline.id.clone()))
            .filter(|p| p.dlq.plugin == pipeline.dlq.plugin)
            .map(|p| &p.dlq.settings);
        reuse(&mut pipeline.dlq.settings, stored_dlq);
        pipeline
    }

    /// Settings as a plugin sees them: sealed values (an exported document's) opened.
    fn opened(
        &self,
        settings: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        match self.writer.secrets() {
            Some(secrets) => secrets.open_settings(settings).map_err(|e| e.to_string()),
            None => Ok(settings.clone()),
        }
    }

    /// Plugins and settings of a pipeline's connectors, processors and DLQ, against the
    /// registries; each problem at the field. Writes nothing (`pipelines validate` uses it
    /// offline, with a throw-away in-memory control plane).
    pub fn check_plugins(&self, pipeline: &PipelineConfig) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |at, path: String, message: String| {
            problems.push(Problem {
                file: pipeline.file.clone(),
                at,
                severity: Severity::Error,
                path,
                message,
            })
        };
        let processors =
            |list: &[config::ProcessorConfig],
             problem: &mut dyn FnMut(yaml::Location, String, String)| {
                for p in list {
                    let settings = match self.opened(&p.settings) {
                        Ok(settings) => settings,
                        Err(message) => {
                            problem(
                                p.at,
                                format!("{}/settings", p.path),
                                format!("processor {:?}: {message}", p.id),
                            );
                            continue;
                        }
                    };
                    if let Err(error) =
                        self.processors
                            .configure(&p.plugin, &settings, &p.condition)
                    {
                        let (field, message) = match &error {
                            ConfigureError::Lookup(_) => ("/plugin".to_owned(), error.to_string()),
                            ConfigureError::Condition(_) => {
                                ("/condition".to_owned(), error.to_string())
                            }
                            ConfigureError::Settings(s) => (
                                format!(
                                    "/settings/{}",
                                    s.0.first().map(|e| e.key.as_str()).unwrap_or("")
                                ),
                                error.to_string(),
                            ),
                            ConfigureError::Plugin(
                                culvert_plugins::PluginError::InvalidSettings(s),
                            ) => (
                                format!(
                                    "/settings/{}",
                                    s.0.first().map(|e| e.key.as_str()).unwrap_or("")
                                ),
                                error.to_string(),
                            ),
                            ConfigureError::Plugin(_) => {
                                ("/settings".to_owned(), error.to_string())
                            }
                        };
                        problem(
                            p.at,
                            format!("{}{field}", p.path),
                            format!("processor {:?}: {message}", p.id),
                        );
                    }
                }
            };
        for c in &pipeline.connectors {
            let side = if c.source {
                Side::Source
            } else {
                Side::Destination
            };
            let settings = match self.opened(&c.settings) {
                Ok(settings) => settings,
                Err(message) => {
                    problem(
                        c.at,
                        format!("{}/settings", c.path),
                        format!("connector {:?}: {message}", c.id),
                    );
                    continue;
                }
            };
            if let Err(error) = self.connectors.validate(&c.plugin, side, &settings) {
                let field = match &error {
                    ValidateError::Lookup(LookupError::NoSuchSide { .. }) => "/type".to_owned(),
                    ValidateError::Lookup(_) => "/plugin".to_owned(),
                    ValidateError::Plugin(_) => "/settings".to_owned(),
                    ValidateError::Settings(s) => format!(
                        "/settings/{}",
                        s.0.first().map(|e| e.key.as_str()).unwrap_or("")
                    ),
                };
                problem(
                    c.at,
                    format!("{}{field}", c.path),
                    format!("connector {:?}: {error}", c.id),
                );
            }
            processors(&c.processors, &mut problem);
        }
        processors(&pipeline.processors, &mut problem);
        let dlq_settings = self.opened(&pipeline.dlq.settings);
        if let Err(error) = dlq_settings.and_then(|settings| {
            self.connectors
                .validate(&pipeline.dlq.plugin, Side::Destination, &settings)
                .map_err(|e| e.to_string())
        }) {
            problem(
                pipeline.at,
                format!("{}/dead-letter-queue", pipeline.path),
                format!("dead-letter queue: {error}"),
            );
        }
        problems
    }
}

/// Problems of a one-pipeline document, with paths from the pipeline (`/connectors/0/...`).
fn strip_prefix(problems: Vec<Problem>) -> Vec<Problem> {
    problems
        .into_iter()
        .map(|mut p| {
            if let Some(rest) = p.path.strip_prefix("/pipelines/0") {
                p.path = if rest.is_empty() {
                    "/".to_owned()
                } else {
                    rest.to_owned()
                };
            }
            p
        })
        .collect()
}

/// The change a planned command makes, for the API's diff.
/// The changes a plan's commands make, as Conduit describes them (the stop and start a
/// plan adds around changes to a running pipeline are how they are applied, not changes).
fn changes(commands: &[Command]) -> Vec<Change> {
    let new_pipeline = commands
        .iter()
        .any(|c| matches!(c, Command::CreatePipeline { .. }));
    let topology = commands.iter().any(|c| {
        matches!(
            c,
            Command::CreateConnector { .. }
                | Command::DeleteConnector { .. }
                | Command::CreateProcessor { .. }
                | Command::DeleteProcessor { .. }
        )
    });
    commands
        .iter()
        .filter_map(change)
        .map(|mut c| {
            c.effect = match (c.resource, c.action) {
                _ if new_pipeline => "in_place",
                ("pipeline", "update") if !topology => "in_place",
                ("connector" | "processor", "update") => "in_place",
                _ => "restart",
            };
            c
        })
        .collect()
}

fn change(command: &Command) -> Option<Change> {
    let (resource, id, action) = match command {
        Command::CreatePipeline { id, .. } => ("pipeline", id.to_string(), "create"),
        Command::UpdatePipeline { id, .. } | Command::UpdatePipelineDlq { id, .. } => {
            ("pipeline", id.to_string(), "update")
        }
        Command::DeletePipeline { id } => ("pipeline", id.to_string(), "delete"),
        Command::CreateConnector { id, .. } => ("connector", id.to_string(), "create"),
        Command::UpdateConnector { id, .. } => ("connector", id.to_string(), "update"),
        Command::DeleteConnector { id } => ("connector", id.to_string(), "delete"),
        Command::CreateProcessor { id, .. } => ("processor", id.to_string(), "create"),
        Command::UpdateProcessor { id, .. } => ("processor", id.to_string(), "update"),
        Command::DeleteProcessor { id } => ("processor", id.to_string(), "delete"),
        _ => return None,
    };
    Some(Change {
        resource,
        id,
        action,
        effect: "restart",
        code: format!("provisioning.{resource}.{action}"),
    })
}

/// A stable hash of a plan (FNV-1a over its commands), as hex.
/// `command` with the connector and processor ids `ids` names replaced (an import's
/// creations keep the exported ids).
fn renamed(command: Command, ids: &BTreeMap<String, String>) -> Command {
    let rename = |id: String| ids.get(&id).cloned().unwrap_or(id);
    match command {
        Command::CreateConnector {
            id,
            pipeline_id,
            connector_type,
            plugin,
            name,
            settings,
        } => Command::CreateConnector {
            id: ConnectorId(rename(id.0)),
            pipeline_id,
            connector_type,
            plugin,
            name,
            settings,
        },
        Command::CreateProcessor {
            id,
            parent,
            plugin,
            settings,
            condition,
            workers,
        } => Command::CreateProcessor {
            id: ProcessorId(rename(id.0)),
            parent: match parent {
                ProcessorParent::Connector(c) => {
                    ProcessorParent::Connector(ConnectorId(rename(c.0)))
                }
                other => other,
            },
            plugin,
            settings,
            condition,
            workers,
        },
        other => other,
    }
}

fn plan_hash(id: &PipelineId, commands: &[Command]) -> String {
    let text = format!("{id}{commands:?}");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Logs how far a long step of provisioning (many files) is, at most every two seconds.
struct Ticker {
    step: &'static str,
    total: usize,
    began: std::time::Instant,
    logged: std::time::Instant,
}

impl Ticker {
    fn new(step: &'static str, total: usize) -> Self {
        let now = std::time::Instant::now();
        Self {
            step,
            total,
            began: now,
            logged: now,
        }
    }

    /// `done` of the total are done.
    fn tick(&mut self, done: usize) {
        let now = std::time::Instant::now();
        if now.duration_since(self.logged) < std::time::Duration::from_secs(2) {
            return;
        }
        self.logged = now;
        let rate = done as f64 / now.duration_since(self.began).as_secs_f64();
        tracing::info!(
            step = self.step,
            done,
            total = self.total,
            per_second = rate as u64,
            "provisioning pipeline files"
        );
    }
}

#[cfg(test)]
mod tests;
