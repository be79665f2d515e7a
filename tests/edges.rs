//! Safety at the edges (issue 12's reproductions, made tests): a daemon
//! whose log pipe nobody reads, against a real SeaweedFS.

#![allow(clippy::disallowed_types)] // end-to-end tests measure real elapsed time

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

use support::*;

/// Lease 6 s, renew deadline 4 s: generous, so that a busy machine never
/// costs the leader its lease; the program's kill grace is then 1 s.
const TIMING: &str = "timing:\n  lease_duration: 6s\n  renew_deadline: 4s\n  retry_period: 1s\nhttp:\n  step_down: true\nregistry:\n  enabled: false\n";

/// A daemon started by hand (its stdout and stderr are pipes nobody reads)
/// and its supervised program; both killed on drop, the program's whole
/// process group included.
struct Stalled {
    child: Child,
    program_pid: PathBuf,
}

impl Drop for Stalled {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(pid) = read_num(&self.program_pid) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn read_num(p: &Path) -> Option<u128> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn wait_for(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos()
}

/// The daemon's stdout and stderr are one pipe nobody reads, as with a stalled
/// journald, and its program is chatty (30,000 lines, then 300 kB without a
/// newline, then a line every 50 ms): the daemon keeps
/// renewing while it leads, reports the dropped log lines, and on a
/// step-down its program is dead before another copy acquires.
#[test]
fn a_stalled_log_pipe_holds_up_neither_renewals_nor_the_program_stop() {
    let sw = Seaweed::start();
    sw.bucket("logpipe");
    let dir = sw.dir.path();
    let cfg = sw.config(dir, "logpipe", "logpipe", TIMING);
    let pid_file = dir.join("program.pid");
    let beat = dir.join("beat");
    let program = format!(
        "echo $$ > {pid}; date +%s%N > {beat}; seq 1 30000; head -c 300000 /dev/zero | tr '\\0' x; \
         while :; do date +%s%N > {beat}.tmp && mv {beat}.tmp {beat}; echo beat; sleep 0.05; done",
        pid = pid_file.display(),
        beat = beat.display()
    );
    let port = free_port();
    // stdout and stderr share one pipe, as under systemd or a container
    // runtime: `sh` starts the daemon with 2>&1.
    let cmd = daemon_command(&cfg);
    let env: Vec<(std::ffi::OsString, std::ffi::OsString)> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect();
    let mut cmd = std::process::Command::new("sh");
    cmd.env_clear()
        .envs(env)
        .args(["-c", "exec \"$0\" \"$@\" 2>&1", bin()])
        .args(["run", "--", "sh", "-c", &program])
        .env("S3_ELECTOR_IDENTITY", "a")
        .env("S3_ELECTOR_HTTP_LISTEN", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut a = Stalled {
        child: cmd.spawn().expect("start s3-elector"),
        program_pid: pid_file.clone(),
    };
    // Held open, never read: the pipe fills and stays full.
    let output = a.child.stdout.take().unwrap();
    let _stderr = a.child.stderr.take().unwrap();

    assert!(
        wait_for(Duration::from_secs(60), || read_num(&beat).is_some()),
        "A never started its program"
    );
    let (_, v) = get_json(port, "/leader");
    let (term, first_renewal) = (v["term"].as_u64(), v["renewed_at"].clone());
    assert_eq!(v["is_leader"], true, "{v}");
    // Three renew deadlines with a full pipe: still leading, same term, and
    // the renewals went on.
    std::thread::sleep(Duration::from_secs(12));
    let (_, v) = get_json(port, "/leader");
    assert_eq!(
        v["is_leader"], true,
        "A lost its lease behind a full log pipe: {v}"
    );
    assert_eq!(v["term"].as_u64(), term, "{v}");
    assert_ne!(v["renewed_at"], first_renewal, "no renewal for 12 s: {v}");
    let (_, metrics) = http(port, "GET", "/metrics");
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("s3_elector_log_lines_dropped_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no log_lines_dropped metric:\n{metrics}"));
    assert!(dropped > 0, "the pipe is full, yet nothing was dropped");

    // Step down, then let B take over.
    let (status, body) = http(port, "POST", "/step-down");
    assert_eq!(status, 202, "{body}");
    let b = Daemon::start("b", &cfg);
    let acquired = b
        .wait_event(Duration::from_secs(60), |e| e.event() == "acquired")
        .unwrap_or_else(|| panic!("B never acquired: {}", b.log_text()));
    let last_beat = read_num(&beat).expect("a heartbeat");
    assert!(
        last_beat < nanos(acquired.at),
        "A's program beat {} ms after B acquired",
        (last_beat - nanos(acquired.at)) / 1_000_000
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read_num(&beat), Some(last_beat), "A's program still runs");

    // Drain A's stderr: once lines flow again, it says how many it lost.
    let reported = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r2 = reported.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if line.contains("\"log_lines_dropped\"") {
                r2.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    assert!(
        wait_for(Duration::from_secs(30), || reported
            .load(std::sync::atomic::Ordering::SeqCst)),
        "no log_lines_dropped event after the pipe drained"
    );
}

/// A store that prints a read's ETag differently from a write's (quotes, a
/// weak `W/` prefix, case): the probe passes (normalized, they agree), and
/// after the leader dies a follower takes over. Before ETags were
/// normalized, every takeover was refused and no copy led again.
#[test]
fn etags_printed_differently_by_reads_still_allow_a_takeover() {
    let sw = Seaweed::start();
    sw.bucket("etags");
    let proxy = FaultProxy::start(&sw.endpoint);
    proxy.set(Fault::RewriteReadEtags);
    let dir = sw.dir.path();
    let timing = "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: false\n";
    let cfg = sw.config_via(dir, "etags", "etags", &proxy.endpoint(), timing);
    let mut a = Daemon::start("a", &cfg);
    assert!(
        a.wait_event(Duration::from_secs(60), |e| e.event() == "acquired")
            .is_some(),
        "A never led: {}",
        a.log_text()
    );
    let b = Daemon::start("b", &cfg);
    assert!(
        wait_for(Duration::from_secs(60), || get_json(b.http_port, "/leader")
            .1["leader"]
            == "a"),
        "B never followed A: {}",
        b.log_text()
    );
    // A renews for a while: its renewals (If-Match on the ETag its own
    // writes returned) keep working.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        get_json(a.http_port, "/leader").1["is_leader"] == true,
        "{}",
        a.log_text()
    );
    a.kill();
    assert!(
        b.wait_event(Duration::from_secs(30), |e| e.event() == "acquired")
            .is_some(),
        "B never took over from a dead A: {}",
        b.log_text()
    );
}

/// Put `body` at `key` unconditionally, as another program would.
fn plant(sw: &Seaweed, bucket: &str, key: &str, body: Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        sw.client()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .expect("plant an object");
    });
}

