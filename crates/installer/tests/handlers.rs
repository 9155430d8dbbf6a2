//! The installation handlers against real processes, a real dpkg and real
//! files: every outcome and code `docs/handlers.md` promises.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

mod common;

use common::dpkg::{Dpkg, build_deb};
use common::handler_fixture::{Fixture, random_uuid};
use openwua_catalog::revision::{ExitCodeMap, ExitCodeRule, ExitOutcome, FilePlacement, Handler};
use openwua_installer::handlers::{HandlerOutcome, Outcome};
use openwua_model::enums::UpdateOperation::{Installation, Uninstallation};
use openwua_model::hresult::{
    S_OK, WU_E_UH_DOESNOTSUPPORTACTION, WU_E_UH_INSTALLERFAILURE, WU_E_UH_INSTALLERHUNG,
    WU_E_UH_INVALIDMETADATA, WU_E_UH_OPERATIONCANCELLED,
};

fn command(program: &str, args: &[&str]) -> Handler {
    Handler::Command {
        program: program.into(),
        args: args.iter().map(|arg| arg.to_string()).collect(),
        uninstall: None,
        exit_codes: ExitCodeMap::default(),
        timeout_seconds: None,
    }
}

fn with_codes(handler: Handler, codes: &[(i32, ExitOutcome)], default: ExitOutcome) -> Handler {
    let Handler::Command {
        program,
        args,
        uninstall,
        timeout_seconds,
        ..
    } = handler
    else {
        unreachable!()
    };
    Handler::Command {
        program,
        args,
        uninstall,
        timeout_seconds,
        exit_codes: ExitCodeMap {
            codes: codes
                .iter()
                .map(|&(code, outcome)| ExitCodeRule { code, outcome })
                .collect(),
            default,
        },
    }
}

fn assert_outcome(
    outcome: &HandlerOutcome,
    expected: Outcome,
    hresult: openwua_model::hresult::HResult,
) {
    assert_eq!(outcome.outcome, expected, "{outcome:?}");
    assert_eq!(outcome.hresult, hresult, "{outcome:?}");
}

