//! The PostgreSQL back end: a small pool; every publish is one transaction
//! that locks the catalog row first, so publishers on any front end take
//! turns and the version they bump is the database's.

use std::collections::HashMap;
use std::sync::Arc;

mod upstreams;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use jiff::Timestamp;
use tokio_postgres::NoTls;
use uuid::Uuid;

pub(super) mod maintenance;

use super::changes::{Serving, earliest, plan_delta};
use super::{
    Answer, Candidate, DeclineOutcome, DeltaView, Offered, PublishAction, PublishReport,
    SCHEMA_VERSION, StateRow, StoreError, StoredRevision, SyncPlan, SyncView, answer,
    approval_from, parse_time, token_from, version_from,
};
use crate::clock::Clock;
use crate::fleet::{
    Approval, Computer, Credentials, Group, GroupChange, NewComputer, UNASSIGNED_COMPUTERS,
    ancestry, offered,
};
use crate::rollouts::{Ring, Rollout, admitted, bucket};
use crate::rules::{ApprovalRule, approvals_for};

/// Connections per process: enough for a front end, small beside
/// PostgreSQL's default of 100 for several.
const POOL_SIZE: usize = 8;

/// Serialises migrations of processes starting together (an arbitrary key).
const MIGRATION_LOCK: i64 = 0x006f_7065_6e77_7561;

/// Numbered migrations; SQLite's are the same in spirit.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE updates (
         update_id UUID NOT NULL,
         revision_number INTEGER NOT NULL,
         title TEXT NOT NULL,
         revision_json TEXT NOT NULL,
         digest TEXT NOT NULL,
         declined BOOLEAN NOT NULL DEFAULT FALSE,
         published TEXT NOT NULL,
         PRIMARY KEY (update_id, revision_number)
     );
     CREATE TABLE content (
         sha256 TEXT PRIMARY KEY,
         size BIGINT NOT NULL,
         added TEXT NOT NULL
     );
     CREATE TABLE admin_tokens (
         sha256 BYTEA PRIMARY KEY,
         added TEXT NOT NULL
     );
     CREATE TABLE catalog (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         version BIGINT NOT NULL
     );
     INSERT INTO catalog (id, version) VALUES (1, 0);",
    ),
    (
        2,
        "CREATE TABLE service (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             service_id UUID NOT NULL
         );
         CREATE TABLE groups (
             name TEXT PRIMARY KEY,
             parent TEXT REFERENCES groups (name)
         );
         INSERT INTO groups (name, parent) VALUES
             ('All Computers', NULL), ('Unassigned Computers', 'All Computers');
         CREATE TABLE computers (
             computer_id UUID PRIMARY KEY,
             secret_sha256 BYTEA NOT NULL,
             machine_id TEXT NOT NULL,
             hostname TEXT NOT NULL,
             group_name TEXT NOT NULL REFERENCES groups (name),
             registered TEXT NOT NULL,
             last_sync TEXT
         );
         CREATE TABLE approvals (
             update_id UUID NOT NULL,
             group_name TEXT NOT NULL REFERENCES groups (name),
             action TEXT NOT NULL,
             deadline TEXT,
             PRIMARY KEY (update_id, group_name)
         );",
    ),
    (
        3,
        "ALTER TABLE computers ADD COLUMN acknowledged BIGINT NOT NULL DEFAULT 0;
         ALTER TABLE computers ADD COLUMN last_report TEXT;
         ALTER TABLE computers ADD COLUMN inventory_json TEXT;
         CREATE TABLE update_states (
             computer_id UUID NOT NULL REFERENCES computers (computer_id),
             update_id UUID NOT NULL,
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
        "ALTER TABLE catalog ADD COLUMN log_floor BIGINT NOT NULL DEFAULT 0;
         UPDATE catalog SET log_floor = version;
         ALTER TABLE computers ADD COLUMN full_sync_below BIGINT NOT NULL DEFAULT 0;
         CREATE TABLE sync_log (
             version BIGINT NOT NULL,
             update_id UUID NOT NULL,
             before_json TEXT NOT NULL,
             logged BIGINT NOT NULL,
             PRIMARY KEY (version, update_id)
         );",
    ),
    (
        10,
        "CREATE TABLE upstreams (
             name TEXT PRIMARY KEY,
             config_json TEXT NOT NULL,
             state_json TEXT NOT NULL,
             added TEXT NOT NULL
         );
         CREATE TABLE upstream_content (
             upstream TEXT NOT NULL,
             update_id UUID NOT NULL,
             sha256 TEXT NOT NULL,
             size BIGINT NOT NULL,
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
             update_id UUID PRIMARY KEY,
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
             id_sha256 BYTEA PRIMARY KEY,
             token_sha256 BYTEA NOT NULL,
             role TEXT NOT NULL,
             csrf TEXT NOT NULL,
             expires BIGINT NOT NULL
         );
         CREATE TABLE console_tokens (
             sha256 BYTEA PRIMARY KEY,
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
         CREATE INDEX updates_declined ON updates (update_id) WHERE declined;",
    ),
    (
        50,
        // Maintenance (maintenance.rs): the stale mark, the runs' records,
        // the updates superseded by one maintenance removed, when each
        // update was first found obsolete, and the index its
        // queries need beside the console's (migration 40); autovacuum reclaims what it deletes.
        "ALTER TABLE computers ADD COLUMN stale_since TEXT;
         CREATE TABLE maintenance_runs (
             id BIGSERIAL PRIMARY KEY,
             started TEXT NOT NULL,
             run_json TEXT NOT NULL
         );
         CREATE TABLE maintenance_superseded (
             update_id UUID PRIMARY KEY
         );
         CREATE TABLE maintenance_obsolete (
             update_id UUID PRIMARY KEY,
             since BIGINT NOT NULL
         );
         CREATE INDEX sync_log_by_logged ON sync_log (logged);",
    ),
];

