//! `server.toml` and the flags that override it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where `wua-server serve` looks for its configuration when no
/// `--config` is given (a missing file there is not an error).
pub const DEFAULT_CONFIG: &str = "/etc/openwua/server.toml";
/// The data directory unless configured.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/openwua-server";
/// WSUS's HTTP port, on loopback.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8530";
/// The largest JSON request body (revisions to publish): 64 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 64 << 20;
/// The largest content file: 8 GiB.
pub const DEFAULT_MAX_CONTENT_BYTES: u64 = 8 << 30;
/// How long one request may take, uploads included.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 600;

/// Requests handled at once before the server answers 503: sized for 2
/// cores (a report body is at most 4 MiB, so this bounds memory too).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// Registrations per minute from one client address (an IPv6 /64).
pub const DEFAULT_REGISTRATIONS_PER_MINUTE: u32 = 60;

/// The name the server gives its service, in `/api/v1/service` and in
/// every snapshot.
pub const DEFAULT_SERVICE_NAME: &str = "OpenWUA update server";
/// How long a signed snapshot is valid: 7 days.
pub const DEFAULT_SNAPSHOT_LIFETIME_SECS: u64 = 7 * 24 * 3600;
/// How long a still-current statement holds: 6 hours.
pub const DEFAULT_FRESHNESS_SECS: u64 = 21_600;
/// How long the change log behind deltas is kept: 30 days. An agent whose
/// anchor is older gets a full snapshot.
pub const DEFAULT_DELTA_RETENTION_DAYS: u64 = 30;
/// The most bytes of signed full snapshots kept in memory: 256 MiB.
pub const DEFAULT_SNAPSHOT_CACHE_BYTES: u64 = 256 << 20;
/// How often running rollouts are weighed without a report: a minute.
pub const DEFAULT_ROLLOUT_CHECK_SECS: u64 = 60;

/// Upstreams sync by themselves once a day…
pub const DEFAULT_UPSTREAM_SYNC_INTERVAL_MINUTES: u64 = 24 * 60;
/// …plus a random delay of up to an hour, drawn afresh each time.
pub const DEFAULT_UPSTREAM_SYNC_SPREAD_MINUTES: u64 = 60;

/// `server.toml` as written: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `data_dir`: the signing key, tokens, SQLite and content.
    pub data_dir: Option<PathBuf>,
    /// `listen`: address and port.
    pub listen: Option<SocketAddr>,
    /// `database`: a `postgres://` URL; SQLite in the data dir if absent.
    pub database: Option<String>,
    /// `allow_plain_http`: serve plain HTTP on a non-loopback address
    /// (behind a TLS-terminating proxy).
    pub allow_plain_http: Option<bool>,
    /// `admin_token_file`: a file holding the admin token, instead of the
    /// one generated into the data dir.
    pub admin_token_file: Option<PathBuf>,
    /// `max_request_bytes`: the largest JSON body.
    pub max_request_bytes: Option<u64>,
    /// `max_content_bytes`: the largest content upload.
    pub max_content_bytes: Option<u64>,
    /// `request_timeout_secs`: how long a request may take.
    pub request_timeout_secs: Option<u64>,
    /// `service_name`: the service's name for agents.
    pub service_name: Option<String>,
    /// `snapshot_lifetime_secs`: how long a signed snapshot is valid.
    pub snapshot_lifetime_secs: Option<u64>,
    /// `freshness_seconds`: how long a still-current statement holds.
    pub freshness_seconds: Option<u64>,
    /// `tls_certificate`: the certificate chain (PEM), server's first.
    pub tls_certificate: Option<PathBuf>,
    /// `tls_private_key`: its private key (PEM; 0600 or 0400, the
    /// server's user's).
    pub tls_private_key: Option<PathBuf>,
    /// `max_in_flight`: requests handled at once; past it, 503.
    pub max_in_flight: Option<usize>,
    /// `registrations_per_minute`: per client address; past it, 429.
    pub registrations_per_minute: Option<u32>,
    /// `content_base_url`: where agents fetch content (`http(s)://…/`);
    /// the server then stores none.
    pub content_base_url: Option<String>,
    /// `delta_retention_days`: how long the change log behind deltas is
    /// kept.
    pub delta_retention_days: Option<u64>,
    /// `snapshot_cache_bytes`: the most bytes of signed snapshots kept in
    /// memory (0: none).
    pub snapshot_cache_bytes: Option<u64>,
    /// `rollout_check_secs`: how often running rollouts are weighed
    /// without a report arriving (soak times end between reports).
    pub rollout_check_secs: Option<u64>,
    /// `upstream_sync_interval_minutes`: between scheduled syncs of each
    /// upstream (0: none).
    pub upstream_sync_interval_minutes: Option<u64>,
    /// `upstream_sync_spread_minutes`: the most random delay added to each.
    pub upstream_sync_spread_minutes: Option<u64>,
    /// `[maintenance]`: the daily run's schedule and retention.
    pub maintenance: Option<crate::maintenance::MaintenanceFile>,
}

