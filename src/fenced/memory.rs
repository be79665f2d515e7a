//! [`FencedStore`] in memory, with S3's conditional-write rules, for
//! deterministic tests of the protocol. Real stores are tested end to end.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::io::AsyncWriteExt;

use super::{Body, Cond, FencedStore, Meta, Stamp};
use crate::lease::store::StoreError;

/// Objects by key: body and stamp.
#[derive(Debug, Default)]
pub struct MemoryFencedStore {
    objects: Mutex<HashMap<String, (Vec<u8>, Stamp)>>,
}

impl MemoryFencedStore {
    /// Put an object without a stamp (as another program would).
    pub fn put_plain(&self, key: &str, body: &[u8]) {
        let etag = Self::etag(body);
        let stamp = Stamp {
            etag,
            term: None,
            election: None,
            nonce: None,
            deleted: false,
            size: body.len() as u64,
            invalid: None,
        };
        self.objects
            .lock()
            .unwrap()
            .insert(key.into(), (body.to_vec(), stamp));
    }

    /// Put an object with the given stamp (its ETag is recomputed).
    pub fn put_stamped(&self, key: &str, body: &[u8], mut stamp: Stamp) {
        stamp.etag = Self::etag(body);
        self.objects
            .lock()
            .unwrap()
            .insert(key.into(), (body.to_vec(), stamp));
    }

    /// Like most stores: the ETag depends on the body alone.
    fn etag(body: &[u8]) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut h);
        format!("\"{:016x}\"", h.finish())
    }
}

impl FencedStore for MemoryFencedStore {
    async fn head(&self, key: &str) -> Result<Option<Stamp>, StoreError> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .get(key)
            .map(|(_, s)| s.clone()))
    }

    async fn put(
        &self,
        key: &str,
        body: &Body,
        meta: &Meta,
        cond: &Cond,
    ) -> Result<String, StoreError> {
        let bytes = match body {
            Body::Bytes(b) => b.to_vec(),
            Body::File(p) => std::fs::read(p).map_err(|e| StoreError::Transient(e.to_string()))?,
        };
        let etag = Self::etag(&bytes);
        let mut objects = self.objects.lock().unwrap();
        let ok = match (cond, objects.get(key)) {
            (Cond::Absent, None) => true,
            (Cond::Match(want), Some((_, s))) => *want == s.etag,
            _ => false,
        };
        if !ok {
            return Err(StoreError::PreconditionFailed);
        }
        let stamp = Stamp {
            etag: etag.clone(),
            term: Some(meta.term),
            election: Some(meta.election.clone()),
            nonce: Some(meta.nonce.clone()),
            deleted: meta.deleted,
            size: bytes.len() as u64,
            invalid: None,
        };
        objects.insert(key.into(), (bytes, stamp));
        Ok(etag)
    }

    async fn get(
        &self,
        key: &str,
        out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    ) -> Result<Option<Stamp>, StoreError> {
        let found = self.objects.lock().unwrap().get(key).cloned();
        let Some((body, stamp)) = found else {
            return Ok(None);
        };
        if stamp.deleted {
            return Ok(Some(stamp));
        }
        out.write_all(&body)
            .await
            .map_err(|e| StoreError::Transient(e.to_string()))?;
        Ok(Some(stamp))
    }
}
