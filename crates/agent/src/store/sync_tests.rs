//! Applying an update server's responses to the store: a snapshot, a delta
//! and a still-current statement in turn, and every refusal leaving the
//! store's bytes as they were. Documents are signed here with a throwaway
//! key and go through the frame and verification an agent uses.

use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use openwua_catalog::fixtures;
use openwua_catalog::revision::Revision;
use openwua_catalog::signing::SecretKey;
use openwua_catalog::snapshot::{FORMAT_VERSION, Snapshot};
use openwua_catalog::sync::{Delta, Response, SignedResponse, StillCurrent, apply};
use openwua_model::hresult::{
    HResult, WU_E_METADATA_BAD_SIGNATURE, WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW,
};
use openwua_model::service::ServiceInfo;
use uuid::Uuid;

use super::{ImportCounts, Store};

const SERVICE: Uuid = Uuid::from_u128(0x5e7);

fn revision(id: u128, number: u32) -> Revision {
    fixtures::command_revision(id, number, &format!("Update {id} revision {number}"))
}

fn snapshot(version: u64, revisions: Vec<Revision>) -> Snapshot {
    fixtures::snapshot(
        SERVICE,
        "Update server",
        version,
        revisions,
        SignedDuration::from_hours(24 * 30),
    )
}

fn statement(version: u64, issued: Timestamp, valid_for: SignedDuration) -> StillCurrent {
    StillCurrent {
        format: FORMAT_VERSION,
        service_id: SERVICE,
        version,
        issued,
        valid_until: issued + valid_for,
    }
}

/// What the agent does with a frame's bytes: read, verify with the pinned
/// key, then apply.
fn receive(
    store: &mut Store,
    key: &SecretKey,
    frame: &SignedResponse,
    now: Timestamp,
) -> super::Result<ImportCounts> {
    let response = SignedResponse::from_bytes(&frame.to_bytes())?.verify(&key.public_key())?;
    store.apply_response(&response, now)
}

/// A store with the service registered and nothing imported.
fn registered(path: &Path, key: &SecretKey) -> Store {
    let mut store = Store::open(path).unwrap();
    let transaction = store.connection.transaction().unwrap();
    transaction
        .execute(
            "INSERT INTO services (service_id, name, is_scan_package, source, public_key)
             VALUES (?1, '', 0, 'https://updates.example.org/', ?2)",
            [SERVICE.to_string(), key.public_key().to_string()],
        )
        .unwrap();
    transaction.commit().unwrap();
    store
}

fn service(store: &Store) -> ServiceInfo {
    store.service(SERVICE).unwrap().unwrap()
}

/// The stored catalog, as a snapshot would list it (by update).
fn stored(store: &Store) -> Vec<(Uuid, i32)> {
    let mut revisions: Vec<(Uuid, i32)> = store
        .revisions()
        .unwrap()
        .iter()
        .map(|stored| {
            let update: openwua_model::update::Update =
                serde_json::from_str(&stored.update_json).unwrap();
            (update.identity.update_id, update.identity.revision_number)
        })
        .collect();
    revisions.sort();
    revisions
}

fn listed(snapshot: &Snapshot) -> Vec<(Uuid, i32)> {
    let mut revisions: Vec<(Uuid, i32)> = snapshot
        .revisions
        .iter()
        .map(|revision| {
            (
                revision.update.identity.update_id,
                revision.update.identity.revision_number,
            )
        })
        .collect();
    revisions.sort();
    revisions
}

/// The database and its write-ahead log. Not `-shm`: SQLite's shared
/// memory index, where every read records its read mark.
fn store_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .filter(|entry| {
            !entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("-shm")
        })
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_snapshot_then_a_delta_then_a_still_current_statement() {
    let dir = tempfile::TempDir::new().unwrap();
    let key = SecretKey::generate().unwrap();
    let mut store = registered(&dir.path().join("agent.db"), &key);
    let now = Timestamp::now();

    let v1 = snapshot(1, (1..=5).map(|id| revision(id, 1)).collect());
    let counts = receive(
        &mut store,
        &key,
        &SignedResponse::sign_snapshot(&v1, &key).unwrap(),
        now,
    )
    .unwrap();
    assert_eq!(counts.added, 5);
    assert_eq!(service(&store).catalog_version, Some(1));
    assert_eq!(service(&store).name, "Update server");

    // Version 2: update 2 gets a new revision, 3 is declined, 6 is new.
    let mut revisions: Vec<Revision> = v1.revisions.clone();
    revisions[1] = revision(2, 2);
    revisions.remove(2);
    revisions.push(revision(6, 1));
    let v2 = snapshot(2, revisions);
    let delta = Delta::between(&v1, &v2).unwrap();
    let counts = receive(
        &mut store,
        &key,
        &SignedResponse::sign_delta(&delta, &key).unwrap(),
        now,
    )
    .unwrap();
    assert_eq!(
        counts,
        ImportCounts {
            added: 1,
            changed: 1,
            removed: 1,
            unchanged: 0
        }
    );
    assert_eq!(stored(&store), listed(&v2));
    assert_eq!(stored(&store), listed(&apply(&v1, &delta).unwrap()));
    let after_delta = service(&store);
    assert_eq!(after_delta.catalog_version, Some(2));
    assert_eq!(after_delta.expiration_date, Some(v2.expires));
    assert_eq!(store.fresh_until().unwrap().get(&SERVICE), None);

    let still = statement(2, now, SignedDuration::from_hours(6));
    let counts = receive(
        &mut store,
        &key,
        &SignedResponse::sign_still_current(&still, &key).unwrap(),
        now,
    )
    .unwrap();
    assert_eq!(counts.unchanged, 5);
    assert_eq!(
        store.fresh_until().unwrap().get(&SERVICE),
        Some(&still.valid_until)
    );
    assert_eq!(stored(&store), listed(&v2));
    assert_eq!(service(&store).catalog_version, Some(2));

    // A newer catalog makes the statement about version 2 moot.
    let v3 = snapshot(3, v2.revisions[..2].to_vec());
    let delta = Delta::between(&v2, &v3).unwrap();
    receive(
        &mut store,
        &key,
        &SignedResponse::sign_delta(&delta, &key).unwrap(),
        now,
    )
    .unwrap();
    assert_eq!(stored(&store), listed(&v3));
    assert_eq!(store.fresh_until().unwrap().get(&SERVICE), None);
}

