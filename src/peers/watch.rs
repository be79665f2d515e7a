//! Far followers: a copy that the holder does not name as a successor
//! watches one named successor over HTTP instead of reading the lease at the
//! renewal rate, so that the S3 requests of a fleet grow with the number of
//! successors (at most [`MAX_SUCCESSORS`]), not with the number of copies.
//!
//! The election publishes which successor to watch ([`State::watch`]: its
//! identity and address); this task asks it `GET /leader` every
//! [`check_interval`] (a quarter of `retry_period`, at most 500 ms apart)
//! and publishes it back while the answer shows a healthy named successor
//! that sees what this copy saw ([`judge`]). Only then does the election
//! read slowly (once per `far_poll`). Anything else withdraws the
//! confirmation and wakes the election, which reads at once and then at the
//! renewal rate again.
//!
//! Invariants:
//! - a hint only: the confirmation makes the election read *later*, never
//!   write sooner, and the wake-up causes at most one (rate-limited) read;
//!   the lease rules decide every write;
//! - the confirmation names the successor it is about (identity and
//!   address), so a confirmation of a successor the election no longer
//!   watches counts for nothing, and an address that reaches another copy
//!   (a loopback address advertised on another host) never confirms;
//! - a successor confirms only while it reads at the renewal rate itself
//!   (not far), reports no problem, and its view of the holder is fresh (the
//!   takeover it expects is at least `lease − 2 × retry_period` away): a
//!   holder that misses two renewals withdraws the confirmation even while
//!   the successor lives;
//! - when the successors and the holder die together, the far follower
//!   learns it within [`check_interval`] + [`check_timeout`] and reads the
//!   lease at once (the bound is argued in docs/design.md, "Far
//!   followers");
//! - a successor that failed a check is confirmed again only after it has
//!   answered well for a hold time (one `retry_period`, doubling with each
//!   loss in a row, at most a lease), so a slow successor cannot make its
//!   far followers flip between slow and fast reads.
//!
//! [`MAX_SUCCESSORS`]: crate::lease::election::MAX_SUCCESSORS
//! [`State::watch`]: crate::lease::election::State::watch

use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use tokio::sync::{watch, Notify};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::lease::election::State;
use crate::lease::record::Successor;
use crate::peers::client::{request, Answer};

/// How often a far follower asks its successor, for a `retry_period`.
pub fn check_interval(retry_period: Duration) -> Duration {
    (retry_period / 4).clamp(Duration::from_millis(20), Duration::from_millis(500))
}

/// The longest a check may take, for a `retry_period`.
pub fn check_timeout(retry_period: Duration) -> Duration {
    (retry_period / 4).clamp(Duration::from_millis(50), Duration::from_millis(500))
}

/// How far away a successor's expected takeover must be for its view of
/// the holder to count as fresh: `lease − 2 × retry_period` (the holder
/// missed fewer than two renewals).
pub fn min_valid(lease: Duration, retry_period: Duration) -> Duration {
    lease.saturating_sub(retry_period * 2)
}

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A healthy named successor that sees what this copy saw.
    Agrees,
    /// The successor is healthy but sees another leader or term: this copy
    /// is behind (a hand-over happened). Read; no hold.
    News,
    /// No answer, another copy answered, or an unhealthy or far successor.
    Bad,
}

/// What this copy knows, to compare the successor's answer with.
#[derive(Debug, Clone)]
pub struct Known<'a> {
    pub election: &'a str,
    pub leader: Option<&'a str>,
    pub term: u64,
    /// The successor's expected takeover must be at least this far away.
    pub min_valid: Duration,
}

/// Judge the successor's `GET /leader` answer.
pub fn judge(answer: &Answer, successor: &Successor, k: &Known) -> Verdict {
    if !answer.is_success() {
        return Verdict::Bad;
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&answer.body) else {
        return Verdict::Bad;
    };
    let healthy = v["identity"].as_str() == Some(successor.identity.as_str())
        && v["election"].as_str() == Some(k.election)
        && v["ready"] == true
        && v["candidate"] == true
        && v["is_leader"] == false
        && v["problem"].is_null()
        && v["watching"].is_null();
    if !healthy {
        return Verdict::Bad;
    }
    let same = v["term"].as_u64() == Some(k.term)
        && k.leader.is_some_and(|l| v["leader"].as_str() == Some(l));
    if !same {
        return Verdict::News;
    }
    let fresh = v["view_valid_for_seconds"]
        .as_f64()
        .is_some_and(|s| s >= k.min_valid.as_secs_f64());
    if fresh {
        Verdict::Agrees
    } else {
        Verdict::Bad
    }
}

