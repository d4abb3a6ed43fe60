//! The source: an initial snapshot, then logical replication (pgoutput).
//!
//! # How a first run stays exact
//!
//! On a first run the replication slot is created on a replication connection with
//! `EXPORT_SNAPSHOT`: the server answers with the slot's consistent point and the name of a
//! snapshot showing exactly the transactions committed before it. The snapshot is read in
//! one `REPEATABLE READ` transaction that imports that snapshot (`SET TRANSACTION
//! SNAPSHOT`), and streaming then starts at the consistent point on the same replication
//! session (kept idle, so the exported snapshot stays valid, until the snapshot is read).
//! So every change is in the snapshot or in the stream, never both and never neither.
//!
//! # Positions and acks
//!
//! Snapshot records carry Conduit's snapshot position (per-table last key read and the
//! largest key when the snapshot began); changes carry the LSN position described in
//! [`crate::position`]. `ack` is where the slot moves: the confirmed flush position
//! reported to the server becomes the commit LSN of the acked change's transaction, so a
//! restart gets that transaction again and skips the changes of it already delivered.
//! When everything read has been acked and no transaction is open, the position also
//! moves to the server's latest keepalive position, so an idle slot's lag returns to 0
//! (invariant: the confirmed flush position never passes a change that was not acked).
//!
//! A restart in the middle of the snapshot resumes each table after its last key read,
//! in a new transaction: the exported snapshot is gone, so rows changed meanwhile may
//! come both from the snapshot (newer values) and from the stream, which starts at the
//! slot's consistent point (never advanced during the snapshot). Nothing is lost.
//!
//! # Cancel safety
//!
//! `read` keeps everything it took in `self`: the snapshot is read by a task that sends
//! whole batches through a channel (`recv` is cancel-safe), replication events come from
//! `pgwire-replication`'s channel (also `recv`), and each event is turned into records in
//! `self.pending` synchronously, before the next await.

use crate::config::{SourceConfig, Tables};
use crate::position::{Lsn, SnapshotProgress, SourcePosition, KIND_CDC, KIND_SNAPSHOT};
use crate::values;
use crate::{connect, pg_error, quote_ident, Connection};
use culvert_domain::opencdc::metadata;
use culvert_domain::{Change, Data, Metadata, Operation, Position, Record};
use culvert_plugins::connector::{PluginError, Settings, Source, IDLE_READ};
use pgoutput::events::base::event::BaseEvent;
use pgoutput::events::base::tuple_data::{OldDataOrPrimaryKeyTupleData, TupleDataColumn};
use pgoutput::events::event::{Event, EventType};
use pgoutput::options::{BinaryValueTraitOff, StreamingValueTraitOff};
use pgwire_replication::{ReplicationClient, ReplicationConfig, ReplicationEvent};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;
use tokio::sync::mpsc;

/// Session settings that fix the text form of values (see [`crate::values`]).
const SESSION_OPTIONS: &str = "-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=3";

/// Batches of snapshot records in flight between the snapshot task and `read`.
const SNAPSHOT_CHANNEL: usize = 4;

/// How long a replication slot still held by a session that is ending is waited for.
const SLOT_BUSY: Duration = Duration::from_secs(10);

/// How often the replication session reports the confirmed position to the server.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// A PostgreSQL source.
pub struct PostgresSource {
    config: SourceConfig,
    state: Option<Running>,
}

impl PostgresSource {
    /// A source with this configuration (connects in `open`).
    pub fn new(config: SourceConfig) -> Self {
        Self {
            config,
            state: None,
        }
    }
}

/// A table read by the source.
#[derive(Clone, Debug)]
struct Table {
    name: String,
    key: String,
    /// Columns in order, with their type OIDs.
    columns: Vec<(String, u32)>,
}

/// A relation as the stream described it.
struct Relation {
    name: String,
    /// Column names and type OIDs.
    columns: Vec<(String, u32)>,
    /// Columns that are part of the replica identity (the stream's key).
    identity: Vec<String>,
}

