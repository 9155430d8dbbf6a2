//! The one error type every agent operation returns: a WUA code and what
//! exactly went wrong.

use std::fmt;

use openwua_catalog::CatalogError;
use openwua_model::hresult::{HResult, WU_E_DS_INVALID, WU_E_UNEXPECTED};

/// A failure the caller sees: its HRESULT (name and advice come from the
/// model's catalog) and a detail about this occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentError {
    /// WUA's code.
    pub hresult: HResult,
    /// What exactly went wrong, for people.
    pub detail: String,
}

impl AgentError {
    /// An error with a code and a detail.
    pub fn new(hresult: HResult, detail: impl Into<String>) -> Self {
        AgentError {
            hresult,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.hresult, self.detail)
    }
}

impl std::error::Error for AgentError {}

impl From<CatalogError> for AgentError {
    fn from(error: CatalogError) -> Self {
        AgentError::new(error.hresult(), error.to_string())
    }
}

impl From<openwua_installer::InstallerError> for AgentError {
    fn from(error: openwua_installer::InstallerError) -> Self {
        AgentError::new(error.hresult, error.detail)
    }
}

impl From<rusqlite::Error> for AgentError {
    fn from(error: rusqlite::Error) -> Self {
        AgentError::new(WU_E_DS_INVALID, format!("store: {error}"))
    }
}

impl From<tokio::task::JoinError> for AgentError {
    fn from(error: tokio::task::JoinError) -> Self {
        AgentError::new(WU_E_UNEXPECTED, format!("worker task failed: {error}"))
    }
}

/// The agent's result type.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;
