//! Air-gapped sites (`docs/server.md`, "Air gap"): what is approved for a
//! group, exported as a signed offline scan package, and the reports of
//! the machines that imported it, carried back and imported.
//!
//! - `POST /api/v1/exports` (admin): the group's full snapshot, as a sync
//!   would send it (deadlines, Install and Uninstall approvals), signed
//!   with the server's key under the group's export serviceId
//!   ([`export_service_id`]); `wua-server export` makes the package of it
//!   ([`export_package`]), with the content when asked.
//! - `POST /api/v1/reports/import` (admin): one part of a report file that
//!   `wua export-reports` wrote on the disconnected machine. It is checked
//!   and stored by the reports endpoint's own code (`reports::ingest`), for
//!   the machine's offline computer ([`offline_computer_id`]), made in the
//!   exported group at its first import. `wua-server import-reports`
//!   ([`import_reports`]) sends each part of a file.
//!
//! A report file is not signed (a disconnected agent holds no key the
//! server knows): what stands between a forged file and the store is the
//! admin who imports it, the export serviceId it must name, the computer
//! it can reach (only the offline computer of the machine ID it names,
//! never a computer that registered online), the sequence (an older file
//! changes nothing) and the reports endpoint's bounds.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use openwua_catalog::package;
use openwua_catalog::revision::ContentFile;
use openwua_catalog::signing::PublicKey;
use openwua_catalog::snapshot::{FORMAT_VERSION, Snapshot};
use openwua_catalog::sync::{Response as SyncResponse, ResponseKind, SignedResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::{Shared, read_json, require_admin, truncate};
use crate::client::Client;
use crate::error::{ErrorBody, ServerError};
use crate::fleet::{NewComputer, check_group_name};
use crate::fleet_api::{MAX_ADMIN_BYTES, RegisterRequest, check_registration, offered_revision};
use crate::reports::{MAX_REPORT_BYTES, ReportRequest, ingest};
use crate::setup::token_hash;

/// How long an exported package is valid by default, in days: a site
/// visited monthly imports the next one before this one lapses.
pub const DEFAULT_LIFETIME_DAYS: u32 = 45;
/// The longest an exported package may be valid, in days.
pub const MAX_LIFETIME_DAYS: u32 = 366;
/// The largest report file `import-reports` reads: 32 parts of 4 MiB.
pub const MAX_REPORT_FILE_BYTES: u64 = 128 << 20;
/// The `format` of a report file this build writes and reads.
pub const REPORT_FILE_FORMAT: u32 = 1;

/// The serviceId of `group`'s offline export by the server `service_id`:
/// stable, so a later export of the group is the same service to an
/// agent, and apart from the server's own, so an export can never pass
/// for a sync answer of the online service.
pub fn export_service_id(service_id: Uuid, group: &str) -> Uuid {
    let mut name = b"openwua-offline-export\0".to_vec();
    name.extend_from_slice(group.as_bytes());
    Uuid::new_v5(&service_id, &name)
}

/// The computer that stands for the disconnected machine `machine_id` at
/// the server `service_id`: every import from that machine, of any
/// group's export, reaches this one computer, and no other.
pub fn offline_computer_id(service_id: Uuid, machine_id: &str) -> Uuid {
    let mut name = b"openwua-offline-computer\0".to_vec();
    name.extend_from_slice(machine_id.as_bytes());
    Uuid::new_v5(&service_id, &name)
}

/// `POST /api/v1/exports`'s body.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportRequest {
    /// The group whose approvals (its own and inherited) are exported.
    pub group: String,
    /// Days the package is valid: 1 to 366 (default 45).
    #[serde(default)]
    pub lifetime_days: Option<u32>,
    /// Export even when nothing is approved for the group: the empty
    /// catalog withdraws what the site holds.
    #[serde(default)]
    pub allow_empty: bool,
}

/// The group's catalog, signed for an offline package: the revisions of
/// the updates approved for Install or Uninstall for it, as its
/// computers' sync would send them, under the group's export serviceId;
/// its version is the export time in milliseconds, so each export is newer
/// than the last.
#[utoipa::path(post, path = "/api/v1/exports", request_body = ExportRequest,
    security(("admin" = [])),
    responses(
        (status = 200, content_type = "application/octet-stream",
            description = "one openwua_catalog::sync frame holding a signed snapshot (docs/catalog.md)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such group"),
        (status = 409, body = ErrorBody, description = "nothing is approved for the group")))]