/// The confirmation's state between checks (pure; [`run`] does the I/O).
#[derive(Debug)]
pub struct Confirmer {
    retry: Duration,
    lease: Duration,
    target: Option<Successor>,
    confirmed: bool,
    /// Since when the target has answered well without a break.
    good_since: Option<Instant>,
    /// Good answers needed before a confirmation, after a loss.
    hold: Duration,
    /// Confirmed since, to forget the hold after a lease of good answers.
    confirmed_since: Option<Instant>,
    /// The target whose loss was logged at INFO (once per target).
    logged: Option<Successor>,
}

/// What to do after a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The confirmation to publish.
    pub confirmed: Option<Successor>,
    /// Wake the election: a confirmation was withdrawn.
    pub wake: bool,
}

impl Confirmer {
    pub fn new(retry: Duration, lease: Duration) -> Confirmer {
        Confirmer {
            retry,
            lease,
            target: None,
            confirmed: false,
            good_since: None,
            hold: Duration::ZERO,
            confirmed_since: None,
            logged: None,
        }
    }

    /// A new target (or none): nothing is confirmed for it yet.
    pub fn retarget(&mut self, target: Option<Successor>) {
        if target != self.target {
            self.target = target;
            self.confirmed = false;
            self.good_since = None;
            self.confirmed_since = None;
            self.hold = Duration::ZERO;
        }
    }

    pub fn target(&self) -> Option<&Successor> {
        self.target.as_ref()
    }

    /// Take in a check of the current target at `now`.
    pub fn checked(&mut self, now: Instant, v: Verdict) -> Step {
        let was = self.confirmed;
        match v {
            Verdict::Agrees => {
                let since = *self.good_since.get_or_insert(now);
                if !self.confirmed && now.saturating_duration_since(since) >= self.hold {
                    self.confirmed = true;
                    self.confirmed_since = Some(now);
                }
                if self
                    .confirmed_since
                    .is_some_and(|c| now.saturating_duration_since(c) >= self.lease)
                {
                    self.hold = Duration::ZERO;
                }
            }
            Verdict::News => {
                // The successor is fine; this copy is behind. Read, then
                // confirm again at once.
                self.confirmed = false;
                self.confirmed_since = None;
            }
            Verdict::Bad => {
                if was {
                    self.hold = (self.hold * 2).clamp(self.retry, self.lease.max(self.retry));
                }
                self.confirmed = false;
                self.good_since = None;
                self.confirmed_since = None;
            }
        }
        let lost = was && !self.confirmed;
        if lost {
            let t = self.target.clone();
            if t != self.logged {
                info!(
                    event = "watch_lost",
                    successor = t.as_ref().map_or("", |s| s.identity.as_str()),
                    "the watched successor is gone or has news; reading the lease now"
                );
                self.logged = t;
            } else {
                debug!(successor = ?t, "the watched successor is gone or has news again; reading the lease now");
            }
        }
        Step {
            confirmed: self.confirmed.then(|| self.target.clone()).flatten(),
            wake: lost,
        }
    }
}

/// How the watch runs.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    pub election: String,
    pub retry_period: Duration,
    pub lease_duration: Duration,
}

/// Keep `confirmed` current until `shutdown`; wake the election when a
/// confirmation is withdrawn.
pub async fn run(
    mut state: watch::Receiver<State>,
    confirmed: watch::Sender<Option<Successor>>,
    wake: Arc<Notify>,
    s: WatchSpec,
    shutdown: CancellationToken,
) {
    let every = check_interval(s.retry_period);
    let within = check_timeout(s.retry_period);
    let min_valid = min_valid(s.lease_duration, s.retry_period);
    let mut c = Confirmer::new(s.retry_period, s.lease_duration);
    let mut next = Instant::now();
    loop {
        let (target, leader, term) = {
            let st = state.borrow_and_update();
            (st.watch.clone(), st.leader.clone(), st.term)
        };
        if target.as_ref() != c.target() {
            // A new successor to watch (or none): check it at once.
            c.retarget(target.clone());
            confirmed.send_replace(None);
            next = Instant::now();
        }
        if let (Some(t), true) = (&target, Instant::now() >= next) {
            next = Instant::now() + every;
            let address = t.address.as_deref().unwrap_or_default();
            let known = Known {
                election: &s.election,
                leader: leader.as_deref(),
                term,
                min_valid,
            };
            let verdict = match request(address, Method::GET, "/leader", within).await {
                Ok(a) => judge(&a, t, &known),
                Err(e) => {
                    debug!(successor = %t.identity, address, error = %e, "the watched successor does not answer");
                    Verdict::Bad
                }
            };
            let step = c.checked(Instant::now(), verdict);
            confirmed.send_replace(step.confirmed);
            if step.wake {
                wake.notify_one();
            }
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = state.changed() => if r.is_err() { break },
            _ = sleep_until(next), if c.target().is_some() => {}
        }
    }
}

#[cfg(test)]
mod tests;
