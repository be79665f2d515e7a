//! The startup steps that need more than a line: binding the HTTP port,
//! connecting to the store, the conformance probe, and the settings each
//! task is built with. Nothing here spawns a task.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::{DaemonError, Signals};
use crate::config::Config;
use crate::lease::election::{rank_delay_for, ElectionConfig, Role, State};
use crate::lease::floor::floor_key;
use crate::lease::probe::{self, ProbeError};
use crate::lease::store::{LeaseStore, StoreError};
use crate::peers::registry;
use crate::signals::Signal;
use crate::surfaces::{kube, pod_label};

/// `s3://bucket/key` of the lease, for messages.
pub fn target(cfg: &Config) -> String {
    format!("s3://{}/{}", cfg.s3.bucket, cfg.lease_key())
}

/// Bind the HTTP port first, so a port in use is reported at once.
/// `Ok(None)`: HTTP is off, or the default port is taken (then the daemon
/// keeps electing without the endpoint, and says so).
pub async fn bind_http(cfg: &Config) -> Result<Option<TcpListener>, DaemonError> {
    if !cfg.http.enabled {
        return Ok(None);
    }
    let listen = cfg.http.listen_addr();
    match TcpListener::bind(&listen).await {
        Ok(l) => {
            let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            if l.local_addr().is_ok_and(|a| !a.ip().is_loopback()) {
                warn!(listen = %addr, "serving HTTP beyond loopback, as `http.allow_non_loopback` allows");
            } else {
                info!(listen = %addr, "serving HTTP");
            }
            Ok(Some(l))
        }
        // A port the operator chose must be served: fail loudly.
        Err(source) if cfg.http.listen.is_some() => Err(DaemonError::Listen {
            address: listen,
            source,
        }),
        // The default port is often taken by another copy on the same
        // host (tests, demos): keep electing, say so clearly.
        Err(e) => {
            error!(
                listen = %listen, error = %e,
                "cannot listen on the default HTTP address; running WITHOUT the HTTP endpoint. Set `http.listen` to a free address (or --http-listen), or `http.enabled: false`"
            );
            Ok(None)
        }
    }
}

/// Run the conformance probe until it passes. Retries while the store is
/// merely unreachable (backing off up to a lease); gives up on anything only
/// an operator can fix. `Ok(false)`: a stop signal came first.
pub async fn probe_until_ready<S: LeaseStore>(
    store: &S,
    cfg: &Config,
    identity: &str,
    skip: bool,
    signals: &mut Signals,
) -> Result<bool, DaemonError> {
    let key = cfg.lease_key();
    let mut backoff = Duration::from_millis(500);
    loop {
        let attempt = tokio::select! {
            biased;
            sig = signals.recv() => {
                if stop_requested(sig) {
                    return Ok(false);
                }
                continue;
            }
            r = probe::run(store, &key, identity) => r,
        };
        match attempt {
            Ok(r) => {
                info!(lease = %target(cfg), steps = r.steps.len(), "store conformance probe passed");
                if let Some(w) = r.cleanup_warning {
                    warn!("{w}");
                }
                return Ok(true);
            }
            Err(ProbeError::NonConforming(m)) if skip => {
                error!(problem = %m, "UNSAFE: the store fails the conformance probe and unsafe_skip_conformance_check is set; two leaders are possible");
                return Ok(true);
            }
            Err(ProbeError::Store(StoreError::Transient(m) | StoreError::Throttled(m))) => {
                warn!(error = %m, retry_in = ?backoff, "store unreachable; retrying the conformance probe");
                let until = tokio::time::Instant::now() + backoff;
                loop {
                    tokio::select! {
                        biased;
                        sig = signals.recv() => if stop_requested(sig) { return Ok(false) },
                        _ = tokio::time::sleep_until(until) => break,
                    }
                }
                backoff = (backoff * 2).min(cfg.timing.lease_duration);
            }
            Err(source) => {
                return Err(DaemonError::Probe {
                    target: target(cfg),
                    source,
                })
            }
        }
    }
}

/// A signal that arrived before the election runs: a stop (or the signal
/// thread gone) ends the start; a step-down has nothing to act on yet and
/// is said so, not dropped silently.
fn stop_requested(sig: Option<Signal>) -> bool {
    match sig {
        Some(Signal::StepDown) => {
            info!("step-down requested before joining the election; nothing to give up");
            false
        }
        Some(Signal::Stop) | None => true,
    }
}

/// Where other copies can reach our HTTP endpoint: the configured address,
/// else the bound one when it is a specific IP.
/// The leader's pod label, when `kubernetes.leader_label` is set: where the
/// API is and who this pod is, resolved once at start so that a missing
/// piece stops the daemon with a message instead of failing quietly later.
pub fn pod_label_api(cfg: &Config) -> Result<Option<pod_label::Api>, Box<kube::KubeError>> {
    let k = &cfg.kubernetes;
    let (Some(label), Some(selector)) = (&k.leader_label, &k.pod_selector) else {
        return Ok(None);
    };
    let target = kube::Target::resolve(
        k,
        |n| std::env::var(n).ok(),
        || gethostname::gethostname().into_string().ok(),
    )
    .map_err(Box::new)?;
    let api = kube::KubeApi::new(k, target).map_err(Box::new)?;
    info!(pod = %api.target().pod, namespace = %api.target().namespace, api = %api.target().api_url, label = %label,
        "while leading, this pod carries the label {label}=true");
    Ok(Some(pod_label::Api::new(api, label, selector)))
}