/// The lease object's ETag, as `status --json` prints it.
fn etag_of(cfg: &Path) -> String {
    let (code, out, err) = run_cmd(cfg, &["status", "--json"], &[]);
    assert!(code == 0 || code == 65, "status: {code} {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["etag"].as_str().expect("an etag").to_string()
}

/// `reset` of an object too large to read a term from: the term floor
/// keeps the sequence going (term 3 after terms 1 and 2, not 1 again); with
/// no floor and no readable term, reset refuses to guess unless given
/// `--term`.
#[test]
fn reset_of_an_oversized_object_never_sends_the_term_back() {
    let sw = Seaweed::start();
    sw.bucket("reset");
    let dir = sw.dir.path();
    let timing = "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: false\n";
    let cfg = sw.config(dir, "reset", "reset", timing);
    let acquired_term = |d: &Daemon| {
        d.wait_event(Duration::from_secs(60), |e| e.event() == "acquired")
            .unwrap_or_else(|| panic!("{} never acquired: {}", d.id, d.log_text()))
            .term()
            .unwrap()
    };
    let mut a = Daemon::start("a", &cfg);
    assert_eq!(acquired_term(&a), 1);
    a.kill();
    let mut b = Daemon::start("b", &cfg);
    assert_eq!(acquired_term(&b), 2);
    b.kill();
    plant(
        &sw,
        "reset",
        "s3-elector/e2e/lease.json",
        vec![b'x'; 100_000],
    );
    let (code, out, err) = run_cmd(&cfg, &["reset", "--etag", &etag_of(&cfg)], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("term 2"), "{out}");
    let c = Daemon::start("c", &cfg);
    assert_eq!(acquired_term(&c), 3, "the term went back after a reset");

    // A fresh election (no floor) whose lease object is unreadable.
    let cfg2 = dir.join("fresh.yaml");
    std::fs::write(
        &cfg2,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("election: e2e", "election: fresh"),
    )
    .unwrap();
    plant(
        &sw,
        "reset",
        "s3-elector/fresh/lease.json",
        vec![b'y'; 100_000],
    );
    let etag = etag_of(&cfg2);
    let (code, _, err) = run_cmd(&cfg2, &["reset", "--etag", &etag], &[]);
    assert_eq!(code, 64, "reset guessed a term: {err}");
    assert!(err.contains("--term"), "{err}");
    let (code, out, err) = run_cmd(&cfg2, &["reset", "--etag", &etag, "--term", "7"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let d = Daemon::start("d", &cfg2);
    assert_eq!(acquired_term(&d), 8);
}

/// A graceful stop fits its budget (issue 21): a leader whose program and
/// `on_lost` hook both ignore SIGTERM is stopped by the daemon itself (the
/// program at `kill_grace`, the hook at its timeout, each then SIGKILLed),
/// and the daemon exits within the budget it announced at start.
#[test]
fn a_graceful_stop_ends_slow_work_itself_and_fits_its_budget() {
    let sw = Seaweed::start();
    sw.bucket("budget");
    let dir = sw.dir.path();
    let journal = dir.join("journal");
    let extra = format!(
        "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: false\n\
         hooks:\n  on_lost:\n    command: [\"sh\", \"-c\", \"trap '' TERM; echo on_lost >> {j}; sleep 60\"]\n    timeout: 2s\n",
        j = journal.display()
    );
    let cfg = sw.config(dir, "budget", "budget", &extra);
    let program = "trap '' TERM; while :; do sleep 0.1; done";
    let mut d = Daemon::start_full("a", &cfg, &[], &["--", "sh", "-c", program]);
    assert!(
        d.wait_event(Duration::from_secs(60), |e| e.event() == "child_started")
            .is_some(),
        "{}",
        d.log_text()
    );
    // program 0.5 s + 1 s, release 2 × 1 s, on_lost 2 s + 2 s + 1 s, rest 1 s.
    let announced = d
        .wait_event(Duration::from_secs(5), |e| {
            e.str("message")
                .is_some_and(|m| m.starts_with("a graceful stop takes at most"))
        })
        .unwrap_or_else(|| panic!("no budget line: {}", d.log_text()));
    assert_eq!(
        announced.str("message"),
        Some("a graceful stop takes at most 9s 500ms"),
        "{}",
        announced.json
    );
    let stop = Instant::now();
    d.signal("TERM");
    let status = d
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the daemon did not exit: {}", d.log_text()));
    let took = stop.elapsed();
    assert!(status.success(), "{status:?}: {}", d.log_text());
    assert!(
        took <= Duration::from_millis(9500) + Duration::from_secs(5),
        "the stop took {took:?}, budget 9.5 s"
    );
    assert!(
        took >= Duration::from_millis(3500),
        "on_lost was not given its timeout: the stop took {took:?}"
    );
    let log = d.log_text();
    assert!(std::fs::read_to_string(&journal)
        .unwrap_or_default()
        .contains("on_lost"));
    assert!(log.contains("hook timed out"), "{log}");
    assert!(log.contains("child_stopped"), "{log}");
}

/// The journal the programs of the copies below write: `start PID TERM NS`,
/// `beat PID NS`. Returns, per program pid, (first, last) nanosecond stamp.
fn program_spans(journal: &Path) -> Vec<(u32, u128, u128)> {
    let text = std::fs::read_to_string(journal).unwrap_or_default();
    let mut spans: Vec<(u32, u128, u128)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (pid, ns) = match f.as_slice() {
            ["start", pid, _, ns] | ["beat", pid, ns] => (pid, ns),
            _ => continue,
        };
        let (Ok(pid), Ok(ns)) = (pid.parse::<u32>(), ns.parse::<u128>()) else {
            continue;
        };
        match spans.iter_mut().find(|s| s.0 == pid) {
            Some(s) => {
                s.1 = s.1.min(ns);
                s.2 = s.2.max(ns);
            }
            None => spans.push((pid, ns, ns)),
        }
    }
    spans.sort_by_key(|s| s.1);
    spans
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| r.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

const JOB: &str = "echo start $$ $S3_ELECTOR_TERM $(date +%s%N) >> \"$J\"; \
    while :; do echo beat $$ $(date +%s%N) >> \"$J\"; sleep 0.05; done";

/// Three copies run `run -- job`; the leading daemon is SIGKILLed, ten
/// times, at random moments of its leadership: its job dies with it within
/// `kill_grace` + 100 ms (the guard sees the daemon's pipe close), and no
/// two jobs ever run at once.
#[test]
fn a_killed_daemon_takes_its_program_with_it() {
    let sw = Seaweed::start();
    sw.bucket("guard");
    let dir = sw.dir.path();
    let journal = dir.join("journal");
    let timing = "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: false\nchild:\n  kill_grace: 900ms\n";
    let bound = Duration::from_millis(900 + 100);
    let cfg = sw.config(dir, "guard", "guard", timing);
    let j = journal.display().to_string();
    let env = [("J", j.as_str())];
    let mut ds: Vec<Daemon> = (0..3)
        .map(|i| Daemon::start_full(&format!("g{i}"), &cfg, &env, &["--", "sh", "-c", JOB]))
        .collect();
    for round in 0..10 {
        let refs: Vec<&Daemon> = ds.iter().filter(|d| d.alive()).collect();
        let l = wait_single_leader(&refs, Duration::from_secs(60));
        let leader_id = refs[l].id.clone();
        let idx = ds.iter().position(|d| d.id == leader_id).unwrap();
        // Its job runs; kill the daemon at a random moment after that.
        until(Duration::from_secs(30), "the leader's job started", || {
            ds[idx]
                .events()
                .iter()
                .any(|e| e.event() == "child_started")
        });
        std::thread::sleep(Duration::from_millis(rand::random::<u64>() % 1500));
        // The job itself (not its guard): the latest to start in the journal.
        let job = program_spans(&journal)
            .last()
            .expect("a job in the journal")
            .0;
        let killed = Instant::now();
        ds[idx].signal("KILL");
        // Dead within its kill grace, not at the next leader.
        let ended = wait_for(Duration::from_secs(5), || !pid_alive(job));
        let gone = killed.elapsed();
        assert!(
            ended && gone < bound,
            "round {round}: the job outlived its daemon by {gone:?} (bound {bound:?})"
        );
        ds[idx].kill(); // reap (and sweep: nothing should be left)
                        // A fresh copy keeps three in the race.
        ds.push(Daemon::start_full(
            &format!("n{round}"),
            &cfg,
            &env,
            &["--", "sh", "-c", JOB],
        ));
    }
    let refs: Vec<&Daemon> = ds.iter().filter(|d| d.alive()).collect();
    wait_single_leader(&refs, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    let spans = program_spans(&journal);
    assert!(spans.len() >= 11, "{spans:?}");
    for w in spans.windows(2) {
        assert!(
            w[0].2 < w[1].1,
            "two jobs at once: {} ran until {} but {} started at {}",
            w[0].0,
            w[0].2,
            w[1].0,
            w[1].1
        );
    }
}

/// A leader frozen (SIGSTOP) for longer than its lease: its guard stops the
/// job by the leader's deadline, before another copy can take the lease.
#[test]
fn a_frozen_daemon_s_program_is_stopped_by_its_guard() {
    let sw = Seaweed::start();
    sw.bucket("frozen");
    let dir = sw.dir.path();
    let journal = dir.join("journal");
    let timing = "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: false\n";
    let cfg = sw.config(dir, "frozen", "frozen", timing);
    let j = journal.display().to_string();
    let env = [("J", j.as_str())];
    let a = Daemon::start_full("a", &cfg, &env, &["--", "sh", "-c", JOB]);
    until(Duration::from_secs(60), "a's job started", || {
        a.events().iter().any(|e| e.event() == "child_started")
    });
    let b = Daemon::start_full("b", &cfg, &env, &["--", "sh", "-c", JOB]);
    until(Duration::from_secs(30), "b follows a", || {
        get_json(b.http_port, "/leader").1["leader"] == "a"
    });
    a.signal("STOP");
    let acquired = b
        .wait_event(Duration::from_secs(60), |e| e.event() == "acquired")
        .unwrap_or_else(|| panic!("b never took over: {}", b.log_text()));
    std::thread::sleep(Duration::from_millis(500));
    let spans = program_spans(&journal);
    assert_eq!(spans.len(), 2, "{spans:?}");
    let b_acquired = acquired
        .at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    assert!(
        spans[0].2 < b_acquired,
        "a's job ran {} ms past b's acquisition while a was frozen",
        (spans[0].2 - b_acquired) / 1_000_000
    );
    a.signal("CONT");
}

/// `is-leader` follows systemd's `ExecCondition=`: 0 on the leader, 1 on a
/// follower, 255 when the daemon cannot be asked (issue 13 §4).
#[test]
fn is_leader_answers_as_exec_condition_expects() {
    let sw = Seaweed::start();
    sw.bucket("isleader");
    let dir = sw.dir.path();
    let timing = "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: false\n";
    let cfg = sw.config(dir, "isleader", "isleader", timing);
    let a = Daemon::start("a", &cfg);
    until(Duration::from_secs(60), "a leads", || a.says_leader());
    let b = Daemon::start("b", &cfg);
    until(Duration::from_secs(30), "b follows a", || b.follows("a"));
    let ask = |port: u16| {
        let listen = format!("127.0.0.1:{port}");
        run_cmd(
            &cfg,
            &["is-leader"],
            &[("S3_ELECTOR_HTTP_LISTEN", listen.as_str())],
        )
    };
    let (code, out, err) = ask(a.http_port);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("leader, term"), "{out}");
    let (code, out, err) = ask(b.http_port);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("not leader (a leads"), "{out}");
    let (code, out, err) = ask(free_port());
    assert_eq!(code, 255, "{out}{err}");
    assert!(err.contains("cannot ask the daemon"), "{err}");
}

/// A hook running when its daemon is SIGKILLed dies with it (the guard sees
/// the daemon's pipe close), instead of running on unattended.
#[test]
fn a_killed_daemon_takes_its_running_hook_with_it() {
    let sw = Seaweed::start();
    sw.bucket("hookguard");
    let dir = sw.dir.path();
    let pid_file = dir.join("hook.pid");
    let extra = format!(
        "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: false\n\
         hooks:\n  on_acquired:\n    command: [\"sh\", \"-c\", \"echo $$ > {p}; sleep 60\"]\n    timeout: 120s\n",
        p = pid_file.display()
    );
    let cfg = sw.config(dir, "hookguard", "hookguard", &extra);
    let mut a = Daemon::start("a", &cfg);
    until(Duration::from_secs(60), "the hook runs", || {
        read_num(&pid_file).is_some()
    });
    let hook = read_num(&pid_file).unwrap() as u32;
    assert!(pid_alive(hook));
    a.signal("KILL");
    let killed = Instant::now();
    let ended = wait_for(Duration::from_secs(10), || !pid_alive(hook));
    // A hook's kill grace is 2 s: dead within that + 100 ms.
    let gone = killed.elapsed();
    assert!(
        ended && gone < Duration::from_millis(2100),
        "the hook outlived its daemon by {gone:?}"
    );
    a.kill();
}

/// A hook about this copy's leadership (`on_acquired`, timeout 120 s)
/// running when its daemon freezes (SIGSTOP) is stopped by its guard at the
/// leadership deadline, like the program: dead before another copy could
/// take the lease (`lease_duration` after the last renewal).
#[test]
fn a_frozen_daemon_s_leader_hook_ends_at_its_leadership_deadline() {
    let sw = Seaweed::start();
    sw.bucket("hookfrozen");
    let dir = sw.dir.path();
    let pid_file = dir.join("hook.pid");
    let extra = format!(
        "timing:\n  lease_duration: 6s\n  renew_deadline: 4s\n  retry_period: 1s\nregistry:\n  enabled: false\n\
         hooks:\n  on_acquired:\n    command: [\"sh\", \"-c\", \"echo $$ > {p}; exec sleep 600\"]\n    timeout: 120s\n",
        p = pid_file.display()
    );
    let cfg = sw.config(dir, "hookfrozen", "hookfrozen", &extra);
    let mut a = Daemon::start("a", &cfg);
    until(Duration::from_secs(60), "the hook runs", || {
        read_num(&pid_file).is_some()
    });
    let hook = read_num(&pid_file).unwrap() as u32;
    // Let a few renewals extend the guard's deadline first.
    std::thread::sleep(Duration::from_secs(3));
    assert!(pid_alive(hook), "the hook died while its daemon renewed");
    a.signal("STOP");
    let frozen = Instant::now();
    let ended = wait_for(Duration::from_secs(30), || !pid_alive(hook));
    let took = frozen.elapsed();
    a.signal("CONT");
    a.kill();
    assert!(ended, "the hook of a frozen daemon ran past 30 s");
    // Deadline at most 4 s after the freeze, then a 1 s grace: well before
    // another copy could take over (6 s after the last renewal).
    assert!(
        took < Duration::from_secs(6),
        "the hook ran {took:?} after the freeze"
    );
}

/// Descendants that left the process group (`setsid`) of a program that
/// ignores SIGTERM, and of a hook killed at once when leadership ends, die
/// with them: the daemon's SIGKILL spares the guard, which kills what was
/// re-parented to it (review finding 2).
#[test]
fn descendants_that_left_the_group_die_with_the_program_and_the_hook() {
    let sw = Seaweed::start();
    sw.bucket("escape");
    let dir = sw.dir.path();
    let (prog_esc, hook_esc) = (dir.join("prog-escapee"), dir.join("hook-escapee"));
    let extra = format!(
        "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: false\n\
         hooks:\n  on_acquired:\n    command: [\"sh\", \"-c\", \"setsid sh -c 'echo $$ > {h}; exec sleep 300' & sleep 300\"]\n    timeout: 120s\n  on_acquired_failure: keep\n",
        h = hook_esc.display()
    );
    let cfg = sw.config(dir, "escape", "escape", &extra);
    let program = format!(
        "trap '' TERM; setsid sh -c 'echo $$ > {p}; exec sleep 300' & while :; do sleep 0.1; done",
        p = prog_esc.display()
    );
    let mut a = Daemon::start_full("a", &cfg, &[], &["--", "sh", "-c", &program]);
    // The hook runs first; the program starts after it (never, here: the
    // hook sleeps), so step down once the hook's escapee is there, then
    // check the program's case with on_acquired gone.
    until(Duration::from_secs(60), "the hook's escapee runs", || {
        read_num(&hook_esc).is_some()
    });
    let hook_pid = read_num(&hook_esc).unwrap() as u32;
    a.signal("USR1");
    let ended = wait_for(Duration::from_secs(5), || !pid_alive(hook_pid));
    a.kill();
    assert!(
        ended,
        "the hook's escapee (pid {hook_pid}) outlived the hook"
    );

    let cfg = sw.config(
        dir,
        "escape2",
        "escape",
        "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: false\n",
    );
    let mut b = Daemon::start_full("b", &cfg, &[], &["--", "sh", "-c", &program]);
    until(
        Duration::from_secs(60),
        "the program's escapee runs",
        || read_num(&prog_esc).is_some(),
    );
    let prog_pid = read_num(&prog_esc).unwrap() as u32;
    b.signal("USR1");
    // kill_grace (0.5 s) for the TERM the program ignores, then the sweep.
    let ended = wait_for(Duration::from_secs(5), || !pid_alive(prog_pid));
    b.kill();
    assert!(
        ended,
        "the program's escapee (pid {prog_pid}) outlived the program"
    );
}

/// The program starts only after `on_acquired` exits 0 (an Elastic IP
/// moved, a role promoted first); when `on_acquired` fails, it never starts.
#[test]
fn the_program_starts_after_on_acquired_succeeds_and_never_after_it_fails() {
    let sw = Seaweed::start();
    sw.bucket("order");
    let dir = sw.dir.path();
    let journal = dir.join("journal");
    let j = journal.display().to_string();
    let timing = "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: false\n";
    let prog = [
        "--",
        "sh",
        "-c",
        "echo program $(date +%s%N) >> \"$J\"; sleep 60",
    ];
    let env = [("J", j.as_str())];
    for (exit, policy) in [(0, "release"), (1, "keep")] {
        let _ = std::fs::remove_file(&journal);
        let extra = format!(
            "{timing}hooks:\n  on_acquired_failure: {policy}\n  on_acquired:\n    command: [\"sh\", \"-c\", \"sleep 2; echo hook $(date +%s%N) >> {j}; exit {exit}\"]\n"
        );
        let cfg = sw.config(dir, &format!("order{exit}"), "order", &extra);
        let mut d = Daemon::start_full(&format!("o{exit}"), &cfg, &env, &prog);
        until(Duration::from_secs(60), "on_acquired ran", || {
            std::fs::read_to_string(&journal).is_ok_and(|t| t.contains("hook "))
        });
        std::thread::sleep(Duration::from_millis(1500));
        let text = std::fs::read_to_string(&journal).unwrap();
        let stamp = |what: &str| -> Option<u128> {
            text.lines()
                .find(|l| l.starts_with(what))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        };
        let (hook, program) = (stamp("hook "), stamp("program "));
        if exit == 0 {
            let (hook, program) = (
                hook.unwrap(),
                program.unwrap_or_else(|| panic!("no program: {text}")),
            );
            assert!(
                hook < program,
                "the program started before on_acquired ended: {text}"
            );
        } else {
            assert!(
                program.is_none(),
                "the program started although on_acquired failed: {text}"
            );
            assert!(
                d.says_leader(),
                "on_acquired_failure: keep keeps leadership"
            );
        }
        d.kill();
        // A fresh election for the next case.
        let _ = std::fs::remove_file(&journal);
        sw.bucket("order");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let c = sw.client();
            for k in ["s3-elector/e2e/lease.json", "s3-elector/e2e/term.json"] {
                let _ = c.delete_object().bucket("order").key(k).send().await;
            }
        });
    }
}

