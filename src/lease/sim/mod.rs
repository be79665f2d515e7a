//! Deterministic simulation of whole elections (issue 30; docs/testing.md).
//!
//! 2–10 copies run *the daemon's own* [`Election`] on one thread, over
//! tokio's paused clock, which the simulation treats as true time. Only
//! the store, the clocks, the random streams and the links are substituted;
//! no decision of the election is copied here. Each seed draws:
//! - the timings, from the whole space validation accepts (L > R > 1.2 P,
//!   0 < `request_timeout` < R, often just under R), and the cool-off;
//! - a clock rate per process within the bound docs/concepts.md promises,
//!   1 ± (L − R)/(L + R) (a negative control runs beyond it);
//! - the store's weather ([`store`]) and a storm of faults: processes
//!   frozen (SIGSTOP) and resumed, crashed and restarted with or without
//!   their identity, stepped down, stopped (releasing); a process cut off
//!   from the store; the lease key and the term floor deleted; the lease
//!   object corrupted and later `reset`; throttling; wake-ups, successor
//!   lists and far followers' watch answers late, twice, forged or missing.
//!
//! The faults stop after at least 50 leases; then every process runs, the
//! store is calm, and a leader must appear within the bound of
//! [`Drawn::liveness_bound`]. [`world`] checks the promises on true time.
//!
//! A run is a pure function of its seed: the same seed gives the same
//! trace, byte for byte (a test checks it).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::health::{Report as HealthReport, Verdict};
use crate::lease::clock::Clock;
use crate::lease::election::{
    rank_delay_for, Control, Election, ElectionConfig, HealthPolicy, Links, Role, State,
    MAX_SUCCESSORS,
};
use crate::lease::floor::{floor_key, FLOOR_SCHEMA};
use crate::lease::record::{LeaseRecord, RecordError, Successor, SCHEMA, VERSION};

pub mod store;
pub mod world;

use store::{lock, Client, Weather};
use world::{Proc, World};

pub const KEY: &str = "sim/lease.json";

/// What a run may be told to do differently (negative controls).
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    /// Clock rates reach this multiple of the promised bound (1.0: within).
    pub drift: f64,
    /// Leases of faults (at least 50).
    pub leases: u32,
    /// Put back a known defect (negative controls).
    pub defect: Option<Defect>,
    /// Trace every request at the store, not only writes that land
    /// (`S3E_SIM_VERBOSE=1` when a seed is replayed).
    pub verbose: bool,
}

/// Known defects the simulation must find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// Issue 30's lost-answer acquisition.
    LostAnswer,
    /// A takeover after half a lease.
    HalfLease,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            drift: 0.98,
            leases: 50,
            defect: None,
            verbose: false,
        }
    }
}

/// The configuration a seed drew.
#[derive(Debug, Clone)]
pub struct Drawn {
    pub copies: usize,
    pub lease: Duration,
    pub renew: Duration,
    pub retry: Duration,
    pub request_timeout: Duration,
    pub cooloff: Duration,
    pub release_wait: Duration,
    pub far: bool,
    pub rates: Vec<f64>,
    /// Health checks on (about half the seeds), with the policy drawn.
    /// Drawn from a stream of its own, so that a seed without health runs
    /// exactly as it did before health existed.
    pub health: Option<HealthPolicy>,
}

impl Drawn {
    fn draw(rng: &mut StdRng, opts: Opts) -> Self {
        let copies = if rng.random_bool(0.7) {
            rng.random_range(2..=4)
        } else {
            rng.random_range(5..=10)
        };
        let lease = Duration::from_millis(rng.random_range(1_000..=20_000));
        // R in (1.2 P, L): R/L anywhere from 0.2 to just under 1.
        let renew = lease.mul_f64(rng.random_range(0.2..0.995));
        // P in (0, R/1.2), no shorter than L/25 (the cost of a run).
        let p_max = renew.as_secs_f64() / 1.2;
        let p_min = (lease.as_secs_f64() / 25.0).min(p_max * 0.5);
        let retry = Duration::from_secs_f64(rng.random_range(p_min..p_max * 0.999));
        let request_timeout = if rng.random_bool(0.4) {
            renew.mul_f64(rng.random_range(0.9..0.999))
        } else {
            renew.mul_f64(rng.random_range(0.05..0.999))
        };
        let cooloff = if rng.random_bool(0.3) {
            Duration::ZERO
        } else {
            lease.mul_f64(rng.random_range(0.0..2.0))
        };
        let release_wait = retry.mul_f64(rng.random_range(0.0..3.0));
        let far = rng.random_bool(0.5);
        let bound = Self::bound_of(lease, renew);
        let rates = (0..copies)
            .map(|_| {
                let d = bound * opts.drift;
                match rng.random_range(0..10) {
                    0..=2 => 1.0 + d,
                    3..=5 => 1.0 - d,
                    _ => 1.0 + d * rng.random_range(-1.0..1.0),
                }
            })
            .collect();
        Drawn {
            copies,
            lease,
            renew,
            retry,
            request_timeout,
            cooloff,
            release_wait,
            far,
            rates,
            health: None,
        }
    }

