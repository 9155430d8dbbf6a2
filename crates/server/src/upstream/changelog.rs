//! What a fetched update's changelog tells: once "download on approval"
//! has fetched and verified an upstream update's `.deb`s, the newest entry
//! of their `changelog.Debian.gz` gives the CVE IDs it fixes and its
//! `urgency=`, mapped to `MsrcSeverity` (`docs/apt.md`, "Security facts
//! from changelogs"). The update is published again as a new revision
//! carrying them (so automatic approval rules with a severity fire on it),
//! and what was learned is kept in the upstream's state, per UpdateID (one
//! source version), so later syncs publish it too.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use openwua_apt::mapping::SECURITY_UPDATES;
use openwua_catalog::revision::Revision;
use openwua_model::update::MsrcSeverity;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::AppState;
use crate::store::{Candidate, StoreError};

/// At most this many CVE IDs on one update.
const MAX_CVES: usize = 200;
/// At most this many of an update's `.deb`s are opened looking for a
/// changelog (a source's binaries share one).
const MAX_DEBS_READ: usize = 8;

/// What the changelog of one update's packages said.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Learned {
    /// The CVE IDs its newest entry names.
    #[serde(default)]
    pub cve_ids: Vec<String>,
    /// Its entry's `urgency=`, mapped.
    #[serde(default)]
    pub msrc_severity: Option<MsrcSeverity>,
}

/// A Debian changelog's `urgency=` as an MSRC rating: `emergency` and
/// `critical` are Critical, `high` Important, `medium` Moderate, `low`
/// Low; anything else rates nothing.
pub fn severity_of_urgency(urgency: &str) -> Option<MsrcSeverity> {
    match urgency.to_ascii_lowercase().as_str() {
        "emergency" | "critical" => Some(MsrcSeverity::Critical),
        "high" => Some(MsrcSeverity::Important),
        "medium" => Some(MsrcSeverity::Moderate),
        "low" => Some(MsrcSeverity::Low),
        _ => None,
    }
}

/// The changelog of the first of `debs` that has one. Blocking.
fn learn(debs: &[PathBuf]) -> Option<Learned> {
    debs.iter()
        .filter(|deb| deb.is_file())
        .take(MAX_DEBS_READ)
        .find_map(|deb| openwua_installer::handlers::apt::newest_changelog_entry(deb))
        .map(|entry| Learned {
            cve_ids: entry.cves.into_iter().take(MAX_CVES).collect(),
            msrc_severity: entry.urgency.as_deref().and_then(severity_of_urgency),
        })
}

/// Gives `revision` what was learned: the CVE IDs (added to any it has),
/// and the severity if it is a security update (WUA rates only those).
/// Whether anything changed.
pub(super) fn apply(revision: &mut Revision, learned: &Learned) -> bool {
    let update = &mut revision.update;
    let before = (update.cve_ids.clone(), update.msrc_severity);
    for cve in &learned.cve_ids {
        if update.cve_ids.len() < MAX_CVES && !update.cve_ids.contains(cve) {
            update.cve_ids.push(cve.clone());
        }
    }
    let is_security = update
        .categories
        .iter()
        .any(|category| category.id == SECURITY_UPDATES);
    if is_security && learned.msrc_severity.is_some() {
        update.msrc_severity = learned.msrc_severity;
    }
    before != (update.cve_ids.clone(), update.msrc_severity)
}

/// Reads the changelogs of updates whose `.deb`s were just fetched (each
/// UpdateID with the SHA-256s of its files in the content directory),
/// keeps what they say in the upstreams' states and publishes the updates
/// again with it. Returns how many updates were revised.
pub(super) async fn learn_from_fetched(
    state: &AppState,
    updates: BTreeMap<Uuid, Vec<String>>,
) -> Result<usize, StoreError> {
    // A sync in between would save its state over ours.
    let _one_at_a_time = state.upstreams.sync_lock.lock().await;
    let mut learned_by_update = BTreeMap::new();
    for (update_id, digests) in updates {
        let debs: Vec<PathBuf> = digests
            .iter()
            .map(|digest| state.content_dir.join(digest))
            .collect();
        let learned = tokio::task::spawn_blocking(move || learn(&debs))
            .await
            .ok()
            .flatten();
        if let Some(learned) = learned
            && learned != Learned::default()
        {
            learned_by_update.insert(update_id, learned);
        }
    }
    if learned_by_update.is_empty() {
        return Ok(0);
    }
    // Kept first: if the publish below fails, the next sync publishes it.
    for stored in state.store.upstreams().await? {
        let Ok((_, mut upstream_state)) = super::decode(&stored) else {
            continue;
        };
        let published: HashSet<Uuid> = upstream_state
            .known
            .values()
            .flatten()
            .map(|(_, id)| *id)
            .collect();
        let mut changed = false;
        for (id, learned) in &learned_by_update {
            if published.contains(id) && upstream_state.learned.get(id) != Some(learned) {
                upstream_state.learned.insert(*id, learned.clone());
                changed = true;
            }
        }
        if changed {
            let json = serde_json::to_string(&upstream_state)
                .map_err(|error| StoreError::Corrupt(error.to_string()))?;
            state.store.save_upstream_state(&stored.name, json).await?;
        }
    }
    let mut candidates = Vec::new();
    for (update_id, learned) in &learned_by_update {
        let Some((history, mut revision)) = state.store.update_history(*update_id).await? else {
            continue;
        };
        // A declined update stays declined.
        if history.last().is_some_and(|stored| stored.declined) {
            continue;
        }
        if apply(&mut revision, learned) {
            candidates.push(Candidate::new(revision)?);
        }
    }
    if candidates.is_empty() {
        return Ok(0);
    }
    let report = state.store.publish_content_elsewhere(candidates).await?;
    if !report.rule_approvals.is_empty() {
        state.upstreams.content_wanted.notify_one();
    }
    Ok(report
        .updates
        .iter()
        .filter(|update| update.action == crate::store::PublishAction::Revised)
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgencies_map_to_msrc_ratings() {
        assert_eq!(
            severity_of_urgency("emergency"),
            Some(MsrcSeverity::Critical)
        );
        assert_eq!(
            severity_of_urgency("critical"),
            Some(MsrcSeverity::Critical)
        );
        assert_eq!(severity_of_urgency("HIGH"), Some(MsrcSeverity::Important));
        assert_eq!(severity_of_urgency("medium"), Some(MsrcSeverity::Moderate));
        assert_eq!(severity_of_urgency("low"), Some(MsrcSeverity::Low));
        assert_eq!(severity_of_urgency("whenever"), None);
    }
}
