//! `culvert.api.v1.EventLogService`: the control plane's event log over the API — listing
//! with filters and pages, a change feed that catches up then follows live without missing
//! an event, an entity as of a sequence number or a time, and the fields that changed
//! between two points.
//!
//! Nothing here shows a secret: the settings inside event data, entities as of a point and
//! the fields of a diff go through the API's [`Redactor`] (sealed and sensitive values
//! `***`, keys kept).

use crate::error::{invalid, status_with_info};
use crate::pb::culvert::api::v1 as ev;
use crate::redact::Redactor;
use crate::{convert, Api};
use culvert_domain::{ConnectorId, ControlPlane, PipelineId, ProcessorId, Seq, StreamId};
use culvert_projections::history::entity_json;
use culvert_projections::Projections;
use culvert_store::{EventLog, StoredEvent};
use ev::event_log_service_server::EventLogService;
use std::sync::Arc;
use tonic::codegen::BoxStream;
use tonic::{Code, Request, Response, Status};

/// Events read from the log at a time.
const CHUNK: usize = 512;
/// The default and the largest page of ListEvents.
const PAGE: (usize, usize) = (100, 1000);
/// Most events one ListEvents call looks at: a filter that keeps few events answers with a
/// short (even empty) page and a `next_page_token` to go on from, rather than scanning the
/// whole log in one call.
pub(crate) const LIST_SCAN_LIMIT: usize = 100_000;

fn internal(error: impl std::fmt::Display) -> Status {
    Status::internal(error.to_string())
}

/// A stored event as the API shows it (data upcast to the current schema), its settings
/// redacted; an event that does not name its plugin is redacted with the plugin the entity
/// has in the read model (`projections`).
fn event(
    stored: &StoredEvent,
    redactor: &Redactor,
    projections: &Projections,
) -> Result<ev::Event, Status> {
    let mut recorded = culvert_migrations::decode(stored).map_err(internal)?;
    redactor.event(&mut recorded.event, Some(&projections.read()));
    let mut value = serde_json::to_value(&recorded.event).map_err(internal)?;
    let data = value
        .get_mut("data")
        .map(serde_json::Value::take)
        .unwrap_or(serde_json::Value::Null);
    let data = match data {
        serde_json::Value::Object(_) => Some(serde_json::from_value(data).map_err(internal)?),
        _ => None,
    };
    Ok(ev::Event {
        seq: stored.seq.0,
        stream: stored.stream.as_str().to_owned(),
        stream_version: stored.stream_version,
        r#type: stored.event_type.clone(),
        schema_version: stored.schema_version,
        recorded_at: Some(convert::timestamp(stored.recorded_at)),
        actor: stored.actor.clone(),
        correlation_id: stored.correlation_id.clone(),
        causation_id: stored.causation_id.clone().unwrap_or_default(),
        data,
        reason: stored.reason.clone().unwrap_or_default(),
    })
}

fn entity_of(stream: &StreamId) -> &str {
    stream
        .as_str()
        .split_once('/')
        .map_or(stream.as_str(), |(_, id)| id)
}

