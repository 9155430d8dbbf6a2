//! The benchmark catalog the agent's benches share: revisions shaped like
//! real ones, in a snapshot of the benchmark service.

use jiff::{SignedDuration, Timestamp};
use openwua_catalog::revision::{Applicability, Handler, Revision, Rule};
use openwua_catalog::snapshot::{FORMAT_VERSION, Snapshot};
use serde_json::json;
use uuid::Uuid;

/// A revision shaped like a real one: a title, a paragraph, a KB number,
/// two categories, a CVE, and a rule that reads a package version.
pub fn revision(id: u128) -> Revision {
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

/// The benchmark service's catalog at `version`.
pub fn snapshot(version: u64, revisions: Vec<Revision>) -> Snapshot {
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
