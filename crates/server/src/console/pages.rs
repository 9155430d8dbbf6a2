//! The console's pages as HTML (maud escapes every value). Each function
//! takes what its handler read and returns the whole page; none reads the
//! store.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use axum::http::StatusCode;
use jiff::Timestamp;
use maud::{DOCTYPE, Markup, html};
use openwua_catalog::revision::Revision;
use openwua_model::criteria::ParseCriteriaError;
use openwua_model::hresult::HResult;
use uuid::Uuid;

use super::index::{IndexedUpdate, Snapshot};
use super::{DeclinedFilter, PAGE_SIZE, Viewer, chart};
use crate::fleet::{ALL_COMPUTERS, Approval, ApprovalAction, Computer, Group, effective_approval};
use crate::reports::UpdateState;
use crate::store::{
    ComputerReport, ComputerUpdateRow, ConsoleToken, FailingUpdate, FailureCode, FailureRow,
    GroupHealth, Page, StoredRevision, UpdateComputerRow,
};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Nav {
    Overview,
    Updates,
    Computers,
    Failures,
    Rollouts,
    Maintenance,
    Access,
    None,
}

/// WSUS's seven states, in the order the console shows them.
const SEVEN_STATES: [&str; 7] = [
    "Unknown",
    "NotApplicable",
    "NotInstalled",
    "Downloaded",
    "Installed",
    "InstalledPendingReboot",
    "Failed",
];

