//! The SQLite back end: one file, one connection, every call on a blocking
//! thread.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use uuid::Uuid;

use super::{
    Candidate, DeclineOutcome, PublishReport, SCHEMA_VERSION, StoreError, StoredRevision,
    parse_time, token_from, version_from,
};

/// Numbered migrations; PostgreSQL's are the same in spirit.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE updates (
         update_id TEXT NOT NULL,
         revision_number INTEGER NOT NULL,
         title TEXT NOT NULL,
         revision_json TEXT NOT NULL,
         digest TEXT NOT NULL,
         declined INTEGER NOT NULL DEFAULT 0,
         published TEXT NOT NULL,
         PRIMARY KEY (update_id, revision_number)
     );
     CREATE TABLE content (
         sha256 TEXT PRIMARY KEY,
         size INTEGER NOT NULL,
         added TEXT NOT NULL
     );
     CREATE TABLE admin_tokens (
         sha256 BLOB PRIMARY KEY,
         added TEXT NOT NULL
     );
     CREATE TABLE catalog (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         version INTEGER NOT NULL
     );
     INSERT INTO catalog (id, version) VALUES (1, 0);",
)];

/// The SQLite store (cheap to clone).
#[derive(Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    pub(super) async fn open(path: PathBuf) -> Result<Self, StoreError> {
        tokio::task::spawn_blocking(move || {
            // Made 0600 before SQLite opens it; SQLite gives its -wal and
            // -shm files the database's mode.
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
                .map_err(|error| StoreError::Io(format!("{}: {error}", path.display())))?;
            let mut connection = Connection::open(&path)?;
            connection.pragma_update(None, "journal_mode", "WAL")?;
            connection.pragma_update(None, "synchronous", "FULL")?;
            connection.busy_timeout(std::time::Duration::from_secs(10))?;
            migrate(&mut connection)?;
            Ok(SqliteStore {
                connection: Arc::new(Mutex::new(connection)),
            })
        })
        .await
        .map_err(|error| StoreError::Io(format!("the store's thread: {error}")))?
    }

    /// Runs `work` with the connection on a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock left no transaction open
            // (rusqlite rolls back on drop), so the connection is usable.
            let mut guard = connection
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut guard)
        })
        .await
        .map_err(|error| StoreError::Io(format!("the store's thread: {error}")))?
    }

    pub(super) async fn schema_version(&self) -> Result<i64, StoreError> {
        self.with(|connection| Ok(current_version(connection)?))
            .await
    }

    pub(super) async fn add_admin_token(&self, sha256: [u8; 32]) -> Result<(), StoreError> {
        self.with(move |connection| {
            connection.execute(
                "INSERT OR IGNORE INTO admin_tokens (sha256, added) VALUES (?1, ?2)",
                params![&sha256[..], Timestamp::now().to_string()],
            )?;
            Ok(())
        })
        .await
    }

    pub(super) async fn admin_tokens(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare("SELECT sha256 FROM admin_tokens")?;
            let rows = statement.query_map([], |row| row.get::<_, Vec<u8>>(0))?;
            rows.map(|row| token_from(&row?)).collect()
        })
        .await
    }

    pub(super) async fn content_size(&self, sha256: String) -> Result<Option<u64>, StoreError> {
        self.with(move |connection| {
            let size: Option<i64> = connection
                .query_row(
                    "SELECT size FROM content WHERE sha256 = ?1",
                    [&sha256],
                    |row| row.get(0),
                )
                .optional()?;
            size.map(|size| {
                u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("content size {size}")))
            })
            .transpose()
        })
        .await
    }

    pub(super) async fn add_content(&self, sha256: String, size: u64) -> Result<(), StoreError> {
        let size =
            i64::try_from(size).map_err(|_| StoreError::Corrupt(format!("content size {size}")))?;
        self.with(move |connection| {
            connection.execute(
                "INSERT OR IGNORE INTO content (sha256, size, added) VALUES (?1, ?2, ?3)",
                params![sha256, size, Timestamp::now().to_string()],
            )?;
            Ok(())
        })
        .await
    }

    pub(super) async fn publish(
        &self,
        candidates: Vec<Candidate>,
    ) -> Result<PublishReport, StoreError> {
        self.with(move |connection| {
            // IMMEDIATE: the write lock first, so two publishers serialise.
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut missing = Vec::new();
            for candidate in &candidates {
                for sha256 in candidate.content_digests() {
                    let known: bool = transaction.query_row(
                        "SELECT EXISTS (SELECT 1 FROM content WHERE sha256 = ?1)",
                        [&sha256],
                        |row| row.get(0),
                    )?;
                    if !known && !missing.contains(&sha256) {
                        missing.push(sha256);
                    }
                }
            }
            if !missing.is_empty() {
                return Err(StoreError::MissingContent(missing));
            }
            let now = Timestamp::now().to_string();
            let mut updates = Vec::with_capacity(candidates.len());
            for candidate in &candidates {
                let update_id = candidate.update_id().to_string();
                let current: Option<(i32, String, bool)> = transaction
                    .query_row(
                        "SELECT revision_number, digest, declined FROM updates
                         WHERE update_id = ?1 ORDER BY revision_number DESC LIMIT 1",
                        [&update_id],
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                    )
                    .optional()?;
                let (published, json) = candidate.plan(
                    current
                        .as_ref()
                        .map(|(number, digest, _)| (*number, digest.as_str())),
                )?;
                if let Some(json) = json {
                    // A new revision of a declined update stays declined.
                    let declined = current.is_some_and(|(_, _, declined)| declined);
                    transaction.execute(
                        "INSERT INTO updates (update_id, revision_number, title, revision_json,
                             digest, declined, published)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![
                            update_id,
                            published.revision_number,
                            candidate.title(),
                            json,
                            candidate.digest,
                            declined,
                            now
                        ],
                    )?;
                }
                updates.push(published);
            }
            let changed = updates
                .iter()
                .any(|update| update.action != super::PublishAction::Unchanged);
            let catalog_version = if changed {
                bump_version(&transaction)?
            } else {
                read_version(&transaction)?
            };
            transaction.commit()?;
            Ok(PublishReport {
                changed,
                catalog_version,
                updates,
            })
        })
        .await
    }

    pub(super) async fn decline(&self, update_id: Uuid) -> Result<DeclineOutcome, StoreError> {
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let state: Option<bool> = transaction
                .query_row(
                    "SELECT MIN(declined) FROM updates WHERE update_id = ?1 HAVING COUNT(*) > 0",
                    [update_id.to_string()],
                    |row| row.get(0),
                )
                .optional()?;
            let outcome = match state {
                None => DeclineOutcome::Unknown,
                Some(true) => DeclineOutcome::AlreadyDeclined(read_version(&transaction)?),
                Some(false) => {
                    transaction.execute(
                        "UPDATE updates SET declined = 1 WHERE update_id = ?1",
                        [update_id.to_string()],
                    )?;
                    DeclineOutcome::Declined(bump_version(&transaction)?)
                }
            };
            transaction.commit()?;
            Ok(outcome)
        })
        .await
    }

    pub(super) async fn list_updates(&self) -> Result<Vec<StoredRevision>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare(
                "SELECT update_id, revision_number, title, digest, declined, published
                 FROM updates AS outer_row
                 WHERE revision_number = (SELECT MAX(revision_number) FROM updates
                                          WHERE update_id = outer_row.update_id)
                 ORDER BY update_id",
            )?;
            let rows = statement.query_map([], row_fields)?;
            rows.map(|row| stored_revision(row?)).collect()
        })
        .await
    }

    pub(super) async fn update_history(
        &self,
        update_id: Uuid,
    ) -> Result<Option<(Vec<StoredRevision>, String)>, StoreError> {
        self.with(move |connection| {
            let id = update_id.to_string();
            let mut statement = connection.prepare(
                "SELECT update_id, revision_number, title, digest, declined, published
                 FROM updates WHERE update_id = ?1 ORDER BY revision_number",
            )?;
            let revisions = statement
                .query_map([&id], row_fields)?
                .map(|row| stored_revision(row?))
                .collect::<Result<Vec<_>, _>>()?;
            let json: Option<String> = connection
                .query_row(
                    "SELECT revision_json FROM updates WHERE update_id = ?1
                     ORDER BY revision_number DESC LIMIT 1",
                    [&id],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(json.map(|json| (revisions, json)))
        })
        .await
    }

    pub(super) async fn catalog_version(&self) -> Result<u64, StoreError> {
        self.with(|connection| read_version(connection)).await
    }
}

