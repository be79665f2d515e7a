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
//! - [`config`]: the YAML file, defaults, validation (exit code 64) and the
//!   layering of file < environment < flags.
//! - [`lease`]: what decides who leads.
//!   - [`lease::record`]: the lease record stored in the object.
//!   - [`lease::store`]: the store seam, with the S3 and in-memory implementations.
//!   - [`lease::probe`]: the conformance probe that refuses stores ignoring conditions.
//!   - [`lease::election`]: the state machine; owns the lease, publishes [`State`].
//! - [`surfaces`]: how the state is shown; each only reads the published state.
//!   - [`surfaces::http`]: `GET /leader`, health, metrics, step-down and wake-up.
//!   - [`surfaces::view`]: the JSON view shared by `GET /leader` and the status file.
//!   - [`surfaces::status_file`]: the atomically rewritten status file.
//!   - [`surfaces::metrics`]: Prometheus metrics and the metered store.
//!   - [`surfaces::notify`]: systemd readiness, status and watchdog.
//!   - [`surfaces::logging`]: the log format and filter.
//! - [`work`]: what runs only while leading (or on a change of leader).
//!   - [`work::hooks`]: `on_acquired`, `on_lost`, `on_leader_changed`.
//!   - [`work::supervisor`]: the program after `--`, run only while leading.
//!   - [`work::procs`]: process groups: start, stop, kill on exit.
//!   - [`work::guard`]: the process between the daemon and each program or
//!     hook, which stops it when the daemon dies or freezes.
//! - [`health`]: the copy's own health check and its verdict, which only
//!   decides who hands over to whom (never lets anyone write sooner).
//! - [`peers`]: talking to the other copies (hints only, never safety).
//!   - [`peers::client`]: one small HTTP client (hyper) for another daemon's endpoint.
//!   - [`peers::registry`]: the candidate registry and wake-ups (fast hand-over).
//! - [`fenced`]: writes of the leader's own S3 objects that refuse a stale
//!   term (a library and `s3-elector fenced`); independent of the election,
//!   it needs only the store and a term.
//! - [`daemon`]: assembles the tasks; owns the startup and the shutdown order.
//! - [`signals`]: OS signals turned into one enum.
//! - [`cost`]: request rates and monthly cost implied by the timings.
//! - [`cli`]: parses the command line, runs a command (`run`, `check`,
//!   `status`, `reset`, `step-down`, `is-leader`, `fenced`, `man`), maps
//!   errors to exit codes.
//!
//! [`State`]: lease::election::State
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod cost;
pub mod daemon;
pub mod fenced;
pub mod health;
pub mod lease;
pub mod peers;
pub mod signals;
pub mod surfaces;
pub mod work;