/// The configuration in force: the file, then the flags over it.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// PostgreSQL, or SQLite when `None`.
    pub database: Option<String>,
    /// Plain HTTP allowed off loopback.
    pub allow_plain_http: bool,
    /// The admin token's file, if the operator chose one.
    pub admin_token_file: Option<PathBuf>,
    /// The largest JSON body.
    pub max_request_bytes: u64,
    /// The largest content upload.
    pub max_content_bytes: u64,
    /// How long a request may take.
    pub request_timeout: Duration,
    /// The service's name.
    pub service_name: String,
    /// How long a signed snapshot is valid.
    pub snapshot_lifetime: Duration,
    /// How long a still-current statement holds.
    pub freshness: Duration,
    /// The certificate chain and key files, for HTTPS.
    pub tls: Option<TlsFiles>,
    /// Requests handled at once.
    pub max_in_flight: usize,
    /// Registrations per minute per client address.
    pub registrations_per_minute: u32,
    /// The operator's content base, ending in `/`; content is stored by
    /// the server when `None`.
    pub content_base_url: Option<String>,
    /// How long the change log behind deltas is kept.
    pub delta_retention: Duration,
    /// The most bytes of signed snapshots kept in memory.
    pub snapshot_cache_bytes: u64,
    /// How often running rollouts are weighed on a timer.
    pub rollout_check: Duration,
    /// When upstreams sync by themselves.
    pub upstream_schedule: crate::upstream::schedule::Schedule,
    /// What maintenance does, and when.
    pub maintenance: crate::maintenance::Policy,
}

/// `tls_certificate` and `tls_private_key`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The PEM certificate chain.
    pub certificate: PathBuf,
    /// The PEM private key.
    pub private_key: PathBuf,
}

