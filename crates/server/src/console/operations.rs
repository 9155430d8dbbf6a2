//! The console's pages for what the server does by itself: maintenance
//! (its policy, next run and recorded runs) and staged rollouts (the list,
//! an update's rollout, and an admin's halt and resume).

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use jiff::Timestamp;
use maud::{Markup, html};

use super::pages::{Nav, explanation, layout, when};
use super::{Console, CsrfForm, PageResult, Refusal, Viewer, changer, form, html, parse_uuid};
use crate::error::ServerError;
use crate::maintenance::{MaintenanceRun, Policy, Trigger};
use crate::rollouts::{Rollout, RolloutState};
use crate::rules_api::RolloutStatus;

/// How many recorded runs the Maintenance page lists.
const RUNS_LISTED: u64 = 30;

/// An API error as a console page: its status and its sentence.
pub(super) fn refusal(error: ServerError) -> Refusal {
    let status = error.status();
    if status.is_server_error() {
        tracing::error!(message = %error.body().message, "console: a rollout change failed");
    }
    Refusal::Page(status, error.body().message)
}

// The Overview's last sync.

/// One upstream's last sync, as the Overview shows it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastSync {
    /// The upstream's name.
    #[serde(skip)]
    pub name: String,
    /// When it last synced successfully.
    pub last_sync: Option<Timestamp>,
    /// How many updates that sync offered.
    #[serde(default)]
    pub updates: usize,
}

/// Every upstream's last sync, by name. Only these two fields of the
/// stored state are decoded (serde skips the rest, such as the versions
/// known per source, without building them).
pub(super) async fn last_syncs(store: &crate::store::Store) -> Result<Vec<LastSync>, Refusal> {
    store
        .upstreams()
        .await?
        .into_iter()
        .map(|upstream| {
            let mut facts: LastSync = serde_json::from_str(&upstream.state_json).map_err(|error| {
                tracing::error!(%error, upstream = upstream.name, "console: an upstream's state is not valid");
                Refusal::Page(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "An upstream's stored state could not be read; see the server's log.".into(),
                )
            })?;
            facts.name = upstream.name;
            Ok(facts)
        })
        .collect()
}

// Maintenance.

pub(super) async fn maintenance(State(console): State<Console>, headers: HeaderMap) -> PageResult {
    let viewer = super::viewer(&console, &headers).await?;
    let policy = &console.app.maintenance;
    let next = crate::maintenance::next_run(policy, Timestamp::now());
    let runs = crate::maintenance::stored_runs(&console.app.store, RUNS_LISTED).await?;
    Ok(html(maintenance_page(&viewer, policy, next, &runs)))
}

fn bytes(count: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if count >= 1024 * 1024 {
        format!("{:.1} MiB", count as f64 / MIB)
    } else {
        format!("{:.1} KiB", count as f64 / 1024.0)
    }
}

fn maintenance_page(
    viewer: &Viewer,
    policy: &Policy,
    next: Option<Timestamp>,
    runs: &[MaintenanceRun],
) -> Markup {
    layout(
        "Maintenance",
        Nav::Maintenance,
        Some(viewer),
        html! {
            p {
                "The server maintains itself: it marks silent computers stale and later removes "
                "them, removes declined and superseded updates no computer needs (and their "
                "content) after their retention, and gives the database's space back. "
                "The policy is the " code { "[maintenance]" } " section of the server's configuration."
            }
            section aria-labelledby="policy-heading" {
                h2 #policy-heading { "Policy" }
                dl.facts #maintenance-policy {
                    dt { "Schedule" } dd #maintenance-schedule {
                        @if policy.enabled { "daily at " (format!("{:02}:00", policy.hour_utc)) " UTC" }
                        @else { "off (runs only when an admin asks)" }
                    }
                    dt { "Next run" } dd #next-run { (when(next)) }
                    dt { "Stale after" } dd { (policy.stale_after_days) " days without a report or sync" }
                    dt { "Removed after" } dd { (policy.remove_after_days) " days without a report or sync" }
                    dt { "Obsolete updates kept" } dd { (policy.retention_days) " days after they became obsolete" }
                    dt { "Sync change log kept" } dd { (policy.sync_log_days) " days" }
                }
            }
            section aria-labelledby="runs-heading" {
                h2 #runs-heading { "Recent runs" }
                @if runs.is_empty() {
                    p #no-runs { "No run is recorded yet." }
                } @else {
                    div.scroll { table #maintenance-runs {
                        thead { tr {
                            th scope="col" { "Started" } th scope="col" { "Trigger" }
                            th scope="col" { "Marked stale" } th scope="col" { "Computers removed" }
                            th scope="col" { "Updates removed" } th scope="col" { "States removed" }
                            th scope="col" { "Content removed" } th scope="col" { "Database" }
                            th scope="col" { "Result" }
                        } }
                        tbody {
                            @for run in runs {
                                tr data-run-id=(run.id) {
                                    td { (when(Some(run.started))) }
                                    td { (match run.trigger { Trigger::Schedule => "schedule", Trigger::Request => "request" }) }
                                    td.number data-count="stale" { (run.stale_marked_count) }
                                    td.number data-count="computers" { (run.removed_computer_count) }
                                    td.number data-count="updates" {
                                        (run.removed_update_count)
                                        @if run.retained_count + run.needed_count > 0 {
                                            br; small.muted { (run.retained_count) " retained, " (run.needed_count) " needed" }
                                        }
                                    }
                                    td.number { (run.removed_state_count) }
                                    td.number { (run.removed_content_count) " files, " (bytes(run.removed_content_bytes)) }
                                    td data-database-before=(run.database_bytes_before) data-database-after=(run.database_bytes_after) {
                                        (bytes(run.database_bytes_before)) " → " (bytes(run.database_bytes_after))
                                    }
                                    td {
                                        @match &run.error {
                                            Some(error) => span.tag.failed title=(error) { "stopped: " (error) },
                                            None => "done",
                                        }
                                    }
                                }
                            }
                        }
                    } }
                }
            }
        },
    )
}

