//! systemd integration (`Type=notify`): `READY=1` once the conformance probe
//! passed and the HTTP port is bound, `STATUS=` with a one-line summary on
//! every change, and `WATCHDOG=1` only while the election makes progress
//! (a completed poll or renewal within `lease_duration`), so a wedged loop
//! stops the pings and systemd restarts the service. Without
//! `NOTIFY_SOCKET` every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::lease::election::State;

/// Tell systemd the service is ready.
pub fn ready() {
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready]) {
        warn!(error = %e, "cannot notify systemd (READY=1)");
    }
}

/// Tell systemd the service is stopping, and that the stop may take up to
/// `budget` (`EXTEND_TIMEOUT_USEC`), so that `TimeoutStopSec` does not cut
/// a stop the config allows.
pub fn stopping(budget: std::time::Duration) {
    let usec = u32::try_from(budget.as_micros()).unwrap_or(u32::MAX);
    let _ = sd_notify::notify(&[NotifyState::Stopping, NotifyState::ExtendTimeoutUsec(usec)]);
}

/// Keep `STATUS=` and the watchdog up to date until `shutdown`.
pub async fn run(
    mut rx: watch::Receiver<State>,
    lease_duration: Duration,
    started: Instant,
    shutdown: CancellationToken,
) {
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let mut last_status = String::new();
    let mut tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    loop {
        let state = rx.borrow_and_update().clone();
        let summary = state.summary();
        if summary != last_status {
            let _ = sd_notify::notify(&[NotifyState::Status(&summary)]);
            last_status = summary;
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
            _ = tick.tick(), if watchdog.is_some() => {
                let since = state.last_progress.unwrap_or(started);
                if since.elapsed() <= lease_duration {
                    let _ = sd_notify::notify(&[NotifyState::Watchdog]);
                } else {
                    debug!("election made no progress within the lease; withholding WATCHDOG=1");
                }
            }
        }
    }
}
