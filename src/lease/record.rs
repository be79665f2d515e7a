//! The lease record: the JSON document stored in the lease object.
//!
//! Invariants:
//! - every write carries a fresh random `nonce`, so no two writes produce the
//!   same body (stores use a content hash as ETag) and a lost response can be
//!   told apart from a lost race by reading the object back;
//! - `term` is the fencing token: it only grows, by one on every acquisition;
//! - wall-clock fields are for humans and never decide who leads;
//! - a body that is not one of our records (not JSON, another program's JSON,
//!   a newer schema, too large) is reported as such and never overwritten by
//!   the election; only `s3-elector reset` replaces it, on explicit request.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Value of the `schema` field; tells our records apart from anything else.
pub const SCHEMA: &str = "s3-elector/lease";
/// The record layout version this build writes and understands.
pub const VERSION: u32 = 1;
/// Bodies larger than this are not lease records; they are not even read whole.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// One lease record (schema version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub schema: String,
    pub version: u32,
    /// Election name, for humans looking at the bucket.
    pub election: String,
    /// Identity of the holder (or the last holder, when `released`).
    pub holder: String,
    /// Fencing token: +1 on every acquisition.
    pub term: u64,
    /// The holder's configured lease duration, in milliseconds. Followers
    /// wait at least this long (and at least their own lease duration).
    pub lease_duration_ms: u64,
    /// Wall-clock time the current term started (RFC 3339), for humans.
    pub acquired_at: String,
    /// Wall-clock time of this write (RFC 3339), for humans.
    pub renewed_at: String,
    /// How many times the holder has changed.
    pub transitions: u64,
    /// Unique id of this write.
    pub nonce: String,
    /// True when the holder gave the lease up; anyone may take it at once.
    #[serde(default)]
    pub released: bool,
    /// Where the holder can be reached, if it said so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_address: Option<String>,
    /// Candidates the holder saw alive, best first: a hint that spreads the
    /// race for the lease (the first one goes first, the others a little
    /// later). Never needed for safety; older builds ignore it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub successors: Vec<String>,
    /// Where each named successor can be reached (`host:port`, empty when
    /// unknown), in the order of `successors`. Copies not named watch one
    /// of them over HTTP and read the lease less often (see
    /// `peers::watch`). A hint, never needed for safety; older builds
    /// ignore it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub successor_addresses: Vec<String>,
    /// Set only by `s3-elector reset`: who replaced an unusable object
    /// (`user@identity`). An operator's action, not a holder: the record is
    /// released, and `holder` is the last holder the old object named (or
    /// `none`). Older builds ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_by: Option<String>,
    /// The holder's incarnation: a random id each process start draws, so
    /// that two processes with one identity (or a restarted copy and the
    /// record its dead predecessor left) can be told apart. Older builds
    /// write none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<String>,
    /// On a released record: why the holder gave it up (`step_down`,
    /// `unhealthy`, `shutdown`). Older builds write none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_because: Option<String>,
}

/// Why a body is not a usable lease record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("is {size} bytes, larger than the {max} bytes a lease record may have", max = MAX_RECORD_BYTES)]
    TooLarge { size: u64 },
    #[error("is not JSON ({0})")]
    NotJson(String),
    #[error("is JSON but not an s3-elector lease record (no `schema: \"{SCHEMA}\"`); another program may use this key")]
    Foreign,
    #[error("has schema version {0}, newer than the version {VERSION} this build understands; upgrade s3-elector")]
    FutureVersion(u32),
    #[error("is an s3-elector record but malformed ({0})")]
    Malformed(String),
}

impl RecordError {
    /// The `term` field, if the body has one we can read. Used by `reset`
    /// to keep the fencing token growing past a foreign or newer record.
    pub fn salvage_term(body: &[u8]) -> Option<u64> {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()?
            .get("term")?
            .as_u64()
    }

    /// The `holder` field, if the body has a usable one (an identity's
    /// characters, at most 253 bytes). Used by `reset` to keep naming the
    /// last holder.
    pub fn salvage_holder(body: &[u8]) -> Option<String> {
        let v = serde_json::from_slice::<serde_json::Value>(body).ok()?;
        let h = v.get("holder")?.as_str()?;
        crate::config::validate::check_identity(h)
            .is_ok()
            .then(|| h.to_string())
    }
}

/// A candidate the holder names as a successor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Successor {
    pub identity: String,
    /// Its HTTP endpoint (`host:port`), when it advertises one.
    pub address: Option<String>,
}

