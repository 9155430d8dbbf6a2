//! The apt handler against a real signed repository served on 127.0.0.1
//! and a real apt and dpkg in a sandbox of the test's own
//! (`openwua_testkit::debrepo`): as an ordinary user or as root, never the
//! machine's apt lists or dpkg database.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::handler_fixture::Fixture;
use openwua_catalog::revision::{AptPackage, Handler};
use openwua_installer::handlers::apt::{
    self, AptDownload, cached_deb, changelog_cves, deb_has_templates, is_downloaded,
    packages_on_machine, repair_interrupted,
};
use openwua_installer::handlers::{AptSettings, HandlerOutcome, Outcome};
use openwua_installer::prompts::{PromptStream, Prompter};
use openwua_model::enums::UpdateOperation::{Installation, Uninstallation};
use openwua_model::hresult::{
    S_OK, WU_E_NOT_APPLICABLE, WU_E_OPERATIONINPROGRESS, WU_E_UH_DOESNOTSUPPORTACTION,
};
use openwua_model::prompt::{PromptEvent, QuestionKind};
use openwua_testkit::debrepo::{
    AptRoot, Deb, Repository, Server, changelog_gz, debconf_question_packages,
};
use openwua_testkit::{skip, wait_until};

/// A repository, its server, a sandboxed apt that has run `apt-get
/// update`, and a handler fixture pointed at them.
struct World {
    repo: Repository,
    _server: Server,
    root: AptRoot,
    fixture: Fixture,
}

impl World {
    /// Publishes `debs` (suite, package) and points a fresh sandbox at
    /// every suite.
    fn new(debs: Vec<(&str, Deb)>, quiet: bool) -> World {
        let mut repo = Repository::new();
        let mut suites: Vec<&str> = Vec::new();
        for (suite, deb) in &debs {
            repo.add(suite, deb);
            if !suites.contains(suite) {
                suites.push(suite);
            }
        }
        repo.publish();
        let server = repo.serve();
        let root = AptRoot::new();
        root.add_source(&server, &repo, &suites);
        root.update();
        let mut fixture = if quiet {
            Fixture::new()
        } else {
            Fixture::interactive()
        };
        fixture.dpkg.admindir = root.admindir();
        fixture.dpkg.instdir = Some(root.instdir());
        fixture.dpkg.extra_args = root.dpkg_extra_args();
        fixture.dpkg.reboot_required_file = root.reboot_required_file();
        fixture.apt = AptSettings {
            root: root.apt_dir(),
            lock_wait: Duration::from_secs(30),
            ..AptSettings::default()
        };
        World {
            repo,
            _server: server,
            root,
            fixture,
        }
    }

    /// The machine has `deb` installed (straight from dpkg).
    fn preinstall(&self, deb: &Deb) {
        let dir = tempfile::tempdir().unwrap();
        self.root.dpkg_install(&deb.build(dir.path()));
    }

    /// The catalog's description of `name` at `version` in `suite`.
    fn package(&self, suite: &str, name: &str, version: &str) -> AptPackage {
        let entry = self.repo.entry(suite, name, version);
        AptPackage {
            name: entry.name,
            architecture: entry.architecture,
            version: entry.version,
            size: entry.size,
            sha256: entry.sha256.parse().unwrap(),
            uses_debconf: false,
        }
    }

    fn install(&self, packages: Vec<AptPackage>) -> HandlerOutcome {
        self.fixture.run(
            &Handler::Apt {
                packages,
                suites: Vec::new(),
            },
            Installation,
        )
    }

    fn status_file(&self) -> Vec<u8> {
        std::fs::read(self.root.admindir().join("status")).unwrap()
    }
}

fn assert_outcome(world: &World, outcome: &HandlerOutcome, expected: Outcome) {
    assert_eq!(
        outcome.outcome,
        expected,
        "{outcome:?}\n{}",
        world.fixture.log()
    );
}

