//! What the simulation knows on true time: the store's objects, every
//! process that ever ran, every belief, and the checks of the promises.
//!
//! The checks (docs/design.md, "Simulation"):
//! - **beliefs never overlap**: a process *believes* it leads from the true
//!   instant its published `State` says so until that state changes or its
//!   `valid_until` (mapped from its own clock) passes; killed while it
//!   believes, it believes on until that `valid_until` (its guard's
//!   deadline: its program may run until then);
//! - **terms grow**: each leadership (a process and a term) has a higher
//!   term than every leadership that began before it;
//! - **rule 2**: a write over another process's live record comes at least
//!   `max(own lease, record's lease)` after the writer was first *told* of
//!   that version (an answer delivered to it), on the writer's own clock;
//!   a create, where a floor existed when the writer was first told the
//!   key is absent, comes two leases on its clock after that;
//!   nothing writes over an unusable object;
//! - **release barriers**: no released record is sent while the process's
//!   program still runs;
//! - **liveness**: once faults stop, a belief begins within the bound of
//!   [`super::Drawn::liveness_bound`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::lease::clock::Clock;
use crate::lease::record::LeaseRecord;

use super::store::{Objects, Req, Weather};

/// One process: an incarnation of a copy.
pub struct Proc {
    /// `c2#3`: copy 2, the third process the simulation started.
    pub name: String,
    pub identity: String,
    pub clock: Clock,
    pub lease: Duration,
    pub request_timeout: Duration,
    pub cut_off_until: Option<Instant>,
    /// Lease versions (ETag, `""` for absent), with the true instant an
    /// answer first told this process of them.
    pub told: BTreeMap<String, Instant>,
    /// Since when (true time) every answer told this process the key is
    /// absent, and whether a term floor existed then (an election had run
    /// here: rule 2 wants two leases of watching before a create).
    pub absent_since: Option<(Instant, bool)>,
    /// `true` while its program does not run (its release barrier).
    pub program_idle: watch::Receiver<bool>,
    pub wake: Arc<Notify>,
    pub alive: bool,
}

/// One interval of belief, in true time.
#[derive(Debug, Clone)]
pub struct Belief {
    pub proc: usize,
    pub term: u64,
    pub from: Instant,
    pub to: Instant,
    /// The process died while it believed: the interval runs on to the
    /// guard deadline it had handed out (its work may outlive it until
    /// then), and does not count as a leader for liveness.
    pub after_death: bool,
}

pub struct World {
    pub rng: StdRng,
    pub weather: Weather,
    pub objects: Objects,
    pub procs: Vec<Proc>,
    /// Which process wrote each version of the lease.
    pub writer: BTreeMap<String, usize>,
    pub start: Instant,
    pub trace: Vec<String>,
    pub violations: Vec<String>,
    /// The true instant of the first violation, for the report.
    pub first_violation: Option<Instant>,
    pub beliefs: Vec<Belief>,
    /// Open beliefs: process → (term, from, until).
    pub open: BTreeMap<usize, (u64, Instant, Instant)>,
    /// The highest term any lease record ever carried (what an operator
    /// passes to `reset --term` when nothing else tells it).
    pub max_term: u64,
    /// The term floor was deleted once in this run: from then on the lease
    /// key is neither deleted nor corrupted (both gone, or the floor rebuilt
    /// by a copy that never saw the newest term, is the documented limit).
    pub floor_deleted: bool,
    /// Delays of wake-ups: (chance of none, chance of two).
    pub wake_faults: (f64, f64),
    /// Trace every request at its arrival ([`super::Opts::verbose`]).
    pub verbose: bool,
}

impl World {
    pub fn new(seed_rng: StdRng, start: Instant) -> Self {
        World {
            rng: seed_rng,
            weather: Weather::calm(),
            objects: Objects::default(),
            procs: Vec::new(),
            writer: BTreeMap::new(),
            start,
            trace: Vec::new(),
            violations: Vec::new(),
            first_violation: None,
            beliefs: Vec::new(),
            open: BTreeMap::new(),
            wake_faults: (0.0, 0.0),
            max_term: 0,
            floor_deleted: false,
            verbose: false,
        }
    }

    /// The term floor's term, when the floor object exists.
    pub fn floor_term(&self) -> Option<u64> {
        self.objects
            .map
            .get(&crate::lease::floor::floor_key(super::KEY))
            .and_then(|(b, _)| serde_json::from_slice::<serde_json::Value>(b).ok())
            .and_then(|v| v["term"].as_u64())
    }

