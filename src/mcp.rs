//! `culvert mcp`: a Model Context Protocol server, so an AI assistant (an MCP client such as
//! Claude Code, Cursor or an IDE agent) can look at a running Culvert server and, when
//! allowed, change it. Built on the official Rust MCP SDK (`rmcp`), over stdio (the client
//! starts `culvert mcp` as a child process) or streamable HTTP (`--transport http`, on
//! `--http.address`, loopback by default, at the path `/mcp`).
//!
//! It is a client of a Culvert server, like the other client verbs: it reaches the server's
//! gRPC API as [`crate::client`] says (address, token, TLS), connecting on the first tool
//! call (so the MCP client can start it before the server is up). Every call it makes
//! carries `culvert-actor: mcp:<the MCP client's name>`, so the audit trail shows which
//! assistant made a change; a server with authentication records the token's identity
//! instead (the MCP server then acts as its token's identity).
//!
//! Read tools are always there; the tools that change the server (`create_pipeline`,
//! `start_pipeline`, `stop_pipeline`) are listed and callable only with `--allow-writes`.
//! A failed call of the server comes back as a tool error (`isError`) carrying the server's
//! message, not as a protocol failure, so the assistant can read it and act. docs/mcp.md
//! lists the tools.

use crate::client::{self, Channel};
use culvert_api::pb::api::v1 as pb;
use culvert_api::pb::culvert::api::v1 as pp;
use culvert_api::pb::opencdc::v1::Record;
use pb::connector_service_client::ConnectorServiceClient;
use pb::pipeline_service_client::PipelineServiceClient;
use pb::processor_service_client::ProcessorServiceClient;
use pp::dead_letter_service_client::DeadLetterServiceClient;
use pp::event_log_service_client::EventLogServiceClient;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The default address of the streamable HTTP transport (loopback only).
const DEFAULT_HTTP_ADDRESS: &str = "127.0.0.1:8091";

/// The path the streamable HTTP transport answers on.
const HTTP_PATH: &str = "/mcp";

/// The tools that change the server: off unless `--allow-writes`.
const WRITE_TOOLS: [&str; 4] = [
    "create_pipeline",
    "start_pipeline",
    "stop_pipeline",
    "repair_apply",
];

/// The most records `inspect_records` collects in one call.
const MAX_INSPECT_COUNT: u32 = 1000;

/// The longest `inspect_records` waits for records, in seconds.
const MAX_INSPECT_SECONDS: u64 = 300;

/// The most events `audit` and dead letters `list_dead_letters` answer in one call.
const MAX_LIMIT: u32 = 1000;

/// `culvert mcp` flags.
#[derive(clap::Args, Debug)]
pub struct McpArgs {
    /// The Culvert server to talk to.
    #[command(flatten)]
    pub server: client::Server,
    /// How the MCP client talks to this server: `stdio` (the client starts `culvert mcp`
    /// and speaks on its stdin/stdout) or `http` (streamable HTTP on --http.address, path
    /// /mcp).
    #[arg(long, value_enum, default_value_t = Transport::Stdio)]
    pub transport: Transport,
    /// Where the streamable HTTP transport listens (host:port). Loopback by default; it has
    /// no authentication of its own, so expose it beyond this machine only behind one.
    #[arg(long = "http.address", default_value = DEFAULT_HTTP_ADDRESS)]
    pub http_address: String,
    /// List and allow the tools that change the server (create_pipeline, start_pipeline,
    /// stop_pipeline). Off by default: an assistant can only read.
    #[arg(long)]
    pub allow_writes: bool,
}

/// The MCP transports `culvert mcp` serves.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// JSON-RPC over the process's stdin and stdout.
    Stdio,
    /// Streamable HTTP (MCP's HTTP transport).
    Http,
}

