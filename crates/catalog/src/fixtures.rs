//! Revisions and snapshots for tests (the `fixtures` feature): the smallest
//! valid catalog content, so a test says only what it is about.

use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

use crate::revision::{Handler, Revision};
use crate::snapshot::{FORMAT_VERSION, Snapshot};

/// Revision `number` of update `id`: software, installed by `/bin/true`,
/// applicable everywhere, with no content.
pub fn command_revision(id: u128, number: u32, title: &str) -> Revision {
    let update = serde_json::json!({
        "identity": { "updateId": Uuid::from_u128(id), "revisionNumber": number },
        "title": title,
        "type": "Software",
        "deploymentAction": "Installation",
    });
    Revision {
        update: serde_json::from_value(update).expect("a fixed, valid update"),
        hidden_by_default: false,
        applicability: Default::default(),
        handler: Handler::Command {
            program: "/bin/true".into(),
            args: vec![],
            uninstall: None,
            exit_codes: Default::default(),
            timeout_seconds: None,
        },
        content: vec![],
    }
}

/// Version `version` of `service`'s catalog, made an hour ago and valid
/// for `valid_for` from then.
pub fn snapshot(
    service: Uuid,
    service_name: &str,
    version: u64,
    revisions: Vec<Revision>,
    valid_for: SignedDuration,
) -> Snapshot {
    let created = Timestamp::now() - SignedDuration::from_hours(1);
    Snapshot {
        format: FORMAT_VERSION,
        service_id: service,
        service_name: service_name.into(),
        version,
        created,
        expires: created + valid_for,
        revisions,
    }
}
