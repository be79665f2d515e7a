//! Failing leader-only work backs off instead of flapping.
//!
//! A failing `on_acquired` (under `hooks.on_acquired_failure: release`), or
//! a supervised program that exits within a lease of starting (under
//! `child.on_exit: release`), makes the copy step down. Without a back-off
//! it would win the lease again one `step_down_cooloff` later, fail again,
//! and bounce whatever its work does (an Elastic IP, a DNS name) around the
//! fleet forever.
//!
//! Invariants:
//! - each kind of work keeps its own count of failures in a row; the n-th
//!   failure in a row sits out `step_down_cooloff · 2^(n−1)`, at most
//!   `hooks.on_acquired_backoff_max` ([`cooloff`], pure);
//! - one success of that work resets its count (an `on_acquired` that
//!   exits 0; a program still running a lease after it started);
//! - while a count is not zero, `problem` says so (published on a watch
//!   channel the HTTP surface and the status file show), and every failure
//!   is counted in `s3_elector_work_failures_total`;
//! - nothing here touches `/healthz`: a 503 would make kubelet or the
//!   watchdog restart the copy, which would forget the back-off.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::health::Report;

use crate::surfaces::metrics::Metrics;
use crate::surfaces::problems::Problems;

/// The leader-only work whose failures are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    OnAcquired,
    Program,
}

impl Work {
    pub fn name(self) -> &'static str {
        match self {
            Work::OnAcquired => "on_acquired",
            Work::Program => "program",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
    fn failed_words(self) -> &'static str {
        match self {
            Work::OnAcquired => "on_acquired failed",
            Work::Program => "the supervised program exited within a lease of starting",
        }
    }
}

/// The cool-off after the `failures`-th failure in a row (1-based):
/// `base · 2^(failures−1)`, never more than `max` (nor less than `base`).
pub fn cooloff(base: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1));
    base.saturating_mul(factor).min(max.max(base))
}

#[derive(Debug, Default, Clone)]
struct Streak {
    failures: u32,
    last: String,
}

/// The failure counts of one daemon's leader-only work.
pub struct Backoff {
    base: Duration,
    max: Duration,
    streaks: Mutex<[Streak; 2]>,
    problems: Problems,
    metrics: Option<Arc<Metrics>>,
    /// This copy's health report: a failing `on_acquired` makes the copy
    /// unhealthy until it succeeds ([`crate::health`]).
    health: Option<watch::Sender<Report>>,
}

/// The source name of the back-off's problem in [`Problems`].
pub const PROBLEM_SOURCE: &str = "work";

impl Backoff {
    /// `base`: `timing.step_down_cooloff`; `max`:
    /// `hooks.on_acquired_backoff_max`; the problem goes to `problems`.
    pub fn new(
        base: Duration,
        max: Duration,
        problems: Problems,
        metrics: Option<Arc<Metrics>>,
    ) -> Arc<Backoff> {
        Backoff::reporting(base, max, problems, metrics, None)
    }

    /// As [`Backoff::new`], and a failing `on_acquired` marks `health`
    /// unhealthy until it succeeds.
    pub fn reporting(
        base: Duration,
        max: Duration,
        problems: Problems,
        metrics: Option<Arc<Metrics>>,
        health: Option<watch::Sender<Report>>,
    ) -> Arc<Backoff> {
        Arc::new(Backoff {
            base,
            max,
            streaks: Mutex::default(),
            problems,
            metrics,
            health,
        })
    }

