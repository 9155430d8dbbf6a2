//! The server's state, behind one interface with two back ends: SQLite for
//! one machine, PostgreSQL for several front ends sharing one database.
//!
//! Nothing the API answers is kept in process memory: every answer comes
//! from the database, so any number of `wua-server` processes on one
//! PostgreSQL database agree. A publish is one transaction that also takes
//! the next catalog version, so a killed server leaves either all of it or
//! none of it.

mod automation;
mod changes;
mod console;
mod maintenance;
mod postgres;
mod sqlite;
pub mod upstreams;

pub use automation::RuleApproval;
use automation::{decode_rollout, decode_rule, rollout_approvals, snapshot_key};
pub use console::{
    ComputerReport, ComputerRow, ComputerUpdateRow, ConsoleSession, ConsoleToken, FailingUpdate,
    FailureCode, FailureRow, GroupHealth, Page, RevisionRow, Role, UpdateComputerRow,
};

use std::collections::HashMap;
use std::path::Path;

use jiff::Timestamp;
use openwua_catalog::revision::Revision;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::fleet::{
    Approval, ApprovalAction, Computer, Credentials, Group, GroupChange, NewComputer, Offer,
};
use crate::reports::{
    Inventory, LastReport, ReportRequest, ReportedUpdate, ResultCode, StoredState, UpdateState,
};
pub use maintenance::{ComputerFacts, MaintenanceLock, UpdateFacts, UpdateRemoval};

/// The schema version this build migrates to (each back end records its own).
pub const SCHEMA_VERSION: i64 = 50;

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had.
    #[error("PostgreSQL pool: {0}")]
    Pool(String),
    /// A file of the store could not be made or read.
    #[error("{0}")]
    Io(String),
    /// A publish named content files the server does not hold.
    #[error("content not uploaded: {}", .0.join(", "))]
    MissingContent(Vec<String>),
    /// The database holds something this build cannot read.
    #[error("the database holds {0}")]
    Corrupt(String),
    /// The store holds as many of these as it takes.
    #[error("the server holds the most {0} it takes")]
    TooMany(&'static str),
    /// The database was migrated by a newer build.
    #[error("the database's schema is version {found}; this build knows up to {SCHEMA_VERSION}")]
    SchemaTooNew {
        /// The version the database records.
        found: i64,
    },
}

/// The store: SQLite or PostgreSQL, with the same operations.
#[derive(Clone)]
pub enum Store {
    /// One SQLite file in the data directory.
    Sqlite(sqlite::SqliteStore),
    /// A PostgreSQL database, through a small pool.
    Postgres(postgres::PostgresStore),
}

/// One stored revision, as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredRevision {
    /// `UpdateID`.
    pub update_id: Uuid,
    /// `RevisionNumber`, assigned by the server.
    pub revision_number: i32,
    /// The update's title.
    pub title: String,
    /// SHA-256 of the revision's canonical JSON (revision number left out).
    pub digest: String,
    /// Whether the update is declined (withdrawn).
    pub declined: bool,
    /// When this revision was published.
    #[schema(value_type = String)]
    pub published: Timestamp,
}

/// What a publish did to one update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum PublishAction {
    /// Not known before; stored as its first revision.
    Added,
    /// Known, with different content: stored as the next revision.
    Revised,
    /// Known with the same content: nothing changed.
    Unchanged,
}

/// One update's line of a publish report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishedUpdate {
    /// `UpdateID`.
    pub update_id: Uuid,
    /// The revision now current.
    pub revision_number: i32,
    /// What happened.
    pub action: PublishAction,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishReport {
    /// Whether anything changed.
    pub changed: bool,
    /// The catalog version after the publish.
    pub catalog_version: u64,
    /// One line per update, in request order.
    pub updates: Vec<PublishedUpdate>,
    /// The approvals automatic approval rules gave in the same transaction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_approvals: Vec<RuleApproval>,
}

/// What declining did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclineOutcome {
    /// The update was declined; the catalog moved to this version.
    Declined(u64),
    /// It was declined already; nothing changed.
    AlreadyDeclined(u64),
    /// No such update.
    Unknown,
}

