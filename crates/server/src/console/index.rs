//! The Updates page's index: every update's current revision reduced to
//! what the page searches and shows (title, KB articles, CVEs,
//! classification, severity and WUA's search flags), so that a search of
//! 100,000 updates with free text, filters and WUA's criteria language is a
//! scan of memory, not of their JSON.
//!
//! It is a cache of rows that never change: a revision, once stored, is
//! never rewritten. Each use reads the catalog version; when it moved, the
//! number of stored revisions; when that differs from the number folded
//! in, the revisions published since shortly before the newest one held
//! (an index on `published`), and all of them if some are still missing
//! (a publish that committed late, or revisions removed). So front ends
//! sharing a database see the same updates; what can change (declines,
//! approvals) is read from the store for each page.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use openwua_catalog::revision::Revision;
use openwua_model::criteria::{Criteria, SearchFlags, Searchable};
use openwua_model::update::{MsrcSeverity, UpdateIdentity, UpdateState};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::store::{RevisionRow, Store, StoreError};

/// One update as the Updates page knows it.
#[derive(Debug, Clone)]
pub struct IndexedUpdate {
    /// `UpdateID` and the current revision's number.
    pub identity: UpdateIdentity,
    /// The title.
    pub title: String,
    /// The title in lower case, for free-text search.
    title_lower: String,
    /// KB article IDs (digits, as the catalog gives them).
    pub kb_article_ids: Vec<String>,
    /// CVE IDs.
    pub cve_ids: Vec<String>,
    /// The name of its `UpdateClassification` category, if any.
    pub classification: Option<String>,
    /// The MSRC severity, if any.
    pub severity: Option<MsrcSeverity>,
    /// When the current revision was published.
    pub published: String,
    flags: SearchFlags,
    categories: Vec<Uuid>,
}

impl Searchable for IndexedUpdate {
    fn search_flags(&self) -> SearchFlags {
        self.flags
    }

    fn identity(&self) -> UpdateIdentity {
        self.identity
    }

    fn in_category(&self, category: &Uuid) -> bool {
        self.categories.contains(category)
    }
}

impl IndexedUpdate {
    fn from_row(row: &RevisionRow) -> Result<Self, StoreError> {
        let revision: Revision = serde_json::from_str(&row.json).map_err(|error| {
            StoreError::Corrupt(format!(
                "an unreadable revision of {}: {error}",
                row.update_id
            ))
        })?;
        let update = revision.update;
        // The server holds no machine's state: criteria on it (IsInstalled,
        // IsHidden, …) are answered as for a machine with none of them.
        let flags = SearchFlags::of(&update, &UpdateState::default());
        Ok(IndexedUpdate {
            identity: UpdateIdentity {
                update_id: row.update_id,
                revision_number: row.revision_number,
            },
            title_lower: update.title.to_lowercase(),
            classification: update
                .categories
                .iter()
                .find(|category| category.category_type == "UpdateClassification")
                .map(|category| category.name.clone()),
            categories: update
                .categories
                .iter()
                .map(|category| category.id)
                .collect(),
            title: update.title,
            kb_article_ids: update.kb_article_ids,
            cve_ids: update.cve_ids,
            severity: update.msrc_severity,
            published: row.published.clone(),
            flags,
        })
    }

    /// Whether free text `needle` (lower case) is in its title, names one
    /// of its KB articles (`KB5031356` or `5031356`) or one of its CVEs.
    fn has_text(&self, needle: &str) -> bool {
        let kb = needle.strip_prefix("kb").unwrap_or(needle);
        self.title_lower.contains(needle)
            || self.kb_article_ids.iter().any(|id| id == kb)
            || self
                .cve_ids
                .iter()
                .any(|id| id.eq_ignore_ascii_case(needle))
    }
}

