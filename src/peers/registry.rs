//! The candidate registry and wake-ups: how a leader that steps down gets
//! its successor moving within milliseconds instead of a poll.
//!
//! Each copy keeps one small object of its own next to the lease
//! (`<prefix>/<election>/candidates/<identity>.json`) saying where its HTTP
//! endpoint is. It writes the entry at start and every `registry.refresh`,
//! and removes it on a graceful stop. While leading, a copy lists the
//! registry every `registry.list_interval`, checks each entry by asking the
//! address for `GET /leader` (the answer must name the same election and
//! identity), and publishes the live ones, in order, as the successors to
//! name in its records. After releasing the lease it sends `POST /wake` to
//! them; a copy that releases before it has checked anyone (stopped a
//! moment after acquiring) lists the registry right after its release write
//! (bounded by [`RELEASE_LISTING_LIMIT`]) and wakes up to
//! [`MAX_SUCCESSORS`] of the copies it finds. A copy that joins sends one
//! `POST /wake` to the leader it sees, so
//! the leader lists the registry at once (at most once a second) instead of
//! at its next interval.
//!
//! Invariants:
//! - nothing here is needed for safety: a wake-up only makes a copy *read*
//!   the lease (at most once per rate-limit interval), and the successor
//!   list only delays the copies it does not name first. A stale, corrupt,
//!   forged or unreachable entry costs at most one failed HTTP request and,
//!   for a dead first successor, one rank delay;
//! - registry errors are logged (once per kind of failure) and never stop
//!   the election; without the registry everything runs at poll speed;
//! - the only writes are to this copy's own entry; the lease key is never
//!   touched;
//! - an entry with a loopback address is used only by copies on the same
//!   host (the entry names its host).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch, Notify};
use tokio::time::{sleep, timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use hyper::Method;

use crate::lease::election::{Event, Role, State, MAX_SUCCESSORS};
use crate::lease::record::{wall_now, Successor};
use crate::lease::store::{LeaseStore, StoreError};
use crate::peers::client::request;
use crate::peers::twins::Twins;

/// Every entry key ends so: no lease key, term floor or probe key can (the
/// config refuses an `s3.key` that does), so the namespaces never meet.
pub const ENTRY_SUFFIX: &str = ".candidate.json";

/// Value of the entry's `schema` field.
pub const ENTRY_SCHEMA: &str = "s3-elector/candidate";
/// Entries larger than this are ignored.
const MAX_ENTRY_BYTES: u64 = 4096;
/// Most entries read from one listing.
const MAX_ENTRIES: usize = 1000;
/// Most candidates checked or woken at once.
const MAX_PEERS: usize = 64;
/// Time allowed for one HTTP exchange with a peer.
pub const PEER_TIMEOUT: Duration = Duration::from_millis(500);
/// Time allowed for removing this copy's entry on a graceful stop.
pub const ENTRY_REMOVAL_TIMEOUT: Duration = Duration::from_secs(2);

/// One registry entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub schema: String,
    pub election: String,
    pub identity: String,
    /// `host:port` of the copy's HTTP endpoint.
    pub address: String,
    /// Hostname of the machine, so loopback addresses are used only there.
    pub host: String,
    /// Wall-clock time of the write, for humans.
    pub written_at: String,
    /// The writing process's incarnation (see [`crate::peers::twins`]);
    /// older builds write none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<String>,
}

impl Entry {
    fn parse(body: &[u8]) -> Result<Entry, String> {
        let e: Entry = serde_json::from_slice(body).map_err(|e| format!("not an entry: {e}"))?;
        if e.schema != ENTRY_SCHEMA {
            return Err(format!("schema is `{}`, not `{ENTRY_SCHEMA}`", e.schema));
        }
        if e.identity.is_empty() || e.address.is_empty() || e.address.len() > 256 {
            return Err("empty identity or bad address".into());
        }
        Ok(e)
    }

