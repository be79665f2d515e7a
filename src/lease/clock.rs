//! The election's one view of time.
//!
//! Invariants:
//! - the election reads the current instant and sleeps only through a
//!   [`Clock`]; nothing in `lease::election` calls `Instant::now()` or
//!   `sleep_until` directly;
//! - [`Clock::system`] (production) is tokio's monotonic clock, unchanged:
//!   every reading and every sleep goes straight to tokio;
//! - a skewed clock (the simulation's) runs at a fixed rate against tokio's
//!   clock, which the simulation pauses and treats as true time. Readings
//!   are monotonic and a sleep until a local instant ends at the true
//!   instant that maps to it, so a copy's deadlines run on its own rate.
//!   Offsets never matter: only differences of one clock's readings do.

use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A monotonic clock: tokio's, or (in the simulation) one that runs at its
/// own rate against it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// `None`: tokio's clock. `Some((origin, rate))`: local time is
    /// `origin + (true − origin) × rate`.
    skew: Option<(Instant, f64)>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    /// tokio's monotonic clock (production).
    pub const fn system() -> Self {
        Clock { skew: None }
    }

    /// A clock that runs `rate` times as fast as tokio's, agreeing with it
    /// at `origin`. `rate` must be positive and finite.
    pub fn skewed(origin: Instant, rate: f64) -> Self {
        assert!(rate.is_finite() && rate > 0.0, "clock rate {rate}");
        Clock {
            skew: Some((origin, rate)),
        }
    }

    /// The current instant on this clock.
    pub fn now(&self) -> Instant {
        self.to_local(Instant::now())
    }

    /// The reading of this clock at a true (tokio) instant.
    pub fn to_local(&self, t: Instant) -> Instant {
        match self.skew {
            None => t,
            Some((origin, rate)) => shift(origin, signed(origin, t) * rate),
        }
    }

    /// The true (tokio) instant at which this clock reads `local`.
    pub fn to_true(&self, local: Instant) -> Instant {
        match self.skew {
            None => local,
            Some((origin, rate)) => shift(origin, signed(origin, local) / rate),
        }
    }

    /// Sleep until this clock reads `local`.
    pub fn sleep_until(&self, local: Instant) -> Sleep {
        tokio::time::sleep_until(self.to_true(local))
    }

    /// Run `f` until this clock reads `local`; `Err` if it has not finished.
    pub async fn timeout_at<F: std::future::Future>(
        &self,
        local: Instant,
        f: F,
    ) -> Result<F::Output, tokio::time::error::Elapsed> {
        tokio::time::timeout_at(self.to_true(local), f).await
    }
}

/// `t − origin` in seconds, negative when `t` comes first.
fn signed(origin: Instant, t: Instant) -> f64 {
    if t >= origin {
        (t - origin).as_secs_f64()
    } else {
        -(origin - t).as_secs_f64()
    }
}

/// `origin + secs`, for negative `secs` too.
fn shift(origin: Instant, secs: f64) -> Instant {
    if secs >= 0.0 {
        origin + Duration::from_secs_f64(secs)
    } else {
        origin
            .checked_sub(Duration::from_secs_f64(-secs))
            .unwrap_or(origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_system_clock_is_tokios() {
        let c = Clock::system();
        let t = Instant::now();
        assert_eq!(c.now(), t);
        assert_eq!(
            c.to_true(t + Duration::from_secs(3)),
            t + Duration::from_secs(3)
        );
        c.sleep_until(t + Duration::from_secs(2)).await;
        assert_eq!(Instant::now(), t + Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_clock_reads_ahead_and_sleeps_less() {
        let origin = Instant::now();
        let c = Clock::skewed(origin, 1.25);
        tokio::time::advance(Duration::from_secs(4)).await;
        let local = c.now();
        assert_eq!(local - origin, Duration::from_secs(5));
        // Sleeping 5 s of local time takes 4 s of true time.
        let start = Instant::now();
        c.sleep_until(local + Duration::from_secs(5)).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(4));
        // The two mappings invert each other.
        let x = origin + Duration::from_millis(7_300);
        let back = c.to_true(c.to_local(x));
        assert!(back.max(x) - back.min(x) < Duration::from_micros(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_clock_reads_behind() {
        let origin = Instant::now();
        let c = Clock::skewed(origin, 0.8);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(c.now() - origin, Duration::from_secs(8));
        let before = origin - Duration::from_secs(1);
        assert!(c.to_local(before) < origin);
    }
}
