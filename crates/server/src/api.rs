//! The HTTP API: the router, its handlers and the OpenAPI document made
//! from them. Handlers check the request, call the store and encode the
//! answer; no SQL here.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use jiff::Timestamp;
use openwua_catalog::revision::Revision;
use openwua_catalog::signing::PublicKey;
use openwua_catalog::snapshot::{FORMAT_VERSION, Snapshot};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::error::{ErrorBody, ServerError};
use crate::setup::{MAX_TOKEN_BYTES, token_hash};
use crate::store::{DeclineOutcome, PublishReport, Store, StoredRevision};
use crate::{content, fleet_api};

/// The most revisions one publish may carry.
pub const MAX_REVISIONS_PER_PUBLISH: usize = 10_000;

/// What every handler shares. Nothing here is state another front end
/// could contradict: the store answers everything, and the sync cache is
/// keyed by the catalog version the store gives.
pub struct AppState {
    /// The store.
    pub store: Store,
    /// DATA_DIR/content.
    pub content_dir: PathBuf,
    /// The public half of the signing key.
    pub public_key: PublicKey,
    /// The key that signs what `/api/v1/sync` sends.
    pub signing_key: openwua_catalog::signing::SecretKey,
    /// The serviceId every snapshot carries (kept in the store).
    pub service_id: Uuid,
    /// The service's name.
    pub service_name: String,
    /// How long a signed snapshot is valid.
    pub snapshot_lifetime: Duration,
    /// How long a still-current statement holds.
    pub freshness: Duration,
    /// The largest JSON body.
    pub max_request_bytes: u64,
    /// The largest content upload.
    pub max_content_bytes: u64,
    /// The operator's content base (`http(s)://…/`): agents fetch content
    /// there, and this server stores none.
    pub content_base_url: Option<String>,
    /// Signed sync answers kept between requests, keyed by the catalog
    /// version the store gives.
    pub sync_cache: crate::sync_cache::SyncCache,
    /// Upstream repositories' shared parts (one sync at a time, the index
    /// cache, the content fetcher's wake-up).
    pub upstreams: crate::upstream::Upstreams,
    /// What maintenance does (`POST /api/v1/maintenance/runs` uses it).
    pub maintenance: crate::maintenance::Policy,
}

/// Shared state, as handlers take it.
pub type Shared = Arc<AppState>;

