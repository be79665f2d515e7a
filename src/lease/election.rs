//! The election state machine. One task owns the lease; everything else
//! learns about it from the [`State`] published on a `watch` channel.
//!
//! # Shape
//! The decisions are pure: `election/step.rs` takes what the task knows
//! (what `may_acquire`, `next_wake` and the renew deadline say, all
//! functions of the state and the current instant) and returns the next
//! action and its deadline: read, acquire or wait for a follower; renew,
//! wait or expire for a leader. This file is the shell that performs the
//! action, the only place requests are sent and sleeps are raced against
//! wake-ups, control and shutdown, and feeds the outcome back. Read
//! planning (`election/plan.rs`), wake-up pacing (`election/pacing.rs`),
//! throttling backoff (`election/throttle.rs`) and far followers
//! (`election/far.rs`) are pure types of their own.
//!
//! # The rules this module keeps
//! Numbered as in docs/design.md ("The protocol"), which gives the safety
//! argument; rules 8 (the probe), 9 (leader-only work) and 14 (logging)
//! are kept elsewhere.
//!
//! 1. Every write of the lease key is conditional: `If-None-Match: *` to
//!    create it, `If-Match: <etag>` to renew, take over and release.
//! 2. A follower records, on its own monotonic clock, when it first saw the
//!    current version (ETag) of the record. It writes only when that version
//!    has stayed the same for `max(own lease_duration, record's lease_duration)`,
//!    when the record says it was released, or when the record was written by
//!    this very process (then nobody else can hold it). A key found absent
//!    is created at once only when no floor exists (no election ever ran
//!    here); otherwise the copy watches the key absent for a full lease,
//!    then needs a read sent after that lease that still finds it absent,
//!    and writes a full lease after that read (an absence can hide a record
//!    created, renewed and deleted between two reads; docs/design.md).
//! 3. A leader's validity runs from the moment it *sent* its last successful
//!    write, for `renew_deadline` (< `lease_duration`), also when the write
//!    was found landed by a read-back. When that deadline passes it stops
//!    being leader, whether or not S3 answers: the deadline timer is raced
//!    against every request.
//! 4. A refused condition (412, or 404 on `If-Match`) on renew means the
//!    lease is gone: step down at once.
//! 5. Ambiguous outcomes (timeout, 5xx, 409) are settled by reading the
//!    record back and comparing the write's nonce (`read_back`,
//!    one path for acquisitions and renewals).
//! 6. On shutdown a leader first publishes that it is no longer leader, then
//!    releases the lease with a conditional write.
//! 7. After losing, a copy follows and competes again; it never gives up.
//! 10. A step-down is a release followed by a cool-off (`step_down_cooloff`,
//!     or longer for failing work: [`crate::work::backoff`]); a request
//!     about an earlier term is dropped.
//! 11. `term` grows on every acquisition; it is the fencing token. Before a
//!     copy writes a record with term `n` it reserves `n` on the term floor
//!     ([`crate::lease::floor`]), so terms never repeat or go back, even
//!     when the lease object is deleted or replaced.
//! 12. Retries are paced (`election/throttle.rs`): after a write attempt that did not
//!     take the lease (any error, or a refused condition), the next attempt
//!     waits at least one jittered `retry_period`; while the store throttles
//!     (503 SlowDown, 429), attempts and polls back off exponentially, up
//!     to half a lease apart. Waiting longer never breaks rule 2: it only
//!     delays a write.
//! 13. ETags are compared in one normalized form (the store does it).
//! 15. A record that is not ours (corrupt, foreign, newer schema, too large)
//!     is reported and never written over.
//! 16. Hints only ever make a copy *read* sooner (or, for a far follower,
//!     later), never write sooner: a wake-up (`POST /wake`) causes at most
//!     one extra read, rate-limited (`election/pacing.rs`); the `successors` list in a
//!     record only *delays* the copies it does not put first (`election/far.rs`);
//!     phase-aligned polling only moves reads in time (`election/plan.rs`). None of
//!     them changes rule 2.
//!
//! # The published state, and what feeds back into the election
//! The election publishes one [`State`] on a `watch` channel, built in one
//! place (`snapshot`); everything else subscribes. Data flows
//! one way, from the election to the surfaces and the work, except for
//! these channels back into it, each of which can only delay a write,
//! make a read sooner, or end a leadership:
//!
//! ```text
//!                     +--------------------------------------------+
//!  store  <--------> |                 Election                   | -- State (watch) --> surfaces, work,
//!  (S3, memory, sim)  |                                            |                      registry, peers::watch
//!                     +--------------------------------------------+ -- Event (broadcast) --> metrics,
//!                        ^          ^            ^          ^     ^                      registry, twins
//!     successors (watch) |          |            |          |     | wake (Notify)
//!     from the registry  |          |            |          |     |   POST /wake, registry
//!                        |  watched successor    |   control (mpsc): StepDown
//!                        |  (watch) from         |   from HTTP, SIGUSR1, hooks,
//!                        |  peers::watch         |   the supervisor (with a cool-off)
//!                        |                 release barriers (watch<bool>)
//!                        |                 from the supervisor and hooks
//! ```
//!
//! # Timing of follower reads
//! A follower keeps a window in which the holder's next renewal should
//! become visible (the holder renews every `retry_period`). It reads in the
//! middle of a wide window (bisection), then just before the end of a narrow
//! one, creeping a little earlier each period until one read comes too
//! early; that read is repeated one `guard` later. Two early reads in a row
//! (holder late or gone) fall back to plain polling. So the last renewal
//! before a crash is seen within about `guard` of being written, and the
//! takeover (scheduled at exactly `first_seen + lease`) comes within about
//! `guard` of the earliest safe moment, at the cost of about one extra read
//! every three periods (measured on the wire, BENCHMARKS.md).

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use std::sync::Arc;

use tokio::sync::{broadcast, Notify};

use rand::distr::{Distribution, StandardUniform};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::health::{Report as HealthReport, Verdict};
use crate::lease::clock::Clock;
use crate::lease::floor::{self, Floor};
use crate::lease::record::{
    nonce_from, wall_now, LeaseRecord, RecordError, Successor, SCHEMA, VERSION,
};
use crate::lease::store::{LeaseStore, Object, StoreError};
use crate::peers::twins::RecordWatch;

mod far;
mod outage;
mod pacing;
mod plan;
mod step;
mod throttle;

use pacing::WakePacer;
use plan::ReadPlan;
use step::{FollowerStep, LeaderStep, Round};
use throttle::{Kind, Throttle};

/// Settings of one election, resolved from the config.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    pub identity: String,
    pub election: String,
    pub key: String,
    /// The term floor object (see [`floor_key`](crate::lease::floor::floor_key)).
    pub floor_key: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    pub advertise_address: Option<String>,
    /// Spread follower polls over `[retry, 1.2 × retry)`. Off in unit tests.
    pub jitter: bool,
    /// After a step-down, stay out of the race this long.
    pub step_down_cooloff: Duration,
    /// How long a release waits for leader-only work (the supervised child)
    /// to stop; if it does not, the lease is left to expire instead.
    pub release_wait: Duration,
    /// How much later than the first-named successor the n-th one may take
    /// an expired or released lease (n × this). See [`rank_delay_for`].
    pub rank_delay: Duration,
    /// Far followers (see "Far followers" in the module docs) read the lease
    /// this often instead of every `retry_period`; `None`: every follower
    /// reads at the renewal rate.
    pub far_poll: Option<Duration>,
    /// This process's incarnation ([`new_incarnation`](crate::lease::record::new_incarnation)),
    /// written in every record it makes.
    pub incarnation: String,
    /// What an unhealthy leader does ([`crate::health`]); used only with a
    /// health check linked ([`Links::health`]).
    pub health: HealthPolicy,
}

/// How leadership follows health (`health:` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// A leadership this young is not handed away for health.
    pub hold_down: Duration,
    /// Hand over at once, hold-down or not.
    pub fail_fast: bool,
    /// Release when unhealthy even with no healthy successor to name.
    pub release_when_none: bool,
    /// How long after turning unhealthy a successor check must come to
    /// count (the check's interval): the other copies' checks, a phase
    /// apart, have seen a shared outage by then.
    pub grace: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            hold_down: Duration::from_secs(10),
            fail_fast: false,
            release_when_none: false,
            grace: Duration::ZERO,
        }
    }
}

pub use pacing::WAKE_BURST;

/// Most successors named in a record; copies not named rank after them.
pub const MAX_SUCCESSORS: usize = 8;

/// The default spacing between successors: a tenth of the retry period,
/// between 20 ms and 250 ms. Long enough for the first one's write to land
/// before the next one tries (no contention at the store), short enough to
/// add little when the first one is gone.
pub fn rank_delay_for(retry_period: Duration) -> Duration {
    (retry_period / 10).clamp(Duration::from_millis(20), Duration::from_millis(250))
}