/// A revision prepared for publishing: its digest, and its JSON once the
/// store has chosen its number.
pub struct Candidate {
    revision: Revision,
    digest: String,
}

impl Candidate {
    /// Digests `revision` with its revision number left out, so that the
    /// same content published again is recognised whatever number it says.
    pub fn new(mut revision: Revision) -> Result<Self, StoreError> {
        let submitted = revision.update.identity.revision_number;
        revision.update.identity.revision_number = 0;
        let bytes = serde_json::to_vec(&revision)
            .map_err(|error| StoreError::Corrupt(format!("an unencodable revision: {error}")))?;
        revision.update.identity.revision_number = submitted;
        Ok(Candidate {
            digest: hex::encode(Sha256::digest(&bytes)),
            revision,
        })
    }

    fn update_id(&self) -> Uuid {
        self.revision.update.identity.update_id
    }

    fn content_digests(&self) -> impl Iterator<Item = String> + '_ {
        self.revision
            .content
            .iter()
            .map(|file| file.sha256.to_string())
    }

    /// Decides what happens given the update's current (number, digest),
    /// and the JSON to store if something does.
    fn plan(
        &self,
        current: Option<(i32, &str)>,
    ) -> Result<(PublishedUpdate, Option<String>), StoreError> {
        let submitted = self.revision.update.identity.revision_number;
        let (action, number) = match current {
            Some((number, digest)) if digest == self.digest => (PublishAction::Unchanged, number),
            Some((number, _)) => (
                PublishAction::Revised,
                number
                    .checked_add(1)
                    .ok_or_else(|| StoreError::Corrupt("a revision number at its limit".into()))?
                    .max(submitted),
            ),
            None => (PublishAction::Added, submitted.max(1)),
        };
        let published = PublishedUpdate {
            update_id: self.update_id(),
            revision_number: number,
            action,
        };
        if action == PublishAction::Unchanged {
            return Ok((published, None));
        }
        let mut revision = self.revision.clone();
        revision.update.identity.revision_number = number;
        let json = serde_json::to_string(&revision)
            .map_err(|error| StoreError::Corrupt(format!("an unencodable revision: {error}")))?;
        Ok((published, Some(json)))
    }

    fn title(&self) -> &str {
        &self.revision.update.title
    }
}