/// The API's description, generated from the handlers below.
#[derive(OpenApi)]
#[openapi(
    info(title = "OpenWUA update server", description = "The WSUS role: publishing, content."),
    paths(
        healthz,
        readyz,
        key,
        publish,
        list_updates,
        show_update,
        decline,
        content::put_content,
        content::get_content,
        openapi_json,
        fleet_api::service,
        fleet_api::register,
        fleet_api::sync,
        fleet_api::list_groups,
        fleet_api::add_group,
        fleet_api::remove_group,
        fleet_api::list_computers,
        fleet_api::show_computer,
        fleet_api::move_computer,
        fleet_api::approve,
        fleet_api::list_approvals,
        crate::reports::post_report,
        crate::reports::updates_report,
        crate::reports::update_report,
        crate::reports::update_computers_report,
        crate::reports::computers_report,
        crate::reports::failures_report,
        crate::reports::groups_report,
        crate::airgap::export,
        crate::airgap::import_report,
        crate::rules_api::list_rules,
        crate::rules_api::add_rule,
        crate::rules_api::show_rule,
        crate::rules_api::remove_rule,
        crate::rules_api::run_rules,
        crate::rules_api::start_rollout,
        crate::rules_api::list_rollouts,
        crate::rules_api::show_rollout,
        crate::rules_api::halt_rollout,
        crate::rules_api::resume_rollout,
        crate::upstream::api::list,
        crate::upstream::api::add,
        crate::upstream::api::remove,
        crate::upstream::api::sync,
        crate::maintenance::status,
        crate::maintenance::list_runs,
        crate::maintenance::start_run
    ),
    components(schemas(
        ErrorBody,
        KeyBody,
        PublishRequest,
        PublishReport,
        StoredRevision,
        UpdateDetail,
        DeclineReport,
        ReadyBody,
        content::ContentReport,
        fleet_api::ServiceBody,
        fleet_api::RegisterRequest,
        fleet_api::RegisterResponse,
        fleet_api::SyncRequest,
        fleet_api::NewGroup,
        fleet_api::ChangeReport,
        fleet_api::MoveRequest,
        fleet_api::ApprovalRequest,
        crate::fleet::Group,
        crate::fleet::Computer,
        crate::fleet::Approval,
        crate::fleet::ApprovalAction,
        crate::reports::ReportRequest,
        crate::reports::Inventory,
        crate::reports::ReportedUpdate,
        crate::reports::UpdateState,
        crate::reports::ResultCode,
        crate::reports::ReportAck,
        crate::reports::UpdateSummary,
        crate::reports::ComputerSummary,
        crate::reports::Failure,
        crate::reports::GroupSummary,
        crate::reports::UpdateComputer,
        crate::reports::UpdateComputers,
        crate::airgap::ExportRequest,
        crate::airgap::ImportRequest,
        crate::airgap::ImportAck,
        crate::rules::ApprovalRule,
        crate::store::RuleApproval,
        crate::rules_api::RuleReport,
        crate::rules_api::RunRequest,
        crate::rules_api::RuleRun,
        crate::rules_api::RolloutStatus,
        crate::rollouts::Ring,
        crate::rollouts::RolloutPlan,
        crate::rollouts::RolloutState,
        crate::rollouts::Rollout,
        crate::rollouts::HaltReason,
        crate::rollouts::FailingCode,
        crate::rollouts::RolloutTally,
        crate::upstream::UpstreamSpec,
        crate::upstream::UpstreamSummary,
        crate::upstream::PocketFilter,
        crate::upstream::SyncReport,
        crate::upstream::api::RemovedUpstream,
        crate::maintenance::Policy,
        crate::maintenance::MaintenanceStatus,
        crate::maintenance::MaintenanceRun,
        crate::maintenance::RemovedComputer,
        crate::maintenance::Trigger,
        crate::maintenance::RunRequest
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // `Authorization: Computer <computerId> <secret>`, from registration.
        components.add_security_scheme(
            "computer",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                utoipa::openapi::security::ApiKeyValue::new("Authorization"),
            )),
        );
    }
}

