//! On-disk layout versions and the migrations between them.
//!
//! The store writes its layout version into `meta`. On open, a directory with a newer
//! version is refused, an empty one is stamped with the current version, and an older one is
//! brought up to date by running the caller's [`LayoutMigration`]s in order, each step's
//! writes committed together with the new version number in one atomic batch, so a crash
//! mid-migration leaves the directory at the last completed step.

use crate::StoreError;
use rocksdb::{IteratorMode, WriteBatch, DB};

/// The column families of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cf {
    /// seq (u64 BE) -> event envelope.
    Events,
    /// stream id, 0x00, version (u64 BE) -> seq (u64 BE).
    Streams,
    /// Store metadata (layout version).
    Meta,
    /// Projection snapshots.
    Snapshots,
    /// Connector positions and state.
    Positions,
    /// Dead letters kept per pipeline (layout 2 on).
    DeadLetters,
    /// The names of the projection snapshots, as keys with empty values (layout 3 on):
    /// listing them does not read the snapshots, which live in `snapshots`.
    SnapshotNames,
}

impl Cf {
    /// Every column family, in creation order.
    pub const ALL: [Cf; 7] = [
        Cf::Events,
        Cf::Streams,
        Cf::Meta,
        Cf::Snapshots,
        Cf::Positions,
        Cf::DeadLetters,
        Cf::SnapshotNames,
    ];

    /// The RocksDB column family name.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Events => "events",
            Cf::Streams => "streams",
            Cf::Meta => "meta",
            Cf::Snapshots => "snapshots",
            Cf::Positions => "positions",
            Cf::DeadLetters => "dead_letters",
            Cf::SnapshotNames => "snapshot_names",
        }
    }
}

/// One step from layout `source_version()` to `source_version() + 1`.
pub trait LayoutMigration: Send + Sync {
    /// The layout version this step starts from.
    fn source_version(&self) -> u32;
    /// A short description for logs.
    fn name(&self) -> &str;
    /// Read the old layout through `tx` and stage the writes that turn it into the new one.
    fn migrate(&self, tx: &mut MigrationTx<'_>) -> Result<(), String>;
}

/// A visitor of key/value pairs during a migration scan; an `Err` stops the scan.
pub type ScanVisitor<'v> = dyn FnMut(&[u8], &[u8]) -> Result<(), String> + 'v;

/// The layout a build understands: its version and how to reach it from older ones.
pub struct Layout {
    /// The current layout version.
    pub version: u32,
    /// Steps from older versions, any order.
    pub migrations: Vec<Box<dyn LayoutMigration>>,
}

/// Read access to the store and a batch of staged writes, for one migration step.
pub struct MigrationTx<'a> {
    db: &'a DB,
    batch: WriteBatch,
}

impl<'a> MigrationTx<'a> {
    pub(crate) fn new(db: &'a DB) -> Self {
        Self {
            db,
            batch: WriteBatch::default(),
        }
    }

    pub(crate) fn into_batch(self) -> WriteBatch {
        self.batch
    }

    /// Read one value (committed state; staged writes are not visible).
    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let handle = crate::rocks::cf_handle(self.db, cf)?;
        Ok(self.db.get_cf(handle, key)?)
    }

    /// Visit every key/value of a column family in key order.
    pub fn scan(&self, cf: Cf, visit: &mut ScanVisitor<'_>) -> Result<(), StoreError> {
        let handle = crate::rocks::cf_handle(self.db, cf)?;
        for item in self.db.iterator_cf(handle, IteratorMode::Start) {
            let (k, v) = item?;
            visit(&k, &v).map_err(|reason| StoreError::Migration { from: 0, reason })?;
        }
        Ok(())
    }

    /// Stage a write.
    pub fn put(&mut self, cf: Cf, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let handle = crate::rocks::cf_handle(self.db, cf)?;
        self.batch.put_cf(handle, key, value);
        Ok(())
    }

    /// Stage a delete.
    pub fn delete(&mut self, cf: Cf, key: &[u8]) -> Result<(), StoreError> {
        let handle = crate::rocks::cf_handle(self.db, cf)?;
        self.batch.delete_cf(handle, key);
        Ok(())
    }
}
