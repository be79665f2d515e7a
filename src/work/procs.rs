//! Child processes in their own process groups: stopping the whole group
//! (SIGTERM, then SIGKILL after a grace period), a registry of live groups
//! so that an emergency exit can kill them all first, and the forwarding of
//! their output.
//!
//! Invariants:
//! - on every stop path the signal is sent *before* anything is logged, so
//!   a slow log can never delay a kill;
//! - a child's stdout and stderr are pipes read by the daemon, never the
//!   daemon's own stderr: each line becomes one log event (fields `source`
//!   and `stream`), cut at [`MAX_LINE`] bytes, through the daemon's lossy
//!   log writer. A chatty child cannot fill the daemon's pipe, and a stalled
//!   log reader cannot block the child: its lines are dropped and counted.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;
use tracing::{info, warn};

/// Longest line of a child's output logged as one event; longer lines are
/// logged in pieces of this size.
pub const MAX_LINE: usize = 4096;

fn registry() -> &'static Mutex<HashSet<i32>> {
    static GROUPS: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    GROUPS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Remember a live process group.
pub fn register(pgid: i32) {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(pgid);
}

/// Forget a process group that is gone.
pub fn unregister(pgid: i32) {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&pgid);
}

/// How long a guard gets, once its program's group is killed, to kill the
/// descendants that left the group (re-parented to it) and exit.
pub const GUARD_SWEEP: Duration = Duration::from_millis(300);

/// SIGKILL every registered group (used before an immediate exit): first
/// every member but the leader (the guard), so that each guard can kill
/// what left its group; then, [`GUARD_SWEEP`] later, whole groups.
pub fn kill_all_now() {
    let groups: Vec<i32> = registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .copied()
        .collect();
    for &g in &groups {
        kill_members(g, true);
    }
    if !groups.is_empty() {
        std::thread::sleep(GUARD_SWEEP);
    }
    for g in groups {
        signal_group(g, Signal::SIGKILL);
    }
}

