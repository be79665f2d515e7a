//! Wake-up pacing (rule 16): a `POST /wake` makes a follower read the lease
//! once, soon; a storm of them costs at most [`WAKE_BURST`] reads at once,
//! then one per [`WakePacer::interval`]. A token bucket, pure: the
//! election hands it the current instant.

use std::time::Duration;

use tokio::time::Instant;

/// Wake-up reads that may happen back to back before the rate limit.
pub const WAKE_BURST: f64 = 3.0;

/// The wake-up rate limit, and the wake-up whose read is still owed.
#[derive(Debug, Clone, Copy)]
pub struct WakePacer {
    /// Reads left in the bucket, as of `refilled`.
    tokens: f64,
    refilled: Instant,
    interval: Duration,
    /// A wake-up arrived and its read is due at this moment.
    due: Option<Instant>,
}

impl WakePacer {
    /// A full bucket at `now`, refilled one read per
    /// [`interval_for`]`(retry_period)`.
    pub fn new(retry_period: Duration, now: Instant) -> WakePacer {
        WakePacer {
            tokens: WAKE_BURST,
            refilled: now,
            interval: interval_for(retry_period),
            due: None,
        }
    }

    /// The sustained rate: one wake-up read per this.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// When the next wake-up read may happen (refilling the bucket to `now`).
    pub fn slot(&mut self, now: Instant) -> Instant {
        let interval = self.interval.as_secs_f64();
        let refill = now.saturating_duration_since(self.refilled).as_secs_f64() / interval;
        self.tokens = (self.tokens + refill).min(WAKE_BURST);
        self.refilled = now;
        if self.tokens >= 1.0 {
            now
        } else {
            now + Duration::from_secs_f64((1.0 - self.tokens) * interval)
        }
    }

    /// Use one read of the bucket at `now`.
    pub fn take(&mut self, now: Instant) {
        self.slot(now);
        self.tokens = (self.tokens - 1.0).max(0.0);
    }

    /// A wake-up arrived at `now`: its read is owed at the returned moment
    /// (the earlier of an owed one and the next slot).
    pub fn received(&mut self, now: Instant) -> Instant {
        let at = self.slot(now);
        let due = self.due.map_or(at, |d| d.min(at));
        self.due = Some(due);
        at
    }

    /// When an owed wake-up's read is due.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// A read is about to happen at `now`: it serves any owed wake-up, and
    /// uses a token only when it comes *because* of one (it is due).
    pub fn serve(&mut self, now: Instant) {
        if let Some(d) = self.due.take() {
            if d <= now {
                self.take(now);
            }
        }
    }
}

/// One wake-up read per quarter retry period, between 50 ms and 1 s: a
/// storm costs at most [`WAKE_BURST`] reads, then four extra reads per
/// period (at most one a second).
pub fn interval_for(retry_period: Duration) -> Duration {
    (retry_period / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}
