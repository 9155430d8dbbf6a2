//! Downloads from a real HTTP server on 127.0.0.1 through a real agent:
//! a service with a content base, failures mapped to WUA's codes, and a
//! SIGKILL in the middle of a download that the next download resumes.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::{Behaviour, Server, payload};
use common::*;
use serde_json::json;
use sha2::Digest as _;
use uuid::Uuid;

/// An agent with one update whose 2 MiB content lives on `server`.
fn agent_with_http_content(body: &[u8], server: &Server) -> (AgentProcess, Uuid) {
    let agent = AgentProcess::start(&[]);
    let dir = agent.dir.path();
    let payload = dir.join("payload.bin");
    std::fs::write(&payload, body).unwrap();
    let (mut revision, (mut content, _)) = installable(
        dir,
        1,
        "Big update",
        Installer {
            script: "exit 0".into(),
            uninstall: false,
            exit_codes: json!({ "codes": [{ "code": 0, "outcome": "succeeded" }] }),
        },
        json!({}),
    );
    let sha256 = openwua_model::update::Sha256Digest(sha2::Sha256::digest(body).into());
    content.file_name = "payload.bin".into();
    content.size = body.len() as u64;
    content.sha256 = sha256;
    content.url = format!("content/{sha256}");
    revision.content = vec![content];
    revision.update.download_contents = vec![openwua_model::update::DownloadContent {
        file_name: "payload.bin".into(),
        size: body.len() as u64,
        sha256,
    }];
    let (key, public) = key();
    let package = dir.join("service.owpkg");
    // The package carries no content: it is on the server.
    write(&snapshot(1, vec![revision]), &key, &package);
    agent
        .call(
            "org.openwua.Agent.AddScanPackageService",
            json!({ "path": package, "publicKey": public, "contentBase": server.base() }),
        )
        .unwrap();
    (agent, Uuid::from_u128(1))
}

fn body() -> Arc<Vec<u8>> {
    payload(2 << 20)
}

fn download(agent: &AgentProcess, id: Uuid) -> serde_json::Value {
    run_job(
        agent,
        "org.openwua.Agent.Download",
        json!({ "updateIds": [id] }),
    )
    .unwrap()
}

fn is_downloaded(agent: &AgentProcess, id: Uuid) -> bool {
    let update = agent
        .call("org.openwua.Agent.GetUpdate", json!({ "updateId": id }))
        .unwrap();
    update["entry"]["state"]["isDownloaded"] == true
}

#[test]
fn http_failures_have_wua_codes_and_leave_nothing_cached() {
    let body = body();
    let server = Server::start(Arc::clone(&body), Behaviour::Status(404));
    let (agent, id) = agent_with_http_content(&body, &server);
    let job = download(&agent, id);
    assert_eq!(job["result"]["resultCode"], "Failed");
    assert_eq!(job["result"]["updates"][0]["hresult"], "0x80244019"); // WU_E_PT_HTTP_STATUS_NOT_FOUND

    server.set(Behaviour::WrongBytes);
    let job = download(&agent, id);
    assert_eq!(job["result"]["updates"][0]["hresult"], "0x80246002"); // WU_E_DM_INCORRECTFILEHASH
    assert!(!is_downloaded(&agent, id));

    server.set(Behaviour::Healthy);
    let job = download(&agent, id);
    assert_eq!(job["result"]["resultCode"], "Succeeded");
    let cached = agent.dir.path().join("cache/content");
    let files: Vec<_> = std::fs::read_dir(&cached).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read(files[0].path()).unwrap(), *body);
}

#[test]
fn a_download_killed_midway_resumes_where_it_stopped() {
    let body = body();
    let server = Server::start(Arc::clone(&body), Behaviour::Slow);
    let (mut agent, id) = agent_with_http_content(&body, &server);
    let (_client, _) = start_job(
        &agent,
        "org.openwua.Agent.Download",
        json!({ "updateIds": [id] }),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.sent() < 512 << 10 {
        assert!(Instant::now() < deadline, "the download never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    agent.kill_and_restart();
    assert!(!is_downloaded(&agent, id));

    server.set(Behaviour::Healthy);
    let job = download(&agent, id);
    assert_eq!(job["result"]["resultCode"], "Succeeded", "{job}");
    let ranges = server.ranges();
    let resumed = ranges.last().cloned().flatten().unwrap_or_default();
    let offset: u64 = resumed
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap_or(0);
    assert!(offset > 0, "the second download started over: {ranges:?}");
    assert!(is_downloaded(&agent, id));
}

#[test]
fn an_aborted_download_keeps_its_part_for_later() {
    let body = body();
    let server = Server::start(Arc::clone(&body), Behaviour::Slow);
    let (agent, id) = agent_with_http_content(&body, &server);
    let (mut client, job_id) = start_job(
        &agent,
        "org.openwua.Agent.Download",
        json!({ "updateIds": [id] }),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.sent() < 256 << 10 {
        assert!(Instant::now() < deadline, "the download never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    agent
        .call("org.openwua.Agent.AbortJob", json!({ "jobId": job_id }))
        .unwrap();
    let job = &job_end(&mut client);
    assert_eq!(job["result"]["resultCode"], "Aborted", "{job}");
    assert!(!is_downloaded(&agent, id));
    let parts = std::fs::read_dir(agent.dir.path().join("cache/content"))
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".part"))
        .count();
    assert_eq!(parts, 1, "the partial download was not kept");
}
