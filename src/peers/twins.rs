//! Two processes with one identity: loud, not silent.
//!
//! Every process start draws a random incarnation id
//! ([`new_incarnation`](crate::lease::record::new_incarnation)); it goes in
//! every lease record and registry entry the process writes, and in
//! `/leader`. A copy that finds its own identity with another incarnation
//! *written after it started* knows another live process uses its
//! identity: it logs a warning and shows a `problem` ("another process uses
//! identity X (incarnation …, at …)") until two registry refreshes pass
//! without another sign.
//!
//! Invariants:
//! - a record or entry left by this copy's own earlier, dead incarnation
//!   never counts: a dead process writes nothing new. In the lease, the
//!   sign is two changes of the record by the same other incarnation
//!   (three versions: one write still in flight when its process died
//!   cannot make two); in the registry, the other incarnation's entry is
//!   read back over this copy's own at two refreshes in a row, each read
//!   sent more than a request timeout after this copy's write (one late
//!   write of a dead predecessor makes only one);
//! - nothing here takes part in the election: a duplicate identity is
//!   unsafe only for the operator's own bookkeeping (hooks, the status),
//!   since the lease is held by record version, never by identity.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::lease::election::Event;
use crate::lease::record::LeaseRecord;
use crate::surfaces::problems::Problems;

/// The source name of the duplicate identity's problem in [`Problems`].
pub const PROBLEM_SOURCE: &str = "identity";

/// Follows the records naming this copy's identity but another
/// incarnation, to tell a live twin from a dead predecessor. Pure.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordWatch {
    /// The other incarnation last seen, the nonce of that version, and how
    /// many changes of the record by it have been seen.
    other: Option<(String, String, u32)>,
}

impl RecordWatch {
    /// Look at a record just read. `Some(incarnation)` when it proves that
    /// another live process with this identity writes the lease.
    pub fn saw(
        &mut self,
        r: &LeaseRecord,
        identity: &str,
        incarnation: &str,
        written_by_us: bool,
    ) -> Option<String> {
        let theirs = r
            .incarnation
            .as_deref()
            .filter(|i| r.holder == identity && !written_by_us && *i != incarnation)?;
        let changes = match &self.other {
            Some((i, nonce, n)) if i == theirs => {
                if *nonce == r.nonce {
                    *n
                } else {
                    n + 1
                }
            }
            _ => 0,
        };
        self.other = Some((theirs.to_string(), r.nonce.clone(), changes));
        (changes >= 2).then(|| theirs.to_string())
    }
}

struct Sign {
    incarnation: String,
    at: Option<String>,
    last: Instant,
}

/// The duplicate-identity problem of one daemon.
pub struct Twins {
    identity: String,
    incarnation: String,
    /// Two registry refreshes: a sign older than this clears the problem.
    clear_after: Duration,
    problems: Problems,
    sign: Mutex<Option<Sign>>,
    changed: Notify,
}

impl Twins {
    pub fn new(
        identity: &str,
        incarnation: &str,
        clear_after: Duration,
        problems: Problems,
    ) -> Arc<Twins> {
        Arc::new(Twins {
            identity: identity.to_string(),
            incarnation: incarnation.to_string(),
            clear_after,
            problems,
            sign: Mutex::new(None),
            changed: Notify::new(),
        })
    }

    /// A sign that `incarnation` (at `at`: a host or an address) is alive
    /// and uses this copy's identity; `via`: where it was seen.
    pub fn saw(&self, incarnation: &str, at: Option<&str>, via: &'static str) {
        if incarnation == self.incarnation {
            return;
        }
        let mut g = self.sign.lock().unwrap_or_else(|p| p.into_inner());
        let new = g.as_ref().is_none_or(|s| s.incarnation != incarnation);
        let at = at
            .map(String::from)
            .or_else(|| g.as_ref().and_then(|s| s.at.clone()).filter(|_| !new));
        if new {
            warn!(
                event = "duplicate_identity",
                identity = %self.identity,
                incarnation = %self.incarnation,
                other_incarnation = %incarnation,
                at = at.as_deref().unwrap_or("unknown"),
                via,
                "another process uses this copy's identity; give each copy its own (identity, S3_ELECTOR_IDENTITY)"
            );
        }
        let text = format!(
            "another process uses identity {} (incarnation {incarnation}, {}); this one is incarnation {}: give each copy its own identity",
            self.identity,
            at.as_deref().map_or("at an unknown address".into(), |a| format!("at {a}")),
            self.incarnation,
        );
        *g = Some(Sign {
            incarnation: incarnation.to_string(),
            at,
            last: Instant::now(),
        });
        drop(g);
        self.problems.set(PROBLEM_SOURCE, Some(text));
        self.changed.notify_one();
    }

