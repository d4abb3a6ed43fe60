//! The tonic services of `api.v1`.

use crate::auth::{Authenticated, Security};
use crate::convert;
use crate::error::{invalid, to_status};
use crate::pb::api::v1 as pb;
use culvert_commands::{
    CommandError, ConnectorOrchestrator, Context, ControlPlaneWriter, PipelineOrchestrator,
    ProcessorOrchestrator,
};
use culvert_domain::{
    ConnectorId, ConnectorType, DomainError, EntityKind, PipelineId, ProcessorId, ProcessorParent,
};
use pb::connector_service_server::{ConnectorService, ConnectorServiceServer};
use pb::information_service_server::{InformationService, InformationServiceServer};
use pb::pipeline_service_server::{PipelineService, PipelineServiceServer};
use pb::plugin_service_server::{PluginService, PluginServiceServer};
use pb::processor_service_server::{ProcessorService, ProcessorServiceServer};
use regex::Regex;
use std::future::Future;
use std::sync::Arc;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

/// The shared handle behind every service: orchestrators for writes, the read model for
/// reads.
#[derive(Clone)]
pub struct Api {
    writer: Arc<ControlPlaneWriter>,
    /// How long StartPipeline waits for the engine's verdict (`None`: it does not wait).
    start_wait: Option<std::time::Duration>,
    /// Most events one ListEvents call looks at (whatever its filter keeps).
    pub(crate) list_scan_limit: usize,
    plugins: Arc<culvert_plugins::Registry>,
    processor_plugins: Arc<culvert_processors::ProcessorRegistry>,
    /// Plans and applies pipeline documents (PlanPipeline, ApplyPipeline).
    documents: Arc<culvert_provisioning::Provisioner>,
    /// Raised when the server shuts down: ends the streams that would otherwise follow
    /// the log forever (WatchEvents).
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// Keeps the default `shutdown` open when the server gives none.
    _never: Arc<tokio::sync::watch::Sender<bool>>,
    pipelines: PipelineOrchestrator,
    connectors: ConnectorOrchestrator,
    processors: ProcessorOrchestrator,
    /// What answers show of settings (never a secret).
    redactor: crate::redact::Redactor,
    /// The stream inspector's sessions (fed by the engine when the server shares them).
    inspectors: Arc<culvert_engine::Inspectors>,
    /// Where sources' positions are kept, for SourcePositionService (`None`: it answers
    /// UNIMPLEMENTED).
    pub(crate) positions: Option<Arc<dyn culvert_store::PositionStore>>,
    /// Where pipelines' dead letters are kept, for DeadLetterService (`None`: it answers
    /// UNIMPLEMENTED).
    pub(crate) letters: Option<Arc<dyn culvert_store::DeadLetterStore>>,
}

impl Api {
    /// The API over a control-plane writer, with the built-in connector and processor
    /// plugins.
    pub fn new(writer: Arc<ControlPlaneWriter>) -> Self {
        Self::with_plugins(
            writer,
            Arc::new(culvert_connectors::registry()),
            Arc::new(culvert_processors::registry()),
        )
    }

    /// The API over a control-plane writer and the connector and processor plugins.
    pub fn with_plugins(
        writer: Arc<ControlPlaneWriter>,
        plugins: Arc<culvert_plugins::Registry>,
        processor_plugins: Arc<culvert_processors::ProcessorRegistry>,
    ) -> Self {
        let (never, shutdown) = tokio::sync::watch::channel(false);
        let redactor = crate::redact::Redactor::for_writer(
            &writer,
            plugins.clone(),
            processor_plugins.clone(),
        );
        Self {
            redactor,
            inspectors: Arc::new(culvert_engine::Inspectors::default()),
            positions: None,
            letters: None,
            start_wait: None,
            list_scan_limit: crate::events::LIST_SCAN_LIMIT,
            shutdown,
            _never: Arc::new(never),
            documents: Arc::new(culvert_provisioning::Provisioner::new(
                writer.clone(),
                plugins.clone(),
                processor_plugins.clone(),
            )),
            plugins,
            processor_plugins,
            pipelines: PipelineOrchestrator::new(writer.clone()),
            connectors: ConnectorOrchestrator::new(writer.clone()),
            processors: ProcessorOrchestrator::new(writer.clone()),
            writer,
        }
    }

    /// Serve SourcePositionService over `positions` (the store the engine saves positions in,
    /// which must be the database of the writer's event log: a move is recorded and takes
    /// effect in one write).
    pub fn with_positions(mut self, positions: Arc<dyn culvert_store::PositionStore>) -> Self {
        self.positions = Some(positions);
        self
    }

    /// Serve DeadLetterService over `letters` (the store the engine keeps dead letters in,
    /// which must be the database of the writer's event log: a re-injection is recorded and
    /// queued in one write).
    pub fn with_dead_letters(mut self, letters: Arc<dyn culvert_store::DeadLetterStore>) -> Self {
        self.letters = Some(letters);
        self
    }

    /// `connector` with its stored position in `source_state.position`, as Conduit shows it
    /// (a source only; empty when none is stored or there is no position store). A point
    /// read of the position store, which the engine writes after every acked batch.
    fn with_position(&self, mut connector: pb::Connector) -> pb::Connector {
        if let (Some(store), Some(pb::connector::State::SourceState(state))) =
            (&self.positions, connector.state.as_mut())
        {
            match store.get(&connector.id, culvert_store::POSITION_SLOT) {
                Ok(position) => state.position = position.unwrap_or_default(),
                Err(error) => {
                    tracing::warn!(connector = %connector.id, %error, "could not read the position")
                }
            }
        }
        connector
    }

    /// Serve the stream inspector from `inspectors` (the registry the engine feeds).
    pub fn with_inspectors(mut self, inspectors: Arc<culvert_engine::Inspectors>) -> Self {
        self.inspectors = inspectors;
        self
    }