    /// The clock-rate error docs/concepts.md promises to tolerate.
    fn bound_of(l: Duration, r: Duration) -> f64 {
        let (l, r) = (l.as_secs_f64(), r.as_secs_f64());
        (l - r) / (l + r)
    }

    pub fn config(&self, identity: &str) -> ElectionConfig {
        ElectionConfig {
            identity: identity.into(),
            election: "sim".into(),
            key: KEY.into(),
            floor_key: floor_key(KEY),
            lease_duration: self.lease,
            renew_deadline: self.renew,
            retry_period: self.retry,
            advertise_address: Some(format!("{identity}:4040")),
            jitter: true,
            step_down_cooloff: self.cooloff,
            release_wait: self.release_wait,
            rank_delay: rank_delay_for(self.retry),
            far_poll: self.far.then_some(self.lease),
            incarnation: "0000000000000001".into(),
            health: self.health.unwrap_or_default(),
        }
    }

    /// Draw the health policy (from `rng`, the seed's health stream).
    fn draw_health(&mut self, rng: &mut StdRng) {
        if rng.random_bool(0.5) {
            self.health = Some(HealthPolicy {
                hold_down: self.lease.mul_f64(rng.random_range(0.05..2.0)),
                fail_fast: rng.random_bool(0.3),
                release_when_none: rng.random_bool(0.3),
                grace: self.retry.mul_f64(rng.random_range(0.0..1.0)),
            });
        }
    }

    /// The liveness bound (docs/design.md, "Simulation"): once faults stop,
    /// some copy leads within
    ///
    /// ```text
    /// B = (2.5 T + max(0.6 L, F) + 2 L + 8 D + 3 × 1.2 P + C) / (1 − d)
    /// ```
    ///
    /// T `request_timeout` (a write sent before the calm lands up to 1.5 T
    /// later, and a request under way times out after T); the read gap:
    /// 0.6 L for a copy backed off by throttling (half a lease, jittered),
    /// F = `far_poll` for a far follower; 2 L: a lease of waiting on the
    /// last version, or of watching the key absent, plus one more when the
    /// term floor moved meanwhile; 8 D the largest rank delay; three paced
    /// write attempts (1.2 P each) lost to contention; C the step-down
    /// cool-off; d the clock-rate error.
    pub fn liveness_bound(&self) -> Duration {
        let d = self
            .rates
            .iter()
            .map(|r| (1.0 - r).max(0.0))
            .fold(0.0, f64::max);
        let l = self.lease.as_secs_f64();
        let t = self.request_timeout.as_secs_f64();
        let f = if self.far { l } else { 0.0 };
        let rank = rank_delay_for(self.retry).as_secs_f64() * MAX_SUCCESSORS as f64;
        // An unhealthy copy takes a lease one retry period after every rank.
        let health = if self.health.is_some() {
            1.2 * self.retry.as_secs_f64()
        } else {
            0.0
        };
        let secs = (2.5 * t
            + (0.6 * l).max(f)
            + 2.0 * l
            + rank
            + 3.0 * 1.2 * self.retry.as_secs_f64()
            + health
            + self.cooloff.as_secs_f64())
            / (1.0 - d);
        Duration::from_secs_f64(secs)
    }

