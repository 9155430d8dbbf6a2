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

/// The digest of the regular file at `path`, if it is one. Directory
/// symlinks on the way are followed (`/bin` → `usr/bin` on merged-/usr
/// systems) but a symlink as the last component is not: the rule is about
/// the file named, and a link could point the agent, reading as root, at
/// anything. Anything else there (a FIFO, a device, a socket) is never
/// read, and never blocks the scan: the rule is false.
fn file_sha256(path: &Path) -> Option<Sha256Digest> {
    let file = match open_regular_file(path, Follow::Never) {
        Ok(file) => file,
        Err(error) => {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(
                    "file_sha256 rule: {}: {error}; the rule is false",
                    path.display()
                );
            }
            return None;
        }
    };
    let mut reader = HashingReader::new(file);
    std::io::copy(&mut reader, &mut std::io::sink()).ok()?;
    Some(reader.finish().0)
}

/// Whether [`open_regular_file`] follows a symlink at the path's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Refused (`ELOOP`): for paths others may be able to write to.
    Never,
    /// Followed: for paths the administrator configured.
    Always,
}

/// Opens `path` for reading only if it is a regular file: opened
/// non-blocking, so a FIFO there cannot stall the caller, and checked with
/// `fstat` before a byte is read (`O_NONBLOCK` changes nothing for a
/// regular file's reads).
pub fn open_regular_file(path: &Path, follow: Follow) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY;
    if follow == Follow::Never {
        flags |= nix::libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|error| {
            if error.raw_os_error() == Some(nix::libc::ELOOP) && follow == Follow::Never {
                std::io::Error::other("a symlink, which is not followed here")
            } else {
                error
            }
        })?;
    let file_type = file.metadata()?.file_type();
    if !file_type.is_file() {
        return Err(std::io::Error::other(format!(
            "not a regular file ({}), so it is not read",
            describe(file_type)
        )));
    }
    Ok(file)
}

fn describe(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "a special file"
    }
}

/// Installed packages, from dpkg itself (`dpkg-query`), so the answer is
/// dpkg's whatever its database format.
/// Installed packages in dpkg's database at `admindir`: name and
/// `name:arch` → version; empty (logged) when it cannot be read.
pub(crate) fn installed_packages(admindir: &Path) -> HashMap<String, debversion::Version> {
    // dpkg-query would block on a FIFO in place of its database.
    let status = admindir.join("status");
    if let Err(error) = open_regular_file(&status, Follow::Always) {
        tracing::warn!(
            "cannot read {}: {error}; deb_installed rules are false",
            status.display()
        );
        return HashMap::new();
    }
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

/// os-release(5) is a few hundred bytes; more is not an os-release file.
const MAX_OS_RELEASE_BYTES: usize = 64 * 1024;

/// `/etc/os-release`: `KEY=value` lines, values optionally quoted.
pub(crate) fn read_os_release(path: &Path) -> HashMap<String, String> {
    // Followed if a symlink: /etc/os-release usually is one, and the path
    // is the administrator's.
    let text = open_regular_file(path, Follow::Always).and_then(|file| {
        let mut text = String::new();
        let limit = u64::try_from(MAX_OS_RELEASE_BYTES).unwrap_or(u64::MAX);
        std::io::Read::read_to_string(&mut std::io::Read::take(file, limit + 1), &mut text)?;
        if text.len() > MAX_OS_RELEASE_BYTES {
            return Err(std::io::Error::other(format!(
                "longer than {MAX_OS_RELEASE_BYTES} bytes"
            )));
        }
        Ok(text)
    });
    let text = match text {
        Ok(text) => text,
        Err(error) => {
            tracing::warn!(
                "cannot read {}: {error}; os_release rules are false",
                path.display()
            );
            return HashMap::new();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_values_are_read_and_unquoted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os-release");
        std::fs::write(&path, "# comment\nID=debian\nVERSION_ID=\"12\"\n").unwrap();
        let values = read_os_release(&path);
        assert_eq!(values["ID"], "debian");
        assert_eq!(values["VERSION_ID"], "12");
    }

    #[test]
    fn an_os_release_file_past_the_limit_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os-release");
        let mut text = "ID=debian\n".to_owned();
        text.push_str(&"#".repeat(MAX_OS_RELEASE_BYTES));
        std::fs::write(&path, text).unwrap();
        assert!(read_os_release(&path).is_empty());
    }
}
