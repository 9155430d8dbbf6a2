//! `UpdateServiceManager`: the update services the agent syncs from, and
//! what a sync reports.

use std::path::Path;

use openwua_model::service::ServiceInfo;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ClientError;
use crate::session::{Done, NoParameters, ServiceParameters, UpdateSession};
use openwua_varlink::parameters::{AddAptParameters, AddPackageParameters, AddServerParameters};

/// What one sync did to one service's catalog (`SyncResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncResult {
    /// The service synced.
    pub service_id: Uuid,
    /// The catalog version before; absent on the first sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<u64>,
    /// The catalog version now.
    pub version: u64,
    /// Update revisions new in this version.
    pub added: u64,
    /// Update revisions that changed.
    pub changed: u64,
    /// Update revisions no longer in the catalog.
    pub removed: u64,
    /// Update revisions as they were.
    pub unchanged: u64,
}

/// Where a sync of one service is (`SyncProgress`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncProgress {
    /// The phase that has started, or `Done`.
    pub phase: SyncPhase,
    /// The service being synced.
    pub service_id: Uuid,
    /// What the sync did; set when `phase` is `Done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<SyncResult>,
}

/// The phases of a sync, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncPhase {
    /// Checking the catalog's signature and version.
    Verifying,
    /// Storing the catalog's updates.
    Importing,
    /// Evaluating which updates apply to this machine.
    Scanning,
    /// Finished; the progress carries the result.
    Done,
    /// A phase newer than this client.
    #[serde(other)]
    Other,
}

/// A service just registered, and its first sync
/// ([`UpdateServiceManager::add_scan_package_service`],
/// [`UpdateServiceManager::add_server_service`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddedService {
    /// The service as registered.
    pub service: ServiceInfo,
    /// What its first sync imported.
    pub sync: SyncResult,
}

/// WUA's `IUpdateServiceManager`: lists, registers and removes the agent's
/// update services. Made by [`UpdateSession::create_update_service_manager`].
#[derive(Debug)]
pub struct UpdateServiceManager<'a> {
    session: &'a UpdateSession,
}

#[derive(Deserialize)]
struct ServicesReply {
    services: Vec<ServiceInfo>,
}

impl<'a> UpdateServiceManager<'a> {
    pub(crate) fn new(session: &'a UpdateSession) -> Self {
        UpdateServiceManager { session }
    }

    /// `Services`: every registered service.
    pub async fn services(&self) -> Result<Vec<ServiceInfo>, ClientError> {
        let ServicesReply { services } =
            self.session.call("ListServices", &NoParameters {}).await?;
        Ok(services)
    }

    /// `AddScanPackageService`: registers the offline scan package at
    /// `path`, pinning `public_key` (`ed25519:<hex>`), and syncs it;
    /// `set_default` makes it the default service; `content_base` is where
    /// content files with relative URLs are fetched from (else from the
    /// package). The agent reads the file, so a relative `path` is made
    /// absolute here first. Needs an administrator.
    pub async fn add_scan_package_service(
        &self,
        name: Option<&str>,
        path: &Path,
        public_key: &str,
        set_default: bool,
        content_base: Option<&str>,
    ) -> Result<AddedService, ClientError> {
        let absolute = std::path::absolute(path).map_err(|error| {
            ClientError::InvalidArgument(format!(
                "cannot make {} absolute: {error}",
                path.display()
            ))
        })?;
        let path = absolute.to_str().ok_or_else(|| {
            ClientError::InvalidArgument(format!(
                "the package path {} is not UTF-8, which the protocol cannot carry",
                absolute.display()
            ))
        })?;
        let parameters = AddPackageParameters {
            name: name.map(str::to_owned),
            path: path.into(),
            public_key: public_key.to_owned(),
            set_default: Some(set_default),
            content_base: content_base.map(str::to_owned),
            client_application_id: self.session.client_application_id().map(str::to_owned),
        };
        self.session
            .call("AddScanPackageService", &parameters)
            .await
    }

    /// `AddServerService` (WUA's `AddService2` for an update server):
    /// the agent checks that the server at `url` signs with `public_key`
    /// (`ed25519:<hex>`), registers this computer, asking for
    /// `target_group`, and syncs it; `set_default` makes it the default
    /// service. Content comes from `<url>/api/v1/`. Needs an administrator.
    pub async fn add_server_service(
        &self,
        url: &str,
        public_key: &str,
        target_group: Option<&str>,
        name: Option<&str>,
        set_default: bool,
    ) -> Result<AddedService, ClientError> {
        self.add_server_service_with_ca(url, public_key, target_group, name, set_default, None)
            .await
    }

    /// [`UpdateServiceManager::add_server_service`] for a server whose
    /// certificate the operator's own CA signed: `ca_pem` (PEM text) is
    /// trusted beside the system's roots for this service's requests.
    pub async fn add_server_service_with_ca(
        &self,
        url: &str,
        public_key: &str,
        target_group: Option<&str>,
        name: Option<&str>,
        set_default: bool,
        ca_pem: Option<&str>,
    ) -> Result<AddedService, ClientError> {
        let parameters = AddServerParameters {
            url: url.to_owned(),
            public_key: public_key.to_owned(),
            target_group: target_group.map(str::to_owned),
            name: name.map(str::to_owned),
            set_default: Some(set_default),
            ca_pem: ca_pem.map(str::to_owned),
            client_application_id: self.session.client_application_id().map(str::to_owned),
        };
        self.session.call("AddServerService", &parameters).await
    }

    /// Registers the Debian repositories the machine's apt knows as a
    /// service (`AddAptService`): apt's configuration, lists and cache
    /// beneath `apt_root` (`/` when None), named `name` (`Debian` when
    /// None), and syncs it. Needs an administrator.
    pub async fn add_apt_service(
        &self,
        name: Option<&str>,
        apt_root: Option<&Path>,
        set_default: bool,
    ) -> Result<AddedService, ClientError> {
        let apt_root = match apt_root {
            Some(root) => Some(
                root.to_str()
                    .ok_or_else(|| {
                        ClientError::Protocol(format!(
                            "{} is not UTF-8; the agent takes apt's root as a UTF-8 path",
                            root.display()
                        ))
                    })?
                    .to_owned(),
            ),
            None => None,
        };
        let parameters = AddAptParameters {
            name: name.map(str::to_owned),
            apt_root,
            set_default: Some(set_default),
            client_application_id: self.session.client_application_id().map(str::to_owned),
        };
        self.session.call("AddAptService", &parameters).await
    }

    /// `RemoveService`. Needs an administrator.
    pub async fn remove_service(&self, service_id: Uuid) -> Result<(), ClientError> {
        self.service_call("RemoveService", service_id).await
    }

    /// Makes `service_id` the default service, searched when none is named.
    /// Needs an administrator.
    pub async fn set_default_service(&self, service_id: Uuid) -> Result<(), ClientError> {
        self.service_call("SetDefaultService", service_id).await
    }

    async fn service_call(&self, name: &str, service_id: Uuid) -> Result<(), ClientError> {
        let parameters = ServiceParameters {
            service_id: Some(service_id),
            client_application_id: self.session.client_application_id().map(str::to_owned),
        };
        let Done {} = self.session.call(name, &parameters).await?;
        Ok(())
    }
}
