//! Status reports: what each computer says of every update in its catalog
//! (`POST /api/v1/reports`), and the admin's summaries of them.
//!
//! A report carries the computer's full state, not a delta, numbered by a
//! per-computer sequence; the server stores one in a transaction and
//! acknowledges the highest sequence stored, so an agent that resends a
//! report it is unsure of changes nothing.

use std::collections::{HashMap, HashSet};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use jiff::Timestamp;
use openwua_model::hresult::HResult;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::{Shared, parse_update_id, read_json, require_admin, truncate};
use crate::error::{ErrorBody, ServerError};
use crate::fleet::{Approval, Computer, Group, approved_for_install};
use crate::fleet_api::authenticate_computer;

/// The largest report body: 4 MiB.
pub const MAX_REPORT_BYTES: u64 = 4 * 1024 * 1024;
/// The most `updates` entries one report may carry.
pub const MAX_REPORT_UPDATES: usize = 10_000;
/// The longest inventory text field, in characters.
pub const MAX_INVENTORY_CHARS: usize = 256;
/// The most update IDs in `awaitingInteractiveUser`.
pub const MAX_AWAITING: usize = 1_000;

/// WSUS's state of one update on one computer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum UpdateState {
    /// The update does not apply to the computer.
    NotApplicable,
    /// Needed: it applies and is not installed.
    NotInstalled,
    /// Its content is downloaded; not installed yet.
    Downloaded,
    /// Installed.
    Installed,
    /// Installed; a reboot completes it.
    InstalledPendingReboot,
    /// The last attempt to install it failed.
    Failed,
}

impl ResultCode {
    /// The name stored (the same as sent).
    pub fn as_str(self) -> &'static str {
        match self {
            ResultCode::NotStarted => "NotStarted",
            ResultCode::InProgress => "InProgress",
            ResultCode::Succeeded => "Succeeded",
            ResultCode::SucceededWithErrors => "SucceededWithErrors",
            ResultCode::Failed => "Failed",
            ResultCode::Aborted => "Aborted",
        }
    }
}

impl UpdateState {
    /// The word stored (the same as sent).
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::NotApplicable => "NotApplicable",
            UpdateState::NotInstalled => "NotInstalled",
            UpdateState::Downloaded => "Downloaded",
            UpdateState::Installed => "Installed",
            UpdateState::InstalledPendingReboot => "InstalledPendingReboot",
            UpdateState::Failed => "Failed",
        }
    }

    /// The state a stored word names.
    pub fn parse(text: &str) -> Option<Self> {
        [
            UpdateState::NotApplicable,
            UpdateState::NotInstalled,
            UpdateState::Downloaded,
            UpdateState::Installed,
            UpdateState::InstalledPendingReboot,
            UpdateState::Failed,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }
}

/// WUA's OperationResultCode names, as the agent sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ResultCode {
    /// orcNotStarted.
    NotStarted,
    /// orcInProgress.
    InProgress,
    /// orcSucceeded.
    Succeeded,
    /// orcSucceededWithErrors.
    SucceededWithErrors,
    /// orcFailed.
    Failed,
    /// orcAborted.
    Aborted,
}

/// What the agent says of the machine it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    /// The OS's name and version.
    #[serde(default)]
    pub os: Option<String>,
    /// The kernel's release.
    #[serde(default)]
    pub kernel: Option<String>,
    /// The machine's architecture.
    #[serde(default)]
    pub architecture: Option<String>,
    /// `wua-agent`'s version.
    #[serde(default)]
    pub agent_version: Option<String>,
    /// When the agent last synced with this server.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub last_sync: Option<Timestamp>,
    /// Whether a reboot is pending.
    #[serde(default)]
    pub reboot_pending: bool,
    /// Updates waiting for someone at the machine.
    #[serde(default)]
    pub awaiting_interactive_user: Vec<Uuid>,
}

/// One update's line of a report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportedUpdate {
    /// `UpdateID`.
    pub update_id: Uuid,
    /// The revision the agent holds.
    pub revision_number: i32,
    /// Its state.
    pub state: UpdateState,
    /// The last operation's result, if any.
    #[serde(default)]
    pub result_code: Option<ResultCode>,
    /// The last operation's HRESULT, if any.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "0x80240020")]
    pub hresult: Option<HResult>,
    /// When the state was observed.
    #[schema(value_type = String)]
    pub time: Timestamp,
}

