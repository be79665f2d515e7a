//! `status --watch`: one line per change of leader, as `etcdctl elect -l`
//! shows one: `07:33:24 node-b term 2 (node-a expired after 6.0 s)`.
//!
//! It asks the local daemon (`GET /leader`, no S3 request) while one of
//! this election answers, and otherwise reads the lease object once per
//! `retry_period`. [`Watcher`] turns what it sees into lines and is pure:
//! observations and the instant they were made in, lines out.

use std::io::Write;
use std::time::Duration;

use hyper::Method;
use tokio::time::Instant;

use crate::config::Config;
use crate::lease::record::wall_now;
use crate::lease::store::s3::S3Store;
use crate::lease::store::LeaseStore;
use crate::peers::client;

/// What one look at the election shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// No lease object yet: nobody has led.
    Nothing,
    /// The lease is held by `holder` in `term`; `renewed_at` is the
    /// holder's own timestamp of its last write (it changes at each
    /// renewal, which is all it is used for).
    Held {
        holder: String,
        term: u64,
        renewed_at: String,
    },
    /// The holder of `term` released it (`by`, when known).
    Released { term: u64, by: Option<String> },
    /// The object cannot be read as a lease record.
    Unusable(String),
}

/// Turns a sequence of looks into lines, one per change.
///
/// A new holder after a holder that was renewing less than half a lease
/// before is a hand-over (a release the look missed): nobody takes over an
/// unreleased lease until it has sat unchanged a full lease on their clock.
#[derive(Debug, Default)]
pub struct Watcher {
    /// The election's `lease_duration`.
    lease: Duration,
    last: Option<Seen>,
    /// When the current holder's record was last seen to change (a
    /// renewal), on this machine's monotonic clock.
    changed_at: Option<Instant>,
}

impl Watcher {
    pub fn new(lease: Duration) -> Watcher {
        Watcher {
            lease,
            ..Watcher::default()
        }
    }

    /// The line `seen` at `now` makes, if it is a change (the first look
    /// always is). `clock` is the wall-clock time to print (`HH:MM:SS`).
    pub fn note(&mut self, seen: Seen, now: Instant, clock: &str) -> Option<String> {
        // The daemon's view does not say who released: the holder seen last.
        let seen = match (seen, &self.last) {
            (Seen::Released { term, by: None }, Some(Seen::Held { holder, .. })) => {
                Seen::Released {
                    term,
                    by: Some(holder.clone()),
                }
            }
            (s, _) => s,
        };
        if self.last.as_ref() == Some(&seen) {
            return None;
        }
        let line = match (&self.last, &seen) {
            // A renewal: the same holder and term, a new timestamp.
            (
                Some(Seen::Held {
                    holder: h0,
                    term: t0,
                    ..
                }),
                Seen::Held { holder, term, .. },
            ) if h0 == holder && t0 == term => {
                self.changed_at = Some(now);
                self.last = Some(seen);
                return None;
            }
            (None, s) => Some(match s {
                Seen::Nothing => "no lease object yet (nobody has led)".to_string(),
                Seen::Held { holder, term, .. } => format!("{holder} term {term} (leading)"),
                Seen::Released { term, by } => {
                    format!("no leader (term {term} released{})", by_whom(by))
                }
                Seen::Unusable(p) => format!("the lease object is unusable: {p}"),
            }),
            (Some(prev), s) => Some(match s {
                Seen::Nothing => "the lease object is gone (deleted?)".to_string(),
                Seen::Held { holder, term, .. } => {
                    let why = match prev {
                        Seen::Held {
                            holder: h0,
                            term: t0,
                            ..
                        } => {
                            let quiet = self
                                .changed_at
                                .map(|c| now.saturating_duration_since(c))
                                .unwrap_or_default();
                            if h0 == holder {
                                format!("retaken after term {t0}")
                            } else if quiet < self.lease / 2 {
                                format!("{h0} released")
                            } else {
                                format!("{h0} expired after {:.1} s", quiet.as_secs_f64())
                            }
                        }
                        Seen::Released { by, .. } => match by {
                            Some(b) if b == holder => "retaken after its release".to_string(),
                            Some(b) => format!("{b} released"),
                            None => "after a release".to_string(),
                        },
                        Seen::Nothing => "the first leader".to_string(),
                        Seen::Unusable(_) => "after a reset".to_string(),
                    };
                    format!("{holder} term {term} ({why})")
                }
                Seen::Released { term, by } => {
                    format!("no leader: term {term} released{}", by_whom(by))
                }
                Seen::Unusable(p) => format!("the lease object is unusable: {p}"),
            }),
        };
        self.changed_at = Some(now);
        self.last = Some(seen);
        line.map(|l| format!("{clock} {l}"))
    }
}

