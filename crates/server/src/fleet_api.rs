//! The fleet's endpoints: the service's identity, computer registration,
//! the signed sync, and the admin API for groups, computers and approvals.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use openwua_catalog::revision::Revision;
use openwua_catalog::snapshot::{FORMAT_VERSION, Snapshot};
use openwua_catalog::sync::{Delta, SignedResponse, StillCurrent};
use openwua_model::enums::DeploymentAction;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::{
    AppState, Shared, parse_guid, parse_update_id, read_json, require_admin, truncate,
};
use crate::error::{ErrorBody, ServerError};
use crate::fleet::{
    ALL_COMPUTERS, Approval, ApprovalAction, Computer, Group, GroupChange, NewComputer,
    check_group_name,
};
use crate::setup::token_hash;
use crate::store::{DeltaView, Offered, SyncPlan, SyncView};
use crate::sync_cache::SyncCache;

/// The largest registration body.
pub const MAX_REGISTER_BYTES: u64 = 4096;
/// The largest sync request body.
pub const MAX_SYNC_BYTES: u64 = 1024;
/// The largest admin request body of this module (a group, a move, an
/// approval).
pub const MAX_ADMIN_BYTES: u64 = 4096;
/// The longest host name, in characters.
pub const MAX_HOSTNAME_CHARS: usize = 255;
/// The longest machine ID, in hex digits.
pub const MAX_MACHINE_ID_CHARS: usize = 64;
/// The longest secret a computer may present, in hex digits.
pub const MAX_SECRET_CHARS: usize = 128;

/// `GET /api/v1/service`'s answer.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBody {
    /// The serviceId every snapshot this server signs carries.
    pub service_id: Uuid,
    /// The service's name.
    pub service_name: String,
    /// `ed25519:<64 hex digits>`: what agents pin.
    pub public_key: String,
    /// Where agents fetch content (`http(s)://…/`, a revision's relative
    /// content URL appended), when not from this server's
    /// `/api/v1/content/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_base: Option<String>,
}

/// Who this server is: its serviceId, name and public key.
#[utoipa::path(get, path = "/api/v1/service", responses((status = 200, body = ServiceBody)))]
pub(crate) async fn service(State(state): State<Shared>) -> axum::Json<ServiceBody> {
    axum::Json(ServiceBody {
        service_id: state.service_id,
        service_name: state.service_name.clone(),
        public_key: state.public_key.to_string(),
        content_base: state.content_base_url.clone(),
    })
}

/// A computer registering, or presenting the identity it has.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// 1 to 64 lower-case hex digits (`/etc/machine-id`).
    pub machine_id: String,
    /// At most 255 characters.
    pub hostname: String,
    /// The group it asks for (client-side targeting).
    #[serde(default)]
    pub target_group: Option<String>,
    /// The identity it holds, if any.
    #[serde(default)]
    pub computer_id: Option<Uuid>,
    /// That identity's secret.
    #[serde(default)]
    pub secret: Option<String>,
}

/// The identity a computer is to use.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResponse {
    /// Its identity.
    pub computer_id: Uuid,
    /// Its secret: 64 hex digits.
    pub secret: String,
    /// Its group.
    pub group: String,
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

pub(crate) fn check_registration(request: &RegisterRequest) -> Result<(), ServerError> {
    let id = &request.machine_id;
    if id.is_empty() || id.len() > MAX_MACHINE_ID_CHARS || !is_lower_hex(id) {
        return Err(ServerError::bad_request(
            "machineId is 1 to 64 lower-case hex digits (/etc/machine-id)",
            format!("{:?} is not", truncate(id)),
        ));
    }
    let host = &request.hostname;
    if host.is_empty()
        || host.chars().count() > MAX_HOSTNAME_CHARS
        || host.chars().any(char::is_control)
    {
        return Err(ServerError::bad_request(
            "hostname has 1 to 255 characters and no control characters",
            format!("{:?} is not", truncate(host)),
        ));
    }
    if let Some(group) = &request.target_group {
        check_group_name(group).map_err(|why| {
            ServerError::bad_request(
                format!("targetGroup is not a group name: {why}"),
                format!("{:?}", truncate(group)),
            )
        })?;
    }
    if let Some(secret) = &request.secret
        && (secret.is_empty() || secret.len() > MAX_SECRET_CHARS || !is_lower_hex(secret))
    {
        return Err(ServerError::bad_request(
            "secret is the lower-case hex the server gave at registration",
            "",
        ));
    }
    Ok(())
}