/// The rows a publish adds, column by column (for one `unnest` insert).
#[derive(Default)]
struct NewRows {
    update_id: Vec<Uuid>,
    revision_number: Vec<i32>,
    title: Vec<String>,
    json: Vec<String>,
    digest: Vec<String>,
    declined: Vec<bool>,
}

/// The PostgreSQL store (cheap to clone).
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    clock: Clock,
    /// Held by this store's maintenance run (one at a time per store).
    maintenance_run: Arc<tokio::sync::Mutex<()>>,
}

impl PostgresStore {
    pub(super) async fn open(url: &str) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url.parse()?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|error| StoreError::Pool(error.to_string()))?;
        let store = PostgresStore {
            pool,
            clock: Clock::system(),
            maintenance_run: Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    pub(super) fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// The lock of this store's maintenance runs.
    pub(super) fn maintenance_run(&self) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(&self.maintenance_run)
    }

    pub(super) async fn client(&self) -> Result<Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|error| StoreError::Pool(error.to_string()))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        transaction
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version BIGINT PRIMARY KEY,
                     applied TEXT NOT NULL
                 )",
            )
            .await?;
        let found = current_version(&transaction).await?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { found });
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > found) {
            transaction.batch_execute(sql).await?;
            transaction
                .execute(
                    "INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)",
                    &[version, &Timestamp::now().to_string()],
                )
                .await?;
        }
        // The serviceId is made once, by the first start, and kept.
        transaction
            .execute(
                "INSERT INTO service (id, service_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                &[&Uuid::new_v4()],
            )
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    pub(super) async fn schema_version(&self) -> Result<i64, StoreError> {
        current_version(&self.client().await?).await
    }

    pub(super) async fn add_admin_token(&self, sha256: [u8; 32]) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO admin_tokens (sha256, added) VALUES ($1, $2)
                 ON CONFLICT (sha256) DO NOTHING",
                &[&&sha256[..], &self.clock.now().to_string()],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn admin_tokens(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        let rows = self
            .client()
            .await?
            .query("SELECT sha256 FROM admin_tokens", &[])
            .await?;
        rows.iter()
            .map(|row| token_from(row.try_get::<_, &[u8]>(0)?))
            .collect()
    }

    pub(super) async fn content_size(&self, sha256: &str) -> Result<Option<u64>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt("SELECT size FROM content WHERE sha256 = $1", &[&sha256])
            .await?;
        row.map(|row| {
            let size: i64 = row.try_get(0)?;
            u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("content size {size}")))
        })
        .transpose()
    }

    pub(super) async fn add_content(&self, sha256: &str, size: u64) -> Result<(), StoreError> {
        let size =
            i64::try_from(size).map_err(|_| StoreError::Corrupt(format!("content size {size}")))?;
        self.client()
            .await?
            .execute(
                "INSERT INTO content (sha256, size, added) VALUES ($1, $2, $3)
                 ON CONFLICT (sha256) DO NOTHING",
                &[&sha256, &size, &self.clock.now().to_string()],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn publish(
        &self,
        candidates: Vec<Candidate>,
        require_content: bool,
    ) -> Result<PublishReport, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        // The catalog row's lock: publishers and decliners on every front
        // end take turns, and the version read here is the one bumped.
        let row = transaction
            .query_one("SELECT version FROM catalog WHERE id = 1 FOR UPDATE", &[])
            .await?;
        let version: i64 = row.try_get(0)?;

        // Three statements whatever the number of revisions: what content
        // is missing, the updates' current revisions, the new rows.
        let mut digests: Vec<String> = candidates
            .iter()
            .flat_map(|candidate| candidate.content_digests())
            .collect();
        digests.sort();
        digests.dedup();
        let missing: Vec<String> = transaction
            .query(
                "SELECT wanted FROM unnest($1::text[]) AS wanted
                 WHERE NOT EXISTS (SELECT 1 FROM content WHERE sha256 = wanted)
                 ORDER BY wanted",
                &[&digests],
            )
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        if require_content && !missing.is_empty() {
            return Err(StoreError::MissingContent(missing));
        }

        let ids: Vec<Uuid> = candidates.iter().map(Candidate::update_id).collect();
        let mut current: HashMap<Uuid, (i32, String, bool)> = HashMap::new();
        for row in transaction
            .query(
                "SELECT DISTINCT ON (update_id) update_id, revision_number, digest, declined
                 FROM updates WHERE update_id = ANY($1)
                 ORDER BY update_id, revision_number DESC",
                &[&ids],
            )
            .await?
        {
            current.insert(
                row.try_get(0)?,
                (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?),
            );
        }

        let time = self.clock.now();
        let now = time.to_string();
        let mut updates = Vec::with_capacity(candidates.len());
        let mut rows = NewRows::default();
        for candidate in &candidates {
            let update_id = candidate.update_id();
            let known = current.get(&update_id);
            let (published, json) =
                candidate.plan(known.map(|(number, digest, _)| (*number, digest.as_str())))?;
            if let Some(json) = json {
                rows.update_id.push(update_id);
                rows.revision_number.push(published.revision_number);
                rows.title.push(candidate.title().to_owned());
                rows.json.push(json);
                rows.digest.push(candidate.digest.clone());
                // A new revision of a declined update stays declined.
                rows.declined
                    .push(known.is_some_and(|(_, _, declined)| *declined));
            }
            updates.push(published);
        }
        if !rows.update_id.is_empty() {
            log_before(&transaction, next_version(version)?, &rows.update_id, time).await?;
            transaction
                .execute(
                    "INSERT INTO updates (update_id, revision_number, title, revision_json,
                         digest, declined, published)
                     SELECT *, $7 FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[],
                         $5::text[], $6::bool[])",
                    &[
                        &rows.update_id,
                        &rows.revision_number,
                        &rows.title,
                        &rows.json,
                        &rows.digest,
                        &rows.declined,
                        &now,
                    ],
                )
                .await?;
        }
        let rule_approvals = fire_rules(&transaction, &candidates, &updates).await?;
        let changed = updates
            .iter()
            .any(|update| update.action != PublishAction::Unchanged);
        let catalog_version = if changed {
            bump_version(&transaction).await?
        } else {
            version_from(version)?
        };
        transaction.commit().await?;
        Ok(PublishReport {
            changed,
            catalog_version,
            updates,
            rule_approvals,
        })
    }

    pub(super) async fn decline(&self, update_id: Uuid) -> Result<DeclineOutcome, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let row = transaction
            .query_one("SELECT version FROM catalog WHERE id = 1 FOR UPDATE", &[])
            .await?;
        let version: i64 = row.try_get(0)?;
        let state = transaction
            .query_opt(
                "SELECT bool_and(declined) FROM updates WHERE update_id = $1 HAVING COUNT(*) > 0",
                &[&update_id],
            )
            .await?
            .map(|row| row.try_get::<_, bool>(0))
            .transpose()?;
        let outcome = match state {
            None => DeclineOutcome::Unknown,
            Some(true) => DeclineOutcome::AlreadyDeclined(version_from(version)?),
            Some(false) => {
                log_before(
                    &transaction,
                    next_version(version)?,
                    &[update_id],
                    self.clock.now(),
                )
                .await?;
                transaction
                    .execute(
                        "UPDATE updates SET declined = TRUE WHERE update_id = $1",
                        &[&update_id],
                    )
                    .await?;
                DeclineOutcome::Declined(bump_version(&transaction).await?)
            }
        };
        transaction.commit().await?;
        Ok(outcome)
    }

    pub(super) async fn list_updates(&self) -> Result<Vec<StoredRevision>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT DISTINCT ON (update_id)
                     update_id, revision_number, title, digest, declined, published
                 FROM updates ORDER BY update_id, revision_number DESC",
                &[],
            )
            .await?;
        rows.iter().map(stored_revision).collect()
    }

    pub(super) async fn update_history(
        &self,
        update_id: Uuid,
    ) -> Result<Option<(Vec<StoredRevision>, String)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT update_id, revision_number, title, digest, declined, published,
                     revision_json
                 FROM updates WHERE update_id = $1 ORDER BY revision_number",
                &[&update_id],
            )
            .await?;
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        let json: String = last.try_get(6)?;
        let revisions = rows
            .iter()
            .map(stored_revision)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((revisions, json)))
    }

    pub(super) async fn catalog_version(&self) -> Result<u64, StoreError> {
        // Every sync asks this: a cached statement saves the Parse round trip.
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT version FROM catalog WHERE id = 1")
            .await?;
        let row = client.query_one(&statement, &[]).await?;
        version_from(row.try_get(0)?)
    }
}

