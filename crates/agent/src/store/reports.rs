//! The store's side of status reports (`crate::reports`): the queue of
//! report parts per update server, their sequence numbers, and each
//! update's last result.

use std::collections::HashMap;

use jiff::Timestamp;
use openwua_model::history::HistoryEntry;
use openwua_model::hresult::WU_E_DS_INVALID;
use openwua_model::service::ReportingState;
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::{Store, parse_time, parse_uuid};
use crate::error::{AgentError, Result};

/// The longest error text kept for `GetReportingState`, in characters.
const MAX_ERROR_CHARS: usize = 1024;

/// One queued part of a report, ready to send.
#[derive(Debug, Clone)]
pub struct QueuedReport {
    /// Its sequence number at that server.
    pub sequence: u64,
    /// The report's `inventory`, as JSON.
    pub inventory_json: String,
    /// The report's `updates`, as a JSON array.
    pub updates_json: String,
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Store {
    /// Queues a full-state report of `service_id` as `parts` (each a JSON
    /// array of updates, sent with `inventory_json`), numbered from the
    /// service's next sequence, in one transaction that drops the parts
    /// of older reports not yet acknowledged: this one supersedes them.
    /// Returns the sequences given.
    pub fn queue_report(
        &mut self,
        service_id: Uuid,
        created: Timestamp,
        inventory_json: &str,
        parts: &[String],
    ) -> Result<Vec<u64>> {
        let transaction = self.connection.transaction()?;
        let id = service_id.to_string();
        transaction.execute(
            "INSERT OR IGNORE INTO report_status (service_id, next_sequence) VALUES (?1, 1)",
            [&id],
        )?;
        let next: i64 = transaction.query_row(
            "SELECT next_sequence FROM report_status WHERE service_id = ?1",
            [&id],
            |row| row.get(0),
        )?;
        let first = next.unsigned_abs().max(1);
        transaction.execute("DELETE FROM report_queue WHERE service_id = ?1", [&id])?;
        let mut sequences = Vec::with_capacity(parts.len());
        {
            let mut insert = transaction.prepare_cached(
                "INSERT INTO report_queue (service_id, sequence, created, inventory_json, updates_json)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (offset, updates_json) in (0u64..).zip(parts) {
                let sequence = first + offset;
                insert.execute(params![
                    id,
                    to_i64(sequence),
                    created.to_string(),
                    inventory_json,
                    updates_json
                ])?;
                sequences.push(sequence);
            }
        }
        transaction.execute(
            "UPDATE report_status SET next_sequence = ?2 WHERE service_id = ?1",
            params![id, to_i64(first + sequences.len() as u64)],
        )?;
        transaction.commit()?;
        Ok(sequences)
    }

    /// Numbers an exported report of `service_id` (an offline scan
    /// package's, carried to its server by hand): `parts` sequences from
    /// the service's next one, but at least `floor`, recorded as sent now.
    /// Nothing is queued, so the sender never sees it. Returns the
    /// sequences given.
    pub fn number_exported_report(
        &mut self,
        service_id: Uuid,
        parts: usize,
        floor: u64,
        now: Timestamp,
    ) -> Result<Vec<u64>> {
        let transaction = self.connection.transaction()?;
        let id = service_id.to_string();
        transaction.execute(
            "INSERT OR IGNORE INTO report_status (service_id, next_sequence) VALUES (?1, 1)",
            [&id],
        )?;
        let next: i64 = transaction.query_row(
            "SELECT next_sequence FROM report_status WHERE service_id = ?1",
            [&id],
            |row| row.get(0),
        )?;
        let first = next.unsigned_abs().max(floor).max(1);
        let sequences: Vec<u64> = (first..).take(parts).collect();
        let last = first + parts.saturating_sub(1) as u64;
        transaction.execute(
            "UPDATE report_status SET next_sequence = ?2, acknowledged = ?3, last_sent = ?4,
                 last_error = NULL, last_error_time = NULL
             WHERE service_id = ?1",
            params![id, to_i64(last + 1), to_i64(last), now.to_string()],
        )?;
        transaction.commit()?;
        Ok(sequences)
    }

    /// The services with report parts waiting.
    pub fn services_with_reports(&self) -> Result<Vec<Uuid>> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT DISTINCT service_id FROM report_queue")?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        rows.map(|row| parse_uuid(&row?)).collect()
    }

