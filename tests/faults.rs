//! Fault injection: each copy talks to SeaweedFS through its own proxy,
//! which can partition it, delay it, answer errors or drop answers. After
//! every scenario the checker verifies that no two copies' leadership
//! intervals overlap and that terms only grow.

#![allow(clippy::disallowed_types)] // end-to-end tests measure real elapsed time

mod support;

use std::time::{Duration, Instant};

use support::*;

const TIMING: &str = "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\n";
const LEASE: Duration = Duration::from_secs(3);
const RENEW_DEADLINE: Duration = Duration::from_secs(2);

struct Group {
    _sw: Seaweed,
    proxies: Vec<FaultProxy>,
    ds: Vec<Daemon>,
}

fn group(bucket: &str, n: usize) -> Group {
    let sw = Seaweed::start();
    sw.bucket(bucket);
    let mut proxies = Vec::new();
    let mut ds = Vec::new();
    for i in 0..n {
        let p = FaultProxy::start(&sw.endpoint);
        let cfg = sw.config_via(
            sw.dir.path(),
            &format!("n{i}"),
            bucket,
            &p.endpoint(),
            TIMING,
        );
        ds.push(Daemon::start(&format!("n{i}"), &cfg));
        proxies.push(p);
    }
    Group {
        _sw: sw,
        proxies,
        ds,
    }
}

fn leaders(ds: &[Daemon]) -> Vec<usize> {
    (0..ds.len()).filter(|i| ds[*i].believes_leader()).collect()
}

fn wait_leader(ds: &[Daemon], within: Duration) -> usize {
    wait_single_leader(&ds.iter().collect::<Vec<_>>(), within)
}

fn check(ds: &[Daemon]) -> usize {
    check_daemons(ds, &[], 0)
}

