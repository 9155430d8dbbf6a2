//! `GetCallerContext` over the real socket: the agent reads the test
//! process's own facts. Real login sessions (login, su, sudo, ssh) are
//! tested in `sessions.rs`.

mod common;

use common::*;
use openwua_testkit::skip;
use serde_json::json;

#[test]
fn a_process_without_a_login_is_a_service_and_told_what_to_do() {
    let agent = AgentProcess::start(&[]);
    let reply = agent
        .call("org.openwua.Agent.GetCallerContext", json!({}))
        .unwrap();
    let context = &reply["context"];
    let uid = nix::unistd::geteuid().as_raw();
    assert_eq!(context["uid"], uid);
    let facts = context["facts"].as_array().unwrap();
    let fact = |name: &str| {
        facts
            .iter()
            .find(|fact| fact["name"] == name)
            .unwrap_or_else(|| panic!("no {name} fact in {context:#}"))
    };
    assert!(
        fact("uid")["value"]
            .as_str()
            .unwrap()
            .starts_with(&uid.to_string())
    );
    assert_eq!(fact("uid")["source"], "SO_PEERCRED");
    let process = fact("process");
    assert_eq!(
        process["value"],
        format!("pid {}, pinned", std::process::id())
    );
    assert_eq!(process["source"], "SO_PEERPIDFD");
    assert_eq!(context["weak"], false);
    assert_eq!(
        fact("groups")["source"],
        format!("/proc/{}/status", std::process::id())
    );
    assert_eq!(context["may"]["search"], true);

    // This machine's test processes have no login (loginuid unset) and no
    // logind session: no session is attested.
    let loginuid = std::fs::read_to_string("/proc/self/loginuid").unwrap_or_default();
    if loginuid.trim() == "4294967295" {
        assert_eq!(context["class"], "service", "{context:#}");
        assert!(context.get("loginUid").is_none());
        assert!(context.get("session").is_none());
        assert_eq!(context["terminalVerified"], false);
        assert_eq!(context["may"]["installInteractive"], false);
        assert!(
            context["advice"]
                .as_str()
                .is_some_and(|advice| advice.contains("wua install")),
            "{context:#}"
        );
    }
}

#[test]
fn get_caller_context_takes_no_parameters() {
    let agent = AgentProcess::start(&[]);
    let refusal = agent
        .call("org.openwua.Agent.GetCallerContext", json!({ "uid": 0 }))
        .unwrap_err();
    assert_eq!(refusal["error"], "org.varlink.service.InvalidParameter");
}

#[test]
fn a_non_root_caller_gets_its_own_context() {
    if !is_root() {
        skip(
            "a_non_root_caller_gets_its_own_context",
            "needs root to create a throwaway user",
        );
        return;
    }
    let agent = AgentProcess::start(&[]);
    let user = ThrowawayUser::create("wuactx");
    let reply = user.call(
        &agent.socket(),
        "org.openwua.Agent.GetCallerContext",
        json!({}),
    );
    let context = &reply["parameters"]["context"];
    assert_ne!(context["uid"], 0, "{reply:#}");
    assert_eq!(context["may"]["download"], false, "{reply:#}");
    assert_eq!(context["may"]["install"], false);
    assert_eq!(context["may"]["installInteractive"], false);
}
