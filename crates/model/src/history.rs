//! One entry of the machine's update history (`IUpdateHistoryEntry`).

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::enums::{OperationResultCode, UpdateOperation};
use crate::hresult::HResult;
use crate::update::UpdateIdentity;

/// What happened to one update in one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// `Operation`.
    pub operation: UpdateOperation,
    /// `ResultCode`.
    pub result_code: OperationResultCode,
    /// `HResult`.
    pub hresult: HResult,
    /// `UnmappedResultCode`: the installer's own exit code, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmapped_result_code: Option<i32>,
    /// `Date`.
    #[schemars(with = "String")]
    pub date: Timestamp,
    /// `UpdateIdentity`.
    pub update_identity: UpdateIdentity,
    /// `Title`.
    pub title: String,
    /// `ClientApplicationID` of the caller.
    pub client_application_id: String,
    /// `ServiceID`.
    pub service_id: Uuid,
}

/// Machine-wide facts (`ISystemInformation` and the agent's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemInfo {
    /// `RebootRequired`: an installed update waits for a restart.
    pub reboot_required: bool,
    /// The agent's version.
    pub agent_version: String,
    /// The Varlink protocol version the agent speaks.
    pub protocol_version: u32,
    /// The default service, if one is registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_service_id: Option<Uuid>,
    /// How many updates the agent knows, over all services.
    pub update_count: u64,
    /// How many history entries it holds.
    pub history_count: u64,
}
