//! End to end: the leadership surfaces (HTTP, status file, hooks,
//! supervised child, systemd notify) of the real binary on real SeaweedFS.

#![allow(clippy::disallowed_types)] // end-to-end tests measure real elapsed time

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

const TIMING: &str = "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\n  step_down_cooloff: 1s\n";

fn leader_index(ds: &[Daemon]) -> Option<usize> {
    let l: Vec<usize> = (0..ds.len())
        .filter(|i| ds[*i].alive() && http(ds[*i].http_port, "GET", "/leader/health").0 == 200)
        .collect();
    assert!(
        l.len() <= 1,
        "two copies answer 200 on /leader/health: {l:?}"
    );
    l.first().copied()
}

#[test]
fn http_endpoints_flip_on_step_down_and_agree() {
    let sw = Seaweed::start();
    sw.bucket("http");
    let extra = format!("{TIMING}http:\n  step_down: true\n");
    let cfg = sw.config(sw.dir.path(), "http", "http", &extra);
    let ds: Vec<Daemon> = ["a", "b"]
        .iter()
        .map(|id| Daemon::start(id, &cfg))
        .collect();
    until(Duration::from_secs(30), "a leader", || {
        leader_index(&ds).is_some()
    });
    let l = leader_index(&ds).unwrap();
    let f = 1 - l;
    until(Duration::from_secs(10), "both ready and agreeing", || {
        ds.iter().all(|d| {
            let (st, v) = get_json(d.http_port, "/leader");
            st == 200 && v["leader"] == ds[l].id.as_str()
        })
    });
    let (_, lv) = get_json(ds[l].http_port, "/leader");
    let (_, fv) = get_json(ds[f].http_port, "/leader");
    assert_eq!(lv["is_leader"], true);
    assert_eq!(fv["is_leader"], false);
    assert_eq!(lv["term"], fv["term"]);
    assert_eq!(fv["identity"], ds[f].id.as_str());
    assert_eq!(lv["election"], "e2e");
    assert!(lv["view_valid_for_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(http(ds[f].http_port, "GET", "/leader/health").0, 503);
    for d in &ds {
        assert_eq!(http(d.http_port, "GET", "/healthz").0, 200);
        assert_eq!(http(d.http_port, "GET", "/readyz").0, 200);
    }
    // Errors are JSON: 404 and 405 (with Allow).
    let (st, v) = get_json(ds[f].http_port, "/nope");
    assert_eq!((st, v["status"].as_u64()), (404, Some(404)));
    let (st, v) = get_json(ds[f].http_port, "/leader");
    assert_eq!(st, 200, "{v}");
    let (st, body) = http(ds[f].http_port, "DELETE", "/leader");
    assert_eq!(st, 405, "{body}");
    assert!(body.contains("use GET"), "{body}");
    let (st, _) = http(ds[f].http_port, "GET", "/step-down");
    assert_eq!(st, 405);

    // Metrics parse as Prometheus text and count S3 requests.
    let (st, m) = http(ds[l].http_port, "GET", "/metrics");
    assert_eq!(st, 200);
    let samples = parse_prometheus(&m);
    assert_eq!(samples.get("s3_elector_is_leader"), Some(&1.0), "{m}");
    let puts = samples
        .iter()
        .filter(|(k, _)| {
            k.starts_with("s3_elector_s3_requests_total{")
                && k.contains("put_if_match")
                && k.contains("\"ok\"")
        })
        .map(|(_, v)| *v)
        .sum::<f64>();
    assert!(puts >= 1.0, "renewals are counted: {m}");
    assert!(
        samples
            .keys()
            .any(|k| k.starts_with("s3_elector_renew_latency_seconds_bucket")),
        "{m}"
    );
    let (_, fm) = http(ds[f].http_port, "GET", "/metrics");
    assert_eq!(
        parse_prometheus(&fm).get("s3_elector_is_leader"),
        Some(&0.0)
    );
    // What every exporter has: build info and the process metrics.
    let version = format!(
        "s3_elector_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(samples.get(&version), Some(&1.0), "{m}");
    let pos = |k: &str| samples.get(k).copied().unwrap_or(0.0);
    assert!(pos("process_resident_memory_bytes") > 1e6, "{m}");
    assert!(pos("process_virtual_memory_bytes") > 1e6, "{m}");
    assert!(pos("process_open_fds") >= 3.0, "{m}");
    assert!(pos("process_max_fds") >= pos("process_open_fds"), "{m}");
    assert!(pos("process_cpu_seconds_total") > 0.0, "{m}");
    let started = pos("process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started > now - 600.0 && started <= now + 1.0,
        "start time {started} vs now {now}: {m}"
    );
    // The Prometheus text format (what a plain GET gets): a counter's
    // family is named with `_total`, a histogram's without its suffixes.
    for name in samples.keys() {
        let sample = name.split(['{', ' ']).next().unwrap();
        let family = sample
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            m.contains(&format!("# HELP {sample} ")) || m.contains(&format!("# HELP {family} ")),
            "no help text for {name}: {m}"
        );
    }

    // Step down over HTTP: the other copy takes over; both flip.
    let (st, body) = http(ds[l].http_port, "POST", "/step-down");
    assert_eq!(st, 202, "{body}");
    until(Duration::from_secs(10), "the follower leads", || {
        http(ds[f].http_port, "GET", "/leader/health").0 == 200
    });
    assert_eq!(http(ds[l].http_port, "GET", "/leader/health").0, 503);
    until(
        Duration::from_secs(5),
        "/leader agrees on both copies",
        || {
            ds.iter()
                .all(|d| get_json(d.http_port, "/leader").1["leader"] == ds[f].id.as_str())
        },
    );
    // The copy that stepped down competes again (its cool-off is over)
    // before the leadership is handed back to it.
    until(
        Duration::from_secs(10),
        "the old leader competes again",
        || ds[l].follows(&ds[f].id),
    );
    // The CLI step-down reaches the same endpoint.
    let mut cmd = daemon_command(&cfg);
    cmd.env("S3_ELECTOR_LOG_FORMAT", "text").arg("step-down");
    // The CLI reads http.listen from the file: point it at the new leader.
    let cfg2 = sw.dir.path().join("cli.yaml");
    std::fs::write(
        &cfg2,
        std::fs::read_to_string(&cfg).unwrap().replace(
            "  step_down: true\n",
            &format!(
                "  step_down: true\n  listen: 127.0.0.1:{}\n",
                ds[f].http_port
            ),
        ),
    )
    .unwrap();
    let (code, out, err) = run_cmd(&cfg2, &["step-down"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    until(Duration::from_secs(10), "leadership moves back", || {
        http(ds[l].http_port, "GET", "/leader/health").0 == 200
    });
}

/// `name{labels} value` lines to a map; panics on a malformed line.
fn parse_prometheus(text: &str) -> std::collections::HashMap<String, f64> {
    let mut out = std::collections::HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        out.insert(name.to_string(), v);
    }
    out
}

fn hook(file: &Path, extra: &str) -> String {
    format!(
        "    command: [\"sh\", \"-c\", \"echo \\\"$S3_ELECTOR_EVENT term=$S3_ELECTOR_TERM leader=$S3_ELECTOR_LEADER prev=$S3_ELECTOR_PREVIOUS_LEADER id=$S3_ELECTOR_IDENTITY election=$S3_ELECTOR_ELECTION\\\" >> {}{extra}\"]\n",
        file.display()
    )
}

#[test]
fn hooks_run_in_order_with_their_environment() {
    let sw = Seaweed::start();
    sw.bucket("hooks");
    let dir = sw.dir.path();
    let log = dir.join("a-hooks.log");
    // a sits out a long cool-off after stepping down, so that the hand-over
    // goes to b however slowly b reads (with 1 s, a busy b could lose it
    // back to a, a different sequence of hooks).
    let a_timing = TIMING.replace("step_down_cooloff: 1s", "step_down_cooloff: 10s");
    let extra = format!(
        "{a_timing}hooks:\n  on_acquired:\n{}  on_lost:\n{}  on_leader_changed:\n{}",
        hook(&log, ""),
        hook(&log, ""),
        hook(&log, "")
    );
    let cfg = sw.config(dir, "hooks", "hooks", &extra);
    let lines = || -> Vec<String> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    };
    let a = Daemon::start("a", &cfg);
    // The hooks of a's acquisition must have run before it steps down: a
    // hook still running when leadership ends is killed (by design), and
    // its line would be missing.
    until(Duration::from_secs(30), "a's acquisition hooks ran", || {
        lines().len() >= 2
    });
    let b_cfg = sw.config(dir, "hooks-b", "hooks", TIMING);
    let b = Daemon::start("b", &b_cfg);
    // b must be in the election (probe passed, lease read, competing)
    // before a steps down, or a would step down with nobody to take over.
    until(Duration::from_secs(30), "b follows a", || b.follows("a"));
    a.signal("USR1"); // step down; b takes over
    until(Duration::from_secs(15), "hooks for the hand-over", || {
        lines().len() >= 4
    });
    let lines = lines();
    assert!(
        lines[0].starts_with("acquired term=1 leader=a prev= id=a election=e2e"),
        "{lines:#?}"
    );
    assert!(
        lines[1].starts_with("leader_changed term=1 leader=a"),
        "{lines:#?}"
    );
    assert!(lines[2].starts_with("lost term=1"), "{lines:#?}");
    assert!(
        lines[3].starts_with("leader_changed term=2 leader=b prev=a"),
        "{lines:#?}"
    );
    drop(b);
}

#[test]
fn a_hanging_hook_is_killed_with_its_children_and_failure_is_handled() {
    let sw = Seaweed::start();
    sw.bucket("hang");
    let dir = sw.dir.path();
    let pids = dir.join("pids");
    // on_acquired forks a grandchild, then hangs; 1 s timeout. It fails:
    // with the default policy and the registry on, the leader hands over
    // only to a healthy copy, and, alone, keeps the lease (issue 32).
    let extra = format!(
        "{TIMING}hooks:\n  on_acquired:\n    command: [\"sh\", \"-c\", \"sleep 300 & echo $! >> {p}; echo $$ >> {p}; sleep 300\"]\n    timeout: 1s\n",
        p = pids.display()
    );
    let cfg = sw.config(dir, "hang", "hang", &extra);
    let a = Daemon::start("a", &cfg);
    until(Duration::from_secs(30), "the hook timed out", || {
        a.events()
            .iter()
            .any(|e| e.json.to_string().contains("hook timed out"))
    });
    until(
        Duration::from_secs(10),
        "the failing hook's step-down decided: nobody to hand to, kept",
        || a.events().iter().any(|e| e.event() == "kept"),
    );
    assert!(a.says_leader(), "alone, the copy keeps the lease");
    let text = std::fs::read_to_string(&pids).unwrap();
    let first: Vec<&str> = text.lines().take(2).collect();
    assert_eq!(first.len(), 2, "{text}");
    until(
        Duration::from_secs(10),
        "hook and its child are gone",
        || {
            first
                .iter()
                .all(|p| !Path::new(&format!("/proc/{p}")).exists() || is_zombie(p))
        },
    );
}

fn is_zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

#[test]
fn the_status_file_is_never_seen_partial() {
    let sw = Seaweed::start();
    sw.bucket("status");
    let dir = sw.dir.path();
    let cfg = sw.config(dir, "status", "status", TIMING);
    let file_a = dir.join("a-status.json");
    let a = Daemon::start_with(
        "a",
        &cfg,
        &[("S3_ELECTOR_STATUS_FILE", file_a.to_str().unwrap())],
    );
    let b = Daemon::start("b", &cfg);
    until(Duration::from_secs(30), "status file exists", || {
        file_a.exists()
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, file) = (stop.clone(), file_a.clone());
        std::thread::spawn(move || {
            let (mut reads, mut roles) = (0u64, std::collections::HashSet::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let text = std::fs::read_to_string(&file).expect("the file is always there");
                let v: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("partial or invalid status file ({e}): {text:?}"));
                assert!(v["updated_at"].is_string());
                // While running, valid_until is later than the write.
                if let Some(until) = v["valid_until"].as_str() {
                    let t =
                        |s: &str| humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).unwrap();
                    assert!(
                        t(until) > t(v["updated_at"].as_str().unwrap()),
                        "valid_until not after the write: {text}"
                    );
                }
                roles.insert(v["role"].as_str().unwrap().to_string());
                reads += 1;
            }
            (reads, roles)
        })
    };
    // Many transitions: step each leader down in turn, each time once the
    // other copy is ready to take over (out of its cool-off, following),
    // and wait until it has.
    for round in 0..6 {
        let mut pair = None;
        until(
            Duration::from_secs(30),
            &format!("round {round}: a leader and a ready follower"),
            || {
                pair = [(&a, &b), (&b, &a)]
                    .into_iter()
                    .find(|(l, f)| l.says_leader() && f.follows(&l.id));
                pair.is_some()
            },
        );
        let (l, f) = pair.unwrap();
        l.signal("USR1");
        until(
            Duration::from_secs(15),
            &format!("round {round}: {} takes over from {}", f.id, l.id),
            || f.says_leader(),
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, roles) = reader.join().unwrap();
    assert!(reads > 100, "{reads}");
    assert!(
        roles.contains("leader") && roles.contains("follower"),
        "{roles:?}"
    );
    // Graceful stop writes a final "not leader".
    a.signal("TERM");
    until(Duration::from_secs(10), "final state", || {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file_a).unwrap()).unwrap();
        v["role"] == "stopped"
            && v["is_leader"] == false
            && v["valid_until"].is_null()
            && (v["leader"].is_null() <= v["leader_address"].is_null())
    });
    drop(b);
}

