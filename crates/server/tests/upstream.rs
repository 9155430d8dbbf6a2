//! Upstream sync end to end: a real signed Debian repository built by the
//! test (`openwua_testkit::debrepo`) served on 127.0.0.1, and the real
//! `wua-server` syncing it through its own commands: first and second
//! syncs, refused Releases (tampered, wrong key, expired, rolled back)
//! that change nothing, a server SIGKILLed half-way through a sync, and
//! the `.deb` fetched on approval and served as content.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Server;
use openwua_testkit::debrepo::{Deb, Repository};
use openwua_testkit::wait_until;
use serde_json::Value;
use sha2::{Digest, Sha256};

const SUITE: &str = "stable";

fn hello(version: &str) -> Deb {
    Deb::new("hello-upstream", version)
        .architecture("all")
        .file("/usr/share/hello-upstream/version", version)
}

fn repository() -> Repository {
    let mut repository = Repository::new();
    repository.add(SUITE, &hello("1.0-1"));
    repository.add(SUITE, &Deb::new("other-tool", "2.0").architecture("all"));
    repository.publish();
    repository
}

fn add_upstream(server: &Server, name: &str, url: &str, keyring: &Path, extra: &[&str]) {
    let keyring = keyring.to_str().unwrap();
    let mut args = vec![
        "upstream",
        "add",
        name,
        "--url",
        url,
        "--suite",
        SUITE,
        "--component",
        "main",
        "--arch",
        "amd64",
        "--keyring",
        keyring,
    ];
    args.extend_from_slice(extra);
    server.run_ok(&args);
}

