//! The HTTP routes of `culvert.api.v1.EventLogService`, under `/v1/events`, each a thin call
//! into the same in-process service the gRPC server runs.

use super::payload::ProtoJson;
use super::{call, grpc_request, open_stream, query_values, ApiError, LineStream};
use crate::pb::culvert::api::v1 as ev;
use crate::Api;
use ev::event_log_service_server::EventLogService;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::{OpenApi, Tags};

/// The HTTP face of the event log.
pub(crate) struct EventRoutes {
    pub(crate) api: Api,
}

#[derive(Tags)]
enum Tag {
    /// The control plane's event log: audit trail, point-in-time views, change feed.
    EventLogService,
}

type Reply<T> = Result<ProtoJson<T>, ApiError>;

/// A query parameter by its proto or JSON name, parsed; absent or empty is the default.
fn param<T: std::str::FromStr + Default>(req: &Request, names: &[&str]) -> Result<T, ApiError> {
    match query_values(req, names).into_iter().next() {
        None => Ok(T::default()),
        Some(v) if v.is_empty() => Ok(T::default()),
        Some(v) => v.parse().map_err(|_| {
            ApiError::from_status(&crate::error::invalid(
                names[0],
                &format!("{v:?} is not a valid value"),
            ))
        }),
    }
}

/// An RFC 3339 query parameter as a timestamp.
fn time_param(req: &Request, names: &[&str]) -> Result<Option<crate::wkt::Timestamp>, ApiError> {
    let Some(text) = query_values(req, names)
        .into_iter()
        .next()
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    let parsed = chrono::DateTime::parse_from_rfc3339(&text).map_err(|e| {
        ApiError::from_status(&crate::error::invalid(
            names[0],
            &format!("{text:?} is not an RFC 3339 time: {e}"),
        ))
    })?;
    Ok(Some(crate::convert::timestamp(
        parsed.with_timezone(&chrono::Utc),
    )))
}

#[OpenApi]
impl EventRoutes {
    /// List events, oldest first, filtered and paginated.
    #[oai(
        path = "/v1/events",
        method = "get",
        tag = "Tag::EventLogService",
        operation_id = "EventLogService_ListEvents"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list_events(
        &self,
        req: &Request,
        /// From this sequence number on.
        #[oai(name = "from_seq")]
        _from_seq: Query<Option<u64>>,
        /// Up to this sequence number.
        #[oai(name = "to_seq")]
        _to_seq: Query<Option<u64>>,
        /// Recorded at or after this time (RFC 3339).
        #[oai(name = "since")]
        _since: Query<Option<String>>,
        /// Recorded at or before this time (RFC 3339).
        #[oai(name = "until")]
        _until: Query<Option<String>>,
        /// Only events of this pipeline, connector or processor.
        #[oai(name = "entity_id")]
        _entity_id: Query<Option<String>>,
        /// Only events of this type.
        #[oai(name = "type")]
        _type: Query<Option<String>>,
        /// Only events by this actor.
        #[oai(name = "actor")]
        _actor: Query<Option<String>>,
        /// At most this many (default 100, at most 1000).
        #[oai(name = "page_size")]
        _page_size: Query<Option<i32>>,
        /// The next_page_token of the previous page.
        #[oai(name = "page_token")]
        _page_token: Query<Option<String>>,
    ) -> Reply<ev::ListEventsResponse> {
        let request = ev::ListEventsRequest {
            from_seq: param(req, &["from_seq", "fromSeq"])?,
            to_seq: param(req, &["to_seq", "toSeq"])?,
            since: time_param(req, &["since"])?,
            until: time_param(req, &["until"])?,
            entity_id: param(req, &["entity_id", "entityId"])?,
            r#type: param(req, &["type"])?,
            actor: param(req, &["actor"])?,
            page_size: param(req, &["page_size", "pageSize"])?,
            page_token: param(req, &["page_token", "pageToken"])?,
        };
        let reply = call(self.api.list_events(grpc_request(req, request))).await?;
        Ok(ProtoJson(reply))
    }

