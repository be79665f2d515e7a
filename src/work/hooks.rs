//! Hook scripts on leadership events: `on_acquired`, `on_lost`,
//! `on_leader_changed`.
//!
//! Invariants:
//! - hooks run one at a time, in event order, never overlapping;
//! - each runs in its own process group, with no shell (argv as given);
//!   at its timeout the whole group gets SIGTERM, then SIGKILL; members of
//!   the group still alive when the hook exits are killed too;
//! - hooks run under the guard ([`crate::work::guard`]): a hook dies with
//!   its daemon (SIGKILL, OOM, panic). While the daemon is frozen, a hook
//!   about this copy's leadership (`on_acquired`, `on_leader_changed`
//!   naming us) is stopped at the leadership deadline (its guard is told
//!   the deadline after each renewal, with `child.kill_grace` as its grace),
//!   any other hook one grace after its timeout;
//! - `on_lost` starts no later than this copy's leadership deadline, even if
//!   the election task is stuck: the watcher keeps its own timer on the
//!   deadline. A hook still running when leadership is lost is killed
//!   (SIGKILL to its group, no grace), since it may not overlap `on_lost`,
//!   and hooks queued but not started are dropped, so `on_lost` runs next.
//!   `on_lost` itself is never cut short by a later loss;
//! - `on_acquired`, and `on_leader_changed` naming this copy, start only
//!   while the leadership they are about lasts (same term, deadline not
//!   passed), checked right before they start;
//! - every hook but `on_lost` holds the release barrier closed while it
//!   runs (closed before the check above): a graceful release writes only
//!   once such a hook is dead, so none outlives the leadership it was
//!   about. `on_lost` runs after the release and may overlap the next
//!   leader's `on_acquired`: write it to undo only what is still ours;
//! - stdout and stderr lines go to the log, tagged with the hook name
//!   (lines are cut at 4 KiB);
//! - a failing `on_acquired` asks the election to step down when the
//!   policy is `release`.

use std::collections::VecDeque;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{FailurePolicy, Hook, HooksConfig};
use crate::lease::election::{Control, Role, State};
use crate::work::backoff::{Backoff, Work};
use crate::work::procs;
use crate::work::supervisor::{Finished, OnceEvent};

/// Longest hook output line kept in the log.
/// SIGTERM-to-SIGKILL grace for a hook at its timeout.
pub const HOOK_KILL_GRACE: Duration = Duration::from_secs(2);
/// Longest wait for a finished hook's output to be read to its end.
pub const HOOK_OUTPUT_DRAIN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Acquired,
    Lost,
    LeaderChanged,
}

impl EventKind {
    fn name(self) -> &'static str {
        match self {
            EventKind::Acquired => "acquired",
            EventKind::Lost => "lost",
            EventKind::LeaderChanged => "leader_changed",
        }
    }
    fn hook_name(self) -> &'static str {
        match self {
            EventKind::Acquired => "on_acquired",
            EventKind::Lost => "on_lost",
            EventKind::LeaderChanged => "on_leader_changed",
        }
    }
}

/// One leadership event, with what the hook's environment says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub leader: Option<String>,
    pub previous_leader: Option<String>,
    pub term: u64,
    /// Why this copy's leadership began (`acquired`) or ended (`lost`),
    /// from [`State::reason`]; `None` for another copy's change.
    pub reason: Option<&'static str>,
}

/// Turns published states into events. Pure, so it is unit-tested.
#[derive(Debug, Default)]
pub struct EventDetector {
    leading: bool,
    leader: Option<String>,
}

impl EventDetector {
    /// Events implied by `s` at `now`, in order.
    pub fn update(&mut self, s: &State, now: Instant) -> Vec<Event> {
        let mut out = Vec::new();
        let leading = s.is_leader(now);
        let leader = if s.role == Role::Leader && !leading {
            None
        } else {
            s.leader.clone()
        };
        if self.leading && !leading {
            out.push(Event {
                kind: EventKind::Lost,
                leader: leader.clone(),
                previous_leader: Some(s.identity.clone()),
                term: s.term,
                reason: s.reason,
            });
        }
        if let Some(l) = &leader {
            if self.leader.as_ref() != Some(l) {
                let previous = self.leader.clone().or_else(|| {
                    // After a loss the previous leader was this copy.
                    out.last().and_then(|e| e.previous_leader.clone())
                });
                if !self.leading && leading {
                    out.push(Event {
                        kind: EventKind::Acquired,
                        leader: Some(l.clone()),
                        previous_leader: previous.clone(),
                        term: s.term,
                        reason: s.reason,
                    });
                }
                out.push(Event {
                    kind: EventKind::LeaderChanged,
                    leader: Some(l.clone()),
                    previous_leader: previous,
                    term: s.term,
                    reason: (leading || self.leading).then_some(s.reason).flatten(),
                });
                self.leader = Some(l.clone());
            } else if !self.leading && leading {
                // Re-acquired our own lease (new term), same leader name.
                out.push(Event {
                    kind: EventKind::Acquired,
                    leader: Some(l.clone()),
                    previous_leader: Some(l.clone()),
                    term: s.term,
                    reason: s.reason,
                });
            }
        }
        self.leading = leading;
        out
    }
}

