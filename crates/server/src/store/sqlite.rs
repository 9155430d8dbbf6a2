//! The SQLite back end: one file, one connection, every call on a blocking
//! thread.

mod upstreams;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use uuid::Uuid;

mod maintenance;

use super::changes::{Serving, earliest, plan_delta};
use super::{
    Answer, Candidate, DeclineOutcome, DeltaView, Offered, PublishReport, SCHEMA_VERSION, StateRow,
    StoreError, StoredRevision, SyncPlan, SyncView, answer, approval_from, parse_time, token_from,
    version_from,
};
use crate::clock::Clock;
use crate::fleet::{
    Approval, Computer, Credentials, Group, GroupChange, NewComputer, UNASSIGNED_COMPUTERS,
    ancestry, offered,
};
use crate::rollouts::{Ring, Rollout, admitted, bucket};
use crate::rules::{ApprovalRule, approvals_for};

/// Numbered migrations; PostgreSQL's are the same in spirit.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE updates (
         update_id TEXT NOT NULL,
         revision_number INTEGER NOT NULL,
         title TEXT NOT NULL,
         revision_json TEXT NOT NULL,
         digest TEXT NOT NULL,
         declined INTEGER NOT NULL DEFAULT 0,
         published TEXT NOT NULL,
         PRIMARY KEY (update_id, revision_number)
     );
     CREATE TABLE content (
         sha256 TEXT PRIMARY KEY,
         size INTEGER NOT NULL,
         added TEXT NOT NULL
     );
     CREATE TABLE admin_tokens (
         sha256 BLOB PRIMARY KEY,
         added TEXT NOT NULL
     );
     CREATE TABLE catalog (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         version INTEGER NOT NULL
     );
     INSERT INTO catalog (id, version) VALUES (1, 0);",
    ),
    (
        2,
        "CREATE TABLE service (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             service_id TEXT NOT NULL
         );
         CREATE TABLE groups (
             name TEXT PRIMARY KEY,
             parent TEXT REFERENCES groups (name)
         );
         INSERT INTO groups (name, parent) VALUES
             ('All Computers', NULL), ('Unassigned Computers', 'All Computers');
         CREATE TABLE computers (
             computer_id TEXT PRIMARY KEY,
             secret_sha256 BLOB NOT NULL,
             machine_id TEXT NOT NULL,
             hostname TEXT NOT NULL,
             group_name TEXT NOT NULL REFERENCES groups (name),
             registered TEXT NOT NULL,
             last_sync TEXT
         );
         CREATE TABLE approvals (
             update_id TEXT NOT NULL,
             group_name TEXT NOT NULL REFERENCES groups (name),
             action TEXT NOT NULL,
             deadline TEXT,
             PRIMARY KEY (update_id, group_name)
         );",
    ),
    (
        3,
        "ALTER TABLE computers ADD COLUMN acknowledged INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE computers ADD COLUMN last_report TEXT;
         ALTER TABLE computers ADD COLUMN inventory_json TEXT;
         CREATE TABLE update_states (
             computer_id TEXT NOT NULL REFERENCES computers (computer_id),
             update_id TEXT NOT NULL,
             state TEXT NOT NULL,
             revision_number INTEGER NOT NULL,
             result_code TEXT,
             hresult TEXT,
             observed TEXT NOT NULL,
             PRIMARY KEY (computer_id, update_id)
         );",
    ),
    (
        4,
        // The change log behind deltas (store/changes.rs). Anchors older
        // than the version the log starts at get full snapshots.
        "ALTER TABLE catalog ADD COLUMN log_floor INTEGER NOT NULL DEFAULT 0;
         UPDATE catalog SET log_floor = version;
         ALTER TABLE computers ADD COLUMN full_sync_below INTEGER NOT NULL DEFAULT 0;
         CREATE TABLE sync_log (
             version INTEGER NOT NULL,
             update_id TEXT NOT NULL,
             before_json TEXT NOT NULL,
             logged INTEGER NOT NULL,
             PRIMARY KEY (version, update_id)
         );",
    ),
    (
        10,
        // Upstream repositories (upstream/): their settings and the state
        // of their last sync, and where each of their updates' .debs comes
        // from, fetched when an approval needs one.
        "CREATE TABLE upstreams (
             name TEXT PRIMARY KEY,
             config_json TEXT NOT NULL,
             state_json TEXT NOT NULL,
             added TEXT NOT NULL
         );
         CREATE TABLE upstream_content (
             upstream TEXT NOT NULL,
             update_id TEXT NOT NULL,
             sha256 TEXT NOT NULL,
             size INTEGER NOT NULL,
             url TEXT NOT NULL,
             PRIMARY KEY (update_id, sha256)
         );",
    ),
    (
        20,
        // Automatic approval rules (rules.rs) and rollouts (rollouts.rs),
        // each kept whole as JSON.
        "CREATE TABLE approval_rules (
             name TEXT PRIMARY KEY,
             rule_json TEXT NOT NULL
         );
         CREATE TABLE rollouts (
             update_id TEXT PRIMARY KEY,
             rollout_json TEXT NOT NULL
         );",
    ),
    (
        40,
        // The web console (console/): its sign-in sessions and read-only
        // tokens, and the indexes its pages read through (partial ones
        // for the states that need attention, so a healthy fleet's rows
        // are never read).
        "CREATE TABLE console_sessions (
             id_sha256 BLOB PRIMARY KEY,
             token_sha256 BLOB NOT NULL,
             role TEXT NOT NULL,
             csrf TEXT NOT NULL,
             expires BIGINT NOT NULL
         );
         CREATE TABLE console_tokens (
             sha256 BLOB PRIMARY KEY,
             label TEXT NOT NULL,
             role TEXT NOT NULL,
             added TEXT NOT NULL
         );
         CREATE INDEX computers_by_group ON computers (group_name, hostname);
         CREATE INDEX update_states_by_update ON update_states (update_id, state);
         CREATE INDEX update_states_attention ON update_states (computer_id, state)
             WHERE state IN ('NotInstalled', 'Downloaded', 'Failed', 'InstalledPendingReboot');
         CREATE INDEX update_states_failed ON update_states (hresult, update_id, computer_id)
             WHERE state = 'Failed';
         CREATE INDEX updates_by_published ON updates (published);
         CREATE INDEX updates_declined ON updates (update_id) WHERE declined = 1;",
    ),
    (
        50,
        // Maintenance (maintenance.rs): the stale mark, the runs' records,
        // the updates superseded by one maintenance removed, when each
        // update was first found obsolete, and the index its
        // queries need beside the console's (migration 40).
        "ALTER TABLE computers ADD COLUMN stale_since TEXT;
         CREATE TABLE maintenance_runs (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             started TEXT NOT NULL,
             run_json TEXT NOT NULL
         );
         CREATE TABLE maintenance_superseded (
             update_id TEXT PRIMARY KEY
         );
         CREATE TABLE maintenance_obsolete (
             update_id TEXT PRIMARY KEY,
             since INTEGER NOT NULL
         );
         CREATE INDEX sync_log_by_logged ON sync_log (logged);",
    ),
];

