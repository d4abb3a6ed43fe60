//! `culvert`: the server binary.
//!
//! `culvert run` opens the control plane's event log (RocksDB under `./data` by default, or
//! in memory), rebuilds the read models from it, serves Conduit's gRPC API (`api.v1`), and
//! runs until SIGINT or SIGTERM, when it lets in-flight calls finish, writes a snapshot
//! and exits 0. The HTTP API, the engine and the admin CLI are added by later layers.

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use culvert_commands::ControlPlaneWriter;
use culvert_projections::{ProjectionOptions, Projections};
use culvert_store::{EventLog, MemoryStore, RocksStore, StoreError, StoreOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    name = "culvert",
    version,
    about = "Culvert: a Conduit-compatible data-integration server"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Start the server.
    ///
    /// Example: culvert run --db.rocksdb.path ./data --api.grpc.address 127.0.0.1:8084
    Run(RunArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Where the control plane's event log lives.
    #[arg(long = "db.type", env = "CULVERT_DB_TYPE", value_enum, default_value_t = DbType::Rocksdb)]
    db_type: DbType,
    /// Directory of the RocksDB data store (created if missing).
    #[arg(
        long = "db.rocksdb.path",
        env = "CULVERT_DB_ROCKSDB_PATH",
        default_value = "./data"
    )]
    db_path: PathBuf,
    /// fsync every control-plane write (turn off only for throwaway data).
    #[arg(long = "db.fsync", env = "CULVERT_DB_FSYNC", default_value_t = true, action = clap::ArgAction::Set)]
    fsync: bool,
    /// Write a read-model snapshot after this many events (0 = only on shutdown).
    #[arg(
        long = "db.snapshot-every",
        env = "CULVERT_DB_SNAPSHOT_EVERY",
        default_value_t = 10_000
    )]
    snapshot_every: u64,
    /// Address of the gRPC API (port 0 picks a free port; the log says which).
    #[arg(
        long = "api.grpc.address",
        env = "CULVERT_API_GRPC_ADDRESS",
        default_value = "127.0.0.1:8084"
    )]
    grpc_address: String,
    /// Log level: error, warn, info, debug or trace (or a tracing filter directive).
    #[arg(long = "log.level", env = "CULVERT_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Log format.
    #[arg(long = "log.format", env = "CULVERT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Cli)]
    log_format: LogFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum DbType {
    /// Embedded RocksDB (durable).
    Rocksdb,
    /// In memory (lost on exit; for trials and tests).
    Inmemory,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    /// Human-readable lines.
    Cli,
    /// One JSON object per line.
    Json,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Commands::Run(args) => {
            if let Err(error) = init_logging(&args) {
                eprintln!("error: {error:#}");
                return std::process::ExitCode::from(2);
            }
            match run(args) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error:#}");
                    eprintln!("error: {error:#}");
                    std::process::ExitCode::from(1)
                }
            }
        }
    }
}

fn init_logging(args: &RunArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("invalid --log.level {:?}", args.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Cli => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

fn open_log(args: &RunArgs) -> anyhow::Result<Arc<dyn EventLog>> {
    Ok(match args.db_type {
        DbType::Inmemory => Arc::new(MemoryStore::new()),
        DbType::Rocksdb => {
            let options = StoreOptions {
                fsync: args.fsync,
                ..StoreOptions::default()
            };
            let store = RocksStore::open(&args.db_path, options, &culvert_migrations::layout())
                .map_err(|error| match error {
                    StoreError::Rocks(e) if e.to_string().contains("lock") => anyhow::anyhow!(
                        "data directory {} is in use by another process ({e})",
                        args.db_path.display()
                    ),
                    other => anyhow::Error::new(other),
                })
                .with_context(|| format!("opening the data store at {}", args.db_path.display()))?;
            Arc::new(store)
        }
    })
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let log = open_log(&args)?;
    let (projections, report) = Projections::open(
        log.as_ref(),
        ProjectionOptions {
            snapshot_every: args.snapshot_every,
        },
    )
    .context("rebuilding the control plane from the event log")?;
    let writer = ControlPlaneWriter::new(log.clone(), Arc::new(projections));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(&args, writer.clone(), report, started))?;
    if writer.head() > culvert_domain::Seq::ZERO {
        writer
            .projections()
            .write_snapshot(log.as_ref())
            .context("writing the shutdown snapshot")?;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn serve(
    args: &RunArgs,
    writer: Arc<ControlPlaneWriter>,
    report: culvert_projections::OpenReport,
    started: Instant,
) -> anyhow::Result<()> {
    let grpc = tokio::net::TcpListener::bind(&args.grpc_address)
        .await
        .with_context(|| format!("binding the gRPC API to {}", args.grpc_address))?;
    let grpc_address = grpc.local_addr().context("reading the gRPC address")?;
    tracing::info!(address = %grpc_address, "gRPC API listening");
    {
        let state = writer.projections().read();
        tracing::info!(
            db.type = ?args.db_type,
            db.path = %args.db_path.display(),
            head = state.last_seq().0,
            snapshot_seq = report.snapshot_seq.map(|s| s.0),
            folded = report.folded,
            pipelines = state.pipelines().count(),
            connectors = state.connectors().count(),
            processors = state.processors().count(),
            startup_ms = started.elapsed().as_millis() as u64,
            "culvert ready"
        );
    }
    let (stop_tx, mut rx) = tokio::sync::watch::channel(false);
    let api = culvert_api::Api::new(writer);
    let mut grpc_server = tokio::spawn(culvert_api::serve_grpc(grpc, api, async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }));
    tokio::select! {
        signal = shutdown_signal() => {
            signal?;
            tracing::info!("shutting down: letting in-flight calls finish");
            let _ = stop_tx.send(true);
            grpc_server
                .await
                .context("the gRPC server task failed")?
                .context("the gRPC server failed")?;
            Ok(())
        }
        result = &mut grpc_server => {
            result
                .context("the gRPC server task failed")?
                .context("the gRPC server failed")?;
            anyhow::bail!("the gRPC server stopped unexpectedly")
        }
    }
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}