/// The router with its layers: trace, timeout, JSON errors for everything.
pub fn router(state: Shared, timeout: Duration) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/key", get(key))
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/api/v1/updates", get(list_updates).post(publish))
        .route("/api/v1/updates/{id}", get(show_update))
        .route("/api/v1/updates/{id}/decline", post(decline))
        .route(
            "/api/v1/updates/{id}/approvals",
            get(fleet_api::list_approvals).post(fleet_api::approve),
        )
        .route("/api/v1/service", get(fleet_api::service))
        .route("/api/v1/computers/register", post(fleet_api::register))
        // Snapshots are large and compress well; gzip only for a client that
        // asks (the agent's ureq does not).
        .route(
            "/api/v1/sync",
            post(fleet_api::sync).layer(CompressionLayer::new().gzip(true)),
        )
        .route(
            "/api/v1/groups",
            get(fleet_api::list_groups).post(fleet_api::add_group),
        )
        .route("/api/v1/groups/{name}", delete(fleet_api::remove_group))
        .route("/api/v1/computers", get(fleet_api::list_computers))
        .route("/api/v1/computers/{id}", get(fleet_api::show_computer))
        .route(
            "/api/v1/computers/{id}/move",
            post(fleet_api::move_computer),
        )
        .route(
            "/api/v1/content/{sha256}",
            get(content::get_content)
                .head(content::get_content)
                .put(content::put_content),
        )
        .route("/api/v1/reports", post(crate::reports::post_report))
        .route(
            "/api/v1/reports/updates",
            get(crate::reports::updates_report),
        )
        .route(
            "/api/v1/reports/updates/{id}",
            get(crate::reports::update_report),
        )
        .route(
            "/api/v1/reports/updates/{id}/computers",
            get(crate::reports::update_computers_report),
        )
        .route(
            "/api/v1/reports/computers",
            get(crate::reports::computers_report),
        )
        .route(
            "/api/v1/reports/failures",
            get(crate::reports::failures_report),
        )
        .route("/api/v1/reports/groups", get(crate::reports::groups_report))
        // Air gap: offline exports and the reports carried back.
        .route("/api/v1/exports", post(crate::airgap::export))
        .route("/api/v1/reports/import", post(crate::airgap::import_report))
        .route(
            "/api/v1/rules",
            get(crate::rules_api::list_rules).post(crate::rules_api::add_rule),
        )
        .route("/api/v1/rules/run", post(crate::rules_api::run_rules))
        .route(
            "/api/v1/rules/{name}",
            get(crate::rules_api::show_rule).delete(crate::rules_api::remove_rule),
        )
        .route(
            "/api/v1/updates/{id}/rollout",
            post(crate::rules_api::start_rollout),
        )
        .route("/api/v1/rollouts", get(crate::rules_api::list_rollouts))
        .route("/api/v1/rollouts/{id}", get(crate::rules_api::show_rollout))
        .route(
            "/api/v1/rollouts/{id}/halt",
            post(crate::rules_api::halt_rollout),
        )
        .route(
            "/api/v1/rollouts/{id}/resume",
            post(crate::rules_api::resume_rollout),
        )
        .merge(crate::upstream::api::routes())
        .route("/api/v1/maintenance", get(crate::maintenance::status))
        .route(
            "/api/v1/maintenance/runs",
            get(crate::maintenance::list_runs).post(crate::maintenance::start_run),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        // Outside the timeout, so its 408 gets the JSON body too.
        .layer(middleware::from_fn(json_errors))
        // JSON only: content files keep their bytes, Range and ETag.
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .compress_when(DefaultPredicate::new().and(is_json)),
        )
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn is_json(
    _: StatusCode,
    _: axum::http::Version,
    headers: &HeaderMap,
    _: &axum::http::Extensions,
) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"))
}

/// The detail the fallback gives, so tests can tell "no route" from "no
/// such item".
pub const NO_ROUTE_DETAIL: &str = "no such endpoint";

async fn no_route() -> ServerError {
    ServerError::not_found("see /api/v1/openapi.json for the API", NO_ROUTE_DETAIL)
}

async fn no_method() -> ServerError {
    ServerError::for_status(StatusCode::METHOD_NOT_ALLOWED)
}

/// Gives every error from a layer (the timeout) the JSON body every other
/// error has.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        return ServerError::for_status(status).into_response();
    }
    response
}

/// Checks `Authorization: Bearer <token>` against the stored hashes, in
/// constant time.
pub async fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ServerError> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ServerError::unauthorized("no Authorization header"))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty() && token.len() <= MAX_TOKEN_BYTES)
        .ok_or_else(|| {
            ServerError::unauthorized("the Authorization header is not `Bearer <token>`")
        })?;
    let presented = token_hash(token);
    let mut matched = subtle::Choice::from(0);
    for known in state.store.admin_tokens().await? {
        matched |= known.ct_eq(&presented);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(ServerError::unauthorized(
            "the token is not one of this server's",
        ))
    }
}

