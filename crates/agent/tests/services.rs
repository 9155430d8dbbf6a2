//! Registering scan packages, syncing them, and refusing bad ones without
//! changing the store.

mod common;

use std::path::Path;

use common::*;
use openwua_catalog::package;
use openwua_catalog::revision::Applicability;
use openwua_catalog::signing::SecretKey;
use openwua_catalog::snapshot::Snapshot;
use openwua_testkit::wait_until;
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

/// Writes `snapshot`, signed with `key`, laid out as `write_package` does
/// but without validating it: what a hostile or careless publisher signs.
fn write_unvalidated(snapshot: &Snapshot, key: &SecretKey, path: &Path) {
    let bytes = serde_json::to_vec(snapshot).unwrap();
    let signature = key.sign(&bytes);
    let mut encoder = zstd::Encoder::new(std::fs::File::create(path).unwrap(), 3).unwrap();
    encoder.include_checksum(true).unwrap();
    let mut archive = tar::Builder::new(encoder);
    for (name, data) in [
        (package::SNAPSHOT_ENTRY, &bytes[..]),
        (package::SIGNATURE_ENTRY, &signature[..]),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        archive.append_data(&mut header, name, data).unwrap();
    }
    archive.into_inner().unwrap().finish().unwrap();
}

#[test]
fn content_file_names_that_leave_the_staging_directory_are_refused() {
    let agent = AgentProcess::start(&[]);
    let (key, public) = key();
    let package = agent.dir.path().join("service.owpkg");
    let before = store_bytes(&agent);
    for name in ["../x", "/etc/x"] {
        let installer = Installer {
            script: "true".into(),
            uninstall: false,
            exit_codes: json!({}),
        };
        let (mut escaping, _) = installable(agent.dir.path(), 1, "Escaping", installer, json!({}));
        escaping.content[0].file_name = name.into();
        escaping.update.download_contents[0].file_name = name.into();
        write_unvalidated(&snapshot(1, vec![escaping]), &key, &package);
        let refusal = add_package(&agent, &package, &public).unwrap_err();
        assert_eq!(error_name(&refusal), "WU_E_OL_INVALID_SCANFILE", "{name}");
        let detail = refusal["parameters"]["detail"].as_str().unwrap();
        assert!(detail.contains("not a plain file name"), "{detail}");
    }
    let services = agent
        .call("org.openwua.Agent.ListServices", json!({}))
        .unwrap();
    assert_eq!(services["services"], json!([]));
    assert!(
        before == store_bytes(&agent),
        "a refused package changed the store"
    );
    assert!(!agent.dir.path().join("x").exists());
}

/// The permission bits of `path`.
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `call` on a thread of its own and fails the test if it has not
/// returned within a minute: the agent hung on it.
fn within_deadline<T: Send + 'static>(what: &str, call: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(call());
    });
    receiver
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what} hung"))
}

const STATE_FILES: [&str; 4] = ["agent.db", "agent.db-wal", "agent.db-shm", "agent.lock"];

#[test]
fn another_user_cannot_open_the_agents_state_files() {
    if !is_root() {
        openwua_testkit::skip(
            "another_user_cannot_open_the_agents_state_files",
            "needs root to create a user",
        );
        return;
    }
    let agent = AgentProcess::start(&[]);
    let (key, public) = key();
    let package = agent.dir.path().join("service.owpkg");
    write(&snapshot(1, updates(2)), &key, &package);
    add_package(&agent, &package, &public).unwrap();
    // The test's own directory is private; open it so that only the
    // agent's modes stand between the user and the files.
    set_mode(agent.dir.path(), 0o755);
    let state = agent.dir.path().join("state");
    assert_eq!(mode(&state), 0o700);
    for name in STATE_FILES {
        assert_eq!(mode(&state.join(name)), 0o600, "{name}");
    }
    assert_eq!(mode(&agent.dir.path().join("cache")), 0o700);

    // Opening is all a lock on the store's bytes or on agent.lock needs.
    let user = ThrowawayUser::create("wuastate");
    for name in STATE_FILES {
        let output = std::process::Command::new("runuser")
            .args(["-u", &user.name, "--", "head", "-c", "0"])
            .arg(state.join(name))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains("Permission denied"),
            "{name} opened by another user: {stderr}"
        );
    }
}

