//! s3-elector: leader election through one S3 object and conditional writes.
//!
//! # Layout
//! - [`config`]: the YAML config, defaults and validation (exit code 64).
//! - [`record`]: the lease record stored in the object.
//! - [`store`]: the store seam, with the S3 and in-memory implementations.
//! - [`election`]: the state machine; owns the lease, publishes [`election::State`].
//! - [`registry`]: the candidate registry and wake-ups (fast hand-over hints).
//! - [`probe`]: the conformance probe that refuses stores ignoring conditions.
//! - [`cost`]: request rates and monthly cost implied by the timings.
//! - [`signals`]: OS signals turned into one enum.
//! - [`cli`]: the `run`, `check`, `status` and `reset` commands.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod cost;
pub mod election;
pub mod hooks;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod probe;
pub mod procs;
pub mod record;
pub mod registry;
pub mod signals;
pub mod status_file;
pub mod store;
pub mod supervisor;
pub mod view;
