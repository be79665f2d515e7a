//! The supervised child (`s3-elector run --config F -- program args`), in
//! the style of `consul lock`: the program runs only while this copy leads.
//!
//! Invariants:
//! - the child is started only while this copy holds a valid lease, with
//!   `S3_ELECTOR_TERM` (and the hook variables) in its environment;
//! - when leadership ends (published, or this task's own timer on the
//!   deadline fires) its process group gets SIGTERM, then SIGKILL after
//!   `kill_grace`; config checks keep `kill_grace < lease_duration -
//!   renew_deadline`, so the kill lands before another copy can take over;
//! - the release barrier reads `true` only while no child runs: a graceful
//!   release (shutdown, step-down) waits for the child to be dead. It is
//!   closed *before* the decision to start a child and the leadership is
//!   checked again after closing it, so a release racing a start either
//!   prevents the start or waits for the child;
//! - its stdout and stderr are read by the daemon and logged line by line
//!   (`source = "program"`), so it can never fill the daemon's own pipe;
//!   or, with `--output inherit` (`run --once`'s default), they are the
//!   daemon's own: the daemon never writes to them, so a stalled reader
//!   can block the program, never the election;
//! - if the child exits by itself while leading, the policy decides:
//!   `release` (step down) or `restart` (after a short pause).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Child;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::ChildExit;
use crate::lease::election::{Control, State};
use crate::work::backoff::{Backoff, Work};
use crate::work::procs;

/// Pause before restarting a child that exited (policy `restart`).
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// What the supervisor needs to know.
pub struct ChildSpec {
    pub argv: Vec<String>,
    /// The `s3-elector` executable to run the program under its guard
    /// ([`crate::work::guard`]); `None` runs the program directly (unit
    /// tests, whose executable has no `guard` command).
    pub guard: Option<std::path::PathBuf>,
    /// With an `on_acquired` hook: the last term whose hook exited 0. The
    /// program starts only once it names the current term.
    pub after: Option<watch::Receiver<u64>>,
    pub on_exit: ChildExit,
    pub kill_grace: Duration,
    pub election: String,
    pub identity: String,
    /// `run --once`: the program runs one time. This is told when it
    /// starts, and when it ends (or is stopped because leadership ended);
    /// the supervisor then stops, and `on_exit` does not apply.
    pub once: Option<mpsc::UnboundedSender<OnceEvent>>,
    /// Counts the program's failures in a row under `on_exit: release`
    /// (it could not start, or exited within `lease` of starting); the
    /// step-down after one sits out the cool-off it gives. A program still
    /// running `lease` after its start resets the count.
    pub backoff: Option<Arc<Backoff>>,
    /// `timing.lease_duration`.
    pub lease: Duration,
    /// Where its stdout and stderr go: logged (the daemon's default), or
    /// the daemon's own (`run --once`'s default).
    pub output: procs::Output,
}

/// What a `run --once` daemon learns from its leader-only work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnceEvent {
    /// The program started: from now on only its end decides the outcome.
    Started,
    /// The run is over.
    Ended(Finished),
}

/// How a `run --once` run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The program exited by itself while this copy led: its exit code, or
    /// 128 + the signal that ended it.
    Exited(i32),
    /// Leadership ended while the program ran, and it was stopped.
    Lost,
    /// `on_acquired` failed (non-zero exit or timeout): the program did not
    /// start.
    HookFailed,
}

struct Running {
    child: Child,
    pgid: i32,
    term: u64,
    /// The guard's stdin: where the leadership deadline is sent.
    heartbeat: Option<procs::GuardPipe>,
    /// The deadline last sent.
    sent_until: Option<Instant>,
    started: Instant,
    /// It has run a lease: its back-off count was reset.
    proven: bool,
}

