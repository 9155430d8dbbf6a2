//! Real Debian packages and a throwaway dpkg database for the handler
//! tests: packages built with dpkg-deb, installed with the real dpkg into a
//! database and root of the test's own, as root or not.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A dpkg database and root under a test's directory.
pub struct Dpkg {
    /// dpkg's `--admindir`.
    pub admindir: PathBuf,
    /// dpkg's `--instdir`.
    pub instdir: PathBuf,
    /// What else dpkg needs to use them.
    pub extra_args: Vec<String>,
}

impl Dpkg {
    /// Creates an empty database and root in `dir`.
    pub fn throwaway(dir: &Path) -> Dpkg {
        let dpkg = Dpkg::at(dir);
        for path in [
            dpkg.admindir.join("info"),
            dpkg.admindir.join("updates"),
            dpkg.instdir.clone(),
        ] {
            std::fs::create_dir_all(path).unwrap();
        }
        std::fs::write(dpkg.admindir.join("status"), "").unwrap();
        std::fs::write(dpkg.admindir.join("available"), "").unwrap();
        dpkg
    }

    /// The one [`Dpkg::throwaway`] made in `dir`.
    pub fn at(dir: &Path) -> Dpkg {
        let admindir = dir.join("dpkg");
        let instdir = dir.join("root");
        let extra_args = vec![
            // Harmless as root; needed without it.
            "--force-not-root".to_owned(),
            // Maintainer scripts run outside instdir, which holds no shell.
            "--force-script-chrootless".to_owned(),
            // Not the machine's /var/log/dpkg.log.
            format!("--log={}", dir.join("dpkg.log").display()),
        ];
        Dpkg {
            admindir,
            instdir,
            extra_args,
        }
    }

    /// dpkg-query's `${Status}` of a package in this database.
    pub fn status(&self, package: &str) -> String {
        let output = Command::new("dpkg-query")
            .arg(format!("--admindir={}", self.admindir.display()))
            .args(["-W", "-f=${Status}", package])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// Builds `dir/<name>_1.0_all.deb` with one file, /opt/<name>/hello.txt,
/// and a postinst when given.
pub fn build_deb(dir: &Path, name: &str, postinst: Option<&str>) -> PathBuf {
    let tree = dir.join(format!("build-{name}"));
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(tree.join("opt").join(name)).unwrap();
    std::fs::write(tree.join("opt").join(name).join("hello.txt"), "hello\n").unwrap();
    std::fs::write(
        tree.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: 1.0\nArchitecture: all\n\
             Maintainer: OpenWUA tests <tests@example.invalid>\n\
             Description: an OpenWUA test package\n"
        ),
    )
    .unwrap();
    if let Some(body) = postinst {
        let path = tree.join("DEBIAN/postinst");
        std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let deb = dir.join(format!("{name}_1.0_all.deb"));
    let output = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&tree)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    deb
}
