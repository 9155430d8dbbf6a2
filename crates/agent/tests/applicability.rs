//! Each rule kind, prerequisites and supersedence, evaluated by a real
//! agent against real files, the real dpkg database and `uname`.

mod common;

use common::*;
use openwua_catalog::revision::{Applicability, Rule};
use serde_json::json;
use sha2::{Digest, Sha256};

fn installable(rule: Rule) -> Applicability {
    Applicability {
        installable: Some(rule),
        ..Applicability::default()
    }
}

fn rule(toml_text: &str) -> Rule {
    #[derive(serde::Deserialize)]
    struct Holder {
        rule: Rule,
    }
    toml::from_str::<Holder>(&format!("rule = {toml_text}"))
        .unwrap()
        .rule
}

fn dpkg_version(package: &str) -> String {
    let output = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap()
}

fn uname(flag: &str) -> String {
    let output = std::process::Command::new("uname")
        .arg(flag)
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn each_rule_kind_decides_what_applies() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("opt/app")).unwrap();
    std::fs::write(root.path().join("opt/app/version"), b"2.0\n").unwrap();
    let digest = hex::encode(Sha256::digest(b"2.0\n"));
    let os_release = root.path().join("os-release");
    std::fs::write(
        &os_release,
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME='Debian 12'\n",
    )
    .unwrap();
    let facts_root = root.path().to_str().unwrap().to_owned();
    let os_release = os_release.to_str().unwrap().to_owned();
    let agent = AgentProcess::start(&["--facts-root", &facts_root, "--os-release", &os_release]);

    let dpkg = dpkg_version("dpkg");
    let arch = uname("-m");
    let kernel = uname("-r");
    let cases: Vec<(&str, String, bool)> = vec![
        (
            "file exists",
            r#"{ file_exists = "/opt/app/version" }"#.into(),
            true,
        ),
        (
            "file missing",
            r#"{ file_exists = "/opt/app/missing" }"#.into(),
            false,
        ),
        (
            "dotdot never escapes",
            r#"{ file_exists = "/opt/../opt/app/version" }"#.into(),
            false,
        ),
        (
            "file digest",
            format!(r#"{{ file_sha256 = {{ path = "/opt/app/version", sha256 = "{digest}" }} }}"#),
            true,
        ),
        (
            "wrong digest",
            format!(
                r#"{{ file_sha256 = {{ path = "/opt/app/version", sha256 = "{}" }} }}"#,
                "0".repeat(64)
            ),
            false,
        ),
        (
            "deb installed",
            r#"{ deb_installed = { package = "dpkg" } }"#.into(),
            true,
        ),
        (
            "deb missing",
            r#"{ deb_installed = { package = "no-such-package-openwua" } }"#.into(),
            false,
        ),
        (
            "deb version equal",
            format!(r#"{{ deb_installed = {{ package = "dpkg", version = "= {dpkg}" }} }}"#),
            true,
        ),
        (
            "deb version later",
            format!(r#"{{ deb_installed = {{ package = "dpkg", version = ">> {dpkg}" }} }}"#),
            false,
        ),
        (
            "deb tilde sorts first",
            format!(r#"{{ deb_installed = {{ package = "dpkg", version = ">> {dpkg}~rc1" }} }}"#),
            true,
        ),
        (
            "os-release",
            r#"{ os_release = { field = "VERSION_ID", equals = "12" } }"#.into(),
            true,
        ),
        (
            "os-release other",
            r#"{ os_release = { field = "ID", equals = "fedora" } }"#.into(),
            false,
        ),
        (
            "architecture",
            format!(r#"{{ architecture = "{arch}" }}"#),
            true,
        ),
        (
            "other architecture",
            r#"{ architecture = "s390x" }"#.into(),
            false,
        ),
        (
            "kernel",
            format!(r#"{{ kernel_release = ">= {kernel}" }}"#),
            true,
        ),
        (
            "kernel older",
            format!(r#"{{ kernel_release = "<< {kernel}" }}"#),
            false,
        ),
        (
            "all",
            r#"{ all = [ { architecture = "s390x" }, { file_exists = "/opt" } ] }"#.into(),
            false,
        ),
        (
            "any",
            r#"{ any = [ { architecture = "s390x" }, { file_exists = "/opt" } ] }"#.into(),
            true,
        ),
        (
            "not",
            r#"{ not = { file_exists = "/opt/app/missing" } }"#.into(),
            true,
        ),
    ];
    let revisions = cases
        .iter()
        .enumerate()
        .map(|(position, (title, rule_text, _))| {
            revision(
                position as u128 + 1,
                title,
                installable(rule(rule_text)),
                json!({}),
            )
        })
        .collect();
    let (key, public) = key();
    let package = agent.dir.path().join("rules.owpkg");
    write(&snapshot(1, revisions), &key, &package);
    add_package(&agent, &package, &public).unwrap();

    let found = titles(&search(&agent, "IsInstalled=0", json!({})).unwrap());
    for (title, rule_text, expected) in &cases {
        assert_eq!(
            found.contains(&title.to_string()),
            *expected,
            "{title}: {rule_text}"
        );
    }
}

#[test]
fn installed_rules_prerequisites_and_supersedence() {
    let agent = AgentProcess::start(&[]);
    let installed_rule = Applicability {
        installed: Some(rule(r#"{ deb_installed = { package = "dpkg" } }"#)),
        ..Applicability::default()
    };
    let needs = |ids: &[u128]| Applicability {
        prerequisites: ids.iter().map(|id| uuid::Uuid::from_u128(*id)).collect(),
        ..Applicability::default()
    };
    let revisions = vec![
        revision(1, "Base (installed)", installed_rule, json!({})),
        revision(2, "Needs base", needs(&[1]), json!({})),
        revision(3, "Needs missing", needs(&[2]), json!({})),
        revision(4, "Fix v1", Applicability::default(), json!({})),
        revision(
            5,
            "Fix v2",
            Applicability::default(),
            json!({ "supersededUpdateIds": [uuid::Uuid::from_u128(4)] }),
        ),
    ];
    let (key, public) = key();
    let package = agent.dir.path().join("p.owpkg");
    write(&snapshot(1, revisions), &key, &package);
    add_package(&agent, &package, &public).unwrap();

    let pending = titles(&search(&agent, "IsInstalled=0", json!({})).unwrap());
    assert_eq!(pending, ["Fix v2", "Needs base"]);
    let installed = titles(&search(&agent, "IsInstalled=1", json!({})).unwrap());
    assert_eq!(installed, ["Base (installed)"]);
    let with_superseded = titles(
        &search(
            &agent,
            "IsInstalled=0",
            json!({ "includePotentiallySupersededUpdates": true }),
        )
        .unwrap(),
    );
    assert_eq!(with_superseded, ["Fix v1", "Fix v2", "Needs base"]);

    // GetUpdate says why an update is missing from searches.
    let details = |id: u128| {
        agent
            .call(
                "org.openwua.Agent.GetUpdate",
                json!({ "updateId": uuid::Uuid::from_u128(id) }),
            )
            .unwrap()["applicability"]
            .clone()
    };
    assert_eq!(details(2), json!({ "applicable": true }));
    let missing = details(3);
    assert_eq!(missing["applicable"], false);
    assert_eq!(
        missing["reason"],
        format!(
            "prerequisites not installed: Needs base ({})",
            uuid::Uuid::from_u128(2)
        )
    );
    assert_eq!(
        details(4),
        json!({ "applicable": true, "supersededBy": [uuid::Uuid::from_u128(5)] })
    );
}

#[test]
fn fifos_and_symlinks_at_rule_paths_are_never_read() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("opt/app")).unwrap();
    std::fs::write(root.path().join("opt/app/version"), b"2.0\n").unwrap();
    let digest = hex::encode(Sha256::digest(b"2.0\n"));
    let fifo_mode = nix::sys::stat::Mode::from_bits_truncate(0o666);
    nix::unistd::mkfifo(&root.path().join("opt/app/fifo"), fifo_mode).unwrap();
    std::os::unix::fs::symlink("version", root.path().join("opt/app/link")).unwrap();
    // Directory symlinks on the way are followed, as on merged-/usr systems.
    std::os::unix::fs::symlink("opt/app", root.path().join("app")).unwrap();
    // os-release a FIFO too: it is read when the agent starts.
    let os_release = root.path().join("os-release");
    nix::unistd::mkfifo(&os_release, fifo_mode).unwrap();
    let facts_root = root.path().to_str().unwrap().to_owned();
    let os_release = os_release.to_str().unwrap().to_owned();
    let agent = AgentProcess::start(&["--facts-root", &facts_root, "--os-release", &os_release]);

    let cases = [
        ("digest of a FIFO", "/opt/app/fifo", false),
        ("digest through a final symlink", "/opt/app/link", false),
        ("digest through a directory symlink", "/app/version", true),
    ];
    let revisions = cases
        .iter()
        .enumerate()
        .map(|(index, (title, path, _))| {
            let text = format!(r#"{{ file_sha256 = {{ path = "{path}", sha256 = "{digest}" }} }}"#);
            revision(
                index as u128 + 1,
                title,
                installable(rule(&text)),
                json!({}),
            )
        })
        .chain([revision(
            10,
            "a FIFO exists",
            installable(rule(r#"{ file_exists = "/opt/app/fifo" }"#)),
            json!({}),
        )])
        .collect();
    let (key, public) = key();
    let package = root.path().join("service.owpkg");
    write(&snapshot(1, revisions), &key, &package);
    let socket = agent.socket();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(Client::connect(&socket).call(
            "org.openwua.Agent.AddScanPackageService",
            json!({ "path": package, "publicKey": public }),
        ));
    });
    receiver
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("registering hung on a rule's FIFO")
        .unwrap();

    let applicable = titles(&search(&agent, "IsInstalled=0", json!({})).unwrap());
    let expected: Vec<&str> = {
        let mut titles: Vec<&str> = cases
            .iter()
            .filter(|(_, _, applies)| *applies)
            .map(|(title, _, _)| *title)
            .chain(["a FIFO exists"])
            .collect();
        titles.sort();
        titles
    };
    assert_eq!(applicable, expected);
}