/// What the Updates page asks for.
#[derive(Debug, Default)]
pub struct Search {
    /// Free text: title, KB or CVE (lower case).
    pub text: Option<String>,
    /// WUA's criteria language, parsed.
    pub criteria: Option<Criteria>,
    /// A classification's name.
    pub classification: Option<String>,
    /// A severity.
    pub severity: Option<MsrcSeverity>,
}

impl Search {
    fn admits(&self, update: &IndexedUpdate) -> bool {
        self.text
            .as_deref()
            .is_none_or(|text| update.has_text(text))
            && self
                .classification
                .as_ref()
                .is_none_or(|wanted| update.classification.as_ref() == Some(wanted))
            && self
                .severity
                .is_none_or(|wanted| update.severity == Some(wanted))
            && self
                .criteria
                .as_ref()
                .is_none_or(|criteria| criteria.matches(update))
    }
}

/// The index at one moment: updates newest first.
#[derive(Default)]
pub struct Snapshot {
    updates: Vec<IndexedUpdate>,
    by_id: HashMap<Uuid, usize>,
    newest: Option<String>,
    /// Every (update, revision) folded in.
    seen: HashSet<(Uuid, i32)>,
    /// Every classification's name, for the filter's choices.
    pub classifications: BTreeSet<String>,
}

impl Snapshot {
    /// The updates `search` and `also` admit, newest first, as (total,
    /// this page).
    pub fn search(
        &self,
        search: &Search,
        also: &dyn Fn(&IndexedUpdate) -> bool,
        offset: usize,
        page: usize,
    ) -> (usize, Vec<&IndexedUpdate>) {
        let mut total = 0;
        let mut rows = Vec::with_capacity(page);
        let admitted = self
            .updates
            .iter()
            .filter(|update| search.admits(update) && also(update));
        for update in admitted {
            if total >= offset && rows.len() < page {
                rows.push(update);
            }
            total += 1;
        }
        (total, rows)
    }

    /// One update.
    pub fn get(&self, update_id: Uuid) -> Option<&IndexedUpdate> {
        self.by_id
            .get(&update_id)
            .map(|&index| &self.updates[index])
    }

    /// How many updates it holds.
    pub fn len(&self) -> usize {
        self.updates.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
    }

    /// This snapshot with `rows` folded in (a newer revision replaces an
    /// older one of the same update).
    fn with(&self, rows: Vec<IndexedUpdate>) -> Snapshot {
        let mut seen = self.seen.clone();
        seen.extend(
            rows.iter()
                .map(|row| (row.identity.update_id, row.identity.revision_number)),
        );
        let mut current: HashMap<Uuid, IndexedUpdate> = self
            .updates
            .iter()
            .map(|update| (update.identity.update_id, update.clone()))
            .collect();
        for row in rows {
            let newer = current
                .get(&row.identity.update_id)
                .is_none_or(|held| held.identity.revision_number < row.identity.revision_number);
            if newer {
                current.insert(row.identity.update_id, row);
            }
        }
        let mut updates: Vec<IndexedUpdate> = current.into_values().collect();
        updates.sort_by(|a, b| {
            b.published
                .cmp(&a.published)
                .then_with(|| a.title.cmp(&b.title))
                .then_with(|| a.identity.update_id.cmp(&b.identity.update_id))
        });
        let by_id = updates
            .iter()
            .enumerate()
            .map(|(index, update)| (update.identity.update_id, index))
            .collect();
        Snapshot {
            seen,
            newest: updates.iter().map(|update| update.published.clone()).max(),
            classifications: updates
                .iter()
                .filter_map(|update| update.classification.clone())
                .collect(),
            by_id,
            updates,
        }
    }

    fn holds(&self, row: &RevisionRow) -> bool {
        self.seen.contains(&(row.update_id, row.revision_number))
    }
}

/// How far before the newest revision held a catch-up reads: publishes
/// whose transactions overlapped commit in any order.
const CATCH_UP_MARGIN: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// The index, caught up with the store at each use.
#[derive(Default)]
pub struct UpdateIndex {
    /// The snapshot, and the catalog version it was last checked at.
    current: Mutex<(Arc<Snapshot>, Option<u64>)>,
}