/// Supervise until `shutdown`; the child is stopped before this returns.
pub async fn run(
    mut spec: ChildSpec,
    mut rx: watch::Receiver<State>,
    idle: watch::Sender<bool>,
    control: mpsc::Sender<Control>,
    shutdown: CancellationToken,
) {
    let mut running: Option<Running> = None;
    let mut not_before = Instant::now();
    // The term this supervisor asked to give up (the program exited under
    // `release`, or could not start): no new start in it while the
    // step-down is on its way (a slow renewal delays it), which would
    // count a second failure for one leadership.
    let mut given_up: Option<u64> = None;
    loop {
        let state = rx.borrow_and_update().clone();
        let now = Instant::now();
        let leading = state.is_leader(now);
        let may_start = given_up != Some(state.term);
        if !leading {
            if let Some(r) = running.take() {
                stop(r, &spec, "leadership ended").await;
                let _ = idle.send(true);
                if let Some(once) = spec.once.take() {
                    let _ = once.send(OnceEvent::Ended(Finished::Lost));
                    break;
                }
            }
        } else if running.is_none() && may_start && now >= not_before {
            // Close the release barrier *before* deciding to start, then
            // look again: a release that began meanwhile either saw the
            // barrier open (and published "not leader" first, which the
            // second look sees) or waits for this program to stop.
            let _ = idle.send(false);
            let state = rx.borrow().clone();
            let hook_done = spec
                .after
                .as_ref()
                .is_none_or(|a| *a.borrow() == state.term);
            if !state.is_leader(Instant::now()) || !hook_done {
                let _ = idle.send(true);
                if !hook_done {
                    // Wait for on_acquired (or the end of this leadership).
                    let after = spec.after.as_mut().expect("checked above");
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => break,
                        r = after.changed() => if r.is_err() { spec.after = None },
                        r = rx.changed() => if r.is_err() { break },
                    }
                }
                continue;
            }
            match start(&spec, &state) {
                Ok(r) => {
                    running = Some(r);
                    if let Some(once) = &spec.once {
                        let _ = once.send(OnceEvent::Started);
                    }
                }
                Err(e) => {
                    let _ = idle.send(true);
                    error!(command = ?spec.argv, error = %e, "cannot start the supervised program; releasing leadership");
                    let cooloff = spec.backoff.as_ref().map(|b| {
                        b.failed(
                            Work::Program,
                            &format!("cannot start {:?}: {e}", spec.argv[0]),
                        )
                    });
                    given_up = Some(state.term);
                    let _ = control
                        .send(Control::StepDown {
                            reason: "supervised program could not start".into(),
                            term: Some(state.term),
                            cooloff,
                            only_to_healthy: false,
                        })
                        .await;
                    not_before = now + RESTART_DELAY;
                }
            }
        }
        if let Some(r) = running.as_mut().filter(|_| leading) {
            heartbeat(r, state.valid_until).await;
        }
        let deadline = state.valid_until.filter(|_| leading);
        let retry_at = (leading && running.is_none() && may_start).then_some(not_before);
        let proven_at = running
            .as_ref()
            .filter(|r| !r.proven)
            .map(|r| r.started + spec.lease);
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            // Our own timer: the kill starts at the deadline even if the
            // election task never publishes the loss.
            _ = opt_sleep(deadline) => {}
            status = async {
                match running.as_mut() {
                    Some(r) => r.child.wait().await.ok(),
                    None => std::future::pending().await,
                }
            } => {
                let r = running.take().expect("a child was running");
                procs::signal_group(r.pgid, nix::sys::signal::Signal::SIGKILL);
                procs::unregister(r.pgid);
                let _ = idle.send(true);
                if let Some(once) = spec.once.take() {
                    let code = status.map_or(1, procs::exit_code);
                    info!(code, term = r.term, "supervised program exited (run --once)");
                    let _ = once.send(OnceEvent::Ended(Finished::Exited(code)));
                    break;
                }
                match spec.on_exit {
                    ChildExit::Release => {
                        let how = status.map_or_else(|| "its status is unknown".into(), procs::describe_exit);
                        warn!(status = %how, term = r.term, "supervised program exited; releasing leadership (child.on_exit: release)");
                        // Exited within a lease of starting: a failure in a
                        // row, which backs off (after a lease: a plain one).
                        let cooloff = spec.backoff.as_ref().filter(|_| !r.proven).map(|b| b.failed(Work::Program, &how));
                        given_up = Some(r.term);
                        let _ = control.send(Control::StepDown { reason: "supervised program exited".into(), term: Some(r.term), cooloff, only_to_healthy: false }).await;
                        not_before = Instant::now() + RESTART_DELAY;
                    }
                    ChildExit::Restart => {
                        let how = status.map_or_else(|| "its status is unknown".into(), procs::describe_exit);
                        warn!(status = %how, term = r.term, "supervised program exited; restarting it (child.on_exit: restart)");
                        not_before = Instant::now() + RESTART_DELAY;
                    }
                }
            }
            _ = opt_sleep(retry_at) => {}
            _ = opt_sleep(proven_at) => {
                if let Some(r) = running.as_mut() {
                    r.proven = true;
                }
                if let Some(b) = &spec.backoff {
                    b.succeeded(Work::Program);
                }
            }
            r = rx.changed() => if r.is_err() { break },
        }
    }
    if let Some(r) = running.take() {
        stop(r, &spec, "shutting down").await;
    }
    let _ = idle.send(true);
}

