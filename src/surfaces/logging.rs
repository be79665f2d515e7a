//! Logs: `tracing` to stderr, as text or JSON, with a `target=level` filter.
//!
//! Every state change is one INFO/WARN line with a stable `event` field
//! (documented in docs/reference.md); routine renewals are DEBUG.
//!
//! # Logging never blocks the election
//! Lines go through a bounded queue to one writer thread (tracing-appender's
//! non-blocking writer, lossy). When stderr's reader stalls (journald or
//! containerd stuck, a full pipe), only that thread blocks: the queue fills,
//! further lines are dropped and counted, and the election, the supervisor
//! and the kill paths go on. The count is the metric
//! `s3_elector_log_lines_dropped_total`, and once lines flow again one WARN
//! line (`event = "log_lines_dropped"`) says how many were lost.
//!
//! # Under journald
//! When `JOURNAL_STREAM` names stderr's device and inode (systemd sets it
//! for a service whose stderr is the journal), every line starts with the
//! sd-daemon priority prefix (`<3>` error, `<4>` warning, `<6>` info, `<7>`
//! debug), so `journalctl -p warning` finds warnings and errors. Text
//! logs go further: each event is a native journal entry with its fields
//! as journal fields (`EVENT=acquired`, see [`super::journal`]), without
//! the daemon's own timestamp, level and module path, which the journal
//! records itself. JSON lines keep their fields and gain only the prefix.
//! Anywhere else (a terminal, a pipe, `kubectl logs`) lines are as they
//! were.

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
    _journal: Option<super::journal::Guard>,
}

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Log lines dropped so far because stderr did not keep up.
pub fn dropped_lines() -> u64 {
    DROPPED.get().map_or(0, |c| c.dropped_lines() as u64) + super::journal::dropped()
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
    let journal = stderr_is_journal();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(colour && !journal);
    let registry = tracing_subscriber::registry();
    let mut native = None;
    match (format, journal) {
        (LogFormat::Json, false) => registry
            .with(layer.event_format(JsonLine).with_filter(targets))
            .init(),
        (LogFormat::Json, true) => registry
            .with(layer.event_format(Prefixed(JsonLine)).with_filter(targets))
            .init(),
        (LogFormat::Text, false) => registry.with(layer.with_filter(targets)).init(),
        (LogFormat::Text, true) => {
            let (entries, guard) = super::journal::layer(QUEUED_LINES);
            native = Some(guard);
            registry.with(entries.with_filter(targets)).init()
        }
    }
    LogGuard {
        _worker: worker,
        _journal: native,
    }
}

/// stderr is a journald stream: `JOURNAL_STREAM` is `DEVICE:INODE` of it.
fn stderr_is_journal() -> bool {
    let Ok(st) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    names_stream(
        std::env::var("JOURNAL_STREAM").ok().as_deref(),
        st.st_dev,
        st.st_ino,
    )
}

/// Does a `JOURNAL_STREAM` value name the file with this device and inode?
fn names_stream(var: Option<&str>, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = var.and_then(|v| v.split_once(':')) else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// The sd-daemon priority of a level (syslog's numbers).
pub(super) fn priority(level: &tracing::Level) -> u8 {
    match *level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
}

/// A line format with the sd-daemon priority prefix in front (journald
/// reads it off each line and records the priority).
struct Prefixed<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for Prefixed<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(w, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, w, event)
    }
}

/// One JSON object per line: `timestamp`, `level`, then the event's fields
/// in the order written (`message`, `event`, ...), then `target` (the
/// module). Every key appears once: a field that repeats a key already
/// written is dropped. A field logged with `?` whose text is a JSON array
/// (a `Vec` of names or of command words) is written as that array, so a
/// log pipeline gets `"successors":["b","c"]`, not a string.
struct JsonLine;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLine
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut line = JsonFields(serde_json::Map::new());
        line.put(
            "timestamp",
            humantime::format_rfc3339_micros(std::time::SystemTime::now())
                .to_string()
                .into(),
        );
        line.put("level", meta.level().as_str().into());
        event.record(&mut line);
        line.put("target", meta.target().into());
        writeln!(w, "{}", serde_json::Value::Object(line.0))
    }
}

