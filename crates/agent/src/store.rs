//! The agent's SQLite store: services, revisions, per-update state, history.
//!
//! One connection, used by one thread at a time (the agent serialises
//! writers through [`Store`]'s mutex), in WAL mode so a reader never sees a
//! half-applied sync and a killed agent leaves the last committed catalog.
//! The schema's version is SQLite's `user_version`; [`MIGRATIONS`] brings an
//! older store forward, and a newer one is refused (`WU_E_DS_BADVERSION`).

use std::collections::HashMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use jiff::Timestamp;
use openwua_catalog::revision::Revision;
use openwua_catalog::snapshot::Snapshot;
use openwua_catalog::sync::{Anchor, Delta, Response};
use openwua_model::history::HistoryEntry;
use openwua_model::hresult::{
    WU_E_DS_BADVERSION, WU_E_DS_INVALID, WU_E_DS_UNKNOWNSERVICE, WU_E_NO_INTERACTIVE_USER,
    WU_E_NO_SERVICE,
};
use openwua_model::operation::JobInfo;
use openwua_model::service::{ServiceInfo, ServiceKind};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{AgentError, Result};
use crate::update_server::Credentials;

/// Each entry takes the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE services (
    service_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    is_scan_package INTEGER NOT NULL,
    source TEXT NOT NULL,
    public_key TEXT NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0,
    catalog_version INTEGER,
    issue_date TEXT,
    expiration_date TEXT,
    last_sync TEXT
);
CREATE TABLE revisions (
    id INTEGER PRIMARY KEY,
    service_id TEXT NOT NULL REFERENCES services(service_id) ON DELETE CASCADE,
    update_id TEXT NOT NULL,
    revision_number INTEGER NOT NULL,
    digest BLOB NOT NULL,
    update_json TEXT NOT NULL,
    applicability_json TEXT NOT NULL,
    handler_json TEXT NOT NULL,
    content_json TEXT NOT NULL,
    UNIQUE (service_id, update_id)
);
CREATE TABLE update_state (
    update_id TEXT PRIMARY KEY,
    is_hidden INTEGER NOT NULL DEFAULT 0,
    eula_accepted INTEGER NOT NULL DEFAULT 0,
    installed_record INTEGER NOT NULL DEFAULT 0,
    is_downloaded INTEGER NOT NULL DEFAULT 0,
    reboot_required INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_json TEXT NOT NULL
);
"#,
    r#"
ALTER TABLE services ADD COLUMN content_base TEXT;
ALTER TABLE update_state ADD COLUMN reboot_boot_id TEXT;
-- An installer that is running (or was, when the agent died): its history
-- entry, prepared as "interrupted", is written at the next start.
CREATE TABLE install_journal (
    update_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    interrupted_json TEXT NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- Downloads, installs and uninstalls, so `wua jobs` and `wua watch` can
-- still answer for a job after the agent restarted.
CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    info_json TEXT NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- Updates refused with WU_E_NO_INTERACTIVE_USER: they wait for the next
-- administrator at a terminal (`wua status` lists them).
CREATE TABLE awaiting_interactive_user (
    update_id TEXT PRIMARY KEY,
    entry_json TEXT NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- validUntil of the last still-current statement an update server signed
-- for the imported catalog version; cleared when another version arrives.
ALTER TABLE services ADD COLUMN fresh_until TEXT;
"#,
    r#"
-- Update servers (is_scan_package = 0): the client-side target group asked
-- for, and this computer's identity there. The secret is for the server
-- alone: no query that feeds a reply or a log reads it.
ALTER TABLE services ADD COLUMN target_group TEXT;
ALTER TABLE services ADD COLUMN computer_id TEXT;
ALTER TABLE services ADD COLUMN computer_secret TEXT;
"#,
    r#"
-- Status reports to update servers (docs/agent.md, "Reporting"). Per
-- service: the next sequence (never reused), the highest the server
-- acknowledged, and how the last attempt to send went.
CREATE TABLE report_status (
    service_id TEXT PRIMARY KEY REFERENCES services(service_id) ON DELETE CASCADE,
    next_sequence INTEGER NOT NULL,
    acknowledged INTEGER NOT NULL DEFAULT 0,
    last_sent TEXT,
    last_error TEXT,
    last_error_time TEXT
) WITHOUT ROWID;
-- The parts of the newest full-state report not yet acknowledged; a newer
-- report replaces them all.
CREATE TABLE report_queue (
    service_id TEXT NOT NULL REFERENCES services(service_id) ON DELETE CASCADE,
    sequence INTEGER NOT NULL,
    created TEXT NOT NULL,
    inventory_json TEXT NOT NULL,
    updates_json TEXT NOT NULL,
    PRIMARY KEY (service_id, sequence)
) WITHOUT ROWID;
-- Each update's newest history entry (its last result), kept by the
-- history insert itself so it is written in the same transaction.
CREATE TABLE last_result (
    update_id TEXT PRIMARY KEY,
    entry_json TEXT NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER history_last_result AFTER INSERT ON history
WHEN json_valid(NEW.entry_json)
    AND json_extract(NEW.entry_json, '$.updateIdentity.updateId') IS NOT NULL
BEGIN
    INSERT OR REPLACE INTO last_result (update_id, entry_json)
    VALUES (json_extract(NEW.entry_json, '$.updateIdentity.updateId'), NEW.entry_json);
END;
INSERT OR REPLACE INTO last_result (update_id, entry_json)
SELECT json_extract(entry_json, '$.updateIdentity.updateId'), entry_json FROM history
WHERE id IN (SELECT MAX(id) FROM history WHERE json_valid(entry_json)
             GROUP BY json_extract(entry_json, '$.updateIdentity.updateId'))
  AND json_extract(entry_json, '$.updateIdentity.updateId') IS NOT NULL;
"#,
    r#"
-- What kind of service a row is (`updateServer`, `scanPackage`, `apt`;
-- NULL in rows from before apt services: is_scan_package says), and an apt
-- service's apt root.
ALTER TABLE services ADD COLUMN kind TEXT;
ALTER TABLE services ADD COLUMN apt_root TEXT;
"#,
    r#"
-- An update server's own CA (PEM), trusted beside the system's roots for
-- that service's requests alone.
ALTER TABLE services ADD COLUMN ca_pem TEXT;
"#,
    r#"
-- 7: Automatic Updates (docs/agent.md, "Automatic updates and restarts"):
-- the settings an administrator set, the pause, the results and a
-- deadline's limit on the next restart, as one JSON row.
CREATE TABLE automatic_updates (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state_json TEXT NOT NULL
);
-- The restarts the agent ran; the boot ID confirms them at the next start.
CREATE TABLE restarts (
    id INTEGER PRIMARY KEY,
    record_json TEXT NOT NULL
);
"#,
];

/// What one sync changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportCounts {
    /// Revisions of updates the store did not have.
    pub added: u64,
    /// Revisions that replaced a different stored one.
    pub changed: u64,
    /// Updates the new catalog no longer lists.
    pub removed: u64,
    /// Revisions identical to the stored ones.
    pub unchanged: u64,
}

/// One stored revision, as the in-memory catalog loads it.
#[derive(Debug)]
pub struct StoredRevision {
    /// The service whose catalog holds it.
    pub service_id: Uuid,
    /// The update's JSON, kept as text so replies need not re-encode it.
    pub update_json: String,
    /// The applicability rules' JSON.
    pub applicability_json: String,
    /// For an apt service's revision, its handler's JSON (the index keeps
    /// the packages: `IsDownloaded` and `wua show` need them).
    pub apt_handler_json: Option<String>,
}

/// What installing or uninstalling an update changes in its stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstallRecord {
    /// The agent's install record after the operation.
    pub installed: bool,
    /// A restart finishes it, in the boot given.
    pub reboot_in_boot: Option<BootId>,
}

