//! The announce rule, per address: a pure function of the frontends' and
//! VPP's states. Time (hold-down, warmup) is the core's; this says only
//! whether an address is servable now, and if not, why.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::checker::events::Dataplane;
use crate::config::AnnounceMode;
use crate::health::weights::FrontendState;

/// Why an address is not announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// VPP is not connected (or not configured).
    VppDown,
    /// VPP does not hold every VIP of the address as desired (refused, or
    /// not synced yet).
    NotProgrammed,
    /// No frontend of the address with `announce: healthy` is up, and none
    /// says `always`.
    NoServingBackend,
    /// maglevd is warming up (VPP is not programmed as desired yet).
    WarmingUp,
    /// maglevd is stopping.
    Stopping,
    /// The operator withdrew every address (`set announce withdraw`).
    Maintenance,
    /// Every frontend of the address says `announce: never`.
    Never,
    /// Servable, waiting out the hold-down before announcing again.
    HoldDown,
    /// No frontend has the address any more (a reload removed it).
    Removed,
}

impl Reason {
    /// The word logged, shown and passed to `notify`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::VppDown => "vpp-down",
            Reason::NotProgrammed => "not-programmed",
            Reason::NoServingBackend => "no-serving-backend",
            Reason::WarmingUp => "warming-up",
            Reason::Stopping => "stopping",
            Reason::Maintenance => "maintenance",
            Reason::Never => "never",
            Reason::HoldDown => "hold-down",
            Reason::Removed => "removed",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the rule needs of one frontend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendFacts {
    /// Its name.
    pub name: String,
    /// Its VIP address.
    pub address: IpAddr,
    /// Its `announce` setting.
    pub mode: AnnounceMode,
    /// Its aggregate state (up and panic serve).
    pub state: FrontendState,
    /// What VPP holds of it.
    pub vpp: Dataplane,
}

/// The facts the rule decides on, at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// A VPP session is up.
    pub vpp_connected: bool,
    /// maglevd's warmup has not ended.
    pub warming: bool,
    /// maglevd is stopping.
    pub stopping: bool,
    /// The operator's maintenance withdraw is in force.
    pub maintenance: bool,
    /// Every configured frontend.
    pub frontends: Vec<FrontendFacts>,
}

/// One address's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `None`: servable now; else why not.
    pub reason: Option<Reason>,
    /// The frontends at the address, by name.
    pub frontends: Vec<String>,
}

