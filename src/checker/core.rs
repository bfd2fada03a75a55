//! The checker's rules as a core in the reconciler's shape: inputs (probe
//! reports, operator actions, runtime weights, reloads, ticks) and the
//! clock in, [`Output`]s out (engine commands, snapshots, events), no
//! threads, no channels, no clock of its own.
//!
//! Each rule lives once: rise/fall and the three intervals in
//! [`crate::health::state`], pool weights, min-healthy and slow start in
//! [`crate::health::weights`], pause/resume/enable/disable refusals in the
//! state machine; this core applies them to every backend and frontend and
//! says what follows. Previews run a copy of it ([`Core::preview`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use log::{debug, error, info, warn};

use super::action::{Action, CheckerError};
use super::cadence::PublishCadence;
use super::events::{BackendEvent, Event, FrontendEvent};
use super::view::{BackendView, FrontendView, PoolMember, PoolView, ProbeCounters, Snapshot};
use crate::config::{Backend, Config, HealthCheck, HealthChecker};
use crate::health::state::{Cadence, Health, State, Transition};
use crate::health::weights::{self, FrontendState};
use crate::logging::quote;
use crate::probe::engine::{BackendId, Command, Report};
use crate::probe::idhash::IdMap;
use crate::probe::schedule::Jitter;
use crate::probe::{Code, ProbeSpec};

/// How long a snapshot may lag behind routine probe results (transitions
/// and operator actions publish at once). Rebuilding is O(backends), so
/// not more often: at 10,000 backends this is the checker's largest cost.
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// The clock an input is handled at (the loop reads it; tests set it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    /// For timers, slow start and snapshot cadence.
    pub mono: Instant,
    /// For the times shown (transitions, snapshots).
    pub wall: SystemTime,
}

impl Now {
    /// The clocks now.
    pub fn read() -> Now {
        Now {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// `d` later on both clocks.
    #[cfg(test)]
    pub fn plus(self, d: Duration) -> Now {
        Now {
            mono: self.mono + d,
            wall: self.wall + d,
        }
    }
}

/// What the core is told.
#[derive(Debug, Clone)]
pub(crate) enum Input {
    /// Probe outcomes from the engine.
    Reports(Vec<Report>),
    /// `set backend B pause|resume|enable|disable|drain`.
    Action {
        /// Backend.
        backend: String,
        /// What to do.
        action: Action,
    },
    /// `set frontend F pool P backend B weight W [flush]`.
    SetWeight {
        /// Frontend.
        frontend: String,
        /// Pool.
        pool: String,
        /// Backend.
        backend: String,
        /// New weight, 0..=100.
        weight: u8,
        /// Flush the backend's flows with it.
        flush: bool,
    },
    /// A new configuration (health kept where the check is unchanged).
    Reload(Arc<Config>),
    /// Time passed ([`Core::poll_timeout`] was reached).
    Tick,
}

/// The answer to an input that asks for one.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// Reports, reloads and ticks answer nothing.
    None,
    /// An action: the backend after it, or why it was refused.
    Backend(Box<Result<BackendView, CheckerError>>),
    /// A weight: the frontend after it, or why it was refused.
    Frontend(Result<FrontendView, CheckerError>),
}

/// What the loop must do, in this order.
#[derive(Debug, Clone)]
pub(crate) enum Output {
    /// Tell the probe engine.
    Engine(Command),
    /// Replace the probe engine (threads or namespace changed); the
    /// commands that follow are for the new one.
    RestartEngine(HealthChecker),
    /// Publish this snapshot to readers.
    Publish(Arc<Snapshot>),
    /// Send this event to subscribers (after the snapshot reflecting it).
    Event(Event),
}

fn interval_for(hc: &HealthCheck, c: Cadence) -> Duration {
    match c {
        Cadence::Normal | Cadence::Stopped => hc.interval,
        Cadence::Fast => hc.fast_interval,
        Cadence::Down => hc.down_interval,
    }
}

#[derive(Clone)]
struct Entry {
    id: BackendId,
    name: Arc<str>,
    generation: u64,
    config: Arc<Backend>,
    /// Shared by every backend with the same check (one copy each).
    hc: Arc<HealthCheck>,
    health: Health,
    cadence: Cadence,
    /// The health history as readers get it; rebuilt on each transition.
    history: Arc<[Transition]>,
    counters: ProbeCounters,
    /// The last probe could not be attempted (logged once per streak).
    local_error: bool,
    /// When it last went up (slow start ramps from here); `None` while it
    /// is not up: any transition ends a ramp.
    up_since: Option<Instant>,
}

/// The checker's decisions: every backend's health and every frontend's
/// state, from probe reports, operator actions, reloads and the clock.
/// Sans I/O: inputs and a clock in ([`Core::handle`]), [`Output`]s out;
/// the thread around it (`mod.rs`) owns the engine, the channels, the
/// subscribers and the published snapshot, and nothing else.
#[derive(Clone)]
pub(crate) struct Core {
    config: Arc<Config>,
    /// Backends by id: the per-report path never compares names.
    /// Boxed: the table then holds pointers, not ~1 KB entries with a
    /// growth slack of up to half the table (10,000 backends: 5 MB less).
    entries: IdMap<BackendId, Box<Entry>>,
    /// Name → id, in name order.
    names: BTreeMap<Arc<str>, BackendId>,
    next_id: BackendId,
    frontend_states: BTreeMap<String, FrontendState>,
    /// backend → frontends that use it
    users: Arc<HashMap<String, Vec<String>>>,
    /// When to publish the snapshot (the first timer).
    cadence: PublishCadence,
    rng: Jitter,
    /// Events held until the snapshot that reflects them is published, so
    /// a subscriber reacting to an event never reads an older snapshot.
    pending: Vec<Event>,
    /// Slow-start steps up to this instant have been announced.
    ramp_checked: Instant,
    /// The next slow-start step (the thread's second timer).
    ramp_due: Option<Instant>,
    /// A backend went up or down, or the configuration changed: find the
    /// next step again (scanning only then keeps a loop turn cheap).
    ramp_dirty: bool,
    /// The clock of the input being handled: the core reads no other.
    now: Now,
    /// What the handling of the input asks of the loop, in order.
    out: Vec<Output>,
}

impl Core {
    /// The core for `config` at `now`; the outputs start probing every
    /// backend and publish the first snapshot.
    pub fn new(config: Arc<Config>, now: Now, jitter: Jitter) -> (Core, Vec<Output>) {
        let mut core = Core {
            config: Arc::clone(&config),
            entries: IdMap::default(),
            names: BTreeMap::new(),
            next_id: 1,
            frontend_states: BTreeMap::new(),
            users: Arc::new(HashMap::new()),
            cadence: PublishCadence::new(PUBLISH_EVERY, now.mono),
            rng: jitter,
            pending: Vec::new(),
            ramp_checked: now.mono,
            ramp_due: None,
            ramp_dirty: true,
            now,
            out: Vec::new(),
        };
        core.apply_config(config, true);
        core.settle();
        let out = std::mem::take(&mut core.out);
        (core, out)
    }