/// SIGKILL every member of group `pgid`, except its leader when
/// `spare_leader` (a guard, which then kills what left the group).
pub fn kill_members(pgid: i32, spare_leader: bool) {
    if pgid <= 1 {
        return;
    }
    if !spare_leader {
        signal_group(pgid, Signal::SIGKILL);
        return;
    }
    for pid in processes(|_, pgrp| pgrp == pgid) {
        if pid != pgid {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Pids of the processes whose (parent pid, process group) satisfy `f`,
/// from /proc.
pub fn processes(f: impl Fn(i32, i32) -> bool) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    // pid (comm) state ppid pgrp ...: comm may hold spaces.
                    let mut rest = s[s.rfind(')')? + 2..].split(' ');
                    let ppid = rest.nth(1)?.parse::<i32>().ok()?;
                    let pgrp = rest.next()?.parse::<i32>().ok()?;
                    Some(f(ppid, pgrp))
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Send `sig` to a whole group; a group that is already gone is fine.
/// Never signals pgid <= 1 (0 would be our own group, 1 init's).
pub fn signal_group(pgid: i32, sig: Signal) {
    if pgid <= 1 {
        return;
    }
    if let Err(e) = killpg(Pid::from_raw(pgid), sig) {
        if e != nix::errno::Errno::ESRCH {
            warn!(pgid, signal = %sig, error = %e, "cannot signal process group");
        }
    }
}

/// Stop a child and its group: SIGTERM (SIGKILL at once when `grace` is
/// zero), then `signalled()` (to log: after the signal, never before), wait
/// up to `grace`, then SIGKILL. Returns once the child is reaped.
/// Stragglers in the group get SIGKILL. When the child is a guard
/// (`guarded`), the SIGKILL spares it: it kills the descendants that left
/// the group and exits, or is killed [`GUARD_SWEEP`] later.
pub async fn stop_group(
    child: &mut Child,
    pgid: i32,
    grace: Duration,
    guarded: bool,
    signalled: impl FnOnce(),
) -> Option<std::process::ExitStatus> {
    if grace.is_zero() {
        kill_members(pgid, guarded);
    } else {
        signal_group(pgid, Signal::SIGTERM);
    }
    signalled();
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(r) => r.ok(),
        Err(_) => {
            kill_members(pgid, guarded);
            None
        }
    };
    let status = match status {
        Some(s) => Some(s),
        None => match tokio::time::timeout(GUARD_SWEEP, child.wait()).await {
            Ok(r) => r.ok(),
            Err(_) => {
                signal_group(pgid, Signal::SIGKILL);
                child.wait().await.ok()
            }
        },
    };
    // The leader may have exited while its children linger.
    signal_group(pgid, Signal::SIGKILL);
    unregister(pgid);
    status
}

/// A command that runs `argv`: under the guard when `guard` names the
/// `s3-elector` executable (stdin is then the pipe the guard watches; see
/// [`crate::work::guard`]: take it out of the child and keep it while the
/// process is ours, since tokio's `Child::wait` closes a stdin left in the
/// child), else directly with no stdin. `until` is the
/// leadership time left, for the guard's own deadline (zero: none).
/// Environment every program and hook of this daemon gets on top of the
/// daemon's own: set once at start ([`set_child_env`]).
static CHILD_ENV: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

/// Set the environment every program and hook gets (the daemon does, from its settings, before any child
/// starts); later calls are ignored.
pub fn set_child_env(env: Vec<(String, String)>) {
    let _ = CHILD_ENV.set(env);
}

/// A command ready to spawn, with what the daemon keeps of it afterwards.
pub struct Prepared {
    pub cmd: tokio::process::Command,
    /// Under a guard: the write end of its control channel.
    control: Option<std::os::fd::OwnedFd>,
    /// Under a guard: the read end of the program's stderr pipe (the
    /// guard's own stderr is the daemon's, for its own lines).
    stderr: Option<std::os::fd::OwnedFd>,
}

/// The daemon's end of a guard's control channel (see [`tell_guard`]).
pub type GuardPipe = tokio::net::unix::pipe::Sender;

impl Prepared {
    /// Spawn it. Returns the child, the guard's control channel (under a
    /// guard) and the program's stderr to read (`None`: `child.stderr`).
    #[allow(clippy::type_complexity)]
    pub fn spawn(
        mut self,
    ) -> std::io::Result<(
        tokio::process::Child,
        Option<GuardPipe>,
        Option<tokio::net::unix::pipe::Receiver>,
    )> {
        // Everything that can fail, before the spawn: a failure after it
        // would leave a started program without its supervisor.
        let control = self
            .control
            .take()
            .map(tokio::net::unix::pipe::Sender::from_owned_fd)
            .transpose()?;
        let stderr = self
            .stderr
            .take()
            .map(tokio::net::unix::pipe::Receiver::from_owned_fd)
            .transpose()?;
        let child = self.cmd.spawn()?;
        // The command holds the guard's ends of the pipes: drop them now,
        // so that the guard alone has them.
        drop(self.cmd);
        Ok((child, control, stderr))
    }
}

/// A child started in a process group of its own, the group registered
/// (so an emergency exit kills it), its stdout and stderr being logged.
pub struct Started {
    pub child: tokio::process::Child,
    pub pgid: i32,
    /// Under a guard: its control channel. Keep it while the process is
    /// ours (its end tells the guard the daemon is gone); drop it before
    /// [`Started::drain`].
    pub guard: Option<GuardPipe>,
    output: Vec<tokio::task::JoinHandle<()>>,
}

impl Started {
    /// Wait at most `within` for the output to be read to its end (the
    /// pipes close when the group is dead; a process that left the group
    /// may hold them open).
    pub async fn drain(&mut self, within: Duration) {
        let until = tokio::time::Instant::now() + within;
        for t in self.output.drain(..) {
            let _ = tokio::time::timeout_at(until, t).await;
        }
    }
}

/// Why [`start_logged`] started nothing to watch.
#[derive(Debug)]
pub enum StartError {
    /// The spawn failed (no such program, no permission, no pipe).
    Spawn(std::io::Error),
    /// It ended before it could be watched.
    Gone,
}

/// Spawn `p` (its command set to run in a process group of its own),
/// register the group and log each line of its output as `source`: the
/// one way hooks and the health check start a process.
pub fn start_logged(p: Prepared, source: &'static str) -> Result<Started, StartError> {
    let (mut child, guard, guarded_stderr) = p.spawn().map_err(StartError::Spawn)?;
    let pgid = child.id().ok_or(StartError::Gone)? as i32;
    register(pgid);
    let mut output = Vec::new();
    if let Some(o) = child.stdout.take() {
        output.push(tokio::spawn(forward(o, source, "stdout")));
    }
    match guarded_stderr {
        Some(e) => output.push(tokio::spawn(forward(e, source, "stderr"))),
        None => {
            if let Some(e) = child.stderr.take() {
                output.push(tokio::spawn(forward(e, source, "stderr")));
            }
        }
    }
    Ok(Started {
        child,
        pgid,
        guard,
        output,
    })
}

/// Descriptors systemd's socket activation passes (`LISTEN_FDS`, from 3
/// up): the program and hooks keep them.
pub fn listen_fds() -> i32 {
    // Only when they were meant for this process (the daemon) or its
    // parent (the guard, whose parent is the daemon): a LISTEN_FDS left
    // over in the environment is no reason to keep descriptors open.
    let pid = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|v| v.parse::<u32>().ok());
    let ours =
        pid.is_some_and(|p| p == std::process::id() || p == nix::unistd::getppid().as_raw() as u32);
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|n| ours && (0..=64).contains(n))
        .unwrap_or(0)
}

