//! SQLite's side of maintenance (crate::maintenance). The store has one
//! connection, so every long read is done in chunks that each take the
//! connection briefly, and space is given back by incremental vacuum.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use rusqlite::{Connection, TransactionBehavior, params, params_from_iter};
use uuid::Uuid;

use super::{SqliteStore, bump_version, log_before, parse_uuid, read_groups, read_version};
use crate::clock::Clock;
use crate::store::maintenance::{
    ComputerFacts, NeedRows, UpdateFacts, UpdateRemoval, last_heard, parse_ids,
};
use crate::store::{StoreError, approval_from, parse_time};

/// Rows read per chunk of a long scan.
const SCAN_CHUNK: i64 = 2000;
/// Pages given back per lock by incremental vacuum (8 MiB of 4 KiB pages).
const VACUUM_PAGES: i64 = 2048;

impl SqliteStore {
    pub(in crate::store) fn clock(&self) -> &Clock {
        &self.clock
    }

    pub(in crate::store) async fn maintenance_computers(
        &self,
    ) -> Result<Vec<ComputerFacts>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare(
                "SELECT computer_id, hostname, registered, last_sync, last_report,
                     stale_since IS NOT NULL
                 FROM computers",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, Option<String>>(4)?,
                    row.get::<_, bool>(5)?,
                ))
            })?;
            rows.map(|row| {
                let (id, hostname, registered, last_sync, last_report, stale) = row?;
                Ok(ComputerFacts {
                    computer_id: parse_uuid(&id)?,
                    hostname,
                    last_heard: last_heard(
                        &registered,
                        last_sync.as_deref(),
                        last_report.as_deref(),
                    )?,
                    stale,
                })
            })
            .collect()
        })
        .await
    }

    pub(in crate::store) async fn mark_stale(
        &self,
        ids: Vec<Uuid>,
        cutoff: Timestamp,
    ) -> Result<Vec<Uuid>, StoreError> {
        let now = self.clock.now();
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let quiet = still_quiet(&transaction, &ids, cutoff)?;
            for id in &quiet {
                transaction.execute(
                    "UPDATE computers SET stale_since = ?1
                     WHERE computer_id = ?2 AND stale_since IS NULL",
                    params![now.to_string(), id.to_string()],
                )?;
            }
            transaction.commit()?;
            Ok(quiet)
        })
        .await
    }

    pub(in crate::store) async fn remove_computers(
        &self,
        ids: Vec<Uuid>,
        cutoff: Timestamp,
    ) -> Result<(Vec<Uuid>, u64), StoreError> {
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let quiet = still_quiet(&transaction, &ids, cutoff)?;
            let mut states = 0;
            for id in &quiet {
                let id = id.to_string();
                states += transaction
                    .execute("DELETE FROM update_states WHERE computer_id = ?1", [&id])?
                    as u64;
                transaction.execute("DELETE FROM computers WHERE computer_id = ?1", [&id])?;
            }
            transaction.commit()?;
            Ok((quiet, states))
        })
        .await
    }

    pub(in crate::store) async fn maintenance_updates(
        &self,
    ) -> Result<(u64, Vec<UpdateFacts>), StoreError> {
        let version = self.with(|connection| read_version(connection)).await?;
        let mut facts = Vec::new();
        let mut after = String::new();
        loop {
            let from = after.clone();
            let chunk = self
                .with(move |connection| {
                    let mut statement = connection.prepare_cached(
                        "SELECT update_id, declined,
                             json_extract(revision_json, '$.update.supersededUpdateIds'),
                             EXISTS (SELECT 1 FROM maintenance_superseded
                                     WHERE update_id = outer_row.update_id)
                         FROM updates AS outer_row
                         WHERE update_id > ?1
                           AND revision_number = (SELECT MAX(revision_number) FROM updates
                                                  WHERE update_id = outer_row.update_id)
                         ORDER BY update_id LIMIT ?2",
                    )?;
                    let rows = statement.query_map(params![from, SCAN_CHUNK], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, bool>(1)?,
                            row.get::<_, Option<String>>(2)?,
                            row.get::<_, bool>(3)?,
                        ))
                    })?;
                    rows.map(|row| {
                        let (id, declined, supersedes, superseded_by_removed) = row?;
                        Ok((
                            id.clone(),
                            UpdateFacts {
                                update_id: parse_uuid(&id)?,
                                declined,
                                supersedes: parse_ids(supersedes.as_deref())?,
                                superseded_by_removed,
                            },
                        ))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
                })
                .await?;
            let Some((last, _)) = chunk.last() else {
                break;
            };
            after = last.clone();
            let full = chunk.len() as i64 == SCAN_CHUNK;
            facts.extend(chunk.into_iter().map(|(_, facts)| facts));
            if !full {
                break;
            }
        }
        Ok((version, facts))
    }

    pub(in crate::store) async fn needed_updates(
        &self,
        ids: Vec<Uuid>,
        declined: HashSet<Uuid>,
    ) -> Result<HashSet<Uuid>, StoreError> {
        self.with(move |connection| Ok(need_rows(connection, &ids)?.needed(&declined)))
            .await
    }

    pub(in crate::store) async fn mark_obsolete(
        &self,
        obsolete: Vec<Uuid>,
        now: Timestamp,
        dry_run: bool,
    ) -> Result<HashMap<Uuid, Timestamp>, StoreError> {
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut known: HashMap<Uuid, i64> = HashMap::new();
            {
                let mut statement =
                    transaction.prepare("SELECT update_id, since FROM maintenance_obsolete")?;
                let rows = statement.query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })?;
                for row in rows {
                    let (id, since) = row?;
                    known.insert(parse_uuid(&id)?, since);
                }
            }
            let wanted: HashSet<Uuid> = obsolete.iter().copied().collect();
            let mut since = HashMap::with_capacity(obsolete.len());
            for id in &obsolete {
                let seconds = match known.get(id) {
                    Some(&seconds) => seconds,
                    None => {
                        if !dry_run {
                            transaction.execute(
                                "INSERT INTO maintenance_obsolete (update_id, since)
                                 VALUES (?1, ?2)",
                                params![id.to_string(), now.as_second()],
                            )?;
                        }
                        now.as_second()
                    }
                };
                since.insert(*id, seconds_to_time(seconds)?);
            }
            if !dry_run {
                for id in known.keys().filter(|id| !wanted.contains(id)) {
                    transaction.execute(
                        "DELETE FROM maintenance_obsolete WHERE update_id = ?1",
                        [id.to_string()],
                    )?;
                }
                transaction.commit()?;
            }
            Ok(since)
        })
        .await
    }

    pub(in crate::store) async fn remove_updates(
        &self,
        ids: Vec<Uuid>,
        declined: HashSet<Uuid>,
        expected: u64,
    ) -> Result<UpdateRemoval, StoreError> {
        let now = self.clock.now();
        self.with(move |connection| {
            // IMMEDIATE: reports, registrations and approvals wait, so what
            // is decided here holds until it is done.
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if read_version(&transaction)? != expected {
                return Ok(UpdateRemoval::CatalogMoved);
            }
            let needed = need_rows(&transaction, &ids)?.needed(&declined);
            let removable: Vec<Uuid> = ids.into_iter().filter(|id| !needed.contains(id)).collect();
            if removable.is_empty() {
                return Ok(UpdateRemoval::Removed {
                    removed: removable,
                    states: 0,
                    version: expected,
                });
            }
            let next = expected + 1;
            let mut states = 0;
            // What they supersede stays superseded once they are gone.
            for id in &removable {
                let supersedes: Option<String> = transaction.query_row(
                    "SELECT json_extract(revision_json, '$.update.supersededUpdateIds')
                     FROM updates WHERE update_id = ?1
                     ORDER BY revision_number DESC LIMIT 1",
                    [id.to_string()],
                    |row| row.get(0),
                )?;
                for superseded in parse_ids(supersedes.as_deref())? {
                    transaction.execute(
                        "INSERT INTO maintenance_superseded (update_id)
                         SELECT ?1 WHERE EXISTS (SELECT 1 FROM updates WHERE update_id = ?1)
                         ON CONFLICT (update_id) DO NOTHING",
                        [superseded.to_string()],
                    )?;
                }
            }
            for id in &removable {
                // The change log says it is gone: agents' deltas drop it.
                log_before(&transaction, next, *id, now)?;
                let id = id.to_string();
                states += transaction
                    .execute("DELETE FROM update_states WHERE update_id = ?1", [&id])?
                    as u64;
                transaction.execute("DELETE FROM approvals WHERE update_id = ?1", [&id])?;
                transaction.execute("DELETE FROM updates WHERE update_id = ?1", [&id])?;
                transaction.execute(
                    "DELETE FROM maintenance_obsolete WHERE update_id = ?1",
                    [&id],
                )?;
                transaction.execute(
                    "DELETE FROM maintenance_superseded WHERE update_id = ?1",
                    [&id],
                )?;
            }
            let version = bump_version(&transaction)?;
            transaction.commit()?;
            Ok(UpdateRemoval::Removed {
                removed: removable,
                states,
                version,
            })
        })
        .await
    }

    pub(in crate::store) async fn collect_content(
        &self,
        cutoff: Timestamp,
        dry_run: bool,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let version = self.with(|connection| read_version(connection)).await?;
        let mut listed: HashSet<String> = HashSet::new();
        let mut after = 0_i64;
        loop {
            let (rows, last) = self
                .with(move |connection| {
                    let mut statement = connection.prepare_cached(
                        "SELECT rowid, (SELECT json_group_array(json_extract(file.value, '$.sha256'))
                                        FROM json_each(revision_json, '$.content') AS file)
                         FROM updates WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                    )?;
                    let mut last = None;
                    let mut digests = Vec::new();
                    let rows = statement.query_map(params![after, SCAN_CHUNK], |row| {
                        Ok((row.get::<_, i64>(0)?, row.get::<_, Option<String>>(1)?))
                    })?;
                    let mut count = 0;
                    for row in rows {
                        let (rowid, json) = row?;
                        last = Some(rowid);
                        count += 1;
                        if let Some(json) = json {
                            let list: Vec<String> = serde_json::from_str(&json).map_err(|error| {
                                StoreError::Corrupt(format!("content digests {json:?}: {error}"))
                            })?;
                            digests.extend(list);
                        }
                    }
                    Ok(((digests, count), last))
                })
                .await?;
            let (digests, count) = rows;
            listed.extend(digests);
            match last {
                Some(last) if count == SCAN_CHUNK => after = last,
                _ => break,
            }
        }
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // A publish meanwhile may list a file read as unlisted.
            if read_version(&transaction)? != version {
                return Ok(Vec::new());
            }
            let mut garbage = Vec::new();
            {
                let mut statement =
                    transaction.prepare("SELECT sha256, size, added FROM content")?;
                let rows = statement.query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                })?;
                for row in rows {
                    let (sha256, size, added) = row?;
                    if !listed.contains(&sha256) && parse_time(&added)? <= cutoff {
                        garbage.push((sha256, u64::try_from(size).unwrap_or(0)));
                    }
                }
            }
            if !dry_run {
                for (sha256, _) in &garbage {
                    transaction.execute("DELETE FROM content WHERE sha256 = ?1", [sha256])?;
                }
                transaction.commit()?;
            }
            Ok(garbage)
        })
        .await
    }

    pub(in crate::store) async fn content_digests(&self) -> Result<HashSet<String>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare("SELECT sha256 FROM content")?;
            let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub(in crate::store) async fn record_run(
        &self,
        started: Timestamp,
        json: String,
        keep_since: Timestamp,
        keep: u64,
    ) -> Result<i64, StoreError> {
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id: i64 = transaction.query_row(
                "INSERT INTO maintenance_runs (started, run_json) VALUES (?1, ?2) RETURNING id",
                params![started.to_string(), json],
                |row| row.get(0),
            )?;
            // IDs grow with time, so the cut by age is one by ID.
            let mut old = Vec::new();
            {
                let mut statement = transaction
                    .prepare("SELECT id, started FROM maintenance_runs ORDER BY id DESC")?;
                let rows = statement.query_map([], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })?;
                for (index, row) in rows.enumerate() {
                    let (id, started) = row?;
                    if index as u64 >= keep || parse_time(&started)? < keep_since {
                        old.push(id);
                    }
                }
            }
            for id in old {
                transaction.execute("DELETE FROM maintenance_runs WHERE id = ?1", [id])?;
            }
            transaction.commit()?;
            Ok(id)
        })
        .await
    }

    pub(in crate::store) async fn runs(
        &self,
        limit: u64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |connection| {
            let mut statement = connection
                .prepare("SELECT id, run_json FROM maintenance_runs ORDER BY id DESC LIMIT ?1")?;
            let rows = statement.query_map([limit], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    pub(in crate::store) async fn reclaim_space(&self) -> Result<String, StoreError> {
        let mode: i64 = self
            .with(|connection| {
                Ok(connection.pragma_query_value(None, "auto_vacuum", |row| row.get(0))?)
            })
            .await?;
        let mut done = Vec::new();
        if mode != 2 {
            // Made before incremental vacuum: one VACUUM converts it. It
            // rewrites the file holding the write lock; on its own
            // connection, so reads go on (WAL) and writes wait for it.
            let path = self.path.clone();
            tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
                let connection = Connection::open(&path)?;
                connection.busy_timeout(std::time::Duration::from_secs(60))?;
                connection.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
                connection.execute_batch("VACUUM")?;
                Ok(())
            })
            .await
            .map_err(|error| StoreError::Io(format!("the store's thread: {error}")))??;
            done.push("VACUUM (once, to turn on incremental vacuum)".to_owned());
        }
        // A few pages per lock, so requests interleave.
        let mut pages = 0_i64;
        loop {
            let (freed, left) = self
                .with(|connection| {
                    let before: i64 =
                        connection.pragma_query_value(None, "freelist_count", |row| row.get(0))?;
                    connection
                        .execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES})"))?;
                    let after: i64 =
                        connection.pragma_query_value(None, "freelist_count", |row| row.get(0))?;
                    Ok((before - after, after))
                })
                .await?;
            pages += freed;
            if left == 0 || freed == 0 {
                break;
            }
        }
        done.push(format!("incremental vacuum: {pages} pages freed"));
        self.with(|connection| {
            connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            connection.execute_batch("PRAGMA optimize")?;
            Ok(())
        })
        .await?;
        done.push("WAL checkpointed".to_owned());
        Ok(done.join("; "))
    }

    pub(in crate::store) async fn database_size(&self) -> Result<u64, StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let size = |path: &std::path::Path| std::fs::metadata(path).map_or(0, |m| m.len());
            let mut wal = path.clone().into_os_string();
            wal.push("-wal");
            Ok(size(&path) + size(std::path::Path::new(&wal)))
        })
        .await
        .map_err(|error| StoreError::Io(format!("the store's thread: {error}")))?
    }
}

