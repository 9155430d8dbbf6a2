//! What one local user can make the agent hold: connections, buffered
//! bytes and replies. Each test is the attack itself, against a real
//! `wua-agent` process.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{AgentProcess, ThrowawayUser, error_name, is_root};
use serde_json::json;

/// `MAX_CALL`: the longest call the agent reads.
const MAX_CALL: usize = 16 * 1024 * 1024;

/// A Python program run as a throwaway user: it opens `argv[2]` connections
/// to `argv[1]`, sends each `argv[3]` bytes of spaces without a NUL, says
/// "ready" and holds them all until its stdin closes.
const HOLD_CONNECTIONS: &str = r#"
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
path, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
payload = b" " * size
held = []
for _ in range(count):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(path)
    if size:
        try:
            s.sendall(payload)
        except OSError:
            pass
    held.append(s)
print("ready", flush=True)
sys.stdin.read()
"#;

/// Runs [`HOLD_CONNECTIONS`] as `user` and waits until it holds them.
fn hold_connections(
    user: &ThrowawayUser,
    agent: &AgentProcess,
    count: usize,
    size: usize,
) -> Child {
    let mut child = Command::new("runuser")
        .args(["-u", &user.name, "--", "python3", "-c", HOLD_CONNECTIONS])
        .arg(agent.socket())
        .arg(count.to_string())
        .arg(size.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        "ready",
        "the attacker could not open its connections"
    );
    child
}

fn release(mut child: Child) {
    drop(child.stdin.take());
    let _ = child.wait();
}

/// The agent's resident memory, in bytes.
fn resident_bytes(agent: &AgentProcess) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.child.id())).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// One call on a fresh connection that must be answered within `limit`.
fn call_within(agent: &AgentProcess, method: &str, limit: Duration) -> serde_json::Value {
    let mut stream = UnixStream::connect(agent.socket()).unwrap();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut bytes = serde_json::to_vec(&json!({ "method": method, "parameters": {} })).unwrap();
    bytes.push(0);
    stream.write_all(&bytes).unwrap();
    let mut reply = Vec::new();
    BufReader::new(stream)
        .read_until(0, &mut reply)
        .unwrap_or_else(|error| panic!("{method} was not answered within {limit:?}: {error}"));
    assert_eq!(reply.pop(), Some(0), "{method}: the connection closed");
    serde_json::from_slice(&reply).unwrap()
}

/// Sends `message` and its NUL from another thread (the agent answers only
/// once it has read up to the NUL) and reads the one reply; asserts that
/// the whole message was taken.
fn send_and_read_reply(
    agent: &AgentProcess,
    message: Vec<u8>,
) -> (serde_json::Value, BufReader<UnixStream>) {
    let stream = UnixStream::connect(agent.socket()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        writer.write_all(&message)?;
        writer.write_all(b"\0")
    });
    let mut reply = Vec::new();
    let mut reader = BufReader::new(stream);
    reader
        .read_until(0, &mut reply)
        .expect("a reply, not a reset");
    assert_eq!(reply.pop(), Some(0));
    assert!(
        sender.join().unwrap().is_ok(),
        "the agent read the whole message"
    );
    (serde_json::from_slice(&reply).unwrap(), reader)
}

#[test]
fn a_call_over_the_limit_is_answered_with_e_invalidarg_not_a_reset() {
    let agent = AgentProcess::start(&[]);
    for length in [MAX_CALL + 1, MAX_CALL + 8 * 1024 * 1024] {
        let (reply, mut reader) = send_and_read_reply(&agent, vec![b' '; length]);
        assert_eq!(error_name(&reply), "E_INVALIDARG", "{length}: {reply}");
        let mut rest = Vec::new();
        assert_eq!(reader.read_to_end(&mut rest).unwrap(), 0, "then it closes");
    }
    // A call of exactly the limit is read and answered.
    let mut call = br#"{"method":"org.openwua.Agent.GetAgentInfo"}"#.to_vec();
    call.resize(MAX_CALL, b' ');
    let (reply, _) = send_and_read_reply(&agent, call);
    assert!(reply["parameters"]["info"].is_object(), "{reply}");
}

#[test]
fn idle_connections_from_one_user_do_not_starve_other_callers() {
    if !is_root() {
        openwua_testkit::skip(
            "idle_connections_from_one_user_do_not_starve_other_callers",
            "creating the attacker needs root",
        );
        return;
    }
    let agent = AgentProcess::start(&[]);
    // systemd's default soft limit, which the agent may have raised at start.
    let status = Command::new("prlimit")
        .arg(format!("--pid={}", agent.child.id()))
        .arg("--nofile=1024:")
        .status()
        .unwrap();
    assert!(status.success());
    let attacker = ThrowawayUser::create("wuaidle");
    let bystander = ThrowawayUser::create("wuaby");
    let held = hold_connections(&attacker, &agent, 2000, 0);

    let info = call_within(
        &agent,
        "org.openwua.Agent.GetAgentInfo",
        Duration::from_secs(10),
    );
    assert!(
        info["parameters"]["info"]["protocolVersion"].is_u64(),
        "{info}"
    );
    let context = bystander.call(
        &agent.socket(),
        "org.openwua.Agent.GetCallerContext",
        json!({}),
    );
    assert!(context["parameters"]["context"].is_object(), "{context}");
    release(held);
}