// Rollouts.

pub(super) async fn rollouts(State(console): State<Console>, headers: HeaderMap) -> PageResult {
    let viewer = super::viewer(&console, &headers).await?;
    let store = &console.app.store;
    // The stored rollouts and the index's titles: two reads, whatever the
    // count (each rollout's progress is on its update's page).
    let list = store.rollouts().await?;
    let snapshot = console.index.current(store).await?;
    let titled: Vec<(Option<&str>, &Rollout)> = list
        .iter()
        .map(|rollout| {
            (
                snapshot
                    .get(rollout.update_id)
                    .map(|update| update.title.as_str()),
                rollout,
            )
        })
        .collect();
    Ok(html(rollouts_page(&viewer, &titled)))
}

fn state_tag(state: RolloutState) -> Markup {
    let class = match state {
        RolloutState::Running => "tag running",
        RolloutState::Halted => "tag failed",
        RolloutState::Completed => "tag done",
    };
    html! { span class=(class) data-rollout-state=(state.as_str()) { (state.as_str()) } }
}

fn rollouts_page(viewer: &Viewer, rollouts: &[(Option<&str>, &Rollout)]) -> Markup {
    layout(
        "Rollouts",
        Nav::Rollouts,
        Some(viewer),
        html! {
            p {
                "A staged rollout offers an update ring by ring; a ring advances after its soak "
                "time while the failure rate stays under the threshold, and crossing it halts "
                "the rollout. Start one with " code { "wua-server rollouts" } " or the API."
            }
            @if rollouts.is_empty() {
                p #no-rollouts { "No update has a staged rollout." }
            } @else {
                div.scroll { table #rollouts {
                    thead { tr {
                        th scope="col" { "Update" } th scope="col" { "State" }
                        th scope="col" { "Ring" } th scope="col" { "Since" }
                        th scope="col" { "Threshold" } th scope="col" { "Halted because" }
                    } }
                    tbody {
                        @for (title, rollout) in rollouts {
                            tr data-update-id=(rollout.update_id) {
                                td { a href=(format!("/console/updates/{}", rollout.update_id)) {
                                    (title.unwrap_or("(no longer on the server)"))
                                } }
                                td { (state_tag(rollout.state)) }
                                td.number { (rollout.stage + 1) " of " (rollout.plan.rings.len()) }
                                td { (when(Some(rollout.stage_started))) }
                                td.number { (rollout.plan.max_failure_percent) " %" }
                                td { @if let Some(halt) = &rollout.halt { (halt.message) } }
                            }
                        }
                    }
                } }
            }
        },
    )
}