pub fn advertise_address(cfg: &Config, listener: Option<&TcpListener>) -> Option<String> {
    let advertise = cfg.advertise_address.clone().or_else(|| {
        listener
            .and_then(|l| l.local_addr().ok())
            .filter(|a| !a.ip().is_unspecified())
            .map(|a| a.to_string())
    });
    if cfg.registry.enabled && advertise.is_none() {
        info!("no address to advertise (HTTP off, or bound to an unspecified address): other copies cannot wake this one; set `advertise_address`");
    }
    advertise
}

/// The election's settings.
pub fn election_config(
    cfg: &Config,
    identity: &str,
    incarnation: &str,
    advertise: Option<String>,
) -> ElectionConfig {
    ElectionConfig {
        identity: identity.to_string(),
        election: cfg.election.clone(),
        key: cfg.lease_key(),
        floor_key: floor_key(&cfg.lease_key()),
        lease_duration: cfg.timing.lease_duration,
        renew_deadline: cfg.timing.renew_deadline,
        retry_period: cfg.timing.retry_period,
        advertise_address: advertise,
        jitter: true,
        step_down_cooloff: cfg.timing.step_down_cooloff,
        release_wait: cfg.child_kill_grace() + Duration::from_secs(1),
        rank_delay: rank_delay_for(cfg.timing.retry_period),
        // Copies not named as successors watch one that is, over HTTP, and
        // read the lease once a lease (peers::watch); only with the registry,
        // which names successors and their addresses.
        far_poll: cfg.registry.enabled.then_some(cfg.timing.lease_duration),
        incarnation: incarnation.to_string(),
        health: crate::lease::election::HealthPolicy {
            hold_down: cfg.health.hold_down(),
            fail_fast: cfg.health.fail_fast,
            release_when_none: cfg.health.when_none_healthy
                == crate::config::WhenNoneHealthy::Release,
            grace: health_grace(cfg),
        },
    }
}

/// The candidate registry's settings.
pub fn registry_settings(
    cfg: &Config,
    identity: &str,
    incarnation: &str,
    advertise: Option<String>,
) -> registry::RegistrySpec {
    registry::RegistrySpec {
        prefix: cfg.registry_prefix(),
        election: cfg.election.clone(),
        identity: identity.to_string(),
        address: advertise,
        host: gethostname::gethostname().to_string_lossy().into_owned(),
        refresh: cfg.registry.refresh,
        list_interval: cfg.registry.list_interval,
        // HTTP only, no S3 cost: often enough that a dead candidate is
        // dropped before it matters.
        check_interval: (cfg.timing.retry_period * 2)
            .clamp(Duration::from_secs(1), Duration::from_secs(10))
            .min(cfg.registry.list_interval),
        incarnation: incarnation.to_string(),
        request_timeout: cfg.s3.request_timeout,
        health_grace: health_grace(cfg),
    }
}

/// How long after turning unhealthy a leader's successor check must come
/// to count: one health-check interval (zero without a check).
fn health_grace(cfg: &Config) -> Duration {
    if cfg.health.enabled() {
        cfg.health.interval
    } else {
        Duration::ZERO
    }
}

/// `run --once --no-wait`: resolves once the lease is seen held by another
/// copy that looks alive ([`other_holder_live`]). The caller stops asking
/// once its program has started.
pub async fn another_leads(rx: &mut watch::Receiver<State>, identity: &str, lease: Duration) {
    loop {
        if other_holder_live(
            &rx.borrow_and_update(),
            identity,
            lease,
            std::time::SystemTime::now(),
        ) {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Whether the lease, as last read, is held by another copy that looks
/// alive: its last renewal is less than two lease durations old by the
/// wall clock. The wall clock only decides whether `--no-wait` *waits* (a
/// record left by a crashed holder is taken over, by the usual rule, after
/// a full lease on our own clock); it never decides a takeover. A record
/// without a readable renewal time counts as alive. A record naming this
/// copy's identity while this copy does not lead was written by another
/// process with the same identity (two cron runs on one host), so it counts
/// too.
pub fn other_holder_live(
    s: &State,
    identity: &str,
    lease: Duration,
    now: std::time::SystemTime,
) -> bool {
    let ours = s.role == Role::Leader && s.leader.as_deref() == Some(identity);
    if !s.ready || s.leader.is_none() || ours {
        return false;
    }
    let renewed = s
        .renewed_at
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
    renewed.is_none_or(|r| r + 2 * lease > now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::work::hooks::tests::st;
    use std::time::SystemTime;

    /// `--no-wait` gives up on a live holder, waits on a record its holder
    /// stopped renewing long ago (the takeover rule decides then), and
    /// never gives up on its own leadership or on an empty lease.
    #[test]
    fn no_wait_gives_up_only_on_another_live_holder() {
        let lease = Duration::from_secs(10);
        let now = SystemTime::now();
        let at = |ago: u64| {
            let mut s = st(Role::Follower, Some("other"), 3, false);
            s.renewed_at =
                Some(humantime::format_rfc3339_millis(now - Duration::from_secs(ago)).to_string());
            s
        };
        assert!(other_holder_live(&at(1), "me", lease, now));
        assert!(other_holder_live(&at(19), "me", lease, now));
        assert!(!other_holder_live(&at(21), "me", lease, now));
        let mut unreadable = at(1);
        unreadable.renewed_at = Some("yesterday".into());
        assert!(other_holder_live(&unreadable, "me", lease, now));
        let mut not_read = at(1);
        not_read.ready = false;
        assert!(!other_holder_live(&not_read, "me", lease, now));
        let mut nobody = at(1);
        nobody.leader = None;
        assert!(!other_holder_live(&nobody, "me", lease, now));
        // Our identity: ours only while we lead; else another process's.
        assert!(other_holder_live(&at(1), "other", lease, now));
        let mut leading = at(1);
        leading.role = Role::Leader;
        assert!(!other_holder_live(&leading, "other", lease, now));
        assert!(other_holder_live(&leading, "me", lease, now));
    }
}
