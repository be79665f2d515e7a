//! Far followers: a copy that the holder does not name as a successor
//! watches one named successor over HTTP instead of reading the lease at the
//! renewal rate, so that the S3 requests of a fleet grow with the number of
//! successors (at most [`MAX_SUCCESSORS`]), not with the number of copies.
//!
//! The election publishes which successor to watch ([`State::watch`]); this
//! task asks it `GET /leader` every `every` (a quarter of `retry_period`,
//! at most 500 ms apart) and publishes the address back while the successor
//! answers, is ready and a candidate, and names the same leader and term
//! this copy last read. Only then does the election read slowly (once per
//! `far_poll`). Anything else (no answer, an error, a stopping successor,
//! news of another leader or term) withdraws the confirmation and wakes the
//! election, which reads at once and then at the renewal rate again.
//!
//! Invariants:
//! - a hint only: the confirmation makes the election read *later*, never
//!   write sooner, and the wake-up causes at most one (rate-limited) read;
//!   the lease rules decide every write;
//! - the confirmation names the successor it is about, so a confirmation of
//!   a successor the election no longer watches counts for nothing;
//! - when the successors and the holder die together, the far follower
//!   learns it within `every` + the request timeout, and reads the lease at
//!   once (the bound is argued in docs/design.md, "Far followers").
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
use crate::peers::client::{request, Answer};

/// How often a far follower asks its successor, for a `retry_period`.
pub fn check_interval(retry_period: Duration) -> Duration {
    (retry_period / 4).clamp(Duration::from_millis(20), Duration::from_millis(500))
}

/// The longest a check may take, for a `retry_period`.
pub fn check_timeout(retry_period: Duration) -> Duration {
    (retry_period / 4).clamp(Duration::from_millis(50), Duration::from_millis(500))
}

/// Does the successor's `GET /leader` answer confirm what this copy knows:
/// it is ready, competing, and names `leader` and `term`?
pub fn agrees(answer: &Answer, leader: Option<&str>, term: u64) -> bool {
    if !answer.is_success() {
        return false;
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&answer.body) else {
        return false;
    };
    v["ready"] == true
        && v["candidate"] == true
        && v["is_leader"] == false
        && v["term"].as_u64() == Some(term)
        && leader.is_some_and(|l| v["leader"].as_str() == Some(l))
}

/// Keep `confirmed` current until `shutdown`; wake the election when a
/// confirmation is withdrawn.
pub async fn run(
    mut state: watch::Receiver<State>,
    confirmed: watch::Sender<Option<String>>,
    wake: Arc<Notify>,
    retry_period: Duration,
    shutdown: CancellationToken,
) {
    let every = check_interval(retry_period);
    let within = check_timeout(retry_period);
    let mut watching: Option<String> = None;
    let mut next = Instant::now();
    loop {
        let (target, leader, term) = {
            let s = state.borrow_and_update();
            (s.watch.clone(), s.leader.clone(), s.term)
        };
        if target != watching {
            // A new successor to watch (or none): check it at once.
            watching = target.clone();
            next = Instant::now();
        }
        if Instant::now() >= next {
            next = Instant::now() + every;
            let verdict = match &target {
                None => None,
                Some(addr) => {
                    let ok = match request(addr, Method::GET, "/leader", within).await {
                        Ok(a) => agrees(&a, leader.as_deref(), term),
                        Err(e) => {
                            debug!(successor = %addr, error = %e, "the watched successor does not answer");
                            false
                        }
                    };
                    ok.then(|| addr.clone())
                }
            };
            let before = confirmed.send_replace(verdict.clone());
            if before.is_some() && verdict.is_none() {
                match &target {
                    // Once per change of leader or loss of a successor, like
                    // a follower's "observed lease".
                    Some(t) => info!(event = "watch_lost", successor = %t,
                        "the watched successor is gone or has news; reading the lease now"),
                    None => debug!("no successor to watch any more; reading the lease now"),
                }
                wake.notify_one();
            }
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = state.changed() => if r.is_err() { break },
            _ = sleep_until(next), if watching.is_some() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Bytes;

    fn answer(status: u16, body: serde_json::Value) -> Answer {
        Answer {
            status,
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn a_successor_confirms_only_what_this_copy_knows() {
        let ok = serde_json::json!({"ready": true, "candidate": true, "is_leader": false, "leader": "L", "term": 7});
        assert!(agrees(&answer(200, ok.clone()), Some("L"), 7));
        // News: another leader or term (a hand-over happened).
        assert!(!agrees(&answer(200, ok.clone()), Some("L"), 6));
        assert!(!agrees(&answer(200, ok.clone()), Some("M"), 7));
        assert!(!agrees(&answer(200, ok.clone()), None, 7));
        // A successor that leads, is stopping, or has not read the lease.
        for (k, v) in [("is_leader", true), ("candidate", false), ("ready", false)] {
            let mut b = ok.clone();
            b[k] = serde_json::Value::Bool(v);
            assert!(!agrees(&answer(200, b), Some("L"), 7), "{k}: {v}");
        }
        assert!(!agrees(&answer(503, ok.clone()), Some("L"), 7));
        assert!(!agrees(
            &Answer {
                status: 200,
                body: Bytes::from_static(b"not json")
            },
            Some("L"),
            7
        ));
    }

    #[test]
    fn checks_come_often_enough_for_the_failover_bound() {
        let r = Duration::from_secs(2);
        assert_eq!(check_interval(r), Duration::from_millis(500));
        assert_eq!(check_timeout(r), Duration::from_millis(500));
        let r = Duration::from_millis(500);
        assert_eq!(check_interval(r), Duration::from_millis(125));
        assert_eq!(check_timeout(r), Duration::from_millis(125));
        // Together under one retry period, from 200 ms up.
        for ms in [200, 500, 1000, 2000, 10_000] {
            let r = Duration::from_millis(ms);
            assert!(check_interval(r) + check_timeout(r) <= r, "{ms}");
        }
    }
}
