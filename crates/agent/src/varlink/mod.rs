//! The Varlink server: `org.openwua.Agent` (interface file
//! `org.openwua.Agent.varlink`, beside this module) on a Unix socket.
//!
//! Each connection is its own task, so a slow call never holds up another
//! client; calls on one connection are answered in order, as Varlink
//! requires (an interactive install also takes its answers on its own
//! connection while it streams: [`interactive`]). A message over
//! [`protocol::MAX_CALL`] or one that is not a call gets an error reply and
//! ends that connection only. [`limits`] bounds what one local user can
//! make the agent hold: connections, buffered calls, idle time and replies
//! nobody reads.

mod connection;
mod interactive;
pub mod limits;
mod methods;
pub mod protocol;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio::sync::Semaphore;

use crate::agent::Agent;
use crate::policy::Administrators;

pub use methods::AGENT_INTERFACE;

/// Binds the socket, replacing a stale one, readable and writable by
/// everyone: anyone may search, and each method checks its caller.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// Raises the soft limit on open files to the hard one: the default soft
/// limit (1024) would cap the connections served below what
/// [`limits::MAX_CONNECTIONS`] allows.
pub fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if let Err(error) = setrlimit(Resource::Nofile, raised) {
        tracing::warn!("cannot raise the open file limit: {error}");
    }
}

/// Accepts connections for ever. Each is counted against its user's and
/// everyone's limits ([`limits`]); one over them is told why and closed at
/// once, so that accepting never stalls.
pub async fn serve(agent: Arc<Agent>, listener: UnixListener) {
    let admins = Administrators::of(agent.config());
    let settings = agent.config().caller;
    let limits = Arc::new(limits::Limits::new(agent.config().connections));
    let refusing = Arc::new(Semaphore::new(limits::MAX_REFUSING));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                // SO_PEERCRED: one system call, no look-up.
                let uid = match stream.peer_cred() {
                    Ok(credentials) => credentials.uid(),
                    Err(error) => {
                        tracing::warn!("cannot read a peer's credentials, closing: {error}");
                        continue;
                    }
                };
                match limits.admit(uid) {
                    Ok(admission) => {
                        tokio::spawn(connection::serve(
                            Arc::clone(&agent),
                            stream,
                            admins,
                            settings,
                            admission,
                        ));
                    }
                    Err(error) => {
                        let drain = Arc::clone(&refusing).try_acquire_owned().ok();
                        tokio::spawn(connection::refuse_connection(stream, error, drain));
                    }
                }
            }
            // Out of file descriptors, say: the clients already connected
            // are served meanwhile, and accepting resumes shortly.
            Err(error) => {
                tracing::warn!("accept failed: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
