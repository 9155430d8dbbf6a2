//! The client against a fake agent: a Varlink server on a temporary Unix
//! socket that answers each method with canned replies, written as raw
//! bytes so that framing, errors, streaming and the size limit are the
//! client's to get right.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openwua_client::varlink::Connection;
use openwua_client::{ClientError, SyncPhase, UpdateSession, blocking};
use openwua_model::enums::{OperationResultCode, ServerSelection};
use openwua_model::hresult::{
    E_INVALIDARG, WU_E_INSTALL_NOT_ALLOWED, WU_E_INVALID_CRITERIA,
    WU_E_INVALID_SERIALIZATION_VERSION, WU_E_INVALIDINDEX, WU_E_NO_SERVICE, WU_E_NO_UPDATE,
    WU_E_PT_QUOTA_EXCEEDED, WU_E_SERVICE_STOP,
};
use openwua_model::operation::{JobKind, JobState};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use uuid::Uuid;

const UPDATE: &str = include_str!("../../model/tests/fixtures/update.json");
const SERVICE_ID: &str = "8d0c1f5e-2b3a-4c4d-9e8f-7a6b5c4d3e2f";
const JOB_ID: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
const FIRST: &str = "f69a4107-4c9a-54bc-a9e9-16df277113c1";
const SECOND: &str = "064197b3-dc87-5d8a-87f9-f033b76b0860";

/// What the fake does with one call.
enum Answer {
    /// Writes these chunks, pausing between them.
    Chunks(Vec<Vec<u8>>),
    /// Closes the connection without a word.
    HangUp,
}

type Handler = dyn Fn(&Value) -> Answer + Send + Sync;

struct FakeAgent {
    socket: PathBuf,
    /// Every call received, as JSON, in order.
    calls: Arc<Mutex<Vec<Value>>>,
    _dir: tempfile::TempDir,
}

impl FakeAgent {
    /// Serves `handler` on its own thread and runtime, so that tests may
    /// use either the async or the blocking client.
    fn start(handler: impl Fn(&Value) -> Answer + Send + Sync + 'static) -> FakeAgent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let std_listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let recorded = Arc::clone(&calls);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = UnixListener::from_std(std_listener).unwrap();
                serve(listener, handler, recorded).await;
            });
        });
        FakeAgent {
            socket,
            calls,
            _dir: dir,
        }
    }

    fn calls(&self) -> Vec<Value> {
        self.calls.lock().unwrap().clone()
    }
}

