//! A server that maintains itself: on a schedule (and on demand with
//! `wua-server maintenance run`), without an administrator, it
//!
//! - marks computers stale that have not been heard from (no report, no
//!   sync) for `stale_after_days`, and removes them, with their update
//!   states, after `remove_after_days`;
//! - removes obsolete updates that no computer needs once they have been
//!   obsolete for `retention_days`: every revision, approval and state of
//!   them, the change log recording each as gone so agents' deltas drop it;
//! - deletes content files that no stored revision lists any more (and
//!   stray files in the content directory) after the same retention;
//! - prunes the sync change log, and its own records of old runs;
//! - gives SQLite's freed pages back to the file system (incremental
//!   vacuum, a few pages per lock, never a whole-file VACUUM once a
//!   database uses it) and leaves PostgreSQL to autovacuum.
//!
//! **Obsolete**: declined, or superseded (listed in `SupersededUpdateIDs`
//! by the current revision of another update that is not declined).
//!
//! **Needed**: a computer needs an update when the update is not declined
//! and its effective approval for the computer's group (the group's own,
//! else the nearest ancestor's: [`crate::fleet::effective_approval`]) is
//! - Install, and the computer has not reported it Installed,
//!   InstalledPendingReboot or NotApplicable (no report counts as needing:
//!   it may not have scanned yet); or
//! - Uninstall, and the computer has not reported it NotInstalled or
//!   NotApplicable (it may still have it installed).
//!
//! Stale computers count until they are removed. An update that is not
//! obsolete is never removed, approved or not; an obsolete one that some
//! computer needs is kept, and its retention starts again when no
//! computer needs it any more. Every run stores a record of what it
//! removed ([`MaintenanceRun`], `GET /api/v1/maintenance/runs`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::{Shared, require_admin};
use crate::error::{ErrorBody, ServerError};
use crate::fleet::{Approval, ApprovalAction, Group, effective_approval};
use crate::store::{Store, StoreError, UpdateRemoval};

/// Days an obsolete update, or an unlisted content file, is kept.
pub const DEFAULT_RETENTION_DAYS: u64 = 30;
/// Days without a report or sync before a computer is marked stale.
pub const DEFAULT_STALE_AFTER_DAYS: u64 = 30;
/// Days without a report or sync before a computer is removed.
pub const DEFAULT_REMOVE_AFTER_DAYS: u64 = 90;
/// The hour (UTC) of the daily run.
pub const DEFAULT_HOUR_UTC: u8 = 3;
/// Days a run's record is kept.
pub const RUN_RECORD_DAYS: i64 = 400;
/// Run records kept at most.
pub const RUN_RECORDS_KEPT: u64 = 1000;
/// The most IDs a run's record lists per kind; its counts are exact.
pub const MAX_LISTED: usize = 10_000;
/// Updates removed per transaction.
const UPDATES_PER_CHUNK: usize = 200;
/// Computers removed or marked per transaction.
const COMPUTERS_PER_CHUNK: usize = 500;

/// `[maintenance]` in `server.toml`: every key optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceFile {
    /// `enabled`: run daily (default true).
    pub enabled: Option<bool>,
    /// `hour_utc`: the hour of the daily run, 0 to 23 (default 3).
    pub hour_utc: Option<u8>,
    /// `retention_days`: how long an obsolete update that no computer
    /// needs, or an unlisted content file, is kept (default 30).
    pub retention_days: Option<u64>,
    /// `stale_after_days`: days without a report or sync that mark a
    /// computer stale (default 30).
    pub stale_after_days: Option<u64>,
    /// `remove_after_days`: days without a report or sync after which a
    /// computer is removed (default 90; at least `stale_after_days`).
    pub remove_after_days: Option<u64>,
}

/// The maintenance policy in force.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Whether the daily run is on.
    pub enabled: bool,
    /// The hour (UTC) of the daily run.
    pub hour_utc: u8,
    /// Days an obsolete, unneeded update or unlisted content file is kept.
    pub retention_days: u64,
    /// Days without a report or sync that mark a computer stale.
    pub stale_after_days: u64,
    /// Days without a report or sync after which a computer is removed.
    pub remove_after_days: u64,
    /// Days the sync change log is kept (`delta_retention_days`).
    pub sync_log_days: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            enabled: true,
            hour_utc: DEFAULT_HOUR_UTC,
            retention_days: DEFAULT_RETENTION_DAYS,
            stale_after_days: DEFAULT_STALE_AFTER_DAYS,
            remove_after_days: DEFAULT_REMOVE_AFTER_DAYS,
            sync_log_days: crate::config::DEFAULT_DELTA_RETENTION_DAYS,
        }
    }
}