/// The transaction the stream is in.
#[derive(Clone, Copy)]
struct Tx {
    commit: Lsn,
    /// Index of the next change in it.
    next: u64,
}

/// A running snapshot: the task reading it and its output.
struct Snapshot {
    rx: mpsc::Receiver<Result<Vec<Record>, PluginError>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Running {
    config: SourceConfig,
    /// Until when a slot held by another session is waited for (see `start_streaming`).
    busy_until: Option<tokio::time::Instant>,
    /// The replication session (gated until the snapshot is read).
    repl: ReplicationClient,
    /// START_REPLICATION was sent.
    streaming: bool,
    snapshot: Option<Snapshot>,
    /// Records made and not yet returned, each change with its (commit LSN, index).
    pending: VecDeque<(Record, Option<(Lsn, u64)>)>,
    /// Primary keys of the configured tables, by name.
    keys: HashMap<String, String>,
    relations: HashMap<u32, Relation>,
    tx: Option<Tx>,
    /// Changes up to this point (commit LSN, index) were delivered before a restart.
    skip: Option<(Lsn, u64)>,
    /// The last change returned by `read`.
    last_read: Option<(Lsn, u64)>,
    /// The last change acked.
    last_acked: Option<(Lsn, u64)>,
    /// The newest server position a keepalive reported.
    keepalive: Lsn,
    /// The confirmed position last handed to the replication session.
    confirmed: Lsn,
}

impl Running {
    /// Up to `max` records made so far, remembering the last change handed out.
    fn take(&mut self, max: usize) -> Vec<Record> {
        let n = self.pending.len().min(max);
        let mut out = Vec::with_capacity(n);
        for (record, point) in self.pending.drain(..n) {
            if point.is_some() {
                self.last_read = point;
            }
            out.push(record);
        }
        out
    }

    /// Wait up to `wait` for more input and turn it into records; `false` if none came.
    /// Cancel-safe: each branch awaits only a cancel-safe receive, and what it receives
    /// is stored in `self` before the next await.
    async fn next(&mut self, wait: Duration) -> Result<bool, PluginError> {
        if let Some(snapshot) = &mut self.snapshot {
            // `mpsc::Receiver::recv` is cancel-safe: a dropped receive loses no batch.
            return match tokio::time::timeout(wait, snapshot.rx.recv()).await {
                Ok(Some(Ok(batch))) => {
                    self.pending.extend(batch.into_iter().map(|r| (r, None)));
                    Ok(true)
                }
                Ok(Some(Err(e))) => Err(e),
                Ok(None) => {
                    tracing::info!("snapshot complete, streaming changes");
                    self.snapshot = None;
                    Ok(true)
                }
                Err(_) => Ok(false),
            };
        }
        if !self.streaming {
            self.start_streaming().await?;
            return Ok(true);
        }
        // `ReplicationClient::recv` receives from an mpsc channel: cancel-safe.
        match tokio::time::timeout(wait, self.repl.recv()).await {
            Ok(Ok(Some(event))) => {
                self.handle(event)?;
                Ok(true)
            }
            Ok(Ok(None)) => Err(PluginError::Other(
                "the logical replication stream ended".into(),
            )),
            Ok(Err(e)) => Err(PluginError::Other(format!("logical replication: {e}"))),
            Err(_) => {
                self.confirm_idle();
                Ok(false)
            }
        }
    }

    /// Send START_REPLICATION and wait until the server accepted it. A slot still held
    /// by the session of a source that just stopped (the server releases it when that
    /// session's process ends) is waited for, on a new session, up to [`SLOT_BUSY`].
    /// Cancel-safe: a start whose future was dropped already took the gate, so a second
    /// call fails and `wait_started` (a watch wait) reports the outcome; the deadline is
    /// kept in `self`.
    async fn start_streaming(&mut self) -> Result<(), PluginError> {
        loop {
            if let Err(e) = self.repl.start().await {
                tracing::debug!(error = %e, "START_REPLICATION already sent");
            }
            match self.repl.wait_started().await {
                Ok(()) => {
                    self.streaming = true;
                    self.busy_until = None;
                    return Ok(());
                }
                Err(e) => {
                    let deadline = *self
                        .busy_until
                        .get_or_insert_with(|| tokio::time::Instant::now() + SLOT_BUSY);
                    let busy = e.to_string().contains("is active for PID");
                    if !busy || tokio::time::Instant::now() >= deadline {
                        return Err(PluginError::Other(format!(
                            "starting logical replication on slot {:?}: {e}",
                            self.config.slot
                        )));
                    }
                    // Backoff before the next try (not a synchronisation: the other
                    // session's end cannot be awaited from here).
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    self.repl = replication_client(&self.config).await?;
                }
            }
        }
    }

