//! Upstream repositories: WSUS's sync from Microsoft Update, from a
//! Debian or Ubuntu mirror (`docs/server.md`, "Upstreams").
//!
//! [`sync_upstream`] fetches each suite's `InRelease`, checks it with
//! `gpgv` against the upstream's keyring ([`gpg`]), refuses a Release past
//! `Valid-Until` or older than the last one accepted, fetches the
//! `Packages` indexes the filters ask for by hash (verified against the
//! Release's size and SHA-256 before a byte is parsed, and kept in a cache
//! by digest, so a sync that was cut short resumes), maps them with
//! `openwua_apt::mapping::map_sources` (the identities the agent's apt
//! service gives) and publishes them through the server's publish, in one
//! transaction. The `.deb`s are fetched only when an approval needs them
//! ([`content`]).

pub mod api;
pub mod changelog;
pub mod content;
mod fetch;
mod gpg;
pub mod schedule;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use jiff::Timestamp;
use openwua_apt::compressed::{self, Compression};
use openwua_apt::mapping::{OfferedList, Pocket, PocketClass};
use openwua_apt::packages::BinaryPackage;
use openwua_apt::release::{self, Release};
use openwua_catalog::revision::{ContentFile, Handler, Revision};
use openwua_model::hresult::{
    HResult, WU_E_DOWNLOAD_FAILED, WU_E_METADATA_BAD_SIGNATURE, WU_E_METADATA_NO_VERIFICATION_DATA,
    WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW, WU_E_METADATA_UNEXPECTED,
    WU_E_PT_HTTP_STATUS_NOT_FOUND, WU_E_XML_INVALID,
};
use openwua_model::update::{DownloadContent, Sha256Digest};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ServerError;
use crate::store::upstreams::{StoredUpstream, UpstreamFile};
use crate::store::{Candidate, PublishAction, Store, StoreError};

/// The longest upstream name.
const MAX_NAME: usize = 64;
/// The most suites, components, architectures or source patterns.
const MAX_LIST: usize = 32;
/// The most source-package patterns.
const MAX_PATTERNS: usize = 256;
/// The largest keyring accepted (Debian's archive keyring is about 100 kB).
const MAX_KEYRING_BYTES: usize = 1 << 20;
/// The longest `Filename` an index may give a `.deb`.
const MAX_FILENAME: usize = 512;

/// Which kinds of pocket to take: WSUS's classifications, as Debian's
/// pockets give them (`docs/apt.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum PocketFilter {
    /// `*-security`: Security Updates.
    Security,
    /// The release itself, `*-updates`, `*-proposed-updates`: Updates.
    Updates,
    /// `*-backports`: optional Updates.
    Backports,
}

impl PocketFilter {
    fn admits(self, class: PocketClass) -> bool {
        matches!(
            (self, class),
            (PocketFilter::Security, PocketClass::Security)
                | (PocketFilter::Updates, PocketClass::Updates)
                | (PocketFilter::Backports, PocketClass::Backports)
        )
    }
}

/// An upstream as the administrator gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamSpec {
    /// Its name (letters, digits, `.`, `_`, `-`; at most 64).
    pub name: String,
    /// The mirror's root, `http(s)://…/` (`dists/` is beneath it).
    pub url: String,
    /// Suites (`bookworm`, `bookworm-security`).
    pub suites: Vec<String>,
    /// Components (`main`).
    pub components: Vec<String>,
    /// Architectures (`amd64`); each index holds its `all` packages too.
    pub architectures: Vec<String>,
    /// Source-package patterns (`*` any run, `?` one character); empty
    /// takes every source.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Kinds of pocket; empty takes every suite given.
    #[serde(default)]
    pub pockets: Vec<PocketFilter>,
    /// The keyring that signs the suites' `InRelease`: binary OpenPGP
    /// public keys (a `.gpg` file, not armoured), in hex.
    pub keyring: String,
}

