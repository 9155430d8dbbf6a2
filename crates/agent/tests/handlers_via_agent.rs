//! The installation handlers end to end: a real `wua-agent` on a real
//! socket downloads and installs updates whose handlers are a real dpkg on
//! a throwaway database, a `files` placement, bundled and prerequisite
//! updates, a caller who may not install, and an installer that hangs.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::dpkg::{Dpkg, build_deb};
use common::*;
use openwua_catalog::revision::{Applicability, ContentFile, FilePlacement, Handler, Rule};
use openwua_model::update::Sha256Digest;
use openwua_testkit::skip;
use serde_json::{Value, json};
use sha2::Digest as _;
use uuid::Uuid;

const INSTALL: &str = "org.openwua.Agent.Install";
const UNINSTALL: &str = "org.openwua.Agent.Uninstall";
const DOWNLOAD: &str = "org.openwua.Agent.Download";

fn id(n: u128) -> String {
    Uuid::from_u128(n).to_string()
}

/// An update whose content is `files` (name, bytes), installed by `handler`.
fn update_with(
    dir: &Path,
    number: u128,
    title: &str,
    files: &[(&str, Vec<u8>)],
    handler: Handler,
    applicability: Applicability,
    extra: Value,
) -> (
    openwua_catalog::revision::Revision,
    Vec<(ContentFile, PathBuf)>,
) {
    let file_dir = dir.join(format!("payload-{number}"));
    std::fs::create_dir_all(&file_dir).unwrap();
    let mut payloads = Vec::new();
    let mut contents = Vec::new();
    let mut total = 0;
    for (name, bytes) in files {
        let path = file_dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let sha256 = Sha256Digest(sha2::Sha256::digest(bytes).into());
        contents.push(json!({
            "fileName": name, "size": bytes.len(), "sha256": sha256.to_string()
        }));
        total += bytes.len();
        payloads.push((
            ContentFile {
                file_name: (*name).into(),
                size: bytes.len() as u64,
                sha256,
                url: format!("content/{sha256}"),
            },
            path,
        ));
    }
    let mut extra = extra;
    extra["downloadContents"] = json!(contents);
    extra["maxDownloadSize"] = json!(total);
    if extra.get("uninstallationBehavior").is_none() {
        extra["uninstallationBehavior"] = json!({});
    }
    let mut revision = revision(number, title, applicability, extra);
    revision.handler = handler;
    revision.content = payloads.iter().map(|(file, _)| file.clone()).collect();
    (revision, payloads)
}

/// A `command` update whose installer appends `name` to
/// `$OPENWUA_SANDBOX/order`.
fn ordered(
    dir: &Path,
    number: u128,
    name: &str,
    extra: Value,
) -> (
    openwua_catalog::revision::Revision,
    Vec<(ContentFile, PathBuf)>,
) {
    let (revision, payload) = installable(
        dir,
        number,
        name,
        Installer {
            script: format!("echo {name} >>\"$OPENWUA_SANDBOX/order\""),
            uninstall: false,
            exit_codes: json!({ "codes": [{ "code": 0, "outcome": "succeeded" }] }),
        },
        extra,
    );
    (revision, vec![payload])
}

/// Registers one signed package carrying `updates` and their content.
fn publish(
    agent: &AgentProcess,
    updates: Vec<(
        openwua_catalog::revision::Revision,
        Vec<(ContentFile, PathBuf)>,
    )>,
) {
    let mut revisions = Vec::new();
    let mut payloads = Vec::new();
    for (revision, files) in updates {
        revisions.push(revision);
        payloads.extend(files);
    }
    let (key, public) = key();
    let package = agent.dir.path().join("service.owpkg");
    write_with_content(&snapshot(1, revisions), &payloads, &key, &package);
    add_package(agent, &package, &public).unwrap();
}

fn job(agent: &AgentProcess, method: &str, ids: &[u128]) -> Value {
    let ids: Vec<String> = ids.iter().map(|n| id(*n)).collect();
    let job = run_job(agent, method, json!({ "updateIds": ids })).unwrap();
    assert_eq!(job["state"], "Completed", "{job}");
    job
}

