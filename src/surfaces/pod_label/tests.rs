//! The label task against an in-memory set of labeled pods, on paused time.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::*;
use crate::lease::election::Role;
use crate::work::hooks::tests::st;

/// Pods and their label; counts the most pods labeled at once; can fail.
#[derive(Default)]
struct Pods {
    labeled: Mutex<BTreeSet<String>>,
    most_at_once: Mutex<usize>,
    requests: Mutex<Vec<String>>,
    failing: std::sync::atomic::AtomicBool,
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
            return Err(KubeError::Status {
                what,
                status: 403,
                detail: String::new(),
                hint: "grant patch".into(),
            });
        }
        Ok(())
    }
}

impl PodLabels for Arc<Pods> {
    async fn set(&self, pod: &str, on: bool) -> Result<(), KubeError> {
        self.check(format!("set {pod} {on}"))?;
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
        self.check("list".into())?;
        Ok(self.now_labeled())
    }
}

fn settings() -> Settings {
    Settings {
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
    // Nothing more while it follows.
    tokio::time::sleep(Duration::from_secs(600)).await;
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
    struct Slow(Arc<Pods>);
    impl PodLabels for Slow {
        async fn set(&self, pod: &str, on: bool) -> Result<(), KubeError> {
            self.0.set(pod, on).await
        }
        async fn labeled(&self) -> Result<Vec<String>, KubeError> {
            tokio::time::sleep(Duration::from_secs(2)).await;
            self.0.labeled().await
        }
    }
    let pods = Pods::with(&[]);
    let (state, rx) = watch::channel(leading(Duration::from_secs(1)));
    let (problem_tx, _problem) = watch::channel(None);
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(
        Slow(pods.clone()),
        settings(),
        rx,
        problem_tx,
        Arc::new(Metrics::new()),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(5)).await;
    settle().await;
    assert!(pods.now_labeled().is_empty());
    assert!(!pods.requests().contains(&"set me true".to_string()));
    drop(state);
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn failures_are_retried_counted_and_shown_then_cleared() {
    let r = start(Pods::with(&[]), st(Role::Follower, Some("x"), 2, true));
    r.pods.fail(true);
    settle().await;
    r.state.send(leading(Duration::from_secs(100))).unwrap();
    settle().await;
    let p = r.problem.borrow().clone().expect("a problem is shown");
    assert!(p.contains("pod label") && p.contains("403"), "{p}");
    let before = r.pods.requests().len();
    // Retried every retry period, not in a loop.
    tokio::time::sleep(Duration::from_millis(1_900)).await;
    settle().await;
    assert!(r.pods.requests().is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    settle().await;
    assert_eq!(r.pods.requests(), vec!["list"]);
    assert!(before >= 1);
    r.pods.fail(false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(r.pods.now_labeled(), vec!["me"]);
    assert_eq!(*r.problem.borrow(), None);
    let text = r.metrics.render(
        &r.state.borrow(),
        crate::surfaces::metrics::Format::Prometheus,
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("s3_elector_pod_label_errors_total ") && !l.ends_with(" 0")),
        "{text}"
    );
    r.stop.cancel();
    r.task.await.unwrap();
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
