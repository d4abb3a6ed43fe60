//! Every route grpc-gateway generates for Conduit's `api.v1`, each a thin call into the same
//! in-process service the gRPC server runs.

use super::payload::{ProtoJson, Tagged};
use super::{call, grpc_request, open_stream, query_values, ApiError, RecordStream};
use crate::export::PipelineExport;
use crate::pb::api::v1 as pb;
use crate::Api;
use pb::connector_service_server::ConnectorService;
use pb::information_service_server::InformationService;
use pb::pipeline_service_server::PipelineService;
use pb::plugin_service_server::PluginService;
use pb::processor_service_server::ProcessorService;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::{OpenApi, Tags};

/// The HTTP face of [`Api`].
pub(crate) struct Routes {
    pub(crate) api: Api,
}

/// The OpenAPI tags: one per gRPC service, named as grpc-gateway names them.
#[derive(Tags)]
#[allow(clippy::enum_variant_names)]
enum Tag {
    /// Pipelines: create, configure, start and stop.
    PipelineService,
    /// Source and destination connectors of a pipeline.
    ConnectorService,
    /// Processors attached to a pipeline or a connector.
    ProcessorService,
    /// About this server.
    InformationService,
    /// Deprecated: use ConnectorService's and ProcessorService's plugin lists.
    PluginService,
}

type Reply<T> = Result<ProtoJson<T>, ApiError>;
type TaggedReply<T> = Result<Tagged<T>, ApiError>;