/// Tell the guard how long this leadership lasts now (after a renewal). A
/// guard that is not told in time stops the program itself.
async fn heartbeat(r: &mut Running, until: Option<Instant>) {
    let (Some(pipe), Some(until)) = (r.heartbeat.as_mut(), until) else {
        return;
    };
    if r.sent_until == Some(until) {
        return;
    }
    if procs::tell_guard(pipe, until).await {
        r.sent_until = Some(until);
    }
}

async fn opt_sleep(at: Option<Instant>) {
    match at {
        Some(t) => sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn start(spec: &ChildSpec, state: &State) -> std::io::Result<Running> {
    let until = state.valid_until.map_or(Duration::ZERO, |t| {
        t.saturating_duration_since(Instant::now())
    });
    let until = until.max(Duration::from_millis(1));
    let mut p = procs::command_with(
        spec.guard.as_deref(),
        &spec.argv,
        spec.kill_grace,
        until,
        spec.output,
    )?;
    // `run --once` is a command line's job: it reads the caller's stdin
    // (a pipe, a file). Not a terminal: the program runs in a process
    // group of its own, in the background, and reading the terminal would
    // stop it (SIGTTIN), guard and all. The daemon's program gets /dev/null.
    if spec.once.is_some() && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        p.cmd.stdin(Stdio::inherit());
    }
    p.cmd
        .env("S3_ELECTOR_TERM", state.term.to_string())
        .env("S3_ELECTOR_REASON", state.reason.unwrap_or(""))
        .env("S3_ELECTOR_ELECTION", &spec.election)
        .env("S3_ELECTOR_IDENTITY", &spec.identity)
        .env("S3_ELECTOR_LEADER", &spec.identity)
        .process_group(0)
        .kill_on_drop(true);
    let (mut child, heartbeat, guarded_stderr) = p.spawn()?;
    // A pid is always there right after spawn; without one there is no
    // group to manage, and pgid 0 would mean our own group.
    let pgid = child
        .id()
        .map(|p| p as i32)
        .ok_or_else(|| std::io::Error::other("the program exited before it could be supervised"))?;
    procs::register(pgid);
    // Its output goes to the daemon's log, never straight to the daemon's
    // stderr (see `procs`); the readers end when its pipes close.
    if let Some(o) = child.stdout.take() {
        tokio::spawn(procs::forward(o, "program", "stdout"));
    }
    match guarded_stderr {
        Some(e) => drop(tokio::spawn(procs::forward(e, "program", "stderr"))),
        None => {
            if let Some(e) = child.stderr.take() {
                tokio::spawn(procs::forward(e, "program", "stderr"));
            }
        }
    }
    info!(event = "child_started", pid = pgid, term = state.term, command = ?spec.argv, "supervised program started");
    Ok(Running {
        heartbeat,
        child,
        pgid,
        term: state.term,
        sent_until: state.valid_until,
        started: Instant::now(),
        proven: false,
    })
}

async fn stop(mut r: Running, spec: &ChildSpec, why: &str) {
    let (pid, term, grace) = (r.pgid, r.term, spec.kill_grace);
    let status = procs::stop_group(&mut r.child, r.pgid, grace, spec.guard.is_some(), || {
        info!(
            pid,
            term,
            why,
            ?grace,
            "sent SIGTERM to the supervised program"
        );
    })
    .await;
    let how = status.map_or_else(|| "its status is unknown".into(), procs::describe_exit);
    info!(event = "child_stopped", pid = r.pgid, status = %how, "supervised program stopped");
}

#[cfg(test)]
pub(crate) mod tests {
    //! The outside review's reproduction (issue 13, 2b): a step-down racing
    //! the program's start must never leave the program running while
    //! another copy leads.
    use super::*;
    use crate::lease::election::{Election, ElectionConfig, Links};
    use crate::lease::floor::floor_key;
    use crate::lease::record::LeaseRecord;
    use crate::lease::store::memory::MemoryStore;

    pub(crate) const KEY: &str = "e/lease.json";

    pub(crate) fn ecfg(id: &str) -> ElectionConfig {
        ElectionConfig {
            identity: id.into(),
            election: "e".into(),
            key: KEY.into(),
            floor_key: floor_key(KEY),
            lease_duration: Duration::from_secs(3),
            renew_deadline: Duration::from_secs(2),
            retry_period: Duration::from_millis(500),
            advertise_address: None,
            jitter: false,
            step_down_cooloff: Duration::from_secs(10),
            release_wait: Duration::from_millis(1900),
            rank_delay: Duration::from_millis(50),
            far_poll: None,
            incarnation: "0000000000000001".into(),
            health: Default::default(),
        }
    }

    pub(crate) fn alive(pid: i32) -> bool {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
    }

    pub(crate) async fn until_leader(rx: &mut watch::Receiver<State>) {
        let wait = async {
            while !rx.borrow_and_update().is_leader(Instant::now()) {
                rx.changed().await.unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("became leader within 10 s");
    }

    /// Copy "a" on `store`, its program `sh -c script` supervised and its
    /// release barrier linked, running until `stop`.
    struct Supervised {
        cmds: mpsc::Sender<Control>,
        rx: watch::Receiver<State>,
        idle: watch::Receiver<bool>,
        stop: CancellationToken,
        tasks: [tokio::task::JoinHandle<()>; 2],
    }

    fn supervised(store: &MemoryStore, script: String, kill_grace: Duration) -> Supervised {
        let (idle_tx, idle) = watch::channel(true);
        let a = Election::new(
            store.clone(),
            ecfg("a"),
            Links {
                successors: None,
                release_barriers: vec![idle.clone()],
                watched: None,
                ..Links::default()
            },
        );
        let (cmds, rx, stop) = (a.control_sender(), a.subscribe(), CancellationToken::new());
        let spec = ChildSpec {
            guard: None,
            after: None,
            argv: vec!["sh".into(), "-c".into(), script],
            on_exit: ChildExit::Restart,
            kill_grace,
            election: "e".into(),
            identity: "a".into(),
            once: None,
            backoff: None,
            lease: Duration::from_secs(15),
            output: procs::Output::Log,
        };
        let sup = tokio::spawn(run(
            spec,
            a.subscribe(),
            idle_tx,
            cmds.clone(),
            stop.clone(),
        ));
        let el = tokio::spawn(a.run(stop.clone()));
        Supervised {
            cmds,
            rx,
            idle,
            stop,
            tasks: [sup, el],
        }
    }

    impl Supervised {
        async fn step_down(&self) {
            let cmd = Control::StepDown {
                reason: "test".into(),
                term: None,
                cooloff: None,
                only_to_healthy: false,
            };
            self.cmds.send(cmd).await.unwrap();
        }
        async fn stop(self) {
            self.stop.cancel();
            for t in self.tasks {
                let _ = t.await;
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_step_down_racing_the_start_never_leaves_the_program_running() {
        for round in 0..10 {
            let store = MemoryStore::new();
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path().display().to_string();
            // Slow to die, as real services are.
            let script = format!("trap '' TERM; echo $$ > {d}/pid; while :; do sleep 0.05; done");
            let mut a = supervised(&store, script, Duration::from_millis(900));
            until_leader(&mut a.rx).await;
            // Step down at once, while the supervisor is starting the program.
            a.step_down().await;
            let t0 = Instant::now();
            loop {
                let released = store
                    .body(KEY)
                    .is_some_and(|b| LeaseRecord::parse(&b).unwrap().released);
                if released {
                    break;
                }
                assert!(t0.elapsed() < Duration::from_secs(5), "no release");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // Once the release is written, A's program must be gone.
            let pid: Option<i32> = std::fs::read_to_string(dir.path().join("pid"))
                .ok()
                .and_then(|s| s.trim().parse().ok());
            let b = Election::new(store.clone(), ecfg("b"), Links::default());
            let mut brx = b.subscribe();
            let bstop = CancellationToken::new();
            let bt = tokio::spawn(b.run(bstop.clone()));
            until_leader(&mut brx).await;
            let running = pid.is_some_and(alive);
            a.stop().await;
            bstop.cancel();
            let _ = bt.await;
            assert!(
                !running,
                "round {round}: A's program (pid {pid:?}) ran while B led"
            );
        }
    }

    /// The program runs while this copy leads (with its term in the
    /// environment) and is stopped when leadership ends; the release
    /// barrier is closed while it runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_program_runs_while_leading_and_stops_when_leadership_ends() {
        let store = MemoryStore::new();
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!(
            "echo $S3_ELECTOR_TERM $$ > {}.tmp && mv {0}.tmp {0}; exec sleep 60",
            pid_file.display()
        );
        let mut a = supervised(&store, script, Duration::from_millis(500));
        until_leader(&mut a.rx).await;
        let end = Instant::now() + Duration::from_secs(10);
        let (term, pid) = loop {
            if let Some((t, p)) = std::fs::read_to_string(&pid_file).ok().and_then(|s| {
                let mut w = s.split_whitespace();
                Some((
                    w.next()?.parse::<u64>().ok()?,
                    w.next()?.parse::<i32>().ok()?,
                ))
            }) {
                break (t, p);
            }
            assert!(Instant::now() < end, "the program never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(term, a.rx.borrow().term);
        assert!(alive(pid));
        assert!(!*a.idle.borrow(), "barrier open while the program runs");
        a.step_down().await;
        let end = Instant::now() + Duration::from_secs(5);
        while alive(pid) {
            assert!(Instant::now() < end, "the program outlived the leadership");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        a.stop().await;
    }

    /// A `sh -c script` program spec for the tests below, run directly
    /// (no guard) with the given policy, back-off and lease.
    fn sh_spec(
        script: String,
        on_exit: ChildExit,
        backoff: Option<Arc<Backoff>>,
        lease: Duration,
    ) -> ChildSpec {
        ChildSpec {
            guard: None,
            after: None,
            argv: vec!["sh".into(), "-c".into(), script],
            on_exit,
            kill_grace: Duration::from_millis(500),
            election: "e".into(),
            identity: "me".into(),
            once: None,
            backoff,
            lease,
            output: procs::Output::Log,
        }
    }

    /// This copy leading in `term` (valid for 10 s), as published.
    fn leading(term: u64) -> State {
        crate::work::hooks::tests::st(crate::lease::election::Role::Leader, Some("me"), term, true)
    }

    /// A back-off of 1 s to 16 s with nowhere to show its problem.
    fn test_backoff() -> Arc<Backoff> {
        Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(16),
            crate::surfaces::problems::Problems::new(),
            None,
        )
    }

    /// Under `child.on_exit: release` a program that exits asks for one
    /// step-down, and is not started again in the same term while that
    /// request is on its way (a slow renewal holds it up): one failure per
    /// leadership, never two (the review of issue 31).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_exited_program_is_not_restarted_in_the_term_it_gave_up() {
        let dir = tempfile::tempdir().unwrap();
        let starts = dir.path().join("starts");
        let backoff = test_backoff();
        let script = format!("echo x >> {}; exit 1", starts.display());
        let spec = sh_spec(
            script,
            ChildExit::Release,
            Some(backoff.clone()),
            Duration::from_secs(15),
        );
        // Leading term 2 throughout: the election has not acted on the
        // step-down yet.
        let (_tx, rx) = watch::channel(leading(2));
        let (idle_tx, _idle) = watch::channel(true);
        let (cmds, mut crx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(spec, rx, idle_tx, cmds, stop.clone()));
        let first = tokio::time::timeout(Duration::from_secs(10), crx.recv())
            .await
            .expect("a step-down request")
            .unwrap();
        let Control::StepDown { term, cooloff, .. } = first;
        assert_eq!((term, cooloff), (Some(2), Some(Duration::from_secs(1))));
        // Three restart delays later: still one start, one failure.
        tokio::time::sleep(RESTART_DELAY * 3).await;
        stop.cancel();
        let _ = task.await;
        let n = std::fs::read_to_string(&starts).unwrap().lines().count();
        assert_eq!(n, 1, "started again in the term it gave up");
        assert_eq!(backoff.failures(Work::Program), 1);
        assert!(crx.try_recv().is_err(), "one step-down request");
    }

    /// Under `child.on_exit: restart` a program that exits is started again
    /// one RESTART_DELAY later, not at once (a program that fails at start
    /// must not spin).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_exited_program_is_restarted_after_the_restart_delay() {
        let dir = tempfile::tempdir().unwrap();
        let starts = dir.path().join("starts");
        let script = format!("echo x >> {}; exit 1", starts.display());
        let spec = sh_spec(script, ChildExit::Restart, None, Duration::from_secs(15));
        let (_tx, rx) = watch::channel(leading(2));
        let (idle_tx, _idle) = watch::channel(true);
        let (cmds, _crx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(spec, rx, idle_tx, cmds, stop.clone()));
        tokio::time::sleep(RESTART_DELAY * 2 + RESTART_DELAY / 2).await;
        stop.cancel();
        let _ = task.await;
        let n = std::fs::read_to_string(&starts).unwrap().lines().count();
        assert!((2..=3).contains(&n), "{n} starts in 2.5 restart delays");
    }

    /// A program still running a lease after its start resets its count of
    /// failures in a row (the back-off starts again from the base).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_program_that_runs_a_lease_resets_its_failures() {
        let dir = tempfile::tempdir().unwrap();
        let mode = dir.path().join("mode");
        std::fs::write(&mode, "fail").unwrap();
        let backoff = test_backoff();
        let script = format!(
            "test \"$(cat {})\" = ok && exec sleep 30; exit 1",
            mode.display()
        );
        let spec = sh_spec(
            script,
            ChildExit::Release,
            Some(backoff.clone()),
            Duration::from_secs(1),
        );
        let (tx, rx) = watch::channel(leading(2));
        let (idle_tx, _idle) = watch::channel(true);
        let (cmds, mut crx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(spec, rx, idle_tx, cmds, stop.clone()));
        tokio::time::timeout(Duration::from_secs(10), crx.recv())
            .await
            .expect("a step-down request")
            .unwrap();
        assert_eq!(backoff.failures(Work::Program), 1);
        std::fs::write(&mode, "ok").unwrap();
        tx.send_replace(leading(3));
        let reset = async {
            while backoff.failures(Work::Program) != 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), reset)
            .await
            .expect("reset a lease after the program started");
        stop.cancel();
        let _ = task.await;
    }
}
