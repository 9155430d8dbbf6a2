//! Issue 16's maintenance test: a simulated year (tests/year) on SQLite
//! and on PostgreSQL stays bounded, and nothing a computer needs goes;
//! and `wua-server maintenance` against the real server.

mod common;
mod year;

use openwua_server::clock::Clock;
use openwua_server::store::Store;
use year::{Month, Shape, Year};

/// The year (12 batches of 1,000 updates, 10,000 computers)
/// scaled down to run in seconds; `cargo bench --bench maintenance` runs
/// it whole.
const SHAPE: Shape = Shape {
    computers: 300,
    updates: 60,
    groups: 6,
    months: 12,
    content_bytes: 1024,
    maintain: true,
    check: true,
};

/// The second half of the year is no bigger than the first half's largest
/// month, give or take `slack_percent`: freed space is given back
/// (SQLite) or used again (PostgreSQL, whose pages fill unevenly).
fn assert_size_levels_off(months: &[Month], slack_percent: u64) {
    let first_half = months[..6].iter().map(|m| m.database_bytes).max().unwrap();
    let second_half = months[6..].iter().map(|m| m.database_bytes).max().unwrap();
    assert!(
        second_half * 100 <= first_half * (100 + slack_percent),
        "{second_half} bytes after month 6, {first_half} before"
    );
}

