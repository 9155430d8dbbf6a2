//! `org.openwua.Agent`'s methods and `org.varlink.service`'s introspection:
//! decode the parameters, call the agent as the caller, encode.

use openwua_varlink::parameters::{
    AddAptParameters, AddPackageParameters, AddServerParameters, DownloadParameters,
    HistoryParameters, InstallParameters, InterfaceParameters, JobParameters, NoParameters,
    PauseParameters, SearchParameters, ServiceParameters, SetAutomaticUpdatesParameters,
    SetHiddenParameters, SyncParameters, UpdateParameters,
};
use serde::de::DeserializeOwned;
use serde_json::json;
use uuid::Uuid;

use super::connection::{Inbox, Session};
use super::interactive;
use super::protocol::{Call, DECODE_INLINE, Reply};
use crate::agent::{PROTOCOL_VERSION, SyncPhase};
use crate::apt_service::AptServiceRequest;
use crate::error::AgentError;
use crate::jobs::Job;
use crate::operations::{InstallRequest, StartedInstall};
use crate::policy::Requester;
use crate::server_services::ServerServiceRequest;
use openwua_model::enums::UpdateOperation;
use openwua_model::operation::JobState;
use std::path::PathBuf;

/// The interface this module serves, as committed in the repository.
pub const AGENT_INTERFACE: &str = include_str!("org.openwua.Agent.varlink");
const SERVICE_INTERFACE: &str = include_str!("org.varlink.service.varlink");
const AGENT: &str = "org.openwua.Agent";
const SERVICE: &str = "org.varlink.service";

/// Where replies go: one for most methods, several for `more` calls.
pub trait ReplySink {
    /// Sends one reply (`continues` set on all but the last).
    fn send(&mut self, reply: Reply) -> impl Future<Output = std::io::Result<()>> + Send;
}

/// Decodes a call's parameters; absent parameters are an empty object.
/// Large ones (a call may be 16 MiB) are decoded on a blocking thread, so
/// one client's big call does not hold up everyone's.
async fn parameters<T: DeserializeOwned + Send + 'static>(call: &Call) -> Result<T, Reply> {
    let text = call.parameters.as_ref().map_or("{}", |raw| raw.get());
    if text.len() <= DECODE_INLINE {
        return decode_parameters(text);
    }
    let text = text.to_owned();
    tokio::task::spawn_blocking(move || decode_parameters(&text))
        .await
        .unwrap_or_else(|error| {
            Err(Reply::wua_error(&AgentError::new(
                openwua_model::hresult::WU_E_UNEXPECTED,
                format!("decoding the parameters failed: {error}"),
            )))
        })
}

fn decode_parameters<T: DeserializeOwned>(text: &str) -> Result<T, Reply> {
    serde_json::from_str(text).map_err(|error| {
        // Name the offending parameter when serde says which one.
        let message = error.to_string();
        let parameter = message
            .split('`')
            .nth(1)
            .map_or_else(|| message.clone(), str::to_owned);
        Reply::service_error(
            "org.varlink.service.InvalidParameter",
            json!({ "parameter": parameter }),
        )
    })
}

fn result_reply<T: serde::Serialize>(result: Result<T, AgentError>) -> Reply {
    match result {
        Ok(value) => Reply::of(&value),
        Err(error) => Reply::wua_error(&error),
    }
}

/// Runs one call, sending its reply (or replies) to `sink`.
pub async fn dispatch(
    session: &Session,
    call: &Call,
    sink: &mut impl ReplySink,
    inbox: &mut Inbox,
) -> std::io::Result<()> {
    let reply = match handle(session, call, sink, inbox).await {
        Ok(Some(reply)) | Err(reply) => reply,
        // A streamed method has sent its replies.
        Ok(None) => return Ok(()),
    };
    sink.send(reply).await
}