/// The kernel's boot ID (`/proc/sys/kernel/random/boot_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootId(pub Uuid);

/// A stored revision's installer and content.
#[derive(Debug, Clone)]
pub struct Payload {
    /// What installs it.
    pub handler: openwua_catalog::revision::Handler,
    /// Its content files and their URLs.
    pub content: Vec<openwua_catalog::revision::ContentFile>,
}

/// This machine's recorded state of one update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredState {
    /// Hidden by an administrator.
    pub is_hidden: bool,
    /// Its licence was accepted.
    pub eula_accepted: bool,
    /// The agent installed it (decides `IsInstalled` when no rule does).
    pub installed_record: bool,
    /// All of its content is in the cache: filled in from the cache by the
    /// index, never read from the store.
    pub is_downloaded: bool,
    /// It waits for a restart.
    pub reboot_required: bool,
}

/// The store. Methods block: call them from a blocking task.
pub struct Store {
    connection: Connection,
}

pub(crate) use reports::QueuedReport;

fn parse_uuid(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text)
        .map_err(|error| AgentError::new(WU_E_DS_INVALID, format!("stored id {text:?}: {error}")))
}

fn parse_time(text: Option<String>) -> Result<Option<Timestamp>> {
    text.map(|text| {
        text.parse().map_err(|error| {
            AgentError::new(WU_E_DS_INVALID, format!("stored time {text:?}: {error}"))
        })
    })
    .transpose()
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|error| AgentError::new(WU_E_DS_INVALID, format!("encoding: {error}")))
}

/// Creates the state directory 0700 (and tightens an existing one to it),
/// refusing one that belongs to another user: anyone who can open a state
/// file can lock its bytes and stall or stop the agent.
pub fn prepare_state_dir(dir: &Path) -> Result<()> {
    let failed = |what: &str, error: std::io::Error| {
        AgentError::new(
            WU_E_NO_SERVICE,
            format!("cannot {what} {}: {error}", dir.display()),
        )
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|error| failed("create", error))?;
    // The handle, not the path, is checked and changed, so a rename in
    // between cannot redirect the chmod.
    let handle = File::open(dir).map_err(|error| failed("open", error))?;
    let metadata = handle
        .metadata()
        .map_err(|error| failed("inspect", error))?;
    let agent_uid = nix::unistd::geteuid().as_raw();
    if !metadata.is_dir() || metadata.uid() != agent_uid {
        return Err(AgentError::new(
            WU_E_NO_SERVICE,
            format!(
                "{} must be a directory owned by the agent's user (uid {agent_uid}), but belongs to uid {}; \
                 chown it (`chown -R {agent_uid} {}`) or choose another --state-dir",
                dir.display(),
                metadata.uid(),
                dir.display()
            ),
        ));
    }
    if metadata.mode() & 0o777 != 0o700 {
        handle
            .set_permissions(std::fs::Permissions::from_mode(0o700))
            .map_err(|error| failed("restrict", error))?;
    }
    Ok(())
}