/// `POST /api/v1/reports`'s body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReportRequest {
    /// From 1 upwards, per computer and server.
    pub sequence: u64,
    /// The machine.
    pub inventory: Inventory,
    /// The full state of every update in the agent's catalog of this server.
    pub updates: Vec<ReportedUpdate>,
}

/// `POST /api/v1/reports`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReportAck {
    /// The highest sequence the server has stored for this computer.
    pub acknowledged: u64,
}

/// One stored state, as a store reads it back.
#[derive(Debug, Clone)]
pub struct StoredState {
    /// The computer.
    pub computer_id: Uuid,
    /// The update and what the computer said of it.
    pub update: ReportedUpdate,
}

/// A computer's last report: when, and the inventory it carried.
#[derive(Debug, Clone)]
pub struct LastReport {
    /// When the server stored it.
    pub time: Timestamp,
    /// The inventory it carried.
    pub inventory: Option<Inventory>,
}

/// The most lines one page of a report query gives, and its default.
pub const MAX_PAGE: u64 = 10_000;

/// The group filter of the report queries.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupFilter {
    /// Only computers in this group (and, unless `subgroups=false`, in
    /// the groups under it).
    pub group: Option<String>,
    /// Whether the groups under `group` count (default true).
    pub subgroups: Option<bool>,
}

impl GroupFilter {
    /// The names of the groups it admits; `None` admits every group. An
    /// unknown group is a 404.
    fn admitted(&self, groups: &[Group]) -> Result<Option<HashSet<String>>, ServerError> {
        let Some(name) = &self.group else {
            return Ok(None);
        };
        if !groups.iter().any(|group| &group.name == name) {
            return Err(ServerError::not_found(
                "no such group; `wua-server groups list` shows them",
                format!("{:?}", truncate(name)),
            ));
        }
        let mut admitted = HashSet::from([name.clone()]);
        if self.subgroups.unwrap_or(true) {
            // Parents before children is not guaranteed: repeat until no
            // group is added (the tree's depth bounds the rounds).
            loop {
                let before = admitted.len();
                for group in groups {
                    if group.parent.as_ref().is_some_and(|p| admitted.contains(p)) {
                        admitted.insert(group.name.clone());
                    }
                }
                if admitted.len() == before {
                    break;
                }
            }
        }
        Ok(Some(admitted))
    }
}

/// A query string the extractor refused, as the API's 400.
fn bad_query(rejection: QueryRejection) -> ServerError {
    ServerError::bad_request("a query parameter is not valid", rejection.body_text())
}

/// The computers `filter` admits.
async fn filtered_computers(
    state: &Shared,
    filter: &GroupFilter,
) -> Result<Vec<Computer>, ServerError> {
    let computers = state.store.list_computers().await?;
    let Some(admitted) = filter.admitted(&state.store.list_groups().await?)? else {
        return Ok(computers);
    };
    Ok(computers
        .into_iter()
        .filter(|computer| admitted.contains(&computer.group))
        .collect())
}

fn check_report(report: &ReportRequest) -> Result<(), ServerError> {
    if report.sequence == 0 || i64::try_from(report.sequence).is_err() {
        return Err(ServerError::bad_request(
            "sequence runs from 1 to 2^63-1",
            report.sequence.to_string(),
        ));
    }
    if report.updates.len() > MAX_REPORT_UPDATES {
        return Err(ServerError::bad_request(
            format!("a report lists at most {MAX_REPORT_UPDATES} updates"),
            format!("this one lists {}", report.updates.len()),
        ));
    }
    let inventory = &report.inventory;
    for text in [
        &inventory.os,
        &inventory.kernel,
        &inventory.architecture,
        &inventory.agent_version,
    ]
    .into_iter()
    .flatten()
    {
        if text.chars().count() > MAX_INVENTORY_CHARS || text.chars().any(char::is_control) {
            return Err(ServerError::bad_request(
                "an inventory field has at most 256 characters and no control characters",
                format!("{:?}", truncate(text)),
            ));
        }
    }
    if inventory.awaiting_interactive_user.len() > MAX_AWAITING {
        return Err(ServerError::bad_request(
            format!("awaitingInteractiveUser lists at most {MAX_AWAITING} updates"),
            "",
        ));
    }
    let mut seen = HashSet::with_capacity(report.updates.len());
    for update in &report.updates {
        if update.revision_number < 0 {
            return Err(ServerError::bad_request(
                "revisionNumber is not negative",
                update.update_id.to_string(),
            ));
        }
        if !seen.insert(update.update_id) {
            return Err(ServerError::bad_request(
                "a report lists each update once",
                format!("{} is listed twice", update.update_id),
            ));
        }
    }
    Ok(())
}