fn by_whom(by: &Option<String>) -> String {
    by.as_ref().map_or(String::new(), |b| format!(" by {b}"))
}

/// `HH:MM:SS` of this machine's wall clock (UTC).
fn clock() -> String {
    let now = wall_now();
    now.get(11..19).unwrap_or(&now).to_string()
}

/// The local daemon's view as a [`Seen`], or why it cannot be used.
async fn ask_daemon(cfg: &Config, addr: &str) -> Result<Seen, String> {
    let a = client::request(addr, Method::GET, "/leader", Duration::from_secs(2))
        .await
        .map_err(|e| e.to_string())?;
    if a.status != 200 {
        return Err(format!("it answered {}", a.status));
    }
    let v: serde_json::Value = serde_json::from_slice(&a.body)
        .map_err(|_| "it answered something that is not its /leader view".to_string())?;
    if v["election"].as_str() != Some(cfg.election.as_str()) {
        return Err(format!(
            "it runs election {}, not {}",
            v["election"].as_str().unwrap_or("?"),
            cfg.election
        ));
    }
    let term = v["term"].as_u64().unwrap_or(0);
    Ok(match v["leader"].as_str() {
        Some(l) => Seen::Held {
            holder: l.to_string(),
            term,
            renewed_at: v["renewed_at"].as_str().unwrap_or("").to_string(),
        },
        None if term == 0 => Seen::Nothing,
        None => Seen::Released { term, by: None },
    })
}

/// The lease object as a [`Seen`].
async fn read_store(store: &S3Store, key: &str) -> Result<Seen, String> {
    let obj = store.get(key).await.map_err(|e| e.to_string())?;
    let Some(o) = obj else {
        return Ok(Seen::Nothing);
    };
    Ok(match o.record() {
        Ok(r) if r.released => Seen::Released {
            term: r.term,
            by: Some(r.holder),
        },
        Ok(r) => Seen::Held {
            holder: r.holder,
            term: r.term,
            renewed_at: r.renewed_at,
        },
        Err(e) => Seen::Unusable(e.to_string()),
    })
}