/// An upstream as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamSummary {
    /// Its name.
    pub name: String,
    /// The mirror.
    pub url: String,
    /// Suites.
    pub suites: Vec<String>,
    /// Components.
    pub components: Vec<String>,
    /// Architectures.
    pub architectures: Vec<String>,
    /// Source-package patterns.
    pub sources: Vec<String>,
    /// Kinds of pocket.
    pub pockets: Vec<PocketFilter>,
    /// SHA-256 of the keyring.
    pub keyring_sha256: String,
    /// When it last synced successfully.
    #[schema(value_type = Option<String>)]
    pub last_sync: Option<Timestamp>,
    /// How many updates its last sync offered.
    pub updates: usize,
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// The upstream.
    pub name: String,
    /// Whether the catalog changed.
    pub changed: bool,
    /// Every suite's InRelease was the one synced last time, so nothing
    /// else was fetched.
    pub release_unchanged: bool,
    /// Updates the indexes offer through the filters.
    pub updates: usize,
    /// Of those, new to the server.
    pub added: usize,
    /// Of those, new revisions of updates the server had.
    pub revised: usize,
    /// Indexes fetched from the mirror, and found in the cache.
    pub indexes_fetched: usize,
    /// Indexes taken from the cache of a sync cut short.
    pub indexes_cached: usize,
    /// The catalog version after the sync.
    pub catalog_version: u64,
}

/// What the store keeps between syncs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamState {
    /// The last successful sync.
    pub last_sync: Option<Timestamp>,
    /// SHA-256 of the settings and every suite's InRelease then.
    pub fingerprint: String,
    /// Each suite's Release `Date` then: an older one is a rollback.
    pub releases: BTreeMap<String, Option<Timestamp>>,
    /// Every version published so far per `origin\0source`, oldest
    /// first, so a new version supersedes those the index dropped.
    pub known: BTreeMap<String, Vec<(String, Uuid)>>,
    /// How many updates the last sync offered.
    pub updates: usize,
    /// What fetched updates' changelogs said, per UpdateID (one source
    /// version), merged into every later sync's mapping.
    #[serde(default)]
    pub learned: BTreeMap<Uuid, changelog::Learned>,
}

/// Why a sync or a change to upstreams was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No upstream of that name.
    #[error("no upstream named {0:?}; `wua-server upstream list` shows them")]
    Unknown(String),
    /// The settings are not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// An upstream of that name exists.
    #[error("an upstream named {0:?} exists; remove it first to change it")]
    Exists(String),
    /// The InRelease's signature does not verify against the keyring.
    #[error(
        "{url}: {reason}; nothing changed. Check the keyring given to `upstream add` and the mirror"
    )]
    BadSignature {
        /// The InRelease.
        url: String,
        /// Why.
        reason: String,
    },
    /// The Release is past its `Valid-Until`.
    #[error(
        "{url}: valid until {valid_until}, which has passed; nothing changed. The mirror is stale: use another or wait for it to catch up"
    )]
    Expired {
        /// The InRelease.
        url: String,
        /// Its `Valid-Until`.
        valid_until: Timestamp,
    },
    /// The Release is older than the one accepted before.
    #[error(
        "{url}: dated {date}, older than the {held} accepted before (a rollback); nothing changed. The mirror serves an old Release: use another"
    )]
    Rollback {
        /// The InRelease.
        url: String,
        /// Its `Date` (`none` when it has none).
        date: String,
        /// The date accepted before.
        held: Timestamp,
    },
    /// An index or Release does not match what verifies it.
    #[error("{what}: {reason}; nothing changed")]
    Unverified {
        /// The file.
        what: String,
        /// Why.
        reason: String,
    },
    /// A verified file is not in its format.
    #[error("{what}: {reason}; nothing changed")]
    Malformed {
        /// The file.
        what: String,
        /// Why.
        reason: String,
    },
    /// The mirror does not have a file.
    #[error(
        "{0}: the mirror has no such file (HTTP 404); check the upstream's URL, suites, components and architectures"
    )]
    NotFound(String),
    /// The mirror could not be read.
    #[error("{0}; nothing changed. Check the mirror and the network, then sync again")]
    Fetch(String),
    /// Something of the server's own failed.
    #[error("{0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl UpstreamError {
    /// WUA's code for it.
    pub fn hresult(&self) -> HResult {
        match self {
            UpstreamError::BadSignature { .. } => WU_E_METADATA_BAD_SIGNATURE,
            UpstreamError::Expired { .. } | UpstreamError::Rollback { .. } => {
                WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW
            }
            UpstreamError::Unverified { .. } => WU_E_METADATA_NO_VERIFICATION_DATA,
            UpstreamError::Malformed { .. } => WU_E_XML_INVALID,
            UpstreamError::NotFound(_) => WU_E_PT_HTTP_STATUS_NOT_FOUND,
            UpstreamError::Fetch(_) => WU_E_DOWNLOAD_FAILED,
            UpstreamError::Unknown(_)
            | UpstreamError::Invalid(_)
            | UpstreamError::Exists(_)
            | UpstreamError::Internal(_)
            | UpstreamError::Store(_) => WU_E_METADATA_UNEXPECTED,
        }
    }
}