fn assert_bounded(months: &[Month]) {
    for (index, month) in months.iter().enumerate() {
        eprintln!(
            "month {index}: {} updates, {} computers, {} content files, database {} bytes",
            month.updates, month.computers, month.content_files, month.database_bytes
        );
    }
    let last = months.last().unwrap();
    // What stuck computers needed of the first batch stayed until they
    // installed it, long after its superseders went.
    assert!(months[year::UNSTUCK].updates > 2 * SHAPE.updates);
    // The batch of the month and the one it superseded (within
    // retention), nothing else.
    assert_eq!(last.updates, 2 * SHAPE.updates);
    assert_eq!(last.content_files, 2 * SHAPE.updates as u64);
    // Gone computers were removed.
    assert_eq!(
        last.computers,
        SHAPE.computers - SHAPE.computers.div_ceil(50)
    );
    // Every month's work was recorded, and updates and content went.
    let runs: Vec<_> = months
        .iter()
        .filter_map(|month| month.run.clone())
        .collect();
    assert_eq!(runs.len(), SHAPE.months);
    let removed: u64 = runs.iter().map(|run| run.removed_update_count).sum();
    assert!(
        removed as usize >= (SHAPE.months - 3) * SHAPE.updates,
        "{removed} removed"
    );
    assert!(
        runs.iter()
            .map(|run| run.removed_content_count)
            .sum::<u64>()
            >= removed
    );
    assert_eq!(
        runs.iter()
            .map(|run| run.removed_computer_count)
            .sum::<u64>() as usize,
        SHAPE.computers.div_ceil(50)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_simulated_year_on_sqlite_stays_bounded_and_keeps_what_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("content");
    std::fs::create_dir(&content).unwrap();
    let clock = Clock::manual(year::start());
    let store = Store::open_sqlite(&dir.path().join("server.sqlite"))
        .await
        .unwrap()
        .with_clock(clock.clone());
    let mut simulation = Year::new(SHAPE, store, clock, &content).await;
    let months = simulation.run().await;
    assert_bounded(&months);
    assert_size_levels_off(&months, 0);
    let runs = simulation.store().maintenance_runs(100).await.unwrap();
    assert_eq!(runs.len(), SHAPE.months);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_simulated_year_on_postgresql_stays_bounded_and_keeps_what_is_needed() {
    let Some(admin_url) = common::postgres_url("maintenance_postgres") else {
        return;
    };
    common::with_database(&admin_url, |url| async move {
        let dir = tempfile::tempdir().unwrap();
        let content = dir.path().join("content");
        std::fs::create_dir(&content).unwrap();
        let clock = Clock::manual(year::start());
        let store = Store::open_postgres(&url)
            .await
            .unwrap()
            .with_clock(clock.clone());
        let mut simulation = Year::new(SHAPE, store, clock, &content).await;
        simulation.vacuum_url = Some(url.clone());
        let months = simulation.run().await;
        assert_bounded(&months);
        assert_size_levels_off(&months, 10);
    })
    .await;
}

/// `wua-server maintenance run|runs`, `GET /api/v1/maintenance` and the
/// computers' `stale` field, against the real server with its policy from
/// `server.toml`.
#[test]
fn the_real_server_runs_maintenance_on_demand_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        "[maintenance]\nhour_utc = 4\nretention_days = 7\nstale_after_days = 14\n\
         remove_after_days = 60\n",
    )
    .unwrap();
    let data_dir = dir.path().join("data");
    let server = common::Server::start_with_config(&data_dir, &config, None, &[]);
    server.run_ok(&["publish", common::sample_service().to_str().unwrap()]);
    let updates = server.updates();
    let declined = updates[0]["updateId"].as_str().unwrap().to_owned();
    server.run_ok(&["decline", &declined]);
    let body = serde_json::json!({"machineId": "a".repeat(32), "hostname": "host-a"});
    let (status, _, bytes) = common::http(
        "POST",
        &format!("{}/api/v1/computers/register", server.url),
        None,
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));

    let (status, body) = server.admin("GET", "/api/v1/maintenance", b"");
    assert_eq!(status, 200);
    let status_body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status_body["policy"]["hourUtc"], 4);
    assert_eq!(status_body["policy"]["retentionDays"], 7);
    assert_eq!(status_body["policy"]["removeAfterDays"], 60);
    assert!(
        status_body["nextRun"]
            .as_str()
            .unwrap()
            .contains("T04:00:00")
    );

    // A dry run says what a run would do, and is not stored.
    let dry = server.json(&["maintenance", "run", "--dry-run"]);
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["id"], 0);
    // The sample service supersedes some of its own updates; one more is
    // declined. None of them is approved, so none is needed.
    let obsolete = dry["obsoleteCount"].as_u64().unwrap();
    assert!(obsolete >= 1, "{dry}");
    assert_eq!(dry["neededCount"], 0, "{dry}");
    // Obsolete as of now: within their retention.
    let run = server.json(&["maintenance", "run"]);
    assert_eq!(run["dryRun"], false);
    assert_eq!(run["trigger"], "request");
    assert_eq!(run["retainedCount"].as_u64(), Some(obsolete), "{run}");
    assert_eq!(run["removedUpdateCount"], 0);
    assert!(run["databaseBytesAfter"].as_u64().unwrap() > 0);
    let runs = server.json(&["maintenance", "runs"]);
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["id"], run["id"]);
    assert!(server.run_ok(&["maintenance", "runs"]).contains("request"));
    // The declined update is still there.
    assert_eq!(
        server.updates().as_array().unwrap().len(),
        updates.as_array().unwrap().len()
    );

    let computers = server.json(&["computers", "list"]);
    assert_eq!(computers[0]["stale"], false);

    // Admin only, and a body it does not know is refused.
    let (status, _, _) = common::http(
        "POST",
        &format!("{}/api/v1/maintenance/runs", server.url),
        None,
        &[("content-type", "application/json")],
        b"{}",
    );
    assert_eq!(status, 401);
    let (status, _) = server.admin("POST", "/api/v1/maintenance/runs", b"{\"dryRun\": 3}");
    assert_eq!(status, 400);
    let (status, _) = server.admin("GET", "/api/v1/maintenance/runs?limit=0", b"");
    assert_eq!(status, 400);
}

#[test]
fn a_policy_that_removes_computers_before_marking_them_stale_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        "[maintenance]\nstale_after_days = 30\nremove_after_days = 10\n",
    )
    .unwrap();
    let output = std::process::Command::new(common::BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .env_clear()
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("remove_after_days"), "{stderr}");
}