impl Store {
    /// Opens (creating and migrating) the SQLite store at `path`; the file
    /// is made 0600.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        sqlite::SqliteStore::open(path.to_owned())
            .await
            .map(Store::Sqlite)
    }

    /// Connects to PostgreSQL at `url` (`postgres://…`) and migrates it.
    pub async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        postgres::PostgresStore::open(url)
            .await
            .map(Store::Postgres)
    }

    /// Which back end this is, for logs and `/readyz`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgresql",
        }
    }

    /// The schema version the database records.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        match self {
            Store::Sqlite(store) => store.schema_version().await,
            Store::Postgres(store) => store.schema_version().await,
        }
    }

    /// Records an admin token's SHA-256 (a token known already is kept once).
    pub async fn add_admin_token(&self, sha256: [u8; 32]) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(store) => store.add_admin_token(sha256).await,
            Store::Postgres(store) => store.add_admin_token(sha256).await,
        }
    }

    /// Every admin token's SHA-256.
    pub async fn admin_tokens(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        match self {
            Store::Sqlite(store) => store.admin_tokens().await,
            Store::Postgres(store) => store.admin_tokens().await,
        }
    }

    /// The size of the stored content file `sha256` (lower-case hex), if any.
    pub async fn content_size(&self, sha256: &str) -> Result<Option<u64>, StoreError> {
        match self {
            Store::Sqlite(store) => store.content_size(sha256.to_owned()).await,
            Store::Postgres(store) => store.content_size(sha256).await,
        }
    }

    /// Records a content file whose bytes are in place.
    pub async fn add_content(&self, sha256: &str, size: u64) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(store) => store.add_content(sha256.to_owned(), size).await,
            Store::Postgres(store) => store.add_content(sha256, size).await,
        }
    }

    /// Publishes `candidates` in one transaction: each is added, revised or
    /// left as it is, and the catalog version goes up once if anything
    /// changed. Every content file they list must be stored already.
    pub async fn publish(&self, candidates: Vec<Candidate>) -> Result<PublishReport, StoreError> {
        match self {
            Store::Sqlite(store) => store.publish(candidates, true).await,
            Store::Postgres(store) => store.publish(candidates, true).await,
        }
    }

    /// [`Store::publish`] for a server whose content lives at an
    /// operator's base URL: the content files need not be stored here.
    pub async fn publish_content_elsewhere(
        &self,
        candidates: Vec<Candidate>,
    ) -> Result<PublishReport, StoreError> {
        match self {
            Store::Sqlite(store) => store.publish(candidates, false).await,
            Store::Postgres(store) => store.publish(candidates, false).await,
        }
    }

    /// Declines (withdraws) an update, every revision of it.
    pub async fn decline(&self, update_id: Uuid) -> Result<DeclineOutcome, StoreError> {
        match self {
            Store::Sqlite(store) => store.decline(update_id).await,
            Store::Postgres(store) => store.decline(update_id).await,
        }
    }

    /// The current revision of every update, ordered by update ID.
    pub async fn list_updates(&self) -> Result<Vec<StoredRevision>, StoreError> {
        match self {
            Store::Sqlite(store) => store.list_updates().await,
            Store::Postgres(store) => store.list_updates().await,
        }
    }

    /// Every revision of one update, oldest first, and the current one's JSON.
    pub async fn update_history(
        &self,
        update_id: Uuid,
    ) -> Result<Option<(Vec<StoredRevision>, Revision)>, StoreError> {
        let found = match self {
            Store::Sqlite(store) => store.update_history(update_id).await?,
            Store::Postgres(store) => store.update_history(update_id).await?,
        };
        let Some((revisions, json)) = found else {
            return Ok(None);
        };
        let revision = serde_json::from_str(&json).map_err(|error| {
            StoreError::Corrupt(format!("an unreadable revision of {update_id}: {error}"))
        })?;
        Ok(Some((revisions, revision)))
    }

    /// The catalog version: 0 before the first publish, then one more for
    /// each publish or decline that changed something.
    pub async fn catalog_version(&self) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(store) => store.catalog_version().await,
            Store::Postgres(store) => store.catalog_version().await,
        }
    }
}

/// One revision a sync sends: its stored JSON and what its group's
/// approval offers (Install or Uninstall, and a deadline).
#[derive(Debug, Clone)]
pub struct Offered {
    /// The revision's JSON, as published.
    pub json: String,
    /// The effective approval's action and deadline.
    pub offer: Offer,
}

/// What a sync sends one group's computer, read as of one moment.
pub struct SyncView {
    /// The catalog version.
    pub version: u64,
    /// The current revision of each update approved for Install or
    /// Uninstall, declined ones left out.
    pub revisions: Vec<Offered>,
}

/// What changed for one computer's group between its anchor and now.
pub struct DeltaView {
    /// The agent's anchor.
    pub base_version: u64,
    /// The catalog version now.
    pub version: u64,
    /// The revisions whose offer to the group changed (new revisions,
    /// approvals given or changed), as a full snapshot would send them.
    pub changed: Vec<Offered>,
    /// The updates the agent held at its anchor and must remove: declined,
    /// or no longer approved for its group.
    pub removed: Vec<Uuid>,
}

/// What a computer's sync is answered with, decided in one transaction.
pub enum SyncPlan {
    /// The anchor is the current version: a still-current statement.
    Current(u64),
    /// A delta from the anchor.
    Delta(DeltaView),
    /// A full snapshot of `group` at `version`: no anchor, one older than
    /// the log's retention or than the computer's last move or
    /// registration, or one this server never issued. `view` is `None`
    /// when the caller said it holds that snapshot already.
    Full {
        /// What the snapshot is cached under: the computer's group, with
        /// its rollout bucket when a percentage ring gates some update
        /// (then computers of one group may be sent different catalogs).
        group: String,
        /// The catalog version.
        version: u64,
        /// The snapshot's revisions, unless cached by the caller.
        view: Option<SyncView>,
    },
}