/// The SQLite store (cheap to clone).
#[derive(Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
    clock: Clock,
    path: PathBuf,
    /// Held by this store's maintenance run (one at a time per store).
    maintenance_run: Arc<tokio::sync::Mutex<()>>,
}

impl SqliteStore {
    pub(super) async fn open(path: PathBuf) -> Result<Self, StoreError> {
        tokio::task::spawn_blocking(move || {
            // Made 0600 before SQLite opens it; SQLite gives its -wal and
            // -shm files the database's mode.
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
                .map_err(|error| StoreError::Io(format!("{}: {error}", path.display())))?;
            let mut connection = Connection::open(&path)?;
            // Before the first table: freed pages can then be handed back
            // to the file system by maintenance, a few at a time
            // (maintenance.rs); a no-op on an older database.
            connection.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
            connection.pragma_update(None, "journal_mode", "WAL")?;
            connection.pragma_update(None, "synchronous", "FULL")?;
            connection.busy_timeout(std::time::Duration::from_secs(10))?;
            migrate(&mut connection)?;
            Ok(SqliteStore {
                connection: Arc::new(Mutex::new(connection)),
                clock: Clock::system(),
                path,
                maintenance_run: Arc::default(),
            })
        })
        .await
        .map_err(|error| StoreError::Io(format!("the store's thread: {error}")))?
    }

