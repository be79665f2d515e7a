//! Clocks: an offset of ±1 h must not matter at all; a clock running fast or
//! slow is tolerated up to (lease − renew deadline)/(lease + renew deadline),
//! 20 % at the timings used here (3 s / 2 s). Copies run under libfaketime.

#![allow(clippy::disallowed_types)] // end-to-end tests measure real elapsed time

mod support;

use std::time::{Duration, Instant};

use support::*;

const LEASE: Duration = Duration::from_secs(3);
const TIMING: &str = "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\n";

struct Node {
    proxy: FaultProxy,
    d: Daemon,
}

fn start(sw: &Seaweed, bucket: &str, id: &str, faketime: Option<&str>) -> Node {
    let proxy = FaultProxy::start(&sw.endpoint);
    let cfg = sw.config_via(sw.dir.path(), id, bucket, &proxy.endpoint(), TIMING);
    let lib = libfaketime();
    let env: Vec<(&str, &str)> = match faketime {
        Some(f) => vec![
            ("LD_PRELOAD", lib.as_str()),
            ("FAKETIME", f),
            ("FAKETIME_NO_CACHE", "1"),
        ],
        None => vec![],
    };
    Node {
        proxy,
        d: Daemon::start_with(id, &cfg, &env),
    }
}

fn wait_leader(ns: &[Node], within: Duration) -> usize {
    wait_single_leader(&ns.iter().map(|n| &n.d).collect::<Vec<_>>(), within)
}

fn check(ns: &[Node]) -> usize {
    let all: Vec<Interval> = ns.iter().flat_map(|n| intervals(&n.d, None)).collect();
    let n = all.len();
    check_intervals(all);
    n
}

/// Three copies at −1 h, 0 and +1 h: elections, a crash-free partition
/// failover and graceful hand-overs behave exactly as without offsets.
#[test]
fn a_clock_offset_of_an_hour_does_not_matter() {
    let sw = Seaweed::start();
    sw.bucket("offset");
    let ns = vec![
        start(&sw, "offset", "minus", Some("-1h")),
        start(&sw, "offset", "zero", None),
        start(&sw, "offset", "plus", Some("+1h")),
    ];
    for round in 0..3 {
        let l = wait_leader(&ns, Duration::from_secs(30));
        std::thread::sleep(Duration::from_secs(1));
        ns[l].proxy.set(Fault::BlackHole);
        let end = Instant::now() + Duration::from_secs(20);
        let l2 = loop {
            let l2 = wait_leader(&ns, end.saturating_duration_since(Instant::now()));
            if l2 != l {
                break l2;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_ne!(l, l2, "round {round}");
        // Offsets change nothing: the new leader waited a full lease after
        // the old leader's last write (sent before the proxy's record of
        // it; read now, so a write let through just before the cut counts).
        // Observed here later than it happened: load cannot break this.
        let since_write = ns[l]
            .proxy
            .last_lease_put()
            .expect("the leader wrote")
            .elapsed();
        assert!(
            since_write >= LEASE,
            "round {round}: took over {since_write:?} after the old leader's last write"
        );
        ns[l].proxy.set(Fault::Pass);
        std::thread::sleep(Duration::from_secs(2));
    }
    let n = check(&ns);
    eprintln!("offset: {n} intervals, 0 overlaps");
}

/// The edge of tolerated drift, one copy at a time: a follower whose clock
/// runs 19 % fast, and a leader whose clock runs 16 % slow. The leader is
/// cut off from S3, so it stops at its own deadline and the follower takes
/// over at its own idea of the lease's end.
#[test]
fn clock_rate_drift_at_the_edge_keeps_one_leader() {
    for (leader_rate, follower_rate) in [(None, Some("+0 x1.19")), (Some("+0 x0.84"), None)] {
        let sw = Seaweed::start();
        sw.bucket("drift");
        // The leader starts first and alone, so it is the one we skew.
        let l = start(&sw, "drift", "leader", leader_rate);
        wait_single_leader(&[&l.d], Duration::from_secs(30));
        let f = start(&sw, "drift", "follower", follower_rate);
        // The follower is in the election and has seen the lease before the
        // leader is cut off (ask it, rather than guess how long that takes).
        until(Duration::from_secs(30), "the follower follows", || {
            f.d.follows("leader")
        });
        // A few renewals observed on the skewed clock.
        std::thread::sleep(Duration::from_secs(2));
        let cut = Instant::now();
        l.proxy.set(Fault::BlackHole);
        wait_single_leader(&[&f.d], Duration::from_secs(20));
        let took = cut.elapsed();
        let ns = vec![l, f];
        let n = check(&ns);
        eprintln!("drift leader {leader_rate:?} follower {follower_rate:?}: takeover {took:?} after the cut, {n} intervals, 0 overlaps");
    }
}
