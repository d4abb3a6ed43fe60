//! `culvert`: the server binary.
//!
//! `culvert run` opens the control plane's event log (RocksDB under `./data` by default, or
//! in memory), rebuilds the read models from it, serves Conduit's gRPC API (`api.v1`) and
//! its HTTP API (grpc-gateway routes, OpenAPI document, Swagger UI, health), and runs until
//! SIGINT or SIGTERM, when it lets in-flight calls finish, writes a snapshot and exits 0.
//!
//! Settings come from flags, then `CULVERT_*` environment variables (or Conduit's
//! `CONDUIT_*` spelling), then a YAML config file (`--config.path`, default `./culvert.yaml`,
//! else Conduit's `./conduit.yaml`, keys nested by their dotted names), then defaults;
//! `conduit_config` takes a Conduit deployment's configuration as it is. The supervisor (`culvert-supervisor`) runs the pipelines
//! the control plane says should run; the admin CLI (`cli`) and the offline event-log tools
//! (`tools`) are verbs of the same binary.

mod allocator;
mod cli;
mod client;
mod conduit_config;
mod doctor;
mod dry_run;
mod effective_config;
mod envelope;
mod graph;
mod init;
mod logging;
mod mcp;
mod metrics;
mod oracle;
mod pipeline_init;
mod plugin_audit;
mod plugin_install;
mod progress;
mod prom;
mod reload;
mod repair;
mod scaffold;
mod schemas;
mod secrets;
mod security;
mod tools;
mod top;
mod validate;

