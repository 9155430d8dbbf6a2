//! The administrator's side: `wua-server publish`, `decline`, `updates`,
//! `groups`, `computers`, `approve` and `key` talk to a running server over its HTTP API, as any tool could.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use openwua_catalog::revision::{ContentFile, Revision};
use openwua_catalog::signing::PublicKey;
use openwua_catalog::{manifest, package};
use serde::de::DeserializeOwned;
use sha2::Digest;

use crate::api::{DeclineReport, KeyBody, PublishRequest, UpdateDetail};
use crate::content::ContentReport;
use crate::error::ErrorBody;
use crate::fleet::{Approval, Computer, Group};
use crate::fleet_api::{ApprovalRequest, ChangeReport, MoveRequest, NewGroup, ServiceBody};
use crate::reports::{
    ComputerSummary, Failure, GroupFilter, GroupSummary, UpdateComputers, UpdateComputersQuery,
    UpdateSummary,
};
use crate::store::{PublishReport, StoredRevision};

/// The largest answer read from a server (a long updates list).
const MAX_ANSWER_BYTES: u64 = 256 << 20;

/// An error answer from the server: its status and JSON body.
#[derive(Debug, thiserror::Error)]
#[error("the server answered HTTP {status}: {} {}: {}{}", .body.hresult, .body.name, .body.message,
    if .body.detail.is_empty() { String::new() } else { format!(" ({})", .body.detail) })]
pub struct ApiFailure {
    /// The HTTP status.
    pub status: u16,
    /// What the server said.
    pub body: ErrorBody,
}

/// A connection to one server, with or without the admin token.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

/// What `publish` reads: a manifest directory or a scan package.
pub enum Source {
    /// A service directory of TOML manifests (`docs/catalog.md`).
    Manifests(PathBuf),
    /// A scan package, verified with the key that signed it.
    Package(PathBuf, PublicKey),
}

impl Client {
    /// A client for the server at `base` (`http://127.0.0.1:8530`).
    pub fn new(base: &str, token: Option<String>) -> Self {
        Client::with_roots(base, token, ureq::tls::RootCerts::WebPki)
    }

