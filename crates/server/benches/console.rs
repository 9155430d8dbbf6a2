//! The web console's pages: server time per page with 10,000 computers and
//! 100,000 updates (issue 16's figure; goal p95 ≤ 200 ms).
//!
//! `cargo bench -p openwua-server --bench console` seeds a store through
//! the library (`Store`, the calls the API makes): `CONSOLE_BENCH_UPDATES`
//! updates (default 100,000; revisions made from the sample service's,
//! each with its own ID, title and KB), 10 groups, the newest
//! `CONSOLE_BENCH_APPROVED` updates (default 100) approved for All
//! Computers, and `CONSOLE_BENCH_COMPUTERS` computers (default 10,000),
//! 98% of which report a state for every approved update (most Installed;
//! some NotInstalled, Failed with one of a few codes, or waiting for a
//! restart). Then it starts the release `wua-server` on that store, signs
//! in to the console and asks each page `CONSOLE_BENCH_REQUESTS` times
//! (default 50) after one warm-up, one request at a time, and prints p50,
//! p95 and the largest time per page, for SQLite and, when
//! `OPENWUA_TEST_POSTGRES_URL` is set, a throwaway PostgreSQL database.
//! The first Updates page builds the console's update index; its time is
//! printed apart. A halted rollout (four rings) and 30 recorded
//! maintenance runs feed the update-with-rollout, Rollouts and Maintenance
//! pages.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use openwua_catalog::manifest;
use openwua_model::update::MsrcSeverity;
use openwua_server::fleet::{Approval, ApprovalAction, NewComputer};
use openwua_server::maintenance::MaintenanceRun;
use openwua_server::reports::{Inventory, ReportRequest, ReportedUpdate, ResultCode, UpdateState};
use openwua_server::rollouts::{FailingCode, HaltReason, Ring, Rollout, RolloutPlan, RolloutState};
use openwua_server::store::{Candidate, Store};
use uuid::Uuid;

mod support;
use support::{env_number, spawn_server, with_postgres};

const CODES: [u32; 4] = [0x8024_0020, 0x8024_200B, 0x8007_0070, 0x8024_402C];

fn update_id(index: u64) -> Uuid {
    Uuid::from_u128(0x0b00_0000_0000_4000_8000_0000_0000_0000 | u128::from(index))
}

