//! One update revision as a catalog carries it.
//!
//! A [`Revision`] is the model's [`Update`] plus what the agent needs to act
//! on it: [`Applicability`] rules, a [`Handler`] that installs it, and its
//! [`ContentFile`]s. The same types are what TOML manifests are written in
//! (see `docs/catalog.md`), so authoring and the signed catalog never drift.

use std::fmt;
use std::str::FromStr;

use openwua_model::update::{Sha256Digest, Update};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One update revision: metadata, rules, installer and content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Revision {
    /// What WUA's object model says about it.
    pub update: Update,
    /// Machines start with it hidden (`IsHidden`), until an administrator
    /// unhides it. An OpenWUA extension: WUA's hidden flag is per machine,
    /// and this only sets its first value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden_by_default: bool,
    /// Whether it applies to a machine, and whether it is installed there.
    #[serde(default)]
    pub applicability: Applicability,
    /// What installs it.
    pub handler: Handler,
    /// Its content files, with where to fetch each one. Their names, sizes
    /// and digests equal `update.download_contents`.
    #[serde(default)]
    pub content: Vec<ContentFile>,
}

/// The longest content file name, in bytes: what Linux file systems take.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// Checks that `name` can be a content file's name: the agent puts content
/// files in one directory under their names, so a name must be a single
/// plain path component (not empty, not `.` or `..`, without `/`, NUL or
/// other control characters, at most [`MAX_FILE_NAME_BYTES`] bytes).
/// The error says why, naming `name`.
pub fn check_file_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= MAX_FILE_NAME_BYTES
        && !name.chars().any(|c| c == '/' || c.is_control());
    if plain {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a plain file name: one path component, not `.` or `..`, \
             at most {MAX_FILE_NAME_BYTES} bytes, without `/` or control characters"
        ))
    }
}

/// One content file and where it lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContentFile {
    /// The file's name in the update's content directory: a plain name
    /// ([`check_file_name`]).
    pub file_name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256 digest, which the agent verifies.
    pub sha256: Sha256Digest,
    /// Its URL relative to the service's content base; builders use
    /// `content/<sha256>`, so identical files are stored once.
    pub url: String,
}

/// The rules that decide what an update is on one machine.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Applicability {
    /// `IsInstallable`: it applies here. Absent means it applies everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installable: Option<Rule>,
    /// `IsInstalled`: it is already on the machine. Absent means the
    /// agent's own install record decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed: Option<Rule>,
    /// Updates (by `UpdateID`) that must be installed before this one applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<Uuid>,
}

/// An applicability rule: a fact about the machine, or a combination.
///
/// In TOML each rule is a one-key table: `{ file_exists = "/etc/foo" }`,
/// `{ all = [ … ] }`, `{ deb_installed = { package = "openssl", version = ">= 3.0.11" } }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// Every rule holds (true when empty).
    All(Vec<Rule>),
    /// At least one rule holds (false when empty).
    Any(Vec<Rule>),
    /// The rule does not hold.
    Not(Box<Rule>),
    /// A file or directory exists at this absolute path.
    FileExists(String),
    /// A regular file at this path has this SHA-256 digest.
    FileSha256 {
        /// The absolute path.
        path: String,
        /// The digest it must have.
        sha256: Sha256Digest,
    },
    /// A Debian package is installed (dpkg status `install ok installed`),
    /// optionally in versions that satisfy a constraint.
    DebInstalled {
        /// The package name, optionally `name:arch`.
        package: String,
        /// The version constraint, in Debian's order (`>= 3.0.11-1`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<VersionConstraint>,
    },
    /// A field of `/etc/os-release` has this value (`ID`, `VERSION_ID`, …).
    OsRelease {
        /// The field name.
        field: String,
        /// The value it must have, compared exactly.
        equals: String,
    },
    /// The machine's architecture, as `uname -m` prints it (`x86_64`, `aarch64`).
    Architecture(String),
    /// The running kernel's release (`uname -r`) satisfies a constraint,
    /// compared in Debian's version order.
    KernelRelease(VersionConstraint),
}

/// A version comparison in Debian's ordering: `<<`, `<=`, `=`, `>=`, `>>`
/// (dpkg's operators) or `!=`, then a version. Written as one string,
/// `">= 3.0.11-1"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionConstraint {
    /// The comparison.
    pub op: VersionOp,
    /// The version compared against.
    pub version: debversion::Version,
}

/// A comparison operator of a [`VersionConstraint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionOp {
    /// `<<`: strictly earlier.
    Earlier,
    /// `<=`: earlier or equal.
    EarlierOrEqual,
    /// `=`: equal.
    Equal,
    /// `!=`: not equal.
    NotEqual,
    /// `>=`: later or equal.
    LaterOrEqual,
    /// `>>`: strictly later.
    Later,
}

