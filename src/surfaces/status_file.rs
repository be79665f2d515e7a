//! The status file: a JSON copy of `GET /leader` plus `updated_at`, for
//! shell scripts and node agents.
//!
//! Invariants:
//! - written atomically: a temporary file in the same directory, fsync,
//!   rename over the old one, fsync of the directory; a reader sees the old
//!   or the new content, never a mix;
//! - rewritten on every change of role, leader or term, and at least every
//!   `lease_duration / 2` (so `updated_at` shows the daemon is alive);
//! - on graceful stop a final state (`role: stopped`, not leader) is written;
//! - a write failure is retried on the next change or refresh; the
//!   election never waits for it. While writes fail the failure is a
//!   visible problem: published on [`run`]'s `problem` channel (the HTTP
//!   surface adds it to `/leader`'s `problem` and answers `/readyz` with
//!   503), counted in `s3_elector_status_file_write_errors_total`, and
//!   logged at WARN each time it starts or changes (INFO when it ends).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use tracing::{error, info, warn};

use crate::lease::election::{Role, State};
use crate::lease::record::wall_now;
use crate::surfaces::metrics::Metrics;
use crate::surfaces::problems::{append, joined, Problems};
use crate::surfaces::view::LeaderView;

#[derive(Serialize)]
struct FileView {
    #[serde(flatten)]
    view: LeaderView,
    updated_at: String,
}

/// Write `content` to `path` atomically.
pub fn write_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        // World-readable (0644, less the process umask): it holds no secrets
        // and node agents read it.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn render(state: &State, more: Option<String>) -> Vec<u8> {
    let mut view = LeaderView::new(state, Instant::now());
    view.problem = append(view.problem, more);
    let v = FileView {
        view,
        updated_at: wall_now(),
    };
    let mut b = serde_json::to_vec_pretty(&v).expect("status view serializes");
    b.push(b'\n');
    b
}

/// The parts of the state whose change forces a rewrite.
/// What, when it changes, has the file rewritten at once (the rest waits
/// for the next refresh): the role, the leader, the term, whether this
/// copy leads, the problems, and the health verdict.
type Key = (
    Role,
    Option<String>,
    u64,
    bool,
    Option<String>,
    Option<crate::health::Verdict>,
);

fn key(s: &State, more: &Option<String>) -> Key {
    (
        s.role,
        s.leader.clone(),
        s.term,
        s.is_leader(Instant::now()),
        more.clone(),
        s.health.as_ref().map(|h| h.verdict),
    )
}

/// Keep the file up to date until `shutdown`, then write the final state.
/// `problem` holds why the last write failed, `None` once one succeeds.
pub async fn run(
    path: PathBuf,
    mut rx: watch::Receiver<State>,
    refresh: Duration,
    problems: Problems,
    problem: watch::Sender<Option<String>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut last_key = None;
    let mut next_refresh = Instant::now();
    let mut more_rx = problems.subscribe();
    loop {
        let state = rx.borrow_and_update().clone();
        let more = joined(&more_rx.borrow_and_update());
        let k = key(&state, &more);
        let now = Instant::now();
        if last_key.as_ref() != Some(&k) || now >= next_refresh {
            let p = path.clone();
            let body = render(&state, more);
            let r = tokio::task::spawn_blocking(move || write_atomic(&p, &body)).await;
            let failed = match r {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!(
                    "cannot write the status file {}: {e}; check that its directory exists and is writable by the daemon's user",
                    path.display()
                )),
                Err(e) => Some(format!("the status file writer failed: {e}")),
            };
            match &failed {
                None => last_key = Some(k),
                Some(_) => metrics.count_status_file_error(),
            }
            let changed = problem.send_if_modified(|p| {
                let changed = *p != failed;
                *p = failed.clone();
                changed
            });
            if changed {
                match &failed {
                    Some(m) => {
                        warn!(event = "status_file_failing", path = %path.display(), "{m}; the election goes on")
                    }
                    None => {
                        info!(event = "status_file_ok", path = %path.display(), "status file written again")
                    }
                }
            }
            next_refresh = now + refresh;
        }
        // A leader's view expires at its deadline even if nothing is published.
        let expiry = state.valid_until.filter(|_| state.role == Role::Leader);
        let wake = expiry.map_or(next_refresh, |e| {
            e.min(next_refresh).max(now + Duration::from_millis(1))
        });
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = rx.changed() => if r.is_err() { break },
            _ = more_rx.changed() => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    // Final state: whatever the election says, this copy no longer leads.
    let mut last = rx.borrow().clone();
    last.role = Role::Stopped;
    last.valid_until = None;
    if last.leader.as_deref() == Some(last.identity.as_str()) {
        last.leader = None;
    }
    if let Err(e) = write_atomic(&path, &render(&last, problems.current())) {
        error!(path = %path.display(), error = %e, "cannot write the final status file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_health_verdict_rewrites_the_file_at_once() {
        use crate::health::{Report, Verdict};
        let mut s = crate::work::hooks::tests::st(Role::Follower, Some("b"), 3, false);
        s.health = Some(Report::new());
        let before = key(&s, &None);
        if let Some(h) = s.health.as_mut() {
            h.checks += 5; // results that change nothing wait for the refresh
        }
        assert_eq!(key(&s, &None), before);
        if let Some(h) = s.health.as_mut() {
            h.verdict = Verdict::Unhealthy;
        }
        assert_ne!(key(&s, &None), before);
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("status.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        assert!(write_atomic(&d.path().join("missing/status.json"), b"x").is_err());
    }
}
