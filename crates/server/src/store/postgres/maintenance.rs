//! PostgreSQL's side of maintenance (crate::maintenance). Reads do not
//! block anyone here (MVCC); what removes updates locks the catalog row
//! and keeps reports and registrations out until it commits, and
//! autovacuum reclaims what it deletes.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use uuid::Uuid;

use super::{PostgresStore, bump_version, lock_catalog, log_before, read_groups};
use crate::clock::Clock;
use crate::store::maintenance::{
    ComputerFacts, NeedRows, UpdateFacts, UpdateRemoval, last_heard, parse_ids,
};
use crate::store::{StoreError, approval_from, parse_time, version_from};

/// Maintenance runs one at a time across every front end (an arbitrary
/// key, beside the migrations').
const MAINTENANCE_LOCK: i64 = 0x006f_7065_6e77_7562;

impl PostgresStore {
    pub(in crate::store) fn clock(&self) -> &Clock {
        &self.clock
    }

    pub(in crate::store) async fn maintenance_computers(
        &self,
    ) -> Result<Vec<ComputerFacts>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT computer_id, hostname, registered, last_sync, last_report,
                     stale_since IS NOT NULL
                 FROM computers",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ComputerFacts {
                    computer_id: row.try_get(0)?,
                    hostname: row.try_get(1)?,
                    last_heard: last_heard(row.try_get(2)?, row.try_get(3)?, row.try_get(4)?)?,
                    stale: row.try_get(5)?,
                })
            })
            .collect()
    }

    pub(in crate::store) async fn mark_stale(
        &self,
        ids: Vec<Uuid>,
        cutoff: Timestamp,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let quiet = still_quiet(&transaction, &ids, cutoff).await?;
        transaction
            .execute(
                "UPDATE computers SET stale_since = $1
                 WHERE computer_id = ANY($2) AND stale_since IS NULL",
                &[&self.clock.now().to_string(), &quiet],
            )
            .await?;
        transaction.commit().await?;
        Ok(quiet)
    }

    pub(in crate::store) async fn remove_computers(
        &self,
        ids: Vec<Uuid>,
        cutoff: Timestamp,
    ) -> Result<(Vec<Uuid>, u64), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let quiet = still_quiet(&transaction, &ids, cutoff).await?;
        let states = transaction
            .execute(
                "DELETE FROM update_states WHERE computer_id = ANY($1)",
                &[&quiet],
            )
            .await?;
        transaction
            .execute(
                "DELETE FROM computers WHERE computer_id = ANY($1)",
                &[&quiet],
            )
            .await?;
        transaction.commit().await?;
        Ok((quiet, states))
    }

    pub(in crate::store) async fn maintenance_updates(
        &self,
    ) -> Result<(u64, Vec<UpdateFacts>), StoreError> {
        let client = self.client().await?;
        // The version first: a publish after it makes the removal see a
        // moved catalog and stop.
        let version: i64 = client
            .query_one("SELECT version FROM catalog WHERE id = 1", &[])
            .await?
            .try_get(0)?;
        let rows = client
            .query(
                "SELECT DISTINCT ON (u.update_id) u.update_id, u.declined,
                     (u.revision_json::json -> 'update' -> 'supersededUpdateIds')::text,
                     s.update_id IS NOT NULL
                 FROM updates AS u LEFT JOIN maintenance_superseded AS s USING (update_id)
                 ORDER BY u.update_id, u.revision_number DESC",
                &[],
            )
            .await?;
        let facts = rows
            .iter()
            .map(|row| {
                Ok(UpdateFacts {
                    update_id: row.try_get(0)?,
                    declined: row.try_get(1)?,
                    supersedes: parse_ids(row.try_get(2)?)?,
                    superseded_by_removed: row.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((version_from(version)?, facts))
    }

    pub(in crate::store) async fn needed_updates(
        &self,
        ids: Vec<Uuid>,
        declined: HashSet<Uuid>,
    ) -> Result<HashSet<Uuid>, StoreError> {
        let client = self.client().await?;
        Ok(need_rows(&client, &ids).await?.needed(&declined))
    }

    pub(in crate::store) async fn mark_obsolete(
        &self,
        obsolete: Vec<Uuid>,
        now: Timestamp,
        dry_run: bool,
    ) -> Result<HashMap<Uuid, Timestamp>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        if !dry_run {
            transaction
                .execute(
                    "DELETE FROM maintenance_obsolete WHERE NOT (update_id = ANY($1))",
                    &[&obsolete],
                )
                .await?;
            transaction
                .execute(
                    "INSERT INTO maintenance_obsolete (update_id, since)
                     SELECT id, $2 FROM unnest($1::uuid[]) AS id
                     ON CONFLICT (update_id) DO NOTHING",
                    &[&obsolete, &now.as_second()],
                )
                .await?;
        }
        let rows = transaction
            .query(
                "SELECT update_id, since FROM maintenance_obsolete WHERE update_id = ANY($1)",
                &[&obsolete],
            )
            .await?;
        let mut since = HashMap::with_capacity(obsolete.len());
        for row in rows {
            let seconds: i64 = row.try_get(1)?;
            since.insert(
                row.try_get::<_, Uuid>(0)?,
                Timestamp::from_second(seconds)
                    .map_err(|error| StoreError::Corrupt(format!("a time {seconds}: {error}")))?,
            );
        }
        for id in &obsolete {
            since.entry(*id).or_insert(now);
        }
        transaction.commit().await?;
        Ok(since)
    }

    pub(in crate::store) async fn remove_updates(
        &self,
        ids: Vec<Uuid>,
        declined: HashSet<Uuid>,
        expected: u64,
    ) -> Result<UpdateRemoval, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        // The catalog row first (publishes, declines, approvals and moves
        // take it too), then reports and registrations wait until this
        // commits, so the needs decided here still hold when it does.
        let version = lock_catalog(&transaction).await?;
        if version_from(version)? != expected {
            return Ok(UpdateRemoval::CatalogMoved);
        }
        transaction
            .batch_execute("LOCK TABLE computers, update_states IN SHARE ROW EXCLUSIVE MODE")
            .await?;
        let needed = need_rows(&transaction, &ids).await?.needed(&declined);
        let removable: Vec<Uuid> = ids.into_iter().filter(|id| !needed.contains(id)).collect();
        if removable.is_empty() {
            return Ok(UpdateRemoval::Removed {
                removed: removable,
                states: 0,
                version: expected,
            });
        }
        // The change log says they are gone: agents' deltas drop them.
        log_before(&transaction, expected + 1, &removable, self.clock.now()).await?;
        // What they supersede stays superseded once they are gone.
        let mut superseded = Vec::new();
        for row in transaction
            .query(
                "SELECT DISTINCT ON (update_id)
                     (revision_json::json -> 'update' -> 'supersededUpdateIds')::text
                 FROM updates WHERE update_id = ANY($1)
                 ORDER BY update_id, revision_number DESC",
                &[&removable],
            )
            .await?
        {
            superseded.extend(parse_ids(row.try_get(0)?)?);
        }
        transaction
            .execute(
                "INSERT INTO maintenance_superseded (update_id)
                 SELECT DISTINCT id FROM unnest($1::uuid[]) AS id
                 WHERE EXISTS (SELECT 1 FROM updates WHERE update_id = id)
                 ON CONFLICT (update_id) DO NOTHING",
                &[&superseded],
            )
            .await?;
        let states = transaction
            .execute(
                "DELETE FROM update_states WHERE update_id = ANY($1)",
                &[&removable],
            )
            .await?;
        for table in [
            "approvals",
            "updates",
            "maintenance_obsolete",
            "maintenance_superseded",
        ] {
            transaction
                .execute(
                    &format!("DELETE FROM {table} WHERE update_id = ANY($1)"),
                    &[&removable],
                )
                .await?;
        }
        let version = bump_version(&transaction).await?;
        transaction.commit().await?;
        Ok(UpdateRemoval::Removed {
            removed: removable,
            states,
            version,
        })
    }

    pub(in crate::store) async fn collect_content(
        &self,
        cutoff: Timestamp,
        dry_run: bool,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mut client = self.client().await?;
        let version: i64 = client
            .query_one("SELECT version FROM catalog WHERE id = 1", &[])
            .await?
            .try_get(0)?;
        let listed: HashSet<String> = client
            .query(
                "SELECT DISTINCT file ->> 'sha256' FROM updates,
                     json_array_elements(revision_json::json -> 'content') AS file",
                &[],
            )
            .await?
            .iter()
            .map(|row| row.try_get::<_, Option<String>>(0))
            .filter_map(Result::transpose)
            .collect::<Result<_, _>>()?;
        let transaction = client.transaction().await?;
        // A publish meanwhile may list a file read as unlisted.
        if lock_catalog(&transaction).await? != version {
            return Ok(Vec::new());
        }
        let mut garbage = Vec::new();
        for row in transaction
            .query("SELECT sha256, size, added FROM content", &[])
            .await?
        {
            let sha256: String = row.try_get(0)?;
            let size: i64 = row.try_get(1)?;
            if !listed.contains(&sha256) && parse_time(row.try_get(2)?)? <= cutoff {
                garbage.push((sha256, u64::try_from(size).unwrap_or(0)));
            }
        }
        if !dry_run {
            let digests: Vec<&str> = garbage.iter().map(|(sha256, _)| sha256.as_str()).collect();
            transaction
                .execute("DELETE FROM content WHERE sha256 = ANY($1)", &[&digests])
                .await?;
            transaction.commit().await?;
        }
        Ok(garbage)
    }

    pub(in crate::store) async fn content_digests(&self) -> Result<HashSet<String>, StoreError> {
        let rows = self
            .client()
            .await?
            .query("SELECT sha256 FROM content", &[])
            .await?;
        Ok(rows
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    pub(in crate::store) async fn record_run(
        &self,
        started: Timestamp,
        json: String,
        keep_since: Timestamp,
        keep: u64,
    ) -> Result<i64, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let id: i64 = transaction
            .query_one(
                "INSERT INTO maintenance_runs (started, run_json) VALUES ($1, $2) RETURNING id",
                &[&started.to_string(), &json],
            )
            .await?
            .try_get(0)?;
        let mut old = Vec::new();
        for (index, row) in transaction
            .query(
                "SELECT id, started FROM maintenance_runs ORDER BY id DESC",
                &[],
            )
            .await?
            .iter()
            .enumerate()
        {
            if index as u64 >= keep || parse_time(row.try_get(1)?)? < keep_since {
                old.push(row.try_get::<_, i64>(0)?);
            }
        }
        transaction
            .execute("DELETE FROM maintenance_runs WHERE id = ANY($1)", &[&old])
            .await?;
        transaction.commit().await?;
        Ok(id)
    }

    pub(in crate::store) async fn runs(
        &self,
        limit: u64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, run_json FROM maintenance_runs ORDER BY id DESC LIMIT $1",
                &[&limit],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    pub(in crate::store) async fn reclaim_space(&self) -> Result<String, StoreError> {
        // Fresh statistics after large deletes; autovacuum makes the dead
        // rows' space reusable, so the size levels off.
        self.client()
            .await?
            .batch_execute(
                "ANALYZE updates, update_states, approvals, computers, content, sync_log,
                     maintenance_obsolete",
            )
            .await?;
        Ok("ANALYZE; space left to autovacuum".to_owned())
    }

    pub(in crate::store) async fn database_size(&self) -> Result<u64, StoreError> {
        let size: i64 = self
            .client()
            .await?
            .query_one("SELECT pg_database_size(current_database())", &[])
            .await?
            .try_get(0)?;
        Ok(u64::try_from(size).unwrap_or(0))
    }

    pub(in crate::store) async fn try_maintenance_lock(
        &self,
    ) -> Result<Option<deadpool_postgres::ClientWrapper>, StoreError> {
        // Out of the pool: the session lock lives exactly as long as this
        // connection, which closes when the run's guard is dropped.
        let client = deadpool_postgres::Object::take(self.client().await?);
        let held: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&MAINTENANCE_LOCK])
            .await?
            .try_get(0)?;
        Ok(held.then_some(client))
    }
}

/// Unlocks the maintenance lock `client` holds; a failure is logged, and
/// the lock then ends with the connection.
pub(in crate::store) async fn release_maintenance_lock(client: &deadpool_postgres::ClientWrapper) {
    if let Err(error) = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MAINTENANCE_LOCK])
        .await
    {
        tracing::warn!(%error, "unlocking the maintenance lock");
    }
}