/// Opens (creating if needed) a state file readable and writable by the
/// agent alone: never through a symlink, only a regular file the agent
/// owns, and 0600 even if an older agent left it 0644.
pub fn open_private_file(path: &Path) -> Result<File> {
    let failed = |error: std::io::Error| {
        AgentError::new(
            WU_E_NO_SERVICE,
            format!("cannot open {}: {error}", path.display()),
        )
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(failed)?;
    restrict_private_file(&file, path)?;
    Ok(file)
}

/// Makes an open state file 0600, after checking it is a regular file the
/// agent owns.
fn restrict_private_file(file: &File, path: &Path) -> Result<()> {
    let failed = |error: std::io::Error| {
        AgentError::new(
            WU_E_NO_SERVICE,
            format!("cannot restrict {}: {error}", path.display()),
        )
    };
    let metadata = file.metadata().map_err(failed)?;
    if !metadata.is_file() || metadata.uid() != nix::unistd::geteuid().as_raw() {
        return Err(AgentError::new(
            WU_E_NO_SERVICE,
            format!(
                "{} is not a regular file owned by the agent's user; remove it",
                path.display()
            ),
        ));
    }
    if metadata.mode() & 0o777 != 0o600 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(failed)?;
    }
    Ok(())
}

/// `agent.db` created 0600 before SQLite sees it, since SQLite gives the
/// `-wal` and `-shm` files it creates the database's mode; ones an older
/// agent left behind are restricted too.
fn restrict_store_files(path: &Path) -> Result<()> {
    drop(open_private_file(path)?);
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let companion = Path::new(&name);
        match OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(companion)
        {
            Ok(file) => restrict_private_file(&file, companion)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(AgentError::new(
                    WU_E_NO_SERVICE,
                    format!("cannot open {}: {error}", companion.display()),
                ));
            }
        }
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the store at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store> {
        restrict_store_files(path)?;
        let mut connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        // 64 MiB of page cache: a 100,000-update import touches every page.
        connection.pragma_update(None, "cache_size", -65_536)?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut connection)?;
        Ok(Store { connection })
    }

    /// Every registered service, default first, then by name.
    pub fn services(&self) -> Result<Vec<ServiceInfo>> {
        let mut statement = self.connection.prepare_cached(
            "SELECT s.service_id, s.name, s.is_scan_package, s.source, s.public_key, s.is_default,
                    s.catalog_version, s.issue_date, s.expiration_date, s.last_sync,
                    (SELECT COUNT(*) FROM revisions r WHERE r.service_id = s.service_id),
                    s.content_base, s.kind, s.apt_root
             FROM services s ORDER BY s.is_default DESC, s.name, s.service_id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, bool>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, bool>(5)?,
                row.get::<_, Option<i64>>(6)?,
                row.get::<_, Option<String>>(7)?,
                row.get::<_, Option<String>>(8)?,
                row.get::<_, Option<String>>(9)?,
                row.get::<_, i64>(10)?,
                row.get::<_, Option<String>>(11)?,
                row.get::<_, Option<String>>(12)?,
                row.get::<_, Option<String>>(13)?,
            ))
        })?;
        let mut services = Vec::new();
        for row in rows {
            let (
                id,
                name,
                is_scan,
                source,
                key,
                is_default,
                version,
                issued,
                expires,
                synced,
                count,
                content_base,
                kind,
                apt_root,
            ) = row?;
            let kind = match kind.as_deref() {
                Some("apt") => ServiceKind::Apt,
                Some("scanPackage") => ServiceKind::ScanPackage,
                Some("updateServer") => ServiceKind::UpdateServer,
                None if is_scan => ServiceKind::ScanPackage,
                None => ServiceKind::UpdateServer,
                Some(other) => {
                    return Err(AgentError::new(
                        WU_E_DS_INVALID,
                        format!("stored service {id} has an unknown kind {other:?}"),
                    ));
                }
            };
            services.push(ServiceInfo {
                service_id: parse_uuid(&id)?,
                name,
                is_scan_package_service: is_scan,
                source,
                public_key: key,
                content_base,
                is_default,
                catalog_version: version.map(|version| version.unsigned_abs()),
                issue_date: parse_time(issued)?,
                expiration_date: parse_time(expires)?,
                last_sync: parse_time(synced)?,
                update_count: count.unsigned_abs(),
                kind,
                apt_root,
            });
        }
        Ok(services)
    }

    /// One service, if registered.
    pub fn service(&self, service_id: Uuid) -> Result<Option<ServiceInfo>> {
        Ok(self
            .services()?
            .into_iter()
            .find(|service| service.service_id == service_id))
    }

    /// Registers a service and imports its first snapshot, in one
    /// transaction: a failure leaves no trace.
    pub fn add_service(
        &mut self,
        service: &ServiceInfo,
        snapshot: &Snapshot,
    ) -> Result<ImportCounts> {
        let transaction = self.connection.transaction()?;
        if service.is_default {
            transaction.execute("UPDATE services SET is_default = 0", [])?;
        }
        transaction.execute(
            "INSERT INTO services (service_id, name, is_scan_package, source, public_key, is_default,
                 content_base, kind)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                service.service_id.to_string(),
                service.name,
                service.is_scan_package_service,
                service.source,
                service.public_key,
                service.is_default,
                service.content_base,
                service.kind.as_str(),
            ],
        )?;
        let counts = import(&transaction, snapshot)?;
        transaction.commit()?;
        Ok(counts)
    }

    /// Registers an update-server service with no catalog yet, and this
    /// computer's identity there.
    pub fn add_server_service(
        &mut self,
        service: &ServiceInfo,
        target_group: Option<&str>,
        credentials: &Credentials,
        ca_pem: Option<&str>,
    ) -> Result<()> {
        let transaction = self.connection.transaction()?;
        if service.is_default {
            transaction.execute("UPDATE services SET is_default = 0", [])?;
        }
        transaction.execute(
            "INSERT INTO services (service_id, name, is_scan_package, source, public_key, is_default,
                 content_base, target_group, computer_id, computer_secret, ca_pem, kind)
             VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'updateServer')",
            params![
                service.service_id.to_string(),
                service.name,
                service.source,
                service.public_key,
                service.is_default,
                service.content_base,
                target_group,
                credentials.computer_id.to_string(),
                credentials.secret,
                ca_pem,
            ],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// Registers an apt service with the revisions its first scan found,
    /// in one transaction: a failure leaves no trace.
    pub fn add_apt_service(
        &mut self,
        service: &ServiceInfo,
        revisions: &[Revision],
    ) -> Result<ImportCounts> {
        let transaction = self.connection.transaction()?;
        if service.is_default {
            transaction.execute("UPDATE services SET is_default = 0", [])?;
        }
        transaction.execute(
            "INSERT INTO services (service_id, name, is_scan_package, source, public_key, is_default,
                 kind, apt_root)
             VALUES (?1, ?2, 0, ?3, '', ?4, 'apt', ?5)",
            params![
                service.service_id.to_string(),
                service.name,
                service.source,
                service.is_default,
                service.apt_root,
            ],
        )?;
        let counts = replace_apt_catalog(&transaction, &service.service_id.to_string(), revisions)?;
        transaction.commit()?;
        Ok(counts)
    }

    /// Replaces an apt service's revisions with what a scan of the
    /// machine found, in one transaction: new and changed revisions are
    /// written, vanished ones deleted, identical ones left alone. Its
    /// catalog version goes up by one when anything changed.
    pub fn apply_apt_scan(
        &mut self,
        service_id: Uuid,
        revisions: &[Revision],
    ) -> Result<ImportCounts> {
        let transaction = self.connection.transaction()?;
        let service_id = service_id.to_string();
        let registered: bool = transaction.query_row(
            "SELECT EXISTS (SELECT 1 FROM services WHERE service_id = ?1 AND kind = 'apt')",
            [&service_id],
            |row| row.get(0),
        )?;
        if !registered {
            return Err(AgentError::new(
                WU_E_DS_UNKNOWNSERVICE,
                format!("apt service {service_id} is not registered"),
            ));
        }
        let counts = replace_apt_catalog(&transaction, &service_id, revisions)?;
        transaction.commit()?;
        Ok(counts)
    }

    /// The CA (PEM) an update-server service trusts beside the system's
    /// roots, if it was added with one.
    pub fn server_ca(&self, service_id: Uuid) -> Result<Option<String>> {
        Ok(self
            .connection
            .query_row(
                "SELECT ca_pem FROM services WHERE service_id = ?1",
                [service_id.to_string()],
                |row| row.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
    }

    /// An update-server service's target group and this computer's
    /// identity there; None for a scan package or an unknown service.
    pub fn server_identity(
        &self,
        service_id: Uuid,
    ) -> Result<Option<(Option<String>, Credentials)>> {
        let row: Option<(Option<String>, Option<String>, Option<String>)> = self
            .connection
            .query_row(
                "SELECT target_group, computer_id, computer_secret FROM services
                 WHERE service_id = ?1 AND is_scan_package = 0",
                [service_id.to_string()],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        let Some((group, Some(computer_id), Some(secret))) = row else {
            return Ok(None);
        };
        Ok(Some((
            group,
            Credentials {
                computer_id: parse_uuid(&computer_id)?,
                secret,
            },
        )))
    }

    /// Replaces this computer's identity at an update server (after it
    /// registered again).
    pub fn set_credentials(&mut self, service_id: Uuid, credentials: &Credentials) -> Result<()> {
        self.connection.execute(
            "UPDATE services SET computer_id = ?2, computer_secret = ?3 WHERE service_id = ?1",
            params![
                service_id.to_string(),
                credentials.computer_id.to_string(),
                credentials.secret
            ],
        )?;
        Ok(())
    }

    /// Replaces a service's catalog with `snapshot`, in one transaction.
    pub fn import_snapshot(&mut self, snapshot: &Snapshot) -> Result<ImportCounts> {
        let transaction = self.connection.transaction()?;
        let counts = import(&transaction, snapshot)?;
        transaction.commit()?;
        Ok(counts)
    }

    /// Applies an update server's verified response for its service, in one
    /// transaction, after checking it against the service's anchor as
    /// stored at `now` ([`Response::check`]): a snapshot replaces the
    /// catalog, a delta writes only its changed and removed revisions, a
    /// still-current statement only moves the freshness date. A refused
    /// response changes nothing.
    pub fn apply_response(&mut self, response: &Response, now: Timestamp) -> Result<ImportCounts> {
        let transaction = self.connection.transaction()?;
        let service_id = response.service_id();
        let stored: Option<(Option<i64>, Option<String>)> = transaction
            .query_row(
                "SELECT catalog_version, fresh_until FROM services WHERE service_id = ?1",
                [service_id.to_string()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((version, fresh_until)) = stored else {
            return Err(AgentError::new(
                WU_E_DS_UNKNOWNSERVICE,
                format!("service {service_id} is not registered"),
            ));
        };
        let anchor = Anchor {
            service_id,
            version: version.map(i64::unsigned_abs),
            fresh_until: parse_time(fresh_until)?,
        };
        response.check(&anchor, now)?;
        let counts = match response {
            Response::Snapshot(snapshot) => import(&transaction, snapshot)?,
            Response::Delta(delta) => import_delta(&transaction, delta)?,
            Response::StillCurrent(statement) => {
                transaction.execute(
                    "UPDATE services SET fresh_until = ?2, last_sync = ?3 WHERE service_id = ?1",
                    params![
                        service_id.to_string(),
                        statement.valid_until.to_string(),
                        now.to_string()
                    ],
                )?;
                let count: i64 = transaction.query_row(
                    "SELECT COUNT(*) FROM revisions WHERE service_id = ?1",
                    [service_id.to_string()],
                    |row| row.get(0),
                )?;
                ImportCounts {
                    unchanged: count.unsigned_abs(),
                    ..ImportCounts::default()
                }
            }
        };
        transaction.commit()?;
        Ok(counts)
    }

    /// Each service's freshness date: `validUntil` of the last still-current
    /// statement accepted for its imported catalog, if any.
    pub fn fresh_until(&self) -> Result<HashMap<Uuid, Timestamp>> {
        let mut statement = self.connection.prepare_cached(
            "SELECT service_id, fresh_until FROM services WHERE fresh_until IS NOT NULL",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
        })?;
        let mut dates = HashMap::new();
        for row in rows {
            let (id, date) = row?;
            if let Some(date) = parse_time(date)? {
                dates.insert(parse_uuid(&id)?, date);
            }
        }
        Ok(dates)
    }

    /// Records a sync that found the catalog unchanged.
    pub fn mark_synced(&mut self, service_id: Uuid) -> Result<()> {
        self.connection.execute(
            "UPDATE services SET last_sync = ?2 WHERE service_id = ?1",
            params![service_id.to_string(), Timestamp::now().to_string()],
        )?;
        Ok(())
    }

    /// Unregisters a service and drops its catalog. The update state stays,
    /// so re-adding the service keeps hidden updates hidden.
    pub fn remove_service(&mut self, service_id: Uuid) -> Result<bool> {
        let transaction = self.connection.transaction()?;
        let removed = transaction.execute(
            "DELETE FROM services WHERE service_id = ?1",
            [service_id.to_string()],
        )? > 0;
        // A machine with services always has a default one.
        transaction.execute(
            "UPDATE services SET is_default = 1 WHERE service_id =
                 (SELECT service_id FROM services ORDER BY name, service_id LIMIT 1)
             AND NOT EXISTS (SELECT 1 FROM services WHERE is_default = 1)",
            [],
        )?;
        transaction.commit()?;
        Ok(removed)
    }

    /// Makes one service the default.
    pub fn set_default_service(&mut self, service_id: Uuid) -> Result<bool> {
        let transaction = self.connection.transaction()?;
        let exists = transaction.execute(
            "UPDATE services SET is_default = (service_id = ?1)",
            [service_id.to_string()],
        )? > 0;
        let found: bool = transaction.query_row(
            "SELECT EXISTS (SELECT 1 FROM services WHERE service_id = ?1)",
            [service_id.to_string()],
            |row| row.get(0),
        )?;
        if exists && found {
            transaction.commit()?;
        }
        Ok(found)
    }

    /// Every stored revision.
    pub fn revisions(&self) -> Result<Vec<StoredRevision>> {
        let mut statement = self.connection.prepare_cached(
            "SELECT r.service_id, r.update_json, r.applicability_json,
                    CASE WHEN s.kind = 'apt' THEN r.handler_json END
             FROM revisions r JOIN services s ON s.service_id = r.service_id ORDER BY r.id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
            ))
        })?;
        let mut revisions = Vec::new();
        for row in rows {
            let (service_id, update_json, applicability_json, apt_handler_json) = row?;
            revisions.push(StoredRevision {
                service_id: parse_uuid(&service_id)?,
                update_json,
                applicability_json,
                apt_handler_json,
            });
        }
        Ok(revisions)
    }

    /// The recorded state of every update that has one.
    pub fn states(&self) -> Result<HashMap<Uuid, StoredState>> {
        let mut statement = self.connection.prepare_cached(
            "SELECT update_id, is_hidden, eula_accepted, installed_record, reboot_required
             FROM update_state",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                StoredState {
                    is_hidden: row.get(1)?,
                    eula_accepted: row.get(2)?,
                    installed_record: row.get(3)?,
                    // The cache says, not the store (the column is unused).
                    is_downloaded: false,
                    reboot_required: row.get(4)?,
                },
            ))
        })?;
        let mut states = HashMap::new();
        for row in rows {
            let (id, state) = row?;
            states.insert(parse_uuid(&id)?, state);
        }
        Ok(states)
    }

    /// Sets `IsHidden` on each update, all or none.
    pub fn set_hidden(&mut self, update_ids: &[Uuid], hidden: bool) -> Result<()> {
        let transaction = self.connection.transaction()?;
        for id in update_ids {
            transaction.execute(
                "INSERT INTO update_state (update_id, is_hidden) VALUES (?1, ?2)
                 ON CONFLICT (update_id) DO UPDATE SET is_hidden = excluded.is_hidden",
                params![id.to_string(), hidden],
            )?;
        }
        transaction.commit()?;
        Ok(())
    }

    /// Records that an update's licence was accepted.
    pub fn accept_eula(&mut self, update_id: Uuid) -> Result<()> {
        self.connection.execute(
            "INSERT INTO update_state (update_id, eula_accepted) VALUES (?1, 1)
             ON CONFLICT (update_id) DO UPDATE SET eula_accepted = 1",
            [update_id.to_string()],
        )?;
        Ok(())
    }

    /// The installer and content of an update in a service's catalog.
    pub fn payload(&self, service_id: Uuid, update_id: Uuid) -> Result<Payload> {
        let (handler, content): (String, String) = self.connection.query_row(
            "SELECT handler_json, content_json FROM revisions WHERE service_id = ?1 AND update_id = ?2",
            [service_id.to_string(), update_id.to_string()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let corrupt = |error: serde_json::Error| {
            AgentError::new(
                WU_E_DS_INVALID,
                format!("stored payload of {update_id}: {error}"),
            )
        };
        Ok(Payload {
            handler: serde_json::from_str(&handler).map_err(corrupt)?,
            content: serde_json::from_str(&content).map_err(corrupt)?,
        })
    }

    /// Notes that an installer is about to run, with the history entry to
    /// write if the agent dies before [`Store::record_result`].
    pub fn begin_install(
        &mut self,
        update_id: Uuid,
        job_id: Uuid,
        interrupted: &HistoryEntry,
    ) -> Result<()> {
        self.connection.execute(
            "INSERT OR REPLACE INTO install_journal (update_id, job_id, interrupted_json)
             VALUES (?1, ?2, ?3)",
            params![
                update_id.to_string(),
                job_id.to_string(),
                to_json(interrupted)?
            ],
        )?;
        Ok(())
    }

    /// Writes one update's history entry and, when its installer ran, its
    /// new state, in one transaction that also closes its journal entry.
    /// `attempted`: its installer ran or none was needed, so it no longer
    /// waits for an interactive user.
    pub fn record_result(
        &mut self,
        entry: &HistoryEntry,
        record: Option<InstallRecord>,
        attempted: bool,
    ) -> Result<()> {
        let transaction = self.connection.transaction()?;
        let update_id = entry.update_identity.update_id.to_string();
        transaction.execute(
            "INSERT INTO history (entry_json) VALUES (?1)",
            [to_json(entry)?],
        )?;
        transaction.execute(
            "DELETE FROM install_journal WHERE update_id = ?1",
            [&update_id],
        )?;
        // Only a real attempt ends the wait: a refusal for another reason
        // (an abort, a missing download) leaves it waiting.
        if entry.hresult == WU_E_NO_INTERACTIVE_USER {
            transaction.execute(
                "INSERT OR REPLACE INTO awaiting_interactive_user (update_id, entry_json)
                 VALUES (?1, ?2)",
                params![update_id, to_json(entry)?],
            )?;
        } else if attempted {
            transaction.execute(
                "DELETE FROM awaiting_interactive_user WHERE update_id = ?1",
                [&update_id],
            )?;
        }
        if let Some(record) = record {
            let boot = record.reboot_in_boot.map(|boot| boot.0.to_string());
            transaction.execute(
                "INSERT INTO update_state (update_id, installed_record, reboot_required, reboot_boot_id)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (update_id) DO UPDATE SET installed_record = excluded.installed_record,
                     reboot_required = excluded.reboot_required,
                     reboot_boot_id = excluded.reboot_boot_id",
                params![update_id, record.installed, boot.is_some(), boot],
            )?;
        }
        transaction.commit()?;
        Ok(())
    }

    /// Moves the journal's entries (installers that were running when the
    /// agent died) into history, and returns them.
    pub fn recover_interrupted(&mut self) -> Result<Vec<HistoryEntry>> {
        let transaction = self.connection.transaction()?;
        let mut entries = Vec::new();
        {
            let mut statement =
                transaction.prepare("SELECT interrupted_json FROM install_journal")?;
            let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
            for row in rows {
                let text = row?;
                let entry: HistoryEntry = serde_json::from_str(&text).map_err(|error| {
                    AgentError::new(WU_E_DS_INVALID, format!("journal entry: {error}"))
                })?;
                transaction.execute("INSERT INTO history (entry_json) VALUES (?1)", [&text])?;
                entries.push(entry);
            }
        }
        transaction.execute("DELETE FROM install_journal", [])?;
        transaction.commit()?;
        Ok(entries)
    }

    /// Forgets pending restarts recorded in another boot: the machine has
    /// restarted since.
    pub fn clear_stale_reboots(&mut self, current: BootId) -> Result<()> {
        self.connection.execute(
            "UPDATE update_state SET reboot_required = 0, reboot_boot_id = NULL
             WHERE reboot_required = 1 AND (reboot_boot_id IS NULL OR reboot_boot_id != ?1)",
            [current.0.to_string()],
        )?;
        Ok(())
    }

    /// Records a job as it is now; only the newest `keep` jobs are kept.
    pub fn save_job(&mut self, info: &JobInfo, keep: usize) -> Result<()> {
        let transaction = self.connection.transaction()?;
        transaction.execute(
            "INSERT OR REPLACE INTO jobs (job_id, started, info_json) VALUES (?1, ?2, ?3)",
            params![
                info.job_id.to_string(),
                info.started.to_string(),
                to_json(info)?
            ],
        )?;
        transaction.execute(
            "DELETE FROM jobs WHERE job_id NOT IN
                 (SELECT job_id FROM jobs ORDER BY started DESC LIMIT ?1)",
            [i64::try_from(keep).unwrap_or(i64::MAX)],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// The recorded jobs, oldest first.
    pub fn jobs(&self) -> Result<Vec<JobInfo>> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT info_json FROM jobs ORDER BY started")?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        let mut jobs = Vec::new();
        for row in rows {
            let text = row?;
            jobs.push(serde_json::from_str(&text).map_err(|error| {
                AgentError::new(WU_E_DS_INVALID, format!("stored job: {error}"))
            })?);
        }
        Ok(jobs)
    }

    /// How many history entries there are.
    pub fn history_count(&self) -> Result<u64> {
        let count: i64 = self
            .connection
            .query_row("SELECT COUNT(*) FROM history", [], |row| row.get(0))?;
        Ok(count.unsigned_abs())
    }

    /// History entries, newest first, from `start` for at most `count`.
    pub fn history(&self, start: u64, count: u64) -> Result<Vec<HistoryEntry>> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT entry_json FROM history ORDER BY id DESC LIMIT ?1 OFFSET ?2")?;
        let limit = i64::try_from(count).unwrap_or(i64::MAX);
        let offset = i64::try_from(start).unwrap_or(i64::MAX);
        let rows = statement.query_map([limit, offset], |row| row.get::<_, String>(0))?;
        history_entries(rows)
    }

    /// The updates refused for want of an interactive user, each with the
    /// history entry of its refusal, oldest first.
    pub fn awaiting_interactive_user(&self) -> Result<Vec<HistoryEntry>> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT entry_json FROM awaiting_interactive_user")?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        let mut entries = history_entries(rows)?;
        entries.sort_by_key(|entry| entry.date);
        Ok(entries)
    }
}

