//! What the web console (`crate::console`) reads and writes: its sessions
//! and read-only tokens, and the aggregates its pages show, each one query
//! (or a page of rows and their details in two) through the indexes of
//! migration 40, so no page reads a row per computer or per update.
//!
//! The SQL is written once with PostgreSQL's `$N` placeholders; SQLite
//! takes the same text with `?N` ([`sqlite`]).

use std::collections::HashSet;

use jiff::Timestamp;
use openwua_model::hresult::HResult;
use rusqlite::{OptionalExtension, params, params_from_iter};
use uuid::Uuid;

use super::{Store, StoreError, parse_time};
use crate::reports::{Inventory, ResultCode, UpdateState};

/// Who a console session acts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Signed in with an admin token: may approve and decline.
    Admin,
    /// Signed in with a read-only token (helpdesk staff): sees every page,
    /// changes nothing.
    ReadOnly,
}

impl Role {
    /// The word stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadOnly => "readOnly",
        }
    }

    fn parse(text: &str) -> Result<Role, StoreError> {
        match text {
            "admin" => Ok(Role::Admin),
            "readOnly" => Ok(Role::ReadOnly),
            _ => Err(StoreError::Corrupt(format!("a console role {text:?}"))),
        }
    }
}

/// A signed-in console session, as the store keeps it.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    /// What it may do.
    pub role: Role,
    /// The token every form of this session must carry.
    pub csrf: String,
}

/// A read-only token, as the Access page lists it (the token itself is
/// shown once, when made, and only its SHA-256 is kept).
#[derive(Debug, Clone)]
pub struct ConsoleToken {
    /// SHA-256 of the token, hex: how it is named to revoke it.
    pub sha256: String,
    /// What the admin called it.
    pub label: String,
    /// When it was made.
    pub added: String,
}

/// How many of a group's computers are in each of the overview's states;
/// each computer counts once, in the first that applies (not reported,
/// failed, waiting for a restart, needs updates, up to date).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupHealth {
    /// The group (its own computers, not its subgroups').
    pub group: String,
    /// No update it reported needs anything.
    pub up_to_date: u64,
    /// Some update is NotInstalled or Downloaded.
    pub needs_updates: u64,
    /// Some update is Failed.
    pub failed: u64,
    /// Some update is InstalledPendingReboot.
    pub pending_reboot: u64,
    /// No report within the period asked for (or never), or marked stale
    /// by maintenance.
    pub not_reported: u64,
}

impl GroupHealth {
    /// Its computers.
    pub fn computers(&self) -> u64 {
        self.up_to_date + self.needs_updates + self.failed + self.pending_reboot + self.not_reported
    }
}

/// An update and how many computers failed it.
#[derive(Debug, Clone)]
pub struct FailingUpdate {
    /// `UpdateID`.
    pub update_id: Uuid,
    /// Its current title.
    pub title: Option<String>,
    /// Computers whose state for it is Failed.
    pub computers: u64,
}

/// One stored revision with its JSON, for the console's update index.
#[derive(Debug, Clone)]
pub struct RevisionRow {
    /// `UpdateID`.
    pub update_id: Uuid,
    /// Its number.
    pub revision_number: i32,
    /// The revision's catalog JSON.
    pub json: String,
    /// When it was published (RFC 3339).
    pub published: String,
}

/// One computer as the Computers page lists it.
#[derive(Debug, Clone)]
pub struct ComputerRow {
    /// Its identity.
    pub computer_id: Uuid,
    /// Its host name.
    pub hostname: String,
    /// Its group.
    pub group: String,
    /// When it last synced.
    pub last_sync: Option<Timestamp>,
    /// When it last reported.
    pub last_report: Option<Timestamp>,
    /// When maintenance marked it stale, if it is.
    pub stale_since: Option<Timestamp>,
    /// Its last report's inventory.
    pub inventory: Option<Inventory>,
    /// Updates NotInstalled or Downloaded.
    pub needed: u64,
    /// Updates Failed.
    pub failed: u64,
    /// Updates InstalledPendingReboot.
    pub pending_reboot: u64,
}

/// One update's state on one computer, with the update's title.
#[derive(Debug, Clone)]
pub struct ComputerUpdateRow {
    /// `UpdateID`.
    pub update_id: Uuid,
    /// Its current title, if the server still has it.
    pub title: Option<String>,
    /// The state reported.
    pub state: UpdateState,
    /// The revision it was reported of.
    pub revision_number: i32,
    /// The last operation's result.
    pub result_code: Option<ResultCode>,
    /// The last operation's HRESULT.
    pub hresult: Option<HResult>,
    /// When the agent observed it.
    pub time: Timestamp,
}

/// One computer's state for one update.
#[derive(Debug, Clone)]
pub struct UpdateComputerRow {
    /// The computer.
    pub computer_id: Uuid,
    /// Its host name.
    pub hostname: String,
    /// Its group.
    pub group: String,
    /// The state reported.
    pub state: UpdateState,
    /// The last operation's HRESULT.
    pub hresult: Option<HResult>,
    /// When the agent observed it.
    pub time: Timestamp,
}

/// The failures that carry one HRESULT.
#[derive(Debug, Clone)]
pub struct FailureCode {
    /// The code; `None` for failures reported without one.
    pub hresult: Option<HResult>,
    /// (computer, update) pairs Failed with it.
    pub failures: u64,
    /// Computers among them.
    pub computers: u64,
    /// Updates among them.
    pub updates: u64,
}

/// One computer's failure of one update.
#[derive(Debug, Clone)]
pub struct FailureRow {
    /// The computer.
    pub computer_id: Uuid,
    /// Its host name.
    pub hostname: String,
    /// Its group.
    pub group: String,
    /// The update.
    pub update_id: Uuid,
    /// Its current title.
    pub title: Option<String>,
    /// When the agent observed it.
    pub time: Timestamp,
}

