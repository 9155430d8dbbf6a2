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
    let deb = DebTree::new(dir, name).file(&format!("opt/{name}/hello.txt"), "hello\n");
    match postinst {
        Some(body) => deb.script("postinst", body),
        None => deb,
    }
    .build()
}

/// A test package's tree under `dir/build-<name>`, built into
/// `dir/<name>_1.0_all.deb`.
pub struct DebTree {
    dir: PathBuf,
    name: String,
    tree: PathBuf,
}

impl DebTree {
    /// The tree with just its control file.
    pub fn new(dir: &Path, name: &str) -> DebTree {
        let tree = dir.join(format!("build-{name}"));
        std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
        std::fs::write(
            tree.join("DEBIAN/control"),
            format!(
                "Package: {name}\nVersion: 1.0\nArchitecture: all\n\
                 Maintainer: OpenWUA tests <tests@example.invalid>\n\
                 Description: an OpenWUA test package\n"
            ),
        )
        .unwrap();
        DebTree {
            dir: dir.to_owned(),
            name: name.to_owned(),
            tree,
        }
    }

    /// A file the package installs, or (under `DEBIAN/`) a control file
    /// such as debconf's `templates`.
    pub fn file(self, path: &str, contents: &str) -> DebTree {
        let path = self.tree.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
        self
    }

    /// A maintainer script (`postinst`, debconf's `config`, ...): `sh -e`.
    pub fn script(self, script: &str, body: &str) -> DebTree {
        let path = self.tree.join("DEBIAN").join(script);
        std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    /// Runs dpkg-deb; the package's path.
    pub fn build(self) -> PathBuf {
        let deb = self.dir.join(format!("{}_1.0_all.deb", self.name));
        let output = Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&self.tree)
            .arg(&deb)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        deb
    }
}