/// How a sync's anchor is answered, given the catalog `version`, the
/// oldest version the change log still covers (`log_floor`) and the
/// computer's `full_below` (anchors below it predate its group).
enum Answer {
    Current,
    Delta(u64),
    Full,
}

fn answer(anchor: Option<u64>, version: u64, log_floor: u64, full_below: u64) -> Answer {
    match anchor {
        // Never issued by this server (a restored database, a lie), or
        // from before the computer's registration or move.
        Some(anchor) if anchor > version || anchor < full_below => Answer::Full,
        Some(anchor) if anchor == version => Answer::Current,
        Some(anchor) if anchor >= log_floor => Answer::Delta(anchor),
        _ => Answer::Full,
    }
}

impl Store {
    /// The server's serviceId, made by the first start.
    pub async fn service_id(&self) -> Result<Uuid, StoreError> {
        match self {
            Store::Sqlite(store) => store.service_id().await,
            Store::Postgres(store) => store.service_id().await,
        }
    }

    /// Every group, by name.
    pub async fn list_groups(&self) -> Result<Vec<Group>, StoreError> {
        match self {
            Store::Sqlite(store) => store.list_groups().await,
            Store::Postgres(store) => store.list_groups().await,
        }
    }

    /// Adds a group under `parent`; the catalog version goes up with it.
    pub async fn add_group(&self, name: &str, parent: &str) -> Result<GroupChange, StoreError> {
        match self {
            Store::Sqlite(store) => store.add_group(name.to_owned(), parent.to_owned()).await,
            Store::Postgres(store) => store.add_group(name, parent).await,
        }
    }

    /// Removes a group with no computers and no child groups, and its
    /// approvals; the built-in groups stay.
    pub async fn remove_group(&self, name: &str) -> Result<GroupChange, StoreError> {
        if name == crate::fleet::ALL_COMPUTERS || name == crate::fleet::UNASSIGNED_COMPUTERS {
            return Ok(GroupChange::BuiltIn);
        }
        match self {
            Store::Sqlite(store) => store.remove_group(name.to_owned()).await,
            Store::Postgres(store) => store.remove_group(name).await,
        }
    }

    /// What authenticates a computer, if it is known.
    pub async fn credentials(&self, computer_id: Uuid) -> Result<Option<Credentials>, StoreError> {
        match self {
            Store::Sqlite(store) => store.credentials(computer_id).await,
            Store::Postgres(store) => store.credentials(computer_id).await,
        }
    }

    /// Stores a new computer in its target group if that exists, else in
    /// "Unassigned Computers"; returns the group. A clone bumps the catalog
    /// version in the same transaction.
    pub async fn add_computer(&self, computer: NewComputer) -> Result<String, StoreError> {
        match self {
            Store::Sqlite(store) => store.add_computer(computer).await,
            Store::Postgres(store) => store.add_computer(computer).await,
        }
    }

    /// Every computer, by host name.
    pub async fn list_computers(&self) -> Result<Vec<Computer>, StoreError> {
        match self {
            Store::Sqlite(store) => store.list_computers(None).await,
            Store::Postgres(store) => store.list_computers(None).await,
        }
    }

    /// One computer.
    pub async fn computer(&self, computer_id: Uuid) -> Result<Option<Computer>, StoreError> {
        let found = match self {
            Store::Sqlite(store) => store.list_computers(Some(computer_id)).await?,
            Store::Postgres(store) => store.list_computers(Some(computer_id)).await?,
        };
        Ok(found.into_iter().next())
    }

    /// Moves a computer to another group; the catalog version goes up.
    pub async fn move_computer(
        &self,
        computer_id: Uuid,
        group: &str,
    ) -> Result<GroupChange, StoreError> {
        match self {
            Store::Sqlite(store) => store.move_computer(computer_id, group.to_owned()).await,
            Store::Postgres(store) => store.move_computer(computer_id, group).await,
        }
    }

