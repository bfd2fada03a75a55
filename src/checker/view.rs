//! What the checker publishes: immutable views of every backend, pool and
//! frontend, taken together as a [`Snapshot`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::{Backend, Config};
use crate::health::state::{LastProbe, State, Transition};
use crate::health::weights::{AsWeight, FrontendState};
use crate::probe::Code;

/// One backend as readers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendView {
    /// Configuration of the backend.
    pub config: Arc<Backend>,
    /// Current state.
    pub state: State,
    /// Runtime enabled flag.
    pub enabled: bool,
    /// Rise/fall counter and its maximum.
    pub counter: (u32, u32),
    /// Last probe, if any.
    pub last: Option<LastProbe>,
    /// Recent transitions, oldest first.
    pub history: Arc<[Transition]>,
    /// Probe and transition counts since the backend was added.
    pub counters: ProbeCounters,
}

use crate::probe::Connection;

/// Upper bounds (seconds) of the probe duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Probes by result code: a fixed array, so a snapshot copies it without
/// allocating (one per backend per publish).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodeCounts([u64; Code::ALL.len()]);

impl CodeCounts {
    /// Adds one probe with `code`.
    pub fn add(&mut self, code: Code) {
        self.0[code as usize] += 1;
    }

    /// Probes with `code`.
    pub fn get(&self, code: Code) -> u64 {
        self.0[code as usize]
    }

    /// The codes seen, with their counts, in code order.
    pub fn iter(&self) -> impl Iterator<Item = (Code, u64)> + '_ {
        Code::ALL
            .iter()
            .map(|c| (*c, self.0[*c as usize]))
            .filter(|(_, n)| *n > 0)
    }
}

/// Transitions by (from, to), as [`CodeCounts`] a fixed array.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransitionCounts([[u32; State::ALL.len()]; State::ALL.len()]);

impl TransitionCounts {
    /// Adds one transition.
    pub fn add(&mut self, from: State, to: State) {
        let n = &mut self.0[from as usize][to as usize];
        *n = n.saturating_add(1);
    }

    /// The transitions seen, with their counts, in (from, to) order.
    pub fn iter(&self) -> impl Iterator<Item = ((State, State), u64)> + '_ {
        State::ALL.iter().flat_map(move |f| {
            State::ALL
                .iter()
                .map(move |t| ((*f, *t), u64::from(self.0[*f as usize][*t as usize])))
                .filter(|(_, n)| *n > 0)
        })
    }
}

/// Probe and transition counts of one backend, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProbeCounters {
    /// Probes by result code.
    pub by_code: CodeCounts,
    /// Probes per duration bucket (not cumulative; the last slot is +Inf).
    pub duration_buckets: [u64; DURATION_BUCKETS.len() + 1],
    /// Sum of probe durations, seconds.
    pub duration_sum: f64,
    /// Transitions by (from, to).
    pub transitions: TransitionCounts,
    /// Checks that keep their connection, by how they got it: new,
    /// reused, reconnected (the order of [`ProbeCounters::CONNECTIONS`]).
    pub connections: [u64; 3],
}

impl ProbeCounters {
    /// The connection kinds counted, in `connections` order.
    pub const CONNECTIONS: [Connection; 3] = Connection::ALL;

    /// Counts one probe.
    pub fn record(&mut self, code: Code, d: Duration, connection: Option<Connection>) {
        self.by_code.add(code);
        if let Some(c) = connection {
            self.connections[c as usize] += 1;
        }
        let secs = d.as_secs_f64();
        let i = DURATION_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        self.duration_buckets[i] += 1;
        self.duration_sum += secs;
    }
}

/// One backend inside a frontend's pool, with its effective weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolMember {
    /// Backend name.
    pub backend: String,
    /// Configured weight.
    pub configured: u8,
    /// What VPP should get.
    pub effective: AsWeight,
    /// Backend state.
    pub state: State,
}

/// A pool as readers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolView {
    /// Pool name.
    pub name: String,
    /// Whether this pool carries traffic.
    pub active: bool,
    /// Members in name order.
    pub members: Vec<PoolMember>,
}

/// A frontend as readers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendView {
    /// Aggregate state.
    pub state: FrontendState,
    /// Pools in priority order.
    pub pools: Vec<PoolView>,
}

/// Everything the checker knows, at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The configuration in force (including runtime weight changes).
    pub config: Arc<Config>,
    /// Backends by name.
    pub backends: BTreeMap<Arc<str>, BackendView>,
    /// Frontends by name.
    pub frontends: BTreeMap<String, FrontendView>,
    /// The frontends that use each backend: one index, built once per
    /// configuration by the checker and shared by every snapshot.
    pub users: Arc<HashMap<String, Vec<String>>>,
    /// When it was taken.
    pub at: SystemTime,
}

impl Snapshot {
    /// The frontends that use backend `name`.
    pub fn users_of(&self, name: &str) -> &[String] {
        self.users.get(name).map_or(&[], Vec::as_slice)
    }

    /// State of backend `name` (`removed` if unknown to the snapshot).
    pub fn state_of(&self, name: &str) -> State {
        self.backends.get(name).map_or(State::Removed, |b| b.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_iterate_in_order_and_skip_zeros() {
        let mut c = ProbeCounters::default();
        c.record(Code::L7Sts, Duration::from_millis(1), None);
        c.record(Code::L4Ok, Duration::from_millis(1), None);
        c.record(Code::L7Sts, Duration::from_millis(1), None);
        let codes: Vec<(Code, u64)> = c.by_code.iter().collect();
        assert_eq!(codes, [(Code::L4Ok, 1), (Code::L7Sts, 2)]);
        assert_eq!(c.by_code.get(Code::Local), 0);
        c.transitions.add(State::Up, State::Down);
        c.transitions.add(State::Unknown, State::Up);
        let t: Vec<((State, State), u64)> = c.transitions.iter().collect();
        assert_eq!(
            t,
            [
                ((State::Unknown, State::Up), 1),
                ((State::Up, State::Down), 1)
            ]
        );
        // The codes' and states' declaration order is their ALL order.
        for (i, code) in Code::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i);
        }
        for (i, s) in State::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }
}