/// Whether `secret` hashes to `known`, compared in constant time.
fn secret_matches(secret: &str, known: &[u8; 32]) -> bool {
    bool::from(token_hash(secret).ct_eq(known))
}

/// Registers a computer, or confirms the identity it presents. A known
/// identity presented from another machine (a cloned image) gets a new one.
#[utoipa::path(post, path = "/api/v1/computers/register", request_body = RegisterRequest,
    responses((status = 200, body = RegisterResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody, description = "a known computerId with a wrong secret"),
        (status = 413, body = ErrorBody),
        (status = 429, body = ErrorBody,
            description = "this address registered too often in the last minute; see Retry-After")))]
pub(crate) async fn register(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<RegisterResponse>, ServerError> {
    let request: RegisterRequest = read_json(&headers, body, MAX_REGISTER_BYTES).await?;
    check_registration(&request)?;
    // An identity presented but not confirmed (a clone's, or one this
    // server does not know) may come with that identity's anchor.
    let replaces_identity = request.computer_id.is_some();
    if let Some(computer_id) = request.computer_id
        && let Some(known) = state.store.credentials(computer_id).await?
    {
        let secret = request
            .secret
            .as_deref()
            .filter(|secret| secret_matches(secret, &known.secret_sha256))
            .ok_or_else(|| {
                ServerError::computer_unauthorized(format!(
                    "the secret is not computer {computer_id}'s"
                ))
            })?;
        if known.machine_id == request.machine_id {
            return Ok(axum::Json(RegisterResponse {
                computer_id,
                secret: secret.to_owned(),
                group: known.group,
            }));
        }
        tracing::info!(%computer_id, machine_id = %request.machine_id,
            "a cloned identity: the clone gets its own");
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|error| ServerError::internal(format!("no random source: {error}")))?;
    let secret = hex::encode(bytes);
    let computer_id = Uuid::new_v4();
    let group = state
        .store
        .add_computer(NewComputer {
            computer_id,
            secret_sha256: token_hash(&secret),
            machine_id: request.machine_id,
            hostname: request.hostname,
            target_group: request.target_group,
            replaces_identity,
        })
        .await?;
    Ok(axum::Json(RegisterResponse {
        computer_id,
        secret,
        group,
    }))
}

/// What a computer sends to sync.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SyncRequest {
    /// The catalog version it last imported from this server, if any.
    pub anchor: Option<u64>,
}

/// The computer a sync request authenticates as, and its group.
pub(crate) async fn authenticate_computer(
    state: &Shared,
    headers: &HeaderMap,
) -> Result<(Uuid, String), ServerError> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ServerError::computer_unauthorized("no Authorization header"))?;
    let malformed =
        || ServerError::computer_unauthorized("the header is not `Computer <computerId> <secret>`");
    let text = value.to_str().map_err(|_| malformed())?;
    let mut words = text.split_ascii_whitespace();
    let (Some("Computer"), Some(id), Some(secret), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(malformed());
    };
    let computer_id = Uuid::try_parse(id).map_err(|_| malformed())?;
    if secret.len() > MAX_SECRET_CHARS {
        return Err(malformed());
    }
    let refused = || ServerError::computer_unauthorized("unknown computer, or a wrong secret");
    let known = state
        .store
        .credentials(computer_id)
        .await?
        .ok_or_else(refused)?;
    if !secret_matches(secret, &known.secret_sha256) {
        return Err(refused());
    }
    Ok((computer_id, known.group))
}