impl ConfigFile {
    /// Reads `path`; with `required` false a missing file is an empty one.
    pub fn read(path: &Path, required: bool) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(ConfigFile::default());
            }
            Err(error) => anyhow::bail!("{}: {error}", path.display()),
        };
        toml::from_str(&text).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))
    }

    /// Applies the flags (`over`) and the defaults, and checks the result.
    pub fn resolve(self, over: ConfigFile) -> anyhow::Result<Config> {
        let listen = match over.listen.or(self.listen) {
            Some(listen) => listen,
            None => DEFAULT_LISTEN.parse()?,
        };
        let tls = match (
            over.tls_certificate.or(self.tls_certificate),
            over.tls_private_key.or(self.tls_private_key),
        ) {
            (Some(certificate), Some(private_key)) => Some(TlsFiles {
                certificate,
                private_key,
            }),
            (None, None) => None,
            _ => anyhow::bail!("tls_certificate and tls_private_key go together: set both"),
        };
        let delta_retention_days = over
            .delta_retention_days
            .or(self.delta_retention_days)
            .unwrap_or(DEFAULT_DELTA_RETENTION_DAYS);
        let maintenance = over
            .maintenance
            .or(self.maintenance)
            .unwrap_or_default()
            .resolve(delta_retention_days)?;
        let config = Config {
            data_dir: over
                .data_dir
                .or(self.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            listen,
            database: over.database.or(self.database),
            allow_plain_http: over
                .allow_plain_http
                .or(self.allow_plain_http)
                .unwrap_or(false),
            admin_token_file: over.admin_token_file.or(self.admin_token_file),
            max_request_bytes: over
                .max_request_bytes
                .or(self.max_request_bytes)
                .unwrap_or(DEFAULT_MAX_REQUEST_BYTES),
            max_content_bytes: over
                .max_content_bytes
                .or(self.max_content_bytes)
                .unwrap_or(DEFAULT_MAX_CONTENT_BYTES),
            request_timeout: Duration::from_secs(
                over.request_timeout_secs
                    .or(self.request_timeout_secs)
                    .unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECS),
            ),
            service_name: over
                .service_name
                .or(self.service_name)
                .unwrap_or_else(|| DEFAULT_SERVICE_NAME.into()),
            snapshot_lifetime: Duration::from_secs(
                over.snapshot_lifetime_secs
                    .or(self.snapshot_lifetime_secs)
                    .unwrap_or(DEFAULT_SNAPSHOT_LIFETIME_SECS),
            ),
            freshness: Duration::from_secs(
                over.freshness_seconds
                    .or(self.freshness_seconds)
                    .unwrap_or(DEFAULT_FRESHNESS_SECS),
            ),
            tls,
            max_in_flight: over
                .max_in_flight
                .or(self.max_in_flight)
                .unwrap_or(DEFAULT_MAX_IN_FLIGHT),
            registrations_per_minute: over
                .registrations_per_minute
                .or(self.registrations_per_minute)
                .unwrap_or(DEFAULT_REGISTRATIONS_PER_MINUTE),
            content_base_url: over.content_base_url.or(self.content_base_url),
            delta_retention: Duration::from_secs(delta_retention_days.saturating_mul(24 * 3600)),
            snapshot_cache_bytes: over
                .snapshot_cache_bytes
                .or(self.snapshot_cache_bytes)
                .unwrap_or(DEFAULT_SNAPSHOT_CACHE_BYTES),
            rollout_check: Duration::from_secs(
                over.rollout_check_secs
                    .or(self.rollout_check_secs)
                    .unwrap_or(DEFAULT_ROLLOUT_CHECK_SECS),
            ),
            upstream_schedule: crate::upstream::schedule::Schedule {
                interval: Duration::from_secs(
                    over.upstream_sync_interval_minutes
                        .or(self.upstream_sync_interval_minutes)
                        .unwrap_or(DEFAULT_UPSTREAM_SYNC_INTERVAL_MINUTES)
                        .saturating_mul(60),
                ),
                spread: Duration::from_secs(
                    over.upstream_sync_spread_minutes
                        .or(self.upstream_sync_spread_minutes)
                        .unwrap_or(DEFAULT_UPSTREAM_SYNC_SPREAD_MINUTES)
                        .saturating_mul(60),
                ),
            },
            maintenance,
        };
        config.check()?;
        Ok(config)
    }
}