/// Whether a process is gone: no `/proc` entry, or a zombie nobody has
/// reaped yet (it no longer runs).
fn process_gone(pid: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let gone = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        };
        if gone || Instant::now() > deadline {
            return gone;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_pid(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.trim().is_empty()
        {
            return text.trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The installer stopped by `how` (the timeout, the abort) ended well
/// before its own `sleep 30`, and so did that grandchild (its pid in
/// `$HOME/sleep.pid`): the whole group was stopped.
fn assert_group_stopped(fixture: &Fixture, started: Instant, how: &str) {
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let sleep = read_pid(&fixture.work.join("sleep.pid"));
    assert!(
        process_gone(&sleep),
        "the grandchild sleep {sleep} outlived the {how}"
    );
}

// ---- command ------------------------------------------------------------

#[test]
fn command_exit_zero_succeeds() {
    let fixture = Fixture::new();
    fixture.script("install.sh", "exit 0");
    let outcome = fixture.run(&command("install.sh", &[]), Installation);
    assert_outcome(&outcome, Outcome::Succeeded, S_OK);
    assert_eq!(outcome.exit_code, Some(0));
    assert!(
        outcome.detail.contains("install.sh exited with 0"),
        "{}",
        outcome.detail
    );
}

#[test]
fn command_mapped_code_requires_a_restart() {
    let fixture = Fixture::new();
    fixture.script("install.sh", "exit 194");
    let handler = with_codes(
        command("install.sh", &[]),
        &[
            (0, ExitOutcome::Succeeded),
            (194, ExitOutcome::SucceededRebootRequired),
        ],
        ExitOutcome::Failed,
    );
    let outcome = fixture.run(&handler, Installation);
    assert_outcome(&outcome, Outcome::SucceededRebootRequired, S_OK);
    assert_eq!(outcome.exit_code, Some(194));
}

#[test]
fn command_failure_carries_the_exit_code_and_the_log() {
    let fixture = Fixture::new();
    fixture.script("install.sh", "exit 1");
    let outcome = fixture.run(&command("install.sh", &[]), Installation);
    assert_outcome(&outcome, Outcome::Failed, WU_E_UH_INSTALLERFAILURE);
    assert_eq!(outcome.exit_code, Some(1));
    assert!(
        outcome.detail.contains("install.sh exited with 1"),
        "{}",
        outcome.detail
    );
    assert!(
        outcome.detail.contains(&fixture.log.display().to_string()),
        "{}",
        outcome.detail
    );
}

#[test]
fn command_unlisted_codes_take_the_default() {
    let fixture = Fixture::new();
    fixture.script("install.sh", "exit \"$1\"");
    // A map without 0 makes 0 take the default too.
    let handler = |code: &str, default| {
        with_codes(
            command("install.sh", &[code]),
            &[(5, ExitOutcome::Succeeded)],
            default,
        )
    };
    let outcome = fixture.run(&handler("0", ExitOutcome::Failed), Installation);
    assert_outcome(&outcome, Outcome::Failed, WU_E_UH_INSTALLERFAILURE);
    assert_eq!(outcome.exit_code, Some(0));
    let outcome = fixture.run(&handler("5", ExitOutcome::Failed), Installation);
    assert_outcome(&outcome, Outcome::Succeeded, S_OK);
    let outcome = fixture.run(
        &handler("7", ExitOutcome::SucceededRebootRequired),
        Installation,
    );
    assert_outcome(&outcome, Outcome::SucceededRebootRequired, S_OK);
    assert_eq!(outcome.exit_code, Some(7));
}

#[test]
fn command_environment_is_clean_plus_openwua_variables() {
    let fixture = Fixture::new();
    fixture.script(
        "install.sh",
        "env > \"$HOME/env.txt\"; pwd > \"$HOME/cwd.txt\"",
    );
    let outcome = fixture.run(&command("install.sh", &[]), Installation);
    assert_outcome(&outcome, Outcome::Succeeded, S_OK);
    let env = std::fs::read_to_string(fixture.work.join("env.txt")).unwrap();
    let vars: Vec<&str> = env.lines().collect();
    // Nothing of this process's own environment (cargo's variables, at
    // least) reaches the installer, except names it is given anew.
    let given = ["PATH", "LANG", "HOME", "PWD", "SHLVL", "_"];
    let inherited: Vec<String> = std::env::vars()
        .map(|(name, _)| name)
        .filter(|name| !given.contains(&name.as_str()) && !name.starts_with("OPENWUA_"))
        .collect();
    assert!(
        !inherited.is_empty(),
        "the test needs an environment variable of its own"
    );
    for name in &inherited {
        let prefix = format!("{name}=");
        assert!(
            !vars.iter().any(|line| line.starts_with(&prefix)),
            "{name} leaked into {env}"
        );
    }
    for expected in [
        format!("OPENWUA_SANDBOX={}", fixture.sandbox.display()),
        format!("OPENWUA_UPDATE_ID={}", fixture.update_id),
        "OPENWUA_OPERATION=install".to_string(),
        format!("OPENWUA_CONTENT_DIR={}", fixture.content.display()),
        format!("HOME={}", fixture.work.display()),
        "LANG=C.UTF-8".to_string(),
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
    ] {
        assert!(vars.contains(&expected.as_str()), "{expected} not in {env}");
    }
    let cwd = std::fs::read_to_string(fixture.work.join("cwd.txt")).unwrap();
    assert_eq!(cwd.trim(), fixture.work.display().to_string());
}

#[test]
fn command_output_lands_in_the_log() {
    let fixture = Fixture::new();
    std::fs::write(&fixture.log, "earlier line\n").unwrap();
    fixture.script(
        "install.sh",
        "echo to-stdout; echo to-stderr >&2; read x || echo no-stdin",
    );
    let outcome = fixture.run(&command("install.sh", &[]), Installation);
    assert_outcome(&outcome, Outcome::Succeeded, S_OK);
    let log = fixture.log();
    assert!(log.starts_with("earlier line\n"), "{log}");
    for line in ["to-stdout", "to-stderr", "no-stdin", "install.sh"] {
        assert!(log.contains(line), "{line} not in {log}");
    }
}

#[test]
fn command_timeout_kills_the_whole_group() {
    let fixture = Fixture::new();
    // Both ignore SIGTERM, so only the SIGKILL after the grace stops them.
    fixture.script(
        "install.sh",
        "trap '' TERM\nsleep 30 &\necho $! > \"$HOME/sleep.pid\"\nwait",
    );
    let handler = Handler::Command {
        program: "install.sh".into(),
        args: Vec::new(),
        uninstall: None,
        exit_codes: ExitCodeMap::default(),
        timeout_seconds: Some(1),
    };
    let started = Instant::now();
    let outcome = fixture.run(&handler, Installation);
    assert_outcome(&outcome, Outcome::Failed, WU_E_UH_INSTALLERHUNG);
    assert_group_stopped(&fixture, started, "timeout");
}

#[test]
fn command_abort_stops_the_installer() {
    let fixture = Fixture::new();
    fixture.script(
        "install.sh",
        "sleep 30 &\necho $! > \"$HOME/sleep.pid\"\nwait",
    );
    let started = Instant::now();
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| {
            read_pid(&fixture.work.join("sleep.pid"));
            fixture.abort.store(true, Ordering::SeqCst);
        });
        fixture.run(&command("install.sh", &[]), Installation)
    });
    assert_outcome(&outcome, Outcome::Aborted, WU_E_UH_OPERATIONCANCELLED);
    assert_group_stopped(&fixture, started, "abort");
}

