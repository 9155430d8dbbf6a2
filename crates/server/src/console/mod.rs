//! The web console, served by `wua-server` itself under `/console`:
//! server-rendered HTML (maud), a stylesheet and a few lines of script
//! compiled into the binary, an SVG chart drawn on the server. No page
//! needs its script; none loads anything from elsewhere (the
//! Content-Security-Policy says `'self'` only).
//!
//! Sign-in takes the admin token (role admin) or a read-only token the
//! admin made on the Access page (role read-only, for helpdesk staff) and
//! answers with a session cookie (HttpOnly, SameSite=Strict, Secure over
//! TLS, path `/console`). The store keeps each session's SHA-256 with its
//! role, expiry and CSRF token; every form that changes something carries
//! that token and is refused (403) without it. Read-only sessions see
//! every page and change nothing.
//!
//! Each page is a few queries (`store/console.rs`), paged by
//! [`PAGE_SIZE`]; the Updates page searches an in-memory index of the
//! current revisions ([`index`]), caught up with the store at each use.

mod chart;
pub mod index;
mod operations;
mod pages;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Form, Path, Query, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, REFERRER_POLICY, SET_COOKIE,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use jiff::{SignedDuration, Timestamp};
use openwua_model::criteria::Criteria;
use openwua_model::hresult::HResult;
use openwua_model::update::MsrcSeverity;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tower_http::compression::CompressionLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use uuid::Uuid;

use crate::api::Shared;
use crate::fleet::{Approval, ApprovalAction, GroupChange, MAX_GROUP_NAME_CHARS};
use crate::reports::UpdateState;
use crate::setup::{MAX_TOKEN_BYTES, token_hash};
use crate::store::{ConsoleSession, Role, StoreError};
use index::{Search, UpdateIndex};

/// Rows per page of every list.
pub const PAGE_SIZE: u64 = 50;
/// How long a session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The session cookie.
pub const COOKIE_NAME: &str = "wua_console";
/// The largest form the console takes.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// The longest free-text search and criteria, in bytes.
const MAX_SEARCH_BYTES: usize = 4096;
/// The longest read-only token label, in characters.
const MAX_LABEL_CHARS: usize = 64;
/// The most pages a list goes to (offsets stay bounded).
const MAX_PAGE: u64 = 100_000;

/// What the console's handlers share.
pub struct ConsoleState {
    app: Shared,
    secure_cookies: bool,
    index: UpdateIndex,
}

type Console = Arc<ConsoleState>;

/// The console's routes, under `/console`, with their own layers (HTML
/// errors, not the API's JSON ones). `secure_cookies`: the server speaks
/// TLS, so the session cookie is `Secure`.
pub fn router(app: Shared, secure_cookies: bool, timeout: Duration) -> Router {
    let state = Arc::new(ConsoleState {
        app,
        secure_cookies,
        index: UpdateIndex::default(),
    });
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/overview") }),
        )
        .route(
            "/console/",
            get(|| async { Redirect::to("/console/overview") }),
        )
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/overview", get(overview))
        .route("/console/updates", get(updates))
        .route("/console/updates/{id}", get(update_detail))
        .route("/console/updates/{id}/approve", post(approve))
        .route("/console/updates/{id}/decline", post(decline))
        .route("/console/updates/{id}/rollout/halt", post(operations::halt))
        .route(
            "/console/updates/{id}/rollout/resume",
            post(operations::resume),
        )
        .route("/console/rollouts", get(operations::rollouts))
        .route("/console/maintenance", get(operations::maintenance))
        .route("/console/computers", get(computers))
        .route("/console/computers/{id}", get(computer_detail))
        .route("/console/failures", get(failures))
        .route("/console/failures/{code}", get(failure_detail))
        .route("/console/access", get(access))
        .route("/console/access/tokens", post(create_token))
        .route("/console/access/tokens/revoke", post(revoke_token))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/assets/console.js", get(script))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(middleware::from_fn(security_headers))
        .layer(CompressionLayer::new().gzip(true))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// No framing, no sniffing, no referrer, nothing from elsewhere; pages are