fn sync(server: &Server, name: &str) -> (u16, Value) {
    let (status, body) = server.admin("POST", &format!("/api/v1/upstreams/{name}/sync"), b"");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn titles(server: &Server) -> Vec<String> {
    let mut titles: Vec<String> = server
        .updates()
        .as_array()
        .unwrap()
        .iter()
        .map(|update| update["title"].as_str().unwrap().to_owned())
        .collect();
    titles.sort();
    titles
}

fn apt_id(source: &str, version: &str) -> String {
    openwua_apt::mapping::update_id("OpenWUA-tests", source, version).to_string()
}

/// Replaces a `Name: value` line of a Release.
fn with_field(release: &str, name: &str, value: &str) -> String {
    release
        .lines()
        .map(|line| {
            if line.starts_with(&format!("{name}:")) {
                format!("{name}: {value}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn refused(server: &Server, name: &str, code: &str, words: &str) {
    let version = server.catalog_version();
    let before = server.updates();
    let (status, body) = sync(server, name);
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["name"], code, "{body}");
    assert!(body["detail"].as_str().unwrap().contains(words), "{body}");
    assert_eq!(
        server.catalog_version(),
        version,
        "a refused sync changed the catalog"
    );
    assert_eq!(server.updates(), before);
}

#[test]
fn a_signed_repository_syncs_incrementally_with_the_agents_identities() {
    syncs_incrementally(None);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_postgresql_a_signed_repository_syncs_incrementally() {
    let Some(admin_url) =
        common::postgres_url("on_postgresql_a_signed_repository_syncs_incrementally")
    else {
        return;
    };
    common::with_database(&admin_url, |url| async move {
        tokio::task::spawn_blocking(move || syncs_incrementally(Some(&url)))
            .await
            .unwrap();
    })
    .await;
}

/// First sync, nothing changed, a new version (superseding), download on
/// approval, removal.
fn syncs_incrementally(database: Option<&str>) {
    let mut repository = repository();
    let mirror = repository.serve();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&data.path().join("data"), database, &[]);
    add_upstream(&server, "tests", &mirror.url(), &repository.keyring(), &[]);
    let listed = server.json(&["upstream", "list"]);
    assert_eq!(listed[0]["name"], "tests");
    assert!(listed[0]["lastSync"].is_null());

    let (status, first) = sync(&server, "tests");
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["updates"], 2, "{first}");
    assert_eq!(first["added"], 2);
    assert_eq!(first["indexesFetched"], 1);
    assert_eq!(titles(&server), ["hello-upstream 1.0-1", "other-tool 2.0"]);
    // The identity the agent's apt service gives the same package.
    let old_id = apt_id("hello-upstream", "1.0-1");
    let shown = server.json(&["updates", "show", &old_id]);
    let revision = &shown["current"];
    assert_eq!(
        revision["handler"]["packages"][0]["name"], "hello-upstream",
        "{revision}"
    );
    let entry = repository.entry(SUITE, "hello-upstream", "1.0-1");
    assert_eq!(revision["content"][0]["sha256"], entry.sha256.as_str());
    assert_eq!(
        revision["content"][0]["url"],
        format!("content/{}", entry.sha256).as_str()
    );
    assert_eq!(
        revision["update"]["categories"][0]["name"], "Updates",
        "{revision}"
    );

    // Nothing new upstream: nothing fetched beyond the InRelease.
    let version = server.catalog_version();
    let (status, again) = sync(&server, "tests");
    assert_eq!(status, 200);
    assert_eq!(again["releaseUnchanged"], true, "{again}");
    assert_eq!(server.catalog_version(), version);

    // A new version: one added, superseding the old; the rest unchanged.
    repository.add(SUITE, &hello("1.1-1"));
    repository.publish();
    let (status, second) = sync(&server, "tests");
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["added"], 1, "{second}");
    assert_eq!(second["revised"], 0, "{second}");
    assert_eq!(server.catalog_version(), version + 1);
    let new_id = apt_id("hello-upstream", "1.1-1");
    let shown = server.json(&["updates", "show", &new_id]);
    assert_eq!(
        shown["current"]["update"]["supersededUpdateIds"],
        serde_json::json!([old_id]),
        "{shown}"
    );
    assert_eq!(
        titles(&server),
        [
            "hello-upstream 1.0-1",
            "hello-upstream 1.1-1",
            "other-tool 2.0"
        ]
    );

    // Download on approval: no .deb on the server until approved, then it
    // is fetched, verified and served.
    let entry = repository.entry(SUITE, "hello-upstream", "1.1-1");
    let content = format!("/api/v1/content/{}", entry.sha256);
    assert_eq!(server.get(&content, &[]).0, 404);
    server.run_ok(&["approve", &new_id, "--group", "All Computers"]);
    let fetched = wait_until(Instant::now() + Duration::from_secs(30), || {
        server.get(&content, &[]).0 == 200
    });
    assert!(
        fetched,
        "the approved .deb was not fetched: {}",
        server.log_tail()
    );
    let (_, _, served) = server.get(&content, &[]);
    assert_eq!(hex::encode(Sha256::digest(&served)), entry.sha256);
    assert_eq!(served.len() as u64, entry.size);
    // The unapproved one is still not fetched.
    let other = repository.entry(SUITE, "hello-upstream", "1.0-1");
    assert_eq!(
        server
            .get(&format!("/api/v1/content/{}", other.sha256), &[])
            .0,
        404
    );

    server.run_ok(&["upstream", "remove", "tests"]);
    assert_eq!(server.json(&["upstream", "list"]), serde_json::json!([]));
    server.stop();
}

#[test]
fn filters_take_sources_and_pockets() {
    let repository = repository();
    let mirror = repository.serve();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&data.path().join("data"), None, &[]);
    add_upstream(
        &server,
        "hello-only",
        &mirror.url(),
        &repository.keyring(),
        &["--source", "hello-*"],
    );
    add_upstream(
        &server,
        "security-only",
        &mirror.url(),
        &repository.keyring(),
        &["--pocket", "security"],
    );
    assert_eq!(sync(&server, "hello-only").1["updates"], 1);
    assert_eq!(sync(&server, "security-only").1["updates"], 0);
    assert_eq!(titles(&server), ["hello-upstream 1.0-1"]);
    server.stop();
}

#[test]
fn refused_releases_change_nothing() {
    let repository = repository();
    let mirror = repository.serve();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&data.path().join("data"), None, &[]);

    // A key that did not sign it.
    let stranger = Repository::new();
    add_upstream(
        &server,
        "wrong-key",
        &mirror.url(),
        &stranger.keyring(),
        &[],
    );
    refused(
        &server,
        "wrong-key",
        "WU_E_METADATA_BAD_SIGNATURE",
        "not signed by a key",
    );

    // An index that is not the one the Release lists.
    add_upstream(&server, "tests", &mirror.url(), &repository.keyring(), &[]);
    let packages = repository
        .root()
        .join("dists")
        .join(SUITE)
        .join("main/binary-amd64/Packages");
    let listed = std::fs::read_to_string(&packages).unwrap();
    std::fs::write(&packages, listed.replace("Version: 2.0", "Version: 2.1")).unwrap();
    refused(
        &server,
        "tests",
        "WU_E_METADATA_NO_VERIFICATION_DATA",
        "not the",
    );
    std::fs::write(&packages, listed).unwrap();

    let (status, first) = sync(&server, "tests");
    assert_eq!(status, 200, "{first}");
    let inrelease = repository
        .root()
        .join("dists")
        .join(SUITE)
        .join("InRelease");
    let good = std::fs::read(&inrelease).unwrap();

    // Tampered: one byte of the signed text changed.
    let text = String::from_utf8(good.clone()).unwrap();
    std::fs::write(
        &inrelease,
        text.replacen("Origin: OpenWUA-tests", "Origin: OpenWUA-tesTs", 1),
    )
    .unwrap();
    refused(
        &server,
        "tests",
        "WU_E_METADATA_BAD_SIGNATURE",
        "does not match",
    );
    std::fs::write(&inrelease, &good).unwrap();

    // Expired, yet properly signed.
    repository.resign(SUITE, |release| {
        with_field(release, "Valid-Until", "Thu, 01 Jan 2026 00:00:00 UTC")
    });
    refused(
        &server,
        "tests",
        "WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW",
        "valid until",
    );

    // Older than the Release synced before: a rollback.
    repository.resign(SUITE, |release| {
        let release = with_field(release, "Valid-Until", "Fri, 01 Jan 2100 00:00:00 UTC");
        with_field(&release, "Date", "Wed, 01 Jan 2025 00:00:00 UTC")
    });
    refused(
        &server,
        "tests",
        "WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW",
        "rollback",
    );
    server.stop();
}