    /// Open an inspector session on `side` of `id`, which must exist (`kind` and `exists`
    /// say how to check) now and after the session is registered (so a deletion between
    /// the two cannot leave it open).
    fn inspect(
        &self,
        kind: EntityKind,
        id: &str,
        side: culvert_engine::inspect::Side,
    ) -> Result<culvert_engine::inspect::Session, Status> {
        require_id(id)?;
        let exists = || {
            let state = self.writer.projections().read();
            match kind {
                EntityKind::Connector => state.connector(&ConnectorId(id.to_owned())).is_some(),
                _ => state.processor(&ProcessorId(id.to_owned())).is_some(),
            }
        };
        if !exists() {
            return Err(not_found(kind, id));
        }
        let session = self.inspectors.open(id, side);
        if !exists() {
            return Err(not_found(kind, id));
        }
        Ok(session)
    }

    /// End the API's endless streams (WatchEvents) when `shutdown` turns true.
    pub fn with_shutdown(mut self, shutdown: tokio::sync::watch::Receiver<bool>) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The shutdown signal, for streams.
    pub(crate) fn shutdown(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// The control-plane writer (and through it the log and the read model).
    pub(crate) fn writer(&self) -> &Arc<ControlPlaneWriter> {
        &self.writer
    }

    /// What answers show of settings: `***` for secrets, or their exported form (sealed)
    /// for a client that sent `culvert-export: sealed` ([`crate::redact::EXPORT_METADATA`]).
    pub(crate) fn redactor<T>(&self, request: &Request<T>) -> crate::redact::Redactor {
        let export = request
            .metadata()
            .get(crate::redact::EXPORT_METADATA)
            .is_some_and(|v| v.as_bytes() == b"sealed");
        if export {
            self.redactor.for_export()
        } else {
            self.redactor.clone()
        }
    }

    /// What answers show of settings when no request says otherwise.
    pub(crate) fn default_redactor(&self) -> &crate::redact::Redactor {
        &self.redactor
    }

    /// Let ApplyPipeline change a running pipeline (it is stopped, changed and started
    /// again); off by default, when such an apply is refused with
    /// `provisioning.live_apply_unauthorized` (Conduit's `--api.allow-live-restart-apply`).
    pub fn with_live_restart_apply(mut self, allow: bool) -> Self {
        self.documents = Arc::new(
            culvert_provisioning::Provisioner::new(
                self.writer.clone(),
                self.plugins.clone(),
                self.processor_plugins.clone(),
            )
            .with_live_restart_apply(allow),
        );
        self
    }

    /// Make StartPipeline return only once the engine reports the pipeline running (or
    /// failed, with its error), waiting at most `limit`; for servers that run an engine.
    pub fn with_start_wait(mut self, limit: std::time::Duration) -> Self {
        self.start_wait = Some(limit);
        self
    }

    async fn wait_for_start(
        &self,
        id: &PipelineId,
        head: &mut tokio::sync::watch::Receiver<culvert_domain::Seq>,
        limit: std::time::Duration,
    ) -> Result<(), Status> {
        use culvert_domain::PipelineStatus;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let status = self
                .writer
                .projections()
                .read()
                .pipeline(id)
                .map(|p| p.status.clone());
            match status {
                Some(PipelineStatus::Starting) => {}
                Some(PipelineStatus::Degraded { error }) => {
                    return Err(crate::error::status_with_info(
                        tonic::Code::Internal,
                        format!(
                            "failed to start pipeline {id}: {error}; fix the cause and start \
                             it again (GetPipeline shows its status)"
                        ),
                        "pipeline.start_failed",
                        &[],
                    ));
                }
                // Running, or already stopped or deleted by someone else: done waiting.
                _ => return Ok(()),
            }
            match tokio::time::timeout_at(deadline, head.changed()).await {
                Ok(Ok(())) => {}
                // Still starting at the deadline (slow connectors): the start stands, and
                // GetPipeline shows how it ends.
                Ok(Err(_)) | Err(_) => return Ok(()),
            }
        }
    }

    /// A view of the pipeline `id` names: an empty id is INVALID_ARGUMENT (as Conduit's
    /// "empty ID"), an unknown one NOT_FOUND.
    fn pipeline_view<R>(
        &self,
        id: &str,
        view: impl FnOnce(&culvert_domain::Pipeline) -> R,
    ) -> Result<R, Status> {
        require_id(id)?;
        let state = self.writer.projections().read();
        state
            .pipeline(&PipelineId(id.to_owned()))
            .map(view)
            .ok_or_else(|| not_found(EntityKind::Pipeline, id))
    }

    /// The connector plugins whose full name matches the `name` regex (empty: all), each
    /// converted to the answer's message.
    fn plugin_list<T>(
        &self,
        name: &str,
        convert: fn(&culvert_plugins::Specification) -> T,
    ) -> Result<Vec<T>, Status> {
        let filter = name_filter("name", name)?;
        Ok(self
            .plugins
            .specifications()
            .filter(|s| {
                filter
                    .as_ref()
                    .is_none_or(|r| r.is_match(&crate::plugins::full_name(s)))
            })
            .map(convert)
            .collect())
    }

    /// Whether the server can serve: the event log answers reads (a point read of a
    /// stream's version) and the read models have folded every event in it. `Err` says why
    /// not. A command in progress can leave the read models one batch behind for an
    /// instant, so a lag is only reported if it is still there a moment later.
    pub(crate) async fn readiness(&self) -> Result<(), &'static str> {
        if let Err(reason) = self.readiness_now() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            self.readiness_now()?;
            tracing::debug!(reason, "readiness recovered on a second look");
        }
        Ok(())
    }

    fn readiness_now(&self) -> Result<(), &'static str> {
        let log = self.writer.log();
        if log
            .stream_version(&culvert_domain::StreamId("health/ping".to_owned()))
            .is_err()
        {
            return Err("the event log is closed");
        }
        if self.writer.head() < log.head() {
            return Err("the read models are catching up with the event log");
        }
        Ok(())
    }

    /// How many pipelines there are, run, and which are degraded (with their errors).
    pub(crate) fn pipeline_health(&self) -> PipelineHealth {
        use culvert_domain::PipelineStatus;
        let state = self.writer.projections().read();
        let mut health = PipelineHealth::default();
        for p in state.pipelines() {
            health.total += 1;
            match &p.status {
                PipelineStatus::Running | PipelineStatus::Starting => health.running += 1,
                PipelineStatus::Degraded { error } => {
                    health.degraded.push((p.id.to_string(), error.clone()));
                }
                _ => {}
            }
        }
        health
    }
}