    /// Tell the health report whether `on_acquired` is failing.
    fn report(&self, work: Work, failing: Option<String>) {
        if let (Work::OnAcquired, Some(h)) = (work, &self.health) {
            crate::health::check::set_work_failing(h, failing);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [Streak; 2]> {
        self.streaks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One more failure of `work` in a row (`last`: how it failed, e.g.
    /// "exit 3"); returns the cool-off to sit out before competing again.
    pub fn failed(&self, work: Work, last: &str) -> Duration {
        let (n, d) = {
            let mut g = self.lock();
            let s = &mut g[work.index()];
            s.failures = s.failures.saturating_add(1);
            s.last = last.to_string();
            let n = s.failures;
            self.publish(&g);
            (n, cooloff(self.base, self.max, n))
        };
        self.report(
            work,
            Some(format!(
                "{} ({n} in a row; last: {last})",
                work.failed_words()
            )),
        );
        if let Some(m) = &self.metrics {
            m.count_work_failure(work.name());
        }
        warn!(
            event = "work_failed",
            work = work.name(),
            failures_in_a_row = n,
            last,
            cooloff_ms = d.as_millis() as u64,
            "leader-only work failed; competing again after {}",
            humantime::format_duration(d)
        );
        d
    }

    /// `work` succeeded: its count starts again from zero.
    pub fn succeeded(&self, work: Work) {
        let mut g = self.lock();
        let s = &mut g[work.index()];
        if s.failures == 0 {
            return;
        }
        info!(
            event = "work_recovered",
            work = work.name(),
            after_failures = s.failures,
            "leader-only work succeeded again; its back-off is reset"
        );
        *s = Streak::default();
        self.publish(&g);
        drop(g);
        self.report(work, None);
    }

    /// Failures of `work` in a row so far.
    pub fn failures(&self, work: Work) -> u32 {
        self.lock()[work.index()].failures
    }

    fn publish(&self, g: &[Streak; 2]) {
        let parts: Vec<String> = [Work::OnAcquired, Work::Program]
            .into_iter()
            .filter_map(|w| {
                let s = &g[w.index()];
                (s.failures > 0).then(|| {
                    let times = match s.failures {
                        1 => "once".to_string(),
                        n => format!("{n} times in a row"),
                    };
                    let next = cooloff(self.base, self.max, s.failures);
                    format!(
                        "{} {times}; last: {}; each failure in a row doubles the cool-off (now {}, at most {}, hooks.on_acquired_backoff_max)",
                        w.failed_words(),
                        s.last,
                        humantime::format_duration(next),
                        humantime::format_duration(self.max.max(self.base)),
                    )
                })
            })
            .collect();
        let p = (!parts.is_empty()).then(|| parts.join("; "));
        self.problems.set(PROBLEM_SOURCE, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_cooloff_doubles_from_the_base_up_to_the_cap() {
        let got: Vec<_> = (1..=8).map(|n| cooloff(S(10), S(600), n)).collect();
        assert_eq!(
            got,
            [10, 20, 40, 80, 160, 320, 600, 600].map(S),
            "failures 1..8 at a 10 s base and a 10 min cap"
        );
        assert_eq!(cooloff(S(10), S(600), 0), S(10));
        assert_eq!(cooloff(S(10), S(600), u32::MAX), S(600));
        assert_eq!(cooloff(S(1), S(16), 5), S(16));
        assert_eq!(cooloff(S(1), S(16), 4), S(8));
        // A cap below the base (validation refuses it) never shortens it.
        assert_eq!(cooloff(S(10), S(1), 3), S(10));
        assert_eq!(cooloff(Duration::MAX, S(1), 2), Duration::MAX);
    }

    #[test]
    fn the_problem_names_the_work_counts_in_a_row_and_clears_on_success() {
        let problems = Problems::new();
        let b = Backoff::new(S(10), S(600), problems.clone(), None);
        let rx = problems.subscribe();
        let rx = || crate::surfaces::problems::joined(&rx.borrow());
        assert_eq!(b.failed(Work::OnAcquired, "exit 3"), S(10));
        let p = rx().unwrap();
        assert!(
            p.starts_with("on_acquired failed once; last: exit 3;"),
            "{p}"
        );
        for _ in 0..11 {
            b.failed(Work::OnAcquired, "exit 3");
        }
        let p = rx().unwrap();
        assert!(
            p.starts_with("on_acquired failed 12 times in a row; last: exit 3;"),
            "{p}"
        );
        assert!(p.contains("now 10m"), "{p}");
        // The program's count is its own.
        assert_eq!(b.failed(Work::Program, "exit 1"), S(10));
        let p = rx().unwrap();
        assert!(
            p.contains(
                "; the supervised program exited within a lease of starting once; last: exit 1"
            ),
            "{p}"
        );
        b.succeeded(Work::OnAcquired);
        assert_eq!(b.failures(Work::OnAcquired), 0);
        assert_eq!(
            b.failed(Work::OnAcquired, "exit 4"),
            S(10),
            "reset by one success"
        );
        b.succeeded(Work::OnAcquired);
        b.succeeded(Work::Program);
        assert_eq!(rx(), None);
    }

    /// Each failure is counted in `s3_elector_work_failures_total`, by the
    /// work's name (a label dashboards select on).
    #[test]
    fn failures_are_counted_by_work_in_the_metric() {
        use crate::surfaces::metrics::{Format, Metrics};
        let metrics = Arc::new(Metrics::new());
        let b = Backoff::new(S(1), S(16), Problems::new(), Some(metrics.clone()));
        b.failed(Work::OnAcquired, "exit 3");
        b.failed(Work::OnAcquired, "exit 3");
        b.failed(Work::Program, "exit 1");
        let state =
            crate::work::hooks::tests::st(crate::lease::election::Role::Follower, None, 1, false);
        let text = metrics.render(&state, Format::Prometheus);
        for line in [
            "s3_elector_work_failures_total{work=\"on_acquired\"} 2",
            "s3_elector_work_failures_total{work=\"program\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
    }
}