impl From<UpstreamError> for ServerError {
    fn from(error: UpstreamError) -> Self {
        match error {
            UpstreamError::Unknown(name) => ServerError::not_found(
                "no such upstream; `wua-server upstream list` shows them",
                name,
            ),
            UpstreamError::Invalid(detail) => {
                ServerError::bad_request("the upstream's settings are not acceptable", detail)
            }
            UpstreamError::Exists(name) => ServerError::conflict(
                "an upstream of that name exists; remove it first to change it",
                name,
            ),
            UpstreamError::Store(error) => error.into(),
            UpstreamError::Internal(detail) => ServerError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                WU_E_METADATA_UNEXPECTED,
                "the sync failed on the server; see its log",
                detail,
            ),
            other => ServerError::new(
                StatusCode::BAD_GATEWAY,
                other.hresult(),
                "the upstream's metadata was refused and nothing changed",
                other.to_string(),
            ),
        }
    }
}

/// Whether `text` is a word of letters, digits and `allowed`.
fn is_word(text: &str, allowed: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || allowed.contains(c))
}

impl UpstreamSpec {
    /// Checks every field and returns the spec with its URL ending in `/`
    /// and the keyring's bytes.
    pub fn checked(mut self) -> Result<(UpstreamSpec, Vec<u8>), UpstreamError> {
        let invalid = |text: String| Err(UpstreamError::Invalid(text));
        if !is_word(&self.name, "._-", MAX_NAME) {
            return invalid(format!(
                "name {:?}: 1 to {MAX_NAME} letters, digits, `.`, `_` or `-`",
                self.name
            ));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://"))
            || self.url.len() > 1024
            || self
                .url
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return invalid(format!("url {:?}: an http:// or https:// URL", self.url));
        }
        if !self.url.ends_with('/') {
            self.url.push('/');
        }
        for (what, list, allowed) in [
            ("suite", &self.suites, "._-/"),
            ("component", &self.components, "._-/"),
            ("architecture", &self.architectures, "-"),
        ] {
            if list.is_empty() || list.len() > MAX_LIST {
                return invalid(format!("give 1 to {MAX_LIST} of --{what}"));
            }
            for item in list {
                if !is_word(item, allowed, 64)
                    || item.starts_with(['/', '.'])
                    || item.contains("..")
                    || item.ends_with('/')
                {
                    return invalid(format!("{what} {item:?} is not a plain name"));
                }
            }
        }
        if self.sources.len() > MAX_PATTERNS {
            return invalid(format!("at most {MAX_PATTERNS} source patterns"));
        }
        for pattern in &self.sources {
            if !is_word(pattern, ".+-*?", 128) {
                return invalid(format!(
                    "source pattern {pattern:?}: a package name with `*` and `?`"
                ));
            }
        }
        let keyring = hex::decode(&self.keyring)
            .map_err(|_| UpstreamError::Invalid("the keyring is not hex".into()))?;
        if keyring.is_empty() || keyring.len() > MAX_KEYRING_BYTES {
            return invalid(format!(
                "the keyring must hold 1 to {MAX_KEYRING_BYTES} bytes"
            ));
        }
        // A binary OpenPGP packet starts with its tag's high bit set;
        // armour starts with `-----BEGIN`.
        if keyring[0] & 0x80 == 0 {
            return invalid(
                "the keyring is not binary OpenPGP keys (armoured? `gpg --dearmor` it)".into(),
            );
        }
        Ok((self, keyring))
    }

    fn summary(&self, state: &UpstreamState) -> UpstreamSummary {
        let keyring = hex::decode(&self.keyring).unwrap_or_default();
        UpstreamSummary {
            name: self.name.clone(),
            url: self.url.clone(),
            suites: self.suites.clone(),
            components: self.components.clone(),
            architectures: self.architectures.clone(),
            sources: self.sources.clone(),
            pockets: self.pockets.clone(),
            keyring_sha256: hex::encode(Sha256::digest(&keyring)),
            last_sync: state.last_sync,
            updates: state.updates,
        }
    }

    fn wants_source(&self, source: &str) -> bool {
        self.sources.is_empty()
            || self
                .sources
                .iter()
                .any(|pattern| crate::rules::glob_matches(pattern, source))
    }

