//! The guard: a small process between the daemon and its supervised program,
//! so that the program cannot outlive the daemon's leadership whatever
//! happens to the daemon (SIGKILL, OOM kill, panic, abort, SIGSTOP).
//!
//! The daemon starts `s3-elector guard --grace G -- PROGRAM ARGS` (a hidden
//! command, not for users; `ps` shows it as `s3-elector guard`) as the
//! leader of a new process group; the guard starts the program in that same
//! group, with the guard's stdin (/dev/null, or the caller's under `run
//! --once`) and stdout (a pipe the daemon reads), and as stderr the pipe the
//! daemon passed at [`guard_stderr_fd`](crate::work::procs::guard_stderr_fd)
//! (with `--inherit-stderr`, `run --once`'s default, the guard's own stderr
//! and stdout: the caller's, never reopened by name, as they may be a
//! socket or a file opened for appending).
//! The guard's own stderr is the daemon's original stderr, where it says
//! why it stops the program. Its control channel, at
//! [`guard_control_fd`](crate::work::procs::guard_control_fd), is a pipe the
//! daemon keeps open and no other process holds, on which it writes `at <ns>` whenever its leadership is
//! extended: its renew deadline as an absolute reading of the host's
//! CLOCK_MONOTONIC, so that however late the guard reads it (spawn, pipe,
//! scheduling), the deadline is the daemon's own, never later.
//!
//! Invariants:
//! - the guard stops the program's group (SIGTERM, then SIGKILL after the
//!   grace) when its stdin ends — the kernel closes the pipe when the daemon
//!   dies, by any means — or when the last deadline it was told passes
//!   without an extension (the daemon is frozen). Since the grace is
//!   shorter than `lease_duration − renew_deadline`, the program is dead
//!   before another copy can take the lease;
//! - the daemon's own stop signals the whole group, as before: the guard
//!   ignores SIGTERM and SIGINT (the program gets them), waits for the
//!   program and exits with its status (its exit code, or 128 + signal);
//! - the guard is a child subreaper: a descendant that leaves the group
//!   (`setsid`, double fork) is re-parented to the guard. When the program
//!   ends or is stopped, the guard kills what is left of the group and
//!   everything re-parented to it, again until nothing is left, before it
//!   exits;
//! - the daemon's SIGKILL spares the guard (it kills every other member of
//!   the group), so the guard can do the above; a guard that has not exited
//!   [`GUARD_SWEEP`](crate::work::procs::GUARD_SWEEP) later is killed too;
//! - it checks its parent right after start: a daemon that died before the
//!   guard could watch it means no program is started at all;
//! - the program gets descriptors 0, 1, 2 and those `LISTEN_FDS` names,
//!   nothing else: not the control channel, not a stray;
//! - the guard says why it stops the program (deadline passed, daemon gone,
//!   stopped on request), with the program's pid, on the daemon's original
//!   stderr, so the lines reach journald even when the daemon is dead.

use std::io::BufRead;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::{getpgrp, getpid, getppid, Pid};

use crate::exit::EXIT_SOFTWARE;

/// How often the guard looks at the program, its stdin and the deadline.
const TICK: Duration = Duration::from_millis(10);

/// What the guard knows of the daemon.
#[derive(Debug, Clone, Copy)]
#[allow(clippy::disallowed_types)] // a separate process without tokio: std's clock
enum Daemon {
    /// Alive, leading until this moment (the guard's monotonic clock).
    Until(std::time::Instant),
    /// Alive, no deadline received yet.
    Unknown,
    /// Gone: its pipe closed.
    Gone,
}

/// The guard's own lines, written by a thread of their own to the daemon's
/// original stderr: a full or broken pipe there (journald stuck, a `| tee`
/// killed with the daemon) can neither block nor end the stop path. Lines
/// that do not fit the queue are dropped.
struct Say(std::sync::mpsc::SyncSender<String>);