/// A mirror in front of `root` whose `Packages` answers send half the
/// body and then hang until the test ends, so a sync is caught half-way.
struct StallingMirror {
    port: u16,
    stalled: Arc<AtomicBool>,
}

impl StallingMirror {
    fn start(root: PathBuf) -> StallingMirror {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let flag = stalled.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                let flag = flag.clone();
                std::thread::spawn(move || serve_stalling(&root, stream, &flag));
            }
        });
        StallingMirror { port, stalled }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

fn serve_stalling(root: &Path, stream: TcpStream, stalled: &AtomicBool) {
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    reader.read_line(&mut request).unwrap_or(0);
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let target = request.split_whitespace().nth(1).unwrap_or("/");
    let relative = target.trim_start_matches('/');
    let mut stream = &stream;
    let body = (!relative.contains("..")).then(|| std::fs::read(root.join(relative)).ok());
    let Some(Some(body)) = body else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let _ = stream.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    if relative.ends_with("Packages") {
        let _ = stream.write_all(&body[..body.len() / 2]);
        let _ = stream.flush();
        stalled.store(true, Ordering::SeqCst);
        // Holds the connection until the client is gone.
        let _ = reader.read_to_end(&mut Vec::new());
        return;
    }
    let _ = stream.write_all(&body);
    let _ = stream.shutdown(Shutdown::Write);
    let _ = reader.read_to_end(&mut Vec::new());
}

#[test]
fn a_server_killed_half_way_through_a_sync_published_nothing_and_syncs_again() {
    let repository = repository();
    let stalling = StallingMirror::start(repository.root());
    let mirror = repository.serve();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let server = Server::start(&data_dir, None, &[]);
    add_upstream(&server, "slow", &stalling.url(), &repository.keyring(), &[]);
    let version = server.catalog_version();

    let url = format!("{}/api/v1/upstreams/slow/sync", server.url);
    let token = server.token();
    let request = std::thread::spawn(move || common::http("POST", &url, Some(&token), &[], b"").0);
    let caught = wait_until(Instant::now() + Duration::from_secs(60), || {
        stalling.stalled.load(Ordering::SeqCst)
    });
    assert!(
        caught,
        "the sync never reached the index: {}",
        server.log_tail()
    );
    server.kill();
    assert_eq!(request.join().unwrap(), 0, "the killed server answered");

    let server = Server::start(&data_dir, None, &[]);
    assert_eq!(server.catalog_version(), version);
    assert_eq!(server.updates(), serde_json::json!([]));
    let listed = server.json(&["upstream", "list"]);
    assert!(listed[0]["lastSync"].is_null(), "{listed}");

    // The same upstream, from a mirror that answers: the sync completes.
    add_upstream(&server, "whole", &mirror.url(), &repository.keyring(), &[]);
    let (status, report) = sync(&server, "whole");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["added"], 2);
    server.stop();
}

