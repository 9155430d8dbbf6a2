//! Applying an update server's delta against importing its full snapshot:
//! 1,000 changed revisions on a 100,000-revision catalog. Both go through
//! `Agent::apply_sync_response`: read the frame, verify, parse, write the
//! store in one transaction, reload the index and scan.
//! Run with `cargo bench -p openwua-agent --bench sync`.

use std::time::Instant;

use openwua_agent::{Agent, Background, Config};
use openwua_catalog::package;
use openwua_catalog::signing::SecretKey;
use openwua_catalog::snapshot::Snapshot;
use openwua_catalog::sync::{Delta, SignedResponse};

mod common;

use common::{revision, snapshot};

const UPDATES: u128 = 100_000;
const CHANGED: u128 = 1_000;

/// `base` with every `UPDATES / CHANGED`-th revision given a new revision
/// number and title.
fn changed(base: &Snapshot, version: u64, round: i32) -> Snapshot {
    let mut next = snapshot(version, base.revisions.clone());
    let stride = usize::try_from(UPDATES / CHANGED).expect("small");
    for revision in next.revisions.iter_mut().step_by(stride) {
        revision.update.identity.revision_number += 1;
        revision.update.title = format!("{} (revised {round})", revision.update.title);
    }
    next
}

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let key = SecretKey::generate().expect("a key");
    let v1 = snapshot(1, (1..=UPDATES).map(revision).collect());
    let path = dir.path().join("bench.owpkg");
    package::write_package(&v1, &[], &key, &path).expect("package written");
    let config = Config::under(dir.path());

    // Registered through the socket as a client would, then the agent is
    // reopened here to call the transport's entry point directly.
    {
        let agent = Background::start(config.clone()).expect("the agent starts");
        let session = openwua_client::blocking::UpdateSession::connect(agent.socket())
            .expect("the client library connects");
        session
            .create_update_service_manager()
            .add_scan_package_service(None, &path, &key.public_key().to_string(), true, None)
            .expect("registered");
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let agent = Agent::open(config).expect("the agent reopens");
    let service_id = v1.service_id;

    let v2 = changed(&v1, 2, 2);
    let delta = Delta::between(&v1, &v2).expect("a delta");
    assert_eq!(delta.changed.len(), CHANGED as usize);
    let frame = SignedResponse::sign_delta(&delta, &key)
        .expect("signed")
        .to_bytes();
    let delta_size = frame.len();
    let started = Instant::now();
    let result = runtime
        .block_on(agent.apply_sync_response(service_id, frame))
        .expect("the delta applies");
    let delta_time = started.elapsed();
    assert_eq!(result.counts.changed, CHANGED as u64);

    let v3 = changed(&v2, 3, 3);
    let frame = SignedResponse::sign_snapshot(&v3, &key)
        .expect("signed")
        .to_bytes();
    let full_size = frame.len();
    let started = Instant::now();
    let result = runtime
        .block_on(agent.apply_sync_response(service_id, frame))
        .expect("the snapshot imports");
    let full_time = started.elapsed();
    assert_eq!(result.counts.changed, CHANGED as u64);

    println!(
        "{CHANGED} changed of {UPDATES}: delta ({:.2} MB frame) applied in {delta_time:.2?}; \
         full snapshot ({:.1} MB frame) imported in {full_time:.2?} (verify, store, reload, scan)",
        delta_size as f64 / 1e6,
        full_size as f64 / 1e6,
    );
}
