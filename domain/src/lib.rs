//! The domain layer of Culvert's control plane.
//!
//! This crate owns everything about pipelines, connectors and processors that needs no I/O:
//! the entity types, the [`Command`]s a user (or the engine) can issue, the [`Event`]s that
//! record what happened, and the two pure functions of an event-sourced model:
//!
//! * [`ControlPlane::decide`] checks a command against the current state and returns the
//!   events it produces, or a [`DomainError`] naming the field and the problem;
//! * [`ControlPlane::evolve`] folds one recorded event into the state.
//!
//! The state is the whole control plane (all pipelines, connectors and processors), because
//! several invariants span entities: pipeline names are unique, a connector can only be
//! added to a pipeline that is not running, a pipeline with connectors cannot be deleted.
//!
//! This crate must not do I/O, spawn tasks, read clocks or generate ids: times come with the
//! recorded events and ids come with the commands, so `decide` and `evolve` are
//! deterministic and testable as given/when/then.
//!
//! It also owns the data-plane's one shared type, the OpenCDC [`opencdc::Record`], with
//! Conduit's JSON form.

mod command;
pub mod dead_letter;
mod error;
mod event;
mod ids;
mod metadata_map;
mod model;
pub mod opencdc;
pub mod schema;
mod state;
mod structured;

pub use command::{Command, PositionChange, ResealTarget};
pub use error::{DomainError, EntityKind, ErrorKind};
pub use event::{Event, EventMeta, RecordedEvent};
pub use ids::{ConnectorId, PipelineId, ProcessorId, Seq, StreamId};
pub use model::{
    Connector, ConnectorType, DeadLetterQueue, Pipeline, PipelineStatus, Processor,
    ProcessorParent, Settings, StoppedReason,
};
pub use opencdc::{Change, Data, Metadata, Operation, Position, Record, Structured};
pub use schema::{RegisteredSchema, SchemaType};
pub use state::{evolve, ControlPlane, LIMITS};

/// Go's `strconv.ParseBool`: `1 t T TRUE true True` are true, `0 f F FALSE false False`
/// are false, anything else is `None`. Conduit reads boolean settings and processor
/// conditions with it.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}