    /// Clear the problem once no sign came for `clear_after`; take the
    /// election's signs from `events`. Until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        events: broadcast::Receiver<Event>,
        shutdown: CancellationToken,
    ) {
        // `None` once the election is gone: only expiry is left to do.
        let mut events = Some(events);
        loop {
            let expires = {
                let mut g = self.sign.lock().unwrap_or_else(|p| p.into_inner());
                match g.as_ref().map(|s| s.last + self.clear_after) {
                    Some(t) if t <= Instant::now() => {
                        *g = None;
                        drop(g);
                        self.problems.set(PROBLEM_SOURCE, None);
                        tracing::info!(event = "duplicate_identity_cleared", identity = %self.identity,
                            "no sign of another process with this identity for {}", humantime::format_duration(self.clear_after));
                        None
                    }
                    t => t,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.changed.notified() => {}
                e = async { events.as_mut().expect("checked by the guard").recv().await }, if events.is_some() => match e {
                    Ok(Event::Twin { incarnation, address }) => self.saw(&incarnation, address.as_deref(), "lease"),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => events = None,
                },
                _ = async { match expires { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(holder: &str, inc: Option<&str>, nonce: &str) -> LeaseRecord {
        let mut r = crate::lease::record::tests::sample();
        r.holder = holder.into();
        r.incarnation = inc.map(String::from);
        r.nonce = nonce.into();
        r
    }

    #[test]
    fn a_dead_predecessor_s_record_never_counts_a_renewing_twin_does() {
        let mut w = RecordWatch::default();
        // Left by a dead earlier incarnation: the same version, read again
        // and again, and even one more write landing late.
        for n in ["v1", "v1", "v2", "v2"] {
            assert_eq!(w.saw(&rec("me", Some("old"), n), "me", "mine", false), None);
        }
        // A third version by it: alive.
        assert_eq!(
            w.saw(&rec("me", Some("old"), "v3"), "me", "mine", false)
                .as_deref(),
            Some("old")
        );
        // Another holder, our own writes, our own incarnation, or a record
        // of an older build (no incarnation) are no sign.
        let mut w = RecordWatch::default();
        for (r, ours) in [
            (rec("other", Some("x"), "a"), false),
            (rec("other", Some("x"), "b"), false),
            (rec("other", Some("x"), "c"), false),
            (rec("me", Some("mine"), "d"), false),
            (rec("me", Some("z"), "e"), true),
            (rec("me", None, "f"), false),
            (rec("me", None, "g"), false),
            (rec("me", None, "h"), false),
        ] {
            assert_eq!(w.saw(&r, "me", "mine", ours), None, "{r:?}");
        }
        // A change of incarnation starts the count again.
        let mut w = RecordWatch::default();
        for (inc, n) in [("a", "1"), ("a", "2"), ("b", "3"), ("b", "4")] {
            assert_eq!(w.saw(&rec("me", Some(inc), n), "me", "mine", false), None);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_problem_names_the_other_and_clears_two_refreshes_after_the_last_sign() {
        let problems = Problems::new();
        let t = Twins::new("web-1", "aaaa", Duration::from_secs(1200), problems.clone());
        let stop = CancellationToken::new();
        let (tx, rx) = broadcast::channel(4);
        let task = tokio::spawn(t.clone().run(rx, stop.clone()));
        t.saw("aaaa", None, "registry");
        tokio::task::yield_now().await;
        assert_eq!(problems.current(), None, "our own incarnation is no sign");
        tx.send(Event::Twin {
            incarnation: "bbbb".into(),
            address: Some("10.0.0.7:4040".into()),
        })
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        let p = problems.current().unwrap();
        assert!(
            p.starts_with(
                "another process uses identity web-1 (incarnation bbbb, at 10.0.0.7:4040)"
            ),
            "{p}"
        );
        // The same incarnation seen again without an address keeps the one
        // known; another one without an address says so.
        t.saw("bbbb", None, "lease");
        assert!(problems.current().unwrap().contains("at 10.0.0.7:4040"));
        t.saw("dddd", None, "lease");
        assert!(problems
            .current()
            .unwrap()
            .contains("(incarnation dddd, at an unknown address)"));
        tokio::time::sleep(Duration::from_secs(1000)).await;
        t.saw("bbbb", Some("host-b"), "registry");
        tokio::time::sleep(Duration::from_secs(1100)).await;
        assert!(
            problems.current().unwrap().contains("at host-b"),
            "a new sign keeps it"
        );
        tokio::time::sleep(Duration::from_secs(101)).await;
        assert_eq!(
            problems.current(),
            None,
            "cleared 1200 s after the last sign"
        );
        // The election gone (its events closed): signs from the registry
        // still come and go, and the task does not spin (paused time
        // would never advance past a busy loop).
        drop(tx);
        tokio::time::sleep(Duration::from_secs(1)).await;
        t.saw("cccc", None, "registry");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(problems.current().is_some());
        tokio::time::sleep(Duration::from_secs(1200)).await;
        assert_eq!(problems.current(), None);
        assert!(!task.is_finished());
        stop.cancel();
        task.await.unwrap();
    }
}
