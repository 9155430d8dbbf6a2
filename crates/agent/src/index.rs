//! The in-memory view searches read: every stored revision with this
//! machine's state of it and its [`SearchFlags`], rebuilt from the store
//! after a sync and updated in place when state changes.
//!
//! Scanning (applicability) happens here too, because it decides which
//! updates a search may see at all: an update is *applicable* when it is
//! installed, or installable with its prerequisites installed; an
//! applicable update hides the updates it supersedes.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use openwua_catalog::revision::{Applicability, AptPackage, Handler, Rule};
use openwua_model::criteria::{Criteria, SearchFlags, Searchable};
use openwua_model::hresult::WU_E_DS_INVALID;
use openwua_model::search::{ApplicabilityReport, UpdateDetails, UpdateEntry};
use openwua_model::update::{Update, UpdateIdentity, UpdateState};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::applicability::Machine;
use crate::error::{AgentError, Result};
use crate::store::{StoredRevision, StoredState};

/// One update as searches see it.
#[derive(Debug)]
pub struct Entry {
    /// The service whose catalog holds it.
    pub service_id: Uuid,
    /// The revision's metadata.
    pub update: Update,
    /// The same, as the catalog's JSON text, spliced into replies as is.
    update_json: Box<RawValue>,
    applicability: Applicability,
    /// This machine's state of it.
    pub state: UpdateState,
    /// What the store recorded (hidden, EULA, install record).
    pub stored: StoredState,
    flags: SearchFlags,
    /// Installed, or installable with its prerequisites installed.
    pub applicable: bool,
    /// Its installable rule holds here (prerequisites aside).
    pub installable: bool,
    /// Why it is not applicable.
    not_applicable_because: Option<String>,
    /// The applicable updates that supersede it.
    superseded_by: Vec<Uuid>,
    /// For an apt service's update, its binary packages.
    pub apt_packages: Option<Vec<AptPackage>>,
    /// For an apt service's update, the suites that offer it.
    pub apt_suites: Vec<String>,
}

impl Searchable for Entry {
    fn search_flags(&self) -> SearchFlags {
        self.flags
    }

    fn identity(&self) -> UpdateIdentity {
        self.update.identity
    }

    fn in_category(&self, category: &Uuid) -> bool {
        self.update
            .categories
            .iter()
            .any(|each| each.id == *category)
    }
}

/// Every known update.
#[derive(Debug, Default)]
pub struct Index {
    entries: Vec<Entry>,
    by_update_id: HashMap<Uuid, usize>,
    /// Which build of the index this is: a scan's results apply only to
    /// the build whose rules they evaluated.
    generation: u64,
    /// Whether each apt update's packages are in apt's cache, as last
    /// checked ([`Index::set_apt_downloaded`]); absent: not.
    apt_downloaded: HashMap<Uuid, bool>,
}

/// Every entry's rules, taken out of the index so that they are evaluated
/// (files read and hashed) without holding it.
pub struct Rules {
    generation: u64,
    rules: Vec<(Option<Rule>, Option<Rule>)>,
}

/// What evaluating [`Rules`] against a machine found, per entry: its
/// installed rule's value (None: its install record decides) and whether
/// it is installable.
pub struct Evaluated {
    generation: u64,
    results: Vec<(Option<bool>, bool)>,
}

impl Rules {
    /// Evaluates every rule against `machine`: blocking, and lock-free.
    pub fn evaluate(self, machine: &Machine) -> Evaluated {
        let results = self
            .rules
            .iter()
            .map(|(installed, installable)| {
                (
                    installed.as_ref().map(|rule| machine.evaluate(rule)),
                    installable
                        .as_ref()
                        .is_none_or(|rule| machine.evaluate(rule)),
                )
            })
            .collect();
        Evaluated {
            generation: self.generation,
            results,
        }
    }
}

/// Tells each build of the index apart.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Which entries a search looks at.
pub struct Scope<'a> {
    /// The services searched.
    pub services: &'a [Uuid],
    /// Keep updates an applicable update supersedes.
    pub include_superseded: bool,
}