impl VersionOp {
    const SPELLINGS: [(&'static str, VersionOp); 6] = [
        ("<<", VersionOp::Earlier),
        ("<=", VersionOp::EarlierOrEqual),
        ("!=", VersionOp::NotEqual),
        (">=", VersionOp::LaterOrEqual),
        (">>", VersionOp::Later),
        ("=", VersionOp::Equal),
    ];

    fn spelling(self) -> &'static str {
        Self::SPELLINGS
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("=", |(text, _)| text)
    }
}

impl VersionConstraint {
    /// Whether `version` satisfies the constraint.
    pub fn matches(&self, version: &debversion::Version) -> bool {
        let ordering = version.cmp(&self.version);
        match self.op {
            VersionOp::Earlier => ordering.is_lt(),
            VersionOp::EarlierOrEqual => ordering.is_le(),
            VersionOp::Equal => ordering.is_eq(),
            VersionOp::NotEqual => ordering.is_ne(),
            VersionOp::LaterOrEqual => ordering.is_ge(),
            VersionOp::Later => ordering.is_gt(),
        }
    }
}

impl fmt::Display for VersionConstraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op.spelling(), self.version)
    }
}

impl FromStr for VersionConstraint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (op, rest) = VersionOp::SPELLINGS
            .iter()
            .find_map(|(spelling, op)| text.strip_prefix(spelling).map(|rest| (*op, rest)))
            .ok_or_else(|| {
                format!("version constraint {text:?} must start with <<, <=, =, !=, >= or >>")
            })?;
        let version = rest
            .trim()
            .parse()
            .map_err(|error| format!("version constraint {text:?}: {error}"))?;
        Ok(VersionConstraint { op, version })
    }
}

impl Serialize for VersionConstraint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for VersionConstraint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What installs an update. The install engine (the download-and-install
/// issue) runs it; the catalog only describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Handler {
    /// Run a program from the payload (relative path) or the system
    /// (absolute path) with arguments.
    Command {
        /// The program.
        program: String,
        /// Its arguments.
        #[serde(default)]
        args: Vec<String>,
        /// The program and arguments that uninstall it, if it can be.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uninstall: Option<Vec<String>>,
        /// How exit codes map to results.
        #[serde(default)]
        exit_codes: ExitCodeMap,
        /// Seconds before the installer is stopped (default 3600).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_seconds: Option<u64>,
    },
    /// Install the update's `.deb` content files with dpkg.
    Dpkg {
        /// The package names to remove on uninstall.
        #[serde(default)]
        remove: Vec<String>,
    },
    /// Place content files under a root directory, atomically, keeping what
    /// they replace for uninstall.
    Files {
        /// The directory the targets are relative to.
        root: String,
        /// Which content file goes where.
        files: Vec<FilePlacement>,
    },
    /// Install exact versions of Debian binary packages through apt, from
    /// the repositories the machine's apt already knows (`docs/apt.md`).
    /// Only the packages the machine already has are installed; apt adds
    /// what their dependencies need. Never uninstalled: Debian cannot
    /// downgrade safely.
    Apt {
        /// Every binary package the update's source builds at this version
        /// for the architectures the repository offers.
        packages: Vec<AptPackage>,
        /// The suites (pockets) whose lists offer this version, by their
        /// codename (`bookworm-security`), sorted; for people to read. Not
        /// part of the `RevisionNumber`: it names where the packages come
        /// from, not what they install.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        suites: Vec<String>,
    },
}

/// One binary package of an `apt` handler, as the repository's index
/// describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct AptPackage {
    /// The package name.
    pub name: String,
    /// Its architecture (`amd64`, `all`, …).
    pub architecture: String,
    /// The exact version to install.
    pub version: String,
    /// The `.deb`'s size in bytes (`Size`).
    pub size: u64,
    /// The `.deb`'s SHA-256 digest (`SHA256`).
    pub sha256: Sha256Digest,
    /// The index says it uses debconf (it depends on `debconf` or
    /// `debconf-2.0`), so installing it may ask questions.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uses_debconf: bool,
}

impl AptPackage {
    /// The name its `.deb` has among an update's content files, when an
    /// update server delivers it (`name_version_arch.deb`, the epoch's `:`
    /// written `%3a` as apt does): how the apt handler finds it there.
    pub fn deb_file_name(&self) -> String {
        format!(
            "{}_{}_{}.deb",
            self.name,
            self.version.replace(':', "%3a"),
            self.architecture
        )
    }
}

