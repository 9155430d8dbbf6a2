//! Who is on the other end of a Unix socket, from the kernel's word.
//!
//! [`Caller::of_socket`] reads the peer: its uid, gid and pid come from
//! `SO_PEERCRED` (fixed when it connected); a pidfd from `SO_PEERPIDFD` pins
//! the process, and everything else — groups, login session, audit ids,
//! terminal — is read through that pinned process ([`gather`]), parsed
//! (`records.rs`) and classified ([`classify`]) into a
//! [`CallerContext`] once. Nothing the client sends changes any of it.
//! Whether the caller is an administrator is the agent's decision, passed
//! in; this crate holds no state and knows neither the store nor the
//! transport. `docs/caller-context.md` has the rules.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! let listener = std::os::unix::net::UnixListener::bind("/tmp/example.sock")?;
//! let (stream, _) = listener.accept()?;
//! let settings = openwua_caller::CallerSettings::default();
//! let caller = openwua_caller::Caller::of_socket(&stream, &settings, |uid, _, _| uid == 0)?;
//! println!("{}", caller.context.class);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod classify;
mod facts;
mod records;

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt};
use openwua_model::caller::CallerContext;
use serde::Deserialize;

pub use classify::classify;
pub use facts::{Ancestor, Facts, Pin, Terminal, UtmpEntry, gather, pin, user_name};
pub use records::{
    LogindSession, UtmpLogin, parse_audit_id, parse_stat, parse_utmp, terminal_path,
};

/// How callers are classified (`[caller]` in the agent's configuration,
/// `docs/caller-context.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallerSettings {
    /// Root at a user's verified terminal (`sudo` in alice's login) counts
    /// as an interactive user: WUA's elevated administrator. False: only
    /// the session owner is.
    pub elevation_is_interactive: bool,
    /// Classify by the controlling terminal's owner alone, for machines
    /// without logind and audit (containers). None: only when the machine
    /// has neither; Some(false): never; Some(true): always when no session
    /// is attested.
    pub terminal_fallback: Option<bool>,
}

impl Default for CallerSettings {
    fn default() -> Self {
        CallerSettings {
            elevation_is_interactive: true,
            terminal_fallback: None,
        }
    }
}

/// The kernel-attested identity of a connected client.
#[derive(Debug)]
pub struct Caller {
    /// Effective uid when it connected.
    pub uid: u32,
    /// Effective gid when it connected.
    pub gid: u32,
    /// Its process ID.
    pub pid: i32,
    /// Supplementary groups; empty when they could not be read reliably.
    pub groups: Vec<u32>,
    /// How the agent sees it: class, evidence, what it may do.
    pub context: CallerContext,
}

impl Caller {
    /// Reads the peer of a connected Unix socket and classifies it;
    /// `is_admin(uid, gid, groups)` is the agent's authorization, which
    /// decides what the context says it may download and install.
    ///
    /// Blocking: it reads procfs and may look up users.
    pub fn of_socket(
        socket: &impl AsFd,
        settings: &CallerSettings,
        is_admin: impl FnOnce(u32, u32, &[u32]) -> bool,
    ) -> std::io::Result<Caller> {
        let credentials = getsockopt(socket, sockopt::PeerCredentials)?;
        let pid = credentials.pid();
        let (pidfd, pin) = facts::pin(socket, pid);
        let facts = facts::gather(
            credentials.uid(),
            credentials.gid(),
            pid,
            pidfd.as_ref(),
            pin,
        );
        let admin = is_admin(facts.uid, facts.gid, &facts.groups);
        let context = classify::classify(&facts, settings, admin);
        Ok(Caller {
            uid: facts.uid,
            gid: facts.gid,
            pid,
            groups: facts.groups,
            context,
        })
    }
}
