//! The protocol on the in-memory store: every order of two writers' steps,
//! the refusals, tombstones, and the retry and ambiguity paths.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::memory::MemoryFencedStore;
use super::*;

const E: &str = "e";

/// What [`prepare`] decided for one writer.
type Plan = Result<(Cond, Option<u64>), FenceError>;

fn body(s: &str) -> Body {
    Body::Bytes(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

fn meta(term: u64) -> Meta {
    Meta {
        term,
        election: E.into(),
        nonce: new_nonce(),
        deleted: false,
    }
}

async fn term_of(s: &MemoryFencedStore, key: &str) -> Option<u64> {
    s.head(key).await.unwrap().and_then(|s| s.term)
}

async fn read(s: &MemoryFencedStore, key: &str) -> Option<String> {
    let mut out = Vec::new();
    get(s, key, &mut out)
        .await
        .unwrap()
        .map(|_| String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn a_newer_term_replaces_an_equal_term_rewrites_an_older_is_refused() {
    let s = MemoryFencedStore::default();
    let w = put(&s, "k", E, 4, &body("four")).await.unwrap();
    assert_eq!((w.term, w.replaced_term), (4, None));
    let w = put(&s, "k", E, 4, &body("four again")).await.unwrap();
    assert_eq!(w.replaced_term, Some(4));
    let w = put(&s, "k", E, 5, &body("five")).await.unwrap();
    assert_eq!(w.replaced_term, Some(4));
    match put(&s, "k", E, 4, &body("stale")).await {
        Err(FenceError::Stale { stored, ours, key }) => {
            assert_eq!((stored, ours, key.as_str()), (5, 4, "k"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(read(&s, "k").await.as_deref(), Some("five"));
    assert_eq!(term_of(&s, "k").await, Some(5));
    let msg = put(&s, "k", E, 3, &body("x"))
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("term 5") && msg.contains("term 3"), "{msg}");
}

#[tokio::test]
async fn an_unstamped_object_is_adopted_and_another_election_s_is_refused() {
    let s = MemoryFencedStore::default();
    s.put_plain("plain", b"by hand");
    assert_eq!(read(&s, "plain").await.as_deref(), Some("by hand"));
    let plain = s.head("plain").await.unwrap().unwrap();
    assert_eq!(
        (plain.term, plain.election, plain.invalid),
        (None, None, None)
    );
    let w = put(&s, "plain", E, 1, &body("fenced")).await.unwrap();
    assert_eq!(w.replaced_term, None);
    assert_eq!(term_of(&s, "plain").await, Some(1));
    let err = put(&s, "plain", "other", 9, &body("x")).await.unwrap_err();
    assert!(
        matches!(&err, FenceError::OtherElection { stored, ours, .. } if stored == E && ours == "other"),
        "{err:?}"
    );
    assert_eq!(read(&s, "plain").await.as_deref(), Some("fenced"));
}

#[tokio::test]
async fn tombstones_never_share_an_etag_and_hide_their_body() {
    let s = MemoryFencedStore::default();
    put(&s, "k", E, 1, &body("x")).await.unwrap();
    let first = remove(&s, "k", E, 2).await.unwrap();
    let second = remove(&s, "k", E, 2).await.unwrap();
    assert_ne!(
        first.etag, second.etag,
        "a stale If-Match on a tombstone must fail"
    );
    let mut out = Vec::new();
    assert!(get(&s, "k", &mut out).await.unwrap().is_none());
    assert!(out.is_empty(), "a tombstone's body leaked: {out:?}");
}

/// The limit the docs state: the store's ETag depends on the body alone,
/// so only a changed body invalidates a stale writer's condition.
#[tokio::test]
async fn identical_bytes_reuse_an_etag_as_on_real_stores() {
    let s = MemoryFencedStore::default();
    let a = put(&s, "k", E, 1, &body("same")).await.unwrap();
    let b = put(&s, "k", E, 2, &body("same")).await.unwrap();
    assert_eq!(a.etag, b.etag);
    let c = put(&s, "k", E, 3, &body("other")).await.unwrap();
    assert_ne!(b.etag, c.etag);
}

#[tokio::test]
async fn an_unreadable_stamp_is_refused_not_taken_as_unfenced() {
    let s = MemoryFencedStore::default();
    s.put_stamped(
        "k",
        b"x",
        stamp_from("\"e\"".into(), 1, |k| {
            (k == META_TERM).then(|| "seven".into())
        }),
    );
    let err = put(&s, "k", E, 9, &body("y")).await.unwrap_err();
    assert!(
        matches!(&err, FenceError::BadStamp { problem, .. } if problem.contains("seven")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_removal_is_a_tombstone_that_keeps_the_fence() {
    let s = MemoryFencedStore::default();
    put(&s, "k", E, 5, &body("five")).await.unwrap();
    assert!(matches!(
        remove(&s, "k", E, 4).await,
        Err(FenceError::Stale { stored: 5, .. })
    ));
    assert_eq!(read(&s, "k").await.as_deref(), Some("five"));
    remove(&s, "k", E, 6).await.unwrap();
    assert_eq!(read(&s, "k").await, None);
    let stamp = get_stamp(&s, "k").await.unwrap().unwrap();
    assert!(stamp.deleted && stamp.term == Some(6), "{stamp:?}");
    // The stale writer cannot bring it back.
    assert!(matches!(
        put(&s, "k", E, 5, &body("again")).await,
        Err(FenceError::Stale { stored: 6, .. })
    ));
    put(&s, "k", E, 6, &body("six")).await.unwrap();
    assert_eq!(read(&s, "k").await.as_deref(), Some("six"));
}

/// Two writers, terms 4 and 5, each reading (prepare) then writing
/// (commit), in every interleaving, on an absent and on an existing
/// object: once the term-5 write has landed no term-4 write lands, and the
/// object's term never goes down.
#[tokio::test]
async fn every_interleaving_of_two_writers() {
    // r4 w4 r5 w5 in every order that keeps each writer's read first.
    let orders: Vec<[&str; 4]> = vec![
        ["r4", "w4", "r5", "w5"],
        ["r4", "r5", "w4", "w5"],
        ["r4", "r5", "w5", "w4"],
        ["r5", "r4", "w4", "w5"],
        ["r5", "r4", "w5", "w4"],
        ["r5", "w5", "r4", "w4"],
    ];
    for existing in [false, true] {
        for order in &orders {
            let s = MemoryFencedStore::default();
            if existing {
                put(&s, "k", E, 3, &body("three")).await.unwrap();
            }
            let mut plans: [Option<Plan>; 2] = [None, None];
            let mut landed5 = false;
            let mut terms = vec![term_of(&s, "k").await];
            for step in order {
                let i = usize::from(step.ends_with('5'));
                let t = 4 + i as u64;
                if step.starts_with('r') {
                    plans[i] = Some(prepare(&s, "k", E, t).await);
                    continue;
                }
                // The write as planned; on a refused condition, back to
                // the read (as `put` does) until it lands or is refused.
                let mut plan = plans[i].take().unwrap();
                let landed = loop {
                    match plan {
                        Err(FenceError::Stale {
                            stored: 5, ours: 4, ..
                        }) => break false,
                        Err(e) => panic!("{order:?}: {e}"),
                        Ok((cond, _)) => {
                            match commit(&s, "k", &meta(t), &cond, &body(step)).await {
                                Ok(_) => break true,
                                Err(StoreError::PreconditionFailed) => {
                                    plan = prepare(&s, "k", E, t).await
                                }
                                Err(e) => panic!("{order:?}: {e}"),
                            }
                        }
                    }
                };
                if t == 5 {
                    assert!(landed, "{order:?}: the term-5 write must land");
                    landed5 = true;
                } else if landed5 {
                    assert!(!landed, "{order:?}: a term-4 write landed after term 5's");
                }
                terms.push(term_of(&s, "k").await);
            }
            assert!(
                terms.windows(2).all(|w| w[0] <= w[1]),
                "{order:?}: the term went down: {terms:?}"
            );
            assert_eq!(term_of(&s, "k").await, Some(5), "{order:?}");
            // The full write (with its retry from the read) refuses too.
            assert!(matches!(
                put(&s, "k", E, 4, &body("late")).await,
                Err(FenceError::Stale { stored: 5, .. })
            ));
        }
    }
}

/// A store that refuses the first `refuse` conditional writes (another
/// writer landed, as far as we can tell) or answers the first write
/// ambiguously after applying it.
#[derive(Default)]
struct Flaky {
    inner: MemoryFencedStore,
    refuse: AtomicUsize,
    ambiguous_after_landing: AtomicUsize,
    transient_without_landing: AtomicUsize,
    deny: std::sync::atomic::AtomicBool,
    puts: AtomicUsize,
}

impl FencedStore for Flaky {
    async fn head(&self, key: &str) -> Result<Option<Stamp>, StoreError> {
        self.inner.head(key).await
    }
    async fn put(
        &self,
        key: &str,
        body: &Body,
        meta: &Meta,
        cond: &Cond,
    ) -> Result<String, StoreError> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        if self.deny.load(Ordering::SeqCst) {
            return Err(StoreError::AccessDenied {
                op: "PutObject",
                bucket: "b".into(),
                key: key.into(),
                code: "AccessDenied".into(),
                message: "no".into(),
            });
        }
        if self
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::PreconditionFailed);
        }
        if self
            .transient_without_landing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Transient("connection reset".into()));
        }
        let r = self.inner.put(key, body, meta, cond).await;
        if r.is_ok()
            && self
                .ambiguous_after_landing
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(StoreError::Transient("timed out".into()));
        }
        r
    }
    async fn get(
        &self,
        key: &str,
        out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    ) -> Result<Option<Stamp>, StoreError> {
        self.inner.get(key, out).await
    }
}

#[tokio::test]
async fn refused_conditions_are_retried_from_the_read_up_to_a_bound() {
    let s = Flaky::default();
    s.refuse.store(3, Ordering::SeqCst);
    put(&s, "k", E, 2, &body("x")).await.unwrap();
    assert_eq!(s.puts.load(Ordering::SeqCst), 4);
    let s = Flaky::default();
    s.refuse.store(usize::MAX, Ordering::SeqCst);
    let err = put(&s, "k", E, 2, &body("x")).await.unwrap_err();
    assert!(matches!(err, FenceError::Contended { .. }), "{err:?}");
    assert_eq!(s.puts.load(Ordering::SeqCst), MAX_ATTEMPTS);
}

#[tokio::test]
async fn an_ambiguous_answer_is_settled_by_the_nonce() {
    let s = Flaky::default();
    s.ambiguous_after_landing.store(1, Ordering::SeqCst);
    let w = put(&s, "k", E, 2, &body("x")).await.unwrap();
    // Landed the first time: not written twice.
    assert_eq!(s.puts.load(Ordering::SeqCst), 1);
    assert_eq!(w.etag, s.inner.head("k").await.unwrap().unwrap().etag);
}

#[tokio::test]
async fn repeated_unknown_outcomes_are_reported_as_unknown_not_contention() {
    let s = Flaky::default();
    s.transient_without_landing
        .store(usize::MAX, Ordering::SeqCst);
    let err = put(&s, "k", E, 2, &body("x")).await.unwrap_err();
    assert!(matches!(err, FenceError::Unknown { .. }), "{err:?}");
    assert_eq!(s.puts.load(Ordering::SeqCst), MAX_AMBIGUOUS);
    assert!(err.to_string().contains("unknown"), "{err}");
    // One timeout that did not land, over an existing object: the stamp
    // read back is not ours, so the write is sent again and lands.
    let s = Flaky::default();
    s.inner.put_plain("k", b"before");
    s.transient_without_landing.store(1, Ordering::SeqCst);
    put(&s, "k", E, 2, &body("x")).await.unwrap();
    assert_eq!(s.puts.load(Ordering::SeqCst), 2);
    assert_eq!(s.inner.head("k").await.unwrap().unwrap().term, Some(2));
}

#[tokio::test]
async fn a_refusal_that_is_not_ambiguous_is_reported_at_once() {
    let s = Flaky::default();
    s.deny.store(true, Ordering::SeqCst);
    let err = put(&s, "k", E, 2, &body("x")).await.unwrap_err();
    assert!(
        matches!(err, FenceError::Store(StoreError::AccessDenied { .. })),
        "{err:?}"
    );
    assert_eq!(s.puts.load(Ordering::SeqCst), 1, "not retried");
}

#[tokio::test]
async fn a_body_of_exactly_the_largest_put_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let limit = dir.path().join("limit");
    std::fs::File::create(&limit)
        .unwrap()
        .set_len(MAX_PUT_BYTES)
        .unwrap();
    // The store refuses before reading the (sparse) body: the write got as
    // far as a request.
    let s = Flaky::default();
    s.refuse.store(usize::MAX, Ordering::SeqCst);
    let err = put(&s, "k", E, 1, &Body::File(limit)).await.unwrap_err();
    assert!(matches!(err, FenceError::Contended { .. }), "{err:?}");
}

#[tokio::test]
async fn a_body_past_a_single_put_is_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(MAX_PUT_BYTES + 1).unwrap();
    let s = Flaky::default();
    let err = put(&s, "k", E, 1, &Body::File(big)).await.unwrap_err();
    assert!(matches!(err, FenceError::TooLarge { .. }), "{err:?}");
    assert_eq!(s.puts.load(Ordering::SeqCst), 0);
    let missing = put(&s, "k", E, 1, &Body::File(dir.path().join("nope"))).await;
    assert!(matches!(missing, Err(FenceError::Body(_))), "{missing:?}");
    // A directory (or a pipe): not a regular file, refused before a request.
    let odd = put(&s, "k", E, 1, &Body::File(dir.path().to_path_buf())).await;
    assert!(
        matches!(&odd, Err(FenceError::Body(m)) if m.contains("not a regular file")),
        "{odd:?}"
    );
    assert_eq!(s.puts.load(Ordering::SeqCst), 0);
    assert_eq!(MAX_PUT_BYTES, 5 << 30);
}

#[test]
fn stamps_are_read_from_metadata() {
    let m = |k: &str| match k {
        META_TERM => Some(" 7 ".to_string()),
        META_ELECTION => Some("e".to_string()),
        META_NONCE => Some("n".to_string()),
        META_DELETED => Some("true".to_string()),
        _ => None,
    };
    let s = stamp_from("\"x\"".into(), 3, m);
    assert_eq!(
        (
            s.term,
            s.election.as_deref(),
            s.nonce.as_deref(),
            s.deleted,
            s.size
        ),
        (Some(7), Some("e"), Some("n"), true, 3)
    );
    assert_eq!(s.invalid, None);
    let bad = stamp_from("\"x\"".into(), 0, |k| (k == META_TERM).then(|| "x".into()));
    assert_eq!((bad.term, bad.deleted), (None, false));
    assert!(
        bad.invalid
            .as_deref()
            .is_some_and(|p| p.contains("not a term")),
        "{bad:?}"
    );
    let orphan = stamp_from("\"x\"".into(), 0, |k| (k == META_TERM).then(|| "4".into()));
    assert!(
        orphan.invalid.is_some(),
        "a term without an election: {orphan:?}"
    );
    let odd = stamp_from("\"x\"".into(), 0, |k| {
        (k == META_DELETED).then(|| "yes".into())
    });
    assert!(odd.invalid.is_some(), "{odd:?}");
    let plain = stamp_from("\"x\"".into(), 0, |_| None);
    assert_eq!((plain.term, plain.invalid), (None, None));
}
