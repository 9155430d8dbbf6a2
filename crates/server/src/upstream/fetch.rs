//! Bounded HTTP GETs from an upstream mirror (ureq, blocking: callers are
//! on blocking threads).

use std::io::{Read, Write};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Why a GET gave nothing usable.
#[derive(Debug)]
pub(super) enum FetchError {
    /// 404 or 410: the mirror does not have it.
    NotFound,
    /// Anything else, for people.
    Failed(String),
}

/// The agent every upstream request uses: statuses as answers, and
/// timeouts so a mirror that stops answering ends the sync.
pub(super) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn open(agent: &ureq::Agent, url: &str) -> Result<ureq::http::Response<ureq::Body>, FetchError> {
    let response = agent
        .get(url)
        .call()
        .map_err(|error| FetchError::Failed(format!("{url}: {error}")))?;
    let status = response.status();
    if status == 404 || status == 410 {
        return Err(FetchError::NotFound);
    }
    if !status.is_success() {
        return Err(FetchError::Failed(format!("{url}: HTTP {status}")));
    }
    Ok(response)
}

/// The body of `url`, at most `limit` bytes.
pub(super) fn get(agent: &ureq::Agent, url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
    let mut response = open(agent, url)?;
    response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|error| FetchError::Failed(format!("{url}: {error}")))
}

/// Streams `url` into `sink`, refusing more than `size` bytes, and
/// returns how many bytes came and their SHA-256.
pub(super) fn copy_to(
    agent: &ureq::Agent,
    url: &str,
    size: u64,
    sink: &mut impl Write,
) -> Result<(u64, [u8; 32]), FetchError> {
    let response = open(agent, url)?;
    let mut reader = response
        .into_body()
        .into_with_config()
        .limit(size.saturating_add(1))
        .reader();
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let read = reader
            .read(&mut buffer)
            .map_err(|error| FetchError::Failed(format!("{url}: {error}")))?;
        if read == 0 {
            break;
        }
        total += read as u64;
        if total > size {
            return Err(FetchError::Failed(format!(
                "{url}: longer than the {size} bytes the index gives"
            )));
        }
        hasher.update(&buffer[..read]);
        sink.write_all(&buffer[..read])
            .map_err(|error| FetchError::Failed(format!("writing {url}: {error}")))?;
    }
    Ok((total, hasher.finalize().into()))
}
