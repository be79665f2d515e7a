//! The label task against an in-memory set of labeled pods, on paused time.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::*;
use crate::lease::election::Role;
use crate::work::hooks::tests::st;

/// Pods and their label; counts the most pods labeled at once; can fail
/// every request, answer some pods' patches with a status, list a pod that
/// no longer exists, and answer lists late or never.
#[derive(Default)]
struct Pods {
    labeled: Mutex<BTreeSet<String>>,
    most_at_once: Mutex<usize>,
    requests: Mutex<Vec<String>>,
    failing: std::sync::atomic::AtomicBool,
    /// Pods whose patch is answered with this status.
    refused: Mutex<Vec<(String, u16)>>,
    /// Listed with the label, though deleted (their patch answers 404).
    phantom: Mutex<Option<String>>,
    /// A list answers this late, reflecting the pods when it answers;
    /// `Duration::MAX`: never.
    list_delay: Mutex<Duration>,
}

impl Pods {
    fn with(pods: &[&str]) -> Arc<Pods> {
        let p = Pods::default();
        p.labeled
            .lock()
            .unwrap()
            .extend(pods.iter().map(|s| s.to_string()));
        Arc::new(p)
    }
    fn now_labeled(&self) -> Vec<String> {
        self.labeled.lock().unwrap().iter().cloned().collect()
    }
    fn requests(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
    fn fail(&self, on: bool) {
        self.failing.store(on, std::sync::atomic::Ordering::SeqCst);
    }
    fn check(&self, what: String) -> Result<(), KubeError> {
        self.requests.lock().unwrap().push(what.clone());
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(status(what, 403));
        }
        Ok(())
    }
}

fn status(what: String, status: u16) -> KubeError {
    KubeError::Status {
        what,
        status,
        detail: String::new(),
        hint: "retrying".into(),
    }
}