impl MaintenanceFile {
    /// The policy: these keys over the defaults, checked.
    pub fn resolve(&self, sync_log_days: u64) -> anyhow::Result<Policy> {
        let defaults = Policy::default();
        let policy = Policy {
            enabled: self.enabled.unwrap_or(defaults.enabled),
            hour_utc: self.hour_utc.unwrap_or(defaults.hour_utc),
            retention_days: self.retention_days.unwrap_or(defaults.retention_days),
            stale_after_days: self.stale_after_days.unwrap_or(defaults.stale_after_days),
            remove_after_days: self.remove_after_days.unwrap_or(defaults.remove_after_days),
            sync_log_days,
        };
        if policy.hour_utc > 23 {
            anyhow::bail!("[maintenance] hour_utc must be between 0 and 23");
        }
        for (name, days) in [
            ("retention_days", policy.retention_days),
            ("stale_after_days", policy.stale_after_days),
            ("remove_after_days", policy.remove_after_days),
        ] {
            if days == 0 || days > 3660 {
                anyhow::bail!("[maintenance] {name} must be between 1 and 3660");
            }
        }
        if policy.remove_after_days < policy.stale_after_days {
            anyhow::bail!(
                "[maintenance] remove_after_days must be at least stale_after_days: \
                 a computer is marked stale before it is removed"
            );
        }
        Ok(policy)
    }
}

fn days(count: u64) -> SignedDuration {
    SignedDuration::from_hours(24 * i64::try_from(count).unwrap_or(i64::MAX / 48).min(1 << 20))
}

/// The inputs of [`needed_updates`]: the fleet, and per (update, group)
/// how many computers reported what.
#[derive(Debug, Default)]
pub struct NeedCounts {
    /// Every group.
    pub groups: Vec<Group>,
    /// The updates' approvals (other updates' may be left out).
    pub approvals: Vec<Approval>,
    /// Computers per group.
    pub computers: HashMap<String, u64>,
    /// Per (update, group): computers that reported it done for Install
    /// (Installed, InstalledPendingReboot, NotApplicable) and done for
    /// Uninstall (NotInstalled, NotApplicable).
    pub states: HashMap<(Uuid, String), DoneCounts>,
    /// Declined updates: never offered, so never needed.
    pub declined: HashSet<Uuid>,
}

/// Computers of one group that need nothing more of one update.
#[derive(Debug, Default, Clone, Copy)]
pub struct DoneCounts {
    /// Done for an Install approval.
    pub installed: u64,
    /// Done for an Uninstall approval.
    pub removed: u64,
}

impl NeedCounts {
    /// Adds `count` computers of `group` that reported `state` for
    /// `update_id` (a state maintenance does not know counts as not done).
    pub fn add_state(&mut self, update_id: Uuid, group: String, state: &str, count: u64) {
        let done = self.states.entry((update_id, group)).or_default();
        match state {
            "Installed" | "InstalledPendingReboot" => done.installed += count,
            "NotInstalled" => done.removed += count,
            "NotApplicable" => {
                done.installed += count;
                done.removed += count;
            }
            _ => {}
        }
    }
}

/// The updates among `counts.approvals`' that some computer needs (the
/// rule in this module's documentation).
pub fn needed_updates(counts: &NeedCounts) -> HashSet<Uuid> {
    let parents: HashMap<String, Option<String>> = counts
        .groups
        .iter()
        .map(|group| (group.name.clone(), group.parent.clone()))
        .collect();
    let by_key: HashMap<(Uuid, String), Approval> = counts
        .approvals
        .iter()
        .map(|approval| {
            (
                (approval.update_id, approval.group.clone()),
                approval.clone(),
            )
        })
        .collect();
    let updates: HashSet<Uuid> = counts
        .approvals
        .iter()
        .map(|approval| approval.update_id)
        .filter(|update_id| !counts.declined.contains(update_id))
        .collect();
    updates
        .into_iter()
        .filter(|update_id| {
            counts.computers.iter().any(|(group, &computers)| {
                if computers == 0 {
                    return false;
                }
                let done = counts
                    .states
                    .get(&(*update_id, group.clone()))
                    .copied()
                    .unwrap_or_default();
                match effective_approval(*update_id, group, &parents, &by_key)
                    .map(|approval| approval.action)
                {
                    Some(ApprovalAction::Install) => done.installed < computers,
                    Some(ApprovalAction::Uninstall) => done.removed < computers,
                    Some(ApprovalAction::NotApproved) | None => false,
                }
            })
        })
        .collect()
}

