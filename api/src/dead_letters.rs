//! `culvert.api.v1.DeadLetterService`: the dead letters a pipeline's DLQ took, kept in the
//! server's store (see `culvert_store::letters`), listed, inspected and re-injected.
//!
//! A re-injection is a command like any other: it records a `DeadLettersReinjected` event
//! (actor, time, reason, the letters) in the same atomic write that queues the letters, so
//! the audit and the effect never disagree. The running pipeline (or its next run) sends
//! each queued record in again from where it failed; the letter goes when every
//! destination has it.

use crate::error::{invalid, status_with_info};
use crate::grpc::{context, not_found, require_id, write};
use crate::pb::culvert::api::v1 as pp;
use crate::Api;
use culvert_domain::dead_letter::{DeadLetter, Stage};
use culvert_domain::{Command, EntityKind, PipelineId};
use culvert_store::{DeadLetterStore, StoredLetter};
use pp::dead_letter_service_server::DeadLetterService;
use std::sync::Arc;
use tonic::{Code, Request, Response, Status};

/// Letters a list returns when the caller names no limit.
const DEFAULT_LIMIT: usize = 100;
/// The most letters one list returns.
const MAX_LIMIT: usize = 1_000;

impl Api {
    fn letter_store(&self) -> Result<Arc<dyn DeadLetterStore>, Status> {
        self.letters.clone().ok_or_else(|| {
            Status::unimplemented("this server keeps no dead letters (no dead-letter store)")
        })
    }

    /// Check that pipeline `id` exists.
    fn existing_pipeline(&self, id: &str) -> Result<(), Status> {
        require_id(id).map_err(|_| invalid("pipeline_id", "empty ID"))?;
        let state = self.writer().projections().read();
        state
            .pipeline(&PipelineId(id.to_owned()))
            .map(|_| ())
            .ok_or_else(|| not_found(EntityKind::Pipeline, id))
    }
}

/// Run a blocking store read off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("read task failed: {e}")))?
}

fn internal(error: culvert_store::StoreError) -> Status {
    Status::internal(error.to_string())
}

/// A stored letter as the API shows it.
fn letter(pipeline: &str, stored: StoredLetter) -> Result<pp::DeadLetter, Status> {
    let letter = DeadLetter::decode(&stored.payload).map_err(|e| {
        Status::internal(format!(
            "dead letter {} of pipeline {pipeline} does not decode: {e}",
            stored.seq
        ))
    })?;
    let stage = match &letter.stage {
        Stage::Source { connector } => format!("source:{connector}"),
        Stage::Pipeline => "pipeline".to_owned(),
        Stage::Destination { connector } => format!("destination:{connector}"),
    };
    let position = letter.record.position.0.clone();
    Ok(pp::DeadLetter {
        pipeline_id: pipeline.to_owned(),
        seq: stored.seq,
        kept_at: Some(crate::convert::timestamp(stored.at)),
        error: letter.error,
        node_id: letter.node,
        stage,
        processor_id: letter.processor.unwrap_or_default(),
        position_text: std::str::from_utf8(&position)
            .unwrap_or_default()
            .to_owned(),
        position,
        queued: stored.queued,
        record: Some(crate::inspect::record(&letter.record)),
    })
}

fn letter_not_found(pipeline: &str, seqs: &[u64]) -> Status {
    let list = seqs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    status_with_info(
        Code::NotFound,
        format!(
            "dead letter(s) {list} of pipeline {pipeline} are not kept: delivered after a \
             re-injection, dropped past the size or age limits, or never taken; list them \
             with ListDeadLetters"
        ),
        "dead_letter.not_found",
        &[("pipeline_id", pipeline), ("seq", &list)],
    )
}