use anyhow::Context as _;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use culvert_commands::ControlPlaneWriter;
use culvert_plugins::ConnectorPlugin as _;
use culvert_projections::{ProjectionOptions, Projections};
use culvert_store::{EventLog, MemoryStore, PositionStore, RocksStore, StoreError, StoreOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// `v<version> <os>/<arch>`, with Go's names for the OS and architecture as Conduit prints
/// them (`linux/amd64`).
fn version_line() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!(
        "v{} {}/{arch}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS
    )
}

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
    /// Example: culvert run --db.rocksdb.path ./data --api.http.address 127.0.0.1:8080
    Run(Box<RunArgs>),
    /// Pipelines of a running server: list, show, create, start, stop, delete, export and
    /// import as configuration files.
    ///
    /// Example: culvert pipelines ls --grpc.address 127.0.0.1:8084
    #[command(subcommand)]
    Pipelines(cli::PipelinesCommand),
    /// Connectors of a running server.
    ///
    /// Example: culvert connectors ls --pipeline orders
    #[command(subcommand)]
    Connectors(cli::ConnectorsCommand),
    /// Dead letters of a running server's pipelines: list, show, re-inject.
    ///
    /// Example: culvert dlq ls orders
    #[command(subcommand)]
    Dlq(cli::DlqCommand),
    /// Processors of a running server.
    ///
    /// Example: culvert processors ls
    #[command(subcommand)]
    Processors(cli::ProcessorsCommand),
    /// Connector and processor plugins of a running server.
    ///
    /// Example: culvert plugins ls
    #[command(subcommand)]
    Plugins(cli::PluginsCommand),
    /// Connector plugins: list or describe a running server's; install or uninstall
    /// standalone connectors in its --connectors.path (offline), as Conduit's
    /// `connector-plugins`.
    ///
    /// Example: culvert connector-plugins install ./conduit-connector-file
    #[command(subcommand, alias = "connector-plugin", alias = "connectorplugins")]
    ConnectorPlugins(plugin_install::PluginsCommand),
    /// Processor plugins: list or describe a running server's; install or uninstall
    /// standalone WASM processors in its --processors.path (offline), as Conduit's
    /// `processor-plugins`.
    ///
    /// Example: culvert processor-plugins install ./my-processor.wasm
    #[command(subcommand, alias = "processor-plugin", alias = "processorplugins")]
    ProcessorPlugins(plugin_install::PluginsCommand),
    /// The running server's version, OS and architecture.
    ///
    /// Example: culvert info --grpc.address 127.0.0.1:8084
    Info(cli::Remote),
    /// A Model Context Protocol server (stdio or streamable HTTP) for AI assistants: tools
    /// to list, describe and inspect pipelines, read the audit trail and time travel; the
    /// tools that change the server only with --allow-writes.
    ///
    /// Example: culvert mcp --grpc.address 127.0.0.1:8084 --allow-writes
    Mcp(mcp::McpArgs),
    /// This binary's version, OS and architecture (as Conduit's `version`; no server).
    ///
    /// Example: culvert version
    Version,
    /// Print a shell's completion script for `culvert` (bash, zsh, fish, powershell,
    /// elvish), as Conduit's `completion`.
    ///
    /// Example: culvert completion bash > /etc/bash_completion.d/culvert
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The data oracle (`builtin:oracle`): count what a pipeline delivered — missing,
    /// duplicated, reordered, corrupted — from a ledger or a file of OpenCDC records.
    ///
    /// Example: culvert oracle verdict --ledger ./ledger --partitions 4 --records 200000
    #[command(subcommand)]
    Oracle(oracle::OracleCommand),
    /// A live view of every pipeline of a running server (from its /metrics): status,
    /// records per second in and out per connector, processor time, DLQ, acks pending.
    ///
    /// Example: culvert top --http.address 127.0.0.1:8080 (or --once [--json])
    Top(top::TopArgs),
    /// API bearer tokens: create one in a tokens file (`--api.auth.tokens-file`), or list
    /// a file's token names.
    ///
    /// Example: culvert tokens create ci --tokens-file /etc/culvert/tokens
    #[command(subcommand)]
    Tokens(security::TokensCommand),
    /// The event log: list a data directory's events (read-only; a server may be running on
    /// it), or follow a running server's.
    ///
    /// Example: culvert events ls --entity my-pipeline --db.rocksdb.path ./data
    #[command(subcommand)]
    Events(tools::EventsCommand),
    /// Every change of a pipeline, connector or processor: actor, time and the fields that
    /// changed (read-only).
    ///
    /// Example: culvert audit my-pipeline --db.rocksdb.path ./data
    Audit {
        /// The pipeline's, connector's or processor's id.
        id: String,
        #[command(flatten)]
        data: tools::DataDir,
        /// `json`: one object a line per change; `yaml`: one document per change.
        #[command(flatten)]
        output: cli::Output,
    },
    /// Restore an entity's configuration as it was at a point of the event log, on a
    /// running server, by appending the events that do so (history is never rewritten).
    /// Refused while its pipeline runs; --dry-run shows what would change.
    ///
    /// Example: culvert revert orders:src --to 120 --dry-run
    Revert(cli::RevertArgs),
    /// An entity as it was after a sequence number or at a time (read-only).
    ///
    /// Example: culvert at --seq 42 pipelines describe my-pipeline
    At {
        /// As of this sequence number (inclusive).
        #[arg(long)]
        seq: Option<u64>,
        /// As of this time (RFC 3339).
        #[arg(long)]
        time: Option<String>,
        /// What to show.
        noun: tools::Noun,
        /// `describe`.
        verb: String,
        /// Its id.
        id: String,
        #[command(flatten)]
        data: tools::DataDir,
        /// `yaml` for the document as YAML; `table` and `json` print it as JSON (an entity
        /// as of a point of the log has no table form).
        #[command(flatten)]
        output: cli::Output,
    },
    /// Secrets: seal every stored secret with a new key (`rotate`). Run it with the server
    /// stopped.
    ///
    /// Example: culvert secrets rotate --db.rocksdb.path ./data
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Write a new data directory holding the log up to a sequence number; a server
    /// started on it is in the state of that moment.
    ///
    /// Example: culvert replay --to 120 --into ./data-at-120
    Replay {
        /// The last event to copy.
        #[arg(long)]
        to: u64,
        /// The new data directory (must not exist, or be empty).
        #[arg(long)]
        into: PathBuf,
        #[command(flatten)]
        data: tools::DataDir,
    },
    /// The configuration `culvert run` would use with these flags (it takes the same
    /// flags, env and config file), each setting with where its value came from.
    ///
    /// Example: culvert config --output json
    Config(Box<effective_config::ConfigArgs>),
    /// Check whether `culvert run` would work here with these settings (it takes the
    /// same flags, env and config file): configuration, pipeline files, data directory
    /// and store, API addresses, plugin directories, disk, open-file limit, version.
    /// Exits 2 on invalid configuration, 3 on an unfit environment.
    ///
    /// Example: culvert doctor --db.rocksdb.path /var/lib/culvert
    Doctor(Box<doctor::DoctorArgs>),
    /// Write a working directory: culvert.yaml (every setting at its default, commented),
    /// pipelines/ with a sample pipeline, connectors/ and processors/. Never overwrites a
    /// file unless --force.
    ///
    /// Example: culvert init my-culvert && cd my-culvert && culvert run
    Init(init::InitArgs),
    /// Write a working directory (a temporary one unless given) and run a demo pipeline
    /// (generator -> log) on it with the state in memory; Ctrl-C stops it.
    ///
    /// Example: culvert quickstart
    Quickstart(init::QuickstartArgs),
    /// Check the log: gapless sequence, every event decodes, every stream's versions
    /// consecutive. Exits 1 naming the first problem.
    ///
    /// Example: culvert verify --db.rocksdb.path ./data
    Verify {
        #[command(flatten)]
        data: tools::DataDir,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// YAML config file; its keys nest by the flags' dotted names (`api: {http: {address:
    /// ...}}`). By default ./culvert.yaml, or else Conduit's ./conduit.yaml; a missing file
    /// at the default path is fine.
    #[arg(
        long = "config.path",
        env = "CULVERT_CONFIG_PATH",
        default_value_os_t = conduit_config::default_config_file()
    )]
    config_path: PathBuf,
    /// Where the control plane's event log lives (Conduit's embedded stores, badger and
    /// sqlite, are taken to mean Culvert's, rocksdb).
    #[arg(long = "db.type", env = "CULVERT_DB_TYPE", value_enum, default_value_t = DbType::Rocksdb)]
    db_type: DbType,
    /// Directory of the RocksDB data store (created if missing).
    #[arg(
        long = "db.rocksdb.path",
        env = "CULVERT_DB_ROCKSDB_PATH",
        default_value = "./data"
    )]
    db_path: PathBuf,
    /// The secrets key file: the keys sensitive settings are sealed with in the event log
    /// (default: `secrets.key` in the data directory; created with a new key, mode 0600, on
    /// first start). `CULVERT_SECRETS_KEY` (base64 keys, comma-separated, last current)
    /// takes precedence. Keep a backup apart from the data: without it the stored secrets
    /// cannot be read.
    #[arg(long = "secrets.key-file", env = "CULVERT_SECRETS_KEY_FILE")]
    secrets_key_file: Option<PathBuf>,
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
    /// Serve the gRPC and HTTP APIs. `false` runs the pipelines of the configuration files
    /// with no API at all (Conduit's setting of the same name).
    #[arg(
        long = "api.enabled",
        env = "CULVERT_API_ENABLED",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    api_enabled: bool,
    /// Address of the gRPC API (port 0 picks a free port; the log says which; `:PORT`
    /// listens on every interface, as in Conduit).
    #[arg(
        long = "api.grpc.address",
        env = "CULVERT_API_GRPC_ADDRESS",
        default_value = "127.0.0.1:8084"
    )]
    grpc_address: String,
    /// Largest gRPC request message accepted, in bytes (larger ones get RESOURCE_EXHAUSTED).
    #[arg(
        long = "api.grpc.max-message-bytes",
        env = "CULVERT_API_GRPC_MAX_MESSAGE_BYTES",
        default_value_t = culvert_api::GrpcOptions::default().max_message_bytes
    )]
    grpc_max_message_bytes: usize,
    /// How long a gRPC call may take to be answered (DEADLINE_EXCEEDED after; a stream,
    /// once started, is not cut).
    #[arg(
        long = "api.grpc.call-timeout",
        env = "CULVERT_API_GRPC_CALL_TIMEOUT",
        default_value = "60s",
        value_parser = positive_duration
    )]
    grpc_call_timeout: std::time::Duration,
    /// gRPC calls one connection may have in flight at once (more wait their turn).
    #[arg(
        long = "api.grpc.max-concurrent-calls",
        env = "CULVERT_API_GRPC_MAX_CONCURRENT_CALLS",
        default_value_t = culvert_api::GrpcOptions::default().max_concurrent_calls,
        value_parser = at_least_one
    )]
    grpc_max_concurrent_calls: usize,
    /// Address of the HTTP API, OpenAPI document and Swagger UI (port 0 picks a free port;
    /// `:PORT` listens on every interface, as in Conduit).
    #[arg(
        long = "api.http.address",
        env = "CULVERT_API_HTTP_ADDRESS",
        default_value = "127.0.0.1:8080"
    )]
    http_address: String,
    /// Largest HTTP request body accepted, in bytes (larger ones get 413).
    #[arg(
        long = "api.http.max-body-bytes",
        env = "CULVERT_API_HTTP_MAX_BODY_BYTES",
        default_value_t = 4 * 1024 * 1024
    )]
    http_max_body_bytes: usize,
    /// Browser origins (scheme://host[:port], repeatable or comma-separated) allowed to
    /// call the HTTP API from another origin and to open its WebSocket streams; none by
    /// default (same-origin pages and non-browser clients need no entry). `*` allows any
    /// page, and is refused when the HTTP API listens beyond loopback without
    /// authentication.
    #[arg(
        long = "api.http.cors.allowed-origins",
        env = "CULVERT_API_HTTP_CORS_ALLOWED_ORIGINS",
        value_delimiter = ',',
        action = clap::ArgAction::Append
    )]
    cors_allowed_origins: Vec<String>,
    /// Serve the built-in web UI at `/` (observe and operate: pipelines, their status and
    /// throughput, start and stop, live records), as Conduit does; `false` leaves `/` to the
    /// API alone.
    #[arg(
        long = "api.http.ui.enabled",
        env = "CULVERT_API_HTTP_UI_ENABLED",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    http_ui_enabled: bool,
    /// Let ApplyPipeline change a running pipeline: it is stopped (what is in flight drained),
    /// changed and started again. Off, such an apply is refused
    /// (`provisioning.live_apply_unauthorized`) and the pipeline must be stopped first, as
    /// in Conduit. Only the operator can allow it, never a request.
    #[arg(
        long = "api.allow-live-restart-apply",
        env = "CULVERT_API_ALLOW_LIVE_RESTART_APPLY",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    allow_live_restart_apply: bool,
    /// Authentication, TLS and the rate limit of both APIs (`--api.auth.*`, `--api.tls.*`).
    #[command(flatten)]
    security: security::SecurityArgs,
    /// Standalone connector plugins (Conduit's Go connectors): every file in this
    /// directory is started once to read its specification and listed as
    /// `standalone:NAME@VERSION` (default ./connectors, which may be missing).
    #[arg(
        long = "connectors.path",
        env = "CULVERT_CONNECTORS_PATH",
        default_value = "./connectors"
    )]
    connectors_path: PathBuf,
    /// How long a standalone destination may take to acknowledge the records it was sent
    /// before its pipeline fails (a plugin that never acks must not hold it forever).
    #[arg(
        long = "connectors.call-timeout",
        env = "CULVERT_CONNECTORS_CALL_TIMEOUT",
        default_value = "5m",
        value_parser = duration
    )]
    connectors_call_timeout: std::time::Duration,
    /// The largest record a standalone connector accepts from the server, in bytes (or with a
    /// KiB, MiB or GiB suffix); the plugin is told at launch, as Conduit tells it.
    #[arg(
        long = "connectors.max-receive-record-size",
        env = "CULVERT_CONNECTORS_MAX_RECEIVE_RECORD_SIZE",
        default_value = "4194304",
        value_parser = byte_size
    )]
    connectors_max_receive_record_size: usize,
    /// Standalone processor plugins (WASM modules built with Conduit's processor SDK):
    /// every `*.wasm` file in this directory is compiled once and listed as
    /// `standalone:NAME@VERSION` (default ./processors, which may be missing).
    #[arg(
        long = "processors.path",
        env = "CULVERT_PROCESSORS_PATH",
        default_value = "./processors"
    )]
    processors_path: PathBuf,
    /// The most memory one WASM processor instance may use (bytes, or with a KiB, MiB or
    /// GiB suffix).
    #[arg(
        long = "processors.wasm.memory-limit",
        env = "CULVERT_PROCESSORS_WASM_MEMORY_LIMIT",
        default_value = "512MiB",
        value_parser = byte_size
    )]
    wasm_memory_limit: usize,
    /// How long a WASM processor may take to answer one command (a batch); a module that
    /// takes longer is stopped and its pipeline fails.
    #[arg(
        long = "processors.wasm.call-timeout",
        env = "CULVERT_PROCESSORS_WASM_CALL_TIMEOUT",
        default_value = "60s",
        value_parser = duration
    )]
    wasm_call_timeout: std::time::Duration,
    /// Open the engine-level ceiling for WASM processors' host-mediated HTTP egress (the
    /// SDK's `egress.Do`, host function `conduit.http_request`). Off (the default), every
    /// call is refused, whatever a processor's own `sdk.egress.allow` setting asks for;
    /// on, a processor that opts in with `sdk.egress.allow` may reach the destinations in
    /// both lists (see docs/egress.md).
    #[arg(
        long = "processors.egress.enabled",
        env = "CULVERT_PROCESSORS_EGRESS_ENABLED",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    egress_enabled: bool,
    /// The egress ceiling's allow-list: host[:port], https://host[:port] or
    /// http://private-address[:port] entries (repeatable or comma-separated). Empty with
    /// egress enabled: a processor's own list is honoured as it is (single tenant).
    /// Loopback and private addresses are only reachable through an address entry with
    /// its port (e.g. http://127.0.0.1:11434).
    #[arg(
        long = "processors.egress.allow",
        env = "CULVERT_PROCESSORS_EGRESS_ALLOW",
        action = clap::ArgAction::Append
    )]
    egress_allow: Vec<String>,
    /// Secrets processors may name (in `sdk.egress.secretRefs`) for the host to send as
    /// the Authorization header, read from CONDUIT_SECRET_<NAME> (repeatable or
    /// comma-separated).
    #[arg(
        long = "processors.egress.secret-refs",
        env = "CULVERT_PROCESSORS_EGRESS_SECRET_REFS",
        action = clap::ArgAction::Append
    )]
    egress_secret_refs: Vec<String>,
    /// Upper bound on a processor's per-call egress time limit (its own default is 30s;
    /// 0: no bound).
    #[arg(
        long = "processors.egress.timeout",
        env = "CULVERT_PROCESSORS_EGRESS_TIMEOUT",
        default_value = "0",
        value_parser = duration
    )]
    egress_timeout: std::time::Duration,
    /// Upper bound on the egress response body a processor gets, in bytes (its own
    /// default is 4 MiB; 0: no bound).
    #[arg(
        long = "processors.egress.max-response-bytes",
        env = "CULVERT_PROCESSORS_EGRESS_MAX_RESPONSE_BYTES",
        default_value = "0",
        value_parser = byte_size_or_zero
    )]
    egress_max_response_bytes: usize,
    /// Pipeline configuration files: a YAML file or a directory of them (default
    /// ./pipelines, which may be missing; a path given explicitly must exist). `--pipelines`
    /// is an alias, as in Conduit.
    #[arg(
        long = "pipelines.path",
        alias = "pipelines",
        env = "CULVERT_PIPELINES_PATH"
    )]
    pipelines_path: Option<PathBuf>,
    /// Exit (with an error, after the usual drain) when a pipeline becomes degraded, or at
    /// start when a pipeline file cannot be provisioned (Conduit's flag of the same name).
    /// A pipeline already degraded when the server starts does not count.
    #[arg(
        long = "pipelines.exit-on-degraded",
        env = "CULVERT_PIPELINES_EXIT_ON_DEGRADED",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    exit_on_degraded: bool,
    /// Watch the pipelines path and provision it again when a file changes (a running
    /// pipeline the change touches is stopped, updated and started again; a broken file
    /// changes nothing). Off by default.
    /// `--dev` and `--dev.enabled` are aliases (Conduit's names for its watcher).
    #[arg(
        long = "pipelines.watch",
        aliases = ["dev", "dev.enabled"],
        env = "CULVERT_PIPELINES_WATCH",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pipelines_watch: bool,
    /// Delay before the first restart of a failed pipeline (Go duration: 1s, 500ms, 1m).
    #[arg(
        long = "pipelines.error-recovery.min-delay",
        env = "CULVERT_PIPELINES_ERROR_RECOVERY_MIN_DELAY",
        default_value = "1s",
        value_parser = duration
    )]
    recovery_min_delay: std::time::Duration,
    /// Longest delay between restarts of a failed pipeline.
    #[arg(
        long = "pipelines.error-recovery.max-delay",
        env = "CULVERT_PIPELINES_ERROR_RECOVERY_MAX_DELAY",
        default_value = "10m",
        value_parser = duration
    )]
    recovery_max_delay: std::time::Duration,
    /// Each restart delay is the previous one times this.
    #[arg(
        long = "pipelines.error-recovery.backoff-factor",
        env = "CULVERT_PIPELINES_ERROR_RECOVERY_BACKOFF_FACTOR",
        default_value_t = 2.0
    )]
    recovery_backoff_factor: f64,
    /// Restarts before a failed pipeline is left degraded (-1: no limit).
    #[arg(
        long = "pipelines.error-recovery.max-retries",
        env = "CULVERT_PIPELINES_ERROR_RECOVERY_MAX_RETRIES",
        default_value_t = -1,
        allow_negative_numbers = true
    )]
    recovery_max_retries: i64,
    /// A run this long without failing resets a pipeline's count of restarts.
    #[arg(
        long = "pipelines.error-recovery.max-retries-window",
        env = "CULVERT_PIPELINES_ERROR_RECOVERY_MAX_RETRIES_WINDOW",
        default_value = "5m",
        value_parser = duration
    )]
    recovery_window: std::time::Duration,
    /// Dead letters kept per pipeline in the server's store (to list and re-inject); the
    /// oldest go first beyond this.
    #[arg(
        long = "dlq.store.max-letters",
        env = "CULVERT_DLQ_STORE_MAX_LETTERS",
        default_value_t = 10_000
    )]
    dlq_store_max_letters: u64,
    /// Dead letters older than this are dropped from the server's store.
    #[arg(
        long = "dlq.store.max-age",
        env = "CULVERT_DLQ_STORE_MAX_AGE",
        default_value = "168h",
        value_parser = duration
    )]
    dlq_store_max_age: std::time::Duration,
    /// The schema registry connectors and the avro.* processors use: builtin (schemas are
    /// events in the log) or confluent (an external Confluent schema registry).
    #[arg(
        long = "schema-registry.type",
        env = "CULVERT_SCHEMA_REGISTRY_TYPE",
        value_enum,
        default_value_t = SchemaRegistryType::Builtin
    )]
    schema_registry_type: SchemaRegistryType,
    /// The Confluent schema registry's URL (with schema-registry.type confluent).
    #[arg(
        long = "schema-registry.confluent.connection-string",
        env = "CULVERT_SCHEMA_REGISTRY_CONFLUENT_CONNECTION_STRING"
    )]
    confluent_url: Option<String>,
    /// How to authenticate to the Confluent schema registry: none, basic or bearer.
    #[arg(
        long = "schema-registry.confluent.auth.type",
        env = "CULVERT_SCHEMA_REGISTRY_CONFLUENT_AUTH_TYPE",
        value_enum,
        default_value_t = ConfluentAuth::None
    )]
    confluent_auth: ConfluentAuth,
    /// The user name for basic authentication to the Confluent schema registry.
    #[arg(
        long = "schema-registry.confluent.auth.basic.username",
        env = "CULVERT_SCHEMA_REGISTRY_CONFLUENT_AUTH_BASIC_USERNAME"
    )]
    confluent_username: Option<String>,
    /// The password for basic authentication to the Confluent schema registry.
    #[arg(
        long = "schema-registry.confluent.auth.basic.password",
        env = "CULVERT_SCHEMA_REGISTRY_CONFLUENT_AUTH_BASIC_PASSWORD"
    )]
    confluent_password: Option<String>,
    /// The bearer token for the Confluent schema registry.
    #[arg(
        long = "schema-registry.confluent.auth.bearer.token",
        env = "CULVERT_SCHEMA_REGISTRY_CONFLUENT_AUTH_BEARER_TOKEN"
    )]
    confluent_token: Option<String>,
    /// Log level: error, warn, info, debug or trace, or filter directives per module by its
    /// short name (`info,engine=debug,api=warn`; modules: api, commands, connectors, engine,
    /// hosts, processors, projections, provisioning, store, supervisor, ...).
    #[arg(long = "log.level", env = "CULVERT_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Log format.
    #[arg(long = "log.format", env = "CULVERT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Cli)]
    log_format: LogFormat,
    /// Conduit's settings that Culvert answers with what it does instead.
    #[command(flatten)]
    conduit: conduit_config::ConduitArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum SchemaRegistryType {
    /// Culvert's own: schemas are events in the log.
    Builtin,
    /// An external Confluent schema registry.
    Confluent,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ConfluentAuth {
    /// No credentials.
    None,
    /// HTTP basic authentication (username and password).
    Basic,
    /// A bearer token.
    Bearer,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum DbType {
    /// Embedded RocksDB (durable).
    Rocksdb,
    /// In memory (lost on exit; for trials and tests).
    Inmemory,
    /// Conduit's default embedded store: Culvert's RocksDB store is used instead.
    #[value(hide = true)]
    Badger,
    /// Conduit's SQLite store: Culvert's RocksDB store is used instead.
    #[value(hide = true)]
    Sqlite,
    /// Conduit's PostgreSQL store: refused (Culvert cannot keep its state there).
    #[value(hide = true)]
    Postgres,
}

impl DbType {
    /// Conduit's store this names, if it is one of Conduit's.
    fn conduit(self) -> Option<conduit_config::ConduitStore> {
        match self {
            DbType::Rocksdb | DbType::Inmemory => None,
            DbType::Badger => Some(conduit_config::ConduitStore::Badger),
            DbType::Sqlite => Some(conduit_config::ConduitStore::Sqlite),
            DbType::Postgres => Some(conduit_config::ConduitStore::Postgres),
        }
    }

    /// Whether the state outlives the process (RocksDB on disk).
    fn durable(self) -> bool {
        self != DbType::Inmemory
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    /// Human-readable lines.
    Cli,
    /// One JSON object per line.
    Json,
}

/// A Go-style duration flag value (`1s`, `500ms`, `1m30s`).
fn duration(text: &str) -> Result<std::time::Duration, String> {
    culvert_plugins::spec::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration (like 500ms, 10s or 1m30s)"))
}

/// A count of one or more.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{text:?} is not a count: {e}")),
    }
}

/// A duration longer than zero.
fn positive_duration(text: &str) -> Result<std::time::Duration, String> {
    match duration(text)? {
        d if d.is_zero() => Err("must be longer than 0".to_owned()),
        d => Ok(d),
    }
}

/// A size in bytes: a number, optionally followed by KiB, MiB or GiB.
fn byte_size(text: &str) -> Result<usize, String> {
    let trimmed = text.trim();
    let (number, unit) = match trimmed.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => trimmed.split_at(i),
        None => (trimmed, ""),
    };
    let factor: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "{text:?} is not a size (like 536870912, 512MiB or 1GiB)"
            ))
        }
    };
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is not a size (like 536870912, 512MiB or 1GiB)"))
}

