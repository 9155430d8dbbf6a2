//! `org.openwua.Agent`'s methods and `org.varlink.service`'s introspection:
//! decode the parameters, check authorization, call the agent, encode.

use std::time::Duration;

use openwua_varlink::parameters::{
    AddPackageParameters, DownloadParameters, HistoryParameters, InstallParameters,
    InterfaceParameters, JobParameters, NoParameters, SearchParameters, ServiceParameters,
    SetHiddenParameters, UpdateParameters,
};
use serde::de::DeserializeOwned;
use serde_json::json;
use uuid::Uuid;

use super::connection::{Inbox, Session};
use super::interactive;
use super::protocol::{Call, Reply};
use crate::agent::{PROTOCOL_VERSION, SyncPhase};
use crate::error::AgentError;
use crate::install::Interaction;
use crate::jobs::Job;
use crate::operations::{InstallRequest, Requester};
use openwua_installer::prompts::{PromptStream, Prompter};
use openwua_model::enums::UpdateOperation;
use openwua_model::operation::JobState;

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
fn parameters<T: DeserializeOwned>(call: &Call) -> Result<T, Reply> {
    let text = call.parameters.as_ref().map_or("{}", |raw| raw.get());
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

/// Refuses the call with `E_ACCESSDENIED` unless the caller is an administrator.
fn admin(session: &Session, what: &str) -> Result<(), Reply> {
    session
        .require_admin(what)
        .map_err(|error| Reply::wua_error(&error))
}

fn logged(session: &Session, method: &str, client: Option<&str>) {
    tracing::info!(
        uid = session.caller.uid,
        pid = session.caller.pid,
        client = client.unwrap_or("-"),
        "{method}"
    );
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
            let NoParameters {} = parameters(call)?;
            Reply::of(&json!({
                "vendor": "OpenWUA",
                "product": "wua-agent",
                "version": env!("CARGO_PKG_VERSION"),
                "url": env!("CARGO_PKG_REPOSITORY"),
                "interfaces": [SERVICE, AGENT],
            }))
        }
        (SERVICE, "GetInterfaceDescription") => {
            let InterfaceParameters { interface } = parameters(call)?;
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
            let NoParameters {} = parameters(call)?;
            Reply::of(&json!({ "info": {
                "protocolVersion": PROTOCOL_VERSION,
                "agentVersion": env!("CARGO_PKG_VERSION"),
            }}))
        }
        (AGENT, "GetCallerContext") => {
            let NoParameters {} = parameters(call)?;
            Reply::of(&json!({ "context": session.caller.context }))
        }
        (AGENT, "GetSystemInfo") => {
            let NoParameters {} = parameters(call)?;
            result_reply(
                agent
                    .system_info()
                    .await
                    .map(|info| json!({ "info": info })),
            )
        }
        (AGENT, "Search") => {
            let request: SearchParameters = parameters(call)?;
            logged(session, "Search", request.client_application_id.as_deref());
            let options = request.options.unwrap_or_default();
            match agent.search(&request.criteria, &options).await {
                Ok(json) => Reply::Parameters {
                    json,
                    continues: false,
                },
                Err(error) => Reply::wua_error(&error),
            }
        }
        (AGENT, "GetUpdate") => {
            let request: UpdateParameters = parameters(call)?;
            result_reply(agent.get_update(request.update_id))
        }
        (AGENT, "SetHidden") => {
            let request: SetHiddenParameters = parameters(call)?;
            logged(
                session,
                "SetHidden",
                request.client_application_id.as_deref(),
            );
            admin(session, "hide or unhide updates")?;
            result_reply(
                agent
                    .set_hidden(request.update_ids, request.hidden)
                    .await
                    .map(|()| json!({})),
            )
        }
        (AGENT, "AcceptEula") => {
            let request: UpdateParameters = parameters(call)?;
            logged(
                session,
                "AcceptEula",
                request.client_application_id.as_deref(),
            );
            admin(session, "accept licence terms")?;
            result_reply(
                agent
                    .accept_eula(request.update_id)
                    .await
                    .map(|()| json!({})),
            )
        }
        (AGENT, "QueryHistory") => {
            let request: HistoryParameters = parameters(call)?;
            result_reply(
                agent
                    .query_history(request.start, request.count)
                    .await
                    .map(|entries| json!({ "entries": entries })),
            )
        }
        (AGENT, "GetTotalHistoryCount") => {
            let NoParameters {} = parameters(call)?;
            result_reply(
                agent
                    .history_count()
                    .await
                    .map(|count| json!({ "count": count })),
            )
        }
        (AGENT, "ListServices") => {
            let NoParameters {} = parameters(call)?;
            result_reply(
                agent
                    .services()
                    .await
                    .map(|services| json!({ "services": services })),
            )
        }
        (AGENT, "AddScanPackageService") => {
            let request: AddPackageParameters = parameters(call)?;
            logged(
                session,
                "AddScanPackageService",
                request.client_application_id.as_deref(),
            );
            admin(session, "add update services")?;
            let result = agent
                .add_scan_package_service(
                    request.name,
                    request.path,
                    &request.public_key,
                    request.set_default.unwrap_or(false),
                    request.content_base,
                )
                .await;
            result_reply(result.map(|(service, sync)| json!({ "service": service, "sync": sync })))
        }
        (AGENT, "RemoveService") | (AGENT, "SetDefaultService") => {
            let request: ServiceParameters = parameters(call)?;
            logged(session, method, request.client_application_id.as_deref());
            let Some(service_id) = request.service_id else {
                return Err(Reply::service_error(
                    "org.varlink.service.InvalidParameter",
                    json!({ "parameter": "serviceId" }),
                ));
            };
            admin(session, "change update services")?;
            let result = if method == "RemoveService" {
                agent.remove_service(service_id).await
            } else {
                agent.set_default_service(service_id).await
            };
            result_reply(result.map(|()| json!({})))
        }
        (AGENT, "Sync") => {
            let request: ServiceParameters = parameters(call)?;
            logged(session, "Sync", request.client_application_id.as_deref());
            match sync(session, call.more, request.service_id, sink).await {
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
            let request: DownloadParameters = parameters(call)?;
            logged(
                session,
                "Download",
                request.client_application_id.as_deref(),
            );
            let started = agent
                .start_download(
                    request.update_ids,
                    request.is_forced.unwrap_or(false),
                    requester(session),
                    request.client_application_id.unwrap_or_default(),
                )
                .await;
            return follow(started, call.more, sink).await;
        }
        (AGENT, "Install") | (AGENT, "Uninstall") => {
            let request: InstallParameters = parameters(call)?;
            logged(session, method, request.client_application_id.as_deref());
            let operation = if method == "Install" {
                UpdateOperation::Installation
            } else {
                UpdateOperation::Uninstallation
            };
            let (interaction, prompts) =
                interaction(session, request.interactive.unwrap_or(false), call.more);
            let started = agent
                .start_install(
                    InstallRequest {
                        operation,
                        update_ids: request.update_ids,
                        force_quiet: request.force_quiet.unwrap_or(false),
                        is_forced: request.is_forced.unwrap_or(false),
                        client_application_id: request.client_application_id.unwrap_or_default(),
                        interaction,
                    },
                    requester(session),
                )
                .await;
            return match (started, prompts) {
                (Ok(job), Some(prompts)) => {
                    match interactive::follow(job, prompts, inbox, sink).await {
                        Ok(last) => Ok(last),
                        // The client left, as in `follow`: no reply can reach
                        // it, and the job goes on without it.
                        Err(error) => {
                            tracing::debug!("interactive install not delivered: {error}");
                            Ok(None)
                        }
                    }
                }
                (started, _) => follow(started, call.more, sink).await,
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
            let NoParameters {} = parameters(call)?;
            result_reply(
                agent
                    .installer_state()
                    .map(|state| json!({ "state": state })),
            )
        }
        (AGENT, "ListJobs") => {
            let NoParameters {} = parameters(call)?;
            Reply::of(&json!({ "jobs": agent.jobs().list() }))
        }
        (AGENT, "WatchJob") => {
            let JobParameters { job_id } = parameters(call)?;
            return follow(Ok(find_job(session, job_id)?), call.more, sink).await;
        }
        (AGENT, "AbortJob") => {
            let JobParameters { job_id } = parameters(call)?;
            logged(session, "AbortJob", None);
            let job = find_job(session, job_id)?;
            if job.info().caller_uid != session.caller.uid {
                admin(session, "abort another user's job")?;
            }
            job.request_abort();
            Reply::of(&json!({}))
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

/// Whether questions of this call's updates can be answered: only by a
/// caller the kernel shows to be an interactive user, whose client said it
/// answers and reads the streamed replies. Then the job's prompter and the
/// connection's end of it.
fn interaction(
    session: &Session,
    client_answers: bool,
    more: bool,
) -> (Interaction, Option<PromptStream>) {
    let context = &session.caller.context;
    if !context.may.install_interactive {
        let advice = context
            .advice
            .as_deref()
            .unwrap_or("run it from an administrator's own login");
        return (
            Interaction::Refused(format!(
                "it may ask the user something, and the agent classes this caller as {}, \
                 not an interactive user (`wua context` shows why): {advice}",
                context.class.describe()
            )),
            None,
        );
    }
    if !(client_answers && more) {
        return (
            Interaction::Refused(
                "it may ask the user something, and the client did not offer to answer \
                 (run `wua install` at a terminal, or call Install with interactive and more)"
                    .to_owned(),
            ),
            None,
        );
    }
    let timeout = Duration::from_secs(session.agent.config.install.question_timeout_seconds);
    let (prompter, prompts) = Prompter::new(timeout);
    (Interaction::Answered(prompter), Some(prompts))
}

fn requester(session: &Session) -> Requester {
    Requester {
        uid: session.caller.uid,
        is_admin: session.admins.admits(&session.caller),
    }
}

/// A job by ID, or the error reply for an unknown one.
fn find_job(session: &Session, job_id: Uuid) -> Result<std::sync::Arc<Job>, Reply> {
    session.agent.jobs().get(job_id).ok_or_else(|| {
        Reply::wua_error(&AgentError::new(
            openwua_model::hresult::WU_E_INVALID_OPERATION,
            format!("no job {job_id}; `wua jobs` lists the agent's jobs (the newest 100)"),
        ))
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
    loop {
        let info = changes.borrow_and_update().clone();
        if info.state == JobState::Completed {
            return Ok(Some(Reply::of(&json!({ "job": info }))));
        }
        if more {
            let reply = Reply::Parameters {
                json: json!({ "job": info }).to_string(),
                continues: true,
            };
            if let Err(error) = sink.send(reply).await {
                // The client left; the job goes on without it.
                tracing::debug!("job progress not delivered: {error}");
                return Ok(None);
            }
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
    more: bool,
    service_id: Option<Uuid>,
    sink: &mut impl ReplySink,
) -> std::io::Result<Reply> {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let work = session.agent.sync(service_id, move |phase| {
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
