//! The same objects for programs without an async runtime: each session
//! owns a small current-thread runtime and blocks on every call.
//!
//! ```no_run
//! # fn main() -> Result<(), openwua_client::ClientError> {
//! let session = openwua_client::blocking::UpdateSession::connect_default()?;
//! let result = session.create_update_searcher().search("IsInstalled=0")?;
//! println!("{} updates", result.updates.len());
//! # Ok(())
//! # }
//! ```
//!
//! Do not use it from inside an async runtime: blocking there panics. Use
//! the async [`crate::UpdateSession`] instead.

use std::path::Path;

use openwua_model::enums::ServerSelection;
use openwua_model::history::{HistoryEntry, SystemInfo};
use openwua_model::search::{SearchResult, UpdateDetails};
use openwua_model::service::ServiceInfo;
use tokio::runtime::Runtime;
use uuid::Uuid;

use crate::error::ClientError;
use crate::services::{AddedService, SyncProgress, SyncResult};
use crate::session::{AgentInfo, default_socket};

/// [`crate::UpdateSession`], blocking.
#[derive(Debug)]
pub struct UpdateSession {
    // Declared first so the connection goes before the runtime it uses.
    session: crate::UpdateSession,
    runtime: Runtime,
}

impl UpdateSession {
    /// Connects to the agent at `socket` and checks its protocol version.
    pub fn connect(socket: impl AsRef<Path>) -> Result<UpdateSession, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(ClientError::Io)?;
        let session = runtime.block_on(crate::UpdateSession::connect(socket))?;
        Ok(UpdateSession { session, runtime })
    }

    /// Connects to the agent at [`crate::default_socket`].
    pub fn connect_default() -> Result<UpdateSession, ClientError> {
        UpdateSession::connect(default_socket())
    }

    /// `ClientApplicationID`.
    pub fn client_application_id(&self) -> Option<&str> {
        self.session.client_application_id()
    }

    /// Sets `ClientApplicationID`, sent with every call that takes it.
    pub fn set_client_application_id(&mut self, id: impl Into<String>) {
        self.session.set_client_application_id(id);
    }

    /// The agent's versions, as it gave them when the session connected.
    pub fn agent_info(&self) -> &AgentInfo {
        self.session.agent_info()
    }

    /// `CreateUpdateSearcher`: a searcher with WUA's default options.
    pub fn create_update_searcher(&self) -> UpdateSearcher<'_> {
        let defaults = self.session.create_update_searcher();
        UpdateSearcher {
            session: self,
            server_selection: defaults.server_selection,
            service_id: defaults.service_id,
            online: defaults.online,
            include_potentially_superseded_updates: defaults.include_potentially_superseded_updates,
        }
    }

    /// WUA's `UpdateServiceManager`, working through this session.
    pub fn create_update_service_manager(&self) -> UpdateServiceManager<'_> {
        UpdateServiceManager { session: self }
    }

    /// One update by `UpdateID`, with its state and its EULA text.
    pub fn get_update(&self, update_id: Uuid) -> Result<UpdateDetails, ClientError> {
        self.runtime.block_on(self.session.get_update(update_id))
    }

    /// `IUpdate.IsHidden = hidden` for each update. Needs an administrator.
    pub fn set_hidden(&self, update_ids: &[Uuid], hidden: bool) -> Result<(), ClientError> {
        self.runtime
            .block_on(self.session.set_hidden(update_ids, hidden))
    }

    /// `IUpdate.AcceptEula`. Needs an administrator.
    pub fn accept_eula(&self, update_id: Uuid) -> Result<(), ClientError> {
        self.runtime.block_on(self.session.accept_eula(update_id))
    }

    /// Machine-wide state: `RebootRequired` and the agent's counts.
    pub fn system_info(&self) -> Result<SystemInfo, ClientError> {
        self.runtime.block_on(self.session.system_info())
    }

    /// Syncs one service (`None`: all of them), calling `progress` at each
    /// phase; returns the last service's result.
    pub fn sync(
        &self,
        service_id: Option<Uuid>,
        progress: impl FnMut(&SyncProgress),
    ) -> Result<SyncResult, ClientError> {
        self.runtime
            .block_on(self.session.sync(service_id, progress))
    }
}

/// [`crate::UpdateSearcher`], blocking.
#[derive(Debug)]
pub struct UpdateSearcher<'a> {
    session: &'a UpdateSession,
    /// `ServerSelection`: which service to search (`Others` searches
    /// `service_id`).
    pub server_selection: ServerSelection,
    /// `ServiceID`: the service searched when `server_selection` is `Others`.
    pub service_id: Option<Uuid>,
    /// `Online`: sync with the service before searching.
    pub online: bool,
    /// `IncludePotentiallySupersededUpdates`.
    pub include_potentially_superseded_updates: bool,
}

impl<'a> UpdateSearcher<'a> {
    /// `Search`: the updates that match WUA criteria.
    pub fn search(&self, criteria: &str) -> Result<SearchResult, ClientError> {
        self.session
            .runtime
            .block_on(self.searcher().search(criteria))
    }

    /// `QueryHistory`: up to `count` entries, newest first, skipping `start`.
    pub fn query_history(&self, start: u64, count: u64) -> Result<Vec<HistoryEntry>, ClientError> {
        self.session
            .runtime
            .block_on(self.searcher().query_history(start, count))
    }

    /// `GetTotalHistoryCount`.
    pub fn get_total_history_count(&self) -> Result<u64, ClientError> {
        self.session
            .runtime
            .block_on(self.searcher().get_total_history_count())
    }

    /// The async searcher with this one's options.
    fn searcher(&self) -> crate::UpdateSearcher<'a> {
        let mut searcher = self.session.session.create_update_searcher();
        searcher.server_selection = self.server_selection;
        searcher.service_id = self.service_id;
        searcher.online = self.online;
        searcher.include_potentially_superseded_updates =
            self.include_potentially_superseded_updates;
        searcher
    }
}

/// [`crate::UpdateServiceManager`], blocking.
#[derive(Debug)]
pub struct UpdateServiceManager<'a> {
    session: &'a UpdateSession,
}

impl UpdateServiceManager<'_> {
    /// `Services`: every registered service.
    pub fn services(&self) -> Result<Vec<ServiceInfo>, ClientError> {
        self.session.runtime.block_on(self.manager().services())
    }

    /// `AddScanPackageService`: registers the package at `path`, pinning
    /// `public_key`, and syncs it. Needs an administrator.
    pub fn add_scan_package_service(
        &self,
        name: Option<&str>,
        path: &Path,
        public_key: &str,
        set_default: bool,
    ) -> Result<AddedService, ClientError> {
        self.session
            .runtime
            .block_on(
                self.manager()
                    .add_scan_package_service(name, path, public_key, set_default),
            )
    }

    /// `RemoveService`. Needs an administrator.
    pub fn remove_service(&self, service_id: Uuid) -> Result<(), ClientError> {
        self.session
            .runtime
            .block_on(self.manager().remove_service(service_id))
    }

    /// Makes `service_id` the default service. Needs an administrator.
    pub fn set_default_service(&self, service_id: Uuid) -> Result<(), ClientError> {
        self.session
            .runtime
            .block_on(self.manager().set_default_service(service_id))
    }

    fn manager(&self) -> crate::UpdateServiceManager<'_> {
        self.session.session.create_update_service_manager()
    }
}