    fn describe(&self) -> String {
        let rates: Vec<String> = self.rates.iter().map(|r| format!("{r:.4}")).collect();
        format!(
            "copies {} lease {:?} renew {:?} retry {:?} request_timeout {:?} cooloff {:?} release_wait {:?} far {} rates [{}] (bound ±{:.4}){}",
            self.copies,
            self.lease,
            self.renew,
            self.retry,
            self.request_timeout,
            self.cooloff,
            self.release_wait,
            self.far,
            rates.join(" "),
            Self::bound_of(self.lease, self.renew),
            match &self.health {
                None => String::new(),
                Some(h) => format!(
                    " health hold_down {:?} fail_fast {} release_when_none {}",
                    h.hold_down, h.fail_fast, h.release_when_none
                ),
            }
        )
    }
}

/// The result of one seed.
#[derive(Debug)]
pub struct Outcome {
    pub seed: u64,
    pub drawn: Drawn,
    pub trace: Vec<String>,
    pub violations: Vec<String>,
    /// Seconds from the start (as the trace prints them) of the first
    /// violation.
    pub first_violation: Option<f64>,
    /// Simulated (true) time the run covered.
    pub simulated: Duration,
}

impl Outcome {
    /// A report a person can read: the drawn config, the first violation,
    /// and the trace up to it (its last `lines` lines).
    pub fn report(&self, lines: usize) -> String {
        let mut s = format!("seed {}: {}\n", self.seed, self.drawn.describe());
        match self.violations.first() {
            Some(v) => s += &format!("FIRST VIOLATION {v}\n"),
            None => s += "no violation\n",
        }
        // The trace up to the first violating instant (the checks after
        // the run print theirs at the end).
        let upto = self.first_violation.unwrap_or(f64::INFINITY);
        let end = self
            .trace
            .iter()
            .position(|l| {
                l.split_whitespace()
                    .next()
                    .and_then(|t| t.parse::<f64>().ok())
                    .is_some_and(|t| t > upto)
            })
            .unwrap_or(self.trace.len());
        let start = end.saturating_sub(lines);
        for l in &self.trace[start..end] {
            s += l;
            s.push('\n');
        }
        for l in self.trace.iter().filter(|l| l.starts_with("VIOLATION")) {
            s += l;
            s.push('\n');
        }
        s
    }
}

/// Stops polling a future while frozen, as SIGSTOP stops a process: its
/// timers and answers are taken in when it resumes.
struct Freezable<F> {
    inner: Pin<Box<F>>,
    ctl: Arc<FreezeCtl>,
}

#[derive(Default)]
struct FreezeCtl {
    frozen: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl FreezeCtl {
    fn set(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
        if !frozen {
            if let Some(w) = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take() {
                w.wake();
            }
        }
    }
}

impl<F: Future> Future for Freezable<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if self.ctl.frozen.load(Ordering::SeqCst) {
            *self.ctl.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
            return Poll::Pending;
        }
        self.inner.as_mut().poll(cx)
    }
}

/// One copy slot: the process that runs in it now, and its links.
struct Slot {
    identity: String,
    proc: usize,
    running: bool,
    state: watch::Receiver<State>,
    control: mpsc::Sender<Control>,
    stop: CancellationToken,
    task: JoinHandle<()>,
    helpers: Vec<JoinHandle<()>>,
    freeze: Arc<FreezeCtl>,
    successors: watch::Sender<Vec<Successor>>,
    watched: watch::Sender<Option<Successor>>,
    /// The process's health check, when the seed drew health.
    health: Option<watch::Sender<HealthReport>>,
}

struct Sim {
    world: Arc<Mutex<World>>,
    drawn: Drawn,
    slots: Vec<Slot>,
    rng: StdRng,
    start: Instant,
    next_identity: usize,
    /// The seed's health stream (verdicts and their flips).
    health_rng: StdRng,
}

