//! The machine's own Debian repositories as an update service, through a
//! real `wua-agent` on a real socket: registering, syncing (and `online`:
//! a real `apt-get update`), refusals that change nothing, and the host's
//! real lists read-only.
//!
//! Installs from a signed repository on 127.0.0.1
//! (`openwua_testkit::debrepo`) are here and in `apt_install.rs`; a
//! secondary logon refused the debconf update is in the cli's
//! `sessions.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{AgentProcess, error_name};
use serde_json::{Value, json};

/// An apt root of a test's own: apt's directories, its configuration read
/// through `etc/apt/apt.conf`, and an empty dpkg database beside it.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = Sandbox { dir };
        let apt = sandbox.apt_root();
        for path in [
            "etc/apt/sources.list.d",
            "etc/apt/apt.conf.d",
            "etc/apt/preferences.d",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
        ] {
            std::fs::create_dir_all(apt.join(path)).unwrap();
        }
        std::fs::create_dir_all(sandbox.admindir().join("info")).unwrap();
        std::fs::write(sandbox.admindir().join("status"), "").unwrap();
        let mut conf = format!("Dir \"{}/\";\n", apt.display());
        if common::is_root() {
            // Root's apt would fetch as _apt, who cannot enter a test's
            // temporary directory.
            conf.push_str("APT::Sandbox::User \"root\";\n");
        }
        std::fs::write(apt.join("etc/apt/apt.conf"), conf).unwrap();
        sandbox
    }

    fn apt_root(&self) -> PathBuf {
        self.dir.path().join("apt")
    }

    fn admindir(&self) -> PathBuf {
        self.dir.path().join("dpkg")
    }

    /// An agent whose dpkg database is the sandbox's.
    fn agent(&self) -> AgentProcess {
        agent_on(&self.admindir())
    }
}

fn agent_on(admindir: &Path) -> AgentProcess {
    let admindir = admindir.to_owned();
    AgentProcess::start_with_config(move |_| {
        (
            String::new(),
            format!("[facts]\ndpkg_admindir = {admindir:?}\n"),
        )
    })
}

fn add_apt(agent: &AgentProcess, root: &Path) -> Result<Value, Value> {
    agent.call(
        "org.openwua.Agent.AddAptService",
        json!({ "aptRoot": root, "name": "Sandbox" }),
    )
}

fn services(agent: &AgentProcess) -> Value {
    agent
        .call("org.openwua.Agent.ListServices", json!({}))
        .unwrap()["services"]
        .clone()
}

#[test]
fn an_apt_service_is_registered_with_its_kind_and_root_and_syncs_again() {
    let sandbox = Sandbox::new();
    let agent = sandbox.agent();
    let added = add_apt(&agent, &sandbox.apt_root()).unwrap();
    let service = &added["service"];
    assert_eq!(service["kind"], "apt", "{added}");
    assert_eq!(service["aptRoot"], sandbox.apt_root().display().to_string());
    assert_eq!(service["isScanPackageService"], false);
    assert_eq!(
        service["isDefault"], true,
        "the first service is the default"
    );
    assert_eq!(added["sync"]["version"], 1);
    let id = service["serviceId"].as_str().unwrap().to_owned();

    let listed = services(&agent);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["kind"], "apt");

    // The same root is the same service.
    let again = add_apt(&agent, &sandbox.apt_root()).unwrap_err();
    assert_eq!(error_name(&again), "WU_E_DS_INVALIDOPERATION", "{again}");

    // Nothing changed: the catalog version stays.
    let synced = agent
        .call("org.openwua.Agent.Sync", json!({ "serviceId": id }))
        .unwrap();
    assert_eq!(synced["progress"]["result"]["version"], 1, "{synced}");
    assert_eq!(synced["progress"]["result"]["previousVersion"], 1);

    // Search finds the service (with nothing to offer on an empty root).
    let found = common::search(&agent, "IsInstalled=0", json!({})).unwrap();
    assert_eq!(found["updates"], json!([]), "{found}");

    agent
        .call(
            "org.openwua.Agent.RemoveService",
            json!({ "serviceId": id }),
        )
        .unwrap();
    assert_eq!(services(&agent), json!([]));
}

#[test]
fn a_relative_or_oversized_apt_root_is_refused_and_registers_nothing() {
    let sandbox = Sandbox::new();
    let agent = sandbox.agent();
    let relative = agent
        .call(
            "org.openwua.Agent.AddAptService",
            json!({ "aptRoot": "apt" }),
        )
        .unwrap_err();
    assert_eq!(error_name(&relative), "E_INVALIDARG", "{relative}");
    let long = format!("/{}", "a".repeat(5000));
    let oversized = agent
        .call(
            "org.openwua.Agent.AddAptService",
            json!({ "aptRoot": long }),
        )
        .unwrap_err();
    assert_eq!(error_name(&oversized), "E_INVALIDARG", "{oversized}");
    let unknown = agent
        .call(
            "org.openwua.Agent.AddAptService",
            json!({ "aptRoot": "/", "url": "x" }),
        )
        .unwrap_err();
    assert_eq!(
        unknown["error"], "org.varlink.service.InvalidParameter",
        "{unknown}"
    );
    assert_eq!(services(&agent), json!([]));
}

