//! s3-elector: leader election through one S3 object and conditional writes.
//!
//! # Layout
//! Data flows one way: config → store → probe → election → [`State`] on a
//! `watch` channel → surfaces and work. Nothing but the election writes
//! the lease object; nothing below the election imports from above it.
//! The few channels back into the election (successors, the watched
//! successor, release barriers, step-down, wake-ups) are drawn in
//! [`lease::election`]'s docs; each can only delay a write, make a read
//! sooner, or end a leadership.
//!
//! The tree, file by file, is mapped in `CONTRIBUTING.md` (the one layout
//! map; a test checks it names every source file). Each module's own docs
//! state its invariants.
//!
//! [`State`]: lease::election::State
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod cost;
pub mod daemon;
pub mod exit;
pub mod fenced;
pub mod health;
pub mod lease;
pub mod peers;
pub mod signals;
pub mod surfaces;
pub mod work;
