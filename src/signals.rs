//! OS signals, turned into one enum in one place.
//!
//! The first SIGTERM or SIGINT asks for a graceful stop (a leader releases
//! the lease first). A second one exits the process at once, with the
//! conventional 128 + signal number: the operator asked twice. Hooks and
//! the supervised program are killed (SIGKILL to their groups) before that
//! exit, so nothing is left orphaned. SIGUSR1 asks for a step-down.

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// What a signal asks the daemon to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Stop gracefully: release the lease, then exit 0.
    Stop,
    /// Give up leadership (SIGUSR1) and keep running.
    StepDown,
}

/// Start listening. Returns a channel of [`Signal`]s; a second stop signal
/// never reaches it, it ends the process.
pub fn listen() -> std::io::Result<mpsc::UnboundedReceiver<Signal>> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGUSR1])?;
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut stopping = false;
            for sig in signals.forever() {
                if sig == SIGUSR1 {
                    info!("SIGUSR1: stepping down");
                    let _ = tx.send(Signal::StepDown);
                    continue;
                }
                if stopping {
                    // Kill first, then say so: a log call may be slow.
                    crate::work::procs::kill_all_now();
                    warn!(signal = sig, "second stop signal; killed hooks and the supervised program, exiting at once");
                    std::process::exit(128 + sig);
                }
                stopping = true;
                info!(
                    signal = sig,
                    "stop signal; stopping gracefully (send it again to exit at once)"
                );
                let _ = tx.send(Signal::Stop);
            }
        })?;
    Ok(rx)
}
