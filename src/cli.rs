//! Client verbs of the `culvert` binary that talk to a running server over gRPC
//! (`--grpc.address`): `pipelines ls|describe|create|start|stop|delete|export|import|inspect`,
//! `connectors ls|describe|position|seek|reset`, `processors ls|describe`, `plugins ls`,
//! `dlq ls|show|reinject`, `revert`, `info`. How they reach the server (TLS, a bearer
//! token, the CLI config file) is [`crate::client`]'s.
//!
//! Every verb that prints an answer takes `-o/--output table|json|yaml` ([`Output`]):
//! `table` (the default) for people, `json` for scripts (the same JSON as the HTTP API;
//! `--json` is the same and stays for existing scripts), `yaml` for the same value as
//! YAML. A stream (`pipelines inspect`, `events ls|tail`) prints one JSON object a line,
//! or one YAML document per item. The switch between them is in one place,
//! [`print_value`] (whole answers) and [`print_item`] (stream items); the offline verbs
//! (`events`, `tokens ls`, `top --once`, `doctor`) use them too. `pipelines graph` keeps
//! `-o/--output` for its output file (its formats are `--format dot|svg`), as `pipelines
//! export` does.
//!
//! Exit codes follow Conduit's CLI: 0 ok, 1 a runtime error, 2 bad usage or validation (a
//! file with errors, an unknown id, a document the server refuses), 3 the environment (no
//! server at the address).

use crate::client::{self, Channel};
use culvert_api::pb::api::v1 as pb;
use culvert_api::pb::culvert::api::v1 as pp;
use culvert_provisioning::config::{
    self, ConnectorConfig, DlqConfig, PipelineConfig, ProcessorConfig, Severity,
};
use culvert_provisioning::yaml::Location;
use pb::connector_service_client::ConnectorServiceClient;
use pb::pipeline_service_client::PipelineServiceClient;
use pb::processor_service_client::ProcessorServiceClient;
use pp::event_log_service_client::EventLogServiceClient;
use pp::source_position_service_client::SourcePositionServiceClient;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the server is, and how to print.
#[derive(clap::Args, Debug, Clone)]
pub struct Remote {
    #[command(flatten)]
    pub server: client::Server,
    #[command(flatten)]
    pub output: Output,
}

impl Remote {
    /// The output format asked for.
    pub fn format(&self) -> OutputFormat {
        self.output.format()
    }
}

/// How a read verb prints its answer: `-o/--output table|json|yaml`, or `--json`.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Output {
    /// `table` (default: aligned columns or `Key: value` lines), `json` (the same JSON
    /// as the HTTP API answers) or `yaml` (that JSON's value as YAML).
    #[arg(
        long = "output",
        short = 'o',
        id = "output_format",
        value_enum,
        default_value_t = OutputFormat::Table
    )]
    pub format: OutputFormat,
    /// The same as `--output json` (kept for scripts).
    #[arg(long, conflicts_with = "output_format")]
    pub json: bool,
}

impl Output {
    /// `--output`, or `json` with `--json`.
    pub fn format(&self) -> OutputFormat {
        if self.json {
            OutputFormat::Json
        } else {
            self.format
        }
    }
}

/// The formats of `--output`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// For people: aligned columns under a header, or `Key: value` lines.
    #[default]
    Table,
    /// For scripts: JSON (one document, or one object a line for a stream).
    Json,
    /// The JSON's value as YAML (one document, or one `---` document per item of a
    /// stream).
    Yaml,
}

/// Print a whole answer as `format` asks: pretty JSON, or the same value as one YAML
/// document. `Ok(false)` for [`OutputFormat::Table`]: the verb prints its table itself.
/// The one place that tells JSON from YAML; every read verb goes through it (or
/// [`print_item`] for streams).
pub fn print_value<T: serde::Serialize>(
    format: OutputFormat,
    value: &T,
) -> Result<bool, OutputError> {
    let text = match format {
        OutputFormat::Table => return Ok(false),
        OutputFormat::Json => serde_json::to_string_pretty(value).map_err(OutputError::json)?,
        OutputFormat::Yaml => yaml_text(value)?,
    };
    println!("{text}");
    Ok(true)
}

/// Print one item of a stream (an event, a record, a check) as `format` asks: one JSON
/// object on one line, or one YAML document (starting `---`). `Ok(false)` for
/// [`OutputFormat::Table`].
pub fn print_item<T: serde::Serialize>(
    format: OutputFormat,
    value: &T,
) -> Result<bool, OutputError> {
    let text = match format {
        OutputFormat::Table => return Ok(false),
        OutputFormat::Json => serde_json::to_string(value).map_err(OutputError::json)?,
        OutputFormat::Yaml => yaml_text(value)?,
    };
    println!("{text}");
    Ok(true)
}

/// An answer that could not be encoded for printing.
#[derive(Debug)]
pub struct OutputError(pub String);

impl OutputError {
    fn json(error: serde_json::Error) -> Self {
        OutputError(format!("encoding the answer: {error}"))
    }
}

impl std::fmt::Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<OutputError> for Failure {
    fn from(error: OutputError) -> Self {
        Failure(1, error.0)
    }
}

/// `value` as a YAML document (`---` first): its JSON value, so that YAML and JSON show
/// the same fields, names and encodings (base64 bytes, string int64s).
fn yaml_text<T: serde::Serialize>(value: &T) -> Result<String, OutputError> {
    let value = serde_json::to_value(value).map_err(OutputError::json)?;
    let mut text = String::new();
    yaml_rust2::YamlEmitter::new(&mut text)
        .dump(&to_yaml(value))
        .map_err(|e| OutputError(format!("encoding the answer as YAML: {e}")))?;
    Ok(text)
}

/// A JSON value as a YAML node.
fn to_yaml(value: serde_json::Value) -> yaml_rust2::Yaml {
    use serde_json::Value;
    use yaml_rust2::Yaml;
    match value {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            // u64 above i64::MAX and floats: YAML reads the digits back as a number.
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s),
        Value::Array(items) => Yaml::Array(items.into_iter().map(to_yaml).collect()),
        Value::Object(map) => Yaml::Hash(
            map.into_iter()
                .map(|(k, v)| (Yaml::String(k), to_yaml(v)))
                .collect(),
        ),
    }
}