/// Counts for the readiness report.
#[derive(Debug, Default)]
pub(crate) struct PipelineHealth {
    pub(crate) total: usize,
    pub(crate) running: usize,
    /// Id and error of each degraded pipeline.
    pub(crate) degraded: Vec<(String, String)>,
}

/// The service names Conduit registers with `grpc.health.v1.Health` (and `/healthz?service=`
/// accepts).
pub(crate) const HEALTH_SERVICES: [&str; 5] = [
    "PipelineService",
    "ConnectorService",
    "ProcessorService",
    "ConnectorPluginService",
    "ProcessorPluginService",
];

fn health_status(serving: bool) -> tonic_health::ServingStatus {
    if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    }
}

/// Set the status of the server ("") and of every `api.v1` service.
async fn set_health(
    reporter: &tonic_health::server::HealthReporter,
    status: tonic_health::ServingStatus,
) {
    reporter.set_service_status("", status).await;
    for name in HEALTH_SERVICES {
        reporter.set_service_status(name, status).await;
    }
}

/// Serve every `api.v1` service, `grpc.health.v1.Health` and server reflection
/// (`grpc.reflection.v1` and `v1alpha`), on `listener` until
/// `shutdown` completes, within `options`' limits; in-flight calls finish first. No
/// authentication, no TLS: see [`serve_grpc_secured`].
pub async fn serve_grpc(
    listener: tokio::net::TcpListener,
    api: Api,
    options: crate::GrpcOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_grpc_secured(listener, api, options, &Security::default(), shutdown).await
}

/// As [`serve_grpc`], with `security`'s authentication, rate limit and TLS: every call but
/// the health service's passes [`crate::auth`]'s layer first.
pub async fn serve_grpc_secured(
    listener: tokio::net::TcpListener,
    api: Api,
    options: crate::GrpcOptions,
    security: &Security,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (reporter, health) = tonic_health::server::health_reporter();
    // Health follows readiness (as /readyz does), checked every second, and turns
    // NOT_SERVING when the server begins to shut down.
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let serving = api.readiness().await.is_ok();
    set_health(&reporter, health_status(serving)).await;
    let follower = {
        let api = api.clone();
        let reporter = reporter.clone();
        tokio::spawn(async move {
            let mut last = Some(serving);
            loop {
                let serving = !*stopping.borrow() && api.readiness().await.is_ok();
                if last != Some(serving) {
                    if !serving && !*stopping.borrow() {
                        tracing::warn!("gRPC health: NOT_SERVING (see /readyz for why)");
                    }
                    set_health(&reporter, health_status(serving)).await;
                    last = Some(serving);
                }
                if *stopping.borrow() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = stopping.changed() => {}
                }
            }
        })
    };
    let shutdown = async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
        let _ = follower.await;
    };
    let size = options.max_message_bytes;
    // Server reflection (v1 and v1alpha, as grpc-go's `reflection.Register` in Conduit), so
    // `grpcurl` and similar tools list and call the API without its .proto files.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::http::schema::DESCRIPTORS)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // The descriptor sets are built in: a failure here is a bug, logged, not fatal.
    let reflection_v1 = reflection()
        .build_v1()
        .inspect_err(|error| tracing::error!(%error, "gRPC server reflection (v1) is off"))
        .ok();
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .inspect_err(|error| tracing::error!(%error, "gRPC server reflection (v1alpha) is off"))
        .ok();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &security.tls {
        builder = builder.tls_config(tls.grpc())?;
    }
    builder
        .concurrency_limit_per_connection(options.max_concurrent_calls)
        .layer(crate::auth::AuthLayer {
            auth: security.auth.clone(),
        })
        .layer(crate::limits::LimitsLayer { options })
        .add_service(health)
        .add_optional_service(reflection_v1)
        .add_optional_service(reflection_v1alpha)
        .add_service(PipelineServiceServer::new(api.clone()).max_decoding_message_size(size))
        .add_service(ConnectorServiceServer::new(api.clone()).max_decoding_message_size(size))
        .add_service(ProcessorServiceServer::new(api.clone()).max_decoding_message_size(size))
        .add_service(InformationServiceServer::new(api.clone()).max_decoding_message_size(size))
        .add_service(
            crate::pb::culvert::api::v1::event_log_service_server::EventLogServiceServer::new(
                api.clone(),
            )
            .max_decoding_message_size(size),
        )
        .add_service(
            crate::pb::culvert::api::v1::source_position_service_server::SourcePositionServiceServer::new(
                api.clone(),
            )
            .max_decoding_message_size(size),
        )
        .add_service(
            crate::pb::culvert::api::v1::dead_letter_service_server::DeadLetterServiceServer::new(
                api.clone(),
            )
            .max_decoding_message_size(size),
        )
        .add_service(PluginServiceServer::new(api).max_decoding_message_size(size))
        .serve_with_incoming_shutdown(
            // TCP_NODELAY, as tonic's own listener sets it: without it an answer larger than a
            // segment waits ~40 ms for the client's delayed ACK (Nagle).
            tokio_stream::StreamExt::map(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                |accepted| {
                    accepted.inspect(|stream| {
                        if let Err(error) = stream.set_nodelay(true) {
                            tracing::debug!(%error, "could not set TCP_NODELAY");
                        }
                    })
                },
            ),
            shutdown,
        )
        .await
}

