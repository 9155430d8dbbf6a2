//! The PostgreSQL back end: a small pool; every publish is one transaction
//! that locks the catalog row first, so publishers on any front end take
//! turns and the version they bump is the database's.

use std::collections::HashMap;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use jiff::Timestamp;
use tokio_postgres::NoTls;
use uuid::Uuid;

use super::{
    Candidate, DeclineOutcome, PublishAction, PublishReport, SCHEMA_VERSION, StoreError,
    StoredRevision, parse_time, token_from, version_from,
};

/// Connections per process: enough for a front end, small beside
/// PostgreSQL's default of 100 for several.
const POOL_SIZE: usize = 8;

/// Serialises migrations of processes starting together (an arbitrary key).
const MIGRATION_LOCK: i64 = 0x006f_7065_6e77_7561;

/// Numbered migrations; SQLite's are the same in spirit.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "CREATE TABLE updates (
         update_id UUID NOT NULL,
         revision_number INTEGER NOT NULL,
         title TEXT NOT NULL,
         revision_json TEXT NOT NULL,
         digest TEXT NOT NULL,
         declined BOOLEAN NOT NULL DEFAULT FALSE,
         published TEXT NOT NULL,
         PRIMARY KEY (update_id, revision_number)
     );
     CREATE TABLE content (
         sha256 TEXT PRIMARY KEY,
         size BIGINT NOT NULL,
         added TEXT NOT NULL
     );
     CREATE TABLE admin_tokens (
         sha256 BYTEA PRIMARY KEY,
         added TEXT NOT NULL
     );
     CREATE TABLE catalog (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         version BIGINT NOT NULL
     );
     INSERT INTO catalog (id, version) VALUES (1, 0);",
)];

/// The rows a publish adds, column by column (for one `unnest` insert).
#[derive(Default)]
struct NewRows {
    update_id: Vec<Uuid>,
    revision_number: Vec<i32>,
    title: Vec<String>,
    json: Vec<String>,
    digest: Vec<String>,
    declined: Vec<bool>,
}

