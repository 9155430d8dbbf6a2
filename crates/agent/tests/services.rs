//! Registering scan packages, syncing them, and refusing bad ones without
//! changing the store.

mod common;

use common::*;
use openwua_catalog::revision::Applicability;
use serde_json::json;

fn updates(count: u128) -> Vec<openwua_catalog::revision::Revision> {
    (1..=count)
        .map(|id| {
            revision(
                id,
                &format!("Update {id:03}"),
                Applicability::default(),
                json!({}),
            )
        })
        .collect()
}

#[test]
fn a_registered_package_is_searchable_and_listed() {
    let agent = AgentProcess::start(&[]);
    let (key, public) = key();
    let package = agent.dir.path().join("service.owpkg");
    write(&snapshot(1, updates(3)), &key, &package);

    let added = add_package(&agent, &package, &public).unwrap();
    assert_eq!(added["sync"]["added"], 3);
    assert_eq!(added["service"]["isDefault"], true);

    let result = search(&agent, "", json!({})).unwrap();
    assert_eq!(result["resultCode"], "Succeeded");
    assert_eq!(titles(&result), ["Update 001", "Update 002", "Update 003"]);

    let services = agent
        .call("org.openwua.Agent.ListServices", json!({}))
        .unwrap();
    assert_eq!(services["services"][0]["catalogVersion"], 1);
    assert_eq!(services["services"][0]["updateCount"], 3);
}