/// not cached (they show a session's data), assets are for an hour.
async fn security_headers(request: Request, next: Next) -> Response {
    let asset = request.uri().path().starts_with("/console/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    let cache = if asset {
        "public, max-age=3600"
    } else {
        "no-store"
    };
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// Who is looking: a signed-in session.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Admin or read-only.
    pub role: Role,
    /// The session's CSRF token, for the page's forms.
    pub csrf: String,
}

impl Viewer {
    /// Whether this viewer may change approvals and tokens.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Why a console request is not answered with its page.
enum Refusal {
    /// No valid session: to the sign-in page.
    SignIn,
    /// An HTML error page with this status and what to do.
    Page(StatusCode, String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::SignIn => Redirect::to("/console/sign-in").into_response(),
            Refusal::Page(status, message) => {
                (status, html(pages::error_page(status, &message))).into_response()
            }
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "console: the store failed");
        Refusal::Page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server's database did not answer; try again, and see the server's log if it \
             persists."
                .into(),
        )
    }
}

fn bad_request(message: impl Into<String>) -> Refusal {
    Refusal::Page(StatusCode::BAD_REQUEST, message.into())
}

fn not_found(message: impl Into<String>) -> Refusal {
    Refusal::Page(StatusCode::NOT_FOUND, message.into())
}

type PageResult = Result<Response, Refusal>;

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
        .filter(|value| value.len() == 64 && value.bytes().all(|byte| byte.is_ascii_hexdigit()))
}

async fn viewer(console: &ConsoleState, headers: &HeaderMap) -> Result<Viewer, Refusal> {
    let id = session_id(headers).ok_or(Refusal::SignIn)?;
    let session = console
        .app
        .store
        .console_session(token_hash(&id))
        .await?
        .ok_or(Refusal::SignIn)?;
    Ok(Viewer {
        role: session.role,
        csrf: session.csrf,
    })
}

/// The viewer of a form that changes something: signed in, with the
/// session's CSRF token in the form, and (when `admin_only`) an admin.
async fn changer(
    console: &ConsoleState,
    headers: &HeaderMap,
    presented: Option<&str>,
    admin_only: bool,
) -> Result<Viewer, Refusal> {
    let viewer = viewer(console, headers).await?;
    let matches =
        presented.is_some_and(|token| bool::from(token.as_bytes().ct_eq(viewer.csrf.as_bytes())));
    if !matches {
        return Err(Refusal::Page(
            StatusCode::FORBIDDEN,
            "The form did not carry this session's CSRF token; reload the page and submit it \
             again."
                .into(),
        ));
    }
    if admin_only && !viewer.is_admin() {
        return Err(Refusal::Page(
            StatusCode::FORBIDDEN,
            "A read-only account changes nothing; sign in with the admin token to do this.".into(),
        ));
    }
    Ok(viewer)
}

fn random_hex() -> Result<String, Refusal> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| {
        tracing::error!(%error, "console: no random source");
        Refusal::Page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server has no random source; see its log.".into(),
        )
    })?;
    Ok(hex::encode(bytes))
}

fn html(markup: maud::Markup) -> Response {
    (
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, Refusal> {
    query.map(|Query(value)| value).map_err(|rejection| {
        bad_request(format!(
            "The address's query is not valid: {}",
            rejection.body_text()
        ))
    })
}

fn form<T>(form: Result<Form<T>, FormRejection>) -> Result<T, Refusal> {
    form.map(|Form(value)| value).map_err(|rejection| {
        bad_request(format!("The form is not valid: {}", rejection.body_text()))
    })
}

/// A 1-based page number from the query, as an offset.
fn offset(page: Option<&str>) -> Result<(u64, u64), Refusal> {
    let page = match page.filter(|text| !text.is_empty()) {
        None => 1,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|page| (1..=MAX_PAGE).contains(page))
            .ok_or_else(|| bad_request(format!("page runs from 1 to {MAX_PAGE}")))?,
    };
    Ok((page, (page - 1) * PAGE_SIZE))
}

/// Empty and absent are the same; longer than `max` bytes is refused.
fn text_field(value: Option<String>, what: &str, max: usize) -> Result<Option<String>, Refusal> {
    let value = value
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty());
    if let Some(text) = &value
        && (text.len() > max || text.chars().any(char::is_control))
    {
        return Err(bad_request(format!(
            "{what} has at most {max} bytes and no control characters"
        )));
    }
    Ok(value)
}

