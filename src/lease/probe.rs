//! The store conformance probe, run before joining an election and by
//! `s3-elector check`.
//!
//! On a scratch key next to the lease it checks that the store refuses a
//! second `If-None-Match: *` create and a stale `If-Match`, and accepts a
//! current `If-Match`, reading the object back after each step so that a
//! store which answers "refused" but writes anyway is caught too. Only when
//! the scratch key behaves does it touch the lease key, and then only with
//! an `If-Match` on an ETag that cannot exist, which a conforming store
//! refuses: that proves write permission without changing the lease (the
//! same for the term floor beside it). Each
//! read-back also checks that a read reports the ETag the write returned
//! (after [`normalize_etag`](crate::lease::store::normalize_etag)).

use crate::lease::floor::floor_key;
use crate::lease::record::new_nonce;
use crate::lease::store::{LeaseStore, StoreError};

/// Why the probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The store cannot be used at all (missing bucket, no permission, down).
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The store does not honour conditional writes: two leaders would follow.
    #[error("the store does not honour conditional writes: {0}. Two copies would both become leader on it; use a store that supports If-None-Match and If-Match (AWS S3, MinIO, R2, Ceph RGW, SeaweedFS), or set `unsafe_skip_conformance_check: true` if you accept split brain")]
    NonConforming(String),
}

/// What the probe did, for `check` to print.
#[derive(Debug, Default)]
pub struct ProbeReport {
    pub scratch_key: String,
    pub steps: Vec<String>,
    /// The scratch object could not be deleted (no DeleteObject permission).
    pub cleanup_warning: Option<String>,
}

/// The scratch key used by one probe run.
pub fn scratch_key(lease_key: &str, identity: &str) -> String {
    format!("{lease_key}.probe/{identity}-{}", &new_nonce()[..12])
}