impl Index {
    /// Builds the index from the store's rows and scans it against `machine`.
    pub fn build(
        revisions: Vec<StoredRevision>,
        states: &HashMap<Uuid, StoredState>,
        machine: &Machine,
        is_cached: impl Fn(&openwua_model::update::Sha256Digest) -> bool,
    ) -> Result<Index> {
        let mut entries = Vec::with_capacity(revisions.len());
        for revision in revisions {
            let corrupt = |error: serde_json::Error| {
                AgentError::new(WU_E_DS_INVALID, format!("stored revision: {error}"))
            };
            let update: Update = serde_json::from_str(&revision.update_json).map_err(corrupt)?;
            let applicability =
                serde_json::from_str(&revision.applicability_json).map_err(corrupt)?;
            let update_json = RawValue::from_string(revision.update_json).map_err(corrupt)?;
            let (apt_packages, apt_suites) = match revision.apt_handler_json {
                Some(json) => match serde_json::from_str(&json).map_err(corrupt)? {
                    Handler::Apt { packages, suites } => (Some(packages), suites),
                    _ => (None, Vec::new()),
                },
                None => (None, Vec::new()),
            };
            // An apt update is not downloaded until apt's cache is checked.
            let stored = stored_state(
                &update,
                states,
                &is_cached,
                apt_packages.as_ref().map(|_| false),
            );
            entries.push(Entry {
                service_id: revision.service_id,
                update,
                update_json,
                applicability,
                state: UpdateState::default(),
                stored,
                flags: SearchFlags::default(),
                applicable: false,
                installable: false,
                not_applicable_because: None,
                superseded_by: Vec::new(),
                apt_packages,
                apt_suites,
            });
        }
        let by_update_id = entries
            .iter()
            .enumerate()
            .map(|(position, entry)| (entry.update.identity.update_id, position))
            .collect();
        let mut index = Index {
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            entries,
            by_update_id,
            apt_downloaded: HashMap::new(),
        };
        index.scan(machine);
        Ok(index)
    }