    /// Handles one input at `now`: the reply, and what the loop must do.
    pub fn handle(&mut self, now: Now, input: Input) -> (Reply, Vec<Output>) {
        self.now = now;
        let reply = match input {
            Input::Reports(batch) => {
                for r in batch {
                    self.on_report(r);
                }
                Reply::None
            }
            Input::Action { backend, action } => {
                let r = self.action(&backend, action);
                // Readers asking right after an action must see its effect.
                self.publish();
                Reply::Backend(Box::new(r))
            }
            Input::SetWeight {
                frontend,
                pool,
                backend,
                weight,
                flush,
            } => {
                let r = self.set_weight(&frontend, &pool, &backend, weight, flush);
                self.publish();
                Reply::Frontend(r)
            }
            Input::Reload(cfg) => {
                self.apply_config(cfg, false);
                self.emit(Event::ConfigReloaded);
                self.publish();
                Reply::None
            }
            Input::Tick => Reply::None,
        };
        self.settle();
        (reply, std::mem::take(&mut self.out))
    }

    /// When the core must be handed [`Input::Tick`] at the latest (`None`:
    /// only when other input comes): a stale snapshot or a slow-start step.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        [self.cadence.next_wakeup(now), self.ramp_due]
            .into_iter()
            .flatten()
            .min()
    }

    /// Each frontend's state (subscribers asking for a replay get them).
    pub fn frontend_states(&self) -> &BTreeMap<String, FrontendState> {
        &self.frontend_states
    }

    /// The backend and frontend views `input` would leave, without doing
    /// it: a copy of the core handles it (the same rules, no second
    /// copy), its outputs are dropped; with the events it would send.
    pub fn preview(&self, now: Now, input: Input) -> Result<(Snapshot, Vec<Event>), CheckerError> {
        let mut copy = self.clone();
        copy.out.clear();
        let (reply, out) = copy.handle(now, input);
        match reply {
            Reply::Backend(r) => (*r).map(drop)?,
            Reply::Frontend(r) => r.map(drop)?,
            Reply::None => {}
        }
        let mut snap = None;
        let mut events = Vec::new();
        for o in out {
            match o {
                Output::Publish(s) => snap = Some(s),
                Output::Event(e) => events.push(e),
                Output::Engine(_) | Output::RestartEngine(_) => {}
            }
        }
        copy.out.clear();
        let snap = match snap {
            Some(s) => (*s).clone(),
            None => {
                copy.publish();
                match copy.out.pop() {
                    Some(Output::Publish(s)) => (*s).clone(),
                    _ => unreachable!("publish pushes a snapshot"),
                }
            }
        };
        Ok((snap, events))
    }

    /// After every input: slow-start steps due, the snapshot if stale,
    /// the events waiting for it, and the next slow-start step.
    fn settle(&mut self) {
        let now = self.now.mono;
        if self.ramp_due.is_some_and(|t| t <= now) {
            self.ramp_steps(now);
            self.ramp_dirty = true;
        }
        if self.cadence.due(now) {
            self.publish();
        }
        self.flush_events();
        if std::mem::take(&mut self.ramp_dirty) {
            self.ramp_due = self.next_ramp_step();
        }
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.get(self.names.get(name)?).map(|e| &**e)
    }

    fn entry_mut(&mut self, name: &str) -> Option<&mut Entry> {
        self.entries
            .get_mut(self.names.get(name)?)
            .map(|e| &mut **e)
    }