/// Run `culvert mcp` until the MCP client goes away (stdio) or a signal (HTTP).
pub fn run(args: McpArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let mcp = Mcp::new(args.server, args.allow_writes);
    let outcome = runtime.block_on(async move {
        match args.transport {
            Transport::Stdio => serve_stdio(mcp).await,
            Transport::Http => serve_http(mcp, &args.http_address).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// Why `culvert mcp` stopped: the exit code (1 runtime, 2 usage, 3 environment) and what
/// to tell the user.
struct Failure(u8, String);

async fn serve_stdio(mcp: Mcp) -> Result<(), Failure> {
    let running = mcp
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| Failure(1, format!("the MCP client's initialization failed: {e}")))?;
    let cancel = running.cancellation_token();
    tokio::select! {
        // Cancel-safe: it only waits for the service to end; nothing is read here.
        finished = running.waiting() => {
            finished.map_err(|e| Failure(1, format!("the MCP service failed: {e}")))?;
        }
        // Cancel-safe: a signal future holds no data.
        () = shutdown_signal() => cancel.cancel(),
    }
    Ok(())
}

async fn serve_http(mcp: Mcp, address: &str) -> Result<(), Failure> {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| Failure(3, format!("--http.address {address}: cannot listen: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure(3, format!("--http.address {address}: {e}")))?;
    // Host checks against DNS rebinding: loopback names, plus the address listened on.
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    hosts.push(local.ip().to_string());
    hosts.push(local.to_string());
    let config = StreamableHttpServerConfig::default().with_allowed_hosts(hosts);
    let stop = config.cancellation_token.clone();
    let service = StreamableHttpService::new(
        move || Ok(mcp.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    eprintln!("MCP server (streamable HTTP) listening on http://{local}{HTTP_PATH}");
    let mut connections = tokio::task::JoinSet::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            // Cancel-safe: TcpListener::accept keeps no accepted connection in the future.
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting an MCP connection");
                        continue;
                    }
                };
                let service = service.clone();
                connections.spawn(async move {
                    let handler = hyper::service::service_fn(move |request| {
                        let service = service.clone();
                        async move {
                            let response = route(&service, request).await;
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, handler)
                        .await
                    {
                        tracing::debug!(error = %e, "an MCP HTTP connection ended");
                    }
                });
            }
            // Cancel-safe: reaps a finished connection task; nothing else is taken.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            // Cancel-safe: a signal future holds no data (and is pinned across turns).
            () = &mut shutdown => break,
        }
    }
    // Ends every session's streams, then the connections still open.
    stop.cancel();
    connections.shutdown().await;
    Ok(())
}

/// The streamable HTTP service at [`HTTP_PATH`]; 404 elsewhere.
async fn route<M>(
    service: &rmcp::transport::streamable_http_server::StreamableHttpService<Mcp, M>,
    request: http::Request<hyper::body::Incoming>,
) -> http::Response<
    http_body_util::combinators::BoxBody<hyper::body::Bytes, std::convert::Infallible>,
>
where
    M: rmcp::transport::streamable_http_server::SessionManager,
{
    use http_body_util::BodyExt as _;
    if request.uri().path() == HTTP_PATH {
        return service.handle(request).await;
    }
    let body = http_body_util::Full::new(hyper::body::Bytes::from(format!(
        "not found: the MCP endpoint is {HTTP_PATH}\n"
    )))
    .boxed();
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::NOT_FOUND;
    response
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut interrupt), Ok(mut term)) => {
                // Cancel-safety: either signal ends the wait; the other is not needed.
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The MCP server: the tools, and the way to the Culvert server they call.
#[derive(Clone)]
pub struct Mcp {
    server: Arc<client::Server>,
    /// The gRPC channel, made on the first tool call that needs it.
    channel: Arc<tokio::sync::OnceCell<Channel>>,
    allow_writes: bool,
    tools: ToolRouter<Mcp>,
}

impl Mcp {
    /// An MCP server for the Culvert server `server` names; write tools only with
    /// `allow_writes`.
    pub fn new(server: client::Server, allow_writes: bool) -> Self {
        let mut tools = Self::read_tools();
        if allow_writes {
            tools += Self::write_tools();
        }
        Self {
            server: Arc::new(server),
            channel: Arc::new(tokio::sync::OnceCell::new()),
            allow_writes,
            tools,
        }
    }

    /// The channel to the Culvert server (connected once; a failed connection is tried
    /// again on the next call).
    async fn channel(&self) -> Result<Channel, ToolError> {
        let channel = self
            .channel
            .get_or_try_init(|| client::connect(&self.server))
            .await
            .map_err(|e| ToolError(e.message))?;
        Ok(channel.clone())
    }
}

#[tool_handler(router = self.tools)]
impl ServerHandler for Mcp {
    fn get_info(&self) -> ServerConfig {
        let writes = if self.allow_writes {
            "Write tools (create_pipeline, start_pipeline, stop_pipeline) are enabled."
        } else {
            "Only read tools are enabled (start culvert mcp with --allow-writes for \
             create_pipeline, start_pipeline and stop_pipeline)."
        };
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("culvert", env!("CARGO_PKG_VERSION")).with_title("Culvert"),
            )
            .with_instructions(format!(
                "Tools for a running Culvert (Conduit-compatible data-integration) server: \
                 pipelines, connectors, records flowing through them, dead letters, the audit \
                 trail of every change and the state of an entity at any earlier point. {writes} \
                 Changes are recorded with the actor mcp:<your client name>."
            ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !self.allow_writes && WRITE_TOOLS.contains(&request.name.as_ref()) {
            return Err(ErrorData::invalid_params(
                format!(
                    "tool {:?} changes the server and is off: start `culvert mcp` with \
                     --allow-writes to enable it",
                    request.name
                ),
                None,
            ));
        }
        self.tools
            .call(ToolCallContext::new(self, request, context))
            .await
    }
}

/// `describe_pipeline`, `start_pipeline`: one pipeline.
#[derive(Debug, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct PipelineId {
    /// The pipeline's id.
    pub id: String,
}

/// `list_pipelines`.
#[derive(Debug, Default, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct ListPipelines {
    /// Only pipelines whose whole name matches this regular expression.
    #[serde(default)]
    pub name: Option<String>,
}

/// `list_connectors`.
#[derive(Debug, Default, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct ListConnectors {
    /// Only the connectors of this pipeline (its id); all connectors when left out.
    #[serde(default)]
    pub pipeline: Option<String>,
}

/// Which side of a processor `inspect_records` watches.
#[derive(Debug, Clone, Copy, Default, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The records going into the processor.
    In,
    /// The records coming out of it.
    #[default]
    Out,
}

/// `inspect_records`.
#[derive(Debug, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct InspectRecords {
    /// A connector's id (the records it reads or writes) or a processor's id.
    pub id: String,
    /// How many records to collect (default 10, at most 1000).
    #[serde(default)]
    pub count: Option<u32>,
    /// How long to wait for them, in seconds (default 5, at most 300); the records seen by
    /// then are returned.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// For a processor: `in` (records going in) or `out` (coming out, the default).
    #[serde(default)]
    pub direction: Option<Direction>,
}

