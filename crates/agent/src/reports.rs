//! Status reports to update servers (`docs/agent.md`, "Reporting"; the
//! contract is `docs/server.md`, "Status reports"): after each sync with a
//! server and each download, install or uninstall job, the agent queues the
//! machine's full state of every update in that server's catalog, and a
//! sender task posts it.
//!
//! A report is queued in its own store transaction right after what it
//! reports, not inside it: an update's state comes from the scan that
//! follows the job (dpkg's database, files), which no transaction covers.
//! A report lost to a crash in between is made good at the next start,
//! which queues a fresh one for every server. A newer report replaces the
//! parts of older ones not yet sent (each is a full state), but their
//! sequence numbers are never given again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use openwua_model::enums::{OperationResultCode, UpdateOperation};
use openwua_model::history::HistoryEntry;
use openwua_model::hresult::{HResult, WU_E_PT_HTTP_STATUS_NOT_MAPPED, WU_E_UNEXPECTED};
use openwua_model::service::{ReportingState, ServiceInfo};
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use crate::agent::{Agent, blocking, lock, poisoned};
use crate::error::{AgentError, Result};
use crate::index::{Entry, Index};
use crate::policy::{self, Action, Requester};
use crate::store::QueuedReport;
use crate::update_server::{self, ReportReply};

/// The most updates one report part lists: the server's limit.
pub(crate) const MAX_PART_UPDATES: usize = 10_000;
/// The most bytes of `updates` one part holds, leaving room under the
/// server's 4 MiB body for the inventory (at most about 45 KB).
const MAX_PART_BYTES: usize = 3 << 20;
/// The server's bound on an inventory text field, in characters.
const MAX_INVENTORY_CHARS: usize = 256;
/// The server's bound on `awaitingInteractiveUser`.
const MAX_AWAITING: usize = 1_000;

/// The sender's state, held by the agent.
#[derive(Default)]
pub(crate) struct Reporter {
    /// Poked when a report is queued.
    wake: tokio::sync::Notify,
    /// One report built and queued at a time, so the queue's order is the
    /// order the states were read in.
    pub(crate) building: tokio::sync::Mutex<()>,
    /// Servers that could not take a report: when to try again.
    backoff: Mutex<HashMap<Uuid, Backoff>>,
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    at: Instant,
    at_time: Timestamp,
}

/// What the report says of the machine (the contract's `inventory`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Inventory {
    os: Option<String>,
    kernel: Option<String>,
    architecture: Option<String>,
    agent_version: &'static str,
    last_sync: Option<Timestamp>,
    reboot_pending: bool,
    awaiting_interactive_user: Vec<Uuid>,
}

/// One update's line (the contract's `updates[]`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReportedUpdate {
    update_id: Uuid,
    revision_number: i32,
    state: &'static str,
    result_code: Option<OperationResultCode>,
    hresult: Option<HResult>,
    time: Timestamp,
}

/// A report ready to queue: its inventory and its parts' `updates`.
pub(crate) struct Built {
    pub(crate) inventory: String,
    pub(crate) parts: Vec<String>,
}

/// What the machine is, read once per round of reports.
pub(crate) struct System {
    os: Option<String>,
    kernel: Option<String>,
    architecture: Option<String>,
}

impl System {
    pub(crate) fn read(os_release: &std::path::Path) -> System {
        let fields = crate::applicability::read_os_release(os_release);
        let os = fields.get("PRETTY_NAME").cloned().or_else(|| {
            let name = fields.get("NAME")?;
            Some(match fields.get("VERSION") {
                Some(version) => format!("{name} {version}"),
                None => name.clone(),
            })
        });
        let uname = nix::sys::utsname::uname().ok();
        System {
            os: os.and_then(|text| inventory_text(&text)),
            kernel: uname
                .as_ref()
                .and_then(|uname| inventory_text(&uname.release().to_string_lossy())),
            architecture: uname
                .as_ref()
                .and_then(|uname| inventory_text(&uname.machine().to_string_lossy())),
        }
    }
}

/// A text the server takes: no control characters, at most 256 of them.
fn inventory_text(text: &str) -> Option<String> {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_INVENTORY_CHARS)
        .collect();
    let clean = clean.trim();
    (!clean.is_empty()).then(|| clean.to_owned())
}