#[test]
fn the_supervised_child_runs_only_on_the_leader_and_is_never_orphaned() {
    let sw = Seaweed::start();
    sw.bucket("child");
    let dir = sw.dir.path();
    let journal = dir.join("journal");
    let marker = format!("s3e-child-{}", std::process::id());
    // The child notes its start and its stop (on SIGTERM) in one journal.
    let script = format!(
        "trap 'echo stop $S3_ELECTOR_TERM $$ >> {j}; exit 0' TERM; echo start $S3_ELECTOR_TERM $$ >> {j}; while :; do sleep 0.1; done # {marker}",
        j = journal.display()
    );
    let cfg = sw.config(dir, "child", "child", TIMING);
    let args = ["--", "sh", "-c", script.as_str()];
    let mut ds: Vec<Daemon> = ["a", "b", "c"]
        .iter()
        .map(|id| Daemon::start_full(id, &cfg, &[], &args))
        .collect();
    until(Duration::from_secs(30), "a child runs", || {
        std::fs::read_to_string(&journal).is_ok_and(|t| t.contains("start"))
    });
    // Hand over: graceful stop, crash of the whole daemon is covered below.
    for _ in 0..2 {
        let mut l = None;
        until(Duration::from_secs(20), "a leader", || {
            l = (0..ds.len()).find(|i| ds[*i].alive() && ds[*i].believes_leader());
            l.is_some()
        });
        let l = l.unwrap();
        // Count before the stop: the next child may start before the old
        // daemon has even been reaped.
        let count = || {
            std::fs::read_to_string(&journal)
                .unwrap()
                .matches("start")
                .count()
        };
        let before = count();
        ds[l].signal("TERM");
        assert!(ds[l]
            .wait_exit(Duration::from_secs(15))
            .is_some_and(|s| s.success()));
        until(
            Duration::from_secs(15),
            "the next leader's child starts",
            || count() > before,
        );
    }
    // Double SIGTERM on the last leader: it exits at once, the child is killed.
    let l = (0..ds.len()).find(|i| ds[*i].alive()).unwrap();
    until(Duration::from_secs(15), "last copy leads", || {
        ds[l].believes_leader()
    });
    ds[l].signal("TERM");
    ds[l].signal("TERM");
    assert!(ds[l].wait_exit(Duration::from_secs(15)).is_some());
    // The journal: strictly start, stop, start, stop ... with growing terms.
    let text = std::fs::read_to_string(&journal).unwrap();
    let entries: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    let mut running: Option<&str> = None;
    for e in &entries {
        match (e[0], running) {
            ("start", None) => running = Some(e[1]),
            ("stop", Some(t)) => {
                assert_eq!(e[1], t, "{text}");
                running = None;
            }
            _ => panic!("two children at once, or a stop without a start:\n{text}"),
        }
    }
    assert!(
        entries.iter().filter(|e| e[0] == "start").count() >= 3,
        "{text}"
    );
    // No orphans anywhere.
    until(Duration::from_secs(10), "no child process is left", || {
        !std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .status()
            .unwrap()
            .success()
    });
}