    /// Whether this copy may use the entry's address at all.
    fn reachable_from(&self, host: &str) -> bool {
        let loopback = self
            .address
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback())
            || self.address.starts_with("localhost:");
        !loopback || self.host == host
    }
}

/// What the registry task needs to know.
#[derive(Debug, Clone)]
pub struct RegistrySpec {
    pub prefix: String,
    pub election: String,
    pub identity: String,
    /// Our own address; `None` = do not advertise (nobody can wake us).
    pub address: Option<String>,
    pub host: String,
    pub refresh: Duration,
    pub list_interval: Duration,
    /// How often a leader re-checks the listed candidates over HTTP.
    pub check_interval: Duration,
    /// After this copy turns unhealthy, check the candidates this much
    /// later (the health check's interval; zero without one).
    pub health_grace: Duration,
    /// This process's incarnation, written in its entry.
    pub incarnation: String,
    /// `s3.request_timeout`: a write of a dead predecessor still in flight
    /// lands within it; an entry read back later than that after our own
    /// write, naming another incarnation, was written by a live process.
    pub request_timeout: Duration,
}

/// Shortest time between two listings asked for by wake-ups.
const MIN_LIST_GAP: Duration = Duration::from_secs(1);

impl RegistrySpec {
    fn own_key(&self) -> String {
        entry_key(&self.prefix, &self.identity)
    }
}

/// The object key of `identity`'s entry. Characters outside a safe set are
/// percent-encoded so that any identity makes one flat key.
pub fn entry_key(prefix: &str, identity: &str) -> String {
    let mut k = String::with_capacity(prefix.len() + identity.len() + 5);
    k.push_str(prefix);
    for b in identity.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
            k.push(b as char);
        } else {
            k.push_str(&format!("%{b:02X}"));
        }
    }
    k.push_str(ENTRY_SUFFIX);
    k
}

/// Candidates a leader has checked, best first.
#[derive(Debug, Clone, Default)]
struct Peers {
    inner: Arc<Mutex<Vec<Entry>>>,
}

impl Peers {
    fn set(&self, v: Vec<Entry>) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }

    fn get(&self) -> Vec<Entry> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Send `POST /wake` to each of `targets` at once; returns how many
/// answered 2xx. Bounded by [`PEER_TIMEOUT`].
async fn wake(targets: Vec<Entry>) -> usize {
    let tasks: Vec<_> = targets
        .into_iter()
        .map(|p| {
            tokio::spawn(async move {
                let ok = request(&p.address, Method::POST, "/wake", PEER_TIMEOUT)
                    .await
                    .is_ok_and(|a| a.is_success());
                debug!(peer = %p.identity, address = %p.address, ok, "woke candidate");
                ok
            })
        })
        .collect();
    let mut n = 0;
    for t in tasks {
        if t.await.unwrap_or(false) {
            n += 1;
        }
    }
    n
}

/// Whom a release wakes: the successors it named (at most
/// [`MAX_SUCCESSORS`], in their order), those of them this copy knows an
/// address for; only when it named none (it released before checking
/// anyone), every checked candidate. The rest learn at their next poll:
/// waking a fleet costs requests and buys nothing, as only the first
/// successors may write before the others' rank delays pass.
fn wake_targets(peers: Vec<Entry>, identity: &str, successors: &[String]) -> Vec<Entry> {
    if successors.is_empty() {
        return peers
            .into_iter()
            .filter(|p| p.identity != identity)
            .take(MAX_PEERS)
            .collect();
    }
    successors
        .iter()
        .filter(|s| s.as_str() != identity)
        .take(MAX_SUCCESSORS)
        .filter_map(|s| peers.iter().find(|p| &p.identity == s).cloned())
        .collect()
}