    /// Every update.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// The updates of one service's catalog.
    pub fn entries_of(&self, service_id: Uuid) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(move |entry| entry.service_id == service_id)
    }

    /// How many updates the index holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether an installed update waits for a restart.
    pub fn reboot_required(&self) -> bool {
        self.entries.iter().any(|entry| entry.state.reboot_required)
    }

    /// Re-evaluates every rule against `machine` and recomputes state.
    pub fn scan(&mut self, machine: &Machine) {
        let evaluated = self.rules().evaluate(machine);
        self.apply_scan(&evaluated);
    }

    /// Every entry's rules, to evaluate outside the index's lock.
    pub fn rules(&self) -> Rules {
        Rules {
            generation: self.generation,
            rules: self
                .entries
                .iter()
                .map(|entry| {
                    (
                        entry.applicability.installed.clone(),
                        entry.applicability.installable.clone(),
                    )
                })
                .collect(),
        }
    }

    /// Recomputes state from what a scan found; false (and nothing
    /// changed) when the index was rebuilt since its rules were taken.
    pub fn apply_scan(&mut self, evaluated: &Evaluated) -> bool {
        if evaluated.generation != self.generation || evaluated.results.len() != self.entries.len()
        {
            return false;
        }
        let mut installable = Vec::with_capacity(self.entries.len());
        for (entry, (installed, is_installable)) in self.entries.iter_mut().zip(&evaluated.results)
        {
            entry.state.is_installed = installed.unwrap_or(entry.stored.installed_record);
            installable.push(*is_installable);
        }
        let installed: HashSet<Uuid> = self
            .entries
            .iter()
            .filter(|entry| entry.state.is_installed)
            .map(|entry| entry.update.identity.update_id)
            .collect();
        let mut missing_prerequisites = Vec::new();
        for (position, (entry, installable)) in self.entries.iter_mut().zip(installable).enumerate()
        {
            let missing: Vec<Uuid> = entry
                .applicability
                .prerequisites
                .iter()
                .filter(|id| !installed.contains(id))
                .copied()
                .collect();
            entry.installable = installable;
            entry.applicable = entry.state.is_installed || (installable && missing.is_empty());
            entry.not_applicable_because = (!entry.applicable && !installable)
                .then(|| "its installable rule does not hold on this machine".to_owned());
            if !entry.applicable && installable {
                missing_prerequisites.push((position, missing));
            }
        }
        for (position, missing) in missing_prerequisites {
            let named: Vec<String> = missing
                .iter()
                .map(|id| match self.get(*id) {
                    Some(prerequisite) => format!("{} ({id})", prerequisite.update.title),
                    None => format!("{id}, which no registered service publishes"),
                })
                .collect();
            self.entries[position].not_applicable_because =
                Some(format!("prerequisites not installed: {}", named.join(", ")));
        }
        let mut superseded_by: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for entry in self.entries.iter().filter(|entry| entry.applicable) {
            for superseded in &entry.update.superseded_update_ids {
                superseded_by
                    .entry(*superseded)
                    .or_default()
                    .push(entry.update.identity.update_id);
            }
        }
        for entry in &mut self.entries {
            entry.superseded_by = superseded_by
                .remove(&entry.update.identity.update_id)
                .unwrap_or_default();
            entry.refresh_state();
        }
        true
    }

    /// The entry for an update, in any service.
    pub fn get(&self, update_id: Uuid) -> Option<&Entry> {
        self.by_update_id
            .get(&update_id)
            .map(|&position| &self.entries[position])
    }

    /// Applies `change` to the stored state of an update and recomputes its
    /// flags; false when the update is unknown.
    pub fn update_stored(
        &mut self,
        update_id: Uuid,
        change: impl FnOnce(&mut StoredState),
    ) -> bool {
        match self.by_update_id.get(&update_id) {
            Some(&position) => {
                let entry = &mut self.entries[position];
                change(&mut entry.stored);
                entry.refresh_state();
                true
            }
            None => false,
        }
    }

    /// Replaces every entry's stored state with `states` (absent: the
    /// default) and its `IsDownloaded` with what `is_cached` says of its
    /// content files; call [`Index::scan`] afterwards.
    pub fn apply_states(
        &mut self,
        states: &HashMap<Uuid, StoredState>,
        is_cached: impl Fn(&openwua_model::update::Sha256Digest) -> bool,
    ) {
        for entry in &mut self.entries {
            let apt = entry.apt_packages.as_ref().map(|_| {
                self.apt_downloaded
                    .get(&entry.update.identity.update_id)
                    .copied()
                    == Some(true)
            });
            entry.stored = stored_state(&entry.update, states, &is_cached, apt);
            entry.refresh_state();
        }
    }

    /// Each apt update's service and packages: what
    /// [`Index::set_apt_downloaded`] needs checked.
    pub fn apt_updates(&self) -> Vec<(Uuid, Uuid, Vec<AptPackage>)> {
        self.entries
            .iter()
            .filter_map(|entry| {
                entry.apt_packages.as_ref().map(|packages| {
                    (
                        entry.update.identity.update_id,
                        entry.service_id,
                        packages.clone(),
                    )
                })
            })
            .collect()
    }

    /// Records whether each apt update's packages are in apt's cache
    /// (`IsDownloaded`; an update left out is not).
    pub fn set_apt_downloaded(&mut self, downloaded: HashMap<Uuid, bool>) {
        self.apt_downloaded = downloaded;
        for entry in &mut self.entries {
            if entry.apt_packages.is_some() {
                entry.stored.is_downloaded = self
                    .apt_downloaded
                    .get(&entry.update.identity.update_id)
                    .copied()
                    == Some(true);
                entry.refresh_state();
            }
        }
    }

    /// The updates waiting for a restart.
    pub fn reboot_pending(&self) -> Vec<Uuid> {
        self.entries
            .iter()
            .filter(|entry| entry.state.reboot_required)
            .map(|entry| entry.update.identity.update_id)
            .collect()
    }

    /// The updates installed here.
    pub fn installed(&self) -> HashSet<Uuid> {
        self.entries
            .iter()
            .filter(|entry| entry.state.is_installed)
            .map(|entry| entry.update.identity.update_id)
            .collect()
    }

    /// The content files of updates that are not installed: what the cache
    /// must keep.
    pub fn content_still_needed(&self) -> HashSet<openwua_model::update::Sha256Digest> {
        self.entries
            .iter()
            .filter(|entry| !entry.state.is_installed)
            .flat_map(|entry| {
                entry
                    .update
                    .download_contents
                    .iter()
                    .map(|file| file.sha256)
            })
            .collect()
    }

    /// The entries a search would return, in catalog order.
    pub fn search<'a>(
        &'a self,
        criteria: &'a Criteria,
        scope: &'a Scope<'a>,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |entry| {
            entry.applicable
                && (scope.include_superseded || entry.superseded_by.is_empty())
                && scope.services.contains(&entry.service_id)
                && criteria.matches(*entry)
        })
    }
}

