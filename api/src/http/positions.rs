//! The HTTP routes of `culvert.api.v1.SourcePositionService`, under
//! `/v1/connectors/{id}/position`, each a thin call into the same in-process service the
//! gRPC server runs.

use super::payload::ProtoJson;
use super::{call, grpc_request, ApiError};
use crate::pb::culvert::api::v1 as pp;
use crate::Api;
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::{OpenApi, Tags};
use pp::source_position_service_server::SourcePositionService;

/// The HTTP face of source positions.
pub(crate) struct PositionRoutes {
    pub(crate) api: Api,
}

#[derive(Tags)]
enum Tag {
    /// Source positions: read them; move a stopped pipeline's source (set, seek, reset).
    SourcePositionService,
}

type Reply<T> = Result<ProtoJson<T>, ApiError>;

#[OpenApi]
impl PositionRoutes {
    /// A source connector's position and its sampled checkpoints.
    #[oai(
        path = "/v1/connectors/:id/position",
        method = "get",
        tag = "Tag::SourcePositionService",
        operation_id = "SourcePositionService_GetSourcePosition"
    )]
    async fn get_position(&self, req: &Request, id: Path<String>) -> Reply<pp::SourcePosition> {
        let request = pp::GetSourcePositionRequest { connector_id: id.0 };
        let reply = call(self.api.get_source_position(grpc_request(req, request))).await?;
        Ok(ProtoJson(reply))
    }

    /// Move a stopped pipeline's source: `{"position": "<base64>"}`, `{"reset": true}` or
    /// `{"checkpointAt": "<RFC 3339>"}`, optionally with `"expectedVersion"`.
    #[oai(
        path = "/v1/connectors/:id/position",
        method = "put",
        tag = "Tag::SourcePositionService",
        operation_id = "SourcePositionService_SetSourcePosition"
    )]
    async fn set_position(
        &self,
        req: &Request,
        id: Path<String>,
        body: ProtoJson<pp::SetSourcePositionRequest>,
    ) -> Reply<pp::SetSourcePositionResponse> {
        let mut request = body.0;
        request.connector_id = id.0;
        let reply = call(self.api.set_source_position(grpc_request(req, request))).await?;
        Ok(ProtoJson(reply))
    }
}