    fn wants_pocket(&self, class: PocketClass) -> bool {
        self.pockets.is_empty() || self.pockets.iter().any(|filter| filter.admits(class))
    }
}

/// The upstreams' shared parts: one sync at a time per process, the
/// index cache, and the content fetcher's wake-up.
pub struct Upstreams {
    /// Held while a sync runs.
    sync_lock: tokio::sync::Mutex<()>,
    /// `DATA_DIR/upstream-cache`: verified indexes by SHA-256.
    cache_dir: PathBuf,
    /// Wakes the content fetcher ([`content::run_fetcher`]).
    pub content_wanted: tokio::sync::Notify,
}

impl Upstreams {
    /// The upstreams of a server whose data directory is `data_dir`.
    pub fn new(data_dir: &Path) -> Upstreams {
        Upstreams {
            sync_lock: tokio::sync::Mutex::new(()),
            cache_dir: data_dir.join("upstream-cache"),
            content_wanted: tokio::sync::Notify::new(),
        }
    }
}

/// Adds an upstream (nothing is fetched until it syncs).
pub async fn add_upstream(
    store: &Store,
    spec: UpstreamSpec,
) -> Result<UpstreamSummary, UpstreamError> {
    let (spec, _) = spec.checked()?;
    let state = UpstreamState::default();
    let stored = StoredUpstream {
        name: spec.name.clone(),
        config_json: to_json(&spec)?,
        state_json: to_json(&state)?,
    };
    if !store.add_upstream(stored).await? {
        return Err(UpstreamError::Exists(spec.name));
    }
    Ok(spec.summary(&state))
}

/// Every upstream.
pub async fn list_upstreams(store: &Store) -> Result<Vec<UpstreamSummary>, UpstreamError> {
    let mut list = Vec::new();
    for stored in store.upstreams().await? {
        let (spec, state) = decode(&stored)?;
        list.push(spec.summary(&state));
    }
    Ok(list)
}

/// Every upstream's name and state.
pub(crate) async fn upstream_states(
    store: &Store,
) -> Result<Vec<(String, UpstreamState)>, UpstreamError> {
    let mut list = Vec::new();
    for stored in store.upstreams().await? {
        let (_, state) = decode(&stored)?;
        list.push((stored.name, state));
    }
    Ok(list)
}

fn decode(stored: &StoredUpstream) -> Result<(UpstreamSpec, UpstreamState), UpstreamError> {
    let spec = serde_json::from_str(&stored.config_json).map_err(|error| {
        UpstreamError::Internal(format!(
            "upstream {}: stored settings: {error}",
            stored.name
        ))
    })?;
    let state = serde_json::from_str(&stored.state_json).map_err(|error| {
        UpstreamError::Internal(format!("upstream {}: stored state: {error}", stored.name))
    })?;
    Ok((spec, state))
}

fn to_json<T: Serialize>(value: &T) -> Result<String, UpstreamError> {
    serde_json::to_string(value).map_err(|error| UpstreamError::Internal(error.to_string()))
}

/// What the fetching half of a sync found.
enum Fetched {
    /// Every InRelease is the one synced last time.
    Unchanged,
    /// The updates, their files, and the state to keep once published.
    Mapped {
        revisions: Vec<Revision>,
        files: Vec<UpstreamFile>,
        state: Box<UpstreamState>,
        fetched: usize,
        cached: usize,
        used: HashSet<String>,
    },
}

