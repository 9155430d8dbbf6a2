//! Issue 17: the Debian package, as an administrator meets it. It installs
//! the package scripts/build-deb built (scripts/test builds it first) onto
//! this machine with dpkg, checks its programs, man pages, completions,
//! conffile, group and units (`systemd-analyze verify`), runs the installed
//! agent with the installed configuration, upgrades to the same package
//! with a higher version, purges it, and checks that nothing is left but
//! the `wua` group, which Debian keeps. Needs root; the package must not be
//! installed already (the test purges it at the end).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use openwua_testkit::{skip, wait_until};

const PACKAGE: &str = "openwua";

/// The files that say who is installed: they must all be gone after purge.
const PROGRAMS: [&str; 3] = ["/usr/bin/wua", "/usr/bin/wua-agent", "/usr/bin/wua-server"];
const UNITS: [&str; 3] = [
    "wua-agent.service",
    "wua-agent.socket",
    "wua-server.service",
];
const COMPLETIONS: [(&str, &str); 3] = [
    ("/usr/share/bash-completion/completions/", ""),
    ("/usr/share/zsh/vendor-completions/_", ""),
    ("/usr/share/fish/vendor_completions.d/", ".fish"),
];

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("{program}: {error}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(output.status.success(), "{program} {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// dpkg, waiting for its lock while another program (apt, another dpkg)
/// holds it rather than failing.
fn dpkg(args: &[&str]) -> String {
    let mut last = None;
    let done = wait_until(Instant::now() + Duration::from_secs(300), || {
        let output = run("dpkg", args);
        let locked = String::from_utf8_lossy(&output.stderr).contains("lock");
        let finished = output.status.success() || !locked;
        last = Some(output);
        finished
    });
    let output = last.unwrap();
    assert!(done && output.status.success(), "dpkg {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// `Status Version` of the package, as dpkg records it.
fn package_state() -> String {
    let output = run("dpkg-query", &["-W", "-f", "${Status} ${Version}", PACKAGE]);
    String::from_utf8(output.stdout).unwrap()
}

fn is_installed() -> bool {
    package_state().starts_with("install ok installed")
}

/// The package scripts/build-deb wrote: `$OPENWUA_DEB`, else the newest
/// `openwua_*.deb` in the target directory's `debian/`.
fn built_package() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("OPENWUA_DEB") {
        return Some(PathBuf::from(path));
    }
    // This test runs as TARGET/PROFILE/deps/package-HASH.
    let exe = std::env::current_exe().unwrap();
    let debian = exe.ancestors().nth(3)?.join("debian");
    std::fs::read_dir(debian)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("openwua_") && name.ends_with(".deb")
        })
        .max_by_key(|path| path.metadata().and_then(|meta| meta.modified()).ok())
}

/// Purges the package if the test stops half-way, so a failure leaves the
/// machine as it was.
struct PurgeOnDrop;

impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        if is_installed() || package_state().contains("config-files") {
            let _ = run("dpkg", &["--purge", PACKAGE]);
        }
    }
}

/// The installed agent, as the service would run it: the installed program
/// and /etc/openwua/agent.toml, so the default socket, store and cache.
struct InstalledAgent(Child);

impl InstalledAgent {
    fn start() -> InstalledAgent {
        let child = Command::new("/usr/bin/wua-agent")
            .env("WUA_AGENT_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let agent = InstalledAgent(child);
        let socket = "/run/openwua/agent.sock";
        assert!(
            wait_until(Instant::now() + Duration::from_secs(60), || {
                UnixStream::connect(socket).is_ok()
            }),
            "the installed agent did not listen on {socket}"
        );
        agent
    }

    /// SIGTERM, as systemctl stop sends: the agent stops cleanly.
    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = self.0.wait().unwrap();
        assert!(status.success(), "wua-agent after SIGTERM: {status}");
    }
}

impl Drop for InstalledAgent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The same package with a higher version: unpacked and built again with
/// dpkg-deb, Version `OLD+upgrade`.
fn bumped(package: &Path, dir: &Path) -> (PathBuf, String) {
    let tree = dir.join("tree");
    ok(
        "dpkg-deb",
        &["-R", package.to_str().unwrap(), tree.to_str().unwrap()],
    );
    let control_path = tree.join("DEBIAN/control");
    let control = std::fs::read_to_string(&control_path).unwrap();
    let old = control
        .lines()
        .find_map(|line| line.strip_prefix("Version: "))
        .unwrap()
        .to_owned();
    let new = format!("{old}+upgrade");
    std::fs::write(
        &control_path,
        control.replace(&format!("Version: {old}\n"), &format!("Version: {new}\n")),
    )
    .unwrap();
    let deb = dir.join("bumped.deb");
    ok(
        "dpkg-deb",
        &[
            "--root-owner-group",
            "-Zgzip",
            "-b",
            tree.to_str().unwrap(),
            deb.to_str().unwrap(),
        ],
    );
    ok("dpkg", &["--compare-versions", &new, "gt", &old]);
    (deb, new)
}

