//! The store's suite, written once and run against both back ends: SQLite
//! in a temporary directory and PostgreSQL in a database made for the run.

mod common;

use std::path::Path;

use openwua_catalog::manifest::load_service_dir;
use openwua_catalog::revision::Revision;
use openwua_server::store::{
    Candidate, DeclineOutcome, PublishAction, SCHEMA_VERSION, Store, StoreError, SyncPlan,
};

fn sample_revisions() -> Vec<Revision> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-service");
    load_service_dir(&dir)
        .expect("the sample service")
        .revisions
}

fn candidates(revisions: &[Revision]) -> Vec<Candidate> {
    revisions
        .iter()
        .cloned()
        .map(|revision| Candidate::new(revision).unwrap())
        .collect()
}

async fn add_all_content(store: &Store, revisions: &[Revision]) {
    for file in revisions.iter().flat_map(|revision| &revision.content) {
        store
            .add_content(&file.sha256.to_string(), file.size)
            .await
            .unwrap();
    }
}

async fn starts_migrated_and_empty(store: &Store) {
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert_eq!(store.catalog_version().await.unwrap(), 0);
    assert!(store.list_updates().await.unwrap().is_empty());
}

async fn keeps_admin_tokens_once(store: &Store) {
    store.add_admin_token([7; 32]).await.unwrap();
    store.add_admin_token([7; 32]).await.unwrap();
    store.add_admin_token([9; 32]).await.unwrap();
    let mut tokens = store.admin_tokens().await.unwrap();
    tokens.sort();
    assert_eq!(tokens, vec![[7; 32], [9; 32]]);
}

async fn records_content(store: &Store) {
    let digest = "ab".repeat(32);
    assert_eq!(store.content_size(&digest).await.unwrap(), None);
    store.add_content(&digest, 42).await.unwrap();
    store.add_content(&digest, 42).await.unwrap();
    assert_eq!(store.content_size(&digest).await.unwrap(), Some(42));
}

async fn refuses_a_publish_without_its_content(store: &Store, revisions: &[Revision]) {
    let error = store.publish(candidates(revisions)).await.unwrap_err();
    assert!(matches!(error, StoreError::MissingContent(_)), "{error}");
    assert_eq!(store.catalog_version().await.unwrap(), 0);
    assert!(store.list_updates().await.unwrap().is_empty());
}

async fn publishes_idempotently_and_revises(store: &Store, revisions: &[Revision]) {
    add_all_content(store, revisions).await;
    let first = store.publish(candidates(revisions)).await.unwrap();
    assert!(first.changed);
    assert_eq!(first.catalog_version, 1);
    assert!(
        first
            .updates
            .iter()
            .all(|u| u.action == PublishAction::Added)
    );
    assert_eq!(store.list_updates().await.unwrap().len(), revisions.len());

    let again = store.publish(candidates(revisions)).await.unwrap();
    assert!(!again.changed);
    assert_eq!(again.catalog_version, 1);
    assert!(
        again
            .updates
            .iter()
            .all(|u| u.action == PublishAction::Unchanged)
    );

    let mut changed = revisions[0].clone();
    changed.update.title.push_str(" (refreshed)");
    let update_id = changed.update.identity.update_id;
    let before = first.updates[0].revision_number;
    let revised = store.publish(candidates(&[changed])).await.unwrap();
    assert_eq!(revised.catalog_version, 2);
    assert_eq!(revised.updates[0].action, PublishAction::Revised);
    assert_eq!(revised.updates[0].revision_number, before + 1);

    let (history, current) = store.update_history(update_id).await.unwrap().unwrap();
    assert_eq!(
        history
            .iter()
            .map(|r| r.revision_number)
            .collect::<Vec<_>>(),
        vec![before, before + 1]
    );
    assert_eq!(current.update.identity.revision_number, before + 1);
    assert!(current.update.title.ends_with("(refreshed)"));
    let listed = store.list_updates().await.unwrap();
    assert_eq!(listed.len(), revisions.len());
    let line = listed.iter().find(|r| r.update_id == update_id).unwrap();
    assert_eq!(line.revision_number, before + 1);
}