pub(super) fn layout(title: &str, nav: Nav, viewer: Option<&Viewer>, body: Markup) -> Markup {
    let link = |target: Nav, href: &str, label: &str| {
        html! {
            li {
                @if nav == target {
                    a href=(href) aria-current="page" { (label) }
                } @else {
                    a href=(href) { (label) }
                }
            }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · OpenWUA console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    span.brand { "OpenWUA" }
                    @if let Some(viewer) = viewer {
                        nav aria-label="Console" {
                            ul {
                                (link(Nav::Overview, "/console/overview", "Overview"))
                                (link(Nav::Updates, "/console/updates", "Updates"))
                                (link(Nav::Computers, "/console/computers", "Computers"))
                                (link(Nav::Failures, "/console/failures", "Failures"))
                                (link(Nav::Rollouts, "/console/rollouts", "Rollouts"))
                                (link(Nav::Maintenance, "/console/maintenance", "Maintenance"))
                                @if viewer.is_admin() {
                                    (link(Nav::Access, "/console/access", "Access"))
                                }
                            }
                        }
                        form.sign-out method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            span.role { (if viewer.is_admin() { "admin" } else { "read-only" }) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// An error page: what went wrong and what to do.
pub fn error_page(status: StatusCode, message: &str) -> Markup {
    layout(
        status.canonical_reason().unwrap_or("Error"),
        Nav::None,
        None,
        html! {
            p.error role="alert" { (message) }
            p { a href="/console/overview" { "Back to the overview" } }
        },
    )
}

/// The sign-in form.
pub fn sign_in(error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        Nav::None,
        None,
        html! {
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form.stack method="post" action="/console/sign-in" {
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="current-password"
                    required autofocus;
                p.hint {
                    "The admin token (" code { "admin.token" } " in the server's data directory) "
                    "or a read-only token an admin made on the Access page."
                }
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// The catalog's facts the overview shows.
pub struct CatalogFacts {
    /// The catalog version.
    pub version: u64,
    /// When the newest revision was published.
    pub last_publish: Option<Timestamp>,
    /// The server's upstreams, with their last sync; empty when it has
    /// none (its updates are published by hand).
    pub upstreams: Vec<super::operations::LastSync>,
}

pub(super) fn when(time: Option<Timestamp>) -> String {
    match time {
        Some(time) => time.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        None => "never".into(),
    }
}

/// The overview: the chart, the updates failing most, the catalog.
pub fn overview(
    viewer: &Viewer,
    health: &[GroupHealth],
    days: u64,
    failing: &[FailingUpdate],
    facts: &CatalogFacts,
) -> Markup {
    layout(
        "Overview",
        Nav::Overview,
        Some(viewer),
        html! {
            section aria-labelledby="groups-heading" {
                h2 #groups-heading { "Computers by group" }
                form.inline method="get" action="/console/overview" {
                    label for="days" { "Not reported for" }
                    input #days type="number" name="days" min="1" max="3650" value=(days);
                    span { "days" }
                    button type="submit" { "Show" }
                }
                (chart::health_chart(health, days))
                div.scroll {
                    table #group-health {
                        caption { "Computers per group and state" }
                        thead { tr {
                            th scope="col" { "Group" }
                            @for (label, _, _) in chart::SEGMENTS { th scope="col" { (label) } }
                            th scope="col" { "Computers" }
                        } }
                        tbody {
                            @for row in health {
                                tr data-group=(row.group) {
                                    th scope="row" {
                                        a href=(format!("/console/computers?group={}", encode(&row.group))) { (row.group) }
                                    }
                                    @for (_, class, read) in chart::SEGMENTS {
                                        td.number data-state=(class) { (read(row)) }
                                    }
                                    td.number { (row.computers()) }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="failing-heading" {
                h2 #failing-heading { "Updates with the most failures" }
                @if failing.is_empty() {
                    p { "No computer reports a failed update." }
                } @else {
                    div.scroll { table {
                        thead { tr { th scope="col" { "Update" } th scope="col" { "Computers failed" } } }
                        tbody {
                            @for update in failing {
                                tr {
                                    td { a href=(format!("/console/updates/{}?state=Failed", update.update_id)) {
                                        (update.title.as_deref().unwrap_or("(no longer on the server)"))
                                    } }
                                    td.number { (update.computers) }
                                }
                            }
                        }
                    } }
                }
            }
            section aria-labelledby="catalog-heading" {
                h2 #catalog-heading { "Catalog" }
                @if facts.upstreams.is_empty() {
                    dl {
                        dt { "Last publish (this server has no upstream)" } dd #last-publish { (when(facts.last_publish)) }
                        dt { "Catalog version" } dd { (facts.version) }
                    }
                } @else {
                    div.scroll { table #last-sync {
                        caption { "Last upstream sync" }
                        thead { tr {
                            th scope="col" { "Upstream" } th scope="col" { "Last sync" }
                            th scope="col" { "Result" }
                        } }
                        tbody {
                            @for upstream in &facts.upstreams {
                                tr data-upstream=(upstream.name) {
                                    th scope="row" { (upstream.name) }
                                    td { (when(upstream.last_sync)) }
                                    td {
                                        @if upstream.last_sync.is_some() {
                                            (upstream.updates) " updates offered"
                                        } @else {
                                            span.muted { "never synced" }
                                        }
                                    }
                                }
                            }
                        }
                    } }
                    dl {
                        dt { "Last publish" } dd #last-publish { (when(facts.last_publish)) }
                        dt { "Catalog version" } dd { (facts.version) }
                    }
                }
            }
        },
    )
}

/// What the Updates page was asked, to fill its form again.
pub struct UpdatesForm {
    /// Free text.
    pub q: Option<String>,
    /// WUA criteria.
    pub criteria: Option<String>,
    /// A classification.
    pub classification: Option<String>,
    /// A severity.
    pub severity: Option<String>,
    /// Declined updates: hide, show, only.
    pub declined: DeclinedFilter,
    /// The page, from 1.
    pub page: u64,
}

impl UpdatesForm {
    fn query(&self, page: u64) -> String {
        let mut query = String::new();
        for (name, value) in [
            ("q", &self.q),
            ("criteria", &self.criteria),
            ("classification", &self.classification),
            ("severity", &self.severity),
        ] {
            if let Some(value) = value {
                let _ = write!(query, "{name}={}&", encode(value));
            }
        }
        match self.declined {
            DeclinedFilter::Hide => {}
            DeclinedFilter::Show => query.push_str("declined=show&"),
            DeclinedFilter::Only => query.push_str("declined=only&"),
        }
        let _ = write!(query, "page={page}");
        query
    }
}

fn select_option(value: &str, label: &str, selected: bool) -> Markup {
    html! {
        @if selected { option value=(value) selected { (label) } }
        @else { option value=(value) { (label) } }
    }
}

/// The Updates page: the search form and a page of results.
#[allow(clippy::too_many_arguments)]
pub fn updates(
    viewer: &Viewer,
    form: &UpdatesForm,
    criteria_error: Option<&ParseCriteriaError>,
    snapshot: &Snapshot,
    total: u64,
    rows: &[&IndexedUpdate],
    approvals: &[Approval],
    declined: &HashSet<Uuid>,
) -> Markup {
    let mut approved: HashMap<Uuid, Vec<&Approval>> = HashMap::new();
    for approval in approvals {
        approved
            .entry(approval.update_id)
            .or_default()
            .push(approval);
    }
    let severity = form.severity.as_deref().unwrap_or("");
    layout(
        "Updates",
        Nav::Updates,
        Some(viewer),
        html! {
            form.search method="get" action="/console/updates" role="search" {
                div.field {
                    label for="q" { "Title, KB or CVE" }
                    input #q type="search" name="q" value=(form.q.as_deref().unwrap_or(""))
                        placeholder="KB5031356, CVE-2024-3094, openssl";
                }
                div.field.wide {
                    label for="criteria" { "WUA criteria" }
                    input #criteria type="text" name="criteria" spellcheck="false"
                        value=(form.criteria.as_deref().unwrap_or(""))
                        placeholder="Type='Software' and BrowseOnly=0"
                        aria-describedby="criteria-hint";
                    small #criteria-hint {
                        "WUA's search language, as " code { "wua search" } " takes it. "
                        "Machine states (IsInstalled, IsHidden, …) are those of a machine that has none."
                    }
                }
                div.field {
                    label for="classification" { "Classification" }
                    select #classification name="classification" {
                        (select_option("", "Any", form.classification.is_none()))
                        @for name in &snapshot.classifications {
                            (select_option(name, name, form.classification.as_deref() == Some(name.as_str())))
                        }
                    }
                }
                div.field {
                    label for="severity" { "Severity" }
                    select #severity name="severity" {
                        (select_option("", "Any", severity.is_empty()))
                        @for name in ["Critical", "Important", "Moderate", "Low"] {
                            (select_option(name, name, severity == name))
                        }
                    }
                }
                div.field {
                    label for="declined" { "Declined" }
                    select #declined name="declined" {
                        (select_option("hide", "Hide declined", form.declined == DeclinedFilter::Hide))
                        (select_option("show", "Show declined", form.declined == DeclinedFilter::Show))
                        (select_option("only", "Only declined", form.declined == DeclinedFilter::Only))
                    }
                }
                button type="submit" { "Search" }
            }
            @if let Some(error) = criteria_error {
                div.error role="alert" {
                    p { "The criteria are not WUA's language: " (error) }
                    @if let Some(criteria) = &form.criteria {
                        pre.caret {
                            (criteria) "\n" (" ".repeat(caret_column(criteria, error.offset()))) "^"
                        }
                    }
                }
            }
            p.count { (total) " of " (snapshot.len()) " updates" }
            div.scroll { table #updates {
                thead { tr {
                    th scope="col" { "Title" }
                    th scope="col" { "KB" }
                    th scope="col" { "Classification" }
                    th scope="col" { "Severity" }
                    th scope="col" { "Approvals" }
                    th scope="col" { "Published" }
                } }
                tbody {
                    @for update in rows {
                        @let id = update.identity.update_id;
                        tr data-update-id=(id) {
                            td {
                                a href=(format!("/console/updates/{id}")) { (update.title) }
                                @if declined.contains(&id) { " " span.tag.declined { "declined" } }
                            }
                            td { (update.kb_article_ids.iter().map(|kb| format!("KB{kb}")).collect::<Vec<_>>().join(", ")) }
                            td { (update.classification.as_deref().unwrap_or("")) }
                            td { (update.severity.map(|severity| format!("{severity:?}")).unwrap_or_default()) }
                            td {
                                @match approved.get(&id) {
                                    None => span.muted { "not approved" },
                                    Some(list) => {
                                        @for (index, approval) in list.iter().enumerate() {
                                            @if index > 0 { ", " }
                                            (approval.group) ": " (action_label(approval.action))
                                        }
                                    }
                                }
                            }
                            td { (update.published.get(..10).unwrap_or(&update.published)) }
                        }
                    }
                }
            } }
            (pager("/console/updates", form.page, total, |page| form.query(page)))
        },
    )
}

/// The column of byte `offset` in `text`, in characters.
fn caret_column(text: &str, offset: usize) -> usize {
    text.char_indices()
        .take_while(|(index, _)| *index < offset)
        .count()
}

fn action_label(action: ApprovalAction) -> &'static str {
    match action {
        ApprovalAction::Install => "install",
        ApprovalAction::Uninstall => "uninstall",
        ApprovalAction::NotApproved => "not approved",
    }
}

/// One group's view of one update.
pub struct GroupStates {
    /// The group.
    pub group: String,
    /// Its depth in the tree, for indentation.
    pub depth: usize,
    /// Its own approval.
    pub own: Option<Approval>,
    /// The approval that holds for it (its own or inherited).
    pub effective: Option<Approval>,
    /// Its computers per WSUS state, in [`SEVEN_STATES`]' order.
    pub counts: [u64; 7],
}

/// Each group's approvals and state counts for `update_id`, the tree in
/// order (parents before children).
pub fn group_states(
    update_id: Uuid,
    groups: &[Group],
    approvals: &[Approval],
    sizes: &[(String, u64)],
    states: &[(String, UpdateState, u64)],
) -> Vec<GroupStates> {
    let parents: HashMap<String, Option<String>> = groups
        .iter()
        .map(|group| (group.name.clone(), group.parent.clone()))
        .collect();
    let by_key: HashMap<(Uuid, String), Approval> = approvals
        .iter()
        .map(|approval| {
            (
                (approval.update_id, approval.group.clone()),
                approval.clone(),
            )
        })
        .collect();
    let mut ordered = Vec::new();
    let mut stack = vec![(ALL_COMPUTERS.to_owned(), 0)];
    // Depth-first from the root, children by name; a group not under the
    // root (a broken tree) is listed after.
    while let Some((name, depth)) = stack.pop() {
        if ordered.iter().any(|(known, _)| known == &name) {
            continue;
        }
        let mut children: Vec<&Group> = groups
            .iter()
            .filter(|group| group.parent.as_deref() == Some(name.as_str()))
            .collect();
        children.sort_by(|a, b| b.name.cmp(&a.name));
        for child in children {
            stack.push((child.name.clone(), depth + 1));
        }
        ordered.push((name, depth));
    }
    for group in groups {
        if !ordered.iter().any(|(known, _)| known == &group.name) {
            ordered.push((group.name.clone(), 0));
        }
    }
    ordered
        .into_iter()
        .map(|(group, depth)| {
            let mut counts = [0u64; 7];
            for (_, state, n) in states.iter().filter(|(name, ..)| *name == group) {
                let slot = SEVEN_STATES
                    .iter()
                    .position(|name| *name == state.as_str())
                    .unwrap_or(0);
                counts[slot] += n;
            }
            let effective = effective_approval(update_id, &group, &parents, &by_key).cloned();
            // Unknown: computers the update is approved for that have not
            // reported it (as the reports API counts them).
            if effective
                .as_ref()
                .is_some_and(|approval| approval.action == ApprovalAction::Install)
            {
                let size = sizes
                    .iter()
                    .find(|(name, _)| *name == group)
                    .map_or(0, |(_, size)| *size);
                counts[0] = size.saturating_sub(counts.iter().sum());
            }
            GroupStates {
                own: by_key.get(&(update_id, group.clone())).cloned(),
                effective,
                group,
                depth,
                counts,
            }
        })
        .collect()
}

/// What the update page shows.
pub struct UpdateDetail {
    /// `UpdateID`.
    pub update_id: Uuid,
    /// Whether it is declined.
    pub declined: bool,
    /// Its revisions, oldest first.
    pub revisions: Vec<StoredRevision>,
    /// The current revision.
    pub current: Revision,
    /// Per group: approvals and states.
    pub groups: Vec<GroupStates>,
    /// A page of computers that reported it.
    pub computers: Page<UpdateComputerRow>,
    /// The state the computer list is limited to.
    pub only: Option<UpdateState>,
    /// The page, from 1.
    pub page: u64,
    /// What was just done (`approved`, `declined`, `halted`, `resumed`).
    pub done: Option<String>,
    /// Its staged rollout, if it has one, with its progress.
    pub rollout: Option<crate::rules_api::RolloutStatus>,
}

/// One update: its facts, approvals and states per group, approve and
/// decline (admin), and the computers that reported it.
pub fn update_detail(viewer: &Viewer, detail: &UpdateDetail) -> Markup {
    let update = &detail.current.update;
    let id = detail.update_id;
    let mut totals = [0u64; 7];
    for group in &detail.groups {
        for (total, count) in totals.iter_mut().zip(group.counts) {
            *total += count;
        }
    }
    let only = detail.only.map(UpdateState::as_str);
    layout(
        &update.title,
        Nav::Updates,
        Some(viewer),
        html! {
            @if let Some(done) = &detail.done {
                p.notice role="status" { "Done: " (done) "." }
            }
            dl.facts {
                dt { "UpdateID" } dd { code { (id) } }
                dt { "Revision" } dd { (update.identity.revision_number) " (" (detail.revisions.len()) " stored)" }
                dt { "Status" } dd #update-status { (if detail.declined { "Declined" } else { "Active" }) }
                @if !update.kb_article_ids.is_empty() {
                    dt { "KB" } dd { (update.kb_article_ids.iter().map(|kb| format!("KB{kb}")).collect::<Vec<_>>().join(", ")) }
                }
                @if !update.cve_ids.is_empty() {
                    dt { "CVE" } dd { (update.cve_ids.join(", ")) }
                }
                @if let Some(severity) = update.msrc_severity {
                    dt { "Severity" } dd { (format!("{severity:?}")) }
                }
                @for category in &update.categories {
                    dt { (category.category_type) } dd { (category.name) }
                }
                @if !update.description.is_empty() {
                    dt { "Description" } dd { (update.description) }
                }
            }
            section aria-labelledby="states-heading" {
                h2 #states-heading { "Approvals and states by group" }
                div.scroll { table #update-groups {
                    thead { tr {
                        th scope="col" { "Group" }
                        th scope="col" { "Approval" }
                        @for state in SEVEN_STATES { th scope="col" { (state) } }
                    } }
                    tbody {
                        @for group in &detail.groups {
                            tr data-group=(group.group) {
                                th scope="row" class=(format!("depth-{}", group.depth.min(6))) { (group.group) }
                                td.approval {
                                    @match (&group.own, &group.effective) {
                                        (Some(own), _) => {
                                            (action_label(own.action))
                                            @if let Some(deadline) = own.deadline { " by " (when(Some(deadline))) }
                                        },
                                        (None, Some(inherited)) => span.muted {
                                            (action_label(inherited.action)) " (from " (inherited.group) ")"
                                        },
                                        (None, None) => span.muted { "not approved" },
                                    }
                                }
                                @for (state, count) in SEVEN_STATES.iter().zip(group.counts) {
                                    td.number data-state=(state) { (count) }
                                }
                            }
                        }
                    }
                    tfoot { tr {
                        th scope="row" { "All groups" } td {}
                        @for (state, count) in SEVEN_STATES.iter().zip(totals) {
                            td.number data-total=(state) { (count) }
                        }
                    } }
                } }
            }
            @if let Some(rollout) = &detail.rollout {
                (super::operations::rollout_section(viewer, rollout))
            }
            @if viewer.is_admin() {
                section aria-labelledby="approve-heading" {
                    h2 #approve-heading { "Approve" }
                    form.stack #approve method="post" action=(format!("/console/updates/{id}/approve")) {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        label for="approve-group" { "Group" }
                        select #approve-group name="group" required {
                            @for group in &detail.groups { option value=(group.group) { (group.group) } }
                        }
                        label for="approve-action" { "Action" }
                        select #approve-action name="action" {
                            option value="install" { "Install" }
                            option value="uninstall" { "Uninstall" }
                            option value="notApproved" { "Not approved" }
                        }
                        label for="approve-deadline" { "Deadline (UTC, optional)" }
                        input #approve-deadline type="datetime-local" name="deadline";
                        button type="submit" { "Set approval" }
                    }
                    @if !detail.declined {
                        form.stack #decline method="post" action=(format!("/console/updates/{id}/decline"))
                            data-confirm="Decline this update for every computer?" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button.danger type="submit" { "Decline" }
                        }
                    }
                }
            }
            section aria-labelledby="computers-heading" {
                h2 #computers-heading { "Computers" }
                nav.filters aria-label="Filter by state" {
                    @if only.is_none() { strong { "Any" } } @else { a href=(format!("/console/updates/{id}")) { "Any" } }
                    @for state in &SEVEN_STATES[1..] {
                        " · "
                        @if only == Some(*state) { strong { (state) } }
                        @else { a href=(format!("/console/updates/{id}?state={state}")) { (state) } }
                    }
                }
                div.scroll { table #update-computers {
                    thead { tr {
                        th scope="col" { "Computer" } th scope="col" { "Group" }
                        th scope="col" { "State" } th scope="col" { "Result" } th scope="col" { "Observed" }
                    } }
                    tbody {
                        @for row in &detail.computers.rows {
                            tr data-computer-id=(row.computer_id) {
                                td { a href=(format!("/console/computers/{}", row.computer_id)) { (row.hostname) } }
                                td { (row.group) }
                                td.state data-state=(row.state.as_str()) { (row.state.as_str()) }
                                td { @if let Some(code) = row.hresult { (code_link(code)) } }
                                td { (when(Some(row.time))) }
                            }
                        }
                    }
                } }
                (pager(&format!("/console/updates/{id}"), detail.page, detail.computers.total, |page| {
                    match only {
                        Some(state) => format!("state={state}&page={page}"),
                        None => format!("page={page}"),
                    }
                }))
            }
        },
    )
}