/// What the election is built with besides the store and its settings:
/// inputs from the rest of the daemon, each optional.
#[derive(Debug, Default)]
pub struct Links {
    /// Candidates to name as successors in written records, best first
    /// (kept current by the candidate registry).
    pub successors: Option<watch::Receiver<Vec<Successor>>>,
    /// Each reads `true` while no leader-only work of its kind runs (the
    /// supervised program; hooks started while leading). A release waits
    /// for all of them, for at most `release_wait` in all; if the work
    /// does not stop in time, the lease is left to expire instead.
    pub release_barriers: Vec<watch::Receiver<bool>>,
    /// The successor (address) a far follower watches, while that
    /// successor answers and agrees with what this copy last read (kept by
    /// `peers::watch`). A far follower reads slowly only while this names
    /// the successor it publishes in [`State::watch`].
    pub watched: Option<watch::Receiver<Option<Successor>>>,
    /// The clock the election reads and sleeps on: tokio's unless the
    /// simulation gives each copy one of its own rate.
    pub clock: Clock,
    /// Seed of the election's random choices (poll jitter, write nonces);
    /// `None`: seeded from the OS. The simulation seeds every copy.
    pub seed: Option<u64>,
    /// This copy's health check ([`crate::health`]); `None`: no check, the
    /// copy counts as healthy.
    pub health: Option<watch::Receiver<HealthReport>>,
}

/// Facts the election reports as they happen, besides its [`State`]: for
/// metrics and the candidate registry. Lossy (a broadcast channel): nothing
/// that needs them for safety listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A renewal was written; `latency` is the time its write took.
    Renewed { term: u64, latency: Duration },
    /// A released record was written: the named successors (and anyone
    /// else) may take the lease now. The registry wakes them.
    Released { term: u64, successors: Vec<String> },
    /// The lease shows another live process with this copy's identity
    /// (its `incarnation`, reachable at `address` if it said so); see
    /// [`crate::peers::twins`].
    Twin {
        incarnation: String,
        address: Option<String>,
    },
}

/// Events buffered per subscriber before the oldest are dropped.
const EVENT_BUFFER: usize = 64;

/// Requests to the election task from other parts of the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Give up leadership (if held), then sit out `step_down_cooloff`.
    /// With a `term`, only the leadership of that term: a request that was
    /// about an earlier term (a failed hook, an exited program) is stale by
    /// the time a later term leads, and is dropped.
    /// `cooloff`: how long to sit out; `None` is `step_down_cooloff` (a
    /// failing hook or program asks for longer: [`crate::work::backoff`]).
    /// `only_to_healthy`: hand over only to a healthy successor (the
    /// registry's last check named one); with none, keep the lease. A
    /// failing `on_acquired` asks this way: with nobody healthy, the leader
    /// keeps the lease and runs it again after its back-off, instead of
    /// bouncing the lease around the fleet.
    StepDown {
        reason: String,
        term: Option<u64>,
        cooloff: Option<Duration>,
        only_to_healthy: bool,
    },
}

/// This copy's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Has not yet read the lease.
    Starting,
    Follower,
    Leader,
    /// The election task has ended (shutdown).
    Stopped,
}

/// What this copy knows about the election; published on every change.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub role: Role,
    pub identity: String,
    /// This process's incarnation.
    pub incarnation: String,
    pub election: String,
    /// Holder of the lease as last seen; `None` when nobody holds it or the
    /// record cannot be read.
    pub leader: Option<String>,
    pub leader_address: Option<String>,
    /// The leader's incarnation, when its record names one.
    pub leader_incarnation: Option<String>,
    /// Term of the record last seen or written.
    pub term: u64,
    pub transitions: u64,
    /// Wall-clock fields of the record, for humans.
    pub acquired_at: Option<String>,
    pub renewed_at: Option<String>,
    /// Leader: the moment this copy stops being leader unless it renews.
    /// Follower: the earliest moment it could take over (if nobody renews).
    pub valid_until: Option<Instant>,
    /// The last time a request to the store completed, with any outcome
    /// (errors and timeouts included): the loop is alive. `/healthz` and the
    /// systemd watchdog go quiet when this stops moving (a wedged loop).
    pub last_progress: Option<Instant>,
    /// What is currently wrong, if anything (unreadable record, S3 errors).
    pub problem: Option<String>,
    /// The lease has been read (or written) at least once.
    pub ready: bool,
    /// This copy competes for the lease right now: false while it stops,
    /// releases, or sits out a step-down cool-off. A leader checks this
    /// (through `GET /leader`) before naming a copy as its successor.
    pub candidate: bool,
    /// A far follower: the named successor it watches (with its address)
    /// instead of reading the lease at the renewal rate.
    pub watch: Option<Successor>,
    /// This copy's health check, when one is configured.
    pub health: Option<HealthReport>,
    /// Why this copy's leadership last began or ended, for hooks and the
    /// program (`S3_ELECTOR_REASON`). Gained: `created` (the key was
    /// absent), `released` (a released record), `expired` (a record left a
    /// full lease unchanged), `retaken` (its own record). Lost: `deadline`
    /// (no renewal in time), `taken` (the lease changed under it),
    /// `step_down`, `unhealthy`, `shutdown`.
    pub reason: Option<&'static str>,
}

impl State {
    fn new(cfg: &ElectionConfig) -> Self {
        State {
            role: Role::Starting,
            identity: cfg.identity.clone(),
            incarnation: cfg.incarnation.clone(),
            election: cfg.election.clone(),
            leader: None,
            leader_address: None,
            leader_incarnation: None,
            term: 0,
            transitions: 0,
            acquired_at: None,
            renewed_at: None,
            valid_until: None,
            last_progress: None,
            problem: None,
            ready: false,
            candidate: true,
            watch: None,
            health: None,
            reason: None,
        }
    }

    /// True only while this copy leads and its deadline has not passed.
    pub fn is_leader(&self, now: Instant) -> bool {
        self.role == Role::Leader && self.valid_until.is_some_and(|d| now < d)
    }

    /// A one-line summary, e.g. for logs and systemd's `STATUS=`.
    pub fn summary(&self) -> String {
        match (self.role, &self.leader) {
            (Role::Leader, _) => format!("leader, term {}", self.term),
            (Role::Starting, _) => "starting".into(),
            (Role::Stopped, _) => "stopped".into(),
            (Role::Follower, Some(l)) => format!("following {l}, term {}", self.term),
            (Role::Follower, None) => "follower, no leader".into(),
        }
    }
}

/// What the follower saw in the store.
#[derive(Debug, Clone)]
// One at a time, short-lived: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Seen {
    Absent,
    Record(LeaseRecord),
    Unusable(RecordError),
}

#[derive(Debug, Clone)]
struct Observation {
    /// ETag of the version seen; empty when the key is absent.
    etag: String,
    seen: Seen,
    /// When this version was first seen (monotonic, after the read returned).
    first_seen: Instant,
    /// An absent key that needs a lease of watching: the send time of the
    /// first read, sent a full lease after `first_seen`, that still found
    /// it absent. The lease of waiting counts from here (rule 2).
    confirmed: Option<Instant>,
    /// A live record was seen before the key went missing.
    absent_after_record: bool,
    /// `holder_silent` was logged for this version (once per version).
    silence_logged: bool,
}

/// What the published [`State`] is made of besides the observation and
/// the held lease; the task sets these as it goes, and only
/// [`Election::snapshot`] reads them.
#[derive(Debug, Clone, Default)]
struct Public {
    /// A read of the lease got an answer, or failed: no longer starting.
    read_any: bool,
    /// The lease has been read (or written) at least once.
    ready: bool,
    /// The last time a request to the store completed, with any outcome.
    last_progress: Option<Instant>,
    /// Why the last read failed; cleared by the next answered read.
    read_problem: Option<String>,
    /// A release is under way: not a candidate.
    releasing: bool,
    /// The election task has ended.
    stopped: bool,
    /// Why this copy's leadership last began or ended (`State::reason`).
    reason: Option<&'static str>,
}

/// The lease as held by a leader.
#[derive(Debug, Clone)]
struct Held {
    record: LeaseRecord,
    etag: String,
    /// Stop being leader at this moment unless a renewal succeeds.
    deadline: Instant,
    /// A renewal whose outcome is not known yet: (attempted record, sent at).
    pending: Option<(LeaseRecord, Instant)>,
    /// When this leadership began (the health hold-down counts from here).
    since: Instant,
    /// The health check said healthy at some moment of this leadership: a
    /// turn to unhealthy is a change `fail_fast` acts on at once.
    healthy_seen: bool,
    /// Since when the check says unhealthy, during this leadership.
    unhealthy_since: Option<Instant>,
    /// When the last round of successor checks was published.
    successors_at: Option<Instant>,
    /// A step-down to a healthy copy only, waiting for a round of successor
    /// checks made after this copy turned unhealthy (an older list may
    /// name copies that are down or failing too).
    handover: Option<Handover>,
}

/// A step-down asked `only_to_healthy`, decided at the next fresh round.
#[derive(Debug, Clone)]
struct Handover {
    reason: String,
    cooloff: Option<Duration>,
}