    pub(super) fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// The lock of this store's maintenance runs.
    pub(super) fn maintenance_run(&self) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(&self.maintenance_run)
    }

    /// Runs `work` with the connection on a blocking thread.
    pub(super) async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock left no transaction open
            // (rusqlite rolls back on drop), so the connection is usable.
            let mut guard = connection
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut guard)
        })
        .await
        .map_err(|error| StoreError::Io(format!("the store's thread: {error}")))?
    }

    pub(super) async fn schema_version(&self) -> Result<i64, StoreError> {
        self.with(|connection| Ok(current_version(connection)?))
            .await
    }

    pub(super) async fn add_admin_token(&self, sha256: [u8; 32]) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.with(move |connection| {
            connection.execute(
                "INSERT OR IGNORE INTO admin_tokens (sha256, added) VALUES (?1, ?2)",
                params![&sha256[..], now.to_string()],
            )?;
            Ok(())
        })
        .await
    }

    pub(super) async fn admin_tokens(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare("SELECT sha256 FROM admin_tokens")?;
            let rows = statement.query_map([], |row| row.get::<_, Vec<u8>>(0))?;
            rows.map(|row| token_from(&row?)).collect()
        })
        .await
    }

    pub(super) async fn content_size(&self, sha256: String) -> Result<Option<u64>, StoreError> {
        self.with(move |connection| {
            let size: Option<i64> = connection
                .query_row(
                    "SELECT size FROM content WHERE sha256 = ?1",
                    [&sha256],
                    |row| row.get(0),
                )
                .optional()?;
            size.map(|size| {
                u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("content size {size}")))
            })
            .transpose()
        })
        .await
    }

    pub(super) async fn add_content(&self, sha256: String, size: u64) -> Result<(), StoreError> {
        let size =
            i64::try_from(size).map_err(|_| StoreError::Corrupt(format!("content size {size}")))?;
        let now = self.clock.now();
        self.with(move |connection| {
            connection.execute(
                "INSERT OR IGNORE INTO content (sha256, size, added) VALUES (?1, ?2, ?3)",
                params![sha256, size, now.to_string()],
            )?;
            Ok(())
        })
        .await
    }

    pub(super) async fn publish(
        &self,
        candidates: Vec<Candidate>,
        require_content: bool,
    ) -> Result<PublishReport, StoreError> {
        let time = self.clock.now();
        self.with(move |connection| {
            // IMMEDIATE: the write lock first, so two publishers serialise.
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut missing = Vec::new();
            for candidate in &candidates {
                for sha256 in candidate.content_digests() {
                    let known: bool = transaction.query_row(
                        "SELECT EXISTS (SELECT 1 FROM content WHERE sha256 = ?1)",
                        [&sha256],
                        |row| row.get(0),
                    )?;
                    if !known && !missing.contains(&sha256) {
                        missing.push(sha256);
                    }
                }
            }
            if require_content && !missing.is_empty() {
                return Err(StoreError::MissingContent(missing));
            }
            let now = time.to_string();
            // The version this publish makes, if it changes anything.
            let next = read_version(&transaction)? + 1;
            let mut updates = Vec::with_capacity(candidates.len());
            for candidate in &candidates {
                let update_id = candidate.update_id().to_string();
                let current: Option<(i32, String, bool)> = transaction
                    .query_row(
                        "SELECT revision_number, digest, declined FROM updates
                         WHERE update_id = ?1 ORDER BY revision_number DESC LIMIT 1",
                        [&update_id],
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                    )
                    .optional()?;
                let (published, json) = candidate.plan(
                    current
                        .as_ref()
                        .map(|(number, digest, _)| (*number, digest.as_str())),
                )?;
                if let Some(json) = json {
                    log_before(&transaction, next, candidate.update_id(), time)?;
                    // A new revision of a declined update stays declined.
                    let declined = current.is_some_and(|(_, _, declined)| declined);
                    transaction.execute(
                        "INSERT INTO updates (update_id, revision_number, title, revision_json,
                             digest, declined, published)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![
                            update_id,
                            published.revision_number,
                            candidate.title(),
                            json,
                            candidate.digest,
                            declined,
                            now
                        ],
                    )?;
                }
                updates.push(published);
            }
            let rule_approvals = fire_rules(&transaction, &candidates, &updates)?;
            let changed = updates
                .iter()
                .any(|update| update.action != super::PublishAction::Unchanged);
            let catalog_version = if changed {
                bump_version(&transaction)?
            } else {
                read_version(&transaction)?
            };
            transaction.commit()?;
            Ok(PublishReport {
                changed,
                catalog_version,
                updates,
                rule_approvals,
            })
        })
        .await
    }

    pub(super) async fn decline(&self, update_id: Uuid) -> Result<DeclineOutcome, StoreError> {
        let now = self.clock.now();
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let state: Option<bool> = transaction
                .query_row(
                    "SELECT MIN(declined) FROM updates WHERE update_id = ?1 HAVING COUNT(*) > 0",
                    [update_id.to_string()],
                    |row| row.get(0),
                )
                .optional()?;
            let outcome = match state {
                None => DeclineOutcome::Unknown,
                Some(true) => DeclineOutcome::AlreadyDeclined(read_version(&transaction)?),
                Some(false) => {
                    log_before(
                        &transaction,
                        read_version(&transaction)? + 1,
                        update_id,
                        now,
                    )?;
                    transaction.execute(
                        "UPDATE updates SET declined = 1 WHERE update_id = ?1",
                        [update_id.to_string()],
                    )?;
                    DeclineOutcome::Declined(bump_version(&transaction)?)
                }
            };
            transaction.commit()?;
            Ok(outcome)
        })
        .await
    }

    pub(super) async fn list_updates(&self) -> Result<Vec<StoredRevision>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare(
                "SELECT update_id, revision_number, title, digest, declined, published
                 FROM updates AS outer_row
                 WHERE revision_number = (SELECT MAX(revision_number) FROM updates
                                          WHERE update_id = outer_row.update_id)
                 ORDER BY update_id",
            )?;
            let rows = statement.query_map([], row_fields)?;
            rows.map(|row| stored_revision(row?)).collect()
        })
        .await
    }

    pub(super) async fn update_history(
        &self,
        update_id: Uuid,
    ) -> Result<Option<(Vec<StoredRevision>, String)>, StoreError> {
        self.with(move |connection| {
            let id = update_id.to_string();
            let mut statement = connection.prepare(
                "SELECT update_id, revision_number, title, digest, declined, published
                 FROM updates WHERE update_id = ?1 ORDER BY revision_number",
            )?;
            let revisions = statement
                .query_map([&id], row_fields)?
                .map(|row| stored_revision(row?))
                .collect::<Result<Vec<_>, _>>()?;
            let json: Option<String> = connection
                .query_row(
                    "SELECT revision_json FROM updates WHERE update_id = ?1
                     ORDER BY revision_number DESC LIMIT 1",
                    [&id],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(json.map(|json| (revisions, json)))
        })
        .await
    }

    pub(super) async fn catalog_version(&self) -> Result<u64, StoreError> {
        self.with(|connection| read_version(connection)).await
    }
}

type RowFields = (String, i32, String, String, bool, String);

fn row_fields(row: &rusqlite::Row<'_>) -> rusqlite::Result<RowFields> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn stored_revision(
    (update_id, revision_number, title, digest, declined, published): RowFields,
) -> Result<StoredRevision, StoreError> {
    Ok(StoredRevision {
        update_id: update_id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("update ID {update_id:?}")))?,
        revision_number,
        title,
        digest,
        declined,
        published: parse_time(&published)?,
    })
}

fn read_version(connection: &Connection) -> Result<u64, StoreError> {
    let version: i64 =
        connection.query_row("SELECT version FROM catalog WHERE id = 1", [], |row| {
            row.get(0)
        })?;
    version_from(version)
}

fn bump_version(connection: &Connection) -> Result<u64, StoreError> {
    let version: i64 = connection.query_row(
        "UPDATE catalog SET version = version + 1 WHERE id = 1 RETURNING version",
        [],
        |row| row.get(0),
    )?;
    version_from(version)
}

