//! The update (WUA's `IUpdate`) and its per-machine state.
//!
//! [`Update`] is what a catalog says about one revision; [`UpdateState`] is
//! what one machine knows about it. The agent keeps them apart: the first is
//! shared by every machine, the second is that machine's alone.
//!
//! JSON field names are WUA's property names in camelCase (`updateId`,
//! `kbArticleIds`, `canRequestUserInput`). An `Update` leaves out what is
//! empty, false, zero or the default behaviour; readers take a missing field
//! as that default; `docs/update.schema.json` is the
//! committed schema, and a test keeps it equal to these types.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::enums::{DeploymentAction, InstallationImpact, InstallationRebootBehavior, UpdateType};

/// An update's identity: the same `update_id` across revisions, a new
/// `revision_number` for each.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct UpdateIdentity {
    /// WUA's `UpdateID`: a GUID, stable across revisions.
    pub update_id: Uuid,
    /// WUA's `RevisionNumber`.
    pub revision_number: i32,
}

impl fmt::Display for UpdateIdentity {
    /// `<update id>.<revision>`, as WUA's logs print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.update_id, self.revision_number)
    }
}

/// A category an update belongs to: a product, a product family or a
/// classification (WUA's `ICategory`, without its child links).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Category {
    /// WUA's `CategoryID`.
    pub id: Uuid,
    /// The display name.
    pub name: String,
    /// WUA's category type: `Product`, `ProductFamily`, `UpdateClassification`, …
    #[serde(rename = "type")]
    pub category_type: String,
    /// The parent category, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Uuid>,
}

/// The Microsoft Security Response Center rating (`MsrcSeverity`); absent
/// for updates that are not security updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum MsrcSeverity {
    /// Critical.
    Critical,
    /// Important.
    Important,
    /// Moderate.
    Moderate,
    /// Low.
    Low,
}

/// How installing (or uninstalling) an update behaves (`IInstallationBehavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallationBehavior {
    /// The installer may ask the user something. Such an update cannot be
    /// installed without an interactive user (`WU_E_NO_INTERACTIVE_USER`).
    #[serde(default)]
    pub can_request_user_input: bool,
    /// How the installation affects the machine.
    #[serde(default = "default_impact")]
    pub impact: InstallationImpact,
    /// Whether a restart follows.
    #[serde(default = "default_reboot_behavior")]
    pub reboot_behavior: InstallationRebootBehavior,
    /// The installer needs the network while it runs.
    #[serde(default)]
    pub requires_network_connectivity: bool,
}

/// For `skip_serializing_if`: sizes of zero are left out of JSON.
fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn default_impact() -> InstallationImpact {
    InstallationImpact::Normal
}

fn default_reboot_behavior() -> InstallationRebootBehavior {
    InstallationRebootBehavior::NeverReboots
}

impl InstallationBehavior {
    /// Whether this is the default behaviour, which JSON leaves out.
    pub fn is_default(&self) -> bool {
        *self == InstallationBehavior::default()
    }
}

impl Default for InstallationBehavior {
    /// Quiet, normal impact, no restart, no network.
    fn default() -> Self {
        InstallationBehavior {
            can_request_user_input: false,
            impact: default_impact(),
            reboot_behavior: default_reboot_behavior(),
            requires_network_connectivity: false,
        }
    }
}

/// A SHA-256 digest; lower-case hex in JSON and text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sha256Digest(#[serde(with = "hex::serde")] pub [u8; 32]);

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl FromStr for Sha256Digest {
    type Err = hex::FromHexError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut digest = [0; 32];
        hex::decode_to_slice(text, &mut digest)?;
        Ok(Sha256Digest(digest))
    }
}

impl JsonSchema for Sha256Digest {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Sha256Digest".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A SHA-256 digest in lower-case hex.",
            "type": "string",
            "pattern": "^[0-9a-f]{64}$"
        })
    }
}

/// One content file of an update (WUA's `IUpdateDownloadContent`, with the
/// size and digest the agent verifies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownloadContent {
    /// The file's name in the update's content directory.
    pub file_name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256 digest.
    pub sha256: Sha256Digest,
}

/// One revision of an update, as its catalog describes it (`IUpdate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Update {
    /// `Identity`: UpdateID and RevisionNumber.
    pub identity: UpdateIdentity,
    /// `Title`.
    pub title: String,
    /// `Description`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// `KBArticleIDs`, without the "KB" prefix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kb_article_ids: Vec<String>,
    /// `Categories`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<Category>,
    /// `Type`.
    #[serde(rename = "type")]
    pub update_type: UpdateType,
    /// `MsrcSeverity`; absent when not rated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msrc_severity: Option<MsrcSeverity>,
    /// `CveIDs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cve_ids: Vec<String>,
    /// `SecurityBulletinIDs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_bulletin_ids: Vec<String>,
    /// `SupportUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_url: Option<String>,
    /// `ReleaseNotes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_notes: Option<String>,
    /// `DeploymentAction`.
    pub deployment_action: DeploymentAction,
    /// `Deadline`: when the update must be installed, if ever (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub deadline: Option<Timestamp>,
    /// `IsMandatory`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_mandatory: bool,
    /// `BrowseOnly`: optional, shown but not selected by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub browse_only: bool,
    /// `AutoSelectOnWebSites`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_select_on_web_sites: bool,
    /// `SupersededUpdateIDs`: updates this one replaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded_update_ids: Vec<Uuid>,
    /// `BundledUpdates`, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bundled_updates: Vec<UpdateIdentity>,
    /// `InstallationBehavior`.
    #[serde(default, skip_serializing_if = "InstallationBehavior::is_default")]
    pub installation_behavior: InstallationBehavior,
    /// `UninstallationBehavior`; absent when the update cannot be uninstalled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uninstallation_behavior: Option<InstallationBehavior>,
    /// `EulaText`; absent when the update has no licence to accept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eula_text: Option<String>,
    /// The content files (`DownloadContents`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub download_contents: Vec<DownloadContent>,
    /// `MinDownloadSize` in bytes: the least a download of it can fetch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_download_size: u64,
    /// `MaxDownloadSize` in bytes: all of its content.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_download_size: u64,
}

/// What one machine knows about an update (the state parts of `IUpdate`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateState {
    /// `IsInstalled`: installed on this machine.
    #[serde(default)]
    pub is_installed: bool,
    /// `IsHidden`: an administrator hid it from default searches.
    #[serde(default)]
    pub is_hidden: bool,
    /// `IsDownloaded`: all of its content is in the cache, verified.
    #[serde(default)]
    pub is_downloaded: bool,
    /// `EulaAccepted`: its licence has been accepted here (true when it has none).
    #[serde(default)]
    pub eula_accepted: bool,
    /// `RebootRequired`: a restart is needed to finish its install or uninstall.
    #[serde(default)]
    pub reboot_required: bool,
    /// `IsPresent`: installed for at least one product.
    #[serde(default)]
    pub is_present: bool,
    /// WUA's `IsAssigned` criterion: meant for automatic installation here.
    #[serde(default)]
    pub is_assigned: bool,
}