impl Say {
    fn start() -> Say {
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(16);
        std::thread::spawn(move || {
            use std::io::Write;
            for line in rx {
                // An error (EPIPE: nobody reads) is not a reason to stop.
                let _ = writeln!(std::io::stderr(), "s3-elector guard: {line}");
            }
        });
        Say(tx)
    }

    fn line(&self, l: String) {
        let _ = self.0.try_send(l);
    }
}

/// Run the guard; returns the process exit code.
#[allow(clippy::disallowed_types)] // a separate process with no tokio runtime: std's clock
pub fn run(
    grace: Duration,
    until_ns: u64,
    argv: &[String],
    parent: i32,
    inherit_stderr: bool,
) -> i32 {
    use crate::work::procs::{guard_control_fd, guard_stderr_fd, no_strays};
    use std::time::Instant;
    // The two pipes the daemon placed, opened anew by name (a pipe opens
    // like a FIFO), so that no descriptor is taken over by number; then
    // every inherited descriptor is marked close-on-exec: the program gets
    // neither pipe, nor anything else the guard inherited.
    let fd = |n: i32| format!("/proc/self/fd/{n}");
    let control = std::fs::File::open(fd(guard_control_fd()));
    // With `inherit_stderr` the program gets the guard's own stderr (the
    // daemon's: `run --once`'s job output), never reopened by name: it may
    // be a socket (journald), which cannot be, or a file opened for
    // appending, whose reopening would write from its start.
    let program_stderr = if inherit_stderr {
        Ok(None)
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .open(fd(guard_stderr_fd()))
            .map(Some)
    };
    no_strays();
    let say = Say::start();
    if argv.is_empty() || getppid().as_raw() != parent {
        // No program, or the daemon is already gone: start nothing.
        eprintln!(
            "s3-elector guard: the daemon is gone before the program could start; not starting it"
        );
        return EXIT_SOFTWARE;
    }
    let (control, program_stderr) = match (control, program_stderr) {
        (Ok(c), Ok(e)) => (c, e),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!(
                "s3-elector guard: cannot open the daemon's pipes: {e}; not starting the program"
            );
            return EXIT_SOFTWARE;
        }
    };
    let _ = nix::sys::prctl::set_child_subreaper(true);
    // The daemon's stop signals the whole group: the program handles it;
    // the guard only must not die of it (a flag nobody reads).
    let ignored = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let _ = signal_hook::flag::register(sig, ignored.clone());
    }
    let daemon = Arc::new(Mutex::new(if until_ns == 0 {
        Daemon::Unknown
    } else {
        Daemon::Until(deadline(
            until_ns,
            crate::work::procs::monotonic_ns(),
            Instant::now(),
        ))
    }));
    {
        let daemon = daemon.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(control).lines() {
                let Ok(line) = line else { break };
                if let Some(Ok(at)) = line.trim().strip_prefix("at ").map(str::parse::<u64>) {
                    let t = deadline(at, crate::work::procs::monotonic_ns(), Instant::now());
                    *daemon.lock().unwrap_or_else(|p| p.into_inner()) = Daemon::Until(t);
                }
            }
            // EOF: the daemon is gone.
            *daemon.lock().unwrap_or_else(|p| p.into_inner()) = Daemon::Gone;
        });
    }
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    if let Some(e) = program_stderr {
        cmd.stderr(e);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("s3-elector guard: cannot start {}: {e}", argv[0]);
            return 127;
        }
    };
    let pid = child.id();
    let group = getpgrp();
    let mut stopping: Option<Instant> = None;
    let mut asked = false;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            sweep(group);
            return crate::work::procs::exit_code(status);
        }
        let now = Instant::now();
        let why = match *daemon.lock().unwrap_or_else(|p| p.into_inner()) {
            Daemon::Gone => Some("daemon gone (its control pipe closed)"),
            Daemon::Until(t) if now >= t => {
                Some("leadership deadline passed with no word from the daemon (frozen?)")
            }
            _ => None,
        };
        if !asked && stopping.is_none() && ignored.load(std::sync::atomic::Ordering::SeqCst) {
            asked = true;
            // Through the queue: under `--output inherit` this stderr is
            // the job's, which a stalled reader may have filled.
            say.line(format!(
                "program {pid}: stopping on request (SIGTERM to its group)"
            ));
        }
        match (stopping, why) {
            (None, Some(why)) => {
                // The daemon died or froze past its deadline: stop the
                // program ourselves (the guard ignores the SIGTERM too).
                let _ = killpg(group, Signal::SIGTERM);
                stopping = Some(now + grace);
                say.line(format!(
                    "program {pid}: {why}; sent SIGTERM to its group, SIGKILL in {grace:?}"
                ));
            }
            (Some(t), _) if now >= t => {
                sweep(group);
                say.line(format!(
                    "program {pid}: still running {grace:?} after SIGTERM; killed its group"
                ));
                // A moment for the line to go out; the work is dead already.
                std::thread::sleep(TICK);
                return 137;
            }
            _ => {}
        }
        // A stop from the daemon reaches the program directly; the guard
        // just waits for it (the daemon enforces the grace).
        std::thread::sleep(TICK);
    }
}