#[test]
fn an_online_sync_whose_apt_get_update_fails_is_a_network_error_and_changes_nothing() {
    if Command::new("apt-get").arg("--version").output().is_err() {
        return openwua_testkit::skip(
            "an_online_sync_whose_apt_get_update_fails_is_a_network_error_and_changes_nothing",
            "apt-get is not installed",
        );
    }
    let sandbox = Sandbox::new();
    let agent = sandbox.agent();
    let added = add_apt(&agent, &sandbox.apt_root()).unwrap();
    let id = added["service"]["serviceId"].as_str().unwrap().to_owned();
    let before = services(&agent);
    // A port nobody listens on: apt cannot fetch its lists.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    std::fs::write(
        sandbox
            .apt_root()
            .join("etc/apt/sources.list.d/closed.list"),
        format!("deb [trusted=yes] http://127.0.0.1:{port}/debian stable main\n"),
    )
    .unwrap();
    let failed = agent
        .call(
            "org.openwua.Agent.Sync",
            json!({ "serviceId": id, "online": true }),
        )
        .unwrap_err();
    assert_eq!(error_name(&failed), "WU_E_PT_UNEXPECTED", "{failed}");
    let message = failed["parameters"]["detail"].as_str().unwrap_or_default();
    assert!(message.contains("apt-get update failed"), "{failed}");
    assert!(message.contains("127.0.0.1"), "apt's own words: {failed}");
    assert_eq!(services(&agent), before, "a failed sync changes nothing");
}

#[test]
fn uninstall_of_an_unknown_update_is_refused_before_any_job() {
    // The call-level check for apt updates sits beside the unknown-update
    // check; an update no service offers is refused the same way.
    let sandbox = Sandbox::new();
    let agent = sandbox.agent();
    add_apt(&agent, &sandbox.apt_root()).unwrap();
    let refused = agent
        .call(
            "org.openwua.Agent.Uninstall",
            json!({ "updateIds": ["6e1b4c1e-0000-4000-8000-0000000000ff"] }),
        )
        .unwrap_err();
    assert_eq!(error_name(&refused), "WU_E_DS_NODATA", "{refused}");
}

/// The host's real lists and dpkg database, read-only: a search with the
/// default criteria lists exactly the source packages `apt list
/// --upgradable` names.
#[test]
fn the_hosts_own_lists_offer_what_apt_list_upgradable_offers() {
    let lists = Path::new("/var/lib/apt/lists");
    let has_lists = std::fs::read_dir(lists).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().ends_with("Release"))
    });
    if !has_lists {
        return openwua_testkit::skip(
            "the_hosts_own_lists_offer_what_apt_list_upgradable_offers",
            "the host has no apt lists",
        );
    }
    let agent = agent_on(Path::new("/var/lib/dpkg"));
    let added = add_apt(&agent, Path::new("/")).unwrap();
    let found = common::search(&agent, "IsInstalled=0 and IsHidden=0", json!({})).unwrap();
    let mut offered: Vec<String> = found["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let title = entry["update"]["title"].as_str().unwrap();
            title.split(' ').next().unwrap().to_owned()
        })
        .collect();
    offered.sort();
    offered.dedup();
    let mut upgradable = upgradable_sources();
    upgradable.sort();
    upgradable.dedup();
    assert_eq!(offered, upgradable, "sync: {}", added["sync"]);
}

/// The source packages of `apt list --upgradable`, from dpkg-query's
/// `${source:Package}` of each upgradable binary.
fn upgradable_sources() -> Vec<String> {
    let output = Command::new("apt")
        .args(["list", "--upgradable"])
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    let binaries: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("[upgradable from"))
        .filter_map(|line| line.split('/').next().map(str::to_owned))
        .collect();
    if binaries.is_empty() {
        return Vec::new();
    }
    let output = Command::new("dpkg-query")
        .args(["-W", "-f", "${source:Package}\n"])
        .args(&binaries)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A signed repository on 127.0.0.1, a sandboxed apt root and dpkg
/// database with `hello 1.0` installed, and an agent on that database.
struct Machine {
    repository: openwua_testkit::debrepo::Repository,
    _server: openwua_testkit::debrepo::Server,
    root: openwua_testkit::debrepo::AptRoot,
    agent: AgentProcess,
}

impl Machine {
    fn new() -> Machine {
        use openwua_testkit::debrepo::{AptRoot, Deb, Repository};
        let mut repository = Repository::new();
        let installed = Deb::new("hello", "1.0");
        repository.add("stable", &Deb::new("hello", "1.1"));
        repository.add("stable-security", &Deb::new("hello", "1.2"));
        repository.publish();
        let server = repository.serve();
        let root = AptRoot::new();
        root.add_source(&server, &repository, &["stable", "stable-security"]);
        root.update();
        let built = installed.build(root.path());
        root.dpkg_install(&built);
        let (admindir, instdir, extra) = (root.admindir(), root.instdir(), root.dpkg_extra_args());
        let agent = AgentProcess::start_with_config(move |_| {
            (
                format!("dpkg_instdir = {instdir:?}\ndpkg_extra_args = {extra:?}\n"),
                format!("[facts]\ndpkg_admindir = {admindir:?}\n"),
            )
        });
        Machine {
            repository,
            _server: server,
            root,
            agent,
        }
    }
}