fn check_installed(version: &str) {
    assert_eq!(package_state(), format!("install ok installed {version}"));

    // The programs, each with its version.
    let cargo_version = env!("CARGO_PKG_VERSION");
    for program in PROGRAMS {
        let mode = std::fs::metadata(program).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{program}");
        let name = Path::new(program).file_name().unwrap().to_str().unwrap();
        assert_eq!(
            ok(program, &["--version"]).trim(),
            format!("{name} {cargo_version}")
        );
    }

    // Man pages: the command's, a subcommand's, the daemons' in section 8.
    assert!(
        Path::new("/usr/share/man/man1/wua.1.gz").exists(),
        "dpkg did not install the man pages: does a path-exclude in /etc/dpkg/dpkg.cfg.d leave out /usr/share/man (as slim images do)?"
    );
    for (section, page, expected) in [
        ("1", "wua", "wua-search(1)"),
        ("1", "wua-search", "criteria"),
        ("8", "wua-agent", "--state-dir"),
        ("8", "wua-server", "wua-server-serve(8)"),
    ] {
        let output = Command::new("man")
            .args(["-P", "cat", section, page])
            .env("MANWIDTH", "100")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "man {section} {page}: {output:?}");
        assert!(
            text.contains("SYNOPSIS") && text.contains(expected),
            "man {section} {page}: {text}"
        );
    }

    // Completions where Debian's bash, zsh and fish look, naming the
    // subcommands; bash's loads and registers itself.
    for program in ["wua", "wua-agent", "wua-server"] {
        for (prefix, suffix) in COMPLETIONS {
            let path = format!("{prefix}{program}{suffix}");
            let text =
                std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
            assert!(text.contains(program), "{path}: {text}");
        }
    }
    assert!(
        std::fs::read_to_string("/usr/share/zsh/vendor-completions/_wua")
            .unwrap()
            .starts_with("#compdef wua")
    );
    assert!(
        std::fs::read_to_string("/usr/share/fish/vendor_completions.d/wua.fish")
            .unwrap()
            .contains("__fish_wua_using_subcommand search")
    );
    let registered = ok(
        "bash",
        &[
            "-c",
            ". /usr/share/bash-completion/completions/wua && complete -p wua",
        ],
    );
    assert!(
        registered.contains(" -F _wua ") && registered.trim_end().ends_with(" wua"),
        "{registered}"
    );

    // The conffile, the login message, the group the conffile names.
    let conffiles = ok("dpkg-query", &["-W", "-f", "${Conffiles}", PACKAGE]);
    for conffile in [
        "/etc/openwua/agent.toml",
        "/etc/update-motd.d/85-openwua",
        "/etc/profile.d/openwua.sh",
    ] {
        assert!(
            conffiles.contains(conffile),
            "{conffile} is not a conffile: {conffiles}"
        );
    }
    let config = std::fs::read_to_string("/etc/openwua/agent.toml").unwrap();
    assert!(config.contains("\nadmin_group = \"wua\"\n"), "{config}");
    ok("getent", &["group", "wua"]);
    let motd = std::fs::metadata("/etc/update-motd.d/85-openwua")
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(motd & 0o777, 0o755);

    // The units pass systemd's own check (their programs and man pages are
    // installed now), and are enabled the Debian way: the agent and its
    // socket, not the server, which waits for its configuration.
    let units: Vec<String> = UNITS
        .iter()
        .map(|unit| format!("/usr/lib/systemd/system/{unit}"))
        .collect();
    let mut verify = vec!["verify"];
    verify.extend(units.iter().map(String::as_str));
    let output = run("systemd-analyze", &verify);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !stderr.contains("wua"),
        "systemd-analyze verify: {output:?}"
    );
    for link in [
        "/etc/systemd/system/multi-user.target.wants/wua-agent.service",
        "/etc/systemd/system/sockets.target.wants/wua-agent.socket",
    ] {
        let target = std::fs::read_link(link).unwrap_or_else(|error| panic!("{link}: {error}"));
        assert!(
            target.starts_with("/lib/systemd/system/"),
            "{link} -> {target:?}"
        );
    }
    assert!(!Path::new("/etc/systemd/system/multi-user.target.wants/wua-server.service").exists());

    // Under systemd an upgrade must not stop or restart the agent: it may be
    // the agent that runs this dpkg (it would be killed with the unit).
    let postinst = std::fs::read_to_string("/var/lib/dpkg/info/openwua.postinst").unwrap();
    let prerm = std::fs::read_to_string("/var/lib/dpkg/info/openwua.prerm").unwrap();
    assert!(
        postinst.contains("deb-systemd-invoke start wua-agent.service wua-agent.socket"),
        "{postinst}"
    );
    assert!(
        !postinst.contains("_dh_action wua-agent") && !postinst.contains("restart wua-agent"),
        "{postinst}"
    );
    // prerm stops units on removal only.
    assert!(!prerm.contains("upgrade"), "{prerm}");
}

