//! A simulated year for maintenance, through the store API with a clock
//! the simulation moves (no sleeps): each month a batch of updates, each
//! superseding its namesake of the month before, is published with one
//! content file apiece and approved for its computer group; the group's
//! computers report their state of it; then maintenance runs. Shared by
//! `tests/maintenance.rs` (scaled down) and `benches/maintenance.rs`.
//!
//! Computers: group `i % groups`. The first of every 100 is *stuck*: it
//! does not install its group's first batch until month 6 and says so
//! every month, so that batch's updates must survive until then (long
//! after the batch that superseded them went) and go after. The second of every 50 is
//! *gone* after month 2: never heard from again, it is marked stale, then
//! removed, and until then every later update of its group stays.
//! Each computer reports the batch of the month (the server keeps only
//! the latest state per update, so earlier states would change nothing).

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use openwua_catalog::revision::{ContentFile, Revision};
use openwua_model::update::DownloadContent;
use openwua_server::clock::Clock;
use openwua_server::fleet::NewComputer;
use openwua_server::maintenance::{MaintenanceRun, Policy, Trigger};
use openwua_server::reports::{Inventory, ReportRequest, ReportedUpdate, UpdateState};
use openwua_server::store::{Candidate, Store};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The simulation's size.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Computers.
    pub computers: usize,
    /// Updates per monthly batch.
    pub updates: usize,
    /// Computer groups; each batch's updates are split among them.
    pub groups: usize,
    /// Months.
    pub months: usize,
    /// Bytes of each update's content file.
    pub content_bytes: usize,
    /// Whether maintenance runs each month.
    pub maintain: bool,
    /// Whether to check after each run that nothing needed went (costs
    /// memory at full volume).
    pub check: bool,
}

/// What one month ended with.
#[derive(Debug, Clone)]
pub struct Month {
    /// The database's size after the month's run, in bytes.
    pub database_bytes: u64,
    /// Content files and their bytes in the content directory.
    pub content_files: u64,
    /// Their bytes.
    pub content_bytes: u64,
    /// Updates stored.
    pub updates: usize,
    /// Computers registered.
    pub computers: usize,
    /// The run's record (when maintenance ran).
    pub run: Option<MaintenanceRun>,
    /// How long the run took by the wall clock (the store's stands still).
    pub run_time: std::time::Duration,
}

const DAY: i64 = 24;

fn days(count: i64) -> SignedDuration {
    SignedDuration::from_hours(DAY * count)
}

/// The first moment of the simulation.
pub fn start() -> Timestamp {
    "2027-01-04T00:00:00Z".parse().unwrap()
}

/// The month stuck computers install the first batch.
pub const UNSTUCK: usize = 6;

fn is_stuck(index: usize) -> bool {
    index.is_multiple_of(100)
}

fn is_gone(index: usize) -> bool {
    index % 50 == 1
}

fn applies(computer: usize, update: usize) -> bool {
    !(computer + update).is_multiple_of(3)
}

struct Computer {
    id: Uuid,
    group: usize,
    sequence: u64,
}

/// The simulation's state.
pub struct Year {
    shape: Shape,
    store: Store,
    clock: Clock,
    content_dir: PathBuf,
    template: Revision,
    computers: Vec<Computer>,
    /// Per batch, its updates: (ID, group, content SHA-256).
    batches: Vec<Vec<(Uuid, usize, String)>>,
    /// What each computer said of each update, for the check.
    said: HashMap<(usize, Uuid), UpdateState>,
    /// When each gone computer was last heard.
    last_heard: HashMap<Uuid, Timestamp>,
    /// PostgreSQL: VACUUM after each month, standing in for autovacuum
    /// (which comes by on its own schedule, far more often than monthly).
    pub vacuum_url: Option<String>,
}