/// Does `entry`'s address answer as that very candidate, still competing,
/// and healthy (an unhealthy or unchecked copy is never named)?
async fn check(entry: &Entry) -> bool {
    #[derive(Deserialize)]
    struct Health {
        verdict: crate::health::Verdict,
    }
    #[derive(Deserialize)]
    struct View {
        election: String,
        identity: String,
        role: Role,
        candidate: bool,
        /// Only copies with a health check say; without one a copy counts
        /// as healthy.
        #[serde(default)]
        health: Option<Health>,
    }
    match request(&entry.address, Method::GET, "/leader", PEER_TIMEOUT).await {
        Ok(a) if a.status == 200 => serde_json::from_slice::<View>(&a.body).is_ok_and(|v| {
            v.election == entry.election
                && v.identity == entry.identity
                && matches!(v.role, Role::Follower | Role::Starting)
                && v.candidate
                && v.health
                    .is_none_or(|h| h.verdict == crate::health::Verdict::Healthy)
        }),
        _ => false,
    }
}

/// Remembers which failures were already logged, so a broken registry
/// logs once, not every interval.
#[derive(Default)]
struct Quiet {
    failing: HashSet<&'static str>,
}

impl Quiet {
    fn warn(&mut self, what: &'static str, e: &StoreError, hint: &str) {
        if self.failing.insert(what) {
            warn!(error = %e, "candidate registry: {what} failed; {hint}. Hand-over falls back to polling");
        } else {
            debug!(error = %e, "candidate registry: {what} failed again");
        }
    }
    fn ok(&mut self, what: &'static str) {
        if self.failing.remove(what) {
            info!("candidate registry: {what} works again");
        }
    }
}

/// This copy's entry, as written to the registry; `None` when it has no
/// address to advertise.
fn own_entry(cfg: &RegistrySpec) -> Option<Vec<u8>> {
    let addr = cfg.address.as_ref()?;
    let e = Entry {
        schema: ENTRY_SCHEMA.into(),
        election: cfg.election.clone(),
        identity: cfg.identity.clone(),
        address: addr.clone(),
        host: cfg.host.clone(),
        written_at: wall_now(),
        incarnation: Some(cfg.incarnation.clone()),
    };
    Some(serde_json::to_vec(&e).expect("entry serializes"))
}

/// `found` counted into `n` read-backs in a row: `Some` from the second on.
fn twice_in_a_row<T>(n: &mut u32, found: Option<T>) -> Option<T> {
    match found {
        Some(x) => {
            *n = n.saturating_add(1);
            (*n >= 2).then_some(x)
        }
        None => {
            *n = 0;
            None
        }
    }
}

/// Before rewriting this copy's entry: read it back. Returns the other
/// incarnation and where it is (host, address) when the entry, read more
/// than a request timeout after our own write completed (`written_at`),
/// names another incarnation; `None` when it is ours, absent, unreadable
/// (logged at debug: the rewrite follows) or read too soon.
async fn read_back_own_entry<S: LeaseStore>(
    store: &S,
    cfg: &RegistrySpec,
    written_at: Instant,
) -> Option<(String, String)> {
    if Instant::now() < written_at + cfg.request_timeout {
        return None;
    }
    let key = cfg.own_key();
    match store.get(&key).await {
        Ok(Some(o)) => {
            let e = Entry::parse(&o.body).ok()?;
            let inc = e.incarnation.filter(|i| *i != cfg.incarnation)?;
            Some((inc, format!("host {}, address {}", e.host, e.address)))
        }
        Ok(None) => None,
        Err(e) => {
            debug!(key = %key, error = %e, "cannot read this copy's registry entry back");
            None
        }
    }
}

/// Write this copy's entry once, before its election reads the lease: a
/// leader that acquires and stops at once (three copies started together,
/// the first stopped 0.2 s later) then finds every copy that has read the
/// lease already, and wakes it; a copy that has not read yet sees the
/// release at its first read. True when written.
pub async fn announce<S: LeaseStore>(store: &S, cfg: &RegistrySpec) -> bool {
    let Some(body) = own_entry(cfg) else {
        return false;
    };
    let key = cfg.own_key();
    match store.put_side_object(&key, body).await {
        Ok(()) => {
            debug!(key = %key, "registry entry written (before the election's first read)");
            true
        }
        Err(e) => {
            debug!(key = %key, error = %e, "cannot write the registry entry yet; the registry retries");
            false
        }
    }
}