/// Stores a computer's status report: all of it in one transaction, or
/// nothing if its sequence is not above the one acknowledged.
#[utoipa::path(post, path = "/api/v1/reports", request_body = ReportRequest,
    security(("computer" = [])),
    responses((status = 200, body = ReportAck), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "try again after Retry-After")))]
pub(crate) async fn post_report(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<ReportAck>, ServerError> {
    let (computer_id, _) = authenticate_computer(&state, &headers).await?;
    let report: ReportRequest = read_json(&headers, body, MAX_REPORT_BYTES).await?;
    let acknowledged = ingest(&state, computer_id, report).await?;
    Ok(axum::Json(ReportAck { acknowledged }))
}

/// Checks a report and stores it for `computer_id`: the one path of every
/// report, posted by a computer or imported from an air-gapped site
/// (`airgap`). Returns the acknowledged sequence.
pub(crate) async fn ingest(
    state: &Shared,
    computer_id: Uuid,
    report: ReportRequest,
) -> Result<u64, ServerError> {
    check_report(&report)?;
    let reported: Vec<Uuid> = report
        .updates
        .iter()
        .map(|update| update.update_id)
        .collect();
    let acknowledged = state.store.store_report(computer_id, report).await?;
    // Rollouts of the updates it names weigh the new results, without
    // holding up the acknowledgement.
    let store = state.store.clone();
    tokio::spawn(async move {
        if let Err(error) = crate::rollouts::evaluate(&store, Some(&reported)).await {
            tracing::warn!(%error, "evaluating rollouts after a report");
        }
    });
    Ok(acknowledged)
}

/// How many computers are in each state for one update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSummary {
    /// `UpdateID`.
    pub update_id: Uuid,
    /// In a group the update is approved for Install, and no state sent.
    pub unknown: u64,
    /// NotApplicable.
    pub not_applicable: u64,
    /// NotInstalled (needed).
    pub not_installed: u64,
    /// Downloaded.
    pub downloaded: u64,
    /// Installed.
    pub installed: u64,
    /// InstalledPendingReboot.
    pub installed_pending_reboot: u64,
    /// Failed.
    pub failed: u64,
}

impl UpdateSummary {
    fn count(&mut self, state: UpdateState) {
        let slot = match state {
            UpdateState::NotApplicable => &mut self.not_applicable,
            UpdateState::NotInstalled => &mut self.not_installed,
            UpdateState::Downloaded => &mut self.downloaded,
            UpdateState::Installed => &mut self.installed,
            UpdateState::InstalledPendingReboot => &mut self.installed_pending_reboot,
            UpdateState::Failed => &mut self.failed,
        };
        *slot += 1;
    }
}

/// Each update's counts: states as reported, and Unknown for computers in a
/// group that has it approved for Install that have sent no state for it.
pub fn summarise_updates(
    update_ids: &[Uuid],
    computers: &[Computer],
    groups: &[Group],
    approvals: &[Approval],
    states: &[StoredState],
) -> Vec<UpdateSummary> {
    let mut reported: HashMap<Uuid, HashSet<Uuid>> = HashMap::new();
    let mut summaries: HashMap<Uuid, UpdateSummary> = update_ids
        .iter()
        .map(|&update_id| {
            (
                update_id,
                UpdateSummary {
                    update_id,
                    ..UpdateSummary::default()
                },
            )
        })
        .collect();
    for stored in states {
        if let Some(summary) = summaries.get_mut(&stored.update.update_id) {
            summary.count(stored.update.state);
            reported
                .entry(stored.update.update_id)
                .or_default()
                .insert(stored.computer_id);
        }
    }
    let mut installs_by_group = HashMap::new();
    for computer in computers {
        let installs = installs_by_group
            .entry(computer.group.as_str())
            .or_insert_with(|| approved_for_install(&computer.group, groups, approvals));
        for update_id in installs.keys() {
            let has_state = reported
                .get(update_id)
                .is_some_and(|ids| ids.contains(&computer.computer_id));
            if let Some(summary) = summaries.get_mut(update_id)
                && !has_state
            {
                summary.unknown += 1;
            }
        }
    }
    let mut list: Vec<_> = summaries.into_values().collect();
    list.sort_by_key(|summary| summary.update_id);
    list
}

