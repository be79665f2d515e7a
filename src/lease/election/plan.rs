//! When a follower reads (see "Timing of follower reads" in the election's
//! module docs): the window in which the holder's next renewal should
//! become visible, narrowed by bisection, then read just before its end,
//! creeping earlier each period until one read comes too early. Pure: the
//! election tells it each read's send time and what it found.
//!
//! Only ever moves reads in time (rule 16): nothing here decides a write.

use std::time::Duration;

use tokio::time::Instant;

/// Where the holder's renewals are expected.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    /// The next renewal is expected to become visible in `(lo, hi]`.
    pub lo: Instant,
    pub hi: Instant,
    /// After an aimed read came too early: when to read again.
    pub retry_at: Option<Instant>,
}

/// A follower's read plan.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadPlan {
    /// Phase-aligned polling; `None`: poll at the plain pause.
    pub phase: Option<Phase>,
    /// When the last read was sent.
    pub last_read: Option<Instant>,
    /// When the last read that got an answer was sent: a failed read tells
    /// nothing, so a copy due to re-read before writing reads again.
    pub last_good_read: Option<Instant>,
}

/// The guard after an early read, and how much earlier each aimed read
/// comes than the previous one: a twentieth of the retry period, between
/// 10 and 100 ms.
pub fn guard_for(retry_period: Duration) -> Duration {
    (retry_period / 20).clamp(Duration::from_millis(10), Duration::from_millis(100))
}

impl ReadPlan {
    /// When to read for the next renewal: in the middle of a window wider
    /// than the guard (to narrow it), else `creep` before its end (so that
    /// reads creep earlier until one comes too early).
    pub fn aim(p: &Phase, guard: Duration) -> Instant {
        let width = p.hi.saturating_duration_since(p.lo);
        if width > guard {
            p.hi - width / 2
        } else {
            p.hi - (guard / 5).min(width)
        }
    }

    /// A read is sent at `sent`: returns whether it is aimed (at or after
    /// the aim of the current phase) and the send time of the read before.
    pub fn sending(&mut self, sent: Instant, guard: Duration) -> (bool, Option<Instant>) {
        let aimed = self.phase.is_some_and(|p| sent >= Self::aim(&p, guard));
        let previous = self.last_read.replace(sent);
        (aimed, previous)
    }

    /// The read sent at `sent` got an answer.
    pub fn answered(&mut self, sent: Instant) {
        self.last_good_read = Some(sent);
    }

    /// The read failed: it says nothing of the holder's phase, and an aimed
    /// read would come at once (rule 12): poll plainly.
    pub fn failed(&mut self) {
        self.phase = None;
    }

    /// Did the last read fail?
    pub fn last_failed(&self) -> bool {
        self.last_read.is_some() && self.last_good_read != self.last_read
    }

    /// Update the plan after a read sent at `sent` (the read before it was
    /// sent at `previous`) that found a new version (`changed`) or not;
    /// `chase`: the record is held by another copy whose renewals are worth
    /// chasing (not a far follower's holder).
    pub fn update(
        &mut self,
        previous: Option<Instant>,
        sent: Instant,
        changed: bool,
        aimed: bool,
        chase: bool,
        period: Duration,
    ) {
        let guard = guard_for(period);
        let creep = guard / 5;
        if !chase {
            self.phase = None;
            return;
        }
        if changed {
            // Visible after the previous read (which saw the old version)
            // and, if we were in phase, after the window's start.
            let mut lo = previous.unwrap_or(sent).min(sent);
            if let Some(p) = self.phase {
                if p.lo < sent {
                    lo = lo.max(p.lo);
                }
            }
            self.phase = Some(Phase {
                // Widen by `creep` per period: renewals drift a little.
                lo: lo + period.saturating_sub(creep),
                hi: sent + period,
                retry_at: None,
            });
            return;
        }
        let Some(mut p) = self.phase else { return };
        if !aimed {
            return;
        }
        if p.retry_at.is_some() || sent > p.hi + guard {
            // Early twice, or well past the window: the holder is late or
            // gone. Poll at the plain period until the next renewal is seen.
            self.phase = None;
            return;
        }
        let wide = p.hi.saturating_duration_since(p.lo) > guard;
        p.lo = p.lo.max(sent);
        p.retry_at = Some(if wide { p.hi + creep } else { sent + guard });
        self.phase = Some(p);
    }

    /// When the plan wants the next read; `None`: at the plain pause.
    pub fn planned(&self, guard: Duration) -> Option<Instant> {
        match self.phase {
            Some(Phase {
                retry_at: Some(t), ..
            }) => Some(t),
            Some(p) => Some(Self::aim(&p, guard)),
            None => None,
        }
    }
}
