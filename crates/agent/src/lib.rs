//! `wua-agent`: one machine's source of truth about updates.
//!
//! [`agent::Agent`] holds the store ([`store`], SQLite), the in-memory index
//! searches read, and the operations; [`varlink`] serves them to clients on
//! a Unix socket, identifying each caller from the kernel (`openwua-caller`).
//! [`Background`] runs a whole agent on its own thread: the CLI's
//! `--embedded` mode, tests and benchmarks use it.

#![deny(missing_docs)]

pub mod agent;
mod applicability;
pub mod apt_service;
mod automatic;
mod cache;
pub mod clock;
pub mod config;
mod download;
pub mod error;
pub mod fetch;
mod index;
mod install;
pub mod jobs;
mod offline_reports;
pub mod operations;
mod package_file;
pub mod policy;
mod reports;
mod restart;
pub mod server_services;
mod store;
mod update_server;
pub mod varlink;

use std::path::PathBuf;
use std::sync::Arc;

pub use agent::Agent;
pub use automatic::SettingsChange;
pub use clock::{Clock, ManualClock};
pub use config::Config;

/// An agent serving its socket on a thread of its own until dropped.
pub struct Background {
    socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Opens the agent for `config` and starts serving `config.socket`;
    /// returns once the socket accepts connections.
    pub fn start(config: Config) -> anyhow::Result<Background> {
        let socket = config.socket.clone();
        let agent = Arc::new(Agent::open(config)?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(async { varlink::bind(&socket) })?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("wua-agent".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        () = varlink::serve(Arc::clone(&agent), listener) => {}
                        () = Arc::clone(&agent).run_automatic_updates() => {}
                        () = agent.send_reports() => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(Background {
            socket,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The socket clients connect to.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The thread may have ended already; then there is nothing to stop.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}