async fn serve(listener: UnixListener, handler: Arc<Handler>, calls: Arc<Mutex<Vec<Value>>>) {
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let handler = Arc::clone(&handler);
        let calls = Arc::clone(&calls);
        tokio::spawn(async move {
            let (reader, mut writer) = stream.into_split();
            let mut reader = BufReader::new(reader);
            loop {
                let mut message = Vec::new();
                if reader.read_until(0, &mut message).await.unwrap_or(0) == 0 {
                    return;
                }
                assert_eq!(message.pop(), Some(0), "a call ends with NUL");
                let call: Value = serde_json::from_slice(&message).unwrap();
                calls.lock().unwrap().push(call.clone());
                match handler(&call) {
                    Answer::HangUp => return,
                    Answer::Chunks(chunks) => {
                        for (index, chunk) in chunks.iter().enumerate() {
                            if index > 0 {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            // The client may stop reading (a reply too large).
                            if writer.write_all(chunk).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
    }
}

/// One reply: the parameters and a NUL, continued or not.
fn reply(parameters: Value, continues: bool) -> Vec<u8> {
    let mut message = json!({ "parameters": parameters });
    if continues {
        message["continues"] = json!(true);
    }
    let mut bytes = serde_json::to_vec(&message).unwrap();
    bytes.push(0);
    bytes
}

fn error(name: &str, parameters: Value) -> Vec<u8> {
    let mut bytes =
        serde_json::to_vec(&json!({ "error": name, "parameters": parameters })).unwrap();
    bytes.push(0);
    bytes
}

fn one(bytes: Vec<u8>) -> Answer {
    Answer::Chunks(vec![bytes])
}

fn service(index: usize) -> Value {
    json!({
        "serviceId": SERVICE_ID,
        "name": format!("service {index}"),
        "isScanPackageService": true,
        "source": "/srv/packages/example.wuapkg",
        "publicKey": format!("ed25519:{}", "ab".repeat(32)),
        "isDefault": index == 0,
        "catalogVersion": 7,
        "lastSync": "2026-12-01T00:00:00Z",
        "updateCount": 1
    })
}

fn progress(phase: &str, result: Option<Value>) -> Value {
    json!({ "progress": { "phase": phase, "serviceId": SERVICE_ID, "result": result } })
}

fn succeeded(id: &str, title: &str, reboot: bool) -> Value {
    json!({
        "updateId": id, "title": title, "resultCode": "Succeeded",
        "hresult": "0x00000000", "rebootRequired": reboot
    })
}

/// An install job of [`FIRST`] and [`SECOND`], as it is after `step`
/// progress replies (0: just started; 3: completed).
fn install_job(step: usize) -> Value {
    let mut job = json!({
        "jobId": JOB_ID, "kind": "Install", "state": "Running",
        "updateIds": [FIRST, SECOND], "callerUid": 0, "clientApplicationId": "tests",
        "started": "2026-12-01T00:00:00Z"
    });
    let first = succeeded(FIRST, "tzdata 2026b", false);
    let second = succeeded(SECOND, "Example Agent 2.1", true);
    let progress = |index: u32, current: &str, percent: u32, total: u32, finished: Vec<Value>| {
        json!({
            "currentUpdateIndex": index, "currentUpdateId": current,
            "currentUpdatePercentComplete": percent, "percentComplete": total,
            "finished": finished
        })
    };
    match step {
        0 => {}
        1 => job["installationProgress"] = progress(0, FIRST, 50, 25, vec![]),
        2 => job["installationProgress"] = progress(1, SECOND, 0, 50, vec![first]),
        _ => {
            job["state"] = json!("Completed");
            job["finished"] = json!("2026-12-01T00:01:00Z");
            job["installationProgress"] =
                progress(1, SECOND, 100, 100, vec![first.clone(), second.clone()]);
            job["result"] = json!({
                "resultCode": "Succeeded", "hresult": "0x00000000",
                "rebootRequired": true, "updates": [first, second]
            });
        }
    }
    json!({ "job": job })
}

/// The replies to a job's call: every step with `more`, else the last.
fn job_replies(call: &Value, from: usize) -> Answer {
    if call["more"] != true {
        return one(reply(install_job(3), false));
    }
    let mut chunks: Vec<Vec<u8>> = (from..3)
        .map(|step| reply(install_job(step), true))
        .collect();
    chunks.push(reply(install_job(3), false));
    Answer::Chunks(chunks)
}

fn wua_error(hresult: &str, name: &str, detail: Option<&str>) -> Vec<u8> {
    error(
        "org.openwua.Agent.WuaError",
        json!({ "hresult": hresult, "name": name, "message": "…", "detail": detail }),
    )
}

/// The agent as the interface file describes it, a method or two each way.
fn canned(protocol_version: u32) -> impl Fn(&Value) -> Answer + Send + Sync + 'static {
    move |call| {
        let parameters = &call["parameters"];
        let method = call["method"].as_str().unwrap_or_default();
        match method.strip_prefix("org.openwua.Agent.").unwrap_or(method) {
            "GetAgentInfo" => one(reply(
                json!({ "info": { "protocolVersion": protocol_version, "agentVersion": "0.0-fake" } }),
                false,
            )),
            "Search" if parameters["criteria"] == "bad (" => one(error(
                "org.openwua.Agent.WuaError",
                json!({
                    "hresult": "0x80240032",
                    "name": "WU_E_INVALID_CRITERIA",
                    "message": "…",
                    "detail": "at byte 4: this '(' is never closed"
                }),
            )),
            "Search" => {
                let update: Value = serde_json::from_str(UPDATE).unwrap();
                one(reply(
                    json!({ "result": {
                        "resultCode": "Succeeded",
                        "updates": [{
                            "update": update,
                            "state": { "isHidden": true, "eulaAccepted": true },
                            "serviceId": SERVICE_ID
                        }],
                        "warnings": [{ "hresult": "0x00240006", "message": "fake warning" }]
                    }}),
                    false,
                ))
            }
            // Large, and cut in two: framing must span reads.
            "ListServices" => {
                let services: Vec<Value> = (0..2000).map(service).collect();
                let bytes = reply(json!({ "services": services }), false);
                let (first, second) = bytes.split_at(bytes.len() / 3);
                Answer::Chunks(vec![first.to_vec(), second.to_vec()])
            }
            "SetHidden" => one(reply(json!({}), false)),
            // Varlink lets an empty reply leave its parameters out.
            "AcceptEula" => one(b"{}\0".to_vec()),
            "RemoveService" => one(error(
                "org.varlink.service.InvalidParameter",
                json!({ "parameter": "serviceId" }),
            )),
            "GetUpdate" => Answer::HangUp,
            // Over the test's limit, and no NUL in sight.
            "GetTotalHistoryCount" => one(vec![b' '; 2 * TEST_REPLY_LIMIT]),
            // Every reply in one write: the client must split them.
            "Sync" => {
                let done = json!({
                    "serviceId": SERVICE_ID, "previousVersion": 6, "version": 7,
                    "added": 2, "changed": 1, "removed": 0, "unchanged": 40
                });
                let mut bytes = reply(progress("verifying", None), true);
                bytes.extend(reply(progress("importing", None), true));
                bytes.extend(reply(progress("scanning", None), true));
                bytes.extend(reply(progress("done", Some(done)), false));
                one(bytes)
            }
            "Install" | "Download" if parameters["updateIds"] == json!([]) => {
                one(wua_error("0x80240024", "WU_E_NO_UPDATE", None))
            }
            "Install" => job_replies(call, 0),
            // Re-attached half way through.
            "WatchJob" if parameters["jobId"] == JOB_ID => job_replies(call, 2),
            "WatchJob" => one(wua_error(
                "0x80240007",
                "WU_E_INVALIDINDEX",
                Some("no such job"),
            )),
            // Another installation runs.
            "Uninstall" => one(wua_error(
                "0x80240016",
                "WU_E_INSTALL_NOT_ALLOWED",
                Some(&format!("job {JOB_ID} is installing")),
            )),
            "GetInstallerState" => one(reply(
                json!({ "state": {
                    "isBusy": true, "busyJobId": JOB_ID,
                    "rebootRequiredBeforeInstallation": false,
                    "rebootPendingUpdates": [SECOND]
                }}),
                false,
            )),
            "ListJobs" => one(reply(
                json!({ "jobs": [install_job(1)["job"], install_job(3)["job"]] }),
                false,
            )),
            "AbortJob" => one(reply(json!({}), false)),
            _ => one(error(
                "org.varlink.service.MethodNotFound",
                json!({ "method": method }),
            )),
        }
    }
}

#[tokio::test]
async fn connects_checks_the_version_and_searches() {
    let agent = FakeAgent::start(canned(1));
    let mut session = UpdateSession::connect(&agent.socket).await.unwrap();
    assert_eq!(session.agent_info().agent_version, "0.0-fake");
    session.set_client_application_id("tests");

    let service_id: Uuid = SERVICE_ID.parse().unwrap();
    let mut searcher = session.create_update_searcher();
    searcher.server_selection = ServerSelection::Others;
    searcher.service_id = Some(service_id);
    searcher.online = true;
    let result = searcher.search("IsInstalled=0").await.unwrap();
    assert_eq!(result.result_code, OperationResultCode::Succeeded);
    assert_eq!(result.updates.len(), 1);
    let entry = result.updates.get(0).unwrap().unwrap();
    assert_eq!(entry.update.kb_article_ids, ["5031001"]);
    assert!(entry.state.is_hidden);
    assert_eq!(entry.service_id, service_id);
    assert_eq!(result.warnings[0].message, "fake warning");

    let calls = agent.calls();
    assert_eq!(calls[0]["method"], "org.openwua.Agent.GetAgentInfo");
    assert_eq!(
        calls[1],
        json!({
            "method": "org.openwua.Agent.Search",
            "parameters": {
                "criteria": "IsInstalled=0",
                "options": {
                    "serverSelection": "Others",
                    "serviceId": SERVICE_ID,
                    "online": true,
                    "includePotentiallySupersededUpdates": false
                },
                "clientApplicationId": "tests"
            }
        }),
        "a plain call carries no `more`"
    );
}

#[tokio::test]
async fn a_wua_error_carries_its_code_and_detail() {
    let agent = FakeAgent::start(canned(1));
    let session = UpdateSession::connect(&agent.socket).await.unwrap();
    let error = session
        .create_update_searcher()
        .search("bad (")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::WuaError { hresult, detail: Some(detail) }
            if *hresult == WU_E_INVALID_CRITERIA && detail.contains("never closed")),
        "{error:?}"
    );
    assert_eq!(error.hresult(), WU_E_INVALID_CRITERIA);
    assert!(
        error
            .to_string()
            .starts_with("0x80240032 WU_E_INVALID_CRITERIA: "),
        "{error}"
    );

    // An error reply ends its call and nothing more: the session goes on.
    let id: Uuid = SERVICE_ID.parse().unwrap();
    session.set_hidden(&[id], true).await.unwrap();
    session.accept_eula(id).await.unwrap();
    let calls = agent.calls();
    assert_eq!(
        calls[2]["parameters"],
        json!({ "updateIds": [SERVICE_ID], "hidden": true })
    );
}

#[tokio::test]
async fn standard_varlink_errors_are_reported_as_such() {
    let agent = FakeAgent::start(canned(1));
    let session = UpdateSession::connect(&agent.socket).await.unwrap();
    let manager = session.create_update_service_manager();
    let error = manager
        .remove_service(SERVICE_ID.parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Varlink { error, parameters }
            if error == "org.varlink.service.InvalidParameter"
                && parameters["parameter"] == "serviceId"),
        "{error:?}"
    );
    assert_eq!(error.hresult(), E_INVALIDARG);
    let error = session.system_info().await.unwrap_err();
    assert!(
        matches!(&error, ClientError::Varlink { error, .. } if error.ends_with("MethodNotFound")),
        "{error:?}"
    );
}

#[tokio::test]
async fn another_protocol_version_is_refused() {
    let agent = FakeAgent::start(canned(2));
    let error = UpdateSession::connect(&agent.socket).await.unwrap_err();
    assert!(
        matches!(error, ClientError::ProtocolVersion { agent: 2 }),
        "{error:?}"
    );
    assert_eq!(error.hresult(), WU_E_INVALID_SERIALIZATION_VERSION);
}

#[tokio::test]
async fn a_missing_agent_is_not_reachable() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody.sock");
    let error = UpdateSession::connect(&socket).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::NotReachable { socket: tried, .. } if *tried == socket),
        "{error:?}"
    );
    assert_eq!(error.hresult(), WU_E_NO_SERVICE);
    let detail = error.detail().unwrap();
    assert!(detail.contains("nobody.sock"), "{detail}");
}

