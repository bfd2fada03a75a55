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

/// Upper bounds (seconds) of the probe duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Probe and transition counts of one backend, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeCounters {
    /// Probes by result code.
    pub by_code: BTreeMap<Code, u64>,
    /// Probes per duration bucket (not cumulative; the last slot is +Inf).
    pub duration_buckets: [u64; DURATION_BUCKETS.len() + 1],
    /// Sum of probe durations, seconds.
    pub duration_sum: f64,
    /// Transitions by (from, to).
    pub transitions: BTreeMap<(State, State), u64>,
}

impl ProbeCounters {
    /// Counts one probe.
    pub fn record(&mut self, code: Code, d: Duration) {
        *self.by_code.entry(code).or_insert(0) += 1;
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