/// Version 1 of source `owtest-lib` in `owtest`, version 2 in
/// `owtest-security`, two binaries each; version 2 of `owtest-lib1`
/// carries a changelog naming a CVE.
fn owtest_lib() -> Vec<(&'static str, Deb)> {
    let binary = |name: &str, version: &str| Deb::new(name, version).field("Source", "owtest-lib");
    vec![
        ("owtest", binary("owtest-lib1", "1.0-1")),
        ("owtest", binary("owtest-lib-tools", "1.0-1")),
        (
            "owtest-security",
            binary("owtest-lib1", "1:2.0-1").file(
                "usr/share/doc/owtest-lib1/changelog.Debian.gz",
                changelog_gz("owtest-lib", "1:2.0-1", "Fix CVE-2024-12345.", "1.0-1"),
            ),
        ),
        ("owtest-security", binary("owtest-lib-tools", "1:2.0-1")),
    ]
}

fn security_update(world: &World) -> Vec<AptPackage> {
    vec![
        world.package("owtest-security", "owtest-lib1", "1:2.0-1"),
        world.package("owtest-security", "owtest-lib-tools", "1:2.0-1"),
    ]
}

/// Only the binary the machine has is upgraded; the other stays absent.
#[test]
fn installs_the_new_version_of_only_the_binaries_the_machine_has() {
    let world = World::new(owtest_lib(), true);
    world.preinstall(&Deb::new("owtest-lib1", "1.0-1").field("Source", "owtest-lib"));
    let update = security_update(&world);
    let chosen = packages_on_machine(&world.fixture.dpkg, &update).unwrap();
    assert_eq!(chosen, update[..1]);

    let outcome = world.install(update.clone());
    assert_outcome(&world, &outcome, Outcome::Succeeded);
    assert_eq!(outcome.hresult, S_OK);
    assert_eq!(
        world.root.status("owtest-lib1"),
        "install ok installed 1:2.0-1"
    );
    assert_eq!(world.root.status("owtest-lib-tools"), "");
    // Installed: nothing left to do, nothing to download.
    assert!(
        packages_on_machine(&world.fixture.dpkg, &update)
            .unwrap()
            .is_empty()
    );
    assert!(is_downloaded(
        &world.fixture.apt,
        &world.fixture.dpkg,
        &update
    ));
}

/// dpkg's `pmstatus:` percentages reach the context's progress as apt
/// runs, rising, and a success ends at 100.
#[test]
fn an_install_reports_dpkgs_progress() {
    let mut world = World::new(owtest_lib(), true);
    world.preinstall(&Deb::new("owtest-lib1", "1.0-1").field("Source", "owtest-lib"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&seen);
    world.fixture.progress = Some(Box::new(move |percent| sink.lock().unwrap().push(percent)));

    let outcome = world.install(security_update(&world));
    assert_outcome(&world, &outcome, Outcome::Succeeded);
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 3, "too few progress reports: {seen:?}");
    assert!(seen.windows(2).all(|pair| pair[0] < pair[1]), "{seen:?}");
    assert!(seen[0] < 50, "{seen:?}");
    assert_eq!(seen.last(), Some(&100), "{seen:?}");
}

/// Download-only fills apt's cache with the exact `.deb`s, progress is
/// reported in bytes, and the cache check notices a corrupted file.
#[test]
fn downloads_into_apts_cache_and_checks_what_is_there() {
    let world = World::new(owtest_lib(), true);
    world.preinstall(&Deb::new("owtest-lib1", "1.0-1").field("Source", "owtest-lib"));
    let update = security_update(&world);
    let (apt, dpkg) = (&world.fixture.apt, &world.fixture.dpkg);
    assert!(!is_downloaded(apt, dpkg, &update));

    let mut seen = Vec::new();
    let abort = AtomicBool::new(false);
    let outcome = apt::download(
        &AptDownload {
            apt,
            dpkg,
            packages: &update,
            log_path: &world.fixture.log,
            abort: &abort,
        },
        &mut |done, total| seen.push((done, total)),
    );
    assert_outcome(&world, &outcome, Outcome::Succeeded);
    let total = update[0].size;
    assert_eq!(seen.first(), Some(&(0, total)), "{seen:?}");
    assert_eq!(seen.last(), Some(&(total, total)), "{seen:?}");
    assert!(
        seen.windows(2).all(|pair| pair[0].0 <= pair[1].0),
        "{seen:?}"
    );
    assert!(is_downloaded(apt, dpkg, &update));
    // Only what the machine has was fetched; nothing was installed.
    assert!(!cached_deb(apt, &update[1]).exists());
    assert_eq!(
        world.root.status("owtest-lib1"),
        "install ok installed 1.0-1"
    );

    // What wua show reads from the downloaded .deb.
    let deb = cached_deb(apt, &update[0]);
    assert_eq!(changelog_cves(&deb), ["CVE-2024-12345"]);
    assert!(!deb_has_templates(&deb));

    let mut bytes = std::fs::read(&deb).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&deb, bytes).unwrap();
    assert!(!is_downloaded(apt, dpkg, &update));
}