/// The WSUS state of one update, from the scan and its last result.
fn state_of(entry: &Entry, last: Option<&HistoryEntry>) -> &'static str {
    let state = &entry.state;
    if state.is_installed {
        return if state.reboot_required {
            "InstalledPendingReboot"
        } else {
            "Installed"
        };
    }
    if !entry.applicable {
        return "NotApplicable";
    }
    let failed = last.is_some_and(|last| {
        last.operation == UpdateOperation::Installation
            && last.result_code == OperationResultCode::Failed
    });
    if failed {
        "Failed"
    } else if state.is_downloaded {
        "Downloaded"
    } else {
        "NotInstalled"
    }
}

/// `service`'s report: every update of its catalog in the index.
pub(crate) fn build(
    index: &Index,
    service: &ServiceInfo,
    results: &HashMap<Uuid, HistoryEntry>,
    awaiting: &[HistoryEntry],
    system: &System,
    now: Timestamp,
) -> Result<Built> {
    let encode = |error: serde_json::Error| AgentError::new(WU_E_UNEXPECTED, error.to_string());
    let mut in_catalog = std::collections::HashSet::new();
    let mut lines = Vec::new();
    for entry in index.entries_of(service.service_id) {
        let identity = entry.update.identity;
        in_catalog.insert(identity.update_id);
        let last = results.get(&identity.update_id);
        lines.push(
            serde_json::to_string(&ReportedUpdate {
                update_id: identity.update_id,
                revision_number: identity.revision_number,
                state: state_of(entry, last),
                result_code: last.map(|last| last.result_code),
                hresult: last.map(|last| last.hresult),
                time: last.map_or(now, |last| last.date),
            })
            .map_err(encode)?,
        );
    }
    let parts = pack(lines, MAX_PART_UPDATES, MAX_PART_BYTES);
    let inventory = Inventory {
        os: system.os.clone(),
        kernel: system.kernel.clone(),
        architecture: system.architecture.clone(),
        agent_version: env!("CARGO_PKG_VERSION"),
        last_sync: service.last_sync,
        reboot_pending: index.reboot_required(),
        awaiting_interactive_user: awaiting
            .iter()
            .map(|entry| entry.update_identity.update_id)
            .filter(|id| in_catalog.contains(id))
            .take(MAX_AWAITING)
            .collect(),
    };
    Ok(Built {
        inventory: serde_json::to_string(&inventory).map_err(encode)?,
        parts,
    })
}

/// Packs JSON `lines` into arrays of at most `max_lines` lines and (a
/// line being far smaller) about `max_bytes` bytes: the parts of one
/// report. No lines make one empty part, which still carries the inventory.
fn pack(lines: Vec<String>, max_lines: usize, max_bytes: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut part = String::from("[");
    let mut in_part = 0;
    for line in lines {
        if in_part == max_lines || (in_part > 0 && part.len() + line.len() + 2 > max_bytes) {
            part.push(']');
            parts.push(std::mem::replace(&mut part, String::from("[")));
            in_part = 0;
        }
        if in_part > 0 {
            part.push(',');
        }
        part.push_str(&line);
        in_part += 1;
    }
    part.push(']');
    parts.push(part);
    parts
}

/// A report part as the server takes it.
pub(crate) fn request_body(part: &QueuedReport) -> Vec<u8> {
    // Both pieces are JSON this agent wrote.
    format!(
        r#"{{"sequence":{},"inventory":{},"updates":{}}}"#,
        part.sequence, part.inventory_json, part.updates_json
    )
    .into_bytes()
}

/// How one attempt to send a service's next part ended.
enum Sent {
    /// Sent, renumbered or dropped: the next part may go at once.
    Progress,
    /// Nothing may go before this.
    Wait(Instant),
}

impl Reporter {
    fn due(&self, service_id: Uuid, now: Instant) -> Option<Instant> {
        lock(&self.backoff)
            .get(&service_id)
            .map(|backoff| backoff.at)
            .filter(|at| *at > now)
    }
}

