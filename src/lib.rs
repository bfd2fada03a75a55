//! vpp-maglev: health checking and control plane for VPP's Maglev load balancer.
//!
//! The library holds everything; the `maglevd` binary is a thin
//! argument-parsing shell over it. Each long-lived thread owns its state and
//! talks to the others over `crossbeam_channel`s; readers get immutable
//! snapshots ([`snapshot::Published`]). No async runtime: blocking sockets
//! with timeouts, on OS threads.

#![warn(missing_docs)]

pub mod announce;
pub mod checker;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
#[cfg(feature = "dashboard")]
pub mod dashboard;
pub mod health;
pub mod heartbeat;
pub mod httpd;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod probe;
pub mod snapshot;
pub mod tester;
pub mod vpp;
pub mod wake;

/// Package version, for `--version` and the `starting` log line.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Git commit the binaries were built from (`unknown` outside a checkout).
pub const GIT_COMMIT: &str = env!("MAGLEV_GIT_COMMIT");