/// The version an `If-Match` header asks for (`"12"`, `12` or `W/"12"`; `*` or none: any),
/// or a 400 naming the header.
fn if_match(req: &Request) -> Result<Option<u64>, ApiError> {
    let Some(value) = req.headers().get(poem::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    let bare = text.trim_start_matches("W/").trim_matches('"');
    match bare.parse::<u64>() {
        Ok(version) if version > 0 => Ok(Some(version)),
        _ => Err(ApiError::from_status(&crate::error::invalid(
            "If-Match",
            &format!("{text:?} is not an entity version (an ETag this API gave, e.g. \"3\")"),
        ))),
    }
}

/// Make a change conditional on `If-Match`, if the request has one: the header's version
/// is the expected version, and a mismatch answers 412 (the body's `expected_version`, or
/// none, answers 409 as grpc-gateway maps ABORTED).
async fn conditional<T>(
    matched: Option<u64>,
    answer: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ApiError> {
    call(answer)
        .await
        .map_err(|error| error.precondition_failed_if(matched.is_some()))
}

/// The first value of a query parameter given by its proto or its JSON name.
fn query_one(req: &Request, names: &[&str]) -> String {
    query_values(req, names)
        .into_iter()
        .next()
        .unwrap_or_default()
}

#[OpenApi]
impl Routes {
    /// List pipelines, optionally those whose name fully matches a regular expression.
    #[oai(
        path = "/v1/pipelines",
        method = "get",
        tag = "Tag::PipelineService",
        operation_id = "PipelineService_ListPipelines"
    )]
    async fn list_pipelines(
        &self,
        req: &Request,
        /// A regular expression the whole pipeline name must match.
        #[oai(name = "name")]
        _name: Query<Option<String>>,
    ) -> Reply<Vec<pb::Pipeline>> {
        let name = query_one(req, &["name"]);
        let reply = call(
            self.api
                .list_pipelines(grpc_request(req, pb::ListPipelinesRequest { name })),
        )
        .await?;
        Ok(ProtoJson(reply.pipelines))
    }

    /// Create a pipeline.
    #[oai(
        path = "/v1/pipelines",
        method = "post",
        tag = "Tag::PipelineService",
        operation_id = "PipelineService_CreatePipeline"
    )]
    async fn create_pipeline(
        &self,
        req: &Request,
        body: ProtoJson<pb::CreatePipelineRequest>,
    ) -> TaggedReply<pb::Pipeline> {
        let reply = call(self.api.create_pipeline(grpc_request(req, body.0))).await?;
        Ok(Tagged(reply.pipeline.unwrap_or_default()))
    }

    /// Get a pipeline by id.
    #[oai(
        path = "/v1/pipelines/:id",
        method = "get",
        tag = "Tag::PipelineService",
        operation_id = "PipelineService_GetPipeline"
    )]
    async fn get_pipeline(&self, req: &Request, id: Path<String>) -> TaggedReply<pb::Pipeline> {
        let reply = call(
            self.api
                .get_pipeline(grpc_request(req, pb::GetPipelineRequest { id: id.0 })),
        )
        .await?;
        Ok(Tagged(reply.pipeline.unwrap_or_default()))
    }

    /// Change a pipeline's name or description (refused while it runs).
    #[oai(
        path = "/v1/pipelines/:id",
        method = "put",
        tag = "Tag::PipelineService",
        operation_id = "PipelineService_UpdatePipeline"
    )]
    async fn update_pipeline(
        &self,
        req: &Request,
        id: Path<String>,
        body: ProtoJson<pb::UpdatePipelineRequest>,
    ) -> TaggedReply<pb::Pipeline> {
        let mut request = body.0;
        request.id = id.0;
        let matched = if_match(req)?;
        request.expected_version = matched.unwrap_or(request.expected_version);
        let reply = conditional(
            matched,
            self.api.update_pipeline(grpc_request(req, request)),
        )
        .await?;
        Ok(Tagged(reply.pipeline.unwrap_or_default()))
    }

    /// Delete a stopped pipeline that has no connectors or processors left.
    #[oai(
        path = "/v1/pipelines/:id",
        method = "delete",
        tag = "Tag::PipelineService",
        operation_id = "PipelineService_DeletePipeline"
    )]
    async fn delete_pipeline(
        &self,
        req: &Request,
        id: Path<String>,
    ) -> Reply<pb::DeletePipelineResponse> {
        let matched = if_match(req)?;
        let request = pb::DeletePipelineRequest {
            id: id.0,
            expected_version: matched.unwrap_or_default(),
        };
        Ok(ProtoJson(
            conditional(
                matched,
                self.api.delete_pipeline(grpc_request(req, request)),
            )
            .await?,
        ))
    }

    /// Ask for a pipeline to start.
    #[oai(
        path = "/v1/pipelines/:id/start",
        method = "post",
        tag = "Tag::PipelineService",
        operation_id = "PipelineService_StartPipeline"
    )]
    async fn start_pipeline(
        &self,
        req: &Request,
        id: Path<String>,
    ) -> Reply<pb::StartPipelineResponse> {
        let request = pb::StartPipelineRequest { id: id.0 };
        Ok(ProtoJson(
            call(self.api.start_pipeline(grpc_request(req, request))).await?,
        ))
    }

    /// Ask for a pipeline to stop (`force` stops without draining).
    #[oai(
        path = "/v1/pipelines/:id/stop",
        method = "post",
        tag = "Tag::PipelineService",
        operation_id = "PipelineService_StopPipeline"
    )]
    async fn stop_pipeline(
        &self,
        req: &Request,
        id: Path<String>,
        body: ProtoJson<pb::StopPipelineRequest>,
    ) -> Reply<pb::StopPipelineResponse> {
        let mut request = body.0;
        request.id = id.0;
        Ok(ProtoJson(
            call(self.api.stop_pipeline(grpc_request(req, request))).await?,
        ))
    }

    /// Get a pipeline's dead-letter queue.
    #[oai(
        path = "/v1/pipelines/:id/dead-letter-queue",
        method = "get",
        tag = "Tag::PipelineService",
        operation_id = "PipelineService_GetDLQ"
    )]
    async fn get_dlq(&self, req: &Request, id: Path<String>) -> Reply<pb::pipeline::Dlq> {
        let request = pb::GetDlqRequest { id: id.0 };
        let reply = call(self.api.get_dlq(grpc_request(req, request))).await?;
        Ok(ProtoJson(reply.dlq.unwrap_or_default()))
    }

    /// Replace a pipeline's dead-letter queue.
    #[oai(
        path = "/v1/pipelines/:id/dead-letter-queue",
        method = "put",
        tag = "Tag::PipelineService",
        operation_id = "PipelineService_UpdateDLQ"
    )]
    async fn update_dlq(
        &self,
        req: &Request,
        id: Path<String>,
        dlq: ProtoJson<pb::pipeline::Dlq>,
    ) -> Reply<pb::pipeline::Dlq> {
        let matched = if_match(req)?;
        let request = pb::UpdateDlqRequest {
            id: id.0,
            dlq: Some(dlq.0),
            expected_version: matched.unwrap_or_default(),
        };
        let reply = conditional(matched, self.api.update_dlq(grpc_request(req, request))).await?;
        Ok(ProtoJson(reply.dlq.unwrap_or_default()))
    }

    /// Export a pipeline with its connectors, processors and dead-letter queue: the
    /// pipeline's fields (as grpc-gateway's `response_body: "pipeline"`) with `connectors`,
    /// `processors` and `dlq` beside them; secrets sealed.
    #[oai(
        path = "/v1/pipelines/:id/export",
        method = "post",
        tag = "Tag::PipelineService",
        operation_id = "PipelineService_ExportPipeline"
    )]
    async fn export_pipeline(&self, req: &Request, id: Path<String>) -> Reply<PipelineExport> {
        let request = pb::ExportPipelineRequest { id: id.0 };
        let reply = call(self.api.export_pipeline(grpc_request(req, request))).await?;
        Ok(ProtoJson(PipelineExport::from(reply)))
    }

    /// Import a pipeline exported before (the body is what export answers), stopped.
    #[oai(
        path = "/v1/pipelines/import",
        method = "post",
        tag = "Tag::PipelineService",
        operation_id = "PipelineService_ImportPipeline"
    )]
    async fn import_pipeline(
        &self,
        req: &Request,
        body: ProtoJson<PipelineExport>,
    ) -> Reply<pb::Pipeline> {
        let request = pb::ImportPipelineRequest::from(body.0);
        let reply = call(self.api.import_pipeline(grpc_request(req, request))).await?;
        Ok(ProtoJson(reply.pipeline.unwrap_or_default()))
    }

    /// Show what applying a pipeline document would change.
    #[oai(
        path = "/v1/pipelines/plan",
        method = "post",
        tag = "Tag::PipelineService",
        operation_id = "PipelineService_PlanPipeline"
    )]
    async fn plan_pipeline(
        &self,
        req: &Request,
        body: ProtoJson<pb::PlanPipelineRequest>,
    ) -> Reply<pb::Diff> {
        let reply = call(self.api.plan_pipeline(grpc_request(req, body.0))).await?;
        Ok(ProtoJson(reply.diff.unwrap_or_default()))
    }

    /// Apply a pipeline document whose plan was reviewed.
    #[oai(
        path = "/v1/pipelines/apply",
        method = "post",
        tag = "Tag::PipelineService",
        operation_id = "PipelineService_ApplyPipeline"
    )]
    async fn apply_pipeline(
        &self,
        req: &Request,
        body: ProtoJson<pb::ApplyPipelineRequest>,
    ) -> Reply<pb::Diff> {
        let reply = call(self.api.apply_pipeline(grpc_request(req, body.0))).await?;
        Ok(ProtoJson(reply.diff.unwrap_or_default()))
    }

    /// List connectors, optionally only those of one pipeline.
    #[oai(
        path = "/v1/connectors",
        method = "get",
        tag = "Tag::ConnectorService",
        operation_id = "ConnectorService_ListConnectors"
    )]
    async fn list_connectors(
        &self,
        req: &Request,
        /// Only connectors of this pipeline (`pipeline_id` is accepted too).
        #[oai(name = "pipelineId")]
        _pipeline_id: Query<Option<String>>,
    ) -> Reply<Vec<pb::Connector>> {
        let pipeline_id = query_one(req, &["pipeline_id", "pipelineId"]);
        let request = pb::ListConnectorsRequest { pipeline_id };
        let reply = call(self.api.list_connectors(grpc_request(req, request))).await?;
        Ok(ProtoJson(reply.connectors))
    }

    /// Stream the records passing through a connector, as newline-delimited JSON
    /// (`{"result": record}` per line).
    #[oai(
        path = "/v1/connectors/:id/inspect",
        method = "get",
        tag = "Tag::ConnectorService",
        operation_id = "ConnectorService_InspectConnector"
    )]
    async fn inspect_connector(
        &self,
        req: &Request,
        id: Path<String>,
    ) -> Result<RecordStream, ApiError> {
        let request = pb::InspectConnectorRequest { id: id.0 };
        Ok(open_stream(
            self.api.inspect_connector(grpc_request(req, request)),
            |r| r.record,
        )
        .await)
    }

    /// Get a connector by id.
    #[oai(
        path = "/v1/connectors/:id",
        method = "get",
        tag = "Tag::ConnectorService",
        operation_id = "ConnectorService_GetConnector"
    )]
    async fn get_connector(&self, req: &Request, id: Path<String>) -> TaggedReply<pb::Connector> {
        let request = pb::GetConnectorRequest { id: id.0 };
        let reply = call(self.api.get_connector(grpc_request(req, request))).await?;
        Ok(Tagged(reply.connector.unwrap_or_default()))
    }

    /// Add a source or destination connector to a pipeline.
    #[oai(
        path = "/v1/connectors",
        method = "post",
        tag = "Tag::ConnectorService",
        operation_id = "ConnectorService_CreateConnector"
    )]
    async fn create_connector(
        &self,
        req: &Request,
        body: ProtoJson<pb::CreateConnectorRequest>,
    ) -> TaggedReply<pb::Connector> {
        let reply = call(self.api.create_connector(grpc_request(req, body.0))).await?;
        Ok(Tagged(reply.connector.unwrap_or_default()))
    }

    /// Check a connector's plugin and settings without creating it.
    #[oai(
        path = "/v1/connectors/validate",
        method = "post",
        tag = "Tag::ConnectorService",
        operation_id = "ConnectorService_ValidateConnector"
    )]
    async fn validate_connector(
        &self,
        req: &Request,
        body: ProtoJson<pb::ValidateConnectorRequest>,
    ) -> Reply<pb::ValidateConnectorResponse> {
        Ok(ProtoJson(
            call(self.api.validate_connector(grpc_request(req, body.0))).await?,
        ))
    }

    /// Change a connector's name, settings or plugin (refused while its pipeline runs).
    #[oai(
        path = "/v1/connectors/:id",
        method = "put",
        tag = "Tag::ConnectorService",
        operation_id = "ConnectorService_UpdateConnector"
    )]
    async fn update_connector(
        &self,
        req: &Request,
        id: Path<String>,
        body: ProtoJson<pb::UpdateConnectorRequest>,
    ) -> TaggedReply<pb::Connector> {
        let mut request = body.0;
        request.id = id.0;
        let matched = if_match(req)?;
        request.expected_version = matched.unwrap_or(request.expected_version);
        let reply = conditional(
            matched,
            self.api.update_connector(grpc_request(req, request)),
        )
        .await?;
        Ok(Tagged(reply.connector.unwrap_or_default()))
    }

    /// Delete a connector that has no processors left.
    #[oai(
        path = "/v1/connectors/:id",
        method = "delete",
        tag = "Tag::ConnectorService",
        operation_id = "ConnectorService_DeleteConnector"
    )]
    async fn delete_connector(
        &self,
        req: &Request,
        id: Path<String>,
    ) -> Reply<pb::DeleteConnectorResponse> {
        let matched = if_match(req)?;
        let request = pb::DeleteConnectorRequest {
            id: id.0,
            expected_version: matched.unwrap_or_default(),
        };
        Ok(ProtoJson(
            conditional(
                matched,
                self.api.delete_connector(grpc_request(req, request)),
            )
            .await?,
        ))
    }

    /// List the connector plugins this server can run.
    #[oai(
        path = "/v1/connectors/plugins",
        method = "get",
        tag = "Tag::ConnectorService",
        operation_id = "ConnectorService_ListConnectorPlugins"
    )]
    async fn list_connector_plugins(
        &self,
        req: &Request,
        /// A regular expression the whole plugin name must match.
        #[oai(name = "name")]
        _name: Query<Option<String>>,
    ) -> Reply<Vec<pb::ConnectorPluginSpecifications>> {
        let request = pb::ListConnectorPluginsRequest {
            name: query_one(req, &["name"]),
        };
        let reply = call(self.api.list_connector_plugins(grpc_request(req, request))).await?;
        Ok(ProtoJson(reply.plugins))
    }

    /// List processors, optionally only those of some parents.
    #[oai(
        path = "/v1/processors",
        method = "get",
        tag = "Tag::ProcessorService",
        operation_id = "ProcessorService_ListProcessors"
    )]
    async fn list_processors(
        &self,
        req: &Request,
        /// Only processors attached to these pipelines or connectors (`parent_ids` is
        /// accepted too; repeat the parameter for several).
        #[oai(name = "parentIds")]
        _parent_ids: Query<Vec<String>>,
    ) -> Reply<Vec<pb::Processor>> {
        let request = pb::ListProcessorsRequest {
            parent_ids: query_values(req, &["parent_ids", "parentIds"]),
        };
        let reply = call(self.api.list_processors(grpc_request(req, request))).await?;
        Ok(ProtoJson(reply.processors))
    }

    /// Stream the records going into a processor, as newline-delimited JSON.
    #[oai(
        path = "/v1/processors/:id/inspect-in",
        method = "get",
        tag = "Tag::ProcessorService",
        operation_id = "ProcessorService_InspectProcessorIn"
    )]
    async fn inspect_processor_in(
        &self,
        req: &Request,
        id: Path<String>,
    ) -> Result<RecordStream, ApiError> {
        let request = pb::InspectProcessorInRequest { id: id.0 };
        Ok(open_stream(
            self.api.inspect_processor_in(grpc_request(req, request)),
            |r| r.record,
        )
        .await)
    }

    /// Stream the records coming out of a processor, as newline-delimited JSON.
    #[oai(
        path = "/v1/processors/:id/inspect-out",
        method = "get",
        tag = "Tag::ProcessorService",
        operation_id = "ProcessorService_InspectProcessorOut"
    )]
    async fn inspect_processor_out(
        &self,
        req: &Request,
        id: Path<String>,
    ) -> Result<RecordStream, ApiError> {
        let request = pb::InspectProcessorOutRequest { id: id.0 };
        Ok(open_stream(
            self.api.inspect_processor_out(grpc_request(req, request)),
            |r| r.record,
        )
        .await)
    }

    /// Get a processor by id.
    #[oai(
        path = "/v1/processors/:id",
        method = "get",
        tag = "Tag::ProcessorService",
        operation_id = "ProcessorService_GetProcessor"
    )]
    async fn get_processor(&self, req: &Request, id: Path<String>) -> TaggedReply<pb::Processor> {
        let request = pb::GetProcessorRequest { id: id.0 };
        let reply = call(self.api.get_processor(grpc_request(req, request))).await?;
        Ok(Tagged(reply.processor.unwrap_or_default()))
    }

    /// Attach a processor to a pipeline or a connector.
    #[oai(
        path = "/v1/processors",
        method = "post",
        tag = "Tag::ProcessorService",
        operation_id = "ProcessorService_CreateProcessor"
    )]
    async fn create_processor(
        &self,
        req: &Request,
        body: ProtoJson<pb::CreateProcessorRequest>,
    ) -> TaggedReply<pb::Processor> {
        let reply = call(self.api.create_processor(grpc_request(req, body.0))).await?;
        Ok(Tagged(reply.processor.unwrap_or_default()))
    }

    /// Change a processor's settings or plugin (refused while its pipeline runs).
    #[oai(
        path = "/v1/processors/:id",
        method = "put",
        tag = "Tag::ProcessorService",
        operation_id = "ProcessorService_UpdateProcessor"
    )]
    async fn update_processor(
        &self,
        req: &Request,
        id: Path<String>,
        body: ProtoJson<pb::UpdateProcessorRequest>,
    ) -> TaggedReply<pb::Processor> {
        let mut request = body.0;
        request.id = id.0;
        let matched = if_match(req)?;
        request.expected_version = matched.unwrap_or(request.expected_version);
        let reply = conditional(
            matched,
            self.api.update_processor(grpc_request(req, request)),
        )
        .await?;
        Ok(Tagged(reply.processor.unwrap_or_default()))
    }

    /// Delete a processor.
    #[oai(
        path = "/v1/processors/:id",
        method = "delete",
        tag = "Tag::ProcessorService",
        operation_id = "ProcessorService_DeleteProcessor"
    )]
    async fn delete_processor(
        &self,
        req: &Request,
        id: Path<String>,
    ) -> Reply<pb::DeleteProcessorResponse> {
        let matched = if_match(req)?;
        let request = pb::DeleteProcessorRequest {
            id: id.0,
            expected_version: matched.unwrap_or_default(),
        };
        Ok(ProtoJson(
            conditional(
                matched,
                self.api.delete_processor(grpc_request(req, request)),
            )
            .await?,
        ))
    }

    /// List the processor plugins this server can run.
    #[oai(
        path = "/v1/processors/plugins",
        method = "get",
        tag = "Tag::ProcessorService",
        operation_id = "ProcessorService_ListProcessorPlugins"
    )]
    async fn list_processor_plugins(
        &self,
        req: &Request,
        /// A regular expression the whole plugin name must match.
        #[oai(name = "name")]
        _name: Query<Option<String>>,
    ) -> Reply<Vec<pb::ProcessorPluginSpecifications>> {
        let request = pb::ListProcessorPluginsRequest {
            name: query_one(req, &["name"]),
        };
        let reply = call(self.api.list_processor_plugins(grpc_request(req, request))).await?;
        Ok(ProtoJson(reply.plugins))
    }

    /// This server's version, OS and architecture.
    #[oai(
        path = "/info",
        method = "get",
        tag = "Tag::InformationService",
        operation_id = "InformationService_GetInfo"
    )]
    async fn get_info(&self, req: &Request) -> Reply<pb::Info> {
        let reply = call(self.api.get_info(grpc_request(req, pb::GetInfoRequest {}))).await?;
        Ok(ProtoJson(reply.info.unwrap_or_default()))
    }

    /// Deprecated: list connector plugins in the old format.
    #[oai(
        path = "/v1/plugins",
        method = "get",
        tag = "Tag::PluginService",
        operation_id = "PluginService_ListPlugins",
        deprecated
    )]
    async fn list_plugins(
        &self,
        req: &Request,
        /// A regular expression the whole plugin name must match.
        #[oai(name = "name")]
        _name: Query<Option<String>>,
    ) -> Reply<Vec<pb::PluginSpecifications>> {
        let request = pb::ListPluginsRequest {
            name: query_one(req, &["name"]),
        };
        let reply = call(self.api.list_plugins(grpc_request(req, request))).await?;
        Ok(ProtoJson(reply.plugins))
    }
}