/// A size in bytes as [`byte_size`], or 0 (no bound).
fn byte_size_or_zero(text: &str) -> Result<usize, String> {
    if text.trim() == "0" {
        return Ok(0);
    }
    byte_size(text)
}

impl RunArgs {
    /// Bind Go's `:PORT` spelling of both API addresses as Go does: every interface.
    fn resolve_listen_addresses(&mut self) {
        self.grpc_address = conduit_config::listen_address(&self.grpc_address);
        self.http_address = conduit_config::listen_address(&self.http_address);
    }

    /// What the server says at start about the settings it was given that Culvert does
    /// differently from Conduit (see [`conduit_config`]), or why they are refused.
    fn conduit_notes(&self) -> Result<Vec<String>, String> {
        let mut notes =
            conduit_config::notes(&self.conduit, self.db_type.conduit(), &self.db_path)?;
        if !self.api_enabled {
            notes.push(
                "the API is disabled (api.enabled false): no gRPC or HTTP API, no UI, no \
                 /metrics; the pipelines of the configuration files run, and stop on SIGTERM"
                    .to_owned(),
            );
        }
        Ok(notes)
    }

    /// How many dead letters each pipeline keeps in the store, and for how long.
    fn letter_limits(&self) -> anyhow::Result<culvert_store::LetterLimits> {
        if self.dlq_store_max_letters == 0 {
            anyhow::bail!("invalid config: dlq.store.max-letters must be at least 1");
        }
        Ok(culvert_store::LetterLimits {
            max_letters: self.dlq_store_max_letters,
            max_age: self.dlq_store_max_age,
        })
    }