/// Writes `update_id`'s serving state as it is now into the change log,
/// under `version`, the version the change about to be made will take.
/// Call it before changing the update; the first row of one version wins.
fn log_before(
    connection: &Connection,
    version: u64,
    update_id: Uuid,
    now: Timestamp,
) -> Result<(), StoreError> {
    let before = serving(connection, update_id)?.encode()?;
    connection
        .prepare_cached(
            "INSERT INTO sync_log (version, update_id, before_json, logged)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (version, update_id) DO NOTHING",
        )?
        .execute(params![
            version_to_sql(version)?,
            update_id.to_string(),
            before,
            now.as_second()
        ])?;
    Ok(())
}

/// An update's current revision number, declined flag and approvals.
fn serving(connection: &Connection, update_id: Uuid) -> Result<Serving, StoreError> {
    let id = update_id.to_string();
    let current: Option<(i32, bool)> = connection
        .prepare_cached(
            "SELECT revision_number, declined FROM updates
             WHERE update_id = ?1 ORDER BY revision_number DESC LIMIT 1",
        )?
        .query_row([&id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let mut statement = connection.prepare_cached(
        "SELECT update_id, group_name, action, deadline FROM approvals
         WHERE update_id = ?1 ORDER BY group_name",
    )?;
    let approvals = statement
        .query_map([&id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?,
            ))
        })?
        .map(|row| {
            let (update_id, group, action, deadline) = row?;
            approval_from(&update_id, group, &action, deadline.as_deref())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let gate = connection
        .prepare_cached("SELECT rollout_json FROM rollouts WHERE update_id = ?1")?
        .query_row([&id], |row| row.get::<_, String>(0))
        .optional()?
        .map(|json| super::decode_rollout(&json))
        .transpose()?
        .and_then(|rollout| rollout.gate());
    Ok(Serving::new(
        current.map(|(revision, _)| revision),
        current.is_some_and(|(_, declined)| declined),
        update_id,
        &approvals,
        gate,
    ))
}

fn version_to_sql(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::Corrupt(format!("catalog version {version}")))
}

/// The full snapshot's revisions for a computer in `group` and rollout
/// `bucket`, read in `connection`'s transaction.
fn read_view(
    connection: &Connection,
    group: &str,
    bucket: Option<u8>,
    version: u64,
) -> Result<SyncView, StoreError> {
    let groups = read_groups(connection)?;
    let approvals = read_approvals(connection, None)?;
    let mut offers = offered(group, &groups, &approvals);
    let chain = ancestry(group, &groups);
    let gates = read_gates(connection)?;
    offers.retain(|update_id, _| {
        gates
            .get(update_id)
            .is_none_or(|rings| admitted(rings, &chain, bucket))
    });
    let mut statement = connection.prepare_cached(
        "SELECT revision_json FROM updates
         WHERE update_id = ?1 AND declined = 0
         ORDER BY revision_number DESC LIMIT 1",
    )?;
    let mut revisions = Vec::with_capacity(offers.len());
    for (update_id, offer) in offers {
        let json: Option<String> = statement
            .query_row([update_id.to_string()], |row| row.get(0))
            .optional()?;
        if let Some(json) = json {
            revisions.push(Offered { json, offer });
        }
    }
    Ok(SyncView { version, revisions })
}

/// The delta from `base` for a computer in `group`, read in
/// `connection`'s transaction.
fn read_delta(
    connection: &Connection,
    group: &str,
    bucket: Option<u8>,
    base: u64,
    version: u64,
) -> Result<DeltaView, StoreError> {
    let rows = {
        let mut statement = connection.prepare_cached(
            "SELECT update_id, before_json FROM sync_log WHERE version > ?1
             ORDER BY version, update_id",
        )?;
        statement
            .query_map([version_to_sql(base)?], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?
            .map(|row| {
                let (id, json) = row?;
                Ok((parse_uuid(&id)?, json))
            })
            .collect::<Result<Vec<_>, StoreError>>()?
    };
    let before = earliest(rows)?;
    let chain = ancestry(group, &read_groups(connection)?);
    let mut now = std::collections::HashMap::with_capacity(before.len());
    for (update_id, _) in &before {
        now.insert(*update_id, serving(connection, *update_id)?);
    }
    let plan = plan_delta(&chain, bucket, &before, &now);
    let mut statement = connection.prepare_cached(
        "SELECT revision_json FROM updates WHERE update_id = ?1 AND revision_number = ?2",
    )?;
    let mut changed = Vec::with_capacity(plan.changed.len());
    for (update_id, served) in plan.changed {
        let json: String = statement
            .query_row(params![update_id.to_string(), served.revision], |row| {
                row.get(0)
            })?;
        changed.push(Offered {
            json,
            offer: served.offer,
        });
    }
    Ok(DeltaView {
        base_version: base,
        version,
        changed,
        removed: plan.removed,
    })
}

fn current_version(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |row| row.get(0),
    )
}

fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    transaction.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY,
             applied TEXT NOT NULL
         )",
    )?;
    let found = current_version(&transaction)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > found) {
        transaction.execute_batch(sql)?;
        transaction.execute(
            "INSERT INTO schema_migrations (version, applied) VALUES (?1, ?2)",
            params![version, Timestamp::now().to_string()],
        )?;
    }
    // The serviceId is made once, by the first start, and kept.
    transaction.execute(
        "INSERT OR IGNORE INTO service (id, service_id) VALUES (1, ?1)",
        [Uuid::new_v4().to_string()],
    )?;
    transaction.commit()?;
    Ok(())
}

/// The fleet: groups, computers, approvals.
impl SqliteStore {
    pub(super) async fn service_id(&self) -> Result<Uuid, StoreError> {
        self.with(|connection| {
            let text: String =
                connection.query_row("SELECT service_id FROM service WHERE id = 1", [], |row| {
                    row.get(0)
                })?;
            parse_uuid(&text)
        })
        .await
    }