/// Syncs one upstream: verified metadata in, one publish out. A refusal
/// or a sync cut short publishes nothing of it.
pub async fn sync_upstream(
    store: &Store,
    upstreams: &Upstreams,
    name: &str,
) -> Result<SyncReport, UpstreamError> {
    let _one_at_a_time = upstreams.sync_lock.lock().await;
    let stored = store
        .upstreams()
        .await?
        .into_iter()
        .find(|stored| stored.name == name)
        .ok_or_else(|| UpstreamError::Unknown(name.to_owned()))?;
    let (spec, held) = decode(&stored)?;
    let cache_dir = upstreams.cache_dir.clone();
    let config_json = stored.config_json.clone();
    let fetched = tokio::task::spawn_blocking(move || {
        fetch_and_map(&spec, &config_json, &held, &cache_dir, Timestamp::now())
    })
    .await
    .map_err(|error| UpstreamError::Internal(format!("the sync's thread: {error}")))??;
    let Fetched::Mapped {
        revisions,
        files,
        state,
        fetched,
        cached,
        used,
    } = fetched
    else {
        let (_, held) = decode(&stored)?;
        return Ok(SyncReport {
            name: name.to_owned(),
            changed: false,
            release_unchanged: true,
            updates: held.updates,
            added: 0,
            revised: 0,
            indexes_fetched: 0,
            indexes_cached: 0,
            catalog_version: store.catalog_version().await?,
        });
    };
    let updates = revisions.len();
    // Where the .debs come from first: harmless if the sync stops here.
    store.add_upstream_files(name, files).await?;
    let candidates = revisions
        .into_iter()
        .map(Candidate::new)
        .collect::<Result<Vec<_>, _>>()?;
    // The server's one publish path, one transaction. Its content is
    // fetched on approval (content.rs), so it is not required here.
    let report = store.publish_content_elsewhere(candidates).await?;
    if !store.save_upstream_state(name, to_json(&*state)?).await? {
        return Err(UpstreamError::Unknown(name.to_owned()));
    }
    upstreams.content_wanted.notify_one();
    let cache = upstreams.cache_dir.clone();
    let _ = tokio::task::spawn_blocking(move || prune_cache(&cache, &used)).await;
    let count = |action| {
        report
            .updates
            .iter()
            .filter(|update| update.action == action)
            .count()
    };
    tracing::info!(
        upstream = name,
        updates,
        changed = report.changed,
        "upstream synced"
    );
    Ok(SyncReport {
        name: name.to_owned(),
        changed: report.changed,
        release_unchanged: false,
        updates,
        added: count(PublishAction::Added),
        revised: count(PublishAction::Revised),
        indexes_fetched: fetched,
        indexes_cached: cached,
        catalog_version: report.catalog_version,
    })
}

/// One suite's verified Release.
struct SuiteRelease {
    suite: String,
    release: Release,
}