/// `run --once` (consul lock parity, issue 13 §3): the program's exit code
/// (128 + n for a signal) comes back and the lease is released; with
/// `--no-wait`, a copy that finds another leading exits 75 without running
/// anything; a waiting copy runs once the leader hands over; a loss while
/// the program runs stops it and exits 76.
#[test]
fn run_once_propagates_the_exit_code_and_releases() {
    let sw = Seaweed::start();
    sw.bucket("once");
    let dir = sw.dir.path();
    let timing = "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: false\n";
    let cfg = sw.config(dir, "once", "once", timing);
    let once = |id: &str, extra: &[&str], script: &str| {
        let mut args = vec!["--once"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sh", "-c", script]);
        Daemon::start_full(id, &cfg, &[], &args)
    };
    let code = |d: &mut Daemon, within: u64| {
        let st = d
            .wait_exit(Duration::from_secs(within))
            .unwrap_or_else(|| panic!("{} did not exit: {}", d.id, d.log_text()));
        st.code().unwrap_or(-1)
    };

    // Alone: its exit code, and the lease is released (the next copy with
    // --no-wait takes it at once).
    let ran = dir.join("ran");
    let mut a = once("a", &[], &format!("echo a > {}; exit 7", ran.display()));
    assert_eq!(code(&mut a, 60), 7, "{}", a.log_text());
    assert!(ran.exists());
    let mut b = once("b", &["--no-wait"], "kill -USR2 $$");
    assert_eq!(code(&mut b, 60), 128 + 12, "{}", b.log_text());

    // Another copy leads: --no-wait gives up, running nothing.
    let leader = Daemon::start("leader", &cfg);
    until(Duration::from_secs(60), "leader leads", || {
        leader.says_leader()
    });
    let marker = dir.join("must-not-exist");
    let mut c = once("c", &["--no-wait"], &format!("touch {}", marker.display()));
    assert_eq!(code(&mut c, 60), 75, "{}", c.log_text());
    assert!(!marker.exists(), "--no-wait ran the program");

    // Without --no-wait it waits, and runs once the leader hands over.
    let waited = dir.join("waited");
    let mut d = once("d", &[], &format!("touch {}", waited.display()));
    until(Duration::from_secs(30), "d follows", || d.follows("leader"));
    assert!(!waited.exists(), "ran while another copy led");
    leader.signal("TERM");
    assert_eq!(code(&mut d, 60), 0, "{}", d.log_text());
    assert!(waited.exists());

    // Leadership ends while the program runs: it is stopped, exit 76.
    let pid_file = dir.join("long.pid");
    let mut e = once(
        "e",
        &[],
        &format!("echo $$ > {}; exec sleep 60", pid_file.display()),
    );
    until(Duration::from_secs(60), "e's program runs", || {
        pid_file.exists()
    });
    e.signal("USR1"); // step down
    assert_eq!(code(&mut e, 60), 76, "{}", e.log_text());
    let pid = read_num(&pid_file).expect("pid") as u32;
    assert!(!pid_alive(pid), "the program outlived its --once daemon");

    // on_acquired fails: the run ends (79), the program never runs, and the
    // lease is released (the next copy runs at once).
    let hook_cfg = sw.config(
        dir,
        "once-hook",
        "once",
        &format!("{timing}hooks:\n  on_acquired:\n    command: [\"false\"]\n"),
    );
    let never = dir.join("never");
    let mut g = Daemon::start_full(
        "g",
        &hook_cfg,
        &[],
        &["--once", "--", "touch", &never.display().to_string()],
    );
    assert_eq!(code(&mut g, 60), 79, "{}", g.log_text());
    assert!(!never.exists(), "the program ran after on_acquired failed");

    // Two runs with one identity (one host): --no-wait counts the other's
    // record as another copy's.
    let pid_file = dir.join("same.pid");
    let mut h1 = once(
        "same",
        &[],
        &format!("echo $$ > {}; exec sleep 60", pid_file.display()),
    );
    until(
        Duration::from_secs(60),
        "the first run's program runs",
        || pid_file.exists(),
    );
    let mut h2 = once("same", &["--no-wait"], "exit 0");
    assert_eq!(code(&mut h2, 60), 75, "{}", h2.log_text());
    h1.signal("TERM");
    assert_eq!(code(&mut h1, 60), 143, "{}", h1.log_text());

    // A stop signal before the program ends: stopped, released, exit 143.
    let pid_file = dir.join("stopped.pid");
    let mut f = once(
        "f",
        &[],
        &format!("echo $$ > {}; exec sleep 60", pid_file.display()),
    );
    until(Duration::from_secs(60), "f's program runs", || {
        pid_file.exists()
    });
    f.signal("TERM");
    assert_eq!(code(&mut f, 60), 143, "{}", f.log_text());
    let pid = read_num(&pid_file).expect("pid") as u32;
    assert!(!pid_alive(pid), "the program outlived its --once daemon");
}

/// Issue 31 §1: the supervised program and every hook get descriptors 0, 1
/// and 2 and nothing else, although the daemon's parent (this test)
/// leaks a pipe into it; the program's stdin is /dev/null, so a program
/// that reads stdin to its end is never killed by its own guard (it used
/// to read the guard's control messages, and die a deadline later): it
/// runs through 30 s of steady leadership at a 3 s lease. The descriptors
/// are listed from outside, once each has exec'd `sleep` (a shell keeps
/// descriptors of its own while it redirects).
#[test]
fn the_program_and_hooks_get_only_stdio_and_an_empty_stdin() {
    // A stray descriptor, not close-on-exec, in the daemon's parent.
    let (_stray_r, _stray_w) = nix::unistd::pipe().unwrap();
    let sw = Seaweed::start();
    sw.bucket("fds");
    let dir = sw.dir.path();
    let (pp, hp) = (dir.join("prog.pid"), dir.join("hook.pid"));
    let extra = format!(
        "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: false\n\
         hooks:\n  on_leader_changed:\n    command: [\"sh\", \"-c\", \"echo $$ > {h}; exec sleep 120\"]\n    timeout: 120s\n",
        h = hp.display()
    );
    let cfg = sw.config(dir, "fds", "fds", &extra);
    let program = format!(
        "echo $$ > {p}; exec sh -c 'while read -r x; do echo \"read: $x\"; done; echo stdin-ended; exec sleep 120'",
        p = pp.display()
    );
    let mut a = Daemon::start_full("a", &cfg, &[], &["--", "sh", "-c", &program]);
    let said = |a: &Daemon, f: &dyn Fn(&str) -> bool| {
        a.events()
            .iter()
            .any(|e| e.str("source") == Some("program") && e.str("message").is_some_and(f))
    };
    until(
        Duration::from_secs(60),
        "the program read its stdin to the end",
        || said(&a, &|m| m == "stdin-ended"),
    );
    assert!(
        !said(&a, &|m| m.starts_with("read: ")),
        "stdin is empty (/dev/null)"
    );
    let fds = |pid: u128| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    until(Duration::from_secs(10), "the hook runs", || {
        read_num(&hp).is_some()
    });
    // Both have exec'd sleep by now (the program printed after its loop).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        fds(read_num(&pp).unwrap()),
        ["0", "1", "2"],
        "the program's descriptors"
    );
    assert_eq!(
        fds(read_num(&hp).unwrap()),
        ["0", "1", "2"],
        "the hook's descriptors"
    );
    let started = a.events().len();
    std::thread::sleep(Duration::from_secs(30));
    let after: Vec<String> = a.events()[started..]
        .iter()
        .map(|e| e.event().to_string())
        .filter(|e| matches!(e.as_str(), "child_stopped" | "lost" | "acquired"))
        .collect();
    assert!(
        after.is_empty(),
        "steady leadership, the program never stopped: {after:?}"
    );
    assert!(a.believes_leader());
    a.kill();
}

