//! How the election's state is shown to operators and machines. Every
//! surface subscribes to the published [`State`](crate::lease::election::State)
//! and never talks to the store, so no surface can slow the election down.

pub mod conns;
pub mod http;
pub mod journal;
pub mod kube;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod pod_label;
pub mod problems;
pub mod status_file;
pub mod view;