/// Decodes the call, calls the agent as the caller, encodes the reply.
/// Every decision (who may, what is valid) is the agent's.
async fn handle(
    session: &Session,
    call: &Call,
    sink: &mut impl ReplySink,
    inbox: &mut Inbox,
) -> Result<Option<Reply>, Reply> {
    let agent = &session.agent;
    let (interface, method) = call.method.rsplit_once('.').unwrap_or(("", &call.method));
    let reply = match (interface, method) {
        (SERVICE, "GetInfo") => {
            let NoParameters {} = parameters(call).await?;
            Reply::of(&json!({
                "vendor": "OpenWUA",
                "product": "wua-agent",
                "version": env!("CARGO_PKG_VERSION"),
                "url": env!("CARGO_PKG_REPOSITORY"),
                "interfaces": [SERVICE, AGENT],
            }))
        }
        (SERVICE, "GetInterfaceDescription") => {
            let InterfaceParameters { interface } = parameters(call).await?;
            match interface.as_str() {
                AGENT => Reply::of(&json!({ "description": AGENT_INTERFACE })),
                SERVICE => Reply::of(&json!({ "description": SERVICE_INTERFACE })),
                _ => Reply::service_error(
                    "org.varlink.service.InterfaceNotFound",
                    json!({ "interface": interface }),
                ),
            }
        }
        (AGENT, "GetAgentInfo") => {
            let NoParameters {} = parameters(call).await?;
            Reply::of(&json!({ "info": {
                "protocolVersion": PROTOCOL_VERSION,
                "agentVersion": env!("CARGO_PKG_VERSION"),
            }}))
        }
        (AGENT, "GetCallerContext") => {
            let NoParameters {} = parameters(call).await?;
            let context = agent.caller_context(&session.requester(None));
            result_reply(context.map(|context| json!({ "context": context })))
        }
        (AGENT, "GetSystemInfo") => {
            let NoParameters {} = parameters(call).await?;
            let info = agent.system_info(&session.requester(None)).await;
            result_reply(info.map(|info| json!({ "info": info })))
        }
        (AGENT, "Search") => {
            let request: SearchParameters = parameters(call).await?;
            let requester = session.requester(request.client_application_id);
            let options = request.options.unwrap_or_default();
            match agent.search(&requester, &request.criteria, &options).await {
                Ok(json) => Reply::Parameters {
                    json,
                    continues: false,
                },
                Err(error) => Reply::wua_error(&error),
            }
        }
        (AGENT, "GetUpdate") => {
            let request: UpdateParameters = parameters(call).await?;
            let requester = session.requester(request.client_application_id);
            result_reply(agent.get_update(&requester, request.update_id).await)
        }
        (AGENT, "SetHidden") => {
            let request: SetHiddenParameters = parameters(call).await?;
            let requester = session.requester(request.client_application_id);
            let done = agent
                .set_hidden(&requester, request.update_ids, request.hidden)
                .await;
            result_reply(done.map(|()| json!({})))
        }
        (AGENT, "AcceptEula") => {
            let request: UpdateParameters = parameters(call).await?;
            let requester = session.requester(request.client_application_id);
            let done = agent.accept_eula(&requester, request.update_id).await;
            result_reply(done.map(|()| json!({})))
        }
        (AGENT, "QueryHistory") => {
            let request: HistoryParameters = parameters(call).await?;
            let entries = agent
                .query_history(&session.requester(None), request.start, request.count)
                .await;
            result_reply(entries.map(|entries| json!({ "entries": entries })))
        }
        (AGENT, "GetTotalHistoryCount") => {
            let NoParameters {} = parameters(call).await?;
            let count = agent.history_count(&session.requester(None)).await;
            result_reply(count.map(|count| json!({ "count": count })))
        }
        (AGENT, "ListServices") => {
            let NoParameters {} = parameters(call).await?;
            let services = agent.services(&session.requester(None)).await;
            result_reply(services.map(|services| json!({ "services": services })))
        }
        (AGENT, "AddScanPackageService") => {
            let request: AddPackageParameters = parameters(call).await?;
            let requester = session.requester(request.client_application_id);
            let added = agent
                .add_scan_package_service(
                    &requester,
                    request.name,
                    request.path,
                    &request.public_key,
                    request.set_default.unwrap_or(false),
                    request.content_base,
                )
                .await;
            result_reply(added.map(|(service, sync)| json!({ "service": service, "sync": sync })))
        }
        (AGENT, "AddServerService") => {
            let request: AddServerParameters = parameters(call).await?;
            let requester = session.requester(request.client_application_id);
            let added = agent
                .add_server_service(
                    &requester,
                    ServerServiceRequest {
                        url: request.url,
                        public_key: request.public_key,
                        target_group: request.target_group,
                        name: request.name,
                        set_default: request.set_default.unwrap_or(false),
                        ca_pem: request.ca_pem,
                    },
                )
                .await;
            result_reply(added.map(|(service, sync)| json!({ "service": service, "sync": sync })))
        }
        (AGENT, "AddAptService") => {
            let request: AddAptParameters = parameters(call).await?;
            let requester = session.requester(request.client_application_id);
            let added = agent
                .add_apt_service(
                    &requester,
                    AptServiceRequest {
                        name: request.name,
                        apt_root: request.apt_root.map(PathBuf::from),
                        set_default: request.set_default.unwrap_or(false),
                    },
                )
                .await;
            result_reply(added.map(|(service, sync)| json!({ "service": service, "sync": sync })))
        }
        (AGENT, "RemoveService") => {
            let request: ServiceParameters = parameters(call).await?;
            let service_id = required_service(request.service_id)?;
            let requester = session.requester(request.client_application_id);
            let done = agent.remove_service(&requester, service_id).await;
            result_reply(done.map(|()| json!({})))
        }
        (AGENT, "SetDefaultService") => {
            let request: ServiceParameters = parameters(call).await?;
            let service_id = required_service(request.service_id)?;
            let requester = session.requester(request.client_application_id);
            let done = agent.set_default_service(&requester, service_id).await;
            result_reply(done.map(|()| json!({})))
        }
        (AGENT, "Sync") => {
            let request: SyncParameters = parameters(call).await?;
            let requester = session.requester(request.client_application_id);
            let online = request.online.unwrap_or(false);
            match sync(
                session,
                &requester,
                call.more,
                request.service_id,
                online,
                sink,
            )
            .await
            {
                Ok(reply) => reply,
                // The client went away mid-stream: nothing more to send, and
                // the connection's next read ends it.
                Err(error) => {
                    tracing::debug!("sync progress not delivered: {error}");
                    return Ok(None);
                }
            }
        }
        (AGENT, "Download") => {
            let request: DownloadParameters = parameters(call).await?;
            let requester = session.requester(request.client_application_id);
            let started = agent
                .start_download(
                    &requester,
                    request.update_ids,
                    request.is_forced.unwrap_or(false),
                )
                .await;
            return follow(started, call.more, sink).await;
        }
        (AGENT, "Install") | (AGENT, "Uninstall") => {
            let request: InstallParameters = parameters(call).await?;
            let requester = session.requester(request.client_application_id);
            let operation = if method == "Install" {
                UpdateOperation::Installation
            } else {
                UpdateOperation::Uninstallation
            };
            let started = agent
                .start_install(
                    &requester,
                    InstallRequest {
                        operation,
                        update_ids: request.update_ids,
                        force_quiet: request.force_quiet.unwrap_or(false),
                        is_forced: request.is_forced.unwrap_or(false),
                        client_answers: request.interactive.unwrap_or(false) && call.more,
                    },
                )
                .await;
            return match started {
                Ok(StartedInstall {
                    job,
                    prompts: Some(prompts),
                }) => match interactive::follow(job, prompts, inbox, sink).await {
                    Ok(last) => Ok(last),
                    // The client left, as in `follow`: no reply can reach
                    // it, and the job goes on without it.
                    Err(error) => {
                        tracing::debug!("interactive install not delivered: {error}");
                        Ok(None)
                    }
                },
                started => follow(started.map(|started| started.job), call.more, sink).await,
            };
        }
        (AGENT, "Answer") | (AGENT, "TerminalInput") | (AGENT, "ResizeTerminal") => {
            Reply::wua_error(&AgentError::new(
                openwua_model::hresult::WU_E_INVALID_OPERATION,
                format!(
                    "{method} belongs to an interactive Install or Uninstall streaming on the \
                     same connection, and none is"
                ),
            ))
        }
        (AGENT, "GetInstallerState") => {
            let NoParameters {} = parameters(call).await?;
            let state = agent.installer_state(&session.requester(None)).await;
            result_reply(state.map(|state| json!({ "state": state })))
        }
        (AGENT, "GetReportingState") => {
            let NoParameters {} = parameters(call).await?;
            let servers = agent.reporting_state(&session.requester(None)).await;
            result_reply(servers.map(|servers| json!({ "servers": servers })))
        }
        (AGENT, "ExportReports") => {
            let request: ServiceParameters = parameters(call).await?;
            let requester = session.requester(request.client_application_id);
            let report = agent.export_reports(&requester, request.service_id).await;
            result_reply(report.map(|report| json!({ "report": report })))
        }
        (AGENT, "GetAutomaticUpdates") => {
            let NoParameters {} = parameters(call).await?;
            let state = agent.automatic_updates(&session.requester(None)).await;
            result_reply(state.map(|state| json!({ "state": state })))
        }
        (AGENT, "SetAutomaticUpdates") => {
            let request: SetAutomaticUpdatesParameters = parameters(call).await?;
            let state = match crate::automatic::settings_change(request) {
                Ok(change) => {
                    agent
                        .set_automatic_updates(&session.requester(None), change)
                        .await
                }
                Err(error) => Err(error),
            };
            result_reply(state.map(|state| json!({ "state": state })))
        }
        (AGENT, "DetectNow") => {
            let NoParameters {} = parameters(call).await?;
            let done = agent.detect_now(&session.requester(None)).await;
            result_reply(done.map(|()| json!({})))
        }
        (AGENT, "PauseAutomaticUpdates") => {
            let PauseParameters { until } = parameters(call).await?;
            let state = match crate::automatic::pause_end(until.as_deref()) {
                Ok(until) => {
                    agent
                        .pause_automatic_updates(&session.requester(None), until)
                        .await
                }
                Err(error) => Err(error),
            };
            result_reply(state.map(|state| json!({ "state": state })))
        }
        (AGENT, "ResumeAutomaticUpdates") => {
            let NoParameters {} = parameters(call).await?;
            let state = agent
                .resume_automatic_updates(&session.requester(None))
                .await;
            result_reply(state.map(|state| json!({ "state": state })))
        }
        (AGENT, "ListJobs") => {
            let NoParameters {} = parameters(call).await?;
            Reply::of(&json!({ "jobs": agent.list_jobs(&session.requester(None)) }))
        }
        (AGENT, "WatchJob") => {
            let JobParameters { job_id } = parameters(call).await?;
            let job = agent.watch_job(&session.requester(None), job_id);
            return follow(job, call.more, sink).await;
        }
        (AGENT, "AbortJob") => {
            let JobParameters { job_id } = parameters(call).await?;
            let done = agent.abort_job(&session.requester(None), job_id);
            result_reply(done.map(|()| json!({})))
        }
        (AGENT | SERVICE, _) => Reply::service_error(
            "org.varlink.service.MethodNotFound",
            json!({ "method": call.method }),
        ),
        _ => Reply::service_error(
            "org.varlink.service.InterfaceNotFound",
            json!({ "interface": interface }),
        ),
    };
    Ok(Some(reply))
}