/// The PostgreSQL store (cheap to clone).
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    pub(super) async fn open(url: &str) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url.parse()?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|error| StoreError::Pool(error.to_string()))?;
        let store = PostgresStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|error| StoreError::Pool(error.to_string()))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        transaction
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version BIGINT PRIMARY KEY,
                     applied TEXT NOT NULL
                 )",
            )
            .await?;
        let found = current_version(&transaction).await?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { found });
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > found) {
            transaction.batch_execute(sql).await?;
            transaction
                .execute(
                    "INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)",
                    &[version, &Timestamp::now().to_string()],
                )
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    pub(super) async fn schema_version(&self) -> Result<i64, StoreError> {
        current_version(&self.client().await?).await
    }

    pub(super) async fn add_admin_token(&self, sha256: [u8; 32]) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO admin_tokens (sha256, added) VALUES ($1, $2)
                 ON CONFLICT (sha256) DO NOTHING",
                &[&&sha256[..], &Timestamp::now().to_string()],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn admin_tokens(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        let rows = self
            .client()
            .await?
            .query("SELECT sha256 FROM admin_tokens", &[])
            .await?;
        rows.iter()
            .map(|row| token_from(row.try_get::<_, &[u8]>(0)?))
            .collect()
    }

    pub(super) async fn content_size(&self, sha256: &str) -> Result<Option<u64>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt("SELECT size FROM content WHERE sha256 = $1", &[&sha256])
            .await?;
        row.map(|row| {
            let size: i64 = row.try_get(0)?;
            u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("content size {size}")))
        })
        .transpose()
    }

    pub(super) async fn add_content(&self, sha256: &str, size: u64) -> Result<(), StoreError> {
        let size =
            i64::try_from(size).map_err(|_| StoreError::Corrupt(format!("content size {size}")))?;
        self.client()
            .await?
            .execute(
                "INSERT INTO content (sha256, size, added) VALUES ($1, $2, $3)
                 ON CONFLICT (sha256) DO NOTHING",
                &[&sha256, &size, &Timestamp::now().to_string()],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn publish(
        &self,
        candidates: Vec<Candidate>,
    ) -> Result<PublishReport, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        // The catalog row's lock: publishers and decliners on every front
        // end take turns, and the version read here is the one bumped.
        let row = transaction
            .query_one("SELECT version FROM catalog WHERE id = 1 FOR UPDATE", &[])
            .await?;
        let version: i64 = row.try_get(0)?;

        // Three statements whatever the number of revisions: what content
        // is missing, the updates' current revisions, the new rows.
        let mut digests: Vec<String> = candidates
            .iter()
            .flat_map(|candidate| candidate.content_digests())
            .collect();
        digests.sort();
        digests.dedup();
        let missing: Vec<String> = transaction
            .query(
                "SELECT wanted FROM unnest($1::text[]) AS wanted
                 WHERE NOT EXISTS (SELECT 1 FROM content WHERE sha256 = wanted)
                 ORDER BY wanted",
                &[&digests],
            )
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        if !missing.is_empty() {
            return Err(StoreError::MissingContent(missing));
        }

        let ids: Vec<Uuid> = candidates.iter().map(Candidate::update_id).collect();
        let mut current: HashMap<Uuid, (i32, String, bool)> = HashMap::new();
        for row in transaction
            .query(
                "SELECT DISTINCT ON (update_id) update_id, revision_number, digest, declined
                 FROM updates WHERE update_id = ANY($1)
                 ORDER BY update_id, revision_number DESC",
                &[&ids],
            )
            .await?
        {
            current.insert(
                row.try_get(0)?,
                (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?),
            );
        }

        let now = Timestamp::now().to_string();
        let mut updates = Vec::with_capacity(candidates.len());
        let mut rows = NewRows::default();
        for candidate in &candidates {
            let update_id = candidate.update_id();
            let known = current.get(&update_id);
            let (published, json) =
                candidate.plan(known.map(|(number, digest, _)| (*number, digest.as_str())))?;
            if let Some(json) = json {
                rows.update_id.push(update_id);
                rows.revision_number.push(published.revision_number);
                rows.title.push(candidate.title().to_owned());
                rows.json.push(json);
                rows.digest.push(candidate.digest.clone());
                // A new revision of a declined update stays declined.
                rows.declined
                    .push(known.is_some_and(|(_, _, declined)| *declined));
            }
            updates.push(published);
        }
        if !rows.update_id.is_empty() {
            transaction
                .execute(
                    "INSERT INTO updates (update_id, revision_number, title, revision_json,
                         digest, declined, published)
                     SELECT *, $7 FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[],
                         $5::text[], $6::bool[])",
                    &[
                        &rows.update_id,
                        &rows.revision_number,
                        &rows.title,
                        &rows.json,
                        &rows.digest,
                        &rows.declined,
                        &now,
                    ],
                )
                .await?;
        }
        let changed = updates
            .iter()
            .any(|update| update.action != PublishAction::Unchanged);
        let catalog_version = if changed {
            bump_version(&transaction).await?
        } else {
            version_from(version)?
        };
        transaction.commit().await?;
        Ok(PublishReport {
            changed,
            catalog_version,
            updates,
        })
    }

    pub(super) async fn decline(&self, update_id: Uuid) -> Result<DeclineOutcome, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let row = transaction
            .query_one("SELECT version FROM catalog WHERE id = 1 FOR UPDATE", &[])
            .await?;
        let version: i64 = row.try_get(0)?;
        let state = transaction
            .query_opt(
                "SELECT bool_and(declined) FROM updates WHERE update_id = $1 HAVING COUNT(*) > 0",
                &[&update_id],
            )
            .await?
            .map(|row| row.try_get::<_, bool>(0))
            .transpose()?;
        let outcome = match state {
            None => DeclineOutcome::Unknown,
            Some(true) => DeclineOutcome::AlreadyDeclined(version_from(version)?),
            Some(false) => {
                transaction
                    .execute(
                        "UPDATE updates SET declined = TRUE WHERE update_id = $1",
                        &[&update_id],
                    )
                    .await?;
                DeclineOutcome::Declined(bump_version(&transaction).await?)
            }
        };
        transaction.commit().await?;
        Ok(outcome)
    }

    pub(super) async fn list_updates(&self) -> Result<Vec<StoredRevision>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT DISTINCT ON (update_id)
                     update_id, revision_number, title, digest, declined, published
                 FROM updates ORDER BY update_id, revision_number DESC",
                &[],
            )
            .await?;
        rows.iter().map(stored_revision).collect()
    }

    pub(super) async fn update_history(
        &self,
        update_id: Uuid,
    ) -> Result<Option<(Vec<StoredRevision>, String)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT update_id, revision_number, title, digest, declined, published,
                     revision_json
                 FROM updates WHERE update_id = $1 ORDER BY revision_number",
                &[&update_id],
            )
            .await?;
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        let json: String = last.try_get(6)?;
        let revisions = rows
            .iter()
            .map(stored_revision)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((revisions, json)))
    }

    pub(super) async fn catalog_version(&self) -> Result<u64, StoreError> {
        let row = self
            .client()
            .await?
            .query_one("SELECT version FROM catalog WHERE id = 1", &[])
            .await?;
        version_from(row.try_get(0)?)
    }
}

fn stored_revision(row: &tokio_postgres::Row) -> Result<StoredRevision, StoreError> {
    Ok(StoredRevision {
        update_id: row.try_get(0)?,
        revision_number: row.try_get(1)?,
        title: row.try_get(2)?,
        digest: row.try_get(3)?,
        declined: row.try_get(4)?,
        published: parse_time(row.try_get(5)?)?,
    })
}

async fn bump_version(client: &impl deadpool_postgres::GenericClient) -> Result<u64, StoreError> {
    let row = client
        .query_one(
            "UPDATE catalog SET version = version + 1 WHERE id = 1 RETURNING version",
            &[],
        )
        .await?;
    version_from(row.try_get(0)?)
}

async fn current_version(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<i64, StoreError> {
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await?;
    Ok(row.try_get(0)?)
}