type RowFields = (String, i32, String, String, bool, String);

fn row_fields(row: &rusqlite::Row<'_>) -> rusqlite::Result<RowFields> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn stored_revision(
    (update_id, revision_number, title, digest, declined, published): RowFields,
) -> Result<StoredRevision, StoreError> {
    Ok(StoredRevision {
        update_id: update_id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("update ID {update_id:?}")))?,
        revision_number,
        title,
        digest,
        declined,
        published: parse_time(&published)?,
    })
}

fn read_version(connection: &Connection) -> Result<u64, StoreError> {
    let version: i64 =
        connection.query_row("SELECT version FROM catalog WHERE id = 1", [], |row| {
            row.get(0)
        })?;
    version_from(version)
}

fn bump_version(connection: &Connection) -> Result<u64, StoreError> {
    let version: i64 = connection.query_row(
        "UPDATE catalog SET version = version + 1 WHERE id = 1 RETURNING version",
        [],
        |row| row.get(0),
    )?;
    version_from(version)
}

fn current_version(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |row| row.get(0),
    )
}

fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    transaction.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY,
             applied TEXT NOT NULL
         )",
    )?;
    let found = current_version(&transaction)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > found) {
        transaction.execute_batch(sql)?;
        transaction.execute(
            "INSERT INTO schema_migrations (version, applied) VALUES (?1, ?2)",
            params![version, Timestamp::now().to_string()],
        )?;
    }
    transaction.commit()?;
    Ok(())
}
