//! What the store keeps of upstream repositories (`crate::upstream`):
//! their settings and last sync's state as JSON, and where each of their
//! updates' `.deb`s comes from, fetched only when an approval needs it.

use uuid::Uuid;

use super::{Store, StoreError};

/// One upstream as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUpstream {
    /// Its name.
    pub name: String,
    /// Its settings (`crate::upstream::UpstreamSpec`), as JSON.
    pub config_json: String,
    /// Its last sync's state (`crate::upstream::UpstreamState`), as JSON.
    pub state_json: String,
}

/// One `.deb` an upstream update installs, and where to fetch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamFile {
    /// The update it belongs to.
    pub update_id: Uuid,
    /// Its SHA-256 (lower-case hex), as the index gives it.
    pub sha256: String,
    /// Its size, as the index gives it.
    pub size: u64,
    /// Its URL at the upstream mirror.
    pub url: String,
}

impl Store {
    /// Adds an upstream; false if one of that name exists (nothing changes).
    pub async fn add_upstream(&self, upstream: StoredUpstream) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(store) => store.add_upstream(upstream).await,
            Store::Postgres(store) => store.add_upstream(upstream).await,
        }
    }

    /// Every upstream, by name.
    pub async fn upstreams(&self) -> Result<Vec<StoredUpstream>, StoreError> {
        match self {
            Store::Sqlite(store) => store.upstreams().await,
            Store::Postgres(store) => store.upstreams().await,
        }
    }

    /// Removes an upstream and its file sources (the updates it published
    /// stay); false if there was none.
    pub async fn remove_upstream(&self, name: &str) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(store) => store.remove_upstream(name.to_owned()).await,
            Store::Postgres(store) => store.remove_upstream(name).await,
        }
    }

    /// Records an upstream's state after a sync; false if it was removed
    /// meanwhile.
    pub async fn save_upstream_state(
        &self,
        name: &str,
        state_json: String,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(store) => store.save_upstream_state(name.to_owned(), state_json).await,
            Store::Postgres(store) => store.save_upstream_state(name, state_json).await,
        }
    }

    /// Records where `files` come from, in one transaction (files known
    /// already keep their row).
    pub async fn add_upstream_files(
        &self,
        upstream: &str,
        files: Vec<UpstreamFile>,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(store) => store.add_upstream_files(upstream.to_owned(), files).await,
            Store::Postgres(store) => store.add_upstream_files(upstream, files).await,
        }
    }

    /// The upstream files of updates some group has an `install` approval
    /// of, that the server does not hold yet: what "download on approval"
    /// fetches. One row per file.
    pub async fn approved_missing_files(&self) -> Result<Vec<UpstreamFile>, StoreError> {
        match self {
            Store::Sqlite(store) => store.approved_missing_files().await,
            Store::Postgres(store) => store.approved_missing_files().await,
        }
    }
}
