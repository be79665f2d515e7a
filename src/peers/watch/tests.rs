#![allow(clippy::disallowed_types)] // the task against real HTTP measures real elapsed time

use super::*;
use hyper::body::Bytes;

fn answer(status: u16, body: serde_json::Value) -> Answer {
    Answer {
        status,
        body: Bytes::from(body.to_string()),
    }
}

fn s1() -> Successor {
    Successor {
        identity: "s1".into(),
        address: Some("127.0.0.1:1".into()),
    }
}

fn known() -> Known<'static> {
    Known {
        election: "e",
        leader: Some("L"),
        term: 7,
        min_valid: Duration::from_secs(11),
    }
}

fn healthy() -> serde_json::Value {
    serde_json::json!({"election": "e", "identity": "s1", "ready": true, "candidate": true,
        "is_leader": false, "leader": "L", "term": 7, "problem": null, "view_valid_for_seconds": 14.2})
}

#[test]
fn a_successor_confirms_only_what_this_copy_knows_and_only_when_healthy() {
    assert_eq!(
        judge(&answer(200, healthy()), &s1(), &known()),
        Verdict::Agrees
    );
    // News: another leader or term (a hand-over happened).
    let k6 = Known { term: 6, ..known() };
    assert_eq!(judge(&answer(200, healthy()), &s1(), &k6), Verdict::News);
    let km = Known {
        leader: Some("M"),
        ..known()
    };
    assert_eq!(judge(&answer(200, healthy()), &s1(), &km), Verdict::News);
    let none = Known {
        leader: None,
        ..known()
    };
    assert_eq!(judge(&answer(200, healthy()), &s1(), &none), Verdict::News);
    // Another copy at that address (a loopback address from another host),
    // another election, a successor that leads, is stopping, has not read
    // the lease, has a problem, is far itself, or sees a holder that
    // missed renewals.
    for (k, v) in [
        ("identity", serde_json::json!("b2")),
        ("election", serde_json::json!("other")),
        ("is_leader", serde_json::json!(true)),
        ("candidate", serde_json::json!(false)),
        ("ready", serde_json::json!(false)),
        ("problem", serde_json::json!("cannot read the lease")),
        ("watching", serde_json::json!("s2")),
        ("view_valid_for_seconds", serde_json::json!(10.9)),
        ("view_valid_for_seconds", serde_json::Value::Null),
    ] {
        let mut b = healthy();
        b[k] = v.clone();
        assert_eq!(
            judge(&answer(200, b), &s1(), &known()),
            Verdict::Bad,
            "{k}: {v}"
        );
    }
    assert_eq!(
        judge(&answer(503, healthy()), &s1(), &known()),
        Verdict::Bad
    );
    let junk = Answer {
        status: 200,
        body: Bytes::from_static(b"not json"),
    };
    assert_eq!(judge(&junk, &s1(), &known()), Verdict::Bad);
}

