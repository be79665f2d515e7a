//! Request rates and monthly request cost implied by the timings.
//!
//! Prices are S3 Standard in us-east-1 (see docs): failed conditional
//! requests are billed like successful ones, so a refused takeover costs
//! the same as a renewal; LIST is billed like PUT.
//!
//! The model (checked against requests counted on the wire by
//! `scripts/bench`, see BENCHMARKS.md):
//! - leader: one PUT per `retry_period` (renewal), plus, with the registry,
//!   one LIST per `registry.list_interval` and one PUT per `registry.refresh`;
//! - every copy, with the registry: one GET per `registry.refresh` (its own
//!   entry, read back before the rewrite: another process with its
//!   identity shows there);
//! - follower: one GET per `retry_period` (reads are timed to the leader's
//!   renewals) plus early reads ([`EARLY_READS`] of them per period), plus
//!   one PUT per `registry.refresh`;
//! - with the registry, only the named successors (at most
//!   [`MAX_SUCCESSORS`]) read like that; the other followers (far
//!   followers) read about once per 1.1 × `lease_duration` (at their
//!   takeover times: a lease and 8 rank delays, 16.6 s at the defaults),
//!   plus their registry PUTs.
//!
//! [`MAX_SUCCESSORS`]: crate::lease::election::MAX_SUCCESSORS

use std::time::Duration;

/// USD per 1,000 PUT, COPY, POST or LIST requests (S3 Standard, us-east-1).
pub const PUT_PER_1000: f64 = 0.005;
/// USD per 1,000 GET requests (S3 Standard, us-east-1).
pub const GET_PER_1000: f64 = 0.0004;
/// Seconds in the 30-day month used for the figures.
pub const MONTH_SECS: f64 = 30.0 * 24.0 * 3600.0;
/// Extra reads per period of a follower's phase-aligned polling: about one
/// early read every three periods (measured: 1.33 reads per renewal period
/// over 300 s, BENCHMARKS.md).
pub const EARLY_READS: f64 = 1.0 / 3.0;

/// The registry's schedule, when it is on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegistrySchedule {
    pub list_interval: Duration,
    pub refresh: Duration,
}

/// Steady-state request rates and costs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    pub leader_puts_per_hour: f64,
    pub leader_lists_per_hour: f64,
    pub follower_gets_per_hour: f64,
    pub follower_puts_per_hour: f64,
    /// A far follower (with the registry; else as a follower).
    pub far_gets_per_hour: f64,
    pub leader_usd_month: f64,
    pub follower_usd_month: f64,
    pub far_usd_month: f64,
}

impl Cost {
    /// Cost of one leader renewing every `retry` and followers reading
    /// once per renewal (plus early reads), with or without the registry.
    pub fn new(retry: Duration, lease: Duration, registry: Option<RegistrySchedule>) -> Cost {
        let per_s = |d: Duration| 1.0 / d.as_secs_f64();
        let (lists_s, entry_puts_s) =
            registry.map_or((0.0, 0.0), |r| (per_s(r.list_interval), per_s(r.refresh)));
        let leader_puts_s = per_s(retry) + entry_puts_s;
        // The read-back of the own entry before each rewrite.
        let entry_gets_s = entry_puts_s;
        let follower_gets_s = per_s(retry) * (1.0 + EARLY_READS);
        let far_gets_s = if registry.is_some() {
            per_s(lease.mul_f64(1.1)).min(follower_gets_s)
        } else {
            follower_gets_s
        };
        let month = |n: f64, price: f64| n * MONTH_SECS * price / 1000.0;
        Cost {
            leader_puts_per_hour: leader_puts_s * 3600.0,
            leader_lists_per_hour: lists_s * 3600.0,
            follower_gets_per_hour: follower_gets_s * 3600.0,
            follower_puts_per_hour: entry_puts_s * 3600.0,
            far_gets_per_hour: far_gets_s * 3600.0,
            leader_usd_month: month(leader_puts_s + lists_s, PUT_PER_1000)
                + month(entry_gets_s, GET_PER_1000),
            follower_usd_month: month(follower_gets_s + entry_gets_s, GET_PER_1000)
                + month(entry_puts_s, PUT_PER_1000),
            far_usd_month: month(far_gets_s + entry_gets_s, GET_PER_1000)
                + month(entry_puts_s, PUT_PER_1000),
        }
    }

    /// Whole-election monthly cost with `copies` copies (one leads).
    pub fn total_usd_month(&self, copies: u32) -> f64 {
        let followers = copies.saturating_sub(1);
        let near = followers.min(crate::lease::election::MAX_SUCCESSORS as u32);
        self.leader_usd_month
            + f64::from(near) * self.follower_usd_month
            + f64::from(followers - near) * self.far_usd_month
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_published_figures() {
        let lease = Duration::from_secs(15);
        let c = Cost::new(Duration::from_secs(2), lease, None);
        assert!((c.leader_usd_month - 6.48).abs() < 0.01, "{c:?}");
        assert!((c.follower_usd_month - 0.691).abs() < 0.01, "{c:?}");
        assert_eq!(c.leader_puts_per_hour, 1800.0);
        let r = Cost::new(
            Duration::from_secs(2),
            lease,
            Some(RegistrySchedule {
                list_interval: Duration::from_secs(300),
                refresh: Duration::from_secs(600),
            }),
        );
        assert!((r.leader_puts_per_hour - 1806.0).abs() < 1e-6, "{r:?}");
        assert!((r.leader_lists_per_hour - 12.0).abs() < 1e-6, "{r:?}");
        // 1,818 PUT-class requests an hour for 720 h.
        assert!((r.leader_usd_month - 6.54).abs() < 0.01, "{r:?}");
        assert!((r.follower_usd_month - 0.71).abs() < 0.01, "{r:?}");
        assert!(
            (r.total_usd_month(3) - (r.leader_usd_month + 2.0 * r.follower_usd_month)).abs() < 1e-9
        );
        // Far followers: one read per 16.5 s on average, 218 an hour.
        assert!((r.far_gets_per_hour - 218.18).abs() < 0.01, "{r:?}");
        assert_eq!(
            c.far_gets_per_hour, c.follower_gets_per_hour,
            "no registry, no far followers"
        );
        // 100 copies cost far less than 10 times 10 copies.
        let (ten, hundred) = (r.total_usd_month(10), r.total_usd_month(100));
        let nine_near = r.leader_usd_month + 8.0 * r.follower_usd_month + r.far_usd_month;
        assert!((ten - nine_near).abs() < 1e-9);
        assert!(hundred < 3.0 * ten, "{hundred} vs {ten}");
        assert!(
            (c.total_usd_month(100) - (c.leader_usd_month + 99.0 * c.follower_usd_month)).abs()
                < 1e-9
        );
    }
}