/// Issue 31 §1: when the daemon is SIGKILLed while the program and a hook
/// both run, each guard says so on the daemon's original stderr (which it
/// holds itself), naming its program's pid: "daemon gone". The issue asks
/// for 100 ms; the bound here is generous (2 s) for a loaded machine.
#[test]
fn the_guards_of_a_killed_daemon_say_daemon_gone() {
    let sw = Seaweed::start();
    sw.bucket("gone");
    let dir = sw.dir.path();
    let (pp, hp) = (dir.join("prog.pid"), dir.join("hook.pid"));
    let extra = format!(
        "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: false\n\
         hooks:\n  on_leader_changed:\n    command: [\"sh\", \"-c\", \"echo $$ > {h}; exec sleep 60\"]\n    timeout: 120s\n",
        h = hp.display()
    );
    let cfg = sw.config(dir, "gone", "gone", &extra);
    let program = format!("echo $$ > {p}; exec sleep 60", p = pp.display());
    let mut a = Daemon::start_full("a", &cfg, &[], &["--", "sh", "-c", &program]);
    until(
        Duration::from_secs(60),
        "the program and the hook run",
        || read_num(&pp).is_some() && read_num(&hp).is_some(),
    );
    let (prog, hook) = (read_num(&pp).unwrap(), read_num(&hp).unwrap());
    let killed = SystemTime::now();
    a.signal("KILL");
    let said = |pid: u128| {
        let needle = format!("program {pid}: daemon gone");
        move |e: &Event| e.str("raw").is_some_and(|l| l.contains(&needle))
    };
    // A generous bound (a busy machine); the figure (the target is 100 ms)
    // is printed for BENCHMARKS.md: `cargo test --test edges
    // the_guards_of_a_killed_daemon -- --nocapture`.
    for (what, pid) in [("program", prog), ("hook", hook)] {
        let e = a.wait_event(Duration::from_secs(2), said(pid));
        let e = e.unwrap_or_else(|| {
            panic!(
                "the {what}'s guard did not say `daemon gone`: {}",
                a.log_text()
            )
        });
        let took = e.at.duration_since(killed).unwrap_or_default();
        eprintln!("the {what}'s guard said `daemon gone` {took:?} after kill -9 (seen by the reader of its stderr)");
    }
    a.kill();
}