/// `audit`.
#[derive(Debug, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct Audit {
    /// A pipeline's, connector's or processor's id.
    pub id: String,
    /// At most this many events, the latest (default 50, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `pipeline_at`.
#[derive(Debug, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct PipelineAt {
    /// A pipeline's, connector's or processor's id.
    pub id: String,
    /// As of this event-log sequence number (inclusive). Give this or `time`.
    #[serde(default)]
    pub seq: Option<u64>,
    /// As of this time, RFC 3339 (e.g. 2026-01-31T12:00:00Z). Give this or `seq`.
    #[serde(default)]
    pub time: Option<String>,
}

/// `list_dead_letters`.
#[derive(Debug, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct ListDeadLetters {
    /// The pipeline's id.
    pub pipeline: String,
    /// Only letters numbered above this (for the next page; default: from the first).
    #[serde(default)]
    pub after: Option<u64>,
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `create_pipeline`.
#[derive(Debug, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct CreatePipeline {
    /// The new pipeline's name (unique on the server).
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// `repair`.
#[derive(Debug, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct Repair {
    /// The pipeline configuration file's YAML content (one pipeline document).
    pub config: String,
}

/// `repair_apply`.
#[derive(Debug, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct RepairApply {
    /// The same content the `repair` tool was given.
    pub config: String,
    /// The plan hash from the `repair` tool's answer; refused unless it is the hash of the
    /// plan computed again now.
    #[serde(default)]
    pub hash: String,
    /// Apply only the fixes at these config paths (default: every safe fix).
    #[serde(default)]
    pub select: Vec<String>,
}

/// `stop_pipeline`.
#[derive(Debug, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct StopPipeline {
    /// The pipeline's id.
    pub id: String,
    /// Stop at once without draining the records in flight (they are read again on the
    /// next start).
    #[serde(default)]
    pub force: bool,
}

