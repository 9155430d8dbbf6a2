//! The admin API of automatic approval rules (`/api/v1/rules`) and of
//! rollouts (`/api/v1/rollouts`, and starting one at
//! `/api/v1/updates/{id}/rollout`). Handlers check the request and call
//! the store; what rules match is `rules.rs`, what rollouts decide is
//! `rollouts.rs`.

use std::collections::HashSet;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::{Shared, parse_update_id, read_json, require_admin, truncate};
use crate::error::{ErrorBody, ServerError};
use crate::fleet::{Approval, GroupChange};
use crate::rollouts::{
    HaltReason, Rollout, RolloutPlan, RolloutState, RolloutTally, current_tally,
};
use crate::rules::{ApprovalRule, RuleFacts};
use crate::store::{RuleApproval, StoreError};

/// The largest rule or rollout body.
pub const MAX_RULE_BYTES: u64 = 64 * 1024;

fn rule_not_found(name: &str) -> ServerError {
    ServerError::not_found(
        "no such rule; `wua-server rules list` shows them",
        truncate(name).to_owned(),
    )
}

/// What adding or removing a rule did.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleReport {
    /// The rule's name.
    pub name: String,
    /// True when it was added or removed; false when it replaced one of
    /// the same name.
    pub changed: bool,
}

/// Every automatic approval rule.
#[utoipa::path(get, path = "/api/v1/rules", security(("admin" = [])),
    responses((status = 200, body = Vec<ApprovalRule>), (status = 401, body = ErrorBody)))]
