//! The JSON of the update and its state is a boundary: field names are
//! stable. The committed schema under `docs/schema/` and the example in
//! `fixtures/update.json` must equal what the types produce; run with
//! `OPENWUA_BLESS=1` to rewrite them after a deliberate change.

use std::path::PathBuf;

use openwua_model::update::{Update, UpdateState};

fn check_file(path: PathBuf, actual: &str) {
    if std::env::var_os("OPENWUA_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with OPENWUA_BLESS=1)", path.display()));
    assert_eq!(
        expected,
        actual,
        "{} is stale: run the tests with OPENWUA_BLESS=1 and review the diff",
        path.display()
    );
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn committed_schemas_match_the_types() {
    let schema = schemars::schema_for!(Update);
    let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
    check_file(repository().join("docs/schema/update.json"), &text);

    let schema = schemars::schema_for!(UpdateState);
    let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
    check_file(repository().join("docs/schema/update-state.json"), &text);
}

#[test]
fn example_update_round_trips_with_stable_names() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/update.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let update: Update = serde_json::from_str(&text).unwrap();
    assert_eq!(update.identity.revision_number, 201);
    assert!(update.installation_behavior.can_request_user_input);
    let again = serde_json::to_string_pretty(&update).unwrap() + "\n";
    assert_eq!(
        again, text,
        "serializing the example gives it back unchanged"
    );
}

#[test]
fn a_minimal_update_takes_defaults() {
    let json = r#"{
        "identity": {"updateId": "12345678-9abc-def0-1234-56789abcdef0", "revisionNumber": 1},
        "title": "Minimal",
        "type": "Software",
        "deploymentAction": "Installation"
    }"#;
    let update: Update = serde_json::from_str(json).unwrap();
    assert!(update.kb_article_ids.is_empty());
    assert!(!update.installation_behavior.can_request_user_input);
    assert_eq!(update.eula_text, None);
    let state: UpdateState = serde_json::from_str("{}").unwrap();
    assert_eq!(state, UpdateState::default());
}
