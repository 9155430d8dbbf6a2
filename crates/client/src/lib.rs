//! WUA's object model for Rust programs, served by `wua-agent` over
//! Varlink (`org.openwua.Agent`, protocol version [`PROTOCOL_VERSION`]).
//!
//! The client holds no update logic: every question goes to the agent,
//! which decides who is calling from the socket's credentials. The
//! objects are WUA's:
//!
//! - [`UpdateSession`]: one connection (`IUpdateSession`), with
//!   `ClientApplicationID`, single updates, hiding, EULAs, machine state
//!   and sync;
//! - [`UpdateSearcher`]: `Search`, `QueryHistory`, `GetTotalHistoryCount`;
//!   a search's [`SearchResult`] holds an [`UpdateCollection`] whose
//!   entries are decoded when they are read, as WUA's are;
//! - [`UpdateDownloader`] and [`UpdateInstaller`]: downloads, installations
//!   and uninstallations, run by the agent as jobs that the session lists,
//!   watches and aborts; their results and progress are
//!   `openwua_model::operation`'s types;
//! - [`UpdateServiceManager`]: the update services;
//! - [`ClientError`]: every failure, with its WUA code;
//! - [`interactive`]: installations whose installers ask questions, answered
//!   on the same connection;
//! - [`blocking`]: the same, for programs without an async runtime;
//! - [`varlink`]: the connection underneath, for calls not wrapped here.
//!
//! ```no_run
//! # async fn example() -> Result<(), openwua_client::ClientError> {
//! use openwua_client::UpdateSession;
//!
//! let mut session = UpdateSession::connect_default().await?;
//! session.set_client_application_id("my-updater");
//! let result = session
//!     .create_update_searcher()
//!     .search("IsInstalled=0 and IsHidden=0")
//!     .await?;
//! for entry in &result.updates {
//!     let entry = entry?;
//!     println!("{} {}", entry.update.identity.update_id, entry.update.title);
//! }
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod blocking;
mod error;
pub mod interactive;
mod operations;
mod search;
mod services;
mod session;
pub mod varlink;

pub use error::ClientError;
pub use operations::{UpdateDownloader, UpdateInstaller};
pub use search::{Iter, SearchResult, UpdateCollection};
pub use services::{AddedService, SyncPhase, SyncProgress, SyncResult, UpdateServiceManager};
pub use session::{
    AgentInfo, DEFAULT_SOCKET, SOCKET_ENV, SetAutomaticUpdatesParameters, UpdateSearcher,
    UpdateSession, default_socket,
};

/// The version of the agent's protocol this client speaks; a session to
/// an agent speaking another fails with `WU_E_INVALID_SERIALIZATION_VERSION`.
pub const PROTOCOL_VERSION: u32 = 1;