#[tokio::test]
async fn an_agent_that_hangs_up_has_stopped() {
    let agent = FakeAgent::start(canned(1));
    let session = UpdateSession::connect(&agent.socket).await.unwrap();
    let error = session.get_update(Uuid::nil()).await.unwrap_err();
    assert!(matches!(error, ClientError::Disconnected), "{error:?}");
    assert_eq!(error.hresult(), WU_E_SERVICE_STOP);
    assert_eq!(
        agent.calls()[1]["parameters"],
        json!({ "updateId": Uuid::nil() }),
        "GetUpdate takes no ClientApplicationID"
    );
}

#[tokio::test]
async fn sync_streams_its_progress() {
    let agent = FakeAgent::start(canned(1));
    let session = UpdateSession::connect(&agent.socket).await.unwrap();
    let mut phases = Vec::new();
    let result = session
        .sync(None, |progress| phases.push(progress.phase))
        .await
        .unwrap();
    assert_eq!(
        phases,
        [
            SyncPhase::Verifying,
            SyncPhase::Importing,
            SyncPhase::Scanning,
            SyncPhase::Done
        ]
    );
    assert_eq!((result.previous_version, result.version), (Some(6), 7));
    assert_eq!((result.added, result.unchanged), (2, 40));
    let calls = agent.calls();
    assert_eq!(calls[1]["more"], true);
    assert_eq!(calls[1]["parameters"], json!({}));

    // The connection is in step after the stream.
    assert_eq!(
        session
            .create_update_service_manager()
            .services()
            .await
            .unwrap()
            .len(),
        2000
    );
}