    pub(super) async fn list_groups(&self) -> Result<Vec<Group>, StoreError> {
        self.with(|connection| read_groups(connection)).await
    }

    pub(super) async fn add_group(
        &self,
        name: String,
        parent: String,
    ) -> Result<GroupChange, StoreError> {
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if !group_exists(&transaction, &parent)? {
                return Ok(GroupChange::UnknownGroup);
            }
            if group_exists(&transaction, &name)? {
                return Ok(GroupChange::Exists);
            }
            transaction.execute(
                "INSERT INTO groups (name, parent) VALUES (?1, ?2)",
                params![name, parent],
            )?;
            let version = bump_version(&transaction)?;
            transaction.commit()?;
            Ok(GroupChange::Done(version))
        })
        .await
    }

    pub(super) async fn remove_group(&self, name: String) -> Result<GroupChange, StoreError> {
        let now = self.clock.now();
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if !group_exists(&transaction, &name)? {
                return Ok(GroupChange::UnknownGroup);
            }
            let used: bool = transaction.query_row(
                "SELECT EXISTS (SELECT 1 FROM groups WHERE parent = ?1)
                     OR EXISTS (SELECT 1 FROM computers WHERE group_name = ?1)",
                [&name],
                |row| row.get(0),
            )?;
            if used {
                return Ok(GroupChange::NotEmpty);
            }
            let approved: Vec<String> = transaction
                .prepare("SELECT update_id FROM approvals WHERE group_name = ?1")?
                .query_map([&name], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            let next = read_version(&transaction)? + 1;
            for update_id in approved {
                log_before(&transaction, next, parse_uuid(&update_id)?, now)?;
            }
            transaction.execute("DELETE FROM approvals WHERE group_name = ?1", [&name])?;
            transaction.execute("DELETE FROM groups WHERE name = ?1", [&name])?;
            let version = bump_version(&transaction)?;
            transaction.commit()?;
            Ok(GroupChange::Done(version))
        })
        .await
    }

    pub(super) async fn credentials(
        &self,
        computer_id: Uuid,
    ) -> Result<Option<Credentials>, StoreError> {
        self.with(move |connection| {
            let row: Option<(Vec<u8>, String, String)> = connection
                .query_row(
                    "SELECT secret_sha256, machine_id, group_name FROM computers
                     WHERE computer_id = ?1",
                    [computer_id.to_string()],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            row.map(|(hash, machine_id, group)| {
                Ok(Credentials {
                    secret_sha256: token_from(&hash)?,
                    machine_id,
                    group,
                })
            })
            .transpose()
        })
        .await
    }

    pub(super) async fn add_computer(&self, computer: NewComputer) -> Result<String, StoreError> {
        let now = self.clock.now();
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // One that presented an identity may hold that identity's
            // anchor: a new version, and anchors below it get a full
            // snapshot. A fresh registration holds no anchor.
            let full_below = if computer.replaces_identity {
                version_to_sql(bump_version(&transaction)?)?
            } else {
                0
            };
            let group: String = transaction.query_row(
                "INSERT INTO computers (computer_id, secret_sha256, machine_id, hostname,
                     group_name, registered, full_sync_below)
                 VALUES (?1, ?2, ?3, ?4,
                     COALESCE((SELECT name FROM groups WHERE name = ?5), ?6), ?7, ?8)
                 RETURNING group_name",
                params![
                    computer.computer_id.to_string(),
                    &computer.secret_sha256[..],
                    computer.machine_id,
                    computer.hostname,
                    computer.target_group,
                    UNASSIGNED_COMPUTERS,
                    now.to_string(),
                    full_below
                ],
                |row| row.get(0),
            )?;
            transaction.commit()?;
            Ok(group)
        })
        .await
    }

    pub(super) async fn list_computers(
        &self,
        computer_id: Option<Uuid>,
    ) -> Result<Vec<Computer>, StoreError> {
        self.with(move |connection| {
            let mut statement = connection.prepare(
                "SELECT computer_id, machine_id, hostname, group_name, registered, last_sync,
                     stale_since
                 FROM computers WHERE ?1 IS NULL OR computer_id = ?1 ORDER BY hostname, computer_id",
            )?;
            let rows = statement.query_map([computer_id.map(|id| id.to_string())], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, Option<String>>(5)?,
                    row.get::<_, Option<String>>(6)?,
                ))
            })?;
            rows.map(|row| {
                let (id, machine_id, hostname, group, registered, last_sync, stale_since) = row?;
                let stale_since = stale_since.as_deref().map(parse_time).transpose()?;
                Ok(Computer {
                    computer_id: parse_uuid(&id)?,
                    machine_id,
                    hostname,
                    group,
                    registered: parse_time(&registered)?,
                    last_sync: last_sync.as_deref().map(parse_time).transpose()?,
                    stale: stale_since.is_some(),
                    stale_since,
                })
            })
            .collect()
        })
        .await
    }

    pub(super) async fn move_computer(
        &self,
        computer_id: Uuid,
        group: String,
    ) -> Result<GroupChange, StoreError> {
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if !group_exists(&transaction, &group)? {
                return Ok(GroupChange::UnknownGroup);
            }
            let version = read_version(&transaction)? + 1;
            // Its anchors from the old group get a full snapshot.
            let moved = transaction.execute(
                "UPDATE computers SET group_name = ?1, full_sync_below = ?2 WHERE computer_id = ?3",
                params![group, version_to_sql(version)?, computer_id.to_string()],
            )?;
            if moved == 0 {
                return Ok(GroupChange::UnknownComputer);
            }
            bump_version(&transaction)?;
            transaction.commit()?;
            Ok(GroupChange::Done(version))
        })
        .await
    }

    pub(super) async fn record_sync(&self, computer_id: Uuid) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.with(move |connection| {
            // Heard from: no longer stale (maintenance.rs).
            connection.execute(
                "UPDATE computers SET last_sync = ?1, stale_since = NULL WHERE computer_id = ?2",
                params![now.to_string(), computer_id.to_string()],
            )?;
            Ok(())
        })
        .await
    }

    pub(super) async fn set_approval(&self, approval: Approval) -> Result<GroupChange, StoreError> {
        let now = self.clock.now();
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let known: bool = transaction.query_row(
                "SELECT EXISTS (SELECT 1 FROM updates WHERE update_id = ?1)",
                [approval.update_id.to_string()],
                |row| row.get(0),
            )?;
            if !known {
                return Ok(GroupChange::UnknownUpdate);
            }
            if !group_exists(&transaction, &approval.group)? {
                return Ok(GroupChange::UnknownGroup);
            }
            log_before(
                &transaction,
                read_version(&transaction)? + 1,
                approval.update_id,
                now,
            )?;
            upsert_approval(&transaction, &approval)?;
            let version = bump_version(&transaction)?;
            transaction.commit()?;
            Ok(GroupChange::Done(version))
        })
        .await
    }

    pub(super) async fn approvals(
        &self,
        update_id: Option<Uuid>,
    ) -> Result<Vec<Approval>, StoreError> {
        self.with(move |connection| read_approvals(connection, update_id))
            .await
    }

    pub(super) async fn sync_view(&self, group: String) -> Result<SyncView, StoreError> {
        self.with(move |connection| {
            // One transaction: the version, the approvals and the revisions
            // are read as of one moment.
            let transaction = connection.transaction()?;
            let version = read_version(&transaction)?;
            read_view(&transaction, &group, None, version)
        })
        .await
    }

    pub(super) async fn sync_plan(
        &self,
        computer_id: Uuid,
        anchor: Option<u64>,
        cached: Vec<(String, u64)>,
    ) -> Result<Option<SyncPlan>, StoreError> {
        self.with(move |connection| {
            // One transaction: the computer's group, the version, the log
            // and the revisions are read as of one moment.
            let transaction = connection.transaction()?;
            let computer: Option<(String, i64)> = transaction
                .prepare_cached(
                    "SELECT group_name, full_sync_below FROM computers WHERE computer_id = ?1",
                )?
                .query_row([computer_id.to_string()], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            let Some((group, full_below)) = computer else {
                return Ok(None);
            };
            let (version, floor): (i64, i64) = transaction
                .prepare_cached("SELECT version, log_floor FROM catalog WHERE id = 1")?
                .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            let version = version_from(version)?;
            let plan = match answer(
                anchor,
                version,
                version_from(floor)?,
                version_from(full_below)?,
            ) {
                Answer::Current => SyncPlan::Current(version),
                Answer::Delta(base) => SyncPlan::Delta(read_delta(
                    &transaction,
                    &group,
                    Some(bucket(computer_id)),
                    base,
                    version,
                )?),
                Answer::Full => {
                    let key = super::snapshot_key(&group, computer_id, &read_gates(&transaction)?);
                    let view = if cached.contains(&(key.clone(), version)) {
                        None
                    } else {
                        Some(read_view(
                            &transaction,
                            &group,
                            Some(bucket(computer_id)),
                            version,
                        )?)
                    };
                    SyncPlan::Full {
                        group: key,
                        version,
                        view,
                    }
                }
            };
            Ok(Some(plan))
        })
        .await
    }

    pub(super) async fn prune_sync_log(&self, older_than: Timestamp) -> Result<u64, StoreError> {
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let cut: Option<i64> = transaction.query_row(
                "SELECT MAX(version) FROM sync_log WHERE logged < ?1",
                [older_than.as_second()],
                |row| row.get(0),
            )?;
            let Some(cut) = cut else {
                return Ok(0);
            };
            let removed = transaction.execute("DELETE FROM sync_log WHERE version <= ?1", [cut])?;
            transaction.execute(
                "UPDATE catalog SET log_floor = MAX(log_floor, ?1) WHERE id = 1",
                [cut],
            )?;
            transaction.commit()?;
            Ok(removed as u64)
        })
        .await
    }

    pub(super) async fn sync_log_floor(&self) -> Result<u64, StoreError> {
        self.with(|connection| {
            let floor: i64 =
                connection.query_row("SELECT log_floor FROM catalog WHERE id = 1", [], |row| {
                    row.get(0)
                })?;
            version_from(floor)
        })
        .await
    }
}