/// Declined or superseded: by a current revision that is not declined, or
/// by an update maintenance removed (an update superseded once stays so
/// when its superseder goes the same way later).
pub fn obsolete_updates(updates: &[crate::store::UpdateFacts]) -> HashSet<Uuid> {
    let superseded: HashSet<Uuid> = updates
        .iter()
        .filter(|update| !update.declined)
        .flat_map(|update| {
            update
                .supersedes
                .iter()
                .filter(move |id| **id != update.update_id)
        })
        .copied()
        .collect();
    updates
        .iter()
        .filter(|update| {
            update.declined
                || update.superseded_by_removed
                || superseded.contains(&update.update_id)
        })
        .map(|update| update.update_id)
        .collect()
}

/// What started a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    /// The daily schedule.
    Schedule,
    /// An administrator (`POST /api/v1/maintenance/runs`).
    #[default]
    Request,
}

/// A computer a run removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemovedComputer {
    /// Its identity.
    pub computer_id: Uuid,
    /// Its host name.
    pub hostname: String,
}

/// One maintenance run's record: what it removed (or, in a dry run, would
/// have). Lists hold at most [`MAX_LISTED`] entries; counts are exact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceRun {
    /// Its ID (0 for a dry run, which is not stored).
    pub id: i64,
    /// When it started (the store's clock).
    #[schema(value_type = String)]
    pub started: Timestamp,
    /// When it ended.
    #[schema(value_type = String)]
    pub finished: Timestamp,
    /// What started it.
    pub trigger: Trigger,
    /// Nothing was changed: what it lists is what a run would do now.
    pub dry_run: bool,
    /// Computers marked stale.
    pub stale_marked: Vec<Uuid>,
    /// How many.
    pub stale_marked_count: u64,
    /// Computers removed.
    pub removed_computers: Vec<RemovedComputer>,
    /// How many.
    pub removed_computer_count: u64,
    /// Obsolete updates (declined or superseded).
    pub obsolete_count: u64,
    /// Obsolete updates kept because some computer needs them.
    pub needed_count: u64,
    /// Obsolete, unneeded updates still within their retention.
    pub retained_count: u64,
    /// Updates removed.
    pub removed_updates: Vec<Uuid>,
    /// How many.
    pub removed_update_count: u64,
    /// Per-computer update states removed (with removed updates and
    /// computers).
    pub removed_state_count: u64,
    /// Content files removed (SHA-256).
    pub removed_content: Vec<String>,
    /// How many.
    pub removed_content_count: u64,
    /// Their bytes.
    pub removed_content_bytes: u64,
    /// Files in the content directory that the store did not list, removed.
    pub removed_stray_files: u64,
    /// Change-log rows pruned.
    pub pruned_sync_log_rows: u64,
    /// What was done to give space back.
    pub reclaimed: String,
    /// The database's size before, in bytes.
    pub database_bytes_before: u64,
    /// And after.
    pub database_bytes_after: u64,
    /// What stopped it early, if something did.
    pub error: Option<String>,
}

fn push_listed<T>(list: &mut Vec<T>, count: &mut u64, items: impl IntoIterator<Item = T>) {
    for item in items {
        *count += 1;
        if list.len() < MAX_LISTED {
            list.push(item);
        }
    }
}

