//! Problems the election does not know of (failing leader-only work, a
//! duplicate identity), shown after its own in `/leader`'s and the status
//! file's `problem`.
//!
//! One watch channel holds them all, by source: each part sets or clears
//! its own ([`Problems::set`]) and every surface subscribes to the one
//! channel. Nothing here changes `/healthz` or `/readyz`.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

/// The current problems, by source name.
pub type ProblemMap = BTreeMap<&'static str, String>;

/// A cheap handle on the daemon's problems; clones share them.
#[derive(Clone)]
pub struct Problems {
    tx: Arc<watch::Sender<ProblemMap>>,
}

impl Default for Problems {
    fn default() -> Self {
        Problems::new()
    }
}

impl Problems {
    pub fn new() -> Problems {
        Problems {
            tx: Arc::new(watch::channel(ProblemMap::new()).0),
        }
    }

    /// Set (`Some`) or clear (`None`) the problem of `source`; subscribers
    /// are told only of a change.
    pub fn set(&self, source: &'static str, problem: Option<String>) {
        self.tx.send_if_modified(|m| match problem {
            Some(p) if m.get(source) != Some(&p) => {
                m.insert(source, p);
                true
            }
            None => m.remove(source).is_some(),
            Some(_) => false,
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<ProblemMap> {
        self.tx.subscribe()
    }

    /// All of them, in one line.
    pub fn current(&self) -> Option<String> {
        joined(&self.tx.borrow())
    }
}

/// The problems of `m` in one line (`None` if there are none).
pub fn joined(m: &ProblemMap) -> Option<String> {
    (!m.is_empty()).then(|| m.values().cloned().collect::<Vec<_>>().join("; "))
}

/// `base` (the election's own problem) followed by `more`.
pub fn append(base: Option<String>, more: Option<String>) -> Option<String> {
    match (base, more) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_sets_and_clears_its_own_and_only_changes_wake() {
        let p = Problems::new();
        let mut rx = p.subscribe();
        assert_eq!(p.current(), None);
        p.set("work", Some("on_acquired failed".into()));
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        p.set("work", Some("on_acquired failed".into()));
        assert!(!rx.has_changed().unwrap(), "the same text is no change");
        p.set("identity", Some("another process".into()));
        assert_eq!(
            p.current().as_deref(),
            Some("another process; on_acquired failed")
        );
        p.set("work", None);
        assert_eq!(p.current().as_deref(), Some("another process"));
        rx.borrow_and_update();
        p.set("work", None);
        assert!(!rx.has_changed().unwrap());
        assert_eq!(
            append(Some("a".into()), p.current()).as_deref(),
            Some("a; another process")
        );
        assert_eq!(append(None, Some("b".into())).as_deref(), Some("b"));
        assert_eq!(append(Some("a".into()), None).as_deref(), Some("a"));
    }
}