#[tool_router(router = read_tools)]
impl Mcp {
    /// Every pipeline of the server.
    #[tool(
        description = "List the server's pipelines: id, name, description, status \
                       (STATUS_RUNNING, STATUS_STOPPED, STATUS_DEGRADED, ...), error, \
                       connector and processor ids. Optionally only names matching a regular \
                       expression.",
        annotations(title = "List pipelines", read_only_hint = true)
    )]
    async fn list_pipelines(
        &self,
        Parameters(args): Parameters<ListPipelines>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        reply(async {
            let pipelines = PipelineServiceClient::new(self.channel().await?)
                .list_pipelines(actor_request(
                    pb::ListPipelinesRequest {
                        name: args.name.unwrap_or_default(),
                    },
                    &context,
                ))
                .await?
                .into_inner()
                .pipelines;
            Ok(json!({ "pipelines": pipelines }))
        })
        .await
    }

    /// One pipeline with its connectors, processors and DLQ.
    #[tool(
        description = "Describe one pipeline: its state and configuration, its connectors \
                       (sources and destinations with plugin and settings, secrets redacted), \
                       its processors (the pipeline's and its connectors') and its dead-letter \
                       queue settings.",
        annotations(title = "Describe a pipeline", read_only_hint = true)
    )]
    async fn describe_pipeline(
        &self,
        Parameters(args): Parameters<PipelineId>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        reply(async {
            let id = required("id", args.id)?;
            let channel = self.channel().await?;
            let mut pipelines = PipelineServiceClient::new(channel.clone());
            let pipeline = pipelines
                .get_pipeline(actor_request(
                    pb::GetPipelineRequest { id: id.clone() },
                    &context,
                ))
                .await?
                .into_inner()
                .pipeline;
            let dlq = pipelines
                .get_dlq(actor_request(
                    pb::GetDlqRequest { id: id.clone() },
                    &context,
                ))
                .await?
                .into_inner()
                .dlq;
            let connectors = ConnectorServiceClient::new(channel.clone())
                .list_connectors(actor_request(
                    pb::ListConnectorsRequest {
                        pipeline_id: id.clone(),
                    },
                    &context,
                ))
                .await?
                .into_inner()
                .connectors;
            let mut parents = vec![id];
            parents.extend(connectors.iter().map(|c| c.id.clone()));
            let processors = ProcessorServiceClient::new(channel)
                .list_processors(actor_request(
                    pb::ListProcessorsRequest {
                        parent_ids: parents,
                    },
                    &context,
                ))
                .await?
                .into_inner()
                .processors;
            Ok(json!({
                "pipeline": pipeline,
                "connectors": connectors,
                "processors": processors,
                "dlq": dlq,
            }))
        })
        .await
    }

    /// Connectors, of one pipeline or all.
    #[tool(
        description = "List connectors (sources and destinations): id, type, plugin, \
                       pipeline, name, settings (secrets redacted). Optionally only one \
                       pipeline's.",
        annotations(title = "List connectors", read_only_hint = true)
    )]
    async fn list_connectors(
        &self,
        Parameters(args): Parameters<ListConnectors>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        reply(async {
            let connectors = ConnectorServiceClient::new(self.channel().await?)
                .list_connectors(actor_request(
                    pb::ListConnectorsRequest {
                        pipeline_id: args.pipeline.unwrap_or_default(),
                    },
                    &context,
                ))
                .await?
                .into_inner()
                .connectors;
            Ok(json!({ "connectors": connectors }))
        })
        .await
    }

    /// Records flowing through a connector or processor, live.
    #[tool(
        description = "Watch the records flowing through a connector (what a source reads or \
                       a destination writes) or a processor (direction in or out) of a \
                       running pipeline, as OpenCDC JSON: collects up to `count` records \
                       (default 10, max 1000) or until `timeout_seconds` (default 5) pass, \
                       whichever comes first. Only records flowing while it watches are seen.",
        annotations(title = "Inspect records", read_only_hint = true)
    )]
    async fn inspect_records(
        &self,
        Parameters(args): Parameters<InspectRecords>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        reply(self.inspect(args, context)).await
    }

    /// The audit trail of one entity.
    #[tool(
        description = "The audit trail of a pipeline, connector or processor: every event of \
                       the control-plane log that touched it (created, updated, started, \
                       stopped, degraded, ...), latest last, each with its sequence number, \
                       time, actor (who: token:<name>, user:<name>, mcp:<client>, system, \
                       provisioning:<file>, ...), reason and data. `limit` keeps the latest \
                       (default 50, max 1000).",
        annotations(title = "Audit trail", read_only_hint = true)
    )]
    async fn audit(
        &self,
        Parameters(args): Parameters<Audit>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        reply(self.audit_events(args, context)).await
    }

    /// The machine-appliable fixes of a pipeline file.
    #[tool(
        description = "Scan a pipeline configuration file's YAML content (`config`, one \
                       pipeline document) for the fixes `culvert pipelines repair` can make \
                       (misspelled keys, deprecated names, values out of range), each with \
                       its config path, before and after, and class (safe, restart, \
                       data_path), and the plan's hash for repair_apply. Changes nothing.",
        annotations(title = "Plan a pipeline file's repair", read_only_hint = true)
    )]
    async fn repair(&self, Parameters(args): Parameters<Repair>) -> CallToolResult {
        reply(async {
            let config = required("config", args.config)?;
            crate::repair::plan_content(&config).map_err(|e| ToolError(e.to_string()))
        })
        .await
    }

    /// An entity as it was at an earlier point.
    #[tool(
        description = "Time travel: a pipeline, connector or processor as it was just after \
                       an event-log sequence number (`seq`) or at a time (`time`, RFC 3339), \
                       folded from the event log. Answers the entity and `asOfSeq`, the last \
                       event folded in. Use `audit` to find sequence numbers.",
        annotations(title = "Entity at a point in time", read_only_hint = true)
    )]
    async fn pipeline_at(
        &self,
        Parameters(args): Parameters<PipelineAt>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        reply(async {
            let entity_id = required("id", args.id)?;
            let (seq, time) = match (args.seq, args.time) {
                (Some(_), Some(_)) => {
                    return Err(ToolError("give seq or time, not both".to_owned()))
                }
                (None, None) => {
                    return Err(ToolError(
                        "say when: seq (a sequence number) or time (RFC 3339)".to_owned(),
                    ))
                }
                (Some(0), None) => return Err(ToolError("seq: must be at least 1".to_owned())),
                (Some(seq), None) => (seq, None),
                (None, Some(time)) => (0, Some(timestamp("time", &time)?)),
            };
            let at = EventLogServiceClient::new(self.channel().await?)
                .get_at(actor_request(
                    pp::GetAtRequest {
                        entity_id,
                        seq,
                        time,
                    },
                    &context,
                ))
                .await?
                .into_inner();
            serde_json::to_value(&at).map_err(encoding)
        })
        .await
    }

    /// What a pipeline's DLQ took.
    #[tool(
        description = "The dead letters of a pipeline: the records its dead-letter queue took, \
                       oldest first, each with why (the error), where (the processor or \
                       destination that failed it), when, whether it is queued for \
                       re-injection, and the record. Pages: pass `nextAfter` as `after`.",
        annotations(title = "List dead letters", read_only_hint = true)
    )]
    async fn list_dead_letters(
        &self,
        Parameters(args): Parameters<ListDeadLetters>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        reply(async {
            let pipeline_id = required("pipeline", args.pipeline)?;
            let limit = bounded("limit", args.limit, 100, MAX_LIMIT)?;
            let letters = DeadLetterServiceClient::new(self.channel().await?)
                .list_dead_letters(actor_request(
                    pp::ListDeadLettersRequest {
                        pipeline_id,
                        after: args.after.unwrap_or(0),
                        limit,
                    },
                    &context,
                ))
                .await?
                .into_inner();
            serde_json::to_value(&letters).map_err(encoding)
        })
        .await
    }
}