impl Sim {
    /// Start a new process in slot `i` (a fresh one when `i == slots.len()`).
    fn spawn(&mut self, i: usize, identity: String) {
        let rate = self.drawn.rates[i];
        let clock = Clock::skewed(self.start, rate);
        let cfg = self.drawn.config(&identity);
        let (idle_tx, idle_rx) = watch::channel(true);
        let (health_tx, health_rx) = match self.drawn.health {
            Some(_) => {
                let v = self.draw_verdict(true);
                let (tx, rx) = watch::channel(HealthReport {
                    verdict: v,
                    ..HealthReport::new()
                });
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let (succ_tx, succ_rx) = watch::channel(Vec::new());
        let (watched_tx, watched_rx) = watch::channel(None);
        let proc = {
            let mut w = lock(&self.world);
            let n = w.procs.len();
            w.procs.push(Proc {
                name: format!("c{i}#{n}"),
                identity: identity.clone(),
                clock,
                lease: self.drawn.lease,
                request_timeout: self.drawn.request_timeout,
                cut_off_until: None,
                told: Default::default(),
                absent_since: None,
                program_idle: idle_rx.clone(),
                wake: Arc::new(tokio::sync::Notify::new()),
                alive: true,
            });
            let name = w.procs[n].name.clone();
            w.trace(format!(
                "{name} starts as {identity} (clock rate {rate:.4})"
            ));
            n
        };
        let client = Client {
            world: self.world.clone(),
            proc,
            clock,
            request_timeout: self.drawn.request_timeout,
        };
        let election = Election::new(
            client,
            cfg,
            Links {
                successors: Some(succ_rx),
                release_barriers: vec![idle_rx],
                watched: Some(watched_rx),
                clock,
                seed: Some(self.rng.random()),
                health: health_rx,
            },
        );
        // The election's own waker is the one wake-ups go to.
        lock(&self.world).procs[proc].wake = election.waker();
        let state = election.subscribe();
        let control = election.control_sender();
        let stop = CancellationToken::new();
        let freeze = Arc::new(FreezeCtl::default());
        let task = tokio::spawn(Freezable {
            inner: Box::pin(election.run(stop.clone())),
            ctl: freeze.clone(),
        });
        let observer = tokio::spawn(observe(
            self.world.clone(),
            proc,
            clock,
            state.clone(),
            idle_tx,
            self.drawn.release_wait,
            self.rng.random(),
        ));
        let slot = Slot {
            identity,
            proc,
            running: true,
            state,
            control,
            stop,
            task,
            helpers: vec![observer],
            freeze,
            successors: succ_tx,
            watched: watched_tx,
            health: health_tx,
        };
        if i == self.slots.len() {
            self.slots.push(slot);
        } else {
            self.slots[i] = slot;
        }
    }

    /// The process in slot `i` dies at once (SIGKILL, OOM, panic).
    fn crash(&mut self, i: usize) {
        let s = &mut self.slots[i];
        if !s.running {
            return;
        }
        s.running = false;
        s.task.abort();
        for h in &s.helpers {
            h.abort();
        }
        let mut w = lock(&self.world);
        w.procs[s.proc].alive = false;
        let name = w.procs[s.proc].name.clone();
        w.trace(format!("chaos: {name} crashes"));
        w.crashed(s.proc);
    }

    fn restart(&mut self, i: usize, same_identity: bool) {
        if self.slots[i].running {
            return;
        }
        let identity = if same_identity {
            self.slots[i].identity.clone()
        } else {
            self.next_identity += 1;
            format!("c{i}-{}", self.next_identity)
        };
        self.spawn(i, identity);
    }

    /// A verdict from the health stream (`start`: a new process, which may
    /// not have a first result yet).
    fn draw_verdict(&mut self, start: bool) -> Verdict {
        match self.health_rng.random_range(0..10) {
            0..=1 if start => Verdict::Unknown,
            0..=5 => Verdict::Healthy,
            _ => Verdict::Unhealthy,
        }
    }

    /// A copy's check changes its verdict.
    fn flip_health(&mut self) {
        let i = self.health_rng.random_range(0..self.slots.len());
        let v = self.draw_verdict(false);
        let name = self.name(i);
        let Some(tx) = &self.slots[i].health else {
            return;
        };
        if tx.borrow().verdict == v {
            return;
        }
        tx.send_modify(|r| r.verdict = v);
        self.chaos_trace(format!("{name}'s health check says {}", v.name()));
    }

    /// Is the copy in slot `i` healthy (or without a check)?
    fn healthy(&self, i: usize) -> bool {
        self.slots[i]
            .health
            .as_ref()
            .is_none_or(|h| h.borrow().verdict == Verdict::Healthy)
    }

    fn name(&self, i: usize) -> String {
        lock(&self.world).procs[self.slots[i].proc].name.clone()
    }

    fn chaos_trace(&self, line: String) {
        lock(&self.world).trace(format!("chaos: {line}"));
    }

    /// One fault, drawn at random.
    async fn fault(&mut self, calm_at: Instant) {
        let n = self.slots.len();
        let i = self.rng.random_range(0..n);
        let l = self.drawn.lease;
        let name = self.name(i);
        match self.rng.random_range(0..100) {
            0..=17 => {
                // SIGSTOP, then SIGCONT later.
                if !self.slots[i].running {
                    return;
                }
                let d = l.mul_f64(self.rng.random_range(0.0..2.0));
                self.chaos_trace(format!("{name} frozen for {:.3}s", d.as_secs_f64()));
                let ctl = self.slots[i].freeze.clone();
                ctl.set(true);
                let world = self.world.clone();
                let until = (Instant::now() + d).min(calm_at);
                tokio::spawn(async move {
                    tokio::time::sleep_until(until).await;
                    ctl.set(false);
                    lock(&world).trace(format!("chaos: {name} resumes"));
                });
            }
            18..=27 => {
                self.crash(i);
                let same = self.rng.random_bool(0.6);
                let d = l.mul_f64(self.rng.random_range(0.0..1.0));
                tokio::time::sleep(d.min(calm_at.saturating_duration_since(Instant::now()))).await;
                self.restart(i, same);
            }
            28..=37 if self.slots[i].running => {
                // With health drawn, half the step-downs are a failing
                // on_acquired's: only to a healthy successor, else kept.
                let only_to_healthy =
                    self.drawn.health.is_some() && self.health_rng.random_bool(0.5);
                self.chaos_trace(format!(
                    "step-down requested of {name}{}",
                    if only_to_healthy {
                        " (only to a healthy copy)"
                    } else {
                        ""
                    }
                ));
                let _ = self.slots[i].control.try_send(Control::StepDown {
                    reason: "sim".into(),
                    term: None,
                    cooloff: None,
                    only_to_healthy,
                });
            }
            38..=45 => {
                // A graceful stop (SIGTERM): release, end; restarted later.
                if !self.slots[i].running {
                    return;
                }
                self.chaos_trace(format!("{name} stops"));
                self.slots[i].stop.cancel();
                let world = self.world.clone();
                let proc = self.slots[i].proc;
                let d = l.mul_f64(self.rng.random_range(0.1..1.0));
                let deadline = (Instant::now() + d).min(calm_at);
                let task = &mut self.slots[i].task;
                let ended = tokio::time::timeout_at(deadline, task).await.is_ok();
                if !ended {
                    self.slots[i].task.abort();
                }
                {
                    let mut w = lock(&world);
                    w.procs[proc].alive = false;
                    if ended {
                        w.believe(proc, None);
                    } else {
                        w.crashed(proc);
                    }
                }
                self.slots[i].running = false;
                for h in &self.slots[i].helpers {
                    h.abort();
                }
                let same = self.rng.random_bool(0.7);
                self.restart(i, same);
            }
            46..=55 => {
                let d = l.mul_f64(self.rng.random_range(0.0..2.0));
                self.chaos_trace(format!(
                    "{name} cut off from the store for {:.3}s",
                    d.as_secs_f64()
                ));
                let proc = self.slots[i].proc;
                lock(&self.world).procs[proc].cut_off_until =
                    Some((Instant::now() + d).min(calm_at));
            }
            56..=60 => {
                // The lease key deleted, while a floor guards the terms:
                // both gone together is a documented limit, and so is a
                // floor rebuilt lower than a term in use (a reservation
                // by a copy that never saw it, after the floor's deletion).
                let mut w = lock(&self.world);
                let guarded = !w.floor_deleted && w.floor_term().is_some_and(|f| f >= w.max_term);
                if guarded && w.objects.map.remove(KEY).is_some() {
                    w.trace("chaos: the lease object is deleted".into());
                }
            }
            61..=63 => {
                // The floor deleted, while the lease record carries its term.
                let mut w = lock(&self.world);
                let record = w
                    .objects
                    .map
                    .get(KEY)
                    .and_then(|(b, _)| LeaseRecord::parse(b).ok())
                    .map(|r| r.term);
                if record.is_some_and(|t| w.floor_term().is_some_and(|f| f <= t)) {
                    w.objects.map.remove(&floor_key(KEY));
                    w.floor_deleted = true;
                    w.trace("chaos: the term floor is deleted".into());
                }
            }
            64..=66 => {
                // Corrupted, then `reset` by an operator after a while.
                if Instant::now() + l * 3 > calm_at {
                    return;
                }
                let etag = {
                    let mut w = lock(&self.world);
                    let guarded =
                        !w.floor_deleted && w.floor_term().is_some_and(|f| f >= w.max_term);
                    if !w.objects.map.contains_key(KEY) || !guarded {
                        return;
                    }
                    let e = w.objects.new_etag();
                    w.objects.map.insert(
                        KEY.into(),
                        (
                            b"{\"schema\": \"s3-elector/lease\", \"term\": ".to_vec(),
                            e.clone(),
                        ),
                    );
                    w.trace("chaos: the lease object is corrupted".into());
                    e
                };
                let wait = l.mul_f64(1.2 * (1.0 + Drawn::bound_of(l, self.drawn.renew)));
                let world = self.world.clone();
                let lease_ms = self.drawn.lease.as_millis() as u64;
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    reset(&world, &etag, lease_ms);
                });
            }
            67..=74 => {
                let d = l.mul_f64(self.rng.random_range(0.0..1.0));
                let w0 = self.world.clone();
                let before = {
                    let mut w = lock(&w0);
                    let before = w.weather;
                    w.weather.p_throttle = 0.6;
                    w.trace(format!(
                        "chaos: the store throttles for {:.3}s",
                        d.as_secs_f64()
                    ));
                    before
                };
                let until = (Instant::now() + d).min(calm_at);
                tokio::spawn(async move {
                    tokio::time::sleep_until(until).await;
                    let mut w = lock(&w0);
                    if w.weather.p_throttle > 0.0 && Instant::now() < calm_at {
                        w.weather.p_throttle = before.p_throttle;
                    }
                });
            }
            75..=79 if self.slots[i].running => {
                // A forged or stray wake-up.
                let p = self.slots[i].proc;
                lock(&self.world).procs[p].wake.notify_one();
            }
            _ => {
                // A quiet spell: nothing goes wrong for a while.
            }
        }
    }