/// An update's rollout, on its page: rings, stage, state, counts, why it
/// halted with the failing codes, and (admins) halt or resume.
pub(super) fn rollout_section(viewer: &Viewer, status: &RolloutStatus) -> Markup {
    let rollout = &status.rollout;
    let progress = &status.progress;
    let id = rollout.update_id;
    html! {
        section #rollout aria-labelledby="rollout-heading" data-rollout-state=(rollout.state.as_str()) {
            h2 #rollout-heading { "Staged rollout" }
            dl.facts {
                dt { "State" } dd { (state_tag(rollout.state)) }
                dt { "Ring" } dd #rollout-stage { (rollout.stage + 1) " of " (rollout.plan.rings.len()) ", since " (when(Some(rollout.stage_started))) }
                dt { "Halts above" } dd { (rollout.plan.max_failure_percent) " % failed, once " (rollout.plan.min_reported) " have reported" }
                @if let Some(deadline) = rollout.plan.deadline { dt { "Deadline" } dd { (when(Some(deadline))) } }
                dt { "Revision counted" } dd { (status.revision) }
                dt { "Admitted rings" } dd #rollout-counts
                    data-computers=(progress.computers) data-reported=(progress.reported) data-failed=(progress.failed) {
                    (progress.computers) " computers, " (progress.reported) " reported, " (progress.failed) " failed"
                }
            }
            div.scroll { table #rollout-rings {
                thead { tr { th scope="col" { "Ring" } th scope="col" { "Group" } th scope="col" { "Share" } th scope="col" { "Soak" } th scope="col" {} } }
                tbody {
                    @for (index, ring) in rollout.plan.rings.iter().enumerate() {
                        tr {
                            td.number { (index + 1) }
                            td { (ring.group) }
                            td.number { (ring.percent) " %" }
                            td { (soak(ring.soak_secs)) }
                            td {
                                @if (index as u32) < rollout.stage { "admitted" }
                                @else if index as u32 == rollout.stage && rollout.state != RolloutState::Completed { strong { "current" } }
                                @else if rollout.state == RolloutState::Completed { "admitted" }
                                @else { span.muted { "waiting" } }
                            }
                        }
                    }
                }
            } }
            @if let Some(halt) = &rollout.halt {
                div.error #halt-reason role="alert" {
                    p { "Halted " (when(Some(halt.time))) ": " (halt.message)
                        " (" (halt.failed) " of " (halt.reported) " reported failed)" }
                    @if !halt.codes.is_empty() {
                        ul #halt-codes {
                            @for code in &halt.codes {
                                li data-hresult=(code.hresult) {
                                    @match code.hresult.parse::<openwua_model::hresult::HResult>() {
                                        Ok(parsed) => (explanation(parsed)),
                                        Err(_) => { code { (code.hresult) } },
                                    }
                                    " on " (code.computers) " computers"
                                }
                            }
                        }
                    }
                }
            }
            @if viewer.is_admin() {
                @match rollout.state {
                    RolloutState::Running => {
                        form.stack #halt method="post" action=(format!("/console/updates/{id}/rollout/halt"))
                            data-confirm="Halt this rollout? No computer outside its admitted rings gets the update." {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button.danger type="submit" { "Halt the rollout" }
                        }
                    },
                    RolloutState::Halted => {
                        form.stack #resume method="post" action=(format!("/console/updates/{id}/rollout/resume")) {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button type="submit" { "Resume the rollout" }
                        }
                    },
                    RolloutState::Completed => {},
                }
            }
        }
    }
}

fn soak(seconds: u64) -> String {
    match seconds {
        0 => "none".into(),
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s => format!("{} min", s.div_ceil(60)),
    }
}

async fn move_rollout(
    console: Console,
    headers: HeaderMap,
    id: String,
    submitted: Result<Form<CsrfForm>, FormRejection>,
    halt: bool,
) -> PageResult {
    let submitted = form(submitted)?;
    changer(&console, &headers, submitted.csrf.as_deref(), true).await?;
    let update_id = parse_uuid(&id, "An update")?;
    let moved = if halt {
        crate::rules_api::halt(&console.app, update_id).await
    } else {
        crate::rules_api::resume(&console.app, update_id).await
    };
    moved.map_err(refusal)?;
    let done = if halt { "halted" } else { "resumed" };
    Ok(Redirect::to(&format!("/console/updates/{update_id}?done={done}#rollout")).into_response())
}

pub(super) async fn halt(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    submitted: Result<Form<CsrfForm>, FormRejection>,
) -> PageResult {
    move_rollout(console, headers, id, submitted, true).await
}

pub(super) async fn resume(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    submitted: Result<Form<CsrfForm>, FormRejection>,
) -> PageResult {
    move_rollout(console, headers, id, submitted, false).await
}

/// An update's rollout with its progress, if it has one.
pub(super) async fn rollout_of(
    console: &Console,
    update_id: uuid::Uuid,
) -> Result<Option<RolloutStatus>, Refusal> {
    match console.app.store.rollout(update_id).await? {
        None => Ok(None),
        Some(rollout) => crate::rules_api::status_of(&console.app, rollout)
            .await
            .map(Some)
            .map_err(refusal),
    }
}