fn parse_uuid(text: &str, what: &str) -> Result<Uuid, Refusal> {
    Uuid::try_parse(text).map_err(|_| {
        not_found(format!(
            "{what} is named by a GUID; this address names none"
        ))
    })
}

// Sign-in and sign-out.

async fn sign_in_page(State(console): State<Console>, headers: HeaderMap) -> PageResult {
    if viewer(&console, &headers).await.is_ok() {
        return Ok(Redirect::to("/console/overview").into_response());
    }
    Ok(html(pages::sign_in(None)))
}

#[derive(Deserialize)]
struct SignInForm {
    token: Option<String>,
}

async fn sign_in(
    State(console): State<Console>,
    submitted: Result<Form<SignInForm>, FormRejection>,
) -> PageResult {
    let submitted = form(submitted)?;
    let token = submitted
        .token
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty() && token.len() <= MAX_TOKEN_BYTES);
    let refused = || {
        (
            StatusCode::UNAUTHORIZED,
            html(pages::sign_in(Some(
                "That is neither this server's admin token nor a read-only token it made.",
            ))),
        )
            .into_response()
    };
    let Some(token) = token else {
        return Ok(refused());
    };
    let presented = token_hash(&token);
    let store = &console.app.store;
    let mut admin = subtle::Choice::from(0);
    for known in store.admin_tokens().await? {
        admin |= known.ct_eq(&presented);
    }
    let role = if bool::from(admin) {
        Role::Admin
    } else if store.is_console_token(presented).await? {
        Role::ReadOnly
    } else {
        return Ok(refused());
    };
    let id = random_hex()?;
    let csrf = random_hex()?;
    let lifetime = SESSION_LIFETIME.as_secs();
    let expires = Timestamp::now().as_second() + i64::try_from(lifetime).unwrap_or(i64::MAX / 2);
    store
        .add_console_session(
            token_hash(&id),
            presented,
            ConsoleSession { role, csrf },
            expires,
        )
        .await?;
    let secure = if console.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE_NAME}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={lifetime}{secure}"
    );
    Ok(([(SET_COOKIE, cookie)], Redirect::to("/console/overview")).into_response())
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn sign_out(
    State(console): State<Console>,
    headers: HeaderMap,
    submitted: Result<Form<CsrfForm>, FormRejection>,
) -> PageResult {
    let submitted = form(submitted)?;
    changer(&console, &headers, submitted.csrf.as_deref(), false).await?;
    if let Some(id) = session_id(&headers) {
        console
            .app
            .store
            .remove_console_session(token_hash(&id))
            .await?;
    }
    let secure = if console.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{COOKIE_NAME}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
    Ok(([(SET_COOKIE, cookie)], Redirect::to("/console/sign-in")).into_response())
}

// Overview.

#[derive(Deserialize)]
struct OverviewQuery {
    days: Option<String>,
}

/// Computers silent longer than this many days count as not reported,
/// unless the page asks for another number.
pub const DEFAULT_STALE_DAYS: u64 = 7;

async fn overview(
    State(console): State<Console>,
    headers: HeaderMap,
    asked: Result<Query<OverviewQuery>, QueryRejection>,
) -> PageResult {
    let viewer = viewer(&console, &headers).await?;
    let asked = query(asked)?;
    let days = match asked.days.as_deref().filter(|text| !text.is_empty()) {
        None => DEFAULT_STALE_DAYS,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|days| (1..=3650).contains(days))
            .ok_or_else(|| bad_request("days runs from 1 to 3650"))?,
    };
    let store = &console.app.store;
    let since = Timestamp::now() - SignedDuration::from_hours(24 * days as i64);
    let mut health = store.group_health(since).await?;
    // Every group appears, with or without computers.
    for group in store.list_groups().await? {
        if !health.iter().any(|known| known.group == group.name) {
            health.push(crate::store::GroupHealth {
                group: group.name,
                ..Default::default()
            });
        }
    }
    health.sort_by(|a, b| a.group.cmp(&b.group));
    let failing = store.top_failing_updates(10).await?;
    let facts = pages::CatalogFacts {
        version: store.catalog_version().await?,
        last_publish: store.last_publish().await?,
        upstreams: operations::last_syncs(store).await?,
    };
    Ok(html(pages::overview(
        &viewer, &health, days, &failing, &facts,
    )))
}

// Updates.

