//! Sync responses: frames, signatures, deltas applied, and each refusal
//! with its code.

use jiff::{SignedDuration, Timestamp};
use openwua_catalog::CatalogError;
use openwua_catalog::fixtures;
use openwua_catalog::revision::Revision;
use openwua_catalog::signing::SecretKey;
use openwua_catalog::snapshot::{FORMAT_VERSION, Snapshot};
use openwua_catalog::sync::{
    Anchor, Delta, FRAME_MAGIC, HEADER_LEN, Response, SignedResponse, StillCurrent, apply,
};
use openwua_model::hresult::{
    HResult, WU_E_METADATA_BAD_SIGNATURE, WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW,
    WU_E_OL_INVALID_SCANFILE,
};
use proptest::prelude::*;
use serde_json::json;
use uuid::Uuid;

const SERVICE: Uuid = Uuid::from_u128(0x5e7);

use openwua_catalog::fixtures::command_revision as revision;

fn snapshot(version: u64, revisions: Vec<Revision>) -> Snapshot {
    fixtures::snapshot(
        SERVICE,
        "Server",
        version,
        revisions,
        SignedDuration::from_hours(24 * 30),
    )
}

fn statement(version: u64, valid_for: SignedDuration) -> StillCurrent {
    let issued = Timestamp::now() - SignedDuration::from_mins(1);
    StillCurrent {
        format: FORMAT_VERSION,
        service_id: SERVICE,
        version,
        issued,
        valid_until: issued + valid_for,
    }
}

fn anchor(version: u64) -> Anchor {
    Anchor {
        service_id: SERVICE,
        version: Some(version),
        fresh_until: None,
    }
}

fn code(result: Result<impl std::fmt::Debug, CatalogError>) -> HResult {
    result.expect_err("should be refused").hresult()
}

/// Version 1 and version 2 of a catalog: one revision changed, one
/// removed, one added.
fn two_versions() -> (Snapshot, Snapshot) {
    let old = snapshot(
        1,
        vec![
            revision(1, 1, "One"),
            revision(2, 1, "Two"),
            revision(3, 1, "Three"),
        ],
    );
    let new = snapshot(
        2,
        vec![
            revision(1, 1, "One"),
            revision(3, 2, "Three, again"),
            revision(4, 1, "Four"),
        ],
    );
    (old, new)
}

#[test]
fn a_delta_applied_gives_the_full_snapshot() {
    let (old, new) = two_versions();
    let delta = Delta::between(&old, &new).unwrap();
    assert_eq!(delta.base_version, 1);
    assert_eq!(delta.removed, vec![Uuid::from_u128(2)]);
    assert_eq!(delta.changed.len(), 2);
    assert_eq!(apply(&old, &delta).unwrap(), new);
}

#[test]
fn each_kind_round_trips_through_its_frame() {
    let key = SecretKey::generate().unwrap();
    let (old, new) = two_versions();
    let delta = Delta::between(&old, &new).unwrap();
    let still = statement(2, SignedDuration::from_hours(6));
    for (frame, expected) in [
        (
            SignedResponse::sign_snapshot(&old, &key).unwrap(),
            Response::Snapshot(Box::new(old.clone())),
        ),
        (
            SignedResponse::sign_delta(&delta, &key).unwrap(),
            Response::Delta(Box::new(delta.clone())),
        ),
        (
            SignedResponse::sign_still_current(&still, &key).unwrap(),
            Response::StillCurrent(still),
        ),
    ] {
        let bytes = frame.to_bytes();
        assert_eq!(&bytes[..8], FRAME_MAGIC);
        let read = SignedResponse::from_bytes(&bytes).unwrap();
        assert_eq!(read, frame);
        // The streaming reader reads exactly one frame and no further.
        let stream = [bytes.clone(), b"next".to_vec()].concat();
        let mut reader = &stream[..];
        assert_eq!(SignedResponse::read_from(&mut reader).unwrap(), frame);
        assert_eq!(reader, b"next");
        assert_eq!(read.verify(&key.public_key()).unwrap(), expected);
    }
}

#[test]
fn a_wrong_key_or_a_changed_byte_is_a_bad_signature() {
    let key = SecretKey::generate().unwrap();
    let other = SecretKey::generate().unwrap();
    let (old, new) = two_versions();
    let delta = Delta::between(&old, &new).unwrap();
    let frame = SignedResponse::sign_delta(&delta, &other).unwrap();
    assert_eq!(
        code(frame.verify(&key.public_key())),
        WU_E_METADATA_BAD_SIGNATURE
    );
    let mut bytes = SignedResponse::sign_delta(&delta, &key).unwrap().to_bytes();
    bytes[HEADER_LEN + 10] ^= 1;
    let read = SignedResponse::from_bytes(&bytes).unwrap();
    assert_eq!(
        code(read.verify(&key.public_key())),
        WU_E_METADATA_BAD_SIGNATURE
    );
}