    /// Follow the log: events from `from_seq` (0 or 1: from the first), then live, one JSON
    /// object per line.
    #[oai(
        path = "/v1/events/watch",
        method = "get",
        tag = "Tag::EventLogService",
        operation_id = "EventLogService_WatchEvents"
    )]
    async fn watch_events(
        &self,
        req: &Request,
        /// Catch up from this sequence number.
        #[oai(name = "from_seq")]
        _from_seq: Query<Option<u64>>,
        /// Only events of this pipeline, connector or processor.
        #[oai(name = "entity_id")]
        _entity_id: Query<Option<String>>,
        /// Only events of this type.
        #[oai(name = "type")]
        _type: Query<Option<String>>,
    ) -> Result<LineStream<ev::Event>, ApiError> {
        let request = ev::WatchEventsRequest {
            from_seq: param(req, &["from_seq", "fromSeq"])?,
            entity_id: param(req, &["entity_id", "entityId"])?,
            r#type: param(req, &["type"])?,
        };
        Ok(
            open_stream(self.api.watch_events(grpc_request(req, request)), |m| {
                m.event
            })
            .await,
        )
    }

    /// A pipeline, connector or processor as it was after a sequence number or at a time.
    #[oai(
        path = "/v1/events/at/:entity_id",
        method = "get",
        tag = "Tag::EventLogService",
        operation_id = "EventLogService_GetAt"
    )]
    async fn get_at(
        &self,
        req: &Request,
        entity_id: Path<String>,
        /// As of this sequence number (inclusive).
        #[oai(name = "seq")]
        _seq: Query<Option<u64>>,
        /// As of this time (RFC 3339), when no seq is given.
        #[oai(name = "time")]
        _time: Query<Option<String>>,
    ) -> Reply<ev::GetAtResponse> {
        let request = ev::GetAtRequest {
            entity_id: entity_id.0,
            seq: param(req, &["seq"])?,
            time: time_param(req, &["time"])?,
        };
        let reply = call(self.api.get_at(grpc_request(req, request))).await?;
        Ok(ProtoJson(reply))
    }

    /// The fields of a pipeline, connector or processor that differ between two points.
    #[oai(
        path = "/v1/events/diff/:entity_id",
        method = "get",
        tag = "Tag::EventLogService",
        operation_id = "EventLogService_Diff"
    )]
    async fn diff(
        &self,
        req: &Request,
        entity_id: Path<String>,
        /// From the state after this sequence number (0: before the first event).
        #[oai(name = "from_seq")]
        _from_seq: Query<Option<u64>>,
        /// To the state after this sequence number (0: now).
        #[oai(name = "to_seq")]
        _to_seq: Query<Option<u64>>,
    ) -> Reply<ev::DiffResponse> {
        let request = ev::DiffRequest {
            entity_id: entity_id.0,
            from_seq: param(req, &["from_seq", "fromSeq"])?,
            to_seq: param(req, &["to_seq", "toSeq"])?,
        };
        let reply = call(self.api.diff(grpc_request(req, request))).await?;
        Ok(ProtoJson(reply))
    }

    /// Restore an entity's configuration as of a sequence number or a time, by appending
    /// the events that do so (`dryRun`: only answer what would change).
    #[oai(
        path = "/v1/events/revert/:entity_id",
        method = "post",
        tag = "Tag::EventLogService",
        operation_id = "EventLogService_Revert"
    )]
    async fn revert(
        &self,
        req: &Request,
        entity_id: Path<String>,
        body: ProtoJson<ev::RevertRequest>,
    ) -> Reply<ev::RevertResponse> {
        let mut request = body.0;
        request.entity_id = entity_id.0;
        let reply = call(self.api.revert(grpc_request(req, request))).await?;
        Ok(ProtoJson(reply))
    }
}