/// The signed catalog for the computer's group: a still-current statement
/// when the anchor is current, a delta from a recent anchor, or a full
/// snapshot of the updates approved for Install or Uninstall (inherited up
/// to "All Computers", declined ones never).
#[utoipa::path(post, path = "/api/v1/sync", request_body = SyncRequest,
    security(("computer" = [])),
    responses(
        (status = 200, content_type = "application/octet-stream",
            description = "one openwua_catalog::sync signed frame (docs/catalog.md)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "try again after Retry-After")))]
pub(crate) async fn sync(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ServerError> {
    let (computer_id, _) = authenticate_computer(&state, &headers).await?;
    let request: SyncRequest = read_json(&headers, body, MAX_SYNC_BYTES).await?;
    // The common answer first, without reading the catalog: nothing new.
    let current = state.store.catalog_version().await?;
    let frame = if request.anchor == Some(current) {
        still_current_frame(&state, current)?
    } else {
        planned_frame(&state, computer_id, request.anchor, current).await?
    };
    state.store.record_sync(computer_id).await?;
    Ok(([(CONTENT_TYPE, "application/octet-stream")], frame).into_response())
}

/// The cached statement that `version` is current, signed once per
/// re-signing period.
fn still_current_frame(state: &AppState, version: u64) -> Result<Bytes, ServerError> {
    let issued = SyncCache::period_start(Timestamp::now(), state.freshness);
    state.sync_cache.still_current(version, issued, || {
        let statement = StillCurrent {
            format: FORMAT_VERSION,
            service_id: state.service_id,
            version,
            issued,
            valid_until: issued + signed(state.freshness)?,
        };
        SignedResponse::sign_still_current(&statement, &state.signing_key)
            .map(|response| Bytes::from(response.to_bytes()))
            .map_err(|error| ServerError::internal(format!("signing: {error}")))
    })
}

/// The answer the store's plan calls for: read, decided and (for a full
/// snapshot not cached) the revisions read in one transaction.
async fn planned_frame(
    state: &Shared,
    computer_id: Uuid,
    anchor: Option<u64>,
    current: u64,
) -> Result<Bytes, ServerError> {
    let mut cached = state.sync_cache.snapshot_keys(current, Timestamp::now());
    loop {
        let plan = state
            .store
            .sync_plan(computer_id, anchor, cached)
            .await?
            .ok_or_else(|| ServerError::computer_unauthorized("unknown computer"))?;
        let (group, version, view) = match plan {
            SyncPlan::Current(version) => return still_current_frame(state, version),
            SyncPlan::Delta(view) => {
                let shared = Arc::clone(state);
                return signing_thread(move || delta_frame(&shared, view)).await;
            }
            SyncPlan::Full {
                group,
                version,
                view,
            } => (group, version, view),
        };
        let Some(view) = view else {
            match state.sync_cache.snapshot(&group, version) {
                Some(frame) => return Ok(frame),
                // Evicted meanwhile: ask again, holding nothing.
                None => {
                    cached = Vec::new();
                    continue;
                }
            }
        };
        let shared = Arc::clone(state);
        let (made, frame) = signing_thread(move || snapshot_frame(&shared, view)).await?;
        state
            .sync_cache
            .keep_snapshot(&group, version, made, &frame);
        return Ok(frame);
    }
}

/// Runs CPU work (decoding, encoding and signing a catalog) off the async
/// threads.
async fn signing_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ServerError> + Send + 'static,
) -> Result<T, ServerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ServerError::internal(format!("the signing thread: {error}")))?
}

/// A stored revision as a sync sends it: an approval's deadline replaces
/// the manifest's, and an Uninstall approval makes its `DeploymentAction`
/// Uninstallation.
pub(crate) fn offered_revision(offered: Offered) -> Result<Revision, ServerError> {
    let mut revision: Revision = serde_json::from_str(&offered.json)
        .map_err(|error| ServerError::internal(format!("a stored revision: {error}")))?;
    if offered.offer.deadline.is_some() {
        revision.update.deadline = offered.offer.deadline;
    }
    if offered.offer.action == ApprovalAction::Uninstall {
        revision.update.deployment_action = DeploymentAction::Uninstallation;
    }
    Ok(revision)
}

/// The signed full snapshot of `view`'s revisions, and when it was made.
fn snapshot_frame(state: &AppState, view: SyncView) -> Result<(Timestamp, Bytes), ServerError> {
    let now = Timestamp::now();
    let mut revisions = view
        .revisions
        .into_iter()
        .map(offered_revision)
        .collect::<Result<Vec<_>, _>>()?;
    revisions.sort_by_key(|revision| revision.update.identity.update_id);
    let snapshot = Snapshot {
        format: FORMAT_VERSION,
        service_id: state.service_id,
        service_name: state.service_name.clone(),
        version: view.version,
        created: now,
        expires: now + signed(state.snapshot_lifetime)?,
        revisions,
    };
    SignedResponse::sign_snapshot(&snapshot, &state.signing_key)
        .map(|response| (now, Bytes::from(response.to_bytes())))
        .map_err(|error| ServerError::internal(format!("signing the catalog: {error}")))
}