/// The rule, for every address of `facts`' frontends (several frontends can
/// share one): servable while (a) VPP is connected and holds every VIP of
/// the address as desired, (b) a frontend there with `announce: healthy`
/// is up (a fail-open `panic` counts) or one says `always`, and (c)
/// maglevd is neither warming up nor stopping and no maintenance withdraw
/// is in force. The first failing condition, in the order of [`Reason`]'s
/// priority (stopping, maintenance, warming-up, vpp-down, never,
/// not-programmed, no-serving-backend), is the reason.
pub fn verdicts(facts: &Facts) -> BTreeMap<IpAddr, Verdict> {
    let mut by_addr: BTreeMap<IpAddr, Vec<&FrontendFacts>> = BTreeMap::new();
    for f in &facts.frontends {
        by_addr.entry(f.address).or_default().push(f);
    }
    by_addr
        .into_iter()
        .map(|(addr, fes)| {
            let reason = if facts.stopping {
                Some(Reason::Stopping)
            } else if facts.maintenance {
                Some(Reason::Maintenance)
            } else if facts.warming {
                Some(Reason::WarmingUp)
            } else if !facts.vpp_connected || fes.iter().any(|f| f.vpp == Dataplane::Off) {
                Some(Reason::VppDown)
            } else if fes.iter().all(|f| f.mode == AnnounceMode::Never) {
                Some(Reason::Never)
            } else if fes.iter().any(|f| f.vpp != Dataplane::Ok) {
                Some(Reason::NotProgrammed)
            } else if !fes.iter().any(|f| match f.mode {
                AnnounceMode::Always => true,
                AnnounceMode::Healthy => {
                    matches!(f.state, FrontendState::Up | FrontendState::Panic)
                }
                AnnounceMode::Never => false,
            }) {
                Some(Reason::NoServingBackend)
            } else {
                None
            };
            let mut names: Vec<String> = fes.iter().map(|f| f.name.clone()).collect();
            names.sort();
            (
                addr,
                Verdict {
                    reason,
                    frontends: names,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fe(name: &str, addr: &str, mode: AnnounceMode, state: FrontendState) -> FrontendFacts {
        FrontendFacts {
            name: name.into(),
            address: addr.parse().unwrap(),
            mode,
            state,
            vpp: Dataplane::Ok,
        }
    }

    fn live(frontends: Vec<FrontendFacts>) -> Facts {
        Facts {
            vpp_connected: true,
            frontends,
            ..Facts::default()
        }
    }

    fn reason(f: &Facts, addr: &str) -> Option<Reason> {
        verdicts(f)[&addr.parse::<IpAddr>().unwrap()].reason
    }

    use AnnounceMode::{Always, Healthy, Never};
    use FrontendState::{Down, Panic, Unknown, Up};

    #[test]
    fn healthy_announces_while_up_or_in_panic() {
        for (state, want) in [
            (Up, None),
            (Panic, None),
            (Down, Some(Reason::NoServingBackend)),
            (Unknown, Some(Reason::NoServingBackend)),
        ] {
            let f = live(vec![fe("web", "192.0.2.1", Healthy, state)]);
            assert_eq!(reason(&f, "192.0.2.1"), want, "{state:?}");
        }
    }

    #[test]
    fn always_needs_only_vpp_and_never_never_announces() {
        let f = live(vec![fe("web", "192.0.2.1", Always, Down)]);
        assert_eq!(reason(&f, "192.0.2.1"), None);
        let f = live(vec![fe("web", "192.0.2.1", Never, Up)]);
        assert_eq!(reason(&f, "192.0.2.1"), Some(Reason::Never));
    }

    #[test]
    fn a_shared_address_is_servable_when_one_frontend_serves_and_all_are_held() {
        let mut f = live(vec![
            fe("web", "192.0.2.1", Healthy, Down),
            fe("tls", "192.0.2.1", Healthy, Up),
            fe("dns", "192.0.2.1", Never, Down),
        ]);
        let v = &verdicts(&f)[&"192.0.2.1".parse::<IpAddr>().unwrap()];
        assert_eq!(v.reason, None);
        assert_eq!(v.frontends, ["dns", "tls", "web"]);
        // One VIP of the address refused by VPP: the address is withdrawn.
        f.frontends[0].vpp = Dataplane::Refused;
        assert_eq!(reason(&f, "192.0.2.1"), Some(Reason::NotProgrammed));
        f.frontends[0].vpp = Dataplane::Pending;
        assert_eq!(reason(&f, "192.0.2.1"), Some(Reason::NotProgrammed));
    }

    #[test]
    fn addresses_are_judged_apart() {
        let f = live(vec![
            fe("web", "192.0.2.1", Healthy, Up),
            fe("api", "192.0.2.2", Healthy, Down),
            fe("web6", "2001:db8::1", Healthy, Up),
        ]);
        let v = verdicts(&f);
        assert_eq!(v.len(), 3);
        assert_eq!(reason(&f, "192.0.2.1"), None);
        assert_eq!(reason(&f, "192.0.2.2"), Some(Reason::NoServingBackend));
        assert_eq!(reason(&f, "2001:db8::1"), None);
    }

    #[test]
    fn daemon_and_vpp_conditions_in_priority_order() {
        let base = live(vec![fe("web", "192.0.2.1", Always, Up)]);
        let with = |m: &dyn Fn(&mut Facts)| {
            let mut f = base.clone();
            m(&mut f);
            reason(&f, "192.0.2.1")
        };
        assert_eq!(with(&|f| f.vpp_connected = false), Some(Reason::VppDown));
        assert_eq!(
            with(&|f| f.frontends[0].vpp = Dataplane::Off),
            Some(Reason::VppDown)
        );
        assert_eq!(
            with(&|f| {
                f.vpp_connected = false;
                f.warming = true
            }),
            Some(Reason::WarmingUp)
        );
        assert_eq!(
            with(&|f| {
                f.warming = true;
                f.maintenance = true
            }),
            Some(Reason::Maintenance)
        );
        assert_eq!(
            with(&|f| {
                f.maintenance = true;
                f.stopping = true
            }),
            Some(Reason::Stopping)
        );
    }

    #[test]
    fn reason_words() {
        for (r, w) in [
            (Reason::VppDown, "vpp-down"),
            (Reason::NotProgrammed, "not-programmed"),
            (Reason::NoServingBackend, "no-serving-backend"),
            (Reason::WarmingUp, "warming-up"),
            (Reason::Stopping, "stopping"),
            (Reason::Maintenance, "maintenance"),
            (Reason::Never, "never"),
            (Reason::HoldDown, "hold-down"),
            (Reason::Removed, "removed"),
        ] {
            assert_eq!(r.as_str(), w);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{w}\""));
        }
    }
}
