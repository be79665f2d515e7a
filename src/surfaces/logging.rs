//! Logs: `tracing` to stderr, as text or JSON, with a `target=level` filter.
//!
//! Every state change is one INFO/WARN line with a stable `event` field
//! (documented in the README); routine renewals are DEBUG.
//!
//! # Logging never blocks the election
//! Lines go through a bounded queue to one writer thread (tracing-appender's
//! non-blocking writer, lossy). When stderr's reader stalls (journald or
//! containerd stuck, a full pipe), only that thread blocks: the queue fills,
//! further lines are dropped and counted, and the election, the supervisor
//! and the kill paths go on. The count is the metric
//! `s3_elector_log_lines_dropped_total`, and once lines flow again one WARN
//! line (`event = "log_lines_dropped"`) says how many were lost.

use std::sync::OnceLock;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

/// Lines queued for stderr before new ones are dropped (a few MiB at most).
pub const QUEUED_LINES: usize = 8192;

/// How often [`report_drops`] looks at the drop count.
const DROP_CHECK: Duration = Duration::from_secs(1);

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Keeps the writer thread; dropping it flushes what is queued (for at
/// most about a second, even when stderr is stalled).
pub struct LogGuard {
    _worker: WorkerGuard,
}

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Log lines dropped so far because stderr did not keep up.
pub fn dropped_lines() -> u64 {
    DROPPED.get().map_or(0, |c| c.dropped_lines() as u64)
}

/// Set up `tracing`. The filter syntax is `target=level,...,default_level`
/// (e.g. `s3_elector=debug,info`); a bad filter is reported on stderr and
/// `info` is used instead.
pub fn init(format: LogFormat, filter: &str) -> LogGuard {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let targets: Targets = filter.parse().unwrap_or_else(|e| {
        eprintln!(
            "s3-elector: --log / S3_ELECTOR_LOG `{filter}` is not a log filter ({e}); write e.g. `info` or `s3_elector=debug,info`. Using `info`."
        );
        Targets::new().with_default(tracing::Level::INFO)
    });
    let (writer, worker) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    let _ = DROPPED.set(writer.error_counter());
    // Colour only for a person at a terminal (never for journald, `kubectl
    // logs` or a file), and never when NO_COLOR is set (no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(colour);
    let registry = tracing_subscriber::registry();
    match format {
        LogFormat::Json => registry
            .with(layer.json().flatten_event(true).with_filter(targets))
            .init(),
        LogFormat::Text => registry.with(layer.with_filter(targets)).init(),
    }
    LogGuard { _worker: worker }
}

/// Until `shutdown`: when lines were dropped and then stop being dropped
/// (stderr flows again), say once how many were lost.
pub async fn report_drops(shutdown: CancellationToken) {
    let mut reported = dropped_lines();
    let mut last = reported;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(DROP_CHECK) => {}
        }
        let now = dropped_lines();
        if now == last && now > reported {
            warn!(
                event = "log_lines_dropped",
                dropped = now - reported,
                dropped_total = now,
                "stderr did not keep up (a stalled journald, container runtime or pipe); log lines were dropped, the election was not held up"
            );
            reported = now;
        }
        last = now;
    }
}
