//! `check`: the config, credentials, bucket, permissions and the store's
//! conditional-write support, then the request cost the timings imply.

use super::{connect, load_with, programs_problems, CheckArgs};
use crate::config::Config;
use crate::cost::Cost;
use crate::daemon::{target, StopBudget};
use crate::exit::{EXIT_CONFIG, EXIT_UNAVAILABLE};
use crate::lease::probe::{self, ProbeError};
use crate::lease::store::StoreError;

pub(super) async fn check(a: CheckArgs) -> i32 {
    let c = a.common;
    let status_file = a.status_file.as_ref().map(|p| p.to_string_lossy());
    let overrides = c
        .overrides()
        .text("http.listen", a.http_listen.as_deref())
        .text("status_file", status_file.as_deref());
    let (cfg, identity) = match load_with(&c, overrides).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    // On this host, what `run` needs and could not have is an error;
    // --offline checks the config alone (it may be meant for another host).
    let mut problems = programs_problems(&cfg);
    if let Some(p) = a.program.first() {
        if let Err(e) = crate::work::procs::find_program(p, None) {
            problems.push(format!("the program after `--`: {e}"));
        }
    }
    if let Some(path) = &cfg.status_file {
        if let Err(e) = writable_dir(path) {
            problems.push(format!("config error: `status_file`: {e}"));
        }
    }
    if cfg.http.enabled {
        let addr = cfg.http.listen_addr();
        if let Err(e) = std::net::TcpListener::bind(&addr) {
            // A copy already running with this config holds it: say so
            // rather than fail a check of a healthy host.
            out!("warning: `http.listen` {addr} cannot be bound ({e}); `run` would fail to start unless it is the running copy's own address");
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            if a.offline {
                out!("warning: {p}");
            } else {
                eprintln!("s3-elector: {p}");
            }
        }
        if !a.offline {
            return EXIT_CONFIG;
        }
    }
    out!("config: ok ({})", c.source());
    out!("identity: {identity}");
    out!("lease: {}", target(&cfg));
    print_health(&cfg, &identity).await;
    if a.offline {
        out!("network checks: SKIPPED (--offline): credentials, bucket, permissions and the conformance probe were not checked");
        if cfg.kubernetes.leader_label.is_some() {
            out!("kubernetes: SKIPPED (--offline): the pod and its permissions were not checked");
        }
        print_cost(&cfg);
        print_stop_budget(&cfg);
        out!("check: passed offline (the config; the network part was skipped)");
        return 0;
    }
    let store = match connect(&cfg).await {
        Ok(s) => {
            // Found is not valid: the store's answer to a signed request
            // gives the verdict, below.
            out!("credentials: found");
            s
        }
        Err(code) => return code,
    };
    // One retry for a transient failure: the first request may only have
    // taught the client the store's clock.
    let mut result = probe::run(&store, &cfg.lease_key(), &identity).await;
    if matches!(
        result,
        Err(ProbeError::Store(
            StoreError::Transient(_) | StoreError::Throttled(_)
        ))
    ) {
        result = probe::run(&store, &cfg.lease_key(), &identity).await;
    }
    let code = match result {
        Ok(r) => {
            for s in &r.steps {
                out!("probe: {s}");
            }
            out!("credentials: accepted by the store");
            out!("conformance probe: passed");
            if let Some(w) = r.cleanup_warning {
                out!("warning: {w}");
            }
            0
        }
        Err(e) => {
            if let ProbeError::Store(StoreError::AccessDenied { code, .. }) = &e {
                out!("credentials: refused or not allowed by the store ({code})");
            } else {
                out!("credentials: not confirmed (no answer from the store)");
            }
            eprintln!("s3-elector: check failed for {}: {e}", target(&cfg));
            EXIT_UNAVAILABLE
        }
    };
    let code = match check_kubernetes(&cfg).await {
        Ok(()) => code,
        Err((message, exit)) => {
            eprintln!("s3-elector: {message}");
            if code == 0 {
                exit
            } else {
                code
            }
        }
    };
    print_cost(&cfg);
    print_stop_budget(&cfg);
    // The verdict comes last, where `check | tail -1` finds it.
    if code == 0 {
        out!("check: passed");
    } else {
        out!("check: FAILED (exit {code}; the reason is on stderr above)");
    }
    code
}

/// With `health:`: run the check once, as the daemon would (under its
/// guard, with its timeout), and print the result. An unhealthy result is
/// no error of `check`: the daemon runs, and hands over or waits.
async fn print_health(cfg: &Config, identity: &str) {
    let Some(h) = crate::health::check::spec_of(&cfg.health) else {
        return;
    };
    let env = [
        ("S3_ELECTOR_IDENTITY".to_string(), identity.to_string()),
        ("S3_ELECTOR_ELECTION".to_string(), cfg.election.clone()),
    ];
    let guard = std::env::current_exe().ok();
    let what = match &h.probe {
        crate::health::check::Probe::Command { argv, .. } => format!("{argv:?}"),
        crate::health::check::Probe::Http { address, path } => {
            format!("GET http://{address}{path}")
        }
    };
    match crate::health::check::run_once(&h.probe, h.timeout, guard.as_deref(), &env).await {
        Ok(r) => out!("health: healthy ({r}) from {what}"),
        Err(r) => out!(
            "health: UNHEALTHY ({r}) from {what}; the daemon would not take another copy's lease while a healthy one is live, and would hand its own over. Under the systemd unit the check runs in its sandbox (docs/health.md)"
        ),
    }
}

