//! The Varlink protocol as clients see it: introspection, errors, bad
//! messages that harm only their own connection, and authorization.

mod common;

use common::*;
use openwua_testkit::skip;
use serde_json::json;

#[test]
fn introspection_serves_the_committed_interface_file() {
    let agent = AgentProcess::start(&[]);
    let info = agent
        .call("org.varlink.service.GetInfo", json!({}))
        .unwrap();
    assert_eq!(
        info["interfaces"],
        json!(["org.varlink.service", "org.openwua.Agent"])
    );
    let description = agent
        .call(
            "org.varlink.service.GetInterfaceDescription",
            json!({ "interface": "org.openwua.Agent" }),
        )
        .unwrap();
    // The file as committed now, not a copy built into this test.
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/varlink/org.openwua.Agent.varlink"
    ))
    .expect("the interface file docs/agent.md names");
    let served = description["description"].as_str().unwrap();
    assert_eq!(served, committed);
    // Every method the file declares is one the agent serves: a stray
    // parameter gets a refusal, never MethodNotFound.
    let methods: Vec<&str> = served
        .lines()
        .filter_map(|line| line.strip_prefix("method "))
        .filter_map(|rest| rest.split('(').next())
        .collect();
    assert!(methods.contains(&"Search"), "{methods:?}");
    for method in methods {
        let refusal = agent
            .call(
                &format!("org.openwua.Agent.{method}"),
                json!({ "notAParameter": true }),
            )
            .unwrap_err();
        assert_ne!(
            refusal["error"], "org.varlink.service.MethodNotFound",
            "{method} is in the interface file"
        );
    }
    let missing = agent
        .call(
            "org.varlink.service.GetInterfaceDescription",
            json!({ "interface": "com.example.Nope" }),
        )
        .unwrap_err();
    assert_eq!(missing["error"], "org.varlink.service.InterfaceNotFound");
    let info = agent
        .call("org.openwua.Agent.GetAgentInfo", json!({}))
        .unwrap();
    assert_eq!(info["info"]["protocolVersion"], 1);
}