#[tool_router(router = write_tools)]
impl Mcp {
    /// Create a pipeline (with --allow-writes).
    #[tool(
        description = "Create an empty pipeline (stopped; add connectors with the CLI or API, \
                       then start it). Answers the new pipeline with its generated id.",
        annotations(
            title = "Create a pipeline",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false
        )
    )]
    async fn create_pipeline(
        &self,
        Parameters(args): Parameters<CreatePipeline>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        reply(async {
            let name = required("name", args.name)?;
            let pipeline = PipelineServiceClient::new(self.channel().await?)
                .create_pipeline(actor_request(
                    pb::CreatePipelineRequest {
                        config: Some(pb::pipeline::Config {
                            name,
                            description: args.description.unwrap_or_default(),
                        }),
                    },
                    &context,
                ))
                .await?
                .into_inner()
                .pipeline;
            Ok(json!({ "pipeline": pipeline }))
        })
        .await
    }

    /// Apply a repair plan (with --allow-writes).
    #[tool(
        description = "Apply the plan the repair tool made for `config`: only if `hash` is \
                       that plan's hash computed again now (else refused as stale). Applies \
                       every safe fix, or the ones at the config paths in `select`; a \
                       data_path fix is never applied here (a person runs `culvert pipelines \
                       repair --escalate`). Answers the repaired content (to write back) and \
                       each fix's outcome; the server is not touched.",
        annotations(
            title = "Apply a pipeline file's repair",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true
        )
    )]
    async fn repair_apply(&self, Parameters(args): Parameters<RepairApply>) -> CallToolResult {
        reply(async {
            let config = required("config", args.config)?;
            if args.hash.trim().is_empty() {
                return Err(ToolError(
                    "hash: required (from the repair tool's answer): call repair first, \
                     review its fixes, then pass its hash"
                        .to_owned(),
                ));
            }
            crate::repair::apply_content(&config, &args.hash, &args.select)
                .map_err(|e| ToolError(e.to_string()))
        })
        .await
    }

    /// Start a pipeline (with --allow-writes).
    #[tool(
        description = "Start a stopped pipeline (it needs at least one source and one \
                       destination). The engine starts it in the background: poll \
                       describe_pipeline until its status is STATUS_RUNNING (or \
                       STATUS_DEGRADED, with the error).",
        annotations(
            title = "Start a pipeline",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false
        )
    )]
    async fn start_pipeline(
        &self,
        Parameters(args): Parameters<PipelineId>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        reply(async {
            let id = required("id", args.id)?;
            PipelineServiceClient::new(self.channel().await?)
                .start_pipeline(actor_request(
                    pb::StartPipelineRequest { id: id.clone() },
                    &context,
                ))
                .await?;
            Ok(json!({ "id": id, "result": "start requested" }))
        })
        .await
    }

    /// Stop a pipeline (with --allow-writes).
    #[tool(
        description = "Stop a running pipeline. By default it drains: sources stop reading \
                       and every record in flight is written and acknowledged first. With \
                       force it stops at once (records in flight are read again on the next \
                       start). Poll describe_pipeline until STATUS_STOPPED.",
        annotations(
            title = "Stop a pipeline",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false
        )
    )]
    async fn stop_pipeline(
        &self,
        Parameters(args): Parameters<StopPipeline>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        reply(async {
            let id = required("id", args.id)?;
            PipelineServiceClient::new(self.channel().await?)
                .stop_pipeline(actor_request(
                    pb::StopPipelineRequest {
                        id: id.clone(),
                        force: args.force,
                    },
                    &context,
                ))
                .await?;
            Ok(json!({ "id": id, "result": "stop requested" }))
        })
        .await
    }
}

