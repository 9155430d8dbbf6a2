//! What maintenance (crate::maintenance) asks of the store, for both back
//! ends. The decisions are made in Rust from counts the store reads; the
//! one that removes updates is made again inside the transaction that
//! removes them, so a report, registration or approval that came in
//! between is seen.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::clock::Clock;
use crate::fleet::{Approval, Group};
use crate::maintenance::{NeedCounts, needed_updates};

/// One update's current revision as maintenance sees it.
#[derive(Debug, Clone)]
pub struct UpdateFacts {
    /// `UpdateID`.
    pub update_id: Uuid,
    /// Declined.
    pub declined: bool,
    /// The current revision's `SupersededUpdateIDs`.
    pub supersedes: Vec<Uuid>,
    /// Superseded by an update that maintenance removed (and so no longer
    /// in any stored revision's list): superseded still.
    pub superseded_by_removed: bool,
}

/// One computer as maintenance sees it.
#[derive(Debug, Clone)]
pub struct ComputerFacts {
    /// Its identity.
    pub computer_id: Uuid,
    /// Its host name, for the run's record.
    pub hostname: String,
    /// When it was last heard from: the latest of its registration, last
    /// sync and last report.
    pub last_heard: Timestamp,
    /// Marked stale already.
    pub stale: bool,
}

/// The outcome of removing one chunk of updates.
pub enum UpdateRemoval {
    /// These went (the others were needed after all); the catalog is at
    /// `version` now.
    Removed {
        /// The updates removed.
        removed: Vec<Uuid>,
        /// Their per-computer states removed with them.
        states: u64,
        /// The catalog version after.
        version: u64,
    },
    /// The catalog moved since it was read: nothing was removed.
    CatalogMoved,
}

/// The SQL-side inputs of [`needed_updates`] for some updates, as read in
/// one transaction.
pub(super) struct NeedRows {
    pub(super) groups: Vec<Group>,
    pub(super) approvals: Vec<Approval>,
    /// Computers per group.
    pub(super) computers: HashMap<String, u64>,
    /// (update, group, state) → computers.
    pub(super) states: Vec<(Uuid, String, String, u64)>,
}

impl NeedRows {
    pub(super) fn needed(self, declined: &HashSet<Uuid>) -> HashSet<Uuid> {
        let mut counts = NeedCounts {
            groups: self.groups,
            approvals: self.approvals,
            computers: self.computers,
            states: HashMap::new(),
            declined: declined.clone(),
        };
        for (update_id, group, state, count) in self.states {
            counts.add_state(update_id, group, &state, count);
        }
        needed_updates(&counts)
    }
}

/// Maintenance's operations.
impl Store {
    /// The clock the store writes times with.
    pub fn clock(&self) -> &Clock {
        match self {
            Store::Sqlite(store) => store.clock(),
            Store::Postgres(store) => store.clock(),
        }
    }

    /// The store, with every time it writes or maintenance compares taken
    /// from `clock` (tests and benches simulate months with it).
    pub fn with_clock(mut self, clock: Clock) -> Store {
        match &mut self {
            Store::Sqlite(store) => store.set_clock(clock),
            Store::Postgres(store) => store.set_clock(clock),
        }
        self
    }

    /// Every computer: when it was last heard from, and its stale mark.
    pub async fn maintenance_computers(&self) -> Result<Vec<ComputerFacts>, StoreError> {
        match self {
            Store::Sqlite(store) => store.maintenance_computers().await,
            Store::Postgres(store) => store.maintenance_computers().await,
        }
    }

    /// Marks stale those of `ids` still not heard from since `cutoff`;
    /// returns the ones marked.
    pub async fn mark_stale(
        &self,
        ids: Vec<Uuid>,
        cutoff: Timestamp,
    ) -> Result<Vec<Uuid>, StoreError> {
        match self {
            Store::Sqlite(store) => store.mark_stale(ids, cutoff).await,
            Store::Postgres(store) => store.mark_stale(ids, cutoff).await,
        }
    }

    /// Removes those of `ids` still not heard from since `cutoff`, with
    /// their update states; returns the ones removed and the states.
    pub async fn remove_computers(
        &self,
        ids: Vec<Uuid>,
        cutoff: Timestamp,
    ) -> Result<(Vec<Uuid>, u64), StoreError> {
        match self {
            Store::Sqlite(store) => store.remove_computers(ids, cutoff).await,
            Store::Postgres(store) => store.remove_computers(ids, cutoff).await,
        }
    }

    /// The catalog version and every update's current revision's facts.
    pub async fn maintenance_updates(&self) -> Result<(u64, Vec<UpdateFacts>), StoreError> {
        match self {
            Store::Sqlite(store) => store.maintenance_updates().await,
            Store::Postgres(store) => store.maintenance_updates().await,
        }
    }

    /// Which of `ids` some computer needs (crate::maintenance's rule);
    /// `declined` are never offered, so never needed.
    pub async fn needed_updates(
        &self,
        ids: Vec<Uuid>,
        declined: HashSet<Uuid>,
    ) -> Result<HashSet<Uuid>, StoreError> {
        match self {
            Store::Sqlite(store) => store.needed_updates(ids, declined).await,
            Store::Postgres(store) => store.needed_updates(ids, declined).await,
        }
    }

    /// Records `obsolete` as obsolete since `now` where not recorded
    /// already, forgets every other update's record, and returns since
    /// when each of `obsolete` has been. With `dry_run` nothing is written.
    pub async fn mark_obsolete(
        &self,
        obsolete: Vec<Uuid>,
        now: Timestamp,
        dry_run: bool,
    ) -> Result<HashMap<Uuid, Timestamp>, StoreError> {
        match self {
            Store::Sqlite(store) => store.mark_obsolete(obsolete, now, dry_run).await,
            Store::Postgres(store) => store.mark_obsolete(obsolete, now, dry_run).await,
        }
    }