/// One computer's line of the computers report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComputerSummary {
    /// Its identity.
    pub computer_id: Uuid,
    /// Its host name.
    pub hostname: String,
    /// Its group.
    pub group: String,
    /// When it last synced, if ever.
    #[schema(value_type = Option<String>)]
    pub last_sync: Option<Timestamp>,
    /// When it last reported, if ever.
    #[schema(value_type = Option<String>)]
    pub last_report: Option<Timestamp>,
    /// Updates NotInstalled (needed).
    pub needed: u64,
    /// Updates Failed.
    pub failed: u64,
    /// Updates Installed.
    pub installed: u64,
    /// Updates InstalledPendingReboot.
    pub pending_reboot: u64,
    /// What its last report said of the machine (OS, kernel, agent, reboot
    /// pending, updates waiting for someone at it), if it has reported.
    pub inventory: Option<Inventory>,
}

/// Each computer's counts, in the order of `computers`.
pub fn summarise_computers(
    computers: &[Computer],
    last_reports: &HashMap<Uuid, LastReport>,
    states: &[StoredState],
) -> Vec<ComputerSummary> {
    let mut counts: HashMap<Uuid, [u64; 4]> = HashMap::new();
    for stored in states {
        let slot = match stored.update.state {
            UpdateState::NotInstalled => 0,
            UpdateState::Failed => 1,
            UpdateState::Installed => 2,
            UpdateState::InstalledPendingReboot => 3,
            _ => continue,
        };
        counts.entry(stored.computer_id).or_default()[slot] += 1;
    }
    computers
        .iter()
        .map(|computer| {
            let [needed, failed, installed, pending_reboot] = counts
                .get(&computer.computer_id)
                .copied()
                .unwrap_or_default();
            let last_report = last_reports.get(&computer.computer_id);
            ComputerSummary {
                computer_id: computer.computer_id,
                hostname: computer.hostname.clone(),
                group: computer.group.clone(),
                last_sync: computer.last_sync,
                last_report: last_report.map(|report| report.time),
                inventory: last_report.and_then(|report| report.inventory.clone()),
                needed,
                failed,
                installed,
                pending_reboot,
            }
        })
        .collect()
}

async fn update_summaries(
    state: &Shared,
    update_ids: Vec<Uuid>,
    only: Option<Uuid>,
) -> Result<Vec<UpdateSummary>, ServerError> {
    let store = &state.store;
    let computers = store.list_computers().await?;
    let groups = store.list_groups().await?;
    let approvals = store.all_approvals().await?;
    let states = store.update_states(only).await?;
    // Counting a large fleet's states is CPU work.
    tokio::task::spawn_blocking(move || {
        summarise_updates(&update_ids, &computers, &groups, &approvals, &states)
    })
    .await
    .map_err(|error| ServerError::internal(format!("the counting thread: {error}")))
}

/// Every update's counts of computers by state.
#[utoipa::path(get, path = "/api/v1/reports/updates", security(("admin" = [])),
    responses((status = 200, body = Vec<UpdateSummary>), (status = 401, body = ErrorBody)))]