/// One RPC the gRPC server serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcMethod {
    /// The request path, `/package.Service/Method`.
    pub path: String,
    /// Whether the client sends a stream of messages.
    pub client_streaming: bool,
    /// Whether the server answers with a stream of messages.
    pub server_streaming: bool,
}

/// Every RPC of the `api.v1` and `culvert.api.v1` services this server registers (not
/// `grpc.health.v1.Health`), read from the descriptor set the stubs were generated from,
/// so the list cannot miss one.
pub fn grpc_methods() -> Vec<GrpcMethod> {
    use prost::Message as _;
    let set = prost_types::FileDescriptorSet::decode(crate::http::schema::DESCRIPTORS)
        .expect("the build script wrote a valid descriptor set");
    let mut methods = Vec::new();
    for file in set.file {
        let package = file.package();
        if package != "api.v1" && package != "culvert.api.v1" {
            continue;
        }
        for service in &file.service {
            for method in &service.method {
                methods.push(GrpcMethod {
                    path: format!("/{package}.{}/{}", service.name(), method.name()),
                    client_streaming: method.client_streaming(),
                    server_streaming: method.server_streaming(),
                });
            }
        }
    }
    methods
}

impl Api {
    /// `settings` as the plugin will be configured with them, to validate: a `***` where a
    /// value is stored stands for the stored value, and sealed values (a stored one, or one
    /// from an export) are opened.
    fn as_plugin_sees(
        &self,
        settings: &culvert_plugins::Settings,
        stored: Option<&culvert_plugins::Settings>,
    ) -> Result<culvert_plugins::Settings, Status> {
        let Some(secrets) = self.writer.secrets() else {
            return Ok(settings.clone());
        };
        let merged = stored.map_or_else(|| settings.clone(), |s| secrets.reuse_stored(settings, s));
        secrets
            .open_settings(&merged)
            .map_err(|e| invalid("config.settings", &e.to_string()))
    }
}

/// Who is calling, and why. With authentication on, the actor is the identity the
/// server verified ([`Authenticated`]: `token:<name>` or `cert:<subject>`), whatever
/// `culvert-actor` says (so `culvert mcp` then acts as its token's identity); without it,
/// the `culvert-actor` metadata if the client sent one, else `api`: a value beginning with
/// `mcp:` (what `culvert mcp` sends, `mcp:<MCP client name>`) is recorded verbatim, any
/// other as `user:<value>`. The HTTP API passes its `culvert-actor` header here, so both
/// APIs record the same actor. The client's `culvert-reason` is recorded beside the actor
/// (INVALID_ARGUMENT if it is too long or holds control characters); the correlation id
/// is its `x-request-id` if given.
pub(crate) fn context<T>(request: &Request<T>) -> Result<Context, Status> {
    let meta = request.metadata();
    let actor = match request.extensions().get::<Authenticated>() {
        Some(caller) => caller.identity().actor(),
        None => meta
            .get("culvert-actor")
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| "api".to_owned(), claimed_actor),
    };
    let reason = crate::auth::reason(meta.get("culvert-reason").map(|v| v.as_bytes()))?;
    let mut context = Context::new(actor).with_reason(reason);
    if let Some(id) = meta.get("x-request-id").and_then(|v| v.to_str().ok()) {
        context.correlation_id = id.to_owned();
    }
    Ok(context)
}

/// The actor an unauthenticated caller's `culvert-actor` value names: `mcp:<name>` verbatim
/// (an MCP client through `culvert mcp`), `user:<value>` for anything else, `api` when empty.
fn claimed_actor(value: &str) -> String {
    match value.strip_prefix("mcp:") {
        Some(name) if !name.is_empty() => value.to_owned(),
        _ if value.is_empty() => "api".to_owned(),
        _ => format!("user:{value}"),
    }
}

/// Run a write (which may fsync) off the async runtime.
pub(crate) async fn write<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CommandError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("write task failed: {e}")))?
        .map_err(to_status)
}

pub(crate) fn not_found(kind: EntityKind, id: &str) -> Status {
    to_status(CommandError::Domain(DomainError::NotFound {
        kind,
        id: id.to_owned(),
    }))
}

/// Conduit answers an empty id with INVALID_ARGUMENT "empty ID" on get/update.
/// A request's `expected_version` (Culvert's extension; 0 means unconditional).
fn expected(version: u64) -> Option<u64> {
    (version != 0).then_some(version)
}

pub(crate) fn require_id(id: &str) -> Result<(), Status> {
    if id.is_empty() {
        return Err(invalid("id", "empty ID"));
    }
    Ok(())
}

/// A full-match regex filter from a `name` request field (empty = everything).
fn name_filter(field: &str, pattern: &str) -> Result<Option<Regex>, Status> {
    if pattern.is_empty() {
        return Ok(None);
    }
    Regex::new(&format!("^(?:{pattern})$"))
        .map(Some)
        .map_err(|e| Status::internal(format!("invalid {field} regex: {e}")))
}

#[tonic::async_trait]
impl PipelineService for Api {
    async fn list_pipelines(
        &self,
        request: Request<pb::ListPipelinesRequest>,
    ) -> Result<Response<pb::ListPipelinesResponse>, Status> {
        let filter = name_filter("name", &request.get_ref().name)?;
        let state = self.writer.projections().read();
        let pipelines = state
            .pipelines()
            .filter(|p| filter.as_ref().is_none_or(|r| r.is_match(&p.name)))
            .map(convert::pipeline)
            .collect();
        Ok(Response::new(pb::ListPipelinesResponse { pipelines }))
    }

    async fn create_pipeline(
        &self,
        request: Request<pb::CreatePipelineRequest>,
    ) -> Result<Response<pb::CreatePipelineResponse>, Status> {
        let ctx = context(&request)?;
        let config = request.into_inner().config.unwrap_or_default();
        let pipelines = self.pipelines.clone();
        let created =
            write(move || pipelines.create(&ctx, &config.name, &config.description)).await?;
        Ok(Response::new(pb::CreatePipelineResponse {
            pipeline: Some(convert::pipeline(&created)),
        }))
    }

