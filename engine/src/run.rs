//! Running one pipeline: sources, fan-in, fan-out, destinations and the acker as tokio tasks
//! joined by bounded channels.
//!
//! ```text
//! source 0 ─┐                  ┌─> destination 0 ─┐
//! source 1 ─┼─> fan-in ─> fan-out ─> destination 1 ─┼─> acker ─> positions, source acks
//!           ┘                  └─> ...            ─┘
//! ```
//!
//! * Each source task reads batches, registers every record with its source's [`Acker`]
//!   (before any destination can see it), and sends the batch on. The same task receives
//!   the positions the acker releases and acks them to the source, in order.
//! * The fan-out sends each batch (shared, not copied) to every destination; each
//!   destination writes it and reports the batch's tickets as written.
//! * The acker persists the newest position whose record and every earlier one every
//!   destination has written, then tells the source: a restart resumes from there.
//! * Stop drains: sources stop reading, every node finishes what it holds and closes its
//!   output, the last acks flow, sources tear down. An error in any node cancels every
//!   node at once without draining and is returned.

use crate::acker::{AckError, Acker, Ticket};
use culvert_domain::{Position, Record};
use culvert_plugins::{Destination, PluginError, Source};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Where positions are persisted (the store's position store, in production).
pub trait Positions: Send + Sync {
    /// The last persisted position of a source connector.
    fn load(&self, connector: &str) -> Result<Option<Position>, String>;
    /// Persist a source connector's position (durably, before the source is told).
    fn save(&self, connector: &str, position: &Position) -> Result<(), String>;
}

/// A source connector of a running pipeline.
pub struct SourceNode {
    /// The connector's id (the key of its position).
    pub id: String,
    /// The plugin instance.
    pub source: Box<dyn Source>,
}

/// A destination connector of a running pipeline.
pub struct DestinationNode {
    /// The connector's id.
    pub id: String,
    /// The plugin instance.
    pub destination: Box<dyn Destination>,
}

/// Engine settings.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Most records a source read returns in one batch.
    pub batch_size: usize,
    /// Batches a channel holds before its sender waits (backpressure).
    pub channel_capacity: usize,
}

impl Default for Options {
    fn default() -> Self {
        // Records in flight stay few (and memory and latency low): a batch on each channel
        // slot and in each node. Measured in benches/pipeline.rs.
        Self {
            batch_size: 512,
            channel_capacity: 2,
        }
    }
}

/// Why a pipeline stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A connector failed.
    #[error("{node}: {source}")]
    Plugin {
        /// Which node (`source <id>`, `destination <id>`).
        node: String,
        /// The plugin's error.
        #[source]
        source: PluginError,
    },
    /// Persisting or loading a position failed.
    #[error("positions of {connector}: {reason}")]
    Positions {
        /// The source connector.
        connector: String,
        /// What failed.
        reason: String,
    },
    /// The ack bookkeeping found a bug.
    #[error("acker: {0}")]
    Ack(#[from] AckError),
    /// The pipeline has no source or no destination.
    #[error("a pipeline needs at least one source and one destination")]
    Incomplete,
    /// A node task panicked or was lost.
    #[error("a pipeline node failed: {0}")]
    Task(String),
}

/// A batch of one source's records, with the ticket of the first.
struct Batch {
    source: usize,
    first: Ticket,
    records: Arc<Vec<Record>>,
}

/// A destination has written a batch.
struct Written {
    source: usize,
    first: Ticket,
    count: usize,
    destination: usize,
}

/// Completes once the flag is true or its sender is gone (holding no guard, so it can sit
/// in a `select!` beside awaits).
async fn raised(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|raised| *raised).await;
}