/// debconf's passthrough needs Text::Iconv; the machine's debconf is used
/// only for its programs (the database is the sandbox's).
fn debconf_missing(test: &str) -> bool {
    if !Path::new("/usr/share/debconf/confmodule").exists() {
        skip(test, "debconf is not installed");
        return true;
    }
    let iconv = Command::new("perl").args(["-MText::Iconv", "-e1"]).status();
    if !iconv.is_ok_and(|status| status.success()) {
        skip(
            test,
            "debconf's passthrough frontend needs Text::Iconv (apt-get install libtext-iconv-perl)",
        );
        return true;
    }
    false
}

/// A quiet install never asks: debconf takes the template's default.
#[test]
fn a_quiet_install_takes_debconfs_defaults() {
    if debconf_missing("a_quiet_install_takes_debconfs_defaults") {
        return;
    }
    let world = World::new(debconf_question_packages(), true);
    world.preinstall(&Deb::new("owtest-conf", "1.0"));
    let package = world.package("owtest-security", "owtest-conf", "2.0");
    let outcome = world.install(vec![package.clone()]);
    assert_outcome(&world, &outcome, Outcome::Succeeded);
    assert_eq!(
        std::fs::read_to_string(world.root.instdir().join("answer")).unwrap(),
        "home"
    );
    assert!(deb_has_templates(&cached_deb(&world.fixture.apt, &package)));
}

/// An interactive install: the debconf question reaches the prompter and
/// its answer reaches the postinst.
#[test]
fn an_interactive_install_asks_debconfs_question_through_the_prompter() {
    if debconf_missing("an_interactive_install_asks_debconfs_question_through_the_prompter") {
        return;
    }
    let world = World::new(debconf_question_packages(), false);
    world.preinstall(&Deb::new("owtest-conf", "1.0"));
    let package = world.package("owtest-security", "owtest-conf", "2.0");

    let (prompter, stream) = Prompter::new(Duration::from_secs(60));
    let questions = Arc::new(Mutex::new(Vec::new()));
    let client = answer_every_question(stream, "pro", questions.clone());
    let outcome = world.fixture.install(
        &Handler::Apt {
            packages: vec![package],
            suites: Vec::new(),
        },
        Some(&prompter),
    );
    drop(prompter);
    client.join().unwrap();
    assert_outcome(&world, &outcome, Outcome::Succeeded);
    let questions = questions.lock().unwrap();
    assert_eq!(questions.len(), 1, "{}", world.fixture.log());
    assert_eq!(questions[0].0, QuestionKind::Choice);
    assert!(
        questions[0].1.starts_with("Which edition?"),
        "{questions:?}"
    );
    assert_eq!(
        std::fs::read_to_string(world.root.instdir().join("answer")).unwrap(),
        "pro"
    );
}

/// The connection's side: answers each question with `answer`, records
/// its kind and text.
fn answer_every_question(
    mut stream: PromptStream,
    answer: &'static str,
    questions: Arc<Mutex<Vec<(QuestionKind, String)>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        while let Some(event) = runtime.block_on(stream.next()) {
            if let PromptEvent::Question(question) = event {
                questions
                    .lock()
                    .unwrap()
                    .push((question.kind, question.text.clone()));
                stream.answer(&question.id, Some(answer.into())).unwrap();
            }
        }
    })
}

