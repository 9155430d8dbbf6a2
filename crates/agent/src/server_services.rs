//! Update-server services (WUA's `AddService2`): registering with a server,
//! syncing from it, and syncing every server on a timer. The HTTP requests
//! are [`crate::update_server`]'s; verifying and applying a response is
//! [`Agent::apply_sync_response`]'s. Behaviour and codes: `docs/agent.md`,
//! "Update servers".

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use openwua_catalog::signing::PublicKey;
use openwua_model::hresult::{
    E_INVALIDARG, WU_E_DS_INVALIDOPERATION, WU_E_METADATA_BAD_SIGNATURE,
    WU_E_PT_HTTP_STATUS_DENIED, WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL,
};
use openwua_model::service::ServiceInfo;
use uuid::Uuid;

use crate::agent::{Agent, SyncResult, blocking, lock, unknown_service};
use crate::error::{AgentError, Result};
use crate::fetch::Fetcher;
use crate::policy::{self, Action, Requester};
use crate::update_server::{self, Credentials, Machine, Registration, SyncReply};

/// What `AddServerService` asks for.
#[derive(Debug, Clone, Default)]
pub struct ServerServiceRequest {
    /// The server's URL (`https://…`, or `http://` to loopback).
    pub url: String,
    /// The key its catalogs must be signed with, `ed25519:<hex>`.
    pub public_key: String,
    /// The group this computer asks to join (client-side targeting).
    pub target_group: Option<String>,
    /// The service's name; the server's when absent.
    pub name: Option<String>,
    /// Make it the default service.
    pub set_default: bool,
    /// The CA (PEM) that signed the server's certificate, trusted beside
    /// the system's roots for this service's requests alone.
    pub ca_pem: Option<String>,
}