    /// Turn one replication event into records (synchronous: nothing is lost to a drop).
    fn handle(&mut self, event: ReplicationEvent) -> Result<(), PluginError> {
        match event {
            ReplicationEvent::Begin { final_lsn, .. } => {
                self.tx = Some(Tx {
                    commit: Lsn(final_lsn.0),
                    next: 0,
                });
            }
            ReplicationEvent::Commit { .. } => self.tx = None,
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                self.keepalive = self.keepalive.max(Lsn(wal_end.0));
                self.confirm_idle();
            }
            ReplicationEvent::XLogData {
                wal_start, data, ..
            } => self.change(Lsn(wal_start.0), &data)?,
            ReplicationEvent::Message { .. } | ReplicationEvent::StoppedAt { .. } => {}
        }
        Ok(())
    }

    /// Decode one pgoutput message.
    fn change(&mut self, lsn: Lsn, data: &[u8]) -> Result<(), PluginError> {
        let Some(event) = decode(data)? else {
            return Ok(());
        };
        let (operation, relation_id, old, new) = match event {
            BaseEvent::Relation(relation) => {
                let columns: Vec<(String, u32)> = relation
                    .columns
                    .iter()
                    .map(|c| (c.name.clone(), c.oid as u32))
                    .collect();
                let identity = relation
                    .columns
                    .iter()
                    .filter(|c| c.flags & 1 == 1)
                    .map(|c| c.name.clone())
                    .collect();
                self.relations.insert(
                    relation.oid as u32,
                    Relation {
                        name: relation.name,
                        columns,
                        identity,
                    },
                );
                return Ok(());
            }
            BaseEvent::Insert(insert) => (Operation::Create, insert.oid, None, Some(insert.data)),
            BaseEvent::Update(update) => (
                Operation::Update,
                update.oid,
                update.old_data_or_primary_key.map(old_tuple),
                Some(update.data),
            ),
            BaseEvent::Delete(delete) => (
                Operation::Delete,
                delete.oid,
                delete.old_data_or_primary_key.map(old_tuple),
                None,
            ),
            // Begin and Commit come as their own events; types, truncates and origins
            // make no record (Conduit ignores them too).
            _ => return Ok(()),
        };
        let tx = self.tx.get_or_insert(Tx {
            commit: lsn,
            next: 0,
        });
        let index = tx.next;
        tx.next += 1;
        let commit = tx.commit;
        if let Some((skip_commit, skip_index)) = self.skip {
            if commit < skip_commit || (commit == skip_commit && index <= skip_index) {
                return Ok(());
            }
            self.skip = None;
        }
        let relation = self.relations.get(&(relation_id as u32)).ok_or_else(|| {
            PluginError::Other(format!(
                "logical replication: a change of relation {relation_id} before its description"
            ))
        })?;
        let old = old.map(|tuple| row_values(relation, tuple));
        let new = new.map(|tuple| row_values(relation, tuple));
        let key_source = new.as_ref().or(old.as_ref()).cloned().unwrap_or_default();
        let key = match self.keys.get(&relation.name) {
            Some(column) => key_of(&key_source, std::slice::from_ref(column)),
            None => key_of(&key_source, &relation.identity),
        };
        let position = SourcePosition {
            kind: KIND_CDC,
            last_lsn: lsn.to_string(),
            commit_lsn: Some(commit.to_string()),
            tx_index: Some(index),
            ..SourcePosition::default()
        };
        let record = Record {
            position: Position(position.to_bytes()),
            operation,
            metadata: collection(&relation.name),
            key: Some(Data::Structured(key.into())),
            payload: Change {
                before: old.map(|old| Data::Structured(old.into())),
                after: new.map(|new| Data::Structured(new.into())),
            },
        };
        self.pending.push_back((record, Some((commit, index))));
        Ok(())
    }