/// A dependency apt cannot satisfy fails this update alone, names the
/// dependency, and changes nothing.
#[test]
fn an_unmet_dependency_fails_the_update_and_changes_nothing() {
    let world = World::new(
        vec![
            ("owtest", Deb::new("owtest-needy", "1.0")),
            (
                "owtest-security",
                Deb::new("owtest-needy", "2.0").field("Depends", "owtest-missing (>= 2)"),
            ),
        ],
        true,
    );
    world.preinstall(&Deb::new("owtest-needy", "1.0"));
    let before = world.status_file();
    let outcome = world.install(vec![world.package(
        "owtest-security",
        "owtest-needy",
        "2.0",
    )]);
    assert_outcome(&world, &outcome, Outcome::Failed);
    assert_eq!(outcome.hresult, WU_E_NOT_APPLICABLE);
    assert!(
        outcome.detail.contains("owtest-missing (>= 2)"),
        "{}",
        outcome.detail
    );
    assert_eq!(world.status_file(), before);
    assert_eq!(
        world.root.status("owtest-needy"),
        "install ok installed 1.0"
    );
}

/// The same dependency fails a download-only run the same way, naming
/// it, and fetches nothing.
#[test]
fn an_unmet_dependency_fails_the_download_naming_it() {
    let world = World::new(
        vec![
            ("owtest", Deb::new("owtest-needy", "1.0")),
            (
                "owtest-security",
                Deb::new("owtest-needy", "2.0").field("Depends", "owtest-missing (>= 2)"),
            ),
        ],
        true,
    );
    world.preinstall(&Deb::new("owtest-needy", "1.0"));
    let update = vec![world.package("owtest-security", "owtest-needy", "2.0")];
    let abort = AtomicBool::new(false);
    let outcome = apt::download(
        &AptDownload {
            apt: &world.fixture.apt,
            dpkg: &world.fixture.dpkg,
            packages: &update,
            log_path: &world.fixture.log,
            abort: &abort,
        },
        &mut |_, _| {},
    );
    assert_outcome(&world, &outcome, Outcome::Failed);
    assert_eq!(outcome.hresult, WU_E_NOT_APPLICABLE);
    assert!(
        outcome.detail.contains("owtest-missing (>= 2)"),
        "{}",
        outcome.detail
    );
    assert!(!cached_deb(&world.fixture.apt, &update[0]).exists());
}

/// A postinst that raises Debian's restart flag makes the outcome
/// SucceededRebootRequired, naming the package from `.pkgs`.
#[test]
fn a_package_asking_for_a_restart_requires_one() {
    let world = World::new(
        vec![
            ("owtest", Deb::new("owtest-kernel", "1.0")),
            (
                "owtest-security",
                Deb::new("owtest-kernel", "2.0").script(
                    "postinst",
                    "touch \"$DPKG_ROOT/run/reboot-required\"\n\
                     echo owtest-kernel >> \"$DPKG_ROOT/run/reboot-required.pkgs\"",
                ),
            ),
        ],
        true,
    );
    world.preinstall(&Deb::new("owtest-kernel", "1.0"));
    let outcome = world.install(vec![world.package(
        "owtest-security",
        "owtest-kernel",
        "2.0",
    )]);
    assert_outcome(&world, &outcome, Outcome::SucceededRebootRequired);
    assert_eq!(outcome.hresult, S_OK);
    assert!(
        outcome.detail.contains("for owtest-kernel"),
        "{}",
        outcome.detail
    );
}

/// Another program holding dpkg's frontend lock (an fcntl lock, as apt
/// and dpkg take it): after `lock_wait` the update fails busy, naming the
/// holder's pid, and nothing changed.
#[test]
fn dpkgs_lock_held_by_another_program_fails_busy_naming_it() {
    let mut world = World::new(owtest_lib(), true);
    world.preinstall(&Deb::new("owtest-lib1", "1.0-1").field("Source", "owtest-lib"));
    world.fixture.apt.lock_wait = Duration::from_secs(1);
    let lock = world.root.admindir().join("lock-frontend");
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import fcntl, sys\n\
             f = open(sys.argv[1], 'w')\n\
             fcntl.lockf(f, fcntl.LOCK_EX)\n\
             print('locked', flush=True)\n\
             sys.stdin.read()",
        ])
        .arg(&lock)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "locked\n");
    let before = world.status_file();

    let outcome = world.install(security_update(&world));
    drop(holder.stdin.take());
    holder.wait().unwrap();
    assert_outcome(&world, &outcome, Outcome::Failed);
    assert_eq!(outcome.hresult, WU_E_OPERATIONINPROGRESS);
    assert!(
        outcome.detail.contains(&format!("process {}", holder.id())),
        "{}",
        outcome.detail
    );
    assert_eq!(world.status_file(), before);
}

