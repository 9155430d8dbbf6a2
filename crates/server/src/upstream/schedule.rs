//! Upstream syncs on a schedule: every `upstream_sync_interval_minutes`
//! after the last, plus a random delay of up to
//! `upstream_sync_spread_minutes` drawn afresh each time, so servers (and
//! mirrors) are not all hit at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::api::AppState;

/// The schedule's settings (from `server.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Between syncs of one upstream; zero turns scheduled syncs off.
    pub interval: Duration,
    /// The most random delay added to each.
    pub spread: Duration,
}

/// How often the scheduler looks at the upstreams.
const TICK: Duration = Duration::from_secs(60);

fn random_below(limit: Duration) -> SignedDuration {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    let secs = limit.as_secs();
    let offset = if secs == 0 {
        0
    } else {
        u64::from_le_bytes(bytes) % secs
    };
    SignedDuration::from_secs(i64::try_from(offset).unwrap_or(0))
}

/// Runs for the server's life, syncing each upstream when it is due.
pub async fn run(state: Arc<AppState>, schedule: Schedule) {
    if schedule.interval.is_zero() {
        return;
    }
    let Ok(interval) = SignedDuration::try_from(schedule.interval) else {
        return;
    };
    let mut due: HashMap<String, Timestamp> = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        let upstreams = match super::upstream_states(&state.store).await {
            Ok(upstreams) => upstreams,
            Err(error) => {
                tracing::warn!(%error, "reading the upstreams");
                continue;
            }
        };
        let now = Timestamp::now();
        due.retain(|name, _| upstreams.iter().any(|(known, _)| known == name));
        for (name, upstream) in upstreams {
            let when = *due.entry(name.clone()).or_insert_with(|| {
                upstream.last_sync.unwrap_or(now) + interval + random_below(schedule.spread)
            });
            if when > now {
                continue;
            }
            match super::sync_upstream(&state.store, &state.upstreams, &name).await {
                Ok(report) => tracing::info!(
                    upstream = %name,
                    changed = report.changed,
                    updates = report.updates,
                    "scheduled upstream sync"
                ),
                Err(error) => tracing::warn!(upstream = %name, %error, "scheduled upstream sync"),
            }
            due.insert(
                name,
                Timestamp::now() + interval + random_below(schedule.spread),
            );
        }
    }
}