/// Runs maintenance once, now by the store's clock; `content_dir` is
/// `None` when the server keeps no content. A failure part-way is recorded
/// in the run's `error` (what was done before it stays done).
pub async fn run(
    store: &Store,
    content_dir: Option<&Path>,
    policy: &Policy,
    trigger: Trigger,
    dry_run: bool,
) -> Result<MaintenanceRun, RunError> {
    let Some(lock) = store.try_maintenance_lock().await? else {
        return Err(RunError::Busy);
    };
    let mut record = MaintenanceRun {
        started: store.clock().now(),
        trigger,
        dry_run,
        ..MaintenanceRun::default()
    };
    record.database_bytes_before = store.database_size().await?;
    if let Err(error) = steps(store, content_dir, policy, &mut record).await {
        tracing::warn!(%error, "maintenance stopped early");
        record.error = Some(error.to_string());
    }
    record.database_bytes_after = store.database_size().await?;
    record.finished = store.clock().now();
    if !dry_run {
        let json = serde_json::to_string(&record)
            .map_err(|error| StoreError::Corrupt(format!("an unencodable run: {error}")))?;
        record.id = store
            .record_maintenance_run(
                record.started,
                json,
                record.started - SignedDuration::from_hours(24 * RUN_RECORD_DAYS),
                RUN_RECORDS_KEPT,
            )
            .await?;
    }
    tracing::info!(
        dry_run,
        stale = record.stale_marked_count,
        computers = record.removed_computer_count,
        updates = record.removed_update_count,
        content = record.removed_content_count,
        bytes = record.removed_content_bytes,
        "maintenance run done"
    );
    lock.release().await;
    Ok(record)
}

/// Why a run did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Another run is under way.
    #[error("another maintenance run is under way")]
    Busy,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

async fn steps(
    store: &Store,
    content_dir: Option<&Path>,
    policy: &Policy,
    record: &mut MaintenanceRun,
) -> Result<(), StoreError> {
    let now = record.started;
    let dry_run = record.dry_run;

    // Computers first: a removed computer needs nothing any more.
    let stale_cutoff = now - days(policy.stale_after_days);
    let remove_cutoff = now - days(policy.remove_after_days);
    let computers = store.maintenance_computers().await?;
    let hostnames: HashMap<Uuid, String> = computers
        .iter()
        .map(|computer| (computer.computer_id, computer.hostname.clone()))
        .collect();
    let to_remove: Vec<Uuid> = computers
        .iter()
        .filter(|computer| computer.last_heard <= remove_cutoff)
        .map(|computer| computer.computer_id)
        .collect();
    let to_mark: Vec<Uuid> = computers
        .iter()
        .filter(|computer| {
            !computer.stale
                && computer.last_heard <= stale_cutoff
                && computer.last_heard > remove_cutoff
        })
        .map(|computer| computer.computer_id)
        .collect();
    for chunk in to_remove.chunks(COMPUTERS_PER_CHUNK) {
        let (removed, states) = if dry_run {
            (chunk.to_vec(), 0)
        } else {
            store
                .remove_computers(chunk.to_vec(), remove_cutoff)
                .await?
        };
        record.removed_state_count += states;
        let removed = removed.into_iter().map(|computer_id| RemovedComputer {
            hostname: hostnames.get(&computer_id).cloned().unwrap_or_default(),
            computer_id,
        });
        push_listed(
            &mut record.removed_computers,
            &mut record.removed_computer_count,
            removed,
        );
    }
    for chunk in to_mark.chunks(COMPUTERS_PER_CHUNK) {
        let marked = if dry_run {
            chunk.to_vec()
        } else {
            store.mark_stale(chunk.to_vec(), stale_cutoff).await?
        };
        push_listed(
            &mut record.stale_marked,
            &mut record.stale_marked_count,
            marked,
        );
    }

    // Updates: obsolete, unneeded, past retention.
    let (mut version, updates) = store.maintenance_updates().await?;
    let declined: HashSet<Uuid> = updates
        .iter()
        .filter(|update| update.declined)
        .map(|update| update.update_id)
        .collect();
    let mut obsolete: Vec<Uuid> = obsolete_updates(&updates).into_iter().collect();
    obsolete.sort();
    record.obsolete_count = obsolete.len() as u64;
    let mut needed = HashSet::new();
    for chunk in obsolete.chunks(UPDATES_PER_CHUNK) {
        needed.extend(
            store
                .needed_updates(chunk.to_vec(), declined.clone())
                .await?,
        );
    }
    record.needed_count = needed.len() as u64;
    let unneeded: Vec<Uuid> = obsolete
        .into_iter()
        .filter(|update_id| !needed.contains(update_id))
        .collect();
    let since = store.mark_obsolete(unneeded.clone(), now, dry_run).await?;
    let retention_cutoff = now - days(policy.retention_days);
    let due: Vec<Uuid> = unneeded
        .into_iter()
        .filter(|update_id| {
            since
                .get(update_id)
                .is_some_and(|&time| time <= retention_cutoff)
        })
        .collect();
    record.retained_count = record.obsolete_count - record.needed_count - due.len() as u64;
    for chunk in due.chunks(UPDATES_PER_CHUNK) {
        if dry_run {
            push_listed(
                &mut record.removed_updates,
                &mut record.removed_update_count,
                chunk.iter().copied(),
            );
            continue;
        }
        match store
            .remove_updates(chunk.to_vec(), declined.clone(), version)
            .await?
        {
            UpdateRemoval::Removed {
                removed,
                states,
                version: after,
            } => {
                version = after;
                record.removed_state_count += states;
                push_listed(
                    &mut record.removed_updates,
                    &mut record.removed_update_count,
                    removed,
                );
            }
            // Someone published, declined or approved meanwhile: what was
            // read may be out of date, so the rest waits for the next run.
            UpdateRemoval::CatalogMoved => break,
        }
    }

    // Content no revision lists any more, and stray files.
    let removed_content = store.collect_content(retention_cutoff, dry_run).await?;
    if let Some(content_dir) = content_dir {
        if !dry_run {
            delete_files(
                content_dir,
                removed_content.iter().map(|(sha256, _)| sha256.clone()),
            )
            .await?;
        }
        let known = store.content_digests().await?;
        record.removed_stray_files =
            sweep_strays(content_dir, known, policy.retention_days, dry_run).await?;
    }
    for (sha256, size) in removed_content {
        record.removed_content_bytes += size;
        push_listed(
            &mut record.removed_content,
            &mut record.removed_content_count,
            [sha256],
        );
    }

    if !dry_run {
        record.pruned_sync_log_rows = store
            .prune_sync_log(now - days(policy.sync_log_days))
            .await?;
        record.reclaimed = store.reclaim_space().await?;
    }
    Ok(())
}