    /// With every change read acked and no transaction open, confirm the server's latest
    /// keepalive position: no change can commit before it any more.
    fn confirm_idle(&mut self) {
        let idle = self.streaming
            && self.tx.is_none()
            && self.pending.is_empty()
            && self.last_read == self.last_acked;
        if idle && self.keepalive > self.confirmed {
            self.confirm(self.keepalive);
        }
    }

    /// Report `lsn` as the slot's confirmed flush position (monotonic).
    fn confirm(&mut self, lsn: Lsn) {
        if lsn > self.confirmed {
            self.confirmed = lsn;
            self.repl.update_applied_lsn(pgwire_replication::Lsn(lsn.0));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.repl.abort();
    }
}

/// The old tuple of an update or delete (key columns only, unless the table's replica
/// identity is FULL).
fn old_tuple(
    old: OldDataOrPrimaryKeyTupleData<BinaryValueTraitOff>,
) -> Vec<TupleDataColumn<BinaryValueTraitOff>> {
    match old {
        OldDataOrPrimaryKeyTupleData::OldTupleData(tuple)
        | OldDataOrPrimaryKeyTupleData::PrimaryKeyTupleData(tuple) => tuple,
    }
}

/// A tuple's values by column name (`NULL`s as null; unchanged TOASTed values, which the
/// stream does not send, are left out).
fn row_values(
    relation: &Relation,
    tuple: Vec<TupleDataColumn<BinaryValueTraitOff>>,
) -> Map<String, Value> {
    let mut row = Map::new();
    for ((name, type_oid), column) in relation.columns.iter().zip(tuple) {
        match column {
            TupleDataColumn::PGNull => {
                row.insert(name.clone(), Value::Null);
            }
            TupleDataColumn::PGUnchangedToastedValue => {}
            TupleDataColumn::Value(text) => {
                row.insert(name.clone(), values::to_json(*type_oid, &text));
            }
        }
    }
    row
}

fn key_of(row: &Map<String, Value>, columns: &[String]) -> Map<String, Value> {
    columns
        .iter()
        .filter_map(|c| row.get(c).map(|v| (c.clone(), v.clone())))
        .collect()
}

type PgEvent = BaseEvent<BinaryValueTraitOff, StreamingValueTraitOff>;

/// Decode a pgoutput message (protocol 1, text values) with the `pgoutput` crate. The
/// crate indexes its input without checking every length; a malformed message makes it
/// panic, which is turned into an error here rather than taking the server down.
fn decode(data: &[u8]) -> Result<Option<PgEvent>, PluginError> {
    let Some((&tag, body)) = data.split_first() else {
        return Ok(None);
    };
    let Some(kind) = EventType::from_char(tag) else {
        return Ok(None);
    };
    let parsed = std::panic::catch_unwind(|| {
        Event::<BinaryValueTraitOff, StreamingValueTraitOff>::parse(&kind, body)
    })
    .map_err(|_| {
        PluginError::Other(format!(
            "logical replication: malformed pgoutput message of type {:?}",
            char::from(tag)
        ))
    })?
    .map_err(|e| PluginError::Other(format!("logical replication: {e}")))?;
    Ok(match parsed {
        Event::Base(event) => Some(event),
        _ => None,
    })
}

#[async_trait::async_trait]
impl Source for PostgresSource {
    async fn open(&mut self, position: Option<Position>) -> Result<(), PluginError> {
        let position = match &position {
            Some(p) => SourcePosition::parse(&p.0)?,
            None => SourcePosition::default(),
        };
        let meta = connect(&session_config(&self.config.connection), "source").await?;
        let tables = resolve_tables(&meta.client, &self.config.tables).await?;
        ensure_publication(&meta.client, &self.config.publication, &tables).await?;
        let snapshot_wanted = self.config.snapshot && position.kind != KIND_CDC;
        let mut repl = replication_client(&self.config).await?;
        let (confirmed, exported) = match slot_position(&meta.client, &self.config.slot).await? {
            Some(confirmed) => {
                if snapshot_wanted && position.kind != KIND_SNAPSHOT {
                    tracing::warn!(
                        slot = %self.config.slot,
                        "the replication slot exists already: the snapshot is read without \
                         the slot's exported snapshot, so rows changed since the slot's \
                         position may come twice"
                    );
                }
                (confirmed, None)
            }
            None => {
                if position.kind == KIND_CDC {
                    tracing::warn!(
                        slot = %self.config.slot,
                        "the replication slot is gone: creating it again; changes made \
                         while it did not exist are not read"
                    );
                }
                create_slot(&mut repl, &self.config.slot, snapshot_wanted).await?
            }
        };
        let snapshot = if snapshot_wanted {
            let progress = if position.kind == KIND_SNAPSHOT {
                position.snapshots.clone()
            } else {
                BTreeMap::new()
            };
            let connection = connect(&session_config(&self.config.connection), "snapshot").await?;
            let (tx, rx) = mpsc::channel(SNAPSHOT_CHANNEL);
            let task = tokio::spawn(run_snapshot(
                connection,
                exported,
                tables.clone(),
                progress,
                self.config.fetch_size,
                tx,
            ));
            Some(Snapshot { rx, task })
        } else {
            None
        };
        let mut running = Running {
            config: self.config.clone(),
            busy_until: None,
            repl,
            streaming: false,
            snapshot,
            pending: VecDeque::new(),
            keys: tables
                .iter()
                .map(|t| (t.name.clone(), t.key.clone()))
                .collect(),
            relations: HashMap::new(),
            tx: None,
            skip: position.change_point(),
            last_read: None,
            last_acked: None,
            keepalive: confirmed,
            confirmed,
        };
        if running.snapshot.is_none() {
            running.next(Duration::ZERO).await?;
        }
        drop(meta);
        self.state = Some(running);
        Ok(())
    }