/// `serviceId`, which `RemoveService` and `SetDefaultService` require.
fn required_service(service_id: Option<Uuid>) -> Result<Uuid, Reply> {
    service_id.ok_or_else(|| {
        Reply::service_error(
            "org.varlink.service.InvalidParameter",
            json!({ "parameter": "serviceId" }),
        )
    })
}

/// Replies with a job: with `more`, its state now, then each change, and
/// last (not continued) the completed job; without, only the completed job.
/// The job runs on whether or not anyone is listening.
async fn follow(
    started: Result<std::sync::Arc<Job>, AgentError>,
    more: bool,
    sink: &mut impl ReplySink,
) -> Result<Option<Reply>, Reply> {
    let job = started.map_err(|error| Reply::wua_error(&error))?;
    let mut changes = job.subscribe();
    if !more {
        // Looked at in place: copying the job (its growing list of
        // results) at every step would make a long call quadratic.
        let _ = changes
            .wait_for(|info| info.state == JobState::Completed)
            .await;
        return Ok(Some(Reply::of(&json!({ "job": job.info() }))));
    }
    loop {
        let info = changes.borrow_and_update().clone();
        if info.state == JobState::Completed {
            return Ok(Some(Reply::of(&json!({ "job": info }))));
        }
        let reply = Reply::Parameters {
            json: json!({ "job": info }).to_string(),
            continues: true,
        };
        if let Err(error) = sink.send(reply).await {
            // The client left; the job goes on without it.
            tracing::debug!("job progress not delivered: {error}");
            return Ok(None);
        }
        if changes.changed().await.is_err() {
            return Ok(Some(Reply::of(&json!({ "job": job.info() }))));
        }
    }
}