/// Those of `ids` not heard from since `cutoff`, their rows locked in
/// `client`'s transaction.
async fn still_quiet(
    client: &impl deadpool_postgres::GenericClient,
    ids: &[Uuid],
    cutoff: Timestamp,
) -> Result<Vec<Uuid>, StoreError> {
    let rows = client
        .query(
            "SELECT computer_id, registered, last_sync, last_report FROM computers
             WHERE computer_id = ANY($1) FOR UPDATE",
            &[&ids],
        )
        .await?;
    let mut quiet = Vec::new();
    for row in rows {
        if last_heard(row.try_get(1)?, row.try_get(2)?, row.try_get(3)?)? <= cutoff {
            quiet.push(row.try_get(0)?);
        }
    }
    Ok(quiet)
}

/// What deciding which of `ids` are needed takes.
async fn need_rows(
    client: &impl deadpool_postgres::GenericClient,
    ids: &[Uuid],
) -> Result<NeedRows, StoreError> {
    let approvals = client
        .query(
            "SELECT update_id::text, group_name, action, deadline FROM approvals
             WHERE update_id = ANY($1)",
            &[&ids],
        )
        .await?
        .iter()
        .map(|row| {
            approval_from(
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            )
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // Only approved updates can be needed.
    let approved: Vec<Uuid> = approvals
        .iter()
        .map(|approval| approval.update_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let computers = client
        .query(
            "SELECT group_name, COUNT(*) FROM computers GROUP BY group_name",
            &[],
        )
        .await?
        .iter()
        .map(|row| {
            let count: i64 = row.try_get(1)?;
            Ok((row.try_get(0)?, u64::try_from(count).unwrap_or(0)))
        })
        .collect::<Result<HashMap<String, u64>, StoreError>>()?;
    let mut states = Vec::new();
    if !approved.is_empty() {
        for row in client
            .query(
                "SELECT s.update_id, c.group_name, s.state, COUNT(*)
                 FROM update_states AS s JOIN computers AS c ON c.computer_id = s.computer_id
                 WHERE s.update_id = ANY($1)
                 GROUP BY s.update_id, c.group_name, s.state",
                &[&approved],
            )
            .await?
        {
            let count: i64 = row.try_get(3)?;
            states.push((
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                u64::try_from(count).unwrap_or(0),
            ));
        }
    }
    Ok(NeedRows {
        groups: read_groups(client).await?,
        approvals,
        computers,
        states,
    })
}
