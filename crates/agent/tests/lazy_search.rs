//! Issue 17: the client library's search result decodes its updates lazily
//! (`openwua_client::UpdateCollection`). On random catalogs and random
//! searches through a real agent, what it gives — read in a random order,
//! then iterated, then serialized — equals the reply decoded at once into
//! the model's `SearchResult`, the eager form.

use jiff::{SignedDuration, Timestamp};
use openwua_agent::{Background, Config};
use openwua_catalog::package;
use openwua_catalog::revision::{Applicability, Handler, Revision, Rule};
use openwua_catalog::signing::SecretKey;
use openwua_catalog::snapshot::{FORMAT_VERSION, Snapshot};
use openwua_client::blocking::UpdateSession;
use openwua_client::varlink::Connection;
use openwua_model::search::SearchResult as EagerResult;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use serde_json::{Value, json};
use uuid::Uuid;

const CATEGORIES: [u128; 3] = [0xCA7_0001, 0xCA7_0002, 0xCA7_0003];
const SEVERITIES: [&str; 4] = ["Critical", "Important", "Moderate", "Low"];

/// One generated revision's varying parts.
#[derive(Debug, Clone)]
struct Shape {
    title: String,
    driver: bool,
    kbs: Vec<u32>,
    severity: Option<&'static str>,
    mandatory: bool,
    asks: bool,
    categories: Vec<u128>,
    hidden: bool,
    applies: bool,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        // Quotes, backslashes and non-ASCII, as catalogs may hold.
        "[a-zA-Z0-9 \"\\\\/é✓漢]{1,40}",
        any::<bool>(),
        proptest::collection::vec(1_000_000u32..9_999_999, 0..3),
        proptest::option::of(select(SEVERITIES.as_slice())),
        any::<(bool, bool, bool)>(),
        subsequence(CATEGORIES.as_slice(), 0..=CATEGORIES.len()),
        any::<bool>(),
    )
        .prop_map(
            |(title, driver, kbs, severity, (mandatory, asks, hidden), categories, applies)| {
                Shape {
                    title,
                    driver,
                    kbs,
                    severity,
                    mandatory,
                    asks,
                    categories,
                    hidden,
                    applies,
                }
            },
        )
}

fn revision(id: u128, shape: &Shape) -> Revision {
    let mut update = json!({
        "identity": { "updateId": Uuid::from_u128(id), "revisionNumber": 1 },
        "title": shape.title,
        "description": format!("Generated update {id}."),
        "type": if shape.driver { "Driver" } else { "Software" },
        "deploymentAction": "Installation",
        "kbArticleIds": shape.kbs.iter().map(u32::to_string).collect::<Vec<_>>(),
        "isMandatory": shape.mandatory,
        "installationBehavior": { "canRequestUserInput": shape.asks },
        "categories": shape.categories.iter().map(|id| json!({
            "id": Uuid::from_u128(*id), "name": format!("Category {id:x}"), "type": "Product",
        })).collect::<Vec<_>>(),
    });
    if let (Some(severity), Some(object)) = (shape.severity, update.as_object_mut()) {
        object.insert("msrcSeverity".into(), json!(severity));
    }
    // An architecture no machine has makes the update not applicable.
    let architecture = if shape.applies {
        std::env::consts::ARCH
    } else {
        "pdp11"
    };
    Revision {
        update: serde_json::from_value(update).unwrap(),
        hidden_by_default: shape.hidden,
        applicability: Applicability {
            installable: Some(Rule::Architecture(architecture.into())),
            ..Applicability::default()
        },
        handler: Handler::Command {
            program: "install.sh".into(),
            args: vec![],
            uninstall: None,
            exit_codes: Default::default(),
            timeout_seconds: None,
        },
        content: vec![],
    }
}