/// The Computers page: a group's computers, a page at a time.
pub fn computers(
    viewer: &Viewer,
    groups: &[Group],
    group: Option<&str>,
    q: Option<&str>,
    page: u64,
    list: &Page<crate::store::ComputerRow>,
) -> Markup {
    let now = Timestamp::now();
    layout(
        "Computers",
        Nav::Computers,
        Some(viewer),
        html! {
            form.search method="get" action="/console/computers" role="search" {
                div.field {
                    label for="group" { "Group" }
                    select #group name="group" {
                        (select_option("", "Every group", group.is_none()))
                        @for known in groups {
                            (select_option(&known.name, &known.name, group == Some(known.name.as_str())))
                        }
                    }
                }
                div.field {
                    label for="hostname" { "Host name" }
                    input #hostname type="search" name="q" value=(q.unwrap_or(""));
                }
                button type="submit" { "Show" }
            }
            p.count { (list.total) " computers" }
            div.scroll { table #computers {
                thead { tr {
                    th scope="col" { "Computer" } th scope="col" { "Group" }
                    th scope="col" { "Last report" } th scope="col" { "OS" }
                    th scope="col" { "Agent" } th scope="col" { "Restart" }
                    th scope="col" { "Needed" } th scope="col" { "Failed" }
                } }
                tbody {
                    @for row in &list.rows {
                        @let inventory = row.inventory.as_ref();
                        tr data-computer-id=(row.computer_id) {
                            td { a href=(format!("/console/computers/{}", row.computer_id)) { (row.hostname) } }
                            td { (row.group) }
                            td { (when(row.last_report)) (staleness(row.last_report, row.stale_since, now)) }
                            td { (inventory.and_then(|inventory| inventory.os.as_deref()).unwrap_or("")) }
                            td { (inventory.and_then(|inventory| inventory.agent_version.as_deref()).unwrap_or("")) }
                            td { @if inventory.is_some_and(|inventory| inventory.reboot_pending) || row.pending_reboot > 0 { span.tag.reboot { "pending" } } }
                            td.number { (row.needed) }
                            td.number { @if row.failed > 0 { span.tag.failed { (row.failed) } } @else { "0" } }
                        }
                    }
                }
            } }
            (pager("/console/computers", page, list.total, |page| {
                let mut query = String::new();
                if let Some(group) = group { let _ = write!(query, "group={}&", encode(group)); }
                if let Some(q) = q { let _ = write!(query, "q={}&", encode(q)); }
                let _ = write!(query, "page={page}");
                query
            }))
        },
    )
}

