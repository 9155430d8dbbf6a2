//! PostgreSQL's side of `store/upstreams.rs`.

use jiff::Timestamp;

use super::PostgresStore;
use crate::store::StoreError;
use crate::store::upstreams::{StoredUpstream, UpstreamFile};

impl PostgresStore {
    pub(in crate::store) async fn add_upstream(
        &self,
        upstream: StoredUpstream,
    ) -> Result<bool, StoreError> {
        let added = self
            .client()
            .await?
            .execute(
                "INSERT INTO upstreams (name, config_json, state_json, added)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                &[
                    &upstream.name,
                    &upstream.config_json,
                    &upstream.state_json,
                    &Timestamp::now().to_string(),
                ],
            )
            .await?;
        Ok(added == 1)
    }

    pub(in crate::store) async fn upstreams(&self) -> Result<Vec<StoredUpstream>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT name, config_json, state_json FROM upstreams ORDER BY name",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| StoredUpstream {
                name: row.get(0),
                config_json: row.get(1),
                state_json: row.get(2),
            })
            .collect())
    }

    pub(in crate::store) async fn remove_upstream(&self, name: &str) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let removed = transaction
            .execute("DELETE FROM upstreams WHERE name = $1", &[&name])
            .await?;
        transaction
            .execute("DELETE FROM upstream_content WHERE upstream = $1", &[&name])
            .await?;
        transaction.commit().await?;
        Ok(removed == 1)
    }

    pub(in crate::store) async fn save_upstream_state(
        &self,
        name: &str,
        state_json: String,
    ) -> Result<bool, StoreError> {
        let saved = self
            .client()
            .await?
            .execute(
                "UPDATE upstreams SET state_json = $2 WHERE name = $1",
                &[&name, &state_json],
            )
            .await?;
        Ok(saved == 1)
    }

    pub(in crate::store) async fn add_upstream_files(
        &self,
        upstream: &str,
        files: Vec<UpstreamFile>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let insert = transaction
            .prepare(
                "INSERT INTO upstream_content (upstream, update_id, sha256, size, url)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (update_id, sha256) DO NOTHING",
            )
            .await?;
        for file in &files {
            let size = i64::try_from(file.size).unwrap_or(i64::MAX);
            transaction
                .execute(
                    &insert,
                    &[&upstream, &file.update_id, &file.sha256, &size, &file.url],
                )
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn approved_missing_files(
        &self,
    ) -> Result<Vec<UpstreamFile>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT DISTINCT f.update_id, f.sha256, f.size, f.url
                 FROM upstream_content f JOIN approvals a ON a.update_id = f.update_id
                 WHERE a.action = 'install'
                   AND NOT EXISTS (SELECT 1 FROM content c WHERE c.sha256 = f.sha256)
                 ORDER BY f.sha256",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| UpstreamFile {
                update_id: row.get(0),
                sha256: row.get(1),
                size: u64::try_from(row.get::<_, i64>(2)).unwrap_or(0),
                url: row.get(3),
            })
            .collect())
    }
}
