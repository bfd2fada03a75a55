//! What is known about VPP right now: published by the reconciler (the
//! only code that talks to VPP's API), read by the stats thread, metrics
//! and the control socket. Its own module so that readers depend on the
//! fact, not on the reconciler.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::client::VersionInfo;
use super::wire::LbVip;
pub use crate::checker::events::Dataplane;

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
    /// The VIPs VPP held at the last read of its state.
    pub vips: Vec<VipStatus>,
    /// Every configured frontend's VPP status, by name.
    pub frontends: BTreeMap<String, FrontendVpp>,
}

/// An operation VPP refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The operation, as logged (`as-add vip=... as=... weight=...`).
    pub op: String,
    /// VPP's answer (`VNET_API_ERROR_INVALID_ADDRESS_FAMILY (-97)`).
    pub error: String,
    /// When.
    pub at: SystemTime,
}

/// What VPP holds of one frontend.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrontendVpp {
    /// ok, refused, pending or off.
    pub state: Dataplane,
    /// Operations still needed for VPP to hold it as desired, by the last
    /// read of VPP (0 when ok; unknown, 0, while pending).
    pub unheld: usize,
    /// The last operation VPP refused for it (kept after it recovers).
    pub last_refusal: Option<Refusal>,
}

/// The status rule, one frontend: `off` without VPP; `pending` while VPP is
/// down, the frontend waits for warmup or VPP's state was not read;
/// otherwise `ok` when the read holds everything desired, `refused` when
/// it does not and VPP refused an operation in the frontend's last sync,
/// `pending` when it does not for another reason (a sync under way).
pub fn classify(
    enabled: bool,
    connected: bool,
    programmable: bool,
    unheld: Option<usize>,
    refused_last_sync: bool,
) -> Dataplane {
    if !enabled {
        return Dataplane::Off;
    }
    if !connected || !programmable {
        return Dataplane::Pending;
    }
    match unheld {
        Some(0) => Dataplane::Ok,
        Some(_) if refused_last_sync => Dataplane::Refused,
        _ => Dataplane::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_rule() {
        use Dataplane::*;
        // (enabled, connected, programmable, unheld, refused) -> state
        let cases = [
            ((false, true, true, Some(0), false), Off),
            ((false, false, false, None, true), Off),
            ((true, false, true, Some(0), false), Pending),
            ((true, true, false, Some(0), false), Pending),
            ((true, true, true, None, true), Pending),
            ((true, true, true, Some(0), false), Ok),
            ((true, true, true, Some(0), true), Ok),
            ((true, true, true, Some(2), true), Refused),
            ((true, true, true, Some(2), false), Pending),
        ];
        for ((e, c, p, u, r), want) in cases {
            assert_eq!(classify(e, c, p, u, r), want, "{:?}", (e, c, p, u, r));
        }
    }

    #[test]
    fn words_are_the_protocols() {
        for (d, w) in [
            (Dataplane::Ok, "ok"),
            (Dataplane::Refused, "refused"),
            (Dataplane::Pending, "pending"),
            (Dataplane::Off, "off"),
        ] {
            assert_eq!(d.as_str(), w);
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{w}\""));
        }
    }
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