async fn seed(store: &Store, updates: u64, approved: u64, computers: u64) {
    let sample = manifest::load_service_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-service"),
    )
    .unwrap();
    let started = Instant::now();
    let severities = [
        Some(MsrcSeverity::Critical),
        Some(MsrcSeverity::Important),
        None,
        Some(MsrcSeverity::Moderate),
        None,
    ];
    let mut index = 0;
    while index < updates {
        let batch: Vec<Candidate> = (index..updates.min(index + 10_000))
            .map(|index| {
                let mut revision =
                    sample.revisions[index as usize % sample.revisions.len()].clone();
                let update = &mut revision.update;
                update.identity.update_id = update_id(index);
                update.identity.revision_number = 1;
                update.title = format!("{} #{index}", update.title);
                update.kb_article_ids = vec![(5_000_000 + index).to_string()];
                update.cve_ids = vec![format!("CVE-2026-{}", 10_000 + index)];
                update.msrc_severity = severities[index as usize % severities.len()];
                update.superseded_update_ids.clear();
                update.bundled_updates.clear();
                Candidate::new(revision).unwrap()
            })
            .collect();
        index += batch.len() as u64;
        store.publish_content_elsewhere(batch).await.unwrap();
    }
    println!(
        "console: seeded {updates} updates in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for ring in 0..10 {
        store
            .add_group(&format!("Ring {ring}"), "All Computers")
            .await
            .unwrap();
    }
    let approved_ids: Vec<Uuid> = (updates.saturating_sub(approved)..updates)
        .map(update_id)
        .collect();
    for &id in &approved_ids {
        store
            .set_approval(Approval {
                update_id: id,
                group: "All Computers".into(),
                action: ApprovalAction::Install,
                deadline: None,
            })
            .await
            .unwrap();
    }
    let started = Instant::now();
    let inventory = Inventory {
        os: Some("Debian GNU/Linux 12 (bookworm)".into()),
        kernel: Some("6.1.0-28-amd64".into()),
        architecture: Some("x86_64".into()),
        agent_version: Some("0.1.0".into()),
        last_sync: None,
        reboot_pending: false,
        awaiting_interactive_user: Vec::new(),
    };
    let time: jiff::Timestamp = "2026-12-04T20:01:00Z".parse().unwrap();
    for computer in 0..computers {
        let computer_id =
            Uuid::from_u128(0x0c00_0000_0000_4000_8000_0000_0000_0000 | u128::from(computer));
        store
            .add_computer(NewComputer {
                computer_id,
                secret_sha256: [7; 32],
                machine_id: format!("{computer:032x}"),
                hostname: format!("host-{computer:05}"),
                target_group: Some(format!("Ring {}", computer % 10)),
                replaces_identity: false,
            })
            .await
            .unwrap();
        // 2% never report.
        if computer % 50 == 7 {
            continue;
        }
        let updates = approved_ids
            .iter()
            .enumerate()
            .map(|(position, &update_id)| {
                let (state, hresult) = match (computer % 100, position) {
                    (0..=4, 0..=2) => (UpdateState::NotInstalled, None),
                    (5..=7, 0) => (
                        UpdateState::Failed,
                        Some(CODES[(computer as usize / 100) % CODES.len()]),
                    ),
                    (8..=9, 0) => (UpdateState::InstalledPendingReboot, None),
                    _ => (UpdateState::Installed, None),
                };
                ReportedUpdate {
                    update_id,
                    revision_number: 1,
                    state,
                    result_code: Some(if hresult.is_some() {
                        ResultCode::Failed
                    } else {
                        ResultCode::Succeeded
                    }),
                    hresult: hresult.map(openwua_model::hresult::HResult::from_u32),
                    time,
                }
            })
            .collect();
        store
            .store_report(
                computer_id,
                ReportRequest {
                    sequence: 1,
                    inventory: inventory.clone(),
                    updates,
                },
            )
            .await
            .unwrap();
    }
    println!(
        "console: seeded {computers} computers and their reports in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A staged rollout over four rings of the second-newest approved update
/// (every computer reported it), halted with four failing codes, and
/// `RUNS_KEPT` maintenance runs each listing 1,000 removed updates.
async fn seed_operations(store: &Store, updates: u64, approved: u64) {
    const RUNS_KEPT: u64 = 30;
    let rings = (0..4)
        .map(|ring| Ring {
            group: format!("Ring {ring}"),
            percent: 100,
            soak_secs: 86_400,
        })
        .collect();
    let rollout = Rollout {
        update_id: update_id(updates - approved + 1),
        plan: RolloutPlan {
            rings,
            max_failure_percent: 2,
            min_reported: 10,
            deadline: None,
        },
        stage: 1,
        state: RolloutState::Halted,
        stage_started: jiff::Timestamp::now(),
        halt: Some(HaltReason {
            time: jiff::Timestamp::now(),
            message: "3.0 % of 1960 reported failed, above 2 %".into(),
            reported: 1960,
            failed: 59,
            codes: CODES
                .iter()
                .map(|code| FailingCode {
                    hresult: format!("{code:#010x}"),
                    name: None,
                    computers: 15,
                })
                .collect(),
        }),
    };
    store.start_rollout(rollout).await.unwrap();
    let now = jiff::Timestamp::now();
    for run in 0..RUNS_KEPT {
        let record = MaintenanceRun {
            id: 0,
            started: now - jiff::SignedDuration::from_hours(24 * run as i64),
            finished: now,
            removed_updates: (0..1000).map(update_id).collect(),
            removed_update_count: 1000,
            database_bytes_before: 900 << 20,
            database_bytes_after: 800 << 20,
            ..MaintenanceRun::default()
        };
        store
            .record_maintenance_run(
                record.started,
                serde_json::to_string(&record).unwrap(),
                now - jiff::SignedDuration::from_hours(24 * 400),
                1000,
            )
            .await
            .unwrap();
    }
}

struct Server {
    child: Child,
    url: String,
    cookie: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(data_dir: &Path, database: Option<&str>) -> Server {
        let (child, port, token) = spawn_server(data_dir, database, &[]);
        let url = format!("http://127.0.0.1:{port}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .build()
            .into();
        let answer = agent
            .post(format!("{url}/console/sign-in"))
            .content_type("application/x-www-form-urlencoded")
            .send(format!("token={token}"))
            .unwrap();
        assert_eq!(answer.status(), 303);
        let cookie = answer
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        Server { child, url, cookie }
    }

    /// One page: its time, after checking it answered 200 with a page.
    fn time(&self, agent: &ureq::Agent, path: &str) -> Duration {
        let started = Instant::now();
        let mut answer = agent
            .get(format!("{}{path}", self.url))
            .header("Cookie", &self.cookie)
            .call()
            .unwrap();
        let body = answer.body_mut().read_to_string().unwrap();
        let elapsed = started.elapsed();
        assert_eq!(answer.status(), 200, "{path}: {body}");
        assert!(body.contains("</html>"), "{path}: {body}");
        elapsed
    }
}

fn bench(kind: &str, database: Option<&str>) {
    let updates = env_number("CONSOLE_BENCH_UPDATES", 100_000);
    let approved = env_number("CONSOLE_BENCH_APPROVED", 100);
    let computers = env_number("CONSOLE_BENCH_COMPUTERS", 10_000);
    let requests = env_number("CONSOLE_BENCH_REQUESTS", 50);
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = match database {
            Some(url) => Store::open_postgres(url).await.unwrap(),
            None => Store::open_sqlite(&data_dir.join("server.sqlite"))
                .await
                .unwrap(),
        };
        seed(&store, updates, approved, computers).await;
        seed_operations(&store, updates, approved).await;
    });
    drop(runtime);
    let server = Server::start(&data_dir, database);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let cold = server.time(&agent, "/console/updates");
    println!(
        "console/{kind}: the update index built by the first Updates page in {:.0} ms",
        cold.as_secs_f64() * 1e3
    );
    let busy_update = update_id(updates - approved);
    let pages = [
        ("overview", "/console/overview".to_owned()),
        ("updates", "/console/updates".to_owned()),
        ("updates?q", "/console/updates?q=KB5000042".to_owned()),
        (
            "updates?criteria",
            "/console/updates?criteria=Type%3D%27Software%27+and+BrowseOnly%3D0&severity=Critical"
                .to_owned(),
        ),
        ("update", format!("/console/updates/{busy_update}")),
        ("computers", "/console/computers".to_owned()),
        (
            "computers?group",
            "/console/computers?group=Ring+3&page=10".to_owned(),
        ),
        (
            "computer",
            format!(
                "/console/computers/{}",
                Uuid::from_u128(0x0c00_0000_0000_4000_8000_0000_0000_0000 | 5)
            ),
        ),
        ("failures", "/console/failures".to_owned()),
        ("failures/code", "/console/failures/0x80240020".to_owned()),
        (
            "update+rollout",
            format!("/console/updates/{}", update_id(updates - approved + 1)),
        ),
        ("rollouts", "/console/rollouts".to_owned()),
        ("maintenance", "/console/maintenance".to_owned()),
    ];
    for (name, path) in &pages {
        server.time(&agent, path);
        let mut times: Vec<Duration> = (0..requests).map(|_| server.time(&agent, path)).collect();
        times.sort();
        let at = |fraction: f64| {
            let index = ((times.len() as f64 * fraction).ceil() as usize).clamp(1, times.len()) - 1;
            times[index].as_secs_f64() * 1e3
        };
        println!(
            "console/{kind}: {name:<18} p50 {:7.1} ms  p95 {:7.1} ms  max {:7.1} ms  \
             ({requests} requests; {computers} computers, {updates} updates)",
            at(0.5),
            at(0.95),
            at(1.0),
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then this is not run.
    if !std::env::args().any(|argument| argument == "--bench") {
        return;
    }
    bench("sqlite", None);
    match std::env::var("OPENWUA_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => with_postgres(&url, |database| {
            bench("postgresql", Some(database));
        }),
        _ => println!("console/postgresql: skipped, OPENWUA_TEST_POSTGRES_URL is not set"),
    }
}