/// A computer's staleness: maintenance's stored mark ("stale since",
/// set after `stale_after_days` without a report or sync) when it has
/// one; otherwise "not reported: N days" when the last report is at
/// least the Overview's default period old, or "never reported". The
/// Overview counts both kinds as not reported.
fn staleness(
    last_report: Option<Timestamp>,
    stale_since: Option<Timestamp>,
    now: Timestamp,
) -> Markup {
    let days = last_report.map(|time| now.duration_since(time).as_secs() / 86_400);
    let quiet_days = super::DEFAULT_STALE_DAYS as i64;
    html! {
        @if let Some(since) = stale_since {
            " " span.tag.stale data-stale-since=(since) {
                "stale since " (since.strftime("%Y-%m-%d").to_string())
            }
        } @else {
            @match days {
                None => { " " span.tag.quiet { "never reported" } },
                Some(days) if days >= quiet_days => { " " span.tag.quiet { "not reported: " (days) " days" } },
                Some(_) => {},
            }
        }
    }
}

/// One computer: its inventory and its updates' states, failures
/// explained.
pub fn computer_detail(
    viewer: &Viewer,
    computer: &Computer,
    report: &ComputerReport,
    page: u64,
    updates: &Page<ComputerUpdateRow>,
) -> Markup {
    let inventory = report.inventory.as_ref();
    let field = |value: Option<&String>| value.cloned().unwrap_or_default();
    layout(
        &computer.hostname,
        Nav::Computers,
        Some(viewer),
        html! {
            dl.facts {
                dt { "Computer ID" } dd { code { (computer.computer_id) } }
                dt { "Group" } dd { a href=(format!("/console/computers?group={}", encode(&computer.group))) { (computer.group) } }
                dt { "Registered" } dd { (when(Some(computer.registered))) }
                dt { "Last sync" } dd { (when(computer.last_sync)) }
                dt { "Last report" } dd { (when(report.last_report)) (staleness(report.last_report, computer.stale_since, Timestamp::now())) }
                dt { "OS" } dd { (field(inventory.and_then(|i| i.os.as_ref()))) }
                dt { "Kernel" } dd { (field(inventory.and_then(|i| i.kernel.as_ref()))) }
                dt { "Architecture" } dd { (field(inventory.and_then(|i| i.architecture.as_ref()))) }
                dt { "Agent version" } dd { (field(inventory.and_then(|i| i.agent_version.as_ref()))) }
                dt { "Restart pending" } dd { (if inventory.is_some_and(|i| i.reboot_pending) { "yes" } else { "no" }) }
                dt { "Updates by state" } dd {
                    @for (index, (state, count)) in report.states.iter().enumerate() {
                        @if index > 0 { ", " }
                        (state.as_str()) ": " (count)
                    }
                }
            }
            div.scroll { table #computer-updates {
                thead { tr {
                    th scope="col" { "Update" } th scope="col" { "State" }
                    th scope="col" { "Revision" } th scope="col" { "Result" }
                    th scope="col" { "Observed" }
                } }
                tbody {
                    @for row in &updates.rows {
                        tr data-update-id=(row.update_id) {
                            td { a href=(format!("/console/updates/{}", row.update_id)) { (row.title.as_deref().unwrap_or("(no longer on the server)")) } }
                            td.state data-state=(row.state.as_str()) { (row.state.as_str()) }
                            td.number { (row.revision_number) }
                            td {
                                @if let Some(code) = row.result_code { (code.as_str()) }
                                @if let Some(code) = row.hresult {
                                    @if code.is_failure() { (explanation(code)) } @else { " " code { (format!("{code:#}")) } }
                                }
                            }
                            td { (when(Some(row.time))) }
                        }
                    }
                }
            } }
            (pager(&format!("/console/computers/{}", computer.computer_id), page, updates.total, |page| format!("page={page}")))
        },
    )
}