#[test]
fn a_payload_signed_as_one_kind_does_not_parse_as_another() {
    let key = SecretKey::generate().unwrap();
    let (old, new) = two_versions();
    let delta = Delta::between(&old, &new).unwrap();
    let frames = [
        SignedResponse::sign_snapshot(&old, &key)
            .unwrap()
            .to_bytes(),
        SignedResponse::sign_delta(&delta, &key).unwrap().to_bytes(),
        SignedResponse::sign_still_current(&statement(1, SignedDuration::from_hours(1)), &key)
            .unwrap()
            .to_bytes(),
    ];
    for (position, bytes) in frames.iter().enumerate() {
        for kind in 1u8..=3 {
            if usize::from(kind) == position + 1 {
                continue;
            }
            let mut relabelled = bytes.clone();
            relabelled[9] = kind;
            let read = SignedResponse::from_bytes(&relabelled).unwrap();
            assert_eq!(
                code(read.verify(&key.public_key())),
                WU_E_OL_INVALID_SCANFILE,
                "frame {position} relabelled as kind {kind}"
            );
        }
    }
}

#[test]
fn frames_are_bounded_before_anything_is_parsed() {
    let key = SecretKey::generate().unwrap();
    let frame =
        SignedResponse::sign_still_current(&statement(1, SignedDuration::from_hours(1)), &key)
            .unwrap()
            .to_bytes();
    let malformed = |bytes: &[u8]| code(SignedResponse::from_bytes(bytes));
    // A still-current statement claiming 4097 bytes: refused by its header.
    let mut long = frame.clone();
    long[10..18].copy_from_slice(&4097u64.to_be_bytes());
    assert_eq!(malformed(&long), WU_E_OL_INVALID_SCANFILE);
    // A snapshot claiming more than the snapshot limit.
    let mut huge = frame.clone();
    huge[9] = 1;
    huge[10..18].copy_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(malformed(&huge), WU_E_OL_INVALID_SCANFILE);
    assert_eq!(
        malformed(&frame[..frame.len() - 1]),
        WU_E_OL_INVALID_SCANFILE
    );
    assert_eq!(
        malformed(&[frame.clone(), vec![0]].concat()),
        WU_E_OL_INVALID_SCANFILE
    );
    assert_eq!(malformed(b"not a frame at all"), WU_E_OL_INVALID_SCANFILE);
    let mut unknown_kind = frame.clone();
    unknown_kind[9] = 9;
    assert_eq!(malformed(&unknown_kind), WU_E_OL_INVALID_SCANFILE);
}

#[test]
fn a_snapshot_or_delta_not_newer_than_the_anchor_is_refused() {
    let (old, new) = two_versions();
    let delta = Response::Delta(Box::new(Delta::between(&old, &new).unwrap()));
    let now = Timestamp::now();
    delta.check(&anchor(1), now).unwrap();
    // The delta from 1 to 2 replayed to an agent at 2, or at 3.
    assert_eq!(
        code(delta.check(&anchor(2), now)),
        WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW
    );
    assert_eq!(
        code(delta.check(&anchor(3), now)),
        WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW
    );
    let no_catalog = Anchor {
        version: None,
        ..anchor(0)
    };
    assert_eq!(
        code(delta.check(&no_catalog, now)),
        WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW
    );
    let full = Response::Snapshot(Box::new(new));
    full.check(&anchor(1), now).unwrap();
    full.check(&no_catalog, now).unwrap();
    assert_eq!(
        code(full.check(&anchor(2), now)),
        WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW
    );
    assert_eq!(
        code(full.check(&anchor(5), now)),
        WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW
    );
    let other_service = Anchor {
        service_id: Uuid::from_u128(9),
        ..anchor(1)
    };
    assert_eq!(
        code(full.check(&other_service, now)),
        WU_E_OL_INVALID_SCANFILE
    );
}

#[test]
fn an_expired_delta_is_refused() {
    let (old, new) = two_versions();
    let delta = Delta::between(&old, &new).unwrap();
    let after = delta.expires + SignedDuration::from_secs(1);
    assert_eq!(
        code(Response::Delta(Box::new(delta)).check(&anchor(1), after)),
        WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW
    );
}