    /// A client that trusts the CA certificates in `ca_file` (PEM), for a
    /// server whose certificate the operator's own CA signed.
    pub fn trusting(base: &str, token: Option<String>, ca_file: &Path) -> anyhow::Result<Self> {
        let pem =
            std::fs::read(ca_file).with_context(|| format!("reading {}", ca_file.display()))?;
        let mut roots = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            if let ureq::tls::PemItem::Certificate(certificate) =
                item.with_context(|| format!("{}: not PEM", ca_file.display()))?
            {
                roots.push(certificate);
            }
        }
        if roots.is_empty() {
            anyhow::bail!("{}: no certificate in it", ca_file.display());
        }
        Ok(Client::with_roots(
            base,
            token,
            ureq::tls::RootCerts::new_with_certs(&roots),
        ))
    }

    fn with_roots(base: &str, token: Option<String>, roots: ureq::tls::RootCerts) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
            .build()
            .into();
        Client {
            agent,
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorization(&self) -> anyhow::Result<String> {
        let token = self
            .token
            .as_deref()
            .context("this needs the admin token: --token-file, or the data dir's admin.token")?;
        Ok(format!("Bearer {token}"))
    }

    fn answer<T: DeserializeOwned>(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<T> {
        let mut response = response.with_context(|| format!("reaching {}", self.base))?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .context("reading the server's answer")?;
        if status.is_success() {
            return serde_json::from_str(&text)
                .context("the server's answer is not the JSON expected");
        }
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => Err(ApiFailure {
                status: status.as_u16(),
                body,
            }
            .into()),
            Err(_) => anyhow::bail!("the server answered HTTP {status} without an error body"),
        }
    }

    /// The server's public key.
    pub fn key(&self) -> anyhow::Result<String> {
        let body: KeyBody = self.answer(self.agent.get(self.url("/api/v1/key")).call())?;
        Ok(body.key)
    }

    /// Uploads one content file (the server skips what it holds).
    pub fn upload(&self, file: &ContentFile, path: &Path) -> anyhow::Result<ContentReport> {
        let url = self.url(&format!("/api/v1/content/{}", file.sha256));
        let held = self
            .agent
            .head(&url)
            .call()
            .with_context(|| format!("reaching {}", self.base))?;
        if held.status().is_success() {
            return Ok(ContentReport {
                sha256: file.sha256.to_string(),
                size: file.size,
                stored: false,
            });
        }
        let reader = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let request = self
            .agent
            .put(&url)
            .header("authorization", self.authorization()?)
            .header("content-type", "application/octet-stream")
            .send(ureq::SendBody::from_owned_reader(reader));
        self.answer(request)
            .with_context(|| format!("uploading {}", path.display()))
    }

    /// Publishes revisions whose content is uploaded.
    pub fn publish_revisions(&self, revisions: Vec<Revision>) -> anyhow::Result<PublishReport> {
        let body = serde_json::to_vec(&PublishRequest { revisions })?;
        let request = self
            .agent
            .post(self.url("/api/v1/updates"))
            .header("authorization", self.authorization()?)
            .header("content-type", "application/json")
            .send(&body[..]);
        self.answer(request)
    }

    /// The server's content base URL, when its content lives there.
    pub fn content_base(&self) -> anyhow::Result<Option<String>> {
        let body: ServiceBody = self.answer(self.agent.get(self.url("/api/v1/service")).call())?;
        Ok(body.content_base)
    }

    /// Checks, from this machine, that `file` is at the content base with
    /// its size (HEAD): a server with a content base stores none, so this
    /// is where a file missing from it shows before agents fail on it.
    pub fn check_at_base(&self, base: &str, file: &ContentFile) -> anyhow::Result<()> {
        let url = if file.url.contains("://") {
            file.url.clone()
        } else {
            format!("{base}{}", file.url)
        };
        let response = self
            .agent
            .head(&url)
            .call()
            .with_context(|| format!("reaching {url}"))?;
        let size = response
            .headers()
            .get("content-length")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if !response.status().is_success() || size != Some(file.size) {
            anyhow::bail!(
                "{} ({} bytes) is not at {url} (HTTP {}, {} bytes): the server's content \
                 lives at its content base; put the file there before publishing",
                file.file_name,
                file.size,
                response.status().as_u16(),
                size.map_or_else(|| "no".to_owned(), |size| size.to_string()),
            );
        }
        Ok(())
    }

    /// Reads `source`, uploads its content (or, for a server with a content
    /// base, checks that it is there), then publishes its revisions.
    pub fn publish(&self, source: &Source) -> anyhow::Result<PublishReport> {
        let mut uploaded = HashSet::new();
        let base = self.content_base()?;
        match source {
            Source::Manifests(dir) => {
                let service = manifest::load_service_dir(dir)?;
                for (file, path) in &service.payloads {
                    if uploaded.insert(file.sha256) {
                        match &base {
                            Some(base) => self.check_at_base(base, file)?,
                            None => {
                                self.upload(file, path)?;
                            }
                        }
                    }
                }
                self.publish_revisions(service.revisions)
            }
            Source::Package(path, key) => {
                let verified = package::open_package(path, key)?;
                if let Some(base) = &base {
                    for file in verified.snapshot.revisions.iter().flat_map(|r| &r.content) {
                        if uploaded.insert(file.sha256) {
                            self.check_at_base(base, file)?;
                        }
                    }
                    return self.publish_revisions(verified.snapshot.revisions);
                }
                let carried: HashSet<_> = verified.content.iter().copied().collect();
                let staging = tempfile::tempdir().context("a temporary directory")?;
                for file in verified.snapshot.revisions.iter().flat_map(|r| &r.content) {
                    if carried.contains(&file.sha256) && uploaded.insert(file.sha256) {
                        let staged = staging.path().join(file.sha256.to_string());
                        package::extract_content(path, &file.sha256, &staged)?;
                        self.upload(file, &staged)?;
                        std::fs::remove_file(&staged)?;
                    }
                }
                self.publish_revisions(verified.snapshot.revisions)
            }
        }
    }

    /// The server's signed export of a group's catalog: one sync frame
    /// (`airgap`), bounded by the largest frame an agent reads.
    pub fn export(&self, request: &crate::airgap::ExportRequest) -> anyhow::Result<Vec<u8>> {
        let body = serde_json::to_vec(request)?;
        let mut response = self
            .agent
            .post(self.url("/api/v1/exports"))
            .header("authorization", self.authorization()?)
            .header("content-type", "application/json")
            .send(&body[..])
            .with_context(|| format!("reaching {}", self.base))?;
        if !response.status().is_success() {
            return self.answer(Ok(response));
        }
        let mut frame = Vec::new();
        response
            .body_mut()
            .with_config()
            .limit(openwua_catalog::sync::MAX_RESPONSE_BYTES)
            .reader()
            .read_to_end(&mut frame)
            .context("reading the server's export")?;
        Ok(frame)
    }

    /// Imports one part of an air-gapped machine's report file.
    pub fn import_report(
        &self,
        request: &crate::airgap::ImportRequest,
    ) -> anyhow::Result<crate::airgap::ImportAck> {
        self.admin_post("/api/v1/reports/import", request)
    }

    /// Fetches the content file `file` to `dest`, from `base` (the
    /// server's content base) when it has one, else from the server,
    /// reading no more than its size and checking its SHA-256.
    pub fn fetch_content(
        &self,
        file: &ContentFile,
        base: Option<&str>,
        dest: &Path,
    ) -> anyhow::Result<()> {
        let url = if file.url.contains("://") {
            file.url.clone()
        } else {
            match base {
                Some(base) => format!("{base}{}", file.url),
                None => self.url(&format!("/api/v1/content/{}", file.sha256)),
            }
        };
        let mut response = self
            .agent
            .get(&url)
            .call()
            .with_context(|| format!("reaching {url}"))?;
        if !response.status().is_success() {
            anyhow::bail!(
                "{} ({}): {url} answered HTTP {}",
                file.file_name,
                file.sha256,
                response.status().as_u16()
            );
        }
        let mut reader = response
            .body_mut()
            .with_config()
            .limit(file.size.saturating_add(1))
            .reader();
        let mut out = File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
        let mut hasher = sha2::Sha256::new();
        let mut buffer = vec![0; 1 << 16];
        let mut total = 0u64;
        loop {
            let read = reader
                .read(&mut buffer)
                .with_context(|| format!("reading {url}"))?;
            if read == 0 {
                break;
            }
            total += read as u64;
            hasher.update(&buffer[..read]);
            out.write_all(&buffer[..read])
                .with_context(|| format!("writing {}", dest.display()))?;
        }
        let digest: [u8; 32] = hasher.finalize().into();
        if total != file.size || digest != file.sha256.0 {
            anyhow::bail!(
                "{url} is not {} ({} bytes, SHA-256 {}): {total} bytes of other data",
                file.file_name,
                file.size,
                file.sha256
            );
        }
        Ok(())
    }

    /// Declines an update.
    pub fn decline(&self, update_id: &str) -> anyhow::Result<DeclineReport> {
        let request = self
            .agent
            .post(self.url(&format!("/api/v1/updates/{update_id}/decline")))
            .header("authorization", self.authorization()?)
            .send_empty();
        self.answer(request)
    }

    /// Every update's current revision.
    pub fn list_updates(&self) -> anyhow::Result<Vec<StoredRevision>> {
        let request = self
            .agent
            .get(self.url("/api/v1/updates"))
            .header("authorization", self.authorization()?)
            .call();
        self.answer(request)
    }

    /// One update's revisions and current JSON (as JSON values: the client
    /// prints them).
    pub fn show_update(&self, update_id: &str) -> anyhow::Result<serde_json::Value> {
        let request = self
            .agent
            .get(self.url(&format!("/api/v1/updates/{update_id}")))
            .header("authorization", self.authorization()?)
            .call();
        let detail: serde_json::Value = self.answer(request)?;
        // Checks the shape before anything is printed.
        let _: UpdateDetail = serde_json::from_value(detail.clone())
            .context("the server's answer is not an update")?;
        Ok(detail)
    }

    fn admin_get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let request = self
            .agent
            .get(self.url(path))
            .header("authorization", self.authorization()?)
            .call();
        self.answer(request)
    }

    fn admin_post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> anyhow::Result<T> {
        let body = serde_json::to_vec(body)?;
        let request = self
            .agent
            .post(self.url(path))
            .header("authorization", self.authorization()?)
            .header("content-type", "application/json")
            .send(&body[..]);
        self.answer(request)
    }

    /// Every computer group.
    pub fn list_groups(&self) -> anyhow::Result<Vec<Group>> {
        self.admin_get("/api/v1/groups")
    }

    /// Adds a group under `parent` ("All Computers" when `None`).
    pub fn add_group(&self, name: &str, parent: Option<&str>) -> anyhow::Result<ChangeReport> {
        self.admin_post(
            "/api/v1/groups",
            &NewGroup {
                name: name.to_owned(),
                parent: parent.map(str::to_owned),
            },
        )
    }

    /// Removes an empty group.
    pub fn remove_group(&self, name: &str) -> anyhow::Result<ChangeReport> {
        let request = self
            .agent
            .delete(self.url(&format!("/api/v1/groups/{}", path_segment(name))))
            .header("authorization", self.authorization()?)
            .call();
        self.answer(request)
    }

    /// Every registered computer.
    pub fn list_computers(&self) -> anyhow::Result<Vec<Computer>> {
        self.admin_get("/api/v1/computers")
    }

    /// One computer.
    pub fn show_computer(&self, computer_id: &str) -> anyhow::Result<Computer> {
        self.admin_get(&format!("/api/v1/computers/{}", path_segment(computer_id)))
    }

    /// Moves a computer to `group`.
    pub fn move_computer(&self, computer_id: &str, group: &str) -> anyhow::Result<ChangeReport> {
        self.admin_post(
            &format!("/api/v1/computers/{}/move", path_segment(computer_id)),
            &MoveRequest {
                group: group.to_owned(),
            },
        )
    }

    /// Sets a group's approval of an update.
    pub fn approve(
        &self,
        update_id: &str,
        approval: &ApprovalRequest,
    ) -> anyhow::Result<ChangeReport> {
        self.admin_post(
            &format!("/api/v1/updates/{}/approvals", path_segment(update_id)),
            approval,
        )
    }

    /// One update's approvals.
    pub fn approvals(&self, update_id: &str) -> anyhow::Result<Vec<Approval>> {
        self.admin_get(&format!(
            "/api/v1/updates/{}/approvals",
            path_segment(update_id)
        ))
    }
}