impl Agent {
    /// `AddServerService` (WUA's `AddService2`): checks the server's key
    /// against the pinned one, registers this computer, stores the service
    /// and runs its first sync. A failure at any step leaves nothing
    /// registered on this machine.
    pub async fn add_server_service(
        &self,
        requester: &Requester,
        request: ServerServiceRequest,
    ) -> Result<(ServiceInfo, SyncResult)> {
        policy::authorize(requester, Action::ChangeServices, None)?;
        policy::check_length("url", &request.url, policy::MAX_PATH_BYTES)?;
        policy::check_length("publicKey", &request.public_key, policy::MAX_NAME_BYTES)?;
        policy::check_length(
            "name",
            request.name.as_deref().unwrap_or(""),
            policy::MAX_NAME_BYTES,
        )?;
        policy::check_length(
            "targetGroup",
            request.target_group.as_deref().unwrap_or(""),
            policy::MAX_NAME_BYTES,
        )?;
        let key: PublicKey =
            request
                .public_key
                .parse()
                .map_err(|error: openwua_catalog::CatalogError| {
                    AgentError::new(E_INVALIDARG, error.to_string())
                })?;
        let url = update_server::check_url(&request.url, self.config.allow_plain_http)?;
        let machine_id_file = self.config.facts.machine_id.clone();
        let machine = blocking(move || Machine::read(&machine_id_file)).await?;
        let service_fetcher = self.fetcher_trusting(request.ca_pem.clone()).await?;
        let fetcher = Arc::clone(&service_fetcher);
        let described = url.clone();
        let description =
            blocking(move || update_server::describe(fetcher.http(), &described)).await?;
        let theirs: Option<PublicKey> = description.public_key.parse().ok();
        if theirs.as_ref() != Some(&key) {
            return Err(AgentError::new(
                WU_E_METADATA_BAD_SIGNATURE,
                format!(
                    "the server at {url} signs with {}, not the pinned key {key}; \
                     check --pubkey with the server's administrator",
                    description.public_key.chars().take(128).collect::<String>()
                ),
            ));
        }
        let content_base = match description.content_base {
            Some(base) => {
                let web = base.starts_with("https://") || base.starts_with("http://");
                if !web || base.len() > policy::MAX_PATH_BYTES {
                    return Err(AgentError::new(
                        E_INVALIDARG,
                        format!(
                            "the server at {url} names a content base that is not an http(s) URL: {}",
                            base.chars().take(128).collect::<String>()
                        ),
                    ));
                }
                crate::operations::check_content_base(&base)?;
                base
            }
            None => format!("{url}/api/v1/"),
        };
        let service_id = description.service_id;
        // A server that said it is busy is not registered with either
        // before its Retry-After.
        let busy_until = lock(&self.busy_until).get(&service_id).copied();
        if let Some(until) = busy_until.filter(|until| *until > Timestamp::now()) {
            return Err(busy(&url, Some(until)));
        }
        let writer = self.catalog_writer.lock().await;
        let services = self.with_store(|store| store.services()).await?;
        if services
            .iter()
            .any(|service| service.service_id == service_id)
        {
            return Err(AgentError::new(
                WU_E_DS_INVALIDOPERATION,
                format!("service {service_id} is already registered; remove it first or sync it"),
            ));
        }
        let fetcher = Arc::clone(&service_fetcher);
        let (registering, group) = (url.clone(), request.target_group.clone());
        let registered = blocking(move || {
            update_server::register(
                fetcher.http(),
                &registering,
                &machine,
                group.as_deref(),
                None,
            )
        })
        .await?;
        let (credentials, group) = match registered {
            Registration::Registered(credentials, group) => (credentials, group),
            Registration::Refused => {
                return Err(AgentError::new(
                    WU_E_PT_HTTP_STATUS_DENIED,
                    format!("{url} refused to register this computer (HTTP 401)"),
                ));
            }
            Registration::Busy(seconds) => return Err(self.note_busy(service_id, &url, seconds)),
        };
        tracing::info!(
            service = %service_id,
            url,
            computer = %credentials.computer_id,
            group,
            "registered with an update server"
        );
        let service = ServiceInfo {
            service_id,
            name: request.name.unwrap_or_else(|| {
                description
                    .service_name
                    .chars()
                    .take(policy::MAX_NAME_BYTES / 4)
                    .collect()
            }),
            is_scan_package_service: false,
            source: url.clone(),
            public_key: key.to_string(),
            content_base: Some(content_base),
            // The first service becomes the default, so a search finds it.
            is_default: request.set_default || services.is_empty(),
            catalog_version: None,
            issue_date: None,
            expiration_date: None,
            last_sync: None,
            update_count: 0,
            kind: openwua_model::service::ServiceKind::UpdateServer,
            apt_root: None,
        };
        let stored = service.clone();
        let (target_group, ca_pem) = (request.target_group, request.ca_pem);
        self.with_store(move |store| {
            store.add_server_service(
                &stored,
                target_group.as_deref(),
                &credentials,
                ca_pem.as_deref(),
            )
        })
        .await?;
        // The first sync takes the writer lock itself.
        drop(writer);
        match self.sync_server(&service).await {
            Ok(result) => {
                let service = self
                    .with_store(move |store| store.service(service_id))
                    .await?
                    .unwrap_or(service);
                Ok((service, result))
            }
            Err(error) => {
                let _writer = self.catalog_writer.lock().await;
                self.with_store(move |store| store.remove_service(service_id))
                    .await?;
                Err(error)
            }
        }
    }

    /// One sync of an update-server service: asks for what changed since
    /// the stored version and applies the signed answer. A 401 registers
    /// this computer again once (the server may have been reset); a 503
    /// keeps the agent from asking before its `Retry-After`.
    pub(crate) async fn sync_server(&self, service: &ServiceInfo) -> Result<SyncResult> {
        let service_id = service.service_id;
        let busy_until = lock(&self.busy_until).get(&service_id).copied();
        if let Some(until) = busy_until.filter(|until| *until > Timestamp::now()) {
            return Err(busy(&service.source, Some(until)));
        }
        let url = update_server::stored_url(&service.source, self.config.allow_plain_http)?;
        let (group, mut credentials) = self
            .with_store(move |store| store.server_identity(service_id))
            .await?
            .ok_or_else(|| unknown_service(service_id))?;
        let anchor = service.catalog_version;
        let service_fetcher = self.server_fetcher(service_id).await?;
        let mut registered_again = false;
        loop {
            let fetcher = Arc::clone(&service_fetcher);
            let (asking, presented) = (url.clone(), credentials.clone());
            let reply =
                blocking(move || update_server::sync(fetcher.http(), &asking, &presented, anchor))
                    .await?;
            match reply {
                SyncReply::Frame(frame) => {
                    lock(&self.busy_until).remove(&service_id);
                    let result = self.apply_sync_response(service_id, frame).await?;
                    // The server just answered: its report goes now.
                    self.queue_reports(Some(service_id), true).await;
                    return Ok(result);
                }
                SyncReply::Busy(seconds) => return Err(self.note_busy(service_id, &url, seconds)),
                SyncReply::Unauthorized if !registered_again => {
                    registered_again = true;
                    credentials = self
                        .register_again(
                            service_id,
                            &url,
                            group.clone(),
                            credentials,
                            &service_fetcher,
                        )
                        .await?;
                }
                SyncReply::Unauthorized => {
                    return Err(AgentError::new(
                        WU_E_PT_HTTP_STATUS_DENIED,
                        format!(
                            "{url} refused this computer's credentials even after it registered again; \
                             remove the service and add it again"
                        ),
                    ));
                }
            }
        }
    }