impl LeaseRecord {
    /// Name `list` as the successors (at most [`MAX_SUCCESSORS`] are
    /// given), with their addresses when any is known.
    ///
    /// [`MAX_SUCCESSORS`]: crate::lease::election::MAX_SUCCESSORS
    pub fn set_successors(&mut self, list: &[Successor]) {
        self.successors = list.iter().map(|s| s.identity.clone()).collect();
        self.successor_addresses = if list.iter().any(|s| s.address.is_some()) {
            list.iter()
                .map(|s| s.address.clone().unwrap_or_default())
                .collect()
        } else {
            Vec::new()
        };
    }

    /// Parse a body read from the store.
    pub fn parse(body: &[u8]) -> Result<LeaseRecord, RecordError> {
        if body.len() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge {
                size: body.len() as u64,
            });
        }
        let v: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| RecordError::NotJson(e.to_string()))?;
        if v.get("schema").and_then(|s| s.as_str()) != Some(SCHEMA) {
            return Err(RecordError::Foreign);
        }
        match v.get("version").and_then(|s| s.as_u64()) {
            Some(n) if n == u64::from(VERSION) => {}
            Some(n) if n > u64::from(VERSION) => {
                return Err(RecordError::FutureVersion(
                    u32::try_from(n).unwrap_or(u32::MAX),
                ))
            }
            other => {
                return Err(RecordError::Malformed(format!(
                    "`version` is {other:?}, expected {VERSION}"
                )))
            }
        }
        let r: LeaseRecord =
            serde_json::from_value(v).map_err(|e| RecordError::Malformed(e.to_string()))?;
        if r.holder.is_empty() {
            return Err(RecordError::Malformed("`holder` is empty".into()));
        }
        if r.nonce.is_empty() {
            return Err(RecordError::Malformed("`nonce` is empty".into()));
        }
        Ok(r)
    }

    /// Serialize for writing.
    pub fn to_body(&self) -> Vec<u8> {
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_vec_pretty(self).expect("lease record serializes")
    }

    /// The lease duration the holder asked for.
    pub fn lease_duration(&self) -> Duration {
        Duration::from_millis(self.lease_duration_ms)
    }

    /// Age of the last write by the wall clock (for `status` only; may be off
    /// by any clock offset between hosts).
    pub fn wall_age(&self, now: SystemTime) -> Option<Duration> {
        let at = humantime::parse_rfc3339_weak(&self.renewed_at).ok()?;
        now.duration_since(at).ok()
    }
}

/// A fresh random write id: 128 bits, hex.
pub fn new_nonce() -> String {
    nonce_from(&mut rand::rng())
}

/// A write nonce drawn from `rng` (the election's own, seeded in the
/// simulation so that a run replays exactly).
pub fn nonce_from(rng: &mut impl rand::Rng) -> String {
    let n: u128 = rng.random();
    format!("{n:032x}")
}

/// A fresh incarnation id: 16 hex digits from the OS's RNG, drawn once per
/// process start.
pub fn new_incarnation() -> String {
    let n: u64 = rand::random();
    format!("{n:016x}")
}