    fn start_probing(&mut self, name: &str) {
        let first = self.rng.unit();
        let Some(e) = self.entry_mut(name) else {
            return;
        };
        e.cadence = e.health.cadence();
        if e.cadence == Cadence::Stopped {
            return;
        }
        // Spread first probes over the first fast interval (capped at 1 s)
        // so a restart does not probe every backend on the same tick.
        let spread = e.hc.fast_interval.min(Duration::from_secs(1));
        let cmd = Command::Start {
            id: e.id,
            name: Arc::clone(&e.name),
            generation: e.generation,
            spec: Arc::new(ProbeSpec::new(e.config.address, &e.hc)),
            interval: interval_for(&e.hc, e.cadence),
            first_in: spread.mul_f64(first),
        };
        self.out.push(Output::Engine(cmd));
    }

    fn stop_probing(&mut self, name: &str) {
        if let Some(e) = self.entry_mut(name) {
            e.cadence = Cadence::Stopped;
            let id = e.id;
            self.out.push(Output::Engine(Command::Stop { id }));
        }
    }

    fn on_report(&mut self, r: Report) {
        let Some(e) = self.entries.get_mut(&r.id) else {
            return;
        };
        if e.generation != r.generation {
            return; // from before a restart of this backend's probing
        }
        debug!(
            "probe-done backend={} code={}{} detail={} duration_ms={:.1}",
            e.name,
            r.outcome.code,
            match r.outcome.connection {
                Some(c) => format!(" connection={c}"),
                None => String::new(),
            },
            quote(&r.outcome.detail),
            r.outcome.duration.as_secs_f64() * 1000.0
        );
        e.counters
            .record(r.outcome.code, r.outcome.duration, r.outcome.connection);
        let local = r.outcome.code == Code::Local;
        if local != e.local_error {
            e.local_error = local;
            if local {
                warn!(
                    "probe-local-error backend={} detail={} state-kept={}",
                    e.name,
                    quote(&r.outcome.detail),
                    e.health.state()
                );
            } else {
                info!("probe-local-error-cleared backend={}", e.name);
            }
        }
        let t = e.health.record(&r.outcome, r.at);
        let cadence = e.health.cadence();
        let retime = (cadence != e.cadence && cadence != Cadence::Stopped).then(|| {
            e.cadence = cadence;
            Command::SetInterval {
                id: e.id,
                generation: e.generation,
                interval: interval_for(&e.hc, cadence),
            }
        });
        let name = t.as_ref().map(|_| Arc::clone(&e.name));
        self.cadence.changed();
        if let Some(cmd) = retime {
            self.out.push(Output::Engine(cmd));
        }
        if let (Some(t), Some(name)) = (t, name) {
            self.transitioned(&name, t);
        }
    }

    /// Logs, broadcasts and propagates one backend transition.
    fn transitioned(&mut self, name: &str, t: Transition) {
        self.ramp_dirty = true;
        let now = self.now.mono;
        let address = match self.entry_mut(name) {
            Some(e) => {
                e.up_since = (t.to == State::Up).then_some(now);
                e.history = e.health.history().cloned().collect();
                e.counters.transitions.add(t.from, t.to);
                e.config.address.to_string()
            }
            None => String::new(),
        };
        info!(
            "backend-transition backend={name} address={address} from={} to={} code={} detail={}",
            t.from,
            t.to,
            t.code.map_or("-", Code::as_str),
            quote(&t.detail)
        );
        self.emit(Event::Backend(BackendEvent {
            backend: name.to_string(),
            from: t.from,
            to: t.to,
            code: t.code,
            detail: t.detail.clone(),
            at: t.at,
        }));
        self.cadence.changed();
        self.cadence.urgent();
        let users = self.users.get(name).cloned().unwrap_or_default();
        for fe in users {
            self.refresh_frontend(&fe);
        }
    }

    fn emit(&mut self, ev: Event) {
        self.pending.push(ev);
        self.cadence.urgent();
    }

    /// Publishes the snapshot if events wait for it, then the events.
    fn flush_events(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.cadence.is_stale() {
            self.publish();
        }
        let events = std::mem::take(&mut self.pending);
        self.out.extend(events.into_iter().map(Output::Event));
    }