#[test]
fn command_killed_by_a_signal_fails_and_names_it() {
    let fixture = Fixture::new();
    fixture.script("install.sh", "kill -KILL $$");
    let outcome = fixture.run(&command("install.sh", &[]), Installation);
    assert_outcome(&outcome, Outcome::Failed, WU_E_UH_INSTALLERFAILURE);
    assert_eq!(outcome.exit_code, None);
    assert!(outcome.detail.contains("SIGKILL"), "{}", outcome.detail);
}

#[test]
fn command_uninstall_runs_its_own_program_or_is_unsupported() {
    let fixture = Fixture::new();
    fixture.script(
        "remove.sh",
        "echo \"$OPENWUA_OPERATION $*\" > \"$HOME/removed\"",
    );
    let handler = Handler::Command {
        program: "install.sh".into(),
        args: Vec::new(),
        exit_codes: ExitCodeMap::default(),
        timeout_seconds: None,
        uninstall: Some(vec!["remove.sh".into(), "a".into(), "b c".into()]),
    };
    let outcome = fixture.run(&handler, Uninstallation);
    assert_outcome(&outcome, Outcome::Succeeded, S_OK);
    let removed = std::fs::read_to_string(fixture.work.join("removed")).unwrap();
    assert_eq!(removed, "uninstall a b c\n");

    let outcome = fixture.run(&command("install.sh", &[]), Uninstallation);
    assert_outcome(&outcome, Outcome::Failed, WU_E_UH_DOESNOTSUPPORTACTION);
}

#[test]
fn command_program_must_be_in_the_content() {
    let fixture = Fixture::new();
    for program in ["missing.sh", "../install.log", "sub/../../x", ""] {
        let outcome = fixture.run(&command(program, &[]), Installation);
        assert_outcome(&outcome, Outcome::Failed, WU_E_UH_INVALIDMETADATA);
    }
    // An absolute program is the system's.
    let outcome = fixture.run(&command("/bin/sh", &["-c", "exit 0"]), Installation);
    assert_outcome(&outcome, Outcome::Succeeded, S_OK);
}

#[test]
fn command_runs_the_sample_installer() {
    let fixture = Fixture::new();
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-service/shared");
    for name in ["install.sh", "uninstall.sh", "sandbox.sh"] {
        fixture.content_file(name, &std::fs::read(shared.join(name)).unwrap());
    }
    let handler = Handler::Command {
        program: "install.sh".into(),
        args: vec!["--reboot".into(), "example-agent".into(), "1.2.3".into()],
        uninstall: Some(vec!["uninstall.sh".into(), "example-agent".into()]),
        exit_codes: ExitCodeMap {
            codes: vec![
                ExitCodeRule {
                    code: 0,
                    outcome: ExitOutcome::Succeeded,
                },
                ExitCodeRule {
                    code: 194,
                    outcome: ExitOutcome::SucceededRebootRequired,
                },
            ],
            default: ExitOutcome::Failed,
        },
        timeout_seconds: Some(60),
    };
    let outcome = fixture.run(&handler, Installation);
    assert_outcome(&outcome, Outcome::SucceededRebootRequired, S_OK);
    let version = fixture.sandbox.join("example-agent/VERSION");
    assert_eq!(std::fs::read_to_string(&version).unwrap(), "1.2.3\n");
    assert!(fixture.log().contains("installed example-agent 1.2.3"));

    let outcome = fixture.run(&handler, Uninstallation);
    assert_outcome(&outcome, Outcome::Succeeded, S_OK);
    assert!(!fixture.sandbox.join("example-agent").exists());
}

// ---- dpkg ---------------------------------------------------------------

/// A handler fixture whose dpkg settings point at a throwaway database.
fn dpkg_fixture() -> (Fixture, Dpkg) {
    let mut fixture = Fixture::new();
    let dpkg = fixture.throwaway_dpkg();
    (fixture, dpkg)
}