/// The blocking half of a sync: fetch, verify, parse, map.
fn fetch_and_map(
    spec: &UpstreamSpec,
    config_json: &str,
    held: &UpstreamState,
    cache_dir: &Path,
    now: Timestamp,
) -> Result<Fetched, UpstreamError> {
    let keyring = hex::decode(&spec.keyring)
        .map_err(|_| UpstreamError::Internal("the stored keyring is not hex".into()))?;
    let agent = fetch::agent();
    let scratch = tempfile::tempdir()
        .map_err(|error| UpstreamError::Internal(format!("a scratch directory: {error}")))?;
    let mut fingerprint = Sha256::new();
    fingerprint.update(config_json.as_bytes());
    let mut suites = Vec::new();
    for (index, suite) in spec.suites.iter().enumerate() {
        let url = format!("{}dists/{suite}/InRelease", spec.url);
        let signed = fetch::get(&agent, &url, release::MAX_RELEASE_BYTES)
            .map_err(|error| fetch_error(&url, error))?;
        let home = scratch.path().join(index.to_string());
        std::fs::create_dir(&home)
            .map_err(|error| UpstreamError::Internal(format!("a scratch directory: {error}")))?;
        let text = gpg::verify_clearsigned(&keyring, &signed, &home, release::MAX_RELEASE_BYTES)
            .map_err(|error| match error {
                gpg::SignatureError::Refused(reason) => UpstreamError::BadSignature {
                    url: url.clone(),
                    reason,
                },
                gpg::SignatureError::Failed(reason) => UpstreamError::Internal(reason),
            })?;
        let release = release::parse_release(&text).map_err(|error| UpstreamError::Malformed {
            what: url.clone(),
            reason: error.to_string(),
        })?;
        // A signed Release of another suite (an older release's, say) is
        // not this suite's.
        if release.suite != *suite && release.codename != *suite {
            return Err(UpstreamError::Unverified {
                what: url,
                reason: format!(
                    "it is the Release of suite {:?} (codename {:?}), not of {suite:?}",
                    release.suite, release.codename
                ),
            });
        }
        if let Some(valid_until) = release.valid_until
            && valid_until <= now
        {
            return Err(UpstreamError::Expired { url, valid_until });
        }
        if let Some(Some(held_date)) = held.releases.get(suite)
            && release.date.is_none_or(|date| date < *held_date)
        {
            return Err(UpstreamError::Rollback {
                url,
                date: release
                    .date
                    .map_or_else(|| "none".to_owned(), |date| date.to_string()),
                held: *held_date,
            });
        }
        fingerprint.update(suite.as_bytes());
        fingerprint.update([0]);
        fingerprint.update(Sha256::digest(&signed));
        suites.push(SuiteRelease {
            suite: suite.clone(),
            release,
        });
    }
    let fingerprint = hex::encode(fingerprint.finalize());
    if fingerprint == held.fingerprint {
        return Ok(Fetched::Unchanged);
    }
    std::fs::create_dir_all(cache_dir)
        .map_err(|error| UpstreamError::Internal(format!("{}: {error}", cache_dir.display())))?;
    let mut texts: Vec<(usize, String, String)> = Vec::new();
    let (mut fetched, mut cached) = (0, 0);
    let mut used = HashSet::new();
    for (index, suite) in suites.iter().enumerate() {
        let pocket = pocket_of(&suite.release);
        if !spec.wants_pocket(pocket.class()) {
            continue;
        }
        for component in &spec.components {
            for architecture in &spec.architectures {
                let path = format!("{component}/binary-{architecture}/Packages");
                let index_file = fetch_index(&agent, spec, suite, &path, cache_dir)?;
                if index_file.from_cache {
                    cached += 1;
                } else {
                    fetched += 1;
                }
                used.insert(index_file.cache_name);
                texts.push((
                    index,
                    format!("{}dists/{}/{path}", spec.url, suite.suite),
                    index_file.text,
                ));
            }
        }
    }
    let mut parsed: Vec<Vec<BinaryPackage<'_>>> = Vec::with_capacity(texts.len());
    for (_, what, text) in &texts {
        parsed.push(
            openwua_apt::packages::parse_packages(text).map_err(|error| {
                UpstreamError::Malformed {
                    what: what.clone(),
                    reason: error.to_string(),
                }
            })?,
        );
    }
    let offered: Vec<OfferedList<'_>> = texts
        .iter()
        .zip(&parsed)
        .map(|((index, _, _), packages)| OfferedList {
            pocket: pocket_of(&suites[*index].release),
            packages,
        })
        .collect();
    let mut revisions =
        openwua_apt::mapping::map_sources(&offered, &|source| spec.wants_source(source));
    let filenames: HashMap<[u8; 32], &str> = parsed
        .iter()
        .flatten()
        .map(|package| (package.sha256.0, package.filename))
        .collect();
    let mut state = UpstreamState {
        last_sync: Some(now),
        fingerprint,
        releases: suites
            .iter()
            .map(|suite| (suite.suite.clone(), suite.release.date))
            .collect(),
        known: held.known.clone(),
        updates: revisions.len(),
        learned: held.learned.clone(),
    };
    let mut files = Vec::new();
    for revision in &mut revisions {
        attach_content(spec, revision, &filenames, &mut files)?;
        supersede_known(revision, &mut state.known);
        if let Some(learned) = state.learned.get(&revision.update.identity.update_id) {
            changelog::apply(revision, learned);
        }
    }
    Ok(Fetched::Mapped {
        revisions,
        files,
        state: Box::new(state),
        fetched,
        cached,
        used,
    })
}

fn pocket_of(release: &Release) -> Pocket<'_> {
    Pocket {
        origin: release.publisher(),
        suite: &release.suite,
        codename: &release.codename,
    }
}

fn fetch_error(url: &str, error: fetch::FetchError) -> UpstreamError {
    match error {
        fetch::FetchError::NotFound => UpstreamError::NotFound(url.to_owned()),
        fetch::FetchError::Failed(reason) => UpstreamError::Fetch(reason),
    }
}

/// An index's verified, decompressed text.
struct IndexFile {
    text: String,
    cache_name: String,
    from_cache: bool,
}

/// The compressions tried, fastest to read first.
const PREFERRED: [Compression; 5] = [
    Compression::Zstd,
    Compression::Lz4,
    Compression::Gzip,
    Compression::Xz,
    Compression::Plain,
];