/// What the hook runner shares between the watcher (which turns states
/// into events) and the executor (which runs them), under one lock.
#[derive(Default)]
struct Sched {
    queue: VecDeque<Event>,
    /// The hook running now, if any.
    running: Option<EventKind>,
    /// Cancelled to stop the running hook early (leadership was lost).
    preempt: CancellationToken,
}

fn lock(s: &Mutex<Sched>) -> std::sync::MutexGuard<'_, Sched> {
    // A poisoned lock only means a panic elsewhere; the data is still good.
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the hook runner is built with.
pub struct HooksSpec {
    pub hooks: HooksConfig,
    pub election: String,
    pub identity: String,
    /// The `s3-elector` executable to run hooks under their guard; `None`
    /// runs them directly (unit tests).
    pub guard: Option<std::path::PathBuf>,
    /// Told the term of each `on_acquired` that exited 0: the supervised
    /// program starts after it.
    pub acquired: Option<watch::Sender<u64>>,
    /// Reads `true` while no hook but `on_lost` runs: the election's
    /// release waits for it, so no hook started while leading outlives the
    /// leadership it was about.
    pub idle: Option<watch::Sender<bool>>,
    /// `run --once`: told when `on_acquired` fails by itself (not when it
    /// is killed because leadership ended), which ends the run.
    pub once: Option<mpsc::UnboundedSender<OnceEvent>>,
    /// The guard's SIGTERM-to-SIGKILL grace for a hook about this copy's
    /// leadership (`child.kill_grace`, shorter than the time between our
    /// deadline and another copy's takeover).
    pub kill_grace: Duration,
    /// Counts `on_acquired`'s failures in a row; the step-down after one
    /// sits out the cool-off it gives ([`crate::work::backoff`]).
    pub backoff: Option<Arc<Backoff>>,
    /// A failing `on_acquired` hands the lease over only to a healthy copy
    /// (the registry names them), and with none the lease is kept and the
    /// hook run again after its back-off. `false` (no registry: nobody
    /// knows who is healthy): it steps down, as before.
    pub only_to_healthy: bool,
}

