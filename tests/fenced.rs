//! Fenced writes on a real SeaweedFS: the protocol's steps in every order,
//! a seeded randomized run with a checker, the CLI and its exit codes, a
//! store that ignores conditions, and a frozen leader whose pending writes
//! are refused once the next leader has written.

#![allow(clippy::disallowed_types)] // end-to-end tests measure real elapsed time

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use s3_elector::fenced::{self, Body, Cond, FenceError, FencedStore, Meta};
use s3_elector::lease::record::new_nonce;
use s3_elector::lease::store::s3::S3Store;
use s3_elector::lease::store::StoreError;
use support::*;

const E: &str = "e2e";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn body(s: &str) -> Body {
    Body::Bytes(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

async fn term_of(s: &S3Store, key: &str) -> Option<u64> {
    s.head(key).await.unwrap().and_then(|s| s.term)
}

/// Writers with terms 4 and 5, each reading then writing, in every order,
/// on an absent and an existing object: after the term-5 write lands no
/// term-4 write does, before it they may, and the term never goes down.
#[test]
fn every_order_of_two_writers_on_seaweedfs() {
    let sw = Seaweed::start();
    sw.bucket("fenced");
    let orders: [[&str; 4]; 6] = [
        ["r4", "w4", "r5", "w5"],
        ["r4", "r5", "w4", "w5"],
        ["r4", "r5", "w5", "w4"],
        ["r5", "r4", "w4", "w5"],
        ["r5", "r4", "w5", "w4"],
        ["r5", "w5", "r4", "w4"],
    ];
    runtime().block_on(async {
        let s = sw.store("fenced").await;
        let mut early_term4_landed = 0;
        for existing in [false, true] {
            for (n, order) in orders.iter().enumerate() {
                let key = format!("order-{existing}-{n}");
                if existing {
                    fenced::put(&s, &key, E, 3, &body("three")).await.unwrap();
                }
                let mut plans = [None, None];
                let mut landed5 = false;
                let mut terms = vec![term_of(&s, &key).await];
                for step in order {
                    let i = usize::from(step.ends_with('5'));
                    let t = 4 + i as u64;
                    if step.starts_with('r') {
                        plans[i] = Some(fenced::prepare(&s, &key, E, t).await);
                        continue;
                    }
                    let meta = Meta {
                        term: t,
                        election: E.into(),
                        nonce: new_nonce(),
                        deleted: false,
                    };
                    let mut plan = plans[i].take().unwrap();
                    let landed = loop {
                        match plan {
                            Err(FenceError::Stale {
                                stored: 5, ours: 4, ..
                            }) => break false,
                            Err(e) => panic!("{order:?}: {e}"),
                            Ok((cond, _)) => {
                                match fenced::commit(&s, &key, &meta, &cond, &body(step)).await {
                                    Ok(_) => break true,
                                    Err(StoreError::PreconditionFailed) => {
                                        plan = fenced::prepare(&s, &key, E, t).await
                                    }
                                    Err(e) => panic!("{order:?}: {e}"),
                                }
                            }
                        }
                    };
                    if t == 5 {
                        assert!(landed, "{order:?}: the term-5 write must land");
                        landed5 = true;
                    } else if landed5 {
                        assert!(!landed, "{order:?}: a term-4 write landed after term 5's");
                    } else if landed {
                        early_term4_landed += 1;
                    }
                    terms.push(term_of(&s, &key).await);
                }
                assert!(
                    terms.windows(2).all(|w| w[0] <= w[1]),
                    "{order:?}: the term went down: {terms:?}"
                );
                assert_eq!(term_of(&s, &key).await, Some(5), "{order:?}");
                let mut out = Vec::new();
                fenced::get(&s, &key, &mut out).await.unwrap().unwrap();
                assert_eq!(out, b"w5", "{order:?}");
            }
        }
        // Before the term-5 write, term 4 may land (the fence is not a lock).
        assert_eq!(early_term4_landed, 6);
        // A raw If-Match with a stale ETag is refused by the store itself.
        let old = s.head("order-true-0").await.unwrap().unwrap().etag;
        fenced::put(&s, "order-true-0", E, 6, &body("six"))
            .await
            .unwrap();
        let meta = Meta {
            term: 7,
            election: E.into(),
            nonce: new_nonce(),
            deleted: false,
        };
        assert_eq!(
            s.put("order-true-0", &body("x"), &meta, &Cond::Match(old))
                .await,
            Err(StoreError::PreconditionFailed)
        );
    });
}

/// Many writers with random terms on a few objects, with random pauses
/// between their read and their write, while an observer reads the stamps:
/// no object's term ever goes down, each ends at the highest term that
/// landed on it, and each refusal named a higher stored term.
#[test]
fn randomized_writers_never_lower_a_term() {
    const WRITERS: u64 = 8;
    const OBJECTS: u64 = 3;
    const WRITES: u64 = 12;
    let seed: u64 = std::env::var("S3E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::random::<u16>() as u64 + 1);
    eprintln!("fenced: seed {seed} (replay with S3E_SEED={seed})");
    let sw = Seaweed::start();
    sw.bucket("fuzz");
    runtime().block_on(async move {
        let s = sw.store("fuzz").await;
        let landed: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let observer = {
            let (s, done) = (s.clone(), done.clone());
            tokio::spawn(async move {
                let mut seen: Vec<Vec<u64>> = vec![Vec::new(); OBJECTS as usize];
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    for o in 0..OBJECTS {
                        if let Some(t) = s
                            .head(&format!("obj-{o}"))
                            .await
                            .unwrap()
                            .and_then(|s| s.term)
                        {
                            seen[o as usize].push(t);
                        }
                    }
                }
                seen
            })
        };
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (s, landed) = (s.clone(), landed.clone());
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(w + 1);
            tasks.push(tokio::spawn(async move {
                let mut next = move || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                let term = 1 + next() % 6;
                let mut refused = 0;
                for i in 0..WRITES {
                    let obj = next() % OBJECTS;
                    let key = format!("obj-{obj}");
                    let pause = Duration::from_millis(next() % 40);
                    // The protocol by hand, with a pause between its steps.
                    let meta = Meta {
                        term,
                        election: E.into(),
                        nonce: new_nonce(),
                        deleted: false,
                    };
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        assert!(attempts < 100, "writer {w} never settled on {key}");
                        match fenced::prepare(&s, &key, E, term).await {
                            Err(FenceError::Stale { stored, ours, .. }) => {
                                assert!(stored > ours);
                                refused += 1;
                                break;
                            }
                            Err(e) => panic!("writer {w}: {e}"),
                            Ok((cond, _)) => {
                                tokio::time::sleep(pause).await;
                                let b = body(&format!("w{w} t{term} #{i}"));
                                match fenced::commit(&s, &key, &meta, &cond, &b).await {
                                    Ok(_) => {
                                        landed.lock().unwrap().push((obj, term));
                                        break;
                                    }
                                    Err(StoreError::PreconditionFailed | StoreError::Conflict) => {}
                                    Err(e) => panic!("writer {w}: {e}"),
                                }
                            }
                        }
                    }
                }
                refused
            }));
        }
        let mut refused = 0;
        for t in tasks {
            refused += t.await.unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let seen = observer.await.unwrap();
        for (o, terms) in seen.iter().enumerate() {
            assert!(
                terms.windows(2).all(|w| w[0] <= w[1]),
                "seed {seed}: obj-{o}'s term went down: {terms:?}"
            );
        }
        let landed = landed.lock().unwrap().clone();
        for o in 0..OBJECTS {
            let max = landed
                .iter()
                .filter(|(obj, _)| *obj == o)
                .map(|(_, t)| *t)
                .max();
            assert_eq!(
                term_of(&s, &format!("obj-{o}")).await,
                max,
                "seed {seed}: obj-{o}"
            );
        }
        eprintln!(
            "fenced: {} writes landed, {refused} refused, observer read {} stamps",
            landed.len(),
            seen.iter().map(Vec::len).sum::<usize>()
        );
        assert!(!landed.is_empty());
    });
}

/// The CLI: put from stdin and from a file, get with the term on stderr,
/// a stale put refused with exit 77 naming the term, rm as a tombstone,
/// and the errors a user can cause.
#[test]
fn the_cli_puts_gets_removes_and_refuses_a_stale_term() {
    use std::io::Write;
    use std::process::Stdio;
    let sw = Seaweed::start();
    sw.bucket("cli");
    let dir = sw.dir.path();
    let cfg = sw.config(dir, "cli", "cli", "fenced:\n  prefix: results\n");
    let put = |term: &str, object: &str, data: &str| -> (i32, String, String) {
        let mut cmd = daemon_command(&cfg);
        cmd.env("S3_ELECTOR_LOG_FORMAT", "text")
            .env("S3_ELECTOR_TERM", term)
            .args(["fenced", "put", object])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(data.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    };
    let (code, out, err) = put("4", "report.json", "{\"rows\": 4}");
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("wrote s3://cli/results/report.json at term 4"),
        "{out}"
    );
    let (code, out, err) = run_cmd(&cfg, &["fenced", "get", "report.json"], &[]);
    assert_eq!((code, out.as_str()), (0, "{\"rows\": 4}"), "{err}");
    assert!(err.contains("term 4 (election e2e)"), "{err}");
    // A newer term, then the stale one: refused, exit 77, naming both.
    let file = dir.join("five.json");
    std::fs::write(&file, "{\"rows\": 5}").unwrap();
    let (code, out, err) = run_cmd(
        &cfg,
        &[
            "fenced",
            "put",
            "--term",
            "5",
            "s3://cli/results/report.json",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("replaced term 4"), "{out}");
    let (code, _, err) = put("4", "report.json", "{\"rows\": \"stale\"}");
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("term 5") && err.contains("term 4"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, out, _) = run_cmd(&cfg, &["fenced", "get", "--json", "report.json"], &[]);
    assert_eq!(code, 0);
    let stamp: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (stamp["term"].as_u64(), stamp["election"].as_str()),
        (Some(5), Some("e2e")),
        "{stamp}"
    );
    // rm: a tombstone that a stale writer cannot undo.
    let (code, _, err) = run_cmd(&cfg, &["fenced", "rm", "--term", "4", "report.json"], &[]);
    assert_eq!(code, 77, "{err}");
    let (code, out, err) = run_cmd(&cfg, &["fenced", "rm", "--term", "5", "report.json"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run_cmd(&cfg, &["fenced", "get", "report.json"], &[]);
    assert_eq!(code, 66, "{err}");
    let (code, _, _) = put("4", "report.json", "back?");
    assert_eq!(code, 77);
    // Errors a user can cause: no term, a bad object, another election.
    let (code, _, err) = run_cmd(&cfg, &["fenced", "put", "x", "/dev/null"], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("S3_ELECTOR_TERM") && err.contains("--term"),
        "{err}"
    );
    let (code, _, err) = run_cmd(
        &cfg,
        &["fenced", "put", "--term", "1", "s3://cli", "/dev/null"],
        &[],
    );
    assert_eq!(code, 64, "{err}");
    let (code, _, err) = run_cmd(
        &cfg,
        &[
            "fenced",
            "put",
            "--term",
            "9",
            "--election",
            "other",
            "report.json",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("election `e2e`"), "{err}");
    let (code, _, err) = run_cmd(
        &cfg,
        &["fenced", "put", "--term", "9", "y", "/no/such/file"],
        &[],
    );
    assert_eq!(code, 66, "{err}");
    assert!(err.lines().count() == 1 && !err.contains('{'), "{err}");
    // An empty stdin (a producer that failed in a pipe) is not published.
    let (code, _, err) = put("6", "empty.json", "");
    assert_eq!(code, 66, "{err}");
    assert!(
        err.contains("empty") && err.contains("--allow-empty"),
        "{err}"
    );
    // A hook for another event holds the observed leader's term: refused.
    let (code, _, err) = run_cmd(
        &cfg,
        &["fenced", "put", "x.json", file.to_str().unwrap()],
        &[
            ("S3_ELECTOR_EVENT", "leader_changed"),
            ("S3_ELECTOR_TERM", "9"),
        ],
    );
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("leader_changed"), "{err}");
    // The election's own objects are not for fenced writes.
    let (code, _, err) = run_cmd(
        &cfg,
        &[
            "fenced",
            "put",
            "--term",
            "9",
            "s3://cli/s3-elector/e2e/lease.json",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 64, "{err}");
    // get -o leaves the old file alone when there is nothing to read.
    let kept = dir.join("kept.json");
    std::fs::write(&kept, "old").unwrap();
    for object in ["nothing.json", "report.json"] {
        let (code, _, err) = run_cmd(
            &cfg,
            &["fenced", "get", "-o", kept.to_str().unwrap(), object],
            &[],
        );
        assert_eq!(code, 66, "{object} is absent or removed: {err}");
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "old");
    }
    // Nothing of the probe's is left beside the user's objects.
    let keys: Vec<String> = runtime().block_on(async {
        let o = sw
            .client()
            .list_objects_v2()
            .bucket("cli")
            .prefix("results/")
            .send()
            .await
            .unwrap();
        o.contents()
            .iter()
            .filter_map(|c| c.key().map(String::from))
            .collect()
    });
    assert_eq!(keys, vec!["results/report.json".to_string()], "{keys:?}");
}

/// A store that ignores conditional writes is refused before any fenced
/// write, as the daemon refuses it.
#[test]
fn fenced_refuses_a_store_that_ignores_conditions() {
    let s = S3rver::start("nonconforming");
    let cfg = s.config("nonconforming");
    let creds = S3rver::CREDS;
    let body = s.dir.path().join("out.json");
    std::fs::write(&body, "{}").unwrap();
    let (code, out, err) = run_cmd(
        &cfg,
        &[
            "fenced",
            "put",
            "--term",
            "3",
            "out.json",
            body.to_str().unwrap(),
        ],
        &creds,
    );
    assert_eq!(code, 69, "{out}{err}");
    assert!(err.contains("does not honour conditional writes"), "{err}");
}

/// End to end: a leader's supervised program writes fenced objects in a
/// loop. The whole leader (daemon, guard, program) is frozen past its
/// lease; another copy leads and its program writes the same objects. On
/// SIGCONT every write the old program still makes is refused (77), and
/// no object's term ever goes down.
#[test]
fn a_frozen_leader_s_pending_writes_are_refused() {
    let sw = Seaweed::start();
    sw.bucket("frozen");
    let dir = sw.dir.path();
    let timing = "timing:\n  lease_duration: 4s\n  renew_deadline: 2s\n  retry_period: 500ms\nchild:\n  kill_grace: 1500ms\n";
    let cfg = sw.config(dir, "frozen", "frozen", timing);
    let log = dir.join("writes.log");
    // Writes obj-0..2 in turn; logs "identity term i exit-code". TERM is
    // ignored, so it keeps writing until the guard's SIGKILL.
    let script = dir.join("writer.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntrap '' TERM\ni=0\nwhile :; do\n  i=$((i+1))\n  echo \"$S3_ELECTOR_IDENTITY $i\" | {bin} fenced put obj-$((i % 3)) >/dev/null 2>&1\n  echo \"$S3_ELECTOR_IDENTITY $S3_ELECTOR_TERM $i $?\" >> {log}\n  sleep 0.05\ndone\n",
            bin = bin(),
            log = log.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["755", script.to_str().unwrap()])
        .status()
        .unwrap();
    // The config is given as a flag, not in the environment: the daemon
    // passes it on to its program (S3_ELECTOR_CONFIG).
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "--",
        script.to_str().unwrap(),
    ];
    let no_env = [("-S3_ELECTOR_CONFIG", "")];
    let a = Daemon::start_full("a", &cfg, &no_env, &args);
    until(Duration::from_secs(60), "a leads", || a.says_leader());
    let lines = || -> Vec<(String, u64, u64, i32)> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                Some((
                    f.first()?.to_string(),
                    f.get(1)?.parse().ok()?,
                    f.get(2)?.parse().ok()?,
                    f.get(3)?.parse().ok()?,
                ))
            })
            .collect()
    };
    until(Duration::from_secs(30), "a's program wrote", || {
        lines().iter().filter(|l| l.0 == "a" && l.3 == 0).count() >= 3
    });
    // Freeze everything a runs, mid-loop.
    let frozen_at = Instant::now();
    signal_all(&a.marker, "STOP");
    let b = Daemon::start_full("b", &cfg, &no_env, &args);
    until(Duration::from_secs(60), "b leads", || b.says_leader());
    until(
        Duration::from_secs(30),
        "b's program wrote every object",
        || {
            let mut objs: Vec<u64> = lines()
                .iter()
                .filter(|l| l.0 == "b" && l.3 == 0)
                .map(|l| l.2 % 3)
                .collect();
            objs.sort();
            objs.dedup();
            objs.len() == 3
        },
    );
    assert!(frozen_at.elapsed() > Duration::from_secs(4));
    let b_term = lines().iter().find(|l| l.0 == "b").unwrap().1;
    let before = lines().len();
    signal_all(&a.marker, "CONT");
    // a's daemon finds its lease gone, its guard stops the program (TERM is
    // ignored, so SIGKILL after kill_grace): every write it makes now is
    // refused.
    let end = Instant::now() + Duration::from_secs(20);
    // Not the daemon (its own command line names the script): the guard
    // and the program.
    while process_with_env(&a.marker, a.pid(), &script.display().to_string()) {
        if Instant::now() > end {
            let ps: Vec<String> = pids_of(&a.marker)
                .into_iter()
                .map(|p| {
                    let c = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                    let st = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                    format!(
                        "{p}: {} [{}]",
                        String::from_utf8_lossy(&c).replace('\0', " "),
                        st.rsplit(')')
                            .next()
                            .unwrap_or("")
                            .trim()
                            .split(' ')
                            .next()
                            .unwrap_or("")
                    )
                })
                .collect();
            panic!("a's program is still running: {ps:#?}\n{}", a.log_text());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let last_logged = lines()
        .iter()
        .take(before)
        .filter(|l| l.0 == "a")
        .map(|l| l.2)
        .max()
        .unwrap();
    let after: Vec<_> = lines()
        .into_iter()
        .skip(before)
        .filter(|l| l.0 == "a")
        .collect();
    for (i, l) in after.iter().enumerate() {
        // The freeze can fall between a write that landed and the line that
        // logs it: that one write (the next after the last logged) landed
        // before b led, and may be logged as a success. Every write that
        // lands after SIGCONT finds b's term on its object: refused.
        let in_flight_at_freeze = i == 0 && l.2 == last_logged + 1;
        if !in_flight_at_freeze {
            assert_eq!(
                l.3, 77,
                "a write of the frozen leader (term {}) was not refused: {after:?}",
                l.1
            );
        }
        assert!(l.1 < b_term);
    }
    eprintln!(
        "frozen leader: {} writes after SIGCONT, all refused",
        after.len()
    );
    assert!(
        !after.is_empty(),
        "the frozen program made no write after SIGCONT: {:?}",
        lines()
    );
    // No object's term went down: each ends at b's term.
    runtime().block_on(async {
        let s = sw.store("frozen").await;
        for o in 0..3 {
            assert_eq!(term_of(&s, &format!("obj-{o}")).await, Some(b_term));
        }
    });
    drop(b);
    drop(a);
}