/// The guard's control channel, as the guard sees it.
pub fn guard_control_fd() -> i32 {
    3 + listen_fds()
}

/// The program's stderr, as the guard receives it.
pub fn guard_stderr_fd() -> i32 {
    4 + listen_fds()
}

/// Mark every descriptor this process inherited, from 3 up but for those
/// `LISTEN_FDS` names, close-on-exec: no child then gets a stray (a pipe
/// of whoever started the daemon, a /dev/null at fd 10). The daemon does
/// this at start, the guard before it starts the program; descriptors
/// Rust opens are close-on-exec already.
pub fn no_strays() {
    close_fds::set_fds_cloexec_threadsafe(3 + listen_fds(), &[]);
}

/// The command that starts `argv`: under its guard (`guard` is the
/// `s3-elector` executable), or directly. The child gets /dev/null as
/// stdin unless the caller sets another, a stdout pipe, and a stderr pipe
/// (under a guard, passed at [`guard_stderr_fd`], the guard's own stderr
/// being the daemon's). The guard's control channel reaches it at
/// [`guard_control_fd`]; both pipes' other ends are close-on-exec in the
/// daemon, so no other child (a hook, another guard) holds them open.
pub fn command(
    guard: Option<&std::path::Path>,
    argv: &[String],
    grace: Duration,
    until: Duration,
) -> std::io::Result<Prepared> {
    command_with(guard, argv, grace, until, Output::Log)
}

/// Where a child's stdout and stderr go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    /// Pipes the daemon reads and logs line by line (`source = "program"`).
    #[default]
    Log,
    /// The daemon's own stdout and stderr, as `consul lock` does: `run
    /// --once -- job > out.txt` leaves the job's output in the file. A
    /// stalled reader can then block the program, never the election (the
    /// daemon writes nothing to the program's descriptors).
    Inherit,
}

/// [`command`], with the child's output going where `output` says.
pub fn command_with(
    guard: Option<&std::path::Path>,
    argv: &[String],
    grace: Duration,
    until: Duration,
    output: Output,
) -> std::io::Result<Prepared> {
    let mut p = command_only(guard, argv, grace, until, output)?;
    for (k, v) in CHILD_ENV.get().into_iter().flatten() {
        p.cmd.env(k, v);
    }
    Ok(p)
}