/// Run the probe. The scratch object is deleted afterwards (best effort).
pub async fn run<S: LeaseStore>(
    store: &S,
    lease_key: &str,
    identity: &str,
) -> Result<ProbeReport, ProbeError> {
    let mut report = ProbeReport {
        scratch_key: scratch_key(lease_key, identity),
        ..Default::default()
    };
    // Read permission on the lease key (and the bucket exists).
    store.get(lease_key).await?;
    report.steps.push(format!("read {lease_key}: ok"));

    let key = report.scratch_key.clone();
    let result = scratch_steps(store, &key, &mut report).await;
    if result.is_ok() {
        // Write permission on the lease key and the term floor, without
        // changing either; read permission on the floor.
        let floor = floor_key(lease_key);
        store.get(&floor).await?;
        report.steps.push(format!("read {floor}: ok"));
        for key in [lease_key, floor.as_str()] {
            let bogus = format!("\"s3-elector-probe-{}\"", new_nonce());
            match store
                .put_if_match(key, probe_body("lease-key"), &bogus)
                .await
            {
                Err(StoreError::PreconditionFailed) => report.steps.push(format!(
                    "conditional write on {key} with a stale ETag refused: ok"
                )),
                Ok(_) => {
                    return Err(ProbeError::NonConforming(format!(
                        "an If-Match write on {key} with an ETag that never existed was accepted"
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    if !matches!(result, Err(ProbeError::Store(ref e)) if e.needs_operator()) {
        if let Err(e) = store.delete_side_object(&key).await {
            report.cleanup_warning = Some(format!(
                "could not delete the probe object {key}: {e}; allow s3:DeleteObject on `{lease_key}.probe/*` or add a lifecycle rule"
            ));
        }
    }
    result.map(|()| report)
}

fn probe_body(step: &str) -> Vec<u8> {
    format!(
        "{{\"s3-elector-probe\":\"{step}\",\"nonce\":\"{}\"}}",
        new_nonce()
    )
    .into_bytes()
}

/// Read `key` back: it must hold `body`, under the very ETag the write of
/// that body returned (the election compares a write's ETag with a later
/// read's, and conditions its writes on what it read).
async fn read_back<S: LeaseStore>(
    store: &S,
    key: &str,
    body: &[u8],
    etag: &str,
    unchanged: &str,
) -> Result<(), ProbeError> {
    let Some(o) = store.get(key).await? else {
        return Err(ProbeError::NonConforming(format!(
            "the object {key} was missing when read back"
        )));
    };
    if o.body != body {
        return Err(ProbeError::NonConforming(unchanged.into()));
    }
    if o.etag != etag {
        return Err(ProbeError::NonConforming(format!(
            "a read returns the ETag {} for the object a write returned as {etag}; the election compares the two, so no copy could ever take over",
            o.etag
        )));
    }
    Ok(())
}

async fn scratch_steps<S: LeaseStore>(
    store: &S,
    key: &str,
    report: &mut ProbeReport,
) -> Result<(), ProbeError> {
    let b1 = probe_body("create");
    let e1 = match store.put_if_absent(key, b1.clone()).await {
        Ok(e) => e,
        Err(StoreError::PreconditionFailed) => {
            return Err(ProbeError::NonConforming(format!(
                "an If-None-Match: * create of the new key {key} was refused"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    report
        .steps
        .push("create with If-None-Match: * on a new key: ok".into());

    let b2 = probe_body("second-create");
    match store.put_if_absent(key, b2).await {
        Err(StoreError::PreconditionFailed | StoreError::Conflict) => {}
        Ok(_) => {
            return Err(ProbeError::NonConforming(
                "a second If-None-Match: * create on an existing key was accepted (If-None-Match is ignored)".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    read_back(
        store,
        key,
        &b1,
        &e1,
        "a refused If-None-Match: * create changed the object anyway",
    )
    .await?;
    report
        .steps
        .push("second create with If-None-Match: * refused: ok".into());

    let b3 = probe_body("swap");
    let e3 = match store.put_if_match(key, b3.clone(), &e1).await {
        Ok(e) => e,
        Err(StoreError::PreconditionFailed) => {
            return Err(ProbeError::NonConforming(
                "an If-Match write with the current ETag was refused".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    if e3 == e1 {
        return Err(ProbeError::NonConforming(
            "a write with a different body kept the same ETag".into(),
        ));
    }
    report
        .steps
        .push("If-Match with the current ETag accepted: ok".into());

    let b4 = probe_body("stale-swap");
    match store.put_if_match(key, b4, &e1).await {
        Err(StoreError::PreconditionFailed | StoreError::Conflict) => {}
        Ok(_) => {
            return Err(ProbeError::NonConforming(
                "an If-Match write with a stale ETag was accepted (If-Match is ignored)".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    read_back(
        store,
        key,
        &b3,
        &e3,
        "a refused If-Match write changed the object anyway",
    )
    .await?;
    report
        .steps
        .push("If-Match with a stale ETag refused: ok".into());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each probe run writes its own scratch object next to the lease:
    /// `<lease key>.probe/<identity>-<12 random hex>` (a prefix the lease
    /// key may not use), so runs never collide and leave the lease alone.
    #[test]
    fn scratch_keys_are_next_to_the_lease_and_unique() {
        let a = scratch_key("p/e/lease.json", "node-a");
        let b = scratch_key("p/e/lease.json", "node-a");
        assert!(a.starts_with("p/e/lease.json.probe/node-a-"), "{a}");
        assert_eq!(a.len(), "p/e/lease.json.probe/node-a-".len() + 12);
        assert_ne!(a, b);
    }
    use crate::lease::store::memory::MemoryStore;

    #[tokio::test]
    async fn a_conforming_store_passes_and_the_scratch_key_is_removed() {
        let s = MemoryStore::new();
        let r = run(&s, "p/lease.json", "a").await.unwrap();
        assert_eq!(r.steps.len(), 8, "{:?}", r.steps);
        // The report names the scratch object it used, and it is gone.
        assert!(
            r.scratch_key.starts_with("p/lease.json.probe/a-"),
            "{}",
            r.scratch_key
        );
        assert!(s.body(&r.scratch_key).is_none());
        assert!(s.body("p/lease.json").is_none(), "lease key untouched");
        assert!(s.body("p/term.json").is_none(), "term floor untouched");
    }

    #[tokio::test]
    async fn a_store_ignoring_conditions_is_refused_and_the_lease_untouched() {
        let s = MemoryStore::new();
        s.set_ignore_conditions(true);
        s.put_raw("p/lease.json", b"{}");
        let e = run(&s, "p/lease.json", "a").await.unwrap_err();
        assert!(matches!(e, ProbeError::NonConforming(_)), "{e}");
        assert!(e.to_string().contains("If-None-Match is ignored"), "{e}");
        assert_eq!(s.body("p/lease.json").unwrap(), b"{}");
    }

    /// A store whose reads report an ETag other than the one its writes
    /// returned is refused: followers could never take over on it.
    #[tokio::test]
    async fn a_store_whose_reads_and_writes_disagree_on_etags_is_refused() {
        let s = MemoryStore::new();
        s.set_read_etag(|e| format!("W/{}", e.trim_matches('"').to_uppercase()));
        let e = run(&s, "p/lease.json", "a").await.unwrap_err();
        assert!(matches!(e, ProbeError::NonConforming(_)), "{e}");
        assert!(e.to_string().contains("a read returns the ETag W/"), "{e}");
    }
}