pub(crate) async fn list_rules(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<axum::Json<Vec<ApprovalRule>>, ServerError> {
    require_admin(&state, &headers).await?;
    Ok(axum::Json(state.store.rules().await?))
}

/// Adds a rule, or replaces the one of the same name. It fires at every
/// publish from now on; run it to apply it to the updates already here.
#[utoipa::path(post, path = "/api/v1/rules", request_body = ApprovalRule,
    security(("admin" = [])),
    responses((status = 201, body = RuleReport), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the server holds 256 rules")))]
pub(crate) async fn add_rule(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, axum::Json<RuleReport>), ServerError> {
    require_admin(&state, &headers).await?;
    let rule: ApprovalRule = read_json(&headers, body, MAX_RULE_BYTES).await?;
    rule.check()
        .map_err(|why| ServerError::bad_request(why, truncate(&rule.name).to_owned()))?;
    let changed = match state.store.put_rule(&rule).await {
        Err(StoreError::TooMany(what)) => {
            return Err(ServerError::conflict(
                format!("the server holds the most {what} it takes; remove one first"),
                crate::rules::MAX_RULES.to_string(),
            ));
        }
        other => other?,
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(RuleReport {
            name: rule.name,
            changed,
        }),
    ))
}

/// One rule.
#[utoipa::path(get, path = "/api/v1/rules/{name}", security(("admin" = [])),
    params(("name" = String, Path, description = "the rule's name")),
    responses((status = 200, body = ApprovalRule), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn show_rule(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<axum::Json<ApprovalRule>, ServerError> {
    require_admin(&state, &headers).await?;
    state
        .store
        .rules()
        .await?
        .into_iter()
        .find(|rule| rule.name == name)
        .map(axum::Json)
        .ok_or_else(|| rule_not_found(&name))
}

/// Removes a rule; the approvals it gave stay.
#[utoipa::path(delete, path = "/api/v1/rules/{name}", security(("admin" = [])),
    params(("name" = String, Path, description = "the rule's name")),
    responses((status = 200, body = RuleReport), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn remove_rule(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<axum::Json<RuleReport>, ServerError> {
    require_admin(&state, &headers).await?;
    if !state.store.remove_rule(&name).await? {
        return Err(rule_not_found(&name));
    }
    Ok(axum::Json(RuleReport {
        name,
        changed: true,
    }))
}

/// Which rules to run over the updates the server holds.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunRequest {
    /// One rule (enabled or not); every enabled rule when absent.
    #[serde(default)]
    pub rule: Option<String>,
    /// List what would be approved, approving nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What running rules did, or would do.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleRun {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// How many updates (current revisions, declined ones left out) the
    /// rules looked at.
    pub updates: u64,
    /// The approvals given (or, in a dry run, that would be): the groups
    /// that exist and have no approval of their own for the update.
    pub approvals: Vec<RuleApproval>,
    /// The catalog version after.
    pub catalog_version: u64,
}

/// Runs one rule, or every enabled rule, over every update the server
/// holds now (their current revisions; declined ones left out).
#[utoipa::path(post, path = "/api/v1/rules/run", request_body = RunRequest,
    security(("admin" = [])),
    responses((status = 200, body = RuleRun), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn run_rules(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<RuleRun>, ServerError> {
    require_admin(&state, &headers).await?;
    let request: RunRequest = read_json(&headers, body, MAX_RULE_BYTES).await?;
    let all = state.store.rules().await?;
    let rules: Vec<ApprovalRule> = match &request.rule {
        Some(name) => vec![
            all.into_iter()
                .find(|rule| &rule.name == name)
                .ok_or_else(|| rule_not_found(name))?,
        ],
        None => all.into_iter().filter(|rule| rule.enabled).collect(),
    };
    let revisions = state.store.current_revisions().await?;
    let updates = revisions.len() as u64;
    let groups: HashSet<String> = state
        .store
        .list_groups()
        .await?
        .into_iter()
        .map(|group| group.name)
        .collect();
    let existing: HashSet<(Uuid, String)> = state
        .store
        .all_approvals()
        .await?
        .into_iter()
        .map(|approval| (approval.update_id, approval.group))
        .collect();
    // Matching reads every revision's JSON: off the async threads.
    let planned = tokio::task::spawn_blocking(move || {
        plan_run(&rules, &revisions, &groups, &existing, Timestamp::now())
    })
    .await
    .map_err(|error| ServerError::internal(format!("the rules thread: {error}")))??;
    let (approvals, catalog_version) = if request.dry_run {
        (planned, state.store.catalog_version().await?)
    } else {
        let wanted: Vec<Approval> = planned
            .iter()
            .map(|(_, approval)| approval.clone())
            .collect();
        let (added, version) = state.store.add_approvals(wanted).await?;
        // Download on approval: an upstream update's .debs are fetched now.
        state.upstreams.content_wanted.notify_one();
        let added: HashSet<(Uuid, String)> = added
            .into_iter()
            .map(|approval| (approval.update_id, approval.group))
            .collect();
        let given = planned
            .into_iter()
            .filter(|(_, approval)| added.contains(&(approval.update_id, approval.group.clone())))
            .collect();
        (given, version)
    };
    Ok(axum::Json(RuleRun {
        dry_run: request.dry_run,
        updates,
        approvals: approvals
            .iter()
            .map(|(rule, approval)| RuleApproval::new(rule.clone(), approval))
            .collect(),
        catalog_version,
    }))
}

/// The approvals `rules` give the current revisions: the first rule to
/// give a (update, group) wins, and groups that are gone or that have
/// their own approval of the update are left out.
pub fn plan_run(
    rules: &[ApprovalRule],
    revisions: &[(Uuid, String)],
    groups: &HashSet<String>,
    existing: &HashSet<(Uuid, String)>,
    now: Timestamp,
) -> Result<Vec<(String, Approval)>, ServerError> {
    let mut taken: HashSet<(Uuid, String)> = HashSet::new();
    let mut planned = Vec::new();
    for (update_id, json) in revisions {
        let facts = RuleFacts::from_json(json).map_err(|error| {
            ServerError::internal(format!("a stored revision of {update_id}: {error}"))
        })?;
        for rule in rules {
            if !rule.matches(&facts) {
                continue;
            }
            for approval in rule.approvals(*update_id, now) {
                let key = (approval.update_id, approval.group.clone());
                if groups.contains(&approval.group) && !existing.contains(&key) && taken.insert(key)
                {
                    planned.push((rule.name.clone(), approval));
                }
            }
        }
    }
    Ok(planned)
}

/// A rollout, with what its admitted rings reported so far.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The rollout.
    pub rollout: Rollout,
    /// The update's current revision, whose results count.
    pub revision: i32,
    /// What the admitted rings reported.
    pub progress: RolloutTally,
}

pub(crate) async fn status_of(
    state: &Shared,
    rollout: Rollout,
) -> Result<RolloutStatus, ServerError> {
    let computers = state.store.list_computers().await?;
    let groups = state.store.list_groups().await?;
    let (progress, revision) = current_tally(&state.store, &rollout, &computers, &groups).await?;
    Ok(RolloutStatus {
        rollout,
        revision,
        progress,
    })
}

fn rollout_not_found(update_id: Uuid) -> ServerError {
    ServerError::not_found(
        "no rollout of that update; `wua-server rollouts list` shows them",
        update_id.to_string(),
    )
}

/// Starts a staged rollout of an update (again, if it had one): every
/// ring's group gets the Install approval, and only ring 0's computers are
/// offered it until the ring has soaked and reported well.
#[utoipa::path(post, path = "/api/v1/updates/{id}/rollout", request_body = RolloutPlan,
    security(("admin" = [])),
    params(("id" = String, Path, description = "UpdateID (a GUID)")),
    responses((status = 201, body = Rollout), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn start_rollout(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<(StatusCode, axum::Json<Rollout>), ServerError> {
    require_admin(&state, &headers).await?;
    let update_id = parse_update_id(&id)?;
    let plan: RolloutPlan = read_json(&headers, body, MAX_RULE_BYTES).await?;
    plan.check()
        .map_err(|why| ServerError::bad_request(why, update_id.to_string()))?;
    let rollout = Rollout {
        update_id,
        plan,
        stage: 0,
        state: RolloutState::Running,
        stage_started: Timestamp::now(),
        halt: None,
    };
    match state.store.start_rollout(rollout.clone()).await? {
        GroupChange::Done(_) => {
            // The first ring's approval: an upstream update's .debs are fetched now.
            state.upstreams.content_wanted.notify_one();
            Ok((StatusCode::CREATED, axum::Json(rollout)))
        }
        GroupChange::UnknownUpdate => Err(ServerError::not_found(
            "no such update; `wua-server updates list` shows them",
            update_id.to_string(),
        )),
        _ => Err(ServerError::not_found(
            "a ring names no group; `wua-server groups list` shows them",
            update_id.to_string(),
        )),
    }
}

/// Every rollout, with its progress.
#[utoipa::path(get, path = "/api/v1/rollouts", security(("admin" = [])),
    responses((status = 200, body = Vec<RolloutStatus>), (status = 401, body = ErrorBody)))]
pub(crate) async fn list_rollouts(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<axum::Json<Vec<RolloutStatus>>, ServerError> {
    require_admin(&state, &headers).await?;
    let mut out = Vec::new();
    for rollout in state.store.rollouts().await? {
        out.push(status_of(&state, rollout).await?);
    }
    Ok(axum::Json(out))
}

/// One update's rollout, with its progress and why it halted, if it did.
#[utoipa::path(get, path = "/api/v1/rollouts/{id}", security(("admin" = [])),
    params(("id" = String, Path, description = "UpdateID (a GUID)")),
    responses((status = 200, body = RolloutStatus), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn show_rollout(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<RolloutStatus>, ServerError> {
    require_admin(&state, &headers).await?;
    let update_id = parse_update_id(&id)?;
    let rollout = state
        .store
        .rollout(update_id)
        .await?
        .ok_or_else(|| rollout_not_found(update_id))?;
    Ok(axum::Json(status_of(&state, rollout).await?))
}

/// Halts a running rollout: its admitted rings keep the update, no other
/// computer gets it.
#[utoipa::path(post, path = "/api/v1/rollouts/{id}/halt", security(("admin" = [])),
    params(("id" = String, Path, description = "UpdateID (a GUID)")),
    responses((status = 200, body = RolloutStatus), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not running")))]
pub(crate) async fn halt_rollout(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<RolloutStatus>, ServerError> {
    require_admin(&state, &headers).await?;
    Ok(axum::Json(halt(&state, parse_update_id(&id)?).await?))
}

/// Halts a running rollout (the API's and the console's halt).
pub(crate) async fn halt(state: &Shared, update_id: Uuid) -> Result<RolloutStatus, ServerError> {
    move_rollout(
        state,
        update_id,
        RolloutState::Running,
        |rollout, status| Rollout {
            state: RolloutState::Halted,
            halt: Some(HaltReason {
                time: Timestamp::now(),
                message: "halted by an administrator".into(),
                reported: status.progress.reported,
                failed: status.progress.failed,
                codes: status.progress.codes.clone(),
            }),
            ..rollout.clone()
        },
    )
    .await
}

/// Resumes a halted rollout: its current ring soaks again from now, and
/// results go on being weighed (fix the update first, e.g. with a new
/// revision, whose results alone count).
#[utoipa::path(post, path = "/api/v1/rollouts/{id}/resume", security(("admin" = [])),
    params(("id" = String, Path, description = "UpdateID (a GUID)")),
    responses((status = 200, body = RolloutStatus), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not halted")))]
pub(crate) async fn resume_rollout(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<RolloutStatus>, ServerError> {
    require_admin(&state, &headers).await?;
    Ok(axum::Json(resume(&state, parse_update_id(&id)?).await?))
}

/// Resumes a halted rollout (the API's and the console's resume).
pub(crate) async fn resume(state: &Shared, update_id: Uuid) -> Result<RolloutStatus, ServerError> {
    move_rollout(state, update_id, RolloutState::Halted, |rollout, _| {
        Rollout {
            state: RolloutState::Running,
            halt: None,
            stage_started: Timestamp::now(),
            ..rollout.clone()
        }
    })
    .await
}

async fn move_rollout(
    state: &Shared,
    update_id: Uuid,
    from: RolloutState,
    next: impl Fn(&Rollout, &RolloutStatus) -> Rollout,
) -> Result<RolloutStatus, ServerError> {
    let rollout = state
        .store
        .rollout(update_id)
        .await?
        .ok_or_else(|| rollout_not_found(update_id))?;
    if rollout.state != from {
        return Err(ServerError::conflict(
            format!("the rollout is not {}", from.as_str()),
            rollout.state.as_str(),
        ));
    }
    let status = status_of(state, rollout.clone()).await?;
    let moved = next(&rollout, &status);
    if state
        .store
        .replace_rollout(&rollout, &moved)
        .await?
        .is_none()
    {
        return Err(ServerError::conflict(
            "the rollout moved meanwhile; look at it again",
            update_id.to_string(),
        ));
    }
    status_of(state, moved).await
}