/// Fetches `path` (`main/binary-amd64/Packages`) of `suite`: the first
/// compression the Release lists that the mirror has, by hash when the
/// Release says `Acquire-By-Hash`, verified against the Release's size
/// and SHA-256, then decompressed (bounded) and checked against the
/// uncompressed entry when the Release lists one.
fn fetch_index(
    agent: &ureq::Agent,
    spec: &UpstreamSpec,
    suite: &SuiteRelease,
    path: &str,
    cache_dir: &Path,
) -> Result<IndexFile, UpstreamError> {
    let release = &suite.release;
    let base = format!("{}dists/{}/", spec.url, suite.suite);
    let mut listed = false;
    for compression in PREFERRED {
        let name = format!("{path}{}", compression.extension());
        let Some(expected) = release.sha256.get(&name) else {
            continue;
        };
        listed = true;
        let digest = expected.sha256.to_string();
        let cache_path = cache_dir.join(&digest);
        let mut from_cache = false;
        let bytes = match read_cached(&cache_path, expected.size, &expected.sha256) {
            Some(bytes) => {
                from_cache = true;
                bytes
            }
            None => {
                let by_hash = release.acquire_by_hash.then(|| {
                    let dir = name.rsplit_once('/').map_or("", |(dir, _)| dir);
                    format!("{base}{dir}/by-hash/SHA256/{digest}")
                });
                let plain = format!("{base}{name}");
                // By hash first, the path if the mirror lacks it (as apt).
                let mut got = None;
                for url in by_hash.iter().chain(std::iter::once(&plain)) {
                    match fetch::get(agent, url, expected.size) {
                        Ok(bytes) => {
                            got = Some((url.clone(), bytes));
                            break;
                        }
                        Err(fetch::FetchError::NotFound) => continue,
                        Err(error) => return Err(fetch_error(url, error)),
                    }
                }
                let Some((url, bytes)) = got else {
                    continue;
                };
                let sha256 = Sha256Digest(Sha256::digest(&bytes).into());
                if bytes.len() as u64 != expected.size || sha256 != expected.sha256 {
                    return Err(UpstreamError::Unverified {
                        what: url,
                        reason: format!(
                            "{} bytes with SHA-256 {sha256}, not the {} bytes with {} the Release gives",
                            bytes.len(),
                            expected.size,
                            expected.sha256
                        ),
                    });
                }
                write_cached(cache_dir, &cache_path, &bytes)?;
                bytes
            }
        };
        let what = format!("{base}{name}");
        let content = compressed::decompress(&bytes, compression, compressed::MAX_INDEX_BYTES)
            .map_err(|error| UpstreamError::Malformed {
                what: what.clone(),
                reason: error.to_string(),
            })?;
        if compression != Compression::Plain
            && let Some(plain) = release.sha256.get(path)
            && (plain.size != content.bytes.len() as u64 || plain.sha256 != content.sha256)
        {
            return Err(UpstreamError::Unverified {
                what,
                reason: format!("decompressed, it is not the {path} the Release lists"),
            });
        }
        let text = String::from_utf8(content.bytes).map_err(|_| UpstreamError::Malformed {
            what,
            reason: "not UTF-8 text".into(),
        })?;
        return Ok(IndexFile {
            text,
            cache_name: digest,
            from_cache,
        });
    }
    if listed {
        Err(UpstreamError::NotFound(format!("{base}{path}")))
    } else {
        Err(UpstreamError::Unverified {
            what: format!("{base}InRelease"),
            reason: format!("it lists no {path} (check the components and architectures)"),
        })
    }
}