/// Issue 31 §2: on a host with two elections, `is-leader` and `step-down`
/// pointed at the other election's daemon refuse instead of acting on its
/// answer; the daemon refuses a step-down that names another election
/// (409); `is-leader --json` gives the fencing term only while leading.
#[test]
fn two_elections_on_one_host_cannot_confuse_the_local_commands() {
    let sw = Seaweed::start();
    sw.bucket("twoel");
    let dir = sw.dir.path();
    let cfg = |election: &str| {
        let p = dir.join(format!("{election}.yaml"));
        std::fs::write(
            &p,
            format!(
                "election: {election}\ns3:\n  bucket: twoel\n  endpoint_url: {}\n  force_path_style: true\n  region: us-east-1\n  request_timeout: 1s\n  connect_timeout: 500ms\n\
                 timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: false\nhttp:\n  step_down: true\n",
                sw.endpoint
            ),
        )
        .unwrap();
        p
    };
    let (web_cfg, batch_cfg) = (cfg("web"), cfg("batch"));
    let web = Daemon::start("w", &web_cfg);
    let batch = Daemon::start("b", &batch_cfg);
    until(Duration::from_secs(60), "both lead their elections", || {
        web.says_leader() && batch.says_leader()
    });
    let at = |port: u16| format!("127.0.0.1:{port}");
    let ask = |cfg: &std::path::Path, port: u16, args: &[&str]| {
        let listen = at(port);
        run_cmd(cfg, args, &[("S3_ELECTOR_HTTP_LISTEN", listen.as_str())])
    };
    // is-leader with batch's config at web's port: unknown (255), not 0.
    let (code, out, err) = ask(&batch_cfg, web.http_port, &["is-leader"]);
    assert_eq!(code, 255, "{out}{err}");
    assert!(err.contains("runs election web, not batch"), "{err}");
    // The right daemon: 0, and --json carries the term.
    let (code, out, err) = ask(&batch_cfg, batch.http_port, &["is-leader", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(v["leader"], true, "{v}");
    assert_eq!(v["election"], "batch", "{v}");
    assert!(v["term"].as_u64().is_some_and(|t| t >= 1), "{v}");
    assert!(
        v["valid_for_seconds"].as_f64().is_some_and(|s| s > 0.0),
        "{v}"
    );
    // step-down with batch's config at web's port: refused, web still leads.
    let (code, out, err) = ask(&batch_cfg, web.http_port, &["step-down"]);
    assert_eq!(code, 69, "{out}{err}");
    assert!(err.contains("runs election web, not batch"), "{err}");
    let (status, body) = http(web.http_port, "POST", "/step-down?election=batch");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("runs election web, not batch"), "{body}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(web.says_leader(), "web was not stepped down");
    // An explicit identity must match too: w2's is-leader at w's port.
    let listen = at(web.http_port);
    let (code, out, err) = run_cmd(
        &web_cfg,
        &["is-leader", "--identity", "w2"],
        &[("S3_ELECTOR_HTTP_LISTEN", listen.as_str())],
    );
    assert_eq!(code, 255, "{out}{err}");
    assert!(err.contains("is w, not w2"), "{err}");
    let (status, body) = http(web.http_port, "POST", "/step-down?election=web&identity=w2");
    assert_eq!(status, 409, "{body}");
    // A follower's --json: not leader, term null, exit 1.
    let follower = Daemon::start("w2", &web_cfg);
    until(Duration::from_secs(30), "w2 follows w", || {
        follower.follows("w")
    });
    let (code, out, err) = ask(&web_cfg, follower.http_port, &["is-leader", "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(
        (v["leader"].clone(), v["term"].clone()),
        (false.into(), serde_json::Value::Null),
        "{v}"
    );
}

/// The review of issue 31, finding 1: a guard whose stderr (the daemon's)
/// is a broken pipe still carries out its whole stop when the daemon dies:
/// a program that ignores SIGTERM is SIGKILLed after `kill_grace`. (Its
/// "daemon gone" line used to panic the guard on EPIPE, after its SIGTERM
/// and before its SIGKILL.)
#[test]
fn a_guard_with_a_broken_stderr_still_kills_a_program_that_ignores_sigterm() {
    let sw = Seaweed::start();
    sw.bucket("epipe");
    let dir = sw.dir.path();
    let pp = dir.join("prog.pid");
    let timing = "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: false\nchild:\n  kill_grace: 900ms\n";
    let cfg = sw.config(dir, "epipe", "epipe", timing);
    let marker = format!(
        "{}-epipe-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    );
    let program = format!(
        "trap '' TERM; echo $$ > {p}; while :; do sleep 0.1; done",
        p = pp.display()
    );
    let mut daemon = daemon_command(&cfg)
        .env("S3E_TEST_OWNER", &marker)
        .env("S3_ELECTOR_IDENTITY", "a")
        .env(
            "S3_ELECTOR_HTTP_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .args(["run", "--", "sh", "-c", &program])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads the daemon's stderr: a broken pipe from the start.
    drop(daemon.stderr.take());
    let started = wait_for(Duration::from_secs(60), || read_num(&pp).is_some());
    if !started {
        let _ = daemon.kill();
        sweep(&marker);
        panic!("the program never started");
    }
    let prog = read_num(&pp).unwrap() as u32;
    let _ = daemon.kill();
    let _ = daemon.wait();
    let killed = Instant::now();
    let dead = wait_for(Duration::from_secs(10), || !pid_alive(prog));
    let took = killed.elapsed();
    sweep(&marker);
    assert!(dead, "the program outlived its daemon and its guard");
    assert!(
        took < Duration::from_secs(3),
        "dead {took:?} after the daemon (grace 900 ms)"
    );
}

/// Failing leader-only work backs off (issue 31 §3): an `on_acquired` that
/// exits 3, and a program that exits 1 right after it starts under
/// `child.on_exit: release`, each make their copy step down with a cool-off
/// that doubles from `step_down_cooloff` (1 s) toward the cap (16 s), while
/// `/leader`'s `problem` counts the failures in a row, the metric counts
/// them, and `/healthz` answers 200 throughout. Once the work succeeds the
/// problem clears and the copy keeps leading. On the old code the copy
/// competed again one 1 s cool-off after every failure.
#[test]
fn failing_leader_work_backs_off_and_recovers() {
    let sw = Seaweed::start();
    let dir = sw.dir.path();
    let timing = "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\n  step_down_cooloff: 1s\nregistry:\n  enabled: false\n";
    let mode = dir.join("mode");
    let m = mode.display().to_string();
    std::fs::write(&mode, "fail").unwrap();
    // The hook, and the program (which runs for good once the mode is ok).
    sw.bucket("backoffhook");
    let hook_cfg = sw.config(
        dir,
        "hook",
        "backoffhook",
        &format!("{timing}hooks:\n  on_acquired_backoff_max: 16s\n  on_acquired:\n    command: [\"sh\", \"-c\", \"test \\\"$(cat {m})\\\" = ok || exit 3\"]\n"),
    );
    sw.bucket("backoffprog");
    let prog_cfg = sw.config(
        dir,
        "prog",
        "backoffprog",
        &format!("{timing}hooks:\n  on_acquired_backoff_max: 16s\nchild:\n  on_exit: release\n"),
    );
    let prog = [
        "--",
        "sh",
        "-c",
        "test \"$(cat \"$M\")\" = ok && exec sleep 600; exit 1",
    ];
    let hook = Daemon::start("h", &hook_cfg);
    let program = Daemon::start_full("p", &prog_cfg, &[("M", m.as_str())], &prog);
    let acquired = |d: &Daemon| -> Vec<SystemTime> {
        d.events()
            .iter()
            .filter(|e| e.event() == "acquired")
            .map(|e| e.at)
            .collect()
    };
    let mut healthz_failures = Vec::new();
    let mut problems = Vec::new();
    until(
        Duration::from_secs(90),
        "four acquisitions of each copy",
        || {
            for d in [&hook, &program] {
                let (st, body) = http(d.http_port, "GET", "/healthz");
                if st != 200 {
                    healthz_failures.push(format!("{}: {st} {body}", d.id));
                }
                if let Some(p) = d
                    .view()
                    .and_then(|v| v["problem"].as_str().map(String::from))
                {
                    problems.push(p);
                }
            }
            std::thread::sleep(Duration::from_millis(200));
            acquired(&hook).len() >= 4 && acquired(&program).len() >= 4
        },
    );
    // Each failure in a row doubles the cool-off: 1, 2, 4 s at least
    // between acquisitions (and well under the old code's flapping).
    for d in [&hook, &program] {
        let at = acquired(d);
        let gaps: Vec<Duration> = at
            .windows(2)
            .map(|w| w[1].duration_since(w[0]).unwrap())
            .collect();
        for (k, g) in gaps.iter().take(3).enumerate() {
            let least = Duration::from_secs(1 << k);
            assert!(
                *g >= least,
                "{}: acquisition {} came {g:?} after the one before, less than the cool-off {least:?} (gaps {gaps:?})",
                d.id,
                k + 2
            );
        }
    }
    assert!(
        healthz_failures.is_empty(),
        "/healthz failed while backing off: {healthz_failures:?}"
    );
    for (what, words) in [
        ("hook", "on_acquired failed 3 times in a row; last: exit 3"),
        ("program", "the supervised program exited within a lease of starting 3 times in a row; last: exit 1"),
    ] {
        assert!(
            problems.iter().any(|p| p.contains(words)),
            "{what}: no problem saying {words:?} in {problems:?}"
        );
    }
    let (_, metrics) = http(hook.http_port, "GET", "/metrics");
    let failures = metrics
        .lines()
        .find_map(|l| l.strip_prefix("s3_elector_work_failures_total{work=\"on_acquired\"} "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        failures.is_some_and(|n| n >= 3),
        "the work failure metric does not count the failures ({failures:?}):\n{metrics}"
    );
    // The work succeeds from now on: the problem clears (a program after
    // it has run a lease) and both copies keep leading.
    std::fs::write(&mode, "ok").unwrap();
    until(Duration::from_secs(60), "both lead with no problem", || {
        [&hook, &program].iter().all(|d| {
            d.view()
                .is_some_and(|v| v["is_leader"] == true && v["problem"].is_null())
        })
    });
    let settled = [acquired(&hook).len(), acquired(&program).len()];
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        [acquired(&hook).len(), acquired(&program).len()],
        settled,
        "a copy whose work succeeds keeps leading"
    );
    assert!(hook.says_leader() && program.says_leader());
}

/// Issue 31 §4: `run --once` hands the job this command's stdout and
/// stderr (`consul lock`, `etcdctl lock`): `run --once -- job > out.txt`
/// leaves the job's output in the file, and the daemon's own log is quiet
/// (warn) unless asked; `S3_ELECTOR_LOG=warn` no longer hides the job's
/// output; `--output log` keeps the old behaviour (the job's lines are log
/// lines). On the old code out.txt stayed empty.
#[test]
fn run_once_gives_the_job_its_own_stdout_and_stderr() {
    let sw = Seaweed::start();
    sw.bucket("output");
    let dir = sw.dir.path();
    let cfg = sw.config(
        dir,
        "output",
        "output",
        "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: false\nhttp:\n  enabled: false\n",
    );
    let job = ["--once", "--", "sh", "-c", "echo result; echo oops >&2"];
    let run = |args: &[&str], env: &[(&str, &str)]| -> (i32, String, String) {
        let out = dir.join("out.txt");
        let err = dir.join("err.txt");
        let mut cmd = daemon_command(&cfg);
        cmd.env_remove("S3_ELECTOR_LOG")
            .env("S3_ELECTOR_LOG_FORMAT", "text")
            .env("S3_ELECTOR_IDENTITY", "once")
            .arg("run")
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let end = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                let _ = child.kill();
                panic!("run --once did not end within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (
            status.code().unwrap_or(-1),
            std::fs::read_to_string(&out).unwrap(),
            std::fs::read_to_string(&err).unwrap(),
        )
    };
    // The default: the job's own output, and no daemon chatter.
    let (code, out, err) = run(&job, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "result\n", "stdout is the job's alone");
    assert!(err.contains("oops"), "the job's stderr: {err}");
    assert!(
        !err.contains(" INFO "),
        "the daemon logs warn and above under --once: {err}"
    );
    // A level set by hand wins over the quiet default.
    let (code, out, err) = run(&job, &[("S3_ELECTOR_LOG", "info")]);
    assert_eq!((code, out.as_str()), (0, "result\n"), "{err}");
    assert!(err.contains(" INFO ") && err.contains("oops"), "{err}");
    let (code, out, err) = run(
        &["--log", "warn", job[0], job[1], job[2], job[3], job[4]],
        &[("S3_ELECTOR_LOG", "info")],
    );
    assert_eq!((code, out.as_str()), (0, "result\n"), "{err}");
    assert!(
        !err.contains(" INFO "),
        "--log wins over S3_ELECTOR_LOG: {err}"
    );
    // S3_ELECTOR_LOG=warn used to make the job's output vanish.
    let (code, out, _) = run(&job, &[("S3_ELECTOR_LOG", "warn")]);
    assert_eq!((code, out.as_str()), (0, "result\n"));
    // Under systemd the job's stderr is a socket (journald), and `>> log
    // 2>&1` shares one file opened for appending: the job writes to both
    // as they are (the guard used to reopen its stderr by name: a socket
    // failed, exit 70; an appended file was overwritten from its start).
    let (mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let log = dir.join("appended.log");
    std::fs::write(&log, "EXISTING\n").unwrap();
    let append = || std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for stderr in [
        Stdio::from(std::os::fd::OwnedFd::from(theirs)),
        Stdio::from(append()),
    ] {
        let mut cmd = daemon_command(&cfg);
        cmd.env_remove("S3_ELECTOR_LOG")
            .env("S3_ELECTOR_LOG_FORMAT", "text")
            .env("S3_ELECTOR_IDENTITY", "once")
            .arg("run")
            .args(job)
            .stdin(Stdio::null())
            .stdout(append())
            .stderr(stderr);
        let status = cmd.status().unwrap();
        assert_eq!(
            status.code(),
            Some(0),
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
    }
    mine.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = String::new();
    let _ = std::io::Read::read_to_string(&mut &mine, &mut got);
    assert!(
        got.contains("oops"),
        "the job's stderr reached the socket: {got:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.starts_with("EXISTING\n"),
        "the appended file was overwritten: {text:?}"
    );
    assert_eq!(text.matches("result").count(), 2, "{text:?}");
    assert!(text.contains("oops"), "{text:?}");
    // --output log: the job's lines become log lines (at info).
    let mut logged = vec!["--output", "log"];
    logged.extend_from_slice(&job);
    let (code, out, err) = run(&logged, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "", "--output log writes nothing to stdout");
    assert!(
        err.lines()
            .any(|l| l.contains("result") && l.contains("program"))
            && err
                .lines()
                .any(|l| l.contains("oops") && l.contains("stderr")),
        "the job's lines are logged: {err}"
    );
}

/// Issue 31 §6: two processes with one identity are loud. Each start has
/// its own incarnation (in `/leader`); the follower sees the leader's
/// record renewed by another incarnation of its identity, the leader reads
/// its registry entry back overwritten by the other: both show a `problem`
/// naming the other incarnation and log `duplicate_identity`. Once the
/// second process is gone the leader's problem clears after two registry
/// refreshes. A copy restarted after `kill -9` never takes the record its
/// dead predecessor left for a twin. On the old code neither copy showed
/// anything (the follower warned once).
#[test]
fn two_processes_with_one_identity_are_loud_and_a_dead_predecessor_is_not_a_twin() {
    let sw = Seaweed::start();
    sw.bucket("twins");
    let dir = sw.dir.path();
    let timing = "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: true\n  refresh: 2s\n  list_interval: 2s\n";
    let cfg = sw.config(dir, "twins", "twins", timing);
    let problem = |d: &Daemon| {
        d.view()
            .and_then(|v| v["problem"].as_str().map(String::from))
    };
    let incarnation = |d: &Daemon| {
        d.view()
            .and_then(|v| v["incarnation"].as_str().map(String::from))
            .expect("an incarnation in /leader")
    };

    // A dead predecessor: the restarted copy takes over its record after a
    // lease, and sees no twin in it or in the registry.
    let mut first = Daemon::start("solo", &cfg);
    until(Duration::from_secs(60), "solo leads", || {
        first.says_leader()
    });
    let dead = incarnation(&first);
    first.kill();
    let again = Daemon::start("solo", &cfg);
    until(Duration::from_secs(60), "the restarted solo leads", || {
        again.says_leader()
    });
    assert_ne!(
        incarnation(&again),
        dead,
        "each start has its own incarnation"
    );
    assert_eq!(
        again.view().unwrap()["leader_incarnation"].as_str(),
        Some(incarnation(&again).as_str())
    );
    std::thread::sleep(Duration::from_secs(6)); // three registry refreshes
    assert_eq!(problem(&again), None, "a dead predecessor is no twin");
    assert!(
        !again
            .events()
            .iter()
            .any(|e| e.event() == "duplicate_identity"),
        "{}",
        again.log_text()
    );

    // A live twin: both say so.
    let twin = Daemon::start("solo", &cfg);
    let (a, b) = (incarnation(&again), incarnation(&twin));
    assert_ne!(a, b);
    until(Duration::from_secs(60), "both show the other", || {
        problem(&again).is_some_and(|p| {
            p.contains(&format!(
                "another process uses identity solo (incarnation {b}"
            ))
        }) && problem(&twin).is_some_and(|p| {
            p.contains(&format!(
                "another process uses identity solo (incarnation {a}"
            ))
        })
    });
    assert!(again.says_leader(), "the leader goes on leading");
    for d in [&again, &twin] {
        assert!(
            d.events().iter().any(|e| e.event() == "duplicate_identity"),
            "{}",
            d.log_text()
        );
        let (st, _) = http(d.http_port, "GET", "/healthz");
        assert_eq!(st, 200, "a duplicate identity is not a health failure");
    }
    // The twin goes: the problem clears two refreshes after the last sign.
    twin.signal("KILL");
    until(
        Duration::from_secs(30),
        "the leader's problem clears",
        || problem(&again).is_none(),
    );
    assert!(again.says_leader());
}

/// The adversarial review of issue 31 §4: under `run --once` (output
/// inherited) the job's stderr is the caller's; when nobody reads it and
/// the job has filled it, the guard's stop path must not write there and
/// block: the job (which ignores SIGTERM), and a descendant that left its
/// group (setsid), are still stopped when leadership ends. On the old code the guard blocked
/// writing "stopping on request", the daemon SIGKILLed it, and the
/// descendant outlived the run.
#[test]
fn a_job_whose_stderr_is_full_is_still_stopped_with_its_descendants() {
    let sw = Seaweed::start();
    sw.bucket("fullerr");
    let dir = sw.dir.path();
    let (pp, dp) = (dir.join("job.pid"), dir.join("desc.pid"));
    let cfg = sw.config(
        dir,
        "fullerr",
        "fullerr",
        "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\nregistry:\n  enabled: false\nchild:\n  kill_grace: 900ms\n",
    );
    let marker = format!(
        "{}-fullerr-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    );
    let job = format!(
        "trap '' TERM; echo $$ > {p}; setsid sh -c 'echo $$ > {d}; exec sleep 300' & head -c 300000 /dev/zero >&2; sleep 300",
        p = pp.display(),
        d = dp.display()
    );
    // A pipe whose reading end this test holds and never reads.
    let (_unread, full) = nix::unistd::pipe().unwrap();
    let mut daemon = daemon_command(&cfg)
        .env("S3E_TEST_OWNER", &marker)
        .env("S3_ELECTOR_IDENTITY", "a")
        .env(
            "S3_ELECTOR_HTTP_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .args(["run", "--once", "--", "sh", "-c", &job])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(full))
        .spawn()
        .unwrap();
    let started = wait_for(Duration::from_secs(60), || {
        read_num(&pp).is_some() && read_num(&dp).is_some()
    });
    if !started {
        let _ = daemon.kill();
        sweep(&marker);
        panic!("the job never started");
    }
    std::thread::sleep(Duration::from_millis(500)); // the pipe fills
    let desc = read_num(&dp).unwrap() as u32;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let ended = wait_for(Duration::from_secs(30), || {
        daemon.try_wait().ok().flatten().is_some()
    });
    let gone = wait_for(Duration::from_secs(10), || !pid_alive(desc));
    let _ = daemon.kill();
    let _ = daemon.wait();
    sweep(&marker);
    assert!(ended, "the daemon did not stop");
    assert!(
        gone,
        "a descendant of the job (pid {desc}) outlived the run"
    );
}
