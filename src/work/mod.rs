//! Leader-only work: hooks and the supervised program. Part of the safety
//! promise: work that runs while another copy leads is as bad as two
//! leaders, so every path that ends leadership stops the work first.

pub mod backoff;
pub mod guard;
pub mod hooks;
pub mod procs;
pub mod supervisor;