impl PodLabels for Arc<Pods> {
    async fn set(&self, pod: &str, on: bool) -> Result<(), KubeError> {
        self.check(format!("set {pod} {on}"))?;
        if self.phantom.lock().unwrap().as_deref() == Some(pod) {
            return Err(status(format!("set {pod}"), 404));
        }
        let refused = self.refused.lock().unwrap().clone();
        if let Some((_, code)) = refused.iter().find(|(p, _)| p == pod) {
            return Err(status(format!("set {pod}"), *code));
        }
        let mut l = self.labeled.lock().unwrap();
        if on {
            l.insert(pod.into());
        } else {
            l.remove(pod);
        }
        let mut most = self.most_at_once.lock().unwrap();
        *most = (*most).max(l.len());
        Ok(())
    }
    async fn labeled(&self) -> Result<Vec<String>, KubeError> {
        let delay = *self.list_delay.lock().unwrap();
        if delay == Duration::MAX {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(delay).await;
        self.check("list".into())?;
        let mut l = self.now_labeled();
        l.extend(self.phantom.lock().unwrap().clone());
        Ok(l)
    }
}

fn settings() -> PodLabelSpec {
    PodLabelSpec {
        pod: "me".into(),
        recheck: Duration::from_secs(15),
        retry: Duration::from_secs(2),
        final_timeout: Duration::from_secs(3),
    }
}

struct Running {
    pods: Arc<Pods>,
    state: watch::Sender<State>,
    problem: watch::Receiver<Option<String>>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(pods: Arc<Pods>, first: State) -> Running {
    let (state, rx) = watch::channel(first);
    let (problem_tx, problem) = watch::channel(None);
    let metrics = Arc::new(Metrics::new());
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(
        pods.clone(),
        settings(),
        rx,
        problem_tx,
        metrics.clone(),
        stop.clone(),
    ));
    Running {
        pods,
        state,
        problem,
        metrics,
        stop,
        task,
    }
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn leading(valid_for: Duration) -> State {
    let mut s = st(Role::Leader, Some("me"), 3, true);
    s.valid_until = Some(Instant::now() + valid_for);
    s
}

#[tokio::test(start_paused = true)]
async fn a_new_leader_clears_the_others_first_then_labels_itself() {
    let r = start(
        Pods::with(&["old", "older"]),
        st(Role::Follower, Some("old"), 2, true),
    );
    settle().await;
    // A follower removes its own (a label left by a copy killed while
    // leading), never the others'.
    assert_eq!(r.pods.requests(), vec!["set me false"]);
    assert_eq!(r.pods.now_labeled(), vec!["old", "older"]);
    r.state.send(leading(Duration::from_secs(10))).unwrap();
    settle().await;
    assert_eq!(
        r.pods.requests(),
        vec!["list", "set old false", "set older false", "set me true"]
    );
    assert_eq!(r.pods.now_labeled(), vec!["me"]);
    // Never two at once: the others went first.
    assert_eq!(*r.pods.most_at_once.lock().unwrap(), 2);
    r.stop.cancel();
    r.task.await.unwrap();
    assert!(
        r.pods.now_labeled().is_empty(),
        "a graceful stop removes it"
    );
}

#[tokio::test(start_paused = true)]
async fn the_label_goes_when_the_deadline_passes_without_any_news() {
    let r = start(Pods::with(&[]), leading(Duration::from_secs(10)));
    settle().await;
    assert_eq!(r.pods.now_labeled(), vec!["me"]);
    r.pods.requests();
    tokio::time::sleep(Duration::from_millis(9_900)).await;
    settle().await;
    assert_eq!(r.pods.now_labeled(), vec!["me"], "still leading");
    tokio::time::sleep(Duration::from_millis(200)).await;
    settle().await;
    assert!(r.pods.now_labeled().is_empty(), "deadline passed: removed");
    assert_eq!(r.pods.requests(), vec!["set me false"]);
    // Nothing more while it follows, however long.
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    settle().await;
    assert!(r.pods.requests().is_empty());
    r.stop.cancel();
    r.task.await.unwrap();
    assert!(
        r.pods.requests().is_empty(),
        "known absent: no last request"
    );
}

#[tokio::test(start_paused = true)]
async fn a_leader_checks_again_every_recheck_and_restores_its_label() {
    let r = start(Pods::with(&[]), leading(Duration::from_secs(100)));
    settle().await;
    assert_eq!(r.pods.requests(), vec!["list", "set me true"]);
    // Someone removes it, and a stale copy sets its own.
    r.pods.labeled.lock().unwrap().clear();
    r.pods.labeled.lock().unwrap().insert("stale".into());
    tokio::time::sleep(Duration::from_secs(14)).await;
    settle().await;
    assert!(r.pods.requests().is_empty(), "not before the recheck");
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(
        r.pods.requests(),
        vec!["list", "set stale false", "set me true"]
    );
    assert_eq!(r.pods.now_labeled(), vec!["me"]);
    // In step: a recheck is one list.
    tokio::time::sleep(Duration::from_secs(15)).await;
    settle().await;
    assert_eq!(r.pods.requests(), vec!["list"]);
    r.stop.cancel();
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_copy_that_stopped_leading_meanwhile_does_not_label_itself() {
    // The state says leading when the task looks, but the deadline is
    // already behind by the time the list has answered.
    let pods = Pods::with(&[]);
    *pods.list_delay.lock().unwrap() = Duration::from_secs(2);
    let r = start(pods.clone(), leading(Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_secs(5)).await;
    settle().await;
    assert!(pods.now_labeled().is_empty());
    assert!(!pods.requests().contains(&"set me true".to_string()));
    drop(r.state);
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_are_counted_and_shown_then_cleared() {
    let r = start(Pods::with(&[]), leading(Duration::from_secs(1000)));
    r.pods.fail(true);
    let t0 = Instant::now();
    settle().await;
    let p = r.problem.borrow().clone().expect("a problem is shown");
    assert!(p.contains("pod label") && p.contains("403"), "{p}");
    // Each attempt is one list (refused); the waits between attempts double
    // from the retry period (2 s, less up to a fifth) up to the recheck
    // (15 s), never in a loop.
    let mut at = vec![Duration::ZERO];
    r.pods.requests();
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        settle().await;
        let n = r.pods.requests().len();
        assert!(n <= 1, "{n} requests in 100 ms");
        if n == 1 {
            at.push(Instant::now() - t0);
        }
    }
    let gaps: Vec<f64> = at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    assert!(gaps.len() >= 5, "{gaps:?}");
    assert!((1.5..=2.2).contains(&gaps[0]), "{gaps:?}");
    assert!((3.1..=4.2).contains(&gaps[1]), "{gaps:?}");
    assert!((6.3..=8.2).contains(&gaps[2]), "{gaps:?}");
    assert!(gaps.iter().all(|g| *g <= 15.2), "{gaps:?}");
    assert!(
        gaps[gaps.len() - 1] >= 11.9,
        "capped at the recheck: {gaps:?}"
    );
    // Recovered: the next attempt succeeds, the problem goes, and the
    // count stays.
    r.pods.fail(false);
    tokio::time::sleep(Duration::from_secs(16)).await;
    settle().await;
    assert_eq!(r.pods.now_labeled(), vec!["me"]);
    assert_eq!(*r.problem.borrow(), None);
    let text = r.metrics.render(
        &r.state.borrow(),
        crate::surfaces::metrics::Format::Prometheus,
    );
    let count = text
        .lines()
        .find_map(|l| l.strip_prefix("s3_elector_pod_label_errors_total "))
        .expect("the counter");
    assert_eq!(count.parse::<usize>().unwrap(), at.len(), "{text}");
    // After a success the next failure waits the retry period again.
    r.state
        .send(st(Role::Follower, Some("next"), 4, true))
        .unwrap();
    settle().await;
    assert!(r.pods.now_labeled().is_empty());
    r.stop.cancel();
    r.task.await.unwrap();
}

/// A pod deleted between the list and the removal (a rollout) is not a
/// failure; the new leader labels itself at once.
#[tokio::test(start_paused = true)]
async fn a_pod_gone_since_the_list_does_not_hold_up_the_takeover() {
    let pods = Pods::with(&["old"]);
    *pods.phantom.lock().unwrap() = Some("deleted".into());
    let r = start(pods.clone(), leading(Duration::from_secs(100)));
    settle().await;
    assert_eq!(pods.now_labeled(), vec!["me"]);
    assert_eq!(*r.problem.borrow(), None);
    r.stop.cancel();
    r.task.await.unwrap();
}

/// A copy that loses the lease while its list is in flight removes nobody's
/// label: the new leader's label stays.
#[tokio::test(start_paused = true)]
async fn a_copy_that_lost_the_lease_during_its_list_removes_nothing() {
    let pods = Pods::with(&[]);
    *pods.list_delay.lock().unwrap() = Duration::from_secs(3);
    let r = start(pods.clone(), leading(Duration::from_secs(2)));
    settle().await;
    // "next" takes over and labels itself while the list is on its way.
    pods.labeled.lock().unwrap().insert("next".into());
    tokio::time::sleep(Duration::from_millis(500)).await;
    pods.requests.lock().unwrap().clear();
    tokio::time::sleep(Duration::from_secs(4)).await;
    settle().await;
    assert_eq!(pods.now_labeled(), vec!["next"]);
    assert!(
        !pods.requests().iter().any(|r| r == "set next false"),
        "removed the new leader's label"
    );
    drop(r.state);
    r.stop.cancel();
    r.task.await.unwrap();
}

/// A stop during a slow takeover does not wait for it; the last removal
/// runs within its own timeout.
#[tokio::test(start_paused = true)]
async fn a_stop_does_not_wait_for_a_slow_takeover() {
    let pods = Pods::with(&[]);
    *pods.list_delay.lock().unwrap() = Duration::MAX;
    let r = start(pods.clone(), leading(Duration::from_secs(100)));
    settle().await;
    let t0 = Instant::now();
    r.stop.cancel();
    r.task.await.unwrap();
    assert!(Instant::now() - t0 < Duration::from_millis(10));
    assert_eq!(
        pods.requests(),
        vec!["set me false"],
        "the last removal ran"
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_down_removes_the_label_at_once() {
    let r = start(Pods::with(&[]), leading(Duration::from_secs(100)));
    settle().await;
    assert_eq!(r.pods.now_labeled(), vec!["me"]);
    r.state
        .send(st(Role::Follower, Some("next"), 4, true))
        .unwrap();
    settle().await;
    assert!(r.pods.now_labeled().is_empty());
    r.stop.cancel();
    r.task.await.unwrap();
}

/// A removal refused for another reason than "gone" is a failure: the
/// takeover stops there (this pod is not labeled while another still is),
/// is shown, and is retried.
#[tokio::test(start_paused = true)]
async fn a_refused_removal_of_another_pods_label_holds_the_takeover() {
    let pods = Pods::with(&["old"]);
    pods.refused.lock().unwrap().push(("old".into(), 500));
    let r = start(pods.clone(), leading(Duration::from_secs(100)));
    settle().await;
    assert_eq!(
        pods.now_labeled(),
        vec!["old"],
        "not labeled beside the old one"
    );
    let p = r.problem.borrow().clone().expect("shown");
    assert!(p.contains("500"), "{p}");
    r.stop.cancel();
    r.task.await.unwrap();
}