/// A code explained as `wua explain` explains it: value, name, facility,
/// component and what it means (the model's table).
pub(super) fn explanation(code: HResult) -> Markup {
    let message = code.info().map_or(
        "No WUA code has this value; its severity, facility and component say which part of \
         the system reported it.",
        |info| info.message,
    );
    html! {
        div.explain {
            (code_link(code)) " " strong { (code.name().unwrap_or("(not a WUA code)")) }
            br;
            span.facility {
                (code.facility_name().map_or_else(|| format!("facility {:#x}", code.facility()), str::to_owned))
                @if let Some(component) = code.component() { " · " (component.description()) }
            }
            br;
            span.message { (message) }
        }
    }
}

fn code_link(code: HResult) -> Markup {
    html! { a href=(format!("/console/failures/{code:#}")) { code { (format!("{code:#}")) } } }
}

/// The Failures page: failed (computer, update) pairs grouped by HRESULT.
pub fn failures(viewer: &Viewer, codes: &[FailureCode]) -> Markup {
    layout(
        "Failures",
        Nav::Failures,
        Some(viewer),
        html! {
            @if codes.is_empty() {
                p { "No computer reports a failed update." }
            } @else {
                div.scroll { table #failure-codes {
                    thead { tr {
                        th scope="col" { "Code and explanation" }
                        th scope="col" { "Failures" } th scope="col" { "Computers" }
                        th scope="col" { "Updates" }
                    } }
                    tbody {
                        @for code in codes {
                            tr data-hresult=(code.hresult.map(|code| format!("{code:#}")).unwrap_or_else(|| "none".into())) {
                                td {
                                    @match code.hresult {
                                        Some(hresult) => (explanation(hresult)),
                                        None => a href="/console/failures/none" { "Reported without a code" },
                                    }
                                }
                                td.number { (code.failures) }
                                td.number {
                                    a href=(format!("/console/failures/{}", code.hresult.map(|code| format!("{code:#}")).unwrap_or_else(|| "none".into()))) {
                                        (code.computers)
                                    }
                                }
                                td.number { (code.updates) }
                            }
                        }
                    }
                } }
            }
        },
    )
}

