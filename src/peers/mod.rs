//! Talking to the other copies over their HTTP endpoints: the candidate
//! registry and wake-ups for a fast hand-over, far followers watching a
//! named successor, and the client the one-shot commands use to reach the
//! local daemon.
//!
//! Nothing here is needed for safety: a peer can only make a copy read the
//! lease sooner (or, for a far follower, later), never write it sooner.

pub mod client;
pub mod registry;
pub mod twins;
pub mod watch;
