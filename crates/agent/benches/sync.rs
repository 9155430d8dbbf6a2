//! Applying an update server's delta against importing its full snapshot:
//! 1,000 changed revisions on a 100,000-revision catalog. Both go through
//! `Agent::apply_sync_response`: read the frame, verify, parse, write the
//! store in one transaction, reload the index and scan.
//! Run with `cargo bench -p openwua-agent --bench sync`.

use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use openwua_agent::{Agent, Background, Config};
use openwua_catalog::package;
use openwua_catalog::revision::{Applicability, Handler, Revision, Rule};
use openwua_catalog::signing::SecretKey;
use openwua_catalog::snapshot::{FORMAT_VERSION, Snapshot};
use openwua_catalog::sync::{Delta, SignedResponse};
use serde_json::json;
use uuid::Uuid;

const UPDATES: u128 = 100_000;
const CHANGED: u128 = 1_000;

/// A revision shaped like a real one: a title, a paragraph, a KB number,
/// two categories, a CVE, and a rule that reads a package version.
fn revision(id: u128) -> Revision {
    let update = json!({
        "identity": { "updateId": Uuid::from_u128(id), "revisionNumber": 1 },
        "title": format!("Security update for example-package-{id} (KB{})", 5_000_000 + id),
        "description": "Fixes a heap overflow in the parser that a crafted input could trigger. \
                        Install it on every machine that has the package.",
        "kbArticleIds": [format!("{}", 5_000_000 + id)],
        "categories": [
            { "id": Uuid::from_u128(1 + id % 50), "name": "Example Product", "type": "Product" },
            { "id": Uuid::from_u128(0xC1A55), "name": "Security Updates", "type": "UpdateClassification" },
        ],
        "type": if id.is_multiple_of(10) { "Driver" } else { "Software" },
        "msrcSeverity": "Important",
        "cveIds": [format!("CVE-2026-{id:05}")],
        "deploymentAction": "Installation",
    });
    Revision {
        update: serde_json::from_value(update).expect("a valid update"),
        hidden_by_default: false,
        applicability: Applicability {
            installable: Some(Rule::Any(vec![
                Rule::DebInstalled {
                    package: "dpkg".into(),
                    version: None,
                },
                Rule::Architecture("x86_64".into()),
            ])),
            ..Applicability::default()
        },
        handler: Handler::Command {
            program: "install.sh".into(),
            args: vec!["--quiet".into()],
            uninstall: None,
            exit_codes: Default::default(),
            timeout_seconds: None,
        },
        content: vec![],
    }
}

fn snapshot(version: u64, revisions: Vec<Revision>) -> Snapshot {
    let created = Timestamp::now();
    Snapshot {
        format: FORMAT_VERSION,
        service_id: Uuid::from_u128(0x5E41CE),
        service_name: "Benchmark service".into(),
        version,
        created,
        expires: created + SignedDuration::from_hours(24),
        revisions,
    }
}

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