    /// Registers again with the identity held, after the server refused
    /// it, and stores whatever identity the server now gives.
    pub(crate) async fn register_again(
        &self,
        service_id: Uuid,
        url: &str,
        group: Option<String>,
        held: Credentials,
        service_fetcher: &Arc<Fetcher>,
    ) -> Result<Credentials> {
        let machine_id_file = self.config.facts.machine_id.clone();
        let fetcher = Arc::clone(service_fetcher);
        let registering = url.to_owned();
        let registered = blocking(move || {
            let machine = Machine::read(&machine_id_file)?;
            update_server::register(
                fetcher.http(),
                &registering,
                &machine,
                group.as_deref(),
                Some(&held),
            )
        })
        .await?;
        let (credentials, group) = match registered {
            Registration::Registered(credentials, group) => (credentials, group),
            Registration::Refused => {
                return Err(AgentError::new(
                    WU_E_PT_HTTP_STATUS_DENIED,
                    format!(
                        "{url} refused this computer's credentials and its registration; \
                         remove the service and add it again"
                    ),
                ));
            }
            Registration::Busy(seconds) => return Err(self.note_busy(service_id, url, seconds)),
        };
        tracing::warn!(
            service = %service_id,
            url,
            computer = %credentials.computer_id,
            group,
            "the update server refused this computer's credentials (it may have been reset); registered again"
        );
        let stored = credentials.clone();
        self.with_store(move |store| store.set_credentials(service_id, &stored))
            .await?;
        Ok(credentials)
    }

    /// The fetcher (and HTTP client) for an update-server service's
    /// requests: the agent's own, or one that also trusts the CA the
    /// service was added with.
    pub(crate) async fn server_fetcher(&self, service_id: Uuid) -> Result<Arc<Fetcher>> {
        let ca_pem = self
            .with_store(move |store| store.server_ca(service_id))
            .await?;
        self.fetcher_trusting(ca_pem).await
    }

    async fn fetcher_trusting(&self, ca_pem: Option<String>) -> Result<Arc<Fetcher>> {
        let Some(ca_pem) = ca_pem else {
            return Ok(Arc::clone(&self.fetcher));
        };
        let fetcher = Arc::clone(&self.fetcher);
        // Reads the system's roots from disk.
        blocking(move || fetcher.trusting(&ca_pem).map(Arc::new)).await
    }

    /// Remembers a busy server's `Retry-After` (503 or 429), so no request
    /// goes to it before then, and says so.
    fn note_busy(&self, service_id: Uuid, url: &str, seconds: Option<u64>) -> AgentError {
        let until = seconds
            .map(|seconds| Timestamp::now() + SignedDuration::from_secs(seconds.cast_signed()));
        if let Some(until) = until {
            lock(&self.busy_until).insert(service_id, until);
        }
        busy(url, until)
    }
}

/// `WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL`, saying when to try again.
fn busy(url: &str, until: Option<Timestamp>) -> AgentError {
    let when = match until {
        Some(until) => format!(
            "the agent will not ask it again before {}",
            until.round(jiff::Unit::Second).unwrap_or(until)
        ),
        None => "try again later".to_owned(),
    };
    AgentError::new(
        WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL,
        format!("{url} is busy (HTTP 503), or limits this machine's requests (HTTP 429); {when}"),
    )
}