#[test]
fn checks_come_often_enough_for_the_failover_bound() {
    let r = Duration::from_secs(2);
    assert_eq!(check_interval(r), Duration::from_millis(500));
    assert_eq!(check_timeout(r), Duration::from_millis(500));
    let r = Duration::from_millis(500);
    assert_eq!(check_interval(r), Duration::from_millis(125));
    assert_eq!(check_timeout(r), Duration::from_millis(125));
    assert_eq!(
        check_interval(Duration::from_millis(40)),
        Duration::from_millis(20)
    );
    assert_eq!(
        check_timeout(Duration::from_millis(40)),
        Duration::from_millis(50)
    );
    assert_eq!(
        min_valid(Duration::from_secs(15), Duration::from_secs(2)),
        Duration::from_secs(11)
    );
    assert_eq!(
        min_valid(Duration::from_secs(1), Duration::from_secs(2)),
        Duration::ZERO
    );
    // Together within half a retry period, from 200 ms up.
    for ms in [200, 500, 1000, 2000, 10_000] {
        let r = Duration::from_millis(ms);
        assert!(check_interval(r) + check_timeout(r) <= r / 2, "{ms}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_withdrawal_wakes_the_election_once_and_a_flaky_successor_is_held_off() {
    let p = Duration::from_secs(2);
    let mut c = Confirmer::new(p, Duration::from_secs(15));
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    // Nothing to watch: nothing confirmed, nobody woken.
    assert_eq!(c.checked(at(0), Verdict::Agrees).confirmed, None);
    c.retarget(Some(s1()));
    // Bad before any confirmation: no wake-up (the election reads at the
    // renewal rate anyway).
    let s = c.checked(at(0), Verdict::Bad);
    assert_eq!(
        s,
        Step {
            confirmed: None,
            wake: false
        }
    );
    // The first good answer confirms at once.
    let s = c.checked(at(500), Verdict::Agrees);
    assert_eq!(s.confirmed, Some(s1()));
    assert!(!s.wake);
    // A failed check withdraws it and wakes the election, once.
    let s = c.checked(at(1000), Verdict::Bad);
    assert_eq!(
        s,
        Step {
            confirmed: None,
            wake: true
        }
    );
    assert!(!c.checked(at(1500), Verdict::Bad).wake);
    // Good again: confirmed only after a retry period of good answers.
    assert_eq!(c.checked(at(2000), Verdict::Agrees).confirmed, None);
    assert_eq!(c.checked(at(3500), Verdict::Agrees).confirmed, None);
    assert_eq!(c.checked(at(4000), Verdict::Agrees).confirmed, Some(s1()));
    // Lost again at once: the hold doubles (4 s).
    assert!(c.checked(at(4500), Verdict::Bad).wake);
    assert_eq!(c.checked(at(5000), Verdict::Agrees).confirmed, None);
    assert_eq!(c.checked(at(8500), Verdict::Agrees).confirmed, None);
    assert_eq!(c.checked(at(9000), Verdict::Agrees).confirmed, Some(s1()));
    // After a lease of good answers the hold is forgotten.
    assert_eq!(c.checked(at(24_500), Verdict::Agrees).confirmed, Some(s1()));
    assert!(c.checked(at(25_000), Verdict::Bad).wake);
    assert_eq!(c.checked(at(26_000), Verdict::Agrees).confirmed, None);
    assert_eq!(c.checked(at(27_000), Verdict::Agrees).confirmed, None);
    assert_eq!(
        c.checked(at(28_000), Verdict::Agrees).confirmed,
        Some(s1()),
        "back to one retry period"
    );
    // News (a hand-over): withdrawn and woken, confirmed again at once.
    let s = c.checked(at(28_200), Verdict::News);
    assert_eq!(
        s,
        Step {
            confirmed: None,
            wake: true
        }
    );
    assert_eq!(c.checked(at(28_400), Verdict::Agrees).confirmed, Some(s1()));
    // A new target starts unconfirmed, without a hold.
    let s2 = Successor {
        identity: "s2".into(),
        address: Some("127.0.0.1:2".into()),
    };
    c.retarget(Some(s2.clone()));
    assert_eq!(c.checked(at(28_500), Verdict::Agrees).confirmed, Some(s2));
}

/// A peer on loopback answering `GET /leader` with `body`, or accepting
/// connections and never answering while `silent`.
struct Peer {
    address: String,
    /// Requests answered.
    answered: Arc<std::sync::atomic::AtomicUsize>,
    body: Arc<std::sync::Mutex<serde_json::Value>>,
    silent: Arc<std::sync::atomic::AtomicBool>,
}

async fn peer(body: serde_json::Value) -> Peer {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let body = Arc::new(std::sync::Mutex::new(body));
    let silent = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (b, q, n) = (body.clone(), silent.clone(), answered.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (b, q, n) = (b.clone(), q.clone(), n.clone());
            tokio::spawn(async move {
                if q.load(std::sync::atomic::Ordering::SeqCst) {
                    // SIGSTOPped: the kernel accepts, nobody answers.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    drop(stream);
                    return;
                }
                let svc = hyper::service::service_fn(move |_req| {
                    n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let body = b.lock().unwrap().to_string();
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(Bytes::from(body)),
                        ))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Peer {
        address,
        answered,
        body,
        silent,
    }
}

fn following(watch: Option<Successor>) -> State {
    let mut s =
        crate::work::hooks::tests::st(crate::lease::election::Role::Follower, Some("L"), 7, true);
    s.election = "e".into();
    s.watch = watch;
    s
}

async fn until_confirmed(rx: &mut watch::Receiver<Option<Successor>>, want: Option<&Successor>) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while rx.borrow_and_update().as_ref() != want {
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("the confirmation in time");
}

/// The task against real HTTP on loopback (real time, short periods): it
/// confirms a healthy successor, withdraws the confirmation and wakes the
/// election when the successor freezes (accepts, never answers) within
/// the interval and the timeout, and checks a new target at once.
#[tokio::test]
async fn the_watch_confirms_withdraws_on_a_frozen_successor_and_retargets_at_once() {
    let retry = Duration::from_millis(200);
    let p = peer(healthy()).await;
    let s1 = Successor {
        identity: "s1".into(),
        address: Some(p.address.clone()),
    };
    let (state_tx, state) = watch::channel(following(Some(s1.clone())));
    let (confirmed_tx, mut confirmed) = watch::channel(None);
    let wake = Arc::new(Notify::new());
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(
        state,
        confirmed_tx,
        wake.clone(),
        WatchSpec {
            election: "e".into(),
            retry_period: retry,
            lease_duration: Duration::from_secs(3),
        },
        stop.clone(),
    ));
    until_confirmed(&mut confirmed, Some(&s1)).await;
    // One check per interval (50 ms), not a busy loop.
    let before = p.answered.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let checks = p.answered.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert!((5..=25).contains(&checks), "{checks} checks in 1 s");
    // Frozen: the next check times out; withdrawn and woken within the
    // interval (50 ms) + the timeout (50 ms), with room for a busy machine.
    p.silent.store(true, std::sync::atomic::Ordering::SeqCst);
    let t = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), wake.notified())
        .await
        .expect("woken");
    assert_eq!(*confirmed.borrow(), None);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // Another target (the record changed): checked at once.
    let q = peer({
        let mut b = healthy();
        b["identity"] = "s2".into();
        b
    })
    .await;
    let s2 = Successor {
        identity: "s2".into(),
        address: Some(q.address.clone()),
    };
    state_tx.send_replace(following(Some(s2.clone())));
    until_confirmed(&mut confirmed, Some(&s2)).await;
    // The successor now sees another term: news, withdrawn.
    q.body.lock().unwrap()["term"] = 8.into();
    tokio::time::timeout(Duration::from_secs(5), wake.notified())
        .await
        .expect("woken by news");
    // Nothing to watch: nothing confirmed.
    state_tx.send_replace(following(None));
    until_confirmed(&mut confirmed, None).await;
    stop.cancel();
    task.await.unwrap();
}