    fn state_fn(&self) -> impl Fn(&str) -> State + Copy + '_ {
        move |n: &str| self.entry(n).map_or(State::Removed, |e| e.health.state())
    }

    fn refresh_frontend(&mut self, fe_name: &str) {
        let Some(fe) = self.config.frontends.get(fe_name) else {
            return;
        };
        let new = weights::frontend_state(fe, self.state_fn());
        let old = self.frontend_states.insert(fe_name.to_string(), new);
        if let Some(old) = old.filter(|o| *o != new) {
            if new == FrontendState::Panic || old == FrontendState::Panic {
                // Failing open (or back): the operator must hear of it.
                warn!(
                    "frontend-transition frontend={fe_name} from={old} to={new} min-healthy={}%",
                    fe.min_healthy.unwrap_or(0)
                );
            } else {
                info!("frontend-transition frontend={fe_name} from={old} to={new}");
            }
            self.emit(Event::Frontend(FrontendEvent {
                frontend: fe_name.to_string(),
                from: old,
                to: new,
                at: self.now.wall,
            }));
            self.cadence.urgent();
        }
        self.cadence.changed();
    }

    fn action(&mut self, name: &str, action: Action) -> Result<BackendView, CheckerError> {
        let now = self.now.wall;
        let Some(e) = self.entry_mut(name) else {
            return Err(CheckerError::NoBackend(name.to_string()));
        };
        let r = match action {
            Action::Pause | Action::Drain => e.health.pause(now),
            Action::Resume => e.health.resume(now),
            Action::Disable => e.health.disable(now),
            Action::Enable => e.health.enable(now),
        };
        let t = r.map_err(|why| CheckerError::Refused {
            backend: name.to_string(),
            action,
            why,
        })?;
        info!(
            "backend-action backend={name} action={} changed={}",
            action.as_str(),
            t.is_some()
        );
        if let Some(t) = t {
            let to = t.to;
            if to.is_probed() {
                if let Some(e) = self.entry_mut(name) {
                    e.generation += 1;
                }
                self.start_probing(name);
            } else {
                self.stop_probing(name);
            }
            self.transitioned(name, t);
        }
        Ok(self.view(name).expect("entry exists"))
    }

    fn set_weight(
        &mut self,
        frontend: &str,
        pool: &str,
        backend: &str,
        weight: u8,
        flush: bool,
    ) -> Result<FrontendView, CheckerError> {
        if weight > 100 {
            return Err(CheckerError::WeightRange(weight));
        }
        let mut cfg = (*self.config).clone();
        let fe = cfg
            .frontends
            .get_mut(frontend)
            .ok_or_else(|| CheckerError::NoFrontend(frontend.to_string()))?;
        let p = fe
            .pools
            .iter_mut()
            .find(|p| p.name == pool)
            .ok_or_else(|| CheckerError::NoPool {
                frontend: frontend.to_string(),
                pool: pool.to_string(),
            })?;
        let w = p
            .backends
            .get_mut(backend)
            .ok_or_else(|| CheckerError::NotInPool {
                frontend: frontend.to_string(),
                pool: pool.to_string(),
                backend: backend.to_string(),
            })?;
        let old = *w;
        *w = weight;
        self.config = Arc::new(cfg);
        info!(
            "weight-set frontend={frontend} pool={pool} backend={backend} from={old} to={weight} flush={flush}"
        );
        self.refresh_frontend(frontend);
        self.emit(Event::WeightChanged {
            frontend: frontend.to_string(),
            flush: flush.then(|| backend.to_string()),
        });
        self.flush_events();
        Ok(self.frontend_view(frontend).expect("frontend exists"))
    }

    /// Brings the running state in line with `cfg` (§3.5 reload rules).
    fn apply_config(&mut self, cfg: Arc<Config>, initial: bool) {
        self.ramp_dirty = true;
        let now = self.now.wall;
        let old_hc = self.config.healthchecker.clone();
        self.config = Arc::clone(&cfg);
        if !initial && old_hc != cfg.healthchecker {
            self.restart_engine_if_needed(&old_hc);
        }
        let history = cfg.healthchecker.transition_history;
        // Removed backends.
        let gone: Vec<Arc<str>> = self
            .names
            .keys()
            .filter(|n| !cfg.backends.contains_key(&***n))
            .cloned()
            .collect();
        for name in gone {
            self.stop_probing(&name);
            let t = self.entry_mut(&name).and_then(|e| e.health.remove(now));
            if let Some(t) = t {
                self.transitioned(&name, t);
            }
            if let Some(id) = self.names.remove(&*name) {
                self.entries.remove(&id);
            }
        }
        // New and changed backends.
        let checks: HashMap<&str, Arc<HealthCheck>> = cfg
            .healthchecks
            .iter()
            .map(|(n, h)| (n.as_str(), Arc::new(h.clone())))
            .collect();
        for (name, b) in &cfg.backends {
            let Some(hc) = checks.get(b.healthcheck.as_str()).cloned() else {
                error!(
                    "backend-config-invalid backend={name} healthcheck={}",
                    b.healthcheck
                );
                continue;
            };
            match self.entry_mut(name) {
                Some(e) if e.config.address == b.address && e.hc == hc => {
                    // Unchanged check: keep state, keep probing, keep the
                    // runtime enabled flag.
                    e.config = Arc::new(b.clone());
                    e.health.set_history_len(history);
                    e.history = e.health.history().cloned().collect();
                }
                Some(e) => {
                    let why = if e.config.address != b.address {
                        "address changed"
                    } else {
                        "health check changed"
                    };
                    e.config = Arc::new(b.clone());
                    e.hc = hc.clone();
                    e.generation += 1;
                    e.health.set_history_len(history);
                    let t = e.health.reconfigure(hc.rise, hc.fall, b.enabled, why, now);
                    let id = e.id;
                    self.out.push(Output::Engine(Command::Stop { id }));
                    self.start_probing(name);
                    if let Some(t) = t {
                        self.transitioned(name, t);
                    }
                }
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    let key: Arc<str> = Arc::from(name.as_str());
                    self.names.insert(Arc::clone(&key), id);
                    self.entries.insert(
                        id,
                        Box::new(Entry {
                            id,
                            name: key,
                            generation: 1,
                            config: Arc::new(b.clone()),
                            health: Health::new(hc.rise, hc.fall, history, b.enabled),
                            hc,
                            cadence: Cadence::Stopped,
                            history: Arc::from(Vec::new()),
                            counters: ProbeCounters::default(),
                            local_error: false,
                            up_since: None,
                        }),
                    );
                    if !initial {
                        info!("backend-added backend={name} address={}", b.address);
                    }
                    self.start_probing(name);
                }
            }
        }
        // Frontends.
        let mut users: HashMap<String, Vec<String>> = HashMap::new();
        for (fe_name, fe) in &cfg.frontends {
            for b in fe.backend_names() {
                users
                    .entry(b.to_string())
                    .or_default()
                    .push(fe_name.clone());
            }
        }
        self.users = Arc::new(users);
        self.frontend_states
            .retain(|n, _| cfg.frontends.contains_key(n));
        let names: Vec<String> = cfg.frontends.keys().cloned().collect();
        for fe in names {
            if !self.frontend_states.contains_key(&fe) {
                let st = weights::frontend_state(&cfg.frontends[&fe], self.state_fn());
                self.frontend_states.insert(fe.clone(), st);
            }
            self.refresh_frontend(&fe);
        }
        self.cadence.urgent();
        self.publish();
    }

    /// Threads or namespace changed: a new engine, and every probed backend
    /// starts over in it (states are kept).
    fn restart_engine_if_needed(&mut self, old: &HealthChecker) {
        let new = self.config.healthchecker.clone();
        if old.threads == new.threads && old.netns == new.netns {
            return;
        }
        self.out.push(Output::RestartEngine(new));
        let names: Vec<Arc<str>> = self.names.keys().cloned().collect();
        for n in names {
            if let Some(e) = self.entry_mut(&n) {
                e.generation += 1;
            }
            self.start_probing(&n);
        }
    }

    fn view(&self, name: &str) -> Option<BackendView> {
        let e = self.entry(name)?;
        Some(BackendView {
            config: Arc::clone(&e.config),
            state: e.health.state(),
            enabled: e.health.enabled(),
            counter: (e.health.counter(), e.health.max()),
            last: e.health.last().cloned(),
            history: Arc::clone(&e.history),
            counters: e.counters,
        })
    }

    /// How long backend `name` has been up (for slow start).
    fn up_for(&self, name: &str, now: Instant) -> Option<Duration> {
        self.entry(name)
            .and_then(|e| e.up_since)
            .map(|t| now.saturating_duration_since(t))
    }

    /// The next instant a slow start takes a step (the thread's second
    /// timer; `None` while nothing ramps).
    fn next_ramp_step(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for fe in self.config.frontends.values() {
            for pool in &fe.pools {
                for (b, over) in &pool.slow_start {
                    let Some(since) = self.entry(b).and_then(|e| e.up_since) else {
                        continue;
                    };
                    let up_for = self.ramp_checked.saturating_duration_since(since);
                    if let Some(step) = weights::next_step(up_for, *over) {
                        let at = since + step;
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                }
            }
        }
        next
    }

    /// Announces the slow-start steps due by `now`: each frontend whose
    /// weights stepped gets a `WeightChanged` (the reconciler then sends
    /// one `lb_as_set_weight` per stepping backend).
    fn ramp_steps(&mut self, now: Instant) {
        let last = self.ramp_checked;
        self.ramp_checked = now;
        let mut stepped: Vec<String> = Vec::new();
        for (name, fe) in &self.config.frontends {
            let steps = fe.pools.iter().any(|pool| {
                pool.slow_start.iter().any(|(b, over)| {
                    let Some(since) = self.entry(b).and_then(|e| e.up_since) else {
                        return false;
                    };
                    let before = last.saturating_duration_since(since);
                    weights::next_step(before, *over).is_some_and(|s| since + s <= now)
                })
            });
            if steps {
                stepped.push(name.clone());
            }
        }
        for fe in stepped {
            debug!("slow-start-step frontend={fe}");
            self.emit(Event::WeightChanged {
                frontend: fe,
                flush: None,
            });
            self.cadence.changed();
        }
    }

    fn frontend_view(&self, name: &str) -> Option<FrontendView> {
        let fe = self.config.frontends.get(name)?;
        let state_of = self.state_fn();
        let plan = weights::plan(fe, state_of);
        let state = weights::frontend_state(fe, state_of);
        let serving = matches!(state, FrontendState::Up | FrontendState::Panic);
        let now = self.now.mono;
        let pools = fe
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| PoolView {
                name: p.name.clone(),
                active: i == plan.active && serving,
                members: p
                    .backends
                    .iter()
                    .map(|(b, &w)| PoolMember {
                        backend: b.clone(),
                        configured: w,
                        effective: weights::member_weight(
                            fe,
                            plan,
                            i,
                            b,
                            w,
                            state_of(b),
                            self.up_for(b, now),
                        ),
                        state: state_of(b),
                    })
                    .collect(),
            })
            .collect();
        Some(FrontendView {
            state: self
                .frontend_states
                .get(name)
                .copied()
                .unwrap_or(FrontendState::Unknown),
            pools,
        })
    }

    fn publish(&mut self) {
        let backends = self
            .names
            .keys()
            .filter_map(|n| Some((Arc::clone(n), self.view(n)?)))
            .collect();
        let frontends = self
            .config
            .frontends
            .keys()
            .filter_map(|n| Some((n.clone(), self.frontend_view(n)?)))
            .collect();
        self.out.push(Output::Publish(Arc::new(Snapshot {
            config: Arc::clone(&self.config),
            backends,
            frontends,
            users: Arc::clone(&self.users),
            at: self.now.wall,
        })));
        self.cadence.published(self.now.mono);
    }
}