fn package_name() -> String {
    format!("openwua-test-{}", &random_uuid().simple().to_string()[..12])
}

#[test]
fn dpkg_installs_and_removes_a_package() {
    let (fixture, dpkg) = dpkg_fixture();
    let name = package_name();
    let deb = build_deb(fixture.dir.path(), &name, None);
    fixture.content_file(
        &format!("{name}_1.0_all.deb"),
        &std::fs::read(&deb).unwrap(),
    );
    let handler = Handler::Dpkg {
        remove: vec![name.clone()],
    };

    let outcome = fixture.run(&handler, Installation);
    assert_outcome(&outcome, Outcome::Succeeded, S_OK);
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(dpkg.status(&name), "install ok installed");
    let file = dpkg.instdir.join("opt").join(&name).join("hello.txt");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hello\n");
    assert!(fixture.log().contains("Unpacking"), "{}", fixture.log());

    let outcome = fixture.run(&handler, Uninstallation);
    assert_outcome(&outcome, Outcome::Succeeded, S_OK);
    assert!(!file.exists());
    assert!(!dpkg.status(&name).contains("installed"));
}

#[test]
fn dpkg_reports_a_requested_restart() {
    let (fixture, _) = dpkg_fixture();
    let name = package_name();
    let flag = fixture.dpkg.reboot_required_file.display().to_string();
    let deb = build_deb(fixture.dir.path(), &name, Some(&format!("touch '{flag}'")));
    fixture.content_file("a.deb", &std::fs::read(&deb).unwrap());
    let outcome = fixture.run(&Handler::Dpkg { remove: vec![] }, Installation);
    assert_outcome(&outcome, Outcome::SucceededRebootRequired, S_OK);
    assert!(outcome.detail.contains(&flag), "{}", outcome.detail);
}

#[test]
fn dpkg_broken_package_fails_with_dpkgs_exit_code() {
    let (fixture, _) = dpkg_fixture();
    fixture.content_file("x.deb", b"this is not a Debian archive\n");
    let outcome = fixture.run(&Handler::Dpkg { remove: vec![] }, Installation);
    assert_outcome(&outcome, Outcome::Failed, WU_E_UH_INSTALLERFAILURE);
    assert_eq!(outcome.exit_code, Some(1));
    assert!(
        outcome.detail.contains("dpkg --install exited with 1"),
        "{}",
        outcome.detail
    );
    assert!(fixture.log().contains("x.deb"), "{}", fixture.log());
}

#[test]
fn dpkg_needs_debs_to_install_and_names_to_remove() {
    let (fixture, _) = dpkg_fixture();
    fixture.content_file("readme.txt", b"no packages here\n");
    let outcome = fixture.run(&Handler::Dpkg { remove: vec![] }, Installation);
    assert_outcome(&outcome, Outcome::Failed, WU_E_UH_INVALIDMETADATA);
    let outcome = fixture.run(&Handler::Dpkg { remove: vec![] }, Uninstallation);
    assert_outcome(&outcome, Outcome::Failed, WU_E_UH_DOESNOTSUPPORTACTION);
}

// ---- files --------------------------------------------------------------

fn files_handler(root: &Path, placements: &[(&str, &str, Option<&str>)]) -> Handler {
    Handler::Files {
        root: root.display().to_string(),
        files: placements
            .iter()
            .map(|&(source, target, mode)| FilePlacement {
                source: source.into(),
                target: target.into(),
                mode: mode.map(str::to_string),
            })
            .collect(),
    }
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn files_fixture() -> (Fixture, PathBuf) {
    let fixture = Fixture::new();
    let root = fixture.dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let existing = root.join("etc/app.conf");
    std::fs::write(&existing, "old settings\n").unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o600)).unwrap();
    fixture.content_file("app.conf", b"new settings\n");
    fixture.content_file("tool", b"#!/bin/sh\n");
    (fixture, root)
}