/// Wall-clock now, RFC 3339 with milliseconds, for the human-facing fields.
pub fn wall_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl fmt::Display for LeaseRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "holder={} term={} released={}",
            self.holder, self.term, self.released
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> LeaseRecord {
        LeaseRecord {
            schema: SCHEMA.into(),
            version: VERSION,
            election: "e".into(),
            holder: "a".into(),
            term: 3,
            lease_duration_ms: 15000,
            acquired_at: wall_now(),
            renewed_at: wall_now(),
            transitions: 2,
            nonce: new_nonce(),
            released: false,
            holder_address: None,
            successors: Vec::new(),
            successor_addresses: Vec::new(),
            reset_by: None,
            released_because: None,
            incarnation: Some("00c0ffee00c0ffee".into()),
        }
    }

    #[test]
    fn round_trip() {
        let r = sample();
        assert_eq!(LeaseRecord::parse(&r.to_body()).unwrap(), r);
    }

    #[test]
    fn reset_records_say_who_reset_them_and_older_ones_parse() {
        let mut r = sample();
        r.released = true;
        r.reset_by = Some("oncall@laptop".into());
        let body = r.to_body();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["reset_by"], "oncall@laptop");
        assert_eq!(LeaseRecord::parse(&body).unwrap(), r);
        // A record without the field (every holder's) does not carry it.
        let plain = sample().to_body();
        assert!(!String::from_utf8_lossy(&plain).contains("reset_by"));
        assert_eq!(LeaseRecord::parse(&plain).unwrap().reset_by, None);
        assert_eq!(
            RecordError::salvage_holder(br#"{"holder":"web-1","x":1}"#).as_deref(),
            Some("web-1")
        );
        assert_eq!(RecordError::salvage_holder(br#"{"holder":"a b"}"#), None);
        assert_eq!(RecordError::salvage_holder(br#"{"holder":7}"#), None);
        assert_eq!(RecordError::salvage_holder(b"junk"), None);
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(new_nonce(), new_nonce());
        assert_eq!(new_nonce().len(), 32);
    }

    #[test]
    fn bad_bodies_are_classified() {
        assert!(matches!(
            LeaseRecord::parse(b"hello"),
            Err(RecordError::NotJson(_))
        ));
        assert_eq!(LeaseRecord::parse(b"{\"a\":1}"), Err(RecordError::Foreign));
        assert_eq!(LeaseRecord::parse(b"[1,2]"), Err(RecordError::Foreign));
        let future = format!("{{\"schema\":\"{SCHEMA}\",\"version\":7,\"term\":9}}");
        assert_eq!(
            LeaseRecord::parse(future.as_bytes()),
            Err(RecordError::FutureVersion(7))
        );
        assert_eq!(RecordError::salvage_term(future.as_bytes()), Some(9));
        let missing = format!("{{\"schema\":\"{SCHEMA}\",\"version\":1}}");
        assert!(matches!(
            LeaseRecord::parse(missing.as_bytes()),
            Err(RecordError::Malformed(_))
        ));
        let big = vec![b' '; MAX_RECORD_BYTES + 1];
        assert!(matches!(
            LeaseRecord::parse(&big),
            Err(RecordError::TooLarge { .. })
        ));
    }

    #[test]
    fn unknown_fields_of_the_same_version_are_tolerated() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["extra"] = serde_json::json!(1);
        assert!(LeaseRecord::parse(&serde_json::to_vec(&v).unwrap()).is_ok());
    }

    /// The size limit is 64 KiB exactly: a record padded to the limit
    /// parses, one byte more is "too large" without being parsed.
    #[test]
    fn the_size_limit_is_64_kib_exactly() {
        assert_eq!(MAX_RECORD_BYTES, 65536);
        let mut body = sample().to_body();
        body.resize(MAX_RECORD_BYTES, b' ');
        assert!(LeaseRecord::parse(&body).is_ok());
        body.push(b' ');
        assert_eq!(
            LeaseRecord::parse(&body),
            Err(RecordError::TooLarge { size: 65537 })
        );
    }

    /// Only a version above ours is "from a newer s3-elector"; ours parses,
    /// and anything else is malformed.
    #[test]
    fn versions_are_told_apart() {
        let with = |v: serde_json::Value| {
            let mut j: serde_json::Value = serde_json::from_slice(&sample().to_body()).unwrap();
            j["version"] = v;
            LeaseRecord::parse(&serde_json::to_vec(&j).unwrap())
        };
        assert!(with(serde_json::json!(VERSION)).is_ok());
        assert_eq!(
            with(serde_json::json!(VERSION + 1)),
            Err(RecordError::FutureVersion(VERSION + 1))
        );
        assert!(matches!(
            with(serde_json::json!(0)),
            Err(RecordError::Malformed(_))
        ));
        assert!(matches!(
            with(serde_json::json!("1")),
            Err(RecordError::Malformed(_))
        ));
    }

    /// The holder's own lease duration, the wall-clock age of its last
    /// write, the wall clock's format, and the one-line description.
    #[test]
    fn derived_fields_and_the_description() {
        let mut r = sample();
        r.lease_duration_ms = 30_500;
        assert_eq!(r.lease_duration(), Duration::from_millis(30_500));
        let now = SystemTime::now();
        r.renewed_at = humantime::format_rfc3339_millis(now - Duration::from_secs(5)).to_string();
        let age = r.wall_age(now).expect("an age");
        assert!(
            age >= Duration::from_millis(4990) && age <= Duration::from_millis(5010),
            "{age:?}"
        );
        r.renewed_at = "yesterday".into();
        assert_eq!(r.wall_age(now), None);
        let w = humantime::parse_rfc3339_weak(&wall_now()).expect("RFC 3339");
        assert!(SystemTime::now().duration_since(w).unwrap_or_default() < Duration::from_secs(2));
        assert_eq!(format!("{r}"), "holder=a term=3 released=false");
    }
}