impl Year {
    /// Sets up groups and computers on `store` (opened on `clock`), with
    /// content in `content_dir`.
    pub async fn new(shape: Shape, store: Store, clock: Clock, content_dir: &Path) -> Year {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-service");
        let template = openwua_catalog::manifest::load_service_dir(&sample)
            .unwrap()
            .revisions
            .into_iter()
            .find(|revision| !revision.content.is_empty())
            .unwrap();
        for group in 0..shape.groups {
            store
                .add_group(&format!("G{group}"), "All Computers")
                .await
                .unwrap();
        }
        let mut computers = Vec::with_capacity(shape.computers);
        for index in 0..shape.computers {
            let id = Uuid::new_v4();
            store
                .add_computer(NewComputer {
                    computer_id: id,
                    secret_sha256: [0; 32],
                    machine_id: format!("{:032x}", index),
                    hostname: format!("host-{index}"),
                    target_group: Some(format!("G{}", index % shape.groups)),
                    replaces_identity: false,
                })
                .await
                .unwrap();
            computers.push(Computer {
                id,
                group: index % shape.groups,
                sequence: 0,
            });
        }
        Year {
            shape,
            store,
            clock,
            content_dir: content_dir.to_owned(),
            template,
            computers,
            batches: Vec::new(),
            said: HashMap::new(),
            last_heard: HashMap::new(),
            vacuum_url: None,
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs every month; returns what each ended with.
    pub async fn run(&mut self) -> Vec<Month> {
        let mut months = Vec::with_capacity(self.shape.months);
        for month in 0..self.shape.months {
            months.push(self.month(month).await);
        }
        months
    }

    async fn month(&mut self, month: usize) -> Month {
        let begins = start() + days(30 * month as i64);
        self.set_time(begins);
        self.publish(month).await;
        self.set_time(begins + days(1));
        self.report(month).await;
        self.set_time(begins + days(29));
        let began = std::time::Instant::now();
        let run = if self.shape.maintain {
            let content_dir = self.content_dir.clone();
            let policy = Policy::default();
            Some(
                openwua_server::maintenance::run(
                    &self.store,
                    Some(&content_dir),
                    &policy,
                    Trigger::Schedule,
                    false,
                )
                .await
                .unwrap(),
            )
        } else {
            None
        };
        let run_time = began.elapsed();
        if let Some(run) = &run {
            assert_eq!(run.error, None, "month {month}");
        }
        if self.shape.check {
            self.check(month).await;
        }
        if let Some(url) = &self.vacuum_url {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let connection = tokio::spawn(connection);
            client
                .batch_execute(
                    "VACUUM updates, update_states, approvals, computers, content, sync_log,
                         maintenance_obsolete, maintenance_superseded",
                )
                .await
                .unwrap();
            drop(client);
            let _ = connection.await;
        }
        let (content_files, content_bytes) = directory_size(&self.content_dir);
        Month {
            database_bytes: self.store.database_size().await.unwrap(),
            content_files,
            content_bytes,
            updates: self.store.list_updates().await.unwrap().len(),
            computers: self.store.list_computers().await.unwrap().len(),
            run,
            run_time,
        }
    }

    fn set_time(&self, time: Timestamp) {
        let now = self.clock.now();
        self.clock.advance(time.duration_since(now));
    }

    async fn publish(&mut self, month: usize) {
        let previous = self.batches.last().cloned();
        let mut batch = Vec::with_capacity(self.shape.updates);
        let mut candidates = Vec::with_capacity(self.shape.updates);
        for index in 0..self.shape.updates {
            let id = Uuid::new_v4();
            let group = index % self.shape.groups;
            // Unique bytes per update: its ID, repeated.
            let bytes: Vec<u8> = id
                .as_bytes()
                .iter()
                .copied()
                .cycle()
                .take(self.shape.content_bytes)
                .collect();
            let sha256 = hex::encode(Sha256::digest(&bytes));
            std::fs::write(self.content_dir.join(&sha256), &bytes).unwrap();
            self.store
                .add_content(&sha256, bytes.len() as u64)
                .await
                .unwrap();
            let mut revision = self.template.clone();
            revision.update.identity.update_id = id;
            revision.update.identity.revision_number = 1;
            revision.update.title = format!("Month {month} update {index}");
            revision.update.superseded_update_ids = previous
                .as_ref()
                .map(|previous| vec![previous[index].0])
                .unwrap_or_default();
            let file_name = format!("update-{index}.deb");
            revision.update.download_contents = vec![DownloadContent {
                file_name: file_name.clone(),
                size: bytes.len() as u64,
                sha256: sha256.parse().unwrap(),
            }];
            revision.content = vec![ContentFile {
                file_name,
                size: bytes.len() as u64,
                sha256: sha256.parse().unwrap(),
                url: format!("content/{sha256}"),
            }];
            candidates.push(Candidate::new(revision).unwrap());
            batch.push((id, group, sha256));
        }
        self.store.publish(candidates).await.unwrap();
        for (id, group, _) in &batch {
            let change = self
                .store
                .set_approval(openwua_server::fleet::Approval {
                    update_id: *id,
                    group: format!("G{group}"),
                    action: openwua_server::fleet::ApprovalAction::Install,
                    deadline: None,
                })
                .await
                .unwrap();
            assert!(matches!(
                change,
                openwua_server::fleet::GroupChange::Done(_)
            ));
        }
        self.batches.push(batch);
    }

    async fn report(&mut self, month: usize) {
        let now = self.clock.now();
        let batch = self.batches[month].clone();
        let first = self.batches[0].clone();
        for index in 0..self.computers.len() {
            if is_gone(index) && month > 2 {
                continue;
            }
            let group = self.computers[index].group;
            let mut updates = Vec::new();
            for (position, (id, update_group, _)) in batch.iter().enumerate() {
                if *update_group != group {
                    continue;
                }
                let state = match (applies(index, position), is_stuck(index) && month == 0) {
                    (false, _) => UpdateState::NotApplicable,
                    (true, true) => UpdateState::NotInstalled,
                    (true, false) => UpdateState::Installed,
                };
                updates.push((*id, state));
            }
            // A stuck computer still lacks its first batch, and says so,
            // until it installs it.
            if is_stuck(index) && month > 0 && month <= UNSTUCK {
                let state = if month == UNSTUCK {
                    UpdateState::Installed
                } else {
                    UpdateState::NotInstalled
                };
                for (position, (id, update_group, _)) in first.iter().enumerate() {
                    if *update_group == group && applies(index, position) {
                        updates.push((*id, state));
                    }
                }
            }
            let computer = &mut self.computers[index];
            computer.sequence += 1;
            let request = ReportRequest {
                sequence: computer.sequence,
                inventory: Inventory {
                    os: Some("Debian GNU/Linux 12".into()),
                    kernel: None,
                    architecture: Some("amd64".into()),
                    agent_version: None,
                    last_sync: None,
                    reboot_pending: false,
                    awaiting_interactive_user: Vec::new(),
                },
                updates: updates
                    .iter()
                    .map(|(id, state)| ReportedUpdate {
                        update_id: *id,
                        revision_number: 1,
                        state: *state,
                        result_code: None,
                        hresult: None,
                        time: now,
                    })
                    .collect(),
            };
            let id = computer.id;
            self.store.store_report(id, request).await.unwrap();
            if is_gone(index) {
                self.last_heard.insert(id, now);
            }
            if self.shape.check {
                for (update_id, state) in updates {
                    self.said.insert((index, update_id), state);
                }
            }
        }
    }

    /// Nothing a computer needs went: every update approved for a
    /// registered computer's group that the computer has not reported
    /// Installed or NotApplicable is stored, with its content row and
    /// file. Gone computers are stale or removed when they should be.
    async fn check(&self, month: usize) {
        let now = self.clock.now();
        let stored: HashSet<Uuid> = self
            .store
            .list_updates()
            .await
            .unwrap()
            .into_iter()
            .map(|revision| revision.update_id)
            .collect();
        let registered: HashMap<Uuid, bool> = self
            .store
            .list_computers()
            .await
            .unwrap()
            .into_iter()
            .map(|computer| (computer.computer_id, computer.stale))
            .collect();
        let policy = Policy::default();
        for (index, computer) in self.computers.iter().enumerate() {
            let heard = self
                .last_heard
                .get(&computer.id)
                .copied()
                .filter(|_| is_gone(index));
            match (registered.get(&computer.id), heard) {
                (None, Some(heard)) => assert!(
                    now.duration_since(heard) >= days(policy.remove_after_days as i64),
                    "month {month}: host-{index} removed too early"
                ),
                (None, None) => panic!("month {month}: host-{index} removed"),
                (Some(&stale), Some(heard)) => {
                    let quiet = now.duration_since(heard);
                    assert!(
                        quiet < days(policy.remove_after_days as i64),
                        "month {month}: host-{index} quiet for {quiet:#} and kept"
                    );
                    assert_eq!(
                        stale,
                        quiet >= days(policy.stale_after_days as i64),
                        "month {month}: host-{index}, quiet for {quiet:#}"
                    );
                }
                (Some(&stale), None) => assert!(!stale, "month {month}: host-{index} stale"),
            }
            if !registered.contains_key(&computer.id) {
                continue;
            }
            for batch in &self.batches {
                for (update_id, group, sha256) in batch {
                    if *group != computer.group {
                        continue;
                    }
                    let done = matches!(
                        self.said.get(&(index, *update_id)),
                        Some(UpdateState::Installed | UpdateState::NotApplicable)
                    );
                    if done {
                        continue;
                    }
                    assert!(
                        stored.contains(update_id),
                        "month {month}: host-{index} needs {update_id}, and it went"
                    );
                    assert!(
                        self.store.content_size(sha256).await.unwrap().is_some()
                            && self.content_dir.join(sha256).exists(),
                        "month {month}: host-{index} needs {update_id}'s content, and it went"
                    );
                }
            }
        }
    }
}

/// Files in `dir` and their bytes.
pub fn directory_size(dir: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let metadata = entry.unwrap().metadata().unwrap();
        if metadata.is_file() {
            files += 1;
            bytes += metadata.len();
        }
    }
    (files, bytes)
}