    async fn read(&mut self, max: usize) -> Result<Vec<Record>, PluginError> {
        let max = max.max(1);
        let state = self
            .state
            .as_mut()
            .ok_or_else(|| PluginError::Other("read before open".into()))?;
        let deadline = tokio::time::Instant::now() + IDLE_READ;
        while state.pending.len() < max {
            // Wait only while there is nothing to return; otherwise take what is ready.
            let wait = if state.pending.is_empty() {
                deadline.saturating_duration_since(tokio::time::Instant::now())
            } else {
                Duration::ZERO
            };
            if !state.next(wait).await? && (wait.is_zero() || !state.pending.is_empty()) {
                break;
            }
            if state.pending.is_empty() && tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        Ok(state.take(max))
    }

    async fn ack(&mut self, position: Position) -> Result<(), PluginError> {
        let Some(state) = self.state.as_mut() else {
            return Ok(());
        };
        let position = SourcePosition::parse(&position.0)?;
        if position.kind != KIND_CDC {
            // Snapshot rows: the slot stays at its consistent point until changes flow.
            return Ok(());
        }
        // invariant: ack only after durable downstream handling — the engine calls this
        // once every destination handled the record and its position is persisted.
        match position.change_point() {
            Some(point) => {
                state.last_acked = Some(point);
                state.confirm(point.0);
                state.confirm_idle();
            }
            None if !position.last_lsn.is_empty() => {
                state.confirm(Lsn::parse(&position.last_lsn)?);
            }
            None => {}
        }
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        if let Some(mut state) = self.state.take() {
            state.snapshot = None;
            if state.streaming {
                // Stop cleanly so the server releases the slot at once (the last
                // confirmed position goes out with the stop).
                state.repl.stop();
                let _ = tokio::time::timeout(Duration::from_secs(5), state.repl.shutdown()).await;
            }
        }
        Ok(())
    }

    async fn on_deleted(&mut self, config: Settings) -> Result<(), PluginError> {
        let config = SourceConfig::from_settings(&config)?;
        if !config.auto_cleanup {
            tracing::warn!(
                "logrepl.autoCleanup is off: keeping the replication slot and publication"
            );
            return Ok(());
        }
        let conn = connect(&config.connection, "source cleanup").await?;
        conn.client
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE slot_name = $1",
                &[&config.slot],
            )
            .await
            .map_err(|e| pg_error(format!("dropping replication slot {:?}", config.slot), e))?;
        conn.client
            .batch_execute(&format!(
                "DROP PUBLICATION IF EXISTS {}",
                quote_ident(&config.publication)
            ))
            .await
            .map_err(|e| pg_error(format!("dropping publication {:?}", config.publication), e))?;
        Ok(())
    }
}

/// The connection settings with the session options that fix value formats.
fn session_config(config: &tokio_postgres::Config) -> tokio_postgres::Config {
    let mut config = config.clone();
    config.options(SESSION_OPTIONS);
    config.application_name("culvert-postgres");
    config
}

/// A gated replication session (START_REPLICATION waits for [`ReplicationClient::start`]),
/// starting at the slot's confirmed position.
async fn replication_client(config: &SourceConfig) -> Result<ReplicationClient, PluginError> {
    let connection = &config.connection;
    let host = match connection.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = connection.get_ports().first().copied().unwrap_or(5432);
    let user = connection.get_user().unwrap_or_default().to_owned();
    let password = connection
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let database = connection.get_dbname().unwrap_or(&user).to_owned();
    // Start position 0/0: the server starts at the slot's confirmed flush position. No
    // position is confirmed until an ack (0/0 is ignored by the server).
    let repl_config = ReplicationConfig::new(
        host,
        user,
        password,
        database,
        config.slot.clone(),
        config.publication.as_str(),
    )
    .with_port(port)
    .with_status_interval(STATUS_INTERVAL)
    .with_options(SESSION_OPTIONS)
    .with_application_name("culvert-postgres-replication");
    ReplicationClient::connect_gated(repl_config)
        .await
        .map_err(|e| PluginError::Other(format!("opening a replication session: {e}")))
}

/// Create the slot on the replication session; returns its consistent point and, when
/// asked, the name of the snapshot it exported (valid while the session stays idle).
async fn create_slot(
    repl: &mut ReplicationClient,
    slot: &str,
    export: bool,
) -> Result<(Lsn, Option<String>), PluginError> {
    let action = if export {
        "EXPORT_SNAPSHOT"
    } else {
        "NOEXPORT_SNAPSHOT"
    };
    let rows = repl
        .simple_query(&format!(
            "CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput {action}"
        ))
        .await
        .map_err(|e| {
            PluginError::Other(format!(
                "setting \"logrepl.slotName\": creating replication slot {slot:?}: {e}"
            ))
        })?;
    let row = rows.into_iter().next().ok_or_else(|| {
        PluginError::Other(format!("creating replication slot {slot:?}: no answer"))
    })?;
    let text = |i: usize| {
        row.get(i)
            .and_then(|v| v.as_ref())
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let consistent = Lsn::parse(&text(1).unwrap_or_default())?;
    tracing::info!(slot, %consistent, "created replication slot");
    Ok((consistent, if export { text(2) } else { None }))
}

/// The slot's confirmed flush position, if the slot exists.
async fn slot_position(
    client: &tokio_postgres::Client,
    slot: &str,
) -> Result<Option<Lsn>, PluginError> {
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| pg_error(format!("looking up replication slot {slot:?}"), e))?;
    match row.and_then(|r| r.get::<_, Option<String>>(0)) {
        Some(text) => Ok(Some(Lsn::parse(&text)?)),
        None => Ok(None),
    }
}

/// The tables to read, each with its primary key and columns.
async fn resolve_tables(
    client: &tokio_postgres::Client,
    tables: &Tables,
) -> Result<Vec<Table>, PluginError> {
    let names: Vec<String> = match tables {
        Tables::Named(names) => names.clone(),
        Tables::All => client
            .query(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
                &[],
            )
            .await
            .map_err(|e| pg_error("listing the tables of schema public", e))?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    };
    let mut resolved = Vec::with_capacity(names.len());
    for name in names {
        let quoted = quote_ident(&name);
        let columns: Vec<(String, u32)> = client
            .query(
                "SELECT a.attname::text, a.atttypid::oid FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&quoted],
            )
            .await
            .map_err(|e| pg_error(format!("reading the columns of table {name:?}"), e))?
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, u32>(1)))
            .collect();
        if columns.is_empty() {
            return Err(PluginError::Other(format!(
                "setting \"tables\": table {name:?} does not exist"
            )));
        }
        let key: Option<String> = client
            .query_opt(
                "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a \
                 ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = to_regclass($1) AND i.indisprimary \
                 ORDER BY array_position(i.indkey, a.attnum) LIMIT 1",
                &[&quoted],
            )
            .await
            .map_err(|e| pg_error(format!("reading the primary key of table {name:?}"), e))?
            .map(|r| r.get(0));
        let key = key.ok_or_else(|| {
            PluginError::Other(format!(
                "setting \"tables\": table {name:?} has no primary key (the source needs one)"
            ))
        })?;
        resolved.push(Table { name, key, columns });
    }
    Ok(resolved)
}