    /// Removes `ids` (every revision, approval and state) unless some
    /// computer needs one now, in one transaction that first checks the
    /// catalog is still at `expected`; the change log records each as
    /// gone, so agents' deltas drop it, and the catalog version goes up.
    pub async fn remove_updates(
        &self,
        ids: Vec<Uuid>,
        declined: HashSet<Uuid>,
        expected: u64,
    ) -> Result<UpdateRemoval, StoreError> {
        match self {
            Store::Sqlite(store) => store.remove_updates(ids, declined, expected).await,
            Store::Postgres(store) => store.remove_updates(ids, declined, expected).await,
        }
    }

    /// Content rows added before `cutoff` that no stored revision lists:
    /// removed (unless `dry_run`) in a transaction that checks the catalog
    /// did not move while the revisions were read. Returns them (SHA-256,
    /// size); their files are the caller's to delete.
    pub async fn collect_content(
        &self,
        cutoff: Timestamp,
        dry_run: bool,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        match self {
            Store::Sqlite(store) => store.collect_content(cutoff, dry_run).await,
            Store::Postgres(store) => store.collect_content(cutoff, dry_run).await,
        }
    }

    /// Every content row's SHA-256.
    pub async fn content_digests(&self) -> Result<HashSet<String>, StoreError> {
        match self {
            Store::Sqlite(store) => store.content_digests().await,
            Store::Postgres(store) => store.content_digests().await,
        }
    }

    /// Stores a run's record (JSON); returns its ID. Records older than
    /// `keep_since` go, and all but the newest `keep` of the rest.
    pub async fn record_maintenance_run(
        &self,
        started: Timestamp,
        json: String,
        keep_since: Timestamp,
        keep: u64,
    ) -> Result<i64, StoreError> {
        match self {
            Store::Sqlite(store) => store.record_run(started, json, keep_since, keep).await,
            Store::Postgres(store) => store.record_run(started, json, keep_since, keep).await,
        }
    }

    /// The newest `limit` runs' records, newest first: (ID, JSON).
    pub async fn maintenance_runs(&self, limit: u64) -> Result<Vec<(i64, String)>, StoreError> {
        match self {
            Store::Sqlite(store) => store.runs(limit).await,
            Store::Postgres(store) => store.runs(limit).await,
        }
    }

    /// Gives freed space back: SQLite's incremental vacuum, a few pages per
    /// lock, and a WAL checkpoint (a database made before incremental
    /// vacuum existed is converted by one VACUUM first); PostgreSQL's
    /// ANALYZE of the tables maintenance deletes from, its autovacuum doing
    /// the rest. Returns what was done, in words.
    pub async fn reclaim_space(&self) -> Result<String, StoreError> {
        match self {
            Store::Sqlite(store) => store.reclaim_space().await,
            Store::Postgres(store) => store.reclaim_space().await,
        }
    }

    /// The database's size in bytes: SQLite's file and its WAL;
    /// PostgreSQL's `pg_database_size`.
    pub async fn database_size(&self) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(store) => store.database_size().await,
            Store::Postgres(store) => store.database_size().await,
        }
    }

    /// Holds maintenance's lock until the guard is dropped, or `None` when
    /// another run holds it (in this process, or, on PostgreSQL, on any
    /// front end).
    pub async fn try_maintenance_lock(&self) -> Result<Option<MaintenanceLock>, StoreError> {
        let local_run = match self {
            Store::Sqlite(store) => store.maintenance_run(),
            Store::Postgres(store) => store.maintenance_run(),
        };
        let Ok(local) = local_run.try_lock_owned() else {
            return Ok(None);
        };
        let shared = match self {
            Store::Sqlite(_) => None,
            Store::Postgres(store) => match store.try_maintenance_lock().await? {
                Some(client) => Some(client),
                None => return Ok(None),
            },
        };
        Ok(Some(MaintenanceLock {
            _local: local,
            shared,
        }))
    }
}

/// Held while a maintenance run is under way.
pub struct MaintenanceLock {
    _local: tokio::sync::OwnedMutexGuard<()>,
    /// PostgreSQL's session advisory lock lives as long as this connection,
    /// taken out of the pool so dropping it closes it.
    shared: Option<deadpool_postgres::ClientWrapper>,
}

impl MaintenanceLock {
    /// Ends the run's hold. PostgreSQL's lock is unlocked here rather than
    /// left to the connection's close, which the server finishes only
    /// after the client has let go: a run right after would find it held.
    pub async fn release(self) {
        if let Some(client) = &self.shared {
            super::postgres::maintenance::release_maintenance_lock(client).await;
        }
    }
}

/// Parses a JSON array of update IDs, as a revision stores
/// `SupersededUpdateIDs` (absent when empty).
pub(super) fn parse_ids(json: Option<&str>) -> Result<Vec<Uuid>, StoreError> {
    match json {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text)
            .map_err(|error| StoreError::Corrupt(format!("supersededUpdateIds {text:?}: {error}"))),
    }
}

/// The latest of a computer's registration, last sync and last report.
pub(super) fn last_heard(
    registered: &str,
    last_sync: Option<&str>,
    last_report: Option<&str>,
) -> Result<Timestamp, StoreError> {
    let mut latest = super::parse_time(registered)?;
    for time in [last_sync, last_report].into_iter().flatten() {
        latest = latest.max(super::parse_time(time)?);
    }
    Ok(latest)
}