    async fn get_pipeline(
        &self,
        request: Request<pb::GetPipelineRequest>,
    ) -> Result<Response<pb::GetPipelineResponse>, Status> {
        let pipeline = self.pipeline_view(&request.get_ref().id, convert::pipeline)?;
        Ok(Response::new(pb::GetPipelineResponse {
            pipeline: Some(pipeline),
        }))
    }

    async fn update_pipeline(
        &self,
        request: Request<pb::UpdatePipelineRequest>,
    ) -> Result<Response<pb::UpdatePipelineResponse>, Status> {
        let ctx = context(&request)?;
        let req = request.into_inner();
        require_id(&req.id)?;
        let config = req.config.unwrap_or_default();
        let pipelines = self.pipelines.clone();
        let id = PipelineId(req.id);
        let expected = expected(req.expected_version);
        let updated =
            write(move || pipelines.update(&ctx, &id, &config.name, &config.description, expected))
                .await?;
        Ok(Response::new(pb::UpdatePipelineResponse {
            pipeline: Some(convert::pipeline(&updated)),
        }))
    }

    async fn delete_pipeline(
        &self,
        request: Request<pb::DeletePipelineRequest>,
    ) -> Result<Response<pb::DeletePipelineResponse>, Status> {
        let ctx = context(&request)?;
        let req = request.into_inner();
        let (id, expected) = (PipelineId(req.id), expected(req.expected_version));
        let pipelines = self.pipelines.clone();
        write(move || pipelines.delete_expecting(&ctx, &id, expected)).await?;
        Ok(Response::new(pb::DeletePipelineResponse {}))
    }

    async fn start_pipeline(
        &self,
        request: Request<pb::StartPipelineRequest>,
    ) -> Result<Response<pb::StartPipelineResponse>, Status> {
        let ctx = context(&request)?;
        let id = PipelineId(request.into_inner().id);
        let pipelines = self.pipelines.clone();
        let mut head = self.writer.projections().watch_applied();
        let requested = id.clone();
        write(move || pipelines.start(&ctx, &requested)).await?;
        if let Some(limit) = self.start_wait {
            self.wait_for_start(&id, &mut head, limit).await?;
        }
        Ok(Response::new(pb::StartPipelineResponse {}))
    }

    async fn stop_pipeline(
        &self,
        request: Request<pb::StopPipelineRequest>,
    ) -> Result<Response<pb::StopPipelineResponse>, Status> {
        let ctx = context(&request)?;
        let req = request.into_inner();
        let id = PipelineId(req.id);
        let pipelines = self.pipelines.clone();
        write(move || pipelines.stop(&ctx, &id, req.force)).await?;
        Ok(Response::new(pb::StopPipelineResponse {}))
    }

    async fn get_dlq(
        &self,
        request: Request<pb::GetDlqRequest>,
    ) -> Result<Response<pb::GetDlqResponse>, Status> {
        let redactor = self.redactor(&request);
        let dlq = self.pipeline_view(&request.get_ref().id, |p| convert::dlq(&p.dlq, &redactor))?;
        Ok(Response::new(pb::GetDlqResponse { dlq: Some(dlq) }))
    }

    async fn update_dlq(
        &self,
        request: Request<pb::UpdateDlqRequest>,
    ) -> Result<Response<pb::UpdateDlqResponse>, Status> {
        let ctx = context(&request)?;
        let redactor = self.redactor(&request);
        let req = request.into_inner();
        require_id(&req.id)?;
        let dlq = req.dlq.ok_or_else(|| invalid("dlq", "missing"))?;
        let pipelines = self.pipelines.clone();
        let id = PipelineId(req.id);
        let expected = expected(req.expected_version);
        let updated = write(move || {
            pipelines.update_dlq_expecting(&ctx, &id, convert::dlq_from(dlq), expected)
        })
        .await?;
        Ok(Response::new(pb::UpdateDlqResponse {
            dlq: Some(convert::dlq(&updated.dlq, &redactor)),
        }))
    }

    /// The pipeline with its connectors, processors and dead-letter queue (Conduit answers
    /// not-implemented): settings as stored, sealed, whatever the request's metadata says,
    /// so that ImportPipeline of the answer recreates it with working secrets.
    async fn export_pipeline(
        &self,
        request: Request<pb::ExportPipelineRequest>,
    ) -> Result<Response<pb::ExportPipelineResponse>, Status> {
        let id = &request.get_ref().id;
        require_id(id)?;
        let redactor = self.redactor.for_export();
        let state = self.writer.projections().read();
        let pipeline = state
            .pipeline(&PipelineId(id.clone()))
            .ok_or_else(|| not_found(EntityKind::Pipeline, id))?;
        Ok(Response::new(crate::export::export(
            &state, pipeline, &redactor,
        )))
    }

    /// Create a pipeline from an export, as one atomic batch (the ApplyPipeline path),
    /// stopped; an existing pipeline id is ALREADY_EXISTS.
    async fn import_pipeline(
        &self,
        request: Request<pb::ImportPipelineRequest>,
    ) -> Result<Response<pb::ImportPipelineResponse>, Status> {
        let ctx = context(&request)?;
        let import = crate::export::import(request.into_inner())?;
        let documents = self.documents.clone();
        let applied = {
            let (document, ids) = (import.document.clone(), import.ids.clone());
            tokio::task::spawn_blocking(move || documents.import(&document, &ids, &ctx.actor))
                .await
                .map_err(|e| Status::internal(format!("import task failed: {e}")))?
        }
        .map_err(|e| import.status(e))?;
        let pipeline = self.pipeline_view(&applied.pipeline, convert::pipeline)?;
        Ok(Response::new(pb::ImportPipelineResponse {
            pipeline: Some(pipeline),
        }))
    }

