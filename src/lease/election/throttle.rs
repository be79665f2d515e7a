//! The pause between requests (rule 12): `retry_period`, doubled for each
//! throttled answer in a row (503 SlowDown, 429, throttling codes) to that
//! kind of request, at most half a lease, so that a throttled copy still
//! shows progress within a lease to `/healthz` and the watchdog. Reads and
//! writes count apart: a store may throttle only one kind. Pure.

use std::time::Duration;

use crate::lease::store::StoreError;

/// Which requests a pause or an answer is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Read,
    Write,
}

/// Throttled answers in a row, by kind of request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Throttle {
    pub reads: u32,
    pub writes: u32,
}

impl Throttle {
    fn count(&mut self, kind: Kind) -> &mut u32 {
        match kind {
            Kind::Read => &mut self.reads,
            Kind::Write => &mut self.writes,
        }
    }

    /// Count an answer (`e`: its error, if any) to a request of `kind`: a
    /// throttling one adds one, any other starts the count again.
    pub fn note(&mut self, kind: Kind, e: Option<&StoreError>) {
        let n = self.count(kind);
        if e.is_some_and(StoreError::is_throttling) {
            *n = n.saturating_add(1);
        } else {
            *n = 0;
        }
    }

    /// The pause before the next request of `kind`, before jitter.
    pub fn pause(&self, kind: Kind, retry_period: Duration, lease: Duration) -> Duration {
        let n = match kind {
            Kind::Read => self.reads,
            Kind::Write => self.writes,
        };
        if n == 0 {
            retry_period
        } else {
            retry_period
                .saturating_mul(1u32 << n.min(16))
                .min((lease / 2).max(retry_period))
        }
    }
}