/// Create the publication over the tables unless it exists (then it is reused as is).
async fn ensure_publication(
    client: &tokio_postgres::Client,
    publication: &str,
    tables: &[Table],
) -> Result<(), PluginError> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(|e| pg_error(format!("looking up publication {publication:?}"), e))?
        .is_some();
    if exists {
        return Ok(());
    }
    if tables.is_empty() {
        return Err(PluginError::Other(
            "setting \"tables\": no table to publish".into(),
        ));
    }
    let list: Vec<String> = tables.iter().map(|t| quote_ident(&t.name)).collect();
    let sql = format!(
        "CREATE PUBLICATION {} FOR TABLE {}",
        quote_ident(publication),
        list.join(", ")
    );
    match client.batch_execute(&sql).await {
        Ok(()) => Ok(()),
        // Created meanwhile by someone else: reuse it.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT) => Ok(()),
        Err(e) => Err(pg_error(
            format!("setting \"logrepl.publicationName\": creating publication {publication:?}"),
            e,
        )),
    }
}

/// Read the snapshot of `tables` in one transaction (with the exported snapshot when
/// there is one), sending batches of records; an error is sent as the last item.
async fn run_snapshot(
    connection: Connection,
    exported: Option<String>,
    tables: Vec<Table>,
    progress: BTreeMap<String, SnapshotProgress>,
    fetch_size: usize,
    out: mpsc::Sender<Result<Vec<Record>, PluginError>>,
) {
    if let Err(e) =
        snapshot_tables(&connection, exported, &tables, progress, fetch_size, &out).await
    {
        let _ = out.send(Err(e)).await;
    }
}