async fn declines_once(store: &Store, revisions: &[Revision]) {
    let update_id = revisions[0].update.identity.update_id;
    let version = store.catalog_version().await.unwrap();
    assert_eq!(
        store.decline(update_id).await.unwrap(),
        DeclineOutcome::Declined(version + 1)
    );
    assert_eq!(
        store.decline(update_id).await.unwrap(),
        DeclineOutcome::AlreadyDeclined(version + 1)
    );
    assert_eq!(
        store.decline(uuid::Uuid::new_v4()).await.unwrap(),
        DeclineOutcome::Unknown
    );
    let (history, _) = store.update_history(update_id).await.unwrap().unwrap();
    assert!(history.iter().all(|r| r.declined));
    // A new revision of a declined update stays declined.
    let mut changed = revisions[0].clone();
    changed.update.title.push_str(" (again)");
    store.publish(candidates(&[changed])).await.unwrap();
    let listed = store.list_updates().await.unwrap();
    assert!(
        listed
            .iter()
            .find(|r| r.update_id == update_id)
            .unwrap()
            .declined
    );
    assert_eq!(
        store.update_history(uuid::Uuid::new_v4()).await.unwrap(),
        None
    );
}

/// Groups, computers and approvals; `revisions` are published already and
/// the first is declined.
async fn keeps_the_fleet(store: &Store, revisions: &[Revision]) {
    use openwua_server::fleet::{
        ALL_COMPUTERS, Approval, ApprovalAction, GroupChange, NewComputer, UNASSIGNED_COMPUTERS,
    };
    let service_id = store.service_id().await.unwrap();
    assert_eq!(store.service_id().await.unwrap(), service_id);
    let names = |groups: Vec<openwua_server::fleet::Group>| {
        groups.into_iter().map(|g| g.name).collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.list_groups().await.unwrap()),
        vec![ALL_COMPUTERS, UNASSIGNED_COMPUTERS]
    );
    let version = store.catalog_version().await.unwrap();
    assert_eq!(
        store.add_group("Web", ALL_COMPUTERS).await.unwrap(),
        GroupChange::Done(version + 1)
    );
    assert_eq!(
        store.add_group("Web", ALL_COMPUTERS).await.unwrap(),
        GroupChange::Exists
    );
    assert_eq!(
        store.add_group("Canary", "Nowhere").await.unwrap(),
        GroupChange::UnknownGroup
    );
    store.add_group("Canary", "Web").await.unwrap();
    assert_eq!(
        store.remove_group(ALL_COMPUTERS).await.unwrap(),
        GroupChange::BuiltIn
    );
    assert_eq!(
        store.remove_group("Web").await.unwrap(),
        GroupChange::NotEmpty
    );

    let computer_id = uuid::Uuid::new_v4();
    let group = store
        .add_computer(NewComputer {
            computer_id,
            secret_sha256: [3; 32],
            machine_id: "ab".into(),
            hostname: "web1".into(),
            target_group: Some("Canary".into()),
            replaces_identity: false,
        })
        .await
        .unwrap();
    assert_eq!(group, "Canary");
    let lost = store
        .add_computer(NewComputer {
            computer_id: uuid::Uuid::new_v4(),
            secret_sha256: [4; 32],
            machine_id: "cd".into(),
            hostname: "lost".into(),
            target_group: Some("Nowhere".into()),
            replaces_identity: true,
        })
        .await
        .unwrap();
    assert_eq!(lost, UNASSIGNED_COMPUTERS);
    assert_eq!(
        store.catalog_version().await.unwrap(),
        version + 3,
        "two groups and a computer that presented an identity"
    );
    let credentials = store.credentials(computer_id).await.unwrap().unwrap();
    assert_eq!(credentials.secret_sha256, [3; 32]);
    assert_eq!(credentials.machine_id, "ab");
    assert!(
        store
            .credentials(uuid::Uuid::new_v4())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.list_computers().await.unwrap().len(), 2);
    store.record_sync(computer_id).await.unwrap();
    assert!(
        store
            .computer(computer_id)
            .await
            .unwrap()
            .unwrap()
            .last_sync
            .is_some()
    );

    let declined = revisions[0].update.identity.update_id;
    let approved = revisions[1].update.identity.update_id;
    for update_id in [declined, approved] {
        store
            .set_approval(Approval {
                update_id,
                group: "Web".into(),
                action: ApprovalAction::Install,
                deadline: None,
            })
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .set_approval(Approval {
                update_id: uuid::Uuid::new_v4(),
                group: "Web".into(),
                action: ApprovalAction::Install,
                deadline: None,
            })
            .await
            .unwrap(),
        GroupChange::UnknownUpdate
    );
    let view = store.sync_view("Canary").await.unwrap();
    assert_eq!(view.version, store.catalog_version().await.unwrap());
    assert_eq!(view.revisions.len(), 1, "the declined one is left out");
    assert!(
        store
            .sync_view(UNASSIGNED_COMPUTERS)
            .await
            .unwrap()
            .revisions
            .is_empty()
    );
    // An override in the child group.
    store
        .set_approval(Approval {
            update_id: approved,
            group: "Canary".into(),
            action: ApprovalAction::NotApproved,
            deadline: None,
        })
        .await
        .unwrap();
    assert!(
        store
            .sync_view("Canary")
            .await
            .unwrap()
            .revisions
            .is_empty()
    );
    assert_eq!(store.approvals(approved).await.unwrap().len(), 2);

    let before = store.catalog_version().await.unwrap();
    assert_eq!(
        store.move_computer(computer_id, "Web").await.unwrap(),
        GroupChange::Done(before + 1)
    );
    assert_eq!(
        store
            .move_computer(uuid::Uuid::new_v4(), "Web")
            .await
            .unwrap(),
        GroupChange::UnknownComputer
    );
    assert_eq!(
        store.remove_group("Canary").await.unwrap(),
        GroupChange::Done(before + 2)
    );
    assert_eq!(store.approvals(approved).await.unwrap().len(), 1);
}

