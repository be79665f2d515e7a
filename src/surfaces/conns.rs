//! The HTTP listener's connection table: who is connected, and who goes
//! when the table is full.
//!
//! Invariants:
//! - at most `max` connections are served at once (connections being closed
//!   do not count: they are gone within a scheduler tick);
//! - past the limit the newcomer is served and the *least useful*
//!   connection is closed instead: first one that has not sent a complete
//!   request yet (the oldest such), else the keep-alive connection idle the
//!   longest. A connection whose request is being answered is never closed
//!   for a newcomer; only when every connection is busy is the newcomer
//!   refused. So a client that sends a complete request promptly is always
//!   answered, whatever idle or slow connections are held against the port;
//! - a connection's phase is only ever moved forward by its own task, and
//!   its entry leaves the table when its task ends (the [`Conn`] handle is
//!   dropped).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opened, no complete request head yet.
    Fresh,
    /// A request is being answered.
    Busy,
    /// Keep-alive, waiting for its next request since this moment.
    Idle(Instant),
}

/// Why a connection was shed to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// A connection that had sent no complete request was closed.
    Fresh,
    /// The longest-idle keep-alive connection was closed.
    Idle,
    /// Every connection was busy: the newcomer was refused.
    Refused,
}

impl Shed {
    pub fn label(self) -> &'static str {
        match self {
            Shed::Fresh => "evicted_fresh",
            Shed::Idle => "evicted_idle",
            Shed::Refused => "refused",
        }
    }
}

#[derive(Debug)]
struct Entry {
    opened: Instant,
    phase: Phase,
    /// Cancelled to close the connection.
    close: CancellationToken,
    closing: bool,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    entries: HashMap<u64, Entry>,
}

/// The table, shared by the accept loop and the connection tasks.
#[derive(Debug)]
pub struct Conns {
    max: usize,
    inner: Mutex<Inner>,
}

/// One connection's handle: its phase setter and its close signal. Dropping
/// it removes the connection from the table.
#[derive(Debug)]
pub struct Conn {
    id: u64,
    table: Arc<Conns>,
    /// Cancelled when the table sheds this connection.
    pub closed: CancellationToken,
}

impl Conns {
    pub fn new(max: usize) -> Arc<Conns> {
        Arc::new(Conns {
            max: max.max(1),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere; the data is still good.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make room for a new connection. `Ok` with what was shed for it, if
    /// anything; `Err(Shed::Refused)` when every connection is busy.
    pub fn admit(self: &Arc<Self>, now: Instant) -> Result<(Conn, Option<Shed>), Shed> {
        let mut g = self.lock();
        let live = g.entries.values().filter(|e| !e.closing).count();
        let mut shed = None;
        if live >= self.max {
            let (id, why) = victim(
                g.entries
                    .iter()
                    .filter(|(_, e)| !e.closing)
                    .map(|(id, e)| (*id, e.opened, e.phase)),
            )
            .ok_or(Shed::Refused)?;
            let e = g.entries.get_mut(&id).expect("a live entry");
            e.closing = true;
            e.close.cancel();
            shed = Some(why);
        }
        let id = g.next;
        g.next += 1;
        let close = CancellationToken::new();
        g.entries.insert(
            id,
            Entry {
                opened: now,
                phase: Phase::Fresh,
                close: close.clone(),
                closing: false,
            },
        );
        let conn = Conn {
            id,
            table: self.clone(),
            closed: close,
        };
        Ok((conn, shed))
    }

    /// Connections in the table (those being closed included).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

impl Conn {
    pub fn set(&self, phase: Phase) {
        if let Some(e) = self.table.lock().entries.get_mut(&self.id) {
            e.phase = phase;
        }
    }

    pub fn phase(&self) -> Option<Phase> {
        self.table.lock().entries.get(&self.id).map(|e| e.phase)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.table.lock().entries.remove(&self.id);
    }
}

/// The connection to close for a newcomer: the oldest that has sent no
/// complete request, else the longest idle; never a busy one.
fn victim(entries: impl Iterator<Item = (u64, Instant, Phase)>) -> Option<(u64, Shed)> {
    let mut fresh: Option<(u64, Instant)> = None;
    let mut idle: Option<(u64, Instant)> = None;
    for (id, opened, phase) in entries {
        match phase {
            Phase::Fresh if fresh.is_none_or(|(_, t)| opened < t) => fresh = Some((id, opened)),
            Phase::Idle(since) if idle.is_none_or(|(_, t)| since < t) => idle = Some((id, since)),
            _ => {}
        }
    }
    fresh
        .map(|(id, _)| (id, Shed::Fresh))
        .or(idle.map(|(id, _)| (id, Shed::Idle)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_victim_is_the_oldest_fresh_then_the_longest_idle_never_a_busy_one() {
        let t = Instant::now();
        let s = |n: u64| t + Duration::from_secs(n);
        let all = [
            (1, s(1), Phase::Busy),
            (2, s(2), Phase::Idle(s(8))),
            (3, s(3), Phase::Fresh),
            (4, s(0), Phase::Idle(s(5))),
            (5, s(4), Phase::Fresh),
        ];
        assert_eq!(victim(all.into_iter()), Some((3, Shed::Fresh)));
        assert_eq!(
            victim(all.into_iter().filter(|e| e.0 != 3)),
            Some((5, Shed::Fresh))
        );
        let no_fresh = all.into_iter().filter(|e| e.2 != Phase::Fresh);
        assert_eq!(victim(no_fresh), Some((4, Shed::Idle)));
        assert_eq!(victim(all.into_iter().filter(|e| e.0 == 1)), None);
    }

    #[tokio::test]
    async fn a_full_table_sheds_for_a_newcomer_and_refuses_only_when_all_are_busy() {
        let table = Conns::new(2);
        let (a, shed) = table.admit(Instant::now()).unwrap();
        assert_eq!(shed, None);
        let (b, _) = table.admit(Instant::now()).unwrap();
        a.set(Phase::Busy);
        // b is fresh: it goes for c.
        let (c, shed) = table.admit(Instant::now()).unwrap();
        assert_eq!(shed, Some(Shed::Fresh));
        assert!(b.closed.is_cancelled() && !a.closed.is_cancelled());
        drop(b);
        assert_eq!(table.len(), 2);
        // c idle, a busy: c goes for d.
        c.set(Phase::Idle(Instant::now()));
        let (d, shed) = table.admit(Instant::now()).unwrap();
        assert_eq!(shed, Some(Shed::Idle));
        assert!(c.closed.is_cancelled());
        // A connection being closed does not count, nor can it be shed again.
        d.set(Phase::Busy);
        assert_eq!(table.admit(Instant::now()).unwrap_err(), Shed::Refused);
        drop(c);
        drop(a);
        let (_e, shed) = table.admit(Instant::now()).unwrap();
        assert_eq!(shed, None);
        assert_eq!(d.phase(), Some(Phase::Busy));
    }
}