/// Run until `shutdown`: keep our entry, and while leading keep `successors`
/// current. After each release (an [`Event::Released`] from the election)
/// wake the checked candidates. Removes our entry at the end. `announced`:
/// [`announce`] already wrote this copy's entry.
#[allow(clippy::too_many_arguments)]
pub async fn run<S: LeaseStore>(
    store: S,
    cfg: RegistrySpec,
    state: watch::Receiver<State>,
    successors: watch::Sender<Vec<Successor>>,
    events: broadcast::Receiver<Event>,
    woken: Arc<Notify>,
    shutdown: CancellationToken,
    announced: bool,
    twins: Option<Arc<Twins>>,
) {
    let peers = Peers::default();
    // Side by side in this one task: the wake-ups go out the moment the
    // release is written, whatever the upkeep is busy with (a listing, a
    // round of checks).
    tokio::join!(
        wake_on_release(events, peers.clone(), &store, &cfg),
        keep(&store, &cfg, state, successors, peers, woken, shutdown, announced, twins),
    );
}

/// The most a release spends listing the registry when it knows no
/// candidate yet (one LIST and a GET per new entry).
pub const RELEASE_LISTING_LIMIT: Duration = Duration::from_millis(500);

/// After each release, wake the successors. A copy that releases before
/// it has checked anyone (stopped within a moment of acquiring) lists the
/// registry first, bounded by [`RELEASE_LISTING_LIMIT`], and wakes up to
/// [`MAX_SUCCESSORS`] of the copies it finds. Ends when the election does
/// (its events end), so a release written just before the stop is still
/// announced.
async fn wake_on_release<S: LeaseStore>(
    mut events: broadcast::Receiver<Event>,
    peers: Peers,
    store: &S,
    cfg: &RegistrySpec,
) {
    let me = cfg.identity.as_str();
    loop {
        match events.recv().await {
            Ok(Event::Released { term, successors }) => {
                let mut targets = wake_targets(peers.get(), me, &successors);
                let mut listed_ms = None;
                if targets.is_empty() {
                    let started = Instant::now();
                    let mut quiet = Quiet::default();
                    let found = timeout(
                        RELEASE_LISTING_LIMIT,
                        list_entries(store, cfg, &mut EntryCache::new(), &mut quiet),
                    )
                    .await;
                    if let Ok(Ok(entries)) = found {
                        targets = entries.into_iter().take(MAX_SUCCESSORS).collect();
                    }
                    listed_ms = Some(started.elapsed().as_millis() as u64);
                }
                let n = wake(targets).await;
                info!(
                    term,
                    woken = n,
                    named = successors.len(),
                    listed_ms,
                    "woke the other candidates"
                );
            }
            Ok(Event::Renewed { .. } | Event::Twin { .. })
            | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Entries read from the registry, by key, with the ETag they were read at
/// (`None`: unusable), so that a listing reads only new or changed ones.
type EntryCache = HashMap<String, (String, Option<Entry>)>;

/// List the registry and read the entries that are new or changed since
/// `cache`; returns the usable entries of the other copies reachable from
/// this host, in identity order, at most [`MAX_PEERS`].
async fn list_entries<S: LeaseStore>(
    store: &S,
    cfg: &RegistrySpec,
    cache: &mut EntryCache,
    quiet: &mut Quiet,
) -> Result<Vec<Entry>, StoreError> {
    let own_key = cfg.own_key();
    let items = store.list(&cfg.prefix, MAX_ENTRIES).await?;
    quiet.ok("listing candidates");
    let mut fresh = HashMap::new();
    for it in items {
        if it.key == own_key || !it.key.ends_with(ENTRY_SUFFIX) {
            continue;
        }
        if let Some((etag, e)) = cache.remove(&it.key) {
            if etag == it.etag {
                fresh.insert(it.key, (etag, e));
                continue;
            }
        }
        let entry = if it.size > MAX_ENTRY_BYTES {
            debug!(key = %it.key, size = it.size, "ignoring an oversized registry entry");
            None
        } else {
            match store.get(&it.key).await {
                Ok(Some(o)) => match Entry::parse(&o.body) {
                    Ok(e) if e.election == cfg.election => Some(e),
                    Ok(_) => None,
                    Err(m) => {
                        debug!(key = %it.key, problem = %m, "ignoring a registry entry");
                        None
                    }
                },
                Ok(None) => None,
                Err(e) => {
                    quiet.warn(
                        "reading an entry",
                        &e,
                        "grant s3:GetObject on the candidates prefix",
                    );
                    None
                }
            }
        };
        fresh.insert(it.key, (it.etag, entry));
    }
    *cache = fresh;
    let mut listed: Vec<Entry> = cache
        .values()
        .filter_map(|(_, e)| e.clone())
        .filter(|e| e.identity != cfg.identity && e.reachable_from(&cfg.host))
        .collect();
    listed.sort_by(|a, b| a.identity.cmp(&b.identity));
    listed.truncate(MAX_PEERS);
    Ok(listed)
}

/// Keep this copy's entry, and while leading the checked candidates and
/// the successors, until `shutdown`; then remove the entry.
#[allow(clippy::too_many_arguments)]
async fn keep<S: LeaseStore>(
    store: &S,
    cfg: &RegistrySpec,
    mut state: watch::Receiver<State>,
    successors: watch::Sender<Vec<Successor>>,
    peers: Peers,
    woken: Arc<Notify>,
    shutdown: CancellationToken,
    announced_at_start: bool,
    twins: Option<Arc<Twins>>,
) {
    let mut quiet = Quiet::default();
    let own_key = cfg.own_key();
    let mut next_write = if announced_at_start {
        Instant::now() + cfg.refresh
    } else {
        Instant::now()
    };
    let mut next_list = Instant::now();
    let mut next_check = Instant::now();
    let mut entries = EntryCache::new();
    let mut listed: Vec<Entry> = Vec::new();
    let mut was_leader = false;
    let mut election_gone = false;
    let mut written = announced_at_start;
    // When our last write of the entry completed (the announce: before now).
    let mut written_at = announced_at_start.then(Instant::now);
    // Read-backs in a row that found the entry rewritten by another
    // incarnation of this identity.
    let mut overwritten = 0u32;
    let mut announced = false;
    let mut last_list: Option<Instant> = None;
    let mut last_verdict = None;
    loop {
        let now = Instant::now();
        if let (Some(addr), Some(body)) =
            (&cfg.address, own_entry(cfg).filter(|_| now >= next_write))
        {
            {
                if let (Some(t), Some(at)) = (&twins, written_at) {
                    // Overwritten at two read-backs in a row: a live process
                    // (one write of a dead predecessor, still in flight when
                    // it died and landing after ours, makes only one).
                    let found = read_back_own_entry(store, cfg, at).await;
                    if let Some((inc, at)) = twice_in_a_row(&mut overwritten, found) {
                        t.saw(&inc, Some(&at), "registry");
                    }
                }
                match store.put_side_object(&own_key, body).await {
                    Ok(()) => {
                        written = true;
                        written_at = Some(Instant::now());
                        quiet.ok("writing this copy's entry");
                        debug!(key = %own_key, address = %addr, "registry entry written");
                        next_write = now + cfg.refresh;
                    }
                    Err(e) => {
                        quiet.warn("writing this copy's entry", &e,
                            "grant s3:PutObject on the candidates prefix or set `registry.enabled: false`");
                        next_write = now + cfg.list_interval.min(cfg.refresh);
                    }
                }
            }
        }
        let (leading, leader_address) = {
            let s = state.borrow();
            (s.role == Role::Leader, s.leader_address.clone())
        };
        if written && !announced && !leading {
            if let Some(addr) = leader_address.filter(|a| Some(a) != cfg.address.as_ref()) {
                // Tell the leader we are here; it lists the registry.
                announced = true;
                let r = request(&addr, Method::POST, "/wake", PEER_TIMEOUT).await;
                debug!(leader = %addr, ok = r.is_ok(), "announced this copy to the leader");
            }
        }
        if leading && !was_leader {
            // Just acquired: learn the candidates now.
            next_list = now;
            next_check = now;
        }
        // This copy turned unhealthy: check the candidates one check
        // interval later (`health_grace`), so that an unhealthy leader hands
        // over only to a copy still healthy by then (in a shared outage
        // seen a phase apart, the others have turned with it).
        let verdict = state.borrow().health.as_ref().map(|h| h.verdict);
        if leading && verdict != last_verdict && verdict == Some(crate::health::Verdict::Unhealthy)
        {
            next_check = next_check.min(now + cfg.health_grace);
        }
        last_verdict = verdict;
        was_leader = leading;
        if leading && now >= next_list {
            next_list = now + cfg.list_interval;
            last_list = Some(now);
            match list_entries(store, cfg, &mut entries, &mut quiet).await {
                Ok(l) => {
                    listed = l;
                    next_check = now;
                }
                Err(e) => quiet.warn(
                    "listing candidates",
                    &e,
                    "grant s3:ListBucket on the candidates prefix or set `registry.enabled: false`",
                ),
            }
        }
        if leading && now >= next_check {
            next_check = now + cfg.check_interval;
            let checks: Vec<_> = listed
                .iter()
                .cloned()
                .map(|e| tokio::spawn(async move { (check(&e).await, e) }))
                .collect();
            let mut live = Vec::new();
            for c in checks {
                if let Ok((true, e)) = c.await {
                    live.push(e);
                }
            }
            let names: Vec<Successor> = live
                .iter()
                .map(|e| Successor {
                    identity: e.identity.clone(),
                    address: Some(e.address.clone()),
                })
                .take(MAX_SUCCESSORS)
                .collect();
            peers.set(live);
            // Logged after they are in use: the next record names them.
            let old = successors.send_replace(names.clone());
            if old != names {
                let ids: Vec<&str> = names.iter().map(|s| s.identity.as_str()).collect();
                info!(successors = ?ids, candidates = listed.len(), "successors checked");
            }
        }
        // Timers only for work this copy has: its entry (when it advertises
        // an address) and, while leading, listing and checking.
        let wake_at = [
            cfg.address.is_some().then_some(next_write),
            leading.then_some(next_list.min(next_check)),
        ]
        .into_iter()
        .flatten()
        .min();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = state.changed(), if !election_gone => election_gone = r.is_err(),
            _ = woken.notified() => {
                if leading {
                    // A candidate joined (or someone asked): list soon.
                    let earliest = last_list.map_or(now, |l| l + MIN_LIST_GAP);
                    next_list = next_list.min(earliest.max(Instant::now()));
                }
            }
            _ = tokio::time::sleep_until(wake_at.unwrap_or(now)), if wake_at.is_some() => {}
        }
        // Role changes come in bursts; let them settle.
        sleep(Duration::from_millis(1)).await;
    }
    if cfg.address.is_some() {
        match timeout(ENTRY_REMOVAL_TIMEOUT, store.delete_side_object(&own_key)).await {
            Ok(Ok(())) => debug!(key = %own_key, "registry entry removed"),
            Ok(Err(e)) => debug!(key = %own_key, error = %e, "could not remove the registry entry"),
            Err(_) => debug!(key = %own_key, "removing the registry entry timed out"),
        }
    }
}

#[cfg(test)]
mod tests {

    fn entry(id: &str) -> Entry {
        Entry {
            schema: ENTRY_SCHEMA.into(),
            election: "e".into(),
            identity: id.into(),
            address: format!("{id}.example:4040"),
            host: "h".into(),
            written_at: String::new(),
            incarnation: None,
        }
    }

    /// A release wakes its named successors only, in their order and at
    /// most MAX_SUCCESSORS; with none named, every other checked candidate.
    #[test]
    fn a_release_wakes_the_named_successors_first_named_first() {
        let peers: Vec<Entry> = (0..20)
            .map(|i| entry(&format!("c{i}")))
            .chain([entry("me")])
            .collect();
        let ids = |v: Vec<Entry>| v.into_iter().map(|e| e.identity).collect::<Vec<_>>();
        let named: Vec<String> = ["c5", "gone", "c2", "me", "c9"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            ids(wake_targets(peers.clone(), "me", &named)),
            ["c5", "c2", "c9"]
        );
        let many: Vec<String> = (0..20).rev().map(|i| format!("c{i}")).collect();
        let woken = ids(wake_targets(peers.clone(), "me", &many));
        assert_eq!(woken.len(), MAX_SUCCESSORS);
        assert_eq!(woken[0], "c19");
        let all = ids(wake_targets(peers, "me", &[]));
        assert_eq!(all.len(), 20);
        assert!(!all.contains(&"me".to_string()));
    }

    use super::*;

    fn settings() -> RegistrySpec {
        RegistrySpec {
            prefix: "p/candidates/".into(),
            election: "e".into(),
            identity: "me".into(),
            address: None,
            host: "h".into(),
            refresh: Duration::from_secs(600),
            list_interval: Duration::from_secs(30),
            check_interval: Duration::from_secs(10),
            health_grace: Duration::ZERO,
            incarnation: "1111111111111111".into(),
            request_timeout: Duration::from_secs(2),
        }
    }

    /// The entry written before the election's first read: this copy's own,
    /// at its key; nothing without an address to advertise.
    #[tokio::test]
    async fn announcing_writes_this_copy_s_entry_and_only_with_an_address() {
        use crate::lease::store::memory::MemoryStore;
        let store = MemoryStore::new();
        let cfg = settings();
        assert!(
            !announce(&store, &cfg).await,
            "no address: nothing to announce"
        );
        assert!(store.body(&cfg.own_key()).is_none());
        let cfg = RegistrySpec {
            address: Some("10.0.0.7:4040".into()),
            ..settings()
        };
        assert!(announce(&store, &cfg).await);
        let e: Entry = serde_json::from_slice(&store.body(&cfg.own_key()).unwrap()).unwrap();
        assert_eq!(
            (e.identity.as_str(), e.address.as_str()),
            ("me", "10.0.0.7:4040")
        );
    }

    /// A listing keeps the usable entries of this election's other copies
    /// reachable from here, sorted, and reads again only what changed.
    #[tokio::test]
    async fn a_listing_reads_usable_entries_and_only_changed_ones_again() {
        use crate::lease::store::memory::{MemoryStore, Op};
        let store = MemoryStore::new();
        let cfg = settings();
        let put = |id: &str, e: &Entry| {
            store.put_raw(&entry_key(&cfg.prefix, id), &serde_json::to_vec(e).unwrap());
        };
        let mut other_election = entry("x");
        other_election.election = "other".into();
        let mut elsewhere = entry("lo");
        (elsewhere.address, elsewhere.host) = ("127.0.0.1:4040".into(), "another-host".into());
        let mut here = entry("lh");
        here.address = "127.0.0.1:4041".into();
        for e in [
            entry("b"),
            entry("a"),
            entry("me"),
            other_election,
            elsewhere,
            here,
        ] {
            put(&e.identity.clone(), &e);
        }
        store.put_raw(&entry_key(&cfg.prefix, "junk"), b"not json");
        store.put_raw(
            &entry_key(&cfg.prefix, "big"),
            &vec![b' '; MAX_ENTRY_BYTES as usize + 1],
        );
        store.put_raw("p/candidates/notes.txt", b"{}");
        let mut cache = EntryCache::new();
        let mut quiet = Quiet::default();
        let ids = |v: Vec<Entry>| v.into_iter().map(|e| e.identity).collect::<Vec<_>>();
        let listed = list_entries(&store, &cfg, &mut cache, &mut quiet)
            .await
            .unwrap();
        assert_eq!(ids(listed), ["a", "b", "lh"]);
        let gets = |s: &MemoryStore| s.requests().iter().filter(|o| **o == Op::Get).count();
        let first = gets(&store);
        // Own entry, the oversized one and the non-entry key are not read.
        assert_eq!(first, 6, "{:?}", store.requests());
        // Nothing changed: nothing read again. One changed: only it.
        list_entries(&store, &cfg, &mut cache, &mut quiet)
            .await
            .unwrap();
        assert_eq!(gets(&store), first);
        let mut moved = entry("a");
        moved.address = "a.example:5050".into();
        put("a", &moved);
        let listed = list_entries(&store, &cfg, &mut cache, &mut quiet)
            .await
            .unwrap();
        assert_eq!(gets(&store), first + 1);
        assert_eq!(listed[0].address, "a.example:5050");
        // An entry of exactly the largest size is still read.
        let mut padded = serde_json::to_vec(&entry("c")).unwrap();
        padded.resize(MAX_ENTRY_BYTES as usize, b' ');
        store.put_raw(&entry_key(&cfg.prefix, "c"), &padded);
        let listed = list_entries(&store, &cfg, &mut cache, &mut quiet)
            .await
            .unwrap();
        assert_eq!(ids(listed), ["a", "b", "c", "lh"]);
        // A removed entry leaves the listing.
        store.remove(&entry_key(&cfg.prefix, "b"));
        let listed = list_entries(&store, &cfg, &mut cache, &mut quiet)
            .await
            .unwrap();
        assert_eq!(ids(listed), ["a", "c", "lh"]);
    }

    /// One overwrite of this copy's entry (a dead predecessor's write still
    /// in flight) is no twin; two read-backs in a row are.
    #[test]
    fn an_overwritten_entry_counts_at_the_second_read_back_in_a_row() {
        let mut n = 0;
        assert_eq!(twice_in_a_row(&mut n, Some("late")), None);
        assert_eq!(twice_in_a_row(&mut n, None::<&str>), None);
        assert_eq!(twice_in_a_row(&mut n, Some("b")), None);
        assert_eq!(twice_in_a_row(&mut n, Some("b")), Some("b"));
        assert_eq!(twice_in_a_row(&mut n, Some("b")), Some("b"));
    }

    #[test]
    fn keys_are_flat_and_safe() {
        assert_eq!(
            entry_key("p/candidates/", "web-1"),
            "p/candidates/web-1.candidate.json"
        );
        assert_eq!(
            entry_key("p/", "a/b c"),
            "p/a%2Fb%20c.candidate.json",
            "slashes and spaces cannot escape the prefix"
        );
    }

    #[test]
    fn loopback_entries_are_used_only_on_their_host() {
        let e = |addr: &str| Entry {
            schema: ENTRY_SCHEMA.into(),
            election: "e".into(),
            identity: "x".into(),
            address: addr.into(),
            host: "h1".into(),
            written_at: String::new(),
            incarnation: None,
        };
        assert!(e("127.0.0.1:4040").reachable_from("h1"));
        assert!(!e("127.0.0.1:4040").reachable_from("h2"));
        assert!(!e("localhost:4040").reachable_from("h2"));
        assert!(e("10.0.0.5:4040").reachable_from("h2"));
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(Entry::parse(b"not json").is_err());
        assert!(Entry::parse(br#"{"schema":"other","election":"e","identity":"a","address":"x:1","host":"h","written_at":""}"#).is_err());
        assert!(Entry::parse(br#"{"schema":"s3-elector/candidate","election":"e","identity":"","address":"x:1","host":"h","written_at":""}"#).is_err());
        assert!(Entry::parse(br#"{"schema":"s3-elector/candidate","election":"e","identity":"a","address":"x:1","host":"h","written_at":""}"#).is_ok());
    }
}