#[test]
fn errors_carry_the_hresult_its_name_and_advice() {
    let agent = AgentProcess::start(&[]);
    let refusal = search(&agent, "IsInstalled=2", json!({})).unwrap_err();
    assert_eq!(refusal["error"], "org.openwua.Agent.WuaError");
    assert_eq!(refusal["parameters"]["hresult"], "0x80240032");
    assert_eq!(refusal["parameters"]["name"], "WU_E_INVALID_CRITERIA");
    assert!(
        !refusal["parameters"]["message"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert!(
        refusal["parameters"]["detail"]
            .as_str()
            .unwrap()
            .contains("byte")
    );

    let unknown = agent
        .call("org.openwua.Agent.Frobnicate", json!({}))
        .unwrap_err();
    assert_eq!(unknown["error"], "org.varlink.service.MethodNotFound");
    let bad = agent
        .call("org.openwua.Agent.Search", json!({ "criteria": 5 }))
        .unwrap_err();
    assert_eq!(bad["error"], "org.varlink.service.InvalidParameter");
    let history = agent
        .call(
            "org.openwua.Agent.QueryHistory",
            json!({ "start": 0, "count": 0 }),
        )
        .unwrap_err();
    assert_eq!(error_name(&history), "WU_E_INVALIDINDEX");
}

#[test]
fn malformed_messages_end_only_their_connection() {
    let agent = AgentProcess::start(&[]);
    let mut bystander = agent.client();
    bystander
        .call("org.openwua.Agent.GetAgentInfo", json!({}))
        .unwrap();

    let mut garbage = agent.client();
    garbage.send_raw(b"{\"method\": nonsense\0");
    let reply = garbage.read_reply().unwrap();
    assert_eq!(error_name(&reply), "E_INVALIDARG");
    assert!(
        garbage.read_reply().is_none(),
        "the connection should close"
    );

    let mut not_utf8 = agent.client();
    not_utf8.send_raw(b"\xff\xfe\0");
    assert_eq!(error_name(&not_utf8.read_reply().unwrap()), "E_INVALIDARG");

    // The first connection never noticed.
    bystander
        .call("org.openwua.Agent.GetAgentInfo", json!({}))
        .unwrap();
    agent
        .call("org.openwua.Agent.GetSystemInfo", json!({}))
        .unwrap();
}

/// docs/agent.md: a message over 16 MiB gets an `E_INVALIDARG` reply and
/// ends its connection only.
#[test]
fn an_oversized_message_gets_e_invalidarg_and_ends_only_its_connection() {
    let agent = AgentProcess::start(&[]);
    let mut bystander = agent.client();
    bystander
        .call("org.openwua.Agent.GetAgentInfo", json!({}))
        .unwrap();
    let mut huge = agent.client();
    // Ended by its NUL: the agent skips to it, then answers (without one
    // it would answer only when the call's 30 s deadline passed).
    let mut message = vec![b' '; 17 * 1024 * 1024];
    message.push(0);
    let _ = huge.try_send_raw(&message);
    let reply = huge
        .read_reply()
        .expect("an E_INVALIDARG reply, not a closed connection");
    assert_eq!(error_name(&reply), "E_INVALIDARG", "{reply}");
    assert!(huge.read_reply().is_none(), "the connection should close");
    bystander
        .call("org.openwua.Agent.GetAgentInfo", json!({}))
        .unwrap();
}

#[test]
fn oneway_calls_get_no_reply() {
    let agent = AgentProcess::start(&[]);
    let mut client = agent.client();
    client.send_raw(b"{\"method\":\"org.openwua.Agent.GetAgentInfo\",\"oneway\":true}\0");
    let info = client
        .call("org.openwua.Agent.GetSystemInfo", json!({}))
        .unwrap();
    assert_eq!(info["info"]["protocolVersion"], 1);
}

#[test]
fn a_non_root_caller_may_search_but_not_hide() {
    if !is_root() {
        skip(
            "a_non_root_caller_may_search_but_not_hide",
            "needs root to create a throwaway user",
        );
        return;
    }
    let user = ThrowawayUser::create("owua-search");
    let agent = AgentProcess::start(&[]);
    // tempfile makes 0700 directories; the user must reach the socket.
    std::fs::set_permissions(
        agent.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (key, public) = key();
    let package = agent.dir.path().join("p.owpkg");
    let update = revision(7, "Seven", Default::default(), json!({}));
    write(&snapshot(1, vec![update]), &key, &package);
    add_package(&agent, &package, &public).unwrap();

    let search_reply = user.call(
        &agent.socket(),
        "org.openwua.Agent.Search",
        json!({ "criteria": "" }),
    );
    let hide = user.call(
        &agent.socket(),
        "org.openwua.Agent.SetHidden",
        json!({ "updateIds": [uuid::Uuid::from_u128(7)], "hidden": true }),
    );
    assert_eq!(
        search_reply["parameters"]["result"]["updates"][0]["update"]["title"],
        "Seven"
    );
    assert_eq!(hide["error"], "org.openwua.Agent.WuaError");
    assert_eq!(hide["parameters"]["name"], "E_ACCESSDENIED");
    assert_eq!(hide["parameters"]["hresult"], "0x80070005");

    // Root may, and the update is then hidden.
    agent
        .call(
            "org.openwua.Agent.SetHidden",
            json!({ "updateIds": [uuid::Uuid::from_u128(7)], "hidden": true }),
        )
        .unwrap();
    assert_eq!(titles(&search(&agent, "", json!({})).unwrap()).len(), 0);
    assert_eq!(
        titles(&search(&agent, "IsHidden=1", json!({})).unwrap()),
        ["Seven"]
    );
}

#[test]
fn a_socket_passed_by_systemd_is_served_and_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("activated.sock");
    // What systemd does: bind and listen, pass it as fd 3 with LISTEN_FDS
    // and LISTEN_PID, exec the service.
    let script = r#"
import os, socket, sys
listener = socket.socket(socket.AF_UNIX)
listener.bind(sys.argv[1])
listener.listen()
os.dup2(listener.fileno(), 3)
os.set_inheritable(3, True)
env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), WUA_AGENT_LOG="warn")
os.execve(sys.argv[2], [sys.argv[2], "--state-dir", sys.argv[3], "--cache-dir", sys.argv[5], "--socket", sys.argv[4]], env)
"#;
    let mut agent = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&socket)
        .arg(env!("CARGO_BIN_EXE_wua-agent"))
        .arg(dir.path().join("state"))
        // Where the agent would bind if it ignored the passed socket.
        .arg(dir.path().join("not-used.sock"))
        // Not the machine's /var/cache/openwua.
        .arg(dir.path().join("cache"))
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut client = loop {
        if let Ok(stream) = std::os::unix::net::UnixStream::connect(&socket) {
            drop(stream);
            break Client::connect(&socket);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let info = client
        .call("org.openwua.Agent.GetAgentInfo", json!({}))
        .unwrap();
    assert_eq!(info["info"]["protocolVersion"], 1);
    assert!(!dir.path().join("not-used.sock").exists());
    let terminated = std::process::Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    assert!(agent.wait().unwrap().success());
    assert!(
        socket.exists(),
        "the socket is systemd's; the agent must leave it"
    );
}