/// Status reports.
impl SqliteStore {
    pub(super) async fn store_report(
        &self,
        computer_id: Uuid,
        sequence: i64,
        inventory: String,
        rows: Vec<StateRow>,
    ) -> Result<i64, StoreError> {
        let now = self.clock.now();
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id = computer_id.to_string();
            let acknowledged: i64 = transaction.query_row(
                "SELECT acknowledged FROM computers WHERE computer_id = ?1",
                [&id],
                |row| row.get(0),
            )?;
            if sequence <= acknowledged {
                return Ok(acknowledged);
            }
            transaction.execute(
                "UPDATE computers SET acknowledged = ?1, last_report = ?2, inventory_json = ?3,
                     stale_since = NULL
                 WHERE computer_id = ?4",
                params![sequence, now.to_string(), inventory, id],
            )?;
            {
                let mut statement = transaction.prepare(
                    "INSERT INTO update_states (computer_id, update_id, state, revision_number,
                         result_code, hresult, observed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (computer_id, update_id) DO UPDATE SET
                         state = excluded.state, revision_number = excluded.revision_number,
                         result_code = excluded.result_code, hresult = excluded.hresult,
                         observed = excluded.observed",
                )?;
                for row in rows {
                    statement.execute(params![
                        id,
                        row.update_id.to_string(),
                        row.state,
                        row.revision_number,
                        row.result_code,
                        row.hresult,
                        row.time
                    ])?;
                }
            }
            transaction.commit()?;
            Ok(sequence)
        })
        .await
    }

    pub(super) async fn update_states(
        &self,
        update_id: Option<Uuid>,
    ) -> Result<Vec<(Uuid, StateRow)>, StoreError> {
        self.with(move |connection| {
            let mut statement = connection.prepare(
                "SELECT computer_id, update_id, revision_number, state, result_code, hresult,
                     observed
                 FROM update_states WHERE ?1 IS NULL OR update_id = ?1
                 ORDER BY computer_id, update_id",
            )?;
            let rows = statement.query_map([update_id.map(|id| id.to_string())], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i32>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, Option<String>>(4)?,
                    row.get::<_, Option<String>>(5)?,
                    row.get::<_, String>(6)?,
                ))
            })?;
            rows.map(|row| {
                let (computer, update, revision, state, result_code, hresult, time) = row?;
                let row = StateRow::read(
                    parse_uuid(&update)?,
                    revision,
                    &state,
                    result_code,
                    hresult,
                    time,
                )?;
                Ok((parse_uuid(&computer)?, row))
            })
            .collect()
        })
        .await
    }

    pub(super) async fn last_reports(
        &self,
    ) -> Result<Vec<(Uuid, String, Option<String>)>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare(
                "SELECT computer_id, last_report, inventory_json FROM computers
                 WHERE last_report IS NOT NULL",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<String>>(2)?,
                ))
            })?;
            rows.map(|row| {
                let (id, time, inventory) = row?;
                Ok((parse_uuid(&id)?, time, inventory))
            })
            .collect()
        })
        .await
    }
}

