//! The HTTP routes of `culvert.api.v1.DeadLetterService`, under
//! `/v1/pipelines/{id}/dead-letters`, each a thin call into the same in-process service the
//! gRPC server runs.

use super::payload::ProtoJson;
use super::{call, grpc_request, ApiError};
use crate::pb::culvert::api::v1 as pp;
use crate::Api;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::{OpenApi, Tags};
use pp::dead_letter_service_server::DeadLetterService;

/// The HTTP face of dead letters.
pub(crate) struct DeadLetterRoutes {
    pub(crate) api: Api,
}

#[derive(Tags)]
enum Tag {
    /// Dead letters: list and inspect what a pipeline's DLQ took; re-inject letters.
    DeadLetterService,
}

type Reply<T> = Result<ProtoJson<T>, ApiError>;

#[OpenApi]
impl DeadLetterRoutes {
    /// A pipeline's dead letters, oldest first, a page at a time.
    #[oai(
        path = "/v1/pipelines/:id/dead-letters",
        method = "get",
        tag = "Tag::DeadLetterService",
        operation_id = "DeadLetterService_ListDeadLetters"
    )]
    async fn list(
        &self,
        req: &Request,
        id: Path<String>,
        /// Only letters numbered above this (the previous page's `nextAfter`).
        after: Query<Option<u64>>,
        /// At most this many (default 100, at most 1000).
        limit: Query<Option<u32>>,
    ) -> Reply<pp::ListDeadLettersResponse> {
        let request = pp::ListDeadLettersRequest {
            pipeline_id: id.0,
            after: after.0.unwrap_or(0),
            limit: limit.0.unwrap_or(0),
        };
        let reply = call(self.api.list_dead_letters(grpc_request(req, request))).await?;
        Ok(ProtoJson(reply))
    }

    /// One dead letter: its error, where it failed, and the record.
    #[oai(
        path = "/v1/pipelines/:id/dead-letters/:seq",
        method = "get",
        tag = "Tag::DeadLetterService",
        operation_id = "DeadLetterService_GetDeadLetter"
    )]
    async fn get(&self, req: &Request, id: Path<String>, seq: Path<u64>) -> Reply<pp::DeadLetter> {
        let request = pp::GetDeadLetterRequest {
            pipeline_id: id.0,
            seq: seq.0,
        };
        let reply = call(self.api.get_dead_letter(grpc_request(req, request))).await?;
        Ok(ProtoJson(reply))
    }

    /// Re-inject letters into the pipeline: `{"seqs": ["3", "4"]}` or `{"all": true}`.
    #[oai(
        path = "/v1/pipelines/:id/dead-letters/reinject",
        method = "post",
        tag = "Tag::DeadLetterService",
        operation_id = "DeadLetterService_ReinjectDeadLetters"
    )]
    async fn reinject(
        &self,
        req: &Request,
        id: Path<String>,
        body: ProtoJson<pp::ReinjectDeadLettersRequest>,
    ) -> Reply<pp::ReinjectDeadLettersResponse> {
        let mut request = body.0;
        request.pipeline_id = id.0;
        let reply = call(self.api.reinject_dead_letters(grpc_request(req, request))).await?;
        Ok(ProtoJson(reply))
    }
}