#[test]
fn a_partitioned_leader_steps_down_and_a_follower_waits_out_the_lease() {
    let g = group("partition", 3);
    let l = wait_leader(&g.ds, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    g.proxies[l].set(Fault::BlackHole);
    // The leader steps down by its renew deadline (2 s after sending its
    // last renewal), without any answer from S3. Timed on its own clock
    // and log, not on when this test gets to read the log.
    let lost = g.ds[l].wait_event(Duration::from_secs(10), |e| e.event() == "lost");
    let lost = lost.unwrap_or_else(|| panic!("{}", g.ds[l].log_text()));
    let deadline = last_write_sent(&g.ds[l], RENEW_DEADLINE).unwrap() + RENEW_DEADLINE;
    let late = lost.at.duration_since(deadline).unwrap_or_default();
    assert!(
        late < Duration::from_millis(500),
        "stepped down {late:?} after its renew deadline"
    );
    let l2 = wait_leader(&g.ds, Duration::from_secs(20));
    assert_ne!(l2, l);
    // Read only now: a write the proxy had already let through when it
    // was cut still counts.
    let last_put = g.proxies[l].last_lease_put().expect("the leader wrote");
    // The new leader took over no sooner than a full lease after the old
    // leader's last write was sent (it waits a lease from when it first
    // saw that write). Observed here later than it happened: a lower bound
    // that load cannot break.
    let took_over = last_put.elapsed();
    assert!(
        took_over >= LEASE,
        "took over {took_over:?} after the old leader's last write"
    );
    g.proxies[l].set(Fault::Pass);
    // The healed copy reads again and follows the new leader (ask it).
    let new = g.ds[l2].id.clone();
    until(
        Duration::from_secs(10),
        "the healed copy follows the new leader",
        || {
            g.ds[l]
                .view()
                .is_some_and(|v| v["leader"] == new.as_str() && v["is_leader"] == false)
        },
    );
    assert!(g.ds[l2].says_leader(), "{new} still leads");
    assert_eq!(leaders(&g.ds), vec![l2], "the healed copy follows");
    let n = check(&g.ds);
    eprintln!("partition: stepped down {late:?} after the deadline, new leader {took_over:?} after the last write, {n} intervals, 0 overlaps");
}

#[test]
fn s3_unreachable_for_everyone_means_no_leader_then_recovery() {
    let g = group("outage", 3);
    let l = wait_leader(&g.ds, Duration::from_secs(30));
    // Every copy past its start (the probe) and in the election.
    until(
        Duration::from_secs(60),
        "every copy has read the lease",
        || {
            g.ds.iter()
                .all(|d| d.view().is_some_and(|v| v["ready"] == true))
        },
    );
    for p in &g.proxies {
        p.set(Fault::BlackHole);
    }
    let cut = std::time::SystemTime::now();
    // The leader gives up at its renew deadline; wait for it to say so
    // rather than guessing how long that takes on a busy machine.
    let lost = g.ds[l].wait_event(Duration::from_secs(10), |e| e.event() == "lost");
    assert!(lost.is_some(), "{}", g.ds[l].log_text());
    let end = Instant::now() + LEASE * 2;
    while Instant::now() < end {
        assert!(leaders(&g.ds).is_empty(), "nobody may lead without S3");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nor did anyone acquire while cut off (by the copies' own log).
    for d in &g.ds {
        assert!(
            !d.events()
                .iter()
                .any(|e| e.event() == "acquired" && e.at > cut),
            "{} acquired without S3:\n{}",
            d.id,
            d.log_text()
        );
    }
    for p in &g.proxies {
        p.set(Fault::Pass);
    }
    wait_leader(&g.ds, Duration::from_secs(30));
    // Each copy said so once, and once that the store is back, with how
    // long it was gone (the outage lasted well under a minute).
    for d in &g.ds {
        let back = d.wait_event(Duration::from_secs(30), |e| e.event() == "store_reachable");
        let back = back
            .unwrap_or_else(|| panic!("{} never said the store is back:\n{}", d.id, d.log_text()));
        let gone = back
            .json
            .get("gone_ms")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        assert!(gone >= 1000, "{}: gone {gone} ms", d.id);
        let warned = d
            .events()
            .iter()
            .filter(|e| e.event() == "store_unreachable" && e.at > cut)
            .count();
        assert_eq!(
            warned,
            1,
            "{}: one warning for the outage, not one per request:\n{}",
            d.id,
            d.log_text()
        );
    }
    check(&g.ds);
}

#[test]
fn error_storms_lost_acks_and_latency_spikes_never_make_two_leaders() {
    let g = group("storms", 3);
    wait_leader(&g.ds, Duration::from_secs(30));
    let faults = [
        Fault::Respond(503, "SlowDown"),
        Fault::Respond(500, "InternalError"),
        Fault::Respond(409, "ConditionalRequestConflict"),
        Fault::DropResponse,
        Fault::Reset,
        Fault::Delay {
            base: Duration::from_millis(2500),
            jitter: Duration::from_millis(500),
        },
        Fault::Delay {
            base: Duration::from_millis(50),
            jitter: Duration::from_millis(200),
        },
        Fault::Pass,
    ];
    let seed: u64 = std::env::var("S3E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    eprintln!("storms: seed {seed} (replay with S3E_SEED={seed})");
    let mut x = seed;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        let node = (next() % 3) as usize;
        let f = faults[(next() % faults.len() as u64) as usize].clone();
        g.proxies[node].set(f);
        let until = Instant::now() + Duration::from_millis(300 + next() % 1500);
        while Instant::now() < until {
            assert!(leaders(&g.ds).len() <= 1, "two copies believe they lead");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for p in &g.proxies {
        p.set(Fault::Pass);
    }
    wait_leader(&g.ds, Duration::from_secs(30));
    let n = check(&g.ds);
    eprintln!("storms: {n} leadership intervals, 0 overlaps");
}

#[test]
fn seaweedfs_restart_mid_run_recovers() {
    let mut sw = Seaweed::start();
    sw.bucket("restart");
    let cfg = sw.config(sw.dir.path(), "restart", "restart", TIMING);
    let ds: Vec<Daemon> = ["a", "b", "c"]
        .iter()
        .map(|id| Daemon::start(id, &cfg))
        .collect();
    wait_leader(&ds, Duration::from_secs(30));
    sw.restart();
    wait_leader(&ds, Duration::from_secs(60));
    check(&ds);
}

#[test]
fn fifty_copies_racing_on_one_key_elect_one_at_a_time() {
    let sw = Seaweed::start();
    sw.bucket("fifty");
    let cfg = sw.config(sw.dir.path(), "fifty", "fifty", TIMING);
    let mut ds: Vec<Daemon> = (0..50)
        .map(|i| Daemon::start(&format!("c{i:02}"), &cfg))
        .collect();
    for _ in 0..2 {
        let l = wait_leader(&ds, Duration::from_secs(60));
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            assert!(leaders(&ds).len() <= 1, "two leaders among 50");
            std::thread::sleep(Duration::from_millis(25));
        }
        ds[l].signal("TERM");
        assert!(ds[l]
            .wait_exit(Duration::from_secs(15))
            .is_some_and(|s| s.success()));
    }
    wait_leader(&ds, Duration::from_secs(60));
    let n = check(&ds);
    eprintln!("fifty: {n} intervals, 0 overlaps");
}

/// SIGSTOP the leader for longer than the lease: another copy takes over;
/// on SIGCONT the old leader finds its deadline long past, acts as a
/// follower, and its supervised program is stopped at once.
#[test]
fn a_stopped_and_resumed_leader_follows_and_stops_its_child() {
    let sw = Seaweed::start();
    sw.bucket("sigstop");
    let dir = sw.dir.path();
    let cfg = sw.config(dir, "sigstop", "sigstop", TIMING);
    let journal = dir.join("journal");
    let script = format!(
        "trap 'echo stop $S3_ELECTOR_IDENTITY >> {j}; exit 0' TERM; echo start $S3_ELECTOR_IDENTITY >> {j}; while :; do sleep 0.1; done",
        j = journal.display()
    );
    let args = ["--", "sh", "-c", script.as_str()];
    let ds: Vec<Daemon> = ["a", "b"]
        .iter()
        .map(|id| Daemon::start_full(id, &cfg, &[], &args))
        .collect();
    let l = wait_leader(&ds, Duration::from_secs(30));
    let f = 1 - l;
    let old = ds[l].id.clone();
    until_ok(Duration::from_secs(10), || {
        std::fs::read_to_string(&journal).is_ok_and(|t| t.contains(&format!("start {old}")))
    });
    ds[l].signal("STOP");
    let new = ds[f].id.clone();
    until_ok(Duration::from_secs(20), || ds[f].believes_leader());
    ds[l].signal("CONT");
    let resumed = Instant::now();
    until_ok(Duration::from_secs(10), || {
        std::fs::read_to_string(&journal).is_ok_and(|t| t.contains(&format!("stop {old}")))
    });
    eprintln!(
        "resumed leader's child stopped {:?} after SIGCONT",
        resumed.elapsed()
    );
    let lost = ds[l].wait_event(Duration::from_secs(5), |e| e.event() == "lost");
    assert!(lost.is_some(), "{}", ds[l].log_text());
    assert!(!ds[l].believes_leader());
    assert!(ds[f].believes_leader(), "{new} keeps leading");
    until_ok(Duration::from_secs(10), || {
        std::fs::read_to_string(&journal).is_ok_and(|t| t.contains(&format!("start {new}")))
    });
}

fn until_ok(within: Duration, f: impl FnMut() -> bool) {
    until(within, "condition", f)
}

/// A randomized soak mixing faults, crashes, graceful stops and freezes.
/// 60 s by default; `S3E_SOAK_SECS` makes it longer (scripts/soak runs 10
/// minutes); `S3E_SEED` replays a run. The checker runs over every copy
/// that ever ran.
#[test]
fn randomized_soak_keeps_one_leader_at_a_time() {
    let secs: u64 = std::env::var("S3E_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("S3E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::random::<u16>() as u64 + 1);
    eprintln!("soak: {secs} s, seed {seed} (replay with S3E_SEED={seed} S3E_SOAK_SECS={secs})");
    let mut x = seed;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut g = group("soak", 4);
    let cfgs: Vec<std::path::PathBuf> = (0..4)
        .map(|i| g._sw.dir.path().join(format!("n{i}.yaml")))
        .collect();
    let mut retired: Vec<(Daemon, Option<std::time::SystemTime>)> = Vec::new();
    let (mut with_leader, mut samples, mut actions) = (0u64, 0u64, 0u64);
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let i = rnd(4) as usize;
        actions += 1;
        match rnd(10) {
            0..=3 => {
                let f = match rnd(8) {
                    0 => Fault::BlackHole,
                    1 => Fault::Respond(503, "SlowDown"),
                    2 => Fault::Respond(500, "InternalError"),
                    3 => Fault::Respond(409, "ConditionalRequestConflict"),
                    4 => Fault::DropResponse,
                    5 => Fault::Reset,
                    6 => Fault::Delay {
                        base: Duration::from_millis(100 + rnd(2500)),
                        jitter: Duration::from_millis(300),
                    },
                    _ => Fault::Pass,
                };
                g.proxies[i].set(f);
            }
            4 | 5 => {
                for p in &g.proxies {
                    p.set(Fault::Pass);
                }
            }
            6 => {
                let mut d =
                    std::mem::replace(&mut g.ds[i], Daemon::start(&format!("n{i}"), &cfgs[i]));
                let at = std::time::SystemTime::now();
                d.kill();
                retired.push((d, Some(at)));
            }
            7 => {
                if g.ds[i].alive() {
                    g.ds[i].signal("TERM");
                    let _ = g.ds[i].wait_exit(Duration::from_secs(15));
                }
                let d = std::mem::replace(&mut g.ds[i], Daemon::start(&format!("n{i}"), &cfgs[i]));
                retired.push((d, None));
            }
            _ => {
                if g.ds[i].alive() {
                    g.ds[i].signal("STOP");
                    std::thread::sleep(Duration::from_millis(300 + rnd(4500)));
                    g.ds[i].signal("CONT");
                }
            }
        }
        let until = Instant::now() + Duration::from_millis(300 + rnd(1500));
        while Instant::now() < until {
            samples += 1;
            with_leader += u64::from(g.ds.iter().any(|d| d.believes_leader()));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for p in &g.proxies {
        p.set(Fault::Pass);
    }
    wait_leader(&g.ds, Duration::from_secs(60));
    let mut all: Vec<Interval> = g.ds.iter().flat_map(|d| intervals(d, None)).collect();
    for (d, killed) in &retired {
        all.extend(intervals(d, *killed));
    }
    let n = all.len();
    check_intervals(all);
    eprintln!(
        "soak: seed {seed}, {actions} actions, {n} leadership intervals checked, 0 overlaps; a leader in {:.0} % of samples",
        100.0 * with_leader as f64 / samples.max(1) as f64
    );
}

/// A proxy that strips the conditional headers turns a good store into one
/// that ignores them: the conformance probe must catch it, and no copy may
/// join the election.
#[test]
fn a_proxy_stripping_conditional_headers_is_caught_by_the_probe() {
    let sw = Seaweed::start_open();
    sw.bucket("stripped");
    let proxy = FaultProxy::start(&sw.endpoint);
    proxy.set(Fault::StripConditional);
    let cfg = sw.dir.path().join("stripped.yaml");
    std::fs::write(
        &cfg,
        format!(
            "election: strip\ns3:\n  bucket: stripped\n  endpoint_url: {}\n  force_path_style: true\n  region: us-east-1\n  request_timeout: 1s\n  connect_timeout: 500ms\n{TIMING}",
            proxy.endpoint()
        ),
    )
    .unwrap();
    for args in [&["check"][..], &["run"][..]] {
        let (code, out, err) = run_cmd(&cfg, args, &[("S3_ELECTOR_IDENTITY", "a")]);
        assert_eq!(code, 69, "{args:?}: {out}{err}");
        assert!(
            err.contains("does not honour conditional writes"),
            "{args:?}: {err}"
        );
    }
    // The same store through an honest proxy passes.
    proxy.set(Fault::Pass);
    let (code, out, err) = run_cmd(&cfg, &["check"], &[("S3_ELECTOR_IDENTITY", "a")]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Issue 30's lost-answer acquisition, from the outside review's
/// reproduction: lease 3 s, renew deadline 2 s, retry 0.5 s and a request
/// timeout of 1.9 s (valid: below the renew deadline). B leads; A follows
/// through a proxy. B steps down; A's takeover lands, but its answer never
/// comes back and A's later lease writes are held. A times out, reads back
/// and finds its own write: it must count its validity from the write,
/// which B saw land and waits out from then. Before the fix both believed
/// they led for 340-785 ms.
#[test]
fn a_takeover_whose_answer_was_lost_counts_from_the_write() {
    let sw = Seaweed::start();
    sw.bucket("lost");
    let proxy = FaultProxy::start(&sw.endpoint);
    let dir = sw.dir.path();
    let cfg = |name: &str, endpoint: &str| {
        let p = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &p,
            format!(
                "election: lost\ns3:\n  bucket: lost\n  endpoint_url: {endpoint}\n  force_path_style: true\n  region: us-east-1\n  request_timeout: 1900ms\n  connect_timeout: 500ms\n\
                 timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\n  step_down_cooloff: 1s\nregistry:\n  enabled: false\n"
            ),
        )
        .unwrap();
        p
    };
    let b = Daemon::start("node-b", &cfg("b", &sw.endpoint));
    wait_single_leader(&[&b], Duration::from_secs(30));
    let a = Daemon::start("node-a", &cfg("a", &proxy.endpoint()));
    until(Duration::from_secs(30), "A follows B", || {
        a.follows("node-b")
    });
    proxy.set(Fault::EatNextLeasePut);
    b.signal("USR1");
    // A's write lands at once; A learns it 1.9 s later. B takes the lease
    // back a lease after it saw A's record, while A cannot renew.
    let took_back = b.wait_event(Duration::from_secs(20), |e| {
        e.event() == "acquired" && e.term().is_some_and(|t| t >= 3)
    });
    assert!(
        a.events().iter().any(|e| e.event() == "acquired"),
        "A took the lease (its answer lost): {}",
        a.log_text()
    );
    assert!(
        a.log_text().contains("landed after all"),
        "A settled its takeover by reading back"
    );
    assert!(
        took_back.is_some(),
        "B took the lease back: {}",
        b.log_text()
    );
    // Let A's step-down be logged, then check every interval.
    until(Duration::from_secs(10), "A no longer leads", || {
        !a.believes_leader()
    });
    check_daemons([&a, &b], &[], 3);
    proxy.set(Fault::Pass);
}
