//! Installing updates of an apt service through a real `wua-agent` on a
//! real socket, from a signed repository on 127.0.0.1 into a sandboxed
//! apt and dpkg (`openwua_testkit::debrepo`): failures of one update among
//! others, dpkg's lock held by another program, an expired list, and the
//! agent killed while dpkg runs.

mod common;

use std::collections::HashMap;
use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{AgentProcess, error_name};
use openwua_testkit::debrepo::{AptRoot, Deb, Repository, Server, debconf_question_packages};
use openwua_testkit::wait_until;
use serde_json::{Value, json};

const INSTALL: &str = "org.openwua.Agent.Install";
const DOWNLOAD: &str = "org.openwua.Agent.Download";

/// A repository of `debs` (suite, package) on 127.0.0.1, a sandboxed apt
/// that has run `apt-get update` on it, `installed` in its dpkg database,
/// and an agent on that database with the sandbox registered as an apt
/// service.
struct Machine {
    _repository: Repository,
    _server: Server,
    root: AptRoot,
    agent: AgentProcess,
    service_id: String,
}

impl Machine {
    fn new(debs: &[(&str, Deb)], installed: &[Deb], install_lines: &str) -> Machine {
        let mut repository = Repository::new();
        let mut suites: Vec<&str> = Vec::new();
        for (suite, deb) in debs {
            repository.add(suite, deb);
            if !suites.contains(suite) {
                suites.push(suite);
            }
        }
        repository.publish();
        let server = repository.serve();
        let root = AptRoot::new();
        root.add_source(&server, &repository, &suites);
        root.update();
        let built = tempfile::tempdir().unwrap();
        for deb in installed {
            root.dpkg_install(&deb.build(built.path()));
        }
        let (admindir, instdir, extra) = (root.admindir(), root.instdir(), root.dpkg_extra_args());
        let install_lines = install_lines.to_owned();
        let agent = AgentProcess::start_with_config(move |_| {
            (
                format!(
                    "dpkg_instdir = {instdir:?}\ndpkg_extra_args = {extra:?}\n{install_lines}\n"
                ),
                format!("[facts]\ndpkg_admindir = {admindir:?}\n"),
            )
        });
        let added = agent
            .call(
                "org.openwua.Agent.AddAptService",
                json!({ "aptRoot": root.apt_dir(), "name": "Sandbox" }),
            )
            .unwrap();
        let service_id = added["service"]["serviceId"].as_str().unwrap().to_owned();
        Machine {
            _repository: repository,
            _server: server,
            root,
            agent,
            service_id,
        }
    }