/// Reads a JSON body of at most `limit` bytes.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
) -> Result<T, ServerError> {
    if let Some(length) = content_length(headers)?
        && length > limit
    {
        return Err(ServerError::too_large(limit));
    }
    let bytes = axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .await
        .map_err(|error| {
            let over_limit = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if over_limit {
                ServerError::too_large(limit)
            } else {
                ServerError::bad_request("the request body broke off", error.to_string())
            }
        })?;
    serde_json::from_slice(&bytes).map_err(|error| {
        ServerError::bad_request(
            "the body is not the JSON this endpoint takes; see /api/v1/openapi.json",
            error.to_string(),
        )
    })
}

/// The request's Content-Length, if it gave one.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ServerError> {
    headers
        .get(CONTENT_LENGTH)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| ServerError::bad_request("Content-Length is not a number", ""))
        })
        .transpose()
}

/// An update ID from a request's path.
pub fn parse_update_id(text: &str) -> Result<Uuid, ServerError> {
    parse_guid("an update ID", text)
}

/// A GUID from a request's path; `what` ("an update ID") names it in the
/// refusal.
pub fn parse_guid(what: &str, text: &str) -> Result<Uuid, ServerError> {
    Uuid::try_parse(text).map_err(|_| {
        ServerError::bad_request(
            format!("{what} is a GUID"),
            format!("{:?} is not one", truncate(text)),
        )
    })
}

/// At most 80 characters of something a request said, for a message.
pub fn truncate(text: &str) -> &str {
    match text.char_indices().nth(80) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// `/readyz`'s answer.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadyBody {
    /// `sqlite` or `postgresql`.
    pub store: String,
    /// The schema version the store records.
    pub schema_version: i64,
    /// The catalog version.
    pub catalog_version: u64,
}

/// Alive: the process answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "alive")))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: the store answers.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, body = ReadyBody),
    (status = 503, body = ErrorBody, description = "the store does not answer")))]
async fn readyz(State(state): State<Shared>) -> Result<axum::Json<ReadyBody>, ServerError> {
    Ok(axum::Json(ReadyBody {
        store: state.store.kind().to_owned(),
        schema_version: state.store.schema_version().await?,
        catalog_version: state.store.catalog_version().await?,
    }))
}

/// The server's public key.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct KeyBody {
    /// `ed25519:<64 hex digits>`: what agents pin.
    pub key: String,
}

/// The public key that signs this server's catalogs.
#[utoipa::path(get, path = "/api/v1/key", responses((status = 200, body = KeyBody)))]
async fn key(State(state): State<Shared>) -> axum::Json<KeyBody> {
    axum::Json(KeyBody {
        key: state.public_key.to_string(),
    })
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", responses((status = 200, description = "the OpenAPI document")))]
async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

/// Revisions to publish.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Catalog revisions (docs/catalog.md); at most 10,000, one per update.
    /// Their content must be uploaded first, unless the server has a
    /// content base URL.
    #[schema(value_type = Vec<Object>)]
    pub revisions: Vec<Revision>,
}

/// Publishes revisions: each is added, revised (the next revision number)
/// or unchanged, all in one transaction.
#[utoipa::path(post, path = "/api/v1/updates", request_body = PublishRequest,
    security(("admin" = [])),
    responses(
        (status = 200, body = PublishReport),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "content not uploaded"),
        (status = 413, body = ErrorBody)))]