fn stored_revision(row: &tokio_postgres::Row) -> Result<StoredRevision, StoreError> {
    Ok(StoredRevision {
        update_id: row.try_get(0)?,
        revision_number: row.try_get(1)?,
        title: row.try_get(2)?,
        digest: row.try_get(3)?,
        declined: row.try_get(4)?,
        published: parse_time(row.try_get(5)?)?,
    })
}

async fn bump_version(client: &impl deadpool_postgres::GenericClient) -> Result<u64, StoreError> {
    let row = client
        .query_one(
            "UPDATE catalog SET version = version + 1 WHERE id = 1 RETURNING version",
            &[],
        )
        .await?;
    version_from(row.try_get(0)?)
}

async fn current_version(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<i64, StoreError> {
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// The fleet: groups, computers, approvals. Every change that bumps the
/// catalog version locks the catalog row first, as a publish does.
impl PostgresStore {
    pub(super) async fn service_id(&self) -> Result<Uuid, StoreError> {
        let row = self
            .client()
            .await?
            .query_one("SELECT service_id FROM service WHERE id = 1", &[])
            .await?;
        Ok(row.try_get(0)?)
    }

    pub(super) async fn list_groups(&self) -> Result<Vec<Group>, StoreError> {
        read_groups(&self.client().await?).await
    }

    pub(super) async fn add_group(
        &self,
        name: &str,
        parent: &str,
    ) -> Result<GroupChange, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        lock_catalog(&transaction).await?;
        if !group_exists(&transaction, parent).await? {
            return Ok(GroupChange::UnknownGroup);
        }
        if group_exists(&transaction, name).await? {
            return Ok(GroupChange::Exists);
        }
        transaction
            .execute(
                "INSERT INTO groups (name, parent) VALUES ($1, $2)",
                &[&name, &parent],
            )
            .await?;
        let version = bump_version(&transaction).await?;
        transaction.commit().await?;
        Ok(GroupChange::Done(version))
    }

    pub(super) async fn remove_group(&self, name: &str) -> Result<GroupChange, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let version = lock_catalog(&transaction).await?;
        if !group_exists(&transaction, name).await? {
            return Ok(GroupChange::UnknownGroup);
        }
        let used: bool = transaction
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM groups WHERE parent = $1)
                     OR EXISTS (SELECT 1 FROM computers WHERE group_name = $1)",
                &[&name],
            )
            .await?
            .try_get(0)?;
        if used {
            return Ok(GroupChange::NotEmpty);
        }
        let approved: Vec<Uuid> = transaction
            .query(
                "SELECT update_id FROM approvals WHERE group_name = $1",
                &[&name],
            )
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        log_before(
            &transaction,
            next_version(version)?,
            &approved,
            self.clock.now(),
        )
        .await?;
        transaction
            .execute("DELETE FROM approvals WHERE group_name = $1", &[&name])
            .await?;
        transaction
            .execute("DELETE FROM groups WHERE name = $1", &[&name])
            .await?;
        let version = bump_version(&transaction).await?;
        transaction.commit().await?;
        Ok(GroupChange::Done(version))
    }

    pub(super) async fn credentials(
        &self,
        computer_id: Uuid,
    ) -> Result<Option<Credentials>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT secret_sha256, machine_id, group_name FROM computers
                 WHERE computer_id = $1",
            )
            .await?;
        let row = client.query_opt(&statement, &[&computer_id]).await?;
        row.map(|row| {
            Ok(Credentials {
                secret_sha256: token_from(row.try_get::<_, &[u8]>(0)?)?,
                machine_id: row.try_get(1)?,
                group: row.try_get(2)?,
            })
        })
        .transpose()
    }

    pub(super) async fn add_computer(&self, computer: NewComputer) -> Result<String, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        // One that presented an identity may hold that identity's anchor:
        // a new version, and anchors below it get a full snapshot. A fresh
        // registration holds no anchor.
        let full_below: i64 = if computer.replaces_identity {
            lock_catalog(&transaction).await?;
            version_to_sql(bump_version(&transaction).await?)?
        } else {
            0
        };
        let row = transaction
            .query_one(
                "INSERT INTO computers (computer_id, secret_sha256, machine_id, hostname,
                     group_name, registered, full_sync_below)
                 VALUES ($1, $2, $3, $4,
                     COALESCE((SELECT name FROM groups WHERE name = $5), $6), $7, $8)
                 RETURNING group_name",
                &[
                    &computer.computer_id,
                    &&computer.secret_sha256[..],
                    &computer.machine_id,
                    &computer.hostname,
                    &computer.target_group,
                    &UNASSIGNED_COMPUTERS,
                    &self.clock.now().to_string(),
                    &full_below,
                ],
            )
            .await?;
        let group = row.try_get(0)?;
        transaction.commit().await?;
        Ok(group)
    }

    pub(super) async fn list_computers(
        &self,
        computer_id: Option<Uuid>,
    ) -> Result<Vec<Computer>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT computer_id, machine_id, hostname, group_name, registered, last_sync,
                     stale_since
                 FROM computers WHERE $1::uuid IS NULL OR computer_id = $1
                 ORDER BY hostname, computer_id",
                &[&computer_id],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let stale_since = row
                    .try_get::<_, Option<&str>>(6)?
                    .map(parse_time)
                    .transpose()?;
                Ok(Computer {
                    computer_id: row.try_get(0)?,
                    machine_id: row.try_get(1)?,
                    hostname: row.try_get(2)?,
                    group: row.try_get(3)?,
                    registered: parse_time(row.try_get(4)?)?,
                    last_sync: row
                        .try_get::<_, Option<&str>>(5)?
                        .map(parse_time)
                        .transpose()?,
                    stale: stale_since.is_some(),
                    stale_since,
                })
            })
            .collect()
    }

    pub(super) async fn move_computer(
        &self,
        computer_id: Uuid,
        group: &str,
    ) -> Result<GroupChange, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let version = next_version(lock_catalog(&transaction).await?)?;
        if !group_exists(&transaction, group).await? {
            return Ok(GroupChange::UnknownGroup);
        }
        // Its anchors from the old group get a full snapshot.
        let moved = transaction
            .execute(
                "UPDATE computers SET group_name = $1, full_sync_below = $2 WHERE computer_id = $3",
                &[&group, &version_to_sql(version)?, &computer_id],
            )
            .await?;
        if moved == 0 {
            return Ok(GroupChange::UnknownComputer);
        }
        bump_version(&transaction).await?;
        transaction.commit().await?;
        Ok(GroupChange::Done(version))
    }

    pub(super) async fn record_sync(&self, computer_id: Uuid) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            // Heard from: no longer stale (maintenance.rs).
            .prepare_cached(
                "UPDATE computers SET last_sync = $1, stale_since = NULL WHERE computer_id = $2",
            )
            .await?;
        client
            .execute(&statement, &[&self.clock.now().to_string(), &computer_id])
            .await?;
        Ok(())
    }

    pub(super) async fn set_approval(&self, approval: Approval) -> Result<GroupChange, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let version = lock_catalog(&transaction).await?;
        let known: bool = transaction
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM updates WHERE update_id = $1)",
                &[&approval.update_id],
            )
            .await?
            .try_get(0)?;
        if !known {
            return Ok(GroupChange::UnknownUpdate);
        }
        if !group_exists(&transaction, &approval.group).await? {
            return Ok(GroupChange::UnknownGroup);
        }
        log_before(
            &transaction,
            next_version(version)?,
            &[approval.update_id],
            self.clock.now(),
        )
        .await?;
        upsert_approval(&transaction, &approval).await?;
        let version = bump_version(&transaction).await?;
        transaction.commit().await?;
        Ok(GroupChange::Done(version))
    }

    pub(super) async fn approvals(
        &self,
        update_id: Option<Uuid>,
    ) -> Result<Vec<Approval>, StoreError> {
        read_approvals(&self.client().await?, update_id).await
    }

    /// A transaction that reads as of one moment, whatever other front
    /// ends commit meanwhile.
    async fn snapshot_transaction(
        client: &mut Object,
    ) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
        Ok(client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?)
    }

    pub(super) async fn sync_view(&self, group: &str) -> Result<SyncView, StoreError> {
        let mut client = self.client().await?;
        let transaction = Self::snapshot_transaction(&mut client).await?;
        let version: i64 = transaction
            .query_one("SELECT version FROM catalog WHERE id = 1", &[])
            .await?
            .try_get(0)?;
        let view = read_view(&transaction, group, None, version_from(version)?).await?;
        transaction.commit().await?;
        Ok(view)
    }

    pub(super) async fn sync_plan(
        &self,
        computer_id: Uuid,
        anchor: Option<u64>,
        cached: Vec<(String, u64)>,
    ) -> Result<Option<SyncPlan>, StoreError> {
        let mut client = self.client().await?;
        let transaction = Self::snapshot_transaction(&mut client).await?;
        let statement = transaction
            .prepare_cached(
                "SELECT c.group_name, c.full_sync_below, catalog.version, catalog.log_floor
                 FROM computers AS c, catalog WHERE c.computer_id = $1 AND catalog.id = 1",
            )
            .await?;
        let Some(row) = transaction.query_opt(&statement, &[&computer_id]).await? else {
            return Ok(None);
        };
        let group: String = row.try_get(0)?;
        let full_below = version_from(row.try_get(1)?)?;
        let version = version_from(row.try_get(2)?)?;
        let floor = version_from(row.try_get(3)?)?;
        let plan = match answer(anchor, version, floor, full_below) {
            Answer::Current => SyncPlan::Current(version),
            Answer::Delta(base) => SyncPlan::Delta(
                read_delta(
                    &transaction,
                    &group,
                    Some(bucket(computer_id)),
                    base,
                    version,
                )
                .await?,
            ),
            Answer::Full => {
                let gates = read_gates(&transaction).await?;
                let key = super::snapshot_key(&group, computer_id, &gates);
                let view = if cached.contains(&(key.clone(), version)) {
                    None
                } else {
                    Some(read_view(&transaction, &group, Some(bucket(computer_id)), version).await?)
                };
                SyncPlan::Full {
                    group: key,
                    version,
                    view,
                }
            }
        };
        transaction.commit().await?;
        Ok(Some(plan))
    }

    pub(super) async fn prune_sync_log(&self, older_than: Timestamp) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        lock_catalog(&transaction).await?;
        let cut: Option<i64> = transaction
            .query_one(
                "SELECT MAX(version) FROM sync_log WHERE logged < $1",
                &[&older_than.as_second()],
            )
            .await?
            .try_get(0)?;
        let Some(cut) = cut else {
            return Ok(0);
        };
        let removed = transaction
            .execute("DELETE FROM sync_log WHERE version <= $1", &[&cut])
            .await?;
        transaction
            .execute(
                "UPDATE catalog SET log_floor = GREATEST(log_floor, $1) WHERE id = 1",
                &[&cut],
            )
            .await?;
        transaction.commit().await?;
        Ok(removed)
    }

    pub(super) async fn sync_log_floor(&self) -> Result<u64, StoreError> {
        let row = self
            .client()
            .await?
            .query_one("SELECT log_floor FROM catalog WHERE id = 1", &[])
            .await?;
        version_from(row.try_get(0)?)
    }
}

