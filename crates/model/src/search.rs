//! What a search returns (`ISearchResult`) and the options it takes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::enums::{OperationResultCode, ServerSelection};
use crate::hresult::HResult;
use crate::update::{Update, UpdateState};

/// `IUpdateSearcher`'s options that change what a search looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchOptions {
    /// `ServerSelection`: which service to search (`Default` is the
    /// machine's default service; `Others` needs `service_id`).
    #[serde(default = "default_server_selection")]
    pub server_selection: ServerSelection,
    /// `ServiceID`: the service to search when `server_selection` is `Others`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<Uuid>,
    /// `Online`: sync with the service before searching.
    #[serde(default)]
    pub online: bool,
    /// `IncludePotentiallySupersededUpdates`: keep updates that a newer
    /// applicable update replaces.
    #[serde(default)]
    pub include_potentially_superseded_updates: bool,
}

fn default_server_selection() -> ServerSelection {
    ServerSelection::Default
}

impl Default for SearchOptions {
    /// The default service, from the agent's store, without superseded updates.
    fn default() -> Self {
        SearchOptions {
            server_selection: ServerSelection::Default,
            service_id: None,
            online: false,
            include_potentially_superseded_updates: false,
        }
    }
}

/// One update as a search shows it: the revision, this machine's state of
/// it and the service it came from (`IUpdate`, whose properties WUA mixes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateEntry {
    /// What the catalog says about it.
    pub update: Update,
    /// What this machine knows about it.
    pub state: UpdateState,
    /// The service whose catalog holds it.
    pub service_id: Uuid,
}

/// Something a search wants the caller to know without failing it
/// (WUA's `ISearchResult.Warnings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchWarning {
    /// The condition, as a WUA code.
    pub hresult: HResult,
    /// What happened and what to do.
    pub message: String,
}

/// `ISearchResult`: the outcome and the updates found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchResult {
    /// `ResultCode`.
    pub result_code: OperationResultCode,
    /// `Updates`, in catalog order.
    pub updates: Vec<UpdateEntry>,
    /// `Warnings`.
    #[serde(default)]
    pub warnings: Vec<SearchWarning>,
}

/// Whether an update appears in this machine's searches, and why not when
/// it does not: OpenWUA's answer to "where is my update?" (`wua show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicabilityReport {
    /// Installed, or installable here with its prerequisites installed.
    pub applicable: bool,
    /// Applicable updates that supersede it: while there are any, searches
    /// leave it out unless they include superseded updates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded_by: Vec<Uuid>,
    /// Why it is not applicable, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One update with its applicability here (`GetUpdate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateDetails {
    /// The update, its state and its service.
    pub entry: UpdateEntry,
    /// Whether searches here see it.
    pub applicability: ApplicabilityReport,
    /// For an update of an apt service: its binary packages on this
    /// machine, and what its changelog fixes once downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apt: Option<AptUpdateDetails>,
}

/// An apt update's packages as this machine has them (`GetUpdate`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AptUpdateDetails {
    /// The binary packages the update installs or offers.
    pub packages: Vec<AptPackageVersions>,
    /// The suites (pockets) that offer it: `bookworm-security`, ….
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pockets: Vec<String>,
    /// The CVE IDs the downloaded packages' changelog entries name, newest
    /// entries first; empty until downloaded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cves: Vec<String>,
}

/// One binary package of an apt update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AptPackageVersions {
    /// The package name.
    pub name: String,
    /// Its architecture.
    pub architecture: String,
    /// The version dpkg has installed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_version: Option<String>,
    /// The version the update brings.
    pub version: String,
}
