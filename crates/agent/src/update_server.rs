//! The HTTP side of an update-server service (`docs/agent.md`, "Update
//! servers"): the server's description, registration, and one sync request,
//! as the agent↔server contract defines them. Every function blocks: call
//! them from a blocking task. What the answers mean for the store is
//! `Agent`'s business.

use std::net::IpAddr;
use std::path::Path;

use openwua_catalog::sync::MAX_RESPONSE_BYTES;
use openwua_model::hresult::{
    E_INVALIDARG, WU_E_PT_HTTP_STATUS_NOT_MAPPED, WU_E_PT_INVALID_COMPUTER_NAME,
    WU_E_PT_INVALID_URL,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{AgentError, Result};
use crate::fetch::{connection_error, status_code, stream_error};

/// The longest JSON answer (description, registration, error body) read.
const MAX_JSON_BYTES: u64 = 64 * 1024;
/// The longest `Retry-After` obeyed: a day. A longer one is read as a day,
/// so a confused server cannot silence the agent for good.
pub(crate) const MAX_RETRY_AFTER_SECONDS: u64 = 24 * 60 * 60;
/// A hostname's length in a registration (the contract's bound).
const MAX_HOSTNAME_CHARS: usize = 255;

/// `GET /api/v1/service`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServiceDescription {
    /// The `service_id` of every catalog the server signs.
    pub service_id: Uuid,
    /// Its name, for the service's default name.
    pub service_name: String,
    /// Its signing key, `ed25519:<hex>`.
    pub public_key: String,
    /// Where its content is, when not at `<url>/api/v1/` (the operator's
    /// own web server or CDN), ending in `/`.
    #[serde(default)]
    pub content_base: Option<String>,
}

/// This computer's identity at one server. The secret never goes to a log
/// or to a caller: `Debug` leaves it out.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// The server's name for this computer.
    pub computer_id: Uuid,
    /// The secret the server gave (64 lowercase hex digits).
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Credentials")
            .field("computer_id", &self.computer_id)
            .finish_non_exhaustive()
    }
}

/// What registration sends (the contract's §2).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RegisterRequest<'a> {
    machine_id: &'a str,
    hostname: &'a str,
    target_group: Option<&'a str>,
    computer_id: Option<Uuid>,
    secret: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterReply {
    computer_id: Uuid,
    secret: String,
    group: String,
}

/// What this machine tells a server about itself.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    /// `/etc/machine-id`: 1 to 64 lowercase hex digits.
    pub machine_id: String,
    /// The kernel's hostname, at most 255 characters.
    pub hostname: String,
}

impl Machine {
    /// Reads the machine ID from `machine_id_file` and the hostname.
    pub fn read(machine_id_file: &Path) -> Result<Machine> {
        let invalid = |why: String| {
            AgentError::new(
                WU_E_PT_INVALID_COMPUTER_NAME,
                format!(
                    "{}: {why}; the machine needs an ID to register with an update server \
                     (`systemd-machine-id-setup` makes one)",
                    machine_id_file.display()
                ),
            )
        };
        let text = read_small(machine_id_file).map_err(|error| invalid(error.to_string()))?;
        let machine_id = text.trim().to_owned();
        if machine_id.is_empty()
            || machine_id.len() > 64
            || !machine_id
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
        {
            return Err(invalid("not 1 to 64 lowercase hex digits".into()));
        }
        let hostname = read_small(Path::new("/proc/sys/kernel/hostname"))
            .map(|name| name.trim().chars().take(MAX_HOSTNAME_CHARS).collect())
            .unwrap_or_default();
        Ok(Machine {
            machine_id,
            hostname,
        })
    }
}

