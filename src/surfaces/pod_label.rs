//! The leader's pod label (`kubernetes.leader_label`): while this copy
//! leads, its own pod carries `LABEL=true`, so a Service selecting that
//! label routes only to the leader while every pod stays Ready (drains and
//! rolling updates are never blocked by readiness).
//!
//! Invariants:
//! - the label is set only while the published state says this copy leads
//!   with its deadline ahead ([`State::is_leader`]), checked again right
//!   before the request that sets it; it is removed when the state stops
//!   saying so (step-down, lost lease, deadline passed even with S3 out of
//!   reach), at start (a copy killed while leading left it behind) and on a
//!   graceful stop;
//! - a new leader first removes the label from every other pod of the
//!   election (`pod_selector`), then sets its own, so a crashed or frozen
//!   leader's pod stops getting traffic when the next one takes over;
//!   while leading it checks again every `lease_duration` (one list);
//! - the label is routing, not safety: a copy frozen between its check and
//!   its request can set it after it lost the lease, until its next
//!   iteration removes it (or the next check of the leader). Leader-only
//!   *work* stays guarded by the lease and fenced writes, never by the label;
//! - failures never touch the election: they are retried after
//!   `retry_period`, doubling up to `lease_duration` while they go on,
//!   counted (`s3_elector_pod_label_errors_total`), shown
//!   in `/leader`'s `problem`, and logged once per change.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::lease::election::State;
use crate::surfaces::kube::{KubeApi, KubeError};
use crate::surfaces::metrics::Metrics;

/// The two requests the label needs: set or remove it on a pod, and list
/// the pods of the election that carry it.
pub trait PodLabels: Send + Sync {
    /// Set the label on `pod` (`true`) or remove it (`false`).
    fn set(
        &self,
        pod: &str,
        on: bool,
    ) -> impl std::future::Future<Output = Result<(), KubeError>> + Send;
    /// The pods of the election that carry the label.
    fn labeled(&self) -> impl std::future::Future<Output = Result<Vec<String>, KubeError>> + Send;
}

/// The Kubernetes API as [`PodLabels`].
pub struct Api {
    pub api: KubeApi,
    pub label: String,
    /// `LABEL=true,<pod_selector>`.
    pub selector: String,
    /// The election's pods.
    pub pod_selector: String,
}

impl Api {
    pub fn new(api: KubeApi, label: &str, pod_selector: &str) -> Api {
        Api {
            api,
            label: label.into(),
            selector: format!("{label}=true,{pod_selector}"),
            pod_selector: pod_selector.into(),
        }
    }
}

impl PodLabels for Api {
    async fn set(&self, pod: &str, on: bool) -> Result<(), KubeError> {
        self.api
            .set_label(pod, &self.label, on.then_some("true"))
            .await
    }
    async fn labeled(&self) -> Result<Vec<String>, KubeError> {
        self.api.pods(&self.selector).await
    }
}

/// How the task runs.
#[derive(Debug, Clone)]
pub struct PodLabelSpec {
    /// This copy's pod.
    pub pod: String,
    /// While leading, check the other pods this often.
    pub recheck: Duration,
    /// After a failure, try again after this, doubling with each failure in
    /// a row (with jitter) up to `recheck`.
    pub retry: Duration,
    /// The last removal on a graceful stop may take this long.
    pub final_timeout: Duration,
}