pub(crate) async fn export(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ServerError> {
    require_admin(&state, &headers).await?;
    let request: ExportRequest = read_json(&headers, body, MAX_ADMIN_BYTES).await?;
    check_group_name(&request.group)
        .map_err(|why| ServerError::bad_request(why, truncate(&request.group).to_owned()))?;
    let days = request.lifetime_days.unwrap_or(DEFAULT_LIFETIME_DAYS);
    if !(1..=MAX_LIFETIME_DAYS).contains(&days) {
        return Err(ServerError::bad_request(
            format!("lifetimeDays runs from 1 to {MAX_LIFETIME_DAYS}"),
            days.to_string(),
        ));
    }
    let groups = state.store.list_groups().await?;
    if !groups.iter().any(|group| group.name == request.group) {
        return Err(ServerError::not_found(
            "no such group; `wua-server groups list` shows them",
            format!("{:?}", truncate(&request.group)),
        ));
    }
    let view = state.store.sync_view(&request.group).await?;
    if view.revisions.is_empty() && !request.allow_empty {
        return Err(ServerError::conflict(
            "nothing is approved for Install or Uninstall for this group (its own approvals \
             or inherited): approve updates first, or export with --allow-empty to withdraw \
             everything the site holds",
            format!("{:?}", truncate(&request.group)),
        ));
    }
    let shared = std::sync::Arc::clone(&state);
    let frame = tokio::task::spawn_blocking(move || {
        let now = Timestamp::now();
        let mut revisions = view
            .revisions
            .into_iter()
            .map(offered_revision)
            .collect::<Result<Vec<_>, _>>()?;
        revisions.sort_by_key(|revision| revision.update.identity.update_id);
        let snapshot = Snapshot {
            format: FORMAT_VERSION,
            service_id: export_service_id(shared.service_id, &request.group),
            service_name: format!("{} (offline: {})", shared.service_name, request.group),
            version: u64::try_from(now.as_millisecond()).unwrap_or(0),
            created: now,
            expires: now + SignedDuration::from_hours(24 * i64::from(days)),
            revisions,
        };
        SignedResponse::sign_snapshot(&snapshot, &shared.signing_key)
            .map(|response| Bytes::from(response.to_bytes()))
            .map_err(|error| ServerError::internal(format!("signing the export: {error}")))
    })
    .await
    .map_err(|error| ServerError::internal(format!("the signing thread: {error}")))??;
    Ok(([(CONTENT_TYPE, "application/octet-stream")], frame).into_response())
}

/// `POST /api/v1/reports/import`'s body: one report part from a file that
/// `wua export-reports` wrote, with what attributes it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportRequest {
    /// The export's serviceId: names the group that was exported.
    pub service_id: Uuid,
    /// The machine's `/etc/machine-id`.
    pub machine_id: String,
    /// Its host name.
    pub hostname: String,
    /// The report, exactly as the agent would post it to a server.
    pub report: ReportRequest,
}

/// `POST /api/v1/reports/import`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportAck {
    /// The machine's offline computer.
    pub computer_id: Uuid,
    /// Its group.
    pub group: String,
    /// The highest sequence stored for it; above the part's, the part was
    /// older and changed nothing.
    pub acknowledged: u64,
}

/// Stores one part of an offline report file for the machine it names,
/// as the reports endpoint stores a computer's report; the machine's
/// offline computer is made, in the exported group, at its first import.
#[utoipa::path(post, path = "/api/v1/reports/import", request_body = ImportRequest,
    security(("admin" = [])),
    responses((status = 200, body = ImportAck), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "the serviceId is not an export of this server's"),
        (status = 413, body = ErrorBody)))]
pub(crate) async fn import_report(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<ImportAck>, ServerError> {
    require_admin(&state, &headers).await?;
    // The report's own bound, and room for what attributes it.
    let request: ImportRequest = read_json(&headers, body, MAX_REPORT_BYTES + 4096).await?;
    check_registration(&RegisterRequest {
        machine_id: request.machine_id.clone(),
        hostname: request.hostname.clone(),
        target_group: None,
        computer_id: None,
        secret: None,
    })?;
    let groups = state.store.list_groups().await?;
    let exported = groups
        .into_iter()
        .find(|group| export_service_id(state.service_id, &group.name) == request.service_id)
        .ok_or_else(|| {
            ServerError::not_found(
                "this server exported no group as that service: the file comes from another \
                 server's export, or was altered",
                request.service_id.to_string(),
            )
        })?;
    let computer_id = offline_computer_id(state.service_id, &request.machine_id);
    let known = state.store.computer(computer_id).await?;
    let group = match known {
        Some(computer) => computer.group,
        None => {
            // A secret nobody holds: the offline computer is reached by
            // imports only, never by a sync or a report of its own.
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret)
                .map_err(|error| ServerError::internal(format!("no random source: {error}")))?;
            let added = state
                .store
                .add_computer(NewComputer {
                    computer_id,
                    secret_sha256: token_hash(&hex::encode(secret)),
                    machine_id: request.machine_id.clone(),
                    hostname: request.hostname.clone(),
                    target_group: Some(exported.name),
                    replaces_identity: false,
                })
                .await;
            match added {
                Ok(group) => group,
                // Another import of the same machine made it meanwhile.
                Err(error) => match state.store.computer(computer_id).await? {
                    Some(computer) => computer.group,
                    None => return Err(error.into()),
                },
            }
        }
    };
    let acknowledged = ingest(&state, computer_id, request.report).await?;
    Ok(axum::Json(ImportAck {
        computer_id,
        group,
        acknowledged,
    }))
}

