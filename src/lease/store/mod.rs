//! The lease store: the small seam between the election and S3.
//!
//! Invariants:
//! - the only writes are conditional: [`LeaseStore::put_if_absent`]
//!   (`If-None-Match: *`) and [`LeaseStore::put_if_match`] (`If-Match`);
//!   there is no unconditional PUT in this trait or its implementations;
//! - the unconditional requests ([`LeaseStore::put_side_object`],
//!   [`LeaseStore::delete_side_object`]) exist only for side objects: the
//!   conformance probe's scratch keys and this copy's own entry in the
//!   candidate registry; nothing calls them on the lease key;
//! - a refused condition is [`StoreError::PreconditionFailed`], whether the
//!   store said 412 or (for `If-Match` on a missing key) 404: stores differ;
//! - [`StoreError::is_ambiguous`] errors (timeouts, 5xx, 409) mean a write
//!   may or may not have landed; the caller settles it by reading back.
//!
//! Implementations: [`s3::S3Store`] for real stores and
//! [`memory::MemoryStore`] for deterministic tests of the state machine.

use std::future::Future;

pub mod memory;
pub mod s3;

/// An object as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub etag: String,
    /// Size the store reported. When it exceeds
    /// [`crate::lease::record::MAX_RECORD_BYTES`], `body` is left empty: the object
    /// is not a lease record, and it is not worth downloading.
    pub size: u64,
    pub body: Vec<u8>,
}

impl Object {
    /// The lease record in this object, or why it is not one.
    pub fn record(
        &self,
    ) -> Result<crate::lease::record::LeaseRecord, crate::lease::record::RecordError> {
        if self.size > crate::lease::record::MAX_RECORD_BYTES as u64 {
            return Err(crate::lease::record::RecordError::TooLarge { size: self.size });
        }
        crate::lease::record::LeaseRecord::parse(&self.body)
    }
}

/// The one form in which ETags are kept and compared: strong, in double
/// quotes, hex digits in lower case. Stores differ in how they print the
/// same ETag (quoted or not, a weak `W/` prefix, upper-case hex), sometimes
/// between a write's answer and a read's; the election compares the two, so
/// every ETag from the store passes through here once, at the boundary.
/// An ETag that is not hex (with an optional multipart `-N`) keeps its case.
pub fn normalize_etag(raw: &str) -> String {
    let t = raw.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    let inner = t.trim_matches('"');
    let hex = |h: &str| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit());
    let hexlike = match inner.split_once('-') {
        Some((h, n)) => hex(h) && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()),
        None => hex(inner),
    };
    if hexlike {
        format!("\"{}\"", inner.to_ascii_lowercase())
    } else {
        format!("\"{inner}\"")
    }
}

/// Errors from the store, classified for the election.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The condition was refused (412, or 404 for `If-Match` on a missing key).
    #[error("the store refused the conditional write (the object changed)")]
    PreconditionFailed,
    /// 409 ConditionalRequestConflict: a concurrent write raced this one.
    #[error("the store reported a conflicting concurrent write (409)")]
    Conflict,
    /// Timeout, connection failure or 5xx: the outcome is unknown.
    #[error("{0}")]
    Transient(String),
    /// The store asks for fewer requests (503 SlowDown, 429, throttling
    /// codes): retry later and later, up to a lease apart. The outcome of a
    /// write is unknown, as for [`StoreError::Transient`].
    #[error("{0} (the store is throttling; backing off)")]
    Throttled(String),
    #[error("bucket `{bucket}` does not exist; create it or fix `s3.bucket`")]
    NoSuchBucket { bucket: String },
    #[error("access denied ({code}) for {op} on s3://{bucket}/{key}: {message}; grant the permission or fix the credentials")]
    AccessDenied {
        op: &'static str,
        bucket: String,
        key: String,
        code: String,
        message: String,
    },
    #[error("the store does not implement {op} ({message})")]
    NotImplemented { op: &'static str, message: String },
    #[error("unexpected answer to {op}: HTTP {status} {code}: {message}")]
    Other {
        op: &'static str,
        status: u16,
        code: String,
        message: String,
    },
}

impl StoreError {
    /// A write that failed this way may still have landed.
    pub fn is_ambiguous(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict | StoreError::Transient(_) | StoreError::Throttled(_)
        )
    }

    /// The store asks for fewer requests.
    pub fn is_throttling(&self) -> bool {
        matches!(self, StoreError::Throttled(_))
    }

    /// An error no retry will fix without the operator's help.
    pub fn needs_operator(&self) -> bool {
        matches!(
            self,
            StoreError::NoSuchBucket { .. }
                | StoreError::AccessDenied { .. }
                | StoreError::NotImplemented { .. }
        )
    }

    /// Short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::PreconditionFailed => "precondition_failed",
            StoreError::Conflict => "conflict",
            StoreError::Transient(_) => "transient",
            StoreError::Throttled(_) => "throttled",
            StoreError::NoSuchBucket { .. } => "no_such_bucket",
            StoreError::AccessDenied { .. } => "access_denied",
            StoreError::NotImplemented { .. } => "not_implemented",
            StoreError::Other { .. } => "other",
        }
    }
}