impl Config {
    /// Refuses what would be unsafe or cannot work.
    pub fn check(&self) -> anyhow::Result<()> {
        // Plain HTTP off loopback only when the operator says a proxy in
        // front of it does TLS.
        if self.tls.is_none() && !self.listen.ip().is_loopback() && !self.allow_plain_http {
            anyhow::bail!(
                "{} is not a loopback address and no TLS certificate is configured: \
                 set tls_certificate and tls_private_key, or put a TLS proxy in front \
                 of it and set allow_plain_http = true, or listen on 127.0.0.1",
                self.listen
            );
        }
        if self.max_in_flight == 0 || self.max_in_flight > 1 << 20 {
            anyhow::bail!("max_in_flight must be between 1 and 1048576");
        }
        if self.registrations_per_minute == 0 {
            anyhow::bail!("registrations_per_minute must be above 0");
        }
        if let Some(base) = &self.content_base_url {
            check_content_base_url(base)?;
        }
        if self.max_request_bytes == 0 || self.max_content_bytes == 0 {
            anyhow::bail!("max_request_bytes and max_content_bytes must be above 0");
        }
        if self.service_name.trim().is_empty() || self.service_name.chars().count() > 256 {
            anyhow::bail!("service_name must have 1 to 256 characters");
        }
        if self.snapshot_lifetime.is_zero() || self.snapshot_lifetime.as_secs() > 366 * 24 * 3600 {
            anyhow::bail!("snapshot_lifetime_secs must be between 1 and a year");
        }
        // The catalog refuses a statement valid for longer than 7 days.
        if self.freshness.is_zero() || self.freshness.as_secs() > 7 * 24 * 3600 {
            anyhow::bail!("freshness_seconds must be between 1 and 604800 (7 days)");
        }
        if self.delta_retention.is_zero() || self.delta_retention.as_secs() > 3660 * 24 * 3600 {
            anyhow::bail!("delta_retention_days must be between 1 and 3660");
        }
        if self.rollout_check.is_zero() || self.rollout_check.as_secs() > 24 * 3600 {
            anyhow::bail!("rollout_check_secs must be between 1 and 86400");
        }
        if self.request_timeout.is_zero() {
            anyhow::bail!("request_timeout_secs must be above 0");
        }
        if let Some(url) = &self.database
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            anyhow::bail!("database must be a postgres:// URL");
        }
        Ok(())
    }
}

/// An operator's content base: an absolute http(s) URL ending in `/`, with
/// no credentials, query or fragment (agents append `content/<sha256>`).
pub fn check_content_base_url(base: &str) -> anyhow::Result<()> {
    let rest = base
        .strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"));
    let ok = rest.is_some_and(|rest| {
        !rest.is_empty()
            && !rest.starts_with('/')
            && !rest.contains(['?', '#', '@'])
            && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
    }) && base.ends_with('/')
        && base.len() <= 1024;
    if !ok {
        anyhow::bail!(
            "content_base_url {base:?} must be an http:// or https:// URL with a host, \
             ending in /, without credentials, query or fragment"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_base_urls() {
        assert!(check_content_base_url("https://cdn.example.org/openwua/").is_ok());
        assert!(check_content_base_url("http://127.0.0.1:8000/").is_ok());
        for bad in [
            "https://cdn.example.org/openwua",
            "ftp://cdn.example.org/",
            "https:///",
            "https://user:pw@cdn.example.org/",
            "https://cdn.example.org/?a=/",
            "/srv/content/",
        ] {
            assert!(check_content_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tls_needs_both_files_and_allows_any_address() {
        let half = ConfigFile {
            tls_certificate: Some("/etc/openwua/server.pem".into()),
            ..ConfigFile::default()
        };
        assert!(half.resolve(ConfigFile::default()).is_err());
        let open = ConfigFile {
            listen: Some("0.0.0.0:8531".parse().unwrap()),
            ..ConfigFile::default()
        };
        assert!(open.resolve(ConfigFile::default()).is_err());
        let tls = ConfigFile {
            listen: Some("0.0.0.0:8531".parse().unwrap()),
            tls_certificate: Some("/etc/openwua/server.pem".into()),
            tls_private_key: Some("/etc/openwua/server.key".into()),
            ..ConfigFile::default()
        };
        assert!(tls.resolve(ConfigFile::default()).is_ok());
    }
}