/// One page of rows and how many there are in all.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// Rows matching, in all.
    pub total: u64,
    /// This page's.
    pub rows: Vec<T>,
}

const ATTENTION: &str = "('NotInstalled', 'Downloaded', 'Failed', 'InstalledPendingReboot')";

const TITLE: &str = "(SELECT u.title FROM updates u WHERE u.update_id = s.update_id
     ORDER BY u.revision_number DESC LIMIT 1)";

/// The same SQL for SQLite: `$N` becomes `?N`.
fn sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

fn group_health_sql() -> String {
    format!(
        "SELECT c.group_name,
             CASE WHEN c.last_report IS NULL OR c.last_report < $1
                      OR c.stale_since IS NOT NULL THEN 4
                  WHEN a.failed = 1 THEN 3 WHEN a.reboot = 1 THEN 2
                  WHEN a.needed = 1 THEN 1 ELSE 0 END AS category,
             COUNT(*)
         FROM computers c LEFT JOIN (
             SELECT computer_id,
                 MAX(CASE WHEN state = 'Failed' THEN 1 ELSE 0 END) AS failed,
                 MAX(CASE WHEN state = 'InstalledPendingReboot' THEN 1 ELSE 0 END) AS reboot,
                 MAX(CASE WHEN state IN ('NotInstalled', 'Downloaded') THEN 1 ELSE 0 END)
                     AS needed
             FROM update_states WHERE state IN {ATTENTION}
             GROUP BY computer_id) a ON a.computer_id = c.computer_id
         GROUP BY c.group_name, category"
    )
}

fn add_health(list: &mut Vec<GroupHealth>, group: String, category: i64, count: u64) {
    let index = match list.iter().position(|health| health.group == group) {
        Some(index) => index,
        None => {
            list.push(GroupHealth {
                group,
                ..GroupHealth::default()
            });
            list.len() - 1
        }
    };
    let health = &mut list[index];
    let slot = match category {
        4 => &mut health.not_reported,
        3 => &mut health.failed,
        2 => &mut health.pending_reboot,
        1 => &mut health.needs_updates,
        _ => &mut health.up_to_date,
    };
    *slot += count;
}

fn top_failing_sql() -> String {
    format!(
        "SELECT s.update_id, COUNT(*) AS n, {TITLE}
         FROM update_states s WHERE s.state = 'Failed'
         GROUP BY s.update_id ORDER BY n DESC, s.update_id LIMIT $1"
    )
}

const COMPUTERS_SQL: &str = "SELECT computer_id, hostname, group_name, last_sync, last_report,
         inventory_json, stale_since
     FROM computers
     WHERE ($1::text IS NULL OR group_name = $1::text)
         AND ($2::text IS NULL OR hostname LIKE $2::text)
     ORDER BY hostname, computer_id LIMIT $3 OFFSET $4";

const COMPUTERS_COUNT_SQL: &str = "SELECT COUNT(*) FROM computers
     WHERE ($1::text IS NULL OR group_name = $1::text)
         AND ($2::text IS NULL OR hostname LIKE $2::text)";

const STATE_ORDER: &str = "CASE s.state WHEN 'Failed' THEN 0 WHEN 'InstalledPendingReboot' THEN 1
     WHEN 'NotInstalled' THEN 2 WHEN 'Downloaded' THEN 2 ELSE 3 END";

fn computer_updates_sql() -> String {
    format!(
        "SELECT s.update_id, s.state, s.revision_number, s.result_code, s.hresult, s.observed,
             {TITLE}
         FROM update_states s WHERE s.computer_id = $1
         ORDER BY {STATE_ORDER}, s.update_id LIMIT $2 OFFSET $3"
    )
}

const UPDATE_COMPUTERS_SQL: &str = "SELECT c.computer_id, c.hostname, c.group_name, s.state,
         s.hresult, s.observed
     FROM update_states s JOIN computers c ON c.computer_id = s.computer_id
     WHERE s.update_id = $1 AND ($2::text IS NULL OR s.state = $2::text)
     ORDER BY c.hostname, c.computer_id LIMIT $3 OFFSET $4";

const UPDATE_COMPUTERS_COUNT_SQL: &str = "SELECT COUNT(*) FROM update_states s
     WHERE s.update_id = $1 AND ($2::text IS NULL OR s.state = $2::text)";

const UPDATE_GROUP_STATES_SQL: &str = "SELECT c.group_name, s.state, COUNT(*)
     FROM update_states s JOIN computers c ON c.computer_id = s.computer_id
     WHERE s.update_id = $1 GROUP BY c.group_name, s.state";

const FAILURE_CODES_SQL: &str = "SELECT hresult, COUNT(*), COUNT(DISTINCT computer_id),
         COUNT(DISTINCT update_id)
     FROM update_states WHERE state = 'Failed'
     GROUP BY hresult ORDER BY COUNT(*) DESC, hresult LIMIT $1";

fn failures_sql() -> String {
    format!(
        "SELECT c.computer_id, c.hostname, c.group_name, s.update_id, s.observed, {TITLE}
         FROM update_states s JOIN computers c ON c.computer_id = s.computer_id
         WHERE s.state = 'Failed' AND s.hresult IS NOT DISTINCT FROM $1::text
         ORDER BY c.hostname, c.computer_id, s.update_id LIMIT $2 OFFSET $3"
    )
}

const FAILURES_COUNT_SQL: &str = "SELECT COUNT(*) FROM update_states s
     WHERE s.state = 'Failed' AND s.hresult IS NOT DISTINCT FROM $1::text";