#[test]
fn an_apt_update_is_found_downloaded_installed_and_recorded_and_cannot_be_uninstalled() {
    let machine = Machine::new();
    let _ = &machine.repository;
    let agent = &machine.agent;
    add_apt(agent, &machine.root.apt_dir()).unwrap();
    let found = common::search(agent, "IsInstalled=0", json!({})).unwrap();
    // 1.2 supersedes 1.1: searches see the newest only.
    assert_eq!(common::titles(&found), ["hello 1.2"], "{found}");
    let update = found["updates"][0]["update"]["identity"]["updateId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(found["updates"][0]["state"]["isDownloaded"], false);

    let downloaded = common::run_job(
        agent,
        "org.openwua.Agent.Download",
        json!({ "updateIds": [update] }),
    )
    .unwrap();
    assert_eq!(
        downloaded["result"]["resultCode"], "Succeeded",
        "{downloaded}"
    );
    let found = common::search(agent, "IsInstalled=0", json!({})).unwrap();
    assert_eq!(
        found["updates"][0]["state"]["isDownloaded"], true,
        "{found}"
    );

    let installed = common::run_job(
        agent,
        "org.openwua.Agent.Install",
        json!({ "updateIds": [update] }),
    )
    .unwrap();
    assert_eq!(
        installed["result"]["resultCode"], "Succeeded",
        "{installed}"
    );
    assert!(machine.root.status("hello").ends_with(" 1.2"));
    let history = agent
        .call(
            "org.openwua.Agent.QueryHistory",
            json!({ "start": 0, "count": 10 }),
        )
        .unwrap();
    assert_eq!(history["entries"][0]["title"], "hello 1.2", "{history}");
    assert_eq!(history["entries"][0]["resultCode"], "Succeeded");
    assert_eq!(
        common::search(agent, "IsInstalled=0", json!({})).unwrap()["updates"],
        json!([])
    );

    let refused = agent
        .call(
            "org.openwua.Agent.Uninstall",
            json!({ "updateIds": [update] }),
        )
        .unwrap_err();
    assert_eq!(
        error_name(&refused),
        "WU_E_UH_DOESNOTSUPPORTACTION",
        "{refused}"
    );
}

#[test]
fn an_install_made_outside_openwua_shows_after_the_next_sync() {
    let machine = Machine::new();
    let agent = &machine.agent;
    let added = add_apt(agent, &machine.root.apt_dir()).unwrap();
    let id = added["service"]["serviceId"].as_str().unwrap().to_owned();
    assert_eq!(
        common::titles(&common::search(agent, "IsInstalled=0", json!({})).unwrap()),
        ["hello 1.2"]
    );
    let output = machine
        .root
        .apt_get()
        .args(["install", "-y", "-q", "hello=1.2"])
        .args([
            "-o",
            &format!(
                "DPkg::Options::=--admindir={}",
                machine.root.admindir().display()
            ),
            "-o",
            &format!(
                "DPkg::Options::=--instdir={}",
                machine.root.instdir().display()
            ),
        ])
        .args(
            machine
                .root
                .dpkg_extra_args()
                .iter()
                .flat_map(|arg| ["-o".to_owned(), format!("DPkg::Options::={arg}")]),
        )
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    agent
        .call("org.openwua.Agent.Sync", json!({ "serviceId": id }))
        .unwrap();
    let installed = common::search(agent, "IsInstalled=1", json!({})).unwrap();
    assert!(
        common::titles(&installed).contains(&"hello 1.2".to_owned()),
        "{installed}"
    );
}

#[test]
fn a_list_whose_release_is_gone_is_refused_and_changes_nothing() {
    let machine = Machine::new();
    let agent = &machine.agent;
    let added = add_apt(agent, &machine.root.apt_dir()).unwrap();
    let id = added["service"]["serviceId"].as_str().unwrap().to_owned();
    let before = store_files(agent);
    let lists = machine.root.apt_dir().join("var/lib/apt/lists");
    for entry in std::fs::read_dir(&lists).unwrap().flatten() {
        if entry.file_name().to_string_lossy().ends_with("InRelease") {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    let refused = agent
        .call("org.openwua.Agent.Sync", json!({ "serviceId": id }))
        .unwrap_err();
    assert_eq!(
        error_name(&refused),
        "WU_E_METADATA_NO_VERIFICATION_DATA",
        "{refused}"
    );
    assert!(
        refused["parameters"]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("Packages"),
        "names the list: {refused}"
    );
    assert_eq!(store_files(agent), before);
}

/// The store's files (database and write-ahead log), for byte-for-byte
/// comparisons.
fn store_files(agent: &AgentProcess) -> Vec<Option<Vec<u8>>> {
    let store = agent.store();
    ["", "-wal"]
        .iter()
        .map(|suffix| std::fs::read(format!("{}{suffix}", store.display())).ok())
        .collect()
}