#[derive(Deserialize)]
struct UpdatesQuery {
    q: Option<String>,
    criteria: Option<String>,
    classification: Option<String>,
    severity: Option<String>,
    declined: Option<String>,
    page: Option<String>,
}

/// Which updates the Updates page lists by their declined flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclinedFilter {
    /// All but declined ones (the default).
    Hide,
    /// Every update.
    Show,
    /// Declined ones only.
    Only,
}

fn severity(text: &str) -> Option<MsrcSeverity> {
    [
        MsrcSeverity::Critical,
        MsrcSeverity::Important,
        MsrcSeverity::Moderate,
        MsrcSeverity::Low,
    ]
    .into_iter()
    .find(|severity| format!("{severity:?}") == text)
}

async fn updates(
    State(console): State<Console>,
    headers: HeaderMap,
    asked: Result<Query<UpdatesQuery>, QueryRejection>,
) -> PageResult {
    let viewer = viewer(&console, &headers).await?;
    let asked = query(asked)?;
    let (page, offset) = offset(asked.page.as_deref())?;
    let form = pages::UpdatesForm {
        q: text_field(asked.q, "The search", MAX_SEARCH_BYTES)?,
        criteria: text_field(asked.criteria, "The criteria", MAX_SEARCH_BYTES)?,
        classification: text_field(asked.classification, "The classification", 256)?,
        severity: text_field(asked.severity, "The severity", 32)?,
        declined: match asked.declined.as_deref() {
            None | Some("" | "hide") => DeclinedFilter::Hide,
            Some("show") => DeclinedFilter::Show,
            Some("only") => DeclinedFilter::Only,
            Some(_) => return Err(bad_request("declined is hide, show or only")),
        },
        page,
    };
    let mut search = Search {
        text: form.q.as_ref().map(|text| text.to_lowercase()),
        classification: form.classification.clone(),
        ..Search::default()
    };
    if let Some(text) = &form.severity {
        search.severity = Some(
            severity(text)
                .ok_or_else(|| bad_request("severity is Critical, Important, Moderate or Low"))?,
        );
    }
    let mut criteria_error = None;
    if let Some(text) = &form.criteria {
        match Criteria::parse(text) {
            Ok(criteria) => search.criteria = Some(criteria),
            Err(error) => criteria_error = Some(error),
        }
    }
    let store = &console.app.store;
    let snapshot = console.index.current(store).await?;
    let declined = store.declined_updates().await?;
    let (total, rows) = if criteria_error.is_some() {
        (0, Vec::new())
    } else {
        let wanted = |update: &index::IndexedUpdate| {
            let is_declined = declined.contains(&update.identity.update_id);
            match form.declined {
                DeclinedFilter::Hide => !is_declined,
                DeclinedFilter::Show => true,
                DeclinedFilter::Only => is_declined,
            }
        };
        snapshot.search(&search, &wanted, offset as usize, PAGE_SIZE as usize)
    };
    let ids = rows
        .iter()
        .map(|update| update.identity.update_id)
        .collect();
    let approvals = store.approvals_of(ids).await?;
    let status = if criteria_error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let markup = pages::updates(
        &viewer,
        &form,
        criteria_error.as_ref(),
        &snapshot,
        total as u64,
        &rows,
        &approvals,
        &declined,
    );
    Ok((status, html(markup)).into_response())
}

#[derive(Deserialize)]
struct UpdateDetailQuery {
    state: Option<String>,
    page: Option<String>,
    done: Option<String>,
}

