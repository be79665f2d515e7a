//! The simulation's store: linearizable, but slow, lossy and impolite.
//!
//! Every request is applied (or not) at its *arrival*, a random delay after
//! it was sent, by a task of its own: a client that gave up (its
//! `request_timeout` passed, on its own clock) does not stop a write from
//! landing later. Then its answer travels back with a delay of its own, so
//! answers overtake each other, or is lost. The faults:
//! - a request lost before it is applied, or applied with its answer lost;
//! - an applied write answered 412, as the SDK's retry of a landed
//!   conditional PUT is;
//! - 503 SlowDown and 429, without applying;
//! - 409 under contention: a write arriving while another write to the same
//!   key is recent is held about a second, then refused;
//! - a copy cut off from the store (requests lost or refused at once);
//! - delays beyond `request_timeout`.
//!
//! The store also keeps what the checker needs: when each process was
//! first told of each version of the lease (the answer delivered to it),
//! and what it sent when.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::lease::clock::Clock;
use crate::lease::record::LeaseRecord;
use crate::lease::store::{LeaseStore, Listed, Object, StoreError};

use super::world::World;

/// How the store behaves right now.
#[derive(Debug, Clone, Copy)]
pub struct Weather {
    /// The largest random delay of a slow request, each way.
    pub slow_max: Duration,
    /// Chance that a request is slow (delayed up to `slow_max`).
    pub p_slow: f64,
    pub p_lose_before: f64,
    pub p_lose_answer: f64,
    /// A landed write answered 412 (the SDK's retry after a lost answer).
    pub p_landed_412: f64,
    pub p_throttle: f64,
    /// Chance that a write meeting contention is answered 409.
    pub p_conflict: f64,
}

impl Weather {
    /// No faults: quick answers (the calm after the storm).
    pub fn calm() -> Self {
        Weather {
            slow_max: Duration::ZERO,
            p_slow: 0.0,
            p_lose_before: 0.0,
            p_lose_answer: 0.0,
            p_landed_412: 0.0,
            p_throttle: 0.0,
            p_conflict: 0.0,
        }
    }
}

/// The fate of one request, drawn when it is sent.
#[derive(Debug, Clone, Copy)]
struct Fate {
    there: Duration,
    back: Duration,
    lose_before: bool,
    lose_answer: bool,
    landed_412: bool,
    throttle: bool,
}

/// One request.
#[derive(Debug, Clone)]
pub enum Req {
    Get,
    PutIfAbsent(Vec<u8>),
    PutIfMatch(Vec<u8>, String),
    PutSide(Vec<u8>),
    DeleteSide,
}

impl Req {
    fn is_write(&self) -> bool {
        !matches!(self, Req::Get)
    }
}

/// The objects, and the store's bookkeeping.
#[derive(Debug, Default)]
pub struct Objects {
    pub map: BTreeMap<String, (Vec<u8>, String)>,
    /// ETags are a counter: unique per write, the same on every replay.
    next_etag: u64,
    /// When the last write to each key arrived (for 409 under contention).
    last_write: BTreeMap<String, Instant>,
}

impl Objects {
    pub fn new_etag(&mut self) -> String {
        self.next_etag += 1;
        format!("\"{:032x}\"", self.next_etag)
    }
}

/// A process's handle on the store: a [`LeaseStore`] that sends through
/// the world, with the process's own clock for its request timeout.
#[derive(Clone)]
pub struct Client {
    pub world: Arc<Mutex<World>>,
    /// The process (incarnation) this client belongs to.
    pub proc: usize,
    pub clock: Clock,
    pub request_timeout: Duration,
}

/// Lock the world; a poisoned lock means a panic already failed the run.
pub fn lock(w: &Mutex<World>) -> MutexGuard<'_, World> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

type Answer = Result<Reply, StoreError>;

fn timed_out() -> StoreError {
    StoreError::Transient("sim: request timed out (no answer)".into())
}

#[derive(Debug, Clone)]
enum Reply {
    Read(Option<Object>),
    Etag(String),
    Done,
}

