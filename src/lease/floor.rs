//! The term floor: a small object next to the lease (`term.json`) holding
//! the highest term ever handed out, so that terms never repeat or go back,
//! even when the lease object is deleted or replaced.
//!
//! Invariants:
//! - a copy *reserves* a term before it writes a lease record with it: it
//!   raises the floor to that term with a conditional write (`If-Match` on
//!   the floor's ETag, `If-None-Match: *` when there is none). Conditional
//!   writes on one object are linearizable, so each reserved term is unique
//!   and larger than every term reserved before it;
//! - every lease write with term `n` comes after the reservation of `n`, and
//!   is itself conditional on what the writer read: a write with a lower
//!   term cannot land after one with a higher term (docs/design.md);
//! - a term that was reserved but never written is skipped: terms grow, not
//!   always by one;
//! - the floor is never lowered, and a floor object that is not ours is
//!   reported and never overwritten.

use serde::{Deserialize, Serialize};

use super::record::wall_now;
use super::store::{LeaseStore, StoreError};

/// Value of the floor's `schema` field.
pub const FLOOR_SCHEMA: &str = "s3-elector/term-floor";
/// Floor bodies larger than this are not ours.
const MAX_FLOOR_BYTES: usize = 4096;
/// Reservation attempts before giving up for this round (each lost one
/// means another copy reserved a term meanwhile).
const RESERVE_TRIES: usize = 4;

/// The floor object's key, next to the lease key: `<dir>/term.json` for the
/// default `<dir>/lease.json`, else `<lease key>.term.json`.
pub fn floor_key(lease_key: &str) -> String {
    match lease_key.strip_suffix("/lease.json") {
        Some(dir) => format!("{dir}/term.json"),
        None => format!("{lease_key}.term.json"),
    }
}

/// True for keys [`floor_key`] can produce.
pub fn is_floor_key(key: &str) -> bool {
    key.ends_with("/term.json") || key.ends_with(".term.json")
}

/// The floor object's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloorRecord {
    pub schema: String,
    pub election: String,
    /// The highest term reserved so far.
    pub term: u64,
    /// Who reserved it, and when (for humans).
    pub reserved_by: String,
    pub reserved_at: String,
}

/// What is known of the floor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Floor {
    /// Not read yet, or a reservation raced and it must be read again.
    Unknown,
    /// No floor object: no term was ever reserved here.
    Absent,
    /// The floor and its ETag.
    At { term: u64, etag: String },
}

impl Floor {
    /// The floor's term, when known (0 when absent).
    pub fn term(&self) -> Option<u64> {
        match self {
            Floor::Unknown => None,
            Floor::Absent => Some(0),
            Floor::At { term, .. } => Some(*term),
        }
    }
}

/// Read the floor. A body that is not a floor record is an error that names
/// the object and what to do; it is never overwritten.
pub async fn read<S: LeaseStore>(store: &S, key: &str) -> Result<Floor, StoreError> {
    let Some(o) = store.get(key).await? else {
        return Ok(Floor::Absent);
    };
    let parsed = (o.body.len() <= MAX_FLOOR_BYTES)
        .then(|| serde_json::from_slice::<FloorRecord>(&o.body).ok())
        .flatten()
        .filter(|r| r.schema == FLOOR_SCHEMA);
    match parsed {
        Some(r) => Ok(Floor::At {
            term: r.term,
            etag: o.etag,
        }),
        None => Err(StoreError::Other {
            op: "GetObject",
            status: 200,
            code: "NotATermFloor".into(),
            message: format!(
                "the term floor object `{key}` is not an s3-elector term floor; no copy acquires until it is fixed. \
                 Move it away if another program owns the key; the floor is then rebuilt from the lease record's term"
            ),
        }),
    }
}

/// Reserve a term of at least `at_least` (and above the floor): raise the
/// floor to it with a conditional write. `floor` is the cached knowledge,
/// updated in place. Returns the reserved term.
pub async fn reserve<S: LeaseStore>(
    store: &S,
    key: &str,
    election: &str,
    identity: &str,
    floor: &mut Floor,
    at_least: u64,
) -> Result<u64, StoreError> {
    for _ in 0..RESERVE_TRIES {
        if *floor == Floor::Unknown {
            *floor = read(store, key).await?;
        }
        let (current, etag) = match &*floor {
            Floor::At { term, etag } => (*term, Some(etag.clone())),
            _ => (0, None),
        };
        let term = next_term(key, at_least, current)?;
        let written = write(store, key, election, identity, term, etag.as_deref()).await;
        match written {
            Ok(etag) => {
                *floor = Floor::At { term, etag };
                return Ok(term);
            }
            // Another copy reserved meanwhile: read again, reserve above it.
            Err(StoreError::PreconditionFailed) => *floor = Floor::Unknown,
            // Unknown outcome or a failure: the next try reads first. A
            // reservation that landed unseen only skips a term.
            Err(e) => {
                *floor = Floor::Unknown;
                return Err(e);
            }
        }
    }
    Err(StoreError::Transient(format!(
        "could not reserve a term on `{key}`: {RESERVE_TRIES} other reservations won the race; retrying later"
    )))
}