fn parse_uuid(text: &str) -> Result<Uuid, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("an ID {text:?}")))
}

fn group_exists(connection: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(connection.query_row(
        "SELECT EXISTS (SELECT 1 FROM groups WHERE name = ?1)",
        [name],
        |row| row.get(0),
    )?)
}

fn read_groups(connection: &Connection) -> Result<Vec<Group>, StoreError> {
    let mut statement = connection.prepare("SELECT name, parent FROM groups ORDER BY name")?;
    let rows = statement.query_map([], |row| {
        Ok(Group {
            name: row.get(0)?,
            parent: row.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn read_approvals(
    connection: &Connection,
    update_id: Option<Uuid>,
) -> Result<Vec<Approval>, StoreError> {
    let mut statement = connection.prepare(
        "SELECT update_id, group_name, action, deadline FROM approvals
         WHERE ?1 IS NULL OR update_id = ?1 ORDER BY update_id, group_name",
    )?;
    let rows = statement.query_map([update_id.map(|id| id.to_string())], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, Option<String>>(3)?,
        ))
    })?;
    rows.map(|row| {
        let (update_id, group, action, deadline) = row?;
        approval_from(&update_id, group, &action, deadline.as_deref())
    })
    .collect()
}

/// Fires the automatic approval rules for the revisions a publish adds,
/// in its transaction (their updates are logged already under the version
/// it makes): each approval a rule gives is stored unless the group has
/// its own approval of the update, or is gone.
fn fire_rules(
    connection: &Connection,
    candidates: &[Candidate],
    updates: &[super::PublishedUpdate],
) -> Result<Vec<super::RuleApproval>, StoreError> {
    let rules = read_rules(connection)?;
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    let now = Timestamp::now();
    let mut fired = Vec::new();
    for (candidate, published) in candidates.iter().zip(updates) {
        let is_new = match published.action {
            super::PublishAction::Unchanged => continue,
            super::PublishAction::Added => true,
            super::PublishAction::Revised => false,
        };
        for (rule, approval) in approvals_for(&rules, &candidate.revision.update, is_new, now) {
            if insert_if_absent(connection, &approval)? {
                fired.push(super::RuleApproval::new(rule, &approval));
            }
        }
    }
    Ok(fired)
}

/// Stores `approval`, replacing the group's approval of the update if it
/// has one.
fn upsert_approval(connection: &Connection, approval: &Approval) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO approvals (update_id, group_name, action, deadline)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (update_id, group_name)
             DO UPDATE SET action = excluded.action, deadline = excluded.deadline",
        )?
        .execute(params![
            approval.update_id.to_string(),
            approval.group,
            approval.action.as_str(),
            approval.deadline.map(|deadline| deadline.to_string())
        ])?;
    Ok(())
}

/// Stores `approval` unless its group has its own approval of the update
/// or does not exist; says whether it did.
fn insert_if_absent(connection: &Connection, approval: &Approval) -> Result<bool, StoreError> {
    let inserted = connection
        .prepare_cached(
            "INSERT INTO approvals (update_id, group_name, action, deadline)
             SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM groups WHERE name = ?2)
             ON CONFLICT (update_id, group_name) DO NOTHING",
        )?
        .execute(params![
            approval.update_id.to_string(),
            approval.group,
            approval.action.as_str(),
            approval.deadline.map(|deadline| deadline.to_string())
        ])?;
    Ok(inserted > 0)
}

fn read_rules(connection: &Connection) -> Result<Vec<ApprovalRule>, StoreError> {
    let mut statement =
        connection.prepare_cached("SELECT rule_json FROM approval_rules ORDER BY name")?;
    let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
    rows.map(|json| super::decode_rule(&json?)).collect()
}

