//! The stream inspector's RPCs: InspectConnector, InspectProcessorIn, InspectProcessorOut.
//!
//! As Conduit's: the entity must exist (else NOT_FOUND); the stream carries the records
//! the entity handles from then on, from a session with a bounded buffer that loses
//! records for itself when the client reads slowly (never slowing the pipeline); when the
//! entity is deleted or its pipeline stops, the buffered records are sent and the stream
//! ends with UNKNOWN "inspector session closed" (Conduit returns that plain error), with
//! why after a colon and in the status' ErrorInfo (`reason: inspector.closed`, metadata
//! `cause`: `deleted` or `stopped`).

use crate::error::status_with_info;
use crate::pb::opencdc::v1 as cdc;
use culvert_domain::Record;
use culvert_engine::inspect::{Closed, Session};
use tonic::codegen::BoxStream;
use tonic::{Code, Status};

/// A domain record as `opencdc.v1.Record`.
pub(crate) fn record(record: &Record) -> cdc::Record {
    use culvert_domain::Operation;
    let operation = match record.operation {
        Operation::Create => cdc::Operation::Create,
        Operation::Update => cdc::Operation::Update,
        Operation::Delete => cdc::Operation::Delete,
        Operation::Snapshot => cdc::Operation::Snapshot,
    };
    cdc::Record {
        position: record.position.0.clone(),
        operation: operation as i32,
        metadata: record.metadata.to_string_map(),
        key: data(record.key.as_ref()),
        payload: Some(cdc::Change {
            before: data(record.payload.before.as_ref()),
            after: data(record.payload.after.as_ref()),
        }),
    }
}

fn data(data: Option<&culvert_domain::Data>) -> Option<cdc::Data> {
    use cdc::data::Data as D;
    data.map(|d| cdc::Data {
        data: Some(match d {
            culvert_domain::Data::Raw(bytes) => D::RawData(bytes.clone()),
            culvert_domain::Data::Structured(map) => D::StructuredData(
                // pbjson's Struct reads plain JSON (a map always converts).
                serde_json::from_value(serde_json::Value::Object(map.as_map().clone()))
                    .unwrap_or_default(),
            ),
        }),
    })
}

/// The status a stream ends with when its session is closed.
fn closed(reason: Option<Closed>) -> Status {
    let (cause, why) = match reason {
        Some(Closed::Deleted) => ("deleted", "the entity was deleted"),
        Some(Closed::Stopped) => ("stopped", "its pipeline stopped"),
        Some(Closed::Shutdown) | None => ("shutdown", "the server is shutting down"),
    };
    status_with_info(
        Code::Unknown,
        format!("inspector session closed: {why}"),
        "inspector.closed",
        &[("cause", cause)],
    )
}

/// The stream of a session's records as `wrap` makes them into responses; it ends when the
/// session is closed (with [`closed`]'s status), when the client goes, or at shutdown.
pub(crate) fn stream<M: Send + 'static>(
    mut session: Session,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    wrap: fn(cdc::Record) -> M,
) -> BoxStream<M> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<M, Status>>(16);
    tokio::spawn(async move {
        loop {
            // Cancel-safety: `recv` takes a record only when it completes; losing the race to
            // a closed client or shutdown ends the session, whose records are its own copies.
            tokio::select! {
                biased;
                _ = tx.closed() => return,
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
                next = session.recv() => match next {
                    Some(r) => {
                        if tx.send(Ok(wrap(record(&r)))).await.is_err() {
                            return;
                        }
                    }
                    None => {
                        let _ = tx.send(Err(closed(session.closed()))).await;
                        return;
                    }
                },
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