/// SQLite knows neither `::text` casts nor `IS NOT DISTINCT FROM` (it has
/// `IS`).
fn sqlite_text(sql: &str) -> String {
    sqlite(sql)
        .replace("::text", "")
        .replace("IS NOT DISTINCT FROM", "IS")
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn limit(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn state(text: &str) -> Result<UpdateState, StoreError> {
    UpdateState::parse(text).ok_or_else(|| StoreError::Corrupt(format!("an update state {text:?}")))
}

fn hresult(text: Option<String>) -> Result<Option<HResult>, StoreError> {
    text.map(|text| {
        text.parse()
            .map_err(|_| StoreError::Corrupt(format!("an HRESULT {text:?}")))
    })
    .transpose()
}

fn result_code(text: Option<String>) -> Result<Option<ResultCode>, StoreError> {
    text.map(|text| {
        serde_json::from_value(serde_json::Value::String(text.clone()))
            .map_err(|_| StoreError::Corrupt(format!("a result code {text:?}")))
    })
    .transpose()
}

fn time(text: Option<String>) -> Result<Option<Timestamp>, StoreError> {
    text.as_deref().map(parse_time).transpose()
}

fn inventory(json: Option<String>) -> Result<Option<Inventory>, StoreError> {
    json.map(|json| {
        serde_json::from_str(&json)
            .map_err(|error| StoreError::Corrupt(format!("an inventory: {error}")))
    })
    .transpose()
}

fn uuid(text: &str) -> Result<Uuid, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("an ID {text:?}")))
}

/// How an HRESULT is stored (`0x80240020`).
fn stored_hresult(code: Option<HResult>) -> Option<String> {
    code.map(|code| format!("{code:#}"))
}