    /// The update IDs of what a search offers, by title.
    fn offered(&self) -> HashMap<String, String> {
        let found = common::search(&self.agent, "IsInstalled=0", json!({})).unwrap();
        found["updates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                let update = &entry["update"];
                (
                    update["title"].as_str().unwrap().to_owned(),
                    update["identity"]["updateId"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn job(&self, method: &str, updates: &[&String]) -> Value {
        common::run_job(&self.agent, method, json!({ "updateIds": updates })).unwrap()
    }

    fn status_file(&self) -> Vec<u8> {
        std::fs::read(self.root.admindir().join("status")).unwrap()
    }

    /// The stanza of `package` in dpkg's status file, byte for byte.
    fn status_stanza(&self, package: &str) -> String {
        let status = String::from_utf8(self.status_file()).unwrap();
        status
            .split("\n\n")
            .find(|stanza| stanza.starts_with(&format!("Package: {package}\n")))
            .unwrap_or_default()
            .to_owned()
    }

    fn history(&self) -> Vec<Value> {
        self.agent
            .call(
                "org.openwua.Agent.QueryHistory",
                json!({ "start": 0, "count": 20 }),
            )
            .unwrap()["entries"]
            .as_array()
            .unwrap()
            .clone()
    }
}

/// The job's result for each update, by position: (resultCode, hresult,
/// the whole result for messages).
fn results(job: &Value) -> Vec<(String, String, String)> {
    job["result"]["updates"]
        .as_array()
        .unwrap_or_else(|| panic!("no per-update results: {job}"))
        .iter()
        .map(|update| {
            (
                update["resultCode"].as_str().unwrap().to_owned(),
                update["hresult"].as_str().unwrap().to_owned(),
                update.to_string(),
            )
        })
        .collect()
}

/// A dependency apt cannot satisfy fails that update alone, naming the
/// dependency, and leaves its package in dpkg's status byte for byte;
/// the other update of the same calls downloads and installs.
#[test]
fn a_missing_dependency_fails_that_update_alone() {
    let machine = Machine::new(
        &[
            ("owtest", Deb::new("owtest-needy", "1.0")),
            (
                "owtest-security",
                Deb::new("owtest-needy", "2.0").field("Depends", "owtest-missing (>= 2)"),
            ),
            ("owtest", Deb::new("owtest-fine", "1.0")),
            ("owtest-security", Deb::new("owtest-fine", "2.0")),
        ],
        &[
            Deb::new("owtest-needy", "1.0"),
            Deb::new("owtest-fine", "1.0"),
        ],
        "",
    );
    let offered = machine.offered();
    let (needy, fine) = (&offered["owtest-needy 2.0"], &offered["owtest-fine 2.0"]);
    let before = machine.status_stanza("owtest-needy");
    assert!(!before.is_empty());
    // apt resolves dependencies when it downloads: the update fails
    // there, naming what is missing; the other one is fetched.
    let downloaded = machine.job(DOWNLOAD, &[needy, fine]);
    let fetched = results(&downloaded);
    assert_eq!(fetched.len(), 2, "{downloaded}");
    assert_eq!(fetched[0].0, "Failed", "{downloaded}");
    assert_eq!(
        fetched[0].1, "0x80240017",
        "WU_E_NOT_APPLICABLE: {downloaded}"
    );
    assert!(
        fetched[0].2.contains("owtest-missing (>= 2)"),
        "names the dependency: {downloaded}"
    );
    assert_eq!(fetched[1].0, "Succeeded", "{downloaded}");

    let installed = machine.job(INSTALL, &[needy, fine]);
    let results = results(&installed);
    assert_eq!(results.len(), 2, "{installed}");
    assert_eq!(results[0].0, "Failed", "{installed}");
    assert_eq!(results[1].0, "Succeeded", "{installed}");
    assert_eq!(machine.status_stanza("owtest-needy"), before);
    assert_eq!(
        machine.root.status("owtest-fine"),
        "install ok installed 2.0"
    );
}

/// Another program holds dpkg's frontend lock (an fcntl lock, as apt and
/// dpkg take it): past `apt_lock_wait_seconds` the install fails busy,
/// naming the holder's pid, and dpkg's status is unchanged.
#[test]
fn dpkgs_lock_held_by_another_program_fails_the_install_naming_it() {
    let machine = Machine::new(
        &[
            ("owtest", Deb::new("owtest-fine", "1.0")),
            ("owtest-security", Deb::new("owtest-fine", "2.0")),
        ],
        &[Deb::new("owtest-fine", "1.0")],
        "apt_lock_wait_seconds = 1",
    );
    let offered = machine.offered();
    let fine = &offered["owtest-fine 2.0"];
    machine.job(DOWNLOAD, &[fine]);
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import fcntl, sys\n\
             f = open(sys.argv[1], 'w')\n\
             fcntl.lockf(f, fcntl.LOCK_EX)\n\
             print('locked', flush=True)\n\
             sys.stdin.read()",
        ])
        .arg(machine.root.admindir().join("lock-frontend"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "locked\n");
    let before = machine.status_file();

    let installed = machine.job(INSTALL, &[fine]);
    drop(holder.stdin.take());
    holder.wait().unwrap();
    let results = results(&installed);
    assert_eq!(results[0].0, "Failed", "{installed}");
    assert_eq!(
        results[0].1, "0x80240009",
        "WU_E_OPERATIONINPROGRESS: {installed}"
    );
    assert!(
        results[0].2.contains(&format!("process {}", holder.id())),
        "names the holder: {installed}"
    );
    assert_eq!(machine.status_file(), before);
    assert_eq!(
        machine.root.status("owtest-fine"),
        "install ok installed 1.0"
    );
}

/// A list whose Release is past its `Valid-Until` (apt verified it while
/// it was valid; time passed) is refused, naming the file, and the store
/// is unchanged.
#[test]
fn an_expired_list_is_refused_and_changes_nothing() {
    let machine = Machine::new(
        &[
            ("owtest", Deb::new("owtest-fine", "1.0")),
            ("owtest-security", Deb::new("owtest-fine", "2.0")),
        ],
        &[Deb::new("owtest-fine", "1.0")],
        "",
    );
    let before = store_files(&machine.agent);
    let lists = machine.root.apt_dir().join("var/lib/apt/lists");
    let mut expired: Option<PathBuf> = None;
    for entry in std::fs::read_dir(&lists).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with("owtest-security_InRelease") {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let rewritten: Vec<String> = text
                .lines()
                .map(|line| {
                    if line.starts_with("Valid-Until:") {
                        "Valid-Until: Mon, 01 Jan 2024 00:00:00 UTC".to_owned()
                    } else {
                        line.to_owned()
                    }
                })
                .collect();
            assert_ne!(
                rewritten.join("\n") + "\n",
                text,
                "no Valid-Until in {name}"
            );
            std::fs::write(entry.path(), rewritten.join("\n") + "\n").unwrap();
            expired = Some(entry.path());
        }
    }
    let expired = expired.expect("the security suite's InRelease");

    let refused = machine
        .agent
        .call(
            "org.openwua.Agent.Sync",
            json!({ "serviceId": machine.service_id }),
        )
        .unwrap_err();
    assert_eq!(
        error_name(&refused),
        "WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW",
        "{refused}"
    );
    let file_name = expired.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        refused["parameters"]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(&file_name),
        "names {file_name}: {refused}"
    );
    assert_eq!(store_files(&machine.agent), before);
}

/// The agent killed while dpkg runs a package's postinst: the restarted
/// agent stops what was left, records the install as cut short, finishes
/// dpkg's configuration (`dpkg --configure -a`) and says so in
/// `GetInstallerState`'s `dpkgRepair`.
#[test]
fn an_agent_killed_during_an_apt_install_repairs_dpkg_at_start() {
    // The first configuration blocks on a fifo nobody writes; the
    // configuration the repair runs passes.
    let machine = Machine::new(
        &[
            ("owtest", Deb::new("owtest-slow", "1.0")),
            (
                "owtest-security",
                Deb::new("owtest-slow", "2.0").script(
                    "postinst",
                    "if [ ! -e \"$DPKG_ROOT/once\" ]; then touch \"$DPKG_ROOT/once\"; \
                     read line < \"$DPKG_ROOT/fifo\"; fi",
                ),
            ),
        ],
        &[Deb::new("owtest-slow", "1.0")],
        "",
    );
    let mut machine = machine;
    let fifo = machine.root.instdir().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let offered = machine.offered();
    let slow = offered["owtest-slow 2.0"].clone();
    machine.job(DOWNLOAD, &[&slow]);
    let (_client, _job) =
        common::start_job(&machine.agent, INSTALL, json!({ "updateIds": [slow] }));
    let once = machine.root.instdir().join("once");
    assert!(wait_until(Instant::now() + Duration::from_secs(60), || {
        once.exists()
    }));
    assert_eq!(
        machine.root.status("owtest-slow"),
        "install ok half-configured 2.0"
    );

    machine.agent.kill_and_restart();

    let history = machine.history();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["title"], "owtest-slow 2.0");
    assert_eq!(history[0]["resultCode"], "Aborted");
    assert_eq!(history[0]["hresult"], "0x8024001E"); // WU_E_SERVICE_STOP
    assert_eq!(
        machine.root.status("owtest-slow"),
        "install ok installed 2.0"
    );
    let state = machine
        .agent
        .call("org.openwua.Agent.GetInstallerState", json!({}))
        .unwrap();
    let repair = &state["state"]["dpkgRepair"];
    assert_eq!(repair["hresult"], "0x00000000", "{state}");
    assert!(
        repair["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("owtest-slow (half-configured)"),
        "{state}"
    );
}

/// A package with debconf templates whose relations do not name debconf
/// (so its update does not have CanRequestUserInput) installs quietly
/// through the agent: debconf runs non-interactively on the sandbox's
/// database (found through the `DPKG_ROOT` dpkg gives the scripts) and
/// takes the template's default.
#[test]
fn a_quiet_install_of_a_debconf_package_takes_its_default_in_the_sandbox() {
    if !std::path::Path::new("/usr/share/debconf/confmodule").exists() {
        return openwua_testkit::skip(
            "a_quiet_install_of_a_debconf_package_takes_its_default_in_the_sandbox",
            "debconf is not installed",
        );
    }
    let name = "owtest-conf";
    let machine = Machine::new(&debconf_question_packages(), &[Deb::new(name, "1.0")], "");
    let offered = machine.offered();
    let update = &offered["owtest-conf 2.0"];
    machine.job(DOWNLOAD, &[update]);
    let installed = machine.job(INSTALL, &[update]);
    assert_eq!(results(&installed)[0].0, "Succeeded", "{installed}");
    assert_eq!(
        std::fs::read_to_string(machine.root.instdir().join("answer")).unwrap(),
        "home"
    );
    assert_eq!(machine.root.status(name), "install ok installed 2.0");
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
