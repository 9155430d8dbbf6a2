//! SQLite's side of `store/upstreams.rs`.

use jiff::Timestamp;
use rusqlite::{TransactionBehavior, params};

use super::{SqliteStore, parse_uuid};
use crate::store::StoreError;
use crate::store::upstreams::{StoredUpstream, UpstreamFile};

impl SqliteStore {
    pub(in crate::store) async fn add_upstream(
        &self,
        upstream: StoredUpstream,
    ) -> Result<bool, StoreError> {
        self.with(move |connection| {
            let added = connection.execute(
                "INSERT OR IGNORE INTO upstreams (name, config_json, state_json, added)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    upstream.name,
                    upstream.config_json,
                    upstream.state_json,
                    Timestamp::now().to_string()
                ],
            )?;
            Ok(added == 1)
        })
        .await
    }

    pub(in crate::store) async fn upstreams(&self) -> Result<Vec<StoredUpstream>, StoreError> {
        self.with(|connection| {
            let mut statement = connection
                .prepare("SELECT name, config_json, state_json FROM upstreams ORDER BY name")?;
            let rows = statement.query_map([], |row| {
                Ok(StoredUpstream {
                    name: row.get(0)?,
                    config_json: row.get(1)?,
                    state_json: row.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub(in crate::store) async fn remove_upstream(&self, name: String) -> Result<bool, StoreError> {
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let removed = transaction.execute("DELETE FROM upstreams WHERE name = ?1", [&name])?;
            transaction.execute("DELETE FROM upstream_content WHERE upstream = ?1", [&name])?;
            transaction.commit()?;
            Ok(removed == 1)
        })
        .await
    }

    pub(in crate::store) async fn save_upstream_state(
        &self,
        name: String,
        state_json: String,
    ) -> Result<bool, StoreError> {
        self.with(move |connection| {
            let saved = connection.execute(
                "UPDATE upstreams SET state_json = ?2 WHERE name = ?1",
                params![name, state_json],
            )?;
            Ok(saved == 1)
        })
        .await
    }

    pub(in crate::store) async fn add_upstream_files(
        &self,
        upstream: String,
        files: Vec<UpstreamFile>,
    ) -> Result<(), StoreError> {
        self.with(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut insert = transaction.prepare(
                    "INSERT OR IGNORE INTO upstream_content (upstream, update_id, sha256, size, url)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for file in &files {
                    insert.execute(params![
                        upstream,
                        file.update_id.to_string(),
                        file.sha256,
                        i64::try_from(file.size).unwrap_or(i64::MAX),
                        file.url
                    ])?;
                }
            }
            transaction.commit()?;
            Ok(())
        })
        .await
    }

    pub(in crate::store) async fn approved_missing_files(
        &self,
    ) -> Result<Vec<UpstreamFile>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare(
                "SELECT DISTINCT f.update_id, f.sha256, f.size, f.url
                 FROM upstream_content f JOIN approvals a ON a.update_id = f.update_id
                 WHERE a.action = 'install'
                   AND NOT EXISTS (SELECT 1 FROM content c WHERE c.sha256 = f.sha256)
                 ORDER BY f.sha256",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })?;
            let mut files = Vec::new();
            for row in rows {
                let (update_id, sha256, size, url) = row?;
                files.push(UpstreamFile {
                    update_id: parse_uuid(&update_id)?,
                    sha256,
                    size: u64::try_from(size).unwrap_or(0),
                    url,
                });
            }
            Ok(files)
        })
        .await
    }
}
