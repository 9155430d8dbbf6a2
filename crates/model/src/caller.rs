//! Who is calling: the context the agent derives for a connection from
//! kernel facts and root-owned records, with the evidence it used.
//!
//! The agent fills a [`CallerContext`] when a client connects
//! (`GetCallerContext` returns it; `wua context` prints it). Only
//! *interaction* depends on it: whether an update that can ask the user
//! questions may be installed by this caller (`WU_E_NO_INTERACTIVE_USER`
//! otherwise). Authorization (uid and groups) is decided separately.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kind of logon a caller comes from (DESIGN.md "Who is calling").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CallerClass {
    /// The session's owner at that session's terminal (console or remote).
    Interactive,
    /// Root, at the terminal of a user's session (`sudo` there): UAC elevation.
    Elevated,
    /// Another user inside someone's session (`su`, `sudo -u`, `runuser`): Run As.
    SecondaryLogon,
    /// A remote session without a terminal (`ssh host cmd`): a network logon.
    RemoteNoTerminal,
    /// cron, at, timers, or a local session away from its terminal.
    Batch,
    /// No login session at all: init, a system unit, the agent itself.
    Service,
}

impl CallerClass {
    /// One line for people, as `wua context` prints it.
    pub fn describe(&self) -> &'static str {
        match self {
            CallerClass::Interactive => "interactive (the session owner at its own terminal)",
            CallerClass::Elevated => "elevated (root at a user's terminal: sudo, su)",
            CallerClass::SecondaryLogon => "secondary logon (Run As: su, sudo -u, runuser)",
            CallerClass::RemoteNoTerminal => "remote, no terminal (ssh host command)",
            CallerClass::Batch => "batch (cron, at, timers, or a session away from its terminal)",
            CallerClass::Service => "service (no login session: a system service or daemon)",
        }
    }

    /// The name as it appears in JSON (`"secondaryLogon"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            CallerClass::Interactive => "interactive",
            CallerClass::Elevated => "elevated",
            CallerClass::SecondaryLogon => "secondaryLogon",
            CallerClass::RemoteNoTerminal => "remoteNoTerminal",
            CallerClass::Batch => "batch",
            CallerClass::Service => "service",
        }
    }
}

impl std::fmt::Display for CallerClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One fact about the caller and where the agent read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallerFact {
    /// What it is about: `uid`, `groups`, `process`, `cgroup`, `session`,
    /// `sessionOwner`, `loginUid`, `auditSession`, `terminal`,
    /// `terminalOwner`, `remote`, `entry`, `fallback`, …
    pub name: String,
    /// The value, or a sentence when the fact is a finding
    /// ("loginuid 1001 is not backed by any login record: ignored").
    pub value: String,
    /// Where it came from: `SO_PEERCRED`, `/proc/1234/loginuid`,
    /// `logind /run/systemd/sessions/3`, `stat of /dev/pts/2`, …
    pub source: String,
}

impl CallerFact {
    /// A fact from its three parts.
    pub fn new(
        name: impl Into<String>,
        value: impl Into<String>,
        source: impl Into<String>,
    ) -> CallerFact {
        CallerFact {
            name: name.into(),
            value: value.into(),
            source: source.into(),
        }
    }
}

/// What the caller may do. `search` is everyone's; `download` and
/// `install` follow authorization (root or the admin group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallerPermissions {
    /// Search and read updates.
    pub search: bool,
    /// Download updates' content.
    pub download: bool,
    /// Install and uninstall updates that never ask the user anything.
    pub install: bool,
    /// Also install updates that can request user input
    /// (`InstallationBehavior.CanRequestUserInput`): an interactive (or,
    /// when configured, elevated) caller with a verified terminal.
    pub install_interactive: bool,
}

/// How the agent sees one connection's caller, with the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallerContext {
    /// The logon kind.
    pub class: CallerClass,
    /// The caller's effective uid when it connected (`SO_PEERCRED`).
    pub uid: u32,
    /// The session owner's uid, only when a root-owned record attests it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_uid: Option<u32>,
    /// The login session: logind's ID (`"3"`) or `"audit N"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The caller's own controlling terminal (`"/dev/pts/3"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal: Option<String>,
    /// The terminal is the session's and owned by the session's owner.
    pub terminal_verified: bool,
    /// The session is remote (sshd, logind `REMOTE=1`, a utmp host).
    pub remote: bool,
    /// The kernel gave no pidfd with the connection (before Linux 6.5):
    /// the process was pinned after the fact, so a small race remains.
    pub weak: bool,
    /// Every fact read, with its source.
    pub facts: Vec<CallerFact>,
    /// What the caller may do.
    pub may: CallerPermissions,
    /// When `may.install_interactive` is false: what to do instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

impl CallerContext {
    /// The facts named `name`, in the order they were read.
    pub fn facts_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a CallerFact> {
        self.facts.iter().filter(move |fact| fact.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_serialize_in_camel_case() {
        for class in [
            CallerClass::Interactive,
            CallerClass::Elevated,
            CallerClass::SecondaryLogon,
            CallerClass::RemoteNoTerminal,
            CallerClass::Batch,
            CallerClass::Service,
        ] {
            let json = serde_json::to_string(&class).expect("serializes");
            assert_eq!(json, format!("\"{}\"", class.as_str()));
            assert!(!class.describe().is_empty());
        }
    }

    #[test]
    fn context_round_trips() {
        let context = CallerContext {
            class: CallerClass::SecondaryLogon,
            uid: 1001,
            login_uid: Some(1000),
            session: Some("3".into()),
            terminal: Some("/dev/pts/2".into()),
            terminal_verified: true,
            remote: false,
            weak: false,
            facts: vec![CallerFact::new("uid", "1001", "SO_PEERCRED")],
            may: CallerPermissions {
                search: true,
                download: true,
                install: true,
                install_interactive: false,
            },
            advice: Some("log in as bob".into()),
        };
        let json = serde_json::to_value(&context).expect("serializes");
        assert_eq!(json["class"], "secondaryLogon");
        assert_eq!(json["loginUid"], 1000);
        assert_eq!(json["may"]["installInteractive"], false);
        let back: CallerContext = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, context);
    }
}
