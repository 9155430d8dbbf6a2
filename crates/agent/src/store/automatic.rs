//! The store's side of Automatic Updates (`crate::automatic`): the one row
//! of settings and schedule facts that outlive the agent, and the restarts
//! it ran.

use jiff::Timestamp;
use openwua_model::automatic::{
    AutomaticUpdatesResults, AutomaticUpdatesSettings, RestartOutcome, RestartRecord,
};
use openwua_model::hresult::WU_E_DS_INVALID;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{BootId, Store, to_json};
use crate::error::{AgentError, Result};

/// Restarts kept; older ones are dropped.
const RESTARTS_KEPT: i64 = 50;

/// What Automatic Updates keeps across the agent's restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutomaticRecord {
    /// Settings an administrator saved; None: the configuration's.
    #[serde(default)]
    pub settings: Option<AutomaticUpdatesSettings>,
    /// `Pause` until then.
    #[serde(default)]
    pub paused_until: Option<Timestamp>,
    /// `Results`.
    #[serde(default)]
    pub results: AutomaticUpdatesResults,
    /// The last detection that ran, successful or not.
    #[serde(default)]
    pub last_detection: Option<Timestamp>,
    /// A deadline's installation needed a restart: it happens by then.
    #[serde(default)]
    pub restart_limit: Option<Timestamp>,
}

/// A stored restart and its row.
#[derive(Debug, Clone)]
pub struct StoredRestart {
    /// Its row.
    pub id: i64,
    /// The record.
    pub record: RestartRecord,
}

fn decode<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|error| AgentError::new(WU_E_DS_INVALID, format!("stored {what}: {error}")))
}

impl Store {
    /// Automatic Updates' stored row (the default before anything was kept).
    pub fn automatic(&self) -> Result<AutomaticRecord> {
        let text: Option<String> = self
            .connection
            .query_row(
                "SELECT state_json FROM automatic_updates WHERE id = 1",
                [],
                |row| row.get(0),
            )
            .optional()?;
        text.map_or_else(
            || Ok(AutomaticRecord::default()),
            |text| decode(&text, "automatic updates"),
        )
    }

    /// Replaces Automatic Updates' stored row.
    pub fn set_automatic(&mut self, record: &AutomaticRecord) -> Result<()> {
        self.connection.execute(
            "INSERT INTO automatic_updates (id, state_json) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET state_json = excluded.state_json",
            [to_json(record)?],
        )?;
        Ok(())
    }

    /// Records a restart the agent is about to run; returns its row.
    pub fn add_restart(&mut self, record: &RestartRecord) -> Result<i64> {
        let transaction = self.connection.transaction()?;
        transaction.execute(
            "INSERT INTO restarts (record_json) VALUES (?1)",
            [to_json(record)?],
        )?;
        let id = transaction.last_insert_rowid();
        transaction.execute(
            "DELETE FROM restarts WHERE id <= ?1",
            params![id - RESTARTS_KEPT],
        )?;
        transaction.commit()?;
        Ok(id)
    }

    /// Replaces a restart's record (its outcome).
    pub fn update_restart(&mut self, restart: &StoredRestart) -> Result<()> {
        self.connection.execute(
            "UPDATE restarts SET record_json = ?1 WHERE id = ?2",
            params![to_json(&restart.record)?, restart.id],
        )?;
        Ok(())
    }

    /// The restarts, newest first.
    pub fn restarts(&self) -> Result<Vec<StoredRestart>> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT id, record_json FROM restarts ORDER BY id DESC")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut restarts = Vec::new();
        for row in rows {
            let (id, text) = row?;
            restarts.push(StoredRestart {
                id,
                record: decode(&text, "restart")?,
            });
        }
        Ok(restarts)
    }

    /// At start-up: a requested restart whose boot ID is not this boot's
    /// happened; one in this very boot did not (the agent was started
    /// again without the machine), so the next window may try again.
    pub fn confirm_restarts(&mut self, current: BootId, now: Timestamp) -> Result<()> {
        for mut restart in self.restarts()? {
            if restart.record.outcome != RestartOutcome::Requested {
                continue;
            }
            if restart.record.boot_id != current.0 {
                restart.record.outcome = RestartOutcome::Confirmed;
                restart.record.confirmed = Some(now);
            } else {
                restart.record.outcome = RestartOutcome::NotRestarted;
            }
            self.update_restart(&restart)?;
        }
        Ok(())
    }
}