#[tokio::test]
async fn replies_left_unread_are_skipped_before_the_next_call() {
    let agent = FakeAgent::start(canned(1));
    let mut connection = Connection::connect(&agent.socket).await.unwrap();
    let mut replies = connection
        .call_more("org.openwua.Agent.Sync", &json!({}))
        .await
        .unwrap();
    let first: Value = replies.next().await.unwrap().unwrap();
    assert_eq!(first["progress"]["phase"], "verifying");
    drop(replies);
    let info: Value = connection
        .call("org.openwua.Agent.GetAgentInfo", &json!({}))
        .await
        .unwrap();
    assert_eq!(info["info"]["protocolVersion"], 1);
}

#[tokio::test]
async fn an_install_streams_its_progress_in_order() {
    let agent = FakeAgent::start(canned(1));
    let mut session = UpdateSession::connect(&agent.socket).await.unwrap();
    session.set_client_application_id("tests");
    let mut installer = session.create_update_installer();
    installer.updates = vec![FIRST.parse().unwrap(), SECOND.parse().unwrap()];
    installer.force_quiet = true;
    let mut seen = Vec::new();
    let job = installer
        .install_with_progress(|job| {
            let progress = job.installation_progress.as_ref();
            seen.push((
                job.state,
                progress.map(|progress| progress.percent_complete),
                progress.map_or(0, |progress| progress.finished.len()),
            ));
        })
        .await
        .unwrap();
    assert_eq!(
        seen,
        [
            (JobState::Running, None, 0),
            (JobState::Running, Some(25), 0),
            (JobState::Running, Some(50), 1),
            (JobState::Completed, Some(100), 2),
        ]
    );
    assert_eq!(job.job_id, JOB_ID.parse::<Uuid>().unwrap());
    assert_eq!(job.kind, JobKind::Install);
    let result = job.result.unwrap();
    assert_eq!(result.result_code, OperationResultCode::Succeeded);
    assert!(result.reboot_required);
    assert_eq!(result.updates[1].title, "Example Agent 2.1");
    assert!(result.updates[1].reboot_required);
    assert_eq!(
        agent.calls()[1],
        json!({
            "method": "org.openwua.Agent.Install",
            "parameters": {
                "updateIds": [FIRST, SECOND],
                "forceQuiet": true,
                "allowSourcePrompts": true,
                "isForced": false,
                "clientApplicationId": "tests"
            },
            "more": true
        })
    );

    // Without progress, one reply: the completed job.
    let job = installer.install().await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(agent.calls()[2].get("more"), None);
}