fn time(ts: Option<crate::wkt::Timestamp>) -> Option<chrono::DateTime<chrono::Utc>> {
    ts.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

/// Filters common to listing and watching.
#[derive(Clone)]
struct Filter {
    entity: String,
    event_type: String,
    actor: String,
    since: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
}

impl Filter {
    fn keeps(&self, e: &StoredEvent) -> bool {
        (self.entity.is_empty() || entity_of(&e.stream) == self.entity)
            && (self.event_type.is_empty() || e.event_type == self.event_type)
            && (self.actor.is_empty() || e.actor == self.actor)
            && self.since.is_none_or(|t| e.recorded_at >= t)
            && self.until.is_none_or(|t| e.recorded_at <= t)
    }
}

fn past_end(field: &str, seq: u64, head: Seq) -> Status {
    status_with_info(
        Code::OutOfRange,
        format!(
            "{field}: sequence {seq} is past the end of the log (last event {})",
            head.0
        ),
        "events.past_end",
        &[("field", field)],
    )
}

/// The state as of a sequence number or a time, on a blocking thread.
async fn fold(
    log: Arc<dyn EventLog>,
    seq: u64,
    at: Option<crate::wkt::Timestamp>,
) -> Result<ControlPlane, Status> {
    let head = log.head();
    let at = time(at);
    if seq > head.0 {
        return Err(past_end("seq", seq, head));
    }
    tokio::task::spawn_blocking(move || {
        if seq > 0 || at.is_none() {
            let until = if seq == 0 { head } else { Seq(seq) };
            return culvert_projections::fold_to(log.as_ref(), until).map_err(internal);
        }
        let at = at.expect("checked above");
        let first = log.read_from(Seq(1), 1).map_err(internal)?;
        if let Some(first) = first.first().filter(|e| e.recorded_at > at) {
            return Err(status_with_info(
                Code::OutOfRange,
                format!(
                    "time: {} is before the first event ({})",
                    at.to_rfc3339(),
                    first.recorded_at.to_rfc3339()
                ),
                "events.before_first",
                &[("field", "time")],
            ));
        }
        culvert_projections::fold_to_time(log.as_ref(), at).map_err(internal)
    })
    .await
    .map_err(internal)?
}

#[tonic::async_trait]
impl EventLogService for Api {
    async fn list_events(
        &self,
        request: Request<ev::ListEventsRequest>,
    ) -> Result<Response<ev::ListEventsResponse>, Status> {
        let req = request.into_inner();
        let log = self.writer().log().clone();
        let head = log.head();
        let page = match req.page_size {
            n if n < 0 => return Err(invalid("page_size", "must not be negative")),
            0 => PAGE.0,
            n => (n as usize).min(PAGE.1),
        };
        let mut from = req.from_seq.max(1);
        if !req.page_token.is_empty() {
            from = req
                .page_token
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| invalid("page_token", "not a token this API gave"))?;
        }
        if req.from_seq > head.0 + 1 {
            return Err(past_end("from_seq", req.from_seq, head));
        }
        let to = if req.to_seq == 0 {
            head.0
        } else {
            req.to_seq.min(head.0)
        };
        let filter = Filter {
            entity: req.entity_id,
            event_type: req.r#type,
            actor: req.actor,
            since: time(req.since),
            until: time(req.until),
        };
        let scan_limit = self.list_scan_limit.max(1);
        let redactor = self.default_redactor().clone();
        let projections = self.writer().projections().clone();
        let (events, next) = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut next = from;
            let mut scanned = 0;
            while next <= to && out.len() < page && scanned < scan_limit {
                let chunk = log
                    .read_from(Seq(next), CHUNK.min(scan_limit - scanned))
                    .map_err(internal)?;
                if chunk.is_empty() {
                    break;
                }
                for stored in &chunk {
                    if stored.seq.0 > to || out.len() == page {
                        break;
                    }
                    next = stored.seq.0 + 1;
                    scanned += 1;
                    if filter.keeps(stored) {
                        out.push(event(stored, &redactor, &projections)?);
                    }
                }
            }
            Ok::<_, Status>((out, next))
        })
        .await
        .map_err(internal)??;
        let next_page_token = if next <= to {
            next.to_string()
        } else {
            String::new()
        };
        Ok(Response::new(ev::ListEventsResponse {
            events,
            next_page_token,
            last_seq: head.0,
        }))
    }

    type WatchEventsStream = BoxStream<ev::WatchEventsResponse>;

    async fn watch_events(
        &self,
        request: Request<ev::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let req = request.into_inner();
        let log = self.writer().log().clone();
        let head = log.head();
        if req.from_seq > head.0 + 1 {
            return Err(past_end("from_seq", req.from_seq, head));
        }
        let filter = Filter {
            entity: req.entity_id,
            event_type: req.r#type,
            actor: String::new(),
            since: None,
            until: None,
        };
        let mut shutdown = self.shutdown();
        let redactor = self.default_redactor().clone();
        let projections = self.writer().projections().clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<ev::WatchEventsResponse, Status>>(64);
        let mut appended = log.watch_head();
        let mut next = req.from_seq.max(1);
        tokio::spawn(async move {
            loop {
                // Mark the head seen before reading: an append after this read wakes us.
                appended.borrow_and_update();
                let reader = log.clone();
                let chunk =
                    match tokio::task::spawn_blocking(move || reader.read_from(Seq(next), CHUNK))
                        .await
                    {
                        Ok(Ok(chunk)) => chunk,
                        Ok(Err(e)) => {
                            let _ = tx.send(Err(internal(e))).await;
                            return;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(internal(e))).await;
                            return;
                        }
                    };
                if chunk.is_empty() {
                    tokio::select! {
                        changed = appended.changed() => if changed.is_err() { return },
                        _ = tx.closed() => return,
                        _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
                    }
                    continue;
                }
                for stored in &chunk {
                    next = stored.seq.0 + 1;
                    if !filter.keeps(stored) {
                        continue;
                    }
                    let message = event(stored, &redactor, &projections)
                        .map(|e| ev::WatchEventsResponse { event: Some(e) });
                    let failed = message.is_err();
                    if tx.send(message).await.is_err() || failed {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn get_at(
        &self,
        request: Request<ev::GetAtRequest>,
    ) -> Result<Response<ev::GetAtResponse>, Status> {
        let req = request.into_inner();
        if req.entity_id.is_empty() {
            return Err(invalid("entity_id", "must not be empty"));
        }
        let state = fold(self.writer().log().clone(), req.seq, req.time).await?;
        let id = req.entity_id;
        let redactor = self.default_redactor();
        let entity = if let Some(p) = state.pipeline(&PipelineId(id.clone())) {
            ev::get_at_response::Entity::Pipeline(convert::pipeline(p))
        } else if let Some(c) = state.connector(&ConnectorId(id.clone())) {
            ev::get_at_response::Entity::Connector(convert::connector(c, redactor))
        } else if let Some(p) = state.processor(&ProcessorId(id.clone())) {
            ev::get_at_response::Entity::Processor(convert::processor(p, redactor))
        } else {
            return Err(status_with_info(
                Code::NotFound,
                format!(
                    "no pipeline, connector or processor {id:?} as of sequence {}; check the \
                     ID, or ask for a sequence when it existed (ListEvents shows its history)",
                    state.last_seq().0
                ),
                "events.entity_not_found",
                &[("field", "entity_id")],
            ));
        };
        Ok(Response::new(ev::GetAtResponse {
            as_of_seq: state.last_seq().0,
            entity: Some(entity),
        }))
    }

    async fn diff(
        &self,
        request: Request<ev::DiffRequest>,
    ) -> Result<Response<ev::DiffResponse>, Status> {
        let req = request.into_inner();
        if req.entity_id.is_empty() {
            return Err(invalid("entity_id", "must not be empty"));
        }
        let log = self.writer().log().clone();
        let head = log.head();
        for (field, seq) in [("from_seq", req.from_seq), ("to_seq", req.to_seq)] {
            if seq > head.0 {
                return Err(past_end(field, seq, head));
            }
        }
        let to = if req.to_seq == 0 { head.0 } else { req.to_seq };
        if req.from_seq > to {
            return Err(invalid("from_seq", "must not be after to_seq"));
        }
        let id = req.entity_id;
        let from = req.from_seq;
        let (before, after) = tokio::task::spawn_blocking(move || {
            let before = culvert_projections::fold_to(log.as_ref(), Seq(from)).map_err(internal)?;
            let after = culvert_projections::fold_to(log.as_ref(), Seq(to)).map_err(internal)?;
            Ok::<_, Status>((entity_json(&before, &id), entity_json(&after, &id)))
        })
        .await
        .map_err(internal)??;
        if before.is_none() && after.is_none() {
            return Err(status_with_info(
                Code::NotFound,
                "no such pipeline, connector or processor at either point; check the ID \
                 and the sequence numbers (ListEvents shows its history)"
                    .to_owned(),
                "events.entity_not_found",
                &[("field", "entity_id")],
            ));
        }
        let json = |v: Option<serde_json::Value>| v.map(|v| v.to_string()).unwrap_or_default();
        Ok(Response::new(ev::DiffResponse {
            from_seq: from,
            to_seq: to,
            changes: self
                .default_redactor()
                .field_changes(before.as_ref(), after.as_ref())
                .into_iter()
                .map(|c| ev::FieldChange {
                    field: c.field,
                    before: json(c.before),
                    after: json(c.after),
                })
                .collect(),
        }))
    }

    async fn revert(
        &self,
        request: Request<ev::RevertRequest>,
    ) -> Result<Response<ev::RevertResponse>, Status> {
        let mut ctx = crate::grpc::context(&request)?;
        let req = request.into_inner();
        if req.entity_id.is_empty() {
            return Err(invalid("entity_id", "must not be empty"));
        }
        if req.seq == 0 && req.time.is_none() {
            return Err(invalid(
                "seq",
                "give the sequence number or the time to revert to",
            ));
        }
        let past = fold(self.writer().log().clone(), req.seq, req.time).await?;
        let as_of = past.last_seq().0;
        let id = req.entity_id;
        let (command, stream, before, after) = {
            let now = self.writer().projections().read();
            revert_command(&now, &past, &id)?
        };
        let changes: Vec<ev::FieldChange> = self
            .default_redactor()
            .field_changes(Some(&before), Some(&after))
            .into_iter()
            .map(|c| ev::FieldChange {
                field: c.field,
                before: c.before.map(|v| v.to_string()).unwrap_or_default(),
                after: c.after.map(|v| v.to_string()).unwrap_or_default(),
            })
            .collect();
        if req.dry_run || changes.is_empty() {
            return Ok(Response::new(ev::RevertResponse {
                as_of_seq: as_of,
                changes,
                last_seq: 0,
            }));
        }
        if ctx.reason.is_none() {
            ctx.reason = Some(format!("revert to seq {as_of}"));
        }
        let expected = (req.expected_version != 0).then_some((stream, req.expected_version));
        let writer = self.writer().clone();
        let recorded = crate::grpc::write(move || writer.execute(&ctx, &command, expected)).await?;
        Ok(Response::new(ev::RevertResponse {
            as_of_seq: as_of,
            changes,
            last_seq: recorded.last().map_or(0, |e| e.seq.0),
        }))
    }
}

/// The command that gives entity `id` (as it is in `now`) the configuration it had in
/// `past`, its stream, and both configurations as JSON (for the answer's changes). Only
/// configuration is restored: name, description and dead-letter queue of a pipeline; name,
/// plugin and settings of a connector; plugin, settings and workers of a processor — not
/// which connectors and processors a pipeline has, nor its status.
fn revert_command(
    now: &ControlPlane,
    past: &ControlPlane,
    id: &str,
) -> Result<
    (
        culvert_domain::Command,
        StreamId,
        serde_json::Value,
        serde_json::Value,
    ),
    Status,
> {
    use culvert_domain::Command;
    use serde_json::json;
    let gone = |kind: &str| {
        status_with_info(
            Code::FailedPrecondition,
            format!(
                "{kind} {id} no longer exists; revert restores the configuration of an \
                 existing entity (recreate it, e.g. from an export)"
            ),
            "events.revert_deleted",
            &[("field", "entity_id")],
        )
    };
    if let Some(then) = past.pipeline(&PipelineId(id.to_owned())) {
        let current = now
            .pipeline(&PipelineId(id.to_owned()))
            .ok_or_else(|| gone("pipeline"))?;
        let config = |p: &culvert_domain::Pipeline| json!({"name": p.name, "description": p.description, "dlq": p.dlq});
        let pid = current.id.clone();
        let mut commands = Vec::new();
        if (&current.name, &current.description) != (&then.name, &then.description) {
            commands.push(Command::UpdatePipeline {
                id: pid.clone(),
                name: then.name.clone(),
                description: then.description.clone(),
            });
        }
        if current.dlq != then.dlq {
            commands.push(Command::UpdatePipelineDlq {
                id: pid.clone(),
                dlq: then.dlq.clone(),
            });
        }
        // Both changes in one atomic batch (as ApplyPipeline records a document).
        let command = if commands.len() == 1 {
            commands.remove(0)
        } else {
            Command::Provision {
                pipeline: pid.clone(),
                file: None,
                commands,
            }
        };
        return Ok((
            command,
            StreamId::pipeline(&pid),
            config(current),
            config(then),
        ));
    }
    if let Some(then) = past.connector(&ConnectorId(id.to_owned())) {
        let current = now
            .connector(&ConnectorId(id.to_owned()))
            .ok_or_else(|| gone("connector"))?;
        let config = |c: &culvert_domain::Connector| json!({"name": c.name, "plugin": c.plugin, "settings": c.settings});
        let command = Command::UpdateConnector {
            id: current.id.clone(),
            name: then.name.clone(),
            settings: then.settings.clone(),
            plugin: Some(then.plugin.clone()),
        };
        return Ok((
            command,
            StreamId::connector(&current.id),
            config(current),
            config(then),
        ));
    }
    if let Some(then) = past.processor(&ProcessorId(id.to_owned())) {
        let current = now
            .processor(&ProcessorId(id.to_owned()))
            .ok_or_else(|| gone("processor"))?;
        let config = |p: &culvert_domain::Processor| json!({"plugin": p.plugin, "settings": p.settings, "workers": p.workers});
        let command = Command::UpdateProcessor {
            id: current.id.clone(),
            settings: then.settings.clone(),
            workers: i32::try_from(then.workers).unwrap_or(i32::MAX),
            plugin: Some(then.plugin.clone()),
        };
        return Ok((
            command,
            StreamId::processor(&current.id),
            config(current),
            config(then),
        ));
    }
    Err(status_with_info(
        Code::NotFound,
        format!(
            "no pipeline, connector or processor {id:?} as of sequence {}; check the ID, or \
             revert to a sequence when it existed (ListEvents shows its history)",
            past.last_seq().0
        ),
        "events.entity_not_found",
        &[("field", "entity_id")],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_commands::ControlPlaneWriter;
    use culvert_projections::{ProjectionOptions, Projections};
    use culvert_store::MemoryStore;

    #[tokio::test]
    async fn a_filter_that_keeps_nothing_answers_in_bounded_pages() {
        let log: Arc<dyn EventLog> = Arc::new(MemoryStore::new());
        let (projections, _) =
            Projections::open(log.as_ref(), ProjectionOptions::default()).unwrap();
        let writer = ControlPlaneWriter::new(log, Arc::new(projections));
        let pipelines = culvert_commands::PipelineOrchestrator::new(writer.clone());
        let ctx = culvert_commands::Context::new("test");
        for n in 0..25 {
            pipelines.create(&ctx, &format!("p{n}"), "").unwrap();
        }
        assert_eq!(writer.head(), Seq(25), "one event a pipeline");
        let mut api = Api::new(writer);
        api.list_scan_limit = 10;
        let mut token = String::new();
        let mut calls = Vec::new();
        loop {
            let page = api
                .list_events(Request::new(ev::ListEventsRequest {
                    actor: "nobody".to_owned(),
                    page_token: token,
                    ..ev::ListEventsRequest::default()
                }))
                .await
                .unwrap()
                .into_inner();
            assert!(page.events.is_empty());
            calls.push(page.next_page_token.clone());
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        // 25 events looked at 10 at a time: three calls, the first two saying where to go on.
        assert_eq!(calls, ["11", "21", ""]);
    }
}