/// Decodes stored history entries.
fn history_entries(
    rows: impl Iterator<Item = rusqlite::Result<String>>,
) -> Result<Vec<HistoryEntry>> {
    let mut entries = Vec::new();
    for row in rows {
        let text = row?;
        entries.push(serde_json::from_str(&text).map_err(|error| {
            AgentError::new(WU_E_DS_INVALID, format!("stored history entry: {error}"))
        })?);
    }
    Ok(entries)
}

fn migrate(connection: &mut Connection) -> Result<()> {
    let version: usize = connection
        .query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))
        .map(|version| usize::try_from(version).unwrap_or(usize::MAX))?;
    if version > MIGRATIONS.len() {
        return Err(AgentError::new(
            WU_E_DS_BADVERSION,
            format!(
                "the store has schema version {version}; this agent knows up to {}",
                MIGRATIONS.len()
            ),
        ));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(migration)?;
        transaction.pragma_update(
            None,
            "user_version",
            i64::try_from(index + 1).unwrap_or(i64::MAX),
        )?;
        transaction.commit()?;
    }
    Ok(())
}

/// Writes one revision of a service, replacing the stored one.
const UPSERT_REVISION: &str =
    "INSERT INTO revisions (service_id, update_id, revision_number, digest,
         update_json, applicability_json, handler_json, content_json)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
     ON CONFLICT (service_id, update_id) DO UPDATE SET
         revision_number = excluded.revision_number, digest = excluded.digest,
         update_json = excluded.update_json, applicability_json = excluded.applicability_json,
         handler_json = excluded.handler_json, content_json = excluded.content_json";