/// The instant on this process's clock of the CLOCK_MONOTONIC reading
/// `at_ns`, given that the clock reads `now_ns` at `now` (already past:
/// `now`).
#[allow(clippy::disallowed_types)] // a separate process without tokio: std's clock
fn deadline(at_ns: u64, now_ns: u64, now: std::time::Instant) -> std::time::Instant {
    now + Duration::from_nanos(at_ns.saturating_sub(now_ns))
}

/// SIGKILL everything left of the program: the members of its group (but
/// the guard) and every process re-parented to the guard (descendants that
/// left the group: `setsid`, double fork), reaping them; again until none
/// is left, since a process killed now may leave orphans of its own.
fn sweep(group: Pid) {
    use crate::work::procs::processes;
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let me = getpid().as_raw();
    for _ in 0..100 {
        let mut left = processes(|ppid, pgrp| pgrp == group.as_raw() || ppid == me);
        left.retain(|&p| p != me);
        for &pid in &left {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        // Reap whatever of ours has died (zombies are children too).
        while let Ok(st) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            if st == WaitStatus::StillAlive {
                break;
            }
        }
        if left.is_empty() {
            return;
        }
        std::thread::sleep(TICK);
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_types)] // the guard's clock is std's
mod tests {
    use super::*;

    /// The deadline is absolute: a message read 300 ms late means the same
    /// moment, 300 ms closer, not 300 ms later (issue 30).
    #[test]
    fn a_deadline_read_late_is_not_lengthened() {
        let now = std::time::Instant::now();
        let sent_at = 1_000_000_000; // the daemon's clock when it wrote
        let at = sent_at + 2_000_000_000; // 2 s of leadership left
        assert_eq!(deadline(at, sent_at, now), now + Duration::from_secs(2));
        let read_late = sent_at + 300_000_000;
        assert_eq!(
            deadline(at, read_late, now),
            now + Duration::from_millis(1_700)
        );
        // Read after it passed: over at once.
        assert_eq!(deadline(at, at + 5, now), now);
    }

    #[test]
    fn the_monotonic_clock_is_the_one_std_instants_run_on() {
        let (a, t0) = (
            crate::work::procs::monotonic_ns(),
            std::time::Instant::now(),
        );
        std::thread::sleep(Duration::from_millis(20));
        let (b, t1) = (
            crate::work::procs::monotonic_ns(),
            std::time::Instant::now(),
        );
        let ns = (t1 - t0).as_nanos() as i128;
        assert!(
            ((b - a) as i128 - ns).abs() < 5_000_000,
            "{} vs {ns}",
            b - a
        );
    }
}