    async fn plan_pipeline(
        &self,
        request: Request<pb::PlanPipelineRequest>,
    ) -> Result<Response<pb::PlanPipelineResponse>, Status> {
        let ctx = context(&request)?;
        let document = crate::documents::from_proto(request.into_inner().config)?;
        let documents = self.documents.clone();
        let applied =
            tokio::task::spawn_blocking(move || documents.apply(&document, &ctx.actor, None, true))
                .await
                .map_err(|e| Status::internal(format!("plan task failed: {e}")))?
                .map_err(crate::documents::to_status)?;
        Ok(Response::new(pb::PlanPipelineResponse {
            diff: Some(crate::documents::diff(applied)),
        }))
    }

    async fn apply_pipeline(
        &self,
        request: Request<pb::ApplyPipelineRequest>,
    ) -> Result<Response<pb::ApplyPipelineResponse>, Status> {
        let ctx = context(&request)?;
        let req = request.into_inner();
        let document = crate::documents::from_proto(req.config)?;
        let documents = self.documents.clone();
        let hash = req.hash;
        let applied = tokio::task::spawn_blocking(move || {
            documents.apply(&document, &ctx.actor, Some(&hash), false)
        })
        .await
        .map_err(|e| Status::internal(format!("apply task failed: {e}")))?
        .map_err(crate::documents::to_status)?;
        Ok(Response::new(pb::ApplyPipelineResponse {
            diff: Some(crate::documents::diff(applied)),
        }))
    }
}

pub(crate) fn connector_type(value: i32) -> Result<ConnectorType, Status> {
    match pb::connector::Type::try_from(value) {
        Ok(pb::connector::Type::Source) => Ok(ConnectorType::Source),
        Ok(pb::connector::Type::Destination) => Ok(ConnectorType::Destination),
        _ => Err(crate::error::invalid_because(
            crate::error::reason::CONNECTOR_INVALID_TYPE,
            "type",
            &format!("invalid connector type {value}: want TYPE_SOURCE or TYPE_DESTINATION"),
        )),
    }
}

#[tonic::async_trait]
impl ConnectorService for Api {
    type InspectConnectorStream = BoxStream<pb::InspectConnectorResponse>;

    async fn list_connectors(
        &self,
        request: Request<pb::ListConnectorsRequest>,
    ) -> Result<Response<pb::ListConnectorsResponse>, Status> {
        let redactor = self.redactor(&request);
        let pipeline_id = &request.get_ref().pipeline_id;
        let state = self.writer.projections().read();
        let connectors = state
            .connectors()
            .filter(|c| pipeline_id.is_empty() || c.pipeline_id.as_str() == pipeline_id)
            .map(|c| self.with_position(convert::connector(c, &redactor)))
            .collect();
        Ok(Response::new(pb::ListConnectorsResponse { connectors }))
    }

    async fn inspect_connector(
        &self,
        request: Request<pb::InspectConnectorRequest>,
    ) -> Result<Response<Self::InspectConnectorStream>, Status> {
        let id = &request.get_ref().id;
        let session = self.inspect(
            EntityKind::Connector,
            id,
            culvert_engine::inspect::Side::Connector,
        )?;
        Ok(Response::new(crate::inspect::stream(
            session,
            self.shutdown(),
            |record| pb::InspectConnectorResponse {
                record: Some(record),
            },
        )))
    }

    async fn get_connector(
        &self,
        request: Request<pb::GetConnectorRequest>,
    ) -> Result<Response<pb::GetConnectorResponse>, Status> {
        let redactor = self.redactor(&request);
        let id = &request.get_ref().id;
        require_id(id)?;
        let state = self.writer.projections().read();
        let connector = state
            .connector(&ConnectorId(id.clone()))
            .map(|c| self.with_position(convert::connector(c, &redactor)))
            .ok_or_else(|| not_found(EntityKind::Connector, id))?;
        Ok(Response::new(pb::GetConnectorResponse {
            connector: Some(connector),
        }))
    }

