//! Child processes in their own process groups: spawning, stopping the
//! whole group (SIGTERM, then SIGKILL after a grace period), and a registry
//! of live groups so that an emergency exit can kill them all first.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::Child;
use tracing::warn;

fn registry() -> &'static Mutex<HashSet<i32>> {
    static GROUPS: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    GROUPS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Remember a live process group.
pub fn register(pgid: i32) {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(pgid);
}

/// Forget a process group that is gone.
pub fn unregister(pgid: i32) {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&pgid);
}

/// SIGKILL every registered group (used before an immediate exit).
pub fn kill_all_now() {
    let groups: Vec<i32> = registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .copied()
        .collect();
    for g in groups {
        signal_group(g, Signal::SIGKILL);
    }
}

/// Send `sig` to a whole group; a group that is already gone is fine.
/// Never signals pgid <= 1 (0 would be our own group, 1 init's).
pub fn signal_group(pgid: i32, sig: Signal) {
    if pgid <= 1 {
        return;
    }
    if let Err(e) = killpg(Pid::from_raw(pgid), sig) {
        if e != nix::errno::Errno::ESRCH {
            warn!(pgid, signal = %sig, error = %e, "cannot signal process group");
        }
    }
}

/// Stop a child and its group: SIGTERM, wait up to `grace`, then SIGKILL.
/// Returns once the child is reaped. Stragglers in the group get SIGKILL.
pub async fn stop_group(
    child: &mut Child,
    pgid: i32,
    grace: Duration,
) -> Option<std::process::ExitStatus> {
    signal_group(pgid, Signal::SIGTERM);
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(r) => r.ok(),
        Err(_) => {
            signal_group(pgid, Signal::SIGKILL);
            child.wait().await.ok()
        }
    };
    // The leader may have exited while its children linger.
    signal_group(pgid, Signal::SIGKILL);
    unregister(pgid);
    status
}