/// Hides an update by default: only the first value, since an
/// administrator's later choice stands.
const HIDE_FIRST_TIME: &str =
    "INSERT OR IGNORE INTO update_state (update_id, is_hidden) VALUES (?1, 1)";

/// Writes `snapshot` as its service's catalog: new and changed revisions
/// are written, vanished ones deleted, identical ones left alone.
fn import(transaction: &Transaction<'_>, snapshot: &Snapshot) -> Result<ImportCounts> {
    let service_id = snapshot.service_id.to_string();
    let counts = import_revisions(transaction, &service_id, &snapshot.revisions)?;
    record_version(
        transaction,
        &service_id,
        snapshot.version,
        snapshot.created,
        snapshot.expires,
        &snapshot.service_name,
    )?;
    Ok(counts)
}

/// Writes `revisions` as an apt service's catalog, and records a new
/// catalog version (the stored one plus one, 1 at first) when anything
/// changed; an apt catalog has no expiry.
fn replace_apt_catalog(
    transaction: &Transaction<'_>,
    service_id: &str,
    revisions: &[Revision],
) -> Result<ImportCounts> {
    let counts = import_revisions(transaction, service_id, revisions)?;
    let changed = counts.added + counts.changed + counts.removed > 0;
    transaction.execute(
        "UPDATE services SET
             catalog_version = CASE WHEN ?2 OR catalog_version IS NULL
                 THEN COALESCE(catalog_version, 0) + 1 ELSE catalog_version END,
             issue_date = CASE WHEN ?2 OR issue_date IS NULL THEN ?3 ELSE issue_date END,
             last_sync = ?3
         WHERE service_id = ?1",
        params![service_id, changed, Timestamp::now().to_string()],
    )?;
    Ok(counts)
}

