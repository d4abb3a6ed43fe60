//! Client verbs of the `culvert` binary that talk to a running server over gRPC:
//! `culvert pipelines export` and `culvert pipelines import`.
//!
//! Exit codes follow Conduit's CLI: 0 ok, 1 a runtime error, 2 bad usage or validation (a
//! file with errors, an unknown id, a document the server refuses), 3 the environment (no
//! server at the address).

use culvert_api::pb::api::v1 as pb;
use culvert_provisioning::config::{
    self, ConnectorConfig, DlqConfig, PipelineConfig, ProcessorConfig, Severity,
};
use culvert_provisioning::yaml::Location;
use pb::connector_service_client::ConnectorServiceClient;
use pb::pipeline_service_client::PipelineServiceClient;
use pb::processor_service_client::ProcessorServiceClient;
use std::path::PathBuf;
use std::process::ExitCode;
use tonic::transport::Channel;

/// `culvert pipelines ...`
#[derive(clap::Subcommand, Debug)]
pub enum PipelinesCommand {
    /// Write a pipeline as a configuration file (version 2.2) that `import`, or the
    /// server's `--pipelines.path`, reads back.
    ///
    /// Example: culvert pipelines export orders > orders.yaml
    Export {
        /// The pipeline's id.
        id: String,
        /// Where the server's gRPC API listens.
        #[arg(
            long = "grpc.address",
            env = "CULVERT_API_GRPC_ADDRESS",
            default_value = "127.0.0.1:8084"
        )]
        grpc_address: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Create or update the pipelines of a configuration file through the server's API
    /// (ApplyPipeline). They stay editable over the API, unlike pipelines the server
    /// provisions from its own `--pipelines.path`.
    ///
    /// Example: culvert pipelines import orders.yaml --grpc.address 127.0.0.1:8084
    Import {
        /// The configuration file.
        file: PathBuf,
        /// Where the server's gRPC API listens.
        #[arg(
            long = "grpc.address",
            env = "CULVERT_API_GRPC_ADDRESS",
            default_value = "127.0.0.1:8084"
        )]
        grpc_address: String,
        /// Only show what would change (PlanPipeline).
        #[arg(long)]
        dry_run: bool,
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
        Failure(code, status.message().to_owned())
    }
}

/// Run a `pipelines` verb.
pub fn run(command: PipelinesCommand) -> ExitCode {
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
    let result = runtime.block_on(async {
        match command {
            PipelinesCommand::Export {
                id,
                grpc_address,
                output,
            } => export(&id, &grpc_address, output).await,
            PipelinesCommand::Import {
                file,
                grpc_address,
                dry_run,
            } => import(&file, &grpc_address, dry_run).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

async fn connect(address: &str) -> Result<Channel, Failure> {
    let uri = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    let endpoint = Channel::from_shared(uri)
        .map_err(|e| Failure(2, format!("invalid --grpc.address {address:?}: {e}")))?
        .connect_timeout(std::time::Duration::from_secs(5));
    endpoint
        .connect()
        .await
        .map_err(|e| Failure(3, format!("cannot reach the server at {address}: {e}")))
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
        let p = client
            .get_processor(pb::GetProcessorRequest { id: id.clone() })
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

async fn export(id: &str, address: &str, output: Option<PathBuf>) -> Result<(), Failure> {
    let channel = connect(address).await?;
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
            .get_connector(pb::GetConnectorRequest {
                id: connector_id.clone(),
            })
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
        .get_dlq(pb::GetDlqRequest { id: p.id.clone() })
        .await?
        .into_inner()
        .dlq
        .unwrap_or_default();
    let pipeline = PipelineConfig {
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

async fn import(file: &std::path::Path, address: &str, dry_run: bool) -> Result<(), Failure> {
    let name = file.display().to_string();
    let text =
        std::fs::read_to_string(file).map_err(|e| Failure(2, format!("reading {name}: {e}")))?;
    let parsed = config::parse(&name, &text, &|var| std::env::var(var).ok());
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
            format!("{name}: {errors} error(s); nothing imported"),
        ));
    }
    let channel = connect(address).await?;
    let mut pipelines = PipelineServiceClient::new(channel);
    for p in &parsed.pipelines {
        let diff = if dry_run {
            pipelines
                .plan_pipeline(pb::PlanPipelineRequest {
                    config: Some(document(p)),
                })
                .await?
                .into_inner()
                .diff
        } else {
            pipelines
                .apply_pipeline(pb::ApplyPipelineRequest {
                    config: Some(document(p)),
                    hash: String::new(),
                })
                .await?
                .into_inner()
                .diff
        }
        .unwrap_or_default();
        let verb = if dry_run { "would change" } else { "changed" };
        if diff.changes.is_empty() {
            println!("pipeline {}: up to date", p.id);
        } else {
            println!("pipeline {}: {verb}:", p.id);
            for change in &diff.changes {
                println!("  {} {} {}", change.action, change.resource, change.id);
            }
        }
    }
    Ok(())
}