impl Client {
    async fn send(&self, key: &str, req: Req) -> Answer {
        let sent = Instant::now();
        let (fate, seed) = {
            let mut w = lock(&self.world);
            w.note_send(self.proc, key, &req);
            let fate = w.draw_fate(self.proc, req.is_write());
            (fate, w.rng.random::<u64>())
        };
        let (tx, rx) = oneshot::channel::<Answer>();
        let world = self.world.clone();
        let key_owned = key.to_string();
        let proc = self.proc;
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            tokio::time::sleep(fate.there).await;
            if fate.lose_before {
                return;
            }
            if fate.throttle {
                tokio::time::sleep(fate.back).await;
                let code = if rng.random_bool(0.5) {
                    "SlowDown"
                } else {
                    "429"
                };
                let _ = tx.send(Err(StoreError::Throttled(format!("sim: {code}"))));
                return;
            }
            let contended = req.is_write() && {
                let mut w = lock(&world);
                let now = Instant::now();
                let recent =
                    w.objects.last_write.get(&key_owned).is_some_and(|t| {
                        now.saturating_duration_since(*t) < Duration::from_millis(50)
                    });
                w.objects.last_write.insert(key_owned.clone(), now);
                let p = w.weather.p_conflict;
                recent && w.rng.random_bool(p)
            };
            if contended {
                // Held about a second, as S3 and SeaweedFS hold contenders.
                let hold = Duration::from_millis(rng.random_range(700..1300));
                tokio::time::sleep(hold).await;
                let _ = tx.send(Err(StoreError::Conflict));
                return;
            }
            let mut answer = lock(&world).apply(proc, &key_owned, req.clone(), sent);
            if fate.landed_412 && req.is_write() && answer.is_ok() {
                answer = Err(StoreError::PreconditionFailed);
            }
            tokio::time::sleep(fate.back).await;
            if !fate.lose_answer {
                let _ = tx.send(answer);
            }
        });
        let deadline = self.clock.now() + self.request_timeout;
        let answer = match self.clock.timeout_at(deadline, rx).await {
            Ok(Ok(a)) => a,
            Ok(Err(_)) => {
                // Lost on the way: the client hears nothing until its
                // own timeout.
                self.clock.sleep_until(deadline).await;
                return Err(self.timed_out(key));
            }
            Err(_) => return Err(self.timed_out(key)),
        };
        if let Ok(Reply::Read(Some(o))) = &answer {
            lock(&self.world).note_delivery(self.proc, key, &o.etag);
        }
        if let Ok(Reply::Read(None)) = &answer {
            lock(&self.world).note_delivery(self.proc, key, "");
        }
        answer
    }
}

impl Client {
    fn timed_out(&self, key: &str) -> StoreError {
        if key == super::KEY {
            let mut w = lock(&self.world);
            let name = w.procs[self.proc].name.clone();
            w.trace(format!(
                "store: {name} gets no answer from the lease key (timed out)"
            ));
        }
        timed_out()
    }
}

impl World {
    fn draw_fate(&mut self, proc: usize, write: bool) -> Fate {
        let w = self.weather;
        let cut = self.procs[proc]
            .cut_off_until
            .is_some_and(|t| Instant::now() < t);
        let rng = &mut self.rng;
        // A request's usual latency, each way: up to 20 ms, and never more
        // than a tenth of the process's request timeout (a config whose
        // timeout is below the store's latency never leads anywhere).
        let usual = (self.procs[proc].request_timeout.as_micros() as u64 / 10).clamp(200, 20_000);
        let delay = |rng: &mut StdRng| {
            let base = Duration::from_micros(rng.random_range(100..usual));
            if rng.random_bool(w.p_slow) && !w.slow_max.is_zero() {
                base + w.slow_max.mul_f64(rng.random::<f64>())
            } else {
                base
            }
        };
        let there = delay(rng);
        let back = delay(rng);
        Fate {
            there,
            back,
            lose_before: cut || rng.random_bool(w.p_lose_before),
            lose_answer: rng.random_bool(w.p_lose_answer),
            landed_412: write && rng.random_bool(w.p_landed_412),
            throttle: rng.random_bool(w.p_throttle),
        }
    }

    /// Apply a request at its arrival; linearizable by the world's lock.
    fn apply(&mut self, proc: usize, key: &str, req: Req, sent: Instant) -> Answer {
        let what = self.verbose.then(|| match &req {
            Req::Get => "GET".to_string(),
            Req::PutIfAbsent(_) => "PUT if-none-match".to_string(),
            Req::PutIfMatch(_, e) => format!("PUT if-match {e}"),
            Req::PutSide(_) => "PUT".to_string(),
            Req::DeleteSide => "DELETE".to_string(),
        });
        let answer = self.apply_quietly(proc, key, req, sent);
        if let Some(what) = what {
            let name = self.procs[proc].name.clone();
            let told = match &answer {
                Ok(Reply::Read(Some(o))) => match LeaseRecord::parse(&o.body) {
                    Ok(r) => format!("{} term {} released {}", o.etag, r.term, r.released),
                    Err(_) => format!("{} ({} bytes)", o.etag, o.size),
                },
                other => format!("{other:?}"),
            };
            self.trace(format!("store: {name} {what} {key} -> {told}"));
        }
        answer
    }