/// The console's reads and writes.
impl Store {
    /// Whether `sha256` is a read-only console token's.
    pub async fn is_console_token(&self, sha256: [u8; 32]) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(store) => {
                store
                    .with(move |connection| {
                        Ok(connection.query_row(
                            "SELECT EXISTS (SELECT 1 FROM console_tokens WHERE sha256 = ?1)",
                            [&sha256[..]],
                            |row| row.get(0),
                        )?)
                    })
                    .await
            }
            Store::Postgres(store) => Ok(store
                .client()
                .await?
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM console_tokens WHERE sha256 = $1)",
                    &[&&sha256[..]],
                )
                .await?
                .try_get(0)?),
        }
    }

    /// Keeps a new read-only token's SHA-256 under `label`.
    pub async fn add_console_token(&self, sha256: [u8; 32], label: &str) -> Result<(), StoreError> {
        let (label, added) = (label.to_owned(), Timestamp::now().to_string());
        let role = Role::ReadOnly.as_str();
        match self {
            Store::Sqlite(store) => {
                store
                    .with(move |connection| {
                        connection.execute(
                            "INSERT INTO console_tokens (sha256, label, role, added)
                             VALUES (?1, ?2, ?3, ?4)",
                            params![&sha256[..], label, role, added],
                        )?;
                        Ok(())
                    })
                    .await
            }
            Store::Postgres(store) => {
                store
                    .client()
                    .await?
                    .execute(
                        "INSERT INTO console_tokens (sha256, label, role, added)
                         VALUES ($1, $2, $3, $4)",
                        &[&&sha256[..], &label, &role, &added],
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// Every read-only token, oldest first.
    pub async fn console_tokens(&self) -> Result<Vec<ConsoleToken>, StoreError> {
        const SQL: &str = "SELECT sha256, label, added FROM console_tokens ORDER BY added, label";
        let rows: Vec<(Vec<u8>, String, String)> = match self {
            Store::Sqlite(store) => {
                store
                    .with(|connection| {
                        let mut statement = connection.prepare(SQL)?;
                        let rows = statement
                            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
                        Ok(rows.collect::<Result<_, _>>()?)
                    })
                    .await?
            }
            Store::Postgres(store) => store
                .client()
                .await?
                .query(SQL, &[])
                .await?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                .collect::<Result<_, StoreError>>()?,
        };
        Ok(rows
            .into_iter()
            .map(|(sha256, label, added)| ConsoleToken {
                sha256: hex::encode(sha256),
                label,
                added,
            })
            .collect())
    }

    /// Revokes a read-only token and ends the sessions signed in with it;
    /// returns whether the token existed.
    pub async fn remove_console_token(&self, sha256: [u8; 32]) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(store) => {
                store
                    .with(move |connection| {
                        let transaction = connection.transaction()?;
                        let removed = transaction.execute(
                            "DELETE FROM console_tokens WHERE sha256 = ?1",
                            [&sha256[..]],
                        )?;
                        transaction.execute(
                            "DELETE FROM console_sessions WHERE token_sha256 = ?1",
                            [&sha256[..]],
                        )?;
                        transaction.commit()?;
                        Ok(removed > 0)
                    })
                    .await
            }
            Store::Postgres(store) => {
                let mut client = store.client().await?;
                let transaction = client.transaction().await?;
                let removed = transaction
                    .execute(
                        "DELETE FROM console_tokens WHERE sha256 = $1",
                        &[&&sha256[..]],
                    )
                    .await?;
                transaction
                    .execute(
                        "DELETE FROM console_sessions WHERE token_sha256 = $1",
                        &[&&sha256[..]],
                    )
                    .await?;
                transaction.commit().await?;
                Ok(removed > 0)
            }
        }
    }

    /// Starts a session: its ID's SHA-256, the SHA-256 of the token it
    /// signed in with, its role and CSRF token, and its expiry (Unix
    /// seconds). Expired sessions are dropped in the same transaction.
    pub async fn add_console_session(
        &self,
        id_sha256: [u8; 32],
        token_sha256: [u8; 32],
        session: ConsoleSession,
        expires: i64,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now().as_second();
        let role = session.role.as_str();
        match self {
            Store::Sqlite(store) => {
                store
                    .with(move |connection| {
                        let transaction = connection.transaction()?;
                        transaction
                            .execute("DELETE FROM console_sessions WHERE expires < ?1", [now])?;
                        transaction.execute(
                            "INSERT INTO console_sessions (id_sha256, token_sha256, role, csrf,
                                 expires)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![
                                &id_sha256[..],
                                &token_sha256[..],
                                role,
                                session.csrf,
                                expires
                            ],
                        )?;
                        transaction.commit()?;
                        Ok(())
                    })
                    .await
            }
            Store::Postgres(store) => {
                let mut client = store.client().await?;
                let transaction = client.transaction().await?;
                transaction
                    .execute("DELETE FROM console_sessions WHERE expires < $1", &[&now])
                    .await?;
                transaction
                    .execute(
                        "INSERT INTO console_sessions (id_sha256, token_sha256, role, csrf, expires)
                         VALUES ($1, $2, $3, $4, $5)",
                        &[
                            &&id_sha256[..],
                            &&token_sha256[..],
                            &role,
                            &session.csrf,
                            &expires,
                        ],
                    )
                    .await?;
                transaction.commit().await?;
                Ok(())
            }
        }
    }

    /// The unexpired session whose ID hashes to `id_sha256`.
    pub async fn console_session(
        &self,
        id_sha256: [u8; 32],
    ) -> Result<Option<ConsoleSession>, StoreError> {
        let now = Timestamp::now().as_second();
        const SQL: &str = "SELECT role, csrf FROM console_sessions
             WHERE id_sha256 = $1 AND expires >= $2";
        let found: Option<(String, String)> = match self {
            Store::Sqlite(store) => {
                store
                    .with(move |connection| {
                        Ok(connection
                            .query_row(&sqlite(SQL), params![&id_sha256[..], now], |row| {
                                Ok((row.get(0)?, row.get(1)?))
                            })
                            .optional()?)
                    })
                    .await?
            }
            Store::Postgres(store) => store
                .client()
                .await?
                .query_opt(SQL, &[&&id_sha256[..], &now])
                .await?
                .map(|row| Ok::<_, StoreError>((row.try_get(0)?, row.try_get(1)?)))
                .transpose()?,
        };
        found
            .map(|(role, csrf)| {
                Ok(ConsoleSession {
                    role: Role::parse(&role)?,
                    csrf,
                })
            })
            .transpose()
    }

    /// Ends a session.
    pub async fn remove_console_session(&self, id_sha256: [u8; 32]) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(store) => {
                store
                    .with(move |connection| {
                        connection.execute(
                            "DELETE FROM console_sessions WHERE id_sha256 = ?1",
                            [&id_sha256[..]],
                        )?;
                        Ok(())
                    })
                    .await
            }
            Store::Postgres(store) => {
                store
                    .client()
                    .await?
                    .execute(
                        "DELETE FROM console_sessions WHERE id_sha256 = $1",
                        &[&&id_sha256[..]],
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// Each group's computers by state; a computer whose last report is
    /// older than `reported_since` (or that never reported), or that
    /// maintenance marked stale, counts as not reported. Groups without computers are left out.
    pub async fn group_health(
        &self,
        reported_since: Timestamp,
    ) -> Result<Vec<GroupHealth>, StoreError> {
        let since = reported_since.to_string();
        let rows: Vec<(String, i64, i64)> = match self {
            Store::Sqlite(store) => {
                store
                    .with(move |connection| {
                        let mut statement = connection.prepare(&sqlite(&group_health_sql()))?;
                        let rows = statement.query_map([since], |row| {
                            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                        })?;
                        Ok(rows.collect::<Result<_, _>>()?)
                    })
                    .await?
            }
            Store::Postgres(store) => store
                .client()
                .await?
                .query(&group_health_sql(), &[&since])
                .await?
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get(0)?,
                        i64::from(row.try_get::<_, i32>(1)?),
                        row.try_get(2)?,
                    ))
                })
                .collect::<Result<_, StoreError>>()?,
        };
        let mut list = Vec::new();
        for (group, category, number) in rows {
            add_health(&mut list, group, category, count(number));
        }
        list.sort_by(|a, b| a.group.cmp(&b.group));
        Ok(list)
    }

    /// The `limit` updates failed on the most computers.
    pub async fn top_failing_updates(
        &self,
        limit_to: u64,
    ) -> Result<Vec<FailingUpdate>, StoreError> {
        let limit_to = limit(limit_to);
        let rows: Vec<(Uuid, i64, Option<String>)> = match self {
            Store::Sqlite(store) => {
                store
                    .with(move |connection| {
                        // Grouping by update_id, SQLite would rather walk the
                        // whole by-update index than the failures' partial one.
                        let sql = sqlite(&top_failing_sql()).replace(
                            "FROM update_states s WHERE",
                            "FROM update_states s INDEXED BY update_states_failed WHERE",
                        );
                        let mut statement = connection.prepare(&sql)?;
                        let rows = statement.query_map([limit_to], |row| {
                            Ok((row.get::<_, String>(0)?, row.get(1)?, row.get(2)?))
                        })?;
                        rows.map(|row| {
                            let (id, n, title) = row?;
                            Ok((uuid(&id)?, n, title))
                        })
                        .collect()
                    })
                    .await?
            }
            Store::Postgres(store) => store
                .client()
                .await?
                .query(&top_failing_sql(), &[&limit_to])
                .await?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                .collect::<Result<_, StoreError>>()?,
        };
        Ok(rows
            .into_iter()
            .map(|(update_id, n, title)| FailingUpdate {
                update_id,
                title,
                computers: count(n),
            })
            .collect())
    }

    /// When the newest revision was published, if any was.
    pub async fn last_publish(&self) -> Result<Option<Timestamp>, StoreError> {
        const SQL: &str = "SELECT MAX(published) FROM updates";
        let found: Option<String> = match self {
            Store::Sqlite(store) => {
                store
                    .with(|connection| Ok(connection.query_row(SQL, [], |row| row.get(0))?))
                    .await?
            }
            Store::Postgres(store) => store
                .client()
                .await?
                .query_one(SQL, &[])
                .await?
                .try_get(0)?,
        };
        time(found)
    }

    /// Every revision published at or after `since` (all of them without),
    /// with its JSON: how the console's update index catches up.
    pub async fn revisions_since(
        &self,
        since: Option<String>,
    ) -> Result<Vec<RevisionRow>, StoreError> {
        const SQL: &str = "SELECT update_id, revision_number, revision_json, published
             FROM updates WHERE $1::text IS NULL OR published >= $1::text";
        match self {
            Store::Sqlite(store) => {
                store
                    .with(move |connection| {
                        let mut statement = connection.prepare(&sqlite_text(SQL))?;
                        let rows = statement.query_map([since], |row| {
                            Ok((
                                row.get::<_, String>(0)?,
                                row.get(1)?,
                                row.get(2)?,
                                row.get(3)?,
                            ))
                        })?;
                        rows.map(|row| {
                            let (id, revision_number, json, published) = row?;
                            Ok(RevisionRow {
                                update_id: uuid(&id)?,
                                revision_number,
                                json,
                                published,
                            })
                        })
                        .collect()
                    })
                    .await
            }
            Store::Postgres(store) => store
                .client()
                .await?
                .query(SQL, &[&since])
                .await?
                .iter()
                .map(|row| {
                    Ok(RevisionRow {
                        update_id: row.try_get(0)?,
                        revision_number: row.try_get(1)?,
                        json: row.try_get(2)?,
                        published: row.try_get(3)?,
                    })
                })
                .collect(),
        }
    }

    /// How many revisions the store holds.
    pub async fn revision_count(&self) -> Result<u64, StoreError> {
        const SQL: &str = "SELECT COUNT(*) FROM updates";
        let n: i64 = match self {
            Store::Sqlite(store) => {
                store
                    .with(|connection| Ok(connection.query_row(SQL, [], |row| row.get(0))?))
                    .await?
            }
            Store::Postgres(store) => store
                .client()
                .await?
                .query_one(SQL, &[])
                .await?
                .try_get(0)?,
        };
        Ok(count(n))
    }

    /// Every declined update.
    pub async fn declined_updates(&self) -> Result<HashSet<Uuid>, StoreError> {
        match self {
            Store::Sqlite(store) => {
                store
                    .with(|connection| {
                        let mut statement = connection
                            .prepare("SELECT DISTINCT update_id FROM updates WHERE declined = 1")?;
                        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
                        rows.map(|row| uuid(&row?)).collect()
                    })
                    .await
            }
            Store::Postgres(store) => store
                .client()
                .await?
                .query("SELECT DISTINCT update_id FROM updates WHERE declined", &[])
                .await?
                .iter()
                .map(|row| Ok(row.try_get(0)?))
                .collect(),
        }
    }

    /// The approvals of the updates listed (a page of them).
    pub async fn approvals_of(
        &self,
        update_ids: Vec<Uuid>,
    ) -> Result<Vec<crate::fleet::Approval>, StoreError> {
        if update_ids.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Store::Sqlite(store) => {
                store
                    .with(move |connection| {
                        let marks = vec!["?"; update_ids.len()].join(", ");
                        let mut statement = connection.prepare(&format!(
                            "SELECT update_id, group_name, action, deadline FROM approvals
                             WHERE update_id IN ({marks}) ORDER BY update_id, group_name"
                        ))?;
                        let ids = update_ids.iter().map(Uuid::to_string);
                        let rows = statement.query_map(params_from_iter(ids), |row| {
                            Ok((
                                row.get::<_, String>(0)?,
                                row.get::<_, String>(1)?,
                                row.get::<_, String>(2)?,
                                row.get::<_, Option<String>>(3)?,
                            ))
                        })?;
                        rows.map(|row| {
                            let (id, group, action, deadline) = row?;
                            super::approval_from(&id, group, &action, deadline.as_deref())
                        })
                        .collect()
                    })
                    .await
            }
            Store::Postgres(store) => store
                .client()
                .await?
                .query(
                    "SELECT update_id, group_name, action, deadline FROM approvals
                     WHERE update_id = ANY($1) ORDER BY update_id, group_name",
                    &[&update_ids],
                )
                .await?
                .iter()
                .map(|row| {
                    let id: Uuid = row.try_get(0)?;
                    let action: String = row.try_get(2)?;
                    let deadline: Option<String> = row.try_get(3)?;
                    super::approval_from(
                        &id.to_string(),
                        row.try_get(1)?,
                        &action,
                        deadline.as_deref(),
                    )
                })
                .collect(),
        }
    }

    /// How many computers each group has.
    pub async fn group_sizes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        const SQL: &str = "SELECT group_name, COUNT(*) FROM computers GROUP BY group_name";
        let rows: Vec<(String, i64)> = match self {
            Store::Sqlite(store) => {
                store
                    .with(|connection| {
                        let mut statement = connection.prepare(SQL)?;
                        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                        Ok(rows.collect::<Result<_, _>>()?)
                    })
                    .await?
            }
            Store::Postgres(store) => store
                .client()
                .await?
                .query(SQL, &[])
                .await?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<_, StoreError>>()?,
        };
        Ok(rows
            .into_iter()
            .map(|(group, n)| (group, count(n)))
            .collect())
    }

    /// One update's reported states, counted per group.
    pub async fn update_group_states(
        &self,
        update_id: Uuid,
    ) -> Result<Vec<(String, UpdateState, u64)>, StoreError> {
        let rows: Vec<(String, String, i64)> = match self {
            Store::Sqlite(store) => {
                store
                    .with(move |connection| {
                        let mut statement = connection.prepare(&sqlite(UPDATE_GROUP_STATES_SQL))?;
                        let rows = statement.query_map([update_id.to_string()], |row| {
                            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                        })?;
                        Ok(rows.collect::<Result<_, _>>()?)
                    })
                    .await?
            }
            Store::Postgres(store) => store
                .client()
                .await?
                .query(UPDATE_GROUP_STATES_SQL, &[&update_id])
                .await?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                .collect::<Result<_, StoreError>>()?,
        };
        rows.into_iter()
            .map(|(group, text, n)| Ok((group, state(&text)?, count(n))))
            .collect()
    }

    /// A page of the computers that reported `update_id` (in `only`, if
    /// given), by host name.
    pub async fn update_computers_page(
        &self,
        update_id: Uuid,
        only: Option<UpdateState>,
        offset: u64,
        page: u64,
    ) -> Result<Page<UpdateComputerRow>, StoreError> {
        let only = only.map(|state| state.as_str().to_owned());
        let (offset, page) = (limit(offset), limit(page));
        let (total, rows) = match self {
            Store::Sqlite(store) => {
                store
                    .with(move |connection| {
                        let id = update_id.to_string();
                        let total: i64 = connection.query_row(
                            &sqlite_text(UPDATE_COMPUTERS_COUNT_SQL),
                            params![id, only],
                            |row| row.get(0),
                        )?;
                        let mut statement =
                            connection.prepare(&sqlite_text(UPDATE_COMPUTERS_SQL))?;
                        let rows = statement.query_map(params![id, only, page, offset], |row| {
                            Ok((
                                row.get::<_, String>(0)?,
                                row.get::<_, String>(1)?,
                                row.get::<_, String>(2)?,
                                row.get::<_, String>(3)?,
                                row.get::<_, Option<String>>(4)?,
                                row.get::<_, String>(5)?,
                            ))
                        })?;
                        let rows = rows
                            .map(|row| {
                                let (id, hostname, group, text, code, observed) = row?;
                                Ok((uuid(&id)?, hostname, group, text, code, observed))
                            })
                            .collect::<Result<Vec<_>, StoreError>>()?;
                        Ok((total, rows))
                    })
                    .await?
            }
            Store::Postgres(store) => {
                let client = store.client().await?;
                let total: i64 = client
                    .query_one(UPDATE_COMPUTERS_COUNT_SQL, &[&update_id, &only])
                    .await?
                    .try_get(0)?;
                let rows = client
                    .query(UPDATE_COMPUTERS_SQL, &[&update_id, &only, &page, &offset])
                    .await?
                    .iter()
                    .map(|row| {
                        Ok((
                            row.try_get(0)?,
                            row.try_get(1)?,
                            row.try_get(2)?,
                            row.try_get(3)?,
                            row.try_get(4)?,
                            row.try_get(5)?,
                        ))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                (total, rows)
            }
        };
        let rows = rows
            .into_iter()
            .map(
                |(computer_id, hostname, group, text, code, observed): (
                    Uuid,
                    String,
                    String,
                    String,
                    Option<String>,
                    String,
                )| {
                    Ok(UpdateComputerRow {
                        computer_id,
                        hostname,
                        group,
                        state: state(&text)?,
                        hresult: hresult(code)?,
                        time: parse_time(&observed)?,
                    })
                },
            )
            .collect::<Result<_, StoreError>>()?;
        Ok(Page {
            total: count(total),
            rows,
        })
    }

    /// A page of computers (of one group, with `hostname` in their name,
    /// if given), by host name, each with its counts of updates that need
    /// attention.
    pub async fn computers_page(
        &self,
        group: Option<String>,
        hostname: Option<String>,
        offset: u64,
        page: u64,
    ) -> Result<Page<ComputerRow>, StoreError> {
        let pattern = hostname.map(|text| format!("%{}%", like_escaped(&text)));
        let (offset, page) = (limit(offset), limit(page));
        type Raw = (
            Uuid,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let (total, rows, counts): (i64, Vec<Raw>, Vec<(Uuid, String, i64)>) = match self {
            Store::Sqlite(store) => {
                store
                    .with(move |connection| {
                        let total: i64 = connection.query_row(
                            &like_sqlite(COMPUTERS_COUNT_SQL),
                            params![group, pattern],
                            |row| row.get(0),
                        )?;
                        let mut statement = connection.prepare(&like_sqlite(COMPUTERS_SQL))?;
                        let rows = statement
                            .query_map(params![group, pattern, page, offset], |row| {
                                Ok((
                                    row.get::<_, String>(0)?,
                                    row.get(1)?,
                                    row.get(2)?,
                                    row.get(3)?,
                                    row.get(4)?,
                                    row.get(5)?,
                                    row.get(6)?,
                                ))
                            })?
                            .map(|row| {
                                let (id, a, b, c, d, e, f) = row?;
                                Ok((uuid(&id)?, a, b, c, d, e, f))
                            })
                            .collect::<Result<Vec<Raw>, StoreError>>()?;
                        let ids: Vec<String> = rows.iter().map(|row| row.0.to_string()).collect();
                        let mut counts = Vec::new();
                        if !ids.is_empty() {
                            let marks = vec!["?"; ids.len()].join(", ");
                            let mut statement = connection.prepare(&format!(
                                "SELECT computer_id, state, COUNT(*) FROM update_states
                                 WHERE computer_id IN ({marks}) AND state IN {ATTENTION}
                                 GROUP BY computer_id, state"
                            ))?;
                            let found = statement.query_map(params_from_iter(ids), |row| {
                                Ok((row.get::<_, String>(0)?, row.get(1)?, row.get(2)?))
                            })?;
                            for row in found {
                                let (id, text, n) = row?;
                                counts.push((uuid(&id)?, text, n));
                            }
                        }
                        Ok((total, rows, counts))
                    })
                    .await?
            }
            Store::Postgres(store) => {
                let client = store.client().await?;
                let sql = |text: &str| text.replace("LIKE $2::text", "LIKE $2::text ESCAPE '\\'");
                let total: i64 = client
                    .query_one(&sql(COMPUTERS_COUNT_SQL), &[&group, &pattern])
                    .await?
                    .try_get(0)?;
                let rows = client
                    .query(&sql(COMPUTERS_SQL), &[&group, &pattern, &page, &offset])
                    .await?
                    .iter()
                    .map(|row| {
                        Ok((
                            row.try_get(0)?,
                            row.try_get(1)?,
                            row.try_get(2)?,
                            row.try_get(3)?,
                            row.try_get(4)?,
                            row.try_get(5)?,
                            row.try_get(6)?,
                        ))
                    })
                    .collect::<Result<Vec<Raw>, StoreError>>()?;
                let ids: Vec<Uuid> = rows.iter().map(|row| row.0).collect();
                let counts = client
                    .query(
                        &format!(
                            "SELECT computer_id, state, COUNT(*) FROM update_states
                             WHERE computer_id = ANY($1) AND state IN {ATTENTION}
                             GROUP BY computer_id, state"
                        ),
                        &[&ids],
                    )
                    .await?
                    .iter()
                    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                    .collect::<Result<Vec<_>, StoreError>>()?;
                (total, rows, counts)
            }
        };
        let mut list = Vec::with_capacity(rows.len());
        for (computer_id, hostname, group, last_sync, last_report, inventory_json, stale_since) in
            rows
        {
            let mut row = ComputerRow {
                computer_id,
                hostname,
                group,
                last_sync: time(last_sync)?,
                last_report: time(last_report)?,
                stale_since: time(stale_since)?,
                inventory: inventory(inventory_json)?,
                needed: 0,
                failed: 0,
                pending_reboot: 0,
            };
            for (_, text, n) in counts.iter().filter(|(id, ..)| *id == computer_id) {
                match state(text)? {
                    UpdateState::Failed => row.failed += count(*n),
                    UpdateState::InstalledPendingReboot => row.pending_reboot += count(*n),
                    _ => row.needed += count(*n),
                }
            }
            list.push(row);
        }
        Ok(Page {
            total: count(total),
            rows: list,
        })
    }

    /// A page of one computer's update states, failures first.
    pub async fn computer_updates_page(
        &self,
        computer_id: Uuid,
        offset: u64,
        page: u64,
    ) -> Result<Page<ComputerUpdateRow>, StoreError> {
        let (offset, page) = (limit(offset), limit(page));
        type Raw = (
            Uuid,
            String,
            i32,
            Option<String>,
            Option<String>,
            String,
            Option<String>,
        );
        const COUNT_SQL: &str = "SELECT COUNT(*) FROM update_states WHERE computer_id = $1";
        let (total, rows): (i64, Vec<Raw>) = match self {
            Store::Sqlite(store) => {
                store
                    .with(move |connection| {
                        let id = computer_id.to_string();
                        let total =
                            connection.query_row(&sqlite(COUNT_SQL), [&id], |row| row.get(0))?;
                        let mut statement = connection.prepare(&sqlite(&computer_updates_sql()))?;
                        let rows = statement
                            .query_map(params![id, page, offset], |row| {
                                Ok((
                                    row.get::<_, String>(0)?,
                                    row.get(1)?,
                                    row.get(2)?,
                                    row.get(3)?,
                                    row.get(4)?,
                                    row.get(5)?,
                                    row.get(6)?,
                                ))
                            })?
                            .map(|row| {
                                let (id, a, b, c, d, e, f) = row?;
                                Ok((uuid(&id)?, a, b, c, d, e, f))
                            })
                            .collect::<Result<Vec<Raw>, StoreError>>()?;
                        Ok((total, rows))
                    })
                    .await?
            }
            Store::Postgres(store) => {
                let client = store.client().await?;
                let total = client
                    .query_one(COUNT_SQL, &[&computer_id])
                    .await?
                    .try_get(0)?;
                let rows = client
                    .query(&computer_updates_sql(), &[&computer_id, &page, &offset])
                    .await?
                    .iter()
                    .map(|row| {
                        Ok((
                            row.try_get(0)?,
                            row.try_get(1)?,
                            row.try_get(2)?,
                            row.try_get(3)?,
                            row.try_get(4)?,
                            row.try_get(5)?,
                            row.try_get(6)?,
                        ))
                    })
                    .collect::<Result<Vec<Raw>, StoreError>>()?;
                (total, rows)
            }
        };
        let rows = rows
            .into_iter()
            .map(
                |(update_id, text, revision_number, code, hresult_text, observed, title)| {
                    Ok(ComputerUpdateRow {
                        update_id,
                        title,
                        state: state(&text)?,
                        revision_number,
                        result_code: result_code(code)?,
                        hresult: hresult(hresult_text)?,
                        time: parse_time(&observed)?,
                    })
                },
            )
            .collect::<Result<_, StoreError>>()?;
        Ok(Page {
            total: count(total),
            rows,
        })
    }

    /// The failures grouped by HRESULT, most frequent first (at most
    /// `limit_to` codes).
    pub async fn failure_codes(&self, limit_to: u64) -> Result<Vec<FailureCode>, StoreError> {
        let limit_to = limit(limit_to);
        let rows: Vec<(Option<String>, i64, i64, i64)> = match self {
            Store::Sqlite(store) => {
                store
                    .with(move |connection| {
                        let mut statement = connection.prepare(&sqlite(FAILURE_CODES_SQL))?;
                        let rows = statement.query_map([limit_to], |row| {
                            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                        })?;
                        Ok(rows.collect::<Result<_, _>>()?)
                    })
                    .await?
            }
            Store::Postgres(store) => store
                .client()
                .await?
                .query(FAILURE_CODES_SQL, &[&limit_to])
                .await?
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get(0)?,
                        row.try_get(1)?,
                        row.try_get(2)?,
                        row.try_get(3)?,
                    ))
                })
                .collect::<Result<_, StoreError>>()?,
        };
        rows.into_iter()
            .map(|(code, failures, computers, updates)| {
                Ok(FailureCode {
                    hresult: hresult(code)?,
                    failures: count(failures),
                    computers: count(computers),
                    updates: count(updates),
                })
            })
            .collect()
    }

    /// A page of the failures that carry `code` (`None`: no code), by host
    /// name.
    pub async fn failures_page(
        &self,
        code: Option<HResult>,
        offset: u64,
        page: u64,
    ) -> Result<Page<FailureRow>, StoreError> {
        let code = stored_hresult(code);
        let (offset, page) = (limit(offset), limit(page));
        type Raw = (Uuid, String, String, Uuid, String, Option<String>);
        let (total, rows): (i64, Vec<Raw>) = match self {
            Store::Sqlite(store) => {
                store
                    .with(move |connection| {
                        let total = connection.query_row(
                            &sqlite_text(FAILURES_COUNT_SQL),
                            [&code],
                            |row| row.get(0),
                        )?;
                        let mut statement = connection.prepare(&sqlite_text(&failures_sql()))?;
                        let rows = statement
                            .query_map(params![code, page, offset], |row| {
                                Ok((
                                    row.get::<_, String>(0)?,
                                    row.get(1)?,
                                    row.get(2)?,
                                    row.get::<_, String>(3)?,
                                    row.get(4)?,
                                    row.get(5)?,
                                ))
                            })?
                            .map(|row| {
                                let (computer, a, b, update, c, d) = row?;
                                Ok((uuid(&computer)?, a, b, uuid(&update)?, c, d))
                            })
                            .collect::<Result<Vec<Raw>, StoreError>>()?;
                        Ok((total, rows))
                    })
                    .await?
            }
            Store::Postgres(store) => {
                let client = store.client().await?;
                let total = client
                    .query_one(FAILURES_COUNT_SQL, &[&code])
                    .await?
                    .try_get(0)?;
                let rows = client
                    .query(&failures_sql(), &[&code, &page, &offset])
                    .await?
                    .iter()
                    .map(|row| {
                        Ok((
                            row.try_get(0)?,
                            row.try_get(1)?,
                            row.try_get(2)?,
                            row.try_get(3)?,
                            row.try_get(4)?,
                            row.try_get(5)?,
                        ))
                    })
                    .collect::<Result<Vec<Raw>, StoreError>>()?;
                (total, rows)
            }
        };
        let rows = rows
            .into_iter()
            .map(
                |(computer_id, hostname, group, update_id, observed, title)| {
                    Ok(FailureRow {
                        computer_id,
                        hostname,
                        group,
                        update_id,
                        title,
                        time: parse_time(&observed)?,
                    })
                },
            )
            .collect::<Result<_, StoreError>>()?;
        Ok(Page {
            total: count(total),
            rows,
        })
    }
}