#[test]
fn systemd_notify_ready_status_and_watchdog() {
    use std::os::unix::net::UnixDatagram;
    let sw = Seaweed::start();
    sw.bucket("notify");
    let dir = sw.dir.path();
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let cfg = sw.config(dir, "notify", "notify", TIMING);
    let a = Daemon::start_with(
        "a",
        &cfg,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let all = got.join("\n");
        if all.contains("READY=1")
            && all.contains("STATUS=leader, term 1")
            && all.matches("WATCHDOG=1").count() >= 3
        {
            break;
        }
    }
    let all = got.join("\n");
    assert!(all.contains("READY=1"), "{all}");
    assert!(all.contains("STATUS=leader, term 1"), "{all}");
    assert!(all.matches("WATCHDOG=1").count() >= 3, "{all}");
    a.signal("TERM");
    let mut rest = String::new();
    let end = Instant::now() + Duration::from_secs(15);
    while !rest.contains("STOPPING=1") && Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            rest.push_str(&String::from_utf8_lossy(&buf[..n]));
            rest.push('\n');
        }
    }
    assert!(rest.contains("STOPPING=1"), "{rest}");
}

/// The daemon's S3 request counters match the requests seen on the wire.
#[test]
fn metrics_s3_counters_match_the_requests_on_the_wire() {
    let sw = Seaweed::start();
    sw.bucket("count");
    let proxy = CountingProxy::start(&sw.endpoint);
    let dir = sw.dir.path();
    let cfg = dir.join("count.yaml");
    std::fs::write(
        &cfg,
        format!(
            "election: e2e\ns3:\n  bucket: count\n  endpoint_url: {}\n  force_path_style: true\n  region: us-east-1\n  request_timeout: 1s\n  connect_timeout: 500ms\n{TIMING}",
            proxy.endpoint()
        ),
    )
    .unwrap();
    let a = Daemon::start("a", &cfg);
    let b = Daemon::start("b", &cfg);
    let sum = |d: &Daemon| -> f64 {
        let (_, m) = http(d.http_port, "GET", "/metrics");
        parse_prometheus(&m)
            .iter()
            .filter(|(k, _)| k.starts_with("s3_elector_s3_requests_total{"))
            .map(|(_, v)| *v)
            .sum()
    };
    until(Duration::from_secs(30), "a leader", || {
        a.says_leader() || b.says_leader()
    });
    // Enough traffic to compare: renewals and follower reads.
    until(
        Duration::from_secs(30),
        "more than 10 requests counted",
        || sum(&a) + sum(&b) > 10.0,
    );
    let before = proxy.total();
    let counted = sum(&a) + sum(&b);
    let after = proxy.total();
    // Requests in flight are on the wire but not yet counted: one per copy.
    assert!(
        counted <= after as f64,
        "daemons counted {counted}, the wire saw {after}"
    );
    assert!(
        counted + 2.0 >= before as f64,
        "daemons counted {counted}, the wire saw {before}"
    );
    assert!(counted > 10.0, "{counted}");
    eprintln!(
        "wire: {:?}; daemons: {counted}",
        proxy.counts.lock().unwrap()
    );
}

