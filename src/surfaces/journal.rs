//! Native journald entries: under systemd (`JOURNAL_STREAM` names stderr),
//! each log event becomes one journal entry with its fields as journal
//! fields, so `journalctl -u s3-elector EVENT=acquired` or `TERM=7` finds
//! it, and `-p warning` filters by the entry's `PRIORITY`.
//!
//! An entry carries:
//! - `MESSAGE`: the same text line as elsewhere (`became leader
//!   event="acquired" term=7 ...`), so the default `journalctl` view loses
//!   nothing;
//! - `PRIORITY` (3 error, 4 warning, 6 info, 7 debug),
//!   `SYSLOG_IDENTIFIER=s3-elector`, and `ELECTION` once the daemon knows it;
//! - every field of the event, its name upper-cased (`event` → `EVENT`,
//!   `silent_ms` → `SILENT_MS`), its value as plain text (no quotes).
//!
//! # Never blocks the election
//! As with stderr (see [`super::logging`]): events are queued (bounded,
//! [`super::logging::QUEUED_LINES`]) to one writer thread, which does the
//! sends (libsystemd's `journal_send`: a datagram, or a sealed memfd for a
//! large entry). A full queue drops the entry and counts it in
//! `s3_elector_log_lines_dropped_total`. An entry the journal socket
//! refuses is written to stderr instead, with its priority prefix.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::Duration;

/// Entries dropped because the writer thread fell behind.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The election's name, added to every entry once set.
static ELECTION: OnceLock<String> = OnceLock::new();

/// Entries dropped so far (the queue was full).
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Name the election in every later entry (`ELECTION=`); the first call wins.
pub fn set_election(name: &str) {
    let _ = ELECTION.set(name.to_string());
}

/// One journal entry, built on the logging thread, sent on the writer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub priority: u8,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

enum Job {
    Send(Entry),
    /// Everything queued before it has been handled: answer.
    Flush(std::sync::mpsc::Sender<()>),
}

/// The `tracing` layer that queues an [`Entry`] per event.
pub struct Layer {
    queue: SyncSender<Job>,
}

/// Keeps the writer thread; dropping it waits (at most a second) until
/// what is queued has been sent.
pub struct Guard {
    queue: SyncSender<Job>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.queue.try_send(Job::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(1));
        }
    }
}

/// The layer and its guard; starts the writer thread.
pub fn layer(capacity: usize) -> (Layer, Guard) {
    let (tx, rx) = sync_channel(capacity);
    std::thread::Builder::new()
        .name("journal-writer".into())
        .spawn(move || write_entries(rx))
        .expect("start the journal writer thread");
    (Layer { queue: tx.clone() }, Guard { queue: tx })
}