/// Status reports.
impl Client {
    /// Every update's counts of computers by state.
    pub fn updates_report(&self) -> anyhow::Result<Vec<UpdateSummary>> {
        self.admin_get("/api/v1/reports/updates")
    }

    /// One update's counts of computers by state.
    pub fn update_report(&self, update_id: &str) -> anyhow::Result<UpdateSummary> {
        self.admin_get(&format!(
            "/api/v1/reports/updates/{}",
            path_segment(update_id)
        ))
    }

    /// One page of the computers in some states for one update.
    pub fn update_computers(
        &self,
        update_id: &str,
        query: &UpdateComputersQuery,
    ) -> anyhow::Result<UpdateComputers> {
        self.admin_get(&format!(
            "/api/v1/reports/updates/{}/computers{}",
            path_segment(update_id),
            query_string(&[
                ("state", query.state.clone()),
                ("group", query.group.clone()),
                ("subgroups", query.subgroups.map(|on| on.to_string())),
                ("limit", query.limit.map(|n| n.to_string())),
                ("offset", query.offset.map(|n| n.to_string())),
            ])
        ))
    }

    /// Every computer's (or one group's) last sync, last report, inventory
    /// and counts by state.
    pub fn computers_report(&self, filter: &GroupFilter) -> anyhow::Result<Vec<ComputerSummary>> {
        self.admin_get(&format!("/api/v1/reports/computers{}", group_query(filter)))
    }