/// Keep the label in step with the state until `shutdown`, then remove it.
pub async fn run<A: PodLabels>(
    api: A,
    s: PodLabelSpec,
    mut rx: watch::Receiver<State>,
    problem: watch::Sender<Option<String>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    // What the pod's label is known to be; `None` at start and after a
    // failed request.
    let mut applied: Option<bool> = None;
    let mut due = Instant::now();
    let mut failures: u32 = 0;
    loop {
        let state = rx.borrow_and_update().clone();
        let now = Instant::now();
        let want = state.is_leader(now);
        let changed = applied != Some(want);
        // Due: a change of role known for sure is acted on at once; after a
        // failure, at the retry; a leader's check, at the recheck.
        let act = now >= due || (changed && applied.is_some());
        if (changed || want) && act {
            let step = async {
                if want {
                    lead(&api, &s, &rx).await
                } else {
                    api.set(&s.pod, false).await.map(|()| {
                        if applied == Some(true) {
                            info!(event = "pod_label_removed", pod = %s.pod, "removed the leader label from this pod");
                        }
                        false
                    })
                }
            };
            // A stop does not wait for a takeover's requests: its own
            // removal below has the stop budget's time.
            let r = tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    applied = None;
                    break;
                }
                r = step => r,
            };
            let failed = match r {
                Ok(on) => {
                    applied = Some(on);
                    failures = 0;
                    due = Instant::now() + s.recheck;
                    None
                }
                Err(e) => {
                    applied = None;
                    due = Instant::now() + backoff(&s, failures);
                    failures = failures.saturating_add(1);
                    metrics.count_pod_label_error();
                    Some(format!("the leader's pod label: {e}"))
                }
            };
            report(&problem, failed);
            continue;
        }
        // Timers: a retry or a leader's recheck (none for a follower whose
        // label is known absent), and a leader's deadline, at which its
        // label goes even if nothing is published (S3 out of reach).
        let deadline = state.valid_until.filter(|_| want);
        let wake = [(changed || want).then_some(due), deadline]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = rx.changed() => if r.is_err() { break },
            _ = sleep_until_some(wake.map(|w| w.max(now + Duration::from_millis(1)))) => {}
        }
    }
    if applied != Some(false) {
        match tokio::time::timeout(s.final_timeout, api.set(&s.pod, false)).await {
            Ok(Ok(())) => info!(event = "pod_label_removed", pod = %s.pod, "removed the leader label from this pod (stopping)"),
            Ok(Err(e)) => warn!(event = "pod_label_failing", error = %e, "cannot remove the leader label while stopping; the next leader removes it"),
            Err(_) => warn!(event = "pod_label_failing", "removing the leader label while stopping took over {:?}; the next leader removes it", s.final_timeout),
        }
    }
}

/// Sleep until `at`, or forever when there is nothing to wait for.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The wait after `failures` failures in a row: `retry` doubled each time,
/// up to `recheck`, less up to a fifth at random (so that the pods of a
/// fleet refused at once do not retry in step).
fn backoff(s: &PodLabelSpec, failures: u32) -> Duration {
    let d = s
        .retry
        .saturating_mul(1 << failures.min(16))
        .min(s.recheck.max(s.retry));
    d.mul_f64(1.0 - rand::random::<f64>() * 0.2)
}

/// Lead: remove the label from the other pods, then set it on ours, each
/// step only while this copy still leads (a copy that lost the lease during
/// a slow list must not strip the new leader's label). `Ok(true)` once ours
/// carries it.
async fn lead<A: PodLabels>(
    api: &A,
    s: &PodLabelSpec,
    rx: &watch::Receiver<State>,
) -> Result<bool, KubeError> {
    let leads = || rx.borrow().is_leader(Instant::now());
    let labeled = api.labeled().await?;
    for other in labeled.iter().filter(|p| **p != s.pod) {
        if !leads() {
            return Ok(false);
        }
        match api.set(other, false).await {
            Ok(()) => {
                info!(event = "pod_label_removed", pod = %other, "removed the leader label from another pod")
            }
            // Deleted since the list (a rollout): nothing to remove.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    if labeled.contains(&s.pod) {
        return Ok(true);
    }
    if !leads() {
        return Ok(false);
    }
    api.set(&s.pod, true).await?;
    info!(event = "pod_label_set", pod = %s.pod, "set the leader label on this pod");
    Ok(true)
}

/// Publish the problem and log it once per change.
fn report(problem: &watch::Sender<Option<String>>, failed: Option<String>) {
    let changed = problem.send_if_modified(|p| {
        let changed = *p != failed;
        *p = failed.clone();
        changed
    });
    if changed {
        match &failed {
            Some(m) => warn!(
                event = "pod_label_failing",
                "{m}; retrying, the election goes on"
            ),
            None => info!(
                event = "pod_label_ok",
                "the leader's pod label is in step again"
            ),
        }
    }
}

#[cfg(test)]
mod tests;