/// The full snapshot's revisions for a computer in `group` and rollout
/// `bucket`, read in `client`'s transaction.
async fn read_view(
    client: &impl deadpool_postgres::GenericClient,
    group: &str,
    bucket: Option<u8>,
    version: u64,
) -> Result<SyncView, StoreError> {
    let groups = read_groups(client).await?;
    let approvals = read_approvals(client, None).await?;
    let mut offers = offered(group, &groups, &approvals);
    let chain = ancestry(group, &groups);
    let gates = read_gates(client).await?;
    offers.retain(|update_id, _| {
        gates
            .get(update_id)
            .is_none_or(|rings| admitted(rings, &chain, bucket))
    });
    let ids: Vec<Uuid> = offers.keys().copied().collect();
    let rows = client
        .query(
            "SELECT update_id, revision_json FROM (
                 SELECT DISTINCT ON (update_id) update_id, revision_json, declined
                 FROM updates WHERE update_id = ANY($1)
                 ORDER BY update_id, revision_number DESC
             ) AS current WHERE NOT declined",
            &[&ids],
        )
        .await?;
    let mut revisions = Vec::with_capacity(rows.len());
    for row in rows {
        let update_id: Uuid = row.try_get(0)?;
        if let Some(offer) = offers.get(&update_id) {
            revisions.push(Offered {
                json: row.try_get(1)?,
                offer: *offer,
            });
        }
    }
    Ok(SyncView { version, revisions })
}