impl Agent {
    /// Queues a full-state report for every update server with a catalog
    /// (or only `only`), and wakes the sender. `reachable`: the server
    /// just answered, so its backoff ends. A failure is logged: the next
    /// sync or job queues the state again.
    pub(crate) async fn queue_reports(&self, only: Option<Uuid>, reachable: bool) {
        match self.try_queue_reports(only).await {
            Ok(queued) => {
                if reachable {
                    let mut backoff = lock(&self.reports.backoff);
                    for service_id in &queued {
                        backoff.remove(service_id);
                    }
                }
                if !queued.is_empty() {
                    self.reports.wake.notify_one();
                }
            }
            Err(error) => tracing::warn!("queueing a status report: {error}"),
        }
    }

    async fn try_queue_reports(&self, only: Option<Uuid>) -> Result<Vec<Uuid>> {
        let _building = self.reports.building.lock().await;
        let store = Arc::clone(&self.store);
        let index = Arc::clone(&self.index);
        let os_release = self.config.facts.os_release.clone();
        blocking(move || {
            let system = System::read(&os_release);
            let (services, results, awaiting) = {
                let store = store.lock().map_err(|_| poisoned())?;
                (
                    store.services()?,
                    store.last_results()?,
                    store.awaiting_interactive_user()?,
                )
            };
            let now = Timestamp::now();
            let mut built = Vec::new();
            {
                let index = index.read().map_err(|_| poisoned())?;
                for service in services.iter().filter(|service| {
                    !service.is_scan_package_service
                        && service.catalog_version.is_some()
                        && only.is_none_or(|only| only == service.service_id)
                }) {
                    let report = build(&index, service, &results, &awaiting, &system, now)?;
                    built.push((service.service_id, report));
                }
            }
            let mut store = store.lock().map_err(|_| poisoned())?;
            let mut queued = Vec::with_capacity(built.len());
            for (service_id, report) in built {
                let sequences =
                    store.queue_report(service_id, now, &report.inventory, &report.parts)?;
                tracing::debug!(service = %service_id, ?sequences, "status report queued");
                queued.push(service_id);
            }
            Ok(queued)
        })
        .await
    }

    /// `GetReportingState`: how reports to each update server stand.
    pub async fn reporting_state(&self, requester: &Requester) -> Result<Vec<ReportingState>> {
        policy::authorize(requester, Action::Search, None)?;
        let mut states = self.with_store(|store| store.reporting_states()).await?;
        let now = Instant::now();
        let backoff = lock(&self.reports.backoff);
        for state in &mut states {
            state.next_attempt = backoff
                .get(&state.service_id)
                .filter(|backoff| backoff.at > now)
                .map(|backoff| backoff.at_time);
        }
        Ok(states)
    }

