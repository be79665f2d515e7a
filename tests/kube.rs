//! End to end: the leader's pod label (`kubernetes.leader_label`), the
//! real binary on real SeaweedFS, against a stand-in Kubernetes API
//! (`support::kube`; a real cluster cannot run here).
//!
//! What an operator relies on when a Service selects the label: exactly the
//! leader's pod carries it, through a graceful stop, a freeze and a crash;
//! never two pods of the election at once; other elections' pods are never
//! touched; a failing API is shown and recovered from.

#![allow(clippy::disallowed_types)] // end-to-end tests measure real elapsed time

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::kube::{FakeKube, Pods};
use support::*;

const TIMING: &str = "timing:\n  lease_duration: 3s\n  renew_deadline: 2s\n  retry_period: 500ms\n";
const LABEL: &str = "s3-elector/leader";

fn pods(names: &[&str], extra: &[(&str, &[(&str, &str)])]) -> Pods {
    let mut p: Pods = names
        .iter()
        .map(|n| {
            (
                n.to_string(),
                BTreeMap::from([("app".to_string(), "demo".to_string())]),
            )
        })
        .collect();
    for (name, labels) in extra {
        p.insert(
            name.to_string(),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
    }
    p
}

fn kube_config(api: &FakeKube) -> String {
    format!(
        "kubernetes:\n  leader_label: {LABEL}\n  pod_selector: app=demo\n  api_url: {}\n  service_account_dir: {}\n  request_timeout: 2s\n",
        api.url(),
        api.sa_dir.display()
    )
}

/// The pods of the election (app=demo) carrying the label.
fn labeled(api: &FakeKube) -> Vec<String> {
    let demo: Vec<String> = api
        .state
        .lock()
        .unwrap()
        .pods
        .iter()
        .filter(|(_, l)| l.get("app").map(String::as_str) == Some("demo"))
        .map(|(n, _)| n.clone())
        .collect();
    api.with_label(LABEL, "true")
        .into_iter()
        .filter(|p| demo.contains(p))
        .collect()
}

/// The one running, not frozen copy that says it leads.
fn wait_leader(ds: &[Daemon], skip: &[usize], within: Duration) -> usize {
    let mut found = None;
    until(within, "a leader", || {
        let l: Vec<usize> = (0..ds.len())
            .filter(|i| !skip.contains(i) && ds[*i].says_leader())
            .collect();
        assert!(l.len() <= 1, "two copies say they lead: {l:?}");
        found = l.first().copied();
        found.is_some()
    });
    found.unwrap()
}

fn wait_labeled(api: &FakeKube, want: &[&str], what: &str) {
    until(Duration::from_secs(20), what, || labeled(api) == want);
}

#[test]
fn only_the_leaders_pod_carries_the_label_through_stop_freeze_and_crash() {
    let sw = Seaweed::start();
    sw.bucket("label");
    let dir = tempfile::tempdir().unwrap();
    // Pod c carries a label left by a copy killed while leading; pod x is
    // another election's leader and must never be touched.
    let api = FakeKube::start(
        dir.path(),
        pods(
            &["a", "b"],
            &[
                ("c", &[("app", "demo"), (LABEL, "true")]),
                ("x", &[("app", "other"), (LABEL, "true")]),
            ],
        ),
        &[("app", "demo"), (LABEL, "true")],
        false,
    );
    let cfg = sw.config(
        dir.path(),
        "k",
        "label",
        &format!("{TIMING}{}", kube_config(&api)),
    );
    let ids = ["a", "b", "c"];
    let start = |id: &str| Daemon::start_with(id, &cfg, &[("POD_NAME", id)]);
    let mut ds: Vec<Daemon> = ids.iter().map(|id| start(id)).collect();

    let l1 = wait_leader(&ds, &[], Duration::from_secs(30));
    wait_labeled(
        &api,
        &[ids[l1]],
        "the first leader's pod labeled, c's stale label gone",
    );

    // A graceful stop: the label goes with the leadership.
    ds[l1].signal("TERM");
    assert!(ds[l1]
        .wait_exit(Duration::from_secs(20))
        .is_some_and(|s| s.success()));
    let l2 = wait_leader(&ds, &[l1], Duration::from_secs(30));
    wait_labeled(&api, &[ids[l2]], "the label moved to the next leader");
    ds[l1] = start(ids[l1]);

    // A freeze: the next leader takes the label off the frozen pod.
    ds[l2].signal("STOP");
    let l3 = wait_leader(&ds, &[l2], Duration::from_secs(30));
    wait_labeled(
        &api,
        &[ids[l3]],
        "the label moved off the frozen leader's pod",
    );
    ds[l2].signal("CONT");
    until(Duration::from_secs(20), "the thawed copy follows", || {
        ds[l2].follows(ids[l3])
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        labeled(&api),
        vec![ids[l3]],
        "the thawed copy did not label itself again"
    );

    // A crash: the next leader clears the dead leader's label.
    ds[l3].kill();
    let skip = [l3];
    let l4 = wait_leader(&ds, &skip, Duration::from_secs(30));
    wait_labeled(
        &api,
        &[ids[l4]],
        "the label moved off the crashed leader's pod",
    );

    // Every running copy kept its label in step without a single refused
    // or failed request.
    for (i, d) in ds.iter().enumerate() {
        if i == l3 {
            continue;
        }
        let v = d.view().expect("answers");
        assert!(v["problem"].is_null(), "{}: {v}", d.id);
        let (_, metrics) = http(d.http_port, "GET", "/metrics");
        assert!(
            metrics
                .lines()
                .any(|l| l == "s3_elector_pod_label_errors_total 0"),
            "{}: {metrics}",
            d.id
        );
    }
    assert_eq!(
        api.most(),
        1,
        "two pods of the election were labeled at once: {:?}",
        api.state.lock().unwrap().changes
    );
    assert_eq!(api.with_label("app", "other"), vec!["x"]);
    assert_eq!(
        api.with_label(LABEL, "true")
            .iter()
            .filter(|p| *p == "x")
            .count(),
        1,
        "another election's pod was touched"
    );
    for (i, d) in ds.iter().enumerate() {
        if i != l3 {
            d.signal("TERM");
        }
    }
    for d in ds.iter_mut() {
        d.wait_exit(Duration::from_secs(20));
    }
    assert!(
        labeled(&api).is_empty(),
        "a graceful stop removes the label"
    );
}

#[test]
fn a_failing_api_is_shown_and_recovered_from_over_tls() {
    let sw = Seaweed::start();
    sw.bucket("label-tls");
    let dir = tempfile::tempdir().unwrap();
    let api = FakeKube::start(
        dir.path(),
        pods(&["solo"], &[]),
        &[("app", "demo"), (LABEL, "true")],
        true,
    );
    let cfg = sw.config(
        dir.path(),
        "k",
        "label-tls",
        &format!("{TIMING}{}", kube_config(&api)),
    );
    // `check` asks the API whether this pod may list and patch (a dry run),
    // and whether the selector matches it; nothing carries the label yet
    // (an empty list).
    let (code, out, err) = run_cmd(&cfg, &["check"], &[("POD_NAME", "solo")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("kubernetes: pod prod/solo") && out.contains(": ok"),
        "{out}"
    );
    assert_eq!(api.state.lock().unwrap().dry_runs, 1);
    assert!(
        api.state.lock().unwrap().changes.is_empty(),
        "check changed a label"
    );
    api.state.lock().unwrap().fail_with = Some(403);
    let (code, out, err) = run_cmd(&cfg, &["check"], &[("POD_NAME", "solo")]);
    assert_eq!(code, 69, "{out}{err}");
    assert!(err.contains("403") && err.contains("Role"), "{err}");
    api.state.lock().unwrap().fail_with = None;
    // A pod the selector does not match: its leader could never see itself.
    let (code, _, err) = run_cmd(&cfg, &["check"], &[("POD_NAME", "ghost")]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("ghost") && err.contains("does not match `kubernetes.pod_selector`"),
        "{err}"
    );

    let mut d = Daemon::start_with("solo", &cfg, &[("POD_NAME", "solo")]);
    until(Duration::from_secs(30), "leading", || d.says_leader());
    // Over TLS, trusting only the service account's CA.
    wait_labeled(&api, &["solo"], "the leader's pod labeled over TLS");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        d.events().iter().all(|e| e.event() != "pod_label_failing"),
        "a request failed: {:?}",
        d.log_text()
    );

    // The API refuses (RBAC removed): shown in /leader, counted, retried;
    // the election goes on and the pod stays Ready.
    api.state.lock().unwrap().fail_with = Some(403);
    until(Duration::from_secs(20), "the problem shown", || {
        d.view().is_some_and(|v| {
            v["problem"]
                .as_str()
                .is_some_and(|p| p.contains("pod label") && p.contains("403") && p.contains("Role"))
        })
    });
    assert!(d.says_leader());
    assert_eq!(http(d.http_port, "GET", "/readyz").0, 200);
    let (_, metrics) = http(d.http_port, "GET", "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("s3_elector_pod_label_errors_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    assert!(d
        .wait_event(Duration::from_secs(1), |e| e.event() == "pod_label_failing")
        .is_some());
    api.state.lock().unwrap().fail_with = None;
    until(Duration::from_secs(20), "the problem cleared", || {
        d.view().is_some_and(|v| v["problem"].is_null())
    });
    assert!(d
        .wait_event(Duration::from_secs(1), |e| e.event() == "pod_label_ok")
        .is_some());

    d.signal("TERM");
    assert!(d
        .wait_exit(Duration::from_secs(20))
        .is_some_and(|s| s.success()));
    assert!(
        labeled(&api).is_empty(),
        "a graceful stop removes the label"
    );
}

#[test]
fn a_pod_label_without_a_known_pod_stops_the_daemon_with_what_to_set() {
    let sw = Seaweed::start();
    sw.bucket("label-setup");
    let dir = tempfile::tempdir().unwrap();
    let sa = dir.path().join("empty-sa");
    std::fs::create_dir_all(&sa).unwrap();
    let cfg = sw.config(
        dir.path(),
        "k",
        "label-setup",
        &format!(
            "kubernetes:\n  leader_label: {LABEL}\n  pod_selector: app=demo\n  api_url: http://127.0.0.1:1\n  service_account_dir: {}\n",
            sa.display()
        ),
    );
    let mut d = Daemon::start_with("p", &cfg, &[("POD_NAMESPACE", "")]);
    let status = d.wait_exit(Duration::from_secs(20)).expect("exits");
    assert_eq!(status.code(), Some(64));
    let log = d.log_text();
    assert!(
        log.contains("POD_NAMESPACE") && log.contains("downward API"),
        "{log}"
    );
}
