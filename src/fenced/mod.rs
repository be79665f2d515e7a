//! Fenced writes: the leader's own S3 writes refuse a stale term.
//!
//! Each fenced object carries, in its user metadata, the election and the
//! term (fencing token) of the write that made it. A fenced write:
//! 1. reads the object's stamp (HEAD): its ETag, term and election;
//! 2. refuses if the stored term is higher than the writer's, or the object
//!    belongs to another election (terms of two elections do not compare);
//! 3. otherwise writes with `If-Match: <that ETag>` (`If-None-Match: *`
//!    when the object is absent), stamping its own term;
//! 4. on a refused condition (412: someone wrote in between) goes back to 1.
//!
//! # The invariant
//! Once a write with term N has landed on an object, no write with a term
//! below N lands on it afterwards, provided no later write stores bytes
//! identical to a state a stale writer read (see the limit below). A
//! lower-term writer either reads after the term-N write (and refuses in
//! step 2), or read before it, and then its `If-Match` names an ETag the
//! term-N write replaced (or its `If-None-Match: *` meets an object that
//! now exists), so the store refuses it; it goes back to step 1 and
//! refuses. This needs a store that honours conditional writes:
//! [`crate::lease::probe`] checks that first, as the daemon does.
//!
//! # Limits
//! - **Identical bytes reuse an ETag.** Most stores (AWS S3 without
//!   SSE-KMS, MinIO, SeaweedFS) derive the ETag from the body alone, not
//!   the metadata. If a newer write stores exactly the bytes a stale writer
//!   read, that writer's `If-Match` is current again and its write lands.
//!   Bodies that differ from every earlier one (a run id, a timestamp or the
//!   term inside them) close this; tombstones carry a nonce for that
//!   reason.
//! - Only objects written through this protocol are fenced. An object the
//!   new leader never writes keeps the old leader's last write; fencing
//!   stops a stale writer from landing *after* a newer one, it does not
//!   undo what landed before.
//! - Deleting an object would drop its fence (a stale writer's
//!   `If-None-Match: *` would then succeed). [`remove`] therefore writes a
//!   tombstone (a small body with a nonce, stamped `deleted`), which keeps
//!   the term;
//!   [`get`] reports a tombstone as absent. Expire tombstones with a
//!   lifecycle rule only once no writer of an old term can be alive.
//! - Equal terms are the same leadership: a writer may overwrite its own
//!   term's writes.
//! - An object without a stamp (written by something else) counts as
//!   term 0: the first fenced write adopts it.
//!
//! # Cost
//! One HEAD and one PUT per write, plus one HEAD and PUT again for each
//! refused condition. A single PUT carries at most [`MAX_PUT_BYTES`]
//! (5 GiB, S3's limit); larger bodies are refused before any request.

use std::future::Future;
use std::path::PathBuf;

use crate::lease::record::new_nonce;
use crate::lease::store::StoreError;

pub mod memory;
pub mod s3;

/// The largest body one PUT may carry (S3's limit for a single PUT).
pub const MAX_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// How many refused conditions one write survives before giving up (each
/// means another writer landed in between).
pub const MAX_ATTEMPTS: usize = 16;

/// The user-metadata names of the stamp (`x-amz-meta-...` on the wire).
pub const META_TERM: &str = "s3-elector-term";
pub const META_ELECTION: &str = "s3-elector-election";
pub const META_NONCE: &str = "s3-elector-nonce";
pub const META_DELETED: &str = "s3-elector-deleted";

/// What a fenced object says about the write that made it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stamp {
    pub etag: String,
    /// `None` for an object no fenced write made (counts as term 0).
    pub term: Option<u64>,
    pub election: Option<String>,
    /// The unique id of the write (to settle an ambiguous outcome).
    pub nonce: Option<String>,
    /// A tombstone written by [`remove`].
    pub deleted: bool,
    pub size: u64,
    /// A stamp field that is present but unreadable (e.g. a term that is
    /// not a number): the object is refused rather than taken as unfenced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
}

/// The stamp a write puts on the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub term: u64,
    pub election: String,
    pub nonce: String,
    pub deleted: bool,
}

/// A body to write: a file (streamed, re-read on a retry) or bytes.
#[derive(Debug, Clone)]
pub enum Body {
    File(PathBuf),
    Bytes(bytes::Bytes),
}

impl Body {
    fn len(&self) -> std::io::Result<u64> {
        match self {
            Body::File(p) => Ok(std::fs::metadata(p)?.len()),
            Body::Bytes(b) => Ok(b.len() as u64),
        }
    }
}

