//! Load limits: a bound on requests in flight (past it, 503 at once, never
//! a queue) and a per-client rate limit on registration, the one endpoint
//! anyone may call without credentials (429).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use openwua_model::hresult::WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL;
use tokio::sync::Semaphore;

use crate::error::ServerError;
use crate::tls::ClientAddr;

/// What a loaded server tells clients to wait, in seconds: short, since a
/// slot frees as soon as one request ends.
pub const BUSY_RETRY_AFTER_SECS: u64 = 5;
/// Clients remembered by the rate limiter before idle ones are forgotten.
const MAX_TRACKED_CLIENTS: usize = 100_000;

/// The bound on requests in flight.
#[derive(Clone)]
pub struct InFlight(Arc<Semaphore>);

impl InFlight {
    /// At most `limit` requests at once.
    pub fn new(limit: usize) -> InFlight {
        InFlight(Arc::new(Semaphore::new(limit)))
    }
}

/// Takes a slot for the request, or answers 503 with `Retry-After` when
/// none is free. `/healthz` needs none: a loaded server is alive.
pub async fn limit_in_flight(
    State(in_flight): State<InFlight>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let Ok(_slot) = Arc::clone(&in_flight.0).try_acquire_owned() else {
        return too_busy(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is handling as many requests as it is configured for; \
             try again after Retry-After",
            "max_in_flight reached",
            BUSY_RETRY_AFTER_SECS,
        );
    };
    next.run(request).await
}

/// Registrations per client address: a token bucket of `per_minute`
/// tokens refilled evenly over a minute.
pub struct RegistrationLimit {
    limiter:
        RateLimiter<IpAddr, governor::state::keyed::DefaultKeyedStateStore<IpAddr>, DefaultClock>,
    clock: DefaultClock,
}

impl RegistrationLimit {
    /// `per_minute` registrations per client, all of them at once at most.
    pub fn new(per_minute: NonZeroU32) -> RegistrationLimit {
        RegistrationLimit {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            clock: DefaultClock::default(),
        }
    }

    /// Ok, or how long the client must wait.
    fn check(&self, client: IpAddr) -> Result<(), Duration> {
        if self.limiter.len() > MAX_TRACKED_CLIENTS {
            // Clients whose bucket is full again are no different from new ones.
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&client_key(client))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// An IPv6 client is one /64: a host gets a whole one, and could
/// otherwise pass as millions of clients.
fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// 429 with `Retry-After` for a client over its registration rate.
pub async fn limit_registrations(
    State(limit): State<Arc<RegistrationLimit>>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() != "/api/v1/computers/register" {
        return next.run(request).await;
    }
    if let Err(wait) = limit.check(client.ip()) {
        return too_busy(
            StatusCode::TOO_MANY_REQUESTS,
            "this address has registered too many computers in the last minute; \
             try again after Retry-After",
            "registrations_per_minute reached",
            wait.as_secs().saturating_add(1),
        );
    }
    next.run(request).await
}

fn too_busy(status: StatusCode, message: &str, detail: &str, retry_after: u64) -> Response {
    let mut response =
        ServerError::new(status, WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL, message, detail)
            .into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_its_64() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(one), client_key(other));
        assert_ne!(client_key(one), client_key(elsewhere));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_client_past_its_rate_waits_and_others_do_not() {
        let limit = RegistrationLimit::new(NonZeroU32::new(2).unwrap());
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limit.check(client).is_ok());
        assert!(limit.check(client).is_ok());
        let wait = limit.check(client).unwrap_err();
        assert!(wait <= Duration::from_secs(30), "{wait:?}");
        assert!(limit.check("192.0.2.2".parse().unwrap()).is_ok());
    }
}