impl Mcp {
    async fn inspect(
        &self,
        args: InspectRecords,
        context: RequestContext<RoleServer>,
    ) -> Result<Value, ToolError> {
        let id = required("id", args.id)?;
        let count = bounded("count", args.count, 10, MAX_INSPECT_COUNT)? as usize;
        let seconds = match args.timeout_seconds {
            None => 5,
            Some(0) => return Err(ToolError("timeout_seconds: must be at least 1".into())),
            Some(s) if s > MAX_INSPECT_SECONDS => {
                return Err(ToolError(format!(
                    "timeout_seconds: {s} is more than the most, {MAX_INSPECT_SECONDS}"
                )))
            }
            Some(s) => s,
        };
        let until = tokio::time::Instant::now() + Duration::from_secs(seconds);
        let channel = self.channel().await?;
        let mut connectors = ConnectorServiceClient::new(channel.clone());
        let is_connector = match connectors
            .get_connector(actor_request(
                pb::GetConnectorRequest { id: id.clone() },
                &context,
            ))
            .await
        {
            Ok(_) => true,
            Err(status) if status.code() == tonic::Code::NotFound => false,
            Err(status) => return Err(status.into()),
        };
        let (kind, records) = if is_connector {
            let stream = connectors
                .inspect_connector(actor_request(
                    pb::InspectConnectorRequest { id: id.clone() },
                    &context,
                ))
                .await?
                .into_inner();
            (
                "connector",
                collect(stream, |r| r.record, count, until, &context).await?,
            )
        } else {
            let mut processors = ProcessorServiceClient::new(channel);
            processors
                .get_processor(actor_request(
                    pb::GetProcessorRequest { id: id.clone() },
                    &context,
                ))
                .await
                .map_err(|status| match status.code() {
                    tonic::Code::NotFound => {
                        ToolError(format!("no connector or processor with id {id:?}"))
                    }
                    _ => status.into(),
                })?;
            match args.direction.unwrap_or_default() {
                Direction::In => {
                    let stream = processors
                        .inspect_processor_in(actor_request(
                            pb::InspectProcessorInRequest { id: id.clone() },
                            &context,
                        ))
                        .await?
                        .into_inner();
                    (
                        "processor in",
                        collect(stream, |r| r.record, count, until, &context).await?,
                    )
                }
                Direction::Out => {
                    let stream = processors
                        .inspect_processor_out(actor_request(
                            pb::InspectProcessorOutRequest { id: id.clone() },
                            &context,
                        ))
                        .await?
                        .into_inner();
                    (
                        "processor out",
                        collect(stream, |r| r.record, count, until, &context).await?,
                    )
                }
            }
        };
        let complete = records.len() >= count;
        Ok(json!({
            "id": id,
            "inspected": kind,
            "count": records.len(),
            "complete": complete,
            "note": if complete {
                "collected the records asked for"
            } else {
                "the time ran out first (a stopped pipeline, or few records flowing)"
            },
            "records": records,
        }))
    }