#[test]
fn files_install_and_uninstall_restore_exactly() {
    let (fixture, root) = files_fixture();
    let handler = files_handler(
        &root,
        &[
            ("app.conf", "etc/app.conf", Some("0640")),
            ("tool", "opt/app/bin/tool", None),
        ],
    );
    let outcome = fixture.run(&handler, Installation);
    assert_outcome(&outcome, Outcome::Succeeded, S_OK);
    let conf = root.join("etc/app.conf");
    let tool = root.join("opt/app/bin/tool");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "new settings\n");
    assert_eq!(mode_of(&conf), 0o640);
    assert_eq!(std::fs::read(&tool).unwrap(), b"#!/bin/sh\n");
    assert_eq!(mode_of(&tool), 0o644);
    assert!(fixture.backup.join("files-manifest.json").is_file());

    let outcome = fixture.run(&handler, Uninstallation);
    assert_outcome(&outcome, Outcome::Succeeded, S_OK);
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "old settings\n");
    assert_eq!(mode_of(&conf), 0o600);
    assert!(!tool.exists());
    // The directories the install made are gone too; the record as well.
    assert!(!root.join("opt").exists());
    assert!(!fixture.backup.join("files-manifest.json").exists());

    // Nothing recorded any more: a second uninstall has nothing to do.
    let outcome = fixture.run(&handler, Uninstallation);
    assert_outcome(&outcome, Outcome::Failed, WU_E_UH_DOESNOTSUPPORTACTION);
    assert!(
        outcome.detail.contains("nothing recorded to restore"),
        "{}",
        outcome.detail
    );
}

#[test]
fn files_refuses_targets_outside_the_root_and_changes_nothing() {
    let (fixture, root) = files_fixture();
    for target in ["../escape", "etc/../../escape", "/etc/app.conf", ""] {
        let handler = files_handler(
            &root,
            &[("app.conf", "etc/app.conf", None), ("tool", target, None)],
        );
        let outcome = fixture.run(&handler, Installation);
        assert_outcome(&outcome, Outcome::Failed, WU_E_UH_INVALIDMETADATA);
        assert_eq!(
            std::fs::read_to_string(root.join("etc/app.conf")).unwrap(),
            "old settings\n"
        );
        assert_eq!(mode_of(&root.join("etc/app.conf")), 0o600);
        assert!(!fixture.dir.path().join("escape").exists());
        assert_eq!(std::fs::read_dir(&fixture.backup).unwrap().count(), 0);
    }
}

#[test]
fn files_refuses_bad_modes_and_sources() {
    let (fixture, root) = files_fixture();
    for (source, mode) in [
        ("app.conf", "0999"),
        ("app.conf", "+644"),
        ("app.conf", "10000"),
        ("app.conf", "rw-r--r--"),
        ("missing", "0644"),
        ("../install.log", "0644"),
    ] {
        let handler = files_handler(&root, &[(source, "etc/app.conf", Some(mode))]);
        let outcome = fixture.run(&handler, Installation);
        assert_outcome(&outcome, Outcome::Failed, WU_E_UH_INVALIDMETADATA);
        assert_eq!(
            std::fs::read_to_string(root.join("etc/app.conf")).unwrap(),
            "old settings\n"
        );
    }
}

#[test]
fn files_reinstall_keeps_the_first_backup() {
    let (fixture, root) = files_fixture();
    let conf = root.join("etc/app.conf");
    let outcome = fixture.run(
        &files_handler(&root, &[("app.conf", "etc/app.conf", None)]),
        Installation,
    );
    assert_outcome(&outcome, Outcome::Succeeded, S_OK);
    fixture.content_file("app-v2.conf", b"newer settings\n");
    let v2 = files_handler(&root, &[("app-v2.conf", "etc/app.conf", Some("0600"))]);
    let outcome = fixture.run(&v2, Installation);
    assert_outcome(&outcome, Outcome::Succeeded, S_OK);
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "newer settings\n");

    let outcome = fixture.run(&v2, Uninstallation);
    assert_outcome(&outcome, Outcome::Succeeded, S_OK);
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "old settings\n");
    assert_eq!(mode_of(&conf), 0o600);
}

#[test]
fn files_failure_midway_rolls_back() {
    let (fixture, root) = files_fixture();
    // "opt/x" is placed as a file, so "opt/x/y" cannot get its directory.
    let handler = files_handler(
        &root,
        &[
            ("app.conf", "etc/app.conf", None),
            ("tool", "opt/x", None),
            ("tool", "opt/x/y", None),
        ],
    );
    let outcome = fixture.run(&handler, Installation);
    assert_outcome(&outcome, Outcome::Failed, WU_E_UH_INSTALLERFAILURE);
    assert!(outcome.detail.contains("opt/x"), "{}", outcome.detail);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/app.conf")).unwrap(),
        "old settings\n"
    );
    assert_eq!(mode_of(&root.join("etc/app.conf")), 0o600);
    assert!(!root.join("opt").exists());
    assert!(!fixture.backup.join("files-manifest.json").exists());
}