/// `text` with LIKE's wildcards and the escape character escaped, so a
/// host name search matches what was typed.
fn like_escaped(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The computers queries for SQLite, whose LIKE needs its escape named.
fn like_sqlite(sql: &str) -> String {
    sqlite_text(sql).replace("LIKE ?2", "LIKE ?2 ESCAPE '\\'")
}

/// What the Computers page shows of one computer beyond its row in
/// `computers`: its last report and inventory, and its updates counted by
/// state.
#[derive(Debug, Clone, Default)]
pub struct ComputerReport {
    /// When it last reported.
    pub last_report: Option<Timestamp>,
    /// The inventory of that report.
    pub inventory: Option<Inventory>,
    /// Its updates per state.
    pub states: Vec<(UpdateState, u64)>,
}

impl Store {
    /// One computer's last report and state counts.
    pub async fn computer_report(&self, computer_id: Uuid) -> Result<ComputerReport, StoreError> {
        const REPORT_SQL: &str =
            "SELECT last_report, inventory_json FROM computers WHERE computer_id = $1";
        const STATES_SQL: &str =
            "SELECT state, COUNT(*) FROM update_states WHERE computer_id = $1 GROUP BY state";
        type Raw = (Option<(Option<String>, Option<String>)>, Vec<(String, i64)>);
        let (report, states): Raw = match self {
            Store::Sqlite(store) => {
                store
                    .with(move |connection| {
                        let id = computer_id.to_string();
                        let report = connection
                            .query_row(&sqlite(REPORT_SQL), [&id], |row| {
                                Ok((row.get(0)?, row.get(1)?))
                            })
                            .optional()?;
                        let mut statement = connection.prepare(&sqlite(STATES_SQL))?;
                        let states = statement
                            .query_map([&id], |row| Ok((row.get(0)?, row.get(1)?)))?
                            .collect::<Result<_, _>>()?;
                        Ok((report, states))
                    })
                    .await?
            }
            Store::Postgres(store) => {
                let client = store.client().await?;
                let report = client
                    .query_opt(REPORT_SQL, &[&computer_id])
                    .await?
                    .map(|row| Ok::<_, StoreError>((row.try_get(0)?, row.try_get(1)?)))
                    .transpose()?;
                let states = client
                    .query(STATES_SQL, &[&computer_id])
                    .await?
                    .iter()
                    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                    .collect::<Result<_, StoreError>>()?;
                (report, states)
            }
        };
        let (last_report, inventory_json) = report.unwrap_or_default();
        Ok(ComputerReport {
            last_report: time(last_report)?,
            inventory: inventory(inventory_json)?,
            states: states
                .into_iter()
                .map(|(text, n)| Ok((state(&text)?, count(n))))
                .collect::<Result<_, StoreError>>()?,
        })
    }
}