/// The signed delta of `view`.
fn delta_frame(state: &AppState, view: DeltaView) -> Result<Bytes, ServerError> {
    let now = Timestamp::now();
    let mut changed = view
        .changed
        .into_iter()
        .map(offered_revision)
        .collect::<Result<Vec<_>, _>>()?;
    changed.sort_by_key(|revision| revision.update.identity.update_id);
    let mut removed = view.removed;
    removed.sort();
    let delta = Delta {
        format: FORMAT_VERSION,
        service_id: state.service_id,
        service_name: state.service_name.clone(),
        base_version: view.base_version,
        version: view.version,
        created: now,
        expires: now + signed(state.snapshot_lifetime)?,
        changed,
        removed,
    };
    SignedResponse::sign_delta(&delta, &state.signing_key)
        .map(|response| Bytes::from(response.to_bytes()))
        .map_err(|error| ServerError::internal(format!("signing the delta: {error}")))
}

fn signed(duration: std::time::Duration) -> Result<SignedDuration, ServerError> {
    SignedDuration::try_from(duration)
        .map_err(|error| ServerError::internal(format!("a configured duration: {error}")))
}

/// A group to add.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// 1 to 128 characters.
    pub name: String,
    /// Its parent; "All Computers" when absent.
    #[serde(default)]
    pub parent: Option<String>,
}

/// What a change to groups, computers or approvals did.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeReport {
    /// The catalog version after the change.
    pub catalog_version: u64,
}

/// Turns a store's refusal into the error the admin sees.
fn change_report(change: GroupChange, subject: &str) -> Result<ChangeReport, ServerError> {
    match change {
        GroupChange::Done(catalog_version) => Ok(ChangeReport { catalog_version }),
        GroupChange::Exists => Err(ServerError::conflict(
            "a group of that name exists already",
            subject.to_owned(),
        )),
        GroupChange::UnknownGroup => Err(ServerError::not_found(
            "no such group; `wua-server groups list` shows them",
            subject.to_owned(),
        )),
        GroupChange::UnknownComputer => Err(ServerError::not_found(
            "no such computer; `wua-server computers list` shows them",
            subject.to_owned(),
        )),
        GroupChange::UnknownUpdate => Err(ServerError::not_found(
            "no such update; `wua-server updates list` shows them",
            subject.to_owned(),
        )),
        GroupChange::NotEmpty => Err(ServerError::conflict(
            "the group still has computers or child groups; move or remove them first",
            subject.to_owned(),
        )),
        GroupChange::BuiltIn => Err(ServerError::conflict(
            "\"All Computers\" and \"Unassigned Computers\" cannot be removed",
            subject.to_owned(),
        )),
    }
}

fn checked_group(name: &str) -> Result<(), ServerError> {
    check_group_name(name).map_err(|why| ServerError::bad_request(why, truncate(name).to_owned()))
}

/// Every computer group.
#[utoipa::path(get, path = "/api/v1/groups", security(("admin" = [])),
    responses((status = 200, body = Vec<Group>), (status = 401, body = ErrorBody)))]
pub(crate) async fn list_groups(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<axum::Json<Vec<Group>>, ServerError> {
    require_admin(&state, &headers).await?;
    Ok(axum::Json(state.store.list_groups().await?))
}

/// Adds a group under a parent ("All Computers" by default).
#[utoipa::path(post, path = "/api/v1/groups", request_body = NewGroup, security(("admin" = [])),
    responses((status = 201, body = ChangeReport), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "no such parent"),
        (status = 409, body = ErrorBody, description = "the group exists")))]
pub(crate) async fn add_group(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, axum::Json<ChangeReport>), ServerError> {
    require_admin(&state, &headers).await?;
    let request: NewGroup = read_json(&headers, body, MAX_ADMIN_BYTES).await?;
    checked_group(&request.name)?;
    let parent = request.parent.unwrap_or_else(|| ALL_COMPUTERS.to_owned());
    checked_group(&parent)?;
    let change = state.store.add_group(&request.name, &parent).await?;
    let subject = match change {
        GroupChange::UnknownGroup => parent,
        _ => request.name,
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(change_report(change, &subject)?),
    ))
}