#[test]
fn refused_responses_change_nothing() {
    let dir = tempfile::TempDir::new().unwrap();
    let key = SecretKey::generate().unwrap();
    let other = SecretKey::generate().unwrap();
    let mut store = registered(&dir.path().join("agent.db"), &key);
    let now = Timestamp::now();
    let v1 = snapshot(1, (1..=3).map(|id| revision(id, 1)).collect());
    let v2 = snapshot(2, vec![revision(1, 2), revision(2, 1), revision(4, 1)]);
    let v3 = snapshot(3, vec![revision(1, 3)]);
    let one_to_two = Delta::between(&v1, &v2).unwrap();
    let two_to_three = Delta::between(&v2, &v3).unwrap();
    receive(
        &mut store,
        &key,
        &SignedResponse::sign_snapshot(&v1, &key).unwrap(),
        now,
    )
    .unwrap();
    receive(
        &mut store,
        &key,
        &SignedResponse::sign_delta(&one_to_two, &key).unwrap(),
        now,
    )
    .unwrap();
    let accepted = statement(2, now, SignedDuration::from_hours(6));
    receive(
        &mut store,
        &key,
        &SignedResponse::sign_still_current(&accepted, &key).unwrap(),
        now,
    )
    .unwrap();

    let stale = WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW;
    let refusals: Vec<(&str, SignedResponse, HResult)> = vec![
        (
            "the delta from 1 to 2 replayed",
            SignedResponse::sign_delta(&one_to_two, &key).unwrap(),
            stale,
        ),
        (
            "version 1's snapshot replayed",
            SignedResponse::sign_snapshot(&v1, &key).unwrap(),
            stale,
        ),
        (
            "a delta signed with another key",
            SignedResponse::sign_delta(&two_to_three, &other).unwrap(),
            WU_E_METADATA_BAD_SIGNATURE,
        ),
        (
            "a delta on another base",
            SignedResponse::sign_delta(&Delta::between(&v1, &v3).unwrap(), &key).unwrap(),
            stale,
        ),
        (
            "an expired still-current statement",
            SignedResponse::sign_still_current(
                &statement(
                    2,
                    now - SignedDuration::from_hours(8),
                    SignedDuration::from_hours(6),
                ),
                &key,
            )
            .unwrap(),
            stale,
        ),
        (
            "a statement older than the accepted one",
            SignedResponse::sign_still_current(
                &statement(
                    2,
                    now - SignedDuration::from_mins(10),
                    SignedDuration::from_hours(6),
                ),
                &key,
            )
            .unwrap(),
            stale,
        ),
        (
            "a statement for another version",
            SignedResponse::sign_still_current(
                &statement(1, now, SignedDuration::from_hours(6)),
                &key,
            )
            .unwrap(),
            stale,
        ),
    ];
    let before = store_bytes(dir.path());
    let service_before = service(&store);
    for (what, frame, code) in refusals {
        let error = receive(&mut store, &key, &frame, now).expect_err(what);
        assert_eq!(error.hresult, code, "{what}: {error:?}");
        assert!(
            before == store_bytes(dir.path()),
            "{what} changed the store's bytes"
        );
        assert_eq!(service(&store), service_before, "{what}");
    }

    // An expired delta, and one that removes an update the store lacks
    // (signed by the right key; only the store can tell).
    let expired = Response::Delta(Box::new(two_to_three.clone()));
    let error = store
        .apply_response(&expired, two_to_three.expires)
        .unwrap_err();
    assert_eq!(error.hresult, stale);
    let mut lacking = two_to_three.clone();
    lacking.removed.push(Uuid::from_u128(99));
    let error = store
        .apply_response(&Response::Delta(Box::new(lacking)), now)
        .unwrap_err();
    assert_eq!(
        error.hresult,
        openwua_model::hresult::WU_E_OL_INVALID_SCANFILE
    );
    assert!(
        before == store_bytes(dir.path()),
        "a refused delta changed the store's bytes"
    );

    // And the right one still applies afterwards.
    receive(
        &mut store,
        &key,
        &SignedResponse::sign_delta(&two_to_three, &key).unwrap(),
        now,
    )
    .unwrap();
    assert_eq!(stored(&store), listed(&v3));
}

#[test]
fn the_freshness_column_survives_reopening() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("agent.db");
    let key = SecretKey::generate().unwrap();
    let now = Timestamp::now();
    let still = statement(1, now, SignedDuration::from_hours(2));
    {
        let mut store = registered(&path, &key);
        receive(
            &mut store,
            &key,
            &SignedResponse::sign_snapshot(&snapshot(1, vec![revision(1, 1)]), &key).unwrap(),
            now,
        )
        .unwrap();
        receive(
            &mut store,
            &key,
            &SignedResponse::sign_still_current(&still, &key).unwrap(),
            now,
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.fresh_until().unwrap().get(&SERVICE),
        Some(&still.valid_until)
    );
}
