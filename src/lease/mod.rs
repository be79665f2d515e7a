//! What decides who leads: the record in the lease object, the store it
//! lives in, the probe that refuses a store ignoring conditional writes,
//! and the election that owns the lease.
//!
//! Invariant: only [`election`] writes the lease key, and only with a
//! conditional write ([`store::LeaseStore::put_if_absent`] or
//! [`store::LeaseStore::put_if_match`]). The `reset` command is the one
//! exception, an operator's conditional replacement of an unusable object.

pub mod clock;
pub mod election;
pub mod floor;
pub mod probe;
pub mod record;
#[cfg(test)]
pub mod sim;
pub mod store;