#[test]
fn a_loose_state_directory_is_tightened_and_a_foreign_one_refused() {
    let agent = AgentProcess::start_with_config(|dir| {
        // As an older agent left it.
        let state = dir.join("state");
        std::fs::create_dir(&state).unwrap();
        set_mode(&state, 0o755);
        std::fs::write(state.join("agent.lock"), b"").unwrap();
        set_mode(&state.join("agent.lock"), 0o644);
        (String::new(), String::new())
    });
    let state = agent.dir.path().join("state");
    assert_eq!(mode(&state), 0o700);
    for name in STATE_FILES {
        assert_eq!(mode(&state.join(name)), 0o600, "{name}");
    }
    drop(agent);

    if !is_root() {
        openwua_testkit::skip(
            "a_loose_state_directory_is_tightened_and_a_foreign_one_refused",
            "the foreign-directory half needs root to create a user",
        );
        return;
    }
    let user = ThrowawayUser::create("wuaforeign");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let status = std::process::Command::new("chown")
        .arg(&user.name)
        .arg(&state)
        .status()
        .unwrap();
    assert!(status.success());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wua-agent"))
        .arg("--state-dir")
        .arg(&state)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .arg("--socket")
        .arg(dir.path().join("agent.sock"))
        .env("WUA_AGENT_LOG", "warn")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("owned by the agent's user"), "{stderr}");
    assert!(!dir.path().join("agent.sock").exists());
    assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0);
}

#[test]
fn a_fifo_or_a_symlink_at_a_registered_package_path_is_refused_promptly() {
    let agent = AgentProcess::start(&[]);
    let (key, public) = key();
    let package = agent.dir.path().join("service.owpkg");
    write(&snapshot(1, updates(2)), &key, &package);

    let link = agent.dir.path().join("link.owpkg");
    std::os::unix::fs::symlink(&package, &link).unwrap();
    let refusal = add_package(&agent, &link, &public).unwrap_err();
    assert_eq!(error_name(&refusal), "WU_E_OL_INVALID_SCANFILE");
    assert!(refusal.to_string().contains("symlink"), "{refusal}");

    add_package(&agent, &package, &public).unwrap();
    // A FIFO in its place: nobody will ever write to it.
    std::fs::remove_file(&package).unwrap();
    nix::unistd::mkfifo(&package, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    let socket = agent.socket();
    let refusal = within_deadline("Sync", move || {
        Client::connect(&socket).call("org.openwua.Agent.Sync", json!({}))
    })
    .unwrap_err();
    assert_eq!(error_name(&refusal), "WU_E_OL_INVALID_SCANFILE");
    assert!(refusal.to_string().contains("FIFO"), "{refusal}");
    let socket = agent.socket();
    let online = within_deadline("Search", move || {
        Client::connect(&socket).call(
            "org.openwua.Agent.Search",
            json!({ "criteria": "", "options": { "online": true } }),
        )
    })
    .unwrap();
    assert_eq!(titles(&online["result"]).len(), 2);
    assert!(
        online["result"]["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("FIFO"),
        "{online}"
    );

    // A symlink in its place, to a package that is otherwise fine.
    std::fs::remove_file(&package).unwrap();
    let elsewhere = agent.dir.path().join("elsewhere.owpkg");
    write(&snapshot(2, updates(3)), &key, &elsewhere);
    std::os::unix::fs::symlink(&elsewhere, &package).unwrap();
    let refusal = agent.call("org.openwua.Agent.Sync", json!({})).unwrap_err();
    assert_eq!(error_name(&refusal), "WU_E_OL_INVALID_SCANFILE");
    assert_eq!(titles(&search(&agent, "", json!({})).unwrap()).len(), 2);
}

/// Counts inotify events on `path` between "ready" and a line on stdin:
/// prints opens and reads.
const WATCH_SCRIPT: &str = r#"
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(os.O_NONBLOCK)
IN_ACCESS, IN_OPEN = 0x1, 0x20
assert libc.inotify_add_watch(fd, sys.argv[1].encode(), IN_ACCESS | IN_OPEN) >= 0
print("ready", flush=True)
sys.stdin.readline()
opens = reads = 0
while True:
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        break
    offset = 0
    while offset < len(data):
        _, mask, _, length = struct.unpack_from("iIII", data, offset)
        opens += bool(mask & IN_OPEN)
        reads += bool(mask & IN_ACCESS)
        offset += 16 + length
print(opens, reads, flush=True)
"#;

#[test]
fn a_sync_does_not_read_a_package_file_that_did_not_change() {
    use std::io::{BufRead, Write as _};
    let agent = AgentProcess::start(&[]);
    let (key, public) = key();
    let package = agent.dir.path().join("service.owpkg");
    write(&snapshot(1, updates(2)), &key, &package);
    // Not a wait for an event: the agent trusts a file's identity only
    // once it has been left alone for two seconds (timestamps move in
    // clock ticks), so this one must be older than that.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    add_package(&agent, &package, &public).unwrap();

    let mut watcher = std::process::Command::new("python3")
        .args(["-c", WATCH_SCRIPT])
        .arg(&package)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(watcher.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let synced = agent.call("org.openwua.Agent.Sync", json!({})).unwrap();
    assert_eq!(synced["progress"]["result"]["unchanged"], 2, "{synced}");
    writeln!(watcher.stdin.take().unwrap()).unwrap();
    let counts = lines.next().unwrap().unwrap();
    watcher.wait().unwrap();
    let (opens, reads) = counts.split_once(' ').unwrap();
    assert!(opens.parse::<u32>().unwrap() >= 1, "the sync never looked");
    assert_eq!(reads, "0", "the sync read the unchanged package again");
}