/// Run a pipeline until `stop` turns true or its sender is dropped (graceful: drain) or a
/// node fails (everything is cancelled at once and the error returned). Sources resume from
/// their persisted positions. `started` fires once every connector has opened.
pub async fn run(
    sources: Vec<SourceNode>,
    destinations: Vec<DestinationNode>,
    positions: Arc<dyn Positions>,
    options: Options,
    stop: watch::Receiver<bool>,
    started: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), EngineError> {
    if sources.is_empty() || destinations.is_empty() {
        return Err(EngineError::Incomplete);
    }
    // Every node says when it has opened its connector; once all have, `started` fires.
    let node_count = sources.len() + destinations.len();
    let (opened_tx, mut opened_rx) = mpsc::channel::<()>(node_count);
    tokio::spawn(async move {
        for _ in 0..node_count {
            if opened_rx.recv().await.is_none() {
                return; // a node failed before opening: no start to report
            }
        }
        if let Some(started) = started {
            let _ = started.send(());
        }
    });
    let capacity = options.channel_capacity.max(1);
    let ackers: Vec<Arc<Mutex<Acker>>> = sources
        .iter()
        .map(|_| Arc::new(Mutex::new(Acker::new())))
        .collect();
    let source_ids: Vec<String> = sources.iter().map(|s| s.id.clone()).collect();
    let destination_count = destinations.len();
    let (batch_tx, mut batch_rx) = mpsc::channel::<Batch>(capacity);
    let (written_tx, mut written_rx) = mpsc::channel::<Written>(capacity);
    // `cancel` stops every node at once (an error somewhere); `stop` only stops sources.
    let (cancel_tx, cancel) = watch::channel(false);
    let mut tasks: JoinSet<Result<(), EngineError>> = JoinSet::new();

    // Sources.
    let mut ack_txs = Vec::new();
    for (index, mut node) in sources.into_iter().enumerate() {
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<Position>();
        ack_txs.push(ack_tx);
        let acker = ackers[index].clone();
        let batch_tx = batch_tx.clone();
        let opened = opened_tx.clone();
        let positions = positions.clone();
        let mut stop = stop.clone();
        let mut cancel = cancel.clone();
        let batch_size = options.batch_size.max(1);
        tasks.spawn(async move {
            let name = format!("source {}", node.id);
            let fail = |source| EngineError::Plugin {
                node: name.clone(),
                source,
            };
            let start = positions
                .load(&node.id)
                .map_err(|reason| EngineError::Positions {
                    connector: node.id.clone(),
                    reason,
                })?;
            node.source.open(start).await.map_err(fail)?;
            let _ = opened.send(()).await;
            drop(opened);
            let mut batch_tx = Some(batch_tx);
            loop {
                tokio::select! {
                    biased;
                    _ = raised(&mut cancel) => return Ok(()),
                    position = ack_rx.recv() => match position {
                        Some(position) => node.source.ack(position).await.map_err(fail)?,
                        // The acker is done: every ack has been delivered.
                        None => break,
                    },
                    _ = raised(&mut stop), if batch_tx.is_some() => {
                        // Stop reading; closing our output lets the rest drain.
                        batch_tx = None;
                    }
                    read = node.source.read(batch_size), if batch_tx.is_some() => {
                        let records = read.map_err(fail)?;
                        if records.is_empty() {
                            continue;
                        }
                        let first = {
                            let mut acker = acker.lock().expect("acker lock");
                            let first = acker.next_ticket();
                            for record in &records {
                                acker.track(record.position.clone(), destination_count)?;
                            }
                            first
                        };
                        let batch = Batch { source: index, first, records: Arc::new(records) };
                        let sender = batch_tx.as_ref().expect("checked above");
                        if sender.send(batch).await.is_err() {
                            return Ok(()); // downstream is gone: cancelled
                        }
                    }
                }
            }
            node.source.teardown().await.map_err(fail)
        });
    }
    drop(batch_tx);

    // Fan-out to destinations.
    let mut dest_txs = Vec::new();
    for (index, mut node) in destinations.into_iter().enumerate() {
        let (tx, mut rx) = mpsc::channel::<Batch>(capacity);
        dest_txs.push(tx);
        let written_tx = written_tx.clone();
        let opened = opened_tx.clone();
        let mut cancel = cancel.clone();
        tasks.spawn(async move {
            let name = format!("destination {}", node.id);
            let fail = |source| EngineError::Plugin {
                node: name.clone(),
                source,
            };
            node.destination.open().await.map_err(fail)?;
            let _ = opened.send(()).await;
            drop(opened);
            loop {
                let batch = tokio::select! {
                    biased;
                    _ = raised(&mut cancel) => return Ok(()),
                    batch = rx.recv() => match batch {
                        Some(batch) => batch,
                        None => break,
                    },
                };
                tokio::select! {
                    biased;
                    _ = raised(&mut cancel) => return Ok(()),
                    written = node.destination.write(&batch.records) => written.map_err(fail)?,
                }
                let written = Written {
                    source: batch.source,
                    first: batch.first,
                    count: batch.records.len(),
                    destination: index,
                };
                if written_tx.send(written).await.is_err() {
                    return Ok(());
                }
            }
            node.destination.teardown().await.map_err(fail)
        });
    }
    drop(written_tx);
    drop(opened_tx);
    {
        let mut cancel = cancel.clone();
        tasks.spawn(async move {
            loop {
                let batch = tokio::select! {
                    biased;
                    _ = raised(&mut cancel) => return Ok(()),
                    batch = batch_rx.recv() => match batch {
                        Some(batch) => batch,
                        None => return Ok(()), // every source stopped: close the outputs
                    },
                };
                for tx in &dest_txs {
                    let copy = Batch {
                        source: batch.source,
                        first: batch.first,
                        records: batch.records.clone(),
                    };
                    if tx.send(copy).await.is_err() {
                        return Ok(());
                    }
                }
            }
        });
    }

    // The acker: persist released positions, then tell the source.
    {
        let mut cancel = cancel.clone();
        tasks.spawn(async move {
            loop {
                let written = tokio::select! {
                    biased;
                    _ = raised(&mut cancel) => return Ok(()),
                    written = written_rx.recv() => match written {
                        Some(written) => written,
                        None => return Ok(()), // all destinations done; closes ack channels
                    },
                };
                let mut newest = None;
                {
                    let mut acker = ackers[written.source].lock().expect("acker lock");
                    for ticket in written.first..written.first + written.count as Ticket {
                        if let Some(position) = acker.ack(ticket, written.destination)? {
                            newest = Some(position);
                        }
                    }
                }
                if let Some(position) = newest {
                    let connector = &source_ids[written.source];
                    positions.save(connector, &position).map_err(|reason| {
                        EngineError::Positions {
                            connector: connector.clone(),
                            reason,
                        }
                    })?;
                    // The source may already be gone (cancelled); nothing to tell then.
                    let _ = ack_txs[written.source].send(position);
                }
            }
        });
    }

    // Wait for every node: the first error cancels everything; a stop drains.
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let error = match joined {
            Ok(Ok(())) => continue,
            Ok(Err(error)) => error,
            Err(join) => EngineError::Task(join.to_string()),
        };
        if first_error.is_none() {
            first_error = Some(error);
            let _ = cancel_tx.send(true);
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
