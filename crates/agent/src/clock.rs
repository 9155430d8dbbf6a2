//! The time Automatic Updates and restarts are scheduled by: the system's,
//! or one a test sets and moves forward ([`Clock::manual`]), so a schedule
//! of days is tested without waiting for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// A source of the current time that can wait for a later one.
#[derive(Clone)]
pub struct Clock(Arc<dyn TimeSource>);

trait TimeSource: Send + Sync {
    fn now(&self) -> Timestamp;
    fn sleep_until(&self, when: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Clock {
        Clock(Arc::new(SystemTime))
    }

    /// A clock standing at `start` until [`ManualClock::set`] or
    /// [`ManualClock::advance`] moves it; the handle moves it.
    pub fn manual(start: Timestamp) -> (Clock, ManualClock) {
        let (sender, _) = tokio::sync::watch::channel(start);
        let sender = Arc::new(sender);
        (
            Clock(Arc::new(Manual(Arc::clone(&sender)))),
            ManualClock(sender),
        )
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.0.now()
    }

    /// Waits until the clock reaches `when` (at once when it has).
    pub async fn sleep_until(&self, when: Timestamp) {
        self.0.sleep_until(when).await;
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Clock({})", self.now())
    }
}

/// Two configurations are equal whatever their clocks.
impl PartialEq for Clock {
    fn eq(&self, _: &Clock) -> bool {
        true
    }
}

impl Eq for Clock {}

struct SystemTime;

/// The longest single wait: the wall clock may jump (a suspended machine,
/// a clock set by hand), so a long wait is taken in steps that look again.
const STEP: Duration = Duration::from_secs(60);

impl TimeSource for SystemTime {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep_until(&self, when: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            loop {
                let left = when.duration_since(Timestamp::now());
                if left <= SignedDuration::ZERO {
                    return;
                }
                let left = Duration::try_from(left).unwrap_or(STEP);
                tokio::time::sleep(left.min(STEP)).await;
            }
        })
    }
}

struct Manual(Arc<tokio::sync::watch::Sender<Timestamp>>);

impl TimeSource for Manual {
    fn now(&self) -> Timestamp {
        *self.0.borrow()
    }

    fn sleep_until(&self, when: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut changes = self.0.subscribe();
        Box::pin(async move {
            // The sender lives as long as this clock: the wait ends only
            // when the time is reached.
            let _ = changes.wait_for(|now| *now >= when).await;
        })
    }
}

/// Moves a [`Clock::manual`] clock.
#[derive(Clone)]
pub struct ManualClock(Arc<tokio::sync::watch::Sender<Timestamp>>);

impl ManualClock {
    /// The clock's time.
    pub fn now(&self) -> Timestamp {
        *self.0.borrow()
    }

    /// Sets the time (never backwards: an earlier time is ignored).
    pub fn set(&self, when: Timestamp) {
        self.0.send_if_modified(|now| {
            let later = when > *now;
            if later {
                *now = when;
            }
            later
        });
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: SignedDuration) {
        self.set(self.now() + by);
    }
}
