//! Request rates and monthly request cost implied by the timings.
//!
//! Prices are S3 Standard in us-east-1 (see docs): failed conditional
//! requests are billed like successful ones, so a refused takeover costs
//! the same as a renewal.

use std::time::Duration;

/// USD per 1,000 PUT requests (S3 Standard, us-east-1).
pub const PUT_PER_1000: f64 = 0.005;
/// USD per 1,000 GET requests (S3 Standard, us-east-1).
pub const GET_PER_1000: f64 = 0.0004;
/// Seconds in the 30-day month used for the figures.
pub const MONTH_SECS: f64 = 30.0 * 24.0 * 3600.0;
/// Mean follower poll interval as a multiple of `retry_period` (jitter 1.0–1.2).
pub const MEAN_JITTER: f64 = 1.1;

/// Steady-state request rates and costs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    pub leader_puts_per_hour: f64,
    pub follower_gets_per_hour: f64,
    pub leader_usd_month: f64,
    pub follower_usd_month: f64,
}

impl Cost {
    /// Cost of one leader renewing every `retry` and followers polling every
    /// `retry × 1.1` on average.
    pub fn for_retry_period(retry: Duration) -> Cost {
        let r = retry.as_secs_f64();
        let puts_s = 1.0 / r;
        let gets_s = 1.0 / (r * MEAN_JITTER);
        Cost {
            leader_puts_per_hour: puts_s * 3600.0,
            follower_gets_per_hour: gets_s * 3600.0,
            leader_usd_month: puts_s * MONTH_SECS * PUT_PER_1000 / 1000.0,
            follower_usd_month: gets_s * MONTH_SECS * GET_PER_1000 / 1000.0,
        }
    }

    /// Whole-election monthly cost with `copies` copies (one leads).
    pub fn total_usd_month(&self, copies: u32) -> f64 {
        self.leader_usd_month + f64::from(copies.saturating_sub(1)) * self.follower_usd_month
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_published_figures() {
        let c = Cost::for_retry_period(Duration::from_secs(2));
        assert!((c.leader_usd_month - 6.48).abs() < 0.01, "{c:?}");
        assert!((c.follower_usd_month - 0.47).abs() < 0.01, "{c:?}");
        assert_eq!(c.leader_puts_per_hour, 1800.0);
        assert!((c.total_usd_month(3) - (6.48 + 2.0 * 0.471)).abs() < 0.01);
    }
}
