//! `--embedded`: an agent inside wua, for a machine (or a test) without a
//! running wua-agent.
//!
//! PLACEHOLDER, to be filled in by the agent's author. The contract the
//! rest of wua relies on:
//! - [`start`] starts an agent serving `org.openwua.Agent` on a socket of
//!   its own, on threads of its own (the commands block on their calls, so
//!   it cannot share their thread), and returns once it accepts
//!   connections;
//! - [`Embedded::socket`] is that socket's path;
//! - dropping the [`Embedded`] stops the agent and removes the socket; wua
//!   drops it after the session that uses it.

use std::path::{Path, PathBuf};

/// A running in-process agent.
pub struct Embedded {
    socket: PathBuf,
}

impl Embedded {
    /// The socket to connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

/// Starts an agent inside this process.
pub fn start() -> anyhow::Result<Embedded> {
    // PLACEHOLDER: replace with the embedded agent.
    anyhow::bail!(
        "embedded agent not yet available: start wua-agent and connect to it instead \
         (--socket or $OPENWUA_SOCKET)"
    )
}
