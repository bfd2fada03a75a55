//! `maglevt`: probes every VIP from outside the load balancer, as a client
//! would, and shows which backend answers, the latency and every failure.
//!
//! [`target`] picks the VIPs from the configuration files, [`client`]
//! probes one VIP on its own thread, [`stats`] keeps its figures (pure)
//! and [`screen`] draws them; the binary (`src/bin/maglevt.rs`) is the
//! terminal and the main loop.

pub mod client;
pub mod screen;
pub mod stats;
pub mod sys;
pub mod target;
