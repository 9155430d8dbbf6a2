//! An independent Varlink implementation (Python's `varlink` package,
//! installed by `scripts/setup-test-machine`) introspects the interface and
//! searches.

mod common;

use common::*;
use openwua_testkit::skip;
use serde_json::json;

#[test]
fn python_varlink_introspects_and_searches() {
    let import = std::process::Command::new("python3")
        .args(["-c", "import varlink"])
        .output();
    if !import.is_ok_and(|output| output.status.success()) {
        skip(
            "python_varlink_introspects_and_searches",
            "python3 cannot import varlink (scripts/setup-test-machine installs it)",
        );
        return;
    }
    let agent = AgentProcess::start(&[]);
    let (key, public) = key();
    let package = agent.dir.path().join("p.owpkg");
    let updates = vec![
        revision(1, "Software one", Default::default(), json!({})),
        revision(
            2,
            "A driver",
            Default::default(),
            json!({ "type": "Driver" }),
        ),
    ];
    write(&snapshot(1, updates), &key, &package);
    add_package(&agent, &package, &public).unwrap();

    let output = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/varlink_client.py"
        ))
        .arg(agent.socket())
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the Python varlink client failed (is `pip install varlink` done? scripts/setup-test-machine does it):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["interface"], "org.openwua.Agent");
    assert!(
        report["methods"]
            .as_array()
            .unwrap()
            .contains(&json!("Search"))
    );
    assert_eq!(report["agentInfo"]["info"]["protocolVersion"], 1);
    assert_eq!(titles(&report["result"]["result"]), ["Software one"]);
    assert_eq!(report["refused"]["error"], "org.openwua.Agent.WuaError");
    assert_eq!(
        report["refused"]["parameters"]["name"],
        "WU_E_INVALID_CRITERIA"
    );
}
