//! WSUS's "download on approval": an upstream update's `.deb`s are fetched
//! from the mirror only once some group has it approved for install, each
//! verified against the size and SHA-256 its index gave, then stored like
//! an upload and served by `GET /api/v1/content/{sha256}`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::api::AppState;
use crate::setup::UPLOAD_PREFIX;
use crate::store::upstreams::UpstreamFile;

use super::fetch;

/// How often the fetcher looks without being woken: files that failed
/// are tried again then.
const RETRY_EVERY: Duration = Duration::from_secs(600);

/// What one round of fetching did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FetchedContent {
    /// Files fetched, verified and stored.
    pub fetched: usize,
    /// Files that could not be (logged; tried again later).
    pub failed: usize,
    /// Updates published again with what their changelogs say.
    pub revised: usize,
}

/// Runs for the server's life: fetches what approvals need whenever woken
/// (an approval, a sync) and every ten minutes. Does nothing for a server
/// whose content lives at an operator's base URL.
pub async fn run_fetcher(state: Arc<AppState>) {
    if state.content_base_url.is_some() {
        return;
    }
    loop {
        match fetch_approved(&state).await {
            Ok(round) if round.fetched + round.failed > 0 => {
                tracing::info!(
                    fetched = round.fetched,
                    failed = round.failed,
                    revised = round.revised,
                    "upstream content"
                )
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "reading what approvals need"),
        }
        let _ = tokio::time::timeout(RETRY_EVERY, state.upstreams.content_wanted.notified()).await;
    }
}

/// Fetches every upstream file an install approval needs that the server
/// lacks, one at a time.
pub async fn fetch_approved(state: &AppState) -> Result<FetchedContent, crate::store::StoreError> {
    let mut files = state.store.approved_missing_files().await?;
    let mut of_update: BTreeMap<Uuid, Vec<String>> = BTreeMap::new();
    for file in &files {
        of_update
            .entry(file.update_id)
            .or_default()
            .push(file.sha256.clone());
    }
    files.dedup_by(|a, b| a.sha256 == b.sha256);
    let mut round = FetchedContent::default();
    let mut fetched: HashSet<String> = HashSet::new();
    for file in files {
        let content_dir = state.content_dir.clone();
        let wanted = file.clone();
        let stored = tokio::task::spawn_blocking(move || fetch_one(&content_dir, &wanted))
            .await
            .map_err(|error| error.to_string())
            .and_then(|result| result);
        match stored {
            Ok(()) => {
                state.store.add_content(&file.sha256, file.size).await?;
                fetched.insert(file.sha256.clone());
                round.fetched += 1;
            }
            Err(reason) => {
                tracing::warn!(url = %file.url, %reason, "fetching an approved update's .deb");
                round.failed += 1;
            }
        }
    }
    of_update.retain(|_, digests| digests.iter().any(|digest| fetched.contains(digest)));
    if !of_update.is_empty() {
        round.revised = super::changelog::learn_from_fetched(state, of_update).await?;
    }
    Ok(round)
}

/// Streams one file into the content directory under a temporary name
/// (removed at the next start if this dies), checks its size and SHA-256
/// and only then renames it into place.
fn fetch_one(content_dir: &std::path::Path, file: &UpstreamFile) -> Result<(), String> {
    let mut temp = tempfile::Builder::new()
        .prefix(UPLOAD_PREFIX)
        .tempfile_in(content_dir)
        .map_err(|error| format!("a temporary file: {error}"))?;
    let (size, sha256) =
        fetch::copy_to(&fetch::agent(), &file.url, file.size, &mut temp).map_err(|error| {
            match error {
                fetch::FetchError::NotFound => "the mirror no longer has it (HTTP 404)".to_owned(),
                fetch::FetchError::Failed(reason) => reason,
            }
        })?;
    if size != file.size || hex::encode(sha256) != file.sha256 {
        return Err(format!(
            "{size} bytes with SHA-256 {}, not the {} bytes with {} the index gives",
            hex::encode(sha256),
            file.size,
            file.sha256
        ));
    }
    temp.as_file()
        .sync_all()
        .map_err(|error| format!("syncing: {error}"))?;
    temp.persist(content_dir.join(&file.sha256))
        .map_err(|error| format!("storing: {}", error.error))?;
    Ok(())
}