/// A cached index, if it is there whole and has the digest its name says.
fn read_cached(path: &Path, size: u64, sha256: &Sha256Digest) -> Option<Vec<u8>> {
    let metadata = std::fs::metadata(path).ok()?;
    if metadata.len() != size {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    (Sha256Digest(Sha256::digest(&bytes).into()) == *sha256).then_some(bytes)
}

fn write_cached(cache_dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), UpstreamError> {
    let internal = |error: std::io::Error| {
        UpstreamError::Internal(format!("caching {}: {error}", path.display()))
    };
    let mut temp = tempfile::NamedTempFile::new_in(cache_dir).map_err(internal)?;
    std::io::Write::write_all(&mut temp, bytes).map_err(internal)?;
    temp.persist(path).map_err(|error| internal(error.error))?;
    Ok(())
}

/// Drops cached indexes the last sync did not use.
fn prune_cache(cache_dir: &Path, used: &HashSet<String>) {
    let Ok(listing) = std::fs::read_dir(cache_dir) else {
        return;
    };
    for entry in listing.flatten() {
        let name = entry.file_name();
        if !used.contains(name.to_string_lossy().as_ref()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether an index's `Filename` is a plain relative path under the
/// mirror.
fn is_safe_filename(filename: &str) -> bool {
    !filename.is_empty()
        && filename.len() <= MAX_FILENAME
        && !filename.starts_with('/')
        && filename
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && filename
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '?' && c != '#' && c != '\\')
}

/// Gives an apt revision its `.deb`s as content files (served by this
/// server once fetched) and records where each comes from.
fn attach_content(
    spec: &UpstreamSpec,
    revision: &mut Revision,
    filenames: &HashMap<[u8; 32], &str>,
    files: &mut Vec<UpstreamFile>,
) -> Result<(), UpstreamError> {
    let Handler::Apt { packages, .. } = &revision.handler else {
        return Ok(());
    };
    let update_id = revision.update.identity.update_id;
    let mut content: Vec<ContentFile> = Vec::with_capacity(packages.len());
    for package in packages {
        let filename = filenames.get(&package.sha256.0).copied().unwrap_or("");
        if !is_safe_filename(filename) {
            return Err(UpstreamError::Malformed {
                what: format!("{}: {} {}", spec.name, package.name, package.version),
                reason: format!("its Filename {filename:?} is not a plain path under the mirror"),
            });
        }
        let file_name = package.deb_file_name();
        if content.iter().any(|file| file.file_name == file_name) {
            continue;
        }
        files.push(UpstreamFile {
            update_id,
            sha256: package.sha256.to_string(),
            size: package.size,
            url: format!("{}{filename}", spec.url),
        });
        content.push(ContentFile {
            file_name,
            size: package.size,
            sha256: package.sha256,
            url: format!("content/{}", package.sha256),
        });
    }
    revision.update.download_contents = content
        .iter()
        .map(|file| DownloadContent {
            file_name: file.file_name.clone(),
            size: file.size,
            sha256: file.sha256,
        })
        .collect();
    revision.content = content;
    Ok(())
}

/// Adds to a revision's `SupersededUpdateIDs` the older versions of its
/// source published by earlier syncs (the index may have dropped them),
/// and remembers its own version.
fn supersede_known(revision: &mut Revision, known: &mut BTreeMap<String, Vec<(String, Uuid)>>) {
    let update = &mut revision.update;
    let name_of = |kind: &str| {
        update
            .categories
            .iter()
            .find(|category| category.category_type == kind)
            .map(|category| category.name.clone())
    };
    let (Some(origin), Some(source)) = (name_of("Company"), name_of("Product")) else {
        return;
    };
    let Some(version_text) = update.title.strip_prefix(&format!("{source} ")) else {
        return;
    };
    let Ok(version) = version_text.parse::<debversion::Version>() else {
        return;
    };
    let versions = known.entry(format!("{origin}\0{source}")).or_default();
    for (other, id) in versions.iter() {
        let older = other
            .parse::<debversion::Version>()
            .is_ok_and(|other| other < version);
        if older && !update.superseded_update_ids.contains(id) {
            update.superseded_update_ids.push(*id);
        }
    }
    let id = update.identity.update_id;
    if !versions.iter().any(|(_, known_id)| *known_id == id) {
        versions.push((version_text.to_owned(), id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_stay_under_the_mirror() {
        assert!(is_safe_filename("pool/main/h/hello/hello_2.10-3_amd64.deb"));
        assert!(!is_safe_filename("/etc/passwd"));
        assert!(!is_safe_filename("pool/../../etc/passwd"));
        assert!(!is_safe_filename("pool//x.deb"));
        assert!(!is_safe_filename("pool/x.deb?y"));
        assert!(!is_safe_filename(""));
    }

    fn spec() -> UpstreamSpec {
        UpstreamSpec {
            name: "debian".into(),
            url: "http://deb.example/debian".into(),
            suites: vec!["bookworm".into()],
            components: vec!["main".into()],
            architectures: vec!["amd64".into()],
            sources: vec![],
            pockets: vec![],
            keyring: "99".into(),
        }
    }

    #[test]
    fn settings_are_checked() {
        let (checked, keyring) = spec().checked().unwrap();
        assert_eq!(checked.url, "http://deb.example/debian/");
        assert_eq!(keyring, [0x99]);
        for broken in [
            UpstreamSpec {
                name: "a b".into(),
                ..spec()
            },
            UpstreamSpec {
                url: "file:///etc".into(),
                ..spec()
            },
            UpstreamSpec {
                suites: vec!["../x".into()],
                ..spec()
            },
            UpstreamSpec {
                components: vec![],
                ..spec()
            },
            UpstreamSpec {
                keyring: hex::encode("-----BEGIN PGP"),
                ..spec()
            },
            UpstreamSpec {
                sources: vec!["a/b".into()],
                ..spec()
            },
        ] {
            assert!(matches!(broken.checked(), Err(UpstreamError::Invalid(_))));
        }
    }
}