    /// The error-recovery settings, checked as Conduit checks them.
    fn recovery(&self) -> anyhow::Result<culvert_supervisor::Recovery> {
        let key = |k: &str| format!("\"pipelines.error-recovery.{k}\"");
        if self.recovery_min_delay.is_zero() {
            anyhow::bail!(
                "{} config value must be positive (got: 0s)",
                key("min-delay")
            );
        }
        if self.recovery_max_delay.is_zero() {
            anyhow::bail!(
                "{} config value must be positive (got: 0s)",
                key("max-delay")
            );
        }
        if self.recovery_min_delay > self.recovery_max_delay {
            anyhow::bail!(
                "invalid error recovery config: \"min-delay\" should be smaller than \"max-delay\""
            );
        }
        if !(self.recovery_backoff_factor >= 0.0 && self.recovery_backoff_factor.is_finite()) {
            anyhow::bail!("{} config value mustn't be negative", key("backoff-factor"));
        }
        if self.recovery_max_retries < -1 {
            anyhow::bail!(
                "{} config value is invalid: use -1 (no limit) or 0 and more",
                key("max-retries")
            );
        }
        if self.recovery_window.is_zero() {
            anyhow::bail!(
                "{} config value must be positive (got: 0s)",
                key("max-retries-window")
            );
        }
        Ok(culvert_supervisor::Recovery {
            min_delay: self.recovery_min_delay,
            max_delay: self.recovery_max_delay,
            backoff_factor: self.recovery_backoff_factor,
            max_retries: self.recovery_max_retries,
            window: self.recovery_window,
        })
    }
}

