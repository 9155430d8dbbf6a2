//! The Varlink server: `org.openwua.Agent` (interface file
//! `org.openwua.Agent.varlink`, beside this module) on a Unix socket.
//!
//! Each connection is its own task, so a slow call never holds up another
//! client; calls on one connection are answered in order, as Varlink
//! requires (an interactive install also takes its answers on its own
//! connection while it streams: [`interactive`]). A message over [`protocol::MAX_MESSAGE`] or one that is not a
//! call gets an error reply and ends that connection only.

mod connection;
mod interactive;
mod methods;
pub mod protocol;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::net::UnixListener;

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

/// Accepts connections for ever.
pub async fn serve(agent: Arc<Agent>, listener: UnixListener) {
    let admins = Administrators::of(agent.config());
    let settings = agent.config().caller;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection::serve(
                    Arc::clone(&agent),
                    stream,
                    admins,
                    settings,
                ));
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