/// Criteria: or-ed groups of and-ed terms over the generated fields.
fn criteria(updates: u128) -> impl Strategy<Value = String> {
    let mut atoms: Vec<String> = [
        "IsInstalled=0",
        "IsInstalled=1",
        "IsHidden=0",
        "IsHidden=1",
        "IsAssigned=0",
        "IsAssigned=1",
        "Type='Software'",
        "Type='Driver'",
        "BrowseOnly=0",
    ]
    .map(String::from)
    .to_vec();
    atoms.extend(
        CATEGORIES
            .iter()
            .map(|id| format!("CategoryIDs contains '{}'", Uuid::from_u128(*id))),
    );
    atoms.extend((1..=updates.min(5)).map(|id| format!("UpdateID='{}'", Uuid::from_u128(id))));
    let group =
        proptest::collection::vec(select(atoms), 1..4).prop_map(|terms| terms.join(" and "));
    prop_oneof![
        1 => Just(String::new()),
        6 => proptest::collection::vec(group, 1..3).prop_map(|groups| groups.join(" or ")),
    ]
}

fn catalog_and_searches() -> impl Strategy<Value = (Vec<Shape>, Vec<(String, Vec<usize>)>)> {
    proptest::collection::vec(shape(), 1..40).prop_flat_map(|shapes| {
        let count = shapes.len() as u128;
        let search = (
            criteria(count),
            // Entries read before the iteration, in this order (an index
            // past the end reads nothing).
            proptest::collection::vec(0..shapes.len() + 1, 0..8),
        );
        (Just(shapes), proptest::collection::vec(search, 1..6))
    })
}

fn snapshot(revisions: Vec<Revision>) -> Snapshot {
    let created = Timestamp::now();
    Snapshot {
        format: FORMAT_VERSION,
        service_id: Uuid::from_u128(0x1A2F),
        service_name: "Lazy decoding".into(),
        version: 1,
        created,
        expires: created + SignedDuration::from_hours(24),
        revisions,
    }
}

/// The reply decoded at once, as the client library did before.
fn eager(
    connection: &mut Connection,
    runtime: &tokio::runtime::Runtime,
    criteria: &str,
) -> EagerResult {
    #[derive(serde::Deserialize)]
    struct Reply {
        result: EagerResult,
    }
    let reply: Reply = runtime
        .block_on(connection.call("org.openwua.Agent.Search", &json!({ "criteria": criteria })))
        .unwrap();
    reply.result
}

proptest! {
    // Each case starts an agent and imports a package.
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn lazy_results_equal_eager_ones((shapes, searches) in catalog_and_searches()) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            owner_is_admin: true,
            ..Config::under(dir.path())
        };
        let key = SecretKey::generate().unwrap();
        let revisions = shapes
            .iter()
            .enumerate()
            .map(|(index, shape)| revision(index as u128 + 1, shape))
            .collect();
        let path = dir.path().join("catalog.owpkg");
        package::write_package(&snapshot(revisions), &[], &key, &path).unwrap();
        let agent = Background::start(config).unwrap();
        let session = UpdateSession::connect(agent.socket()).unwrap();
        session
            .create_update_service_manager()
            .add_scan_package_service(None, &path, &key.public_key().to_string(), true, None)
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let mut connection = runtime.block_on(Connection::connect(agent.socket())).unwrap();

        for (criteria, reads) in &searches {
            let eager = eager(&mut connection, &runtime, criteria);
            let lazy = session.create_update_searcher().search(criteria).unwrap();
            prop_assert_eq!(lazy.result_code, eager.result_code);
            prop_assert_eq!(&lazy.warnings, &eager.warnings);
            prop_assert_eq!(lazy.updates.len(), eager.updates.len());
            for &index in reads {
                match (lazy.updates.get(index), eager.updates.get(index)) {
                    (Some(lazy), Some(eager)) => prop_assert_eq!(lazy.unwrap(), eager),
                    (None, None) => {}
                    (lazy, eager) => prop_assert!(false, "{criteria:?}[{index}]: {lazy:?} vs {eager:?}"),
                }
            }
            let read: Vec<_> = lazy.updates.iter().map(Result::unwrap).cloned().collect();
            prop_assert_eq!(&read, &eager.updates);
            prop_assert_eq!(&lazy.updates.to_vec().unwrap(), &eager.updates);
            let lazy_json: Value = serde_json::to_value(&lazy).unwrap();
            let eager_json: Value = serde_json::to_value(&eager).unwrap();
            prop_assert_eq!(lazy_json, eager_json);
        }
    }
}
