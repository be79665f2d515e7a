//! The JSON view of the election state, shared by `GET /leader` and the
//! status file, so both always have the same schema.
//!
//! Schema (stable; fields are only ever added):
//! `election`, `identity`, `role` (`starting|follower|leader|stopped`),
//! `is_leader`, `leader` (null when none is known), `leader_address`, `term`,
//! `transitions`, `acquired_at`, `renewed_at` (the record's wall-clock
//! fields), `view_valid_for_seconds` (leader: until its renew deadline;
//! follower: until the observed lease could expire; null when unknown),
//! `valid_until` (the same moment on this machine's wall clock, RFC 3339:
//! a status file whose `valid_until` has passed was left by a daemon that
//! died or froze), `ready`, `problem`, `candidate` (competes for the lease
//! now: false while stopping or in a step-down cool-off), `watching` (a far
//! follower: the named successor it watches over HTTP instead of reading
//! the lease at the renewal rate; left out otherwise), `incarnation` (this
//! process's random id, new at every start), `leader_incarnation` (the
//! leader's, from its record; null when unknown). `leader_address` and
//! `leader_incarnation` are null whenever `leader` is. `health` (with a
//! health check, or an `on_acquired` hook under `on_acquired_failure:
//! release`): `verdict` (`unknown|healthy|unhealthy`: the check's, and
//! unhealthy while `work_failing` says `on_acquired` fails), `last` (the
//! check's last result: `exit 0`, `HTTP 503`, `timed out after 2s`),
//! `checks`, `transitions` and `history` (the last changes of the verdict:
//! `at`, `verdict`, `detail`), `work_failing`. A leader checks a
//! candidate's `health.verdict` before naming it as a successor.

use serde::Serialize;
use tokio::time::Instant;

use crate::lease::election::{Role, State};

/// `GET /leader` and the status file's content.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LeaderView {
    pub election: String,
    pub identity: String,
    pub incarnation: String,
    pub role: Role,
    pub is_leader: bool,
    pub leader: Option<String>,
    pub leader_address: Option<String>,
    pub leader_incarnation: Option<String>,
    pub term: u64,
    pub transitions: u64,
    pub acquired_at: Option<String>,
    pub renewed_at: Option<String>,
    pub view_valid_for_seconds: Option<f64>,
    pub valid_until: Option<String>,
    pub ready: bool,
    pub problem: Option<String>,
    pub candidate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watching: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::Report>,
}

impl LeaderView {
    pub fn new(s: &State, now: Instant) -> LeaderView {
        let is_leader = s.is_leader(now);
        // A leader past its deadline is not leader, whatever the role says.
        let role = if s.role == Role::Leader && !is_leader {
            Role::Follower
        } else {
            s.role
        };
        let leader = if s.role == Role::Leader && !is_leader {
            None
        } else {
            s.leader.clone()
        };
        LeaderView {
            election: s.election.clone(),
            identity: s.identity.clone(),
            incarnation: s.incarnation.clone(),
            role,
            is_leader,
            leader_address: leader.as_ref().and(s.leader_address.clone()),
            leader_incarnation: leader.as_ref().and(s.leader_incarnation.clone()),
            leader,
            term: s.term,
            transitions: s.transitions,
            acquired_at: s.acquired_at.clone(),
            renewed_at: s.renewed_at.clone(),
            view_valid_for_seconds: s
                .valid_until
                .map(|d| d.saturating_duration_since(now).as_secs_f64()),
            valid_until: s.valid_until.map(|d| {
                let at = std::time::SystemTime::now() + d.saturating_duration_since(now);
                humantime::format_rfc3339_millis(at).to_string()
            }),
            ready: s.ready,
            problem: s.problem.clone(),
            candidate: s.candidate,
            watching: s.watch.as_ref().map(|w| w.identity.clone()),
            health: s.health.clone(),
        }
    }
}
