//! The web console over HTTP, on SQLite and PostgreSQL: every page answers
//! for a fleet with reports and failures; sign-in, sessions, CSRF tokens
//! and the read-only role hold. (The browser test, console_browser.rs,
//! drives the same pages in chromium.)

mod common;

use common::{Server, sample_service};
use serde_json::{Value, json};

const MOTD: &str = "3d64ba01-f585-5423-8b8f-02c8d265efb5";
const LICENCES: &str = "25d8429d-4049-588f-ae9e-4155fc2f722e";

/// One request that follows no redirect: status, headers, body.
fn request(
    method: &str,
    url: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    if form.is_some() {
        builder = builder.header("content-type", "application/x-www-form-urlencoded");
    }
    let mut response = agent
        .run(
            builder
                .body(form.unwrap_or("").as_bytes().to_vec())
                .unwrap(),
        )
        .unwrap();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_owned()))
        .collect();
    let status = response.status().as_u16();
    (
        status,
        headers,
        response.body_mut().read_to_string().unwrap(),
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Signs in with `token`; the session's cookie.
fn sign_in(server: &Server, token: &str) -> String {
    let (status, headers, body) = request(
        "POST",
        &format!("{}/console/sign-in", server.url),
        None,
        Some(&format!("token={token}")),
    );
    assert_eq!(status, 303, "{body}");
    let cookie = header(&headers, "set-cookie").unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    cookie.split(';').next().unwrap().to_owned()
}

fn page(server: &Server, cookie: &str, path: &str) -> String {
    let (status, headers, body) =
        request("GET", &format!("{}{path}", server.url), Some(cookie), None);
    assert_eq!(status, 200, "{path}: {body}");
    assert!(body.contains("</html>"), "{path}: {body}");
    let policy = header(&headers, "content-security-policy").unwrap();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    body
}

/// The session's CSRF token, from a page's sign-out form.
fn csrf(body: &str) -> String {
    let start = body.find(r#"name="csrf" value=""#).unwrap() + r#"name="csrf" value=""#.len();
    body[start..start + 64].to_owned()
}

fn register(server: &Server, machine_id: &str, group: &str) -> (String, String) {
    let body = json!({"machineId": machine_id, "hostname": format!("host-{machine_id}"),
        "targetGroup": group});
    let (status, _, bytes) = common::http(
        "POST",
        &format!("{}/api/v1/computers/register", server.url),
        None,
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    (
        answer["computerId"].as_str().unwrap().to_owned(),
        answer["secret"].as_str().unwrap().to_owned(),
    )
}

fn report(server: &Server, computer: &(String, String), updates: Value) {
    let body = json!({"sequence": 1,
        "inventory": {"os": "Debian GNU/Linux 12 (bookworm)", "agentVersion": "0.1.0",
            "rebootPending": true},
        "updates": updates});
    let (status, _, bytes) = common::http(
        "POST",
        &format!("{}/api/v1/reports", server.url),
        None,
        &[
            (
                "authorization",
                &format!("Computer {} {}", computer.0, computer.1),
            ),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
}

/// Marks a computer stale as maintenance would after months of silence
/// (months cannot pass in a test): straight in the server's database.
fn mark_stale(server: &Server, database: Option<&str>, computer_id: &str) {
    const SINCE: &str = "2026-11-01T03:00:00Z";
    match database {
        None => {
            let connection =
                rusqlite::Connection::open(server.data_dir.join("server.sqlite")).unwrap();
            connection
                .busy_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            let changed = connection
                .execute(
                    "UPDATE computers SET stale_since = ?1 WHERE computer_id = ?2",
                    [SINCE, computer_id],
                )
                .unwrap();
            assert_eq!(changed, 1);
        }
        Some(url) => {
            let url = url.to_owned();
            let id = computer_id.to_owned();
            tokio::runtime::Handle::current().block_on(async move {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                let changed = client
                    .execute(
                        "UPDATE computers SET stale_since = $1 WHERE computer_id::text = $2",
                        &[&SINCE, &id],
                    )
                    .await
                    .unwrap();
                assert_eq!(changed, 1);
            });
        }
    }
}

/// A fleet: the sample published, a group, two computers, one failure;
/// the second computer marked stale. Returns the two computers' IDs.
fn fleet(server: &Server, database: Option<&str>) -> (String, String) {
    server.run_ok(&["publish", sample_service().to_str().unwrap()]);
    server.run_ok(&["groups", "add", "Web"]);
    server.run_ok(&["approve", MOTD, "--group", "All Computers"]);
    let web = register(server, "aaaa", "Web");
    let other = register(server, "bbbb", "Nothing");
    report(
        server,
        &web,
        json!([{"updateId": MOTD, "revisionNumber": 1, "state": "Failed",
            "resultCode": "Failed", "hresult": "0x80240020", "time": "2026-12-04T20:01:00Z"}]),
    );
    report(
        server,
        &other,
        json!([{"updateId": MOTD, "revisionNumber": 1, "state": "Installed",
            "resultCode": "Succeeded", "hresult": "0x00000000", "time": "2026-12-04T20:01:00Z"}]),
    );
    mark_stale(server, database, &other.0);
    (web.0, other.0)
}

/// Every page answers, with what the fleet holds.
fn every_page(server: &Server, cookie: &str, (web, stale): &(String, String)) {
    let overview = page(server, cookie, "/console/overview");
    assert!(
        overview.contains(r#"data-group="Web" data-computers="1""#),
        "{overview}"
    );
    assert!(overview.contains(r#"data-failed="1""#), "{overview}");
    // The stale-marked computer reported today, yet counts as not
    // reported, whatever the period asked for: the same as its tag.
    for path in ["/console/overview", "/console/overview?days=30"] {
        let overview = page(server, cookie, path);
        assert_eq!(
            overview.matches(r#"data-not-reported="1""#).count(),
            1,
            "{overview}"
        );
    }
    let updates = page(server, cookie, "/console/updates");
    assert!(updates.contains(MOTD), "{updates}");
    let found = page(server, cookie, "/console/updates?q=message+of+the+day");
    assert!(found.contains(MOTD) && !found.contains(LICENCES), "{found}");
    let by_id = page(
        server,
        cookie,
        &format!("/console/updates?criteria=UpdateID%3D%27{LICENCES}%27"),
    );
    assert!(by_id.contains(LICENCES) && !by_id.contains(MOTD), "{by_id}");
    let detail = page(server, cookie, &format!("/console/updates/{MOTD}"));
    assert!(detail.contains(r#"data-total="Failed">1"#), "{detail}");
    assert!(detail.contains(r#"data-total="Installed">1"#), "{detail}");
    page(
        server,
        cookie,
        &format!("/console/updates/{MOTD}?state=Failed&page=1"),
    );
    let computers = page(server, cookie, "/console/computers");
    assert!(computers.contains("host-aaaa") && computers.contains("host-bbbb"));
    // The stored stale mark, on the list and on the computer's page; the
    // fresh computer has none.
    assert_eq!(
        computers.matches("stale since 2026-11-01").count(),
        1,
        "{computers}"
    );
    let stale_page = page(server, cookie, &format!("/console/computers/{stale}"));
    assert!(
        stale_page.contains("stale since 2026-11-01"),
        "{stale_page}"
    );
    let web_only = page(server, cookie, "/console/computers?group=Web&q=aaa");
    assert!(web_only.contains("host-aaaa") && !web_only.contains("host-bbbb"));
    let computer = page(server, cookie, &format!("/console/computers/{web}"));
    // Explained as `wua explain` explains it.
    assert!(computer.contains("WU_E_NO_INTERACTIVE_USER"), "{computer}");
    let failures = page(server, cookie, "/console/failures");
    assert!(failures.contains("WU_E_NO_INTERACTIVE_USER"), "{failures}");
    let machines = page(server, cookie, "/console/failures/0x80240020");
    assert!(machines.contains("host-aaaa") && !machines.contains("host-bbbb"));
    page(server, cookie, "/console/failures/WU_E_NO_INTERACTIVE_USER");
    maintenance_page(server, cookie);
    last_sync(server, cookie);
}

/// The Maintenance page: the policy, the next run, and each recorded run
/// with what it removed and the database's size before and after.
fn maintenance_page(server: &Server, cookie: &str) {
    let before = page(server, cookie, "/console/maintenance");
    assert!(before.contains(r#"id="no-runs""#), "{before}");
    assert!(before.contains("daily at 03:00 UTC"), "{before}");
    assert!(before.contains(r#"<dd id="next-run">20"#), "{before}");
    let run = server.json(&["maintenance", "run"]);
    let after = page(server, cookie, "/console/maintenance");
    assert!(
        after.contains(&format!(r#"data-run-id="{}""#, run["id"])),
        "{after}"
    );
    assert!(
        after.contains(&format!(
            r#"data-database-before="{}" data-database-after="{}""#,
            run["databaseBytesBefore"], run["databaseBytesAfter"]
        )),
        "{after}"
    );
    assert!(after.contains(r#"data-count="stale">0"#), "{after}");
}

/// The Overview's last sync: the last publish without upstreams, each
/// upstream's last sync with them.
fn last_sync(server: &Server, cookie: &str) {
    let overview = page(server, cookie, "/console/overview");
    assert!(
        overview.contains("this server has no upstream"),
        "{overview}"
    );
    assert!(!overview.contains(r#"id="last-sync""#), "{overview}");
    let keyring = server.data_dir.join("console-test.gpg");
    // Binary OpenPGP (a public-key packet's tag); nothing is fetched.
    std::fs::write(&keyring, [0x99, 0x01, 0x0d]).unwrap();
    server.run_ok(&[
        "upstream",
        "add",
        "security",
        "--url",
        "http://127.0.0.1:9/debian-security",
        "--suite",
        "bookworm-security",
        "--component",
        "main",
        "--arch",
        "amd64",
        "--keyring",
        keyring.to_str().unwrap(),
    ]);
    let overview = page(server, cookie, "/console/overview");
    assert!(overview.contains(r#"id="last-sync""#), "{overview}");
    assert!(
        overview.contains(r#"data-upstream="security""#),
        "{overview}"
    );
    assert!(overview.contains("never synced"), "{overview}");
}

#[test]
fn every_page_answers_on_sqlite() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("server"), None, &[]);
    let fleet = fleet(&server, None);
    let cookie = sign_in(&server, &server.token());
    every_page(&server, &cookie, &fleet);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_answers_on_postgres() {
    let Some(admin_url) = common::postgres_url("every_page_answers_on_postgres") else {
        return;
    };
    common::with_database(&admin_url, |url| async move {
        tokio::task::spawn_blocking(move || {
            let root = tempfile::tempdir().unwrap();
            let server = Server::start(&root.path().join("server"), Some(&url), &[]);
            let fleet = fleet(&server, Some(&url));
            let cookie = sign_in(&server, &server.token());
            every_page(&server, &cookie, &fleet);
            sessions_and_roles(&server);
        })
        .await
        .unwrap();
    })
    .await;
}

#[test]
fn sessions_csrf_and_the_read_only_role_hold_on_sqlite() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("server"), None, &[]);
    fleet(&server, None);
    sessions_and_roles(&server);
}

fn approvals(server: &Server) -> String {
    let (status, body) = server.admin("GET", &format!("/api/v1/updates/{LICENCES}/approvals"), b"");
    assert_eq!(status, 200);
    String::from_utf8(body).unwrap()
}

/// A staged rollout on its update's page and the Rollouts page; an admin
/// halts and resumes it with the CSRF token, a read-only session cannot.
fn rollouts(server: &Server, admin: &str, helpdesk: &str) {
    let url = |path: &str| format!("{}{path}", server.url);
    // Never halts by itself (100 %), so only the forms move it.
    let plan = json!({"rings": [{"group": "All Computers", "soakSecs": 86400}],
        "maxFailurePercent": 100, "minReported": 1});
    let (status, body) = server.admin(
        "POST",
        &format!("/api/v1/updates/{MOTD}/rollout"),
        plan.to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let list = page(server, helpdesk, "/console/rollouts");
    assert!(
        list.contains(&format!(r#"data-update-id="{MOTD}""#))
            && list.contains(r#"data-rollout-state="running""#),
        "{list}"
    );
    let detail = page(server, admin, &format!("/console/updates/{MOTD}"));
    assert!(detail.contains(r#"id="rollout""#), "{detail}");
    // The fleet's one failure and one install count.
    assert!(
        detail.contains(r#"data-computers="2" data-reported="2" data-failed="1""#),
        "{detail}"
    );
    assert!(detail.contains(r#"id="halt""#), "{detail}");
    let seen = page(server, helpdesk, &format!("/console/updates/{MOTD}"));
    assert!(seen.contains(r#"id="rollout""#) && !seen.contains(r#"id="halt""#));

    let halt = url(&format!("/console/updates/{MOTD}/rollout/halt"));
    let resume = url(&format!("/console/updates/{MOTD}/rollout/resume"));
    let state = || {
        let (status, body) = server.admin("GET", &format!("/api/v1/rollouts/{MOTD}"), b"");
        assert_eq!(status, 200);
        let status: Value = serde_json::from_slice(&body).unwrap();
        status["rollout"]["state"].as_str().unwrap().to_owned()
    };
    // Read-only, with its own token: refused; the admin without one: refused.
    let (status, _, _) = request(
        "POST",
        &halt,
        Some(helpdesk),
        Some(&format!("csrf={}", csrf(&seen))),
    );
    assert_eq!(status, 403);
    let (status, _, _) = request("POST", &halt, Some(admin), Some(""));
    assert_eq!(status, 403);
    assert_eq!(state(), "running");
    let (status, headers, _) = request(
        "POST",
        &halt,
        Some(admin),
        Some(&format!("csrf={}", csrf(&detail))),
    );
    assert_eq!(status, 303);
    assert!(
        header(&headers, "location")
            .unwrap()
            .contains("done=halted")
    );
    assert_eq!(state(), "halted");
    // Why, with the failing code explained.
    let halted = page(server, admin, &format!("/console/updates/{MOTD}"));
    assert!(halted.contains(r#"id="halt-reason""#), "{halted}");
    assert!(halted.contains("halted by an administrator"), "{halted}");
    assert!(halted.contains(r#"data-hresult="0x80240020""#), "{halted}");
    assert!(halted.contains("WU_E_NO_INTERACTIVE_USER"), "{halted}");
    assert!(halted.contains(r#"id="resume""#) && !halted.contains(r#"id="halt""#));
    // Halting a halted rollout is a conflict, shown as a page.
    let (status, _, _) = request(
        "POST",
        &halt,
        Some(admin),
        Some(&format!("csrf={}", csrf(&halted))),
    );
    assert_eq!(status, 409);
    let (status, _, _) = request(
        "POST",
        &resume,
        Some(helpdesk),
        Some(&format!("csrf={}", csrf(&seen))),
    );
    assert_eq!(status, 403);
    assert_eq!(state(), "halted");
    let (status, _, _) = request(
        "POST",
        &resume,
        Some(admin),
        Some(&format!("csrf={}", csrf(&halted))),
    );
    assert_eq!(status, 303);
    assert_eq!(state(), "running");
    // The Maintenance page is read-only, and open to read-only sessions.
    let maintenance = page(server, helpdesk, "/console/maintenance");
    assert!(!maintenance.contains(r#"method="post" action="/console/m"#));
}

fn sessions_and_roles(server: &Server) {
    let url = |path: &str| format!("{}{path}", server.url);
    // No session: every page sends to the sign-in page.
    let (status, headers, _) = request("GET", &url("/console/overview"), None, None);
    assert_eq!(
        (status, header(&headers, "location")),
        (303, Some("/console/sign-in"))
    );
    let (status, _, _) = request(
        "GET",
        &url("/console/overview"),
        Some(&format!("wua_console={}", "a".repeat(64))),
        None,
    );
    assert_eq!(status, 303);
    // A wrong token signs nobody in.
    let (status, headers, _) = request("POST", &url("/console/sign-in"), None, Some("token=nope"));
    assert_eq!(status, 401);
    assert!(header(&headers, "set-cookie").is_none());

    let admin = sign_in(server, &server.token());
    let body = page(server, &admin, &format!("/console/updates/{LICENCES}"));
    let token = csrf(&body);
    let approve = url(&format!("/console/updates/{LICENCES}/approve"));
    let form = "group=All+Computers&action=install&deadline=2027-01-31T18%3A00";
    // Without the CSRF token, or with another, nothing changes.
    let (status, _, _) = request("POST", &approve, Some(&admin), Some(form));
    assert_eq!(status, 403);
    let wrong = format!("{form}&csrf={}", "0".repeat(64));
    let (status, _, _) = request("POST", &approve, Some(&admin), Some(&wrong));
    assert_eq!(status, 403);
    assert_eq!(approvals(server), "[]");
    // With it, the approval and its deadline are set.
    let (status, headers, _) = request(
        "POST",
        &approve,
        Some(&admin),
        Some(&format!("{form}&csrf={token}")),
    );
    assert_eq!(status, 303);
    assert!(
        header(&headers, "location")
            .unwrap()
            .contains("done=approved")
    );
    let set = approvals(server);
    assert!(
        set.contains("2027-01-31T18:00:00Z") && set.contains("install"),
        "{set}"
    );

    // A read-only token, made by the admin, shown once.
    let access = page(server, &admin, "/console/access");
    let (status, _, made) = request(
        "POST",
        &url("/console/access/tokens"),
        Some(&admin),
        Some(&format!("label=helpdesk&csrf={}", csrf(&access))),
    );
    assert_eq!(status, 200);
    let start = made.find(r#"<pre id="new-token">"#).unwrap() + r#"<pre id="new-token">"#.len();
    let read_only_token = made[start..start + 64].to_owned();
    // It is not an admin token for the API.
    let (status, _, _) = common::http(
        "GET",
        &url("/api/v1/updates"),
        Some(&read_only_token),
        &[],
        b"",
    );
    assert_eq!(status, 401);

    let helpdesk = sign_in(server, &read_only_token);
    let body = page(server, &helpdesk, &format!("/console/updates/{LICENCES}"));
    assert!(!body.contains(r#"id="approve""#), "{body}");
    let own = csrf(&body);
    for (path, form) in [
        (
            approve.clone(),
            format!("group=Web&action=notApproved&csrf={own}"),
        ),
        (
            url(&format!("/console/updates/{LICENCES}/decline")),
            format!("csrf={own}"),
        ),
        (url("/console/access/tokens"), format!("label=x&csrf={own}")),
    ] {
        let (status, _, _) = request("POST", &path, Some(&helpdesk), Some(&form));
        assert_eq!(status, 403, "{path}");
    }
    let (status, _, _) = request("GET", &url("/console/access"), Some(&helpdesk), None);
    assert_eq!(status, 403);
    rollouts(server, &admin, &helpdesk);
    assert_eq!(approvals(server), set);
    let (status, _, _) = common::http(
        "GET",
        &url(&format!("/api/v1/updates/{LICENCES}")),
        Some(&server.token()),
        &[],
        b"",
    );
    assert_eq!(status, 200);

    // Revoking the token ends its session; signing out ends the admin's.
    let access = page(server, &admin, "/console/access");
    let digest = {
        let start =
            access.find(r#"name="sha256" value=""#).unwrap() + r#"name="sha256" value=""#.len();
        access[start..start + 64].to_owned()
    };
    let (status, _, _) = request(
        "POST",
        &url("/console/access/tokens/revoke"),
        Some(&admin),
        Some(&format!("sha256={digest}&csrf={}", csrf(&access))),
    );
    assert_eq!(status, 303);
    let (status, _, _) = request("GET", &url("/console/overview"), Some(&helpdesk), None);
    assert_eq!(status, 303);
    let (status, _, _) = request(
        "POST",
        &url("/console/sign-in"),
        None,
        Some(&format!("token={read_only_token}")),
    );
    assert_eq!(status, 401);
    let (status, _, _) = request(
        "POST",
        &url("/console/sign-out"),
        Some(&admin),
        Some(&format!("csrf={}", csrf(&access))),
    );
    assert_eq!(status, 303);
    let (status, _, _) = request("GET", &url("/console/overview"), Some(&admin), None);
    assert_eq!(status, 303);
}