    /// The sender: queues a fresh report for every update server (the
    /// state may have changed while the agent was stopped, a restart
    /// clearing a pending reboot, say), then sends whatever waits, each
    /// server's parts in sequence order, waiting out failures; never
    /// returns.
    pub async fn send_reports(self: Arc<Self>) {
        self.queue_reports(None, false).await;
        loop {
            let wake = self.reports.wake.notified();
            let waiting = match self.with_store(|store| store.services_with_reports()).await {
                Ok(waiting) => waiting,
                Err(error) => {
                    tracing::warn!("reading the report queue: {error}");
                    tokio::time::sleep(self.retry_base()).await;
                    continue;
                }
            };
            let mut earliest: Option<Instant> = None;
            let mut progress = false;
            for service_id in waiting {
                let outcome = match self.reports.due(service_id, Instant::now()) {
                    Some(at) => Sent::Wait(at),
                    None => self.send_next(service_id).await,
                };
                match outcome {
                    Sent::Progress => progress = true,
                    Sent::Wait(at) => earliest = Some(earliest.map_or(at, |e| e.min(at))),
                }
            }
            if progress {
                continue;
            }
            match earliest {
                Some(at) => {
                    tokio::select! {
                        () = wake => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => wake.await,
            }
        }
    }

    fn retry_base(&self) -> Duration {
        Duration::from_millis(self.config.reports.retry_base_millis.max(1))
    }

    /// Sends `service_id`'s next part once (registering again once on a
    /// 401, numbering the queue again once if the server is ahead).
    async fn send_next(&self, service_id: Uuid) -> Sent {
        match self.try_send_next(service_id).await {
            Ok(sent) => sent,
            Err((error, retry_after)) => {
                tracing::warn!(service = %service_id, "sending a status report: {error}");
                let text = error.to_string();
                let recorded = self
                    .with_store(move |store| {
                        store.report_failed(service_id, &text, None, Timestamp::now())
                    })
                    .await;
                if let Err(error) = recorded {
                    tracing::warn!("recording a report's failure: {error}");
                }
                Sent::Wait(self.back_off(service_id, retry_after))
            }
        }
    }

    async fn try_send_next(
        &self,
        service_id: Uuid,
    ) -> std::result::Result<Sent, (AgentError, Option<u64>)> {
        let now_error = |error: AgentError| (error, None);
        let (part, service, identity) = self
            .with_store(move |store| {
                Ok((
                    store.next_report(service_id)?,
                    store.service(service_id)?,
                    store.server_identity(service_id)?,
                ))
            })
            .await
            .map_err(now_error)?;
        let (Some(mut part), Some(service), Some((group, mut credentials))) =
            (part, service, identity)
        else {
            // Sent meanwhile, or the service was removed with its queue.
            return Ok(Sent::Progress);
        };
        let url = update_server::stored_url(&service.source, self.config.allow_plain_http)
            .map_err(now_error)?;
        // The service's own fetcher: it trusts the CA the service was added with.
        let service_fetcher = self.server_fetcher(service_id).await.map_err(now_error)?;
        let mut body = Arc::new(request_body(&part));
        let mut registered_again = false;
        let mut renumbered = false;
        loop {
            let fetcher = Arc::clone(&service_fetcher);
            let (posting, presented, sending) =
                (url.clone(), credentials.clone(), Arc::clone(&body));
            let reply = blocking(move || {
                update_server::report(fetcher.http(), &posting, &presented, &sending)
            })
            .await
            .map_err(now_error)?;
            let sequence = part.sequence;
            let store_error = |error: AgentError| (error, None);
            match reply {
                ReportReply::Acknowledged(acknowledged) if acknowledged == sequence => {
                    lock(&self.reports.backoff).remove(&service_id);
                    self.with_store(move |store| {
                        store.acknowledge_report(service_id, sequence, Timestamp::now())
                    })
                    .await
                    .map_err(store_error)?;
                    tracing::info!(service = %service_id, sequence, "status report acknowledged");
                    return Ok(Sent::Progress);
                }
                ReportReply::Acknowledged(acknowledged)
                    if acknowledged > sequence
                        && !renumbered
                        && i64::try_from(acknowledged).is_ok_and(|ack| ack < i64::MAX / 2) =>
                {
                    // The server holds a higher sequence from this computer
                    // and took this part for a duplicate: number the queue
                    // past it, so the state is stored after all.
                    tracing::warn!(
                        service = %service_id,
                        sequence,
                        acknowledged,
                        "the update server is ahead of this agent's report sequence; numbering the queue again"
                    );
                    self.with_store(move |store| store.renumber_reports(service_id, acknowledged))
                        .await
                        .map_err(store_error)?;
                    renumbered = true;
                    part.sequence = acknowledged + 1;
                    body = Arc::new(request_body(&part));
                }
                ReportReply::Acknowledged(acknowledged) => {
                    return Err((
                        AgentError::new(
                            WU_E_PT_HTTP_STATUS_NOT_MAPPED,
                            format!(
                                "{url} acknowledged sequence {acknowledged} for report {sequence}, \
                                 which the contract does not allow"
                            ),
                        ),
                        None,
                    ));
                }
                ReportReply::Unauthorized if !registered_again => {
                    registered_again = true;
                    credentials = self
                        .register_again(
                            service_id,
                            &url,
                            group.clone(),
                            credentials,
                            &service_fetcher,
                        )
                        .await
                        .map_err(now_error)?;
                }
                ReportReply::Unauthorized => {
                    return Err(now_error(AgentError::new(
                        openwua_model::hresult::WU_E_PT_HTTP_STATUS_DENIED,
                        format!(
                            "{url} refused this computer's credentials even after it registered again"
                        ),
                    )));
                }
                ReportReply::Later(retry_after, error) => return Err((error, retry_after)),
                ReportReply::Refused(error) => {
                    // It would refuse this part forever; the next sync or
                    // job queues the state again.
                    tracing::warn!(
                        service = %service_id,
                        sequence,
                        "the update server refused a status report; dropped: {error}"
                    );
                    let text = error.to_string();
                    self.with_store(move |store| {
                        store.report_failed(service_id, &text, Some(sequence), Timestamp::now())
                    })
                    .await
                    .map_err(store_error)?;
                    return Ok(Sent::Progress);
                }
            }
        }
    }

    /// Records another failure for `service_id` and returns when to try
    /// again: the doubled wait with jitter, or the server's `Retry-After`
    /// when longer.
    fn back_off(&self, service_id: Uuid, retry_after: Option<u64>) -> Instant {
        let settings = self.config.reports;
        let mut backoff = lock(&self.reports.backoff);
        let failures = backoff
            .get(&service_id)
            .map_or(1, |backoff| backoff.failures.saturating_add(1));
        let wait = retry_wait(
            Duration::from_millis(settings.retry_base_millis),
            Duration::from_millis(settings.retry_max_millis),
            failures,
            getrandom::u64().unwrap_or(u64::MAX),
        )
        .max(Duration::from_secs(retry_after.unwrap_or(0)));
        let at = Instant::now() + wait;
        let at_time =
            Timestamp::now() + SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX);
        backoff.insert(
            service_id,
            Backoff {
                failures,
                at,
                at_time,
            },
        );
        at
    }
}

/// The wait after the `failures`-th failure in a row: `base` doubled each
/// time up to `max`, then a random part (`random`) of its upper half
/// taken away, so agents that failed together do not retry together.
fn retry_wait(base: Duration, max: Duration, failures: u32, random: u64) -> Duration {
    let doubled = base
        .checked_mul(
            1u32.checked_shl(failures.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
        .unwrap_or(max)
        .min(max);
    let fraction = random as f64 / u64::MAX as f64;
    doubled - (doubled / 2).mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{MAX_PART_BYTES, MAX_PART_UPDATES, inventory_text, pack, retry_wait};

    #[test]
    fn a_large_catalog_is_reported_in_parts_the_server_takes() {
        let line = |n: usize| format!("{{\"n\":{n}}}");
        let parts = pack(
            (0..25_001).map(line).collect(),
            MAX_PART_UPDATES,
            MAX_PART_BYTES,
        );
        let sizes: Vec<usize> = parts
            .iter()
            .map(|part| {
                serde_json::from_str::<Vec<serde_json::Value>>(part)
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(sizes, [10_000, 10_000, 5_001]);
        // Long lines: the byte bound cuts first.
        let long = "x".repeat(1_000);
        let parts = pack(
            (0..10).map(|_| format!("\"{long}\"")).collect(),
            MAX_PART_UPDATES,
            3_000,
        );
        assert_eq!(parts.len(), 5);
        assert!(parts.iter().all(|part| part.len() <= 3_000));
        assert_eq!(pack(Vec::new(), 10, 100), ["[]"]);
    }

    #[test]
    fn waits_double_up_to_the_maximum_with_jitter_in_the_upper_half() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(10));
        assert_eq!(retry_wait(base, max, 1, 0), base);
        assert_eq!(retry_wait(base, max, 4, 0), Duration::from_millis(800));
        assert_eq!(retry_wait(base, max, 40, 0), max);
        assert_eq!(retry_wait(base, max, u32::MAX, 0), max);
        assert_eq!(retry_wait(base, max, 1, u64::MAX), base / 2);
        let jittered = retry_wait(base, max, 3, u64::MAX / 2);
        assert!(jittered >= Duration::from_millis(200) && jittered <= Duration::from_millis(400));
    }

    #[test]
    fn inventory_texts_are_what_the_server_takes() {
        assert_eq!(
            inventory_text("Debian\u{1b}[31m 12\n").unwrap(),
            "Debian[31m 12"
        );
        assert_eq!(inventory_text(&"x".repeat(300)).unwrap().len(), 256);
        assert_eq!(inventory_text(" \t"), None);
    }
}