fn command_only(
    guard: Option<&std::path::Path>,
    argv: &[String],
    grace: Duration,
    until: Duration,
    output: Output,
) -> std::io::Result<Prepared> {
    use command_fds::{CommandFdExt, FdMapping};
    use nix::fcntl::OFlag;
    use std::process::Stdio;
    let stdout = || match output {
        Output::Log => Stdio::piped(),
        Output::Inherit => Stdio::inherit(),
    };
    match guard {
        Some(exe) => {
            let (control_r, control_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
            // The program's stderr, which the guard passes on: a pipe the
            // daemon reads; or (inherit) none, and the program gets the
            // guard's own stderr, the daemon's.
            let stderr = match output {
                Output::Log => Some(nix::unistd::pipe2(OFlag::O_CLOEXEC)?),
                Output::Inherit => None,
            };
            let mut c = tokio::process::Command::new(exe);
            // `ps` and the cgroup tree show "s3-elector guard ...", while
            // the exec still goes through /proc/self/exe (which survives a
            // package upgrade).
            c.arg0("s3-elector");
            c.arg("guard")
                .arg(format!("--grace-ms={}", grace.as_millis()))
                .arg(format!(
                    "--until-ns={}",
                    if until.is_zero() {
                        0
                    } else {
                        monotonic_ns().saturating_add(until.as_nanos() as u64)
                    }
                ))
                .arg(format!("--parent={}", std::process::id()))
                .args((output == Output::Inherit).then_some("--inherit-stderr"))
                .arg("--")
                .args(argv)
                .stdin(Stdio::null())
                .stdout(stdout())
                .stderr(Stdio::inherit());
            let mut fds = vec![FdMapping {
                parent_fd: control_r,
                child_fd: guard_control_fd(),
            }];
            let mut stderr_r = None;
            if let Some((r, w)) = stderr {
                fds.push(FdMapping {
                    parent_fd: w,
                    child_fd: guard_stderr_fd(),
                });
                stderr_r = Some(r);
            }
            c.fd_mappings(fds)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok(Prepared {
                cmd: c,
                control: Some(control_w),
                stderr: stderr_r,
            })
        }
        None => {
            let mut c = tokio::process::Command::new(&argv[0]);
            c.args(&argv[1..]).stdin(Stdio::null()).stdout(stdout());
            c.stderr(match output {
                Output::Log => Stdio::piped(),
                Output::Inherit => Stdio::inherit(),
            });
            Ok(Prepared {
                cmd: c,
                control: None,
                stderr: None,
            })
        }
    }
}

/// An exit status as a shell reports it: the code, or 128 + the signal.
pub fn exit_code(s: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

/// How a process ended, for a person: "exit 3", "killed by signal 9".
pub fn describe_exit(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(n)) => format!("killed by signal {n}"),
        (None, None) => format!("{s}"),
    }
}

/// This host's CLOCK_MONOTONIC in nanoseconds: the clock the daemon's
/// (tokio's, std's) instants run on, and one every process on the host
/// reads alike, so a deadline sent as a reading of it means the same
/// moment to the guard however late the guard reads it.
pub fn monotonic_ns() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is always there");
    (t.tv_sec() as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec() as u64)
}

/// Tell a guard (on its control channel) that the leadership it guards lasts
/// until `until`: as an absolute CLOCK_MONOTONIC reading (`at <ns>`), so
/// that pipe and scheduling latency never lengthen it. True when written.
/// A pipe to a live guard never stays full; the write is bounded anyway.
pub async fn tell_guard(pipe: &mut GuardPipe, until: tokio::time::Instant) -> bool {
    use tokio::io::AsyncWriteExt;
    let left = until.saturating_duration_since(tokio::time::Instant::now());
    let at = monotonic_ns().saturating_add(left.as_nanos() as u64);
    let line = format!("at {at}\n");
    let wrote =
        tokio::time::timeout(Duration::from_millis(100), pipe.write_all(line.as_bytes())).await;
    matches!(wrote, Ok(Ok(())))
}

/// Where `name` would be run from: a path (relative to `dir` when given) or
/// a command searched in `PATH`, as `exec` does. Errors say what is wrong
/// and what to do, so that `run` and `check` refuse a program or hook that
/// could never start instead of failing at every acquisition.
pub fn find_program(
    name: &str,
    dir: Option<&std::path::Path>,
) -> Result<std::path::PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;
    let usable = |p: &std::path::Path| -> Result<(), String> {
        let m = std::fs::metadata(p).map_err(|e| format!("`{}`: {e}", p.display()))?;
        if m.is_dir() {
            return Err(format!("`{}` is a directory, not a program", p.display()));
        }
        if m.permissions().mode() & 0o111 == 0 {
            return Err(format!(
                "`{}` is not executable (mode {:o}); `chmod +x` it",
                p.display(),
                m.permissions().mode() & 0o777
            ));
        }
        Ok(())
    };
    if name.contains('/') {
        let p = match dir {
            Some(d) if !name.starts_with('/') => d.join(name),
            _ => PathBuf::from(name),
        };
        usable(&p)?;
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut last = None;
    for d in std::env::split_paths(&path) {
        let p = d.join(name);
        if p.exists() {
            match usable(&p) {
                Ok(()) => return Ok(p),
                Err(e) => last = Some(e),
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        format!(
            "`{name}` is not found in PATH ({}); give its full path",
            path.to_string_lossy()
        )
    }))
}

