//! In-memory [`LeaseStore`] for deterministic tests of the election.
//!
//! It behaves like a conforming S3 store (content-hash ETags, atomic
//! conditional writes) and can be told to misbehave: fail a request before
//! or after applying it (a lost response), delay it, or ignore conditional
//! headers altogether like a non-conforming store. It is never used against
//! a real deployment; end-to-end tests use a real S3 server.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{LeaseStore, Listed, Object, StoreError};

/// What to do to the next matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this error without applying the request.
    FailBefore(StoreError),
    /// Apply the request, then answer with this error (a lost response).
    FailAfter(StoreError),
    /// Wait this long (tokio time) before handling the request.
    Delay(Duration),
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    PutIfAbsent,
    PutIfMatch,
}

#[derive(Default)]
struct Inner {
    objects: HashMap<String, (Vec<u8>, String)>,
    faults: VecDeque<(Op, Fault)>,
    ignore_conditions: bool,
    /// How reads report ETags (a store whose GET and PUT formats differ).
    read_etag: Option<fn(&str) -> String>,
    log: Vec<Op>,
    floor_requests: usize,
    /// Reads of the term floor still to fail ([`MemoryStore::fail_floor_reads`]).
    floor_read_failures: usize,
}

/// Shared, cloneable in-memory store.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

fn etag_of(body: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock means a test already panicked; keep the data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a fault for the next request of kind `op`.
    pub fn inject(&self, op: Op, fault: Fault) {
        self.lock().faults.push_back((op, fault));
    }

    /// Report ETags on reads through `f`, unlike writes do.
    pub fn set_read_etag(&self, f: fn(&str) -> String) {
        self.lock().read_etag = Some(f);
    }

    /// Drop every queued fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Behave like a store that ignores `If-None-Match` / `If-Match`.
    pub fn set_ignore_conditions(&self, yes: bool) {
        self.lock().ignore_conditions = yes;
    }

    /// Write an object unconditionally, as another program or an operator
    /// would. Test-only: the election never writes this way.
    pub fn put_raw(&self, key: &str, body: &[u8]) -> String {
        let etag = etag_of(body);
        self.lock()
            .objects
            .insert(key.into(), (body.to_vec(), etag.clone()));
        etag
    }

    /// Remove an object, as an operator or lifecycle rule would.
    pub fn remove(&self, key: &str) {
        self.lock().objects.remove(key);
    }

    /// The current body of `key`.
    pub fn body(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().objects.get(key).map(|(b, _)| b.clone())
    }

    /// The next `n` reads of the term floor fail with a 503 (the floor is
    /// otherwise outside the queued faults, which are meant for the lease).
    pub fn fail_floor_reads(&self, n: usize) {
        self.lock().floor_read_failures = n;
    }

    /// Requests to the term floor object (not in [`MemoryStore::requests`]).
    pub fn floor_requests(&self) -> usize {
        self.lock().floor_requests
    }

    /// Requests to every key but the term floor, in order.
    pub fn requests(&self) -> Vec<Op> {
        self.lock().log.clone()
    }

    async fn fault_for(&self, op: Op, key: &str) -> Option<Fault> {
        // The term floor is bookkeeping beside the lease: its requests are
        // neither logged nor given the faults meant for the lease.
        if crate::lease::floor::is_floor_key(key) {
            let mut g = self.lock();
            g.floor_requests += 1;
            if op == Op::Get && g.floor_read_failures > 0 {
                g.floor_read_failures -= 1;
                return Some(Fault::FailBefore(StoreError::Transient(
                    "503 SlowDown".into(),
                )));
            }
            return None;
        }
        loop {
            let f = {
                let mut g = self.lock();
                g.log.push(op);
                let pos = g.faults.iter().position(|(o, _)| *o == op);
                pos.and_then(|p| g.faults.remove(p)).map(|(_, f)| f)
            };
            match f {
                Some(Fault::Delay(d)) => {
                    tokio::time::sleep(d).await;
                    // The delay was this request's fault; don't log it twice.
                    self.lock().log.pop();
                    continue;
                }
                other => return other,
            }
        }
    }

    async fn write(
        &self,
        op: Op,
        key: &str,
        body: Vec<u8>,
        cond: Option<&str>,
    ) -> Result<String, StoreError> {
        let fault = self.fault_for(op, key).await;
        if let Some(Fault::FailBefore(e)) = fault {
            return Err(e);
        }
        let etag = {
            let mut g = self.lock();
            if !g.ignore_conditions {
                let current = g.objects.get(key).map(|(_, e)| e.as_str());
                let ok = match (cond, current) {
                    (None, None) => true,
                    (None, Some(_)) => false,
                    (Some(want), Some(have)) => want == have,
                    (Some(_), None) => false,
                };
                if !ok {
                    return Err(StoreError::PreconditionFailed);
                }
            }
            let etag = etag_of(&body);
            g.objects.insert(key.into(), (body, etag.clone()));
            etag
        };
        if let Some(Fault::FailAfter(e)) = fault {
            return Err(e);
        }
        Ok(etag)
    }
}

impl LeaseStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let fault = self.fault_for(Op::Get, key).await;
        if let Some(Fault::FailBefore(e) | Fault::FailAfter(e)) = fault {
            return Err(e);
        }
        let g = self.lock();
        Ok(g.objects.get(key).map(|(b, e)| Object {
            etag: g.read_etag.map_or_else(|| e.clone(), |f| f(e)),
            size: b.len() as u64,
            body: b.clone(),
        }))
    }

    async fn put_if_absent(&self, key: &str, body: Vec<u8>) -> Result<String, StoreError> {
        self.write(Op::PutIfAbsent, key, body, None).await
    }

    async fn put_if_match(
        &self,
        key: &str,
        body: Vec<u8>,
        etag: &str,
    ) -> Result<String, StoreError> {
        self.write(Op::PutIfMatch, key, body, Some(etag)).await
    }

    async fn delete_side_object(&self, key: &str) -> Result<(), StoreError> {
        self.lock().objects.remove(key);
        Ok(())
    }

    async fn put_side_object(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        self.put_raw(key, &body);
        Ok(())
    }

    async fn list(&self, prefix: &str, max: usize) -> Result<Vec<Listed>, StoreError> {
        let g = self.lock();
        let mut v: Vec<Listed> = g
            .objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, (b, e))| Listed {
                key: k.clone(),
                etag: e.clone(),
                size: b.len() as u64,
            })
            .collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v.truncate(max);
        Ok(v)
    }
}
