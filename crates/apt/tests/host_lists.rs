//! The host's own apt lists and dpkg status, read-only: they verify and
//! parse completely, and the sources with a newer version than an
//! installed binary are exactly those of `apt list --upgradable`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use openwua_apt::{AptPaths, scan_machine};
use openwua_catalog::revision::Handler;

#[test]
fn host_lists_verify_and_needed_sources_match_apt() {
    let paths = AptPaths::new(Path::new("/"), Path::new("/var/lib/dpkg"));
    if !paths.dpkg_admindir.join("status").exists() {
        openwua_testkit::skip("host_lists", "no dpkg database on this host");
        return;
    }
    let scan = scan_machine(&paths, jiff::Timestamp::now())
        .unwrap_or_else(|error| panic!("{error} ({})", error.hresult()));
    if scan.lists.is_empty() {
        openwua_testkit::skip(
            "host_lists",
            "apt has no lists here (run apt-get update; scripts/setup-test-machine does)",
        );
        return;
    }
    assert!(
        scan.lists.iter().all(|list| list.packages > 0),
        "{:?}",
        scan.lists
    );
    assert!(!scan.installed.is_empty());

    // The installed binaries, by name:arch and by name for `all`.
    let mut installed: HashMap<(String, String), debversion::Version> = HashMap::new();
    let mut source_of: HashMap<String, String> = HashMap::new();
    for package in &scan.installed {
        installed.insert(
            (package.name.clone(), package.architecture.clone()),
            package.version.parse().unwrap(),
        );
        source_of.insert(package.name.clone(), package.source.clone());
    }
    let mut needed = BTreeSet::new();
    for revision in &scan.revisions {
        let Handler::Apt { packages, .. } = &revision.handler else {
            panic!("{}: not an apt handler", revision.update.title)
        };
        let source = revision.update.title.split(' ').next().unwrap().to_owned();
        for package in packages {
            let offered: debversion::Version = package.version.parse().unwrap();
            let key = (package.name.clone(), package.architecture.clone());
            if installed
                .get(&key)
                .is_some_and(|version| *version < offered)
            {
                needed.insert(source.clone());
            }
        }
    }

    let output = Command::new("apt")
        .args(["list", "--upgradable"])
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert!(output.status.success());
    let upgradable: BTreeSet<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_once('/'))
        .map(|(name, _)| {
            source_of
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.to_owned())
        })
        .collect();
    assert_eq!(needed, upgradable);
}