async fn delete_files(
    content_dir: &Path,
    digests: impl Iterator<Item = String>,
) -> Result<(), StoreError> {
    let paths: Vec<PathBuf> = digests.map(|sha256| content_dir.join(sha256)).collect();
    tokio::task::spawn_blocking(move || {
        for path in paths {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(StoreError::Io(format!("{}: {error}", path.display())));
                }
            }
        }
        Ok(())
    })
    .await
    .map_err(|error| StoreError::Io(format!("the content thread: {error}")))?
}

/// Removes content files (64 hex digits) that the store does not list and
/// that were last changed over `retention_days` ago: left by a crash
/// between an upload's rename and its row, or by a row removed while an
/// upload of the same file was under way. Returns how many (would) go.
async fn sweep_strays(
    content_dir: &Path,
    known: HashSet<String>,
    retention_days: u64,
    dry_run: bool,
) -> Result<u64, StoreError> {
    let dir = content_dir.to_owned();
    let age = Duration::from_secs(retention_days.saturating_mul(24 * 3600));
    tokio::task::spawn_blocking(move || {
        let io = |error: std::io::Error| StoreError::Io(format!("{}: {error}", dir.display()));
        let mut removed = 0;
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let is_digest = name.len() == 64
                && name
                    .bytes()
                    .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
            if !is_digest || known.contains(name) {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|metadata| metadata.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|elapsed| elapsed >= age);
            if !old {
                continue;
            }
            if !dry_run {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(io(error)),
                }
            }
            removed += 1;
        }
        Ok(removed)
    })
    .await
    .map_err(|error| StoreError::Io(format!("the content thread: {error}")))?
}

/// Runs maintenance daily at `policy.hour_utc` (the system's clock) until
/// the server stops; a run that fails is logged and retried the next day.
pub async fn schedule(store: Store, content_dir: Option<PathBuf>, policy: Policy) {
    if !policy.enabled {
        tracing::info!("maintenance: the daily run is off ([maintenance] enabled = false)");
        return;
    }
    loop {
        tokio::time::sleep(until_next_run(Timestamp::now(), policy.hour_utc)).await;
        if let Err(error) = run(
            &store,
            content_dir.as_deref(),
            &policy,
            Trigger::Schedule,
            false,
        )
        .await
        {
            tracing::warn!(%error, "maintenance run failed");
        }
    }
}

