//! The store's clock: the system's, or one a test or bench sets, so that a
//! simulated year of reports and maintenance runs takes seconds, not
//! sleeps. Every time the store writes (registrations, syncs, reports,
//! content, publishes, the change log) and every maintenance decision
//! comes from it.

use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};

/// A clock: [`Clock::system`] (the default), or a manual one that only
/// moves when told to.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Mutex<Timestamp>>>,
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Self {
        Clock::default()
    }

    /// A clock that reads `start` until it is set or advanced.
    pub fn manual(start: Timestamp) -> Self {
        Clock {
            manual: Some(Arc::new(Mutex::new(start))),
        }
    }

    /// The time now.
    pub fn now(&self) -> Timestamp {
        match &self.manual {
            None => Timestamp::now(),
            Some(time) => *time.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        }
    }

    /// Moves a manual clock by `by`; the system's clock is left alone.
    pub fn advance(&self, by: SignedDuration) {
        if let Some(time) = &self.manual {
            let mut time = time.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *time = time.checked_add(by).unwrap_or(*time);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        let clock = Clock::manual(start);
        let copy = clock.clone();
        assert_eq!(clock.now(), start);
        copy.advance(SignedDuration::from_hours(24));
        assert_eq!(clock.now(), "2027-01-02T00:00:00Z".parse().unwrap());
        assert!(Clock::system().now() > start - SignedDuration::from_hours(24 * 365 * 10));
    }
}
