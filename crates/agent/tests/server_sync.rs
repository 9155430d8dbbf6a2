//! An update server's signed responses applied through
//! `Agent::apply_sync_response`, the entry point the server-sync transport
//! will call. No server service kind or Varlink method exists yet, so the
//! service is registered as a scan package (which pins the same kind of
//! key), and the responses are signed here with a throwaway key; searches
//! go through the socket of an agent started on the same state afterwards.

use std::path::Path;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use openwua_agent::{Agent, Background, Config};
use openwua_catalog::fixtures;
use openwua_catalog::package;
use openwua_catalog::revision::Revision;
use openwua_catalog::signing::SecretKey;
use openwua_catalog::snapshot::{FORMAT_VERSION, Snapshot};
use openwua_catalog::sync::{Delta, SignedResponse, StillCurrent};
use openwua_client::blocking::UpdateSession;
use openwua_model::hresult::{
    WU_E_METADATA_BAD_SIGNATURE, WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW as STALE,
};
use openwua_testkit::wait_until;
use uuid::Uuid;

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
        SignedDuration::from_hours(24),
    )
}

/// The database and its write-ahead log (not `-shm`, where reads record
/// their read marks).
fn store_bytes(config: &Config) -> Vec<Vec<u8>> {
    ["agent.db", "agent.db-wal"]
        .iter()
        .map(|name| std::fs::read(config.state_dir.join(name)).unwrap_or_default())
        .collect()
}

fn titles(config: &Config) -> (Vec<String>, Vec<String>) {
    let agent = Background::start(config.clone()).unwrap();
    let session = UpdateSession::connect(agent.socket()).unwrap();
    let result = session.create_update_searcher().search("").unwrap();
    let mut titles: Vec<String> = result
        .updates
        .iter()
        .map(|u| u.unwrap().update.title.clone())
        .collect();
    titles.sort();
    let warnings = result.warnings.iter().map(|w| w.message.clone()).collect();
    (titles, warnings)
}

fn register(config: &Config, dir: &Path, key: &SecretKey, first: &Snapshot) {
    let path = dir.join("first.owpkg");
    package::write_package(first, &[], key, &path).unwrap();
    let agent = Background::start(config.clone()).unwrap();
    let session = UpdateSession::connect(agent.socket()).unwrap();
    session
        .create_update_service_manager()
        .add_scan_package_service(None, &path, &key.public_key().to_string(), true, None)
        .unwrap();
}

#[test]
fn deltas_and_statements_apply_and_refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Whoever runs the test administers its agent (root or not).
    let config = Config {
        owner_is_admin: true,
        ..Config::under(dir.path())
    };
    let key = SecretKey::generate().unwrap();
    let other = SecretKey::generate().unwrap();
    let v1 = snapshot(1, vec![revision(1, 1), revision(2, 1), revision(3, 1)]);
    let v2 = snapshot(2, vec![revision(1, 2), revision(3, 1), revision(4, 1)]);
    let v3 = snapshot(3, vec![revision(1, 3), revision(4, 1)]);
    register(&config, dir.path(), &key, &v1);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let apply = |agent: &Agent, frame: &SignedResponse| {
        runtime.block_on(agent.apply_sync_response(SERVICE, frame.to_bytes()))
    };
    let one_to_two = SignedResponse::sign_delta(&Delta::between(&v1, &v2).unwrap(), &key).unwrap();
    let two_to_three = Delta::between(&v2, &v3).unwrap();
    {
        let agent = Agent::open(config.clone()).unwrap();
        let result = apply(&agent, &one_to_two).unwrap();
        assert_eq!((result.previous_version, result.version), (Some(1), 2));
        assert_eq!(
            (
                result.counts.added,
                result.counts.changed,
                result.counts.removed
            ),
            (1, 1, 1)
        );

        let before = store_bytes(&config);
        let refused = [
            ("replayed", one_to_two.clone(), STALE),
            (
                "another key",
                SignedResponse::sign_delta(&two_to_three, &other).unwrap(),
                WU_E_METADATA_BAD_SIGNATURE,
            ),
            (
                "another base",
                SignedResponse::sign_delta(&Delta::between(&v1, &v3).unwrap(), &key).unwrap(),
                STALE,
            ),
        ];
        for (what, frame, code) in refused {
            let error = apply(&agent, &frame).expect_err(what);
            assert_eq!(error.hresult, code, "{what}: {error:?}");
            assert!(before == store_bytes(&config), "{what} changed the store");
        }
        apply(
            &agent,
            &SignedResponse::sign_delta(&two_to_three, &key).unwrap(),
        )
        .unwrap();

        // Confirmed current for two more seconds, then left to lapse.
        let issued = Timestamp::now() - SignedDuration::from_hours(1);
        let lapsing = StillCurrent {
            format: FORMAT_VERSION,
            service_id: SERVICE,
            version: 3,
            issued,
            valid_until: Timestamp::now() + SignedDuration::from_secs(2),
        };
        let expired = StillCurrent {
            valid_until: issued + SignedDuration::from_mins(30),
            ..lapsing
        };
        let before = store_bytes(&config);
        let error = apply(
            &agent,
            &SignedResponse::sign_still_current(&expired, &key).unwrap(),
        )
        .expect_err("an expired statement");
        assert_eq!(error.hresult, STALE);
        assert!(
            before == store_bytes(&config),
            "an expired statement changed the store"
        );
        let result = apply(
            &agent,
            &SignedResponse::sign_still_current(&lapsing, &key).unwrap(),
        )
        .unwrap();
        assert_eq!((result.version, result.counts.unchanged), (3, 2));
        let (found, warnings) = {
            drop(agent);
            titles(&config)
        };
        assert_eq!(found, ["Update 1 revision 3", "Update 4 revision 1"]);
        assert_eq!(warnings, Vec::<String>::new());
        assert!(wait_until(Instant::now() + Duration::from_secs(10), || {
            Timestamp::now() > lapsing.valid_until
        }));
    }
    let (_, warnings) = titles(&config);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("confirmed"), "{warnings:?}");
}