/// The delta from `base` for a computer in `group`, read in `client`'s
/// transaction: four statements whatever the number of changes.
async fn read_delta(
    client: &impl deadpool_postgres::GenericClient,
    group: &str,
    bucket: Option<u8>,
    base: u64,
    version: u64,
) -> Result<DeltaView, StoreError> {
    let rows = client
        .query(
            "SELECT update_id, before_json FROM sync_log WHERE version > $1
             ORDER BY version, update_id",
            &[&version_to_sql(base)?],
        )
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<Vec<(Uuid, String)>, StoreError>>()?;
    let before = earliest(rows)?;
    let chain = ancestry(group, &read_groups(client).await?);
    let ids: Vec<Uuid> = before.iter().map(|(update_id, _)| *update_id).collect();
    let now = servings(client, &ids).await?;
    let plan = plan_delta(&chain, bucket, &before, &now);
    let (wanted, numbers): (Vec<Uuid>, Vec<i32>) = plan
        .changed
        .iter()
        .map(|(update_id, served)| (*update_id, served.revision))
        .unzip();
    let mut json: HashMap<Uuid, String> = HashMap::with_capacity(wanted.len());
    for row in client
        .query(
            "SELECT u.update_id, u.revision_json FROM updates AS u
             JOIN unnest($1::uuid[], $2::int[]) AS w (update_id, revision_number)
             ON u.update_id = w.update_id AND u.revision_number = w.revision_number",
            &[&wanted, &numbers],
        )
        .await?
    {
        json.insert(row.try_get(0)?, row.try_get(1)?);
    }
    let mut changed = Vec::with_capacity(plan.changed.len());
    for (update_id, served) in plan.changed {
        let json = json.remove(&update_id).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "no revision {} of update {update_id}",
                served.revision
            ))
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

