//! A service's catalog at one version.

use std::collections::HashSet;

use jiff::Timestamp;
use openwua_model::update::DownloadContent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::CatalogError;
use crate::revision::{Revision, check_file_name};

/// The newest snapshot format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Every revision a service publishes, at one version. Signed as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Snapshot {
    /// The format of this document ([`FORMAT_VERSION`]).
    pub format: u32,
    /// `ServiceID` of the publishing service.
    pub service_id: Uuid,
    /// The service's display name.
    pub service_name: String,
    /// Increases with every publication; the agent refuses to go back.
    pub version: u64,
    /// When it was made (`IssueDate`).
    pub created: Timestamp,
    /// After this the agent refuses it (`ExpirationDate`).
    pub expires: Timestamp,
    /// The revisions, one per `UpdateID`.
    pub revisions: Vec<Revision>,
}

impl Snapshot {
    /// Checks what the types cannot: the format, one revision per update,
    /// content lists that agree, content file names that are plain names,
    /// and expiry after creation.
    pub fn validate(&self) -> Result<(), CatalogError> {
        check_format(self.format)?;
        if self.expires <= self.created {
            return Err(CatalogError::Malformed(format!(
                "expires ({}) is not after created ({})",
                self.expires, self.created
            )));
        }
        validate_revisions(&self.revisions)
    }

    /// Refuses a snapshot that has expired at `now`.
    pub fn check_not_expired(&self, now: Timestamp) -> Result<(), CatalogError> {
        if now >= self.expires {
            return Err(CatalogError::Stale(format!(
                "catalog version {} of service {} expired at {}",
                self.version, self.service_id, self.expires
            )));
        }
        Ok(())
    }
}

/// Refuses a format this build does not read, and format 0.
pub(crate) fn check_format(format: u32) -> Result<(), CatalogError> {
    if format > FORMAT_VERSION {
        return Err(CatalogError::FormatTooNew {
            found: format,
            supported: FORMAT_VERSION,
        });
    }
    if format == 0 {
        return Err(CatalogError::Malformed("format 0 does not exist".into()));
    }
    Ok(())
}

/// Checks a list of revisions as a snapshot carries them: one per update,
/// content file names that are plain names, and content lists that agree.
pub(crate) fn validate_revisions(revisions: &[Revision]) -> Result<(), CatalogError> {
    let mut seen = HashSet::with_capacity(revisions.len());
    for revision in revisions {
        let identity = revision.update.identity;
        if !seen.insert(identity.update_id) {
            return Err(CatalogError::Malformed(format!(
                "update {} appears more than once",
                identity.update_id
            )));
        }
        // The agent stages files under these names, as root.
        for file in &revision.content {
            check_file_name(&file.file_name).map_err(|reason| {
                CatalogError::Malformed(format!("update {identity}: content file {reason}"))
            })?;
        }
        let listed: Vec<DownloadContent> = revision
            .content
            .iter()
            .map(|file| DownloadContent {
                file_name: file.file_name.clone(),
                size: file.size,
                sha256: file.sha256,
            })
            .collect();
        if listed != revision.update.download_contents {
            return Err(CatalogError::Malformed(format!(
                "update {identity}: content files differ from downloadContents"
            )));
        }
    }
    Ok(())
}