#[test]
fn unterminated_messages_from_one_user_do_not_grow_the_agent() {
    if !is_root() {
        openwua_testkit::skip(
            "unterminated_messages_from_one_user_do_not_grow_the_agent",
            "creating the attacker needs root",
        );
        return;
    }
    let agent = AgentProcess::start(&[]);
    let attacker = ThrowawayUser::create("wuamem");
    let held = hold_connections(&attacker, &agent, 150, 15 * 1024 * 1024);
    let resident = resident_bytes(&agent);
    eprintln!(
        "resident after the attack: {} MiB",
        resident / (1024 * 1024)
    );
    assert!(
        resident < 600 * 1024 * 1024,
        "the agent holds {} MiB for one user's unfinished calls",
        resident / (1024 * 1024)
    );
    // And it still answers.
    call_within(
        &agent,
        "org.openwua.Agent.GetAgentInfo",
        Duration::from_secs(10),
    );
    release(held);
}

#[test]
fn a_history_query_for_everything_gets_at_most_a_thousand_entries() {
    let agent = AgentProcess::start(&[]);
    let entry = openwua_model::history::HistoryEntry {
        operation: openwua_model::enums::UpdateOperation::Installation,
        result_code: openwua_model::enums::OperationResultCode::Succeeded,
        hresult: openwua_model::hresult::S_OK,
        unmapped_result_code: None,
        date: jiff::Timestamp::now(),
        update_identity: openwua_model::update::UpdateIdentity {
            update_id: uuid::Uuid::new_v4(),
            revision_number: 1,
        },
        title: "an update".into(),
        client_application_id: "limits".into(),
        service_id: uuid::Uuid::new_v4(),
    };
    let entry = serde_json::to_string(&entry).unwrap();
    let mut store = rusqlite::Connection::open(agent.store()).unwrap();
    store.busy_timeout(Duration::from_secs(30)).unwrap();
    let transaction = store.transaction().unwrap();
    for _ in 0..1500 {
        transaction
            .execute("INSERT INTO history (entry_json) VALUES (?1)", [&entry])
            .unwrap();
    }
    transaction.commit().unwrap();

    let reply = agent
        .call(
            "org.openwua.Agent.QueryHistory",
            json!({ "start": 0, "count": i64::MAX }),
        )
        .unwrap();
    assert_eq!(reply["entries"].as_array().unwrap().len(), 1000);
    // The rest is there for the next page.
    let reply = agent
        .call(
            "org.openwua.Agent.QueryHistory",
            json!({ "start": 1000, "count": 1000 }),
        )
        .unwrap();
    assert_eq!(reply["entries"].as_array().unwrap().len(), 500);
    // The client pages through it: WUA's "everything" still means everything.
    let session = openwua_client::blocking::UpdateSession::connect(agent.socket()).unwrap();
    let everything = session
        .create_update_searcher()
        .query_history(0, u64::MAX)
        .unwrap();
    assert_eq!(everything.len(), 1500);
}

#[test]
fn the_agent_raises_its_open_file_limit_to_the_hard_one() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let original = getrlimit(Resource::Nofile);
    // Started as systemd starts a service by default: a soft limit of 1024.
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(1024),
            maximum: original.maximum,
        },
    )
    .unwrap();
    let agent = AgentProcess::start(&[]);
    setrlimit(Resource::Nofile, original).unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", agent.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3], fields[4], "soft and hard limits: {line}");
}

/// Polls until the agent has closed its end of `stream` (which may still
/// hold unread bytes).
fn wait_for_hangup(stream: &UnixStream, within: Duration, what: &str) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let deadline = std::time::Instant::now() + within;
    loop {
        let mut fds = [PollFd::new(stream.as_fd(), PollFlags::empty())];
        poll(&mut fds, PollTimeout::ZERO).unwrap();
        let events = fds[0].revents().unwrap_or(PollFlags::empty());
        if events.contains(PollFlags::POLLHUP) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: the agent still holds the connection"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn idle_connections_and_calls_that_never_end_are_closed() {
    // Shorter than the defaults (60 s idle, 30 s for a call), as an
    // administrator may configure them.
    let agent = AgentProcess::start_with_config(|_| {
        (
            String::new(),
            "[connections]\nidle_timeout_seconds = 3\ncall_timeout_seconds = 2\n".to_owned(),
        )
    });
    let idle = UnixStream::connect(agent.socket()).unwrap();
    let mut slow = UnixStream::connect(agent.socket()).unwrap();
    slow.write_all(br#"{"method":"org.openwua.Agent.GetAgent"#)
        .unwrap();
    wait_for_hangup(&slow, Duration::from_secs(60), "a call that never ends");
    wait_for_hangup(&idle, Duration::from_secs(60), "an idle connection");
    // A connection that keeps calling is never idle.
    let mut client = agent.client();
    for _ in 0..5 {
        client
            .call("org.openwua.Agent.GetAgentInfo", json!({}))
            .unwrap();
        std::thread::sleep(Duration::from_secs(1));
    }
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = Vec::new();
    BufReader::new(slow).read_until(0, &mut reply).unwrap();
    assert_eq!(reply.pop(), Some(0));
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(error_name(&reply), "E_INVALIDARG", "{reply}");
}

#[test]
fn replies_nobody_reads_are_not_kept() {
    let agent = AgentProcess::start(&[]);
    let (key, public) = common::key();
    let package = agent.dir.path().join("many.owpkg");
    let revisions = (1..=20_000)
        .map(|id| common::revision(id, "An update", Default::default(), json!({})))
        .collect();
    common::write(&common::snapshot(1, revisions), &key, &package);
    common::add_package(&agent, &package, &public).unwrap();
    // Searches of some 15 MB each, whose replies are never read.
    let unread: Vec<UnixStream> = (0..8)
        .map(|_| {
            let mut stream = UnixStream::connect(agent.socket()).unwrap();
            stream
                .write_all(
                    b"{\"method\":\"org.openwua.Agent.Search\",\"parameters\":{\"criteria\":\"\"}}\0",
                )
                .unwrap();
            stream
        })
        .collect();
    for stream in &unread {
        wait_for_hangup(stream, Duration::from_secs(120), "an unread reply");
    }
}