    fn apply_quietly(&mut self, proc: usize, key: &str, req: Req, sent: Instant) -> Answer {
        match req {
            Req::Get => Ok(Reply::Read(self.objects.map.get(key).map(|(b, e)| {
                Object {
                    etag: e.clone(),
                    size: b.len() as u64,
                    body: b.clone(),
                }
            }))),
            Req::PutIfAbsent(body) => {
                if self.objects.map.contains_key(key) {
                    Err(StoreError::PreconditionFailed)
                } else {
                    let e = self.objects.new_etag();
                    self.landed(proc, key, &body, &e, None, sent);
                    self.objects.map.insert(key.into(), (body, e.clone()));
                    Ok(Reply::Etag(e))
                }
            }
            Req::PutIfMatch(body, cond) => match self.objects.map.get(key) {
                Some((old, e)) if *e == cond => {
                    let old = old.clone();
                    let e = self.objects.new_etag();
                    self.landed(proc, key, &body, &e, Some((&old, &cond)), sent);
                    self.objects.map.insert(key.into(), (body, e.clone()));
                    Ok(Reply::Etag(e))
                }
                // 412 on a changed ETag; SeaweedFS answers 412 on a
                // missing key too, AWS 404: both mean "not yours".
                _ => Err(StoreError::PreconditionFailed),
            },
            Req::PutSide(body) => {
                let e = self.objects.new_etag();
                self.objects.map.insert(key.into(), (body, e));
                Ok(Reply::Done)
            }
            Req::DeleteSide => {
                self.objects.map.remove(key);
                Ok(Reply::Done)
            }
        }
    }

    /// A lease write landed: check rule 2 for a takeover, trace it.
    fn landed(
        &mut self,
        proc: usize,
        key: &str,
        body: &[u8],
        etag: &str,
        replaced: Option<(&[u8], &str)>,
        sent: Instant,
    ) {
        if key != super::KEY {
            return;
        }
        let Ok(rec) = LeaseRecord::parse(body) else {
            return;
        };
        self.max_term = self.max_term.max(rec.term);
        let what = if rec.released { "released" } else { "held" };
        let how = if replaced.is_some() {
            "if-match"
        } else {
            "create"
        };
        self.trace(format!(
            "store: {} wrote term {} {what} ({how})",
            self.procs[proc].name, rec.term
        ));
        match replaced {
            Some((old, cond)) => self.check_takeover(proc, old, cond, sent),
            None => self.check_create(proc, sent),
        }
        self.writer.insert(etag.to_string(), proc);
        if rec.released {
            self.wake_successors(&rec);
        }
    }
}

impl LeaseStore for Client {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        match self.send(key, Req::Get).await? {
            Reply::Read(o) => Ok(o),
            _ => unreachable!("a read is answered with an object"),
        }
    }

    async fn put_if_absent(&self, key: &str, body: Vec<u8>) -> Result<String, StoreError> {
        match self.send(key, Req::PutIfAbsent(body)).await? {
            Reply::Etag(e) => Ok(e),
            _ => unreachable!("a write is answered with an ETag"),
        }
    }

    async fn put_if_match(
        &self,
        key: &str,
        body: Vec<u8>,
        etag: &str,
    ) -> Result<String, StoreError> {
        match self.send(key, Req::PutIfMatch(body, etag.into())).await? {
            Reply::Etag(e) => Ok(e),
            _ => unreachable!("a write is answered with an ETag"),
        }
    }

    async fn delete_side_object(&self, key: &str) -> Result<(), StoreError> {
        self.send(key, Req::DeleteSide).await.map(|_| ())
    }

    async fn put_side_object(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        self.send(key, Req::PutSide(body)).await.map(|_| ())
    }

    async fn list(&self, prefix: &str, max: usize) -> Result<Vec<Listed>, StoreError> {
        let w = lock(&self.world);
        Ok(w.objects
            .map
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(max)
            .map(|(k, (b, e))| Listed {
                key: k.clone(),
                etag: e.clone(),
                size: b.len() as u64,
            })
            .collect())
    }
}