/// The fail points named in `FAILPOINTS` (`point=action;...`, the `fail` crate's syntax),
/// configured for as long as the returned scenario lives. An error if the variable is set
/// but this build has no fail points (only test builds do): a reliability test must not
/// pass because its crash never happened.
fn failpoints() -> anyhow::Result<Option<fail::FailScenario<'static>>> {
    let Some(points) = std::env::var_os("FAILPOINTS") else {
        return Ok(None);
    };
    if !fail::has_failpoints() {
        anyhow::bail!(
            "FAILPOINTS is set ({points:?}) but this build has no fail points; they are \
             compiled in only for tests (the `fail` crate's `failpoints` feature)"
        );
    }
    tracing::warn!(points = ?points, "fail points configured");
    Ok(Some(fail::FailScenario::setup()))
}

fn main() -> std::process::ExitCode {
    // Before anything else (no other thread exists yet): Conduit's CONDUIT_* variables.
    conduit_config::adopt_environment(&Cli::command());
    let (cli, warnings) = match parse_cli() {
        Ok(parsed) => parsed,
        Err(error) => {
            eprintln!("error: {error:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match cli.command {
        Commands::Pipelines(command) => cli::run(command),
        Commands::Connectors(command) => cli::run_connectors(command),
        Commands::Dlq(command) => cli::run_dlq(command),
        Commands::Processors(command) => cli::run_processors(command),
        Commands::Plugins(command) => cli::run_plugins(command),
        Commands::ConnectorPlugins(command) => {
            plugin_install::run(plugin_install::Kind::Connector, command)
        }
        Commands::ProcessorPlugins(command) => {
            plugin_install::run(plugin_install::Kind::Processor, command)
        }
        Commands::Info(remote) => cli::run_info(remote),
        Commands::Mcp(args) => mcp::run(args),
        Commands::Version => {
            println!("{}", version_line());
            std::process::ExitCode::SUCCESS
        }
        Commands::Completion { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "culvert",
                &mut std::io::stdout(),
            );
            std::process::ExitCode::SUCCESS
        }
        Commands::Revert(args) => cli::run_revert(args),
        Commands::Oracle(command) => oracle::run(command),
        Commands::Top(args) => top::run(args),
        Commands::Tokens(command) => security::run_tokens(command),
        Commands::Events(tools::EventsCommand::Ls(args)) => tools::exit(tools::events_ls(args)),
        Commands::Events(tools::EventsCommand::Tail(args)) => tools::exit(tools::events_tail(args)),
        Commands::Audit { id, data, output } => {
            tools::exit(tools::audit(data, id, output.format()))
        }
        Commands::At {
            seq,
            time,
            noun,
            verb,
            id,
            data,
            output,
        } => tools::exit(tools::at(
            data,
            seq,
            time,
            (noun, verb, id),
            output.format(),
        )),
        Commands::Replay { to, into, data } => tools::exit(tools::replay(data, to, into)),
        Commands::Verify { data } => tools::exit(tools::verify(data)),
        Commands::Secrets(command) => secrets::run(command),
        Commands::Doctor(args) => doctor::run(*args),
        Commands::Config(args) => effective_config::run(*args, Cli::command()),
        Commands::Init(args) => init::init(args, run_command()),
        Commands::Quickstart(args) => init::quickstart(args, run_command()),
        Commands::Run(mut args) => {
            args.resolve_listen_addresses();
            if let Err(error) = init_logging(&args) {
                eprintln!("error: {error:#}");
                return std::process::ExitCode::from(2);
            }
            // Fail points (reliability tests): configured from `FAILPOINTS` for the whole run.
            let _failpoints = match failpoints() {
                Ok(scenario) => scenario,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    return std::process::ExitCode::from(2);
                }
            };
            for warning in warnings {
                tracing::warn!("{warning}");
            }
            match args.conduit_notes() {
                Ok(notes) => {
                    for note in notes {
                        tracing::warn!("{note}");
                    }
                }
                Err(error) => {
                    tracing::error!("{error}");
                    eprintln!("error: {error}");
                    return std::process::ExitCode::from(2);
                }
            }
            if let Err(error) = args.recovery() {
                eprintln!("error: {error:#}");
                return std::process::ExitCode::from(2);
            }
            if let Some(path) = &args.pipelines_path {
                if !path.exists() {
                    eprintln!(
                        "error: \"pipelines.path\" config value is invalid: {} does not exist",
                        path.display()
                    );
                    return std::process::ExitCode::from(2);
                }
            }
            // With the API disabled nothing listens, so no address needs authentication.
            let (grpc_at, http_at) = if args.api_enabled {
                (args.grpc_address.as_str(), args.http_address.as_str())
            } else {
                ("127.0.0.1:0", "127.0.0.1:0")
            };
            let security = match args.security.load(grpc_at, http_at) {
                Ok(security) => security,
                Err(error) => {
                    tracing::error!("{error:#}");
                    eprintln!("error: {error:#}");
                    return std::process::ExitCode::from(2);
                }
            };
            let cors = match culvert_api::Cors::new(
                &args.cors_allowed_origins,
                http_at,
                security.auth.required(),
            ) {
                Ok(cors) => cors,
                Err(error) => {
                    tracing::error!("{error}");
                    eprintln!("error: {error}");
                    return std::process::ExitCode::from(2);
                }
            };
            if cors.allows_any() {
                tracing::warn!(
                    "CORS allows any origin ('*'): every web page open in a browser that can \
                     reach the HTTP API may call it; prefer exact origins outside development"
                );
            }
            match run(*args, Access { security, cors }) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error:#}");
                    eprintln!("error: {error:#}");
                    std::process::ExitCode::from(if is_environment(&error) { 3 } else { 1 })
                }
            }
        }
    }
}

/// Whether `run` failed on its environment rather than at run time: an API address taken
/// or not on this machine (exit 3, as docs/cli.md and Conduit's CLI say).
fn is_environment(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| {
            matches!(
                e.kind(),
                std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable
            )
        })
    })
}

/// The `culvert run` command (its flags are the settings `init` writes out).
fn run_command() -> &'static clap::Command {
    static COMMAND: std::sync::OnceLock<clap::Command> = std::sync::OnceLock::new();
    COMMAND.get_or_init(|| {
        let mut cli = Cli::command();
        cli.build();
        cli.find_subcommand("run")
            .expect("the run subcommand exists")
            .clone()
    })
}