impl UpdateIndex {
    /// The index with every revision the store holds now.
    pub async fn current(&self, store: &Store) -> Result<Arc<Snapshot>, StoreError> {
        // One catch-up at a time; the others wait for it and share it.
        let mut current = self.current.lock().await;
        let version = store.catalog_version().await?;
        if current.1 == Some(version) {
            return Ok(Arc::clone(&current.0));
        }
        let stored = store.revision_count().await?;
        let mut snapshot = Arc::clone(&current.0);
        if stored != snapshot.seen.len() as u64 {
            if stored < snapshot.seen.len() as u64 {
                // Revisions were removed: start again.
                snapshot = Arc::new(Snapshot::default());
            }
            let since = snapshot
                .newest
                .as_deref()
                .and_then(|newest| newest.parse::<jiff::Timestamp>().ok())
                .map(|newest| (newest - CATCH_UP_MARGIN).to_string());
            snapshot = fold(snapshot, store.revisions_since(since).await?).await?;
            if (snapshot.seen.len() as u64) < stored {
                snapshot = fold(snapshot, store.revisions_since(None).await?).await?;
            }
        }
        *current = (Arc::clone(&snapshot), Some(version));
        Ok(snapshot)
    }
}

/// `base` with the rows it does not hold yet.
async fn fold(base: Arc<Snapshot>, rows: Vec<RevisionRow>) -> Result<Arc<Snapshot>, StoreError> {
    let fresh: Vec<RevisionRow> = rows.into_iter().filter(|row| !base.holds(row)).collect();
    if fresh.is_empty() {
        return Ok(base);
    }
    // Parsing up to 100,000 revisions' JSON is CPU work.
    tokio::task::spawn_blocking(move || {
        let parsed = fresh
            .iter()
            .map(IndexedUpdate::from_row)
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Arc::new(base.with(parsed)))
    })
    .await
    .map_err(|error| StoreError::Io(format!("the index's thread: {error}")))?
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use openwua_catalog::manifest;

    use super::*;
    use crate::store::Candidate;

    fn sample() -> Vec<Revision> {
        manifest::load_service_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-service"),
        )
        .unwrap()
        .revisions
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_index_catches_up_with_new_revisions_and_searches_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("s.sqlite"))
            .await
            .unwrap();
        let index = UpdateIndex::default();
        assert!(index.current(&store).await.unwrap().is_empty());
        let mut revisions = sample();
        let candidates = revisions
            .iter()
            .cloned()
            .map(|r| Candidate::new(r).unwrap())
            .collect();
        store.publish_content_elsewhere(candidates).await.unwrap();
        let first = index.current(&store).await.unwrap();
        assert_eq!(first.len(), revisions.len());

        // A new revision of one update replaces it; the others stay.
        let revised = &mut revisions[0];
        revised.update.title = "A title nobody had before".into();
        let id = revised.update.identity.update_id;
        store
            .publish_content_elsewhere(vec![Candidate::new(revised.clone()).unwrap()])
            .await
            .unwrap();
        let second = index.current(&store).await.unwrap();
        assert_eq!(second.len(), revisions.len());
        assert_eq!(second.get(id).unwrap().identity.revision_number, 2);
        let search = Search {
            text: Some("nobody had".into()),
            criteria: Some(Criteria::parse(&format!("UpdateID='{id}'")).unwrap()),
            ..Search::default()
        };
        let (total, rows) = second.search(&search, &|_| true, 0, 50);
        assert_eq!((total, rows[0].identity.update_id), (1, id));
        let (none, _) = second.search(
            &Search {
                criteria: Some(
                    Criteria::parse(&format!("UpdateID!='{id}' and UpdateID='{id}'")).unwrap(),
                ),
                ..Search::default()
            },
            &|_| true,
            0,
            50,
        );
        assert_eq!(none, 0);
    }
}
