//! Far followers: copies a record does not name as successors watch one
//! that it names, over HTTP (`peers::watch`), and read the lease once per
//! `far_poll` instead of at the renewal rate. Pure choice of whom to watch.
//!
//! Only ever moves reads later, never a write sooner (rule 16): a far
//! follower's takeover time is the same as any follower's.

use crate::lease::record::{LeaseRecord, Successor};

/// This copy's place in a record's successor list: 0 for the first (or
/// when the list is empty), the list's length when not named.
pub fn rank(r: &LeaseRecord, identity: &str) -> u32 {
    r.successors
        .iter()
        .position(|c| c == identity)
        .unwrap_or(r.successors.len()) as u32
}

/// The named successor `identity` should watch, when it is a far follower
/// of `r` (held by another copy, naming successors with addresses, not
/// naming `identity`): one of the addresses, chosen by the identity, so
/// that the far followers spread over the successors.
pub fn target(r: &LeaseRecord, identity: &str) -> Option<Successor> {
    if r.released || (rank(r, identity) as usize) < r.successors.len() {
        return None;
    }
    let addresses: Vec<Successor> = r
        .successors
        .iter()
        .zip(&r.successor_addresses)
        .filter(|(_, a)| !a.is_empty())
        .map(|(identity, address)| Successor {
            identity: identity.clone(),
            address: Some(address.clone()),
        })
        .collect();
    if addresses.is_empty() {
        return None;
    }
    // FNV-1a: the same choice on every run and every build.
    let h = identity.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Some(addresses[(h % addresses.len() as u64) as usize].clone())
}