/// `Sync`: with `more`, a reply per phase as it happens, the last one (not
/// continued) carrying the last service's result; without, only that one.
async fn sync(
    session: &Session,
    requester: &Requester,
    more: bool,
    service_id: Option<Uuid>,
    online: bool,
    sink: &mut impl ReplySink,
) -> std::io::Result<Reply> {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let work = session
        .agent
        .sync(requester, service_id, online, move |phase| {
            let (name, service, result) = match phase {
                SyncPhase::Verifying(id) => ("verifying", id, None),
                SyncPhase::Importing(id) => ("importing", id, None),
                SyncPhase::Scanning(id) => ("scanning", id, None),
                SyncPhase::Done(result) => ("done", result.service_id, Some(result.clone())),
            };
            // The receiver lives until the work ends; a send cannot fail before.
            let is_done = result.is_some();
            let progress =
                json!({ "progress": { "phase": name, "serviceId": service, "result": result } });
            let _ = sender.send((progress, is_done));
        });
    // Phases go out as they happen, except that a finished service's
    // result waits for the next phase: the very last one must be the reply
    // without `continues`.
    let forward = async {
        let mut pending_done: Option<serde_json::Value> = None;
        while let Some((phase, is_done)) = receiver.recv().await {
            if let Some(previous) = pending_done.take()
                && more
            {
                sink.send(Reply::Parameters {
                    json: previous.to_string(),
                    continues: true,
                })
                .await?;
            }
            if is_done {
                pending_done = Some(phase);
            } else if more {
                sink.send(Reply::Parameters {
                    json: phase.to_string(),
                    continues: true,
                })
                .await?;
            }
        }
        Ok::<_, std::io::Error>(pending_done)
    };
    let (outcome, last) = tokio::join!(work, forward);
    let last = last?;
    Ok(match (outcome, last) {
        (Err(error), _) => Reply::wua_error(&error),
        (Ok(_), Some(last)) => Reply::of(&last),
        (Ok(_), None) => Reply::wua_error(&AgentError::new(
            openwua_model::hresult::WU_E_SERVICE_NOT_REGISTERED,
            "no update service is registered",
        )),
    })
}