/// Those of `ids` not heard from since `cutoff`, read in `connection`'s
/// transaction.
fn still_quiet(
    connection: &Connection,
    ids: &[Uuid],
    cutoff: Timestamp,
) -> Result<Vec<Uuid>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT registered, last_sync, last_report FROM computers WHERE computer_id = ?1",
    )?;
    let mut quiet = Vec::new();
    for id in ids {
        let row = statement.query_row([id.to_string()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<String>>(2)?,
            ))
        });
        let (registered, last_sync, last_report) = match row {
            Ok(row) => row,
            Err(rusqlite::Error::QueryReturnedNoRows) => continue,
            Err(error) => return Err(error.into()),
        };
        if last_heard(&registered, last_sync.as_deref(), last_report.as_deref())? <= cutoff {
            quiet.push(*id);
        }
    }
    Ok(quiet)
}

/// What deciding which of `ids` are needed takes, read in `connection`'s
/// transaction.
fn need_rows(connection: &Connection, ids: &[Uuid]) -> Result<NeedRows, StoreError> {
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let placeholders = vec!["?"; ids.len()].join(", ");
    let approvals = {
        let mut statement = connection.prepare(&format!(
            "SELECT update_id, group_name, action, deadline FROM approvals
             WHERE update_id IN ({placeholders})"
        ))?;
        let rows = statement.query_map(params_from_iter(&ids), |row| {
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
        .collect::<Result<Vec<_>, StoreError>>()?
    };
    // Only approved updates can be needed.
    let approved: Vec<String> = approvals
        .iter()
        .map(|approval| approval.update_id.to_string())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let computers = {
        let mut statement =
            connection.prepare("SELECT group_name, COUNT(*) FROM computers GROUP BY group_name")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?;
        rows.map(|row| {
            let (group, count) = row?;
            Ok((group, u64::try_from(count).unwrap_or(0)))
        })
        .collect::<Result<HashMap<_, _>, StoreError>>()?
    };
    let mut states = Vec::new();
    if !approved.is_empty() {
        let placeholders = vec!["?"; approved.len()].join(", ");
        let mut statement = connection.prepare(&format!(
            "SELECT s.update_id, c.group_name, s.state, COUNT(*)
             FROM update_states AS s JOIN computers AS c ON c.computer_id = s.computer_id
             WHERE s.update_id IN ({placeholders})
             GROUP BY s.update_id, c.group_name, s.state"
        ))?;
        let rows = statement.query_map(params_from_iter(&approved), |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (update_id, group, state, count) = row?;
            states.push((
                parse_uuid(&update_id)?,
                group,
                state,
                u64::try_from(count).unwrap_or(0),
            ));
        }
    }
    Ok(NeedRows {
        groups: read_groups(connection)?,
        approvals,
        computers,
        states,
    })
}

fn seconds_to_time(seconds: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_second(seconds)
        .map_err(|error| StoreError::Corrupt(format!("a time {seconds}: {error}")))
}