/// The computers and updates failed with one code.
pub fn failure_detail(
    viewer: &Viewer,
    code: Option<HResult>,
    page: u64,
    list: &Page<FailureRow>,
) -> Markup {
    let title = match code {
        Some(code) => format!("Failures with {code:#}"),
        None => "Failures without a code".to_owned(),
    };
    let path = match code {
        Some(code) => format!("/console/failures/{code:#}"),
        None => "/console/failures/none".to_owned(),
    };
    layout(
        &title,
        Nav::Failures,
        Some(viewer),
        html! {
            @if let Some(code) = code { (explanation(code)) }
            p.count { (list.total) " failures" }
            div.scroll { table #failures {
                thead { tr {
                    th scope="col" { "Computer" } th scope="col" { "Group" }
                    th scope="col" { "Update" } th scope="col" { "Observed" }
                } }
                tbody {
                    @for row in &list.rows {
                        tr {
                            td { a href=(format!("/console/computers/{}", row.computer_id)) { (row.hostname) } }
                            td { (row.group) }
                            td { a href=(format!("/console/updates/{}", row.update_id)) { (row.title.as_deref().unwrap_or("(no longer on the server)")) } }
                            td { (when(Some(row.time))) }
                        }
                    }
                }
            } }
            (pager(&path, page, list.total, |page| format!("page={page}")))
        },
    )
}