/// A report file as `wua export-reports` writes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportFile {
    format: u32,
    service_id: Uuid,
    machine_id: String,
    hostname: String,
    reports: Vec<ReportRequest>,
}

/// What `wua-server export` wrote.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportSummary {
    /// The package's serviceId, which the agent registers.
    pub service_id: Uuid,
    /// Its catalog version.
    pub version: u64,
    /// Until when agents accept it.
    pub expires: Timestamp,
    /// The updates it offers.
    pub updates: usize,
    /// The content files it carries.
    pub content_files: usize,
    /// The key that signed it: what `wua services add-package --pubkey`
    /// takes.
    pub public_key: String,
}

/// `wua-server export`: asks the server to sign `group`'s catalog and
/// writes it to `out` as an offline scan package, with every content file
/// when `with_content` (fetched from the server, or from its content base,
/// each verified against the signed catalog before it is packed).
pub fn export_package(
    client: &Client,
    request: &ExportRequest,
    with_content: bool,
    out: &Path,
) -> anyhow::Result<ExportSummary> {
    let key: PublicKey = client.key()?.parse()?;
    let frame = client.export(request)?;
    let response = SignedResponse::from_bytes(&frame)?;
    if response.kind() != ResponseKind::Snapshot {
        anyhow::bail!(
            "the server answered the export with a {:?}",
            response.kind()
        );
    }
    // Checked here as the agent will check it, before anything is fetched.
    let SyncResponse::Snapshot(snapshot) = response.verify(&key)? else {
        anyhow::bail!("the server's export holds no snapshot");
    };
    let staging = tempfile::tempdir().context("a temporary directory for content")?;
    let mut payloads: Vec<(ContentFile, PathBuf)> = Vec::new();
    if with_content {
        let base = client.content_base()?;
        let mut fetched = HashSet::new();
        for file in snapshot
            .revisions
            .iter()
            .flat_map(|revision| &revision.content)
        {
            if !fetched.insert(file.sha256) {
                continue;
            }
            let path = staging.path().join(file.sha256.to_string());
            client.fetch_content(file, base.as_deref(), &path)?;
            payloads.push((file.clone(), path));
        }
    }
    let written = package::write_signed_package(
        response.payload(),
        response.signature(),
        &key,
        &payloads,
        out,
    )?;
    Ok(ExportSummary {
        service_id: written.service_id,
        version: written.version,
        expires: written.expires,
        updates: written.revisions.len(),
        content_files: payloads.len(),
        public_key: key.to_string(),
    })
}

/// What one part of a report file came to.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportedPart {
    /// The part's sequence.
    pub sequence: u64,
    /// Whether the server holds it (stored now, or at an earlier import
    /// of the same file); false when it held a newer report from the
    /// machine, and this part changed nothing.
    pub current: bool,
    /// The server's answer.
    pub ack: ImportAck,
}

/// `wua-server import-reports`: reads a report file (bounded) and sends
/// its parts in order.
pub fn import_reports(client: &Client, path: &Path) -> anyhow::Result<Vec<ImportedPart>> {
    let mut text = Vec::new();
    std::fs::File::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .take(MAX_REPORT_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    if text.len() as u64 > MAX_REPORT_FILE_BYTES {
        anyhow::bail!(
            "{} is over {MAX_REPORT_FILE_BYTES} bytes: not a report file `wua export-reports` wrote",
            path.display()
        );
    }
    let file: ReportFile = serde_json::from_slice(&text).with_context(|| {
        format!(
            "{} is not a report file `wua export-reports` wrote",
            path.display()
        )
    })?;
    if file.format != REPORT_FILE_FORMAT {
        anyhow::bail!(
            "{} is a report file of format {}; this wua-server reads format {REPORT_FILE_FORMAT}",
            path.display(),
            file.format
        );
    }
    if file.reports.is_empty() {
        anyhow::bail!("{} holds no report", path.display());
    }
    let mut imported = Vec::with_capacity(file.reports.len());
    for report in file.reports {
        let sequence = report.sequence;
        let ack = client.import_report(&ImportRequest {
            service_id: file.service_id,
            machine_id: file.machine_id.clone(),
            hostname: file.hostname.clone(),
            report,
        })?;
        imported.push(ImportedPart {
            sequence,
            current: ack.acknowledged == sequence,
            ack,
        });
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::{export_service_id, offline_computer_id};
    use uuid::Uuid;

    #[test]
    fn export_and_offline_ids_are_stable_and_apart() {
        let server = Uuid::from_u128(7);
        let other = Uuid::from_u128(8);
        assert_eq!(
            export_service_id(server, "Site"),
            export_service_id(server, "Site")
        );
        assert_ne!(
            export_service_id(server, "Site"),
            export_service_id(server, "Site2")
        );
        assert_ne!(
            export_service_id(server, "Site"),
            export_service_id(other, "Site")
        );
        assert_ne!(export_service_id(server, "Site"), server);
        assert_ne!(
            offline_computer_id(server, "ab"),
            offline_computer_id(other, "ab")
        );
        assert_ne!(
            offline_computer_id(server, "ab"),
            export_service_id(server, "ab")
        );
    }
}