    /// Seconds of true time since the start, as the trace prints them.
    pub fn at(&self, t: Instant) -> String {
        format!(
            "{:>9.3}",
            t.saturating_duration_since(self.start).as_secs_f64()
        )
    }

    pub fn trace(&mut self, line: String) {
        let l = format!("{} {line}", self.at(Instant::now()));
        self.trace.push(l);
    }

    pub fn violation(&mut self, what: String) {
        self.violation_at(Instant::now(), what);
    }

    /// A broken promise, first seen at true instant `t`.
    pub fn violation_at(&mut self, t: Instant, what: String) {
        let l = format!("at {}s: {what}", self.at(t).trim());
        self.trace.push(format!("VIOLATION {l}"));
        self.violations.push(l);
        self.first_violation = Some(self.first_violation.map_or(t, |f| f.min(t)));
    }

    /// A request leaves a process.
    pub fn note_send(&mut self, proc: usize, key: &str, req: &Req) {
        if key != super::KEY {
            return;
        }
        if let Req::PutIfMatch(body, _) = req {
            let released = LeaseRecord::parse(body).is_ok_and(|r| r.released);
            if released && !*self.procs[proc].program_idle.borrow() {
                let name = self.procs[proc].name.clone();
                self.violation(format!(
                    "{name} sent a released record while its program still runs"
                ));
            }
        }
    }

    /// An answer reached a process: it now knows this version.
    pub fn note_delivery(&mut self, proc: usize, key: &str, etag: &str) {
        if key != super::KEY {
            return;
        }
        let now = Instant::now();
        let floor = self.floor_term().is_some();
        let p = &mut self.procs[proc];
        p.told.entry(etag.to_string()).or_insert(now);
        if etag.is_empty() {
            p.absent_since.get_or_insert((now, floor));
        } else {
            p.absent_since = None;
        }
    }

    /// Rule 2 for a create by `proc`, sent at `sent`: where a floor existed
    /// when the process first saw the key absent, it watched the absence a
    /// lease, confirmed it with a read, and waited a lease after that read:
    /// at least two leases on its own clock since it was first told.
    pub fn check_create(&mut self, proc: usize, sent: Instant) {
        if self.floor_deleted {
            return; // the documented limit: nothing says an election ran
        }
        let p = &self.procs[proc];
        let Some((since, true)) = p.absent_since else {
            return;
        };
        let waited = p.clock.to_local(sent) - p.clock.to_local(since);
        let need = p.lease * 2;
        if waited < need {
            let name = p.name.clone();
            self.violation(format!(
                "{name} created the lease key after watching it absent {:.3}s on its clock, less than {:.3}s (rule 2)",
                waited.as_secs_f64(),
                need.as_secs_f64()
            ));
        }
    }

    /// Rule 2 for a write by `proc`, sent at `sent`, over version `cond`
    /// whose body was `old`.
    pub fn check_takeover(&mut self, proc: usize, old: &[u8], cond: &str, sent: Instant) {
        let name = self.procs[proc].name.clone();
        let old = match LeaseRecord::parse(old) {
            Ok(r) => r,
            Err(e) => {
                self.violation(format!("{name} wrote over an unusable lease object ({e})"));
                return;
            }
        };
        if old.released || self.writer.get(cond) == Some(&proc) {
            return;
        }
        let p = &self.procs[proc];
        let Some(first) = p.told.get(cond).copied() else {
            self.violation(format!(
                "{name} took over term {} from a version it was never told of",
                old.term
            ));
            return;
        };
        let waited = p.clock.to_local(sent) - p.clock.to_local(first);
        let need = p.lease.max(old.lease_duration());
        if waited < need {
            self.violation(format!(
                "{name} took over term {} after watching it {:.3}s on its clock, less than {:.3}s (rule 2)",
                old.term,
                waited.as_secs_f64(),
                need.as_secs_f64()
            ));
        }
    }

    /// A released record landed: wake the successors it names, late,
    /// twice or not at all.
    pub fn wake_successors(&mut self, rec: &LeaseRecord) {
        let (p_none, p_twice) = self.wake_faults;
        for s in &rec.successors {
            let Some(p) = self
                .procs
                .iter()
                .rev()
                .find(|p| &p.identity == s && p.alive)
            else {
                continue;
            };
            if self.rng.random_bool(p_none) {
                continue;
            }
            let times = if self.rng.random_bool(p_twice) { 2 } else { 1 };
            for _ in 0..times {
                let wake = p.wake.clone();
                let late = Duration::from_micros(self.rng.random_range(200..60_000));
                tokio::spawn(async move {
                    tokio::time::sleep(late).await;
                    wake.notify_one();
                });
            }
        }
    }