/// With the agent listening on the default socket and something to say (a
/// stand-in `wua` that always has), a login on Debian, whose login and sshd
/// run pam_motd, hears it once: from 85-openwua, not again from profile.d.
fn check_login_message_shown_once(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(bin.join("wua"), "#!/bin/sh\necho 'A restart is pending.'\n").unwrap();
    std::fs::set_permissions(bin.join("wua"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let login = |args: &[&str]| {
        let output = Command::new("sh")
            .args(args)
            .env_clear()
            .env("PATH", &path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(output.status.success(), "sh {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let pam_motd = ok(
        "grep",
        &["-l", "pam_motd", "/etc/pam.d/login", "/etc/pam.d/sshd"],
    );
    assert!(!pam_motd.is_empty(), "Debian's login and sshd run pam_motd");
    assert_eq!(
        login(&["/etc/update-motd.d/85-openwua"]),
        "A restart is pending.\n"
    );
    // +m: no job control, which would want a terminal.
    assert_eq!(
        login(&["-i", "+m", "-c", ". /etc/profile.d/openwua.sh"]),
        ""
    );
}

/// Everything dpkg installed and everything the units' enabling and the
/// agent made is gone; the `wua` group stays (Debian keeps system groups).
fn check_purged(installed_files: &[String]) {
    assert!(
        package_state().is_empty() || package_state().starts_with("unknown ok not-installed"),
        "{}",
        package_state()
    );
    for path in installed_files {
        let path = Path::new(path);
        // Directories such as /usr/share/man/man8 are shared with others.
        if path.symlink_metadata().is_ok_and(|meta| meta.is_dir()) {
            continue;
        }
        assert!(
            path.symlink_metadata().is_err(),
            "{} is left after purge",
            path.display()
        );
    }
    for dir in [
        "/etc/openwua",
        "/var/lib/openwua",
        "/var/cache/openwua",
        "/run/openwua",
    ] {
        assert!(!Path::new(dir).exists(), "{dir} is left after purge");
    }
    let leftovers = Command::new("find")
        .args([
            "/etc/systemd/system",
            "/var/lib/systemd/deb-systemd-helper-enabled",
            "/var/lib/systemd/deb-systemd-helper-masked",
            "/var/lib/dpkg/info",
            "-name",
            "*wua*",
        ])
        .output()
        .unwrap();
    let leftovers = String::from_utf8_lossy(&leftovers.stdout);
    assert!(
        leftovers.trim().is_empty(),
        "left after purge:\n{leftovers}"
    );
    ok("getent", &["group", "wua"]);
}

#[test]
fn the_debian_package_installs_upgrades_and_purges_cleanly() {
    const NAME: &str = "the_debian_package_installs_upgrades_and_purges_cleanly";
    if !nix::unistd::geteuid().is_root() {
        skip(NAME, "installs a package with dpkg: needs root");
        return;
    }
    let Some(package) = built_package() else {
        skip(
            NAME,
            "no package built: run scripts/build-deb first (scripts/test does, as root)",
        );
        return;
    };
    assert!(
        !is_installed(),
        "{PACKAGE} is installed on this machine already; this test installs and purges its own: dpkg --purge {PACKAGE}"
    );
    let _purge = PurgeOnDrop;
    let dir = tempfile::tempdir().unwrap();

    dpkg(&["-i", package.to_str().unwrap()]);
    let version = ok("dpkg-deb", &["-f", package.to_str().unwrap(), "Version"])
        .trim()
        .to_owned();
    check_installed(&version);

    // The installed agent starts with the installed configuration, and wua
    // reaches it on the default socket.
    let agent = InstalledAgent::start();
    let status = run("/usr/bin/wua", &["status"]);
    assert!(status.status.success(), "wua status: {status:?}");
    check_login_message_shown_once(dir.path());
    agent.stop();
    assert!(Path::new("/var/lib/openwua/agent.db").exists());

    // An administrator's change to the conffile survives an upgrade, with
    // no question asked (dpkg's stdin is not a terminal here).
    let local = "/etc/openwua/agent.toml";
    let changed = format!(
        "{}# changed by the administrator\n",
        std::fs::read_to_string(local).unwrap()
    );
    std::fs::write(local, &changed).unwrap();
    let (upgrade, new_version) = bumped(&package, dir.path());
    dpkg(&["-i", upgrade.to_str().unwrap()]);
    check_installed(&new_version);
    assert_eq!(std::fs::read_to_string(local).unwrap(), changed);

    let installed_files: Vec<String> = ok("dpkg-query", &["-L", PACKAGE])
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        installed_files.iter().any(|path| path == "/usr/bin/wua"),
        "{installed_files:?}"
    );
    dpkg(&["--purge", PACKAGE]);
    check_purged(&installed_files);
}