    /// Successor lists and far followers' watch answers, as the registry
    /// and `peers::watch` would feed them: usually right, sometimes stale,
    /// forged, or missing. Honest once `honest`.
    fn feed(&mut self, honest: bool) {
        // A leader's successor check names only live, healthy candidates.
        let alive: Vec<(String, bool)> = (0..self.slots.len())
            .map(|i| {
                let s = &self.slots[i];
                (
                    s.identity.clone(),
                    s.running && !s.freeze.frozen.load(Ordering::SeqCst) && self.healthy(i),
                )
            })
            .collect();
        for i in 0..self.slots.len() {
            let mut list: Vec<Successor> = alive
                .iter()
                .filter(|(_, up)| *up || (!honest && self.rng.random_bool(0.3)))
                .map(|(id, _)| Successor {
                    identity: id.clone(),
                    address: Some(format!("{id}:4040")),
                })
                .collect();
            list.shuffle(&mut self.rng);
            if !honest && self.rng.random_bool(0.1) {
                list.insert(
                    0,
                    Successor {
                        identity: "ghost".into(),
                        address: Some("ghost:4040".into()),
                    },
                );
            }
            let _ = self.slots[i].successors.send(list);
            let target = self.slots[i].state.borrow().watch.clone();
            let answer = match target {
                None => None,
                Some(t) => {
                    let up = alive.iter().any(|(id, u)| *id == t.identity && *u);
                    if honest {
                        up.then_some(t)
                    } else if self.rng.random_bool(0.2) {
                        Some(t) // a successor that answers, and lies
                    } else if self.rng.random_bool(0.1) {
                        None // its answer lost
                    } else {
                        up.then_some(t)
                    }
                }
            };
            self.slots[i].watched.send_if_modified(|w| {
                let changed = *w != answer;
                *w = answer;
                changed
            });
        }
    }
}

