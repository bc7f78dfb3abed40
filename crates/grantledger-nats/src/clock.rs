//! The services' clock: the system's, or a test's manual one, so that expiry
//! is tested by moving time, never by sleeping through real TTLs.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use grantledger_events::Timestamp;

/// A source of the current time (UTC milliseconds). Cheap to clone.
#[derive(Clone)]
pub struct Clock(Source);

#[derive(Clone)]
enum Source {
    System,
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    /// A clock that shows `start` until told otherwise, and the handle that
    /// sets it (shared by every clone).
    pub fn manual(start: Timestamp) -> (Clock, ManualTime) {
        let time = Arc::new(AtomicI64::new(start.0));
        (Clock(Source::Manual(time.clone())), ManualTime(time))
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        match &self.0 {
            Source::System => {
                let ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                Timestamp(ms)
            }
            Source::Manual(time) => Timestamp(time.load(Ordering::SeqCst)),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock::system"),
            Source::Manual(time) => write!(f, "Clock::manual({})", time.load(Ordering::SeqCst)),
        }
    }
}

/// Sets a manual [`Clock`].
#[derive(Clone, Debug)]
pub struct ManualTime(Arc<AtomicI64>);

impl ManualTime {
    /// Shows `at` from now on.
    pub fn set(&self, at: Timestamp) {
        self.0.store(at.0, Ordering::SeqCst);
    }

    /// Moves the time forward by `ms`.
    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}