impl Held {
    /// Track this leadership's health: whether it was ever healthy, and
    /// since when it is unhealthy.
    fn note_verdict(&mut self, v: Option<Verdict>, now: Instant) {
        match v {
            Some(Verdict::Healthy) => {
                self.healthy_seen = true;
                self.unhealthy_since = None;
            }
            Some(Verdict::Unhealthy) => {
                self.unhealthy_since.get_or_insert(now);
            }
            _ => self.unhealthy_since = None,
        }
    }
}

/// What a read-back after a write of unknown outcome found.
enum ReadBack {
    /// The write landed: the object's ETag.
    Landed(String),
    /// Something else is there (`None`: nothing is).
    Other(Option<Object>),
    /// The read failed.
    Failed(StoreError),
}

/// How a leadership ended.
enum LeadEnd {
    Lost,
    Shutdown,
}

/// How many of this process's own write nonces to remember.
const OWN_NONCES: usize = 32;

/// The election task. Build with [`Election::new`], subscribe, then [`Election::run`].
pub struct Election<S: LeaseStore> {
    store: S,
    cfg: ElectionConfig,
    tx: watch::Sender<State>,
    observed: Option<Observation>,
    own_nonces: VecDeque<String>,
    /// Highest term and transition count seen, so a re-created record
    /// (after the key was deleted) continues the sequence.
    max_term: u64,
    max_transitions: Option<u64>,
    control: mpsc::Receiver<Control>,
    control_tx: mpsc::Sender<Control>,
    /// `true` while no leader-only work runs; a release waits for it.
    release_barriers: Vec<watch::Receiver<bool>>,
    cooloff_until: Option<Instant>,
    /// The store's outage, if requests are going unanswered.
    outage: outage::Outage,
    /// Candidates to name as successors in written records.
    successors: Option<watch::Receiver<Vec<Successor>>>,
    /// The successor confirmed by `peers::watch` (see [`Links::watched`]).
    watched: Option<watch::Receiver<Option<Successor>>>,
    /// Renewals and releases, for whoever listens.
    events: broadcast::Sender<Event>,
    /// Records naming this identity with another incarnation.
    twin: RecordWatch,
    /// The lease as this copy holds it (record, renew deadline), while it
    /// leads; read by [`Election::snapshot`].
    leading: Option<(LeaseRecord, Instant)>,
    /// The rest of what the published state is made of.
    public: Public,
    /// Wake-ups from `POST /wake` (coalesced by `Notify`).
    wake: Arc<Notify>,
    /// The wake-up rate limit and the wake-up read still owed.
    pacer: WakePacer,
    /// When to read (phase-aligned polling, see the module docs).
    plan: ReadPlan,
    /// After a failed write attempt: no new attempt before this (rule 12).
    write_not_before: Option<Instant>,
    /// Throttled answers in a row, to reads and to writes (a store may
    /// throttle only one kind); the pause doubles with each (rule 12).
    throttle: Throttle,
    /// What this copy knows of the term floor (rule 11).
    floor: Floor,
    /// Cancelled when the daemon stops: no acquisition starts after that.
    stopping: CancellationToken,
    /// Every reading of time and every sleep (see [`crate::lease::clock`]).
    clock: Clock,
    /// Every random choice: poll jitter and write nonces.
    rng: std::sync::Mutex<StdRng>,
    /// This copy's health check ([`Links::health`]).
    health: Option<watch::Receiver<HealthReport>>,
}

impl<S: LeaseStore> Election<S> {
    pub fn new(store: S, cfg: ElectionConfig, links: Links) -> Self {
        let cfg_retry = cfg.retry_period;
        let (tx, _) = watch::channel(State::new(&cfg));
        let (control_tx, control) = mpsc::channel(16);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Election {
            store,
            cfg,
            tx,
            observed: None,
            own_nonces: VecDeque::new(),
            max_term: 0,
            max_transitions: None,
            control,
            control_tx,
            release_barriers: links.release_barriers,
            cooloff_until: None,
            outage: outage::Outage::default(),
            successors: links.successors,
            watched: links.watched,
            health: links.health,
            events,
            twin: RecordWatch::default(),
            leading: None,
            public: Public::default(),
            wake: Arc::new(Notify::new()),
            pacer: WakePacer::new(cfg_retry, links.clock.now()),
            plan: ReadPlan::default(),
            write_not_before: None,
            throttle: Throttle::default(),
            floor: Floor::Unknown,
            stopping: CancellationToken::new(),
            clock: links.clock,
            rng: std::sync::Mutex::new(match links.seed {
                Some(s) => StdRng::seed_from_u64(s),
                None => StdRng::from_os_rng(),
            }),
        }
    }

    /// A value from this copy's random stream.
    fn random<T>(&self) -> T
    where
        StandardUniform: Distribution<T>,
    {
        self.rng.lock().unwrap_or_else(|p| p.into_inner()).random()
    }