async fn update_detail(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    asked: Result<Query<UpdateDetailQuery>, QueryRejection>,
) -> PageResult {
    let viewer = viewer(&console, &headers).await?;
    let update_id = parse_uuid(&id, "An update")?;
    let asked = query(asked)?;
    let (page, offset) = offset(asked.page.as_deref())?;
    let only = match asked.state.as_deref().filter(|text| !text.is_empty()) {
        None => None,
        Some(text) => Some(UpdateState::parse(text).ok_or_else(|| {
            bad_request("state is one of NotApplicable, NotInstalled, Downloaded, Installed, InstalledPendingReboot, Failed")
        })?),
    };
    let store = &console.app.store;
    let (revisions, current) = store
        .update_history(update_id)
        .await?
        .ok_or_else(|| not_found("The server has no such update."))?;
    let approvals = store.approvals(update_id).await?;
    let groups = store.list_groups().await?;
    let sizes = store.group_sizes().await?;
    let states = store.update_group_states(update_id).await?;
    let computers = store
        .update_computers_page(update_id, only, offset, PAGE_SIZE)
        .await?;
    let detail = pages::UpdateDetail {
        update_id,
        declined: revisions.last().is_some_and(|revision| revision.declined),
        revisions,
        current,
        groups: pages::group_states(update_id, &groups, &approvals, &sizes, &states),
        computers,
        only,
        page,
        done: asked
            .done
            .filter(|done| ["approved", "declined", "halted", "resumed"].contains(&done.as_str())),
        rollout: operations::rollout_of(&console, update_id).await?,
    };
    Ok(html(pages::update_detail(&viewer, &detail)))
}

#[derive(Deserialize)]
struct ApproveForm {
    csrf: Option<String>,
    group: Option<String>,
    action: Option<String>,
    deadline: Option<String>,
}

/// A deadline as the form gives it: `datetime-local` (taken as UTC) or
/// RFC 3339.
fn parse_deadline(text: &str) -> Option<Timestamp> {
    if let Ok(timestamp) = text.parse::<Timestamp>() {
        return Some(timestamp);
    }
    text.parse::<jiff::civil::DateTime>()
        .ok()?
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|zoned| zoned.timestamp())
}

async fn approve(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    submitted: Result<Form<ApproveForm>, FormRejection>,
) -> PageResult {
    let submitted = form(submitted)?;
    changer(&console, &headers, submitted.csrf.as_deref(), true).await?;
    let update_id = parse_uuid(&id, "An update")?;
    let group = text_field(submitted.group, "The group", MAX_GROUP_NAME_CHARS * 4)?
        .ok_or_else(|| bad_request("Choose a group."))?;
    let action = submitted
        .action
        .as_deref()
        .and_then(ApprovalAction::parse)
        .ok_or_else(|| bad_request("The action is install, uninstall or notApproved."))?;
    let deadline = match text_field(submitted.deadline, "The deadline", 64)? {
        None => None,
        Some(text) => Some(parse_deadline(&text).ok_or_else(|| {
            bad_request("The deadline is a date and time (UTC), e.g. 2027-01-31T18:00.")
        })?),
    };
    let change = console
        .app
        .store
        .set_approval(Approval {
            update_id,
            group,
            action,
            deadline,
        })
        .await?;
    match change {
        GroupChange::Done(_) => Ok(Redirect::to(&format!(
            "/console/updates/{update_id}?done=approved"
        ))
        .into_response()),
        GroupChange::UnknownUpdate => Err(not_found("The server has no such update.")),
        GroupChange::UnknownGroup => Err(bad_request("There is no such group.")),
        _ => Err(bad_request("The approval could not be set.")),
    }
}

async fn decline(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    submitted: Result<Form<CsrfForm>, FormRejection>,
) -> PageResult {
    let submitted = form(submitted)?;
    changer(&console, &headers, submitted.csrf.as_deref(), true).await?;
    let update_id = parse_uuid(&id, "An update")?;
    match console.app.store.decline(update_id).await? {
        crate::store::DeclineOutcome::Unknown => Err(not_found("The server has no such update.")),
        _ => Ok(
            Redirect::to(&format!("/console/updates/{update_id}?done=declined")).into_response(),
        ),
    }
}

// Computers.

#[derive(Deserialize)]
struct ComputersQuery {
    group: Option<String>,
    q: Option<String>,
    page: Option<String>,
}

async fn computers(
    State(console): State<Console>,
    headers: HeaderMap,
    asked: Result<Query<ComputersQuery>, QueryRejection>,
) -> PageResult {
    let viewer = viewer(&console, &headers).await?;
    let asked = query(asked)?;
    let (page, offset) = offset(asked.page.as_deref())?;
    let group = text_field(asked.group, "The group", MAX_GROUP_NAME_CHARS * 4)?;
    let q = text_field(asked.q, "The host name", 256)?;
    let store = &console.app.store;
    let groups = store.list_groups().await?;
    let list = store
        .computers_page(group.clone(), q.clone(), offset, PAGE_SIZE)
        .await?;
    Ok(html(pages::computers(
        &viewer,
        &groups,
        group.as_deref(),
        q.as_deref(),
        page,
        &list,
    )))
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<String>,
}