#[tokio::test]
async fn job_errors_carry_their_codes() {
    let agent = FakeAgent::start(canned(1));
    let session = UpdateSession::connect(&agent.socket).await.unwrap();
    // An empty list goes to the agent, which refuses it.
    let error = session
        .create_update_downloader()
        .download_with_progress(|_| panic!("no progress for a refused call"))
        .await
        .unwrap_err();
    assert_eq!(error.hresult(), WU_E_NO_UPDATE);
    assert_eq!(
        agent.calls()[1]["parameters"],
        json!({ "updateIds": [], "priority": "Normal", "isForced": false })
    );

    let mut installer = session.create_update_installer();
    installer.updates = vec![FIRST.parse().unwrap()];
    let error = installer.uninstall_with_progress(|_| {}).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::WuaError { hresult, detail: Some(detail) }
            if *hresult == WU_E_INSTALL_NOT_ALLOWED && detail.contains(JOB_ID)),
        "{error:?}"
    );
    assert_eq!(
        agent.calls()[2]["parameters"],
        json!({ "updateIds": [FIRST], "forceQuiet": false, "isForced": false }),
        "Uninstall takes no source prompts"
    );

    // The session goes on after an error reply.
    assert!(installer.is_busy().await.unwrap());
    assert!(
        !installer
            .reboot_required_before_installation()
            .await
            .unwrap()
    );
    let state = session.installer_state().await.unwrap();
    assert_eq!(state.busy_job_id, Some(JOB_ID.parse().unwrap()));
    assert_eq!(
        state.reboot_pending_updates,
        [SECOND.parse::<Uuid>().unwrap()]
    );
}