/// Run hooks for the events of `rx` until `shutdown`.
pub async fn run(
    spec: HooksSpec,
    mut rx: watch::Receiver<State>,
    control: mpsc::Sender<Control>,
    shutdown: CancellationToken,
) {
    let HooksSpec {
        hooks: cfg,
        election,
        identity,
        guard,
        acquired,
        idle,
        once,
        kill_grace,
        backoff,
        only_to_healthy,
    } = spec;
    let set_idle = move |v: bool| {
        if let Some(i) = &idle {
            i.send_replace(v);
        }
    };
    let sched: Arc<Mutex<Sched>> = Arc::default();
    let wake = Arc::new(Notify::new());

    let exec = {
        let (sched, wake, shutdown, state) =
            (sched.clone(), wake.clone(), shutdown.clone(), rx.clone());
        tokio::spawn(async move {
            // A failed on_acquired to run again at its back-off's end, if
            // the lease is still ours then (the election keeps it when
            // nobody healthy can take it).
            let mut retry: Option<(Instant, Event)> = None;
            loop {
                let next = {
                    let mut g = lock(&sched);
                    g.queue.pop_front().map(|ev| {
                        if g.preempt.is_cancelled() {
                            g.preempt = CancellationToken::new();
                        }
                        g.running = Some(ev.kind);
                        // Close the release barrier *before* looking at the
                        // state below: a release that saw it open has
                        // already published "not leader", which that look
                        // sees; one that sees it closed waits for the hook.
                        if ev.kind != EventKind::Lost {
                            set_idle(false);
                        }
                        (ev, g.preempt.clone())
                    })
                };
                let Some((ev, token)) = next else {
                    let at = retry.as_ref().map(|(at, _)| *at);
                    tokio::select! {
                        _ = wake.notified() => continue,
                        _ = shutdown.cancelled() => return,
                        _ = async { match at { Some(at) => sleep_until(at).await, None => std::future::pending().await } } => {
                            // The lease was kept (nobody healthy to hand
                            // it to): run on_acquired again, while that
                            // leadership lasts.
                            if let Some((_, ev)) = retry.take() {
                                let still = {
                                    let s = state.borrow();
                                    s.is_leader(Instant::now()) && s.term == ev.term
                                };
                                if still {
                                    info!(term = ev.term, hook = "on_acquired",
                                        "the lease was kept after on_acquired failed; running it again after its back-off");
                                    lock(&sched).queue.push_back(ev);
                                }
                            }
                            continue;
                        }
                    }
                };
                if ev.kind == EventKind::Acquired {
                    retry = None;
                }
                let hook = match ev.kind {
                    EventKind::Acquired => &cfg.on_acquired,
                    EventKind::Lost => &cfg.on_lost,
                    EventKind::LeaderChanged => &cfg.on_leader_changed,
                };
                // on_acquired only while that very leadership lasts.
                let current = {
                    let s = state.borrow();
                    s.is_leader(Instant::now()) && s.term == ev.term
                };
                // So is on_leader_changed naming this copy: it would tell
                // the hook "we lead" after a release passed the barrier.
                let about_us = ev.kind == EventKind::Acquired
                    || (ev.kind == EventKind::LeaderChanged
                        && ev.leader.as_deref() == Some(identity.as_str()));
                let skip = about_us && !current;
                if skip && hook.is_some() {
                    info!(
                        term = ev.term,
                        hook = ev.kind.hook_name(),
                        "not running the hook: the leadership it is about is already over"
                    );
                }
                let preempted = token.clone();
                // A hook about our leadership is guarded by its deadline.
                let leading = about_us.then(|| (state.clone(), kill_grace));
                let result = match hook {
                    Some(hook) if !skip => {
                        let run = HookRun {
                            ev: &ev,
                            election: &election,
                            identity: &identity,
                            guard: guard.as_deref(),
                            leading,
                        };
                        run_hook(hook, run, token).await
                    }
                    _ => Ok(()),
                };
                let ok = result.is_ok();
                // Failures in a row back off; one that ran to exit 0 resets.
                // A hook killed because leadership ended proves nothing, and
                // under `keep` a failure makes no step-down to back off.
                let ran = ev.kind == EventKind::Acquired
                    && hook.is_some()
                    && !skip
                    && cfg.on_acquired_failure == FailurePolicy::Release;
                let cooloff = match (&backoff, &result) {
                    (Some(b), Ok(())) if ran => {
                        b.succeeded(Work::OnAcquired);
                        None
                    }
                    (Some(b), Err(how)) if ran && !preempted.is_cancelled() => {
                        Some(b.failed(Work::OnAcquired, how))
                    }
                    _ => None,
                };
                if ev.kind == EventKind::Acquired && !ok && !preempted.is_cancelled() {
                    if let Some(o) = &once {
                        let _ = o.send(OnceEvent::Ended(Finished::HookFailed));
                    }
                }
                lock(&sched).running = None;
                set_idle(true);
                if ev.kind == EventKind::Acquired && ok && !skip {
                    // The supervised program may start now (this term).
                    if let Some(a) = &acquired {
                        a.send_replace(ev.term);
                    }
                }
                // (One killed because its leadership ended has nothing to
                // give up.)
                if ev.kind == EventKind::Acquired
                    && !ok
                    && !preempted.is_cancelled()
                    && cfg.on_acquired_failure == FailurePolicy::Release
                {
                    if only_to_healthy {
                        warn!("on_acquired failed; this copy counts as unhealthy until it succeeds: handing the lease to a healthy copy if one is live, else keeping it and running on_acquired again after its back-off (hooks.on_acquired_failure: release)");
                        if let Some(d) = cooloff {
                            retry = Some((Instant::now() + d, ev.clone()));
                        }
                    } else {
                        warn!("on_acquired failed; releasing leadership (hooks.on_acquired_failure: release)");
                    }
                    let _ = control
                        .send(Control::StepDown {
                            reason: "on_acquired hook failed".into(),
                            term: Some(ev.term),
                            cooloff,
                            only_to_healthy,
                        })
                        .await;
                }
            }
        })
    };

    let mut detector = EventDetector::default();
    loop {
        let state = rx.borrow_and_update().clone();
        let events = detector.update(&state, Instant::now());
        if !events.is_empty() {
            let mut g = lock(&sched);
            if events.iter().any(|e| e.kind == EventKind::Lost) {
                // Nothing may overlap on_lost, and it goes first: stop the
                // running hook (never on_lost itself) and drop the events
                // not started yet, which describe a leadership that is over.
                if g.running != Some(EventKind::Lost) {
                    g.preempt.cancel();
                }
                if !g.queue.is_empty() {
                    info!(
                        dropped = g.queue.len(),
                        "leadership lost; dropping hooks that had not started"
                    );
                    g.queue.clear();
                }
            }
            g.queue.extend(events);
            drop(g);
            wake.notify_one();
        }
        // Our own timer on the deadline: on_lost must not wait for the
        // election task to notice.
        let deadline = state
            .valid_until
            .filter(|_| state.is_leader(Instant::now()));
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = rx.changed() => if r.is_err() { break },
            _ = async { match deadline { Some(d) => sleep_until(d).await, None => std::future::pending().await } } => {}
        }
    }
    let _ = exec.await;
}

