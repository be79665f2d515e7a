//! Health: leadership that follows the health of the service it guards.
//!
//! A copy runs its own check (`health:` in the config; [`check`]) and
//! counts the results into a verdict ([`verdict`]). The verdict is policy
//! on top of the lease: it only ever decides *who hands over to whom*.
//!
//! - An unhealthy (or not yet checked) copy is not named as a successor:
//!   the leader's successor check asks each candidate's `GET /leader`,
//!   which carries the verdict.
//! - An unhealthy or unchecked follower takes another's lease only after
//!   every rank delay plus one retry period: a live, healthy successor
//!   goes first, and a leader crash during a shared outage still ends with
//!   a leader.
//! - An unhealthy leader past its hold-down hands over by a step-down (a
//!   release and a wake-up) when it has a checked successor to name, or
//!   always under `when_none_healthy: release`.
//!
//! Invariant: nothing here lets a copy write sooner than the lease allows.
//! Health adds delays to writes and asks for releases; rule 2 is
//! untouched (docs/design.md).

pub mod check;
pub mod verdict;

pub use check::Report;
pub use verdict::Verdict;
