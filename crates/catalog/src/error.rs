//! Why a catalog, package, key or manifest was refused.

use openwua_model::hresult::{
    HResult, WU_E_METADATA_BAD_SIGNATURE, WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW,
    WU_E_OL_INVALID_SCANFILE, WU_E_OL_NEWCLIENT_REQUIRED,
};

/// A refusal, with the WUA code the agent reports for it.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The package or snapshot cannot be read: damaged, truncated, not a
    /// package, or structurally invalid (`WU_E_OL_INVALID_SCANFILE`).
    #[error("invalid scan package: {0}")]
    Malformed(String),
    /// The package uses a format version newer than this build reads
    /// (`WU_E_OL_NEWCLIENT_REQUIRED`).
    #[error("catalog format {found} is newer than this agent reads (up to {supported})")]
    FormatTooNew {
        /// The format the package declares.
        found: u32,
        /// The newest format this build reads.
        supported: u32,
    },
    /// The signature does not verify against the pinned key
    /// (`WU_E_METADATA_BAD_SIGNATURE`).
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// The snapshot expired, or is older than the one already imported
    /// (`WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW`).
    #[error("stale catalog: {0}")]
    Stale(String),
    /// A manifest, key or payload file an author supplied is wrong.
    #[error("{0}")]
    Authoring(String),
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl CatalogError {
    /// The WUA code for this refusal.
    pub fn hresult(&self) -> HResult {
        match self {
            CatalogError::Malformed(_) | CatalogError::Authoring(_) | CatalogError::Io { .. } => {
                WU_E_OL_INVALID_SCANFILE
            }
            CatalogError::FormatTooNew { .. } => WU_E_OL_NEWCLIENT_REQUIRED,
            CatalogError::BadSignature(_) => WU_E_METADATA_BAD_SIGNATURE,
            CatalogError::Stale(_) => WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW,
        }
    }

    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        CatalogError::Io {
            context: context.into(),
            source,
        }
    }
}