async fn publish(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<PublishReport>, ServerError> {
    require_admin(&state, &headers).await?;
    let request: PublishRequest = read_json(&headers, body, state.max_request_bytes).await?;
    if request.revisions.is_empty() || request.revisions.len() > MAX_REVISIONS_PER_PUBLISH {
        return Err(ServerError::bad_request(
            "a publish carries 1 to 10,000 revisions",
            format!("this one has {}", request.revisions.len()),
        ));
    }
    let revisions = checked_revisions(request.revisions)?;
    let candidates = revisions
        .into_iter()
        .map(crate::store::Candidate::new)
        .collect::<Result<Vec<_>, _>>()?;
    let published = match &state.content_base_url {
        // Nothing to check here: the server never fetches a URL itself.
        Some(_) => state.store.publish_content_elsewhere(candidates).await,
        None => state.store.publish(candidates).await,
    };
    match published {
        Ok(report) => Ok(axum::Json(report)),
        Err(crate::store::StoreError::MissingContent(missing)) => Err(ServerError::conflict(
            "upload the revisions' content first (PUT /api/v1/content/{sha256})",
            format!("not on the server: {}", missing.join(", ")),
        )),
        Err(error) => Err(error.into()),
    }
}

/// The catalog's own checks (one revision per update, content lists that
/// agree, plain file names), through a snapshot that is not kept.
fn checked_revisions(revisions: Vec<Revision>) -> Result<Vec<Revision>, ServerError> {
    let now = Timestamp::now();
    let snapshot = Snapshot {
        format: FORMAT_VERSION,
        service_id: Uuid::nil(),
        service_name: String::new(),
        version: 0,
        created: now,
        expires: now + jiff::SignedDuration::from_secs(1),
        revisions,
    };
    snapshot.validate().map_err(|error| {
        ServerError::bad_request(
            "the revisions are not valid catalog revisions",
            error.to_string(),
        )
    })?;
    Ok(snapshot.revisions)
}

/// Every update's current revision.
#[utoipa::path(get, path = "/api/v1/updates", security(("admin" = [])),
    responses((status = 200, body = Vec<StoredRevision>), (status = 401, body = ErrorBody)))]
async fn list_updates(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<axum::Json<Vec<StoredRevision>>, ServerError> {
    require_admin(&state, &headers).await?;
    Ok(axum::Json(state.store.list_updates().await?))
}

/// One update: its revisions and the current one's catalog JSON.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateDetail {
    /// Every revision, oldest first.
    #[schema(value_type = Vec<StoredRevision>)]
    pub revisions: Vec<serde_json::Value>,
    /// The current revision as the catalog describes it.
    #[schema(value_type = Object)]
    pub current: Revision,
}