#[tokio::test]
async fn a_job_can_be_listed_watched_and_aborted() {
    let agent = FakeAgent::start(canned(1));
    let session = UpdateSession::connect(&agent.socket).await.unwrap();
    let job_id: Uuid = JOB_ID.parse().unwrap();
    let jobs = session.jobs().await.unwrap();
    assert_eq!(
        jobs.iter().map(|job| job.state).collect::<Vec<_>>(),
        [JobState::Running, JobState::Completed]
    );

    let mut steps = Vec::new();
    let job = session
        .watch_job(job_id, |job| {
            steps.push(
                job.installation_progress
                    .as_ref()
                    .map(|progress| progress.current_update_index),
            );
        })
        .await
        .unwrap();
    assert_eq!(steps, [Some(1), Some(1)]);
    assert!(job.result.is_some());
    assert_eq!(agent.calls()[2]["more"], true);
    assert_eq!(agent.calls()[2]["parameters"], json!({ "jobId": JOB_ID }));

    let error = session.watch_job(Uuid::nil(), |_| {}).await.unwrap_err();
    assert_eq!(error.hresult(), WU_E_INVALIDINDEX);
    session.abort_job(job_id).await.unwrap();
    assert_eq!(agent.calls()[4]["method"], "org.openwua.Agent.AbortJob");
}

/// A reply limit small enough to cross cheaply in a test.
const TEST_REPLY_LIMIT: usize = 4096;

#[tokio::test]
async fn a_reply_over_the_limit_is_refused() {
    let agent = FakeAgent::start(canned(1));
    let mut connection = Connection::connect(&agent.socket).await.unwrap();
    connection.set_max_reply(TEST_REPLY_LIMIT);
    let error = connection
        .call::<_, Value>("org.openwua.Agent.GetTotalHistoryCount", &json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::TooLarge {
                limit: TEST_REPLY_LIMIT
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.hresult(), WU_E_PT_QUOTA_EXCEEDED);
    // The rest of that reply is still on the wire: the connection is done.
    let error = connection
        .call::<_, Value>("org.openwua.Agent.GetSystemInfo", &json!({}))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Protocol(_)), "{error:?}");
}

#[test]
fn the_blocking_session_works_without_a_runtime() {
    let agent = FakeAgent::start(canned(1));
    let mut session = blocking::UpdateSession::connect(&agent.socket).unwrap();
    session.set_client_application_id("blocking");
    let mut searcher = session.create_update_searcher();
    searcher.include_potentially_superseded_updates = true;
    let result = searcher.search("").unwrap();
    assert_eq!(result.updates.len(), 1);
    let error = searcher.search("bad (").unwrap_err();
    assert_eq!(error.hresult(), WU_E_INVALID_CRITERIA);
    let mut phases = 0;
    let sync = session.sync(None, |_| phases += 1).unwrap();
    assert_eq!((phases, sync.version), (4, 7));
    let calls = agent.calls();
    assert_eq!(
        calls[1]["parameters"]["options"]["includePotentiallySupersededUpdates"],
        true
    );
    assert_eq!(calls[1]["parameters"]["clientApplicationId"], "blocking");

    let mut installer = session.create_update_installer();
    installer.updates = vec![FIRST.parse().unwrap()];
    let mut replies = 0;
    let job = installer.install_with_progress(|_| replies += 1).unwrap();
    assert_eq!((replies, job.state), (4, JobState::Completed));
    let watched = session.watch_job(job.job_id, |_| {}).unwrap();
    assert_eq!(watched.result, job.result);
}