/// The condition of one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// `If-None-Match: *`: only if the object does not exist.
    Absent,
    /// `If-Match`: only if the object's ETag is still this.
    Match(String),
}

/// The object store as fenced writes need it: stamped, conditional.
pub trait FencedStore: Send + Sync {
    /// The stamp of `key`; `Ok(None)` when it does not exist.
    fn head(&self, key: &str) -> impl Future<Output = Result<Option<Stamp>, StoreError>> + Send;

    /// Write `body` stamped with `meta`, under `cond`; returns the ETag.
    fn put(
        &self,
        key: &str,
        body: &Body,
        meta: &Meta,
        cond: &Cond,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Read `key` into `out`; returns its stamp (`None`: absent). A
    /// tombstone's body is not written to `out`.
    fn get(
        &self,
        key: &str,
        out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    ) -> impl Future<Output = Result<Option<Stamp>, StoreError>> + Send;
}

/// Why a fenced write did not land.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// A newer term has written the object: this writer is stale.
    #[error("refused: term {stored} has written {key}, newer than this writer's term {ours}; a newer leader exists, stop writing")]
    Stale { key: String, stored: u64, ours: u64 },
    /// The object is fenced by another election's terms.
    #[error("{key} is fenced by election `{stored}`, not `{ours}`; terms of different elections do not compare. Use another key, or the election that owns it")]
    OtherElection {
        key: String,
        stored: String,
        ours: String,
    },
    /// The stamp cannot be read: refused rather than taken as unfenced.
    #[error("{key} has an unreadable stamp ({problem}); not writing over it. Inspect it with `s3-elector fenced get --json`")]
    BadStamp { key: String, problem: String },
    /// Other writers kept landing in between.
    #[error("gave up on {key} after {MAX_ATTEMPTS} refused conditions in a row (other writers kept landing in between); this write did not land")]
    Contended { key: String },
    /// The store did not say whether the write landed, again and again.
    #[error("the outcome of the write to {key} is unknown ({error}); check it with `s3-elector fenced get --json` before writing again")]
    Unknown { key: String, error: Box<StoreError> },
    /// The body is larger than a single PUT takes.
    #[error("the body is {size} bytes, more than the {MAX_PUT_BYTES} bytes one PUT takes; fenced writes are single conditional PUTs")]
    TooLarge { size: u64 },
    #[error("cannot read the body: {0}")]
    Body(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// The outcome of a landed write.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Written {
    pub key: String,
    pub etag: String,
    pub term: u64,
    /// The term of the object this write replaced (`None`: it was absent
    /// or had no stamp).
    pub replaced_term: Option<u64>,
}

/// Step 1 and 2 of a write: read the stamp and decide. Returns the
/// condition to write under and the stored term.
pub async fn prepare<S: FencedStore>(
    store: &S,
    key: &str,
    election: &str,
    term: u64,
) -> Result<(Cond, Option<u64>), FenceError> {
    let Some(stamp) = store.head(key).await? else {
        return Ok((Cond::Absent, None));
    };
    check(key, &stamp, election, term)?;
    Ok((Cond::Match(stamp.etag), stamp.term))
}

/// Step 2: may a writer of `term` in `election` replace what `stamp` says?
fn check(key: &str, stamp: &Stamp, election: &str, term: u64) -> Result<(), FenceError> {
    if let Some(problem) = &stamp.invalid {
        return Err(FenceError::BadStamp {
            key: key.into(),
            problem: problem.clone(),
        });
    }
    if let Some(e) = &stamp.election {
        if e != election && stamp.term.is_some() {
            return Err(FenceError::OtherElection {
                key: key.into(),
                stored: e.clone(),
                ours: election.into(),
            });
        }
    }
    match stamp.term {
        Some(stored) if stored > term => Err(FenceError::Stale {
            key: key.into(),
            stored,
            ours: term,
        }),
        _ => Ok(()),
    }
}

/// Step 3: write under the condition `prepare` gave.
pub async fn commit<S: FencedStore>(
    store: &S,
    key: &str,
    meta: &Meta,
    cond: &Cond,
    body: &Body,
) -> Result<String, StoreError> {
    store.put(key, body, meta, cond).await
}

/// A fenced write of `body` to `key` with `term` (see the module docs).
pub async fn put<S: FencedStore>(
    store: &S,
    key: &str,
    election: &str,
    term: u64,
    body: &Body,
) -> Result<Written, FenceError> {
    write(store, key, election, term, body, false).await
}

/// A fenced removal: a tombstone (stamped `deleted`) that keeps the
/// object's term, so no stale writer can bring it back. Its body names the
/// term and a nonce, so no two tombstones share an ETag.
pub async fn remove<S: FencedStore>(
    store: &S,
    key: &str,
    election: &str,
    term: u64,
) -> Result<Written, FenceError> {
    let body = serde_json::json!({
        "s3-elector": "tombstone",
        "election": election,
        "term": term,
        "nonce": new_nonce(),
    });
    let body = Body::Bytes(bytes::Bytes::from(body.to_string()));
    write(store, key, election, term, &body, true).await
}

/// How many ambiguous answers (timeouts, 5xx) one write survives.
const MAX_AMBIGUOUS: usize = 3;

async fn write<S: FencedStore>(
    store: &S,
    key: &str,
    election: &str,
    term: u64,
    body: &Body,
    deleted: bool,
) -> Result<Written, FenceError> {
    if let Body::File(p) = body {
        let unreadable = |e: std::io::Error| FenceError::Body(format!("{}: {e}", p.display()));
        let m = std::fs::File::open(p)
            .and_then(|f| f.metadata())
            .map_err(unreadable)?;
        if !m.is_file() {
            return Err(FenceError::Body(format!(
                "{} is not a regular file (its size is unknown until read); pass it on stdin as `-`",
                p.display()
            )));
        }
    }
    let size = body.len().map_err(|e| FenceError::Body(e.to_string()))?;
    if size > MAX_PUT_BYTES {
        return Err(FenceError::TooLarge { size });
    }
    let mut ambiguous = 0;
    let meta = Meta {
        term,
        election: election.into(),
        nonce: new_nonce(),
        deleted,
    };
    for _ in 0..MAX_ATTEMPTS {
        let (cond, replaced_term) = prepare(store, key, election, term).await?;
        match commit(store, key, &meta, &cond, body).await {
            Ok(etag) => {
                return Ok(Written {
                    key: key.into(),
                    etag,
                    term,
                    replaced_term,
                })
            }
            Err(StoreError::PreconditionFailed) => continue,
            Err(e) if e.is_ambiguous() => {
                // Landed or not? Our nonce on the object says it did; any
                // other stamp means it did not (or was already replaced:
                // then a newer write exists and the next round decides).
                let settled = store.head(key).await.map_err(|h| FenceError::Unknown {
                    key: key.into(),
                    error: Box::new(h),
                })?;
                match settled {
                    Some(s) if s.nonce.as_deref() == Some(meta.nonce.as_str()) => {
                        return Ok(Written {
                            key: key.into(),
                            etag: s.etag,
                            term,
                            replaced_term,
                        })
                    }
                    _ => {
                        ambiguous += 1;
                        if ambiguous >= MAX_AMBIGUOUS {
                            return Err(FenceError::Unknown {
                                key: key.into(),
                                error: Box::new(e),
                            });
                        }
                        continue;
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(FenceError::Contended { key: key.into() })
}

/// Read a fenced object into `out`. `Ok(None)` when it is absent or a
/// tombstone (then nothing is written to `out`; [`get_stamp`] shows a
/// tombstone's stamp).
pub async fn get<S: FencedStore>(
    store: &S,
    key: &str,
    out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
) -> Result<Option<Stamp>, FenceError> {
    Ok(store.get(key, out).await?.filter(|s| !s.deleted))
}

/// The stamp of `key` (a tombstone's too).
pub async fn get_stamp<S: FencedStore>(store: &S, key: &str) -> Result<Option<Stamp>, FenceError> {
    Ok(store.head(key).await?)
}

/// Parse a stamp from user metadata (names without `x-amz-meta-`).
pub fn stamp_from(etag: String, size: u64, meta: impl Fn(&str) -> Option<String>) -> Stamp {
    let raw = meta(META_TERM);
    let term = raw.as_deref().and_then(|t| t.trim().parse().ok());
    let mut invalid = match (&raw, term) {
        (Some(t), None) => Some(format!("`{META_TERM}` is `{t}`, not a term")),
        _ => None,
    };
    let election = meta(META_ELECTION);
    if term.is_some() && election.is_none() {
        invalid = Some(format!("`{META_TERM}` without `{META_ELECTION}`"));
    }
    let deleted = match meta(META_DELETED).as_deref() {
        None => false,
        Some("true") => true,
        Some(other) => {
            invalid = Some(format!("`{META_DELETED}` is `{other}`"));
            false
        }
    };
    Stamp {
        etag,
        term,
        election,
        nonce: meta(META_NONCE),
        deleted,
        size,
        invalid,
    }
}

#[cfg(test)]
mod tests;
