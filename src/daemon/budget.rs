//! The stop budget: how long a graceful stop may take, computed from the
//! config in one place, and the one deadline every step of the stop takes
//! its time from.
//!
//! The parts, in the stop's order (see the module docs of `daemon`):
//! - **program**: `child.kill_grace` (SIGTERM, then SIGKILL), plus 1 s for
//!   the release barrier to see it gone; only when a program runs;
//! - **release**: two S3 requests, `2 × s3.request_timeout`: one that may be
//!   in flight when the stop begins, then the release itself;
//! - **on_lost**: its `timeout`, plus the 2 s between SIGTERM and SIGKILL at
//!   the timeout and 1 s to read the last of its output; only when the hook
//!   is configured (it starts when the release begins, so this is an upper
//!   bound);
//! - **pod_label**: `kubernetes.request_timeout`, to remove the leader's
//!   pod label; only with `kubernetes.leader_label`;
//! - **registry**: 0.5 s to wake the successors, 2 s to remove this copy's
//!   entry; only when the registry is on;
//! - **rest**: 1 s for the status file's last write, HTTP and metrics.
//!
//! Invariant: a step may use the time of the steps before it that finished
//! early, never the time kept for the steps after it. When a step's time is
//! up the daemon cuts it (its processes are killed with everything else at
//! the end) and says so in one log line.

use std::time::Duration;

use crate::config::Config;
use crate::peers::registry::{ENTRY_REMOVAL_TIMEOUT, PEER_TIMEOUT};
use crate::work::hooks::{HOOK_KILL_GRACE, HOOK_OUTPUT_DRAIN};

/// Margin for the release barrier to notice the program is gone.
const BARRIER_MARGIN: Duration = Duration::from_secs(1);
/// The status file's last write, HTTP and metrics.
const REST: Duration = Duration::from_secs(1);

/// How long each part of a graceful stop may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopBudget {
    pub program: Duration,
    pub release: Duration,
    pub on_lost: Duration,
    pub pod_label: Duration,
    pub registry: Duration,
    pub rest: Duration,
}

impl StopBudget {
    /// The budget for `cfg`, with or without a supervised program.
    pub fn of(cfg: &Config, program: bool) -> StopBudget {
        StopBudget {
            program: if program {
                cfg.child_kill_grace() + BARRIER_MARGIN
            } else {
                Duration::ZERO
            },
            release: cfg.s3.request_timeout * 2,
            on_lost: cfg.hooks.on_lost.as_ref().map_or(Duration::ZERO, |h| {
                h.timeout + HOOK_KILL_GRACE + HOOK_OUTPUT_DRAIN
            }),
            pod_label: if cfg.kubernetes.leader_label.is_some() {
                cfg.kubernetes.request_timeout
            } else {
                Duration::ZERO
            },
            registry: if cfg.registry.enabled {
                PEER_TIMEOUT + ENTRY_REMOVAL_TIMEOUT
            } else {
                Duration::ZERO
            },
            rest: REST,
        }
    }

    /// The whole stop.
    pub fn total(&self) -> Duration {
        self.program + self.release + self.on_lost + self.after_hooks()
    }

    /// Time kept for the steps after the program and the release.
    pub fn after_release(&self) -> Duration {
        self.on_lost + self.after_hooks()
    }

    /// Time kept for the steps after the hooks.
    pub fn after_hooks(&self) -> Duration {
        self.pod_label + self.registry + self.rest
    }

    /// "9.5s (release 6s + registry 2.5s + rest 1s)": the parts that count.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("program", self.program),
            ("release", self.release),
            ("on_lost", self.on_lost),
            ("pod_label", self.pod_label),
            ("registry", self.registry),
            ("rest", self.rest),
        ]
        .into_iter()
        .filter(|(_, d)| !d.is_zero())
        .map(|(n, d)| format!("{n} {}", humantime::format_duration(d)))
        .collect();
        format!(
            "{} ({})",
            humantime::format_duration(self.total()),
            parts.join(" + ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        Config::from_yaml(&format!("election: e\ns3:\n  bucket: leases\n{extra}"), "t").unwrap()
    }

    #[test]
    fn the_default_config_stops_within_ten_seconds() {
        let b = StopBudget::of(&cfg(""), false);
        assert_eq!(b.total(), Duration::from_millis(9500));
        assert_eq!(
            b.describe(),
            "9s 500ms (release 6s + registry 2s 500ms + rest 1s)"
        );
    }

    #[test]
    fn each_configured_part_counts() {
        let c = Config::from_yaml(
            "election: e\ns3:\n  bucket: leases\n  request_timeout: 1s\n  connect_timeout: 1s\nhooks:\n  on_lost:\n    command: [x]\n    timeout: 10s\nchild:\n  kill_grace: 2s\nregistry:\n  enabled: false\n",
            "t",
        )
        .unwrap();
        let b = StopBudget::of(&c, true);
        assert_eq!(
            b,
            StopBudget {
                program: Duration::from_secs(3),
                release: Duration::from_secs(2),
                on_lost: Duration::from_secs(13),
                pod_label: Duration::ZERO,
                registry: Duration::ZERO,
                rest: Duration::from_secs(1),
            }
        );
        assert_eq!(b.total(), Duration::from_secs(19));
        assert_eq!(b.after_release(), Duration::from_secs(14));
        assert_eq!(b.after_hooks(), Duration::from_secs(1));
        assert_eq!(StopBudget::of(&c, false).total(), Duration::from_secs(16));
    }

    #[test]
    fn the_pod_label_adds_one_api_request() {
        let b = StopBudget::of(
            &cfg("kubernetes:\n  leader_label: s3-elector/leader\n  pod_selector: app=x\n  request_timeout: 2s\n"),
            false,
        );
        assert_eq!(b.pod_label, Duration::from_secs(2));
        assert_eq!(b.total(), Duration::from_millis(11_500));
        assert_eq!(b.after_hooks(), Duration::from_millis(5_500));
        assert!(b.describe().contains("pod_label 2s"), "{}", b.describe());
    }
}