/// `culvert pipelines ...`
#[derive(clap::Subcommand, Debug)]
pub enum PipelinesCommand {
    /// List pipelines.
    ///
    /// Example: culvert pipelines ls --json
    #[command(visible_alias = "list")]
    Ls {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a pipeline with its connectors, processors and dead-letter queue.
    ///
    /// Example: culvert pipelines describe orders
    Describe {
        /// The pipeline's id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Draw a pipeline (sources, processors, destinations, its dead-letter queue) as
    /// Graphviz DOT or an SVG image.
    ///
    /// Example: culvert pipelines graph orders --format svg -o orders.svg
    Graph {
        /// The pipeline's id.
        id: String,
        /// `dot` (Graphviz text) or `svg` (an image, laid out here).
        #[arg(long, value_enum, default_value_t = crate::graph::GraphFormat::Dot)]
        format: crate::graph::GraphFormat,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        // The server only: `-o/--output` is the file here, and DOT or SVG the format.
        #[command(flatten)]
        server: client::Server,
    },
    /// Create a pipeline (stopped, without connectors).
    ///
    /// Example: culvert pipelines create orders --description "orders to the lake"
    Create {
        /// Its name (unique).
        name: String,
        /// Its description.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Start a pipeline; returns once it runs (or with the error it failed with).
    ///
    /// Example: culvert pipelines start orders
    Start {
        /// The pipeline's id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stop a pipeline: drain it, or with --force stop at once.
    ///
    /// Example: culvert pipelines stop orders --force
    Stop {
        /// The pipeline's id.
        id: String,
        /// Do not drain.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete a pipeline (it must have no connectors or processors left).
    ///
    /// Example: culvert pipelines delete orders
    Delete {
        /// The pipeline's id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Write a pipeline as a configuration file (version 2.2) that `import`, or the
    /// server's `--pipelines.path`, reads back; or with `--format json` as the server's
    /// ExportPipeline answer, which `import` gives back with the same ids. Secrets are
    /// written sealed, never in clear.
    ///
    /// Example: culvert pipelines export orders > orders.yaml
    Export {
        /// The pipeline's id.
        id: String,
        #[command(flatten)]
        server: client::Server,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// `yaml`: a pipeline configuration file; `json`: the ExportPipeline answer (the
        /// pipeline with its connectors, processors and DLQ, as the HTTP API's export).
        #[arg(long, value_enum, default_value_t = ExportFormat::Yaml)]
        format: ExportFormat,
    },
    /// Create or update the pipelines of a configuration file through the server's API
    /// (ApplyPipeline). They stay editable over the API, unlike pipelines the server
    /// provisions from its own `--pipelines.path`. A JSON file (`export --format json`,
    /// told by its `.json` extension or a leading `{`) is created as it was exported, ids
    /// included (ImportPipeline), stopped; a pipeline with its id must not exist.
    ///
    /// Example: culvert pipelines import orders.yaml --grpc.address 127.0.0.1:8084
    Import {
        /// The configuration file, or a JSON export.
        file: PathBuf,
        #[command(flatten)]
        server: client::Server,
        /// Only show what would change (PlanPipeline).
        #[arg(long)]
        dry_run: bool,
    },
    /// Plan a configuration file's pipelines against the server (PlanPipeline): what would
    /// change, and each plan's hash for `apply --plan-hash`. With --apply, apply the plan
    /// just made (asking first on a terminal, unless --yes). Conduit's `pipelines deploy`.
    ///
    /// Example: culvert pipelines deploy orders.yaml
    Deploy {
        /// The configuration file.
        file: PathBuf,
        #[command(flatten)]
        server: client::Server,
        /// Apply the plan too.
        #[arg(long)]
        apply: bool,
        /// With --apply: do not ask first.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Print only the summary line of each pipeline, not each change.
        #[arg(long, short = 'q')]
        quiet: bool,
        /// Accepted for Conduit's scripts (the output has no colour).
        #[arg(long)]
        no_color: bool,
    },
    /// Apply a configuration file's pipeline as planned by `deploy` (ApplyPipeline): only
    /// if --plan-hash is still the plan's hash (else refused as stale, exit 2), or the plan
    /// as it is now with --yes. Conduit's `pipelines apply`.
    ///
    /// Example: culvert pipelines apply orders.yaml --plan-hash 3f1c...
    Apply {
        /// The configuration file.
        file: PathBuf,
        #[command(flatten)]
        server: client::Server,
        /// The hash `deploy` printed for the plan (a file of one pipeline).
        #[arg(long, conflicts_with = "yes")]
        plan_hash: Option<String>,
        /// Apply the plan as it is now, without a hash.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Accepted for Conduit's scripts (the output has no colour).
        #[arg(long)]
        no_color: bool,
    },
    /// Print the records a connector handles (a source's produced, a destination's
    /// received), or those going into (--in) or out of (--out, the default) a processor,
    /// live, until the stream ends (the entity is deleted or its pipeline stops) or
    /// --count records were printed. Given a pipeline, every connector of it at once, each
    /// line naming its connector. A slow reader loses records for itself only.
    ///
    /// Example: culvert pipelines inspect orders:pg-source --filter customer --count 10
    Inspect {
        /// The pipeline's, connector's or processor's id.
        id: String,
        /// A processor's incoming records.
        #[arg(long = "in", conflicts_with = "output")]
        input: bool,
        /// A processor's outgoing records (the default for a processor).
        #[arg(long = "out")]
        output: bool,
        /// Only records whose JSON contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// Exit after this many records.
        #[arg(long)]
        count: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Check pipeline configuration files offline (no server): every error and warning
    /// with its file, line, column and field, and a suggestion. Exits 2 on errors.
    ///
    /// Example: culvert pipelines validate ./pipelines --output json
    Validate(crate::validate::ValidateArgs),
    /// `validate` plus style warnings (descriptions, ids); `--strict` fails on warnings.
    ///
    /// Example: culvert pipelines lint ./pipelines --strict
    Lint(crate::validate::LintArgs),
    /// Run a pipeline file offline (no server) for a few records and print what each
    /// destination would receive, after every processor, as OpenCDC JSON lines. The
    /// destinations are replaced by capturing sinks: nothing is written to them (nor to
    /// the dead-letter queue), and sources are never acknowledged. Stops after --records
    /// records or --timeout. A file with errors exits 2 with `validate`'s messages.
    ///
    /// Example: culvert pipelines dry-run ./pipelines/orders.yaml --records 5
    DryRun(Box<crate::dry_run::DryRunArgs>),
    /// Show the machine-appliable fixes for a pipeline file's findings (a status in the
    /// wrong case, a negative processor `workers`, an over-long description, the
    /// deprecated processor `type`) as a plan with a hash; with `--apply`, write the safe
    /// ones (or those `--fix` names) into the file, keeping its comments. Offline: the
    /// file only, never a server.
    ///
    /// Example: culvert pipelines repair orders.yaml --apply --plan-hash 9f3a2c...
    Repair(crate::repair::RepairArgs),
    /// Write a pipeline configuration file to start from (offline): from built-in
    /// --source to --destination with every setting and its help, a runnable demo
    /// (neither), or a gallery template (--template NAME; --template list lists them).
    /// Never overwrites a file without --force.
    ///
    /// Example: culvert pipelines init orders --source postgres --destination kafka
    Init(crate::pipeline_init::PipelineInitArgs),
}

/// What `pipelines export` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// A pipeline configuration file (version 2.2), as PlanPipeline/ApplyPipeline take.
    Yaml,
    /// The ExportPipeline answer as JSON, as ImportPipeline takes it.
    Json,
}

/// `culvert connectors ...`
#[derive(clap::Subcommand, Debug)]
pub enum ConnectorsCommand {
    /// List connectors, of every pipeline or of one.
    ///
    /// Example: culvert connectors ls --pipeline orders
    #[command(visible_alias = "list")]
    Ls {
        /// Only this pipeline's.
        #[arg(long)]
        pipeline: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a connector.
    ///
    /// Example: culvert connectors describe orders:src
    Describe {
        /// The connector's id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a source's position (where its next run resumes) and its sampled checkpoints.
    ///
    /// Example: culvert connectors position orders:src
    Position {
        /// The source connector's id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Move a stopped pipeline's source: just after a given position, or after the newest
    /// checkpoint at or before a time. Its next run resumes there (records after it are
    /// read again). Recorded in the audit with the old and new position.
    ///
    /// Example: culvert connectors seek orders:src --checkpoint 2026-12-01T10:00:00Z
    #[command(group = clap::ArgGroup::new("target").required(true).multiple(false))]
    Seek {
        /// The source connector's id.
        id: String,
        /// The position, as text (most connectors' positions are; see `position`).
        #[arg(long, group = "target")]
        position: Option<String>,
        /// The position, base64 (for positions that are not text).
        #[arg(long, group = "target")]
        position_base64: Option<String>,
        /// The newest checkpoint saved at or before this time (RFC 3339).
        #[arg(long, group = "target")]
        checkpoint: Option<String>,
        /// Fail unless the connector is at this version (see `position --json`).
        #[arg(long)]
        expected_version: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Start a stopped pipeline's source over: its next run reads from the beginning.
    ///
    /// Example: culvert connectors reset orders:src
    Reset {
        /// The source connector's id.
        id: String,
        /// Fail unless the connector is at this version.
        #[arg(long)]
        expected_version: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Install a standalone connector plugin (offline; Conduit's `connectors install`, the
    /// same as `culvert connector-plugins install`).
    ///
    /// Example: culvert connectors install file@v0.10.8 --index ./index.json
    Install(crate::plugin_install::InstallArgs),
    /// Remove an installed standalone connector plugin (offline; as `culvert
    /// connector-plugins uninstall`).
    ///
    /// Example: culvert connectors uninstall file
    Uninstall(crate::plugin_install::UninstallArgs),
    /// Check every installed standalone connector against an index again (offline; as
    /// `culvert connector-plugins audit`).
    ///
    /// Example: culvert connectors audit --index ./index.json
    Audit(crate::plugin_audit::AuditArgs),
    /// Scaffold a new connector plugin in Go (conduit-connector-sdk) that builds as it is
    /// written (offline but for the Go module proxy).
    ///
    /// Example: culvert connectors new my-db --module github.com/acme/conduit-connector-my-db
    New(crate::scaffold::NewArgs),
}

/// `culvert processors ...`
#[derive(clap::Subcommand, Debug)]
pub enum ProcessorsCommand {
    /// List processors, of every parent or of some.
    ///
    /// Example: culvert processors ls --parent orders --parent orders:src
    #[command(visible_alias = "list")]
    Ls {
        /// Only those attached to this pipeline or connector (repeatable).
        #[arg(long)]
        parent: Vec<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a processor.
    ///
    /// Example: culvert processors describe orders:tag
    Describe {
        /// The processor's id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Scaffold a new WASM processor plugin in Go (conduit-processor-sdk) that builds as it
    /// is written (offline but for the Go module proxy).
    ///
    /// Example: culvert processors new tagger --module github.com/acme/conduit-processor-tagger
    New(crate::scaffold::NewArgs),
}

/// `culvert plugins ...`
#[derive(clap::Subcommand, Debug)]
pub enum PluginsCommand {
    /// List connector and processor plugins.
    ///
    /// Example: culvert plugins ls --json
    #[command(visible_alias = "list")]
    Ls {
        /// Only plugins whose full name matches this regular expression.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
}

/// A failure with its exit code.
struct Failure(u8, String);

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        // Conduit's `exitcode` mapping.
        let code = match status.code() {
            Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::OutOfRange => 2,
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Unauthenticated
            | Code::PermissionDenied => 3,
            _ => 1,
        };
        Failure(code, client::status_message(&status))
    }
}

impl From<client::ClientError> for Failure {
    fn from(error: client::ClientError) -> Self {
        Failure(error.code, error.message)
    }
}

/// Run an async verb to an exit code.
fn block_on(verb: impl std::future::Future<Output = Result<(), Failure>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(verb) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// Run a `pipelines` verb.
pub fn run(command: PipelinesCommand) -> ExitCode {
    // A dry run has its own multi-threaded runtime (it runs pipelines).
    let command = match command {
        PipelinesCommand::DryRun(args) => return crate::dry_run::run(*args),
        PipelinesCommand::Repair(args) => return crate::repair::run(args),
        PipelinesCommand::Init(args) => return crate::pipeline_init::run(args),
        other => other,
    };
    block_on(async {
        match command {
            PipelinesCommand::Validate(args) => {
                crate::validate::validate(&args).map_err(|(code, why)| Failure(code, why))
            }
            PipelinesCommand::Lint(args) => {
                crate::validate::lint(&args).map_err(|(code, why)| Failure(code, why))
            }
            PipelinesCommand::DryRun(_)
            | PipelinesCommand::Repair(_)
            | PipelinesCommand::Init(_) => {
                unreachable!("dry-run and repair are dispatched before this runtime starts")
            }
            PipelinesCommand::Ls { remote } => pipelines_ls(&remote).await,
            PipelinesCommand::Describe { id, remote } => pipelines_describe(&id, &remote).await,
            PipelinesCommand::Graph {
                id,
                format,
                output,
                server,
            } => pipelines_graph(&id, format, output, &server).await,
            PipelinesCommand::Create {
                name,
                description,
                remote,
            } => pipelines_create(&name, &description, &remote).await,
            PipelinesCommand::Start { id, remote } => {
                let mut client = PipelineServiceClient::new(connect(&remote.server).await?);
                client
                    .start_pipeline(pb::StartPipelineRequest { id: id.clone() })
                    .await?;
                println!("pipeline {id}: running");
                Ok(())
            }
            PipelinesCommand::Stop { id, force, remote } => {
                let mut client = PipelineServiceClient::new(connect(&remote.server).await?);
                client
                    .stop_pipeline(pb::StopPipelineRequest {
                        id: id.clone(),
                        force,
                    })
                    .await?;
                println!("pipeline {id}: stop requested");
                Ok(())
            }
            PipelinesCommand::Delete { id, remote } => {
                let mut client = PipelineServiceClient::new(connect(&remote.server).await?);
                client
                    .delete_pipeline(pb::DeletePipelineRequest {
                        id: id.clone(),
                        ..Default::default()
                    })
                    .await?;
                println!("pipeline {id}: deleted");
                Ok(())
            }
            PipelinesCommand::Export {
                id,
                server,
                output,
                format: ExportFormat::Yaml,
            } => export(&id, &server, output).await,
            PipelinesCommand::Export {
                id,
                server,
                output,
                format: ExportFormat::Json,
            } => export_json(&id, &server, output).await,
            PipelinesCommand::Import {
                file,
                server,
                dry_run,
            } => import(&file, &server, dry_run).await,
            PipelinesCommand::Deploy {
                file,
                server,
                apply,
                yes,
                quiet,
                no_color: _,
            } => deploy(&file, &server, apply, yes, quiet).await,
            PipelinesCommand::Apply {
                file,
                server,
                plan_hash,
                yes,
                no_color: _,
            } => apply(&file, &server, plan_hash, yes).await,
            PipelinesCommand::Inspect {
                id,
                input,
                output,
                filter,
                count,
                remote,
            } => inspect(&id, input, output, filter.as_deref(), count, &remote).await,
        }
    })
}

/// Run a `connectors` verb.
pub fn run_connectors(command: ConnectorsCommand) -> ExitCode {
    // Conduit's names for the plugin verbs: the same as `connector-plugins ...`.
    use crate::plugin_install::{run as run_plugin_verb, Kind, PluginsCommand as Verb};
    let command = match command {
        ConnectorsCommand::Install(args) => {
            return run_plugin_verb(Kind::Connector, Verb::Install(args))
        }
        ConnectorsCommand::Uninstall(args) => {
            return run_plugin_verb(Kind::Connector, Verb::Uninstall(args))
        }
        ConnectorsCommand::Audit(args) => {
            return run_plugin_verb(Kind::Connector, Verb::Audit(args))
        }
        ConnectorsCommand::New(args) => {
            return crate::scaffold::run(crate::scaffold::Kind::Connector, args)
        }
        other => other,
    };
    block_on(async {
        match command {
            ConnectorsCommand::Ls { pipeline, remote } => {
                let mut client = ConnectorServiceClient::new(connect(&remote.server).await?);
                let connectors = client
                    .list_connectors(pb::ListConnectorsRequest {
                        pipeline_id: pipeline.unwrap_or_default(),
                    })
                    .await?
                    .into_inner()
                    .connectors;
                if print_value(remote.format(), &connectors)? {
                    return Ok(());
                }
                let rows = connectors
                    .iter()
                    .map(|c| {
                        let config = c.config.clone().unwrap_or_default();
                        vec![
                            c.id.clone(),
                            connector_type(c.r#type).to_owned(),
                            c.plugin.clone(),
                            c.pipeline_id.clone(),
                            config.name,
                        ]
                    })
                    .collect();
                table(&["ID", "TYPE", "PLUGIN", "PIPELINE", "NAME"], rows);
                Ok(())
            }
            ConnectorsCommand::Position { id, remote } => {
                let mut client = SourcePositionServiceClient::new(connect(&remote.server).await?);
                let position = client
                    .get_source_position(pp::GetSourcePositionRequest { connector_id: id })
                    .await?
                    .into_inner();
                if print_value(remote.format(), &position)? {
                    return Ok(());
                }
                print_position(&position);
                Ok(())
            }
            ConnectorsCommand::Seek {
                id,
                position,
                position_base64,
                checkpoint,
                expected_version,
                remote,
            } => {
                use pp::set_source_position_request::Target;
                let target = match (position, position_base64, checkpoint) {
                    (Some(text), _, _) => Target::Position(text.into_bytes()),
                    (_, Some(b64), _) => {
                        use base64::Engine as _;
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(b64.trim())
                            .map_err(|e| Failure(2, format!("--position-base64: {e}")))?;
                        Target::Position(bytes)
                    }
                    (_, _, Some(time)) => {
                        let at = chrono::DateTime::parse_from_rfc3339(&time).map_err(|e| {
                            Failure(
                                2,
                                format!("--checkpoint: {time:?} is not an RFC 3339 time: {e}"),
                            )
                        })?;
                        Target::CheckpointAt(culvert_api::wkt::Timestamp {
                            seconds: at.timestamp(),
                            nanos: at.timestamp_subsec_nanos() as i32,
                        })
                    }
                    (None, None, None) => {
                        return Err(Failure(
                            2,
                            "say where: --position, --position-base64 or --checkpoint".into(),
                        ))
                    }
                };
                move_position(id, target, expected_version, &remote).await
            }
            ConnectorsCommand::Reset {
                id,
                expected_version,
                remote,
            } => {
                let target = pp::set_source_position_request::Target::Reset(true);
                move_position(id, target, expected_version, &remote).await
            }
            ConnectorsCommand::Describe { id, remote } => {
                let mut client = ConnectorServiceClient::new(connect(&remote.server).await?);
                let c = client
                    .get_connector(pb::GetConnectorRequest { id })
                    .await?
                    .into_inner()
                    .connector
                    .unwrap_or_default();
                if print_value(remote.format(), &c)? {
                    return Ok(());
                }
                let config = c.config.clone().unwrap_or_default();
                println!("ID:         {}", c.id);
                println!("Type:       {}", connector_type(c.r#type));
                println!("Plugin:     {}", c.plugin);
                println!("Pipeline:   {}", c.pipeline_id);
                println!("Name:       {}", config.name);
                println!("Processors: {}", c.processor_ids.join(", "));
                println!("Settings:");
                let mut settings: Vec<_> = config.settings.into_iter().collect();
                settings.sort();
                for (k, v) in settings {
                    println!("  {k}: {v}");
                }
                Ok(())
            }
            ConnectorsCommand::Install(_)
            | ConnectorsCommand::Uninstall(_)
            | ConnectorsCommand::Audit(_)
            | ConnectorsCommand::New(_) => {
                unreachable!("the plugin verbs are dispatched before this runtime starts")
            }
        }
    })
}

/// Run a `processors` verb.
pub fn run_processors(command: ProcessorsCommand) -> ExitCode {
    let command = match command {
        ProcessorsCommand::New(args) => {
            return crate::scaffold::run(crate::scaffold::Kind::Processor, args)
        }
        other => other,
    };
    block_on(async {
        match command {
            ProcessorsCommand::Ls { parent, remote } => {
                let mut client = ProcessorServiceClient::new(connect(&remote.server).await?);
                let processors = client
                    .list_processors(pb::ListProcessorsRequest { parent_ids: parent })
                    .await?
                    .into_inner()
                    .processors;
                if print_value(remote.format(), &processors)? {
                    return Ok(());
                }
                let rows = processors
                    .iter()
                    .map(|p| {
                        vec![
                            p.id.clone(),
                            p.plugin.clone(),
                            p.parent.as_ref().map(|x| x.id.clone()).unwrap_or_default(),
                            p.condition.clone(),
                        ]
                    })
                    .collect();
                table(&["ID", "PLUGIN", "PARENT", "CONDITION"], rows);
                Ok(())
            }
            ProcessorsCommand::Describe { id, remote } => {
                let mut client = ProcessorServiceClient::new(connect(&remote.server).await?);
                let p = client
                    .get_processor(pb::GetProcessorRequest { id })
                    .await?
                    .into_inner()
                    .processor
                    .unwrap_or_default();
                if print_value(remote.format(), &p)? {
                    return Ok(());
                }
                let config = p.config.clone().unwrap_or_default();
                println!("ID:        {}", p.id);
                println!("Plugin:    {}", p.plugin);
                println!(
                    "Parent:    {}",
                    p.parent.as_ref().map(|x| x.id.as_str()).unwrap_or("")
                );
                println!("Condition: {}", p.condition);
                println!("Workers:   {}", config.workers);
                println!("Settings:");
                let mut settings: Vec<_> = config.settings.into_iter().collect();
                settings.sort();
                for (k, v) in settings {
                    println!("  {k}: {v}");
                }
                Ok(())
            }
            ProcessorsCommand::New(_) => {
                unreachable!("`processors new` is dispatched before this runtime starts")
            }
        }
    })
}

/// Run `plugins ls`.
pub fn run_plugins(command: PluginsCommand) -> ExitCode {
    let PluginsCommand::Ls { name, remote } = command;
    block_on(async move {
        let channel = connect(&remote.server).await?;
        let name = name.unwrap_or_default();
        let connectors = ConnectorServiceClient::new(channel.clone())
            .list_connector_plugins(pb::ListConnectorPluginsRequest { name: name.clone() })
            .await?
            .into_inner()
            .plugins;
        let processors = ProcessorServiceClient::new(channel)
            .list_processor_plugins(pb::ListProcessorPluginsRequest { name })
            .await?
            .into_inner()
            .plugins;
        let both = serde_json::json!({ "connectors": connectors, "processors": processors });
        if print_value(remote.format(), &both)? {
            return Ok(());
        }
        let mut rows: Vec<Vec<String>> = connectors
            .iter()
            .map(|p| vec![p.name.clone(), "connector".into(), p.summary.clone()])
            .collect();
        rows.extend(
            processors
                .iter()
                .map(|p| vec![p.name.clone(), "processor".into(), p.summary.clone()]),
        );
        table(&["NAME", "KIND", "SUMMARY"], rows);
        Ok(())
    })
}

/// Run `connector-plugins list|describe` (`connectors`) or `processor-plugins
/// list|describe`: the plugins of one kind whose name matches `name`, or with `describe`
/// the one plugin it names (exactly, or as a regular expression matching one) in full.
pub fn run_plugins_of(
    connectors: bool,
    name: Option<String>,
    describe: Option<String>,
    remote: Remote,
) -> ExitCode {
    block_on(async move {
        let channel = connect(&remote.server).await?;
        let filter = match &describe {
            // `TYPE:NAME@VERSION` exactly, `TYPE:NAME` or `NAME` at any version (the
            // server matches the whole name).
            Some(id) if id.contains('@') => regex_quote(id),
            Some(id) if id.contains(':') => format!("{}@.*", regex_quote(id)),
            Some(id) => format!("(builtin|standalone):{}@.*", regex_quote(id)),
            None => name.unwrap_or_default(),
        };
        let (value, plugins): (serde_json::Value, Vec<PluginInfo>) = if connectors {
            let plugins = ConnectorServiceClient::new(channel)
                .list_connector_plugins(pb::ListConnectorPluginsRequest { name: filter })
                .await?
                .into_inner()
                .plugins;
            let value = serde_json::json!(plugins);
            let rows = plugins
                .into_iter()
                .map(|p| {
                    let mut sides = vec![];
                    if !p.source_params.is_empty() {
                        sides.push(("source", p.source_params));
                    }
                    if !p.destination_params.is_empty() {
                        sides.push(("destination", p.destination_params));
                    }
                    PluginInfo {
                        name: p.name,
                        summary: p.summary,
                        description: p.description,
                        version: p.version,
                        author: p.author,
                        sides,
                    }
                })
                .collect();
            (value, rows)
        } else {
            let plugins = ProcessorServiceClient::new(channel)
                .list_processor_plugins(pb::ListProcessorPluginsRequest { name: filter })
                .await?
                .into_inner()
                .plugins;
            let value = serde_json::json!(plugins);
            let rows = plugins
                .into_iter()
                .map(|p| PluginInfo {
                    name: p.name,
                    summary: p.summary,
                    description: p.description,
                    version: p.version,
                    author: p.author,
                    sides: vec![("processor", p.parameters)],
                })
                .collect();
            (value, rows)
        };
        let kind = if connectors { "connector" } else { "processor" };
        let Some(id) = describe else {
            if print_value(remote.format(), &value)? {
                return Ok(());
            }
            let rows = plugins
                .into_iter()
                .map(|p| vec![p.name, p.summary])
                .collect();
            table(&["NAME", "SUMMARY"], rows);
            return Ok(());
        };
        let one = match plugins.len() {
            1 => &plugins[0],
            0 => return Err(Failure(2, format!("{kind} plugin {id:?} not found"))),
            n => {
                let names: Vec<&str> = plugins.iter().map(|p| p.name.as_str()).collect();
                return Err(Failure(
                    2,
                    format!("{id:?} matches {n} {kind} plugins: {}", names.join(", ")),
                ));
            }
        };
        if print_value(remote.format(), &value[0])? {
            return Ok(());
        }
        println!("Name:        {}", one.name);
        println!("Version:     {}", one.version);
        println!("Author:      {}", one.author);
        println!("Summary:     {}", one.summary);
        println!("Description: {}", one.description.trim());
        for (side, params) in &one.sides {
            println!("Parameters ({side}):");
            let mut rows: Vec<Vec<String>> = params
                .iter()
                .map(|(key, p)| {
                    let line = p.description.lines().next().unwrap_or_default();
                    vec![key.clone(), p.default.clone(), line.to_owned()]
                })
                .collect();
            rows.sort();
            table(&["NAME", "DEFAULT", "DESCRIPTION"], rows);
        }
        Ok(())
    })
}

/// What `describe` shows of a plugin: its specification, parameters by side.
struct PluginInfo {
    name: String,
    summary: String,
    description: String,
    version: String,
    author: String,
    sides: Vec<(
        &'static str,
        std::collections::HashMap<String, culvert_api::pb::config::v1::Parameter>,
    )>,
}

/// `text` with the regular-expression metacharacters escaped.
fn regex_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted
}

/// Run `info`.
pub fn run_info(remote: Remote) -> ExitCode {
    block_on(async move {
        let info = pb::information_service_client::InformationServiceClient::new(
            connect(&remote.server).await?,
        )
        .get_info(pb::GetInfoRequest {})
        .await?
        .into_inner()
        .info
        .unwrap_or_default();
        if print_value(remote.format(), &info)? {
            return Ok(());
        }
        println!("version: {}", info.version);
        println!("os:      {}", info.os);
        println!("arch:    {}", info.arch);
        Ok(())
    })
}

fn connector_type(value: i32) -> &'static str {
    match pb::connector::Type::try_from(value) {
        Ok(pb::connector::Type::Source) => "source",
        Ok(pb::connector::Type::Destination) => "destination",
        _ => "unspecified",
    }
}

fn status_name(pipeline: &pb::Pipeline) -> &'static str {
    let status = pipeline
        .state
        .as_ref()
        .map(|s| s.status)
        .unwrap_or_default();
    match pb::pipeline::Status::try_from(status) {
        Ok(pb::pipeline::Status::Running) => "running",
        Ok(pb::pipeline::Status::Stopped) => "stopped",
        Ok(pb::pipeline::Status::Degraded) => "degraded",
        Ok(pb::pipeline::Status::Recovering) => "recovering",
        _ => "unspecified",
    }
}

/// Print rows under a header, each column as wide as its widest cell.
pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

async fn pipelines_ls(remote: &Remote) -> Result<(), Failure> {
    let mut client = PipelineServiceClient::new(connect(&remote.server).await?);
    let pipelines = client
        .list_pipelines(pb::ListPipelinesRequest::default())
        .await?
        .into_inner()
        .pipelines;
    if print_value(remote.format(), &pipelines)? {
        return Ok(());
    }
    let rows = pipelines
        .iter()
        .map(|p| {
            let config = p.config.clone().unwrap_or_default();
            vec![
                p.id.clone(),
                config.name,
                status_name(p).to_owned(),
                p.connector_ids.len().to_string(),
                p.processor_ids.len().to_string(),
            ]
        })
        .collect();
    table(&["ID", "NAME", "STATUS", "CONNECTORS", "PROCESSORS"], rows);
    Ok(())
}

async fn pipelines_graph(
    id: &str,
    format: crate::graph::GraphFormat,
    output: Option<PathBuf>,
    server: &client::Server,
) -> Result<(), Failure> {
    let detail = pipeline_detail(id, server).await?;
    let dot = crate::graph::dot(&detail);
    let text = match format {
        crate::graph::GraphFormat::Dot => dot,
        crate::graph::GraphFormat::Svg => crate::graph::svg(&dot).map_err(|why| Failure(1, why))?,
    };
    match output {
        Some(path) => std::fs::write(&path, text)
            .map_err(|e| Failure(1, format!("writing {}: {e}", path.display()))),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

async fn pipelines_describe(id: &str, remote: &Remote) -> Result<(), Failure> {
    let crate::graph::Detail {
        pipeline: p,
        connectors,
        processors,
        dlq,
    } = pipeline_detail(id, &remote.server).await?;
    let detail = serde_json::json!({
        "pipeline": p, "connectors": connectors, "processors": processors, "dlq": dlq
    });
    if print_value(remote.format(), &detail)? {
        return Ok(());
    }
    let config = p.config.clone().unwrap_or_default();
    println!("ID:          {}", p.id);
    println!("Name:        {}", config.name);
    println!("Description: {}", config.description);
    println!("Status:      {}", status_name(&p));
    if let Some(error) = p
        .state
        .as_ref()
        .map(|s| s.error.as_str())
        .filter(|e| !e.is_empty())
    {
        println!("Error:       {error}");
    }
    println!(
        "DLQ:         {} (window {}, nack threshold {})",
        dlq.plugin, dlq.window_size, dlq.window_nack_threshold
    );
    println!("Connectors:");
    for c in &connectors {
        println!("  {} ({}, {})", c.id, connector_type(c.r#type), c.plugin);
    }
    println!("Processors:");
    for q in &processors {
        let parent = q.parent.as_ref().map(|x| x.id.as_str()).unwrap_or("");
        println!("  {} ({}, on {parent})", q.id, q.plugin);
    }
    Ok(())
}

/// A pipeline with its connectors, processors and DLQ, from the server.
async fn pipeline_detail(
    id: &str,
    server: &client::Server,
) -> Result<crate::graph::Detail, Failure> {
    let channel = connect(server).await?;
    let mut pipelines = PipelineServiceClient::new(channel.clone());
    let p = pipelines
        .get_pipeline(pb::GetPipelineRequest { id: id.to_owned() })
        .await?
        .into_inner()
        .pipeline
        .unwrap_or_default();
    let dlq = pipelines
        .get_dlq(pb::GetDlqRequest { id: id.to_owned() })
        .await?
        .into_inner()
        .dlq
        .unwrap_or_default();
    let connectors = ConnectorServiceClient::new(channel.clone())
        .list_connectors(pb::ListConnectorsRequest {
            pipeline_id: id.to_owned(),
        })
        .await?
        .into_inner()
        .connectors;
    let mut parents = vec![id.to_owned()];
    parents.extend(connectors.iter().map(|c| c.id.clone()));
    let processors = ProcessorServiceClient::new(channel)
        .list_processors(pb::ListProcessorsRequest {
            parent_ids: parents,
        })
        .await?
        .into_inner()
        .processors;
    Ok(crate::graph::Detail {
        pipeline: p,
        connectors,
        processors,
        dlq,
    })
}

async fn pipelines_create(name: &str, description: &str, remote: &Remote) -> Result<(), Failure> {
    let mut client = PipelineServiceClient::new(connect(&remote.server).await?);
    let p = client
        .create_pipeline(pb::CreatePipelineRequest {
            config: Some(pb::pipeline::Config {
                name: name.to_owned(),
                description: description.to_owned(),
            }),
        })
        .await?
        .into_inner()
        .pipeline
        .unwrap_or_default();
    if print_value(remote.format(), &p)? {
        return Ok(());
    }
    println!("{}", p.id);
    Ok(())
}

async fn connect(server: &client::Server) -> Result<Channel, Failure> {
    Ok(client::connect(server).await?)
}

/// `child` without its parent's `<parent>:` prefix (how files name them).
fn short(parent: &str, child: &str) -> String {
    child
        .strip_prefix(parent)
        .and_then(|rest| rest.strip_prefix(':'))
        .unwrap_or(child)
        .to_owned()
}

async fn processors(
    client: &mut ProcessorServiceClient<Channel>,
    parent: &str,
    ids: &[String],
) -> Result<Vec<ProcessorConfig>, Failure> {
    let mut out = Vec::new();
    for id in ids {
        // Secrets as the server stores them (sealed), never in clear.
        let p = client
            .get_processor(crate::tools::export_request(pb::GetProcessorRequest {
                id: id.clone(),
            }))
            .await?
            .into_inner()
            .processor
            .ok_or_else(|| Failure(1, format!("processor {id}: empty answer")))?;
        let config = p.config.unwrap_or_default();
        out.push(ProcessorConfig {
            at: Location::default(),
            path: String::new(),
            id: short(parent, &p.id),
            plugin: p.plugin,
            condition: p.condition,
            settings: config.settings.into_iter().collect(),
            workers: config.workers.max(1),
        });
    }
    Ok(out)
}

async fn export(id: &str, server: &client::Server, output: Option<PathBuf>) -> Result<(), Failure> {
    let channel = connect(server).await?;
    let mut pipelines = PipelineServiceClient::new(channel.clone());
    let mut connectors = ConnectorServiceClient::new(channel.clone());
    let mut processor_client = ProcessorServiceClient::new(channel);
    let p = pipelines
        .get_pipeline(pb::GetPipelineRequest { id: id.to_owned() })
        .await?
        .into_inner()
        .pipeline
        .ok_or_else(|| Failure(1, format!("pipeline {id}: empty answer")))?;
    let status = p.state.as_ref().map(|s| s.status).unwrap_or_default();
    let running = matches!(
        pb::pipeline::Status::try_from(status),
        Ok(pb::pipeline::Status::Running | pb::pipeline::Status::Recovering)
    );
    let mut connector_configs = Vec::new();
    for connector_id in &p.connector_ids {
        let c = connectors
            .get_connector(crate::tools::export_request(pb::GetConnectorRequest {
                id: connector_id.clone(),
            }))
            .await?
            .into_inner()
            .connector
            .ok_or_else(|| Failure(1, format!("connector {connector_id}: empty answer")))?;
        let config = c.config.unwrap_or_default();
        connector_configs.push(ConnectorConfig {
            at: Location::default(),
            path: String::new(),
            id: short(&p.id, &c.id),
            source: c.r#type == pb::connector::Type::Source as i32,
            plugin: c.plugin,
            name: config.name,
            settings: config.settings.into_iter().collect(),
            processors: processors(&mut processor_client, &c.id, &c.processor_ids).await?,
        });
    }
    let config = p.config.clone().unwrap_or_default();
    let dlq = pipelines
        .get_dlq(crate::tools::export_request(pb::GetDlqRequest {
            id: p.id.clone(),
        }))
        .await?
        .into_inner()
        .dlq
        .unwrap_or_default();
    let mut pipeline = PipelineConfig {
        file: String::new(),
        at: Location::default(),
        path: String::new(),
        id: p.id.clone(),
        running,
        name: config.name,
        description: config.description,
        connectors: connector_configs,
        processors: processors(&mut processor_client, &p.id, &p.processor_ids).await?,
        dlq: DlqConfig {
            plugin: dlq.plugin,
            settings: dlq.settings.into_iter().collect(),
            window_size: dlq.window_size,
            window_nack_threshold: dlq.window_nack_threshold,
        },
    };
    crate::tools::protect_export(std::slice::from_mut(&mut pipeline));
    let text = culvert_provisioning::export::to_yaml(std::slice::from_ref(&pipeline));
    match output {
        None => print!("{text}"),
        Some(path) => std::fs::write(&path, text)
            .map_err(|e| Failure(1, format!("writing {}: {e}", path.display())))?,
    }
    Ok(())
}

fn document(p: &PipelineConfig) -> pb::PipelineDocument {
    let processors = |list: &[ProcessorConfig]| {
        list.iter()
            .map(|q| pb::pipeline_document::Processor {
                id: q.id.clone(),
                plugin: q.plugin.clone(),
                settings: q.settings.clone().into_iter().collect(),
                workers: q.workers,
                condition: q.condition.clone(),
            })
            .collect()
    };
    pb::PipelineDocument {
        id: p.id.clone(),
        status: if p.running { "running" } else { "stopped" }.to_owned(),
        name: p.name.clone(),
        description: p.description.clone(),
        connectors: p
            .connectors
            .iter()
            .map(|c| pb::pipeline_document::Connector {
                id: c.id.clone(),
                r#type: if c.source { "source" } else { "destination" }.to_owned(),
                plugin: c.plugin.clone(),
                name: c.name.clone(),
                settings: c.settings.clone().into_iter().collect(),
                processors: processors(&c.processors),
            })
            .collect(),
        processors: processors(&p.processors),
        dlq: Some(pb::pipeline_document::Dlq {
            plugin: p.dlq.plugin.clone(),
            settings: p.dlq.settings.clone().into_iter().collect(),
            window_size: p.dlq.window_size,
            window_nack_threshold: p.dlq.window_nack_threshold,
        }),
    }
}

/// `pipelines export --format json`: the ExportPipeline answer, in the HTTP API's form.
async fn export_json(
    id: &str,
    server: &client::Server,
    output: Option<PathBuf>,
) -> Result<(), Failure> {
    let mut pipelines = PipelineServiceClient::new(connect(server).await?);
    let reply = pipelines
        .export_pipeline(pb::ExportPipelineRequest { id: id.to_owned() })
        .await?
        .into_inner();
    let export = culvert_api::export::PipelineExport::from(reply);
    let mut text = serde_json::to_string_pretty(&export)
        .map_err(|e| Failure(1, format!("encoding the export as JSON: {e}")))?;
    text.push('\n');
    match output {
        None => print!("{text}"),
        Some(path) => std::fs::write(&path, text)
            .map_err(|e| Failure(1, format!("writing {}: {e}", path.display())))?,
    }
    Ok(())
}

/// Whether a file to import is a JSON export rather than a configuration file.
fn is_json_export(file: &std::path::Path, text: &str) -> bool {
    file.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || text.trim_start().starts_with('{')
}

/// `pipelines import` of a JSON export: ImportPipeline.
async fn import_json(name: &str, text: &str, server: &client::Server) -> Result<(), Failure> {
    let export: culvert_api::export::PipelineExport =
        serde_json::from_str(text).map_err(|e| Failure(2, format!("{name}: {e}")))?;
    let mut pipelines = PipelineServiceClient::new(connect(server).await?);
    let imported = pipelines
        .import_pipeline(pb::ImportPipelineRequest::from(export))
        .await?
        .into_inner()
        .pipeline
        .unwrap_or_default();
    println!("pipeline {}: imported (stopped)", imported.id);
    Ok(())
}

async fn import(
    file: &std::path::Path,
    server: &client::Server,
    dry_run: bool,
) -> Result<(), Failure> {
    let name = file.display().to_string();
    let text =
        std::fs::read_to_string(file).map_err(|e| Failure(2, format!("reading {name}: {e}")))?;
    if is_json_export(file, &text) {
        if dry_run {
            return Err(Failure(
                2,
                format!("{name}: --dry-run is for configuration files, not JSON exports"),
            ));
        }
        return import_json(&name, &text, server).await;
    }
    let parsed = parse_config_file(&name, &text)?;
    let channel = connect(server).await?;
    let mut pipelines = PipelineServiceClient::new(channel);
    for p in &parsed {
        let diff = if dry_run {
            pipelines
                .plan_pipeline(pb::PlanPipelineRequest {
                    config: Some(document(p)),
                })
                .await?
                .into_inner()
                .diff
        } else {
            Some(apply_as_planned_now(&mut pipelines, document(p)).await?)
        }
        .unwrap_or_default();
        let verb = if dry_run { "would change" } else { "changed" };
        print_changes(&p.id, &diff, &|_| format!("{verb}:"), false);
    }
    Ok(())
}

/// The pipelines of a configuration file, its problems printed; refused (exit 2, nothing
/// sent) when it has errors.
fn parse_config_file(name: &str, text: &str) -> Result<Vec<PipelineConfig>, Failure> {
    let parsed = config::parse(name, text, &|var| std::env::var(var).ok());
    for problem in &parsed.problems {
        eprintln!("{problem}");
    }
    let errors = parsed
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    if errors > 0 {
        return Err(Failure(
            2,
            format!("{name}: {errors} error(s); nothing sent to the server"),
        ));
    }
    Ok(parsed.pipelines)
}

/// A configuration file's text (not a JSON export: those are imported, not planned).
fn config_file_text(file: &std::path::Path) -> Result<(String, String), Failure> {
    let name = file.display().to_string();
    let text =
        std::fs::read_to_string(file).map_err(|e| Failure(2, format!("reading {name}: {e}")))?;
    if is_json_export(file, &text) {
        return Err(Failure(
            2,
            format!("{name} is a JSON export: bring it in with `culvert pipelines import`"),
        ));
    }
    Ok((name, text))
}

/// Print a plan's or an application's changes (or only its summary).
fn print_diff(id: &str, diff: &pb::Diff, verb: &str, quiet: bool) {
    print_changes(id, diff, &|n| format!("{verb} {n} change(s)"), quiet);
}

/// A pipeline's changes: `pipeline ID: HEADING` (`heading` of their number), then each
/// unless `quiet`; or `pipeline ID: up to date`.
fn print_changes(id: &str, diff: &pb::Diff, heading: &dyn Fn(usize) -> String, quiet: bool) {
    if diff.changes.is_empty() {
        println!("pipeline {id}: up to date");
        return;
    }
    println!("pipeline {id}: {}", heading(diff.changes.len()));
    if !quiet {
        for change in &diff.changes {
            println!("  {} {} {}", change.action, change.resource, change.id);
        }
    }
}

/// `culvert pipelines deploy`: plan (and with `apply`, apply) a file's pipelines.
async fn deploy(
    file: &std::path::Path,
    server: &client::Server,
    apply: bool,
    yes: bool,
    quiet: bool,
) -> Result<(), Failure> {
    let (name, text) = config_file_text(file)?;
    let parsed = parse_config_file(&name, &text)?;
    let mut pipelines = PipelineServiceClient::new(connect(server).await?);
    let mut plans = Vec::new();
    for p in &parsed {
        let diff = pipelines
            .plan_pipeline(pb::PlanPipelineRequest {
                config: Some(document(p)),
            })
            .await?
            .into_inner()
            .diff
            .unwrap_or_default();
        print_diff(&p.id, &diff, "would make", quiet);
        if !apply && !diff.changes.is_empty() {
            println!(
                "  plan hash: {} (culvert pipelines apply {name} --plan-hash {})",
                diff.hash, diff.hash
            );
        }
        plans.push((p, diff));
    }
    if !apply || plans.iter().all(|(_, diff)| diff.changes.is_empty()) {
        return Ok(());
    }
    if !yes {
        use std::io::{BufRead as _, IsTerminal as _, Write as _};
        if !std::io::stdin().is_terminal() {
            return Err(Failure(
                2,
                "--apply asks before it changes anything, and there is no terminal to ask                  on: add --yes"
                    .into(),
            ));
        }
        print!("Apply these changes? [y/N] ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("nothing applied");
            return Ok(());
        }
    }
    for (p, plan) in plans {
        if plan.changes.is_empty() {
            continue;
        }
        // The plan just shown, and no other: a change in between is refused as stale.
        let diff = pipelines
            .apply_pipeline(pb::ApplyPipelineRequest {
                config: Some(document(p)),
                hash: plan.hash,
            })
            .await?
            .into_inner()
            .diff
            .unwrap_or_default();
        print_diff(&p.id, &diff, "made", quiet);
    }
    Ok(())
}

/// `culvert pipelines apply`: apply a file's pipeline if the plan is still the one whose
/// hash is given, or as it is now with `yes`.
async fn apply(
    file: &std::path::Path,
    server: &client::Server,
    plan_hash: Option<String>,
    yes: bool,
) -> Result<(), Failure> {
    let (name, text) = config_file_text(file)?;
    let parsed = parse_config_file(&name, &text)?;
    let hash = match (plan_hash, yes) {
        (Some(hash), _) if parsed.len() == 1 => hash,
        (Some(_), _) => {
            return Err(Failure(
                2,
                format!(
                    "{name} has {} pipelines and a plan hash is one pipeline's: apply them                      with --yes, or one file per pipeline",
                    parsed.len()
                ),
            ))
        }
        // The plan as it is now (ApplyPipeline always wants a plan's hash).
        (None, true) => String::new(),
        (None, false) => {
            return Err(Failure(
                2,
                format!(
                    "apply needs --plan-hash (from `culvert pipelines deploy {name}`), or --yes                      to apply the plan as it is now"
                ),
            ))
        }
    };
    let mut pipelines = PipelineServiceClient::new(connect(server).await?);
    for p in &parsed {
        let diff = if hash.is_empty() {
            apply_as_planned_now(&mut pipelines, document(p)).await?
        } else {
            pipelines
                .apply_pipeline(pb::ApplyPipelineRequest {
                    config: Some(document(p)),
                    hash: hash.clone(),
                })
                .await?
                .into_inner()
                .diff
                .unwrap_or_default()
        };
        print_diff(&p.id, &diff, "made", false);
    }
    Ok(())
}

/// Apply `document` as the server plans it now: ApplyPipeline takes only the hash of a
/// plan (as in Conduit), so plan first and apply that plan.
async fn apply_as_planned_now(
    pipelines: &mut PipelineServiceClient<Channel>,
    document: pb::PipelineDocument,
) -> Result<pb::Diff, Failure> {
    let plan = pipelines
        .plan_pipeline(pb::PlanPipelineRequest {
            config: Some(document.clone()),
        })
        .await?
        .into_inner()
        .diff
        .unwrap_or_default();
    Ok(pipelines
        .apply_pipeline(pb::ApplyPipelineRequest {
            config: Some(document),
            hash: plan.hash,
        })
        .await?
        .into_inner()
        .diff
        .unwrap_or_default())
}

/// `culvert revert`: what to restore, to when.
#[derive(clap::Args, Debug)]
pub struct RevertArgs {
    /// The pipeline's, connector's or processor's id.
    pub id: String,
    /// The point to go back to: an event sequence number (`120`) or a time (RFC 3339).
    #[arg(long)]
    pub to: String,
    /// Only show what would change.
    #[arg(long)]
    pub dry_run: bool,
    /// Revert only if the entity is at this version now.
    #[arg(long)]
    pub expected_version: Option<u64>,
    #[command(flatten)]
    pub remote: Remote,
}

/// Run `culvert revert`.
pub fn run_revert(args: RevertArgs) -> ExitCode {
    block_on(async {
        let (seq, time) = match args.to.parse::<u64>() {
            Ok(0) => return Err(Failure(2, "--to: sequence numbers start at 1".into())),
            Ok(seq) => (seq, None),
            Err(_) => {
                let at = chrono::DateTime::parse_from_rfc3339(&args.to).map_err(|e| {
                    Failure(
                        2,
                        format!(
                            "--to: {:?} is neither a sequence number nor an RFC 3339 time: {e}",
                            args.to
                        ),
                    )
                })?;
                let at = culvert_api::wkt::Timestamp {
                    seconds: at.timestamp(),
                    nanos: at.timestamp_subsec_nanos() as i32,
                };
                (0, Some(at))
            }
        };
        let mut client = EventLogServiceClient::new(connect(&args.remote.server).await?);
        let reply = client
            .revert(pp::RevertRequest {
                entity_id: args.id.clone(),
                seq,
                time,
                dry_run: args.dry_run,
                expected_version: args.expected_version.unwrap_or(0),
            })
            .await?
            .into_inner();
        if print_value(args.remote.format(), &reply)? {
            return Ok(());
        }
        if reply.changes.is_empty() {
            println!(
                "{} already has its configuration as of event {}: nothing to do.",
                args.id, reply.as_of_seq
            );
            return Ok(());
        }
        let verb = if args.dry_run {
            "Would change"
        } else {
            "Changed"
        };
        println!(
            "{verb} {} back to its configuration as of event {}:",
            args.id, reply.as_of_seq
        );
        for change in &reply.changes {
            let shown = |v: &str| {
                if v.is_empty() {
                    "(none)".to_owned()
                } else {
                    v.to_owned()
                }
            };
            println!(
                "  {}: {} -> {}",
                change.field,
                shown(&change.before),
                shown(&change.after)
            );
        }
        if reply.last_seq > 0 {
            println!("Recorded up to event {}.", reply.last_seq);
        }
        Ok(())
    })
}

/// Move a source's position (`seek`, `reset`) and print where it is now.
async fn move_position(
    id: String,
    target: pp::set_source_position_request::Target,
    expected_version: Option<u64>,
    remote: &Remote,
) -> Result<(), Failure> {
    let mut client = SourcePositionServiceClient::new(connect(&remote.server).await?);
    let reply = client
        .set_source_position(pp::SetSourcePositionRequest {
            connector_id: id,
            target: Some(target),
            expected_version: expected_version.unwrap_or(0),
        })
        .await?
        .into_inner();
    if print_value(remote.format(), &reply)? {
        return Ok(());
    }
    if reply.seq == 0 {
        println!("Unchanged: the source was already there.");
    } else {
        println!("Moved (event {}).", reply.seq);
    }
    print_position(&reply.position.unwrap_or_default());
    Ok(())
}

/// A position as text when it is, else base64.
fn position_text(bytes: &[u8], text: &str) -> String {
    use base64::Engine as _;
    if !text.is_empty() || bytes.is_empty() {
        text.to_owned()
    } else {
        format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    }
}

fn print_position(position: &pp::SourcePosition) {
    println!("Connector:   {}", position.connector_id);
    println!("Version:     {}", position.version);
    if position.has_position {
        println!(
            "Position:    {}",
            position_text(&position.position, &position.position_text)
        );
    } else {
        println!("Position:    none (the next run reads from the beginning)");
    }
    if position.checkpoints.is_empty() {
        println!("Checkpoints: none yet");
        return;
    }
    println!("Checkpoints:");
    let rows = position
        .checkpoints
        .iter()
        .map(|c| {
            vec![
                c.at.map(|t| {
                    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
                        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                        .unwrap_or_default()
                })
                .unwrap_or_default(),
                position_text(&c.position, &c.position_text),
            ]
        })
        .collect();
    table(&["SAVED AT", "POSITION"], rows);
}

/// What `pipelines inspect` follows.
enum Inspected {
    Connector,
    ProcessorIn,
    ProcessorOut,
    /// Every connector of a pipeline (their ids).
    Pipeline(Vec<String>),
}

/// `pipelines inspect`: the stream of InspectConnector or InspectProcessorIn/Out.
async fn inspect(
    id: &str,
    input: bool,
    output: bool,
    filter: Option<&str>,
    count: Option<u64>,
    remote: &Remote,
) -> Result<(), Failure> {
    let channel = connect(&remote.server).await?;
    let what = if input {
        Inspected::ProcessorIn
    } else if output {
        Inspected::ProcessorOut
    } else {
        let mut connectors = ConnectorServiceClient::new(channel.clone());
        match connectors
            .get_connector(pb::GetConnectorRequest { id: id.to_owned() })
            .await
        {
            Ok(_) => Inspected::Connector,
            Err(status) if status.code() == tonic::Code::NotFound => {
                let mut processors = ProcessorServiceClient::new(channel.clone());
                match processors
                    .get_processor(pb::GetProcessorRequest { id: id.to_owned() })
                    .await
                {
                    Ok(_) => Inspected::ProcessorOut,
                    Err(status) if status.code() == tonic::Code::NotFound => {
                        let mut pipelines = PipelineServiceClient::new(channel.clone());
                        let pipeline = pipelines
                            .get_pipeline(pb::GetPipelineRequest { id: id.to_owned() })
                            .await
                            .map_err(|status| match status.code() {
                                tonic::Code::NotFound => Failure(
                                    2,
                                    format!("no pipeline, connector or processor with id {id:?}"),
                                ),
                                _ => status.into(),
                            })?
                            .into_inner()
                            .pipeline
                            .unwrap_or_default();
                        if pipeline.connector_ids.is_empty() {
                            return Err(Failure(
                                2,
                                format!("pipeline {id:?} has no connectors to inspect"),
                            ));
                        }
                        Inspected::Pipeline(pipeline.connector_ids)
                    }
                    Err(status) => return Err(status.into()),
                }
            }
            Err(status) => return Err(status.into()),
        }
    };
    let id = id.to_owned();
    match what {
        Inspected::Connector => {
            let stream = ConnectorServiceClient::new(channel)
                .inspect_connector(pb::InspectConnectorRequest { id })
                .await?
                .into_inner();
            follow(stream, |r| r.record, filter, count, remote.format()).await
        }
        Inspected::ProcessorIn => {
            let stream = ProcessorServiceClient::new(channel)
                .inspect_processor_in(pb::InspectProcessorInRequest { id })
                .await?
                .into_inner();
            follow(stream, |r| r.record, filter, count, remote.format()).await
        }
        Inspected::ProcessorOut => {
            let stream = ProcessorServiceClient::new(channel)
                .inspect_processor_out(pb::InspectProcessorOutRequest { id })
                .await?
                .into_inner();
            follow(stream, |r| r.record, filter, count, remote.format()).await
        }
        Inspected::Pipeline(connectors) => {
            follow_pipeline(channel, connectors, filter, count, remote.format()).await
        }
    }
}

/// Follow every connector of a pipeline at once: one InspectConnector stream each, merged
/// as records arrive, each line prefixed with its connector's id (JSON lines carry it as
/// `connector`). Ends when every stream has ended or `count` records were printed.
async fn follow_pipeline(
    channel: Channel,
    connectors: Vec<String>,
    filter: Option<&str>,
    count: Option<u64>,
    format: OutputFormat,
) -> Result<(), Failure> {
    type Item = Result<(String, culvert_api::pb::opencdc::v1::Record), tonic::Status>;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(1024);
    let mut readers = tokio::task::JoinSet::new();
    for id in connectors {
        let mut client = ConnectorServiceClient::new(channel.clone());
        let tx = tx.clone();
        readers.spawn(async move {
            let mut stream = match client
                .inspect_connector(pb::InspectConnectorRequest { id: id.clone() })
                .await
            {
                Ok(stream) => stream.into_inner(),
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            };
            loop {
                let item = match stream.message().await {
                    Ok(Some(message)) => match message.record {
                        Some(record) => Ok((id.clone(), record)),
                        None => continue,
                    },
                    Ok(None) => return,
                    Err(status) => Err(status),
                };
                let failed = item.is_err();
                // The printer gone (count reached) or a failure sent: this reader is done.
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut printed = 0u64;
    while count.is_none_or(|n| printed < n) {
        let Some(item) = rx.recv().await else {
            break;
        };
        let (id, record) = item?;
        let text = serde_json::to_string(&record)
            .map_err(|e| Failure(1, format!("encoding a record: {e}")))?;
        if filter.is_some_and(|f| !text.contains(f)) {
            continue;
        }
        let item = serde_json::json!({ "connector": id, "record": record });
        if !print_item(format, &item)? {
            println!("{id}  {}", record_line(&record));
        }
        printed += 1;
    }
    // Dropping the receiver and the readers ends every stream.
    readers.abort_all();
    Ok(())
}

/// Print an inspector stream's records (those `filter` keeps) until it ends or `count`
/// were printed.
async fn follow<T>(
    mut stream: tonic::Streaming<T>,
    record: fn(T) -> Option<culvert_api::pb::opencdc::v1::Record>,
    filter: Option<&str>,
    count: Option<u64>,
    format: OutputFormat,
) -> Result<(), Failure> {
    let mut printed = 0u64;
    while count.is_none_or(|n| printed < n) {
        let Some(message) = stream.message().await? else {
            break;
        };
        let Some(record) = record(message) else {
            continue;
        };
        let text = serde_json::to_string(&record)
            .map_err(|e| Failure(1, format!("encoding a record: {e}")))?;
        if filter.is_some_and(|f| !text.contains(f)) {
            continue;
        }
        if !print_item(format, &record)? {
            println!("{}", record_line(&record));
        }
        printed += 1;
    }
    Ok(())
}

/// A record on one line: position, operation, key, payload (after, else before), cut short.
fn record_line(record: &culvert_api::pb::opencdc::v1::Record) -> String {
    use culvert_api::pb::opencdc::v1::{data::Data as D, Data, Operation};
    fn text(data: Option<&Data>) -> String {
        match data.and_then(|d| d.data.as_ref()) {
            None => "-".to_owned(),
            Some(D::RawData(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            Some(D::StructuredData(s)) => serde_json::to_string(s).unwrap_or_default(),
        }
    }
    fn cut(text: String, most: usize) -> String {
        if text.chars().count() <= most {
            return text;
        }
        let mut short: String = text.chars().take(most).collect();
        short.push_str("...");
        short
    }
    let operation = match Operation::try_from(record.operation) {
        Ok(Operation::Create) => "create",
        Ok(Operation::Update) => "update",
        Ok(Operation::Delete) => "delete",
        Ok(Operation::Snapshot) => "snapshot",
        _ => "unspecified",
    };
    let payload = record
        .payload
        .as_ref()
        .and_then(|p| p.after.as_ref().or(p.before.as_ref()));
    format!(
        "{}  {operation}  key={}  payload={}",
        cut(String::from_utf8_lossy(&record.position).into_owned(), 40),
        cut(text(record.key.as_ref()), 60),
        cut(text(payload), 120),
    )
}

/// `culvert dlq ...`: the dead letters a pipeline's DLQ took, as the server keeps them.
#[derive(clap::Subcommand, Debug)]
pub enum DlqCommand {
    /// List a pipeline's dead letters, oldest first: number, time, where it failed, the
    /// error, and whether it is queued for re-injection.
    ///
    /// Example: culvert dlq ls orders --limit 20
    #[command(visible_alias = "list")]
    Ls {
        /// The pipeline's id.
        pipeline: String,
        /// Only letters numbered above this.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many (the server's default is 100, at most 1000).
        #[arg(long, default_value_t = 0)]
        limit: u32,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one dead letter with its record.
    ///
    /// Example: culvert dlq show orders 17
    Show {
        /// The pipeline's id.
        pipeline: String,
        /// The letter's number (see `ls`).
        seq: u64,
        #[command(flatten)]
        remote: Remote,
    },
    /// Re-inject letters into the pipeline: each record goes in again from where it
    /// failed (the processor that failed it, or only the destination that refused it),
    /// once; the letter goes when every destination has it. A running pipeline picks them
    /// up within a second, a stopped one when it starts. Recorded in the audit.
    ///
    /// Example: culvert dlq reinject orders 17 18   (or --all)
    #[command(group = clap::ArgGroup::new("which").required(true).multiple(false))]
    Reinject {
        /// The pipeline's id.
        pipeline: String,
        /// The letters' numbers.
        #[arg(group = "which")]
        seqs: Vec<u64>,
        /// Every letter not queued yet.
        #[arg(long, group = "which")]
        all: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Run a `dlq` verb.
pub fn run_dlq(command: DlqCommand) -> ExitCode {
    use pp::dead_letter_service_client::DeadLetterServiceClient;
    block_on(async {
        match command {
            DlqCommand::Ls {
                pipeline,
                after,
                limit,
                remote,
            } => {
                let mut client = DeadLetterServiceClient::new(connect(&remote.server).await?);
                let reply = client
                    .list_dead_letters(pp::ListDeadLettersRequest {
                        pipeline_id: pipeline,
                        after,
                        limit,
                    })
                    .await?
                    .into_inner();
                if print_value(remote.format(), &reply)? {
                    return Ok(());
                }
                let rows = reply
                    .letters
                    .iter()
                    .map(|l| {
                        vec![
                            l.seq.to_string(),
                            time_text(l.kept_at.as_ref()),
                            l.node_id.clone(),
                            position_text(&l.position, &l.position_text),
                            if l.queued { "queued" } else { "" }.to_owned(),
                            l.error.lines().next().unwrap_or_default().to_owned(),
                        ]
                    })
                    .collect();
                table(
                    &["SEQ", "KEPT AT", "FAILED IN", "POSITION", "STATE", "ERROR"],
                    rows,
                );
                if reply.next_after != 0 {
                    println!("(more: --after {})", reply.next_after);
                }
                Ok(())
            }
            DlqCommand::Show {
                pipeline,
                seq,
                remote,
            } => {
                let mut client = DeadLetterServiceClient::new(connect(&remote.server).await?);
                let letter = client
                    .get_dead_letter(pp::GetDeadLetterRequest {
                        pipeline_id: pipeline,
                        seq,
                    })
                    .await?
                    .into_inner();
                if print_value(remote.format(), &letter)? {
                    return Ok(());
                }
                println!(
                    "Letter:     {} of pipeline {}",
                    letter.seq, letter.pipeline_id
                );
                println!("Kept at:    {}", time_text(letter.kept_at.as_ref()));
                println!("Failed in:  {} ({})", letter.node_id, letter.stage);
                println!(
                    "Position:   {}",
                    position_text(&letter.position, &letter.position_text)
                );
                println!("Queued:     {}", if letter.queued { "yes" } else { "no" });
                println!("Error:      {}", letter.error);
                let record = serde_json::to_string_pretty(&letter.record.unwrap_or_default())
                    .map_err(|e| Failure(1, format!("encoding the record: {e}")))?;
                println!("Record:\n{record}");
                Ok(())
            }
            DlqCommand::Reinject {
                pipeline,
                seqs,
                all,
                remote,
            } => {
                let mut client = DeadLetterServiceClient::new(connect(&remote.server).await?);
                let reply = client
                    .reinject_dead_letters(pp::ReinjectDeadLettersRequest {
                        pipeline_id: pipeline,
                        seqs,
                        all,
                    })
                    .await?
                    .into_inner();
                if print_value(remote.format(), &reply)? {
                    return Ok(());
                }
                let list: Vec<String> = reply.queued.iter().map(u64::to_string).collect();
                println!(
                    "Queued {} letter(s) for re-injection (event {}): {}",
                    reply.queued.len(),
                    reply.event_seq,
                    list.join(", ")
                );
                Ok(())
            }
        }
    })
}

/// A protobuf time as RFC 3339 (milliseconds), or empty.
fn time_text(at: Option<&culvert_api::wkt::Timestamp>) -> String {
    at.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