/// The serving state of each of `ids` (see `changes::Serving`).
async fn servings(
    client: &impl deadpool_postgres::GenericClient,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Serving>, StoreError> {
    let mut approvals: HashMap<Uuid, Vec<Approval>> = HashMap::new();
    for row in client
        .query(
            "SELECT update_id::text, group_name, action, deadline FROM approvals
             WHERE update_id = ANY($1)",
            &[&ids],
        )
        .await?
    {
        let approval = approval_from(
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
        )?;
        approvals
            .entry(approval.update_id)
            .or_default()
            .push(approval);
    }
    let mut current: HashMap<Uuid, (i32, bool)> = HashMap::with_capacity(ids.len());
    for row in client
        .query(
            "SELECT DISTINCT ON (update_id) update_id, revision_number, declined
             FROM updates WHERE update_id = ANY($1)
             ORDER BY update_id, revision_number DESC",
            &[&ids],
        )
        .await?
    {
        current.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
    }
    let mut gates: HashMap<Uuid, Vec<Ring>> = HashMap::new();
    for row in client
        .query(
            "SELECT rollout_json FROM rollouts WHERE update_id = ANY($1)",
            &[&ids],
        )
        .await?
    {
        let rollout = super::decode_rollout(row.try_get(0)?)?;
        if let Some(rings) = rollout.gate() {
            gates.insert(rollout.update_id, rings);
        }
    }
    Ok(ids
        .iter()
        .map(|update_id| {
            let state = current.get(update_id);
            let own = approvals.get(update_id).map_or(&[][..], Vec::as_slice);
            (
                *update_id,
                Serving::new(
                    state.map(|(revision, _)| *revision),
                    state.is_some_and(|(_, declined)| *declined),
                    *update_id,
                    own,
                    gates.remove(update_id),
                ),
            )
        })
        .collect())
}

/// Writes the serving state of `ids` as it is now into the change log,
/// under `version`, the version the change about to be made will take.
/// Call it before changing them; the first row of one version wins.
async fn log_before(
    client: &impl deadpool_postgres::GenericClient,
    version: u64,
    ids: &[Uuid],
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    let states = servings(client, &ids).await?;
    let before = ids
        .iter()
        .map(|update_id| {
            states
                .get(update_id)
                .map_or_else(|| Serving::default().encode(), Serving::encode)
        })
        .collect::<Result<Vec<_>, _>>()?;
    client
        .execute(
            "INSERT INTO sync_log (version, update_id, before_json, logged)
             SELECT $1, id, json, $4 FROM unnest($2::uuid[], $3::text[]) AS t (id, json)
             ON CONFLICT (version, update_id) DO NOTHING",
            &[&version_to_sql(version)?, &ids, &before, &now.as_second()],
        )
        .await?;
    Ok(())
}

fn version_to_sql(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::Corrupt(format!("catalog version {version}")))
}

/// The version a change made now will take, after `version`.
fn next_version(version: i64) -> Result<u64, StoreError> {
    Ok(version_from(version)? + 1)
}

/// Status reports.
impl PostgresStore {
    pub(super) async fn store_report(
        &self,
        computer_id: Uuid,
        sequence: i64,
        inventory: String,
        rows: Vec<StateRow>,
    ) -> Result<i64, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        // The computer's row is locked, so two front ends storing its
        // reports at once take turns and the later sees the earlier's
        // acknowledgement.
        let acknowledged: i64 = transaction
            .query_one(
                "SELECT acknowledged FROM computers WHERE computer_id = $1 FOR UPDATE",
                &[&computer_id],
            )
            .await?
            .try_get(0)?;
        if sequence <= acknowledged {
            return Ok(acknowledged);
        }
        transaction
            .execute(
                "UPDATE computers SET acknowledged = $1, last_report = $2, inventory_json = $3,
                     stale_since = NULL
                 WHERE computer_id = $4",
                &[
                    &sequence,
                    &self.clock.now().to_string(),
                    &inventory,
                    &computer_id,
                ],
            )
            .await?;
        let mut columns = StateColumns::default();
        for row in rows {
            columns.update_id.push(row.update_id);
            columns.state.push(row.state);
            columns.revision_number.push(row.revision_number);
            columns.result_code.push(row.result_code);
            columns.hresult.push(row.hresult);
            columns.time.push(row.time);
        }
        transaction
            .execute(
                "INSERT INTO update_states (computer_id, update_id, state, revision_number,
                     result_code, hresult, observed)
                 SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::int[], $5::text[],
                     $6::text[], $7::text[])
                 ON CONFLICT (computer_id, update_id) DO UPDATE SET
                     state = excluded.state, revision_number = excluded.revision_number,
                     result_code = excluded.result_code, hresult = excluded.hresult,
                     observed = excluded.observed",
                &[
                    &computer_id,
                    &columns.update_id,
                    &columns.state,
                    &columns.revision_number,
                    &columns.result_code,
                    &columns.hresult,
                    &columns.time,
                ],
            )
            .await?;
        transaction.commit().await?;
        Ok(sequence)
    }

    pub(super) async fn update_states(
        &self,
        update_id: Option<Uuid>,
    ) -> Result<Vec<(Uuid, StateRow)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT computer_id, update_id, revision_number, state, result_code, hresult,
                     observed
                 FROM update_states WHERE $1::uuid IS NULL OR update_id = $1
                 ORDER BY computer_id, update_id",
                &[&update_id],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let state = StateRow::read(
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                    row.try_get(5)?,
                    row.try_get(6)?,
                )?;
                Ok((row.try_get(0)?, state))
            })
            .collect()
    }

    pub(super) async fn last_reports(
        &self,
    ) -> Result<Vec<(Uuid, String, Option<String>)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT computer_id, last_report, inventory_json FROM computers
                 WHERE last_report IS NOT NULL",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect()
    }
}