    /// Records that a computer synced now.
    pub async fn record_sync(&self, computer_id: Uuid) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(store) => store.record_sync(computer_id).await,
            Store::Postgres(store) => store.record_sync(computer_id).await,
        }
    }

    /// Sets a group's own approval of an update (replacing its earlier
    /// one); the catalog version goes up.
    pub async fn set_approval(&self, approval: Approval) -> Result<GroupChange, StoreError> {
        match self {
            Store::Sqlite(store) => store.set_approval(approval).await,
            Store::Postgres(store) => store.set_approval(approval).await,
        }
    }

    /// One update's approvals, group by group.
    pub async fn approvals(&self, update_id: Uuid) -> Result<Vec<Approval>, StoreError> {
        match self {
            Store::Sqlite(store) => store.approvals(Some(update_id)).await,
            Store::Postgres(store) => store.approvals(Some(update_id)).await,
        }
    }

    /// What a computer in `group` is sent in full.
    pub async fn sync_view(&self, group: &str) -> Result<SyncView, StoreError> {
        match self {
            Store::Sqlite(store) => store.sync_view(group.to_owned()).await,
            Store::Postgres(store) => store.sync_view(group).await,
        }
    }

    /// How to answer `computer_id`'s sync from `anchor`, with what to send,
    /// all read in one transaction. `cached` lists the (group, version)
    /// snapshots the caller holds, which are then not read. `None`: no such
    /// computer.
    pub async fn sync_plan(
        &self,
        computer_id: Uuid,
        anchor: Option<u64>,
        cached: Vec<(String, u64)>,
    ) -> Result<Option<SyncPlan>, StoreError> {
        match self {
            Store::Sqlite(store) => store.sync_plan(computer_id, anchor, cached).await,
            Store::Postgres(store) => store.sync_plan(computer_id, anchor, cached).await,
        }
    }

    /// Drops the change log's rows written before `older_than`; anchors
    /// older than the newest version dropped get full snapshots from then
    /// on. Returns how many rows went.
    pub async fn prune_sync_log(&self, older_than: Timestamp) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(store) => store.prune_sync_log(older_than).await,
            Store::Postgres(store) => store.prune_sync_log(older_than).await,
        }
    }

    /// The oldest anchor a delta can be computed from (anchors below it get
    /// a full snapshot).
    pub async fn sync_log_floor(&self) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(store) => store.sync_log_floor().await,
            Store::Postgres(store) => store.sync_log_floor().await,
        }
    }
}

/// Status reports.
impl Store {
    /// Stores a report in one transaction unless its sequence is not above
    /// the computer's acknowledged one; returns the acknowledgement after.
    pub async fn store_report(
        &self,
        computer_id: Uuid,
        report: ReportRequest,
    ) -> Result<u64, StoreError> {
        let sequence = i64::try_from(report.sequence)
            .map_err(|_| StoreError::Corrupt(format!("a sequence {}", report.sequence)))?;
        let inventory = serde_json::to_string(&report.inventory)
            .map_err(|error| StoreError::Corrupt(format!("an unencodable inventory: {error}")))?;
        let rows = report.updates.iter().map(StateRow::from).collect();
        let acknowledged = match self {
            Store::Sqlite(store) => {
                store
                    .store_report(computer_id, sequence, inventory, rows)
                    .await?
            }
            Store::Postgres(store) => {
                store
                    .store_report(computer_id, sequence, inventory, rows)
                    .await?
            }
        };
        version_from(acknowledged)
    }

    /// Every stored state, or one update's.
    pub async fn update_states(
        &self,
        update_id: Option<Uuid>,
    ) -> Result<Vec<StoredState>, StoreError> {
        let rows = match self {
            Store::Sqlite(store) => store.update_states(update_id).await?,
            Store::Postgres(store) => store.update_states(update_id).await?,
        };
        rows.into_iter()
            .map(|(computer_id, row)| row.into_stored(computer_id))
            .collect()
    }

