//! Running the health check: a command (exit 0 = healthy) or an HTTP URL
//! (2xx = healthy), every `interval`, each run bounded by `timeout`, in a
//! task of its own. The verdict ([`super::verdict`]) and a short history go
//! out on a `watch` channel as a [`Report`]; the election reads it and
//! never waits on a check.
//!
//! Invariants:
//! - a command runs as hooks do: its own process group, stdin /dev/null,
//!   stdout and stderr logged line by line (`source = "health"`), no stray
//!   descriptors, under the guard (it dies with the daemon), and its whole
//!   group is killed at the timeout;
//! - a check never overlaps the next one: the next starts `interval` after
//!   the last one started, or at once when it ran longer;
//! - each change of verdict is logged once, counted in the metrics and kept
//!   in the report's history (the last [`HISTORY`] changes).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::verdict::{Tracker, Verdict};
use crate::lease::record::wall_now;
use crate::work::procs;

/// Changes of verdict kept in the report.
pub const HISTORY: usize = 10;
/// Between SIGTERM and SIGKILL for a check that timed out.
const KILL_GRACE: Duration = Duration::from_millis(500);

/// What is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// An argument list, as hooks take it; exit 0 = healthy.
    Command {
        argv: Vec<String>,
        working_dir: Option<PathBuf>,
    },
    /// `http://host:port/path`; any 2xx = healthy.
    Http { address: String, path: String },
}

/// The check's settings, resolved from `health:`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// Environment a command gets besides the daemon's own
    /// (`S3_ELECTOR_IDENTITY`, `S3_ELECTOR_ELECTION`).
    pub env: Vec<(String, String)>,
}

/// One change of verdict.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    /// Wall-clock time, RFC 3339.
    pub at: String,
    pub verdict: Verdict,
    /// The result that made it: `exit 3`, `HTTP 503`, `timed out after 2s`.
    pub detail: String,
}

/// What the check says, for the election and every surface.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub verdict: Verdict,
    /// The last result: `exit 0`, `HTTP 200`, `exit 3`, `timed out after 2s`.
    pub last: Option<String>,
    /// Checks run since start.
    pub checks: u64,
    /// Changes of verdict since start (the first verdict counts).
    pub transitions: u64,
    /// The last [`HISTORY`] changes, oldest first.
    pub history: Vec<Change>,
}

impl Report {
    pub fn new() -> Report {
        Report {
            verdict: Verdict::Unknown,
            last: None,
            checks: 0,
            transitions: 0,
            history: Vec::new(),
        }
    }
}

impl Default for Report {
    fn default() -> Self {
        Report::new()
    }
}

/// `health.http_url` as the address and path to ask: `http://host:port/path`
/// (port 80 when none is given). Plain HTTP only: the check is meant for a
/// local endpoint of the guarded service.
pub fn parse_url(url: &str) -> Result<Probe, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| {
        format!("`{url}` is not a URL ({e}); write e.g. http://127.0.0.1:8080/healthz")
    })?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "`{url}` is not an http:// URL; the check speaks plain HTTP to a local endpoint (write e.g. http://127.0.0.1:8080/healthz)"
        ));
    }
    let Some(auth) = uri.authority() else {
        return Err(format!(
            "`{url}` names no host; write e.g. http://127.0.0.1:8080/healthz"
        ));
    };
    if auth.as_str().contains('@') {
        return Err(format!("`{url}` carries credentials; the check sends none"));
    }
    let address = format!("{}:{}", auth.host(), auth.port_u16().unwrap_or(80));
    let path = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    Ok(Probe::Http { address, path })
}

/// The check `health:` describes, or `None` when none is configured.
pub fn settings_of(h: &crate::config::HealthConfig) -> Option<Settings> {
    let probe = match (&h.command, &h.http_url) {
        (Some(argv), _) => Probe::Command {
            argv: argv.clone(),
            working_dir: h.working_dir.clone(),
        },
        (None, Some(u)) => parse_url(u).ok()?,
        (None, None) => return None,
    };
    Some(Settings {
        probe,
        interval: h.interval,
        timeout: h.timeout(),
        rise: h.rise,
        fall: h.fall,
        env: Vec::new(),
    })
}