/// The removal decides again, in its own transaction, what computers
/// need: a report that came after the run read its facts keeps the
/// update; a catalog that moved stops it; an update that goes is gone for
/// agents too (their next delta removes it).
async fn a_removal_decides_again_and_agents_drop_what_went(store: Store) {
    use openwua_server::fleet::{Approval, ApprovalAction, NewComputer};
    use openwua_server::reports::{Inventory, ReportRequest, ReportedUpdate, UpdateState};
    use openwua_server::store::{Candidate, SyncPlan, UpdateRemoval};

    let revision = openwua_catalog::manifest::load_service_dir(&common::sample_service())
        .unwrap()
        .revisions
        .remove(0);
    let update = revision.update.identity.update_id;
    store
        .publish_content_elsewhere(vec![Candidate::new(revision).unwrap()])
        .await
        .unwrap();
    let computer = uuid::Uuid::new_v4();
    let group = store
        .add_computer(NewComputer {
            computer_id: computer,
            secret_sha256: [0; 32],
            machine_id: "m".into(),
            hostname: "host".into(),
            target_group: None,
            replaces_identity: false,
        })
        .await
        .unwrap();
    store
        .set_approval(Approval {
            update_id: update,
            group,
            action: ApprovalAction::Install,
            deadline: None,
        })
        .await
        .unwrap();
    let report = |sequence, state| ReportRequest {
        sequence,
        inventory: Inventory {
            os: None,
            kernel: None,
            architecture: None,
            agent_version: None,
            last_sync: None,
            reboot_pending: false,
            awaiting_interactive_user: Vec::new(),
        },
        updates: vec![ReportedUpdate {
            update_id: update,
            revision_number: 1,
            state,
            result_code: None,
            hresult: None,
            time: jiff::Timestamp::now(),
        }],
    };
    store
        .store_report(computer, report(1, UpdateState::Installed))
        .await
        .unwrap();
    let (version, _) = store.maintenance_updates().await.unwrap();
    let ids = vec![update];
    let none = std::collections::HashSet::new();
    assert!(
        store
            .needed_updates(ids.clone(), none.clone())
            .await
            .unwrap()
            .is_empty()
    );
    // Uninstalled since: needed again.
    store
        .store_report(computer, report(2, UpdateState::NotInstalled))
        .await
        .unwrap();
    let kept = store
        .remove_updates(ids.clone(), none.clone(), version)
        .await
        .unwrap();
    assert!(matches!(kept, UpdateRemoval::Removed { ref removed, .. } if removed.is_empty()));
    store
        .store_report(computer, report(3, UpdateState::Installed))
        .await
        .unwrap();
    let moved = store
        .remove_updates(ids.clone(), none.clone(), version - 1)
        .await
        .unwrap();
    assert!(matches!(moved, UpdateRemoval::CatalogMoved));
    let UpdateRemoval::Removed {
        removed, states, ..
    } = store
        .remove_updates(ids.clone(), none.clone(), version)
        .await
        .unwrap()
    else {
        panic!("the catalog did not move");
    };
    assert_eq!((removed, states), (ids, 1));
    assert!(store.update_history(update).await.unwrap().is_none());
    assert!(store.approvals(update).await.unwrap().is_empty());
    assert!(store.update_states(Some(update)).await.unwrap().is_empty());
    let Some(SyncPlan::Delta(delta)) = store
        .sync_plan(computer, Some(version), Vec::new())
        .await
        .unwrap()
    else {
        panic!("no delta");
    };
    assert_eq!(delta.removed, vec![update]);
    assert!(delta.changed.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removal_decides_again_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("server.sqlite"))
        .await
        .unwrap();
    a_removal_decides_again_and_agents_drop_what_went(store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removal_decides_again_on_postgresql() {
    let Some(admin_url) = common::postgres_url("maintenance_removal_postgres") else {
        return;
    };
    common::with_database(&admin_url, |url| async move {
        let store = Store::open_postgres(&url).await.unwrap();
        a_removal_decides_again_and_agents_drop_what_went(store).await;
    })
    .await;
}

/// One run at a time per store, not per process: a run holding one
/// store's lock does not turn away another store's run, and a finished
/// run lets the next one in at once (PostgreSQL's advisory lock is
/// unlocked, not left to the connection's close).
#[tokio::test(flavor = "multi_thread")]
async fn a_run_holds_only_its_own_store() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open_sqlite(&dir.path().join("first.sqlite"))
        .await
        .unwrap();
    let second = Store::open_sqlite(&dir.path().join("second.sqlite"))
        .await
        .unwrap();
    let held = first.try_maintenance_lock().await.unwrap();
    assert!(held.is_some());
    assert!(first.try_maintenance_lock().await.unwrap().is_none());
    assert!(second.try_maintenance_lock().await.unwrap().is_some());
    drop(held);

    let Some(admin_url) = common::postgres_url("a_run_holds_only_its_own_store") else {
        return;
    };
    common::with_database(&admin_url, |url| async move {
        let store = Store::open_postgres(&url).await.unwrap();
        for _ in 0..5 {
            let lock = store.try_maintenance_lock().await.unwrap();
            lock.expect("the last run's lock was released")
                .release()
                .await;
        }
    })
    .await;
}