/// With `kubernetes.leader_label`: this pod is known, and the API lets it
/// list the election's pods and patch its own (a dry run, nothing changes).
async fn check_kubernetes(cfg: &Config) -> Result<(), (String, i32)> {
    let api = match crate::daemon::pod_label_api(cfg) {
        Ok(Some(api)) => api,
        Ok(None) => return Ok(()),
        Err(e) => return Err((format!("kubernetes: {e}"), EXIT_CONFIG)),
    };
    let t = api.api.target().clone();
    let unavailable =
        |e: crate::surfaces::kube::KubeError| (format!("kubernetes: {e}"), EXIT_UNAVAILABLE);
    let pods = api.api.pods(&api.pod_selector).await.map_err(unavailable)?;
    if !pods.contains(&t.pod) {
        return Err((
            format!(
                "kubernetes: this pod {}/{} does not match `kubernetes.pod_selector` {} ({} pods do); a leader that cannot see its own pod keeps relabeling itself and never clears the others: make the selector match this election's pods",
                t.namespace, t.pod, api.pod_selector, pods.len()
            ),
            EXIT_CONFIG,
        ));
    }
    api.api
        .try_set_label(&t.pod, &api.label)
        .await
        .map_err(unavailable)?;
    out!(
        "kubernetes: pod {}/{} at {}, one of {} pods matching {}; may list them and patch its own label {}: ok",
        t.namespace, t.pod, t.api_url, pods.len(), api.pod_selector, api.label
    );
    Ok(())
}

/// The stop timeout of the shipped systemd unit and of the Helm chart's
/// default pod (`terminationGracePeriodSeconds`).
const SHIPPED_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn print_stop_budget(cfg: &Config) {
    let alone = StopBudget::of(cfg, false);
    let with = StopBudget::of(cfg, true);
    out!("graceful stop: at most {}", alone.describe());
    out!(
        "graceful stop with a supervised program (run -- PROGRAM): at most {}",
        with.describe()
    );
    if with.total() > SHIPPED_STOP_TIMEOUT {
        let secs = with.total().as_secs_f64().ceil() as u64 + 5;
        out!(
            "warning: a graceful stop may take longer than 30s, the shipped systemd unit's TimeoutStopSec and a pod's default terminationGracePeriodSeconds. \
             Under systemd the daemon extends the timeout itself (EXTEND_TIMEOUT_USEC); in Kubernetes set terminationGracePeriodSeconds to at least {secs}, \
             or shorten hooks.on_lost.timeout, child.kill_grace or s3.request_timeout"
        );
    }
}

fn print_cost(cfg: &Config) {
    let t = &cfg.timing;
    let registry = cfg
        .registry
        .enabled
        .then_some(crate::cost::RegistrySchedule {
            list_interval: cfg.registry.list_interval,
            refresh: cfg.registry.refresh,
        });
    let cost = Cost::new(t.retry_period, t.lease_duration, registry);
    out!(
        "requests: leader {:.0} PUT/hour and {:.0} LIST/hour, each follower {:.0} GET/hour and {:.0} PUT/hour (retry_period {}{})",
        cost.leader_puts_per_hour,
        cost.leader_lists_per_hour,
        cost.follower_gets_per_hour,
        cost.follower_puts_per_hour,
        humantime::format_duration(t.retry_period),
        if registry.is_some() { ", candidate registry on" } else { "" }
    );
    out!(
        "cost (S3 Standard, us-east-1, 30 days): leader ${:.2}/month, each follower ${:.2}/month, 3 copies ${:.2}/month",
        cost.leader_usd_month,
        cost.follower_usd_month,
        cost.total_usd_month(3)
    );
    if registry.is_some() {
        out!(
            "beyond 9 copies: each copy the leader does not name as a successor reads {:.0} GET/hour (${:.2}/month); 100 copies ${:.2}/month",
            cost.far_gets_per_hour,
            cost.far_usd_month,
            cost.total_usd_month(100)
        );
    }
}

/// Can the daemon create files next to `path` (the status file is written
/// as a temporary file in its directory, then renamed)?
fn writable_dir(path: &std::path::Path) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let probe = dir.join(format!(".s3-elector-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| {
            format!(
                "cannot create a file in {} ({e}); create the directory and make it writable by the daemon's user",
                dir.display()
            )
        })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