/// How long from `now` to the next `hour_utc`:00 (a whole day when it is
/// that moment exactly).
pub fn until_next_run(now: Timestamp, hour_utc: u8) -> Duration {
    let of_day = now.as_second().rem_euclid(86_400);
    let wait = (i64::from(hour_utc) * 3600 - of_day).rem_euclid(86_400);
    Duration::from_secs(if wait == 0 {
        86_400
    } else {
        wait.unsigned_abs()
    })
}

/// The policy in force and when the next scheduled run is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceStatus {
    /// The policy.
    pub policy: Policy,
    /// The next scheduled run; `None` when the schedule is off.
    #[schema(value_type = Option<String>)]
    pub next_run: Option<Timestamp>,
}

/// The maintenance policy and the next scheduled run.
#[utoipa::path(get, path = "/api/v1/maintenance", security(("admin" = [])),
    responses((status = 200, body = MaintenanceStatus), (status = 401, body = ErrorBody)))]
pub async fn status(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<axum::Json<MaintenanceStatus>, ServerError> {
    require_admin(&state, &headers).await?;
    let policy = state.maintenance.clone();
    let next_run = next_run(&policy, Timestamp::now());
    Ok(axum::Json(MaintenanceStatus { policy, next_run }))
}

/// When the schedule runs next after `now`; `None` when it is off.
pub fn next_run(policy: &Policy, now: Timestamp) -> Option<Timestamp> {
    policy.enabled.then(|| {
        let wait = SignedDuration::try_from(until_next_run(now, policy.hour_utc))
            .unwrap_or(SignedDuration::ZERO);
        now + wait
    })
}

/// `GET /api/v1/maintenance/runs`'s query.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct RunsQuery {
    /// The most runs returned, newest first (1 to 1,000; default 100).
    pub limit: Option<u64>,
}

/// The newest maintenance runs' records, newest first.
#[utoipa::path(get, path = "/api/v1/maintenance/runs", security(("admin" = [])),
    params(RunsQuery),
    responses((status = 200, body = Vec<MaintenanceRun>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn list_runs(
    State(state): State<Shared>,
    headers: HeaderMap,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Vec<MaintenanceRun>>, ServerError> {
    require_admin(&state, &headers).await?;
    let Query(query) = query.map_err(|rejection| {
        ServerError::bad_request("a query parameter is not valid", rejection.body_text())
    })?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ServerError::bad_request(
            "limit must be between 1 and 1000",
            limit.to_string(),
        ));
    }
    Ok(axum::Json(stored_runs(&state.store, limit).await?))
}

/// The newest `limit` stored runs, newest first.
pub async fn stored_runs(store: &Store, limit: u64) -> Result<Vec<MaintenanceRun>, StoreError> {
    store
        .maintenance_runs(limit)
        .await?
        .into_iter()
        .map(|(id, json)| {
            let mut run: MaintenanceRun = serde_json::from_str(&json).map_err(|error| {
                StoreError::Corrupt(format!("maintenance run {id}'s record: {error}"))
            })?;
            run.id = id;
            Ok(run)
        })
        .collect()
}

/// `POST /api/v1/maintenance/runs`'s body.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunRequest {
    /// Change nothing: report what a run would do now.
    #[serde(default)]
    pub dry_run: bool,
}

/// Runs maintenance now, with the configured policy; answers when it is
/// done.
#[utoipa::path(post, path = "/api/v1/maintenance/runs", security(("admin" = [])),
    request_body = RunRequest,
    responses((status = 201, body = MaintenanceRun, description = "a run, stored"),
        (status = 200, body = MaintenanceRun, description = "a dry run, not stored"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "another run is under way")))]