/// The fields of one line, in the order written (serde_json keeps the
/// insertion order with its `preserve_order` feature).
struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl JsonFields {
    fn put(&mut self, key: &str, value: serde_json::Value) {
        if !self.0.contains_key(key) {
            self.0.insert(key.to_string(), value);
        }
    }
}

impl tracing::field::Visit for JsonFields {
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        let text = format!("{v:?}");
        // Only what looks like a list is parsed (once per such field).
        let list = text
            .starts_with('[')
            .then(|| serde_json::from_str::<serde_json::Value>(&text).ok())
            .flatten()
            .filter(serde_json::Value::is_array);
        let value = list.unwrap_or_else(|| text.into());
        self.put(f.name(), value);
    }
    fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
        self.put(f.name(), v.into());
    }
    fn record_i64(&mut self, f: &tracing::field::Field, v: i64) {
        self.put(f.name(), v.into());
    }
    fn record_u64(&mut self, f: &tracing::field::Field, v: u64) {
        self.put(f.name(), v.into());
    }
    fn record_f64(&mut self, f: &tracing::field::Field, v: f64) {
        self.put(f.name(), v.into());
    }
    fn record_bool(&mut self, f: &tracing::field::Field, v: bool) {
        self.put(f.name(), v.into());
    }
    fn record_error(&mut self, f: &tracing::field::Field, v: &(dyn std::error::Error + 'static)) {
        self.put(f.name(), v.to_string().into());
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// Lines the [`JsonLine`] format writes for events logged in `f`.
    fn lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        raw(JsonLine, f)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// What `format` writes (ANSI off) for the events logged in `f`, at
    /// every level.
    fn raw<F>(format: F, f: impl FnOnce()) -> String
    where
        F: tracing_subscriber::fmt::FormatEvent<
                tracing_subscriber::Registry,
                tracing_subscriber::fmt::format::DefaultFields,
            > + Send
            + Sync
            + 'static,
    {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || buf.clone())
            .with_ansi(false)
            .event_format(format);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn journal_stream_must_name_this_device_and_inode() {
        assert!(names_stream(Some("64770:1234"), 64770, 1234));
        assert!(!names_stream(Some("64770:1234"), 64770, 1235));
        assert!(!names_stream(Some("64771:1234"), 64770, 1234));
        assert!(!names_stream(Some("64770"), 64770, 1234));
        assert!(!names_stream(Some(""), 0, 0));
        assert!(!names_stream(None, 0, 0));
    }

    #[test]
    fn json_lines_under_journald_carry_the_priority_prefix() {
        let plain = tracing_subscriber::fmt::format().without_time();
        let got = raw(Prefixed(plain), || {
            tracing::error!("bad");
            tracing::warn!("careful");
            tracing::info!("fine");
            tracing::debug!("detail");
        });
        let prefixes: Vec<&str> = got.lines().map(|l| &l[..3]).collect();
        assert_eq!(prefixes, ["<3>", "<4>", "<6>", "<7>"], "{got}");
        let json = raw(Prefixed(JsonLine), || {
            tracing::warn!(event = "store_unreachable", "careful")
        });
        let line = json.strip_prefix("<4>").expect(&json);
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["event"], "store_unreachable");
    }

    #[test]
    fn json_lines_have_arrays_typed_values_and_unique_keys() {
        let names = vec!["b".to_string(), "c\"d".to_string()];
        let none: Vec<String> = Vec::new();
        let got = lines(|| {
            tracing::info!(event = "released", term = 7_u64, ok = true, successors = ?names, empty = ?none, floor = ?Some(3), target = "s3://b/k", "released lease");
        });
        let l = &got[0];
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["message"], "released lease");
        assert_eq!(l["event"], "released");
        assert_eq!(l["term"], 7);
        assert_eq!(l["ok"], true);
        assert_eq!(l["successors"], serde_json::json!(["b", "c\"d"]));
        assert_eq!(l["empty"], serde_json::json!([]));
        assert_eq!(l["floor"], "Some(3)");
        // The event's own `target` field wins; the module is not repeated.
        assert_eq!(l["target"], "s3://b/k");
        let ts = l["timestamp"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(ts).is_ok(), "{ts}");
        let keys: Vec<&String> = l.as_object().unwrap().keys().collect();
        assert_eq!(keys[..3], ["timestamp", "level", "message"], "{keys:?}");
        let plain = &lines(|| tracing::warn!("x"))[0];
        assert_eq!(plain["target"], module_path!());
    }
}