/// Run one hook to completion (or timeout/preemption). True on exit 0.
/// One hook to run, and what it is run with.
struct HookRun<'a> {
    ev: &'a Event,
    election: &'a str,
    identity: &'a str,
    guard: Option<&'a std::path::Path>,
    /// For a hook about this copy's leadership: the state (its deadline)
    /// and the guard's grace, which fits in `lease_duration − renew_deadline`.
    leading: Option<(watch::Receiver<State>, Duration)>,
}

async fn run_hook(hook: &Hook, run: HookRun<'_>, preempt: CancellationToken) -> Result<(), String> {
    let HookRun {
        ev,
        election,
        identity,
        guard,
        mut leading,
    } = run;
    let name = ev.kind.hook_name();
    // Under the guard: a hook dies with its daemon, whatever kills it. A
    // hook about our leadership is stopped by its guard at the leadership
    // deadline when the daemon is frozen (told after each renewal, as the
    // program's guard is); any other hook one grace after its timeout.
    let (grace, until) = match &leading {
        Some((rx, grace)) => {
            let left = rx.borrow().valid_until.map_or(Duration::ZERO, |t| {
                t.saturating_duration_since(Instant::now())
            });
            (
                (*grace).min(HOOK_KILL_GRACE),
                left.max(Duration::from_millis(1)),
            )
        }
        None => (HOOK_KILL_GRACE, hook.timeout + HOOK_KILL_GRACE),
    };
    let mut p = match procs::command(guard, &hook.command, grace, until) {
        Ok(p) => p,
        Err(e) => {
            error!(hook = name, error = %e, "cannot prepare the hook's guard (its pipes); not running the hook");
            return Err(format!("cannot prepare its guard: {e}"));
        }
    };
    let cmd = &mut p.cmd;
    cmd.env("S3_ELECTOR_EVENT", ev.kind.name())
        .env("S3_ELECTOR_ELECTION", election)
        .env("S3_ELECTOR_IDENTITY", identity)
        .env("S3_ELECTOR_LEADER", ev.leader.as_deref().unwrap_or(""))
        .env(
            "S3_ELECTOR_PREVIOUS_LEADER",
            ev.previous_leader.as_deref().unwrap_or(""),
        )
        .env("S3_ELECTOR_TERM", ev.term.to_string())
        .env("S3_ELECTOR_REASON", ev.reason.unwrap_or(""))
        .process_group(0)
        .kill_on_drop(true);
    if let Some(d) = &hook.working_dir {
        cmd.current_dir(d);
    }
    let started = Instant::now();
    let mut started_proc = match procs::start_logged(p, name) {
        Ok(c) => c,
        Err(procs::StartError::Spawn(e)) => {
            error!(hook = name, command = ?hook.command, error = %e, "cannot start hook; check the path and permissions");
            return Err(format!("cannot start {:?}: {e}", hook.command[0]));
        }
        Err(procs::StartError::Gone) => return Err("it ended before it could be watched".into()),
    };
    let pgid = started_proc.pgid;
    // The guard's pipe (`started_proc.guard`) stays open for as long as this hook
    // is ours: its end would tell the guard that the daemon is gone.
    info!(hook = name, pid = pgid, term = ev.term, "hook started");
    let timeout_at = Instant::now() + hook.timeout;
    let status = loop {
        tokio::select! {
            r = started_proc.child.wait() => {
                // Members of its group that outlive the hook are killed.
                crate::work::procs::signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
                crate::work::procs::unregister(pgid);
                break r.map_err(|e| format!("cannot wait for it: {e}"));
            }
            _ = sleep_until(timeout_at) => {
                procs::stop_group(&mut started_proc.child, pgid, HOOK_KILL_GRACE, guard.is_some(), || {
                    warn!(hook = name, timeout = ?hook.timeout, "hook timed out; stopping its process group");
                })
                .await;
                break Err(format!("timed out after {}", humantime::format_duration(hook.timeout)));
            }
            _ = preempt.cancelled() => {
                // on_lost must start by the deadline and never overlap: no grace.
                procs::stop_group(&mut started_proc.child, pgid, Duration::ZERO, guard.is_some(), || {
                    warn!(hook = name, "leadership lost while the hook ran; killed it so on_lost can run");
                })
                .await;
                break Err("killed: the leadership it was about ended".into());
            }
            // A renewal: tell the guard the new deadline.
            changed = async { leading.as_mut().expect("checked by the guard").0.changed().await }, if leading.is_some() => {
                let until = leading.as_mut().and_then(|(rx, _)| {
                    let s = rx.borrow_and_update();
                    s.valid_until.filter(|_| s.is_leader(Instant::now()))
                });
                if changed.is_err() {
                    leading = None;
                }
                if let (Some(pipe), Some(until)) = (started_proc.guard.as_mut(), until) {
                    procs::tell_guard(pipe, until).await;
                }
            }
        }
    };
    started_proc.guard = None;
    started_proc.drain(HOOK_OUTPUT_DRAIN).await;
    let took = started.elapsed();
    match status {
        Ok(s) if s.success() => {
            info!(
                hook = name,
                took_ms = took.as_millis() as u64,
                "hook finished"
            );
            Ok(())
        }
        Ok(s) => {
            warn!(hook = name, status = %s, "hook failed");
            Err(procs::describe_exit(s))
        }
        Err(how) => Err(how),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn st(role: Role, leader: Option<&str>, term: u64, valid: bool) -> State {
        State {
            role,
            identity: "me".into(),
            incarnation: "1111111111111111".into(),
            election: "e".into(),
            leader: leader.map(Into::into),
            leader_address: None,
            leader_incarnation: None,
            term,
            transitions: 0,
            acquired_at: None,
            renewed_at: None,
            valid_until: valid.then(|| Instant::now() + Duration::from_secs(10)),
            last_progress: None,
            problem: None,
            ready: true,
            candidate: true,
            watch: None,
            health: None,
            reason: None,
        }
    }

    fn kinds(v: Vec<Event>) -> Vec<EventKind> {
        v.into_iter().map(|e| e.kind).collect()
    }

    #[tokio::test]
    async fn events_follow_the_state() {
        use EventKind::*;
        let mut d = EventDetector::default();
        let now = Instant::now();
        assert_eq!(
            kinds(d.update(&st(Role::Follower, Some("a"), 1, true), now)),
            vec![LeaderChanged]
        );
        assert!(d
            .update(&st(Role::Follower, Some("a"), 1, true), now)
            .is_empty());
        let ev = d.update(&st(Role::Leader, Some("me"), 2, true), now);
        assert_eq!(kinds(ev.clone()), vec![Acquired, LeaderChanged]);
        assert_eq!(ev[0].previous_leader.as_deref(), Some("a"));
        assert_eq!(ev[0].term, 2);
        let ev = d.update(&st(Role::Follower, Some("b"), 3, true), now);
        assert_eq!(kinds(ev.clone()), vec![Lost, LeaderChanged]);
        assert_eq!(ev[1].previous_leader.as_deref(), Some("me"));
        // A leader whose deadline passed is lost, even if the role lags.
        d.update(&st(Role::Leader, Some("me"), 4, true), now);
        let past = st(Role::Leader, Some("me"), 4, false);
        assert_eq!(kinds(d.update(&past, now)), vec![Lost]);
        // Re-acquiring our own lease with a new term is a new acquisition.
        assert_eq!(
            kinds(d.update(&st(Role::Leader, Some("me"), 5, true), now)),
            vec![Acquired]
        );
    }
}

#[cfg(test)]
mod races {
    //! The outside review's reproductions (issue 13, 2b): hooks queued at
    //! the moment of a loss, and on_lost behind them.
    use super::tests::st;
    use super::*;
    use std::time::SystemTime;

    fn sh(script: &str) -> Hook {
        Hook {
            command: vec!["sh".into(), "-c".into(), script.into()],
            timeout: Duration::from_secs(10),
            working_dir: None,
        }
    }

    fn ns_now() -> u128 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }

    /// on_acquired queued behind a slow hook must not start after the loss,
    /// and on_lost must not wait behind it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_queued_on_acquired_never_runs_after_the_loss_and_on_lost_goes_first() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let cfg = HooksConfig {
            on_acquired: Some(sh(&format!(
                "date +%s%N > {d}/acq_start; sleep 1; date +%s%N > {d}/acq_end"
            ))),
            on_lost: Some(sh(&format!("date +%s%N > {d}/lost_start"))),
            on_leader_changed: Some(sh("sleep 3")),
            on_acquired_failure: FailurePolicy::Keep,
            ..HooksConfig::default()
        };
        let (tx, rx) = watch::channel(st(Role::Follower, Some("x"), 1, false));
        let (ctx, _crx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let spec = HooksSpec {
            hooks: cfg,
            election: "e".into(),
            identity: "me".into(),
            guard: None,
            acquired: None,
            idle: None,
            once: None,
            kill_grace: Duration::from_millis(500),
            backoff: None,
            only_to_healthy: false,
        };
        let task = tokio::spawn(run(spec, rx, ctx, stop.clone()));
        // A follower: on_leader_changed (3 s) starts.
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Become leader: on_acquired is queued behind the slow hook.
        tx.send_replace(st(Role::Leader, Some("me"), 2, true));
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Lose leadership (another copy leads now).
        let lost_at = ns_now();
        tx.send_replace(st(Role::Follower, Some("other"), 3, false));
        let read = |n: &str| -> Option<u128> {
            std::fs::read_to_string(dir.path().join(n))
                .ok()
                .and_then(|s| s.trim().parse().ok())
        };
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        while read("lost_start").is_none() && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.cancel();
        let _ = task.await;
        let lost_start = read("lost_start").expect("on_lost ran");
        assert!(
            read("acq_start").is_none_or(|t| t < lost_at),
            "on_acquired started {} ms after leadership was lost",
            (read("acq_start").unwrap() - lost_at) / 1_000_000
        );
        assert!(
            lost_start - lost_at < 2_000_000_000,
            "on_lost started {} ms after the loss, behind queued hooks",
            (lost_start - lost_at) / 1_000_000
        );
    }

    /// The release barrier is closed while a hook started while leading
    /// runs, and opens only once its process is gone: a release (which
    /// waits for it) never hands over while `on_acquired` lives (issue 13,
    /// 2b: hooks were outside the barrier). `on_lost` keeps it open.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_release_barrier_is_closed_while_on_acquired_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (acq, lost) = (dir.path().join("acq"), dir.path().join("lost"));
        let (idle_tx, mut idle) = watch::channel(true);
        let (tx, rx) = watch::channel(st(Role::Follower, Some("x"), 1, false));
        let (ctx, _crx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let spec = HooksSpec {
            hooks: HooksConfig {
                on_acquired: Some(sh(&format!("echo $$ > {}; exec sleep 60", acq.display()))),
                on_lost: Some(sh(&format!("echo $$ > {}; exec sleep 60", lost.display()))),
                on_leader_changed: None,
                on_acquired_failure: FailurePolicy::Keep,
                ..HooksConfig::default()
            },
            election: "e".into(),
            identity: "me".into(),
            guard: None,
            acquired: None,
            idle: Some(idle_tx),
            once: None,
            kill_grace: Duration::from_millis(500),
            backoff: None,
            only_to_healthy: false,
        };
        let task = tokio::spawn(run(spec, rx, ctx, stop.clone()));
        let pid_in = |p: std::path::PathBuf| async move {
            let end = Instant::now() + Duration::from_secs(10);
            loop {
                let pid = std::fs::read_to_string(&p)
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok());
                if let Some(pid) = pid {
                    return pid;
                }
                assert!(Instant::now() < end, "{} never started", p.display());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tx.send_replace(st(Role::Leader, Some("me"), 2, true));
        let pid = pid_in(acq.clone()).await;
        assert!(!*idle.borrow(), "barrier open while on_acquired runs");
        // The election publishes "not leader", then waits for the barrier.
        tx.send_replace(st(Role::Follower, None, 2, false));
        tokio::time::timeout(Duration::from_secs(10), idle.wait_for(|i| *i))
            .await
            .expect("barrier opens after the loss")
            .unwrap();
        let alive = crate::work::supervisor::tests::alive(pid);
        // on_lost runs with the barrier open.
        let lost_pid = pid_in(lost.clone()).await;
        let open_during_on_lost = *idle.borrow();
        for p in [pid, lost_pid] {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        stop.cancel();
        let _ = task.await;
        assert!(!alive, "barrier opened while on_acquired (pid {pid}) lived");
        assert!(open_during_on_lost, "on_lost closed the barrier");
    }

    /// `run --once`: an `on_acquired` that fails by itself ends the run;
    /// one killed because leadership ended does not (the run waits on).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_on_acquired_ends_a_once_run_a_killed_one_does_not() {
        for (script, lose, expect) in [("exit 3", false, true), ("exec sleep 30", true, false)] {
            let (once_tx, mut once_rx) = mpsc::unbounded_channel();
            let (tx, rx) = watch::channel(st(Role::Follower, Some("x"), 1, false));
            let (ctx, _crx) = mpsc::channel(16);
            let stop = CancellationToken::new();
            let spec = HooksSpec {
                hooks: HooksConfig {
                    on_acquired: Some(sh(script)),
                    on_lost: None,
                    on_leader_changed: None,
                    on_acquired_failure: FailurePolicy::Keep,
                    ..HooksConfig::default()
                },
                election: "e".into(),
                identity: "me".into(),
                guard: None,
                acquired: None,
                idle: None,
                once: Some(once_tx),
                kill_grace: Duration::from_millis(500),
                backoff: None,
                only_to_healthy: false,
            };
            let task = tokio::spawn(run(spec, rx, ctx, stop.clone()));
            tx.send_replace(st(Role::Leader, Some("me"), 2, true));
            if lose {
                tokio::time::sleep(Duration::from_millis(500)).await;
                tx.send_replace(st(Role::Follower, Some("other"), 3, false));
            }
            let got = tokio::time::timeout(Duration::from_secs(3), once_rx.recv()).await;
            stop.cancel();
            let _ = task.await;
            match got {
                Ok(Some(OnceEvent::Ended(Finished::HookFailed))) => {
                    assert!(expect, "{script}: a killed on_acquired ended the run")
                }
                Ok(other) => panic!("{script}: unexpected {other:?}"),
                Err(_) => assert!(
                    !expect,
                    "{script}: a failed on_acquired did not end the run"
                ),
            }
        }
    }

    /// Failing `on_acquired`s back off (issue 31 §3): each failure in a
    /// row asks for a step-down with a doubled cool-off; one killed because
    /// its leadership ended counts for nothing; one that exits 0 resets
    /// the count and asks for no step-down.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_on_acquired_steps_down_with_a_doubling_cooloff_and_a_success_resets_it() {
        use crate::surfaces::problems::Problems;
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("mode");
        std::fs::write(&flag, "fail").unwrap();
        let script = format!(
            "case $(cat {f}) in fail) exit 3;; hang) exec sleep 30;; esac",
            f = flag.display()
        );
        let problems = Problems::new();
        let base = Duration::from_secs(1);
        let backoff = Backoff::new(base, Duration::from_secs(16), problems.clone(), None);
        let (tx, rx) = watch::channel(st(Role::Follower, Some("x"), 1, false));
        let (ctx, mut crx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let spec = HooksSpec {
            hooks: HooksConfig {
                on_acquired: Some(sh(&script)),
                ..HooksConfig::default()
            },
            election: "e".into(),
            identity: "me".into(),
            guard: None,
            acquired: None,
            idle: None,
            once: None,
            kill_grace: Duration::from_millis(500),
            backoff: Some(backoff.clone()),
            only_to_healthy: false,
        };
        let task = tokio::spawn(run(spec, rx, ctx, stop.clone()));
        let mut term = 2;
        let lead = |term: u64| {
            tx.send_replace(st(Role::Leader, Some("me"), term, true));
        };
        let mut cooloffs = Vec::new();
        for _ in 0..3 {
            lead(term);
            let c = tokio::time::timeout(Duration::from_secs(10), crx.recv())
                .await
                .expect("a step-down request")
                .unwrap();
            let Control::StepDown {
                term: t, cooloff, ..
            } = c;
            assert_eq!(t, Some(term));
            cooloffs.push(cooloff.unwrap());
            tx.send_replace(st(Role::Follower, None, term, false));
            // Seen as a loss before the next leadership (a watch channel
            // keeps only the latest state).
            tokio::time::sleep(Duration::from_millis(300)).await;
            term += 1;
        }
        assert_eq!(cooloffs, [1, 2, 4].map(Duration::from_secs));
        let p = problems.current().unwrap();
        assert!(
            p.starts_with("on_acquired failed 3 times in a row; last: exit 3"),
            "{p}"
        );
        // Killed because the leadership ended: not counted, no step-down.
        std::fs::write(&flag, "hang").unwrap();
        lead(term);
        tokio::time::sleep(Duration::from_millis(500)).await;
        tx.send_replace(st(Role::Follower, Some("other"), term + 1, false));
        term += 2;
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(backoff.failures(Work::OnAcquired), 3);
        // A success resets it and asks for nothing.
        std::fs::write(&flag, "ok").unwrap();
        lead(term);
        let reset = async {
            while backoff.failures(Work::OnAcquired) != 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), reset)
            .await
            .expect("the success resets the count");
        assert_eq!(problems.current(), None);
        assert!(
            crx.try_recv().is_err(),
            "no step-down after a success or a kill"
        );
        stop.cancel();
        let _ = task.await;
    }

    /// With a registry (`only_to_healthy`), a failing on_acquired makes the
    /// copy unhealthy and asks to hand over only to a healthy copy. When
    /// the election keeps the lease (nobody healthy), the hook runs again
    /// after each back-off, for as long as that leadership lasts; its
    /// success makes the copy healthy and lets the program start.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kept_lease_runs_a_failing_on_acquired_again_after_each_backoff() {
        use crate::health::{Report, Verdict};
        use crate::surfaces::problems::Problems;
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("mode");
        let runs = dir.path().join("runs");
        std::fs::write(&flag, "fail").unwrap();
        let script = format!(
            "echo run >> {r}; test \"$(cat {f})\" = ok",
            f = flag.display(),
            r = runs.display()
        );
        let count = || {
            std::fs::read_to_string(&runs)
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        let (htx, hrx) = watch::channel(Report::without_check());
        let backoff = Backoff::reporting(
            Duration::from_secs(1),
            Duration::from_secs(16),
            Problems::new(),
            None,
            Some(htx),
        );
        let (tx, rx) = watch::channel(st(Role::Follower, Some("x"), 1, false));
        let (ctx, mut crx) = mpsc::channel(16);
        let (acq_tx, mut acq) = watch::channel(0u64);
        let stop = CancellationToken::new();
        let spec = HooksSpec {
            hooks: HooksConfig {
                on_acquired: Some(sh(&script)),
                ..HooksConfig::default()
            },
            election: "e".into(),
            identity: "me".into(),
            guard: None,
            acquired: Some(acq_tx),
            idle: None,
            once: None,
            kill_grace: Duration::from_millis(500),
            backoff: Some(backoff.clone()),
            only_to_healthy: true,
        };
        let task = tokio::spawn(run(spec, rx, ctx, stop.clone()));
        let next = async |crx: &mut mpsc::Receiver<Control>| {
            let c = tokio::time::timeout(Duration::from_secs(20), crx.recv())
                .await
                .expect("a step-down request")
                .unwrap();
            (c, Instant::now())
        };
        tx.send_replace(st(Role::Leader, Some("me"), 2, true));
        let (first, t1) = next(&mut crx).await;
        assert_eq!(
            first,
            Control::StepDown {
                reason: "on_acquired hook failed".into(),
                term: Some(2),
                cooloff: Some(Duration::from_secs(1)),
                only_to_healthy: true,
            }
        );
        let r = hrx.borrow().clone();
        assert_eq!(r.verdict, Verdict::Unhealthy, "{r:?}");
        assert!(
            r.work_failing
                .as_deref()
                .is_some_and(|w| w.contains("on_acquired failed (1 in a row; last: exit 1)")),
            "{r:?}"
        );
        // The election kept the lease (the state still says term 2 leads):
        // the hook runs again one cool-off later, and the next cool-off
        // doubles.
        let (second, t2) = next(&mut crx).await;
        let Control::StepDown { term, cooloff, .. } = second;
        assert_eq!((term, cooloff), (Some(2), Some(Duration::from_secs(2))));
        assert!(t2 - t1 >= Duration::from_millis(900), "{:?}", t2 - t1);
        assert_eq!(count(), 2);
        // It succeeds at the third run: healthy again, the program may
        // start, and nothing more is asked.
        std::fs::write(&flag, "ok").unwrap();
        tokio::time::timeout(Duration::from_secs(20), acq.wait_for(|t| *t == 2))
            .await
            .expect("the program may start after the success")
            .unwrap();
        assert!(
            t1.elapsed() >= Duration::from_millis(2800),
            "{:?}",
            t1.elapsed()
        );
        assert_eq!(count(), 3);
        assert_eq!(hrx.borrow().verdict, Verdict::Healthy);
        assert_eq!(hrx.borrow().work_failing, None);
        assert_eq!(backoff.failures(Work::OnAcquired), 0);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(crx.try_recv().is_err(), "nothing asked after the success");
        // A failure whose leadership then ends is not run again.
        std::fs::write(&flag, "fail").unwrap();
        tx.send_replace(st(Role::Follower, None, 2, false));
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.send_replace(st(Role::Leader, Some("me"), 3, true));
        let (c, _) = next(&mut crx).await;
        let Control::StepDown { term, .. } = c;
        assert_eq!(term, Some(3));
        tx.send_replace(st(Role::Follower, Some("other"), 4, false));
        tokio::time::sleep(Duration::from_millis(1800)).await;
        assert_eq!(count(), 4, "not run again once the leadership ended");
        stop.cancel();
        let _ = task.await;
    }

    /// Under `on_acquired_failure: keep` a failure asks for no step-down,
    /// so there is nothing to back off: it is not counted (the review of
    /// issue 31: it was, with a problem promising a cool-off).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_keep_a_failing_on_acquired_is_not_counted() {
        use crate::surfaces::problems::Problems;
        let problems = Problems::new();
        let backoff = Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(16),
            problems.clone(),
            None,
        );
        let (tx, rx) = watch::channel(st(Role::Follower, Some("x"), 1, false));
        let (ctx, mut crx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let (idle_tx, mut idle) = watch::channel(true);
        let dir = tempfile::tempdir().unwrap();
        let ran = dir.path().join("ran");
        let spec = HooksSpec {
            hooks: HooksConfig {
                on_acquired: Some(sh(&format!("touch {}; exit 3", ran.display()))),
                on_acquired_failure: FailurePolicy::Keep,
                ..HooksConfig::default()
            },
            election: "e".into(),
            identity: "me".into(),
            guard: None,
            acquired: None,
            idle: Some(idle_tx),
            once: None,
            kill_grace: Duration::from_millis(500),
            backoff: Some(backoff.clone()),
            only_to_healthy: false,
        };
        let task = tokio::spawn(run(spec, rx, ctx, stop.clone()));
        tx.send_replace(st(Role::Leader, Some("me"), 2, true));
        // The hook runs, then ends (the barrier opens again).
        let started = async {
            while !ran.exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), started)
            .await
            .expect("on_acquired ran");
        tokio::time::timeout(Duration::from_secs(10), idle.wait_for(|i| *i))
            .await
            .expect("on_acquired ends")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(backoff.failures(Work::OnAcquired), 0);
        assert_eq!(problems.current(), None);
        assert!(crx.try_recv().is_err(), "no step-down under keep");
        stop.cancel();
        let _ = task.await;
    }
}
