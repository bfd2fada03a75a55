//! Priority-failover pools → the weight and flush VPP gets for each backend.
//!
//! Pure helpers used by the checker (frontend state, `show frontend`) and by
//! the VPP reconciler (desired AS weights), so the two can never disagree.

use std::fmt;

use super::state::State;
use crate::config::{Frontend, Pool};

/// What VPP should hold for one application server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsWeight {
    /// 0..=100; 0 drains (no new flows).
    pub weight: u8,
    /// Also drop the AS's established flows from VPP's sticky table.
    pub flush: bool,
}

/// A frontend's aggregate health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FrontendState {
    /// No backend has a verdict yet.
    Unknown,
    /// At least one backend gets traffic.
    Up,
    /// Nothing gets traffic.
    Down,
}

impl FrontendState {
    /// The operator's word.
    pub fn as_str(self) -> &'static str {
        match self {
            FrontendState::Unknown => "unknown",
            FrontendState::Up => "up",
            FrontendState::Down => "down",
        }
    }
}

impl fmt::Display for FrontendState {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Index of the pool that carries traffic: the first with a backend that is
/// `up` and has a configured weight above 0. When none qualifies, 0 (every
/// backend then gets weight 0 anyway).
pub fn active_pool(pools: &[Pool], state_of: impl Fn(&str) -> State) -> usize {
    pools
        .iter()
        .position(|p| {
            p.backends
                .iter()
                .any(|(name, &w)| w > 0 && state_of(name) == State::Up)
        })
        .unwrap_or(0)
}

/// The truth table: a backend's state and pool position → VPP weight/flush.
///
/// | state    | in active pool | weight     | flush          |
/// |----------|----------------|------------|----------------|
/// | up       | yes            | configured | no             |
/// | up       | no (standby)   | 0          | no             |
/// | unknown  | any            | 0          | no             |
/// | paused   | any            | 0          | no             |
/// | down     | any            | 0          | flush-on-down  |
/// | disabled | any            | 0          | yes            |
/// | removed  | any            | 0          | yes            |
pub fn effective_weight(
    state: State,
    in_active_pool: bool,
    configured: u8,
    flush_on_down: bool,
) -> AsWeight {
    let (weight, flush) = match state {
        State::Up if in_active_pool => (configured.min(100), false),
        State::Up | State::Unknown | State::Paused => (0, false),
        State::Down => (0, flush_on_down),
        State::Disabled | State::Removed => (0, true),
    };
    AsWeight { weight, flush }
}

/// Every backend of `fe` with its pool index and effective weight, in pool
/// order then name order.
pub fn frontend_weights(
    fe: &Frontend,
    state_of: impl Fn(&str) -> State + Copy,
) -> Vec<(usize, &str, AsWeight)> {
    let active = active_pool(&fe.pools, state_of);
    let mut out = Vec::new();
    for (i, pool) in fe.pools.iter().enumerate() {
        for (name, &w) in &pool.backends {
            let aw = effective_weight(state_of(name), i == active, w, fe.flush_on_down);
            out.push((i, name.as_str(), aw));
        }
    }
    out
}

/// `up` if any backend gets a weight above 0; `unknown` while every backend
/// is still `unknown`; `down` otherwise.
pub fn frontend_state(fe: &Frontend, state_of: impl Fn(&str) -> State + Copy) -> FrontendState {
    let weights = frontend_weights(fe, state_of);
    if weights.iter().any(|(_, _, aw)| aw.weight > 0) {
        FrontendState::Up
    } else if weights
        .iter()
        .all(|(_, name, _)| state_of(name) == State::Unknown)
    {
        FrontendState::Unknown
    } else {
        FrontendState::Down
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    use State::*;

    #[test]
    fn truth_table_every_row() {
        // (state, active, configured, flush_on_down) → (weight, flush)
        let rows = [
            (Up, true, 100, true, 100, false),
            (Up, true, 37, false, 37, false),
            (Up, true, 0, true, 0, false),
            (Up, false, 100, true, 0, false),
            (Up, false, 100, false, 0, false),
            (Unknown, true, 100, true, 0, false),
            (Unknown, false, 100, false, 0, false),
            (Paused, true, 100, true, 0, false),
            (Paused, false, 100, false, 0, false),
            (Down, true, 100, true, 0, true),
            (Down, true, 100, false, 0, false),
            (Down, false, 100, true, 0, true),
            (Down, false, 100, false, 0, false),
            (Disabled, true, 100, false, 0, true),
            (Disabled, false, 100, true, 0, true),
            (Removed, true, 100, false, 0, true),
            (Removed, false, 100, true, 0, true),
        ];
        for (state, active, cfg, fod, w, flush) in rows {
            assert_eq!(
                effective_weight(state, active, cfg, fod),
                AsWeight { weight: w, flush },
                "{state} active={active} cfg={cfg} flush_on_down={fod}"
            );
        }
        // Every state appears in the table.
        for s in State::ALL {
            assert!(rows.iter().any(|r| r.0 == s), "{s} missing");
        }
    }

    fn fe(pools: &[(&str, &[(&str, u8)])]) -> Frontend {
        Frontend {
            description: String::new(),
            address: "192.0.2.1".parse::<IpAddr>().unwrap(),
            protocol: None,
            port: 0,
            src_ip_sticky: false,
            flush_on_down: true,
            pools: pools
                .iter()
                .map(|(name, bs)| Pool {
                    name: name.to_string(),
                    backends: bs
                        .iter()
                        .map(|(b, w)| (b.to_string(), *w))
                        .collect::<BTreeMap<_, _>>(),
                })
                .collect(),
        }
    }

    fn states<'a>(m: &'a [(&'a str, State)]) -> impl Fn(&str) -> State + Copy + 'a {
        move |n| m.iter().find(|(k, _)| *k == n).map_or(Unknown, |(_, s)| *s)
    }

    #[test]
    fn first_pool_with_an_up_weighted_backend_is_active() {
        let f = fe(&[("p", &[("a", 100), ("b", 100)]), ("f", &[("c", 100)])]);
        assert_eq!(active_pool(&f.pools, states(&[("a", Up), ("c", Up)])), 0);
        assert_eq!(
            active_pool(&f.pools, states(&[("a", Down), ("b", Down), ("c", Up)])),
            1
        );
        assert_eq!(active_pool(&f.pools, states(&[("c", Down)])), 0, "none up");
    }

    #[test]
    fn up_with_weight_zero_does_not_hold_a_pool() {
        let f = fe(&[("p", &[("a", 0)]), ("f", &[("c", 100)])]);
        assert_eq!(active_pool(&f.pools, states(&[("a", Up), ("c", Up)])), 1);
    }

    #[test]
    fn failover_weights() {
        let f = fe(&[("p", &[("a", 100), ("b", 50)]), ("f", &[("c", 100)])]);
        let w = frontend_weights(&f, states(&[("a", Up), ("b", Up), ("c", Up)]));
        let ws: Vec<(&str, u8)> = w.iter().map(|(_, n, aw)| (*n, aw.weight)).collect();
        assert_eq!(ws, vec![("a", 100), ("b", 50), ("c", 0)]);
        let w = frontend_weights(&f, states(&[("a", Down), ("b", Down), ("c", Up)]));
        let ws: Vec<(&str, u8, bool)> = w
            .iter()
            .map(|(_, n, aw)| (*n, aw.weight, aw.flush))
            .collect();
        assert_eq!(ws, vec![("a", 0, true), ("b", 0, true), ("c", 100, false)]);
    }

    #[test]
    fn frontend_states() {
        let f = fe(&[("p", &[("a", 100)]), ("f", &[("c", 100)])]);
        assert_eq!(frontend_state(&f, states(&[])), FrontendState::Unknown);
        assert_eq!(frontend_state(&f, states(&[("a", Up)])), FrontendState::Up);
        assert_eq!(
            frontend_state(&f, states(&[("a", Down)])),
            FrontendState::Down
        );
        assert_eq!(
            frontend_state(&f, states(&[("a", Down), ("c", Up)])),
            FrontendState::Up
        );
        assert_eq!(
            frontend_state(&f, states(&[("a", Disabled), ("c", Disabled)])),
            FrontendState::Down
        );
        // Every weight configured 0: nothing gets traffic although all are up.
        let z = fe(&[("p", &[("a", 0)])]);
        assert_eq!(
            frontend_state(&z, states(&[("a", Up)])),
            FrontendState::Down
        );
    }
}