/// Parse the command line, then fill every setting that neither a flag nor an environment
/// variable gave from the config file, through the same parser (so a file value is checked
/// exactly like a flag). Returns the settings and warnings about the file to log.
fn parse_cli() -> anyhow::Result<(Cli, Vec<String>)> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let matches = Cli::command().get_matches_from(&argv);
    // `doctor` and `config` take `run`'s settings, resolved the same way.
    let Some((verb @ ("run" | "doctor" | "config"), run)) = matches.subcommand() else {
        return Ok((Cli::from_arg_matches(&matches)?, vec![]));
    };
    let path: PathBuf = run
        .get_one::<PathBuf>("config_path")
        .cloned()
        .unwrap_or_else(conduit_config::default_config_file);
    let explicit = run.value_source("config_path") != Some(ValueSource::DefaultValue);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok((Cli::from_arg_matches(&matches)?, vec![]));
        }
        Err(e) => anyhow::bail!("reading the config file {}: {e}", path.display()),
    };
    let documents = yaml_rust2::YamlLoader::load_from_str(&text)
        .with_context(|| format!("parsing the config file {}", path.display()))?;
    let mut values = Vec::new();
    if let Some(document) = documents.first() {
        flatten("", document, &mut values)
            .with_context(|| format!("in the config file {}", path.display()))?;
    }
    let command = Cli::command();
    let run_command = command
        .find_subcommand(verb)
        .expect("the subcommand exists");
    let mut extra = Vec::new();
    let mut warnings = Vec::new();
    for (key, value) in values {
        // A key may be a flag's alias (Conduit's `dev.enabled` is `pipelines.watch`).
        let arg = run_command.get_arguments().find(|a| {
            a.get_long() == Some(key.as_str())
                || a.get_all_aliases()
                    .is_some_and(|aliases| aliases.contains(&key.as_str()))
        });
        match arg {
            Some(_) if key == "config.path" => {
                warnings.push(format!(
                    "config file {}: \"config.path\" is ignored inside a config file",
                    path.display()
                ));
            }
            Some(arg) => {
                // Not given (no default) or only defaulted: the file's value applies.
                if matches!(
                    run.value_source(arg.get_id().as_str()),
                    None | Some(ValueSource::DefaultValue)
                ) {
                    let long = arg.get_long().unwrap_or(key.as_str());
                    extra.push(std::ffi::OsString::from(format!("--{long}={value}")));
                }
            }
            None => warnings.push(format!(
                "config file {}: unknown key \"{key}\" ignored",
                path.display()
            )),
        }
    }
    // Insert the file's values right after `run`, before the user's own flags.
    let position = argv
        .iter()
        .position(|a| a == verb)
        .map_or(argv.len(), |p| p + 1);
    let mut full = argv[..position].to_vec();
    full.extend(extra);
    full.extend_from_slice(&argv[position..]);
    let matches = Cli::command()
        .try_get_matches_from(&full)
        .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
    Ok((Cli::from_arg_matches(&matches)?, warnings))
}

/// Config-file keys that may hold a list (joined with commas).
const LIST_KEYS: [&str; 3] = [
    "api.http.cors.allowed-origins",
    "processors.egress.allow",
    "processors.egress.secret-refs",
];

/// `a: {b: 1}` becomes `("a.b", "1")`; lists are refused except for [`LIST_KEYS`].
fn flatten(
    prefix: &str,
    value: &yaml_rust2::Yaml,
    out: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    use yaml_rust2::Yaml;
    let scalar = match value {
        Yaml::Null => return Ok(()),
        Yaml::Hash(map) => {
            for (k, v) in map {
                let Some(k) = k.as_str() else {
                    anyhow::bail!("key {k:?} under {prefix:?} is not a string");
                };
                let key = if prefix.is_empty() {
                    k.to_owned()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out)?;
            }
            return Ok(());
        }
        Yaml::Boolean(b) => b.to_string(),
        Yaml::Integer(n) => n.to_string(),
        // An empty list, as a list or as `conduit init` writes it ('[]'), is the default.
        Yaml::String(text) if LIST_KEYS.contains(&prefix) && text.trim() == "[]" => return Ok(()),
        Yaml::Array(items) if LIST_KEYS.contains(&prefix) && items.is_empty() => return Ok(()),
        Yaml::Real(text) | Yaml::String(text) => text.clone(),
        // The egress lists may be YAML lists (as in Conduit's conduit.yaml).
        Yaml::Array(items) if LIST_KEYS.contains(&prefix) => items
            .iter()
            .map(|item| match item {
                Yaml::String(text) | Yaml::Real(text) => Ok(text.clone()),
                Yaml::Integer(n) => Ok(n.to_string()),
                _ => Err(anyhow::anyhow!("{prefix:?} must be a list of strings")),
            })
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(","),
        Yaml::Array(_) | Yaml::Alias(_) | Yaml::BadValue => {
            anyhow::bail!("{prefix:?} must be a single value")
        }
    };
    out.push((prefix.to_owned(), scalar));
    Ok(())
}

fn init_logging(args: &RunArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(logging::directives(&args.log_level))
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

/// The event log, the position store and the dead-letter store (one store holds all), and
/// the RocksDB store itself when it is one (its memory figures go to `/metrics`).
type Stores = (
    Arc<dyn EventLog>,
    Arc<dyn PositionStore>,
    Arc<dyn culvert_store::DeadLetterStore>,
    Option<Arc<RocksStore>>,
);

fn open_log(args: &RunArgs) -> anyhow::Result<Stores> {
    Ok(match args.db_type {
        DbType::Inmemory => {
            let store = Arc::new(MemoryStore::new());
            (store.clone(), store.clone(), store, None)
        }
        DbType::Postgres => anyhow::bail!(
            "\"db.type\" config value is invalid: Culvert cannot keep its state in PostgreSQL"
        ),
        DbType::Rocksdb | DbType::Badger | DbType::Sqlite => {
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
            let store = Arc::new(store);
            (store.clone(), store.clone(), store.clone(), Some(store))
        }
    })
}

/// The schema registry the flags choose; a Confluent one without what it needs is an
/// error naming the missing flag.
fn schema_registry(
    args: &RunArgs,
    writer: &Arc<ControlPlaneWriter>,
) -> anyhow::Result<Arc<dyn culvert_plugins::schema::SchemaRegistry>> {
    use culvert_processors::confluent::{Auth, ConfluentRegistry};
    if args.schema_registry_type == SchemaRegistryType::Builtin {
        return Ok(Arc::new(schemas::LogRegistry(
            culvert_commands::SchemaOrchestrator::new(writer.clone()),
        )));
    }
    let required = |value: &Option<String>, flag: &str| {
        value.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
            anyhow::anyhow!(
                "invalid config: {flag} is required with schema-registry.type confluent"
            )
        })
    };
    let url = required(
        &args.confluent_url,
        "schema-registry.confluent.connection-string",
    )?;
    let auth = match args.confluent_auth {
        ConfluentAuth::None => Auth::None,
        ConfluentAuth::Basic => Auth::Basic {
            username: required(
                &args.confluent_username,
                "schema-registry.confluent.auth.basic.username",
            )?,
            password: required(
                &args.confluent_password,
                "schema-registry.confluent.auth.basic.password",
            )?,
        },
        ConfluentAuth::Bearer => Auth::Bearer(required(
            &args.confluent_token,
            "schema-registry.confluent.auth.bearer.token",
        )?),
    };
    let registry = ConfluentRegistry::new(&url, auth).map_err(|e| {
        anyhow::anyhow!("invalid config: schema-registry.confluent.connection-string: {e}")
    })?;
    tracing::info!(
        url = %culvert_processors::url_without_password(&url),
        "schemas are kept in a Confluent schema registry"
    );
    Ok(Arc::new(registry))
}

/// How the APIs let callers in: authentication, TLS and the rate limit, and the browser
/// origins allowed.
struct Access {
    security: culvert_api::Security,
    cors: culvert_api::Cors,
}