/// A sync's plan as a map: update → (revision JSON, offer).
type Served = std::collections::BTreeMap<uuid::Uuid, (String, openwua_server::fleet::Offer)>;

fn served(revisions: Vec<openwua_server::store::Offered>) -> Served {
    revisions
        .into_iter()
        .map(|offered| {
            let revision: Revision = serde_json::from_str(&offered.json).unwrap();
            (
                revision.update.identity.update_id,
                (offered.json, offered.offer),
            )
        })
        .collect()
}

async fn full(store: &Store, computer_id: uuid::Uuid) -> (u64, Served) {
    match store.sync_plan(computer_id, None, vec![]).await.unwrap() {
        Some(SyncPlan::Full {
            version,
            view: Some(view),
            ..
        }) => {
            assert_eq!(view.version, version);
            (version, served(view.revisions))
        }
        _ => panic!("no full snapshot without an anchor"),
    }
}

async fn plan_kind(store: &Store, computer_id: uuid::Uuid, anchor: u64) -> &'static str {
    match store
        .sync_plan(computer_id, Some(anchor), vec![])
        .await
        .unwrap()
        .unwrap()
    {
        SyncPlan::Current(_) => "current",
        SyncPlan::Delta(_) => "delta",
        SyncPlan::Full { .. } => "full",
    }
}