async fn computer_detail(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    asked: Result<Query<PageQuery>, QueryRejection>,
) -> PageResult {
    let viewer = viewer(&console, &headers).await?;
    let computer_id = parse_uuid(&id, "A computer")?;
    let (page, offset) = offset(query(asked)?.page.as_deref())?;
    let store = &console.app.store;
    let computer = store
        .computer(computer_id)
        .await?
        .ok_or_else(|| not_found("The server has no such computer."))?;
    let report = store.computer_report(computer_id).await?;
    let updates = store
        .computer_updates_page(computer_id, offset, PAGE_SIZE)
        .await?;
    Ok(html(pages::computer_detail(
        &viewer, &computer, &report, page, &updates,
    )))
}

// Failures.

async fn failures(State(console): State<Console>, headers: HeaderMap) -> PageResult {
    let viewer = viewer(&console, &headers).await?;
    let codes = console.app.store.failure_codes(200).await?;
    Ok(html(pages::failures(&viewer, &codes)))
}

async fn failure_detail(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(code): Path<String>,
    asked: Result<Query<PageQuery>, QueryRejection>,
) -> PageResult {
    let viewer = viewer(&console, &headers).await?;
    let (page, offset) = offset(query(asked)?.page.as_deref())?;
    let hresult = if code == "none" {
        None
    } else {
        Some(code.parse::<HResult>().map_err(|_| {
            not_found("A failure's code is an HRESULT (0x80240020) or a WUA name (WU_E_NO_UPDATE).")
        })?)
    };
    let list = console
        .app
        .store
        .failures_page(hresult, offset, PAGE_SIZE)
        .await?;
    Ok(html(pages::failure_detail(&viewer, hresult, page, &list)))
}

// Access: read-only tokens.

async fn access(State(console): State<Console>, headers: HeaderMap) -> PageResult {
    let viewer = viewer(&console, &headers).await?;
    if !viewer.is_admin() {
        return Err(Refusal::Page(
            StatusCode::FORBIDDEN,
            "Only an admin manages access; sign in with the admin token.".into(),
        ));
    }
    let tokens = console.app.store.console_tokens().await?;
    Ok(html(pages::access(&viewer, &tokens, None)))
}

#[derive(Deserialize)]
struct TokenForm {
    csrf: Option<String>,
    label: Option<String>,
}

async fn create_token(
    State(console): State<Console>,
    headers: HeaderMap,
    submitted: Result<Form<TokenForm>, FormRejection>,
) -> PageResult {
    let submitted = form(submitted)?;
    let viewer = changer(&console, &headers, submitted.csrf.as_deref(), true).await?;
    let label = text_field(submitted.label, "The label", MAX_LABEL_CHARS * 4)?
        .filter(|label| label.chars().count() <= MAX_LABEL_CHARS)
        .ok_or_else(|| {
            bad_request(format!(
                "Give the token a label of 1 to {MAX_LABEL_CHARS} characters."
            ))
        })?;
    let token = random_hex()?;
    let store = &console.app.store;
    store.add_console_token(token_hash(&token), &label).await?;
    let tokens = store.console_tokens().await?;
    Ok(html(pages::access(
        &viewer,
        &tokens,
        Some((&label, &token)),
    )))
}

#[derive(Deserialize)]
struct RevokeForm {
    csrf: Option<String>,
    sha256: Option<String>,
}

async fn revoke_token(
    State(console): State<Console>,
    headers: HeaderMap,
    submitted: Result<Form<RevokeForm>, FormRejection>,
) -> PageResult {
    let submitted = form(submitted)?;
    changer(&console, &headers, submitted.csrf.as_deref(), true).await?;
    let sha256: [u8; 32] = submitted
        .sha256
        .as_deref()
        .and_then(|text| hex::decode(text).ok())
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| {
            bad_request("The token to revoke is named by its SHA-256 (64 hex digits).")
        })?;
    console.app.store.remove_console_token(sha256).await?;
    Ok(Redirect::to("/console/access").into_response())
}

// Assets, compiled in.

async fn stylesheet() -> Response {
    (
        [(CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/console.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/console.js"),
    )
        .into_response()
}