/// Debian cannot go back to an earlier version safely.
#[test]
fn uninstall_is_refused() {
    let world = World::new(owtest_lib(), true);
    let outcome = world.fixture.run(
        &Handler::Apt {
            packages: security_update(&world),
            suites: Vec::new(),
        },
        Uninstallation,
    );
    assert_eq!(outcome.hresult, WU_E_UH_DOESNOTSUPPORTACTION);
}

/// dpkg killed while a postinst runs leaves the package half-configured;
/// `repair_interrupted` finishes it, and has nothing to do afterwards.
#[test]
fn repair_finishes_a_dpkg_run_that_was_killed() {
    let root = AptRoot::new();
    let fixture = {
        let mut fixture = Fixture::new();
        fixture.dpkg.admindir = root.admindir();
        fixture.dpkg.instdir = Some(root.instdir());
        fixture.dpkg.extra_args = root.dpkg_extra_args();
        fixture
    };
    assert_eq!(repair_interrupted(&fixture.dpkg, &fixture.log), None);
    // The first configuration blocks until it is killed; the next passes.
    let deb = Deb::new("owtest-slow", "1.0").script(
        "postinst",
        "if [ ! -e \"$DPKG_ROOT/once\" ]; then touch \"$DPKG_ROOT/once\"; exec sleep 600; fi",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = deb.build(dir.path());
    let mut dpkg = root.dpkg();
    dpkg.arg("--install").arg(&path).stdout(Stdio::null());
    let mut child = std::os::unix::process::CommandExt::process_group(&mut dpkg, 0)
        .spawn()
        .unwrap();
    let once = root.instdir().join("once");
    assert!(wait_until(Instant::now() + Duration::from_secs(30), || {
        once.exists()
    }));
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    assert_eq!(root.status("owtest-slow"), "install ok half-configured 1.0");

    let outcome = repair_interrupted(&fixture.dpkg, &fixture.log).unwrap();
    assert_eq!(outcome.outcome, Outcome::Succeeded, "{outcome:?}");
    assert!(
        outcome.detail.contains("owtest-slow (half-configured)"),
        "{}",
        outcome.detail
    );
    assert_eq!(root.status("owtest-slow"), "install ok installed 1.0");
    assert_eq!(repair_interrupted(&fixture.dpkg, &fixture.log), None);
}

/// An update server's apt update brings its `.deb`s as content: apt
/// installs those files (a version its sources do not offer), with the
/// same simulation, upgrade-only and no-remove rules.
#[test]
fn installs_the_debs_an_update_server_delivered_as_content() {
    let world = World::new(owtest_lib()[..2].to_vec(), true);
    world.preinstall(&Deb::new("owtest-lib1", "1.0-1").field("Source", "owtest-lib"));
    let built = tempfile::tempdir().unwrap();
    let mut update = Vec::new();
    for name in ["owtest-lib1", "owtest-lib-tools"] {
        let deb = Deb::new(name, "1:3.0-1").field("Source", "owtest-lib");
        let path = deb.build(built.path());
        let bytes = std::fs::read(&path).unwrap();
        let package = AptPackage {
            name: name.to_owned(),
            architecture: "all".to_owned(),
            version: "1:3.0-1".to_owned(),
            size: bytes.len() as u64,
            sha256: openwua_model::update::Sha256Digest(
                <sha2::Sha256 as sha2::Digest>::digest(&bytes).into(),
            ),
            uses_debconf: false,
        };
        assert_eq!(package.deb_file_name(), format!("{name}_1%3a3.0-1_all.deb"));
        world.fixture.content_file(&package.deb_file_name(), &bytes);
        update.push(package);
    }
    let outcome = world.install(update);
    assert_outcome(&world, &outcome, Outcome::Succeeded);
    assert_eq!(
        world.root.status("owtest-lib1"),
        "install ok installed 1:3.0-1"
    );
    // Upgrade only: the binary the machine did not have stays absent.
    assert_eq!(world.root.status("owtest-lib-tools"), "");
}
