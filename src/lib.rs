//! vpp-maglev: health checking and control plane for VPP's Maglev load balancer.
//!
//! The library holds everything; the `maglevd` and `maglevc` binaries are thin
//! argument-parsing shells over it. See `ARCHITECTURE.md` in the design notes
//! for the thread layout: each thread owns its state and talks to the others
//! over `crossbeam_channel`s; readers get immutable snapshots.

#![warn(missing_docs)]

pub mod config;