    async fn audit_events(
        &self,
        args: Audit,
        context: RequestContext<RoleServer>,
    ) -> Result<Value, ToolError> {
        let entity_id = required("id", args.id)?;
        let limit = bounded("limit", args.limit, 50, MAX_LIMIT)? as usize;
        let mut log = EventLogServiceClient::new(self.channel().await?);
        // The log lists oldest first: page to the end, keeping the latest `limit`.
        let mut latest = std::collections::VecDeque::with_capacity(limit);
        let mut page_token = String::new();
        loop {
            let page = log
                .list_events(actor_request(
                    pp::ListEventsRequest {
                        entity_id: entity_id.clone(),
                        page_size: MAX_LIMIT as i32,
                        page_token: std::mem::take(&mut page_token),
                        ..Default::default()
                    },
                    &context,
                ))
                .await?
                .into_inner();
            for event in page.events {
                if latest.len() == limit {
                    latest.pop_front();
                }
                latest.push_back(event);
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        if latest.is_empty() {
            // An id no event touched: say so rather than answer an empty trail.
            return Err(ToolError(format!(
                "no event touched {entity_id:?}: no pipeline, connector or processor has had \
                 that id"
            )));
        }
        let events: Vec<Value> = latest
            .into_iter()
            .map(|e| {
                json!({
                    "seq": e.seq,
                    "time": e.recorded_at,
                    "type": e.r#type,
                    "actor": e.actor,
                    "reason": e.reason,
                    "stream": e.stream,
                    "correlationId": e.correlation_id,
                    "data": e.data,
                })
            })
            .collect();
        Ok(json!({ "id": entity_id, "events": events }))
    }
}

/// Up to `count` records from an inspection stream, until `until` or the MCP client
/// cancels the call.
async fn collect<T>(
    mut stream: tonic::Streaming<T>,
    record: fn(T) -> Option<Record>,
    count: usize,
    until: tokio::time::Instant,
    context: &RequestContext<RoleServer>,
) -> Result<Vec<Value>, ToolError> {
    let mut records = Vec::new();
    let deadline = tokio::time::sleep_until(until);
    tokio::pin!(deadline);
    while records.len() < count {
        tokio::select! {
            // Losing a message here when another branch wins is fine: the inspection ends
            // then and the stream is dropped (an inspector only samples records; the
            // pipeline's own flow is untouched).
            message = stream.message() => match message? {
                Some(message) => {
                    if let Some(record) = record(message) {
                        records.push(serde_json::to_value(&record).map_err(encoding)?);
                    }
                }
                None => break,
            },
            // Cancel-safe: a timer and a cancellation token hold no data.
            () = &mut deadline => break,
            () = context.ct.cancelled() => break,
        }
    }
    Ok(records)
}

/// A tool's failure, told to the MCP client as a tool error (`isError`).
#[derive(Debug)]
struct ToolError(String);

impl From<tonic::Status> for ToolError {
    fn from(status: tonic::Status) -> Self {
        ToolError(format!(
            "the server answered {:?}: {}",
            status.code(),
            client::status_message(&status)
        ))
    }
}

/// A tool's answer: its JSON, or the error as a tool error.
async fn reply(
    work: impl std::future::Future<Output = Result<Value, ToolError>>,
) -> CallToolResult {
    match work.await {
        Ok(value) => {
            let text = serde_json::to_string_pretty(&value).unwrap_or_else(|e| e.to_string());
            CallToolResult::success(vec![ContentBlock::text(text)])
        }
        Err(ToolError(message)) => CallToolResult::error(vec![ContentBlock::text(message)]),
    }
}

fn encoding(error: serde_json::Error) -> ToolError {
    ToolError(format!("encoding the answer as JSON: {error}"))
}

/// A required text argument, not empty.
fn required(field: &str, value: String) -> Result<String, ToolError> {
    if value.trim().is_empty() {
        return Err(ToolError(format!("{field}: must not be empty")));
    }
    Ok(value)
}

/// An optional count with a default, from 1 to `most`.
fn bounded(field: &str, value: Option<u32>, default: u32, most: u32) -> Result<u32, ToolError> {
    match value {
        None => Ok(default),
        Some(0) => Err(ToolError(format!("{field}: must be at least 1"))),
        Some(n) if n > most => Err(ToolError(format!(
            "{field}: {n} is more than the most, {most}"
        ))),
        Some(n) => Ok(n),
    }
}

/// An RFC 3339 time as a protobuf timestamp.
fn timestamp(field: &str, text: &str) -> Result<culvert_api::wkt::Timestamp, ToolError> {
    let at = chrono::DateTime::parse_from_rfc3339(text.trim()).map_err(|e| {
        ToolError(format!(
            "{field}: {text:?} is not an RFC 3339 time (e.g. 2026-01-31T12:00:00Z): {e}"
        ))
    })?;
    Ok(culvert_api::wkt::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    })
}

/// A gRPC request carrying `culvert-actor: mcp:<client name>`.
fn actor_request<T>(message: T, context: &RequestContext<RoleServer>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = actor(context).parse() {
        request.metadata_mut().insert("culvert-actor", value);
    }
    request
}

/// `mcp:<name>`: the MCP client's name from this request's metadata (the stateless
/// protocol sends it with every request), else from its `initialize`, else `client`.
fn actor(context: &RequestContext<RoleServer>) -> String {
    let name = context
        .meta
        .client_info()
        .map(|info| info.name)
        .or_else(|| {
            context
                .peer
                .peer_info()
                .map(|info| info.client_info.name.clone())
        })
        .unwrap_or_default();
    format!("mcp:{}", actor_name(&name))
}

/// A client name fit for a metadata value: visible ASCII (others become `_`), at most 100
/// characters; `client` when empty.
fn actor_name(name: &str) -> String {
    let clean: String = name
        .trim()
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.trim().is_empty() {
        "client".to_owned()
    } else {
        clean.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_become_metadata_safe_actors() {
        assert_eq!(actor_name("claude-code"), "claude-code");
        assert_eq!(actor_name("  My Client  "), "My Client");
        assert_eq!(actor_name("naïve\nclient"), "na_ve_client");
        assert_eq!(actor_name(""), "client");
        assert_eq!(actor_name(" \t "), "client");
        assert_eq!(actor_name(&"x".repeat(300)).len(), 100);
    }

    #[test]
    fn write_tools_are_there_only_when_allowed() {
        let names = |mcp: &Mcp| -> Vec<String> {
            mcp.tools
                .list_all()
                .into_iter()
                .map(|t| t.name.into_owned())
                .collect()
        };
        let read_only = Mcp::new(client::Server::default(), false);
        let listed = names(&read_only);
        for tool in [
            "list_pipelines",
            "describe_pipeline",
            "list_connectors",
            "inspect_records",
            "audit",
            "pipeline_at",
            "list_dead_letters",
            "repair",
        ] {
            assert!(
                listed.iter().any(|n| n == tool),
                "{tool} missing: {listed:?}"
            );
        }
        assert!(
            WRITE_TOOLS.iter().all(|w| !listed.iter().any(|n| n == w)),
            "{listed:?}"
        );
        let writable = names(&Mcp::new(client::Server::default(), true));
        assert_eq!(writable.len(), listed.len() + WRITE_TOOLS.len());
        for tool in WRITE_TOOLS {
            assert!(writable.iter().any(|n| n == tool), "{tool}: {writable:?}");
        }
    }

    #[test]
    fn every_tool_has_a_description_and_an_object_schema() {
        let mcp = Mcp::new(client::Server::default(), true);
        for tool in mcp.tools.list_all() {
            assert!(
                tool.description.as_deref().is_some_and(|d| d.len() > 20),
                "{} has no description",
                tool.name
            );
            assert_eq!(
                tool.input_schema.get("type"),
                Some(&json!("object")),
                "{}",
                tool.name
            );
        }
        let inspect = mcp.tools.get("inspect_records").unwrap();
        let schema = Value::Object((*inspect.input_schema).clone());
        assert_eq!(schema["required"], json!(["id"]), "{schema}");
        assert!(schema["properties"]["count"].is_object(), "{schema}");
    }

    #[test]
    fn arguments_are_checked_with_the_field_named() {
        assert_eq!(bounded("count", None, 10, 1000).unwrap(), 10);
        assert!(bounded("count", Some(0), 10, 1000)
            .unwrap_err()
            .0
            .starts_with("count: "));
        assert!(bounded("count", Some(1001), 10, 1000)
            .unwrap_err()
            .0
            .contains("1000"));
        assert!(required("id", " ".into())
            .unwrap_err()
            .0
            .starts_with("id: "));
        let at = timestamp("time", "2026-01-31T12:00:00.5Z").unwrap();
        assert_eq!((at.seconds, at.nanos), (1_769_860_800, 500_000_000));
        assert!(timestamp("time", "yesterday")
            .unwrap_err()
            .0
            .starts_with("time: "));
    }
}