/// The Access page: read-only tokens (admin only). `made`: a token just
/// made, shown this once.
pub fn access(viewer: &Viewer, tokens: &[ConsoleToken], made: Option<(&str, &str)>) -> Markup {
    layout(
        "Access",
        Nav::Access,
        Some(viewer),
        html! {
            p {
                "A read-only token signs helpdesk staff in to every page of the console; it "
                "approves, declines and changes nothing, and it is not accepted by the API."
            }
            @if let Some((label, token)) = made {
                div.notice role="status" {
                    p { "The read-only token " strong { (label) } " (shown only now; copy it):" }
                    pre #new-token { (token) }
                }
            }
            form.stack method="post" action="/console/access/tokens" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                label for="label" { "Label (who it is for)" }
                input #label type="text" name="label" maxlength="64" required;
                button type="submit" { "Make a read-only token" }
            }
            div.scroll { table #tokens {
                thead { tr { th scope="col" { "Label" } th scope="col" { "Made" } th scope="col" { "SHA-256" } th scope="col" {} } }
                tbody {
                    @for token in tokens {
                        tr {
                            td { (token.label) }
                            td { (token.added.get(..16).unwrap_or(&token.added)) }
                            td { code { (token.sha256.get(..16).unwrap_or(&token.sha256)) "…" } }
                            td {
                                form method="post" action="/console/access/tokens/revoke"
                                    data-confirm="Revoke this token and end its sessions?" {
                                    input type="hidden" name="csrf" value=(viewer.csrf);
                                    input type="hidden" name="sha256" value=(token.sha256);
                                    button.danger type="submit" { "Revoke" }
                                }
                            }
                        }
                    }
                }
            } }
        },
    )
}

/// Previous and next links; `query(page)` is the query for that page.
pub(super) fn pager(path: &str, page: u64, total: u64, query: impl Fn(u64) -> String) -> Markup {
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    html! {
        @if pages > 1 {
            nav.pager aria-label="Pages" {
                @if page > 1 { a rel="prev" href=(format!("{path}?{}", query(page - 1))) { "← Previous" } }
                span { "Page " (page) " of " (pages) }
                @if page < pages { a rel="next" href=(format!("{path}?{}", query(page + 1))) { "Next →" } }
            }
        }
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(char::from(byte));
            }
            _ => {
                let _ = write!(encoded, "%{byte:02X}");
            }
        }
    }
    encoded
}
