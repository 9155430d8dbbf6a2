//! Evaluating a revision's applicability rules against this machine.
//!
//! [`Machine`] gathers the facts once per scan (installed Debian packages
//! from dpkg's own database, `/etc/os-release`, `uname`) and reads files
//! only when a rule asks about them. Paths in rules are resolved under the
//! configured root, so tests can check a directory instead of `/`.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use openwua_catalog::package::HashingReader;
use openwua_catalog::revision::Rule;
use openwua_model::update::Sha256Digest;

use crate::config::FactSources;

/// What the rules can ask about this machine.
#[derive(Debug, Default)]
pub struct Machine {
    root: PathBuf,
    /// Installed packages: name and `name:arch` → version.
    packages: HashMap<String, debversion::Version>,
    os_release: HashMap<String, String>,
    architecture: String,
    kernel_release: Option<debversion::Version>,
}

impl Machine {
    /// Reads the facts. A fact that cannot be read is absent, and rules
    /// that need it are false; the reason is logged.
    pub fn read(sources: &FactSources) -> Machine {
        let uname = nix::sys::utsname::uname();
        let (architecture, kernel) = match &uname {
            Ok(uname) => (
                uname.machine().to_string_lossy().into_owned(),
                uname.release().to_string_lossy().into_owned(),
            ),
            Err(error) => {
                tracing::warn!("uname failed: {error}");
                (String::new(), String::new())
            }
        };
        Machine {
            root: sources.root.clone(),
            packages: installed_packages(&sources.dpkg_admindir),
            os_release: read_os_release(&sources.os_release),
            architecture,
            kernel_release: kernel.parse().ok(),
        }
    }

    /// Whether `rule` holds here.
    pub fn evaluate(&self, rule: &Rule) -> bool {
        match rule {
            Rule::All(rules) => rules.iter().all(|rule| self.evaluate(rule)),
            Rule::Any(rules) => rules.iter().any(|rule| self.evaluate(rule)),
            Rule::Not(rule) => !self.evaluate(rule),
            Rule::FileExists(path) => self
                .resolve(path)
                .is_some_and(|path| path.symlink_metadata().is_ok()),
            Rule::FileSha256 { path, sha256 } => self
                .resolve(path)
                .and_then(|path| file_sha256(&path))
                .is_some_and(|digest| digest == *sha256),
            Rule::DebInstalled { package, version } => {
                self.packages
                    .get(package)
                    .is_some_and(|installed| match version {
                        Some(constraint) => constraint.matches(installed),
                        None => true,
                    })
            }
            Rule::OsRelease { field, equals } => self.os_release.get(field) == Some(equals),
            Rule::Architecture(architecture) => self.architecture == *architecture,
            Rule::KernelRelease(constraint) => self
                .kernel_release
                .as_ref()
                .is_some_and(|release| constraint.matches(release)),
        }
    }

    /// `path` under the configured root. Relative paths and `..` are not
    /// allowed in rules: they would escape the root.
    fn resolve(&self, path: &str) -> Option<PathBuf> {
        let path = Path::new(path);
        if !path.is_absolute() || path.components().any(|part| part == Component::ParentDir) {
            return None;
        }
        Some(self.root.join(path.strip_prefix("/").ok()?))
    }
}

fn file_sha256(path: &Path) -> Option<Sha256Digest> {
    let mut reader = HashingReader::new(std::fs::File::open(path).ok()?);
    std::io::copy(&mut reader, &mut std::io::sink()).ok()?;
    Some(reader.finish().0)
}

/// Installed packages, from dpkg itself (`dpkg-query`), so the answer is
/// dpkg's whatever its database format.
fn installed_packages(admindir: &Path) -> HashMap<String, debversion::Version> {
    let output = Command::new("dpkg-query")
        .arg(format!("--admindir={}", admindir.display()))
        .args([
            "-W",
            "-f",
            "${Package}\t${Architecture}\t${Version}\t${db:Status-Abbrev}\n",
        ])
        .env("LC_ALL", "C")
        .output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            tracing::warn!(
                "dpkg-query --admindir={} failed: {}",
                admindir.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return HashMap::new();
        }
        Err(error) => {
            tracing::warn!("cannot run dpkg-query: {error}; deb_installed rules are false");
            return HashMap::new();
        }
    };
    let mut packages = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut fields = line.split('\t');
        let (Some(name), Some(arch), Some(version), Some(status)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        // "ii " is desired install, currently installed, no error.
        if !status.starts_with("ii") {
            continue;
        }
        let Ok(version) = version.parse::<debversion::Version>() else {
            continue;
        };
        packages.insert(format!("{name}:{arch}"), version.clone());
        packages.insert(name.to_owned(), version);
    }
    packages
}

/// `/etc/os-release`: `KEY=value` lines, values optionally quoted.
fn read_os_release(path: &Path) -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        tracing::warn!("cannot read {}; os_release rules are false", path.display());
        return HashMap::new();
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| {
            let value = value.trim();
            let unquoted = value
                .strip_prefix('"')
                .and_then(|value| value.strip_suffix('"'))
                .or_else(|| {
                    value
                        .strip_prefix('\'')
                        .and_then(|value| value.strip_suffix('\''))
                })
                .unwrap_or(value);
            (key.trim().to_owned(), unquoted.replace("\\\"", "\""))
        })
        .collect()
}