/// What the store recorded of `update`, with `IsDownloaded` from the
/// cache (a content file is there only once verified), or for an apt
/// update (`apt`) whether apt's cache holds its packages.
fn stored_state(
    update: &Update,
    states: &HashMap<Uuid, StoredState>,
    is_cached: impl Fn(&openwua_model::update::Sha256Digest) -> bool,
    apt: Option<bool>,
) -> StoredState {
    let mut stored = states
        .get(&update.identity.update_id)
        .copied()
        .unwrap_or_default();
    stored.is_downloaded = apt.unwrap_or_else(|| {
        update
            .download_contents
            .iter()
            .all(|file| is_cached(&file.sha256))
    });
    stored
}

impl Entry {
    /// An applicable update supersedes it.
    pub fn is_superseded(&self) -> bool {
        !self.superseded_by.is_empty()
    }

    /// Updates that must be installed before this one applies.
    pub fn prerequisites(&self) -> &[Uuid] {
        &self.applicability.prerequisites
    }

    /// Recomputes the machine state that follows from the stored state.
    fn refresh_state(&mut self) {
        let state = &mut self.state;
        state.is_hidden = self.stored.is_hidden;
        state.is_downloaded = self.stored.is_downloaded;
        state.reboot_required = self.stored.reboot_required;
        state.eula_accepted = self.stored.eula_accepted || self.update.eula_text.is_none();
        state.is_present = state.is_installed;
        // OpenWUA has no Automatic Updates assignment yet: mandatory updates
        // are the ones meant for automatic installation.
        state.is_assigned = self.update.is_mandatory;
        self.flags = SearchFlags::of(&self.update, &self.state);
    }

    /// The entry and its applicability as model objects (clones the update).
    pub fn details(&self) -> UpdateDetails {
        UpdateDetails {
            entry: UpdateEntry {
                update: self.update.clone(),
                state: self.state,
                service_id: self.service_id,
            },
            applicability: ApplicabilityReport {
                applicable: self.applicable,
                superseded_by: self.superseded_by.clone(),
                reason: self.not_applicable_because.clone(),
            },
            apt: None,
        }
    }

    /// Appends the entry's JSON (`UpdateEntry`'s form) to `out`, reusing
    /// the catalog's text for the update.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(br#"{"update":"#);
        out.extend_from_slice(self.update_json.get().as_bytes());
        out.extend_from_slice(br#","state":"#);
        serde_json::to_writer(&mut *out, &self.state)
            .map_err(|error| AgentError::new(WU_E_DS_INVALID, error.to_string()))?;
        // Writing to a Vec cannot fail.
        let _ = write!(out, r#","serviceId":"{}"}}"#, self.service_id);
        Ok(())
    }
}