fn codes(job: &Value) -> Vec<(String, String)> {
    job["result"]["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|update| {
            (
                update["resultCode"].as_str().unwrap().to_owned(),
                update["hresult"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(code, hresult)| (code.to_string(), hresult.to_string()))
        .collect()
}

fn state(agent: &AgentProcess, n: u128) -> Value {
    let reply = agent
        .call("org.openwua.Agent.GetUpdate", json!({ "updateId": id(n) }))
        .unwrap();
    reply["entry"]["state"].clone()
}

/// History as (operation, result code, hresult, title), newest first.
fn history(agent: &AgentProcess) -> Vec<(String, String, String, String)> {
    let reply = agent
        .call(
            "org.openwua.Agent.QueryHistory",
            json!({ "start": 0, "count": 100 }),
        )
        .unwrap();
    reply["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["operation"].as_str().unwrap().to_owned(),
                entry["resultCode"].as_str().unwrap().to_owned(),
                entry["hresult"].as_str().unwrap().to_owned(),
                entry["title"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn entry(
    operation: &str,
    code: &str,
    hresult: &str,
    title: &str,
) -> (String, String, String, String) {
    (operation.into(), code.into(), hresult.into(), title.into())
}

fn sandbox(agent: &AgentProcess) -> PathBuf {
    agent.dir.path().join("sandbox")
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

// ---- 1. dpkg ------------------------------------------------------------

#[test]
fn dpkg_update_installs_and_removes_a_real_package() {
    let agent = AgentProcess::start_with_config(|dir| {
        let dpkg = Dpkg::throwaway(dir);
        (
            format!(
                "dpkg_instdir = {:?}\ndpkg_extra_args = {:?}\n",
                dpkg.instdir.display().to_string(),
                dpkg.extra_args
            ),
            format!(
                "[facts]\ndpkg_admindir = {:?}\n",
                dpkg.admindir.display().to_string()
            ),
        )
    });
    let dir = agent.dir.path().to_path_buf();
    let dpkg = Dpkg::at(&dir);
    let name = format!("openwua-e2e-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let deb = std::fs::read(build_deb(&dir, &name, None)).unwrap();
    publish(
        &agent,
        vec![update_with(
            &dir,
            1,
            "Debian package",
            &[(&format!("{name}_1.0_all.deb"), deb)],
            Handler::Dpkg {
                remove: vec![name.clone()],
            },
            Applicability {
                installed: Some(Rule::DebInstalled {
                    package: name.clone(),
                    version: None,
                }),
                ..Applicability::default()
            },
            json!({}),
        )],
    );

    let before = search(&agent, "IsInstalled=0", json!({})).unwrap();
    assert_eq!(titles(&before), ["Debian package"]);
    assert_eq!(state(&agent, 1)["isInstalled"], json!(false));

    let download = job(&agent, DOWNLOAD, &[1]);
    assert_eq!(codes(&download), pairs(&[("Succeeded", "0x00000000")]));
    let install = job(&agent, INSTALL, &[1]);
    assert_eq!(codes(&install), pairs(&[("Succeeded", "0x00000000")]));
    assert_eq!(install["result"]["resultCode"], "Succeeded");
    assert_eq!(dpkg.status(&name), "install ok installed");
    let file = dir.join("root/opt").join(&name).join("hello.txt");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hello\n");
    assert_eq!(state(&agent, 1)["isInstalled"], json!(true));
    let after = search(&agent, "IsInstalled=1", json!({})).unwrap();
    assert_eq!(titles(&after), ["Debian package"]);

    let uninstall = job(&agent, UNINSTALL, &[1]);
    assert_eq!(codes(&uninstall), pairs(&[("Succeeded", "0x00000000")]));
    assert!(
        !dpkg.status(&name).contains("installed"),
        "{}",
        dpkg.status(&name)
    );
    assert!(!file.exists());
    assert_eq!(state(&agent, 1)["isInstalled"], json!(false));

    assert_eq!(
        history(&agent),
        [
            entry(
                "Uninstallation",
                "Succeeded",
                "0x00000000",
                "Debian package"
            ),
            entry("Installation", "Succeeded", "0x00000000", "Debian package"),
        ]
    );

    // dpkg's database decides, not the agent's record (which says
    // uninstalled): installed behind the agent's back, a rescan sees it.
    let output = Command::new("dpkg")
        // dpkg wants ldconfig and start-stop-daemon, which a normal user's
        // PATH leaves out.
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .arg(format!("--admindir={}", dpkg.admindir.display()))
        .arg(format!("--instdir={}", dpkg.instdir.display()))
        .args(&dpkg.extra_args)
        .arg("--install")
        .arg(dir.join(format!("{name}_1.0_all.deb")))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    agent.call("org.openwua.Agent.Sync", json!({})).unwrap();
    assert_eq!(state(&agent, 1)["isInstalled"], json!(true));
    let again = job(&agent, INSTALL, &[1]);
    assert_eq!(codes(&again), pairs(&[("Succeeded", "0x00240006")])); // WU_S_ALREADY_INSTALLED
}

// ---- 2. files -----------------------------------------------------------

#[test]
fn files_update_replaces_a_file_and_uninstall_restores_it_exactly() {
    let agent = AgentProcess::start(&[]);
    let dir = agent.dir.path().to_path_buf();
    let root = dir.join("files-root");
    let target = root.join("etc/app/app.conf");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let previous = b"# the administrator's own settings\nkeep = yes\n".to_vec();
    std::fs::write(&target, &previous).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();

    let shipped = b"# shipped by the update\nkeep = no\n".to_vec();
    publish(
        &agent,
        vec![update_with(
            &dir,
            1,
            "Configuration",
            &[("app.conf", shipped.clone())],
            Handler::Files {
                root: root.display().to_string(),
                files: vec![FilePlacement {
                    source: "app.conf".into(),
                    target: "etc/app/app.conf".into(),
                    mode: Some("0644".into()),
                }],
            },
            Applicability::default(),
            json!({}),
        )],
    );
    job(&agent, DOWNLOAD, &[1]);
    let install = job(&agent, INSTALL, &[1]);
    assert_eq!(codes(&install), pairs(&[("Succeeded", "0x00000000")]));
    assert_eq!(std::fs::read(&target).unwrap(), shipped);
    assert_eq!(mode_of(&target), 0o644);
    assert_eq!(state(&agent, 1)["isInstalled"], json!(true));

    let uninstall = job(&agent, UNINSTALL, &[1]);
    assert_eq!(codes(&uninstall), pairs(&[("Succeeded", "0x00000000")]));
    assert_eq!(std::fs::read(&target).unwrap(), previous);
    assert_eq!(mode_of(&target), 0o600);
    assert_eq!(state(&agent, 1)["isInstalled"], json!(false));
}

// ---- 3. bundles ---------------------------------------------------------

#[test]
fn a_bundle_installs_its_children_first_in_order() {
    let agent = AgentProcess::start(&[]);
    let dir = agent.dir.path().to_path_buf();
    let child = |n: u128| json!({ "updateId": Uuid::from_u128(n), "revisionNumber": 1 });
    publish(
        &agent,
        vec![
            ordered(&dir, 1, "child1", json!({})),
            ordered(&dir, 2, "child2", json!({})),
            ordered(
                &dir,
                3,
                "parent",
                json!({ "bundledUpdates": [child(1), child(2)] }),
            ),
        ],
    );
    let download = job(&agent, DOWNLOAD, &[3]);
    assert_eq!(codes(&download), pairs(&[("Succeeded", "0x00000000")]));
    // The children's content came along with the parent's.
    assert_eq!(state(&agent, 1)["isDownloaded"], json!(true));
    assert_eq!(state(&agent, 2)["isDownloaded"], json!(true));

    let install = job(&agent, INSTALL, &[3]);
    assert_eq!(codes(&install), pairs(&[("Succeeded", "0x00000000")]));
    assert_eq!(
        std::fs::read_to_string(sandbox(&agent).join("order")).unwrap(),
        "child1\nchild2\nparent\n"
    );
    assert_eq!(state(&agent, 3)["isInstalled"], json!(true));
}

// ---- 4. prerequisites ---------------------------------------------------

#[test]
fn a_prerequisite_in_the_same_call_runs_first() {
    let agent = AgentProcess::start(&[]);
    let dir = agent.dir.path().to_path_buf();
    let (mut b, b_files) = ordered(&dir, 2, "B", json!({}));
    b.applicability.prerequisites = vec![Uuid::from_u128(1)];
    publish(&agent, vec![ordered(&dir, 1, "A", json!({})), (b, b_files)]);
    // B does not apply before A is installed, so only a forced download
    // fetches it.
    let download = run_job(
        &agent,
        DOWNLOAD,
        json!({ "updateIds": [id(1), id(2)], "isForced": true }),
    )
    .unwrap();
    assert_eq!(
        codes(&download),
        pairs(&[("Succeeded", "0x00000000"), ("Succeeded", "0x00000000")])
    );
    let hidden = search(&agent, "IsInstalled=0", json!({})).unwrap();
    assert_eq!(titles(&hidden), ["A"]);

    // B alone, with A not installed: refused, and nothing ran.
    let alone = job(&agent, INSTALL, &[2]);
    assert_eq!(codes(&alone), pairs(&[("Failed", "0x80240017")])); // WU_E_NOT_APPLICABLE
    assert!(!sandbox(&agent).join("order").exists());

    // B then A in one call: A runs first, results stay in the call's order.
    let both = job(&agent, INSTALL, &[2, 1]);
    let results: Vec<&str> = both["result"]["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|update| update["title"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["B", "A"]);
    assert_eq!(
        codes(&both),
        pairs(&[("Succeeded", "0x00000000"), ("Succeeded", "0x00000000")])
    );
    assert_eq!(
        std::fs::read_to_string(sandbox(&agent).join("order")).unwrap(),
        "A\nB\n"
    );
    assert_eq!(state(&agent, 1)["isInstalled"], json!(true));
    assert_eq!(state(&agent, 2)["isInstalled"], json!(true));
}

// ---- 5. authorization ---------------------------------------------------

#[test]
fn a_non_admin_may_neither_download_nor_install() {
    if !is_root() {
        skip(
            "a_non_admin_may_neither_download_nor_install",
            "needs root to create a throwaway user",
        );
        return;
    }
    let user = ThrowawayUser::create("owua-inst");
    let agent = AgentProcess::start(&[]);
    // tempfile makes 0700 directories; the user must reach the socket.
    std::fs::set_permissions(agent.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = agent.dir.path().to_path_buf();
    publish(&agent, vec![ordered(&dir, 1, "Tool", json!({}))]);

    let download = user.call(&agent.socket(), DOWNLOAD, json!({ "updateIds": [id(1)] }));
    assert_eq!(
        download["error"], "org.openwua.Agent.WuaError",
        "{download}"
    );
    assert_eq!(download["parameters"]["name"], "E_ACCESSDENIED");
    assert_eq!(download["parameters"]["hresult"], "0x80070005");
    assert_eq!(state(&agent, 1)["isDownloaded"], json!(false));

    // Root downloads; the user still may not install.
    job(&agent, DOWNLOAD, &[1]);
    // Refused as a whole, before any job or history (WUA's installer is
    // the administrators').
    let install = user.call(&agent.socket(), INSTALL, json!({ "updateIds": [id(1)] }));
    assert_eq!(install["error"], "org.openwua.Agent.WuaError", "{install}");
    assert_eq!(install["parameters"]["name"], "E_ACCESSDENIED");
    assert!(!sandbox(&agent).join("order").exists());
    assert_eq!(state(&agent, 1)["isInstalled"], json!(false));
    assert!(history(&agent).is_empty());
}

// ---- 6. a hung installer ------------------------------------------------

#[test]
fn a_hung_installer_times_out_and_the_next_install_runs() {
    let agent = AgentProcess::start(&[]);
    let dir = agent.dir.path().to_path_buf();
    let (mut hung, hung_files) = installable(
        &dir,
        1,
        "Hangs",
        Installer {
            script: "sleep 30".into(),
            uninstall: false,
            exit_codes: json!({ "codes": [{ "code": 0, "outcome": "succeeded" }] }),
        },
        json!({}),
    );
    if let Handler::Command {
        timeout_seconds, ..
    } = &mut hung.handler
    {
        *timeout_seconds = Some(1);
    }
    publish(
        &agent,
        vec![
            (hung, vec![hung_files]),
            ordered(&dir, 2, "Quick", json!({})),
        ],
    );
    job(&agent, DOWNLOAD, &[1, 2]);
    let install = job(&agent, INSTALL, &[1]);
    assert_eq!(codes(&install), pairs(&[("Failed", "0x80242007")])); // WU_E_UH_INSTALLERHUNG
    assert_eq!(state(&agent, 1)["isInstalled"], json!(false));

    let state_now = agent
        .call("org.openwua.Agent.GetInstallerState", json!({}))
        .unwrap();
    assert_eq!(state_now["state"]["isBusy"], json!(false));
    let next = job(&agent, INSTALL, &[2]);
    assert_eq!(codes(&next), pairs(&[("Succeeded", "0x00000000")]));
    assert_eq!(
        std::fs::read_to_string(sandbox(&agent).join("order")).unwrap(),
        "Quick\n"
    );
}
