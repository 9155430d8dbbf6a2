//! Debian's repository formats, and the mapping of a machine's apt state to
//! WUA updates (`docs/apt.md`).
//!
//! Skeleton of issue 13: the entry point the agent's apt service calls.
//! The parsers and the mapping fill it in.

#![deny(missing_docs)]

use std::path::{Path, PathBuf};

use openwua_catalog::revision::Revision;
use openwua_model::hresult::{HResult, WU_E_METADATA_NO_VERIFICATION_DATA};

/// Where apt and dpkg keep what the apt service reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptPaths {
    /// apt's `Dir` (`/` for the machine's own): `etc/apt/sources.list`,
    /// `etc/apt/sources.list.d/`, `var/lib/apt/lists/`,
    /// `var/cache/apt/archives/` beneath it.
    pub root: PathBuf,
    /// dpkg's database directory (its `status` file).
    pub dpkg_admindir: PathBuf,
}

impl AptPaths {
    /// apt beneath `root`, dpkg's database in `dpkg_admindir`.
    pub fn new(root: &Path, dpkg_admindir: &Path) -> Self {
        AptPaths {
            root: root.to_owned(),
            dpkg_admindir: dpkg_admindir.to_owned(),
        }
    }
}

/// One list file the scan read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSummary {
    /// The list file.
    pub path: PathBuf,
    /// Its Release's `Origin`.
    pub origin: String,
    /// Its Release's `Suite`.
    pub suite: String,
    /// How many binary packages it lists.
    pub packages: usize,
}

/// What one read of the machine's apt state offers.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineScan {
    /// One revision per offered source-package version newer than what the
    /// machine has, in a deterministic order.
    pub revisions: Vec<Revision>,
    /// The lists read.
    pub lists: Vec<ListSummary>,
}

/// Why the machine's apt state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AptError {
    /// A list apt did not verify (no Release beside it, a digest that does
    /// not match, or past `Valid-Until`).
    #[error("{path}: {reason}")]
    Unverified {
        /// The list file.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
}

impl AptError {
    /// WUA's code for the error.
    pub fn hresult(&self) -> HResult {
        match self {
            AptError::Unverified { .. } => WU_E_METADATA_NO_VERIFICATION_DATA,
        }
    }
}

/// Reads the lists apt has downloaded and verified, and dpkg's status, and
/// maps them to updates. Blocking; never talks to the network.
pub fn scan_machine(paths: &AptPaths, now: jiff::Timestamp) -> Result<MachineScan, AptError> {
    let _ = (paths, now);
    Ok(MachineScan {
        revisions: Vec::new(),
        lists: Vec::new(),
    })
}