    /// When each computer that has reported last did, and the inventory it
    /// sent then.
    pub async fn last_reports(&self) -> Result<HashMap<Uuid, LastReport>, StoreError> {
        let rows = match self {
            Store::Sqlite(store) => store.last_reports().await?,
            Store::Postgres(store) => store.last_reports().await?,
        };
        rows.into_iter()
            .map(|(id, time, inventory)| {
                let inventory = inventory
                    .map(|json| {
                        serde_json::from_str::<Inventory>(&json).map_err(|error| {
                            StoreError::Corrupt(format!("an inventory {json:?}: {error}"))
                        })
                    })
                    .transpose()?;
                Ok((
                    id,
                    LastReport {
                        time: parse_time(&time)?,
                        inventory,
                    },
                ))
            })
            .collect()
    }

    /// Every group's own approvals of every update.
    pub async fn all_approvals(&self) -> Result<Vec<Approval>, StoreError> {
        match self {
            Store::Sqlite(store) => store.approvals(None).await,
            Store::Postgres(store) => store.approvals(None).await,
        }
    }
}

/// One (computer, update) state as the back ends store it: text columns.
struct StateRow {
    update_id: Uuid,
    revision_number: i32,
    state: &'static str,
    result_code: Option<String>,
    hresult: Option<String>,
    time: String,
}

impl StateRow {
    fn from(update: &ReportedUpdate) -> Self {
        StateRow {
            update_id: update.update_id,
            revision_number: update.revision_number,
            state: update.state.as_str(),
            result_code: update.result_code.map(|code| code.as_str().to_owned()),
            hresult: update.hresult.map(|hresult| format!("{hresult:#}")),
            time: update.time.to_string(),
        }
    }

    fn read(
        update_id: Uuid,
        revision_number: i32,
        state: &str,
        result_code: Option<String>,
        hresult: Option<String>,
        time: String,
    ) -> Result<Self, StoreError> {
        Ok(StateRow {
            update_id,
            revision_number,
            state: UpdateState::parse(state)
                .ok_or_else(|| StoreError::Corrupt(format!("an update state {state:?}")))?
                .as_str(),
            result_code,
            hresult,
            time,
        })
    }

    fn into_stored(self, computer_id: Uuid) -> Result<StoredState, StoreError> {
        let corrupt = |what: &str, text: &str| StoreError::Corrupt(format!("{what} {text:?}"));
        let result_code = self
            .result_code
            .as_deref()
            .map(|text| {
                serde_json::from_value::<ResultCode>(serde_json::Value::String(text.to_owned()))
                    .map_err(|_| corrupt("a result code", text))
            })
            .transpose()?;
        let hresult = self
            .hresult
            .as_deref()
            .map(|text| text.parse().map_err(|_| corrupt("an HRESULT", text)))
            .transpose()?;
        Ok(StoredState {
            computer_id,
            update: ReportedUpdate {
                update_id: self.update_id,
                revision_number: self.revision_number,
                state: UpdateState::parse(self.state)
                    .ok_or_else(|| corrupt("an update state", self.state))?,
                result_code,
                hresult,
                time: parse_time(&self.time)?,
            },
        })
    }
}

fn approval_from(
    update_id: &str,
    group: String,
    action: &str,
    deadline: Option<&str>,
) -> Result<Approval, StoreError> {
    Ok(Approval {
        update_id: update_id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("update ID {update_id:?}")))?,
        group,
        action: ApprovalAction::parse(action)
            .ok_or_else(|| StoreError::Corrupt(format!("an approval {action:?}")))?,
        deadline: deadline.map(parse_time).transpose()?,
    })
}

fn parse_time(text: &str) -> Result<Timestamp, StoreError> {
    text.parse()
        .map_err(|error| StoreError::Corrupt(format!("a timestamp {text:?}: {error}")))
}

fn version_from(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("catalog version {value}")))
}

fn token_from(bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("an admin token hash that is not 32 bytes".into()))
}
