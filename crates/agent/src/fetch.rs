//! TEMPORARY STUB (replaced by the fetch branch).
#![allow(missing_docs, dead_code)]
use crate::error::AgentError;
use openwua_model::update::Sha256Digest;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
pub struct FetchSettings {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub retries: u32,
}
impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            retries: 3,
        }
    }
}
pub enum FetchEvent {
    Verifying,
    Bytes(u64),
}
pub struct FetchRequest<'a> {
    pub url: &'a str,
    pub size: u64,
    pub sha256: Sha256Digest,
    pub destination: &'a Path,
}
pub struct Fetcher;
impl Fetcher {
    pub fn new(_settings: FetchSettings) -> Fetcher {
        Fetcher
    }
    pub fn fetch(
        &self,
        request: &FetchRequest<'_>,
        _progress: &mut dyn FnMut(FetchEvent),
        _abort: &AtomicBool,
    ) -> Result<(), AgentError> {
        let path = request.url.strip_prefix("file://").unwrap_or(request.url);
        std::fs::copy(path, request.destination)
            .map(|_| ())
            .map_err(|e| {
                AgentError::new(
                    openwua_model::hresult::WU_E_DM_URLNOTAVAILABLE,
                    e.to_string(),
                )
            })
    }
}