#[test]
fn a_statement_must_name_the_current_version_be_unexpired_and_not_older() {
    let still = statement(7, SignedDuration::from_hours(6));
    let response = Response::StillCurrent(still);
    let now = Timestamp::now();
    response.check(&anchor(7), now).unwrap();
    let stale = WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW;
    assert_eq!(code(response.check(&anchor(6), now)), stale);
    assert_eq!(code(response.check(&anchor(8), now)), stale);
    assert_eq!(code(response.check(&anchor(7), still.valid_until)), stale);
    // The same statement again is fine; one older than the accepted is not.
    let accepted = |fresh_until| Anchor {
        fresh_until: Some(fresh_until),
        ..anchor(7)
    };
    response.check(&accepted(still.valid_until), now).unwrap();
    assert_eq!(
        code(response.check(
            &accepted(still.valid_until + SignedDuration::from_secs(1)),
            now
        )),
        stale
    );
}

#[test]
fn malformed_documents_are_refused_when_signed_and_when_read() {
    let key = SecretKey::generate().unwrap();
    let (old, new) = two_versions();
    let mut backwards = Delta::between(&old, &new).unwrap();
    backwards.version = backwards.base_version;
    let mut twice = Delta::between(&old, &new).unwrap();
    twice.removed.push(Uuid::from_u128(3));
    let mut bad_name = Delta::between(&old, &new).unwrap();
    bad_name.changed[0].content = vec![
        serde_json::from_value(json!({
            "fileName": "../etc/passwd", "size": 0,
            "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "url": "content/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        }))
        .unwrap(),
    ];
    bad_name.changed[0].update.download_contents = bad_name.changed[0]
        .content
        .iter()
        .map(|file| openwua_model::update::DownloadContent {
            file_name: file.file_name.clone(),
            size: file.size,
            sha256: file.sha256,
        })
        .collect();
    for delta in [backwards, twice, bad_name] {
        assert_eq!(
            code(SignedResponse::sign_delta(&delta, &key)),
            WU_E_OL_INVALID_SCANFILE
        );
        // Signed regardless, as a broken server could: the agent refuses it.
        let payload = serde_json::to_vec(&delta).unwrap();
        let mut bytes = FRAME_MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 2]);
        bytes.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(&key.sign(&payload));
        let read = SignedResponse::from_bytes(&bytes).unwrap();
        assert_eq!(
            code(read.verify(&key.public_key())),
            WU_E_OL_INVALID_SCANFILE
        );
    }
    let forever = statement(1, SignedDuration::from_hours(24 * 8));
    assert_eq!(
        code(SignedResponse::sign_still_current(&forever, &key)),
        WU_E_OL_INVALID_SCANFILE
    );
}

#[test]
fn a_delta_refuses_another_base_or_an_update_the_base_lacks() {
    let (old, new) = two_versions();
    let delta = Delta::between(&old, &new).unwrap();
    let mut moved = old.clone();
    moved.version = 0;
    assert_eq!(
        code(apply(&moved, &delta)),
        WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW
    );
    let mut lacking = old.clone();
    lacking
        .revisions
        .retain(|revision| revision.update.identity.update_id != Uuid::from_u128(2));
    assert_eq!(code(apply(&lacking, &delta)), WU_E_OL_INVALID_SCANFILE);
}

/// A catalog as a set of (update, revision number) pairs.
fn catalog() -> impl Strategy<Value = Vec<(u8, u32)>> {
    proptest::collection::btree_map(any::<u8>(), 1u32..4, 0..40)
        .prop_map(|map| map.into_iter().collect())
}

fn build(version: u64, entries: &[(u8, u32)]) -> Snapshot {
    snapshot(
        version,
        entries
            .iter()
            .map(|&(id, number)| revision(u128::from(id), number, &format!("Update {id}")))
            .collect(),
    )
}

fn sorted(mut snapshot: Snapshot) -> Snapshot {
    snapshot
        .revisions
        .sort_by_key(|revision| revision.update.identity.update_id);
    snapshot
}

proptest! {
    /// For any two catalogs, the delta between them, signed, read back and
    /// applied to the first, gives the second.
    #[test]
    fn any_delta_applied_gives_the_full_snapshot(old in catalog(), new in catalog()) {
        let key = SecretKey::generate().unwrap();
        let old = build(10, &old);
        let new = build(11, &new);
        let frame = SignedResponse::sign_delta(&Delta::between(&old, &new).unwrap(), &key).unwrap();
        let Response::Delta(delta) = SignedResponse::from_bytes(&frame.to_bytes())
            .unwrap()
            .verify(&key.public_key())
            .unwrap()
        else {
            panic!("not a delta");
        };
        prop_assert_eq!(sorted(apply(&old, &delta).unwrap()), sorted(new));
    }
}