async fn snapshot_tables(
    connection: &Connection,
    exported: Option<String>,
    tables: &[Table],
    mut progress: BTreeMap<String, SnapshotProgress>,
    fetch_size: usize,
    out: &mpsc::Sender<Result<Vec<Record>, PluginError>>,
) -> Result<(), PluginError> {
    let client = &connection.client;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(|e| pg_error("starting the snapshot transaction", e))?;
    if let Some(name) = &exported {
        client
            .batch_execute(&format!(
                "SET TRANSACTION SNAPSHOT '{}'",
                name.replace('\'', "''")
            ))
            .await
            .map_err(|e| pg_error(format!("importing snapshot {name:?}"), e))?;
    }
    for table in tables {
        let key_type = table
            .columns
            .iter()
            .find(|(c, _)| *c == table.key)
            .map(|(_, t)| *t)
            .unwrap_or(0);
        if ![values::oid::INT2, values::oid::INT4, values::oid::INT8].contains(&key_type) {
            return Err(PluginError::Other(format!(
                "setting \"tables\": table {:?}: the snapshot needs an integer primary key, \
                 and {:?} is not one",
                table.name, table.key
            )));
        }
        let key = quote_ident(&table.key);
        let name = quote_ident(&table.name);
        let done = progress.get(&table.name).copied();
        let end = match done {
            Some(p) => p.snapshot_end,
            None => {
                let row = client
                    .query_one(&format!("SELECT max({key})::int8 FROM {name}"), &[])
                    .await
                    .map_err(|e| {
                        pg_error(format!("snapshot of {:?}: largest key", table.name), e)
                    })?;
                match row.get::<_, Option<i64>>(0) {
                    Some(end) => end,
                    None => continue, // empty table
                }
            }
        };
        let lower = match done {
            Some(p) if p.last_read >= p.snapshot_end => continue,
            Some(p) => format!(" AND {key} > {}", p.last_read),
            None => String::new(),
        };
        let columns: Vec<String> = table.columns.iter().map(|(c, _)| quote_ident(c)).collect();
        client
            .batch_execute(&format!(
                "DECLARE culvert_snapshot NO SCROLL CURSOR FOR SELECT {} FROM {name} \
                 WHERE {key} <= {end}{lower} ORDER BY {key}",
                columns.join(", ")
            ))
            .await
            .map_err(|e| pg_error(format!("snapshot of {:?}: opening a cursor", table.name), e))?;
        let key_index = table
            .columns
            .iter()
            .position(|(c, _)| *c == table.key)
            .expect("the key is a column");
        loop {
            let messages = client
                .simple_query(&format!("FETCH {fetch_size} FROM culvert_snapshot"))
                .await
                .map_err(|e| pg_error(format!("snapshot of {:?}: fetching rows", table.name), e))?;
            let mut batch = Vec::new();
            for message in messages {
                let tokio_postgres::SimpleQueryMessage::Row(row) = message else {
                    continue;
                };
                let mut payload = Map::new();
                for (i, (column, type_oid)) in table.columns.iter().enumerate() {
                    let value = match row.get(i) {
                        Some(text) => values::to_json(*type_oid, text),
                        None => Value::Null,
                    };
                    payload.insert(column.clone(), value);
                }
                let last_read: i64 =
                    row.get(key_index)
                        .and_then(|k| k.parse().ok())
                        .ok_or_else(|| {
                            PluginError::Other(format!(
                                "snapshot of {:?}: a row without its key",
                                table.name
                            ))
                        })?;
                progress.insert(
                    table.name.clone(),
                    SnapshotProgress {
                        last_read,
                        snapshot_end: end,
                    },
                );
                let position = SourcePosition {
                    kind: KIND_SNAPSHOT,
                    snapshots: progress.clone(),
                    ..SourcePosition::default()
                };
                let key = key_of(&payload, std::slice::from_ref(&table.key));
                batch.push(Record {
                    position: Position(position.to_bytes()),
                    operation: Operation::Snapshot,
                    metadata: collection(&table.name),
                    key: Some(Data::Structured(key.into())),
                    payload: Change {
                        before: None,
                        after: Some(Data::Structured(payload.into())),
                    },
                });
            }
            if batch.is_empty() {
                break;
            }
            if out.send(Ok(batch)).await.is_err() {
                return Ok(()); // the source is gone
            }
        }
        client
            .batch_execute("CLOSE culvert_snapshot")
            .await
            .map_err(|e| {
                pg_error(
                    format!("snapshot of {:?}: closing the cursor", table.name),
                    e,
                )
            })?;
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| pg_error("ending the snapshot transaction", e))?;
    Ok(())
}

/// A record's metadata naming its table (`opencdc.collection`), with room for what is added
/// on the way: `opencdc.readAt` and the source connector (the engine), the key's and the
/// payload's schema subject and version (the SDK's schema extraction, on by default).
fn collection(table: &str) -> Metadata {
    let mut metadata = Metadata::with_capacity(7);
    metadata.insert(metadata::key(metadata::COLLECTION), table);
    metadata
}