/// Deltas from the change log: exactly what changed for the computer's
/// group, and applied to the anchor's snapshot the current one; stale,
/// forced and future anchors get a full snapshot.
async fn answers_syncs_from_the_change_log(store: &Store, revisions: &[Revision]) {
    use openwua_server::fleet::{ALL_COMPUTERS, Approval, ApprovalAction, NewComputer};
    let approve = |update: &Revision, group: &str, action, deadline| Approval {
        update_id: update.update.identity.update_id,
        group: group.into(),
        action,
        deadline,
    };
    store.add_group("Ring", ALL_COMPUTERS).await.unwrap();
    let computer_id = uuid::Uuid::new_v4();
    let new_computer = |computer_id, replaces_identity| NewComputer {
        computer_id,
        secret_sha256: [5; 32],
        machine_id: "ef".into(),
        hostname: "ring1".into(),
        target_group: Some("Ring".into()),
        replaces_identity,
    };
    store
        .add_computer(new_computer(computer_id, false))
        .await
        .unwrap();
    let picked = &revisions[2..9];
    for update in &picked[..3] {
        store
            .set_approval(approve(update, "Ring", ApprovalAction::Install, None))
            .await
            .unwrap();
    }
    // Never offered to Ring: its removal is nobody's business.
    store
        .set_approval(approve(&picked[6], "Ring", ApprovalAction::Install, None))
        .await
        .unwrap();
    store
        .set_approval(approve(
            &picked[6],
            "Ring",
            ApprovalAction::NotApproved,
            None,
        ))
        .await
        .unwrap();
    let (anchor, before) = full(store, computer_id).await;
    assert_eq!(before.len(), 3);
    assert_eq!(plan_kind(store, computer_id, anchor).await, "current");

    // A new revision, a decline, an Uninstall with a deadline, another
    // group's approval, and a decline of what Ring never had.
    let mut revised = picked[0].clone();
    revised.update.title.push_str(" (delta)");
    add_all_content(store, std::slice::from_ref(&revised)).await;
    store.publish(candidates(&[revised])).await.unwrap();
    store
        .decline(picked[1].update.identity.update_id)
        .await
        .unwrap();
    let deadline: jiff::Timestamp = "2027-03-01T00:00:00Z".parse().unwrap();
    store
        .set_approval(approve(
            &picked[3],
            "Ring",
            ApprovalAction::Uninstall,
            Some(deadline),
        ))
        .await
        .unwrap();
    store
        .set_approval(approve(&picked[4], "Web", ApprovalAction::Install, None))
        .await
        .unwrap();
    store
        .decline(picked[6].update.identity.update_id)
        .await
        .unwrap();

    let Some(SyncPlan::Delta(delta)) = store
        .sync_plan(computer_id, Some(anchor), vec![])
        .await
        .unwrap()
    else {
        panic!("no delta from a recent anchor");
    };
    let (version, after) = full(store, computer_id).await;
    assert_eq!((delta.base_version, delta.version), (anchor, version));
    assert_eq!(delta.removed, vec![picked[1].update.identity.update_id]);
    let changed = served(delta.changed);
    let mut expected: Vec<_> = [&picked[0], &picked[3]]
        .iter()
        .map(|update| update.update.identity.update_id)
        .collect();
    expected.sort();
    assert_eq!(changed.keys().copied().collect::<Vec<_>>(), expected);
    let uninstall = &changed[&picked[3].update.identity.update_id].1;
    assert_eq!(uninstall.action, ApprovalAction::Uninstall);
    assert_eq!(uninstall.deadline, Some(deadline));
    // Applied to the anchor's snapshot, the current one.
    let mut applied = before.clone();
    applied.retain(|update_id, _| !delta.removed.contains(update_id));
    applied.extend(changed);
    assert_eq!(applied, after);

    // The snapshot the caller holds is not read again.
    match store
        .sync_plan(computer_id, None, vec![("Ring".into(), version)])
        .await
        .unwrap()
    {
        Some(SyncPlan::Full { view: None, .. }) => {}
        _ => panic!("a cached snapshot was read again"),
    }
    // An anchor from the future, and an unknown computer.
    assert_eq!(plan_kind(store, computer_id, version + 5).await, "full");
    assert!(
        store
            .sync_plan(uuid::Uuid::new_v4(), None, vec![])
            .await
            .unwrap()
            .is_none()
    );
    // A move: anchors from before it get a full snapshot.
    store.move_computer(computer_id, "Ring").await.unwrap();
    let moved = store.catalog_version().await.unwrap();
    assert_eq!(plan_kind(store, computer_id, version).await, "full");
    assert_eq!(plan_kind(store, computer_id, moved).await, "current");
    // A registration that presented an identity: the same.
    let replacing = uuid::Uuid::new_v4();
    store
        .add_computer(new_computer(replacing, true))
        .await
        .unwrap();
    let registered = store.catalog_version().await.unwrap();
    assert_eq!(registered, moved + 1);
    assert_eq!(plan_kind(store, replacing, moved).await, "full");
    assert_eq!(plan_kind(store, replacing, registered).await, "current");

    // Pruning: nothing is older than a day; everything is older than a
    // minute from now, and then only anchors from the last logged version
    // on get deltas.
    let yesterday = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24);
    assert_eq!(store.prune_sync_log(yesterday).await.unwrap(), 0);
    assert_eq!(plan_kind(store, computer_id, moved).await, "delta");
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(1);
    assert!(store.prune_sync_log(soon).await.unwrap() > 0);
    let floor = store.sync_log_floor().await.unwrap();
    assert_eq!(floor, version, "the last change logged");
    let other = uuid::Uuid::new_v4();
    store
        .add_computer(new_computer(other, false))
        .await
        .unwrap();
    assert_eq!(plan_kind(store, other, floor - 1).await, "full");
    assert_eq!(plan_kind(store, other, floor).await, "delta");
}