pub(crate) async fn updates_report(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<axum::Json<Vec<UpdateSummary>>, ServerError> {
    require_admin(&state, &headers).await?;
    let ids = state
        .store
        .list_updates()
        .await?
        .into_iter()
        .map(|revision| revision.update_id)
        .collect();
    Ok(axum::Json(update_summaries(&state, ids, None).await?))
}

/// One update's counts of computers by state.
#[utoipa::path(get, path = "/api/v1/reports/updates/{id}", security(("admin" = [])),
    params(("id" = String, Path, description = "UpdateID (a GUID)")),
    responses((status = 200, body = UpdateSummary), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn update_report(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<UpdateSummary>, ServerError> {
    require_admin(&state, &headers).await?;
    let update_id = parse_update_id(&id)?;
    if state.store.update_history(update_id).await?.is_none() {
        return Err(ServerError::not_found(
            "no such update; `wua-server updates list` shows them",
            update_id.to_string(),
        ));
    }
    update_summaries(&state, vec![update_id], Some(update_id))
        .await?
        .pop()
        .map(axum::Json)
        .ok_or_else(|| ServerError::internal("the update's summary went missing"))
}

/// Every computer's last sync, last report, inventory and counts of
/// updates by state; or those of one group.
#[utoipa::path(get, path = "/api/v1/reports/computers", security(("admin" = [])),
    params(GroupFilter),
    responses((status = 200, body = Vec<ComputerSummary>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn computers_report(
    State(state): State<Shared>,
    headers: HeaderMap,
    filter: Result<Query<GroupFilter>, QueryRejection>,
) -> Result<axum::Json<Vec<ComputerSummary>>, ServerError> {
    require_admin(&state, &headers).await?;
    let Query(filter) = filter.map_err(bad_query)?;
    let computers = filtered_computers(&state, &filter).await?;
    let last_reports = state.store.last_reports().await?;
    let states = state.store.update_states(None).await?;
    Ok(axum::Json(summarise_computers(
        &computers,
        &last_reports,
        &states,
    )))
}

/// One failed update on one computer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The computer.
    pub computer_id: Uuid,
    /// Its host name.
    pub hostname: String,
    /// `UpdateID`.
    pub update_id: Uuid,
    /// The failure's code, if the agent sent one.
    #[schema(value_type = Option<String>, example = "0x80240020")]
    pub hresult: Option<HResult>,
    /// The code's name, when the model knows it.
    pub name: Option<String>,
    /// When the failure was observed.
    #[schema(value_type = String)]
    pub time: Timestamp,
}

/// Every Failed state of `computers`, newest first.
pub fn failures(computers: &[Computer], states: &[StoredState]) -> Vec<Failure> {
    let hostnames: HashMap<Uuid, &str> = computers
        .iter()
        .map(|computer| (computer.computer_id, computer.hostname.as_str()))
        .collect();
    let mut list: Vec<Failure> = states
        .iter()
        .filter(|stored| {
            stored.update.state == UpdateState::Failed
                && hostnames.contains_key(&stored.computer_id)
        })
        .map(|stored| Failure {
            computer_id: stored.computer_id,
            hostname: hostnames
                .get(&stored.computer_id)
                .copied()
                .unwrap_or_default()
                .to_owned(),
            update_id: stored.update.update_id,
            hresult: stored.update.hresult,
            name: stored
                .update
                .hresult
                .and_then(|hresult| hresult.name())
                .map(str::to_owned),
            time: stored.update.time,
        })
        .collect();
    list.sort_by(|a, b| b.time.cmp(&a.time).then(a.computer_id.cmp(&b.computer_id)));
    list
}

/// One group's compliance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupSummary {
    /// The group.
    pub group: String,
    /// The computers in it (not in its child groups).
    pub computers: u64,
    /// Those with no update approved for Install that is NotInstalled,
    /// Failed or InstalledPendingReboot.
    pub up_to_date: u64,
}

/// Each group's computers and how many are up to date, by group name.
pub fn summarise_groups(
    computers: &[Computer],
    groups: &[Group],
    approvals: &[Approval],
    states: &[StoredState],
) -> Vec<GroupSummary> {
    let mut behind: HashMap<Uuid, HashSet<Uuid>> = HashMap::new();
    for stored in states {
        if matches!(
            stored.update.state,
            UpdateState::NotInstalled | UpdateState::Failed | UpdateState::InstalledPendingReboot
        ) {
            behind
                .entry(stored.computer_id)
                .or_default()
                .insert(stored.update.update_id);
        }
    }
    let mut summaries: Vec<GroupSummary> = groups
        .iter()
        .map(|group| {
            let installs = approved_for_install(&group.name, groups, approvals);
            let members: Vec<&Computer> = computers
                .iter()
                .filter(|computer| computer.group == group.name)
                .collect();
            let up_to_date = members
                .iter()
                .filter(|computer| {
                    behind.get(&computer.computer_id).is_none_or(|updates| {
                        !updates.iter().any(|update| installs.contains_key(update))
                    })
                })
                .count();
            GroupSummary {
                group: group.name.clone(),
                computers: members.len() as u64,
                up_to_date: up_to_date as u64,
            }
        })
        .collect();
    summaries.sort_by(|a, b| a.group.cmp(&b.group));
    summaries
}

/// Every Failed update on every computer (or one group's), with its code,
/// newest first.
#[utoipa::path(get, path = "/api/v1/reports/failures", security(("admin" = [])),
    params(GroupFilter),
    responses((status = 200, body = Vec<Failure>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn failures_report(
    State(state): State<Shared>,
    headers: HeaderMap,
    filter: Result<Query<GroupFilter>, QueryRejection>,
) -> Result<axum::Json<Vec<Failure>>, ServerError> {
    require_admin(&state, &headers).await?;
    let Query(filter) = filter.map_err(bad_query)?;
    let computers = filtered_computers(&state, &filter).await?;
    let states = state.store.update_states(None).await?;
    Ok(axum::Json(failures(&computers, &states)))
}

/// Per group: its computers, and how many are up to date.
#[utoipa::path(get, path = "/api/v1/reports/groups", security(("admin" = [])),
    responses((status = 200, body = Vec<GroupSummary>), (status = 401, body = ErrorBody)))]
pub(crate) async fn groups_report(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<axum::Json<Vec<GroupSummary>>, ServerError> {
    require_admin(&state, &headers).await?;
    let store = &state.store;
    let computers = store.list_computers().await?;
    let groups = store.list_groups().await?;
    let approvals = store.all_approvals().await?;
    let states = store.update_states(None).await?;
    // Counting a large fleet's states is CPU work.
    let summaries = tokio::task::spawn_blocking(move || {
        summarise_groups(&computers, &groups, &approvals, &states)
    })
    .await
    .map_err(|error| ServerError::internal(format!("the counting thread: {error}")))?;
    Ok(axum::Json(summaries))
}

/// The query of `GET /api/v1/reports/updates/{id}/computers`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UpdateComputersQuery {
    /// The states wanted, separated by commas: WSUS's states, and
    /// `Unknown` (in a group it is approved for Install, no state sent).
    /// Default: `NotInstalled,Downloaded,Failed`, the computers that need it.
    pub state: Option<String>,
    /// Only computers in this group (and, unless `subgroups=false`, in
    /// the groups under it).
    pub group: Option<String>,
    /// Whether the groups under `group` count (default true).
    pub subgroups: Option<bool>,
    /// The most computers in the answer: 1 to 10,000 (default 1,000).
    pub limit: Option<u64>,
    /// How many to skip, in the answer's order (host name, then ID).
    pub offset: Option<u64>,
}

/// One computer's state of one update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateComputer {
    /// The computer.
    pub computer_id: Uuid,
    /// Its host name.
    pub hostname: String,
    /// Its group.
    pub group: String,
    /// The state it reported; null for Unknown (none sent).
    pub state: Option<UpdateState>,
    /// The revision it holds, if it reported one.
    pub revision_number: Option<i32>,
    /// The last operation's result, if any.
    pub result_code: Option<ResultCode>,
    /// The last operation's HRESULT, if any.
    #[schema(value_type = Option<String>, example = "0x80240020")]
    pub hresult: Option<HResult>,
    /// The code's name, when the model knows it.
    pub name: Option<String>,
    /// When the state was observed.
    #[schema(value_type = Option<String>)]
    pub time: Option<Timestamp>,
}

/// One page of the computers in some states for one update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateComputers {
    /// `UpdateID`.
    pub update_id: Uuid,
    /// How many computers match, on every page.
    pub total: u64,
    /// The first line's position among them.
    pub offset: u64,
    /// This page's computers, by host name, then ID.
    pub computers: Vec<UpdateComputer>,
}

/// The states a `state` parameter names: `Some(state)` for a reported one,
/// `None` for Unknown.
fn parse_states(text: Option<&str>) -> Result<HashSet<Option<UpdateState>>, ServerError> {
    let Some(text) = text else {
        return Ok(HashSet::from([
            Some(UpdateState::NotInstalled),
            Some(UpdateState::Downloaded),
            Some(UpdateState::Failed),
        ]));
    };
    text.split(',')
        .map(|word| match word.trim() {
            "Unknown" => Ok(None),
            word => UpdateState::parse(word).map(Some).ok_or_else(|| {
                ServerError::bad_request(
                    "state names WSUS states separated by commas: Unknown, NotApplicable, \
                     NotInstalled, Downloaded, Installed, InstalledPendingReboot, Failed",
                    format!("{:?}", truncate(word)),
                )
            }),
        })
        .collect()
}

/// The computers in `wanted` states for one update, by host name then ID.
pub fn update_computers(
    update_id: Uuid,
    wanted: &HashSet<Option<UpdateState>>,
    computers: &[Computer],
    groups: &[Group],
    approvals: &[Approval],
    states: &[StoredState],
) -> Vec<UpdateComputer> {
    let by_computer: HashMap<Uuid, &ReportedUpdate> = states
        .iter()
        .filter(|stored| stored.update.update_id == update_id)
        .map(|stored| (stored.computer_id, &stored.update))
        .collect();
    let mut approved_in: HashMap<&str, bool> = HashMap::new();
    let mut list: Vec<UpdateComputer> = computers
        .iter()
        .filter_map(|computer| {
            let reported = by_computer.get(&computer.computer_id).copied();
            match reported {
                Some(update) if !wanted.contains(&Some(update.state)) => return None,
                None if !wanted.contains(&None) => return None,
                None => {
                    let approved =
                        *approved_in
                            .entry(computer.group.as_str())
                            .or_insert_with(|| {
                                approved_for_install(&computer.group, groups, approvals)
                                    .contains_key(&update_id)
                            });
                    if !approved {
                        return None;
                    }
                }
                Some(_) => {}
            }
            Some(UpdateComputer {
                computer_id: computer.computer_id,
                hostname: computer.hostname.clone(),
                group: computer.group.clone(),
                state: reported.map(|update| update.state),
                revision_number: reported.map(|update| update.revision_number),
                result_code: reported.and_then(|update| update.result_code),
                hresult: reported.and_then(|update| update.hresult),
                name: reported
                    .and_then(|update| update.hresult)
                    .and_then(|hresult| hresult.name())
                    .map(str::to_owned),
                time: reported.map(|update| update.time),
            })
        })
        .collect();
    list.sort_by(|a, b| {
        a.hostname
            .cmp(&b.hostname)
            .then(a.computer_id.cmp(&b.computer_id))
    });
    list
}

/// The computers in some states for one update: by default those that
/// need it (NotInstalled, Downloaded, Failed), a page at a time.
#[utoipa::path(get, path = "/api/v1/reports/updates/{id}/computers", security(("admin" = [])),
    params(("id" = String, Path, description = "UpdateID (a GUID)"), UpdateComputersQuery),
    responses((status = 200, body = UpdateComputers), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn update_computers_report(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<UpdateComputersQuery>, QueryRejection>,
) -> Result<axum::Json<UpdateComputers>, ServerError> {
    require_admin(&state, &headers).await?;
    let update_id = parse_update_id(&id)?;
    let Query(query) = query.map_err(bad_query)?;
    let wanted = parse_states(query.state.as_deref())?;
    let limit = query.limit.unwrap_or(1_000);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ServerError::bad_request(
            format!("limit runs from 1 to {MAX_PAGE}"),
            limit.to_string(),
        ));
    }
    let offset = query.offset.unwrap_or(0);
    if state.store.update_history(update_id).await?.is_none() {
        return Err(ServerError::not_found(
            "no such update; `wua-server updates list` shows them",
            update_id.to_string(),
        ));
    }
    let filter = GroupFilter {
        group: query.group,
        subgroups: query.subgroups,
    };
    let computers = filtered_computers(&state, &filter).await?;
    let groups = state.store.list_groups().await?;
    let approvals = state.store.all_approvals().await?;
    let states = state.store.update_states(Some(update_id)).await?;
    let list = tokio::task::spawn_blocking(move || {
        update_computers(update_id, &wanted, &computers, &groups, &approvals, &states)
    })
    .await
    .map_err(|error| ServerError::internal(format!("the counting thread: {error}")))?;
    let total = list.len() as u64;
    let page = list
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect();
    Ok(axum::Json(UpdateComputers {
        update_id,
        total,
        offset,
        computers: page,
    }))
}