    /// A fresh write nonce from this copy's random stream.
    fn nonce(&self) -> String {
        nonce_from(&mut *self.rng.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A handle that wakes this copy: it reads the lease once, soon (rate
    /// limited to one read per [`Election::wake_interval`]).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Sustained rate of wake-up reads: one per quarter retry period,
    /// between 50 ms and 1 s.
    pub fn wake_interval(&self) -> Duration {
        self.pacer.interval()
    }

    fn current_successors(&self) -> Vec<Successor> {
        let Some(rx) = &self.successors else {
            return Vec::new();
        };
        rx.borrow()
            .iter()
            .filter(|c| c.identity != self.cfg.identity)
            .take(MAX_SUCCESSORS)
            .cloned()
            .collect()
    }

    /// This copy's place in a record's successor list (see [`far::rank`]).
    fn rank(&self, r: &LeaseRecord) -> u32 {
        far::rank(r, &self.cfg.identity)
    }

    /// The named successor this copy should watch, when it is a far
    /// follower of the observed record ([`far::target`]); never of a record
    /// this process wrote.
    fn watch_target(&self) -> Option<Successor> {
        self.cfg.far_poll?;
        let obs = self.observed.as_ref()?;
        let Seen::Record(r) = &obs.seen else {
            return None;
        };
        if self.wrote(&r.nonce) {
            return None;
        }
        far::target(r, &self.cfg.identity)
    }

    /// Is this copy a far follower right now: it has a successor to watch,
    /// and that successor answered and agreed at the last check?
    fn far(&self) -> bool {
        let Some(target) = self.watch_target() else {
            return false;
        };
        self.watched
            .as_ref()
            .is_some_and(|w| w.borrow().as_ref() == Some(&target))
    }

    /// The guard after an early read ([`plan::guard_for`]).
    fn guard(&self) -> Duration {
        plan::guard_for(self.cfg.retry_period)
    }

    /// A sender for [`Control`]s (step-down requests).
    pub fn control_sender(&self) -> mpsc::Sender<Control> {
        self.control_tx.clone()
    }

    /// A receiver of the published state.
    pub fn subscribe(&self) -> watch::Receiver<State> {
        self.tx.subscribe()
    }

    /// A receiver of the [`Event`]s from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Run until `shutdown` is cancelled; a leader releases the lease first.
    pub async fn run(mut self, shutdown: CancellationToken) {
        self.stopping = shutdown.clone();
        info!(
            identity = %self.cfg.identity,
            election = %self.cfg.election,
            key = %self.cfg.key,
            lease_duration = ?self.cfg.lease_duration,
            renew_deadline = ?self.cfg.renew_deadline,
            retry_period = ?self.cfg.retry_period,
            "election starting"
        );
        // The shell: decide the next step (step.rs, pure), perform it, and
        // feed the outcome back as the next round.
        let mut round = Round::Woke;
        while !shutdown.is_cancelled() {
            let now = self.clock.now();
            let step = step::follower_step(
                round,
                self.may_acquire(now),
                self.recheck_before_writing(),
                self.next_wake(),
            );
            round = match step {
                FollowerStep::Read => {
                    if self.read_lease().await {
                        Round::Read
                    } else {
                        Round::Attempted
                    }
                }
                FollowerStep::Acquire { etag, prev } => {
                    match self.try_acquire(etag, prev).await {
                        Some(held) => match self.lead(held, &shutdown).await {
                            LeadEnd::Shutdown => break,
                            // Re-read right away: learn the new holder quickly.
                            LeadEnd::Lost => Round::Woke,
                        },
                        None => Round::Attempted,
                    }
                }
                FollowerStep::Wait { at } => {
                    self.wait_for_next_read(at, &shutdown).await;
                    Round::Woke
                }
            };
        }
        self.public.stopped = true;
        self.publish();
        info!(event = "stopped", "election stopped");
    }

    /// Sleep until the next follower step: the next planned read, the
    /// moment the observed lease may be taken, a wake-up, or shutdown.
    async fn wait_for_next_read(&mut self, mut at: Instant, shutdown: &CancellationToken) {
        loop {
            if let Some(w) = self.pacer.due() {
                at = at.min(w);
            }
            tokio::select! {
                // Shutdown first: a stopping follower has nothing to finish.
                biased;
                _ = shutdown.cancelled() => return,
                Some(cmd) = self.control.recv() => {
                    let Control::StepDown { reason, .. } = cmd;
                    info!(reason, "step-down requested, but this copy does not lead; ignoring");
                }
                // A new verdict can move the takeover time: wait for the
                // new one (no read of its own: the plan's pacing holds).
                Ok(()) = link_changed(&mut self.health) => {
                    self.publish();
                    at = self.next_wake();
                }
                _ = self.wake.notified() => {
                    let due = self.pacer.received(self.clock.now());
                    debug!(in_ms = due.saturating_duration_since(self.clock.now()).as_millis() as u64,
                        "wake-up received; reading the lease");
                }
                _ = self.clock.sleep_until(at) => {
                    // The read about to happen serves any owed wake-up; only
                    // a read that comes *because* of one uses a token.
                    self.pacer.serve(self.clock.now());
                    return;
                }
            }
        }
    }

    /// When a follower should next act: the next planned read, or the
    /// moment the observed lease may be taken, whichever is first.
    fn next_wake(&self) -> Instant {
        let now = self.clock.now();
        let last = self.plan.last_read.unwrap_or(now);
        // A failed read tells nothing: a far follower retries at the plain
        // pause, not a whole far pause later.
        let poll = if self.far() && !self.plan.last_failed() {
            last + self.far_pause()
        } else {
            match self.plan.planned(self.guard()) {
                Some(t) => t,
                None => last + self.pause(Kind::Read),
            }
        };
        // Never read more often than every 5 ms, whatever the plan says.
        let poll = poll.max(last + Duration::from_millis(5)).max(now);
        if let Some(c) = self.cooloff_until.filter(|c| *c > now) {
            return poll.min(c);
        }
        match self.write_at() {
            Some(t) if t > now => poll.min(t),
            _ => poll,
        }
    }

    /// The plain wait between two requests of a kind: `retry_period`,
    /// doubled for each throttled answer in a row to that kind (at most half
    /// a lease, so that a throttled copy still shows progress within a lease
    /// to /healthz and the watchdog), with up to 20 % jitter (rule 12).
    fn pause(&self, kind: Kind) -> Duration {
        let mut d = self
            .throttle
            .pause(kind, self.cfg.retry_period, self.cfg.lease_duration);
        if self.cfg.jitter {
            d = d.mul_f64(1.0 + self.random::<f64>() * 0.2);
        }
        d
    }

    /// A far follower's wait between reads: `far_poll`, never shorter than
    /// the plain pause. With `far_poll` = `lease_duration` its reads in fact
    /// come at its takeover times (first sight + lease + rank delays), each
    /// the re-read before writing that finds the next version: a lease and
    /// a little apart, spread by when each copy first read.
    fn far_pause(&self) -> Duration {
        self.cfg
            .far_poll
            .unwrap_or(self.cfg.retry_period)
            .max(self.pause(Kind::Read))
    }

    /// Count a store answer to a kind of request for the throttling backoff.
    fn note_answer(&mut self, kind: Kind, e: Option<&StoreError>) {
        self.throttle.note(kind, e);
        self.note_outage(e);
    }

    /// Log a store outage as an operator reads it ([`outage`]): one WARN
    /// when requests stop being answered (then once a minute), one INFO
    /// when the store answers again.
    fn note_outage(&mut self, e: Option<&StoreError>) {
        let now = self.clock.now();
        match e {
            Some(e @ (StoreError::Transient(_) | StoreError::Throttled(_))) => {
                if self.outage.failed(now) {
                    warn!(event = "store_unreachable", key = %self.cfg.key, cause = %outage::short(&e.to_string()),
                        "the store does not answer; retrying (said again at most once a minute while it lasts)");
                }
            }
            _ => {
                if let Some((gone, failed)) = self.outage.answered(now) {
                    let gone = Duration::from_millis(gone.as_millis() as u64);
                    info!(
                        event = "store_reachable",
                        gone_ms = gone.as_millis() as u64,
                        failed_requests = failed,
                        "the store answers again after {}",
                        humantime::format_duration(gone)
                    );
                }
            }
        }
    }

    /// When this copy may next write: the rules' earliest moment, but not
    /// before the pause after a failed attempt.
    fn write_at(&self) -> Option<Instant> {
        let t = self.acquire_at()?;
        Some(self.write_not_before.map_or(t, |w| t.max(w)))
    }

    /// When the observed lease may be taken over, if it is held by another
    /// (published as the follower's `valid_until`).
    fn takeover_time(&self) -> Option<Instant> {
        let obs = self.observed.as_ref()?;
        match &obs.seen {
            Seen::Record(r) if !r.released => self.acquire_at(),
            Seen::Absent if self.absence_needs_a_lease(obs) => self.acquire_at(),
            _ => None,
        }
    }

    /// This copy's health verdict; `None` when no check is configured.
    fn verdict(&self) -> Option<Verdict> {
        self.health.as_ref().map(|h| h.borrow().verdict)
    }

    /// How much later than its rank allows an unhealthy (or not yet
    /// checked) copy takes another's lease: after every rank delay plus one
    /// retry period, so that any live, healthy successor goes first
    /// ([`crate::health`]). Only ever delays a write.
    fn unhealthy_delay(&self) -> Option<Duration> {
        matches!(self.verdict(), Some(Verdict::Unknown | Verdict::Unhealthy))
            .then(|| self.cfg.rank_delay * MAX_SUCCESSORS as u32 + self.cfg.retry_period)
    }

    /// Should the leader `h` hand the lease over for health at `now`? When
    /// its check says unhealthy; its hold-down (at least one retry period)
    /// has passed, or it turned unhealthy during this leadership under
    /// `fail_fast`; and it has a successor to name, checked (healthy) a
    /// grace after it turned unhealthy (or `release_when_none`). A copy
    /// that took the lease already unhealthy keeps it for the hold-down:
    /// no release storm, whatever the policy.
    fn hand_over_for_health(&self, h: &Held, now: Instant) -> bool {
        let p = &self.cfg.health;
        let hold_down = p.hold_down.max(self.cfg.retry_period);
        // The successors named must have been checked a check interval
        // after this copy turned unhealthy: in a shared outage seen a
        // phase apart, they have turned with it by then.
        let checked = match (h.unhealthy_since, h.successors_at) {
            (Some(u), Some(c)) => c >= u + p.grace,
            _ => false,
        };
        // Releasing with nobody healthy is for a leadership that was
        // healthy: one taken unhealthy (nobody healthy took it first)
        // keeps it, or the lease would rotate for the whole outage.
        let release_anyway = p.release_when_none && h.healthy_seen;
        self.verdict() == Some(Verdict::Unhealthy)
            && ((p.fail_fast && h.healthy_seen) || now >= h.since + hold_down)
            && (release_anyway || (checked && !self.current_successors().is_empty()))
    }

    /// The earliest moment this copy may write, given what it last saw;
    /// `None` when it may not write at all (an unusable record).
    fn acquire_at(&self) -> Option<Instant> {
        let obs = self.observed.as_ref()?;
        let unhealthy = self.unhealthy_delay();
        let delay = |r: &LeaseRecord| {
            unhealthy.unwrap_or(self.cfg.rank_delay * self.rank(r).min(MAX_SUCCESSORS as u32))
        };
        let absent_delay = unhealthy.unwrap_or(Duration::ZERO);
        match &obs.seen {
            // A record it released is given away: an unhealthy copy waits
            // for the others as for anyone's (no retaking in a loop).
            Seen::Record(r) if self.wrote(&r.nonce) && r.released => {
                Some(obs.first_seen + absent_delay)
            }
            Seen::Record(r) if self.wrote(&r.nonce) => Some(obs.first_seen),
            Seen::Record(r) if r.released => Some(obs.first_seen + delay(r)),
            Seen::Record(r) => {
                let mut wait = self.cfg.lease_duration.max(r.lease_duration());
                if defects::half_lease() {
                    wait /= 2;
                }
                Some(obs.first_seen + wait + delay(r))
            }
            // Unconfirmed: the confirming read comes a lease after
            // `first_seen` at the earliest, the write a lease after it.
            Seen::Absent if self.absence_needs_a_lease(obs) => {
                let mut wait = self.cfg.lease_duration;
                if defects::half_lease() {
                    wait /= 2;
                }
                Some(match obs.confirmed {
                    Some(c) => c + wait + absent_delay,
                    None => obs.first_seen + self.cfg.lease_duration * 2 + absent_delay,
                })
            }
            Seen::Absent => Some(obs.first_seen + absent_delay),
            Seen::Unusable(_) => None,
        }
    }

    /// A read sent at `sent` found the key still absent. If that key needs
    /// a lease of watching and the read went out a full lease after the
    /// watch began, the lease of waiting counts from this read (rule 2): a
    /// record whose term was reserved before the watch began may have been
    /// created, renewed and deleted again between two reads (or while every
    /// read failed), and its holder's validity, renewed while it existed,
    /// ends within a renew deadline of this read, not of the watch's start.
    fn confirm_absence(&mut self, sent: Instant) {
        let lease = self.cfg.lease_duration;
        let needs = self
            .observed
            .as_ref()
            .is_some_and(|o| matches!(o.seen, Seen::Absent) && self.absence_needs_a_lease(o));
        if let Some(o) = self.observed.as_mut().filter(|_| needs) {
            if o.confirmed.is_none() && sent >= o.first_seen + lease {
                o.confirmed = Some(sent);
            }
        }
    }

    /// An absent key is created at once only when nothing ever ran here:
    /// no record seen before, and no term floor (rule 2). Otherwise the key
    /// was deleted, perhaps while held: wait a full lease, as for a record.
    fn absence_needs_a_lease(&self, obs: &Observation) -> bool {
        obs.absent_after_record || self.floor != Floor::Absent
    }

    fn wrote(&self, nonce: &str) -> bool {
        self.own_nonces.iter().any(|n| n == nonce)
    }

    fn remember_nonce(&mut self, nonce: &str) {
        if self.own_nonces.len() == OWN_NONCES {
            self.own_nonces.pop_front();
        }
        self.own_nonces.push_back(nonce.to_string());
    }

    /// May this copy write now, given what it last saw? Returns the ETag to
    /// condition on (`None` = create) and the record it replaces.
    fn may_acquire(&self, now: Instant) -> Option<(Option<String>, Option<LeaseRecord>)> {
        if self.cooloff_until.is_some_and(|t| now < t) {
            return None;
        }
        let obs = self.observed.as_ref()?;
        if self.write_at().is_none_or(|t| now < t) {
            return None;
        }
        match &obs.seen {
            Seen::Unusable(_) => None,
            Seen::Absent if obs.confirmed.is_none() && self.absence_needs_a_lease(obs) => None,
            Seen::Absent => Some((None, None)),
            Seen::Record(r) => Some((Some(obs.etag.clone()), Some(r.clone()))),
        }
    }

    /// A request to the store completed (any outcome): the loop is alive.
    fn progress(&mut self) {
        self.public.last_progress = Some(self.clock.now());
        self.publish();
    }

    /// A read sent at `sent` got an answer: it counts for the read plan,
    /// and any read error shown so far is over.
    fn read_answered(&mut self, sent: Instant) {
        self.plan.answered(sent);
        self.public.read_any = true;
        self.public.read_problem = None;
    }

    /// The published state, built in this one place from what the task
    /// knows: the held lease while leading, else the last observation.
    fn snapshot(&self) -> State {
        let now = self.clock.now();
        let p = &self.public;
        let mut s = State::new(&self.cfg);
        s.last_progress = p.last_progress;
        s.ready = p.ready;
        s.term = self.max_term;
        s.transitions = self.max_transitions.unwrap_or(0);
        s.candidate = !p.stopped && !p.releasing && self.cooloff_until.is_none_or(|c| now >= c);
        s.health = self.health.as_ref().map(|h| h.borrow().clone());
        s.reason = p.reason;
        // The holder of a live record, as a record names it.
        let held_by = |s: &mut State, r: &LeaseRecord| {
            s.leader = Some(r.holder.clone());
            s.leader_address = r.holder_address.clone();
            s.leader_incarnation = r.incarnation.clone();
            s.term = r.term;
            s.transitions = r.transitions;
            s.acquired_at = Some(r.acquired_at.clone());
            s.renewed_at = Some(r.renewed_at.clone());
        };
        if let (Some((r, deadline)), false) = (&self.leading, p.stopped) {
            s.role = Role::Leader;
            held_by(&mut s, r);
            s.valid_until = Some(*deadline);
            return s;
        }
        s.role = if p.stopped {
            Role::Stopped
        } else if p.read_any || p.ready {
            Role::Follower
        } else {
            Role::Starting
        };
        let mut record_problem = None;
        match self.observed.as_ref().map(|o| &o.seen) {
            Some(Seen::Record(r)) if !r.released => held_by(&mut s, r),
            Some(Seen::Record(r)) => {
                s.term = r.term;
                s.transitions = r.transitions;
            }
            Some(Seen::Absent) => s.transitions = 0,
            Some(Seen::Unusable(e)) => {
                s.transitions = 0;
                record_problem = Some(format!("lease object s3 key `{}` {e}", self.cfg.key));
            }
            None => {}
        }
        s.problem = p.read_problem.clone().or(record_problem);
        if !p.stopped {
            s.valid_until = self.takeover_time();
            s.watch = self.watch_target();
        }
        s
    }

    /// Publish [`Election::snapshot`] to every subscriber.
    fn publish(&self) {
        self.tx.send_replace(self.snapshot());
    }

    /// A follower's read of the lease: take in what it shows, move the read
    /// plan, keep the floor known. Returns whether the read was answered.
    async fn read_lease(&mut self) -> bool {
        let sent = self.clock.now();
        let (aimed, previous) = self.plan.sending(sent, self.guard());
        let r = self.store.get(&self.cfg.key).await;
        self.note_answer(Kind::Read, r.as_ref().err());
        let obj = match r {
            Ok(obj) => obj,
            Err(e) => {
                // A failed read says nothing of the holder's phase; an
                // aimed read would come at once (rule 12): poll plainly.
                self.plan.failed();
                self.report_read_error(&e);
                return false;
            }
        };
        self.read_answered(sent);
        self.progress();
        let changed = self.observe(obj);
        if !changed {
            self.confirm_absence(sent);
        }
        self.plan_reads(previous, sent, changed, aimed);
        // A floor still unknown is read again at every read of an absent
        // key, not only at the write: the watch starts once the floor is
        // known (simulation seed 4098, where one lost floor read cost two
        // more leases).
        let absent = matches!(self.observed.as_ref().map(|o| &o.seen), Some(Seen::Absent));
        if changed || (absent && self.floor == Floor::Unknown) {
            self.refresh_floor().await;
        }
        true
    }

    /// Keep the term floor known where it matters (rule 11): when the key is
    /// absent (does a floor say an election ran here?), and when a record
    /// shows a term above the known floor (so that a takeover reserves with
    /// one write). One read per change of term; a failed read leaves the
    /// floor unknown, which only makes a copy wait longer.
    async fn refresh_floor(&mut self) {
        let stale = match self.observed.as_ref().map(|o| &o.seen) {
            Some(Seen::Absent) => self.floor == Floor::Unknown,
            Some(Seen::Record(r)) => self.floor.term().is_none_or(|t| t < r.term),
            _ => false,
        };
        if !stale {
            return;
        }
        match floor::read(&self.store, &self.cfg.floor_key).await {
            Ok(f) => self.floor = f,
            Err(e) => {
                self.floor = Floor::Unknown;
                debug!(key = %self.cfg.floor_key, error = %e, "cannot read the term floor yet");
            }
        }
        // The watch of an absent key starts once the floor it is judged
        // against is known: a term reserved between the two reads must fall
        // inside the watch (rule 2).
        if let Some(o) = self
            .observed
            .as_mut()
            .filter(|o| matches!(o.seen, Seen::Absent))
        {
            o.first_seen = self.clock.now();
            o.confirmed = None;
        }
    }

    /// After creating the lease with `term`: is `term` still the highest
    /// reserved? A create is the one write not conditioned on a version, so
    /// a record of a higher term may have landed and been deleted between
    /// our reservation and our create (rule 11). An unreadable floor counts
    /// as "no": the cost is one lease of waiting, after a deletion or at the
    /// very first election only.
    async fn floor_still_ours(&mut self, term: u64) -> bool {
        match floor::read(&self.store, &self.cfg.floor_key).await {
            Ok(f) => {
                let ok = f.term().is_some_and(|t| t <= term);
                self.floor = f;
                ok
            }
            Err(e) => {
                self.floor = Floor::Unknown;
                debug!(key = %self.cfg.floor_key, error = %e, "cannot read the term floor after a create");
                false
            }
        }
    }

    /// A copy that is not the first-named successor reads once more when
    /// its turn comes: a successor before it has most likely taken the lease
    /// already, and a read is cheaper than a refused write.
    fn recheck_before_writing(&self) -> bool {
        let Some(obs) = self.observed.as_ref() else {
            return false;
        };
        match &obs.seen {
            Seen::Record(r) if !self.wrote(&r.nonce) && self.rank(r) > 0 => self
                .acquire_at()
                .is_some_and(|t| self.plan.last_good_read.is_none_or(|l| l < t)),
            _ => false,
        }
    }

    /// Update the read plan after a read sent at `sent` (the read before it
    /// was sent at `previous`). A far follower does not chase the renewals.
    fn plan_reads(&mut self, previous: Option<Instant>, sent: Instant, changed: bool, aimed: bool) {
        let live_other = self.observed.as_ref().is_some_and(
            |o| matches!(&o.seen, Seen::Record(r) if !r.released && !self.wrote(&r.nonce)),
        );
        let chase = live_other && !self.far();
        let period = self.cfg.retry_period;
        self.plan
            .update(previous, sent, changed, aimed, chase, period);
    }

    fn report_read_error(&mut self, e: &StoreError) {
        if e.needs_operator() {
            error!(key = %self.cfg.key, error = %e, "cannot read the lease");
        } else {
            // A store that does not answer is logged once by note_outage.
            debug!(key = %self.cfg.key, error = %e, "cannot read the lease; will retry");
        }
        self.public.read_any = true;
        self.public.read_problem = Some(e.to_string());
        // A failed request still completed: the loop is alive.
        self.progress();
    }

    /// The same held record again: once it has gone unrenewed for more
    /// than two renewal periods, say once (per version) who went silent,
    /// and when this copy will take over unless the holder renews.
    fn note_silence(&mut self, now: Instant) {
        let Some(o) = self.observed.as_ref() else {
            return;
        };
        let Seen::Record(r) = &o.seen else { return };
        let silent = now.saturating_duration_since(o.first_seen);
        if o.silence_logged
            || r.released
            || self.wrote(&r.nonce)
            || silent <= self.cfg.retry_period * 2
        {
            return;
        }
        let ms = |d: Duration| Duration::from_millis(d.as_millis() as u64);
        let takeover_in = self
            .acquire_at()
            .map(|at| ms(at.saturating_duration_since(now)));
        let when = takeover_in.map_or_else(
            || "never (the record is unusable)".to_string(),
            |d| format!("in {}", humantime::format_duration(d)),
        );
        info!(
            event = "holder_silent",
            leader = %r.holder,
            term = r.term,
            silent_ms = silent.as_millis() as u64,
            takeover_in_ms = takeover_in.map(|d| d.as_millis() as u64),
            "{} has not renewed its lease for {}; unless it does, this copy may take over {when} \
             (once the record has stood unchanged for a full lease on this copy's clock, plus its rank delay)",
            r.holder,
            humantime::format_duration(ms(silent)),
        );
        if let Some(o) = self.observed.as_mut() {
            o.silence_logged = true;
        }
    }

    /// Take in a read result: track when this version was first seen and
    /// publish what it says. Returns whether the version is new.
    fn observe(&mut self, obj: Option<Object>) -> bool {
        let now = self.clock.now();
        let (etag, seen) = match obj {
            None => (String::new(), Seen::Absent),
            Some(o) => match o.record() {
                Ok(r) => (o.etag, Seen::Record(r)),
                Err(e) => (o.etag, Seen::Unusable(e)),
            },
        };
        let same = self.observed.as_ref().is_some_and(|o| {
            o.etag == etag && matches!(o.seen, Seen::Absent) == matches!(seen, Seen::Absent)
        });
        if same {
            self.note_silence(now);
            return false;
        }
        // Any record before (held, released or unusable): another copy may
        // have taken it between two reads, then the key was deleted.
        let absent_after_record = match (&seen, &self.observed) {
            (Seen::Absent, Some(prev)) => {
                matches!(prev.seen, Seen::Record(_) | Seen::Unusable(_)) || prev.absent_after_record
            }
            _ => false,
        };
        if let Seen::Record(r) = &seen {
            self.max_term = self.max_term.max(r.term);
            self.max_transitions = Some(self.max_transitions.unwrap_or(0).max(r.transitions));
        }
        match &seen {
            Seen::Absent => {
                if absent_after_record {
                    warn!(key = %self.cfg.key, event = "lease_deleted",
                        "the lease object was deleted while held; watching it absent for two leases before creating it again");
                } else {
                    info!(key = %self.cfg.key, "no lease object yet");
                }
            }
            Seen::Record(r) => {
                let who = if r.released { "released" } else { "held" };
                // A renewal (same holder, term and state) is no news at INFO.
                let renewal = matches!(&self.observed, Some(Observation { seen: Seen::Record(p), .. })
                    if p.holder == r.holder && p.term == r.term && p.released == r.released);
                if renewal {
                    debug!(event = "observed", leader = %r.holder, term = r.term, state = who, "observed a renewal");
                } else {
                    if r.holder == self.cfg.identity && !self.wrote(&r.nonce) && !r.released {
                        warn!(holder = %r.holder, term = r.term,
                            "the lease names this copy's identity but was written by another process \
                             (an earlier run, or two copies share an identity); treating it as someone else's");
                    }
                    info!(event = "observed", leader = %r.holder, term = r.term, state = who, "observed lease");
                }
                let ours = self.wrote(&r.nonce);
                if let Some(inc) = self
                    .twin
                    .saw(r, &self.cfg.identity, &self.cfg.incarnation, ours)
                {
                    let _ = self.events.send(Event::Twin {
                        incarnation: inc,
                        address: r.holder_address.clone(),
                    });
                }
            }
            Seen::Unusable(e) => {
                error!(key = %self.cfg.key, etag = %etag, error = %e, event = "unusable_record",
                    "the lease object {e}; not touching it. Inspect it with `s3-elector status`; \
                     replace it only with `s3-elector reset --etag {etag}`");
            }
        }
        self.observed = Some(Observation {
            etag,
            seen,
            first_seen: now,
            confirmed: None,
            absent_after_record,
            silence_logged: false,
        });
        self.public.ready = true;
        self.public.read_any = true;
        self.publish();
        true
    }

    /// Write a new record naming this copy, conditioned on `etag` (or on
    /// absence). Settles failures by reading back.
    async fn try_acquire(
        &mut self,
        etag: Option<String>,
        prev: Option<LeaseRecord>,
    ) -> Option<Held> {
        if self.stopping.is_cancelled() {
            return None; // a stopping copy acquires nothing
        }
        let create = etag.is_none();
        let Some(at_least) = prev
            .as_ref()
            .map_or(self.max_term, |p| p.term.max(self.max_term))
            .checked_add(1)
        else {
            error!(key = %self.cfg.key, "the term is at its largest value; not acquiring. Replace the lease object with `s3-elector reset` and a smaller --term only after fencing your resources anew");
            return None;
        };
        // Rule 5: reserve the term before writing a record with it. A create
        // counts its validity from the reservation (a copy paused between the
        // two cannot lead later than a copy watching the key absent expects).
        let reserve_sent = self.clock.now();
        let (store, cfg, known) = (&self.store, &self.cfg, &mut self.floor);
        let (key, election, id) = (&cfg.floor_key, &cfg.election, &cfg.identity);
        let reserved = if create {
            floor::reserve_unchanged(store, key, election, id, known, at_least).await
        } else {
            floor::reserve(store, key, election, id, known, at_least)
                .await
                .map(Some)
        };
        // Only a failed reservation counts for the backoff: the lease write
        // that follows a good one gives the answer that does.
        if let Err(e) = &reserved {
            self.note_answer(Kind::Write, Some(e));
        }
        let term = match reserved {
            Ok(Some(t)) => t,
            Ok(None) => {
                // The floor moved while this copy watched the key absent:
                // another copy may have created the key and lost it in
                // between. Watch a full lease of absence again (rule 2).
                self.progress();
                info!(key = %self.cfg.key, floor = ?self.floor.term(),
                    "the term floor moved while the lease key was absent; watching it absent again before creating it");
                if let Some(o) = self.observed.as_mut() {
                    o.first_seen = self.clock.now();
                    o.confirmed = None;
                }
                return None;
            }
            Err(e) => {
                self.progress();
                let pause = self.pause(Kind::Write);
                self.write_not_before = Some(self.clock.now() + pause);
                warn!(key = %self.cfg.floor_key, error = %e, retry_in_ms = pause.as_millis() as u64,
                    "cannot reserve a term on the term floor; not acquiring this time");
                return None;
            }
        };
        if self.stopping.is_cancelled() {
            return None; // the reservation only skips a term
        }
        let now_wall = wall_now();
        let transitions = match &prev {
            Some(p) if p.holder == self.cfg.identity => p.transitions,
            Some(p) => p.transitions + 1,
            None => self.max_transitions.map_or(0, |t| t + 1),
        };
        let mut rec = LeaseRecord {
            schema: SCHEMA.into(),
            version: VERSION,
            election: self.cfg.election.clone(),
            holder: self.cfg.identity.clone(),
            term,
            lease_duration_ms: self.cfg.lease_duration.as_millis() as u64,
            acquired_at: now_wall.clone(),
            renewed_at: now_wall,
            transitions,
            nonce: self.nonce(),
            released: false,
            holder_address: self.cfg.advertise_address.clone(),
            successors: Vec::new(),
            successor_addresses: Vec::new(),
            reset_by: None,
            released_because: None,
            incarnation: Some(self.cfg.incarnation.clone()),
        };
        rec.set_successors(&self.current_successors());
        self.remember_nonce(&rec.nonce);
        let body = rec.to_body();
        let sent = if create {
            reserve_sent
        } else {
            self.clock.now()
        };
        let res = match &etag {
            None => self.store.put_if_absent(&self.cfg.key, body).await,
            Some(e) => self.store.put_if_match(&self.cfg.key, body, e).await,
        };
        self.note_answer(Kind::Write, res.as_ref().err());
        match res {
            Ok(new_etag) => {
                self.progress();
                self.landed(rec, new_etag, sent, prev.as_ref(), create)
                    .await
            }
            Err(e) => {
                // Rule 10: whatever the read-back shows, no new attempt
                // before a pause (longer while the store throttles).
                let pause = self.pause(Kind::Write);
                self.write_not_before = Some(self.clock.now() + pause);
                if e == StoreError::PreconditionFailed {
                    self.progress();
                    debug!(term, "lost the race to acquire");
                } else {
                    debug!(error = %e, retry_in_ms = pause.as_millis() as u64,
                        "acquire attempt failed; reading back to settle it");
                }
                // Read back: learn the winner, or find that our write landed.
                let (read_sent, back) = self.read_back(&rec.nonce).await;
                // A write found landed counts from when *it* was sent (the
                // reservation's send for a create): it may have landed, and
                // been seen by the others, long before this read-back.
                let valid_from = if defects::lost_answer() {
                    read_sent
                } else {
                    sent
                };
                match back {
                    ReadBack::Landed(etag) => {
                        info!(term, "acquire write had landed after all");
                        return self
                            .landed(rec, etag, valid_from, prev.as_ref(), create)
                            .await;
                    }
                    ReadBack::Other(obj) => {
                        self.observe(obj);
                    }
                    ReadBack::Failed(e) => self.report_read_error(&e),
                }
                None
            }
        }
    }

    /// Our acquisition write landed. After a create, lead only if no higher
    /// term was reserved meanwhile (rule 11): another copy may have written
    /// it and seen it deleted, and may still believe it leads. Then our
    /// record is treated as anyone's, so every copy waits it out (rule 2).
    async fn landed(
        &mut self,
        rec: LeaseRecord,
        etag: String,
        sent: Instant,
        prev: Option<&LeaseRecord>,
        create: bool,
    ) -> Option<Held> {
        if create && !self.floor_still_ours(rec.term).await {
            self.own_nonces.retain(|n| *n != rec.nonce);
            warn!(term = rec.term, key = %self.cfg.key,
                "a higher term was reserved while this copy created the lease (was it deleted while held?); not leading on it, waiting out a full lease");
            let body = rec.to_body();
            self.observe(Some(Object {
                etag,
                size: body.len() as u64,
                body,
            }));
            self.write_not_before = Some(self.clock.now() + self.pause(Kind::Write));
            return None;
        }
        self.write_not_before = None;
        Some(self.became_leader(rec, etag, sent, prev))
    }

    fn became_leader(
        &mut self,
        rec: LeaseRecord,
        etag: String,
        sent: Instant,
        prev: Option<&LeaseRecord>,
    ) -> Held {
        let deadline = sent + self.cfg.renew_deadline;
        // Whatever renewal phase we followed belonged to another holder.
        self.plan.phase = None;
        self.max_term = self.max_term.max(rec.term);
        self.max_transitions = Some(rec.transitions);
        let from = prev.map_or("none", |p| p.holder.as_str()).to_string();
        self.public.reason = Some(match prev {
            None => "created",
            Some(p) if p.released => "released",
            Some(p) if self.wrote(&p.nonce) => "retaken",
            Some(_) => "expired",
        });
        // valid_ms: how long this leadership lasts without a renewal, from now.
        let valid_ms = deadline
            .saturating_duration_since(self.clock.now())
            .as_millis() as u64;
        self.leading = Some((rec.clone(), deadline));
        self.public.ready = true;
        self.public.read_problem = None;
        self.publish();
        // Logged after publishing: whoever reads "acquired" in the log finds
        // the leader state on every surface already.
        let how = self.public.reason.unwrap_or("created");
        info!(event = "acquired", term = rec.term, previous = %from, reason = how, valid_ms,
        "acquired lease ({}); now leader", match how {
            "released" => "the old holder released it",
            "expired" => "the old holder's lease expired",
            "retaken" => "this copy's own earlier lease",
            _ => "a fresh election",
        });
        Held {
            record: rec,
            etag,
            deadline,
            pending: None,
            since: self.clock.now(),
            healthy_seen: self.verdict() == Some(Verdict::Healthy),
            unhealthy_since: None,
            successors_at: None,
            handover: None,
        }
    }

    /// Stop being leader: publish first, log, forget the observation so the
    /// next follower step reads afresh.
    fn step_down(&mut self, h: &Held, code: &'static str, reason: &str) {
        self.leading = None;
        self.public.reason = Some(code);
        // What was observed before leading is long out of date.
        self.observed = None;
        self.publish();
        warn!(
            event = "lost",
            term = h.record.term,
            reason,
            "no longer leader"
        );
        self.observed = None;
        // Our last record, if it is still there, stays ours to re-acquire.
    }

    /// Hold the lease: renew every `retry_period` until it is lost, the
    /// deadline passes, or shutdown.
    async fn lead(&mut self, mut h: Held, shutdown: &CancellationToken) -> LeadEnd {
        let mut next_renewal = self.clock.now() + self.cfg.retry_period;
        loop {
            let now = self.clock.now();
            h.note_verdict(self.verdict(), now);
            let at = match step::leader_step(now, h.deadline, next_renewal) {
                // The deadline wins over everything, a stop included.
                LeaderStep::Expired => {
                    self.step_down(
                        &h,
                        "deadline",
                        "renew deadline passed without a successful renewal",
                    );
                    return LeadEnd::Lost;
                }
                _ if shutdown.is_cancelled() => {
                    self.release(&h, "shutdown").await;
                    return LeadEnd::Shutdown;
                }
                _ if self.hand_over_for_health(&h, now) => {
                    let named = self.current_successors().len();
                    warn!(
                        event = "unhealthy",
                        term = h.record.term,
                        successors = named,
                        "the health check says unhealthy; handing the lease over"
                    );
                    self.give_up(&h, "the health check says unhealthy", "unhealthy", None)
                        .await;
                    return LeadEnd::Lost;
                }
                LeaderStep::Wait { at } => at,
                LeaderStep::Renew => {
                    next_renewal = now + self.cfg.retry_period;
                    // The deadline wins over the request: never lead past it.
                    let deadline = h.deadline;
                    let outcome = tokio::select! {
                        biased;
                        _ = self.clock.sleep_until(deadline) => None,
                        o = self.renew_once(&mut h) => Some(o),
                    };
                    match outcome {
                        None => {
                            self.step_down(
                                &h,
                                "deadline",
                                "renew deadline passed while waiting for the store",
                            );
                            return LeadEnd::Lost;
                        }
                        Some(Err(reason)) => {
                            self.step_down(&h, "taken", &reason);
                            return LeadEnd::Lost;
                        }
                        Some(Ok(())) => continue,
                    }
                }
            };
            // The wait ends at the deadline at the latest; whatever ends it,
            // the next step is decided afresh, the deadline first.
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {}
                Some(cmd) = self.control.recv() => {
                    let Control::StepDown { reason, term, cooloff, only_to_healthy } = cmd;
                    if self.clock.now() >= h.deadline {
                        info!(reason, "step-down requested as the renew deadline passed; the lease runs out instead");
                        continue;
                    }
                    if term.is_some_and(|t| t != h.record.term) {
                        info!(reason, stale_term = term, term = h.record.term,
                            "dropping a step-down request about an earlier term");
                        continue;
                    }
                    if only_to_healthy {
                        // Decided on a round of successor checks made after
                        // this copy turned unhealthy: now, or at the next.
                        let since = h.unhealthy_since.unwrap_or_else(|| self.clock.now());
                        h.handover = Some(Handover { reason, cooloff });
                        if self.successors.is_some() && h.successors_at.is_none_or(|t| t < since) {
                            debug!(term = h.record.term, "step-down to a healthy copy: waiting for a fresh round of successor checks");
                            continue;
                        }
                        if self.hand_over_to_healthy(&mut h).await {
                            return LeadEnd::Lost;
                        }
                        continue;
                    }
                    info!(reason, "stepping down on request");
                    self.give_up(&h, &reason, "step_down", cooloff).await;
                    return LeadEnd::Lost;
                }
                // A leader has nothing to learn from a wake-up.
                _ = self.wake.notified() => {}
                // A new verdict: publish it; the next step decides.
                // (Noted before it is published: the registry's check round
                // is timed from the publication, and must count.)
                Ok(()) = link_changed(&mut self.health) => {
                    h.note_verdict(self.verdict(), self.clock.now());
                    if self.verdict() != Some(Verdict::Unhealthy) {
                        // The work succeeded again: nothing to hand over.
                        h.handover = None;
                    }
                    self.publish();
                }
                // A round of successor checks (the registry publishes each):
                // what an unhealthy leader's hand-over waits for.
                Ok(()) = link_changed(&mut self.successors) => {
                    h.successors_at = Some(self.clock.now());
                    if h.handover.is_some() && self.hand_over_to_healthy(&mut h).await {
                        return LeadEnd::Lost;
                    }
                }
                _ = self.clock.sleep_until(at) => {}
            }
        }
    }

    /// Decide the pending step-down to a healthy copy ([`Handover`]): with a
    /// successor named by the last round, release to it and return true;
    /// with none, keep the lease (the work is tried again after its
    /// back-off) and return false.
    async fn hand_over_to_healthy(&mut self, h: &mut Held) -> bool {
        let Some(p) = h.handover.take() else {
            return false;
        };
        let named = self.current_successors().len();
        if named == 0 {
            warn!(event = "kept", reason = p.reason, term = h.record.term,
                "no healthy copy to hand the lease to: keeping it (the work is tried again after its back-off)");
            return false;
        }
        info!(
            reason = p.reason,
            successors = named,
            "handing the lease to a healthy copy"
        );
        self.give_up(h, &p.reason, "unhealthy", p.cooloff).await;
        true
    }

    /// Step down on request or for health: release, then sit out the
    /// cool-off (`cooloff`, or `step_down_cooloff`).
    async fn give_up(
        &mut self,
        h: &Held,
        reason: &str,
        because: &'static str,
        cooloff: Option<Duration>,
    ) {
        let cooloff = cooloff.unwrap_or(self.cfg.step_down_cooloff);
        info!(
            reason,
            cooloff_ms = cooloff.as_millis() as u64,
            term = h.record.term,
            "stepping down"
        );
        if !self.release(h, because).await {
            // The record left is ours and not released: retaken at once
            // after the cool-off, it would never reach the successor, who
            // waits a lease for it. Forget it as ours: this copy waits that
            // lease too (and its rank, or the unhealthy delay).
            self.own_nonces.clear();
        }
        self.public.releasing = false;
        self.cooloff_until = Some(self.clock.now() + cooloff);
        self.observed = None;
    }

    /// One renewal (or, if the last one is unsettled, one read to settle it).
    /// `Err` means the lease is lost.
    async fn renew_once(&mut self, h: &mut Held) -> Result<(), String> {
        if let Some((attempt, sent)) = h.pending.clone() {
            return self.settle(h, attempt, sent).await;
        }
        let mut rec = h.record.clone();
        rec.renewed_at = wall_now();
        rec.nonce = self.nonce();
        rec.set_successors(&self.current_successors());
        self.remember_nonce(&rec.nonce);
        let sent = self.clock.now();
        let started = self.clock.now();
        let res = self
            .store
            .put_if_match(&self.cfg.key, rec.to_body(), &h.etag)
            .await;
        self.note_outage(res.as_ref().err());
        match res {
            Ok(etag) => {
                self.progress();
                self.renewed(h, rec, etag, sent);
                let latency = self.clock.now() - started;
                // Nobody listening is fine: the event is only for metrics.
                let _ = self.events.send(Event::Renewed {
                    term: h.record.term,
                    latency,
                });
                debug!(
                    event = "renewed",
                    term = h.record.term,
                    latency_ms = latency.as_millis() as u64,
                    valid_ms = h
                        .deadline
                        .saturating_duration_since(self.clock.now())
                        .as_millis() as u64,
                    "renewed lease"
                );
                Ok(())
            }
            Err(StoreError::PreconditionFailed) => {
                self.progress();
                Err("the lease changed under us (conditional renew refused)".into())
            }
            Err(e) if e.is_ambiguous() => {
                debug!(error = %e, "renewal outcome unknown; reading back to settle it");
                h.pending = Some((rec.clone(), sent));
                self.settle(h, rec, sent).await
            }
            Err(e) => {
                self.progress();
                warn!(error = %e, "renewal failed; will retry until the renew deadline");
                Ok(())
            }
        }
    }

    /// After a write whose outcome is unknown (a timeout, a 5xx, a 409):
    /// read the lease back, the one way both an acquisition and a renewal
    /// settle it (rule 5). Returns the read's send time and what it found.
    async fn read_back(&mut self, nonce: &str) -> (Instant, ReadBack) {
        let sent = self.clock.now();
        self.plan.last_read = Some(sent);
        let r = self.store.get(&self.cfg.key).await;
        self.note_outage(r.as_ref().err());
        let back = match r {
            Ok(obj) => {
                self.read_answered(sent);
                let ours = obj
                    .as_ref()
                    .and_then(|o| LeaseRecord::parse(&o.body).ok())
                    .is_some_and(|r| r.nonce == nonce);
                match obj {
                    Some(o) if ours => ReadBack::Landed(o.etag),
                    other => ReadBack::Other(other),
                }
            }
            Err(e) => ReadBack::Failed(e),
        };
        // A failed request still completed: the loop is alive.
        self.progress();
        (sent, back)
    }

    /// Settle an unknown renewal by reading the record back.
    async fn settle(
        &mut self,
        h: &mut Held,
        attempt: LeaseRecord,
        sent: Instant,
    ) -> Result<(), String> {
        match self.read_back(&attempt.nonce).await.1 {
            ReadBack::Landed(etag) => {
                info!(term = attempt.term, "renewal had landed after all");
                self.renewed(h, attempt, etag, sent);
                debug!(
                    event = "renewed",
                    term = h.record.term,
                    valid_ms = h
                        .deadline
                        .saturating_duration_since(self.clock.now())
                        .as_millis() as u64,
                    "renewed lease (settled)"
                );
                Ok(())
            }
            ReadBack::Other(Some(obj)) => match LeaseRecord::parse(&obj.body) {
                Ok(r) if r.nonce == h.record.nonce && obj.etag == h.etag => {
                    // The write did not land; the lease is still ours.
                    h.pending = None;
                    Ok(())
                }
                Ok(r) => Err(format!(
                    "the lease now names {} (term {})",
                    r.holder, r.term
                )),
                Err(e) => Err(format!("the lease object now {e}")),
            },
            ReadBack::Other(None) => Err("the lease object was deleted".into()),
            ReadBack::Failed(e) => {
                debug!(error = %e, "cannot settle the renewal yet; will retry");
                Ok(())
            }
        }
    }

    fn renewed(&mut self, h: &mut Held, rec: LeaseRecord, etag: String, sent: Instant) {
        h.deadline = sent + self.cfg.renew_deadline;
        h.etag = etag;
        h.pending = None;
        h.record = rec;
        self.leading = Some((h.record.clone(), h.deadline));
        self.publish();
    }

    /// Give the lease up: publish "not leader" first, then write a released
    /// record conditioned on our last ETag, so a follower may take over on
    /// its next poll.
    /// `because` goes into the record (`released_because`) and into the
    /// published state's `reason`. Returns whether the release landed.
    async fn release(&mut self, h: &Held, because: &'static str) -> bool {
        self.leading = None;
        self.public.reason = Some(because);
        self.observed = None;
        self.public.releasing = true;
        self.publish();
        info!(
            event = "lost",
            term = h.record.term,
            reason = "released",
            "no longer leader; releasing the lease"
        );
        let wait = self.cfg.release_wait;
        let until = self.clock.now() + wait;
        for b in &mut self.release_barriers {
            if self
                .clock
                .timeout_at(until, b.wait_for(|idle| *idle))
                .await
                .is_err()
            {
                warn!(?wait, "leader-only work did not stop in time; not releasing, the lease will expire instead");
                return false;
            }
        }
        let mut rec = h.record.clone();
        rec.released = true;
        rec.released_because = Some(because.to_string());
        rec.renewed_at = wall_now();
        rec.nonce = self.nonce();
        rec.set_successors(&self.current_successors());
        self.remember_nonce(&rec.nonce);
        match self
            .store
            .put_if_match(&self.cfg.key, rec.to_body(), &h.etag)
            .await
        {
            Ok(_) => {
                info!(event = "released", term = rec.term, successors = ?rec.successors, because, "released lease");
                let _ = self.events.send(Event::Released {
                    term: rec.term,
                    successors: rec.successors.clone(),
                });
                true
            }
            Err(StoreError::PreconditionFailed) => {
                info!(
                    term = rec.term,
                    "lease had already changed; nothing to release"
                );
                false
            }
            Err(e) => {
                warn!(error = %e, term = rec.term,
                    "could not release the lease; followers take over when it expires");
                false
            }
        }
    }
}

/// The next change on an optional link (the health report, the
/// successors); never, without the link (or once its sender is gone).
async fn link_changed<T>(
    h: &mut Option<watch::Receiver<T>>,
) -> Result<(), watch::error::RecvError> {
    match h {
        Some(rx) => match rx.changed().await {
            Ok(()) => Ok(()),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Switches that put known defects back, for the simulation's negative
/// controls: a checker that never fires proves nothing. Test builds only,
/// and per thread (each simulated run owns its thread); in the daemon they
/// are constant `false`.
#[cfg(test)]
pub(crate) mod defects {
    use std::cell::Cell;

    thread_local! {
        static LOST_ANSWER: Cell<bool> = const { Cell::new(false) };
        static HALF_LEASE: Cell<bool> = const { Cell::new(false) };
    }

    /// Count an acquisition found landed by its read-back from the
    /// read-back, not from the write (the lost-answer defect of issue 30).
    pub fn lost_answer() -> bool {
        LOST_ANSWER.with(Cell::get)
    }

    /// Take over after half a lease instead of a full one, and create an
    /// absent key half a lease after the read confirming its absence.
    pub fn half_lease() -> bool {
        HALF_LEASE.with(Cell::get)
    }

    /// Set both switches for this thread.
    pub fn set(lost_answer: bool, half_lease: bool) {
        LOST_ANSWER.with(|c| c.set(lost_answer));
        HALF_LEASE.with(|c| c.set(half_lease));
    }
}

#[cfg(not(test))]
mod defects {
    pub const fn lost_answer() -> bool {
        false
    }
    pub const fn half_lease() -> bool {
        false
    }
}

#[cfg(test)]
mod tests;