pub async fn start_run(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ServerError> {
    require_admin(&state, &headers).await?;
    let request: RunRequest =
        crate::api::read_json(&headers, body, state.max_request_bytes).await?;
    let content_dir = state
        .content_base_url
        .is_none()
        .then_some(state.content_dir.as_path());
    let record = match run(
        &state.store,
        content_dir,
        &state.maintenance,
        Trigger::Request,
        request.dry_run,
    )
    .await
    {
        Ok(record) => record,
        Err(RunError::Busy) => {
            return Err(ServerError::conflict(
                "a maintenance run is under way; see GET /api/v1/maintenance/runs when it ends",
                "busy",
            ));
        }
        Err(RunError::Store(error)) => return Err(error.into()),
    };
    let status = if request.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(record)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(update_id: Uuid, group: &str, action: ApprovalAction) -> Approval {
        Approval {
            update_id,
            group: group.into(),
            action,
            deadline: None,
        }
    }

    fn fleet() -> NeedCounts {
        NeedCounts {
            groups: vec![
                Group {
                    name: "All Computers".into(),
                    parent: None,
                },
                Group {
                    name: "Web".into(),
                    parent: Some("All Computers".into()),
                },
            ],
            computers: HashMap::from([("All Computers".into(), 0), ("Web".into(), 2)]),
            ..NeedCounts::default()
        }
    }

    #[test]
    fn an_install_approval_is_needed_until_every_computer_has_it() {
        let update = Uuid::from_u128(1);
        let mut counts = fleet();
        counts.approvals = vec![approval(update, "All Computers", ApprovalAction::Install)];
        // No report: it may not have scanned yet.
        assert!(needed_updates(&counts).contains(&update));
        counts.add_state(update, "Web".into(), "Installed", 1);
        counts.add_state(update, "Web".into(), "Failed", 1);
        assert!(needed_updates(&counts).contains(&update));
        counts.add_state(update, "Web".into(), "NotApplicable", 1);
        assert!(needed_updates(&counts).is_empty());
        counts.declined.insert(update);
        counts.states.clear();
        assert!(
            needed_updates(&counts).is_empty(),
            "declined: never offered"
        );
    }

    #[test]
    fn an_uninstall_is_needed_until_removed_and_not_approved_never() {
        let update = Uuid::from_u128(2);
        let mut counts = fleet();
        counts.approvals = vec![
            approval(update, "All Computers", ApprovalAction::Install),
            approval(update, "Web", ApprovalAction::Uninstall),
        ];
        counts.add_state(update, "Web".into(), "Installed", 2);
        assert!(needed_updates(&counts).contains(&update));
        counts.states.clear();
        counts.add_state(update, "Web".into(), "NotInstalled", 2);
        assert!(needed_updates(&counts).is_empty());
        counts.approvals[1].action = ApprovalAction::NotApproved;
        counts.states.clear();
        assert!(needed_updates(&counts).is_empty());
    }

    #[test]
    fn superseded_only_by_an_update_that_is_not_declined() {
        use crate::store::UpdateFacts;
        let (old, new, declined_new) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let other = Uuid::from_u128(4);
        let facts = vec![
            UpdateFacts {
                update_id: old,
                declined: false,
                supersedes: vec![],
                superseded_by_removed: false,
            },
            UpdateFacts {
                update_id: new,
                declined: false,
                supersedes: vec![old],
                superseded_by_removed: false,
            },
            UpdateFacts {
                update_id: declined_new,
                declined: true,
                supersedes: vec![other],
                superseded_by_removed: false,
            },
            UpdateFacts {
                update_id: other,
                declined: false,
                supersedes: vec![],
                superseded_by_removed: false,
            },
        ];
        assert_eq!(obsolete_updates(&facts), HashSet::from([old, declined_new]));
        let mut orphaned = facts[3].clone();
        orphaned.superseded_by_removed = true;
        assert_eq!(obsolete_updates(&[orphaned]), HashSet::from([other]));
    }

    #[test]
    fn the_daily_run_waits_for_its_hour() {
        let at = |text: &str| text.parse::<Timestamp>().unwrap();
        assert_eq!(
            until_next_run(at("2027-01-01T02:00:00Z"), 3),
            Duration::from_secs(3600)
        );
        assert_eq!(
            until_next_run(at("2027-01-01T03:00:00Z"), 3),
            Duration::from_secs(86_400)
        );
        assert_eq!(
            until_next_run(at("2027-01-01T04:00:00Z"), 3),
            Duration::from_secs(23 * 3600)
        );
    }

    #[test]
    fn the_policy_is_checked() {
        assert!(MaintenanceFile::default().resolve(30).is_ok());
        let backwards = MaintenanceFile {
            stale_after_days: Some(60),
            remove_after_days: Some(30),
            ..MaintenanceFile::default()
        };
        assert!(backwards.resolve(30).is_err());
        let late = MaintenanceFile {
            hour_utc: Some(24),
            ..MaintenanceFile::default()
        };
        assert!(late.resolve(30).is_err());
    }
}
