//! The pipeline engine.
//!
//! A running pipeline is a graph of tokio tasks joined by bounded channels carrying
//! batches of OpenCDC records (see ARCHITECTURE.md, "Engine"). This crate is being built
//! bottom-up; what is here so far:
//!
//! * [`acker::Acker`]: the ordered-ack bookkeeping of one source. Records are tracked in the
//!   order the source produced them; each destination (or a processor that drops the record)
//!   acks it; only the newest position whose every earlier record is fully acked may be
//!   persisted and acked to the source. That is what makes a restart resume from a position
//!   never past an unacked record (data-integrity invariants 1 and 2).
//! * [`run()`]: one pipeline's sources, fan-in, fan-out, destinations and acker as tokio
//!   tasks joined by bounded channels; stop drains, an error cancels every node at once.
//!
//! Still to come: processors in the graph, the subscriber that starts and stops pipelines
//! on the control plane's events, and restart with backoff.

pub mod acker;
pub mod run;

pub use run::{run, DestinationNode, EngineError, Options, Positions, SourceNode};
