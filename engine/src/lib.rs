//! The pipeline engine.
//!
//! A running pipeline is a graph of tokio tasks joined by bounded channels carrying
//! batches of OpenCDC records (see ARCHITECTURE.md, "Engine"). It has:
//!
//! * [`acker::Acker`]: the ordered-ack bookkeeping of one source. Records are tracked in the
//!   order the source produced them; each destination (or a processor that drops the record)
//!   acks it; only the newest position whose every earlier record is fully acked may be
//!   persisted and acked to the source. That is what makes a restart resume from a position
//!   never past an unacked record (data-integrity invariants 1 and 2).
//! * [`run()`]: one pipeline's sources, processors, fan-out, destinations and acker as tokio
//!   tasks joined by bounded channels; stop drains, an error cancels every node at once;
//! * processors: a source's own, the pipeline's and a destination's own run in order on
//!   every batch; a dropped record is acked; a failed one goes to the [`dlq`] (and is then
//!   acked) within its tolerance, else it stops the pipeline.
//!
//! * [`inspect`]: the stream inspector's sessions, fed once per batch by the nodes.
//! * [`metrics`]: the Prometheus registry and the handles nodes update once per batch.
//!
//! The subscriber that starts and stops engines on the control plane's events lives in the
//! server binary (`src/supervisor.rs`).

pub mod acker;
pub mod dlq;
pub mod inspect;
pub mod metrics;
pub mod process;
pub mod run;

pub use dlq::DeadLetterNode;
pub use inspect::Inspectors;
pub use metrics::{Metrics, PipelineMetrics};
pub use run::{
    run, run_observed, run_with_metrics, DestinationNode, EngineError, Graph, Options, Positions,
    ProcessorNode, SourceNode,
};