/// Run the check once. `Ok` (healthy) or `Err`, each with the result in a
/// few words. `guard` is the `s3-elector` executable to run a command under.
pub async fn run_once(
    probe: &Probe,
    timeout: Duration,
    guard: Option<&Path>,
    env: &[(String, String)],
) -> Result<String, String> {
    match probe {
        Probe::Http { address, path } => {
            match crate::peers::client::request(address, hyper::Method::GET, path, timeout).await {
                Ok(a) if a.is_success() => Ok(format!("HTTP {}", a.status)),
                Ok(a) => Err(format!("HTTP {}", a.status)),
                Err(crate::peers::client::PeerError::Timeout(_)) => Err(format!(
                    "timed out after {}",
                    humantime::format_duration(timeout)
                )),
                Err(e) => Err(format!("GET http://{address}{path}: {e}")),
            }
        }
        Probe::Command { argv, working_dir } => {
            run_command(argv, working_dir.as_deref(), timeout, guard, env).await
        }
    }
}

async fn run_command(
    argv: &[String],
    working_dir: Option<&Path>,
    timeout: Duration,
    guard: Option<&Path>,
    env: &[(String, String)],
) -> Result<String, String> {
    let mut p = procs::command(guard, argv, KILL_GRACE, timeout + KILL_GRACE)
        .map_err(|e| format!("cannot prepare the check's guard: {e}"))?;
    p.cmd
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("S3_ELECTOR_EVENT", "health_check")
        .process_group(0)
        .kill_on_drop(true);
    if let Some(d) = working_dir {
        p.cmd.current_dir(d);
    }
    let (mut child, guard_pipe, guarded_stderr) = p
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", argv[0]))?;
    let Some(pid) = child.id() else {
        return Err("it ended before it could be watched".into());
    };
    let pgid = pid as i32;
    procs::register(pgid);
    let out = child
        .stdout
        .take()
        .map(|o| tokio::spawn(procs::forward(o, "health", "stdout")));
    let err = match guarded_stderr {
        Some(e) => Some(tokio::spawn(procs::forward(e, "health", "stderr"))),
        None => child
            .stderr
            .take()
            .map(|e| tokio::spawn(procs::forward(e, "health", "stderr"))),
    };
    let status = tokio::select! {
        r = child.wait() => {
            procs::signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
            procs::unregister(pgid);
            r.map_err(|e| format!("cannot wait for it: {e}"))
        }
        _ = tokio::time::sleep(timeout) => {
            procs::stop_group(&mut child, pgid, KILL_GRACE, guard.is_some(), || {
                warn!(timeout = ?timeout, "health check timed out; stopping its process group");
            })
            .await;
            Err(format!("timed out after {}", humantime::format_duration(timeout)))
        }
    };
    drop(guard_pipe);
    let drain = Instant::now() + Duration::from_millis(200);
    for t in [out, err].into_iter().flatten() {
        let _ = tokio::time::timeout_at(drain, t).await;
    }
    let s = status?;
    let what = procs::describe_exit(s);
    if s.success() {
        Ok(what)
    } else {
        Err(what)
    }
}

/// Check every `interval` until `shutdown`, publishing each result on `tx`.
pub async fn run(
    settings: Settings,
    guard: Option<PathBuf>,
    tx: watch::Sender<Report>,
    shutdown: CancellationToken,
) {
    let mut tracker = Tracker::new(settings.rise, settings.fall);
    let mut next = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = sleep_until(next) => {}
        }
        let started = Instant::now();
        next = started + settings.interval;
        let result = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            r = run_once(&settings.probe, settings.timeout, guard.as_deref(), &settings.env) => r,
        };
        let ok = result.is_ok();
        let detail = match result {
            Ok(d) | Err(d) => d,
        };
        let before = tracker.verdict();
        let change = tracker.note(ok);
        if let Some(v) = change {
            match v {
                Verdict::Healthy => {
                    info!(event = "health", verdict = v.name(), result = %detail, "health check: healthy")
                }
                _ => {
                    warn!(event = "health", verdict = v.name(), previous = before.name(), result = %detail,
                        "health check: unhealthy; this copy hands the lease over to a healthy one and does not take it while one is live")
                }
            }
        }
        tx.send_modify(|r| {
            r.verdict = tracker.verdict();
            r.checks += 1;
            r.last = Some(detail.clone());
            if let Some(v) = change {
                r.transitions += 1;
                r.history.push(Change {
                    at: wall_now(),
                    verdict: v,
                    detail: detail.clone(),
                });
                if r.history.len() > HISTORY {
                    r.history.remove(0);
                }
            }
        });
    }
}
