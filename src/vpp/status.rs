//! What is known about VPP right now: published by the reconciler (the
//! only code that talks to VPP's API), read by the stats thread, metrics
//! and the control socket. Its own module so that readers depend on the
//! fact, not on the reconciler.

use std::time::SystemTime;

use super::client::VersionInfo;
use super::wire::LbVip;

/// What the reconciler knows about VPP: for `/metrics`, the stats thread
/// and `show vpp`. Replaced, never mutated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VppStatus {
    /// A session is up.
    pub connected: bool,
    /// When it came up.
    pub connected_at: Option<SystemTime>,
    /// `show_version` at connect.
    pub version: Option<VersionInfo>,
    /// VPP's pid (`control_ping_reply`).
    pub pid: Option<u32>,
    /// The VIPs VPP held at the last full sync.
    pub vips: Vec<VipStatus>,
}

/// One VIP of [`VppStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipStatus {
    /// The frontend it belongs to (`None`: not ours).
    pub frontend: Option<String>,
    /// Prefix, protocol, port.
    pub key: LbVip,
    /// Pool index: its lb counters' index in the stats segment.
    pub index: Option<u32>,
    /// FIB stats index of its prefix: its `/net/route/to` index.
    pub stats_index: Option<u32>,
    /// Sticky flows per AS address (`flows:` of `show lb vips verbose`).
    pub flows: std::collections::BTreeMap<std::net::IpAddr, u32>,
    /// The fingerprint of its new-flow table (see `vpp::maglev`).
    pub fingerprint: Option<String>,
    /// Largest gap between an AS's share of that table and of the weights,
    /// in hundredths of a percentage point.
    pub share_error_centi: u32,
}
