//! End to end: fast hand-over through the candidate registry and wake-ups,
//! against a real SeaweedFS on loopback.
//!
//! The retry period here is long (20 s) on purpose: a hand-over that comes
//! within a couple of seconds cannot be explained by a poll, only by a
//! wake-up. Each test asserts the property (who woke whom, how many reads a
//! storm caused, no overlap), never a speed target.

#![allow(clippy::disallowed_types)] // end-to-end tests measure real elapsed time

mod support;

use std::time::{Duration, Instant, SystemTime};

use support::*;

const SLOW_POLL: &str =
    "timing:\n  lease_duration: 40s\n  renew_deadline: 30s\n  retry_period: 20s\n";

/// Wait until the lease object names `d` as holder and `n` successors;
/// returns them.
/// The daemon logs "successors checked" before it puts them to use (sets
/// whom to wake, names them in its records): the record itself is the
/// proof that the leader acts on them.
fn wait_successors(
    sw: &Seaweed,
    bucket: &str,
    d: &Daemon,
    n: usize,
    within: Duration,
) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = sw.client();
    let mut last = serde_json::Value::Null;
    let end = Instant::now() + within;
    loop {
        let rec = rt.block_on(async {
            let o = c
                .get_object()
                .bucket(bucket)
                .key("s3-elector/e2e/lease.json")
                .send()
                .await
                .ok()?;
            let b = o.body.collect().await.ok()?.into_bytes();
            serde_json::from_slice::<serde_json::Value>(&b).ok()
        });
        if let Some(r) = rec {
            if r["holder"] == d.id.as_str()
                && r["released"] == false
                && r["successors"].as_array().is_some_and(|s| s.len() == n)
            {
                return serde_json::from_value(r["successors"].clone()).unwrap();
            }
            last = r;
        }
        assert!(
            Instant::now() < end,
            "{} never named {n} successors; last record {last}:\n{}",
            d.id,
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn acquired_after(d: &Daemon, t: SystemTime) -> Option<SystemTime> {
    d.events()
        .iter()
        .find(|e| e.event() == "acquired" && e.at >= t)
        .map(|e| e.at)
}

#[test]
fn a_stopping_leader_wakes_its_successor_instead_of_waiting_for_a_poll() {
    let sw = Seaweed::start();
    sw.bucket("handover");
    let cfg = sw.config(sw.dir.path(), "handover", "handover", SLOW_POLL);
    let mut ds: Vec<Daemon> = ["a", "b", "c", "d"]
        .iter()
        .map(|id| Daemon::start(id, &cfg))
        .collect();
    let refs: Vec<&Daemon> = ds.iter().collect();
    let mut l = wait_single_leader(&refs, Duration::from_secs(60));
    // Three hand-overs in a row, each to the successor the leader named.
    for round in 0..3 {
        let alive = ds.iter().filter(|d| d.alive()).count();
        // Up to a check interval (10 s) and a renewal (20 s) after the copies
        // are up, with room for a busy machine.
        wait_successors(&sw, "handover", &ds[l], alive - 1, Duration::from_secs(60));
        // Away from the renewal just seen: the followers read around each
        // renewal (and once more a guard after an early read), and one of
        // those reads may find the release by itself; 4 s later the next
        // planned read is 16 s away, and only a wake-up explains a quick
        // take-over.
        std::thread::sleep(Duration::from_secs(4));
        let stop = SystemTime::now();
        ds[l].signal("TERM");
        assert!(ds[l]
            .wait_exit(Duration::from_secs(10))
            .is_some_and(|s| s.success()));
        // The stopping copy says whom it woke.
        let woke = ds[l].events().iter().any(|e| {
            e.json.get("message").and_then(|m| m.as_str()) == Some("woke the other candidates")
                && e.json.get("woken").and_then(|n| n.as_u64()) == Some(alive as u64 - 1)
        });
        assert!(
            woke,
            "round {round}: no wake-ups sent:\n{}",
            ds[l].log_text()
        );
        let end = Instant::now() + Duration::from_secs(60);
        let (next, at) = loop {
            if let Some((i, t)) = ds
                .iter()
                .enumerate()
                .filter(|(_, d)| d.alive())
                .find_map(|(i, d)| acquired_after(d, stop).map(|t| (i, t)))
            {
                break (i, t);
            }
            assert!(Instant::now() < end, "round {round}: nobody took over");
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = at.duration_since(stop).unwrap_or_default();
        eprintln!(
            "round {round}: {} took over {took:?} after SIGTERM",
            ds[next].id
        );
        // A poll could come only 20 s after the previous one; the wake-up
        // made it happen at once. Generous bound for a busy machine.
        assert!(
            took < Duration::from_secs(5),
            "round {round}: hand-over took {took:?}, as if by polling"
        );
        let woken = ds[next].events().iter().any(|e| {
            e.at >= stop
                && e.json.get("message").and_then(|m| m.as_str())
                    == Some("wake-up received; reading the lease")
        });
        assert!(
            woken,
            "round {round}: {} took over without a wake-up",
            ds[next].id
        );
        l = next;
    }
    // Every stop was graceful: no copy was killed.
    check_daemons(&ds, &[], 4);
    for d in ds.iter_mut().filter(|d| d.alive()) {
        d.signal("TERM");
        d.wait_exit(Duration::from_secs(10));
    }
}

/// A leader stopped within a moment of acquiring (a cluster start followed
/// by a quick restart, pods replaced back to back), before it has checked
/// any candidate, still wakes the others: it lists the registry at its
/// release. Without that the next copy would wait for its poll (20 s here).
///
/// A registry entry whose address accepts connections but never answers
/// holds each round of checks for the check timeout (500 ms), so a leader
/// stopped as soon as it acquires has checked nobody yet.
#[test]
fn a_leader_stopped_right_after_acquiring_still_wakes_the_others() {
    let sw = Seaweed::start();
    sw.bucket("early");
    let cfg = sw.config(sw.dir.path(), "early", "early", SLOW_POLL);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let entry = serde_json::json!({
        "schema": "s3-elector/candidate",
        "election": "e2e",
        "identity": "zz-silent",
        "address": silent.local_addr().unwrap().to_string(),
        "host": gethostname(),
        "written_at": "",
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(
        sw.client()
            .put_object()
            .bucket("early")
            .key("s3-elector/e2e/candidates/zz-silent.candidate.json")
            .body(entry.to_string().into_bytes().into())
            .send(),
    )
    .unwrap();
    let mut ds: Vec<Daemon> = ["a", "b", "c"]
        .iter()
        .map(|id| Daemon::start(id, &cfg))
        .collect();
    let refs: Vec<&Daemon> = ds.iter().collect();
    let first = wait_single_leader(&refs, Duration::from_secs(60));
    wait_successors(&sw, "early", &ds[first], 2, Duration::from_secs(60));
    // A graceful hand-over; the new leader is stopped the moment it
    // acquires.
    let stop1 = SystemTime::now();
    ds[first].signal("TERM");
    let end = Instant::now() + Duration::from_secs(30);
    let next = loop {
        if let Some(i) =
            (0..ds.len()).find(|&i| i != first && acquired_after(&ds[i], stop1).is_some())
        {
            break i;
        }
        assert!(
            Instant::now() < end,
            "nobody took over from {}",
            ds[first].id
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let stop = SystemTime::now();
    ds[next].signal("TERM");
    let acquired = acquired_after(&ds[next], stop1).unwrap();
    assert!(ds[first]
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
    assert!(ds[next]
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
    let release = ds[next]
        .events()
        .into_iter()
        .find(|e| e.str("message") == Some("woke the other candidates"))
        .unwrap_or_else(|| panic!("no wake-ups:\n{}", ds[next].log_text()));
    let woken = release.json["woken"].as_u64().unwrap_or(0);
    assert!(
        woken >= 1 && release.json["listed_ms"].is_u64(),
        "{} (stopped {:?} after acquiring) woke nobody, or did not list: {}\n{}",
        ds[next].id,
        stop.duration_since(acquired).unwrap_or_default(),
        release.json,
        ds[next].log_text()
    );
    let last = (0..ds.len()).find(|&i| i != first && i != next).unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    let at = loop {
        if let Some(t) = acquired_after(&ds[last], stop) {
            break t;
        }
        assert!(Instant::now() < end, "{} never took over", ds[last].id);
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = at.duration_since(stop).unwrap_or_default();
    eprintln!(
        "early stop: {} stopped {:?} after acquiring, woke {woken} (listing took {} ms); {} took over {took:?} later",
        ds[next].id,
        stop.duration_since(acquired).unwrap_or_default(),
        release.json["listed_ms"],
        ds[last].id
    );
    assert!(
        took < Duration::from_secs(5),
        "hand-over took {took:?}, as if by polling"
    );
    drop(silent);
    for d in ds.iter_mut().filter(|d| d.alive()) {
        d.signal("TERM");
        d.wait_exit(Duration::from_secs(10));
    }
}

#[test]
fn a_storm_of_forged_wake_ups_costs_bounded_reads_and_never_a_takeover() {
    let sw = Seaweed::start();
    sw.bucket("storm");
    let timing = "timing:\n  lease_duration: 6s\n  renew_deadline: 4s\n  retry_period: 2s\n";
    let cfg = sw.config(sw.dir.path(), "leader", "storm", timing);
    let a = Daemon::start("a", &cfg);
    wait_single_leader(&[&a], Duration::from_secs(30));
    // The follower talks to S3 through a counting proxy.
    let proxy = CountingProxy::start(&sw.endpoint);
    let fpath = sw.config_via(
        sw.dir.path(),
        "follower",
        "storm",
        &proxy.endpoint(),
        timing,
    );
    let b = Daemon::start("b", &fpath);
    b.wait_event(Duration::from_secs(30), |e| e.event() == "observed")
        .expect("follower observed the lease");
    std::thread::sleep(Duration::from_millis(500));
    let gets_before = proxy
        .counts
        .lock()
        .unwrap()
        .get("GET")
        .copied()
        .unwrap_or(0);
    let t0 = Instant::now();
    let mut sent = 0;
    while t0.elapsed() < Duration::from_secs(6) {
        for d in [&a, &b] {
            let (st, _) = http(d.http_port, "POST", "/wake");
            assert_eq!(st, 202);
            sent += 1;
        }
        assert!(
            !b.believes_leader(),
            "a wake-up made the follower take over"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = t0.elapsed().as_secs_f64();
    let gets = proxy
        .counts
        .lock()
        .unwrap()
        .get("GET")
        .copied()
        .unwrap_or(0)
        - gets_before;
    // At most one wake-up read per quarter period (0.5 s) plus the polls
    // (one per period, plus an early one now and then), plus slack.
    let bound = (secs / 0.5).ceil() as u64 + (secs / 2.0).ceil() as u64 * 2 + 3 + 3;
    assert!(sent > 200, "only {sent} wake-ups sent");
    assert!(
        gets <= bound,
        "{sent} wake-ups caused {gets} reads in {secs:.1}s (bound {bound})"
    );
    assert!(a.believes_leader() && !b.believes_leader());
    let (_, m) = http(b.http_port, "GET", "/metrics");
    assert!(m.contains("s3_elector_wake_ups_received_total"), "{m}");
    check_daemons([&a, &b], &[], 0);
}

#[test]
fn corrupt_or_lying_registry_entries_only_cost_speed() {
    let sw = Seaweed::start();
    sw.bucket("junk");
    let cfg = sw.config(sw.dir.path(), "junk", "junk", SLOW_POLL);
    let mut a = Daemon::start("a", &cfg);
    wait_single_leader(&[&a], Duration::from_secs(30));
    let b = Daemon::start("b", &cfg);
    b.wait_event(Duration::from_secs(30), |e| e.event() == "observed")
        .expect("b observed the lease");
    // Junk next to the real entries: not JSON, a huge object, and an entry
    // that claims to be "z" at b's address (b answers as "b": not used).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = sw.client();
    let prefix = "s3-elector/e2e/candidates/";
    let lie = format!(
        r#"{{"schema":"s3-elector/candidate","election":"e2e","identity":"z","address":"127.0.0.1:{}","host":"{}","written_at":""}}"#,
        b.http_port,
        gethostname()
    );
    for (k, body) in [
        ("junk.candidate.json", b"not json at all".to_vec()),
        ("huge.candidate.json", vec![b'x'; 100_000]),
        ("z.candidate.json", lie.into_bytes()),
    ] {
        rt.block_on(
            c.put_object()
                .bucket("junk")
                .key(format!("{prefix}{k}"))
                .body(body.into())
                .send(),
        )
        .unwrap();
    }
    // Make the leader list again: a fresh leader lists at once.
    a.signal("TERM");
    assert!(a
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
    wait_single_leader(&[&b], Duration::from_secs(60));
    let a2 = Daemon::start("a", &cfg);
    a2.wait_event(Duration::from_secs(30), |e| e.event() == "observed")
        .expect("a observed the lease");
    // Only the real candidate is named; the junk is skipped.
    let named = wait_successors(&sw, "junk", &b, 1, Duration::from_secs(60));
    assert_eq!(named, ["a"]);
    assert!(b.alive() && a2.alive());
    check_daemons([&a, &b, &a2], &[], 0);
}

fn gethostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn without_the_registry_hand_over_still_works_at_poll_speed() {
    let sw = Seaweed::start();
    sw.bucket("plain");
    let extra = "timing:\n  lease_duration: 6s\n  renew_deadline: 4s\n  retry_period: 2s\nregistry:\n  enabled: false\n";
    let cfg = sw.config(sw.dir.path(), "plain", "plain", extra);
    let mut a = Daemon::start("a", &cfg);
    wait_single_leader(&[&a], Duration::from_secs(30));
    let b = Daemon::start("b", &cfg);
    b.wait_event(Duration::from_secs(30), |e| e.event() == "observed")
        .expect("b observed the lease");
    let stop = SystemTime::now();
    a.signal("TERM");
    assert!(a
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
    b.wait_event(Duration::from_secs(30), |e| e.event() == "acquired")
        .expect("b took over at its next poll");
    // Nobody was woken, and no registry object was written.
    assert!(!a.events().iter().any(
        |e| e.json.get("message").and_then(|m| m.as_str()) == Some("woke the other candidates")
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listed = rt
        .block_on(
            sw.client()
                .list_objects_v2()
                .bucket("plain")
                .prefix("s3-elector/e2e/candidates/")
                .send(),
        )
        .unwrap();
    assert_eq!(listed.key_count().unwrap_or(0), 0);
    let took = b
        .events()
        .iter()
        .find(|e| e.event() == "acquired")
        .map(|e| e.at.duration_since(stop).unwrap_or_default());
    eprintln!("hand-over without the registry: {took:?}");
    check_daemons([&a, &b], &[], 0);
}

/// CPU time (user + system, in clock ticks) the process has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn a_copy_nobody_can_wake_keeps_no_busy_timer() {
    // Without HTTP there is no address to advertise and no registry entry;
    // such a follower once looped on a past deadline (5 % of a core).
    let sw = Seaweed::start();
    sw.bucket("idle");
    let extra = "http:\n  enabled: false\n";
    let cfg = sw.config(sw.dir.path(), "idle", "idle", extra);
    let a = Daemon::start("a", &cfg);
    a.wait_event(Duration::from_secs(30), |e| e.event() == "acquired")
        .expect("a leads");
    let b = Daemon::start("b", &cfg);
    b.wait_event(Duration::from_secs(30), |e| e.event() == "observed")
        .expect("b follows");
    std::thread::sleep(Duration::from_secs(2));
    let (ta, tb) = (cpu_ticks(a.pid()), cpu_ticks(b.pid()));
    std::thread::sleep(Duration::from_secs(10));
    let (da, db) = (cpu_ticks(a.pid()) - ta, cpu_ticks(b.pid()) - tb);
    // Idle copies use a few ticks in 10 s (a tick is 10 ms); the busy loop
    // used about 50. Generous bound for a busy machine.
    assert!(
        da <= 25 && db <= 25,
        "CPU ticks in 10 s: leader {da}, follower {db}"
    );
    check_daemons([&a, &b], &[], 1);
}

/// S3 GETs this copy has made (its own counter, read from /metrics).
fn gets(d: &Daemon) -> u64 {
    let (_, m) = http(d.http_port, "GET", "/metrics");
    m.lines()
        .filter(|l| l.starts_with("s3_elector_s3_requests_total{operation=\"get\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Far followers: with ten copies the leader names eight successors; the
/// tenth copy watches one of them over HTTP and reads the lease about once
/// a lease instead of every retry period. When the leader and all eight
/// successors die at once, its watch notices, it reads at once, and it
/// takes over by the usual rule (a full lease of the same version on its
/// own clock), with no overlap.
///
/// The lease is long here (10 s, so a far follower reads every 10-12 s)
/// and the retry period short (500 ms, so the watch checks every 125 ms):
/// a takeover within lease + 2.5 s cannot come from a slow poll alone,
/// except when the kill happens to fall just after one.
#[test]
fn a_far_follower_reads_slowly_and_takes_over_when_every_successor_dies() {
    let sw = Seaweed::start();
    sw.bucket("far");
    let cfg = sw.config(
        sw.dir.path(),
        "far",
        "far",
        "timing:\n  lease_duration: 10s\n  renew_deadline: 6s\n  retry_period: 500ms\n",
    );
    let ids = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    let mut ds: Vec<Daemon> = ids.iter().map(|id| Daemon::start(id, &cfg)).collect();
    let refs: Vec<&Daemon> = ds.iter().collect();
    let l = wait_single_leader(&refs, Duration::from_secs(60));
    wait_successors(&sw, "far", &ds[l], 8, Duration::from_secs(60));
    // Reads over 6 s: a far follower (one with a successor to watch) about
    // one per lease (10 s), a named successor at least one per retry period
    // (500 ms). A check that times out on a busy machine can reshuffle who
    // is named, so a window in which the far follower changed is measured
    // again.
    let watching = |d: &Daemon| {
        d.view()
            .and_then(|v| v["watching"].as_str().map(String::from))
    };
    let mut far = None;
    for _ in 0..5 {
        let mut f = None;
        until(Duration::from_secs(30), "a far follower", || {
            f = (0..ds.len()).find(|i| watching(&ds[*i]).is_some());
            f.is_some()
        });
        let f = f.unwrap();
        // A copy named a moment ago may still read slowly until its next
        // read shows it named: wait for one that follows at the full rate.
        let mut near = None;
        until(Duration::from_secs(30), "a named successor", || {
            near = (0..ds.len()).find(|i| *i != l && *i != f && watching(&ds[*i]).is_none());
            near.is_some()
        });
        let near = near.unwrap();
        let target = watching(&ds[f]);
        std::thread::sleep(Duration::from_secs(1));
        let (f0, n0) = (gets(&ds[f]), gets(&ds[near]));
        std::thread::sleep(Duration::from_secs(6));
        let (f1, n1) = (gets(&ds[f]), gets(&ds[near]));
        eprintln!(
            "GETs in 6 s: far follower {}, named successor {}",
            f1 - f0,
            n1 - n0
        );
        // Roles can change during a window (who is named is settling):
        // only a window in which neither changed counts.
        let kept = watching(&ds[f]) == target && watching(&ds[near]).is_none();
        if kept && f1 - f0 <= 2 && n1 - n0 >= 8 {
            far = Some(f);
            break;
        }
    }
    let far = far.expect(
        "in 5 windows, no far follower read at most twice in 6 s beside a named successor reading at least 8 times",
    );

    // The leader and every named successor die at once.
    let doomed: Vec<usize> = (0..ds.len()).filter(|i| *i != far).collect();
    let killed = SystemTime::now();
    for i in &doomed {
        ds[*i].signal("KILL");
    }
    let mut killed_at = vec![None; ds.len()];
    for i in &doomed {
        ds[*i].kill();
        killed_at[*i] = Some(killed);
    }
    let end = Instant::now() + Duration::from_secs(30);
    let at = loop {
        if let Some(t) = acquired_after(&ds[far], killed) {
            break t;
        }
        assert!(
            Instant::now() < end,
            "the far follower never took over:\n{}",
            ds[far].log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = at.duration_since(killed).unwrap_or_default();
    eprintln!("the far follower took over {took:?} after the kill");
    // Its watch told it: it read at once instead of waiting for its slow poll.
    let noticed = ds[far].events().iter().any(|e| {
        e.at >= killed
            && e.at <= at
            && e.json.get("message").and_then(|m| m.as_str())
                == Some("the watched successor is gone or has news; reading the lease now")
    });
    assert!(
        noticed,
        "no watch notice before the takeover:\n{}",
        ds[far].log_text()
    );
    // Never sooner than a lease after the kill (rule 2); within the bound
    // (lease + 125 ms + 125 ms + 8 rank delays of 50 ms = 10.65 s) with
    // room for a busy machine, well short of lease + a slow poll (22 s).
    assert!(
        took >= Duration::from_secs(10),
        "took over {took:?} after the kill"
    );
    assert!(
        took < Duration::from_millis(12_500),
        "took over {took:?} after the kill"
    );
    check_daemons(&ds, &killed_at, 2);
    ds[far].signal("TERM");
    ds[far].wait_exit(Duration::from_secs(10));
}

/// Issue 30 §8: each copy writes its registry entry before its election
/// reads the lease, so that a leader stopped right after acquiring finds
/// every copy that may have read it (a copy that has not read yet sees the
/// release at its first read).
#[test]
fn a_copy_announces_itself_before_its_first_read() {
    let sw = Seaweed::start();
    sw.bucket("announce");
    let cfg = sw.config(sw.dir.path(), "announce", "announce", SLOW_POLL);
    let a = Daemon::start("a", &cfg);
    until(Duration::from_secs(60), "a leads", || a.says_leader());
    let at = |needle: &str| {
        a.events().iter().position(|e| {
            e.json
                .get("message")
                .and_then(|m| m.as_str())
                .is_some_and(|m| m.starts_with(needle))
        })
    };
    let announced = at("registry entry written (before the election's first read)");
    let started = at("election starting");
    assert!(
        announced.is_some() && started.is_some() && announced < started,
        "announced at {announced:?}, election started at {started:?}:\n{}",
        a.log_text()
    );
}

/// Health (issue 32), end to end on SeaweedFS: each copy's check fails
/// while a file named after it exists.
fn health_config(sw: &Seaweed, bucket: &str, extra: &str) -> std::path::PathBuf {
    let dir = sw.dir.path().display().to_string();
    sw.config(
        sw.dir.path(),
        bucket,
        bucket,
        &format!(
            "timing:\n  lease_duration: 6s\n  renew_deadline: 4s\n  retry_period: 1s\n\
             health:\n  command: [sh, -c, 'test ! -e {dir}/sick-$S3_ELECTOR_IDENTITY']\n  interval: 200ms\n  rise: 2\n  fall: 2\n  hold_down: 1s\n{extra}"
        ),
    )
}

fn sick(sw: &Seaweed, id: &str, yes: bool) {
    let p = sw.dir.path().join(format!("sick-{id}"));
    if yes {
        std::fs::write(p, b"").unwrap();
    } else {
        let _ = std::fs::remove_file(p);
    }
}

/// A leader whose check fails hands over (a release and a wake-up) to a
/// healthy successor it named; with every copy unhealthy the leader keeps
/// the lease (`when_none_healthy: stay`) and nobody takes it; and when that
/// leader is killed during the shared outage an unhealthy copy takes the
/// lease after it expires, so the job is not left leaderless. No two
/// leaders at any point.
#[test]
fn leadership_follows_health_and_a_shared_outage_keeps_a_leader() {
    let sw = Seaweed::start();
    sw.bucket("health");
    let cfg = health_config(&sw, "health", "");
    let mut ds: Vec<Daemon> = ["a", "b", "c"]
        .iter()
        .map(|id| Daemon::start(id, &cfg))
        .collect();
    let refs: Vec<&Daemon> = ds.iter().collect();
    let l = wait_single_leader(&refs, Duration::from_secs(60));
    let named = wait_successors(&sw, "health", &ds[l], 2, Duration::from_secs(60));
    assert!(
        ds[l]
            .view()
            .is_some_and(|v| v["health"]["verdict"] == "healthy"),
        "the verdict shows in /leader: {:?}",
        ds[l].view()
    );
    // 1. The leader turns unhealthy: it hands over to a named successor.
    let t0 = SystemTime::now();
    sick(&sw, &ds[l].id, true);
    let end = Instant::now() + Duration::from_secs(30);
    let (next, at) = loop {
        if let Some((i, t)) = ds
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != l)
            .find_map(|(i, d)| acquired_after(d, t0).map(|t| (i, t)))
        {
            break (i, t);
        }
        assert!(
            Instant::now() < end,
            "nobody took over from the unhealthy leader:\n{}",
            ds[l].log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "health hand-over: {} took over {:?} after its check began failing",
        ds[next].id,
        at.duration_since(t0).unwrap_or_default()
    );
    assert!(named.contains(&ds[next].id), "to a named successor");
    assert!(
        ds[l]
            .events()
            .iter()
            .any(|e| e.event() == "unhealthy" && e.at >= t0),
        "the old leader says why it handed over:\n{}",
        ds[l].log_text()
    );
    // 2. Every copy unhealthy: the leader stays, nobody else acquires.
    //    (While the verdicts turn, one at a time, the lease may move once
    //    more, to a copy that was still healthy when checked.)
    for d in &ds {
        sick(&sw, &d.id, true);
    }
    until(
        Duration::from_secs(20),
        "every verdict is unhealthy",
        || {
            ds.iter().all(|d| {
                d.view()
                    .is_some_and(|v| v["health"]["verdict"] == "unhealthy")
            })
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let refs: Vec<&Daemon> = ds.iter().collect();
    let holder = wait_single_leader(&refs, Duration::from_secs(20));
    let t1 = SystemTime::now();
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        ds[holder].says_leader(),
        "with nobody healthy the leader stays"
    );
    let moved = ds.iter().any(|d| acquired_after(d, t1).is_some());
    assert!(!moved, "no copy took the lease while nobody was healthy");
    let next = holder;
    // 3. The leader crashes during the outage: an unhealthy copy leads,
    //    after the lease, every rank delay and a retry period.
    let killed = SystemTime::now();
    ds[next].kill();
    let refs: Vec<&Daemon> = ds.iter().filter(|d| d.alive()).collect();
    let _ = wait_single_leader(&refs, Duration::from_secs(40));
    let mut killed_at = vec![None; ds.len()];
    killed_at[next] = Some(killed);
    check_daemons(&ds, &killed_at, 3);
    for d in ds.iter_mut().filter(|d| d.alive()) {
        d.signal("TERM");
        d.wait_exit(Duration::from_secs(10));
    }
}

/// The hold-down: a copy that just gained leadership is not handed away
/// for health within `health.hold_down`, however soon its check fails;
/// then it hands over to the healthy copy.
#[test]
fn a_new_leader_is_not_handed_away_for_health_within_its_hold_down() {
    let sw = Seaweed::start();
    sw.bucket("holddown");
    let hold = Duration::from_secs(4);
    let cfg = sw.config(
        sw.dir.path(),
        "holddown",
        "holddown",
        &format!(
            "timing:\n  lease_duration: 6s\n  renew_deadline: 4s\n  retry_period: 1s\n  step_down_cooloff: 0s\n\
             health:\n  command: [sh, -c, 'test ! -e {}/sick-$S3_ELECTOR_IDENTITY']\n  interval: 200ms\n  rise: 2\n  fall: 2\n  hold_down: 4s\n",
            sw.dir.path().display()
        ),
    );
    let mut ds: Vec<Daemon> = ["a", "b"]
        .iter()
        .map(|id| Daemon::start(id, &cfg))
        .collect();
    let refs: Vec<&Daemon> = ds.iter().collect();
    let l = wait_single_leader(&refs, Duration::from_secs(60));
    let o = 1 - l;
    wait_successors(&sw, "holddown", &ds[l], 1, Duration::from_secs(60));
    // Past the first leader's own hold-down. Then the first leader turns
    // unhealthy and hands over; the new leader turns unhealthy at once, the
    // old one healthy again.
    std::thread::sleep(hold);
    let t0 = SystemTime::now();
    sick(&sw, &ds[l].id, true);
    let end = Instant::now() + Duration::from_secs(30);
    let gained = loop {
        if let Some(t) = acquired_after(&ds[o], t0) {
            break t;
        }
        assert!(Instant::now() < end, "no hand-over:\n{}", ds[l].log_text());
        std::thread::sleep(Duration::from_millis(10));
    };
    sick(&sw, &ds[o].id, true);
    sick(&sw, &ds[l].id, false);
    let back = loop {
        if let Some(t) = acquired_after(&ds[l], gained) {
            break t;
        }
        assert!(
            Instant::now() < end,
            "never handed back:\n{}",
            ds[o].log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let held = back.duration_since(gained).unwrap_or_default();
    eprintln!("the new leader held {held:?} (hold-down {hold:?})");
    assert!(held >= hold, "handed away within its hold-down: {held:?}");
    check_daemons(&ds, &[], 3);
    for d in ds.iter_mut() {
        d.signal("TERM");
        d.wait_exit(Duration::from_secs(10));
    }
}

/// A copy whose `on_acquired` keeps failing counts as unhealthy until it
/// succeeds (issue 32). With the hook failing on both copies, the lease
/// moves at most once (to the copy not yet known to fail), then its holder
/// keeps it and runs the hook again after each back-off (1 s, 2 s, 4 s):
/// no bouncing around the fleet. Both show `unhealthy` with the failure in
/// `/leader`. Once the hook succeeds the holder is healthy again and keeps
/// leading, in the same term. On the code before, each failure released
/// the lease and the two copies traded it at every cool-off.
#[test]
fn a_failing_on_acquired_everywhere_keeps_the_lease_and_retries_with_back_off() {
    let sw = Seaweed::start();
    sw.bucket("hookhealth");
    let dir = sw.dir.path().display().to_string();
    let cfg = sw.config(
        sw.dir.path(),
        "hookhealth",
        "hookhealth",
        &format!(
            "timing:\n  lease_duration: 6s\n  renew_deadline: 4s\n  retry_period: 1s\n  step_down_cooloff: 1s\n\
             hooks:\n  on_acquired_backoff_max: 4s\n  on_acquired:\n    command: [sh, -c, 'echo run >> {dir}/runs-$S3_ELECTOR_IDENTITY; test ! -e {dir}/fail-$S3_ELECTOR_IDENTITY']\n"
        ),
    );
    let fail = |id: &str, yes: bool| {
        let p = sw.dir.path().join(format!("fail-{id}"));
        if yes {
            std::fs::write(p, b"").unwrap();
        } else {
            let _ = std::fs::remove_file(p);
        }
    };
    let runs = |id: &str| {
        std::fs::read_to_string(sw.dir.path().join(format!("runs-{id}")))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    fail("a", true);
    fail("b", true);
    let mut ds: Vec<Daemon> = ["a", "b"]
        .iter()
        .map(|id| Daemon::start(id, &cfg))
        .collect();
    let acquisitions = |ds: &[Daemon]| -> usize {
        ds.iter()
            .map(|d| {
                d.events()
                    .iter()
                    .filter(|e| e.event() == "acquired")
                    .count()
            })
            .sum()
    };
    // Both copies end up known to fail; the lease settles on one.
    until(
        Duration::from_secs(60),
        "both copies unhealthy, one leading",
        || {
            ds.iter().all(|d| {
                d.view()
                    .is_some_and(|v| v["health"]["verdict"] == "unhealthy")
            }) && ds.iter().any(|d| d.says_leader())
        },
    );
    let holder = ds.iter().position(|d| d.says_leader()).unwrap();
    let h = ds[holder].id.clone();
    let view = ds[holder].view().unwrap();
    assert!(
        view["health"]["work_failing"]
            .as_str()
            .is_some_and(|w| w.contains("on_acquired failed")),
        "the failure shows in /leader: {view}"
    );
    let term = view["term"].as_u64().unwrap();
    let settled = acquisitions(&ds);
    assert!(
        settled <= 2,
        "the lease moved more than once: {settled} acquisitions"
    );
    // The holder keeps the lease and runs the hook again, backing off.
    let before = runs(&h);
    std::thread::sleep(Duration::from_secs(10));
    let ran = runs(&h) - before;
    assert!(
        (2..=8).contains(&ran),
        "the kept lease's hook ran {ran} times in 10 s (back-off 1, 2, 4, 4 s):\n{}",
        ds[holder].log_text()
    );
    assert_eq!(acquisitions(&ds), settled, "nobody acquired: no bouncing");
    assert!(ds[holder].says_leader());
    assert_eq!(ds[holder].view().unwrap()["term"].as_u64(), Some(term));
    assert!(
        ds[holder]
            .log_text()
            .contains("no healthy copy to hand the lease to"),
        "the holder says why it keeps the lease:\n{}",
        ds[holder].log_text()
    );
    // The hook succeeds at its next run: healthy again, the same term.
    fail(&h, false);
    until(
        Duration::from_secs(30),
        "the holder is healthy again",
        || {
            ds[holder].view().is_some_and(|v| {
                v["health"]["verdict"] == "healthy" && v["health"]["work_failing"].is_null()
            })
        },
    );
    let v = ds[holder].view().unwrap();
    assert_eq!(
        (v["is_leader"].as_bool(), v["term"].as_u64()),
        (Some(true), Some(term))
    );
    assert_eq!(acquisitions(&ds), settled);
    check_daemons(&ds, &[], 1);
    for d in ds.iter_mut() {
        d.signal("TERM");
        d.wait_exit(Duration::from_secs(10));
    }
}

/// `status` shows the successors the holder named and what this host's
/// daemon thinks; `status --watch` prints one line per change of leader,
/// saying why: a graceful stop is a release, a `kill -9` an expiry after
/// about a lease. It asks the local daemon while it answers, and reads the
/// store when it does not (issue 37).
#[test]
fn status_shows_this_host_and_watch_prints_a_line_per_change() {
    use std::io::BufRead;
    use std::sync::{Arc, Mutex};
    let sw = Seaweed::start();
    sw.bucket("watch");
    let cfg = sw.config(
        sw.dir.path(),
        "watch",
        "watch",
        "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\n",
    );
    let mut ds: Vec<Daemon> = ["a", "b", "c"]
        .iter()
        .map(|id| Daemon::start(id, &cfg))
        .collect();
    let refs: Vec<&Daemon> = ds.iter().collect();
    let l = wait_single_leader(&refs, Duration::from_secs(60));
    let w = (l + 1) % 3;
    wait_successors(&sw, "watch", &ds[l], 2, Duration::from_secs(60));
    let listen = format!("127.0.0.1:{}", ds[w].http_port);
    let (code, out, err) = run_cmd(&cfg, &["status"], &[("S3_ELECTOR_HTTP_LISTEN", &listen)]);
    assert_eq!(code, 0, "{out}{err}");
    let lid = ds[l].id.clone();
    assert!(
        out.contains(&format!(
            "this host:   {} (follower; sees {lid} lead, term ",
            ds[w].id
        )),
        "{out}"
    );
    assert!(out.contains("successors:  "), "{out}");
    let (_, json, _) = run_cmd(
        &cfg,
        &["status", "--json"],
        &[("S3_ELECTOR_HTTP_LISTEN", &listen)],
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["local"]["identity"].as_str(),
        Some(ds[w].id.as_str()),
        "{json}"
    );

    // The watch, through w's daemon.
    let mut watch = daemon_command(&cfg)
        .args(["status", "--watch"])
        .env("S3_ELECTOR_HTTP_LISTEN", &listen)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let stdout = watch.stdout.take().unwrap();
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().unwrap().push(l);
            }
        })
    };
    let wait_line = |what: &str, f: &dyn Fn(&str) -> bool| -> String {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(l) = lines.lock().unwrap().iter().find(|l| f(l)) {
                return l.clone();
            }
            assert!(
                Instant::now() < end,
                "no line {what}: {:?}",
                lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let first = wait_line("for the leader", &|l| l.ends_with("(leading)"));
    assert!(first.contains(&format!(" {lid} term ")), "{first}");
    // A graceful stop: a release.
    ds[l].signal("TERM");
    ds[l].wait_exit(Duration::from_secs(30));
    let rest: Vec<&Daemon> = ds
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != l)
        .map(|(_, d)| d)
        .collect();
    let n = wait_single_leader(&rest, Duration::from_secs(30));
    let nid = rest[n].id.clone();
    let released = wait_line("for the hand-over", &|l| {
        l.contains(&format!(" {nid} term "))
    });
    assert!(
        released.ends_with(&format!("({lid} released)")),
        "{released}"
    );
    // kill -9 of the new leader: the last copy takes over after a lease.
    let ni = ds.iter().position(|d| d.id == nid).unwrap();
    ds[ni].kill();
    let last = ds
        .iter()
        .enumerate()
        .find(|(i, _)| *i != l && *i != ni)
        .map(|(_, d)| d.id.clone())
        .unwrap();
    let expired = wait_line("for the takeover", &|l| {
        l.contains(&format!(" {last} term "))
    });
    let secs: f64 = expired
        .rsplit("expired after ")
        .next()
        .and_then(|s| s.strip_suffix(" s)"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an expiry: {expired}"));
    assert!(
        expired.contains(&format!("({nid} expired after ")) && secs >= 2.0,
        "{expired}"
    );
    // The log's `acquired` says the same: released, then expired.
    let reason = |d: &Daemon| {
        d.events()
            .iter()
            .rev()
            .find(|e| e.event() == "acquired")
            .and_then(|e| e.str("reason").map(String::from))
    };
    assert_eq!(reason(&ds[ni]).as_deref(), Some("released"));
    let li = ds.iter().position(|d| d.id == last).unwrap();
    assert_eq!(reason(&ds[li]).as_deref(), Some("expired"));
    // Before it took over, it said once that the holder went silent, and
    // when it would take over.
    let events = ds[li].events();
    let silent = events
        .iter()
        .rev()
        .find(|e| e.event() == "holder_silent")
        .expect("a holder_silent line before the takeover");
    assert_eq!(silent.str("leader"), Some(nid.as_str()), "{silent:?}");
    assert!(
        silent
            .json
            .get("takeover_in_ms")
            .is_some_and(|v| v.is_u64()),
        "{silent:?}"
    );
    let at = |name: &str| events.iter().rposition(|e| e.event() == name).unwrap();
    assert!(at("holder_silent") < at("acquired"), "{events:?}");
    let _ = watch.kill();
    let _ = watch.wait();
    reader.join().unwrap();
    for d in ds.iter_mut() {
        d.kill();
    }
}