/// The whole path: an upstream update approved on the server, its `.deb`
/// fetched on approval, and a real agent (in-process, on a sandboxed apt
/// and dpkg that has version 1.0-1 and no apt sources at all) installing
/// 1.1-1 through apt from the server's content.
/// A security update from the upstream, approved by an automatic rule at
/// the sync, is fetched on approval and installed by two agents through
/// apt from the server's content; the server's reports count both.
#[test]
fn a_security_update_approved_by_rule_is_installed_by_two_agents_through_apt_from_the_servers_content()
 {
    let mut repository = repository();
    repository.add("stable-security", &hello("1.1-1"));
    repository.publish();
    let mirror = repository.serve();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&data.path().join("data"), None, &[]);
    add_upstream(
        &server,
        "tests",
        &mirror.url(),
        &repository.keyring(),
        &["--suite", "stable-security"],
    );
    server.run_ok(&[
        "rules",
        "add",
        "Security",
        "--classification",
        "Security Updates",
        "--group",
        "All Computers",
    ]);
    assert_eq!(sync(&server, "tests").0, 200);
    let update = apt_id("hello-upstream", "1.1-1");
    assert_eq!(approved_groups(&server, &update), ["All Computers"]);
    let entry = repository.entry("stable-security", "hello-upstream", "1.1-1");
    let content = format!("/api/v1/content/{}", entry.sha256);
    assert!(
        wait_until(Instant::now() + Duration::from_secs(30), || {
            server.get(&content, &[]).0 == 200
        }),
        "not fetched: {}",
        server.log_tail()
    );
    let key = server.run_ok(&["key"]).trim().to_owned();
    for machine_id in [
        "33333333333333333333333333333333",
        "44444444444444444444444444444444",
    ] {
        install_through_apt(&server, &key, machine_id, &update);
    }
    assert!(
        wait_until(Instant::now() + Duration::from_secs(30), || {
            server.json(&["report", "updates", &update])[0]["installed"] == 2
        }),
        "{}",
        server.json(&["report", "updates", &update])
    );
    server.stop();
}

/// An agent with `hello-upstream` 1.0-1 in a sandboxed dpkg and no apt
/// sources of its own registers with `server`, and downloads and installs
/// `update` through apt from the server's content.
fn install_through_apt(server: &Server, key: &str, machine_id: &str, update: &str) {
    use openwua_agent::{Background, Config};
    use openwua_client::blocking::UpdateSession;
    use openwua_model::enums::OperationResultCode;
    use openwua_testkit::debrepo::AptRoot;

    let machine = AptRoot::new();
    let old = tempfile::tempdir().unwrap();
    machine.dpkg_install(&hello("1.0-1").build(old.path()));
    let state = tempfile::tempdir().unwrap();
    let machine_id_file = state.path().join("machine-id");
    std::fs::write(&machine_id_file, format!("{machine_id}\n")).unwrap();
    let mut config = Config {
        owner_is_admin: true,
        ..Config::under(state.path())
    };
    config.facts.machine_id = machine_id_file;
    config.facts.dpkg_admindir = machine.admindir();
    config.install.dpkg_instdir = Some(machine.instdir());
    config.install.dpkg_extra_args = machine.dpkg_extra_args();
    config.install.reboot_required_file = machine.reboot_required_file();
    config.install.server_apt_root = machine.apt_dir();
    let agent = Background::start(config).unwrap();
    let session = UpdateSession::connect(agent.socket()).unwrap();
    session
        .create_update_service_manager()
        .add_server_service(&server.url, key, None, None, true)
        .unwrap();
    let id: uuid::Uuid = update.parse().unwrap();
    let found = session.get_update(id).unwrap();
    assert!(!found.entry.state.is_installed, "{found:?}");

    let mut downloader = session.create_update_downloader();
    downloader.updates = vec![id];
    let downloaded = downloader.download().unwrap();
    let result = downloaded.result.as_ref().unwrap();
    assert_eq!(
        result.result_code,
        OperationResultCode::Succeeded,
        "{downloaded:?}"
    );
    let mut installer = session.create_update_installer();
    installer.updates = vec![id];
    let installed = installer.install().unwrap();
    let result = installed.result.as_ref().unwrap();
    assert_eq!(
        result.result_code,
        OperationResultCode::Succeeded,
        "{installed:?}"
    );
    assert_eq!(
        machine.status("hello-upstream"),
        "install ok installed 1.1-1"
    );
    assert!(session.get_update(id).unwrap().entry.state.is_installed);
}