    /// Every Failed update on every computer (or one group's), newest first.
    pub fn failures_report(&self, filter: &GroupFilter) -> anyhow::Result<Vec<Failure>> {
        self.admin_get(&format!("/api/v1/reports/failures{}", group_query(filter)))
    }

    /// Per group: its computers and how many are up to date.
    pub fn groups_report(&self) -> anyhow::Result<Vec<GroupSummary>> {
        self.admin_get("/api/v1/reports/groups")
    }

    /// Runs maintenance now (or, with `dry_run`, says what it would do);
    /// answers when the run is over.
    pub fn run_maintenance(
        &self,
        dry_run: bool,
    ) -> anyhow::Result<crate::maintenance::MaintenanceRun> {
        self.admin_post(
            "/api/v1/maintenance/runs",
            &crate::maintenance::RunRequest { dry_run },
        )
    }

    /// The newest maintenance runs' records, newest first.
    pub fn maintenance_runs(
        &self,
        limit: u64,
    ) -> anyhow::Result<Vec<crate::maintenance::MaintenanceRun>> {
        self.admin_get(&format!("/api/v1/maintenance/runs?limit={limit}"))
    }
}

/// Upstream repositories.
impl Client {
    /// Every upstream.
    pub fn list_upstreams(&self) -> anyhow::Result<Vec<crate::upstream::UpstreamSummary>> {
        self.admin_get("/api/v1/upstreams")
    }