/// The first 4 KiB of a small text file.
fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(4096)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// Checks an update server's URL and returns it without a trailing `/`:
/// http or https with a host and no query, fragment or credentials; plain
/// http only to a loopback host unless `allow_plain_http` (the server's own
/// rule: a secret and a catalog must not cross a network unencrypted).
pub(crate) fn check_url(url: &str, allow_plain_http: bool) -> Result<String> {
    let invalid = |why: &str| AgentError::new(E_INVALIDARG, format!("server URL {url:?}: {why}"));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid("not an absolute http:// or https:// URL"))?;
    let plain = if scheme.eq_ignore_ascii_case("http") {
        true
    } else if scheme.eq_ignore_ascii_case("https") {
        false
    } else {
        return Err(invalid("only http:// and https:// are supported"));
    };
    if rest.contains(['?', '#', '@']) || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "queries, fragments, credentials and spaces are not allowed",
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if plain && !loopback && !allow_plain_http {
        return Err(invalid(
            "plain http:// is allowed only to a loopback host; use https://, \
             or set allow_plain_http = true in the agent's configuration",
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// `GET <url>/api/v1/service`.
pub(crate) fn describe(http: &ureq::Agent, url: &str) -> Result<ServiceDescription> {
    let endpoint = format!("{url}/api/v1/service");
    let response = http
        .get(&endpoint)
        .call()
        .map_err(|error| connection_error(&endpoint, error))?;
    let status = response.status().as_u16();
    let body = read_body(&endpoint, response, MAX_JSON_BYTES)?;
    if status != 200 {
        return Err(refused(&endpoint, status, &body));
    }
    parse_json(&endpoint, &body)
}

/// What registration answered.
#[derive(Debug)]
pub(crate) enum Registration {
    /// This computer's identity and the group the server put it in.
    Registered(Credentials, String),
    /// 401: the server refused the identity presented.
    Refused,
    /// 503 or 429: come back after this many seconds (none given: no wait).
    Busy(Option<u64>),
}

/// `POST <url>/api/v1/computers/register`: `known` is the identity held
/// from before, if any.
pub(crate) fn register(
    http: &ureq::Agent,
    url: &str,
    machine: &Machine,
    target_group: Option<&str>,
    known: Option<&Credentials>,
) -> Result<Registration> {
    let endpoint = format!("{url}/api/v1/computers/register");
    let request = RegisterRequest {
        machine_id: &machine.machine_id,
        hostname: &machine.hostname,
        target_group,
        computer_id: known.map(|known| known.computer_id),
        secret: known.map(|known| known.secret.as_str()),
    };
    let body = serde_json::to_vec(&request)
        .map_err(|error| AgentError::new(E_INVALIDARG, error.to_string()))?;
    let response = http
        .post(&endpoint)
        .header("Content-Type", "application/json")
        .send(&body[..])
        .map_err(|error| connection_error(&endpoint, error))?;
    let status = response.status().as_u16();
    let retry_after = retry_after(&response);
    let body = read_body(&endpoint, response, MAX_JSON_BYTES)?;
    match status {
        200 => {}
        401 => return Ok(Registration::Refused),
        503 | 429 => return Ok(Registration::Busy(retry_after)),
        _ => return Err(refused(&endpoint, status, &body)),
    }
    let reply: RegisterReply = parse_json(&endpoint, &body)?;
    let secret_ok = reply.secret.len() == 64
        && reply
            .secret
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
    if !secret_ok || reply.group.len() > 255 {
        return Err(AgentError::new(
            WU_E_PT_HTTP_STATUS_NOT_MAPPED,
            format!("{endpoint}: the registration answer is malformed (secret or group)"),
        ));
    }
    Ok(Registration::Registered(
        Credentials {
            computer_id: reply.computer_id,
            secret: reply.secret,
        },
        reply.group,
    ))
}

/// A `Retry-After` in seconds (the HTTP-date form is not used by OpenWUA's
/// server), at most [`MAX_RETRY_AFTER_SECONDS`].
fn retry_after(response: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(|seconds| seconds.min(MAX_RETRY_AFTER_SECONDS))
}

/// What `POST /api/v1/sync` answered.
#[derive(Debug)]
pub(crate) enum SyncReply {
    /// A signed frame, for `Agent::apply_sync_response`.
    Frame(Vec<u8>),
    /// 503 or 429: come back after this many seconds (none given: no
    /// wait).
    Busy(Option<u64>),
    /// 401: the credentials are not (or no longer) valid.
    Unauthorized,
}

/// `POST <url>/api/v1/sync` with this computer's credentials and the
/// catalog version held (`anchor`).
pub(crate) fn sync(
    http: &ureq::Agent,
    url: &str,
    credentials: &Credentials,
    anchor: Option<u64>,
) -> Result<SyncReply> {
    let endpoint = format!("{url}/api/v1/sync");
    let body = serde_json::json!({ "anchor": anchor }).to_string();
    let response = http
        .post(&endpoint)
        .header(
            "Authorization",
            format!(
                "Computer {} {}",
                credentials.computer_id, credentials.secret
            ),
        )
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .map_err(|error| connection_error(&endpoint, error))?;
    let status = response.status().as_u16();
    match status {
        200 => Ok(SyncReply::Frame(read_body(
            &endpoint,
            response,
            MAX_RESPONSE_BYTES,
        )?)),
        401 => Ok(SyncReply::Unauthorized),
        503 | 429 => Ok(SyncReply::Busy(retry_after(&response))),
        _ => {
            let body = read_body(&endpoint, response, MAX_JSON_BYTES)?;
            Err(refused(&endpoint, status, &body))
        }
    }
}

/// What `POST /api/v1/reports` answered.
#[derive(Debug)]
pub(crate) enum ReportReply {
    /// 200: the highest sequence the server stored for this computer.
    Acknowledged(u64),
    /// 401: the credentials are not (or no longer) valid.
    Unauthorized,
    /// 429, or a 5xx: try again later, after this many seconds if the
    /// server said (`Retry-After`).
    Later(Option<u64>, AgentError),
    /// Any other status: the server will never take this report.
    Refused(AgentError),
}

/// `POST <url>/api/v1/reports` with this computer's credentials; `body`
/// is the report's JSON. A connection that fails is an `Err`.
pub(crate) fn report(
    http: &ureq::Agent,
    url: &str,
    credentials: &Credentials,
    body: &[u8],
) -> Result<ReportReply> {
    #[derive(Deserialize)]
    struct Ack {
        acknowledged: u64,
    }
    let endpoint = format!("{url}/api/v1/reports");
    let response = http
        .post(&endpoint)
        .header(
            "Authorization",
            format!(
                "Computer {} {}",
                credentials.computer_id, credentials.secret
            ),
        )
        .header("Content-Type", "application/json")
        .send(body)
        .map_err(|error| connection_error(&endpoint, error))?;
    let status = response.status().as_u16();
    let retry_after = retry_after(&response);
    let body = read_body(&endpoint, response, MAX_JSON_BYTES)?;
    Ok(match status {
        200 => ReportReply::Acknowledged(parse_json::<Ack>(&endpoint, &body)?.acknowledged),
        401 => ReportReply::Unauthorized,
        429 | 500..=599 => ReportReply::Later(retry_after, refused(&endpoint, status, &body)),
        _ => ReportReply::Refused(refused(&endpoint, status, &body)),
    })
}

/// Reads a response's body, at most `limit` bytes.
fn read_body(
    endpoint: &str,
    response: ureq::http::Response<ureq::Body>,
    limit: u64,
) -> Result<Vec<u8>> {
    response
        .into_body()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|error| match error {
            ureq::Error::BodyExceedsLimit(_) => AgentError::new(
                WU_E_PT_HTTP_STATUS_NOT_MAPPED,
                format!("{endpoint}: the answer is larger than the {limit} bytes allowed"),
            ),
            ureq::Error::Io(error) => stream_error(endpoint, error),
            other => connection_error(endpoint, other),
        })
}

fn parse_json<T: serde::de::DeserializeOwned>(endpoint: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|error| {
        AgentError::new(
            WU_E_PT_HTTP_STATUS_NOT_MAPPED,
            format!("{endpoint}: the answer is not what an OpenWUA update server sends: {error}"),
        )
    })
}

/// An error status, with the server's own message when its body has one.
fn refused(endpoint: &str, status: u16, body: &[u8]) -> AgentError {
    #[derive(Deserialize)]
    struct ServerError {
        message: String,
    }
    let why = serde_json::from_slice::<ServerError>(body)
        .map(|error| {
            let message: String = error.message.chars().take(512).collect();
            format!(": {message}")
        })
        .unwrap_or_default();
    AgentError::new(
        status_code(status),
        format!("{endpoint}: the server answered HTTP {status}{why}"),
    )
}

/// `WU_E_PT_INVALID_URL` for a stored URL that no longer passes the check
/// (a configuration change since it was added).
pub(crate) fn stored_url(url: &str, allow_plain_http: bool) -> Result<String> {
    check_url(url, allow_plain_http).map_err(|error| {
        AgentError::new(
            WU_E_PT_INVALID_URL,
            format!(
                "{}; remove the service and add it again with an allowed URL",
                error.detail
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::{Credentials, check_url};

    #[test]
    fn credentials_never_show_their_secret() {
        let credentials = Credentials {
            computer_id: uuid::Uuid::from_u128(7),
            secret: "5ec7e7".repeat(10),
        };
        let shown = format!("{credentials:?}");
        assert!(!shown.contains("5ec7e7"), "{shown}");
        assert!(shown.contains(&uuid::Uuid::from_u128(7).to_string()));
    }

    #[test]
    fn urls_are_bounded_to_http_and_loopback_plain_http() {
        assert_eq!(
            check_url("http://127.0.0.1:8530/", false).unwrap(),
            "http://127.0.0.1:8530"
        );
        assert!(check_url("http://[::1]:8530", false).is_ok());
        assert!(check_url("http://localhost", false).is_ok());
        assert!(check_url("https://wsus.example.org", false).is_ok());
        assert!(check_url("http://wsus.example.org", false).is_err());
        assert!(check_url("http://wsus.example.org", true).is_ok());
        for bad in [
            "ftp://host/",
            "file:///etc",
            "https://",
            "https://user:pw@host/",
            "https://host/?q",
            "host",
        ] {
            assert!(check_url(bad, true).is_err(), "{bad}");
        }
    }
}