/// A root whose `etc` is a symbolic link to `outside`, an empty directory
/// beside it (standing in for /etc or any directory out of the root).
fn files_fixture_with_linked_etc() -> (Fixture, PathBuf, PathBuf) {
    let fixture = Fixture::new();
    let root = fixture.dir.path().join("root");
    let outside = fixture.dir.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("etc")).unwrap();
    fixture.content_file("app.conf", b"new settings\n");
    (fixture, root, outside)
}

fn assert_refused_link(outcome: &HandlerOutcome, root: &Path) {
    assert_outcome(outcome, Outcome::Failed, WU_E_UH_INSTALLERFAILURE);
    let link = root.join("etc").display().to_string();
    assert!(
        outcome.detail.contains(&link) && outcome.detail.contains("symbolic link"),
        "{}",
        outcome.detail
    );
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A symbolic link to a directory beneath the root does not carry the
/// root's writes out of it: nothing is written there, nothing recorded.
#[test]
fn files_do_not_follow_a_linked_directory_out_of_the_root() {
    let (fixture, root, outside) = files_fixture_with_linked_etc();
    for target in ["etc/app.conf", "etc/new/dir/app.conf"] {
        let handler = files_handler(&root, &[("app.conf", target, None)]);
        let outcome = fixture.run(&handler, Installation);
        assert_refused_link(&outcome, &root);
        assert_eq!(entries(&outside), Vec::<String>::new());
        assert!(!fixture.backup.join("files-manifest.json").exists());
    }
}

/// An existing file behind the link is neither backed up (read through
/// the link) nor replaced.
#[test]
fn files_do_not_back_up_or_replace_a_file_behind_a_linked_directory() {
    let (fixture, root, outside) = files_fixture_with_linked_etc();
    std::fs::write(outside.join("app.conf"), "outside settings\n").unwrap();
    let handler = files_handler(&root, &[("app.conf", "etc/app.conf", None)]);
    let outcome = fixture.run(&handler, Installation);
    assert_refused_link(&outcome, &root);
    assert_eq!(entries(&outside), ["app.conf"]);
    assert_eq!(
        std::fs::read_to_string(outside.join("app.conf")).unwrap(),
        "outside settings\n"
    );
    assert!(!fixture.backup.join("files").exists());
}

/// A directory swapped for a link after the install: the uninstall
/// neither deletes nor restores through it, and fails saying so.
#[test]
fn files_uninstall_does_not_delete_or_restore_through_a_linked_directory() {
    let fixture = Fixture::new();
    let root = fixture.dir.path().join("root");
    let outside = fixture.dir.path().join("outside");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("etc/old.conf"), "old settings\n").unwrap();
    fixture.content_file("app.conf", b"new settings\n");
    let handler = files_handler(
        &root,
        &[
            ("app.conf", "etc/old.conf", None),
            ("app.conf", "etc/app.conf", None),
        ],
    );
    assert_outcome(
        &fixture.run(&handler, Installation),
        Outcome::Succeeded,
        S_OK,
    );

    std::fs::rename(root.join("etc"), fixture.dir.path().join("moved")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("etc")).unwrap();
    std::fs::write(outside.join("app.conf"), "outside\n").unwrap();
    std::fs::write(outside.join("old.conf"), "outside\n").unwrap();
    let outcome = fixture.run(&handler, Uninstallation);
    assert_refused_link(&outcome, &root);
    assert_eq!(entries(&outside), ["app.conf", "old.conf"]);
    for name in ["app.conf", "old.conf"] {
        assert_eq!(
            std::fs::read_to_string(outside.join(name)).unwrap(),
            "outside\n"
        );
    }
    // The record stays, for an uninstall once the link is dealt with.
    assert!(fixture.backup.join("files-manifest.json").is_file());
}

/// `..` cannot climb out either, even where a link would make it land
/// back inside.
#[test]
fn files_refuse_dot_dot_in_a_placement() {
    let (fixture, root, outside) = files_fixture_with_linked_etc();
    for target in ["etc/../x", "a/../../x", "./x/.."] {
        let handler = files_handler(&root, &[("app.conf", target, None)]);
        let outcome = fixture.run(&handler, Installation);
        assert_outcome(&outcome, Outcome::Failed, WU_E_UH_INVALIDMETADATA);
        assert_eq!(entries(&outside), Vec::<String>::new());
        assert_eq!(entries(&root), ["etc"]);
    }
}