/// Log each line read from `r` as one event naming `source` and `stream`,
/// until the pipe closes. A line longer than [`MAX_LINE`] bytes is logged
/// cut, ending in ` [cut]`, and the rest of it is skipped: the reader never
/// holds more than one line, whatever the child writes.
pub async fn forward<R: AsyncRead + Unpin>(r: R, source: &'static str, stream: &'static str) {
    read_lines(r, |line, cut| emit(line, source, stream, cut)).await;
}

/// Call `f(line, cut)` for each line of `r` (without its newline), at most
/// [`MAX_LINE`] bytes of it; `cut` says the rest of the line was skipped.
async fn read_lines<R: AsyncRead + Unpin>(r: R, mut f: impl FnMut(&[u8], bool)) {
    let mut r = BufReader::new(r);
    let mut line: Vec<u8> = Vec::new();
    // Inside a line that was already logged cut: skip to its end.
    let mut skipping = false;
    loop {
        let buf = match r.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buf) => buf,
        };
        let newline = buf.iter().position(|b| *b == b'\n');
        let end = newline.unwrap_or(buf.len());
        if !skipping {
            let take = end.min(MAX_LINE - line.len());
            line.extend_from_slice(&buf[..take]);
            if take < end || (newline.is_none() && line.len() == MAX_LINE) {
                f(&line, true);
                line.clear();
                skipping = true;
            }
        }
        if newline.is_some() {
            if !skipping {
                f(&line, false);
            }
            line.clear();
            skipping = false;
        }
        let used = newline.map_or(buf.len(), |i| i + 1);
        r.consume(used);
    }
    if !line.is_empty() {
        f(&line, false);
    }
}