/// A status file that cannot be written is a visible problem: `/leader`
/// says so, `/readyz` answers 503, a metric counts the failures and one
/// WARN line says it started (not one per attempt); all of it clears once
/// the file can be written again.
#[test]
fn an_unwritable_status_file_is_a_visible_problem() {
    let sw = Seaweed::start();
    sw.bucket("sfproblem");
    let dir = sw.dir.path();
    // A file where the directory should be: no write can succeed, even
    // as root.
    let blocker = dir.join("state");
    std::fs::write(&blocker, "not a directory").unwrap();
    let status = blocker.join("status.json");
    let extra = format!("{TIMING}status_file: {}\n", status.display());
    let cfg = sw.config(dir, "sfproblem", "sfproblem", &extra);
    let a = Daemon::start("a", &cfg);
    until(Duration::from_secs(60), "a leads", || a.says_leader());
    until(
        Duration::from_secs(10),
        "/readyz 503 naming the file",
        || {
            let (st, v) = get_json(a.http_port, "/readyz");
            st == 503
                && v["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("status.json"))
        },
    );
    let (_, v) = get_json(a.http_port, "/leader");
    let problem = v["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("cannot write the status file"), "{v}");
    assert_eq!(v["is_leader"], true, "the election goes on: {v}");
    let (_, m) = http(a.http_port, "GET", "/metrics");
    let errors = parse_prometheus(&m)
        .get("s3_elector_status_file_write_errors_total")
        .copied()
        .unwrap_or(0.0);
    assert!(errors >= 1.0, "{m}");
    // Refreshes fail again (every lease / 2), but only the start is logged.
    std::thread::sleep(Duration::from_secs(4));
    let failing: Vec<Event> = a
        .events()
        .into_iter()
        .filter(|e| e.event() == "status_file_failing")
        .collect();
    assert_eq!(failing.len(), 1, "{}", a.log_text());
    assert_eq!(failing[0].str("level"), Some("WARN"));
    // Fixed by the operator: everything clears.
    std::fs::remove_file(&blocker).unwrap();
    std::fs::create_dir(&blocker).unwrap();
    until(Duration::from_secs(20), "/readyz 200 again", || {
        get_json(a.http_port, "/readyz").0 == 200
    });
    assert!(status.exists());
    let (_, v) = get_json(a.http_port, "/leader");
    assert!(v["problem"].is_null(), "{v}");
    assert!(
        a.wait_event(Duration::from_secs(5), |e| e.event() == "status_file_ok")
            .is_some(),
        "{}",
        a.log_text()
    );
}

/// `/metrics` passes `promtool check metrics` (Prometheus' own linter) in
/// the text format, and speaks OpenMetrics to a scraper that asks for it.
#[test]
fn metrics_pass_promtool_and_negotiate_the_format() {
    let promtool = std::env::var("S3E_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let sw = Seaweed::start();
    sw.bucket("promtool");
    let cfg = sw.config(sw.dir.path(), "promtool", "promtool", TIMING);
    let a = Daemon::start("a", &cfg);
    until(Duration::from_secs(60), "a leads", || a.says_leader());
    // A renewal or two observed, so the histogram has samples.
    std::thread::sleep(Duration::from_secs(2));
    let (st, head, text) = http_with(a.http_port, "GET", "/metrics", "Accept: text/plain\r\n");
    assert_eq!(st, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        text.contains("s3_elector_renew_latency_seconds_count"),
        "{text}"
    );
    let mut check = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("run {promtool}: {e}; scripts/test installs it (Debian package prometheus)")
        });
    std::io::Write::write_all(check.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    drop(check.stdin.take());
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What Prometheus sends when it prefers OpenMetrics.
    let accept =
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n";
    let (st, head, open) = http_with(a.http_port, "GET", "/metrics", accept);
    assert_eq!(st, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(
        open.contains("# TYPE s3_elector_s3_requests counter"),
        "{open}"
    );
    // The alert rules pass promtool's own checks and unit tests, and they
    // and the dashboard ask only for metrics this daemon serves.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = root.join("helm/s3-elector/files");
    for args in [
        vec![
            "check".to_string(),
            "rules".into(),
            files.join("s3-elector.rules.yaml").display().to_string(),
        ],
        vec![
            "test".to_string(),
            "rules".into(),
            root.join("tests/prometheus/rules.test.yaml")
                .display()
                .to_string(),
        ],
    ] {
        let out = std::process::Command::new(&promtool)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rules: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(files.join("s3-elector.rules.yaml")).unwrap(),
    )
    .unwrap();
    let mut queries: Vec<String> = rules["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(queries.len() >= 7, "{queries:?}");
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(files.join("s3-elector.dashboard.json")).unwrap(),
    )
    .unwrap();
    let panels = dash["panels"].as_array().unwrap();
    let from_dashboard: Vec<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .chain(std::iter::once(
            dash["templating"]["list"][1]["definition"]
                .as_str()
                .unwrap()
                .to_string(),
        ))
        .collect();
    assert!(from_dashboard.len() >= 10, "{from_dashboard:?}");
    queries.extend(from_dashboard);
    let served: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    let mut asked = 0;
    for q in &queries {
        for w in q.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if w.starts_with("s3_elector_") || w.starts_with("process_") {
                asked += 1;
                assert!(
                    served.contains(w),
                    "`{q}` asks for {w}, which the daemon does not serve:\n{text}"
                );
            }
        }
    }
    assert!(asked >= 20, "{asked} metric names in the queries");
}

/// A busy port the operator chose is fatal, with a message naming it; the
/// binding to a non-loopback address needs the explicit switch.
#[test]
fn http_listen_problems_are_reported() {
    let sw = Seaweed::start();
    sw.bucket("busy");
    let dir = sw.dir.path();
    let cfg = sw.config(dir, "busy", "busy", TIMING);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let (code, out, err) = run_cmd(
        &cfg,
        &["run"],
        &[
            ("S3_ELECTOR_HTTP_LISTEN", &listen),
            ("S3_ELECTOR_IDENTITY", "a"),
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("cannot listen on `http.listen`") && err.contains(&listen),
        "{err}"
    );
    let (code, _, err) = run_cmd(&cfg, &["run"], &[("S3_ELECTOR_HTTP_LISTEN", "0.0.0.0:0")]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("allow_non_loopback"), "{err}");
}

/// With S3 gone, the leader's deadline still ends its leadership: on_lost
/// starts and the supervised program is stopped, without any S3 answer.
#[test]
fn s3_unreachable_leader_runs_on_lost_and_stops_its_child_by_the_deadline() {
    let mut sw = Seaweed::start();
    sw.bucket("gone");
    let dir = sw.dir.path().to_path_buf();
    let journal = dir.join("journal");
    let extra = format!(
        "{TIMING}hooks:\n  on_lost:\n    command: [\"sh\", \"-c\", \"echo on_lost >> {j}\"]\n",
        j = journal.display()
    );
    let cfg = sw.config(&dir, "gone", "gone", &extra);
    let script = format!(
        "trap 'echo child_stopped >> {j}; exit 0' TERM; echo child_started >> {j}; while :; do sleep 0.1; done",
        j = journal.display()
    );
    let a = Daemon::start_full("a", &cfg, &[], &["--", "sh", "-c", &script]);
    until(Duration::from_secs(30), "the child runs", || {
        std::fs::read_to_string(&journal).is_ok_and(|t| t.contains("child_started"))
    });
    std::thread::sleep(Duration::from_secs(1));
    let gone = Instant::now();
    sw.stop();
    // Renew deadline 2 s after the last renewal (before `gone`), kill grace
    // 0.5 s, plus generous slack for a busy machine.
    until(
        Duration::from_secs(8),
        "on_lost ran and the child stopped",
        || {
            let t = std::fs::read_to_string(&journal).unwrap_or_default();
            t.contains("on_lost") && t.contains("child_stopped")
        },
    );
    let took = gone.elapsed();
    eprintln!("leadership ended {took:?} after S3 went away");
    // Ask the daemon itself: it no longer leads. (Its "lost" log line is
    // written after the state changes, and the hook and the child react to
    // the state: the line may come after both.)
    let v = a.view().expect("GET /leader answers");
    assert_eq!(v["is_leader"], false, "{v}");
    assert_ne!(v["role"], "leader", "{v}");
    assert!(http(a.http_port, "GET", "/leader/health").0 == 503);
    // Its log says so too, in its own time.
    assert!(
        a.wait_event(Duration::from_secs(10), |e| e.event() == "lost")
            .is_some(),
        "{}",
        a.log_text()
    );
    assert!(!a.believes_leader(), "{}", a.log_text());
    // Still alive and following, waiting for S3 to return.
    assert!(a.alive());
}

/// Garbage, oversized and slow HTTP clients do not disturb the election.
#[test]
fn hostile_http_clients_do_not_disturb_the_election() {
    use std::io::{Read, Write};
    let sw = Seaweed::start();
    sw.bucket("hostile");
    let cfg = sw.config(
        sw.dir.path(),
        "hostile",
        "hostile",
        &format!("{TIMING}http:\n  header_timeout: 1s\n  max_connections: 8\n"),
    );
    let a = Daemon::start("a", &cfg);
    until(Duration::from_secs(30), "a leads", || a.believes_leader());
    let port = a.http_port;
    // Slow clients hold every connection slot for a while.
    let slow: Vec<std::net::TcpStream> = (0..8)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    // Garbage.
    let mut g = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    g.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = g.write_all(b"\x00\x01garbage\r\n\r\n");
    let mut buf = Vec::new();
    let _ = g.read_to_end(&mut buf);
    // Oversized head (after the slow ones time out).
    std::thread::sleep(Duration::from_secs(2));
    drop(slow);
    let mut big = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let huge = "x".repeat(64 * 1024);
    let _ = write!(
        big,
        "GET /leader HTTP/1.1\r\nHost: t\r\nX-Big: {huge}\r\n\r\n"
    );
    let mut resp = String::new();
    let _ = big.read_to_string(&mut resp);
    assert!(
        !resp.starts_with("HTTP/1.1 200"),
        "{}",
        &resp[..resp.len().min(200)]
    );
    // The daemon still serves and still leads, renewals uninterrupted.
    let (st, v) = get_json(port, "/leader");
    assert_eq!(st, 200);
    assert_eq!(v["is_leader"], true);
    assert!(
        !a.events().iter().any(|e| e.event() == "lost"),
        "{}",
        a.log_text()
    );
}

/// Each key of a JSON object line once; true when the line is one JSON
/// object with unique keys (serde_json would silently keep the last).
fn unique_keys(line: &str) -> bool {
    use serde::de::{Deserializer, MapAccess, Visitor};
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<bool, A::Error> {
            let mut seen = std::collections::HashSet::new();
            let mut unique = true;
            while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                unique &= seen.insert(k);
            }
            Ok(unique)
        }
    }
    serde_json::Deserializer::from_str(line)
        .deserialize_map(Keys)
        .unwrap_or(false)
}

/// What an operator reads (issue 14): no colour codes when stderr is not
/// a terminal; JSON lines with unique keys; and a follower's INFO log says
/// nothing about renewals it merely observed (only changes).
#[test]
fn logs_are_plain_unique_and_quiet_about_renewals() {
    use std::io::Read;
    let sw = Seaweed::start();
    sw.bucket("quietlogs");
    let cfg = sw.config(sw.dir.path(), "quietlogs", "quietlogs", TIMING);
    let a = Daemon::start("a", &cfg);
    until(Duration::from_secs(60), "a leads", || a.says_leader());
    // A client written for the contrib `leader-elector` sidecar: it polls
    // `GET /` and reads `name`.
    for _ in 0..5 {
        let (st, v) = get_json(a.http_port, "/");
        assert_eq!((st, v["name"].as_str()), (200, Some("a")), "{v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Two followers at INFO, as an operator runs them: text and JSON.
    let run = |id: &str, format: &str| {
        let mut cmd = daemon_command(&cfg);
        cmd.args(["run"])
            .env("S3_ELECTOR_IDENTITY", id)
            .env(
                "S3_ELECTOR_HTTP_LISTEN",
                format!("127.0.0.1:{}", free_port()),
            )
            .env("S3_ELECTOR_LOG", "info")
            .env("S3_ELECTOR_LOG_FORMAT", format)
            .env(
                "S3E_TEST_OWNER",
                format!("quietlogs-{id}-{}", std::process::id()),
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().expect("start s3-elector")
    };
    let mut text = run("t", "text");
    let mut json = run("j", "json");
    // Lists are JSON arrays: the leader names its successors.
    let mut named = None;
    for _ in 0..100 {
        named = a
            .events()
            .iter()
            .find(|e| {
                e.str("message") == Some("successors checked")
                    && e.json["successors"]
                        .as_array()
                        .is_some_and(|s| s.len() == 2)
            })
            .map(|e| e.json.clone());
        if named.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let named = named.unwrap_or_else(|| {
        panic!(
            "no 'successors checked' line naming t and j as a JSON array:\n{}",
            a.log_text()
        )
    });
    assert!(named["candidates"].is_u64(), "{named}");
    // 10 renewal periods (retry 500 ms): 10 renewals observed by each.
    std::thread::sleep(Duration::from_secs(5));
    let mut logs = Vec::new();
    for c in [&mut text, &mut json] {
        let _ = c.kill();
        let _ = c.wait();
        let mut out = String::new();
        c.stderr.take().unwrap().read_to_string(&mut out).unwrap();
        logs.push(out);
    }
    for id in ["t", "j"] {
        sweep(&format!("quietlogs-{id}-{}", std::process::id()));
    }
    let (text, json) = (&logs[0], &logs[1]);
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in a non-TTY log:\n{text}"
    );
    assert!(text.contains("observed lease"), "{text}");
    for (name, log) in [("text", text), ("json", json)] {
        let observed = log.lines().filter(|l| l.contains("observed")).count();
        assert!(
            observed <= 2,
            "{name}: {observed} 'observed' lines at INFO in 10 renewal periods:\n{log}"
        );
    }
    for line in json.lines() {
        assert!(
            unique_keys(line),
            "not one JSON object with unique keys: {line}"
        );
    }
    assert!(json.contains("store conformance probe passed"), "{json}");
}