    /// The service's waiting part with the lowest sequence.
    pub fn next_report(&self, service_id: Uuid) -> Result<Option<QueuedReport>> {
        let row: Option<(i64, String, String)> = self
            .connection
            .query_row(
                "SELECT sequence, inventory_json, updates_json FROM report_queue
                 WHERE service_id = ?1 ORDER BY sequence LIMIT 1",
                [service_id.to_string()],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        Ok(
            row.map(|(sequence, inventory_json, updates_json)| QueuedReport {
                sequence: sequence.unsigned_abs(),
                inventory_json,
                updates_json,
            }),
        )
    }

    /// The server stored the service's parts up to `sequence`: they leave
    /// the queue, and the last error is cleared.
    pub fn acknowledge_report(
        &mut self,
        service_id: Uuid,
        sequence: u64,
        now: Timestamp,
    ) -> Result<()> {
        let transaction = self.connection.transaction()?;
        let id = service_id.to_string();
        transaction.execute(
            "DELETE FROM report_queue WHERE service_id = ?1 AND sequence <= ?2",
            params![id, to_i64(sequence)],
        )?;
        transaction.execute(
            "UPDATE report_status SET acknowledged = MAX(acknowledged, ?2), last_sent = ?3,
                 last_error = NULL, last_error_time = NULL
             WHERE service_id = ?1",
            params![id, to_i64(sequence), now.to_string()],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// The server already holds a sequence above the service's waiting
    /// parts (this store was restored, or the service added again), so it
    /// would take them for duplicates: they are numbered again from
    /// `acknowledged + 1`, in their order, and the next sequence moves past
    /// them.
    pub fn renumber_reports(&mut self, service_id: Uuid, acknowledged: u64) -> Result<()> {
        let transaction = self.connection.transaction()?;
        let id = service_id.to_string();
        let lowest: Option<i64> = transaction.query_row(
            "SELECT MIN(sequence) FROM report_queue WHERE service_id = ?1",
            [&id],
            |row| row.get(0),
        )?;
        if let Some(lowest) = lowest {
            let offset = to_i64(acknowledged) + 1 - lowest;
            // Through negative numbers, so no row meets another's on the way.
            transaction.execute(
                "UPDATE report_queue SET sequence = -(sequence + ?2) WHERE service_id = ?1",
                params![id, offset],
            )?;
            transaction.execute(
                "UPDATE report_queue SET sequence = -sequence WHERE service_id = ?1",
                [&id],
            )?;
        }
        transaction.execute(
            "UPDATE report_status SET acknowledged = MAX(acknowledged, ?2),
                 next_sequence = MAX(next_sequence, ?2 + 1,
                     (SELECT COALESCE(MAX(sequence), 0) + 1 FROM report_queue WHERE service_id = ?1))
             WHERE service_id = ?1",
            params![id, to_i64(acknowledged)],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// Records why sending failed; with `dropped`, that part leaves the
    /// queue (the server refused it for good).
    pub fn report_failed(
        &mut self,
        service_id: Uuid,
        error: &str,
        dropped: Option<u64>,
        now: Timestamp,
    ) -> Result<()> {
        let transaction = self.connection.transaction()?;
        let id = service_id.to_string();
        if let Some(sequence) = dropped {
            transaction.execute(
                "DELETE FROM report_queue WHERE service_id = ?1 AND sequence = ?2",
                params![id, to_i64(sequence)],
            )?;
        }
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        transaction.execute(
            "UPDATE report_status SET last_error = ?2, last_error_time = ?3 WHERE service_id = ?1",
            params![id, error, now.to_string()],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// How reporting stands for every update-server service.
    pub fn reporting_states(&self) -> Result<Vec<ReportingState>> {
        let mut statement = self.connection.prepare_cached(
            "SELECT s.service_id, COALESCE(r.acknowledged, 0),
                    (SELECT COUNT(*) FROM report_queue q WHERE q.service_id = s.service_id),
                    (SELECT MIN(sequence) FROM report_queue q WHERE q.service_id = s.service_id),
                    r.last_sent, r.last_error, r.last_error_time
             FROM services s LEFT JOIN report_status r ON r.service_id = s.service_id
             WHERE s.is_scan_package = 0
             ORDER BY s.is_default DESC, s.name, s.service_id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, Option<i64>>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, Option<String>>(5)?,
                row.get::<_, Option<String>>(6)?,
            ))
        })?;
        let mut states = Vec::new();
        for row in rows {
            let (id, acknowledged, queued, next, sent, error, error_time) = row?;
            states.push(ReportingState {
                service_id: parse_uuid(&id)?,
                acknowledged: acknowledged.unsigned_abs(),
                queued: queued.unsigned_abs(),
                next_sequence: next.map(i64::unsigned_abs),
                last_sent: parse_time(sent)?,
                last_error: error,
                last_error_time: parse_time(error_time)?,
                next_attempt: None,
            });
        }
        Ok(states)
    }

    /// Each update's newest history entry: its last result.
    pub fn last_results(&self) -> Result<HashMap<Uuid, HistoryEntry>> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT update_id, entry_json FROM last_result")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut results = HashMap::new();
        for row in rows {
            let (id, text) = row?;
            let entry: HistoryEntry = serde_json::from_str(&text).map_err(|error| {
                AgentError::new(WU_E_DS_INVALID, format!("stored last result: {error}"))
            })?;
            results.insert(parse_uuid(&id)?, entry);
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use uuid::Uuid;

    use crate::store::Store;

    fn store_with_server(dir: &std::path::Path) -> (Store, Uuid) {
        let store = Store::open(&dir.join("agent.db")).unwrap();
        let service_id = Uuid::from_u128(0x5e7);
        store
            .connection
            .execute(
                "INSERT INTO services (service_id, name, is_scan_package, source, public_key)
                 VALUES (?1, 'Server', 0, 'http://127.0.0.1:1', '')",
                [service_id.to_string()],
            )
            .unwrap();
        (store, service_id)
    }

    #[test]
    fn a_newer_report_replaces_waiting_parts_and_sequences_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, service) = store_with_server(dir.path());
        let now = Timestamp::now();
        let parts = ["[]".to_owned(), "[]".to_owned()];
        assert_eq!(
            store.queue_report(service, now, "{}", &parts).unwrap(),
            [1, 2]
        );
        store.acknowledge_report(service, 1, now).unwrap();
        assert_eq!(store.next_report(service).unwrap().unwrap().sequence, 2);
        // Part 2 is superseded before it was sent.
        assert_eq!(
            store.queue_report(service, now, "{}", &parts[..1]).unwrap(),
            [3]
        );
        let state = &store.reporting_states().unwrap()[0];
        assert_eq!(
            (state.acknowledged, state.queued, state.next_sequence),
            (1, 1, Some(3))
        );
        // The server holds 7 already: the waiting part becomes 8, and the
        // next report 9.
        store.renumber_reports(service, 7).unwrap();
        assert_eq!(store.next_report(service).unwrap().unwrap().sequence, 8);
        assert_eq!(
            store.queue_report(service, now, "{}", &parts).unwrap(),
            [9, 10]
        );
    }

    #[test]
    fn the_last_result_follows_history_in_the_same_write() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = store_with_server(dir.path());
        let update = Uuid::from_u128(42);
        let entry = |result: &str| {
            serde_json::json!({
                "operation": "Installation", "resultCode": result, "hresult": "0x00000000",
                "date": Timestamp::now().to_string(),
                "updateIdentity": {"updateId": update, "revisionNumber": 1},
                "title": "t", "clientApplicationId": "c", "serviceId": Uuid::nil(),
            })
        };
        for result in ["Failed", "Succeeded"] {
            let entry: openwua_model::history::HistoryEntry =
                serde_json::from_value(entry(result)).unwrap();
            store.record_result(&entry, None, true).unwrap();
        }
        let results = store.last_results().unwrap();
        assert_eq!(
            results[&update].result_code,
            openwua_model::enums::OperationResultCode::Succeeded
        );
    }
}
