//! End to end: the real binary against a real SeaweedFS on loopback.
//!
//! Timings are short (lease 3 s, renew 2 s, retry 0.5 s) to keep the suite
//! fast; bounds are generous so a busy 2-core machine does not flake them.
//! Speed figures are measured by hand and reported, not asserted here.

#![allow(clippy::disallowed_types)] // end-to-end tests measure real elapsed time

mod support;

use std::time::{Duration, Instant, SystemTime};

use support::*;

const LEASE: Duration = Duration::from_secs(3);
const RENEW_DEADLINE: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_millis(500);
const TIMING: &str = "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\n";

fn leader_of(daemons: &[Daemon]) -> Vec<usize> {
    daemons
        .iter()
        .enumerate()
        .filter(|(_, d)| d.believes_leader())
        .map(|(i, _)| i)
        .collect()
}

fn wait_single_leader(daemons: &[Daemon], within: Duration) -> usize {
    let end = Instant::now() + within;
    loop {
        let l = leader_of(daemons);
        assert!(l.len() <= 1, "two copies believe they lead: {l:?}");
        if l.len() == 1 {
            return l[0];
        }
        assert!(Instant::now() < end, "no leader within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn lease_body(sw: &Seaweed, bucket: &str, key: &str) -> serde_json::Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = sw.client();
    rt.block_on(async {
        let o = c
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .expect("lease object");
        let b = o.body.collect().await.unwrap().into_bytes();
        serde_json::from_slice(&b).unwrap()
    })
}

const KEY: &str = "s3-elector/e2e/lease.json";

#[test]
fn three_copies_one_leader_then_crash_failover_and_graceful_handover() {
    let sw = Seaweed::start();
    sw.bucket("three");
    let cfg = sw.config(sw.dir.path(), "three", "three", TIMING);
    let started = Instant::now();
    let mut ds: Vec<Daemon> = ["a", "b", "c"]
        .iter()
        .map(|id| Daemon::start(id, &cfg))
        .collect();

    // Exactly one leader; the others report it.
    let l = wait_single_leader(&ds, Duration::from_secs(30));
    let first_leader = started.elapsed();
    let leader_id = ds[l].id.clone();
    for (i, d) in ds.iter().enumerate() {
        if i != l {
            let seen = d.wait_event(Duration::from_secs(10), |e| {
                e.event() == "observed" && e.str("leader") == Some(leader_id.as_str())
            });
            assert!(
                seen.is_some(),
                "{} never reported leader {leader_id}:\n{}",
                d.id,
                d.log_text()
            );
        }
    }
    eprintln!("first leader after {first_leader:?} (includes process start and the probe)");

    // SIGKILL the leader: another copy takes over with a higher term, not
    // before the lease could have run out, and within a generous bound.
    let term1 = ds[l]
        .events()
        .iter()
        .find(|e| e.event() == "acquired")
        .unwrap()
        .term()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let killed_wall = SystemTime::now();
    ds[l].kill();
    let mut killed_at = [None; 3];
    killed_at[l] = Some(killed_wall);
    let l2 = wait_single_leader(&ds, LEASE + 2 * RETRY + Duration::from_secs(10));
    assert_ne!(l2, l);
    let acquired = ds[l2]
        .events()
        .into_iter()
        .rev()
        .find(|e| e.event() == "acquired")
        .unwrap();
    let term2 = acquired.term().unwrap();
    assert!(term2 > term1, "term {term2} after {term1}");
    // Measured on the daemons' own timestamps, not when this test got to
    // read them. The follower waits a full lease after it first saw the
    // old leader's last write, which was sent before that: never sooner.
    // (On a busy machine renewals come late, so the last one may be well
    // over a retry period before the kill.)
    let last_write =
        last_write_sent(&ds[l], RENEW_DEADLINE).expect("the old leader logged its writes");
    let after_write = acquired.at.duration_since(last_write).unwrap_or_default();
    assert!(
        after_write + Duration::from_millis(100) >= LEASE,
        "took over {after_write:?} after the old leader's last write; the lease is {LEASE:?}"
    );
    let failover = acquired.at.duration_since(killed_wall).unwrap_or_default();
    assert!(
        failover <= LEASE + 2 * RETRY + Duration::from_secs(3),
        "crash failover took {failover:?}"
    );
    eprintln!("crash failover after {failover:?} ({after_write:?} after the last renewal)");

    // SIGTERM the new leader: it releases and exits 0; the last copy takes
    // over at about its next poll, well before the lease would expire.
    let stopped = SystemTime::now();
    ds[l2].signal("TERM");
    let st = ds[l2]
        .wait_exit(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert!(st.success(), "graceful stop exits 0: {st:?}");
    assert!(
        ds[l2].events().iter().any(|e| e.event() == "released"),
        "{}",
        ds[l2].log_text()
    );
    let l3 = wait_single_leader(&ds, Duration::from_secs(10));
    let handover = ds[l3]
        .events()
        .iter()
        .rev()
        .find(|e| e.event() == "acquired")
        .map(|e| e.at.duration_since(stopped).unwrap_or_default())
        .unwrap();
    assert!(![l, l2].contains(&l3));
    assert!(
        handover < LEASE,
        "hand-over took {handover:?}, the lease is {LEASE:?}"
    );
    eprintln!("graceful hand-over after {handover:?}");
    let rec = lease_body(&sw, "three", KEY);
    assert_eq!(rec["holder"], ds[l3].id.as_str());
    assert!(rec["term"].as_u64().unwrap() > term2);

    check_daemons(&ds, &killed_at, 0);
}

#[test]
fn twenty_copies_on_a_fresh_key_never_overlap() {
    let sw = Seaweed::start();
    sw.bucket("twenty");
    let cfg = sw.config(sw.dir.path(), "twenty", "twenty", TIMING);
    let mut ds: Vec<Daemon> = (0..20)
        .map(|i| Daemon::start(&format!("n{i:02}"), &cfg))
        .collect();
    let mut killed_at = vec![None; ds.len()];
    let mut leaders = Vec::new();
    // Three changes of leader: stop (SIGTERM), crash (SIGKILL), stop.
    for (round, sig) in ["TERM", "KILL", "TERM"].iter().enumerate() {
        let l = wait_single_leader(&ds, Duration::from_secs(60));
        leaders.push(ds[l].id.clone());
        // Let it renew a few times with 19 pollers around.
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            assert!(leader_of(&ds).len() <= 1, "two leaders in round {round}");
            std::thread::sleep(Duration::from_millis(20));
        }
        if *sig == "KILL" {
            killed_at[l] = Some(SystemTime::now());
            ds[l].kill();
        } else {
            ds[l].signal("TERM");
            assert!(ds[l]
                .wait_exit(Duration::from_secs(10))
                .is_some_and(|s| s.success()));
        }
    }
    wait_single_leader(&ds, Duration::from_secs(60));
    check_daemons(&ds, &killed_at, 4);
}

#[test]
fn check_passes_on_seaweedfs_and_prints_the_cost() {
    let sw = Seaweed::start();
    sw.bucket("checked");
    let cfg = sw.config(sw.dir.path(), "c", "checked", "");
    let (code, out, err) = run_cmd(&cfg, &["check"], &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("conformance probe: passed"), "{out}");
    assert_eq!(
        out.lines().last(),
        Some("check: passed"),
        "the verdict comes last: {out}"
    );
    assert!(
        out.contains("leader 1806 PUT/hour and 12 LIST/hour"),
        "{out}"
    );
    assert!(out.contains("leader $6.55/month"), "{out}");
    // The probe cleans up after itself and leaves the lease key alone.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = sw.client();
    let keys = rt.block_on(async {
        c.list_objects_v2()
            .bucket("checked")
            .send()
            .await
            .unwrap()
            .contents()
            .len()
    });
    assert_eq!(keys, 0, "probe left objects behind");
}

#[test]
fn missing_bucket_and_bad_credentials_are_named() {
    let sw = Seaweed::start();
    sw.bucket("exists");
    let cfg = sw.config(sw.dir.path(), "nb", "no-such-bucket", TIMING);
    for args in [&["check"][..], &["run"][..]] {
        let (code, out, err) = run_cmd(&cfg, args, &[]);
        assert_eq!(code, 69, "{args:?}: {out}{err}");
        assert!(
            err.contains("bucket `no-such-bucket` does not exist"),
            "{args:?}: {err}"
        );
    }
    let cfg = sw.config(sw.dir.path(), "bc", "exists", TIMING);
    for args in [&["check"][..], &["run"][..]] {
        let (code, out, err) = run_cmd(&cfg, args, &[("AWS_SECRET_ACCESS_KEY", "wrong")]);
        assert_eq!(code, 69, "{args:?}: {out}{err}");
        assert!(err.contains("access denied"), "{args:?}: {err}");
        if args == ["check"] {
            // The verdict on the credentials is the store's, not "found".
            assert!(
                out.contains("credentials: refused or not allowed by the store")
                    && !out.contains("accepted"),
                "{out}"
            );
        }
    }
    let (code, out, _) = run_cmd(&cfg, &["check"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("credentials: accepted by the store"), "{out}");
    // An endpoint nobody listens on: one line naming it, with what to do,
    // and no Rust Debug dump.
    let dead = sw.config_via(
        sw.dir.path(),
        "dead",
        "exists",
        &format!("http://127.0.0.1:{}", free_port()),
        TIMING,
    );
    let (code, out, err) = run_cmd(&dead, &["check"], &[]);
    assert_eq!(code, 69, "{out}{err}");
    assert!(
        err.lines().count() == 1
            && err.contains("Connection refused")
            && err.contains("s3.endpoint_url")
            && !err.contains("DispatchFailure(")
            && !err.contains('{'),
        "{err}"
    );
    // No credentials at all: a message, not a hang on IMDS.
    let started = Instant::now();
    let mut cmd = daemon_command(&cfg);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .arg("check");
    cmd.env("HOME", sw.dir.path());
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(err.contains("no AWS credentials found"), "{err}");
    assert!(
        err.lines().count() == 1 && !err.contains("ProviderChainError") && !err.contains('{'),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_corrupt_lease_is_reported_never_clobbered_and_reset_on_request() {
    let sw = Seaweed::start();
    sw.bucket("corrupt");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = sw.client();
    let junk = b"{\"owner\":\"another program\"}".to_vec();
    rt.block_on(async {
        c.put_object()
            .bucket("corrupt")
            .key(KEY)
            .body(junk.clone().into())
            .send()
            .await
            .unwrap();
    });
    let cfg = sw.config(sw.dir.path(), "corrupt", "corrupt", TIMING);
    let d = Daemon::start("a", &cfg);
    let e = d.wait_event(Duration::from_secs(20), |e| e.event() == "unusable_record");
    assert!(e.is_some(), "{}", d.log_text());
    std::thread::sleep(LEASE * 2);
    assert!(!d.believes_leader());
    let body = rt.block_on(async {
        let o = c
            .get_object()
            .bucket("corrupt")
            .key(KEY)
            .send()
            .await
            .unwrap();
        o.body.collect().await.unwrap().into_bytes().to_vec()
    });
    assert_eq!(
        body, junk,
        "the daemon must never overwrite a foreign object"
    );

    let (code, out, _) = run_cmd(&cfg, &["status", "--json"], &[]);
    assert_eq!(code, 65, "{out}");
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(st["problem"]
        .as_str()
        .unwrap()
        .contains("not an s3-elector lease record"));
    let etag = st["etag"].as_str().unwrap().to_string();

    let (code, _, err) = run_cmd(&cfg, &["reset", "--etag", "\"stale\""], &[]);
    assert_eq!(code, 1, "a wrong ETag is refused: {err}");
    // No term floor and no term in the object: reset does not guess one.
    let (code, _, err) = run_cmd(&cfg, &["reset", "--etag", &etag], &[]);
    assert_eq!(code, 64, "reset guessed a term: {err}");
    assert!(err.contains("--term"), "{err}");
    let (code, out, err) = run_cmd(
        &cfg,
        &["reset", "--etag", &etag, "--term", "0"],
        &[("USER", "oncall"), ("S3_ELECTOR_IDENTITY", "laptop")],
    );
    assert_eq!(code, 0, "{out}{err}");
    // An operator's action, recorded as such, not as a holder.
    assert!(out.contains("reset by oncall@laptop"), "{out}");
    // The running copy now takes the released lease.
    let got = d.wait_event(Duration::from_secs(20), |e| e.event() == "acquired");
    assert!(got.is_some(), "{}", d.log_text());
    let (code, out, _) = run_cmd(&cfg, &["status"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("holder:      a"), "{out}");
    assert!(
        !out.contains("reset:"),
        "the new holder's record is not a reset: {out}"
    );
}

/// Before relying on SeaweedFS: race many `If-Match` writers on the same
/// ETag, round after round; exactly one may win each round.
#[test]
fn seaweedfs_if_match_is_atomic_under_racing_writers() {
    use s3_elector::lease::store::{LeaseStore, StoreError};
    const WRITERS: usize = 16;
    const ROUNDS: usize = 25;
    let sw = Seaweed::start();
    sw.bucket("race");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (double, total) = rt.block_on(async {
        let store = sw.store("race").await;
        let mut etag = store
            .put_if_absent("race/obj", b"round-0".to_vec())
            .await
            .unwrap();
        let mut double = 0;
        for round in 1..=ROUNDS {
            let mut tasks = Vec::new();
            for w in 0..WRITERS {
                let (s, e) = (store.clone(), etag.clone());
                tasks.push(tokio::spawn(async move {
                    let body = format!("round-{round}-writer-{w}").into_bytes();
                    (w, s.put_if_match("race/obj", body, &e).await)
                }));
            }
            let mut winners = Vec::new();
            for t in tasks {
                match t.await.unwrap() {
                    (w, Ok(e)) => winners.push((w, e)),
                    (_, Err(StoreError::PreconditionFailed | StoreError::Conflict)) => {}
                    (w, Err(e)) => panic!("writer {w} in round {round}: {e}"),
                }
            }
            if winners.len() != 1 {
                double += 1;
                eprintln!("round {round}: {} winners", winners.len());
            }
            let cur = store.get("race/obj").await.unwrap().unwrap();
            if let Some((w, e)) = winners.first() {
                assert_eq!(cur.body, format!("round-{round}-writer-{w}").into_bytes());
                assert_eq!(&cur.etag, e);
            }
            etag = cur.etag;
        }
        (double, ROUNDS)
    });
    eprintln!("{WRITERS} writers x {total} rounds: {double} rounds without exactly one winner");
    assert_eq!(
        double, 0,
        "SeaweedFS If-Match is not atomic: {double} of {total} rounds"
    );
}

/// s3rver ignores If-None-Match and If-Match: the probe must refuse it,
/// for `check` and for `run`, unless the loudly named override is set.
#[test]
fn the_probe_refuses_a_store_that_ignores_conditional_writes() {
    let s = S3rver::start("nonconforming");
    let cfg = s.config("nonconforming");
    let creds = S3rver::CREDS;
    for args in [&["check"][..], &["run"][..]] {
        let (code, out, err) = run_cmd(&cfg, args, &creds);
        assert_eq!(code, 69, "{args:?}: {out}{err}");
        assert!(
            err.contains("does not honour conditional writes"),
            "{args:?}: {err}"
        );
        assert!(err.contains("If-None-Match is ignored"), "{args:?}: {err}");
    }
    // With the override the daemon runs, and says loudly that it is unsafe.
    let mut d = Daemon::start_with(
        "x",
        &cfg,
        &[
            creds[0],
            creds[1],
            ("S3_ELECTOR_UNSAFE_SKIP_CONFORMANCE_CHECK", "true"),
        ],
    );
    let warned = d.wait_event(Duration::from_secs(20), |e| {
        e.json.to_string().contains("UNSAFE")
    });
    assert!(warned.is_some(), "{}", d.log_text());
    d.kill();
}

/// A sidecar configured by its environment alone (no config file), as the
/// contrib `leader-elector` sidecar is: `check` passes, `run` leads, and a
/// bad value names its variable.
#[test]
fn a_copy_runs_from_environment_variables_without_a_config_file() {
    let sw = Seaweed::start();
    sw.bucket("noconfig");
    let nowhere = sw.dir.path().join("absent.yaml");
    let env = [
        ("-S3_ELECTOR_CONFIG", ""),
        ("S3_ELECTOR_ELECTION", "123"),
        ("S3_ELECTOR_BUCKET", "noconfig"),
        ("S3_ELECTOR_PREFIX", "sidecars"),
        ("S3_ELECTOR_REGION", "us-east-1"),
        ("S3_ELECTOR_ENDPOINT_URL", sw.endpoint.as_str()),
        ("S3_ELECTOR_FORCE_PATH_STYLE", "true"),
        ("S3_ELECTOR_LEASE_DURATION", "3s"),
        ("S3_ELECTOR_RENEW_DEADLINE", "2s"),
        ("S3_ELECTOR_RETRY_PERIOD", "500ms"),
        ("S3_ELECTOR_REQUEST_TIMEOUT", "1s"),
        ("S3_ELECTOR_CONNECT_TIMEOUT", "500ms"),
    ];
    let (code, out, err) = run_cmd(&nowhere, &["check"], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("config: ok (flags and environment (no config file))"),
        "{out}"
    );
    assert!(
        out.contains("s3://noconfig/sidecars/123/lease.json"),
        "{out}"
    );
    let a = Daemon::start_with("a", &nowhere, &env);
    until(Duration::from_secs(60), "a leads", || a.says_leader());
    let (_, v) = get_json(a.http_port, "/leader");
    assert_eq!(v["election"], "123", "{v}");
    // The flag beats the variable; a bad value names where it came from.
    let mut bad = env.to_vec();
    bad.push(("S3_ELECTOR_RETRY_PERIOD", "often"));
    let (code, out, err) = run_cmd(&nowhere, &["check", "--lease-duration", "4s"], &bad);
    assert_eq!(code, 64, "{out}{err}");
    assert!(
        err.contains("`timing.retry_period`") && err.contains("S3_ELECTOR_RETRY_PERIOD"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // Nothing given: both required settings, with how to give them.
    let (code, _, err) = run_cmd(&nowhere, &["check"], &[("-S3_ELECTOR_CONFIG", "")]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("S3_ELECTOR_ELECTION") && err.contains("S3_ELECTOR_BUCKET"),
        "{err}"
    );
}