/// The operator's `reset` of an unusable object (as `s3-elector reset`):
/// a released record with the highest known term, the floor raised first.
fn reset(world: &Mutex<World>, etag: &str, lease_ms: u64) {
    let mut w = lock(world);
    let Some((body, e)) = w.objects.map.get(KEY).cloned() else {
        return;
    };
    if e != etag {
        return;
    }
    let floor = w.floor_term();
    // The highest of the floor, the salvaged term and `--term`, which the
    // operator sets to the highest term used when nothing else is known
    // (`reset` refuses to guess).
    let salvaged = RecordError::salvage_term(&body);
    let term = match (floor, salvaged) {
        (None, None) => w.max_term,
        (f, s) => f.max(s).unwrap_or(0),
    };
    let fe = w.objects.new_etag();
    let fb = serde_json::json!({"schema": FLOOR_SCHEMA, "election": "sim", "term": term,
        "reserved_by": "operator", "reserved_at": "-"});
    w.objects
        .map
        .insert(floor_key(KEY), (fb.to_string().into_bytes(), fe.clone()));
    let rec = LeaseRecord {
        schema: SCHEMA.into(),
        version: VERSION,
        election: "sim".into(),
        holder: "none".into(),
        term,
        lease_duration_ms: lease_ms,
        acquired_at: "-".into(),
        renewed_at: "-".into(),
        transitions: 0,
        nonce: format!("reset-{fe}"),
        released: true,
        holder_address: None,
        successors: Vec::new(),
        successor_addresses: Vec::new(),
        reset_by: Some("operator@sim".into()),
        released_because: None,
        incarnation: None,
    };
    let ne = w.objects.new_etag();
    w.objects.map.insert(KEY.into(), (rec.to_body(), ne));
    w.trace(format!("chaos: an operator resets the lease (term {term})"));
}