/// Print a line per change until stopped (or stdout closes: exit 0). The
/// store is connected to only when the daemon does not answer; when it
/// cannot be reached either, the exit code says why.
pub(super) async fn watch(cfg: Config, daemon: String) -> i32 {
    let key = cfg.lease_key();
    let mut store: Option<S3Store> = None;
    let mut w = Watcher::new(cfg.timing.lease_duration);
    let mut using_daemon: Option<bool> = None;
    let daemon_every = Duration::from_millis(250);
    let store_every = cfg.timing.retry_period;
    loop {
        let asked = Instant::now();
        let (seen, from_daemon) = match ask_daemon(&cfg, &daemon).await {
            Ok(s) => (Ok(s), true),
            Err(why) => {
                if using_daemon != Some(false) {
                    let _ = writeln!(
                        std::io::stderr(),
                        "s3-elector: not asking the daemon at http://{daemon} ({why}); reading the store every {}",
                        humantime::format_duration(store_every)
                    );
                }
                if store.is_none() {
                    match super::connect(&cfg).await {
                        Ok(s) => store = Some(s),
                        Err(code) => return code,
                    }
                }
                match &store {
                    Some(s) => (read_store(s, &key).await, false),
                    None => unreachable!("connected above"),
                }
            }
        };
        if using_daemon == Some(false) && from_daemon {
            let _ = writeln!(
                std::io::stderr(),
                "s3-elector: the daemon at http://{daemon} answers; asking it"
            );
        }
        using_daemon = Some(from_daemon);
        match seen {
            Ok(s) => {
                if let Some(line) = w.note(s, Instant::now(), &clock()) {
                    let mut out = std::io::stdout().lock();
                    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                        return 0;
                    }
                }
            }
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "s3-elector: cannot read the lease: {e}");
            }
        }
        let every = if from_daemon {
            daemon_every
        } else {
            store_every
        };
        tokio::time::sleep_until(asked + every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(h: &str, t: u64, at: &str) -> Seen {
        Seen::Held {
            holder: h.into(),
            term: t,
            renewed_at: at.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_line_per_change_saying_why() {
        let mut w = Watcher::new(Duration::from_secs(5));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut lines = Vec::new();
        let mut see = |w: &mut Watcher, s: Seen, when: Instant| {
            if let Some(l) = w.note(s, when, "07:33:24") {
                lines.push(l);
            }
        };
        see(&mut w, Seen::Nothing, at(0));
        see(&mut w, Seen::Nothing, at(1));
        see(&mut w, held("node-a", 1, "r1"), at(2));
        // Renewals make no line.
        see(&mut w, held("node-a", 1, "r2"), at(4));
        see(&mut w, held("node-a", 1, "r3"), at(6));
        // node-a stops renewing; node-b takes over 6 s after its last renewal.
        see(&mut w, held("node-a", 1, "r3"), at(9));
        see(&mut w, held("node-b", 2, "s1"), at(12));
        see(
            &mut w,
            Seen::Released {
                term: 2,
                by: Some("node-b".into()),
            },
            at(14),
        );
        see(&mut w, held("node-c", 3, "c1"), at(14));
        // As the daemon shows a release: no leader, the releaser unnamed.
        see(&mut w, Seen::Released { term: 3, by: None }, at(15));
        see(&mut w, held("node-c", 4, "c2"), at(16));
        see(&mut w, held("node-c", 5, "c3"), at(20));
        // A hand-over the look missed the release of: a moment after the
        // last renewal it saw, not a lease.
        see(&mut w, held("node-a", 6, "a6"), at(21));
        see(&mut w, Seen::Unusable("is not JSON".into()), at(22));
        assert_eq!(
            lines,
            [
                "07:33:24 no lease object yet (nobody has led)",
                "07:33:24 node-a term 1 (the first leader)",
                "07:33:24 node-b term 2 (node-a expired after 6.0 s)",
                "07:33:24 no leader: term 2 released by node-b",
                "07:33:24 node-c term 3 (node-b released)",
                "07:33:24 no leader: term 3 released by node-c",
                "07:33:24 node-c term 4 (retaken after its release)",
                "07:33:24 node-c term 5 (retaken after term 4)",
                "07:33:24 node-a term 6 (node-c released)",
                "07:33:24 the lease object is unusable: is not JSON",
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_look_says_what_is_there() {
        let now = Instant::now();
        let first = |s: Seen| {
            Watcher::new(Duration::from_secs(5))
                .note(s, now, "00:00:01")
                .unwrap()
        };
        assert_eq!(first(held("a", 7, "x")), "00:00:01 a term 7 (leading)");
        assert_eq!(
            first(Seen::Released { term: 7, by: None }),
            "00:00:01 no leader (term 7 released)"
        );
        assert_eq!(
            first(Seen::Released {
                term: 7,
                by: Some("a".into())
            }),
            "00:00:01 no leader (term 7 released by a)"
        );
        let mut w = Watcher::new(Duration::from_secs(5));
        w.note(
            Seen::Released {
                term: 7,
                by: Some("a".into()),
            },
            now,
            "t",
        );
        assert_eq!(
            w.note(held("a", 8, "y"), now, "t").unwrap(),
            "t a term 8 (retaken after its release)"
        );
        assert_eq!(
            w.note(Seen::Nothing, now, "t").unwrap(),
            "t the lease object is gone (deleted?)"
        );
    }
}