/// The current revision of an update, as `GET /api/v1/updates/{id}` gives it.
fn current_update(server: &Server, id: &str) -> Value {
    let (status, body) = server.admin("GET", &format!("/api/v1/updates/{id}"), b"");
    assert_eq!(status, 200);
    let detail: Value = serde_json::from_slice(&body).unwrap();
    detail["current"]["update"].clone()
}

fn approved_groups(server: &Server, id: &str) -> Vec<String> {
    let (status, body) = server.admin("GET", &format!("/api/v1/updates/{id}/approvals"), b"");
    assert_eq!(status, 200);
    let approvals: Value = serde_json::from_slice(&body).unwrap();
    let mut groups: Vec<String> = approvals
        .as_array()
        .unwrap()
        .iter()
        .map(|approval| approval["group"].as_str().unwrap().to_owned())
        .collect();
    groups.sort();
    groups
}

/// A security update whose changelog says `urgency=high` and names a CVE:
/// nothing is known of it until its `.deb` is fetched on approval; then it
/// is published again rated Important with the CVE, a `--severity
/// important` rule approves it for another group, and later syncs (with
/// nothing changed, and with something else changed) keep both.
#[test]
fn a_fetched_security_updates_changelog_gives_its_cves_and_severity() {
    let mut repository = repository();
    let fixed = hello("1.1-1").file(
        "usr/share/doc/hello-upstream/changelog.Debian.gz",
        openwua_testkit::debrepo::changelog_gz(
            "hello-upstream",
            "1.1-1",
            "Fix CVE-2024-12345.",
            "1.0-1",
        ),
    );
    repository.add("stable-security", &fixed);
    repository.publish();
    let mirror = repository.serve();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&data.path().join("data"), None, &[]);
    add_upstream(
        &server,
        "tests",
        &mirror.url(),
        &repository.keyring(),
        &["--suite", "stable-security"],
    );
    server.run_ok(&["groups", "add", "Site"]);
    server.run_ok(&[
        "rules",
        "add",
        "Important security",
        "--classification",
        "Security Updates",
        "--severity",
        "important",
        "--group",
        "Site",
    ]);
    assert_eq!(sync(&server, "tests").0, 200);
    let update = apt_id("hello-upstream", "1.1-1");
    let before = current_update(&server, &update);
    assert!(before.get("msrcSeverity").is_none(), "{before}");
    assert!(before.get("cveIds").is_none(), "{before}");
    assert!(approved_groups(&server, &update).is_empty());

    server.run_ok(&["approve", &update, "--group", "All Computers"]);
    assert!(
        wait_until(Instant::now() + Duration::from_secs(30), || {
            current_update(&server, &update)["msrcSeverity"] == "Important"
        }),
        "not rated: {} {}",
        current_update(&server, &update),
        server.log_tail()
    );
    let rated = current_update(&server, &update);
    // Only the newest entry's CVEs (the older one names CVE-2001-0001).
    assert_eq!(rated["cveIds"], serde_json::json!(["CVE-2024-12345"]));
    let revision = rated["identity"]["revisionNumber"].clone();
    assert_ne!(revision, before["identity"]["revisionNumber"]);
    // The rule fired on the new revision.
    assert_eq!(approved_groups(&server, &update), ["All Computers", "Site"]);

    // Nothing changed upstream.
    let (status, report) = sync(&server, "tests");
    assert_eq!(status, 200, "{report}");
    assert_eq!(current_update(&server, &update), rated);
    // Something else changed: every update is mapped again, and this one
    // keeps what its changelog said (the same revision).
    repository.add(SUITE, &Deb::new("other-tool", "2.1").architecture("all"));
    repository.publish();
    let (status, report) = sync(&server, "tests");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["changed"], true, "{report}");
    assert_eq!(current_update(&server, &update), rated);
    assert_eq!(
        current_update(&server, &update)["identity"]["revisionNumber"],
        revision
    );
    server.stop();
}