#[tonic::async_trait]
impl DeadLetterService for Api {
    async fn list_dead_letters(
        &self,
        request: Request<pp::ListDeadLettersRequest>,
    ) -> Result<Response<pp::ListDeadLettersResponse>, Status> {
        let store = self.letter_store()?;
        let req = request.into_inner();
        self.existing_pipeline(&req.pipeline_id)?;
        let limit = match req.limit as usize {
            0 => DEFAULT_LIMIT,
            n if n > MAX_LIMIT => {
                return Err(invalid(
                    "limit",
                    &format!("at most {MAX_LIMIT} letters a page"),
                ))
            }
            n => n,
        };
        let pipeline = req.pipeline_id;
        let after = req.after;
        blocking(move || {
            // One more than asked, to know whether a next page exists.
            let mut stored = store
                .letters(&pipeline, after, limit + 1)
                .map_err(internal)?;
            let more = stored.len() > limit;
            stored.truncate(limit);
            let next_after = if more {
                stored.last().map_or(0, |l| l.seq)
            } else {
                0
            };
            let letters = stored
                .into_iter()
                .map(|s| letter(&pipeline, s))
                .collect::<Result<_, _>>()?;
            Ok(Response::new(pp::ListDeadLettersResponse {
                letters,
                next_after,
            }))
        })
        .await
    }

    async fn get_dead_letter(
        &self,
        request: Request<pp::GetDeadLetterRequest>,
    ) -> Result<Response<pp::DeadLetter>, Status> {
        let store = self.letter_store()?;
        let req = request.into_inner();
        self.existing_pipeline(&req.pipeline_id)?;
        if req.seq == 0 {
            return Err(invalid("seq", "letters are numbered from 1"));
        }
        let (pipeline, seq) = (req.pipeline_id, req.seq);
        blocking(move || {
            let stored = store
                .letter(&pipeline, seq)
                .map_err(internal)?
                .ok_or_else(|| letter_not_found(&pipeline, &[seq]))?;
            letter(&pipeline, stored).map(Response::new)
        })
        .await
    }

    async fn reinject_dead_letters(
        &self,
        request: Request<pp::ReinjectDeadLettersRequest>,
    ) -> Result<Response<pp::ReinjectDeadLettersResponse>, Status> {
        let store = self.letter_store()?;
        let ctx = context(&request)?;
        let req = request.into_inner();
        self.existing_pipeline(&req.pipeline_id)?;
        match (req.all, req.seqs.is_empty()) {
            (true, false) => {
                return Err(invalid(
                    "seqs",
                    "name letters or ask for all of them, not both",
                ))
            }
            (false, true) => {
                return Err(invalid(
                    "seqs",
                    "name at least one letter (or set all to re-inject every one)",
                ))
            }
            _ => {}
        }
        let pipeline = req.pipeline_id.clone();
        let (all, named) = (req.all, req.seqs);
        let letters = blocking(move || {
            if all {
                // Every kept letter not queued yet (the store bounds how many there are).
                let mut letters = Vec::new();
                let mut after = 0;
                loop {
                    let page = store.letters(&pipeline, after, 1_000).map_err(internal)?;
                    let Some(last) = page.last() else { break };
                    after = last.seq;
                    letters.extend(page.iter().filter(|l| !l.queued).map(|l| l.seq));
                }
                if letters.is_empty() {
                    return Err(status_with_info(
                        Code::FailedPrecondition,
                        format!(
                            "pipeline {pipeline} has no dead letters waiting to be \
                             re-injected; there is nothing to do (ListDeadLetters shows them)"
                        ),
                        "dead_letter.none",
                        &[("pipeline_id", &pipeline)],
                    ));
                }
                return Ok(letters);
            }
            let mut missing = Vec::new();
            for seq in &named {
                if store.letter(&pipeline, *seq).map_err(internal)?.is_none() {
                    missing.push(*seq);
                }
            }
            if !missing.is_empty() {
                return Err(letter_not_found(&pipeline, &missing));
            }
            Ok(named)
        })
        .await?;
        let writer = self.writer().clone();
        let command = Command::ReinjectDeadLetters {
            id: PipelineId(req.pipeline_id),
            letters,
        };
        let recorded = write(move || writer.execute(&ctx, &command, None)).await?;
        let (queued, event_seq) = recorded
            .iter()
            .find_map(|e| match &e.event {
                culvert_domain::Event::DeadLettersReinjected { letters, .. } => {
                    Some((letters.clone(), e.seq.0))
                }
                _ => None,
            })
            .unwrap_or_default();
        Ok(Response::new(pp::ReinjectDeadLettersResponse {
            queued,
            event_seq,
        }))
    }
}