/// Every rollout's rings that still gate its update, by update.
fn read_gates(
    connection: &Connection,
) -> Result<std::collections::HashMap<Uuid, Vec<Ring>>, StoreError> {
    Ok(read_rollouts(connection)?
        .into_iter()
        .filter_map(|rollout| rollout.gate().map(|rings| (rollout.update_id, rings)))
        .collect())
}

fn read_rollouts(connection: &Connection) -> Result<Vec<Rollout>, StoreError> {
    let mut statement =
        connection.prepare_cached("SELECT rollout_json FROM rollouts ORDER BY update_id")?;
    let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
    rows.map(|json| super::decode_rollout(&json?)).collect()
}

/// Rules and rollouts.
impl SqliteStore {
    pub(super) async fn rules(&self) -> Result<Vec<ApprovalRule>, StoreError> {
        self.with(|connection| read_rules(connection)).await
    }

    pub(super) async fn put_rule(&self, name: String, json: String) -> Result<bool, StoreError> {
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existed: bool = transaction.query_row(
                "SELECT EXISTS (SELECT 1 FROM approval_rules WHERE name = ?1)",
                [&name],
                |row| row.get(0),
            )?;
            if !existed {
                let count: i64 =
                    transaction
                        .query_row("SELECT COUNT(*) FROM approval_rules", [], |row| row.get(0))?;
                if usize::try_from(count).unwrap_or(usize::MAX) >= crate::rules::MAX_RULES {
                    return Err(StoreError::TooMany("approval rules"));
                }
            }
            transaction.execute(
                "INSERT INTO approval_rules (name, rule_json) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET rule_json = excluded.rule_json",
                params![name, json],
            )?;
            transaction.commit()?;
            Ok(!existed)
        })
        .await
    }

    pub(super) async fn remove_rule(&self, name: String) -> Result<bool, StoreError> {
        self.with(move |connection| {
            Ok(connection.execute("DELETE FROM approval_rules WHERE name = ?1", [name])? > 0)
        })
        .await
    }

    pub(super) async fn current_revisions(&self) -> Result<Vec<(Uuid, String)>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare(
                "SELECT update_id, revision_json FROM updates AS outer_row
                 WHERE declined = 0
                   AND revision_number = (SELECT MAX(revision_number) FROM updates
                                          WHERE update_id = outer_row.update_id)
                 ORDER BY update_id",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?;
            rows.map(|row| {
                let (id, json) = row?;
                Ok((parse_uuid(&id)?, json))
            })
            .collect()
        })
        .await
    }

    pub(super) async fn add_approvals(
        &self,
        approvals: Vec<Approval>,
    ) -> Result<(Vec<Approval>, u64), StoreError> {
        let now = self.clock.now();
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let next = read_version(&transaction)? + 1;
            let mut added = Vec::new();
            for approval in approvals {
                log_before(&transaction, next, approval.update_id, now)?;
                if insert_if_absent(&transaction, &approval)? {
                    added.push(approval);
                }
            }
            if added.is_empty() {
                // Nothing changed: the rows logged above are rolled back.
                return Ok((added, read_version(&transaction)?));
            }
            let version = bump_version(&transaction)?;
            transaction.commit()?;
            Ok((added, version))
        })
        .await
    }

    pub(super) async fn rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        self.with(|connection| read_rollouts(connection)).await
    }

    pub(super) async fn start_rollout(
        &self,
        rollout: Rollout,
        json: String,
    ) -> Result<GroupChange, StoreError> {
        let now = self.clock.now();
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id = rollout.update_id.to_string();
            let known: bool = transaction.query_row(
                "SELECT EXISTS (SELECT 1 FROM updates WHERE update_id = ?1)",
                [&id],
                |row| row.get(0),
            )?;
            if !known {
                return Ok(GroupChange::UnknownUpdate);
            }
            for ring in &rollout.plan.rings {
                if !group_exists(&transaction, &ring.group)? {
                    return Ok(GroupChange::UnknownGroup);
                }
            }
            log_before(
                &transaction,
                read_version(&transaction)? + 1,
                rollout.update_id,
                now,
            )?;
            for approval in super::rollout_approvals(&rollout) {
                upsert_approval(&transaction, &approval)?;
            }
            transaction.execute(
                "INSERT INTO rollouts (update_id, rollout_json) VALUES (?1, ?2)
                 ON CONFLICT (update_id) DO UPDATE SET rollout_json = excluded.rollout_json",
                params![id, json],
            )?;
            let version = bump_version(&transaction)?;
            transaction.commit()?;
            Ok(GroupChange::Done(version))
        })
        .await
    }

    pub(super) async fn replace_rollout(
        &self,
        update_id: Uuid,
        old: String,
        new: String,
    ) -> Result<Option<u64>, StoreError> {
        let now = self.clock.now();
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id = update_id.to_string();
            let stored: Option<String> = transaction
                .query_row(
                    "SELECT rollout_json FROM rollouts WHERE update_id = ?1",
                    [&id],
                    |row| row.get(0),
                )
                .optional()?;
            if stored.as_deref() != Some(old.as_str()) {
                return Ok(None);
            }
            log_before(
                &transaction,
                read_version(&transaction)? + 1,
                update_id,
                now,
            )?;
            transaction.execute(
                "UPDATE rollouts SET rollout_json = ?1 WHERE update_id = ?2",
                params![new, id],
            )?;
            let version = bump_version(&transaction)?;
            transaction.commit()?;
            Ok(Some(version))
        })
        .await
    }
}