#[cfg(test)]
mod tests {
    //! Every rule of the checker with a fake clock: no threads, no sleeps.
    use super::*;
    use crate::probe::Outcome;
    use std::path::Path;

    const YAML: &str = "
maglev:
  vpp: { api-socket: \"\" }
  healthchecks:
    hc: { type: tcp, port: 80, interval: 2s, fast-interval: 500ms, down-interval: 10s, rise: 2, fall: 2 }
    other: { type: tcp, port: 81, interval: 2s, rise: 2, fall: 2 }
  backends:
    a: { address: 10.0.0.1, healthcheck: hc }
    b: { address: 10.0.0.2, healthcheck: hc }
    c: { address: 10.0.0.3, healthcheck: hc }
  frontends:
    web:
      address: 192.0.2.1
      protocol: tcp
      port: 80
      min-healthy: 50%
      pools:
        - name: main
          slow-start: 4s
          backends: { a: { weight: 100 }, b: { weight: 40 } }
        - name: spare
          backends: { c: {} }
";

    fn cfg(yaml: &str) -> Arc<Config> {
        Arc::new(crate::config::parse(yaml, Path::new("t.yaml")).unwrap())
    }

    /// A core and a clock that only moves when told.
    struct H {
        core: Core,
        now: Now,
        out: Vec<Output>,
    }

    impl H {
        fn new(yaml: &str) -> H {
            let now = Now::read();
            let (core, out) = Core::new(cfg(yaml), now, Jitter::new(7));
            H { core, now, out }
        }

        fn go(&mut self, input: Input) -> Reply {
            let (r, out) = self.core.handle(self.now, input);
            self.out = out;
            r
        }

        fn wait(&mut self, d: Duration) {
            self.now = self.now.plus(d);
            self.go(Input::Tick);
        }

        fn id(&self, name: &str) -> BackendId {
            self.core.names[name]
        }

        fn generation(&self, name: &str) -> u64 {
            self.core.entry(name).unwrap().generation
        }

        fn report(&mut self, name: &str, pass: bool) {
            let outcome = if pass {
                Outcome::new(Code::L4Ok, "connected", Duration::from_millis(1))
            } else {
                Outcome::new(Code::L4Con, "connection refused", Duration::from_millis(1))
            };
            let r = Report {
                id: self.id(name),
                generation: self.generation(name),
                outcome,
                at: self.now.wall,
            };
            self.go(Input::Reports(vec![r]));
        }

        fn state(&self, name: &str) -> State {
            self.core
                .entry(name)
                .map_or(State::Removed, |e| e.health.state())
        }

        fn weights(&self) -> Vec<(String, u8, bool)> {
            self.core
                .frontend_view("web")
                .unwrap()
                .pools
                .iter()
                .flat_map(|p| &p.members)
                .map(|m| (m.backend.clone(), m.effective.weight, m.effective.flush))
                .collect()
        }

        fn weight(&self, name: &str) -> u8 {
            self.weights().iter().find(|w| w.0 == name).unwrap().1
        }

        /// The engine commands of the last input.
        fn commands(&self) -> Vec<&Command> {
            self.out
                .iter()
                .filter_map(|o| match o {
                    Output::Engine(c) => Some(c),
                    _ => None,
                })
                .collect()
        }

        fn events(&self) -> Vec<&Event> {
            self.out
                .iter()
                .filter_map(|o| match o {
                    Output::Event(e) => Some(e),
                    _ => None,
                })
                .collect()
        }

        fn all_up(&mut self) {
            for n in ["a", "b", "c"] {
                self.report(n, true);
            }
        }
    }

    fn interval_set(c: &Command) -> Option<Duration> {
        match c {
            Command::SetInterval { interval, .. } => Some(*interval),
            _ => None,
        }
    }

    #[test]
    fn start_probes_every_backend_spread_over_the_first_second() {
        let h = H::new(YAML);
        let starts: Vec<_> = h
            .out
            .iter()
            .filter_map(|o| match o {
                Output::Engine(Command::Start {
                    interval, first_in, ..
                }) => Some((*interval, *first_in)),
                _ => None,
            })
            .collect();
        assert_eq!(starts.len(), 3);
        for (interval, first_in) in starts {
            // Unknown probes at the fast interval, first within 500 ms.
            assert_eq!(interval, Duration::from_millis(500));
            assert!(first_in < Duration::from_millis(500));
        }
        assert!(h.out.iter().any(|o| matches!(o, Output::Publish(_))));
    }

    #[test]
    fn rise_fall_and_the_three_intervals() {
        let mut h = H::new(YAML);
        // unknown starts at rise - 1: one pass brings it up; it probes at
        // the fast interval until fully up (counter rise + fall - 1).
        h.report("a", true);
        assert_eq!(h.state("a"), State::Up);
        assert!(h.events().iter().any(|e| matches!(e,
            Event::Backend(b) if b.backend == "a" && b.from == State::Unknown && b.to == State::Up)));
        assert!(h.commands().is_empty(), "still changing: fast");
        let ivs = |h: &H| -> Vec<Duration> {
            h.commands().into_iter().filter_map(interval_set).collect()
        };
        h.report("a", true);
        assert_eq!(ivs(&h), vec![Duration::from_secs(2)], "fully up: normal");
        // One failure keeps it up, probing fast again.
        h.report("a", false);
        assert_eq!(h.state("a"), State::Up);
        assert_eq!(ivs(&h), vec![Duration::from_millis(500)]);
        // fall 2: the second failure takes it down.
        h.report("a", false);
        assert_eq!(h.state("a"), State::Down);
        // Fully down: the down interval.
        h.report("a", false);
        assert_eq!(ivs(&h), vec![Duration::from_secs(10)]);
        // rise 2 passes up again.
        h.report("a", true);
        assert_eq!(h.state("a"), State::Down);
        h.report("a", true);
        assert_eq!(h.state("a"), State::Up);
        // A failure while unknown is down at once.
        h.report("b", false);
        assert_eq!(h.state("b"), State::Down);
        // A stale report (older generation) changes nothing.
        let stale = Report {
            id: h.id("c"),
            generation: h.generation("c") + 7,
            outcome: Outcome::new(Code::L4Con, "refused", Duration::ZERO),
            at: h.now.wall,
        };
        h.go(Input::Reports(vec![stale]));
        assert_eq!(h.state("c"), State::Unknown);
        // A local error is shown, never counted.
        let local = Report {
            id: h.id("c"),
            generation: h.generation("c"),
            outcome: Outcome::new(Code::Local, "no source", Duration::ZERO),
            at: h.now.wall,
        };
        h.go(Input::Reports(vec![local]));
        assert_eq!(h.state("c"), State::Unknown);
    }

    #[test]
    fn slow_start_steps_each_second_on_the_fake_clock() {
        let mut h = H::new(YAML);
        h.report("b", true);
        h.report("c", true);
        h.report("a", true);
        // slow-start 4s: 100 → 25, 50, 75, 100 over four one-second steps.
        assert_eq!(h.weight("a"), 25);
        assert_eq!(
            h.core.poll_timeout(h.now.mono),
            Some(h.now.mono + Duration::from_secs(1))
        );
        let mut seen = vec![h.weight("a")];
        for _ in 0..4 {
            h.wait(Duration::from_secs(1));
            assert!(h.events().iter().any(|e| matches!(e,
                Event::WeightChanged { frontend, flush: None } if frontend == "web")));
            seen.push(h.weight("a"));
        }
        assert_eq!(seen, vec![25, 50, 75, 100, 100]);
        // Over: no timer left but the snapshot cadence.
        h.wait(Duration::from_secs(1));
        assert!(h.events().is_empty());
    }

    #[test]
    fn min_healthy_fails_open_and_back() {
        // No spare pool: the main pool's health alone decides.
        let mut h =
            H::new(&YAML.replace("        - name: spare\n          backends: { c: {} }\n", ""));
        h.all_up();
        h.wait(Duration::from_secs(5)); // past slow start
        assert_eq!(h.weight("a"), 100);
        assert_eq!(h.core.frontend_states()["web"], FrontendState::Up);
        // One of two main backends down: 50 % healthy is not below 50 %.
        h.report("b", false);
        h.report("b", false);
        h.report("b", false);
        assert_eq!(h.state("b"), State::Down);
        assert_eq!(h.weight("b"), 0);
        // Both down: below min-healthy, the pool fails open (panic): the
        // down backends get their weight back.
        let mut panicked = false;
        for _ in 0..3 {
            h.report("a", false);
            panicked |= h.events().iter().any(|e| {
                matches!(e,
                Event::Frontend(f) if f.to == FrontendState::Panic)
            });
        }
        assert!(panicked, "the frontend event says so");
        assert_eq!(h.state("a"), State::Down);
        assert_eq!(h.core.frontend_states()["web"], FrontendState::Panic);
        assert!(h.weight("a") > 0 && h.weight("b") > 0, "{:?}", h.weights());
        // One back up: panic ends.
        h.report("a", true);
        h.report("a", true);
        assert_ne!(h.core.frontend_states()["web"], FrontendState::Panic);
        assert_eq!(h.weight("b"), 0);
    }

    #[test]
    fn pause_resume_disable_enable_drain_and_refusals() {
        let mut h = H::new(YAML);
        h.all_up();
        h.wait(Duration::from_secs(5));
        let act = |h: &mut H, b: &str, a: Action| match h.go(Input::Action {
            backend: b.into(),
            action: a,
        }) {
            Reply::Backend(r) => r.map(|v| v.state),
            other => panic!("{other:?}"),
        };
        // Pause: weight 0, no flush, probing stops.
        assert_eq!(act(&mut h, "a", Action::Pause), Ok(State::Paused));
        assert!(
            h.commands()
                .iter()
                .any(|c| matches!(c, Command::Stop { .. }))
        );
        assert!(h.weights().contains(&("a".into(), 0, false)));
        // A report of the stopped job changes nothing.
        h.report("a", false);
        assert_eq!(h.state("a"), State::Paused);
        // Resume: unknown, probed again (a new generation).
        let g = h.generation("a");
        assert_eq!(act(&mut h, "a", Action::Resume), Ok(State::Unknown));
        assert_eq!(h.generation("a"), g + 1);
        assert!(
            h.commands()
                .iter()
                .any(|c| matches!(c, Command::Start { .. }))
        );
        // Disable: weight 0 with flush; pause and drain are then refused.
        assert_eq!(act(&mut h, "b", Action::Disable), Ok(State::Disabled));
        assert!(h.weights().contains(&("b".into(), 0, true)));
        for a in [Action::Pause, Action::Drain] {
            assert!(matches!(
                act(&mut h, "b", a),
                Err(CheckerError::Refused { .. })
            ));
        }
        assert_eq!(act(&mut h, "b", Action::Enable), Ok(State::Unknown));
        // Drain is a pause.
        assert_eq!(act(&mut h, "c", Action::Drain), Ok(State::Paused));
        assert!(matches!(
            act(&mut h, "nope", Action::Pause),
            Err(CheckerError::NoBackend(_))
        ));
        // Every action publishes at once.
        assert!(h.out.iter().any(|o| matches!(o, Output::Publish(_))));
    }

    #[test]
    fn runtime_weight_and_its_refusals() {
        let mut h = H::new(YAML);
        h.all_up();
        h.wait(Duration::from_secs(5));
        let set = |h: &mut H, b: &str, w: u8, flush: bool| match h.go(Input::SetWeight {
            frontend: "web".into(),
            pool: "main".into(),
            backend: b.into(),
            weight: w,
            flush,
        }) {
            Reply::Frontend(r) => r.map(|_| ()),
            other => panic!("{other:?}"),
        };
        assert_eq!(set(&mut h, "b", 10, true), Ok(()));
        assert_eq!(h.weight("b"), 10);
        assert!(h.events().iter().any(|e| matches!(e,
            Event::WeightChanged { flush: Some(b), .. } if b == "b")));
        assert_eq!(
            set(&mut h, "b", 101, false),
            Err(CheckerError::WeightRange(101))
        );
        assert!(matches!(
            set(&mut h, "c", 1, false),
            Err(CheckerError::NotInPool { .. })
        ));
    }

    #[test]
    fn reload_keeps_health_restarts_changed_removes_and_readds() {
        let mut h = H::new(YAML);
        h.all_up();
        let ga = h.generation("a");
        // b's check changes, c goes away.
        let yaml = YAML
            .replace(
                "b: { address: 10.0.0.2, healthcheck: hc }",
                "b: { address: 10.0.0.2, healthcheck: other }",
            )
            .replace("    c: { address: 10.0.0.3, healthcheck: hc }\n", "")
            .replace("        - name: spare\n          backends: { c: {} }\n", "");
        h.go(Input::Reload(cfg(&yaml)));
        assert_eq!((h.state("a"), h.generation("a")), (State::Up, ga), "kept");
        assert_eq!(h.state("b"), State::Unknown, "restarted");
        assert_eq!(h.state("c"), State::Removed);
        assert!(
            h.events()
                .iter()
                .any(|e| matches!(e, Event::ConfigReloaded))
        );
        assert!(
            h.commands()
                .iter()
                .any(|c| matches!(c, Command::Stop { .. }))
        );
        // Back again: a new backend, unknown, probed.
        h.go(Input::Reload(cfg(YAML)));
        assert_eq!(h.state("c"), State::Unknown);
        assert!(
            h.commands()
                .iter()
                .any(|c| matches!(c, Command::Start { .. }))
        );
        // A reload of another probing set-up restarts the engine first.
        let threads = YAML.replace("maglev:\n", "maglev:\n  healthchecker: { threads: 2 }\n");
        h.go(Input::Reload(cfg(&threads)));
        assert!(matches!(h.out.first(), Some(Output::RestartEngine(hc)) if hc.threads == 2));
    }

    #[test]
    fn snapshots_follow_the_cadence_and_events_wait_for_theirs() {
        let mut h = H::new(YAML);
        // A transition publishes before its event goes out.
        h.report("a", true);
        let kinds: Vec<&str> = h
            .out
            .iter()
            .map(|o| match o {
                Output::Publish(_) => "publish",
                Output::Event(_) => "event",
                Output::Engine(_) => "engine",
                Output::RestartEngine(_) => "restart",
            })
            .filter(|k| *k != "engine")
            .collect();
        assert_eq!(kinds.first(), Some(&"publish"), "{kinds:?}");
        assert!(kinds.contains(&"event"));
        // A routine report (no transition) waits for the cadence.
        h.report("a", true);
        assert!(!h.out.iter().any(|o| matches!(o, Output::Publish(_))));
        let due = h
            .core
            .poll_timeout(h.now.mono)
            .expect("a stale snapshot is due");
        assert!(due <= h.now.mono + PUBLISH_EVERY);
        h.now = Now {
            mono: due,
            wall: h.now.wall,
        };
        h.go(Input::Tick);
        assert!(h.out.iter().any(|o| matches!(o, Output::Publish(_))));
    }

    #[test]
    fn preview_runs_a_copy_and_leaves_the_core_alone() {
        let mut h = H::new(YAML);
        h.all_up();
        h.wait(Duration::from_secs(5));
        let (snap, events) = h
            .core
            .preview(
                h.now,
                Input::Action {
                    backend: "a".into(),
                    action: Action::Disable,
                },
            )
            .unwrap();
        assert_eq!(snap.backends["a"].state, State::Disabled);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Backend(b) if b.to == State::Disabled))
        );
        assert_eq!(h.state("a"), State::Up, "the core is untouched");
        let refused = h.core.preview(
            h.now,
            Input::Action {
                backend: "zz".into(),
                action: Action::Pause,
            },
        );
        assert!(matches!(refused, Err(CheckerError::NoBackend(_))));
    }
}
