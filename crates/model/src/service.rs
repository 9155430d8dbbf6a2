//! A registered update service (`IUpdateService`).

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One update service the agent syncs from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInfo {
    /// `ServiceID`.
    pub service_id: Uuid,
    /// `Name`.
    pub name: String,
    /// `IsScanPackageService`: an offline scan package rather than a server.
    pub is_scan_package_service: bool,
    /// Where its catalog comes from: the package file or the server URL.
    pub source: String,
    /// The pinned signing key, as `ed25519:<hex>`.
    pub public_key: String,
    /// Where relative content URLs are fetched from (`http://…/`,
    /// `https://…/`, `file:///…/`). Absent: from the scan package itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_base: Option<String>,
    /// OpenWUA's `IsDefaultAUService`: searched when no service is named.
    pub is_default: bool,
    /// The catalog version last imported; absent before the first sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_version: Option<u64>,
    /// `IssueDate` of the catalog last imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub issue_date: Option<Timestamp>,
    /// `ExpirationDate` of the catalog last imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub expiration_date: Option<Timestamp>,
    /// When the agent last synced it successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub last_sync: Option<Timestamp>,
    /// How many update revisions its catalog holds.
    pub update_count: u64,
    /// What kind of service it is. Agents before the apt service did not
    /// send it: read as an update server, so look at
    /// `is_scan_package_service` too when talking to one.
    #[serde(default)]
    pub kind: ServiceKind,
    /// For an apt service: apt's root directory (`/` for the machine's
    /// own), beneath which its configuration, lists and cache live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apt_root: Option<String>,
}

/// Where a service's catalog comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ServiceKind {
    /// An update server (`wua-server`) this computer registered with.
    #[default]
    UpdateServer,
    /// An offline scan package (`IsScanPackageService`).
    ScanPackage,
    /// The Debian repositories the machine's apt already knows: their
    /// lists, as apt downloaded and verified them, read in place.
    Apt,
}

impl ServiceKind {
    /// The name the store and the interface use (`updateServer`,
    /// `scanPackage`, `apt`).
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::UpdateServer => "updateServer",
            ServiceKind::ScanPackage => "scanPackage",
            ServiceKind::Apt => "apt",
        }
    }
}

/// How status reports to one update server stand (`GetReportingState`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportingState {
    /// The update-server service.
    pub service_id: Uuid,
    /// The highest sequence the server acknowledged; 0 before the first.
    pub acknowledged: u64,
    /// Report parts waiting to be sent (the newest full state only).
    pub queued: u64,
    /// The sequence of the next part to send, while any waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sequence: Option<u64>,
    /// When the server last acknowledged a report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub last_sent: Option<Timestamp>,
    /// Why the last attempt to send failed, until one succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When that attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub last_error_time: Option<Timestamp>,
    /// When the agent tries again, while it waits out a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub next_attempt: Option<Timestamp>,
}