fn emit(line: &[u8], source: &'static str, stream: &'static str, cut: bool) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    // One target for all of it, so a filter can keep it apart from the
    // daemon's own lines: `S3_ELECTOR_LOG=warn,output=info`.
    if cut {
        info!(target: "output", source, stream, "{text} [cut]");
    } else {
        info!(target: "output", source, stream, "{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `drain` waits for the output of a finished process to be read, up
    /// to its bound: a straggler that left the group and holds the pipe
    /// open costs `within`, no more.
    #[tokio::test]
    async fn draining_waits_for_the_output_up_to_its_bound() {
        let argv: Vec<String> = ["sh", "-c", "sleep 2.71828 & echo started"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut p = command(None, &argv, Duration::ZERO, Duration::ZERO).unwrap();
        p.cmd.process_group(0).kill_on_drop(true);
        let mut c = start_logged(p, "test").unwrap();
        c.child.wait().await.unwrap();
        let t = tokio::time::Instant::now();
        c.drain(Duration::from_millis(300)).await;
        let took = t.elapsed();
        signal_group(c.pgid, Signal::SIGKILL);
        unregister(c.pgid);
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(2),
            "drain took {took:?}"
        );
    }

    fn alive(pid: i32) -> bool {
        // A zombie is dead: read its state, not just whether it exists.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit(')')
                    .next()
                    .map(|r| !r.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
    }

    /// `processes` finds by parent and by group; `kill_members` kills every
    /// member of a group but, when asked, its leader (a guard).
    #[tokio::test]
    async fn members_but_the_leader_are_killed_and_processes_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let member_file = dir.path().join("member");
        // The leader (sh) starts a member in its group and waits.
        let mut leader = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "sleep 60 & echo $! > {}; wait; exec sleep 60",
                member_file.display()
            ))
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = leader.id().unwrap() as i32;
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        let member: i32 = loop {
            if let Some(p) = std::fs::read_to_string(&member_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break p;
            }
            assert!(tokio::time::Instant::now() < end, "no member");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let me = std::process::id() as i32;
        // (Other tests run children of this process at the same time.)
        assert!(processes(|ppid, _| ppid == me).contains(&pgid));
        assert!(!processes(|ppid, _| ppid == me).contains(&member));
        let mut group = processes(|_, pgrp| pgrp == pgid);
        group.sort();
        let mut want = vec![pgid, member];
        want.sort();
        assert_eq!(group, want);
        kill_members(pgid, true);
        let end = tokio::time::Instant::now() + Duration::from_secs(5);
        while alive(member) {
            assert!(tokio::time::Instant::now() < end, "the member survived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(alive(pgid), "the leader was not spared");
        kill_members(pgid, false);
        let status = tokio::time::timeout(Duration::from_secs(5), leader.wait())
            .await
            .expect("the leader dies")
            .unwrap();
        assert!(!status.success());
        // No group 0 or 1, ever: nothing happens.
        kill_members(1, false);
        kill_members(0, true);
    }

    /// Exit statuses as a shell reports them.
    #[test]
    fn exit_codes_are_the_code_or_128_plus_the_signal() {
        use std::os::unix::process::ExitStatusExt;
        use std::process::ExitStatus;
        let code = exit_code;
        assert_eq!(code(ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(code(ExitStatus::from_raw(0)), 0);
        assert_eq!(code(ExitStatus::from_raw(15)), 143);
        assert_eq!(code(ExitStatus::from_raw(9)), 137);
    }
    use tokio::io::AsyncWriteExt;

    #[test]
    fn programs_are_found_as_exec_would() {
        assert!(find_program("sh", None).is_ok());
        assert!(find_program("/bin/sh", None).is_ok());
        let e = find_program("no-such-program-s3e", None).unwrap_err();
        assert!(e.contains("not found in PATH"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("job");
        std::fs::write(&f, "#!/bin/sh\n").unwrap();
        let e = find_program(f.to_str().unwrap(), None).unwrap_err();
        assert!(
            e.contains("not executable") && e.contains("chmod +x"),
            "{e}"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            find_program("./job", Some(dir.path())).unwrap(),
            dir.path().join("./job")
        );
        let e = find_program(dir.path().to_str().unwrap(), None).unwrap_err();
        assert!(e.contains("is a directory"), "{e}");
    }

    /// A stopped group's leader is reaped and its status returned: SIGTERM
    /// for one that obeys, SIGKILL after the grace for one that does not.
    #[tokio::test]
    async fn stop_group_returns_how_the_program_ended() {
        use std::os::unix::process::ExitStatusExt;
        for (script, signal) in [("sleep 30", 15), ("trap '' TERM; sleep 30", 9)] {
            let mut child = tokio::process::Command::new("sh")
                .args(["-c", script])
                .process_group(0)
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let pgid = child.id().unwrap() as i32;
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut told = false;
            let status = stop_group(&mut child, pgid, Duration::from_millis(300), false, || {
                told = true
            })
            .await
            .expect("a status");
            assert!(told);
            assert_eq!(status.signal(), Some(signal), "{script}: {status:?}");
        }
    }

    /// A child that writes far more than a line without a newline is read
    /// in bounded pieces; the reader never holds more than one line.
    #[tokio::test]
    async fn lines_are_bounded_and_long_ones_cut_once() {
        // Reads of 1,000 bytes: pieces that do not divide the line limit.
        let (mut w, r) = tokio::io::duplex(1000);
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let t = tokio::spawn(read_lines(r, move |l, cut| {
            s2.lock().unwrap().push((l.len(), cut, l.first().copied()))
        }));
        w.write_all(&vec![b'x'; MAX_LINE * 3 + 5]).await.unwrap();
        w.write_all(b"\nshort\n\nno newline at the end")
            .await
            .unwrap();
        drop(w);
        tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("ends when the pipe closes")
            .unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (MAX_LINE, true, Some(b'x')),
                (5, false, Some(b's')),
                (0, false, None),
                (21, false, Some(b'n')),
            ]
        );
    }
}
