//! [`FencedStore`] on a real store, through the same client as the lease
//! ([`S3Store`]): HEAD for the stamp, a conditional PUT with the stamp in
//! the user metadata (`x-amz-meta-s3-elector-*`), a streamed GET.

use aws_sdk_s3::primitives::ByteStream;
use tokio::io::AsyncWriteExt;

use super::{
    stamp_from, Body, Cond, FencedStore, Meta, Stamp, META_DELETED, META_ELECTION, META_NONCE,
    META_TERM,
};
use crate::lease::store::s3::{is_missing_key, one_line, S3Store};
use crate::lease::store::{normalize_etag, StoreError};

impl FencedStore for S3Store {
    async fn head(&self, key: &str) -> Result<Option<Stamp>, StoreError> {
        let r = self
            .client()
            .head_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await;
        match r {
            Ok(o) => stamp("HeadObject", o.e_tag(), o.content_length(), o.metadata()).map(Some),
            Err(e) if is_missing_key(&e, |x| x.is_not_found()) => Ok(None),
            Err(e) => Err(self.classify("HeadObject", key, false, e)),
        }
    }

    async fn put(
        &self,
        key: &str,
        body: &Body,
        meta: &Meta,
        cond: &Cond,
    ) -> Result<String, StoreError> {
        let stream = match body {
            Body::Bytes(b) => ByteStream::from(b.clone()),
            Body::File(p) => ByteStream::from_path(p).await.map_err(|e| {
                StoreError::Transient(format!("cannot read {}: {}", p.display(), one_line(&e)))
            })?,
        };
        let mut req = self
            .client()
            .put_object()
            .bucket(self.bucket())
            .key(key)
            .metadata(META_TERM, meta.term.to_string())
            .metadata(META_ELECTION, &meta.election)
            .metadata(META_NONCE, &meta.nonce)
            .body(stream);
        if meta.deleted {
            req = req.metadata(META_DELETED, "true");
        }
        let (req, op, conditional) = match cond {
            Cond::Absent => (req.if_none_match("*"), "PutObject(If-None-Match)", false),
            Cond::Match(etag) => (req.if_match(etag), "PutObject(If-Match)", true),
        };
        match req.send().await {
            Ok(o) => match o.e_tag() {
                Some(e) if !e.is_empty() => Ok(normalize_etag(e)),
                _ => Err(StoreError::Transient(
                    "the store accepted the write but returned no ETag".into(),
                )),
            },
            Err(e) => Err(self.classify(op, key, conditional, e)),
        }
    }

    async fn get(
        &self,
        key: &str,
        out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    ) -> Result<Option<Stamp>, StoreError> {
        let r = self
            .client()
            .get_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await;
        let o = match r {
            Ok(o) => o,
            Err(e) if is_missing_key(&e, |x| x.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.classify("GetObject", key, false, e)),
        };
        let stamp = stamp("GetObject", o.e_tag(), o.content_length(), o.metadata())?;
        if stamp.deleted {
            return Ok(Some(stamp));
        }
        let mut body = o.body;
        let fail =
            |e: String| StoreError::Transient(format!("reading s3://{}/{key}: {e}", self.bucket()));
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| fail(one_line(&e)))?;
            out.write_all(&chunk)
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        out.flush().await.map_err(|e| fail(e.to_string()))?;
        Ok(Some(stamp))
    }
}

/// The stamp in a HEAD's or GET's answer. An answer without an ETag cannot
/// be written under a condition: an error, not a stamp that never matches.
fn stamp(
    op: &'static str,
    etag: Option<&str>,
    len: Option<i64>,
    meta: Option<&std::collections::HashMap<String, String>>,
) -> Result<Stamp, StoreError> {
    let etag = etag
        .filter(|e| !e.is_empty())
        .ok_or_else(|| StoreError::Other {
            op,
            status: 200,
            code: "NoETag".into(),
            message: "the store returned no ETag; fenced writes need one".into(),
        })?;
    Ok(stamp_from(
        normalize_etag(etag),
        len.unwrap_or(0).max(0) as u64,
        |k| meta.and_then(|m| m.get(k).cloned()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_needs_an_etag_and_reads_the_metadata() {
        let meta: std::collections::HashMap<String, String> = [
            (crate::fenced::META_TERM.to_string(), "4".to_string()),
            (crate::fenced::META_ELECTION.to_string(), "e".to_string()),
        ]
        .into();
        let s = stamp("HeadObject", Some("\"AB\""), Some(12), Some(&meta)).unwrap();
        assert_eq!((s.etag.as_str(), s.size, s.term), ("\"ab\"", 12, Some(4)));
        assert_eq!(
            stamp("GetObject", None, Some(1), None).unwrap_err().kind(),
            "other"
        );
        assert!(stamp("GetObject", Some(""), None, None).is_err());
        let bare = stamp("HeadObject", Some("\"x\""), Some(-1), None).unwrap();
        assert_eq!((bare.size, bare.term), (0, None));
    }
}