async fn suite(store: Store) {
    let revisions = sample_revisions();
    starts_migrated_and_empty(&store).await;
    keeps_admin_tokens_once(&store).await;
    records_content(&store).await;
    refuses_a_publish_without_its_content(&store, &revisions).await;
    publishes_idempotently_and_revises(&store, &revisions).await;
    declines_once(&store, &revisions).await;
    keeps_the_fleet(&store, &revisions).await;
    answers_syncs_from_the_change_log(&store, &revisions).await;
    automates_approvals_and_gates_rollouts(&store, &revisions).await;
}

/// Rules fire in the publish, for groups without their own approval;
/// rollouts gate full snapshots and deltas per computer; a stale rollout
/// is not replaced.
async fn automates_approvals_and_gates_rollouts(store: &Store, revisions: &[Revision]) {
    use openwua_model::update::MsrcSeverity;
    use openwua_server::fleet::{ALL_COMPUTERS, Approval, ApprovalAction, NewComputer};
    use openwua_server::rollouts::{Ring, Rollout, RolloutPlan, RolloutState, bucket};
    use openwua_server::rules::ApprovalRule;
    store.add_group("Auto", ALL_COMPUTERS).await.unwrap();
    let rule = ApprovalRule {
        name: "critical".into(),
        classifications: vec!["Security Updates".into()],
        products: vec![],
        severities: vec![MsrcSeverity::Critical],
        title_pattern: None,
        source_pattern: None,
        groups: vec!["Auto".into(), "Gone".into()],
        action: ApprovalAction::Install,
        deadline_offset_hours: Some(24),
        new_revisions: true,
        enabled: true,
    };
    assert!(store.put_rule(&rule).await.unwrap());
    assert!(!store.put_rule(&rule).await.unwrap());
    assert_eq!(store.rules().await.unwrap(), vec![rule.clone()]);
    let critical = revisions
        .iter()
        .find(|revision| revision.update.msrc_severity == Some(MsrcSeverity::Critical))
        .expect("a critical update in the sample")
        .clone();
    let id = critical.update.identity.update_id;
    let mut revised = critical.clone();
    revised.update.title.push_str(" (rules)");
    let report = store.publish(candidates(&[revised])).await.unwrap();
    // "Gone" is no group: only Auto's approval is given.
    assert_eq!(report.rule_approvals.len(), 1, "{report:?}");
    assert_eq!(report.rule_approvals[0].group, "Auto");
    let auto: Vec<Approval> = store
        .approvals(id)
        .await
        .unwrap()
        .into_iter()
        .filter(|approval| approval.group == "Auto")
        .collect();
    assert!(auto[0].deadline.is_some());
    // Published again unchanged, nothing fires.
    let mut again = critical.clone();
    again.update.title.push_str(" (rules)");
    let report = store.publish(candidates(&[again])).await.unwrap();
    assert!(report.rule_approvals.is_empty());
    // Given by hand: only the groups without an approval of their own.
    let (added, _) = store
        .add_approvals(vec![
            auto[0].clone(),
            Approval {
                group: ALL_COMPUTERS.into(),
                ..auto[0].clone()
            },
        ])
        .await
        .unwrap();
    assert_eq!(added.len(), 1);
    assert!(store.remove_rule("critical").await.unwrap());
    assert!(!store.remove_rule("critical").await.unwrap());
    let current = store.current_revisions().await.unwrap();
    assert!(current.iter().any(|(update, _)| *update == id));

    // A rollout to half of a group: each computer by its bucket.
    store.add_group("Half", ALL_COMPUTERS).await.unwrap();
    let mut inside = None;
    let mut outside = None;
    while inside.is_none() || outside.is_none() {
        let computer_id = uuid::Uuid::new_v4();
        let slot = if bucket(computer_id) < 50 {
            &mut inside
        } else {
            &mut outside
        };
        if slot.is_none() {
            store
                .add_computer(NewComputer {
                    computer_id,
                    secret_sha256: [7; 32],
                    machine_id: "ab".into(),
                    hostname: "half".into(),
                    target_group: Some("Half".into()),
                    replaces_identity: false,
                })
                .await
                .unwrap();
            *slot = Some(computer_id);
        }
    }
    let (inside, outside) = (inside.unwrap(), outside.unwrap());
    // One not declined by the suite so far.
    let target = current
        .iter()
        .map(|(update, _)| *update)
        .find(|update| *update != id)
        .unwrap();
    let started = Rollout {
        update_id: target,
        plan: RolloutPlan {
            rings: vec![Ring {
                group: "Half".into(),
                percent: 50,
                soak_secs: 0,
            }],
            max_failure_percent: 0,
            min_reported: 1,
            deadline: None,
        },
        stage: 0,
        state: RolloutState::Running,
        stage_started: jiff::Timestamp::now(),
        halt: None,
    };
    store.start_rollout(started.clone()).await.unwrap();
    let (_, seen) = full(store, inside).await;
    assert!(seen.contains_key(&target));
    let (anchor, seen) = full(store, outside).await;
    assert!(!seen.contains_key(&target));
    // Their snapshots are cached apart.
    let mut keys = Vec::new();
    for computer in [inside, outside] {
        match store.sync_plan(computer, None, vec![]).await.unwrap() {
            Some(SyncPlan::Full { group, .. }) => keys.push(group),
            _ => panic!("no full snapshot"),
        }
    }
    assert_ne!(keys[0], keys[1]);
    // Completed, the gate goes: the computer left out gets it in a delta.
    let completed = Rollout {
        state: RolloutState::Completed,
        ..started.clone()
    };
    assert!(
        store
            .replace_rollout(&started, &completed)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .replace_rollout(&started, &completed)
            .await
            .unwrap()
            .is_none()
    );
    match store
        .sync_plan(outside, Some(anchor), vec![])
        .await
        .unwrap()
    {
        Some(SyncPlan::Delta(delta)) => {
            let ids: Vec<uuid::Uuid> = served(delta.changed).into_keys().collect();
            assert_eq!(ids, vec![target]);
        }
        _ => panic!("no delta"),
    }
    assert_eq!(store.rollouts().await.unwrap(), vec![completed]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_store() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.sqlite");
    let store = Store::open_sqlite(&path).await.unwrap();
    let service_id = store.service_id().await.unwrap();
    suite(store).await;
    // Opened again: migrations are not run twice, the serviceId is kept.
    let store = Store::open_sqlite(&path).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert_eq!(store.service_id().await.unwrap(), service_id);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_store() {
    let Some(admin_url) = common::postgres_url("postgres_store") else {
        return;
    };
    common::with_database(&admin_url, |url| async move {
        let store = Store::open_postgres(&url).await.unwrap();
        let service_id = store.service_id().await.unwrap();
        suite(store).await;
        let store = Store::open_postgres(&url).await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
        assert_eq!(store.service_id().await.unwrap(), service_id);
    })
    .await;
}