/// A report's states, column by column (for one `unnest` insert).
#[derive(Default)]
struct StateColumns {
    update_id: Vec<Uuid>,
    state: Vec<&'static str>,
    revision_number: Vec<i32>,
    result_code: Vec<Option<String>>,
    hresult: Vec<Option<String>>,
    time: Vec<String>,
}

/// Locks the catalog row (writers on every front end take turns) and
/// returns the version.
async fn lock_catalog(client: &impl deadpool_postgres::GenericClient) -> Result<i64, StoreError> {
    Ok(client
        .query_one("SELECT version FROM catalog WHERE id = 1 FOR UPDATE", &[])
        .await?
        .try_get(0)?)
}

async fn group_exists(
    client: &impl deadpool_postgres::GenericClient,
    name: &str,
) -> Result<bool, StoreError> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM groups WHERE name = $1)",
            &[&name],
        )
        .await?
        .try_get(0)?)
}

async fn read_groups(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<Vec<Group>, StoreError> {
    let rows = client
        .query("SELECT name, parent FROM groups ORDER BY name", &[])
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Group {
                name: row.try_get(0)?,
                parent: row.try_get(1)?,
            })
        })
        .collect()
}

async fn read_approvals(
    client: &impl deadpool_postgres::GenericClient,
    update_id: Option<Uuid>,
) -> Result<Vec<Approval>, StoreError> {
    let rows = client
        .query(
            "SELECT update_id::text, group_name, action, deadline FROM approvals
             WHERE $1::uuid IS NULL OR update_id = $1 ORDER BY update_id, group_name",
            &[&update_id],
        )
        .await?;
    rows.iter()
        .map(|row| {
            approval_from(
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            )
        })
        .collect()
}

/// Fires the automatic approval rules for the revisions a publish adds,
/// in its transaction (their updates are logged already under the version
/// it makes): each approval a rule gives is stored unless the group has
/// its own approval of the update, or is gone.
async fn fire_rules(
    client: &impl deadpool_postgres::GenericClient,
    candidates: &[Candidate],
    updates: &[super::PublishedUpdate],
) -> Result<Vec<super::RuleApproval>, StoreError> {
    let rules = read_rules(client).await?;
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    let now = Timestamp::now();
    let mut fired = Vec::new();
    for (candidate, published) in candidates.iter().zip(updates) {
        let is_new = match published.action {
            PublishAction::Unchanged => continue,
            PublishAction::Added => true,
            PublishAction::Revised => false,
        };
        for (rule, approval) in approvals_for(&rules, &candidate.revision.update, is_new, now) {
            if insert_if_absent(client, &approval).await? {
                fired.push(super::RuleApproval::new(rule, &approval));
            }
        }
    }
    Ok(fired)
}

/// Stores `approval`, replacing the group's approval of the update if it
/// has one.
async fn upsert_approval(
    client: &impl deadpool_postgres::GenericClient,
    approval: &Approval,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO approvals (update_id, group_name, action, deadline)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (update_id, group_name)
             DO UPDATE SET action = excluded.action, deadline = excluded.deadline",
            &[
                &approval.update_id,
                &approval.group,
                &approval.action.as_str(),
                &approval.deadline.map(|deadline| deadline.to_string()),
            ],
        )
        .await?;
    Ok(())
}

/// Stores `approval` unless its group has its own approval of the update
/// or does not exist; says whether it did.
async fn insert_if_absent(
    client: &impl deadpool_postgres::GenericClient,
    approval: &Approval,
) -> Result<bool, StoreError> {
    let inserted = client
        .execute(
            "INSERT INTO approvals (update_id, group_name, action, deadline)
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM groups WHERE name = $2)
             ON CONFLICT (update_id, group_name) DO NOTHING",
            &[
                &approval.update_id,
                &approval.group,
                &approval.action.as_str(),
                &approval.deadline.map(|deadline| deadline.to_string()),
            ],
        )
        .await?;
    Ok(inserted > 0)
}