/// Watch one process's published state: record its beliefs, and run its
/// program while it leads (the release barrier): the program starts when
/// leadership does and stops a little after it ends, sometimes later than
/// the release waits.
async fn observe(
    world: Arc<Mutex<World>>,
    proc: usize,
    clock: Clock,
    mut rx: watch::Receiver<State>,
    idle: watch::Sender<bool>,
    release_wait: Duration,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut stopping: Option<Instant> = None;
    loop {
        let (leads, until) = {
            let s = rx.borrow_and_update();
            let now = clock.now();
            let leads = s.role == Role::Leader && s.valid_until.is_some_and(|v| now < v);
            (
                leads.then(|| (s.term, clock.to_true(s.valid_until.unwrap()))),
                s.valid_until,
            )
        };
        lock(&world).believe(proc, leads);
        if leads.is_some() {
            stopping = None;
            if *idle.borrow() {
                idle.send_replace(false);
            }
        } else if !*idle.borrow() && stopping.is_none() {
            let d = release_wait.mul_f64(rng.random_range(0.0..1.5));
            stopping = Some(Instant::now() + d);
        }
        let deadline = leads.map(|_| clock.to_true(until.unwrap()));
        tokio::select! {
            biased;
            r = rx.changed() => if r.is_err() {
                lock(&world).believe(proc, None);
                idle.send_replace(true);
                return;
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {}
            _ = tokio::time::sleep_until(stopping.unwrap_or_else(far_future)), if stopping.is_some() => {
                stopping = None;
                idle.send_replace(true);
            }
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// Run one seed.
pub fn run(seed: u64, opts: Opts) -> Outcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    crate::lease::election::defects::set(
        opts.defect == Some(Defect::LostAnswer),
        opts.defect == Some(Defect::HalfLease),
    );
    let out = rt.block_on(run_async(seed, opts));
    crate::lease::election::defects::set(false, false);
    out
}

async fn run_async(seed: u64, opts: Opts) -> Outcome {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut drawn = Drawn::draw(&mut rng, opts);
    drawn.draw_health(&mut StdRng::seed_from_u64(seed ^ 0x4845_414c_5448_0001));
    let start = Instant::now();
    let world = Arc::new(Mutex::new(World::new(
        StdRng::seed_from_u64(rng.random()),
        start,
    )));
    {
        let mut w = lock(&world);
        let slow_max = drawn.request_timeout.mul_f64(0.75);
        w.weather = Weather {
            slow_max,
            p_slow: rng.random_range(0.0..0.15),
            p_lose_before: rng.random_range(0.0..0.03),
            p_lose_answer: rng.random_range(0.0..0.05),
            p_landed_412: rng.random_range(0.0..0.03),
            p_throttle: rng.random_range(0.0..0.02),
            p_conflict: rng.random_range(0.0..0.8),
        };
        w.wake_faults = (rng.random_range(0.0..0.4), rng.random_range(0.0..0.3));
        w.verbose = opts.verbose;
        w.trace(format!("seed {seed}: {}", drawn.describe()));
    }
    let mut sim = Sim {
        world: world.clone(),
        drawn: drawn.clone(),
        slots: Vec::new(),
        rng: StdRng::seed_from_u64(rng.random()),
        start,
        next_identity: 0,
        health_rng: StdRng::seed_from_u64(seed ^ 0x4845_414c_5448),
    };
    for i in 0..drawn.copies {
        sim.spawn(i, format!("c{i}"));
    }
    let calm_at = start + drawn.lease * opts.leases;
    let mean_gap = drawn.lease.mul_f64(sim.rng.random_range(0.2..1.0));
    let feed_every = drawn.retry;
    let mut next_feed = Instant::now();
    let mut next_fault = Instant::now() + mean_gap.mul_f64(sim.rng.random_range(0.0..2.0));
    // Health flips, from the health stream (none when health is off).
    let flip_gap = drawn.lease.mul_f64(sim.health_rng.random_range(0.3..3.0));
    let mut next_flip = drawn
        .health
        .map(|_| Instant::now() + flip_gap.mul_f64(sim.health_rng.random_range(0.0..2.0)));
    while Instant::now() < calm_at {
        let at = next_feed.min(next_fault).min(calm_at);
        let at = next_flip.map_or(at, |f| at.min(f));
        tokio::time::sleep_until(at).await;
        let now = Instant::now();
        if next_flip.is_some_and(|f| now >= f) {
            sim.flip_health();
            next_flip = Some(now + flip_gap.mul_f64(sim.health_rng.random_range(0.0..2.0)));
        }
        if now >= next_feed {
            sim.feed(false);
            next_feed = now + feed_every.mul_f64(sim.rng.random_range(0.5..1.5));
        }
        if now >= next_fault && now < calm_at {
            sim.fault(calm_at).await;
            next_fault = Instant::now() + mean_gap.mul_f64(sim.rng.random_range(0.0..2.0));
        }
    }
    // The calm: everything runs, the store behaves.
    tokio::time::sleep_until(calm_at).await;
    {
        let mut w = lock(&world);
        w.weather = Weather::calm();
        w.wake_faults = (0.0, 0.0);
        for p in w.procs.iter_mut() {
            p.cut_off_until = None;
        }
        w.trace("calm: faults stop".into());
    }
    for i in 0..sim.slots.len() {
        sim.slots[i].freeze.set(false);
        if !sim.slots[i].running {
            sim.restart(i, true);
        }
    }
    let bound = drawn.liveness_bound();
    let end = calm_at + bound + drawn.lease;
    while Instant::now() < end {
        sim.feed(true);
        tokio::time::sleep(feed_every.min(end.saturating_duration_since(Instant::now()))).await;
    }
    let mut w = lock(&world);
    w.close_all();
    w.check_beliefs();
    match w.first_belief_from(calm_at) {
        Some(t) if t <= calm_at + bound => {}
        other => {
            let msg = format!(
                "no leader within the liveness bound {:.3}s after the faults stopped at {}s (first: {})",
                bound.as_secs_f64(),
                w.at(calm_at).trim(),
                other.map_or("none".into(), |t| format!("{}s", w.at(t).trim()))
            );
            w.violation_at(calm_at + bound, msg);
        }
    }
    let simulated = Instant::now() - start;
    let out = Outcome {
        seed,
        drawn,
        trace: std::mem::take(&mut w.trace),
        violations: std::mem::take(&mut w.violations),
        first_violation: w.first_violation.map(|t| (t - start).as_secs_f64()),
        simulated,
    };
    drop(w);
    for s in &sim.slots {
        s.task.abort();
        for h in &s.helpers {
            h.abort();
        }
    }
    out
}

/// Run `seeds` seeds from `first` on `threads` threads; the outcomes of
/// the failing ones, and the simulated time of all.
pub fn run_many(first: u64, seeds: u64, threads: usize, opts: Opts) -> (Vec<Outcome>, Duration) {
    let next = std::sync::atomic::AtomicU64::new(first);
    let failed = Mutex::new(Vec::new());
    let total = Mutex::new(Duration::ZERO);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed >= first + seeds {
                    return;
                }
                let o = run(seed, opts);
                *total.lock().unwrap() += o.simulated;
                if !o.violations.is_empty() {
                    failed.lock().unwrap().push(o);
                }
            });
        }
    });
    let mut f = failed.into_inner().unwrap();
    f.sort_by_key(|o| o.seed);
    (f, total.into_inner().unwrap())
}

#[cfg(test)]
mod tests;