/// Reserve a term only if the floor is still as `floor` says (one
/// conditional write, no retry): for a create, which must know that no
/// other copy reserved a term while it watched the key absent. `Ok(None)`:
/// the floor had moved (or was not known); `floor` now holds its new state.
pub async fn reserve_unchanged<S: LeaseStore>(
    store: &S,
    key: &str,
    election: &str,
    identity: &str,
    floor: &mut Floor,
    at_least: u64,
) -> Result<Option<u64>, StoreError> {
    let (current, etag) = match &*floor {
        Floor::Unknown => {
            *floor = read(store, key).await?;
            return Ok(None);
        }
        Floor::Absent => (0, None),
        Floor::At { term, etag } => (*term, Some(etag.clone())),
    };
    let term = next_term(key, at_least, current)?;
    match write(store, key, election, identity, term, etag.as_deref()).await {
        Ok(etag) => {
            *floor = Floor::At { term, etag };
            Ok(Some(term))
        }
        Err(StoreError::PreconditionFailed) => {
            *floor = read(store, key).await.unwrap_or(Floor::Unknown);
            Ok(None)
        }
        Err(e) => {
            *floor = Floor::Unknown;
            Err(e)
        }
    }
}

/// `max(at_least, current + 1)`, or an error at the end of the range.
fn next_term(key: &str, at_least: u64, current: u64) -> Result<u64, StoreError> {
    let above = current.checked_add(1).ok_or_else(|| StoreError::Other {
        op: "PutObject",
        status: 0,
        code: "TermOverflow".into(),
        message: format!(
            "the term floor `{key}` is at the largest term; no further term can be reserved"
        ),
    })?;
    Ok(at_least.max(above))
}

/// One conditional write of the floor record.
async fn write<S: LeaseStore>(
    store: &S,
    key: &str,
    election: &str,
    identity: &str,
    term: u64,
    etag: Option<&str>,
) -> Result<String, StoreError> {
    let body = serde_json::to_vec(&FloorRecord {
        schema: FLOOR_SCHEMA.into(),
        election: election.into(),
        term,
        reserved_by: identity.into(),
        reserved_at: wall_now(),
    })
    .expect("a floor record serializes");
    match etag {
        None => store.put_if_absent(key, body).await,
        Some(e) => store.put_if_match(key, body, e).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::store::memory::MemoryStore;

    const KEY: &str = "p/e/term.json";

    #[test]
    fn the_floor_lives_next_to_the_lease() {
        assert_eq!(floor_key("p/e/lease.json"), "p/e/term.json");
        assert_eq!(floor_key("custom/key"), "custom/key.term.json");
        assert!(is_floor_key(&floor_key("p/e/lease.json")));
        assert!(is_floor_key(&floor_key("custom/key")));
        assert!(!is_floor_key("p/e/lease.json"));
    }

    #[tokio::test]
    async fn reservations_are_unique_and_grow_across_copies() {
        let s = MemoryStore::new();
        let (mut fa, mut fb) = (Floor::Unknown, Floor::Unknown);
        assert_eq!(reserve(&s, KEY, "e", "a", &mut fa, 1).await, Ok(1));
        // b's knowledge is stale: its first write races, it reads, reserves 2.
        fb = match fb {
            Floor::Unknown => Floor::Absent,
            f => f,
        };
        assert_eq!(reserve(&s, KEY, "e", "b", &mut fb, 1).await, Ok(2));
        // a asks for at least 7 (it saw a record of term 6 somewhere).
        assert_eq!(reserve(&s, KEY, "e", "a", &mut fa, 7).await, Ok(7));
        assert_eq!(read(&s, KEY).await.unwrap().term(), Some(7));
        // Never lowered: asking for less gives more.
        assert_eq!(reserve(&s, KEY, "e", "b", &mut fb, 3).await, Ok(8));
    }

    #[tokio::test]
    async fn a_foreign_floor_object_is_reported_and_left_alone() {
        let s = MemoryStore::new();
        s.put_raw(KEY, b"not ours");
        let mut f = Floor::Unknown;
        let e = reserve(&s, KEY, "e", "a", &mut f, 1).await.unwrap_err();
        assert!(e.to_string().contains("p/e/term.json"), "{e}");
        assert!(
            e.to_string().contains("not an s3-elector term floor"),
            "{e}"
        );
        assert_eq!(s.body(KEY).unwrap(), b"not ours");
    }
}