async fn read_rules(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<Vec<ApprovalRule>, StoreError> {
    client
        .query("SELECT rule_json FROM approval_rules ORDER BY name", &[])
        .await?
        .iter()
        .map(|row| super::decode_rule(row.try_get(0)?))
        .collect()
}

async fn read_rollouts(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<Vec<Rollout>, StoreError> {
    client
        .query("SELECT rollout_json FROM rollouts ORDER BY update_id", &[])
        .await?
        .iter()
        .map(|row| super::decode_rollout(row.try_get(0)?))
        .collect()
}

/// Every rollout's rings that still gate its update, by update.
async fn read_gates(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<HashMap<Uuid, Vec<Ring>>, StoreError> {
    Ok(read_rollouts(client)
        .await?
        .into_iter()
        .filter_map(|rollout| rollout.gate().map(|rings| (rollout.update_id, rings)))
        .collect())
}

/// Rules and rollouts.
impl PostgresStore {
    pub(super) async fn rules(&self) -> Result<Vec<ApprovalRule>, StoreError> {
        read_rules(&self.client().await?).await
    }

    pub(super) async fn put_rule(&self, name: &str, json: &str) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        // Rules are few: the catalog row's lock keeps the count honest.
        lock_catalog(&transaction).await?;
        let existed: bool = transaction
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM approval_rules WHERE name = $1)",
                &[&name],
            )
            .await?
            .try_get(0)?;
        if !existed {
            let count: i64 = transaction
                .query_one("SELECT COUNT(*) FROM approval_rules", &[])
                .await?
                .try_get(0)?;
            if usize::try_from(count).unwrap_or(usize::MAX) >= crate::rules::MAX_RULES {
                return Err(StoreError::TooMany("approval rules"));
            }
        }
        transaction
            .execute(
                "INSERT INTO approval_rules (name, rule_json) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET rule_json = excluded.rule_json",
                &[&name, &json],
            )
            .await?;
        transaction.commit().await?;
        Ok(!existed)
    }

    pub(super) async fn remove_rule(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .client()
            .await?
            .execute("DELETE FROM approval_rules WHERE name = $1", &[&name])
            .await?
            > 0)
    }

    pub(super) async fn current_revisions(&self) -> Result<Vec<(Uuid, String)>, StoreError> {
        self.client()
            .await?
            .query(
                "SELECT update_id, revision_json FROM (
                     SELECT DISTINCT ON (update_id) update_id, revision_json, declined
                     FROM updates ORDER BY update_id, revision_number DESC
                 ) AS current WHERE NOT declined ORDER BY update_id",
                &[],
            )
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    pub(super) async fn add_approvals(
        &self,
        approvals: Vec<Approval>,
    ) -> Result<(Vec<Approval>, u64), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let version = lock_catalog(&transaction).await?;
        let mut ids: Vec<Uuid> = approvals
            .iter()
            .map(|approval| approval.update_id)
            .collect();
        ids.sort();
        ids.dedup();
        log_before(&transaction, next_version(version)?, &ids, self.clock.now()).await?;
        // One statement whatever the number of approvals.
        let update_ids: Vec<Uuid> = approvals.iter().map(|a| a.update_id).collect();
        let groups: Vec<&str> = approvals.iter().map(|a| a.group.as_str()).collect();
        let actions: Vec<&str> = approvals.iter().map(|a| a.action.as_str()).collect();
        let deadlines: Vec<Option<String>> = approvals
            .iter()
            .map(|a| a.deadline.map(|deadline| deadline.to_string()))
            .collect();
        let inserted: std::collections::HashSet<(Uuid, String)> = transaction
            .query(
                "INSERT INTO approvals (update_id, group_name, action, deadline)
                 SELECT u, g, a, d FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
                     AS t (u, g, a, d)
                 WHERE EXISTS (SELECT 1 FROM groups WHERE name = g)
                 ON CONFLICT (update_id, group_name) DO NOTHING
                 RETURNING update_id, group_name",
                &[&update_ids, &groups, &actions, &deadlines],
            )
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, StoreError>>()?;
        let added: Vec<Approval> = approvals
            .into_iter()
            .filter(|approval| inserted.contains(&(approval.update_id, approval.group.clone())))
            .collect();
        if added.is_empty() {
            // Nothing changed: the rows logged above are rolled back.
            return Ok((added, version_from(version)?));
        }
        let version = bump_version(&transaction).await?;
        transaction.commit().await?;
        Ok((added, version))
    }

    pub(super) async fn rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        read_rollouts(&self.client().await?).await
    }

    pub(super) async fn start_rollout(
        &self,
        rollout: &Rollout,
        json: &str,
    ) -> Result<GroupChange, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let version = lock_catalog(&transaction).await?;
        let known: bool = transaction
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM updates WHERE update_id = $1)",
                &[&rollout.update_id],
            )
            .await?
            .try_get(0)?;
        if !known {
            return Ok(GroupChange::UnknownUpdate);
        }
        for ring in &rollout.plan.rings {
            if !group_exists(&transaction, &ring.group).await? {
                return Ok(GroupChange::UnknownGroup);
            }
        }
        log_before(
            &transaction,
            next_version(version)?,
            &[rollout.update_id],
            self.clock.now(),
        )
        .await?;
        for approval in super::rollout_approvals(rollout) {
            upsert_approval(&transaction, &approval).await?;
        }
        transaction
            .execute(
                "INSERT INTO rollouts (update_id, rollout_json) VALUES ($1, $2)
                 ON CONFLICT (update_id) DO UPDATE SET rollout_json = excluded.rollout_json",
                &[&rollout.update_id, &json],
            )
            .await?;
        let version = bump_version(&transaction).await?;
        transaction.commit().await?;
        Ok(GroupChange::Done(version))
    }

    pub(super) async fn replace_rollout(
        &self,
        update_id: Uuid,
        old: &str,
        new: &str,
    ) -> Result<Option<u64>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let version = lock_catalog(&transaction).await?;
        let stored: Option<String> = transaction
            .query_opt(
                "SELECT rollout_json FROM rollouts WHERE update_id = $1",
                &[&update_id],
            )
            .await?
            .map(|row| row.try_get(0))
            .transpose()?;
        if stored.as_deref() != Some(old) {
            return Ok(None);
        }
        log_before(
            &transaction,
            next_version(version)?,
            &[update_id],
            self.clock.now(),
        )
        .await?;
        transaction
            .execute(
                "UPDATE rollouts SET rollout_json = $1 WHERE update_id = $2",
                &[&new, &update_id],
            )
            .await?;
        let version = bump_version(&transaction).await?;
        transaction.commit().await?;
        Ok(Some(version))
    }
}