/// Writes `revisions` as the service's revisions: new and changed ones
/// are written, vanished ones deleted, identical ones left alone.
fn import_revisions(
    transaction: &Transaction<'_>,
    service_id: &str,
    revisions: &[Revision],
) -> Result<ImportCounts> {
    let mut stored: HashMap<String, Vec<u8>> = HashMap::new();
    {
        let mut statement = transaction
            .prepare_cached("SELECT update_id, digest FROM revisions WHERE service_id = ?1")?;
        let rows = statement.query_map([service_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
        for row in rows {
            let (id, digest) = row?;
            stored.insert(id, digest);
        }
    }
    let mut counts = ImportCounts::default();
    {
        let mut upsert = transaction.prepare_cached(UPSERT_REVISION)?;
        for revision in revisions {
            let encoded = EncodedRevision::of(revision)?;
            let update_id = revision.update.identity.update_id.to_string();
            match stored.remove(&update_id) {
                Some(digest) if digest == encoded.digest => {
                    counts.unchanged += 1;
                    continue;
                }
                Some(_) => counts.changed += 1,
                None => counts.added += 1,
            }
            upsert.execute(params![
                service_id,
                update_id,
                revision.update.identity.revision_number,
                encoded.digest,
                encoded.update,
                encoded.applicability,
                encoded.handler,
                encoded.content,
            ])?;
        }
        let mut hide = transaction.prepare_cached(HIDE_FIRST_TIME)?;
        for revision in revisions
            .iter()
            .filter(|revision| revision.hidden_by_default)
        {
            hide.execute([revision.update.identity.update_id.to_string()])?;
        }
        let mut delete = transaction
            .prepare_cached("DELETE FROM revisions WHERE service_id = ?1 AND update_id = ?2")?;
        for update_id in stored.keys() {
            delete.execute([service_id, update_id])?;
            counts.removed += 1;
        }
    }
    Ok(counts)
}

/// Records the catalog version a service now holds and its dates. A
/// freshness statement was about an earlier version, so it goes.
fn record_version(
    transaction: &Transaction<'_>,
    service_id: &str,
    version: u64,
    created: Timestamp,
    expires: Timestamp,
    service_name: &str,
) -> Result<()> {
    transaction.execute(
        "UPDATE services SET catalog_version = ?2, issue_date = ?3, expiration_date = ?4,
             last_sync = ?5, name = CASE WHEN name = '' THEN ?6 ELSE name END, fresh_until = NULL
         WHERE service_id = ?1",
        params![
            service_id,
            i64::try_from(version).unwrap_or(i64::MAX),
            created.to_string(),
            expires.to_string(),
            Timestamp::now().to_string(),
            service_name,
        ],
    )?;
    Ok(())
}

/// Applies a delta checked against the stored anchor: its changed
/// revisions are written, its removed ones deleted, the rest left alone.
fn import_delta(transaction: &Transaction<'_>, delta: &Delta) -> Result<ImportCounts> {
    let service_id = delta.service_id.to_string();
    let mut counts = ImportCounts::default();
    {
        let mut digest = transaction.prepare_cached(
            "SELECT digest FROM revisions WHERE service_id = ?1 AND update_id = ?2",
        )?;
        let mut upsert = transaction.prepare_cached(UPSERT_REVISION)?;
        let mut hide = transaction.prepare_cached(HIDE_FIRST_TIME)?;
        for revision in &delta.changed {
            let encoded = EncodedRevision::of(revision)?;
            let update_id = revision.update.identity.update_id.to_string();
            let stored: Option<Vec<u8>> = digest
                .query_row([&service_id, &update_id], |row| row.get(0))
                .optional()?;
            match stored {
                Some(digest) if digest == encoded.digest => {
                    counts.unchanged += 1;
                    continue;
                }
                Some(_) => counts.changed += 1,
                None => counts.added += 1,
            }
            upsert.execute(params![
                service_id,
                update_id,
                revision.update.identity.revision_number,
                encoded.digest,
                encoded.update,
                encoded.applicability,
                encoded.handler,
                encoded.content,
            ])?;
            if revision.hidden_by_default {
                hide.execute([&update_id])?;
            }
        }
        let mut delete = transaction
            .prepare_cached("DELETE FROM revisions WHERE service_id = ?1 AND update_id = ?2")?;
        for update_id in &delta.removed {
            // The delta must describe the stored catalog exactly.
            if delete.execute([&service_id, &update_id.to_string()])? == 0 {
                return Err(openwua_catalog::CatalogError::Malformed(format!(
                    "the delta removes update {update_id}, which version {} does not hold",
                    delta.base_version
                ))
                .into());
            }
            counts.removed += 1;
        }
    }
    record_version(
        transaction,
        &service_id,
        delta.version,
        delta.created,
        delta.expires,
        &delta.service_name,
    )?;
    Ok(counts)
}

/// A revision's columns and the digest that tells a changed one apart.
struct EncodedRevision {
    update: String,
    applicability: String,
    handler: String,
    content: String,
    digest: Vec<u8>,
}

impl EncodedRevision {
    fn of(revision: &Revision) -> Result<EncodedRevision> {
        let update = to_json(&revision.update)?;
        let applicability = to_json(&revision.applicability)?;
        let handler = to_json(&revision.handler)?;
        let content = to_json(&revision.content)?;
        let mut hasher = Sha256::new();
        for part in [&update, &applicability, &handler, &content] {
            hasher.update(part.len().to_le_bytes());
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize().to_vec();
        Ok(EncodedRevision {
            update,
            applicability,
            handler,
            content,
            digest,
        })
    }
}

pub mod automatic;
mod reports;
#[cfg(test)]
mod sync_tests;
