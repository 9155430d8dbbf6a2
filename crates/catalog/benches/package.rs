//! How long a scan package takes to write and to open (decompress, verify,
//! parse, validate): the sample service, and 100,000 generated revisions
//! (goal: well under 3 s to open). Run with
//! `cargo bench -p openwua-catalog --bench package`.

use std::path::Path;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use openwua_catalog::package;
use openwua_catalog::revision::{Applicability, Handler, Revision, Rule};
use openwua_catalog::signing::SecretKey;
use openwua_catalog::snapshot::{FORMAT_VERSION, Snapshot};
use serde_json::json;
use uuid::Uuid;

const REVISIONS: u128 = 100_000;
const RUNS: usize = 5;

/// A revision shaped like a real one: a title, a paragraph, a KB number,
/// two categories, a CVE, a rule and a command handler.
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
        "type": "Software",
        "msrcSeverity": "Important",
        "cveIds": [format!("CVE-2026-{id:05}")],
        "deploymentAction": "Installation",
    });
    Revision {
        update: serde_json::from_value(update).expect("a valid update"),
        hidden_by_default: false,
        applicability: Applicability {
            installable: Some(Rule::DebInstalled {
                package: format!("example-package-{id}"),
                version: Some("<< 1.2.3-1".parse().expect("a constraint")),
            }),
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

/// The fastest and the median of a few runs.
fn time(mut run: impl FnMut()) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .collect();
    times.sort();
    (times[0], times[RUNS / 2])
}

fn report(what: &str, path: &Path, (fastest, median): (Duration, Duration)) {
    let size = std::fs::metadata(path).map_or(0, |meta| meta.len());
    println!(
        "{what}: {:.1} kB, fastest {fastest:.2?}, median {median:.2?} of {RUNS}",
        size as f64 / 1e3
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let key = SecretKey::generate().expect("a key");
    let public = key.public_key();

    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-service");
    let sample_path = dir.path().join("sample.pkg");
    let validity = SignedDuration::from_hours(24);
    let built = time(|| {
        package::build_service_dir(&sample, 1, validity, true, &key, &sample_path)
            .expect("the sample builds");
    });
    report("sample: build", &sample_path, built);
    let opened = time(|| {
        package::open_package(&sample_path, &public).expect("the sample opens");
    });
    report("sample: open", &sample_path, opened);

    let created = Timestamp::now();
    let snapshot = Snapshot {
        format: FORMAT_VERSION,
        service_id: Uuid::from_u128(0x5E41CE),
        service_name: "Benchmark service".into(),
        version: 1,
        created,
        expires: created + validity,
        revisions: (1..=REVISIONS).map(revision).collect(),
    };
    let path = dir.path().join("large.pkg");
    let written = time(|| {
        package::write_package(&snapshot, &[], &key, &path).expect("the package is written");
    });
    report("100,000 revisions: write", &path, written);
    let opened = time(|| {
        let package = package::open_package(&path, &public).expect("the package opens");
        assert_eq!(package.snapshot.revisions.len(), REVISIONS as usize);
    });
    report(
        "100,000 revisions: open (goal well under 3 s)",
        &path,
        opened,
    );
}