/// One file a `files` handler places.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct FilePlacement {
    /// The content file's name.
    pub source: String,
    /// Its path relative to the handler's root.
    pub target: String,
    /// Its permission bits, in octal text (`"0644"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// How a `command` installer's exit codes map to results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct ExitCodeMap {
    /// Codes with their own meaning.
    #[serde(default)]
    pub codes: Vec<ExitCodeRule>,
    /// The meaning of every other code.
    #[serde(default = "ExitOutcome::failed")]
    pub default: ExitOutcome,
}

impl Default for ExitCodeMap {
    /// 0 succeeds, everything else fails.
    fn default() -> Self {
        ExitCodeMap {
            codes: vec![ExitCodeRule {
                code: 0,
                outcome: ExitOutcome::Succeeded,
            }],
            default: ExitOutcome::Failed,
        }
    }
}

impl ExitCodeMap {
    /// What `code` means.
    pub fn outcome(&self, code: i32) -> ExitOutcome {
        self.codes
            .iter()
            .find(|rule| rule.code == code)
            .map_or(self.default, |rule| rule.outcome)
    }
}

/// One exit code and its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct ExitCodeRule {
    /// The installer's exit code.
    pub code: i32,
    /// What it means.
    pub outcome: ExitOutcome,
}

/// What an installer's exit means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitOutcome {
    /// Installed.
    Succeeded,
    /// Installed; a restart finishes it.
    SucceededRebootRequired,
    /// Failed.
    Failed,
}

impl ExitOutcome {
    fn failed() -> Self {
        ExitOutcome::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constraint(text: &str) -> VersionConstraint {
        text.parse().unwrap()
    }

    fn version(text: &str) -> debversion::Version {
        text.parse().unwrap()
    }

    #[test]
    fn constraints_parse_every_operator_and_print_back() {
        for (text, op) in [
            ("<< 1.0", VersionOp::Earlier),
            ("<= 1.0", VersionOp::EarlierOrEqual),
            ("= 1.0", VersionOp::Equal),
            ("!= 1.0", VersionOp::NotEqual),
            (">= 1.0", VersionOp::LaterOrEqual),
            (">> 1.0", VersionOp::Later),
        ] {
            let parsed = constraint(text);
            assert_eq!(parsed.op, op, "{text}");
            assert_eq!(parsed.to_string(), text);
        }
        // Spaces are optional, and kept out of the version.
        let tight = constraint(">=3.0.11-1~deb12u1");
        assert_eq!(tight.to_string(), ">= 3.0.11-1~deb12u1");
        assert_eq!(constraint("  <<  1:2.0  ").to_string(), "<< 1:2.0");
    }

    #[test]
    fn bad_constraints_say_what_is_wrong() {
        for text in ["1.0", "> 1.0", "< 1.0", "== 1.0", "", ">="] {
            assert!(text.parse::<VersionConstraint>().is_err(), "{text:?}");
        }
        let error = "~> 2".parse::<VersionConstraint>().unwrap_err();
        assert!(error.contains("must start with"), "{error}");
    }

    #[test]
    fn matching_follows_debian_order() {
        let cases = [
            // A tilde sorts before everything, even the end of the version.
            ("1.0~rc1", "<< 1.0", true),
            ("1.0~rc1", ">= 1.0", false),
            ("1.0~rc1", ">> 1.0~beta2", true),
            ("1.0", ">> 1.0~rc1", true),
            // An epoch outweighs everything after it.
            ("1:0.9", ">> 2.0", true),
            ("2.0", "<< 1:0.9", true),
            ("0:2.0", "= 2.0", true),
            // The Debian revision counts after the upstream version.
            ("1.0-2", ">> 1.0-1", true),
            ("1.0-1", ">= 1.0", true),
            ("3.0.15-1~deb12u1", "<< 3.0.15-1", true),
            ("5.6.1+really5.4.5-1", ">> 5.6.1", true),
            // Numbers compare as numbers.
            ("1.10", ">> 1.9", true),
            ("2026b-0+deb12u1", ">= 2026b", true),
            ("2025b-0+deb12u2", ">= 2026b", false),
            ("1.0", "!= 1.0", false),
            ("1.0", "<= 1.0", true),
        ];
        for (installed, text, expected) in cases {
            assert_eq!(
                constraint(text).matches(&version(installed)),
                expected,
                "{installed} {text}"
            );
        }
    }

    #[test]
    fn constraints_are_strings_in_json() {
        let parsed: VersionConstraint = serde_json::from_str("\">= 1:9.2p1-2\"").unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), "\">= 1:9.2p1-2\"");
        assert!(serde_json::from_str::<VersionConstraint>("\"9.2\"").is_err());
    }
}