    async fn create_connector(
        &self,
        request: Request<pb::CreateConnectorRequest>,
    ) -> Result<Response<pb::CreateConnectorResponse>, Status> {
        let ctx = context(&request)?;
        let redactor = self.redactor(&request);
        let req = request.into_inner();
        let kind = connector_type(req.r#type)?;
        let config = req.config.unwrap_or_default();
        let settings: culvert_plugins::Settings = config.settings.into_iter().collect();
        let effective = self.as_plugin_sees(&settings, None)?;
        crate::plugins::check(&self.plugins, kind, &req.plugin, &effective)?;
        let connectors = self.connectors.clone();
        let pipeline_id = PipelineId(req.pipeline_id);
        let created = write(move || {
            connectors.create(
                &ctx,
                &pipeline_id,
                kind,
                &req.plugin,
                &config.name,
                settings,
            )
        })
        .await?;
        Ok(Response::new(pb::CreateConnectorResponse {
            connector: Some(convert::connector(&created, &redactor)),
        }))
    }

    async fn validate_connector(
        &self,
        request: Request<pb::ValidateConnectorRequest>,
    ) -> Result<Response<pb::ValidateConnectorResponse>, Status> {
        let req = request.into_inner();
        let kind = connector_type(req.r#type)?;
        let settings = req
            .config
            .unwrap_or_default()
            .settings
            .into_iter()
            .collect();
        crate::plugins::check(&self.plugins, kind, &req.plugin, &settings)?;
        Ok(Response::new(pb::ValidateConnectorResponse {}))
    }

    async fn update_connector(
        &self,
        request: Request<pb::UpdateConnectorRequest>,
    ) -> Result<Response<pb::UpdateConnectorResponse>, Status> {
        let ctx = context(&request)?;
        let redactor = self.redactor(&request);
        let req = request.into_inner();
        require_id(&req.id)?;
        let config = req.config.unwrap_or_default();
        let connectors = self.connectors.clone();
        let id = ConnectorId(req.id);
        let plugin = (!req.plugin.is_empty()).then_some(req.plugin);
        let settings: culvert_plugins::Settings = config.settings.into_iter().collect();
        let (kind, current_plugin, stored) = {
            let state = self.writer.projections().read();
            let current = state
                .connector(&id)
                .ok_or_else(|| not_found(EntityKind::Connector, id.as_str()))?;
            (
                current.connector_type,
                current.plugin.clone(),
                current.settings.clone(),
            )
        };
        let effective = plugin.as_deref().unwrap_or(&current_plugin);
        let seen = self.as_plugin_sees(&settings, Some(&stored))?;
        crate::plugins::check(&self.plugins, kind, effective, &seen)?;
        let expected = expected(req.expected_version);
        let updated = write(move || {
            connectors.update(
                &ctx,
                &id,
                &config.name,
                settings,
                plugin.as_deref(),
                expected,
            )
        })
        .await?;
        Ok(Response::new(pb::UpdateConnectorResponse {
            connector: Some(convert::connector(&updated, &redactor)),
        }))
    }

    async fn delete_connector(
        &self,
        request: Request<pb::DeleteConnectorRequest>,
    ) -> Result<Response<pb::DeleteConnectorResponse>, Status> {
        let ctx = context(&request)?;
        let req = request.into_inner();
        let (id, expected) = (ConnectorId(req.id), expected(req.expected_version));
        let connectors = self.connectors.clone();
        write(move || connectors.delete_expecting(&ctx, &id, expected)).await?;
        Ok(Response::new(pb::DeleteConnectorResponse {}))
    }

    async fn list_connector_plugins(
        &self,
        request: Request<pb::ListConnectorPluginsRequest>,
    ) -> Result<Response<pb::ListConnectorPluginsResponse>, Status> {
        let plugins =
            self.plugin_list(&request.get_ref().name, crate::plugins::connector_plugin)?;
        Ok(Response::new(pb::ListConnectorPluginsResponse { plugins }))
    }
}

pub(crate) fn processor_parent(
    parent: Option<pb::processor::Parent>,
) -> Result<ProcessorParent, Status> {
    let parent = parent.ok_or_else(|| invalid("parent", "missing"))?;
    match pb::processor::parent::Type::try_from(parent.r#type) {
        Ok(pb::processor::parent::Type::Connector) => {
            Ok(ProcessorParent::Connector(ConnectorId(parent.id)))
        }
        Ok(pb::processor::parent::Type::Pipeline) => {
            Ok(ProcessorParent::Pipeline(PipelineId(parent.id)))
        }
        _ => Err(crate::error::invalid_because(
            crate::error::reason::PROCESSOR_INVALID_PARENT_TYPE,
            "parent.type",
            &format!(
                "invalid processor parent type {}: want TYPE_CONNECTOR or TYPE_PIPELINE",
                parent.r#type
            ),
        )),
    }
}

#[tonic::async_trait]
impl ProcessorService for Api {
    type InspectProcessorInStream = BoxStream<pb::InspectProcessorInResponse>;
    type InspectProcessorOutStream = BoxStream<pb::InspectProcessorOutResponse>;

    async fn list_processors(
        &self,
        request: Request<pb::ListProcessorsRequest>,
    ) -> Result<Response<pb::ListProcessorsResponse>, Status> {
        let redactor = self.redactor(&request);
        let parents = &request.get_ref().parent_ids;
        let state = self.writer.projections().read();
        let processors = state
            .processors()
            .filter(|p| {
                let parent = match &p.parent {
                    ProcessorParent::Connector(c) => c.as_str(),
                    ProcessorParent::Pipeline(p) => p.as_str(),
                };
                parents.is_empty() || parents.iter().any(|id| id == parent)
            })
            .map(|p| convert::processor(p, &redactor))
            .collect();
        Ok(Response::new(pb::ListProcessorsResponse { processors }))
    }

    async fn inspect_processor_in(
        &self,
        request: Request<pb::InspectProcessorInRequest>,
    ) -> Result<Response<Self::InspectProcessorInStream>, Status> {
        let id = &request.get_ref().id;
        let session = self.inspect(EntityKind::Processor, id, culvert_engine::inspect::Side::In)?;
        Ok(Response::new(crate::inspect::stream(
            session,
            self.shutdown(),
            |record| pb::InspectProcessorInResponse {
                record: Some(record),
            },
        )))
    }

    async fn inspect_processor_out(
        &self,
        request: Request<pb::InspectProcessorOutRequest>,
    ) -> Result<Response<Self::InspectProcessorOutStream>, Status> {
        let id = &request.get_ref().id;
        let session = self.inspect(
            EntityKind::Processor,
            id,
            culvert_engine::inspect::Side::Out,
        )?;
        Ok(Response::new(crate::inspect::stream(
            session,
            self.shutdown(),
            |record| pb::InspectProcessorOutResponse {
                record: Some(record),
            },
        )))
    }

    async fn get_processor(
        &self,
        request: Request<pb::GetProcessorRequest>,
    ) -> Result<Response<pb::GetProcessorResponse>, Status> {
        let redactor = self.redactor(&request);
        let id = &request.get_ref().id;
        require_id(id)?;
        let state = self.writer.projections().read();
        let processor = state
            .processor(&ProcessorId(id.clone()))
            .ok_or_else(|| not_found(EntityKind::Processor, id))?;
        Ok(Response::new(pb::GetProcessorResponse {
            processor: Some(convert::processor(processor, &redactor)),
        }))
    }

    async fn create_processor(
        &self,
        request: Request<pb::CreateProcessorRequest>,
    ) -> Result<Response<pb::CreateProcessorResponse>, Status> {
        let ctx = context(&request)?;
        let redactor = self.redactor(&request);
        let req = request.into_inner();
        let parent = processor_parent(req.parent)?;
        #[allow(deprecated)]
        let plugin = if req.plugin.is_empty() {
            req.r#type
        } else {
            req.plugin
        };
        crate::plugins::check_processor(&self.processor_plugins, &plugin)?;
        let config = req.config.unwrap_or_default();
        let processors = self.processors.clone();
        let created = write(move || {
            processors.create(
                &ctx,
                parent,
                &plugin,
                config.settings.into_iter().collect(),
                &req.condition,
                config.workers,
            )
        })
        .await?;
        Ok(Response::new(pb::CreateProcessorResponse {
            processor: Some(convert::processor(&created, &redactor)),
        }))
    }

    async fn update_processor(
        &self,
        request: Request<pb::UpdateProcessorRequest>,
    ) -> Result<Response<pb::UpdateProcessorResponse>, Status> {
        let ctx = context(&request)?;
        let redactor = self.redactor(&request);
        let req = request.into_inner();
        require_id(&req.id)?;
        let config = req.config.unwrap_or_default();
        let processors = self.processors.clone();
        let id = ProcessorId(req.id);
        let plugin = (!req.plugin.is_empty()).then_some(req.plugin);
        if let Some(plugin) = &plugin {
            crate::plugins::check_processor(&self.processor_plugins, plugin)?;
        }
        let expected = expected(req.expected_version);
        let updated = write(move || {
            processors.update(
                &ctx,
                &id,
                config.settings.into_iter().collect(),
                config.workers,
                plugin.as_deref(),
                expected,
            )
        })
        .await?;
        Ok(Response::new(pb::UpdateProcessorResponse {
            processor: Some(convert::processor(&updated, &redactor)),
        }))
    }

    async fn delete_processor(
        &self,
        request: Request<pb::DeleteProcessorRequest>,
    ) -> Result<Response<pb::DeleteProcessorResponse>, Status> {
        let ctx = context(&request)?;
        let req = request.into_inner();
        let (id, expected) = (ProcessorId(req.id), expected(req.expected_version));
        let processors = self.processors.clone();
        write(move || processors.delete_expecting(&ctx, &id, expected)).await?;
        Ok(Response::new(pb::DeleteProcessorResponse {}))
    }

    async fn list_processor_plugins(
        &self,
        request: Request<pb::ListProcessorPluginsRequest>,
    ) -> Result<Response<pb::ListProcessorPluginsResponse>, Status> {
        let filter = name_filter("name", &request.get_ref().name)?;
        let plugins = self
            .processor_plugins
            .specifications()
            .filter(|s| {
                filter
                    .as_ref()
                    .is_none_or(|r| r.is_match(&crate::plugins::processor_full_name(s)))
            })
            .map(crate::plugins::processor_plugin)
            .collect();
        Ok(Response::new(pb::ListProcessorPluginsResponse { plugins }))
    }
}

#[tonic::async_trait]
impl InformationService for Api {
    async fn get_info(
        &self,
        _request: Request<pb::GetInfoRequest>,
    ) -> Result<Response<pb::GetInfoResponse>, Status> {
        Ok(Response::new(pb::GetInfoResponse {
            info: Some(pb::Info {
                version: format!("v{}", env!("CARGO_PKG_VERSION")),
                os: std::env::consts::OS.to_owned(),
                arch: go_arch(std::env::consts::ARCH).to_owned(),
            }),
        }))
    }
}

/// Conduit reports Go's architecture names.
fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

#[tonic::async_trait]
impl PluginService for Api {
    async fn list_plugins(
        &self,
        request: Request<pb::ListPluginsRequest>,
    ) -> Result<Response<pb::ListPluginsResponse>, Status> {
        let plugins = self.plugin_list(&request.get_ref().name, crate::plugins::legacy_plugin)?;
        Ok(Response::new(pb::ListPluginsResponse { plugins }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_projections::{ProjectionOptions, Projections};
    use culvert_store::{AppendRequest, EventLog, MemoryStore, NewEvent};

    fn api_on(log: Arc<dyn EventLog>) -> Api {
        let (projections, _) = Projections::open(log.as_ref(), ProjectionOptions::default())
            .expect("projections over an empty log");
        Api::new(ControlPlaneWriter::new(log, Arc::new(projections)))
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_follows_the_log_and_the_read_models() {
        let log: Arc<dyn EventLog> = Arc::new(MemoryStore::new());
        let api = api_on(log.clone());
        assert_eq!(api.readiness().await, Ok(()));
        // An event the read models have not folded (appended behind the writer's back).
        log.append(AppendRequest {
            events: vec![NewEvent {
                stream: culvert_domain::StreamId("pipeline/p".to_owned()),
                event_type: "PipelineCreated".to_owned(),
                schema_version: 1,
                actor: "test".to_owned(),
                correlation_id: "c".to_owned(),
                causation_id: None,
                reason: None,
                payload: serde_json::value::RawValue::from_string("{}".to_owned()).unwrap(),
            }],
            expected: vec![],
            clear_positions: Vec::new(),
            set_positions: Vec::new(),
            clear_letters: Vec::new(),
            queue_letters: Vec::new(),
        })
        .unwrap();
        assert_eq!(
            api.readiness().await,
            Err("the read models are catching up with the event log")
        );
    }

    #[test]
    fn a_claimed_actor_is_a_user_unless_it_names_an_mcp_client() {
        let actor = |value: Option<&str>| {
            let mut request = Request::new(());
            if let Some(value) = value {
                request
                    .metadata_mut()
                    .insert("culvert-actor", value.parse().unwrap());
            }
            context(&request).unwrap().actor
        };
        assert_eq!(actor(None), "api");
        assert_eq!(actor(Some("")), "api");
        assert_eq!(actor(Some("alice")), "user:alice");
        assert_eq!(actor(Some("mcp:claude-code")), "mcp:claude-code");
        assert_eq!(actor(Some("mcp:")), "user:mcp:");
        assert_eq!(actor(Some("user:mcp:x")), "user:user:mcp:x");
    }
}
