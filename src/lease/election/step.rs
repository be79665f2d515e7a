//! The election's decisions, pure: what it knows and the current instant in,
//! the next action and its deadline out (as raft-rs's `RawNode` hands out a
//! `Ready`). The async shell in `election.rs` performs the action (a read,
//! a write, a wait raced against wake-ups, commands and shutdown) and feeds
//! the outcome back; only then is the next step decided.
//!
//! Invariants the steps keep:
//! - A follower writes only when [`super::Election::may_acquire`] allows it
//!   (rule 2), and never twice without a wait between (rule 12): after an
//!   attempt, or a failed read, the next step is a wait.
//! - A leader's next step is [`LeaderStep::Expired`] once its renew
//!   deadline has passed, whatever else is due (rule 3); a wait never lasts
//!   past the deadline.

use tokio::time::Instant;

use crate::lease::record::LeaseRecord;

/// Where a follower is in its round: what it did last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Round {
    /// It waited (the plan's read time came, or a wake-up): read, unless
    /// it may write at once.
    Woke,
    /// A read got an answer: write if the rules allow it now, else wait.
    Read,
    /// A read failed, or a write was attempted: wait before anything else.
    Attempted,
}

/// A follower's next action.
// One at a time, short-lived: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub(super) enum FollowerStep {
    /// Read the lease now.
    Read,
    /// Write a record naming this copy, conditioned on `etag` (`None`:
    /// create the key), over `prev`.
    Acquire {
        etag: Option<String>,
        prev: Option<LeaseRecord>,
    },
    /// Nothing until `at`, unless a wake-up, a command or shutdown comes.
    Wait { at: Instant },
}

/// A leader's next action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LeaderStep {
    /// The renew deadline has passed: stop leading, with no request.
    Expired,
    /// Renew now (or settle the unknown outcome of the last renewal).
    Renew,
    /// Nothing until `at` (the next renewal or the deadline, whichever is
    /// first), unless a command, a wake-up or shutdown comes.
    Wait { at: Instant },
}

/// A leader's step at `now`, with its renew deadline and the moment the
/// next renewal is due.
pub(super) fn leader_step(now: Instant, deadline: Instant, next_renewal: Instant) -> LeaderStep {
    if now >= deadline {
        LeaderStep::Expired
    } else if now >= next_renewal {
        LeaderStep::Renew
    } else {
        LeaderStep::Wait {
            at: next_renewal.min(deadline),
        }
    }
}

/// A follower's step at `now`, after `round`: `acquire` is what
/// [`super::Election::may_acquire`] allows now, `recheck` whether the rules
/// want a fresh read before that write (a copy not first in line), and
/// `wake` when the next read is planned.
pub(super) fn follower_step(
    round: Round,
    acquire: Option<(Option<String>, Option<LeaseRecord>)>,
    recheck: bool,
    wake: Instant,
) -> FollowerStep {
    match (round, acquire) {
        (Round::Attempted, _) => FollowerStep::Wait { at: wake },
        (Round::Woke, Some(_)) if recheck => FollowerStep::Read,
        (Round::Woke | Round::Read, Some((etag, prev))) => FollowerStep::Acquire { etag, prev },
        (Round::Woke, None) => FollowerStep::Read,
        (Round::Read, None) => FollowerStep::Wait { at: wake },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_leader_past_its_deadline_expires_whatever_else_is_due() {
        let t = Instant::now();
        let s = Duration::from_secs(1);
        assert_eq!(leader_step(t, t, t), LeaderStep::Expired);
        assert_eq!(leader_step(t + s, t, t), LeaderStep::Expired);
        assert_eq!(leader_step(t, t + s, t), LeaderStep::Renew);
        assert_eq!(
            leader_step(t, t + s * 3, t + s),
            LeaderStep::Wait { at: t + s }
        );
        // A wait never lasts past the deadline.
        assert_eq!(
            leader_step(t, t + s, t + s * 3),
            LeaderStep::Wait { at: t + s }
        );
    }

    #[test]
    fn a_follower_reads_writes_and_waits_in_turn() {
        let at = Instant::now() + Duration::from_secs(2);
        let create = Some((None, None));
        let wait = FollowerStep::Wait { at };
        let acquire = FollowerStep::Acquire {
            etag: None,
            prev: None,
        };
        // After a wait: read, unless it may write at once (and need not read first).
        assert_eq!(
            follower_step(Round::Woke, None, false, at),
            FollowerStep::Read
        );
        assert_eq!(
            follower_step(Round::Woke, None, true, at),
            FollowerStep::Read
        );
        assert_eq!(
            follower_step(Round::Woke, create.clone(), false, at),
            acquire
        );
        assert_eq!(
            follower_step(Round::Woke, create.clone(), true, at),
            FollowerStep::Read
        );
        // After an answered read: write when allowed (no second read), else wait.
        assert_eq!(
            follower_step(Round::Read, create.clone(), true, at),
            acquire
        );
        assert_eq!(follower_step(Round::Read, None, false, at), wait);
        // After an attempt or a failed read: always a wait, never a second
        // write straight away (rule 12).
        assert_eq!(follower_step(Round::Attempted, create, false, at), wait);
        assert_eq!(follower_step(Round::Attempted, None, true, at), wait);
    }
}