fn run(args: RunArgs, access: Access) -> anyhow::Result<()> {
    let started = Instant::now();
    let (log, positions, letters, rocks) = open_log(&args)?;
    // One registry for the server (`/metrics`); appends to the log are timed into it.
    let metrics = Arc::new(culvert_engine::Metrics::new());
    let log: Arc<dyn EventLog> = Arc::new(metrics::TimedLog::new(log, metrics.clone()));
    let (projections, report) = Projections::open(
        log.as_ref(),
        ProjectionOptions {
            snapshot_every: args.snapshot_every,
        },
    )
    .context("rebuilding the control plane from the event log")?;
    let specs = Arc::new(secrets::RegistrySpecs::default());
    let ring = secrets::load_ring(
        &secrets::key_file(args.secrets_key_file.as_deref(), &args.db_path),
        &projections.read(),
        args.db_type.durable(),
    )?;
    let sealing = culvert_secrets::Secrets::new(ring, specs.clone());
    secrets::check(&sealing, &projections.read())?;
    let writer =
        ControlPlaneWriter::with_secrets(log.clone(), Arc::new(projections), true, sealing);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let schemas = schema_registry(&args, &writer)?;
    culvert_hosts::connutils::install_registry(schemas.clone());
    let mut connectors = culvert_connectors::registry_with_schemas(schemas.clone());
    let (standalone, errors) =
        runtime.block_on(culvert_hosts::standalone::discover(&args.connectors_path));
    for error in errors {
        tracing::warn!(%error, "standalone connector plugin skipped");
    }
    for plugin in standalone {
        tracing::info!(
            plugin = %plugin.specification().full_name(),
            path = %plugin.path().display(),
            "standalone connector plugin loaded"
        );
        connectors.add_standalone(Arc::new(
            plugin
                .with_call_timeout(args.connectors_call_timeout)
                .with_max_receive_record_size(args.connectors_max_receive_record_size),
        ));
    }
    let mut processors = culvert_processors::registry_with_schemas(schemas);
    let limits = culvert_hosts::wasm::Limits {
        memory_bytes: args.wasm_memory_limit,
        call_timeout: args.wasm_call_timeout,
    };
    let ceiling = culvert_hosts::egress::Policy::ceiling(
        args.egress_enabled,
        &args.egress_allow,
        &args.egress_secret_refs,
        args.egress_timeout,
        args.egress_max_response_bytes as u64,
    )
    .map_err(|e| anyhow::anyhow!("invalid config: {e}"))?;
    if ceiling.enabled {
        tracing::info!(
            allow = %ceiling.allowlist.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            "WASM processor egress is open to processors that opt in (sdk.egress.allow)"
        );
    }
    let (wasm, errors) = runtime.block_on(culvert_hosts::wasm::discover(
        &args.processors_path,
        limits,
        ceiling,
    ));
    for error in errors {
        tracing::warn!(%error, "standalone processor plugin skipped");
    }
    for plugin in wasm {
        tracing::info!(
            plugin = %culvert_plugins::processor::ProcessorPlugin::specification(&plugin)
                .full_name(),
            path = %plugin.path().display(),
            "standalone processor plugin loaded"
        );
        processors.add_standalone(Arc::new(plugin));
    }
    let plugins = Plugins {
        connectors: Arc::new(connectors),
        processors: Arc::new(processors),
    };
    specs.install(plugins.connectors.clone(), plugins.processors.clone());
    provision(&args, &writer, &plugins)?;
    runtime.block_on(serve(
        &args,
        access,
        writer.clone(),
        plugins,
        EngineStores {
            positions,
            letters,
            rocks,
        },
        report,
        started,
        metrics,
    ))?;
    if writer.head() > culvert_domain::Seq::ZERO {
        writer
            .projections()
            .write_snapshot(log.as_ref())
            .context("writing the shutdown snapshot")?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The plugins this server runs.
struct Plugins {
    connectors: Arc<culvert_plugins::Registry>,
    processors: Arc<culvert_processors::ProcessorRegistry>,
}

/// Provision the pipelines of the configuration files (before anything runs), logging every
/// problem with its file, line and column. Bad files never stop the server.
fn provision(
    args: &RunArgs,
    writer: &Arc<ControlPlaneWriter>,
    plugins: &Plugins,
) -> anyhow::Result<()> {
    let path = args
        .pipelines_path
        .clone()
        .unwrap_or_else(|| PathBuf::from("./pipelines"));
    if args.pipelines_path.is_none() && !path.exists() {
        tracing::debug!(path = %path.display(), "no pipelines directory; nothing to provision");
        return Ok(());
    }
    let provisioner = culvert_provisioning::Provisioner::new(
        writer.clone(),
        plugins.connectors.clone(),
        plugins.processors.clone(),
    );
    let started = Instant::now();
    let report = provisioner
        .provision(&path, &|name| std::env::var(name).ok())
        .context("provisioning pipelines")?;
    log_provisioning(&path, &report, started);
    if args.exit_on_degraded && report.errors().next().is_some() {
        anyhow::bail!(
            "shutting down: pipeline files at {} could not be provisioned (the errors are \
             above) and --pipelines.exit-on-degraded is set",
            path.display()
        );
    }
    Ok(())
}

/// The degraded pipelines (id -> error) in the read model now.
fn degraded_pipelines(writer: &ControlPlaneWriter) -> std::collections::BTreeMap<String, String> {
    use culvert_domain::PipelineStatus;
    writer
        .projections()
        .read()
        .pipelines()
        .filter_map(|p| match &p.status {
            PipelineStatus::Degraded { error } => Some((p.id.to_string(), error.clone())),
            _ => None,
        })
        .collect()
}

/// Returns a future that completes with an error naming the first pipeline to become
/// degraded after this call (one degraded already does not count: Conduit acts on new
/// failures only). Call it before the engine starts, so no failure slips past.
fn first_degraded(
    writer: Arc<ControlPlaneWriter>,
) -> impl std::future::Future<Output = anyhow::Error> {
    let mut applied = writer.projections().watch_applied();
    let mut before = degraded_pipelines(&writer);
    async move {
        loop {
            if applied.changed().await.is_err() {
                // The read model is gone: the server is shutting down anyway.
                return std::future::pending().await;
            }
            let now = degraded_pipelines(&writer);
            if let Some((id, error)) = now.iter().find(|(id, _)| !before.contains_key(*id)) {
                return anyhow::anyhow!(
                    "shutting down: pipeline {id} is degraded ({error}) and \
                     --pipelines.exit-on-degraded is set"
                );
            }
            before = now;
        }
    }
}

/// Log a provisioning run: every problem with its file, line and column, then a summary.
pub(crate) fn log_provisioning(
    path: &std::path::Path,
    report: &culvert_provisioning::Report,
    started: Instant,
) {
    for problem in &report.problems {
        let fields = (
            problem.file.as_str(),
            problem.at.line,
            problem.at.column,
            problem.path.as_str(),
        );
        match problem.severity {
            culvert_provisioning::config::Severity::Error => tracing::error!(
                file = fields.0,
                line = fields.1,
                column = fields.2,
                field = fields.3,
                "pipeline configuration: {}",
                problem.message
            ),
            culvert_provisioning::config::Severity::Warning => tracing::warn!(
                file = fields.0,
                line = fields.1,
                column = fields.2,
                field = fields.3,
                "pipeline configuration: {}",
                problem.message
            ),
        }
    }
    tracing::info!(
        path = %path.display(),
        files = report.files.len(),
        created = report.created.len(),
        updated = report.updated.len(),
        deleted = report.deleted.len(),
        unchanged = report.unchanged.len(),
        skipped = report.skipped.len(),
        errors = report.errors().count(),
        events = report.events,
        ms = started.elapsed().as_millis() as u64,
        "pipelines provisioned"
    );
}

/// What the engine writes besides the log: positions and dead letters.
struct EngineStores {
    positions: Arc<dyn PositionStore>,
    letters: Arc<dyn culvert_store::DeadLetterStore>,
    /// The RocksDB store, when it is one (for its memory figures).
    rocks: Option<Arc<RocksStore>>,
}

async fn serve(
    args: &RunArgs,
    access: Access,
    writer: Arc<ControlPlaneWriter>,
    plugins: Plugins,
    stores: EngineStores,
    report: culvert_projections::OpenReport,
    started: Instant,
    metrics: Arc<culvert_engine::Metrics>,
) -> anyhow::Result<()> {
    let EngineStores {
        positions,
        letters,
        rocks,
    } = stores;
    let Access { security, cors } = access;
    let security = &security;
    // Listen for signals before saying we are ready, so an early SIGTERM shuts down cleanly.
    let signals = shutdown_signal()?;
    // And for pipelines failing, before the engine starts any.
    let degraded = {
        let watch = args
            .exit_on_degraded
            .then(|| first_degraded(writer.clone()));
        async move {
            match watch {
                Some(watch) => watch.await,
                None => std::future::pending().await,
            }
        }
    };
    let listeners = if args.api_enabled {
        let grpc = tokio::net::TcpListener::bind(&args.grpc_address)
            .await
            .with_context(|| format!("binding the gRPC API to {}", args.grpc_address))?;
        let grpc_address = grpc.local_addr().context("reading the gRPC address")?;
        tracing::info!(address = %grpc_address, "gRPC API listening");
        let http = tokio::net::TcpListener::bind(&args.http_address)
            .await
            .with_context(|| format!("binding the HTTP API to {}", args.http_address))?;
        let http_address = http.local_addr().context("reading the HTTP address")?;
        let scheme = if security.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!(
            address = %http_address,
            openapi = %format!("{scheme}://{http_address}/openapi/"),
            ui = %if args.http_ui_enabled {
                format!("{scheme}://{http_address}/")
            } else {
                "off".to_owned()
            },
            "HTTP API listening"
        );
        tracing::info!(security = %security::describe(security), "API security");
        Some((grpc, http))
    } else {
        None
    };
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
    let (stop_tx, rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let Plugins {
        connectors: plugins,
        processors: processor_plugins,
    } = plugins;
    let supervisor = culvert_supervisor::Supervisor::new(
        writer.clone(),
        plugins.clone(),
        processor_plugins.clone(),
        positions.clone(),
        args.recovery()?,
    );
    supervisor.set_metrics(metrics.clone());
    supervisor.set_dead_letters(letters.clone(), args.letter_limits()?);
    // The stream inspector's sessions: the API opens them, running pipelines feed them.
    let inspectors = Arc::new(culvert_engine::Inspectors::default());
    inspectors.set_metrics(&metrics);
    supervisor.set_inspectors(inspectors.clone());
    metrics
        .connector_plugins
        .set(plugins.specifications().count() as i64);
    metrics
        .processor_plugins
        .set(processor_plugins.specifications().count() as i64);
    let metrics_source = culvert_api::MetricsSource {
        content_type: culvert_engine::metrics::CONTENT_TYPE,
        render: {
            let writer = writer.clone();
            Arc::new(move || metrics::render(&metrics, &writer, rocks.as_deref()))
        },
    };
    let supervisor = tokio::spawn(supervisor.run(rx.clone()));
    // glibc keeps what RocksDB frees (a flushed memtable, a compaction's buffers): give its
    // free pages back now and then, as mimalloc does for Rust's (src/allocator.rs). A thread
    // of its own: it never holds an async worker, and it lives as long as the process.
    if let Err(error) = std::thread::Builder::new()
        .name("c-heap-trim".into())
        .spawn(|| loop {
            std::thread::sleep(allocator::TRIM_EVERY);
            allocator::trim_c_heap();
        })
    {
        tracing::warn!(%error, "the C heap will not be trimmed: no thread for it");
    }
    if args.pipelines_watch {
        let path = args
            .pipelines_path
            .clone()
            .unwrap_or_else(|| PathBuf::from("./pipelines"));
        let provisioner = Arc::new(culvert_provisioning::Provisioner::new(
            writer.clone(),
            plugins.clone(),
            processor_plugins.clone(),
        ));
        tokio::spawn(reload::watch(path, provisioner, writer.clone(), rx.clone()));
    }
    let api = culvert_api::Api::with_plugins(writer, plugins, processor_plugins)
        .with_shutdown(rx.clone())
        .with_inspectors(inspectors)
        .with_positions(positions)
        .with_dead_letters(letters)
        .with_live_restart_apply(args.allow_live_restart_apply)
        .with_start_wait(std::time::Duration::from_secs(30));
    let grpc_options = culvert_api::GrpcOptions {
        max_message_bytes: args.grpc_max_message_bytes,
        call_timeout: args.grpc_call_timeout,
        max_concurrent_calls: args.grpc_max_concurrent_calls,
    };
    let options = culvert_api::HttpOptions {
        max_body_bytes: args.http_max_body_bytes,
        metrics: Some(metrics_source),
        cors,
        ui: args.http_ui_enabled,
    };
    // With the API disabled, neither server runs: their tasks finish at once with nothing
    // served, and only a signal or a degraded pipeline ends the run.
    let (mut grpc_server, mut http_server) = match listeners {
        Some((grpc, http)) => (
            tokio::spawn({
                let (api, security, stop) = (api.clone(), security.clone(), stopped(rx.clone()));
                async move {
                    culvert_api::serve_grpc_secured(grpc, api, grpc_options, &security, stop).await
                }
            }),
            tokio::spawn({
                let security = security.clone();
                async move {
                    culvert_api::serve_http_secured(http, api, options, &security, stopped(rx))
                        .await
                }
            }),
        ),
        None => (
            tokio::spawn(async { Ok(()) }),
            tokio::spawn(async { Ok(()) }),
        ),
    };
    let api_enabled = args.api_enabled;
    let outcome = tokio::select! {
        signal = signals => {
            signal.map(|()| tracing::info!("shutting down: letting in-flight calls finish"))
        }
        error = degraded => {
            tracing::error!("{error:#}");
            Err(error)
        }
        result = &mut grpc_server, if api_enabled => Err(match result {
            Ok(Ok(())) => anyhow::anyhow!("the gRPC server stopped unexpectedly"),
            Ok(Err(e)) => anyhow::Error::new(e).context("the gRPC server failed"),
            Err(e) => anyhow::Error::new(e).context("the gRPC server task failed"),
        }),
        result = &mut http_server, if api_enabled => Err(match result {
            Ok(Ok(())) => anyhow::anyhow!("the HTTP server stopped unexpectedly"),
            Ok(Err(e)) => anyhow::Error::new(e).context("the HTTP server failed"),
            Err(e) => anyhow::Error::new(e).context("the HTTP server task failed"),
        }),
    };
    // Whatever happened, stop both servers and let their in-flight calls finish.
    let _ = stop_tx.send(true);
    if !grpc_server.is_finished() {
        grpc_server
            .await
            .context("the gRPC server task failed")?
            .context("the gRPC server failed")?;
    }
    if !http_server.is_finished() {
        http_server
            .await
            .context("the HTTP server task failed")?
            .context("the HTTP server failed")?;
    }
    // Then let running pipelines drain.
    supervisor.await.context("the pipeline supervisor failed")?;
    outcome
}

/// Install the SIGTERM and SIGINT handlers now; the future completes on either signal.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
        }
        Ok(())
    })
}
