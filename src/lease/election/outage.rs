//! A store outage, logged as an operator reads it: one WARN when requests
//! start failing (timeouts, 5xx, throttling), again at most once a minute
//! while it lasts, and one INFO when the store answers again, saying how
//! long it was gone. Each failed request alone is DEBUG. Pure: instants
//! in, what to log out.

use std::time::Duration;

use tokio::time::Instant;

/// How often a lasting outage is logged at WARN again.
pub const REPEAT: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Outage {
    /// When the first request of this outage failed.
    since: Option<Instant>,
    /// When it was last logged at WARN.
    warned: Option<Instant>,
    /// Requests failed in this outage.
    failed: u64,
}

impl Outage {
    /// A request failed for want of an answer at `now`: whether to log it
    /// at WARN (the first of an outage, then once per [`REPEAT`]).
    pub fn failed(&mut self, now: Instant) -> bool {
        self.since.get_or_insert(now);
        self.failed += 1;
        let warn = self.warned.is_none_or(|w| now >= w + REPEAT);
        if warn {
            self.warned = Some(now);
        }
        warn
    }

    /// The store answered at `now` (any answer, a refusal too): when an
    /// outage just ended, how long it lasted and how many requests failed.
    pub fn answered(&mut self, now: Instant) -> Option<(Duration, u64)> {
        let since = self.since.take()?;
        let n = std::mem::take(&mut self.failed);
        self.warned = None;
        Some((now.saturating_duration_since(since), n))
    }
}

/// An error's text cut to a log field's length (the SDK's chain can run
/// to hundreds of characters; the start says what happened).
pub fn short(text: &str) -> String {
    const MAX: usize = 120;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_warn_a_minute_while_it_lasts_and_one_info_at_its_end() {
        let mut o = Outage::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(o.answered(at(0)), None, "no outage, nothing to say");
        assert!(o.failed(at(1)), "the first failure warns");
        assert!(!o.failed(at(2)));
        assert!(!o.failed(at(60)));
        assert!(o.failed(at(61)), "a minute after the last warning");
        assert!(!o.failed(at(62)));
        assert_eq!(o.answered(at(70)), Some((Duration::from_secs(69), 5)));
        assert_eq!(o.answered(at(71)), None, "said once");
        assert!(o.failed(at(72)), "a new outage warns at once");
        assert_eq!(o.answered(at(73)), Some((Duration::from_secs(1), 1)));
    }

    #[test]
    fn a_long_error_is_cut_a_short_one_kept() {
        assert_eq!(short("timed out"), "timed out");
        let long = "x".repeat(300);
        let s = short(&long);
        assert_eq!(s.chars().count(), 121);
        assert!(s.ends_with('…'));
        assert_eq!(short(&"é".repeat(200)).chars().count(), 121);
    }
}