/// One update's revisions.
#[utoipa::path(get, path = "/api/v1/updates/{id}", security(("admin" = [])),
    params(("id" = String, Path, description = "UpdateID (a GUID)")),
    responses((status = 200, body = UpdateDetail), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show_update(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<UpdateDetail>, ServerError> {
    require_admin(&state, &headers).await?;
    let update_id = parse_update_id(&id)?;
    let (revisions, current) = state
        .store
        .update_history(update_id)
        .await?
        .ok_or_else(|| ServerError::not_found("no such update", update_id.to_string()))?;
    let revisions = revisions
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(|error| ServerError::internal(error.to_string()))?;
    Ok(axum::Json(UpdateDetail { revisions, current }))
}

/// What declining did.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeclineReport {
    /// False when it was declined already.
    pub changed: bool,
    /// The catalog version after.
    pub catalog_version: u64,
}

/// Declines (withdraws) an update: every revision of it, for every computer.
#[utoipa::path(post, path = "/api/v1/updates/{id}/decline", security(("admin" = [])),
    params(("id" = String, Path, description = "UpdateID (a GUID)")),
    responses((status = 200, body = DeclineReport), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn decline(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<DeclineReport>, ServerError> {
    require_admin(&state, &headers).await?;
    let update_id = parse_update_id(&id)?;
    let (changed, catalog_version) = match state.store.decline(update_id).await? {
        DeclineOutcome::Declined(version) => (true, version),
        DeclineOutcome::AlreadyDeclined(version) => (false, version),
        DeclineOutcome::Unknown => {
            return Err(ServerError::not_found(
                "no such update",
                update_id.to_string(),
            ));
        }
    };
    Ok(axum::Json(DeclineReport {
        changed,
        catalog_version,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::http::Method;
    use tower::ServiceExt;

    use super::*;

    /// The routes `router` serves; kept beside it so that a route added to
    /// one and not the other fails this test.
    const ROUTES: &[(&str, &str)] = &[
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/api/v1/key"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/updates"),
        ("POST", "/api/v1/updates"),
        ("GET", "/api/v1/updates/{id}"),
        ("POST", "/api/v1/updates/{id}/decline"),
        ("GET", "/api/v1/content/{sha256}"),
        ("PUT", "/api/v1/content/{sha256}"),
        ("GET", "/api/v1/updates/{id}/approvals"),
        ("POST", "/api/v1/updates/{id}/approvals"),
        ("GET", "/api/v1/service"),
        ("POST", "/api/v1/computers/register"),
        ("POST", "/api/v1/sync"),
        ("GET", "/api/v1/groups"),
        ("POST", "/api/v1/groups"),
        ("DELETE", "/api/v1/groups/{name}"),
        ("GET", "/api/v1/computers"),
        ("GET", "/api/v1/computers/{id}"),
        ("POST", "/api/v1/computers/{id}/move"),
        ("POST", "/api/v1/reports"),
        ("GET", "/api/v1/reports/updates"),
        ("GET", "/api/v1/reports/updates/{id}"),
        ("GET", "/api/v1/reports/updates/{id}/computers"),
        ("GET", "/api/v1/reports/computers"),
        ("GET", "/api/v1/reports/failures"),
        ("GET", "/api/v1/reports/groups"),
        ("POST", "/api/v1/exports"),
        ("POST", "/api/v1/reports/import"),
        ("GET", "/api/v1/rules"),
        ("POST", "/api/v1/rules"),
        ("POST", "/api/v1/rules/run"),
        ("GET", "/api/v1/rules/{name}"),
        ("DELETE", "/api/v1/rules/{name}"),
        ("POST", "/api/v1/updates/{id}/rollout"),
        ("GET", "/api/v1/rollouts"),
        ("GET", "/api/v1/rollouts/{id}"),
        ("POST", "/api/v1/rollouts/{id}/halt"),
        ("POST", "/api/v1/rollouts/{id}/resume"),
        ("GET", "/api/v1/upstreams"),
        ("POST", "/api/v1/upstreams"),
        ("DELETE", "/api/v1/upstreams/{name}"),
        ("POST", "/api/v1/upstreams/{name}/sync"),
        ("GET", "/api/v1/maintenance"),
        ("GET", "/api/v1/maintenance/runs"),
        ("POST", "/api/v1/maintenance/runs"),
    ];

    #[tokio::test(flavor = "multi_thread")]
    async fn the_openapi_document_describes_every_route_and_no_other() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let expected: BTreeSet<_> = ROUTES
            .iter()
            .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
            .collect();
        assert_eq!(documented, expected);

        // Each documented operation reaches a handler, not the fallbacks.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("s.sqlite"))
            .await
            .unwrap();
        let key = openwua_catalog::signing::SecretKey::generate().unwrap();
        let state = Arc::new(AppState {
            service_id: store.service_id().await.unwrap(),
            store,
            content_dir: dir.path().to_owned(),
            public_key: key.public_key(),
            signing_key: key,
            service_name: "test".into(),
            snapshot_lifetime: Duration::from_secs(3600),
            freshness: Duration::from_secs(3600),
            max_request_bytes: 1 << 20,
            max_content_bytes: 1 << 20,
            content_base_url: None,
            sync_cache: crate::sync_cache::SyncCache::new(1 << 20, Duration::from_secs(3600)),
            upstreams: crate::upstream::Upstreams::new(dir.path()),
            maintenance: crate::maintenance::Policy::default(),
        });
        let app = router(state, Duration::from_secs(30));
        for (method, path) in &expected {
            let uri = path
                .replace("{id}", "00000000-0000-0000-0000-000000000001")
                .replace("{sha256}", &"0".repeat(64))
                .replace("{name}", "Web");
            let request = Request::builder()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            assert!(!text.contains(NO_ROUTE_DETAIL), "{method} {uri}: {text}");
        }
    }
}