/// Removes a group that has no computers and no child groups.
#[utoipa::path(delete, path = "/api/v1/groups/{name}", security(("admin" = [])),
    params(("name" = String, Path, description = "the group's name")),
    responses((status = 200, body = ChangeReport), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn remove_group(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<axum::Json<ChangeReport>, ServerError> {
    require_admin(&state, &headers).await?;
    checked_group(&name)?;
    let change = state.store.remove_group(&name).await?;
    Ok(axum::Json(change_report(change, &name)?))
}

fn parse_computer_id(text: &str) -> Result<Uuid, ServerError> {
    parse_guid("a computer ID", text)
}

/// Every registered computer.
#[utoipa::path(get, path = "/api/v1/computers", security(("admin" = [])),
    responses((status = 200, body = Vec<Computer>), (status = 401, body = ErrorBody)))]
pub(crate) async fn list_computers(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<axum::Json<Vec<Computer>>, ServerError> {
    require_admin(&state, &headers).await?;
    Ok(axum::Json(state.store.list_computers().await?))
}

/// One computer.
#[utoipa::path(get, path = "/api/v1/computers/{id}", security(("admin" = [])),
    params(("id" = String, Path, description = "the computer's ID (a GUID)")),
    responses((status = 200, body = Computer), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn show_computer(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<Computer>, ServerError> {
    require_admin(&state, &headers).await?;
    let computer_id = parse_computer_id(&id)?;
    let computer = state.store.computer(computer_id).await?.ok_or_else(|| {
        ServerError::not_found(
            "no such computer; `wua-server computers list` shows them",
            computer_id.to_string(),
        )
    })?;
    Ok(axum::Json(computer))
}

/// Where to move a computer.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// The group's name.
    pub group: String,
}

/// Moves a computer to another group.
#[utoipa::path(post, path = "/api/v1/computers/{id}/move", request_body = MoveRequest,
    security(("admin" = [])),
    params(("id" = String, Path, description = "the computer's ID (a GUID)")),
    responses((status = 200, body = ChangeReport), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn move_computer(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<axum::Json<ChangeReport>, ServerError> {
    require_admin(&state, &headers).await?;
    let computer_id = parse_computer_id(&id)?;
    let request: MoveRequest = read_json(&headers, body, MAX_ADMIN_BYTES).await?;
    checked_group(&request.group)?;
    let change = state
        .store
        .move_computer(computer_id, &request.group)
        .await?;
    let subject = match change {
        GroupChange::UnknownComputer => computer_id.to_string(),
        _ => request.group,
    };
    Ok(axum::Json(change_report(change, &subject)?))
}

/// An approval to set.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// The group's name.
    pub group: String,
    /// `install`, `uninstall` or `notApproved`.
    pub action: ApprovalAction,
    /// RFC 3339, or null.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub deadline: Option<Timestamp>,
}

/// Sets a group's approval of an update; its child groups inherit it
/// unless they have their own.
#[utoipa::path(post, path = "/api/v1/updates/{id}/approvals", request_body = ApprovalRequest,
    security(("admin" = [])),
    params(("id" = String, Path, description = "UpdateID (a GUID)")),
    responses((status = 200, body = ChangeReport), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn approve(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<axum::Json<ChangeReport>, ServerError> {
    require_admin(&state, &headers).await?;
    let update_id = parse_update_id(&id)?;
    let request: ApprovalRequest = read_json(&headers, body, MAX_ADMIN_BYTES).await?;
    checked_group(&request.group)?;
    let change = state
        .store
        .set_approval(Approval {
            update_id,
            group: request.group.clone(),
            action: request.action,
            deadline: request.deadline,
        })
        .await?;
    // Download on approval: an upstream update's .debs are fetched now.
    state.upstreams.content_wanted.notify_one();
    let subject = match change {
        GroupChange::UnknownUpdate => update_id.to_string(),
        _ => request.group,
    };
    Ok(axum::Json(change_report(change, &subject)?))
}

/// One update's approvals, group by group (its own, not inherited).
#[utoipa::path(get, path = "/api/v1/updates/{id}/approvals", security(("admin" = [])),
    params(("id" = String, Path, description = "UpdateID (a GUID)")),
    responses((status = 200, body = Vec<Approval>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_approvals(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<Approval>>, ServerError> {
    require_admin(&state, &headers).await?;
    let update_id = parse_update_id(&id)?;
    if state.store.update_history(update_id).await?.is_none() {
        return Err(ServerError::not_found(
            "no such update; `wua-server updates list` shows them",
            update_id.to_string(),
        ));
    }
    Ok(axum::Json(state.store.approvals(update_id).await?))
}
