//! The verdict of a health check, counted as keepalived's `track_script`
//! and HAProxy's `check` count it: `rise` good results in a row make an
//! unhealthy copy healthy, `fall` bad results in a row make a healthy copy
//! unhealthy, and a result that agrees with the verdict resets the count.
//! The first result of all decides at once (the first check runs when the
//! daemon starts). Pure: results in, the verdict out.

use serde::{Deserialize, Serialize};

/// What a copy's own health check says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No result yet: unhealthy for taking another's lease, healthy for
    /// keeping or retaking its own.
    Unknown,
    Healthy,
    Unhealthy,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Unknown => "unknown",
            Verdict::Healthy => "healthy",
            Verdict::Unhealthy => "unhealthy",
        }
    }
}

/// Counts results in a row against the current verdict.
#[derive(Debug, Clone)]
pub struct Tracker {
    rise: u32,
    fall: u32,
    verdict: Verdict,
    /// Results in a row that disagree with `verdict`.
    against: u32,
}

impl Tracker {
    /// `rise` and `fall` are at least 1 (the config checks it).
    pub fn new(rise: u32, fall: u32) -> Tracker {
        Tracker {
            rise: rise.max(1),
            fall: fall.max(1),
            verdict: Verdict::Unknown,
            against: 0,
        }
    }

    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// Count one result; returns the new verdict when it changed.
    pub fn note(&mut self, ok: bool) -> Option<Verdict> {
        let wanted = if ok {
            Verdict::Healthy
        } else {
            Verdict::Unhealthy
        };
        if self.verdict == wanted {
            self.against = 0;
            return None;
        }
        if self.verdict == Verdict::Unknown {
            self.verdict = wanted;
            return Some(wanted);
        }
        self.against += 1;
        let needed = if ok { self.rise } else { self.fall };
        if self.against >= needed {
            self.verdict = wanted;
            self.against = 0;
            Some(wanted)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(t: &mut Tracker, results: &str) -> String {
        results
            .chars()
            .map(|c| match t.note(c == '+') {
                Some(Verdict::Healthy) => 'H',
                Some(Verdict::Unhealthy) => 'U',
                Some(Verdict::Unknown) => '?',
                None => '.',
            })
            .collect()
    }

    #[test]
    fn the_first_result_decides_then_rise_and_fall_count_in_a_row() {
        let mut t = Tracker::new(2, 3);
        assert_eq!(t.verdict(), Verdict::Unknown);
        // healthy at once; two bad are not three; a good one resets the count
        assert_eq!(feed(&mut t, "+--+--"), "H.....");
        assert_eq!(t.verdict(), Verdict::Healthy);
        assert_eq!(feed(&mut t, "-"), "U", "the third bad result in a row");
        assert_eq!(feed(&mut t, "+-+"), "...", "one good is not two");
        assert_eq!(feed(&mut t, "+"), "H", "the second good result in a row");
        let mut t = Tracker::new(1, 1);
        assert_eq!(feed(&mut t, "-+-+"), "UHUH");
        let mut t = Tracker::new(3, 2);
        assert_eq!(feed(&mut t, "-+++"), "U..H");
    }

    #[test]
    fn a_verdict_is_named_as_the_json_names_it() {
        for v in [Verdict::Unknown, Verdict::Healthy, Verdict::Unhealthy] {
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{}\"", v.name()));
        }
        assert_eq!(Verdict::Unhealthy.name(), "unhealthy");
    }

    #[test]
    fn a_flapping_check_never_changes_the_verdict_with_rise_and_fall_above_one() {
        let mut t = Tracker::new(2, 2);
        t.note(true);
        assert_eq!(feed(&mut t, "-+-+-+-+-+-+"), "............");
        assert_eq!(t.verdict(), Verdict::Healthy);
    }
}