    /// A process published a state (or died: `None`) at true time now.
    pub fn believe(&mut self, proc: usize, leads: Option<(u64, Instant)>) {
        let now = Instant::now();
        let name = self.procs[proc].name.clone();
        if let Some((term, from, until)) = self.open.get(&proc).copied() {
            let same = leads.is_some_and(|(t, _)| t == term) && now < until;
            if same {
                let new_until = leads.map(|l| l.1).unwrap_or(until);
                self.open.insert(proc, (term, from, new_until));
                return;
            }
            self.open.remove(&proc);
            let to = now.min(until);
            self.beliefs.push(Belief {
                proc,
                term,
                from,
                to,
                after_death: false,
            });
            self.trace(format!(
                "{name} stops believing (term {term}, belief ended at {}s)",
                self.at(to).trim()
            ));
        }
        if let Some((term, until)) = leads {
            if until > now {
                self.open.insert(proc, (term, now, until));
                let u = self.at(until);
                self.trace(format!(
                    "{name} believes it leads, term {term}, until {}s",
                    u.trim()
                ));
            }
        }
    }

    /// A process was killed (SIGKILL, OOM, a panic, a stop that did not
    /// finish): an open belief lasts to the guard deadline it handed out,
    /// `valid_until`, which is as long as its program may still run.
    pub fn crashed(&mut self, proc: usize) {
        let now = Instant::now();
        if let Some((term, from, until)) = self.open.remove(&proc) {
            let name = self.procs[proc].name.clone();
            self.beliefs.push(Belief {
                proc,
                term,
                from,
                to: now.min(until),
                after_death: false,
            });
            if until > now {
                self.beliefs.push(Belief {
                    proc,
                    term,
                    from: now,
                    to: until,
                    after_death: true,
                });
            }
            self.trace(format!(
                "{name} dies believing (term {term}); its guard deadline ends at {}s",
                self.at(until).trim()
            ));
        }
    }

    /// Close every open belief at `now` (end of the run).
    pub fn close_all(&mut self) {
        let procs: Vec<usize> = self.open.keys().copied().collect();
        for p in procs {
            self.believe(p, None);
        }
    }

    /// Overlaps of beliefs and terms that do not grow.
    pub fn check_beliefs(&mut self) {
        let mut b = self.beliefs.clone();
        b.sort_by_key(|x| (x.from, x.proc));
        for i in 0..b.len() {
            for j in i + 1..b.len() {
                if b[j].from >= b[i].to {
                    break;
                }
                if b[i].proc != b[j].proc {
                    let (x, y) = (&b[i], &b[j]);
                    let msg = format!(
                        "two leaders: {} (term {}) believed from {}s to {}s, {} (term {}) from {}s to {}s; overlap {:.3}s",
                        self.procs[x.proc].name, x.term, self.at(x.from).trim(), self.at(x.to).trim(),
                        self.procs[y.proc].name, y.term, self.at(y.from).trim(), self.at(y.to).trim(),
                        (x.to.min(y.to) - y.from).as_secs_f64()
                    );
                    self.violation_at(y.from, msg);
                    return;
                }
            }
        }
        // Leaderships (a process and a term), by when they began.
        let mut first: BTreeMap<(usize, u64), Instant> = BTreeMap::new();
        for x in &b {
            first.entry((x.proc, x.term)).or_insert(x.from);
        }
        let mut ls: Vec<(Instant, usize, u64)> =
            first.into_iter().map(|((p, t), f)| (f, p, t)).collect();
        ls.sort();
        let mut high: Option<(u64, usize)> = None;
        for (f, p, t) in ls {
            if let Some((h, hp)) = high {
                if t <= h {
                    let msg = format!(
                        "terms do not grow: {} led with term {t} from {}s, after {} had led with term {h}",
                        self.procs[p].name,
                        self.at(f).trim(),
                        self.procs[hp].name
                    );
                    self.violation_at(f, msg);
                    return;
                }
            }
            high = Some((t, p));
        }
    }

    /// The first instant at or after `t` at which some process believes.
    pub fn first_belief_from(&self, t: Instant) -> Option<Instant> {
        self.beliefs
            .iter()
            .filter(|b| b.to > t && !b.after_death)
            .map(|b| b.from.max(t))
            .min()
    }
}