    /// Adds an upstream.
    pub fn add_upstream(
        &self,
        spec: &crate::upstream::UpstreamSpec,
    ) -> anyhow::Result<crate::upstream::UpstreamSummary> {
        self.admin_post("/api/v1/upstreams", spec)
    }

    /// Removes an upstream.
    pub fn remove_upstream(
        &self,
        name: &str,
    ) -> anyhow::Result<crate::upstream::api::RemovedUpstream> {
        let request = self
            .agent
            .delete(self.url(&format!("/api/v1/upstreams/{}", path_segment(name))))
            .header("authorization", self.authorization()?)
            .call();
        self.answer(request)
    }

    /// Syncs an upstream and waits for the report.
    pub fn sync_upstream(&self, name: &str) -> anyhow::Result<crate::upstream::SyncReport> {
        self.admin_post(
            &format!("/api/v1/upstreams/{}/sync", path_segment(name)),
            &serde_json::json!({}),
        )
    }
}

fn group_query(filter: &GroupFilter) -> String {
    query_string(&[
        ("group", filter.group.clone()),
        ("subgroups", filter.subgroups.map(|on| on.to_string())),
    ])
}

/// `?name=value&…` for the pairs that have a value, or nothing.
fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(name, value)| {
            value
                .as_deref()
                .map(|value| format!("{name}={}", path_segment(value)))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// `text` as one URL path segment: everything but unreserved characters
/// percent-encoded (group names have spaces).
fn path_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Automatic approval rules and rollouts.
impl Client {
    /// Every automatic approval rule.
    pub fn list_rules(&self) -> anyhow::Result<Vec<crate::rules::ApprovalRule>> {
        self.admin_get("/api/v1/rules")
    }

    /// One rule.
    pub fn show_rule(&self, name: &str) -> anyhow::Result<crate::rules::ApprovalRule> {
        self.admin_get(&format!("/api/v1/rules/{}", path_segment(name)))
    }

    /// Adds a rule, or replaces the one of the same name.
    pub fn add_rule(
        &self,
        rule: &crate::rules::ApprovalRule,
    ) -> anyhow::Result<crate::rules_api::RuleReport> {
        self.admin_post("/api/v1/rules", rule)
    }

    /// Removes a rule.
    pub fn remove_rule(&self, name: &str) -> anyhow::Result<crate::rules_api::RuleReport> {
        let request = self
            .agent
            .delete(self.url(&format!("/api/v1/rules/{}", path_segment(name))))
            .header("authorization", self.authorization()?)
            .call();
        self.answer(request)
    }

    /// Runs one rule, or every enabled rule, over the updates held now.
    pub fn run_rules(
        &self,
        request: &crate::rules_api::RunRequest,
    ) -> anyhow::Result<crate::rules_api::RuleRun> {
        self.admin_post("/api/v1/rules/run", request)
    }

    /// Starts a staged rollout of an update.
    pub fn start_rollout(
        &self,
        update_id: &str,
        plan: &crate::rollouts::RolloutPlan,
    ) -> anyhow::Result<crate::rollouts::Rollout> {
        self.admin_post(
            &format!("/api/v1/updates/{}/rollout", path_segment(update_id)),
            plan,
        )
    }

    /// Every rollout, with its progress.
    pub fn list_rollouts(&self) -> anyhow::Result<Vec<crate::rules_api::RolloutStatus>> {
        self.admin_get("/api/v1/rollouts")
    }

    /// One update's rollout.
    pub fn show_rollout(&self, update_id: &str) -> anyhow::Result<crate::rules_api::RolloutStatus> {
        self.admin_get(&format!("/api/v1/rollouts/{}", path_segment(update_id)))
    }

    /// Halts (`halt`) or resumes (`resume`) a rollout.
    pub fn move_rollout(
        &self,
        update_id: &str,
        verb: &str,
    ) -> anyhow::Result<crate::rules_api::RolloutStatus> {
        self.admin_post(
            &format!("/api/v1/rollouts/{}/{verb}", path_segment(update_id)),
            &serde_json::json!({}),
        )
    }
}