/// Conditional object storage, as the election needs it.
pub trait LeaseStore: Send + Sync + 'static {
    /// Read an object; `Ok(None)` when the key does not exist.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Object>, StoreError>> + Send;

    /// Create the object only if the key is absent (`If-None-Match: *`).
    /// Returns the new ETag.
    fn put_if_absent(
        &self,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Replace the object only if its ETag is still `etag` (`If-Match`).
    /// Returns the new ETag.
    fn put_if_match(
        &self,
        key: &str,
        body: Vec<u8>,
        etag: &str,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Delete a side object (probe scratch key, own registry entry).
    /// Never used on the lease key.
    fn delete_side_object(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Write a side object unconditionally (this copy's registry entry).
    /// Never used on the lease key.
    fn put_side_object(
        &self,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `max` objects whose keys start with `prefix` (one listing page).
    fn list(
        &self,
        prefix: &str,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Listed>, StoreError>> + Send;
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub etag: String,
    pub size: u64,
}

impl<T: LeaseStore> LeaseStore for std::sync::Arc<T> {
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Object>, StoreError>> + Send {
        (**self).get(key)
    }
    fn put_if_absent(
        &self,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<String, StoreError>> + Send {
        (**self).put_if_absent(key, body)
    }
    fn put_if_match(
        &self,
        key: &str,
        body: Vec<u8>,
        etag: &str,
    ) -> impl Future<Output = Result<String, StoreError>> + Send {
        (**self).put_if_match(key, body, etag)
    }
    fn delete_side_object(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).delete_side_object(key)
    }
    fn put_side_object(
        &self,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put_side_object(key, body)
    }
    fn list(
        &self,
        prefix: &str,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Listed>, StoreError>> + Send {
        (**self).list(prefix, max)
    }
}

#[cfg(test)]
mod tests {
    use super::{normalize_etag, StoreError};

    /// An object's size decides before its body: at the limit it is parsed,
    /// above it it is "too large" even when the body was not downloaded.
    #[test]
    fn an_object_s_size_decides_before_its_body() {
        use super::Object;
        use crate::lease::record::{RecordError, MAX_RECORD_BYTES};
        let mut body = b"{}".to_vec();
        body.resize(MAX_RECORD_BYTES, b' ');
        let at_limit = Object {
            etag: "\"e\"".into(),
            size: MAX_RECORD_BYTES as u64,
            body,
        };
        // Parsed (and found not to be ours), not refused for its size.
        assert_eq!(at_limit.record(), Err(RecordError::Foreign));
        let above = Object {
            etag: "\"e\"".into(),
            size: MAX_RECORD_BYTES as u64 + 1,
            body: Vec::new(),
        };
        assert_eq!(
            above.record(),
            Err(RecordError::TooLarge {
                size: MAX_RECORD_BYTES as u64 + 1
            })
        );
    }

    #[test]
    fn errors_are_classified_for_the_election_and_the_metrics() {
        let ambiguous = [
            StoreError::Conflict,
            StoreError::Transient("timeout".into()),
            StoreError::Throttled("503 SlowDown".into()),
        ];
        for e in &ambiguous {
            assert!(e.is_ambiguous(), "{e:?}");
        }
        let denied = StoreError::AccessDenied {
            op: "GetObject",
            bucket: "b".into(),
            key: "k".into(),
            code: "AccessDenied".into(),
            message: String::new(),
        };
        for e in [StoreError::PreconditionFailed, denied.clone()] {
            assert!(!e.is_ambiguous(), "{e:?}");
        }
        assert!(denied.needs_operator());
        assert!(StoreError::Throttled(String::new()).is_throttling());
        assert!(!StoreError::Transient(String::new()).is_throttling());
        let kinds: Vec<&str> = [
            StoreError::PreconditionFailed,
            StoreError::Conflict,
            StoreError::Transient(String::new()),
            StoreError::Throttled(String::new()),
            denied,
        ]
        .iter()
        .map(StoreError::kind)
        .collect();
        assert_eq!(
            kinds,
            [
                "precondition_failed",
                "conflict",
                "transient",
                "throttled",
                "access_denied"
            ]
        );
    }

    #[test]
    fn etags_are_normalized_to_one_form() {
        let want = "\"9b2cf535f27731c974343645a3985328\"";
        for raw in [
            "\"9b2cf535f27731c974343645a3985328\"",
            "9b2cf535f27731c974343645a3985328",
            "W/\"9B2CF535F27731C974343645A3985328\"",
            " W/9b2cf535f27731c974343645a3985328 ",
        ] {
            assert_eq!(normalize_etag(raw), want, "{raw}");
        }
        assert_eq!(normalize_etag("\"ABCD-12\""), "\"abcd-12\"");
        assert_eq!(normalize_etag("Opaque-Tag"), "\"Opaque-Tag\"");
        for opaque in ["ZZZ", "AB-", "Zz-12", "AB-x1", "-12"] {
            assert_eq!(normalize_etag(opaque), format!("\"{opaque}\""), "{opaque}");
        }
        assert_eq!(normalize_etag("\"v1-beta\""), "\"v1-beta\"");
    }
}
