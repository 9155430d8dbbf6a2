//! `/api/v1/upstreams`: add, list, remove and sync upstream repositories
//! (admin only).

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{SyncReport, UpstreamSpec, UpstreamSummary};
use crate::api::{Shared, read_json, require_admin};
use crate::error::{ErrorBody, ServerError};

/// The largest upstream body: the keyring in hex, and the rest.
const MAX_UPSTREAM_BYTES: u64 = 4 << 20;

/// The upstream routes, merged into the server's router.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/upstreams", get(list).post(add))
        .route("/api/v1/upstreams/{name}", delete(remove))
        .route("/api/v1/upstreams/{name}/sync", post(sync))
}

/// Every upstream.
#[utoipa::path(get, path = "/api/v1/upstreams", security(("admin" = [])),
    responses((status = 200, body = Vec<UpstreamSummary>), (status = 401, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<axum::Json<Vec<UpstreamSummary>>, ServerError> {
    require_admin(&state, &headers).await?;
    Ok(axum::Json(super::list_upstreams(&state.store).await?))
}

/// Adds an upstream; nothing is fetched until it syncs.
#[utoipa::path(post, path = "/api/v1/upstreams", request_body = UpstreamSpec,
    security(("admin" = [])),
    responses((status = 201, body = UpstreamSummary), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn add(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, axum::Json<UpstreamSummary>), ServerError> {
    require_admin(&state, &headers).await?;
    let spec: UpstreamSpec = read_json(&headers, body, MAX_UPSTREAM_BYTES).await?;
    let summary = super::add_upstream(&state.store, spec).await?;
    Ok((StatusCode::CREATED, axum::Json(summary)))
}

/// What removing did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RemovedUpstream {
    /// The upstream removed (the updates it published stay).
    pub removed: String,
}

/// Removes an upstream; the updates it published stay.
#[utoipa::path(delete, path = "/api/v1/upstreams/{name}", security(("admin" = [])),
    params(("name" = String, Path, description = "the upstream's name")),
    responses((status = 200, body = RemovedUpstream), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn remove(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<axum::Json<RemovedUpstream>, ServerError> {
    require_admin(&state, &headers).await?;
    if !state.store.remove_upstream(&name).await? {
        return Err(super::UpstreamError::Unknown(name).into());
    }
    Ok(axum::Json(RemovedUpstream { removed: name }))
}

/// Syncs an upstream now and answers when it is done: verified metadata
/// in, one publish out; a refusal (a 502 with the WUA code) changes
/// nothing.
#[utoipa::path(post, path = "/api/v1/upstreams/{name}/sync", security(("admin" = [])),
    params(("name" = String, Path, description = "the upstream's name")),
    responses((status = 200, body = SyncReport), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 502, body = ErrorBody, description = "the upstream's metadata was refused")))]
pub(crate) async fn sync(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<axum::Json<SyncReport>, ServerError> {
    require_admin(&state, &headers).await?;
    let report = super::sync_upstream(&state.store, &state.upstreams, &name).await?;
    Ok(axum::Json(report))
}