#[test]
fn sync_imports_only_what_changed() {
    let agent = AgentProcess::start(&[]);
    let (key, public) = key();
    let package = agent.dir.path().join("service.owpkg");
    write(&snapshot(1, updates(4)), &key, &package);
    add_package(&agent, &package, &public).unwrap();

    let mut next = updates(3);
    next[0].update.title = "Update 001, revised".into();
    next[0].update.identity.revision_number = 2;
    next.push(revision(
        9,
        "Update 009",
        Applicability::default(),
        json!({}),
    ));
    write(&snapshot(2, next), &key, &package);

    let replies = agent
        .client()
        .call_more("org.openwua.Agent.Sync", json!({}));
    let phases: Vec<&str> = replies
        .iter()
        .map(|reply| reply["parameters"]["progress"]["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["verifying", "importing", "scanning", "done"]);
    let result = &replies[3]["parameters"]["progress"]["result"];
    assert_eq!(
        (
            &result["added"],
            &result["changed"],
            &result["removed"],
            &result["unchanged"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(2))
    );
    assert_eq!(result["previousVersion"], 1);
    assert_eq!(result["version"], 2);
}

#[test]
fn bad_packages_are_refused_and_change_nothing() {
    let agent = AgentProcess::start(&[]);
    let (key, public) = key();
    let package = agent.dir.path().join("service.owpkg");
    write(&snapshot(5, updates(3)), &key, &package);
    add_package(&agent, &package, &public).unwrap();
    let good = std::fs::read(&package).unwrap();
    let before = store_bytes(&agent);

    let sync = |bytes: &[u8]| {
        std::fs::write(&package, bytes).unwrap();
        agent
            .call("org.openwua.Agent.Sync", json!({}))
            .expect_err("the sync should be refused")
    };

    // Tampered: one byte flipped in the middle.
    let mut tampered = good.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x40;
    let refusal = sync(&tampered);
    assert!(
        ["WU_E_OL_INVALID_SCANFILE", "WU_E_METADATA_BAD_SIGNATURE"].contains(&error_name(&refusal)),
        "{refusal}"
    );

    // Signed by another key.
    let (other_key, _) = common::key();
    let other = agent.dir.path().join("other.owpkg");
    write(&snapshot(6, updates(3)), &other_key, &other);
    assert_eq!(
        error_name(&sync(&std::fs::read(&other).unwrap())),
        "WU_E_METADATA_BAD_SIGNATURE"
    );

    // Rolled back: an older version, correctly signed.
    write(&snapshot(4, updates(1)), &key, &other);
    let refusal = sync(&std::fs::read(&other).unwrap());
    assert_eq!(
        error_name(&refusal),
        "WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW"
    );
    assert!(
        refusal["parameters"]["detail"]
            .as_str()
            .unwrap()
            .contains("rollback")
    );

    // Expired, correctly signed and newer.
    let mut expired = snapshot(7, updates(1));
    expired.created = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(48);
    expired.expires = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    write(&expired, &key, &other);
    let refusal = sync(&std::fs::read(&other).unwrap());
    assert_eq!(
        error_name(&refusal),
        "WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW"
    );

    // Truncated at several lengths, and empty.
    for length in [0, 10, good.len() / 3, good.len() - 1] {
        assert_eq!(
            error_name(&sync(&good[..length])),
            "WU_E_OL_INVALID_SCANFILE",
            "cut at {length}"
        );
    }

    assert!(
        before == store_bytes(&agent),
        "a refused sync changed the store"
    );
    let result = search(&agent, "", json!({})).unwrap();
    assert_eq!(titles(&result).len(), 3);
}

#[test]
fn a_refused_first_package_registers_nothing() {
    let agent = AgentProcess::start(&[]);
    let (key, _) = key();
    let (_, wrong_public) = common::key();
    let package = agent.dir.path().join("service.owpkg");
    write(&snapshot(1, updates(2)), &key, &package);
    let refusal = add_package(&agent, &package, &wrong_public).unwrap_err();
    assert_eq!(error_name(&refusal), "WU_E_METADATA_BAD_SIGNATURE");
    let services = agent
        .call("org.openwua.Agent.ListServices", json!({}))
        .unwrap();
    assert_eq!(services["services"], json!([]));
    let refusal = search(&agent, "", json!({})).unwrap_err();
    assert_eq!(error_name(&refusal), "WU_E_SERVICE_NOT_REGISTERED");
}

#[test]
fn sigkill_during_a_sync_keeps_the_previous_catalog() {
    let mut agent = AgentProcess::start(&[]);
    let (key, public) = key();
    let package = agent.dir.path().join("service.owpkg");
    write(&snapshot(1, updates(10)), &key, &package);
    add_package(&agent, &package, &public).unwrap();

    // A big catalog, and the kill lands as soon as the agent reports that
    // it has started writing it to the store.
    write(&snapshot(2, updates(60_000)), &key, &package);
    let mut client = agent.client();
    client.send_raw(b"{\"method\":\"org.openwua.Agent.Sync\",\"more\":true}\0");
    loop {
        let reply = client.read_reply().expect("a progress reply");
        if reply["parameters"]["progress"]["phase"] == "importing" {
            break;
        }
    }
    agent.kill_and_restart();

    let services = agent
        .call("org.openwua.Agent.ListServices", json!({}))
        .unwrap();
    let version = services["services"][0]["catalogVersion"].as_u64().unwrap();
    let count = services["services"][0]["updateCount"].as_u64().unwrap();
    assert_eq!(
        (version, count),
        (1, 10),
        "the interrupted sync left a trace"
    );
    let found = titles(&search(&agent, "", json!({})).unwrap()).len() as u64;
    assert_eq!(found, count);
}

#[test]
fn an_online_search_syncs_first_and_an_expired_catalog_is_flagged() {
    let agent = AgentProcess::start(&[]);
    let (key, public) = key();
    let package = agent.dir.path().join("service.owpkg");
    let mut first = snapshot(1, updates(1));
    first.expires = first.created + jiff::SignedDuration::from_secs(2);
    write(&first, &key, &package);
    add_package(&agent, &package, &public).unwrap();

    // A newer package at the same path is seen only by an online search.
    write(&snapshot(2, updates(2)), &key, &package);
    assert_eq!(titles(&search(&agent, "", json!({})).unwrap()).len(), 1);
    let online = search(&agent, "", json!({ "online": true })).unwrap();
    assert_eq!(titles(&online).len(), 2);
    assert_eq!(online["warnings"], json!([]));

    // Expired in the store: the search answers, and says so.
    let mut expiring = snapshot(3, updates(2));
    expiring.expires = expiring.created + jiff::SignedDuration::from_secs(1);
    write(&expiring, &key, &package);
    agent.call("org.openwua.Agent.Sync", json!({})).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    assert!(wait_until(deadline, || jiff::Timestamp::now() > expiring.expires));
    let stale = search(&agent, "", json!({})).unwrap();
    assert_eq!(titles(&stale).len(), 2);
    assert_eq!(stale["warnings"][0]["hresult"], "0x80247163", "{stale}");
}

#[test]
fn hidden_by_default_sets_only_the_first_value_and_mandatory_updates_stay_visible() {
    let agent = AgentProcess::start(&[]);
    let (key, public) = key();
    let package = agent.dir.path().join("service.owpkg");
    let mut opt_in = revision(1, "Opt-in", Applicability::default(), json!({}));
    opt_in.hidden_by_default = true;
    let mandatory = revision(
        2,
        "Mandatory",
        Applicability::default(),
        json!({ "isMandatory": true }),
    );
    write(
        &snapshot(1, vec![opt_in.clone(), mandatory.clone()]),
        &key,
        &package,
    );
    add_package(&agent, &package, &public).unwrap();
    assert_eq!(
        titles(&search(&agent, "", json!({})).unwrap()),
        ["Mandatory"]
    );
    assert_eq!(
        titles(&search(&agent, "IsHidden=1", json!({})).unwrap()),
        ["Opt-in"]
    );

    // An administrator's choice survives the next catalog.
    let opt_in_id = uuid::Uuid::from_u128(1);
    agent
        .call(
            "org.openwua.Agent.SetHidden",
            json!({ "updateIds": [opt_in_id], "hidden": false }),
        )
        .unwrap();
    write(&snapshot(2, vec![opt_in, mandatory]), &key, &package);
    agent.call("org.openwua.Agent.Sync", json!({})).unwrap();
    assert_eq!(
        titles(&search(&agent, "", json!({})).unwrap()),
        ["Mandatory", "Opt-in"]
    );

    let refusal = agent
        .call(
            "org.openwua.Agent.SetHidden",
            json!({ "updateIds": [opt_in_id, uuid::Uuid::from_u128(2)], "hidden": true }),
        )
        .unwrap_err();
    assert_eq!(error_name(&refusal), "WU_E_INVALID_OPERATION");
    // All or nothing: the opt-in update was not hidden either.
    assert_eq!(
        titles(&search(&agent, "", json!({})).unwrap()),
        ["Mandatory", "Opt-in"]
    );
}

#[test]
fn a_second_agent_on_the_same_state_directory_refuses_to_start() {
    let agent = AgentProcess::start(&[]);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wua-agent"))
        .arg("--state-dir")
        .arg(agent.dir.path().join("state"))
        .arg("--socket")
        .arg(agent.dir.path().join("second.sock"))
        .env("WUA_AGENT_LOG", "warn")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("WU_E_DS_INUSE"), "{stderr}");
    assert!(!agent.dir.path().join("second.sock").exists());
    // The first one is unaffected.
    agent
        .call("org.openwua.Agent.GetSystemInfo", json!({}))
        .unwrap();
}
