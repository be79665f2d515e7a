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
//! - subscribers are woken only when the verdict changes (a check every
//!   200 ms must not make the election read the lease every 200 ms);
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
pub struct CheckSpec {
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
///
/// `verdict` is the copy's health as the election and the other copies
/// see it: the check's own verdict, except that a copy whose leader-only
/// work is failing (`work_failing`: `on_acquired` under
/// `hooks.on_acquired_failure: release`) is unhealthy until it succeeds.
/// Without a check configured, the copy is healthy while its work is not
/// failing.
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
    /// Leader-only work failing in a row, in words: the copy counts as
    /// unhealthy until it succeeds ([`crate::work::backoff`]).
    pub work_failing: Option<String>,
    /// The check's own verdict; `None`: no check is configured.
    #[serde(skip)]
    pub check: Option<Verdict>,
}

impl Report {
    /// A copy with a health check, before its first result.
    pub fn new() -> Report {
        Report {
            verdict: Verdict::Unknown,
            last: None,
            checks: 0,
            transitions: 0,
            history: Vec::new(),
            work_failing: None,
            check: Some(Verdict::Unknown),
        }
    }

    /// A copy without a health check: healthy while its work is not failing.
    pub fn without_check() -> Report {
        Report {
            verdict: Verdict::Healthy,
            check: None,
            ..Report::new()
        }
    }

    /// The verdict the check's and the work's states make.
    fn effective(&self) -> Verdict {
        match (&self.work_failing, self.check) {
            (Some(_), _) => Verdict::Unhealthy,
            (None, Some(v)) => v,
            (None, None) => Verdict::Healthy,
        }
    }

    /// Bring `verdict` in line after a change of the check or the work;
    /// a change is counted and kept in the history with `detail`.
    /// Returns the new verdict when it changed.
    pub fn settle(&mut self, detail: &str) -> Option<Verdict> {
        let v = self.effective();
        if v == self.verdict {
            return None;
        }
        self.verdict = v;
        self.transitions += 1;
        self.history.push(Change {
            at: wall_now(),
            verdict: v,
            detail: detail.to_string(),
        });
        if self.history.len() > HISTORY {
            self.history.remove(0);
        }
        Some(v)
    }
}

impl Default for Report {
    fn default() -> Self {
        Report::new()
    }
}

