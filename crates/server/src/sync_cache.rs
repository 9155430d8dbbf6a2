//! Signed sync answers kept between requests, shared by every request of
//! one process: the still-current statement of the catalog version, and the
//! last few full snapshots (per group and version).
//!
//! Both are keyed by the catalog version, which comes from the database,
//! so front ends sharing one database never serve an answer another would
//! contradict. The statement's `issued` is the start of the current
//! re-signing period (a quarter of its validity, on the Unix clock), so
//! every front end signs the same statement in the same period: an agent
//! never sees a statement older than one it accepted from another front
//! end (with clocks in step), and ed25519 signs the same bytes the same way.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Bytes;
use jiff::{SignedDuration, Timestamp};

/// The most full snapshots kept.
pub const MAX_CACHED_SNAPSHOTS: usize = 8;

/// A cached signed still-current statement.
struct Statement {
    version: u64,
    issued: Timestamp,
    frame: Bytes,
}

/// A cached signed full snapshot.
struct CachedSnapshot {
    group: String,
    version: u64,
    made: Timestamp,
    frame: Bytes,
}

/// The process's cache of signed answers.
pub struct SyncCache {
    statement: Mutex<Option<Statement>>,
    /// Most recently used first.
    snapshots: Mutex<VecDeque<CachedSnapshot>>,
    /// The most bytes of snapshots kept.
    max_bytes: usize,
    /// A snapshot is served from the cache for this long after it was
    /// made, so an agent always gets at least half its lifetime.
    snapshot_max_age: SignedDuration,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data is a cache: what a panicking holder left is still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SyncCache {
    /// A cache of at most `max_bytes` of snapshots, each served for half of
    /// `snapshot_lifetime`.
    pub fn new(max_bytes: usize, snapshot_lifetime: Duration) -> Self {
        SyncCache {
            statement: Mutex::new(None),
            snapshots: Mutex::new(VecDeque::new()),
            max_bytes,
            snapshot_max_age: SignedDuration::try_from(snapshot_lifetime / 2)
                .unwrap_or(SignedDuration::ZERO),
        }
    }

    /// The start of the re-signing period `now` falls in, for statements
    /// valid for `validity`: a quarter of it, at least a second.
    pub fn period_start(now: Timestamp, validity: Duration) -> Timestamp {
        let period = (validity.as_secs() / 4).max(1).cast_signed();
        let seconds = now.as_second();
        Timestamp::from_second(seconds - seconds.rem_euclid(period)).unwrap_or(now)
    }

    /// The signed statement that `version` is current, issued at `issued`
    /// (a period's start): the cached one, or the one `sign` makes, kept.
    pub fn still_current<E>(
        &self,
        version: u64,
        issued: Timestamp,
        sign: impl FnOnce() -> Result<Bytes, E>,
    ) -> Result<Bytes, E> {
        let mut cached = lock(&self.statement);
        if let Some(statement) = cached.as_ref()
            && statement.version == version
            && statement.issued == issued
        {
            return Ok(statement.frame.clone());
        }
        // Signing one statement takes microseconds: others wait for it
        // rather than sign the same one.
        let frame = sign()?;
        *cached = Some(Statement {
            version,
            issued,
            frame: frame.clone(),
        });
        Ok(frame)
    }

    /// The (group, version) snapshots held and still young enough to
    /// serve at `now`; those of versions before `current` are dropped.
    pub fn snapshot_keys(&self, current: u64, now: Timestamp) -> Vec<(String, u64)> {
        let mut snapshots = lock(&self.snapshots);
        snapshots.retain(|snapshot| snapshot.version >= current);
        snapshots
            .iter()
            .filter(|snapshot| now < snapshot.made + self.snapshot_max_age)
            .map(|snapshot| (snapshot.group.clone(), snapshot.version))
            .collect()
    }

    /// The cached snapshot of `group` at `version`, if still held.
    pub fn snapshot(&self, group: &str, version: u64) -> Option<Bytes> {
        let mut snapshots = lock(&self.snapshots);
        let index = snapshots
            .iter()
            .position(|snapshot| snapshot.group == group && snapshot.version == version)?;
        let snapshot = snapshots.remove(index)?;
        let frame = snapshot.frame.clone();
        snapshots.push_front(snapshot);
        Some(frame)
    }

    /// Keeps a snapshot just made. Older versions' go; then the least
    /// recently used while over the count or the byte limit.
    pub fn keep_snapshot(&self, group: &str, version: u64, made: Timestamp, frame: &Bytes) {
        if frame.len() > self.max_bytes {
            return;
        }
        let mut snapshots = lock(&self.snapshots);
        snapshots.retain(|snapshot| {
            snapshot.version >= version && !(snapshot.group == group && snapshot.version == version)
        });
        snapshots.push_front(CachedSnapshot {
            group: group.to_owned(),
            version,
            made,
            frame: frame.clone(),
        });
        let mut total: usize = snapshots.iter().map(|snapshot| snapshot.frame.len()).sum();
        while snapshots.len() > MAX_CACHED_SNAPSHOTS || total > self.max_bytes {
            match snapshots.pop_back() {
                Some(evicted) => total -= evicted.frame.len(),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(bytes: usize) -> Bytes {
        Bytes::from(vec![0u8; bytes])
    }

    #[test]
    fn a_statement_is_signed_once_per_version_and_period() {
        let cache = SyncCache::new(1000, Duration::from_secs(3600));
        let validity = Duration::from_secs(6 * 3600);
        let at = SyncCache::period_start("2026-12-04T20:00:00Z".parse().unwrap(), validity);
        let period = SyncCache::period_start(at, validity);
        assert_eq!(period, at);
        assert_eq!(
            period,
            SyncCache::period_start(at + SignedDuration::from_mins(89), validity),
            "one period lasts 90 minutes"
        );
        let later = SyncCache::period_start(at + SignedDuration::from_mins(90), validity);
        assert!(later > period);
        let mut signed = 0;
        let mut sign = |marker: u8| {
            signed += 1;
            Ok::<_, ()>(Bytes::from(vec![marker]))
        };
        assert_eq!(cache.still_current(7, period, || sign(1)).unwrap()[0], 1);
        assert_eq!(cache.still_current(7, period, || sign(2)).unwrap()[0], 1);
        assert_eq!(cache.still_current(7, later, || sign(3)).unwrap()[0], 3);
        assert_eq!(cache.still_current(8, later, || sign(4)).unwrap()[0], 4);
        assert_eq!(signed, 3);
    }

    #[test]
    fn snapshots_are_bounded_and_go_when_the_version_moves_or_they_age() {
        let cache = SyncCache::new(100, Duration::from_secs(3600));
        let now: Timestamp = "2026-12-04T20:00:00Z".parse().unwrap();
        cache.keep_snapshot("A", 5, now, &frame(40));
        cache.keep_snapshot("B", 5, now, &frame(40));
        assert_eq!(cache.snapshot_keys(5, now).len(), 2);
        // A is used, so C's arrival evicts B (over 100 bytes).
        assert!(cache.snapshot("A", 5).is_some());
        cache.keep_snapshot("C", 5, now, &frame(40));
        let mut keys = cache.snapshot_keys(5, now);
        keys.sort();
        assert_eq!(keys, vec![("A".into(), 5), ("C".into(), 5)]);
        // Too big to keep at all.
        cache.keep_snapshot("D", 5, now, &frame(101));
        assert!(cache.snapshot("D", 5).is_none());
        // Half the lifetime later it is not offered; a new version drops it.
        let later = now + SignedDuration::from_mins(30);
        assert!(cache.snapshot_keys(5, later).is_empty());
        assert!(cache.snapshot_keys(6, now).is_empty());
        assert!(cache.snapshot("A", 5).is_none());
    }
}