fn write_entries(rx: Receiver<Job>) {
    for job in rx {
        match job {
            Job::Send(e) => send(&e),
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

fn send(e: &Entry) {
    let priority = match e.priority {
        3 => libsystemd::logging::Priority::Error,
        4 => libsystemd::logging::Priority::Warning,
        6 => libsystemd::logging::Priority::Info,
        _ => libsystemd::logging::Priority::Debug,
    };
    let sent = libsystemd::logging::journal_send(
        priority,
        &e.message,
        e.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    if sent.is_err() {
        // No journal socket (or it refused): the stream still reaches it.
        let _ = writeln!(std::io::stderr(), "<{}>{}", e.priority, e.message);
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Layer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let e = entry(event, ELECTION.get().map(String::as_str));
        if let Err(TrySendError::Full(_)) = self.queue.try_send(Job::Send(e)) {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The entry for one event.
pub fn entry(event: &tracing::Event<'_>, election: Option<&str>) -> Entry {
    let mut v = Fields::default();
    event.record(&mut v);
    let mut message = v.message;
    message.push_str(&v.text);
    let mut fields = vec![("SYSLOG_IDENTIFIER".to_string(), "s3-elector".to_string())];
    if let Some(name) = election {
        fields.push(("ELECTION".into(), name.into()));
    }
    for (k, val) in v.fields {
        if !fields.iter().any(|(have, _)| *have == k) {
            fields.push((k, val));
        }
    }
    Entry {
        priority: super::logging::priority(event.metadata().level()),
        message: message.trim_start().to_string(),
        fields,
    }
}

/// A journal field name for a `tracing` field: upper-cased, anything but
/// `A-Z0-9_` becomes `_`, and never a leading `_` or digit (those are the
/// journal's own trusted fields), nor one of the fields set here.
pub fn field_name(name: &str) -> Option<String> {
    let up: String = name
        .chars()
        .map(|c| match c.to_ascii_uppercase() {
            c @ ('A'..='Z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect();
    let up = up.trim_start_matches(|c: char| c == '_' || c.is_ascii_digit());
    match up {
        "" | "MESSAGE" | "PRIORITY" | "SYSLOG_IDENTIFIER" => None,
        _ => Some(up.chars().take(64).collect()),
    }
}

/// What an event's fields become: the text of the line (as the stderr
/// text format writes it) and the journal fields.
#[derive(Default)]
struct Fields {
    message: String,
    text: String,
    fields: Vec<(String, String)>,
}

impl Fields {
    fn put(&mut self, name: &str, shown: String, plain: String) {
        if name == "message" {
            self.message = plain;
            return;
        }
        self.text.push_str(&format!(" {name}={shown}"));
        if let Some(k) = field_name(name) {
            self.fields.push((k, plain));
        }
    }
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        let text = format!("{v:?}");
        self.put(f.name(), text.clone(), text);
    }
    fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
        self.put(f.name(), format!("{v:?}"), v.to_string());
    }
    fn record_error(&mut self, f: &tracing::field::Field, v: &(dyn std::error::Error + 'static)) {
        let text = v.to_string();
        self.put(f.name(), text.clone(), text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    /// The entries for the events logged in `f`.
    fn entries(election: Option<&'static str>, f: impl FnOnce()) -> Vec<Entry> {
        struct Capture(Arc<Mutex<Vec<Entry>>>, Option<&'static str>);
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
            fn on_event(
                &self,
                e: &tracing::Event<'_>,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                self.0.lock().unwrap().push(entry(e, self.1));
            }
        }
        let got = Arc::new(Mutex::new(Vec::new()));
        let sub = tracing_subscriber::registry().with(Capture(got.clone(), election));
        tracing::subscriber::with_default(sub, f);
        let v = got.lock().unwrap().clone();
        v
    }

    fn field<'a>(e: &'a Entry, k: &str) -> Option<&'a str> {
        e.fields
            .iter()
            .find(|(have, _)| have == k)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn an_event_becomes_the_text_line_and_plain_upper_case_fields() {
        let names = vec!["b".to_string()];
        let got = entries(Some("billing"), || {
            tracing::info!(event = "acquired", term = 7_u64, leader = %"node-a", successors = ?names, ok = true, "became leader");
            tracing::warn!(
                event = "store_unreachable",
                cause = "timed out",
                "the store does not answer"
            );
            tracing::error!("plain");
        });
        let e = &got[0];
        assert_eq!(e.priority, 6);
        assert_eq!(
            e.message,
            "became leader event=\"acquired\" term=7 leader=node-a successors=[\"b\"] ok=true"
        );
        assert_eq!(field(e, "EVENT"), Some("acquired"));
        assert_eq!(field(e, "TERM"), Some("7"));
        assert_eq!(field(e, "LEADER"), Some("node-a"));
        assert_eq!(field(e, "SUCCESSORS"), Some("[\"b\"]"));
        assert_eq!(field(e, "OK"), Some("true"));
        assert_eq!(field(e, "ELECTION"), Some("billing"));
        assert_eq!(field(e, "SYSLOG_IDENTIFIER"), Some("s3-elector"));
        assert_eq!(field(e, "MESSAGE"), None, "MESSAGE is the entry's own");
        assert_eq!(got[1].priority, 4);
        assert_eq!(field(&got[1], "CAUSE"), Some("timed out"));
        assert_eq!(got[2].priority, 3);
        assert_eq!(got[2].message, "plain");
        assert_eq!(field(&got[2], "ELECTION"), Some("billing"));
        let none = entries(None, || tracing::debug!(x = 1_u64, "d"));
        assert_eq!(none[0].priority, 7);
        assert_eq!(field(&none[0], "ELECTION"), None);
    }

    #[test]
    fn field_names_are_journal_names_and_never_trusted_or_reserved_ones() {
        assert_eq!(field_name("event").as_deref(), Some("EVENT"));
        assert_eq!(field_name("silent_ms").as_deref(), Some("SILENT_MS"));
        assert_eq!(field_name("a.b-c").as_deref(), Some("A_B_C"));
        assert_eq!(field_name("_pid").as_deref(), Some("PID"));
        assert_eq!(field_name("__cursor").as_deref(), Some("CURSOR"));
        assert_eq!(field_name("9lives").as_deref(), Some("LIVES"));
        assert_eq!(field_name("message"), None);
        assert_eq!(field_name("priority"), None);
        assert_eq!(field_name("syslog_identifier"), None);
        assert_eq!(field_name("_"), None);
        assert_eq!(field_name(&"x".repeat(100)).unwrap().len(), 64);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        // A queue of one nobody drains: the layer must not block.
        let (tx, _rx) = sync_channel(1);
        let layer = Layer { queue: tx };
        let before = dropped();
        let sub = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(sub, || {
            for i in 0..5_u64 {
                tracing::info!(i, "line");
            }
        });
        assert!(dropped() - before >= 4, "{} dropped", dropped() - before);
    }
}
