//! Priority-failover pools → the weight and flush VPP gets for each backend.
//!
//! Pure helpers used by the checker (frontend state, `show frontend`) and by
//! the VPP reconciler (desired AS weights), so the two can never disagree.
//! Two opt-in policies live here too: slow start ([`ramp`]) and failing
//! open below `min-healthy` ([`plan`]).

use std::fmt;
use std::time::Duration;

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

/// A frontend's aggregate health (serialized as [`FrontendState::as_str`]).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum FrontendState {
    /// No backend has a verdict yet.
    Unknown,
    /// At least one backend gets traffic.
    Up,
    /// Nothing gets traffic.
    Down,
    /// Fewer than `min-healthy` of the serving pool are up and no lower
    /// pool can take over: its configured backends serve at their
    /// configured weights whatever their health (fail open).
    Panic,
}

impl FrontendState {
    /// The operator's word.
    pub fn as_str(self) -> &'static str {
        match self {
            FrontendState::Unknown => "unknown",
            FrontendState::Up => "up",
            FrontendState::Down => "down",
            FrontendState::Panic => "panic",
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

/// Which pool serves, and whether in panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Index of the serving pool.
    pub active: usize,
    /// Failing open: the serving pool's backends get their configured
    /// weights whatever their health.
    pub panic: bool,
}

/// Percent of `pool`'s weighted backends that are up (`None`: the pool
/// has no backend with a weight above 0).
fn healthy_percent(pool: &Pool, state_of: impl Fn(&str) -> State) -> Option<u64> {
    let weighted = pool.backends.values().filter(|w| **w > 0).count() as u64;
    let up = pool
        .backends
        .iter()
        .filter(|(n, w)| **w > 0 && state_of(n) == State::Up)
        .count() as u64;
    (weighted > 0).then(|| up * 100 / weighted)
}

/// The serving pool of `fe`. Without `min-healthy` it is [`active_pool`].
/// With it, a serving pool below the threshold hands over to the first
/// lower pool at or above it; when there is none, the pool that would
/// serve fails open (`panic`): a prober that lost its network sees every
/// backend die, and sending the VIP's traffic nowhere is the worse answer
/// (Envoy's panic threshold, PyBal's depool threshold).
pub fn plan(fe: &Frontend, state_of: impl Fn(&str) -> State + Copy) -> Plan {
    let active = active_pool(&fe.pools, state_of);
    let Some(min) = fe.min_healthy else {
        return Plan {
            active,
            panic: false,
        };
    };
    let enough = |i: usize| {
        fe.pools
            .get(i)
            .and_then(|p| healthy_percent(p, state_of))
            .is_some_and(|pct| pct >= u64::from(min))
    };
    if enough(active) {
        return Plan {
            active,
            panic: false,
        };
    }
    if let Some(i) = (active + 1..fe.pools.len()).find(|&i| enough(i)) {
        return Plan {
            active: i,
            panic: false,
        };
    }
    // Only evidence fails open: backends still `unknown` (startup) are not.
    let failing = fe.pools.get(active).is_some_and(|p| {
        p.backends
            .iter()
            .any(|(n, w)| *w > 0 && state_of(n) == State::Down)
    });
    Plan {
        active,
        panic: failing,
    }
}

/// Slow start: the weight of a backend that came up `up_for` ago and
/// ramps to `configured` over `over`, in steps of one second: step k
/// (k = 1, 2, ...) gives `ceil(configured * k / steps)`, at least 1, so
/// the first second already takes a small share and Maglev only ever
/// moves buckets towards the new backend. `configured` once `over` has
/// passed (HAProxy's `slowstart`, in whole-second steps).
pub fn ramp(configured: u8, up_for: Duration, over: Duration) -> u8 {
    if over.is_zero() || up_for >= over || configured == 0 {
        return configured;
    }
    let steps = over.as_secs_f64().ceil().max(1.0);
    let k = (up_for.as_secs() + 1) as f64;
    let w = (f64::from(configured) * k / steps).ceil();
    (w as u8).clamp(1, configured)
}

/// When (measured from the backend coming up) the ramp takes its next
/// step; `None` once it is over.
pub fn next_step(up_for: Duration, over: Duration) -> Option<Duration> {
    (up_for < over).then(|| Duration::from_secs(up_for.as_secs() + 1).min(over))
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

/// The weight and flush of backend `name` (configured `configured`, in
/// pool `pool`) under `plan`; `up_for` is how long it has been up, for
/// slow start.
pub fn member_weight(
    fe: &Frontend,
    plan: Plan,
    pool: usize,
    name: &str,
    configured: u8,
    state: State,
    up_for: Option<Duration>,
) -> AsWeight {
    let serving = pool == plan.active;
    if plan.panic && serving {
        // Health is not trusted; the operator's actions still are.
        return match state {
            State::Up | State::Down | State::Unknown => AsWeight {
                weight: configured.min(100),
                flush: false,
            },
            other => effective_weight(other, false, configured, fe.flush_on_down),
        };
    }
    let slow = fe.pools.get(pool).and_then(|p| p.slow_start.get(name));
    let configured = match (slow, up_for) {
        (Some(over), Some(up_for)) => ramp(configured, up_for, *over),
        _ => configured,
    };
    effective_weight(state, serving, configured, fe.flush_on_down)
}

/// Every backend of `fe` with its pool index and effective weight, in pool
/// order then name order (`up_for`: how long a backend has been up). The
/// checker computes them member by member ([`member_weight`]); this is the
/// truth table's test view.
#[cfg(test)]
pub fn frontend_weights(
    fe: &Frontend,
    state_of: impl Fn(&str) -> State + Copy,
    up_for: impl Fn(&str) -> Option<Duration>,
) -> Vec<(usize, &str, AsWeight)> {
    weights_under(fe, plan(fe, state_of), state_of, up_for)
}

/// [`frontend_weights`] under an already computed plan.
fn weights_under(
    fe: &Frontend,
    plan: Plan,
    state_of: impl Fn(&str) -> State,
    up_for: impl Fn(&str) -> Option<Duration>,
) -> Vec<(usize, &str, AsWeight)> {
    let mut out = Vec::new();
    for (i, pool) in fe.pools.iter().enumerate() {
        for (name, &w) in &pool.backends {
            let aw = member_weight(fe, plan, i, name, w, state_of(name), up_for(name));
            out.push((i, name.as_str(), aw));
        }
    }
    out
}

/// `panic` while failing open; otherwise `up` if any backend gets a weight
/// above 0, `unknown` while every backend is still `unknown`, `down`.
pub fn frontend_state(fe: &Frontend, state_of: impl Fn(&str) -> State + Copy) -> FrontendState {
    let plan = plan(fe, state_of);
    let weights = weights_under(fe, plan, state_of, |_| None);
    if weights.iter().any(|(_, _, aw)| aw.weight > 0) {
        if plan.panic {
            FrontendState::Panic
        } else {
            FrontendState::Up
        }
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
                    slow_start: BTreeMap::new(),
                })
                .collect(),
            min_healthy: None,
            announce: Default::default(),
            new_flows_table_length: 1024,
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
        let w = frontend_weights(&f, states(&[("a", Up), ("b", Up), ("c", Up)]), |_| None);
        let ws: Vec<(&str, u8)> = w.iter().map(|(_, n, aw)| (*n, aw.weight)).collect();
        assert_eq!(ws, vec![("a", 100), ("b", 50), ("c", 0)]);
        let w = frontend_weights(&f, states(&[("a", Down), ("b", Down), ("c", Up)]), |_| None);
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

    fn with_min(mut f: Frontend, pct: u8) -> Frontend {
        f.min_healthy = Some(pct);
        f
    }

    #[test]
    fn ramp_steps_once_a_second_from_a_small_weight_to_the_configured_one() {
        let over = Duration::from_secs(10);
        let w: Vec<u8> = (0..=11)
            .map(|s| ramp(100, Duration::from_millis(s * 1000 + 500), over))
            .collect();
        assert_eq!(w, [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 100, 100]);
        // Within a second the weight holds: at most one step a second.
        assert_eq!(
            ramp(100, Duration::from_millis(3000), over),
            ramp(100, Duration::from_millis(3999), over)
        );
        // Small weights never start at 0 and never exceed the configured.
        assert_eq!(ramp(3, Duration::ZERO, over), 1);
        assert_eq!(ramp(3, Duration::from_secs(9), over), 3);
        assert_eq!(ramp(0, Duration::ZERO, over), 0);
        // A fractional duration rounds the step count up.
        assert_eq!(ramp(50, Duration::ZERO, Duration::from_millis(2500)), 17);
        assert_eq!(
            ramp(50, Duration::from_millis(2600), Duration::from_millis(2500)),
            50
        );
        // No slow start: the configured weight at once.
        assert_eq!(ramp(70, Duration::ZERO, Duration::ZERO), 70);
    }

    #[test]
    fn the_next_step_is_on_the_next_whole_second_until_the_end() {
        let over = Duration::from_millis(2500);
        assert_eq!(
            next_step(Duration::ZERO, over),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            next_step(Duration::from_millis(1999), over),
            Some(Duration::from_secs(2))
        );
        assert_eq!(next_step(Duration::from_millis(2100), over), Some(over));
        assert_eq!(next_step(over, over), None);
    }

    #[test]
    fn slow_start_applies_to_serving_up_backends_only() {
        let mut f = fe(&[("p", &[("a", 100), ("b", 40)]), ("f", &[("c", 100)])]);
        f.pools[0]
            .slow_start
            .insert("a".into(), Duration::from_secs(4));
        let up = |n: &str| (n == "a").then_some(Duration::from_millis(1500));
        let st = states(&[("a", Up), ("b", Up), ("c", Up)]);
        let w: Vec<(&str, u8)> = frontend_weights(&f, st, up)
            .iter()
            .map(|(_, n, aw)| (*n, aw.weight))
            .collect();
        assert_eq!(w, [("a", 50), ("b", 40), ("c", 0)]);
        // Down: 0 whatever the ramp; a transition ends the ramp (the
        // checker forgets when it came up).
        let w = frontend_weights(&f, states(&[("a", Down), ("b", Up)]), up);
        assert_eq!(w[0].2.weight, 0);
    }

    #[test]
    fn min_healthy_fails_over_then_fails_open() {
        let f = with_min(
            fe(&[
                ("p", &[("a", 100), ("b", 100), ("c", 100), ("d", 100)]),
                ("f", &[("x", 60), ("y", 60)]),
            ]),
            50,
        );
        // 2 of 4 up: at the threshold, normal.
        let st = states(&[
            ("a", Up),
            ("b", Up),
            ("c", Down),
            ("d", Down),
            ("x", Up),
            ("y", Up),
        ]);
        assert_eq!(
            plan(&f, st),
            Plan {
                active: 0,
                panic: false
            }
        );
        // 1 of 4: below; the fallback pool is healthy, so it takes over
        // (without min-healthy, p would keep serving with one backend).
        let st = states(&[
            ("a", Up),
            ("b", Down),
            ("c", Down),
            ("d", Down),
            ("x", Up),
            ("y", Up),
        ]);
        assert_eq!(
            plan(&f, st),
            Plan {
                active: 1,
                panic: false
            }
        );
        let w = frontend_weights(&f, st, |_| None);
        assert_eq!(
            w.iter().map(|x| x.2.weight).collect::<Vec<_>>(),
            [0, 0, 0, 0, 60, 60]
        );
        // Everything down (the prober lost its network): fail open on p.
        let st = states(&[
            ("a", Down),
            ("b", Down),
            ("c", Down),
            ("d", Down),
            ("x", Down),
            ("y", Down),
        ]);
        assert_eq!(
            plan(&f, st),
            Plan {
                active: 0,
                panic: true
            }
        );
        assert_eq!(frontend_state(&f, st), FrontendState::Panic);
        let w = frontend_weights(&f, st, |_| None);
        assert_eq!(
            w.iter()
                .map(|x| (x.2.weight, x.2.flush))
                .collect::<Vec<_>>(),
            [
                (100, false),
                (100, false),
                (100, false),
                (100, false),
                (0, true),
                (0, true)
            ]
        );
        // The operator's actions still count in panic.
        let st = states(&[
            ("a", Disabled),
            ("b", Paused),
            ("c", Down),
            ("d", Down),
            ("x", Down),
            ("y", Down),
        ]);
        let w = frontend_weights(&f, st, |_| None);
        assert_eq!(
            w[0].2,
            AsWeight {
                weight: 0,
                flush: true
            }
        );
        assert_eq!(
            w[1].2,
            AsWeight {
                weight: 0,
                flush: false
            }
        );
        assert_eq!(w[2].2.weight, 100);
        // Recovery above the threshold leaves panic.
        let st = states(&[
            ("a", Up),
            ("b", Up),
            ("c", Down),
            ("d", Down),
            ("x", Down),
            ("y", Down),
        ]);
        assert_eq!(frontend_state(&f, st), FrontendState::Up);
        // Without min-healthy the same outage empties the VIP.
        let mut g = f.clone();
        g.min_healthy = None;
        let st = states(&[
            ("a", Down),
            ("b", Down),
            ("c", Down),
            ("d", Down),
            ("x", Down),
            ("y", Down),
        ]);
        assert_eq!(frontend_state(&g, st), FrontendState::Down);
        assert!(
            frontend_weights(&g, st, |_| None)
                .iter()
                .all(|x| x.2.weight == 0)
        );
        // At startup (no verdicts yet) nothing fails open.
        assert_eq!(frontend_state(&f, states(&[])), FrontendState::Unknown);
    }
}
