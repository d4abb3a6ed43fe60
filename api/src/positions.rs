//! `culvert.api.v1.SourcePositionService`: read a source connector's position and its
//! sampled checkpoints, and move a stopped pipeline's source — to a given position, to the
//! newest checkpoint at or before a time (a seek), or to the beginning (a reset).
//!
//! A move is a command like any other: the domain refuses it for a destination or while
//! the pipeline runs (FAILED_PRECONDITION), and records a `SourcePositionSet` event (actor,
//! time, reason, old and new position) in the same atomic write that stores the new
//! position, so the audit and the effect never disagree. The old position is read first and
//! the connector's version checked on the write, so two concurrent moves cannot both record
//! the same "old": the loser gets ABORTED and changes nothing.

use crate::error::invalid;
use crate::grpc::{context, not_found, require_id, write};
use crate::pb::culvert::api::v1 as pp;
use crate::Api;
use culvert_commands::CommandError;
use culvert_domain::{
    Command, ConnectorId, ConnectorType, EntityKind, Position, PositionChange, StreamId,
};
use culvert_store::{checkpoints, PositionStore, POSITION_SLOT};
use pp::set_source_position_request::Target;
use pp::source_position_service_server::SourcePositionService;
use std::sync::Arc;
use tonic::{Code, Request, Response, Status};

/// Text of a position when it is UTF-8, else empty.
fn text(bytes: &[u8]) -> String {
    std::str::from_utf8(bytes).unwrap_or_default().to_owned()
}

impl Api {
    fn position_store(&self) -> Result<Arc<dyn PositionStore>, Status> {
        self.positions.clone().ok_or_else(|| {
            Status::unimplemented("this server keeps no source positions (no position store)")
        })
    }

    /// The source connector `id` (its version), or why not.
    fn source_version(&self, id: &str) -> Result<u64, Status> {
        require_id(id).map_err(|_| invalid("connector_id", "empty ID"))?;
        let state = self.writer().projections().read();
        let connector = state
            .connector(&ConnectorId(id.to_owned()))
            .ok_or_else(|| not_found(EntityKind::Connector, id))?;
        if connector.connector_type != ConnectorType::Source {
            return Err(invalid(
                "connector_id",
                &format!("connector {id} is a destination; only sources have positions"),
            ));
        }
        Ok(connector.version)
    }
}

/// The position of `id` as the API shows it.
fn read_position(
    store: &dyn PositionStore,
    id: &str,
    version: u64,
) -> Result<pp::SourcePosition, Status> {
    let internal = |e: culvert_store::StoreError| Status::internal(e.to_string());
    let position = store.get(id, POSITION_SLOT).map_err(internal)?;
    let checkpoints = checkpoints::load(store, id)
        .map_err(internal)?
        .into_iter()
        .map(|c| pp::PositionCheckpoint {
            at: Some(crate::convert::timestamp(c.at)),
            position_text: text(&c.position.0),
            position: c.position.0,
        })
        .collect();
    Ok(pp::SourcePosition {
        connector_id: id.to_owned(),
        has_position: position.is_some(),
        position_text: position.as_deref().map(text).unwrap_or_default(),
        position: position.unwrap_or_default(),
        checkpoints,
        version,
    })
}

#[tonic::async_trait]
impl SourcePositionService for Api {
    async fn get_source_position(
        &self,
        request: Request<pp::GetSourcePositionRequest>,
    ) -> Result<Response<pp::SourcePosition>, Status> {
        let store = self.position_store()?;
        let id = request.into_inner().connector_id;
        let version = self.source_version(&id)?;
        let position = tokio::task::spawn_blocking(move || read_position(&*store, &id, version))
            .await
            .map_err(|e| Status::internal(format!("read task failed: {e}")))??;
        Ok(Response::new(position))
    }

    async fn set_source_position(
        &self,
        request: Request<pp::SetSourcePositionRequest>,
    ) -> Result<Response<pp::SetSourcePositionResponse>, Status> {
        let store = self.position_store()?;
        let ctx = context(&request)?;
        let req = request.into_inner();
        let id = req.connector_id;
        let version = self.source_version(&id)?;
        if req.expected_version != 0 && req.expected_version != version {
            return Err(crate::error::status_with_info(
                Code::Aborted,
                format!(
                    "connector {id} is at version {version}, not the expected {}; read it \
                     again and retry with its current version",
                    req.expected_version
                ),
                "common.conflict",
                &[],
            ));
        }
        let target = req.target.ok_or_else(|| {
            invalid(
                "target",
                "say where to move: a position, reset, or checkpoint_at",
            )
        })?;
        let writer = self.writer().clone();
        let (recorded, id) = write(move || {
            let old = store
                .get(&id, POSITION_SLOT)
                .map_err(CommandError::Store)?
                .map(Position);
            let (new, how) = match target {
                Target::Position(bytes) if bytes.is_empty() => {
                    return Err(invalid_position(
                        "position",
                        "empty; use reset to start over",
                    ));
                }
                Target::Position(bytes) => (Some(Position(bytes)), "set".to_owned()),
                Target::Reset(true) => (None, "reset".to_owned()),
                Target::Reset(false) => {
                    return Err(invalid_position("reset", "must be true when given"));
                }
                Target::CheckpointAt(at) => {
                    let time = chrono::DateTime::from_timestamp(at.seconds, at.nanos.max(0) as u32)
                        .ok_or_else(|| invalid_position("checkpoint_at", "not a valid time"))?;
                    let kept = checkpoints::load(&*store, &id).map_err(CommandError::Store)?;
                    let checkpoint = checkpoints::at_or_before(&kept, time).ok_or_else(|| {
                        invalid_position(
                            "checkpoint_at",
                            &match kept.first() {
                                Some(first) => format!(
                                    "no checkpoint at or before {}; the oldest kept is {}",
                                    time.to_rfc3339(),
                                    first.at.to_rfc3339()
                                ),
                                None => "this source has no checkpoints yet (it has not \
                                             run since the server started)"
                                    .to_owned(),
                            },
                        )
                    })?;
                    (
                        Some(checkpoint.position.clone()),
                        format!("checkpoint:{}", checkpoint.at.to_rfc3339()),
                    )
                }
            };
            let command = Command::SetSourcePosition {
                id: ConnectorId(id.clone()),
                change: PositionChange { old, new, how },
            };
            // The version read above: a move in between (which changed "old") aborts this one.
            let expected = Some((StreamId::connector(&ConnectorId(id.clone())), version));
            writer
                .execute(&ctx, &command, expected)
                .map(|recorded| (recorded, id))
        })
        .await?;
        let seq = recorded.last().map_or(0, |e| e.seq.0);
        let version = self.source_version(&id)?;
        let store = self.position_store()?;
        let position = tokio::task::spawn_blocking(move || read_position(&*store, &id, version))
            .await
            .map_err(|e| Status::internal(format!("read task failed: {e}")))??;
        Ok(Response::new(pp::SetSourcePositionResponse {
            position: Some(position),
            seq,
        }))
    }
}

/// A bad target, as a domain error naming the field (INVALID_ARGUMENT through the one
/// mapping).
fn invalid_position(field: &'static str, reason: &str) -> CommandError {
    CommandError::Domain(culvert_domain::DomainError::InvalidArgument {
        entity: EntityKind::Connector,
        field,
        reason: reason.to_owned(),
    })
}