/// Leader-only work started failing (`Some`, in words) or succeeded again
/// (`None`): the copy's verdict follows, and subscribers (the election,
/// the registry's check) are woken only when the verdict changes.
pub fn set_work_failing(tx: &watch::Sender<Report>, failing: Option<String>) {
    tx.send_if_modified(|r| {
        let detail = failing
            .clone()
            .unwrap_or_else(|| "leader-only work succeeded".to_string());
        r.work_failing = failing;
        let change = r.settle(&detail);
        match change {
            Some(Verdict::Unhealthy) => warn!(
                event = "health",
                verdict = "unhealthy",
                result = %detail,
                "counting as unhealthy while leader-only work fails: this copy hands the lease to a healthy copy if one is live, and does not take it while one is"
            ),
            Some(v) => info!(
                event = "health",
                verdict = v.name(),
                "leader-only work succeeded; this copy's health follows its check again"
            ),
            None => {}
        }
        // New words alone show at the next publication of the state.
        change.is_some()
    });
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
pub fn spec_of(h: &crate::config::HealthConfig) -> Option<CheckSpec> {
    let probe = match (&h.command, &h.http_url) {
        (Some(argv), _) => Probe::Command {
            argv: argv.clone(),
            working_dir: h.working_dir.clone(),
        },
        (None, Some(u)) => parse_url(u).ok()?,
        (None, None) => return None,
    };
    Some(CheckSpec {
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
    let mut c = procs::start_logged(p, "health").map_err(|e| match e {
        procs::StartError::Spawn(e) => format!("cannot start {:?}: {e}", argv[0]),
        procs::StartError::Gone => "it ended before it could be watched".into(),
    })?;
    let pgid = c.pgid;
    let status = tokio::select! {
        r = c.child.wait() => {
            procs::signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
            procs::unregister(pgid);
            r.map_err(|e| format!("cannot wait for it: {e}"))
        }
        _ = tokio::time::sleep(timeout) => {
            procs::stop_group(&mut c.child, pgid, KILL_GRACE, guard.is_some(), || {
                warn!(timeout = ?timeout, "health check timed out; stopping its process group");
            })
            .await;
            Err(format!("timed out after {}", humantime::format_duration(timeout)))
        }
    };
    c.guard = None;
    c.drain(Duration::from_millis(200)).await;
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
    settings: CheckSpec,
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
        // Subscribers (the election) are woken only by a change of
        // verdict; the count and the last result are updated in place and
        // show at the next publication of the state (at least every poll
        // or renewal).
        tx.send_if_modified(|r| {
            r.check = Some(tracker.verdict());
            r.checks += 1;
            r.last = Some(detail.clone());
            r.settle(&detail).is_some()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Probe {
        Probe::Command {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            working_dir: None,
        }
    }

    fn alive_with(marker: &str) -> bool {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
    }

    #[tokio::test]
    async fn a_check_gives_its_result_and_one_past_its_timeout_is_killed_with_its_group() {
        let ok = run_once(&sh("exit 0"), Duration::from_secs(5), None, &[]).await;
        assert_eq!(ok, Ok("exit 0".into()));
        let bad = run_once(&sh("exit 3"), Duration::from_secs(5), None, &[]).await;
        assert_eq!(bad, Err("exit 3".into()));
        let env = [("S3_ELECTOR_IDENTITY".to_string(), "me".to_string())];
        let id = run_once(
            &sh("test \"$S3_ELECTOR_IDENTITY\" = me"),
            Duration::from_secs(5),
            None,
            &env,
        )
        .await;
        assert!(id.is_ok(), "the check gets the identity: {id:?}");
        let t = Instant::now();
        let slow = run_once(
            &sh("sleep 31.4159 & sleep 31.4159"),
            Duration::from_millis(200),
            None,
            &[],
        )
        .await;
        assert_eq!(slow, Err("timed out after 200ms".into()));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        for _ in 0..100 {
            if !alive_with("31.4159") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive_with("31.4159"), "the check's whole group is killed");
        let missing = run_once(
            &Probe::Command {
                argv: vec!["/nonexistent/check".into()],
                working_dir: None,
            },
            Duration::from_secs(1),
            None,
            &[],
        )
        .await;
        assert!(
            missing.as_ref().is_err_and(|e| e.contains("cannot start")),
            "{missing:?}"
        );
    }

    #[tokio::test]
    async fn the_election_is_woken_only_by_a_change_of_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("sick");
        let settings = CheckSpec {
            probe: sh(&format!("test ! -e {}", flag.display())),
            interval: Duration::from_millis(30),
            timeout: Duration::from_secs(2),
            rise: 1,
            fall: 2,
            env: Vec::new(),
        };
        let (tx, mut rx) = watch::channel(Report::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(settings, None, tx, stop.clone()));
        rx.changed().await.unwrap();
        assert_eq!(rx.borrow_and_update().verdict, Verdict::Healthy);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            !rx.has_changed().unwrap(),
            "no change of verdict, no wake-up"
        );
        assert!(
            rx.borrow().checks >= 3,
            "checks went on: {}",
            rx.borrow().checks
        );
        std::fs::write(&flag, b"").unwrap();
        rx.changed().await.unwrap();
        let r = rx.borrow_and_update().clone();
        assert_eq!(r.verdict, Verdict::Unhealthy);
        assert_eq!(r.transitions, 2);
        assert_eq!(r.last.as_deref(), Some("exit 1"));
        assert_eq!(
            r.history.iter().map(|c| c.verdict).collect::<Vec<_>>(),
            vec![Verdict::Healthy, Verdict::Unhealthy]
        );
        stop.cancel();
        task.await.unwrap();
    }

    /// A failing on_acquired makes a copy unhealthy until it succeeds,
    /// with a check or without one; the verdict then follows the check
    /// again. Subscribers are woken only by a change of verdict.
    #[test]
    fn failing_work_makes_the_verdict_unhealthy_until_it_succeeds() {
        use Verdict::*;
        let (tx, mut rx) = watch::channel(Report::without_check());
        assert_eq!(rx.borrow().verdict, Healthy, "no check: healthy");
        set_work_failing(&tx, Some("on_acquired failed (1 in a row)".into()));
        assert!(rx.has_changed().unwrap());
        let r = rx.borrow_and_update().clone();
        assert_eq!((r.verdict, r.transitions), (Unhealthy, 1));
        assert_eq!(r.history[0].detail, "on_acquired failed (1 in a row)");
        set_work_failing(&tx, Some("on_acquired failed (2 in a row)".into()));
        assert!(
            !rx.has_changed().unwrap(),
            "no change of verdict, no wake-up"
        );
        assert_eq!(
            rx.borrow().work_failing.as_deref(),
            Some("on_acquired failed (2 in a row)"),
            "the words are kept for the next publication"
        );
        set_work_failing(&tx, None);
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().verdict, Healthy);

        // With a check, the check's verdict is kept underneath.
        let mut r = Report::new();
        r.check = Some(Healthy);
        assert_eq!(r.settle("exit 0"), Some(Healthy));
        let (tx, rx) = watch::channel(r);
        set_work_failing(&tx, Some("on_acquired failed".into()));
        assert_eq!(rx.borrow().verdict, Unhealthy);
        tx.send_modify(|r| {
            r.check = Some(Unhealthy);
            assert_eq!(r.settle("exit 1"), None, "unhealthy already");
        });
        set_work_failing(&tx, None);
        assert_eq!(rx.borrow().verdict, Unhealthy, "the check still says so");
        tx.send_modify(|r| {
            r.check = Some(Healthy);
            assert_eq!(r.settle("exit 0"), Some(Healthy));
        });
        assert_eq!(rx.borrow().transitions, 3);
        let json = serde_json::to_value(&*rx.borrow()).unwrap();
        assert_eq!(json["work_failing"], serde_json::Value::Null);
        assert!(json.get("check").is_none(), "{json}");
        assert_eq!(
            Report::new().settle("x"),
            None,
            "unknown until the first result"
        );
    }

    /// The history keeps the last HISTORY changes, oldest first.
    #[test]
    fn the_history_keeps_the_last_changes() {
        let mut r = Report::new();
        for i in 0..HISTORY + 3 {
            r.check = Some(if i % 2 == 0 {
                Verdict::Healthy
            } else {
                Verdict::Unhealthy
            });
            assert!(r.settle(&format!("result {i}")).is_some());
            assert_eq!(r.history.len(), (i + 1).min(HISTORY));
        }
        assert_eq!(r.transitions, (HISTORY + 3) as u64);
        assert_eq!(r.history[0].detail, "result 3");
        assert_eq!(
            r.history[HISTORY - 1].detail,
            format!("result {}", HISTORY + 2)
        );
    }

    #[tokio::test]
    async fn an_http_check_is_healthy_on_2xx_only() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            for status in ["503 Service Unavailable", "204 No Content"] {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let body =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = s.write_all(body.as_bytes()).await;
            }
        });
        let p = parse_url(&format!("http://{addr}/healthz?deep=1")).unwrap();
        assert_eq!(
            p,
            Probe::Http {
                address: addr.clone(),
                path: "/healthz?deep=1".into()
            }
        );
        let t = Duration::from_secs(2);
        assert_eq!(run_once(&p, t, None, &[]).await, Err("HTTP 503".into()));
        assert_eq!(run_once(&p, t, None, &[]).await, Ok("HTTP 204".into()));
        assert!(run_once(&p, t, None, &[]).await.is_err(), "nobody listens");
        assert!(parse_url("http://h/x")
            .is_ok_and(|p| matches!(p, Probe::Http { address, .. } if address == "h:80")));
        assert!(parse_url("http://u:p@h:1/").is_err());
    }
}
