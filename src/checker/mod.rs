//! The checker thread: the one owner of every backend's health.
//!
//! It tells the probe engine what to probe and how often, applies each
//! report to the backend's state machine, recomputes the state of the
//! frontends that use the backend, logs and broadcasts transitions, and
//! publishes immutable [`Snapshot`]s for readers (control socket, metrics,
//! reconciler). Operator actions and configuration reloads arrive as
//! requests on a channel; nothing else mutates health.
//!
//! `view.rs` holds what it publishes ([`Snapshot`]), `client.rs` how other
//! threads ask it for things; this module is the thread and its state.

pub mod cadence;
mod client;
pub mod events;
mod view;
pub mod whatif;

pub use client::{Action, CheckerClient, CheckerError};
pub use view::{
    BackendView, DURATION_BUCKETS, FrontendView, PoolMember, PoolView, ProbeCounters, Snapshot,
};

use client::Request;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, select, unbounded};
use log::{debug, error, info, warn};

use crate::config::{Backend, Config, HealthCheck};
use crate::health::state::{Cadence, Health, State, Transition};
use crate::health::weights::{self, FrontendState};
use crate::heartbeat::Beat;
use crate::logging::quote;
use crate::probe::engine::{BackendId, Command, Engine, Report, ReportBatch, Stats};
use crate::probe::idhash::IdMap;
use crate::probe::schedule::Jitter;
use crate::probe::{Code, ProbeSpec};
use crate::snapshot::Published;
use cadence::PublishCadence;
use events::{BackendEvent, Broadcaster, Event, FrontendEvent};

/// Handle to the running checker thread.
pub struct Checker {
    beat: Beat,
    prober_beats: Arc<Mutex<Vec<(String, Beat)>>>,
    tx: Sender<Request>,
    snapshot: Published<Snapshot>,
    stats: Arc<Stats>,
    join: Option<JoinHandle<()>>,
}

/// How long a snapshot may lag behind routine probe results (transitions
/// and operator actions publish at once). Rebuilding is O(backends), so
/// not more often: at 10,000 backends this is the checker's largest cost.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

impl Checker {
    /// Starts the engine and the checker thread for `config`; `subscribers`
    /// receive every event from the very first probe on.
    pub fn start(config: Arc<Config>, subscribers: Vec<Sender<Event>>) -> std::io::Result<Checker> {
        let (req_tx, req_rx) = unbounded();
        let (rep_tx, rep_rx) = unbounded();
        let stats = Arc::new(Stats::new());
        let engine = Engine::start(
            config.healthchecker.threads,
            config.healthchecker.netns.clone(),
            rep_tx.clone(),
            Arc::clone(&stats),
        )?;
        let engine_beats = engine.beats();
        let snapshot = Published::new(Snapshot {
            config: Arc::clone(&config),
            backends: BTreeMap::new(),
            frontends: BTreeMap::new(),
            users: Arc::new(HashMap::new()),
            at: SystemTime::now(),
        });
        let mut core = Core {
            config: Arc::clone(&config),
            entries: IdMap::default(),
            names: BTreeMap::new(),
            next_id: 1,
            frontend_states: BTreeMap::new(),
            users: Arc::new(HashMap::new()),
            engine: Some(engine),
            report_tx: rep_tx,
            stats: Arc::clone(&stats),
            broadcaster: Broadcaster::default(),
            snapshot: snapshot.clone(),
            cadence: PublishCadence::new(PUBLISH_EVERY, Instant::now()),
            beat: Beat::new(),
            prober_beats: Arc::new(Mutex::new(engine_beats)),
            rng: Jitter::from_clock(0),
            pending: Vec::new(),
            ramp_checked: Instant::now(),
            ramp_due: None,
            ramp_dirty: true,
        };
        for tx in subscribers {
            core.broadcaster.add(tx);
        }
        core.apply_config(config, true);
        let beat = core.beat.clone();
        let prober_beats = Arc::clone(&core.prober_beats);
        let join = std::thread::Builder::new()
            .name("checker".into())
            .spawn(move || core.run(req_rx, rep_rx))?;
        Ok(Checker {
            beat,
            prober_beats,
            tx: req_tx,
            snapshot,
            stats,
            join: Some(join),
        })
    }

    /// Asks the checker and every prober to answer `seq` on their beats
    /// (the watchdog's question; see [`crate::heartbeat`]).
    pub fn heartbeat(&self, seq: u64) {
        let _ = self.tx.send(Request::Heartbeat(seq));
    }

    /// The checker's beat; the probers' come through it (see
    /// [`Checker::heartbeat`]) and are listed by [`Checker::beats`].
    pub fn beats(&self) -> Vec<(String, Beat)> {
        let mut v = vec![("checker".to_string(), self.beat.clone())];
        v.extend(
            self.prober_beats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        );
        v
    }

    /// Probe engine counters (probes started/finished, scheduling lateness).
    pub fn engine_stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// The latest snapshot (at most [`PUBLISH_EVERY`] old, fresh after any
    /// transition).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load()
    }

    /// A handle that readers keep.
    pub fn published(&self) -> Published<Snapshot> {
        self.snapshot.clone()
    }

    /// A cheap, cloneable handle for other threads.
    pub fn client(&self) -> CheckerClient {
        CheckerClient {
            tx: self.tx.clone(),
            snapshot: self.snapshot.clone(),
        }
    }

    /// Stops the checker and the engine.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.tx.send(Request::Shutdown);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop();
    }
}

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

struct Core {
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
    engine: Option<Engine>,
    report_tx: Sender<ReportBatch>,
    stats: Arc<Stats>,
    broadcaster: Broadcaster,
    snapshot: Published<Snapshot>,
    /// When to publish the snapshot (the thread's only timer).
    cadence: PublishCadence,
    beat: Beat,
    /// The probers' beats (replaced when the engine restarts).
    prober_beats: Arc<Mutex<Vec<(String, Beat)>>>,
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
}

fn interval_for(hc: &HealthCheck, c: Cadence) -> Duration {
    match c {
        Cadence::Normal | Cadence::Stopped => hc.interval,
        Cadence::Fast => hc.fast_interval,
        Cadence::Down => hc.down_interval,
    }
}

impl Core {
    fn run(&mut self, req_rx: Receiver<Request>, rep_rx: Receiver<ReportBatch>) {
        loop {
            // Block until input, or until a stale snapshot is due: an idle
            // checker (nothing stale) waits for input alone.
            let now = Instant::now();
            if std::mem::take(&mut self.ramp_dirty) {
                self.ramp_due = self.next_ramp_step();
            }
            let wake = [self.cadence.next_wakeup(now), self.ramp_due]
                .into_iter()
                .flatten()
                .min()
                .map_or(crossbeam_channel::never(), crossbeam_channel::at);
            select! {
                recv(rep_rx) -> batch => {
                    if let Ok(batch) = batch {
                        // Drain what else is queued before publishing.
                        for batch in std::iter::once(batch).chain(rep_rx.try_iter().take(64)) {
                            for r in batch {
                                self.on_report(r);
                            }
                        }
                    }
                }
                recv(req_rx) -> r => match r {
                    Ok(Request::Shutdown) | Err(_) => break,
                    Ok(req) => self.on_request(req),
                },
                recv(wake) -> _ => {}
            }
            let now = Instant::now();
            if self.ramp_due.is_some_and(|t| t <= now) {
                self.ramp_steps(now);
                self.ramp_due = self.next_ramp_step();
            }
            if self.cadence.due(Instant::now()) {
                self.publish();
            }
            self.flush_events();
        }
        if let Some(e) = self.engine.take() {
            e.shutdown();
        }
        info!("checker-stopped");
    }

    fn engine(&self, cmd: Command) {
        if let Some(e) = &self.engine {
            e.send(cmd);
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
        self.engine(cmd);
    }

    fn stop_probing(&mut self, name: &str) {
        if let Some(e) = self.entry_mut(name) {
            e.cadence = Cadence::Stopped;
            let id = e.id;
            self.engine(Command::Stop { id });
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
            self.engine(cmd);
        }
        if let (Some(t), Some(name)) = (t, name) {
            self.transitioned(&name, t);
        }
    }

    /// Logs, broadcasts and propagates one backend transition.
    fn transitioned(&mut self, name: &str, t: Transition) {
        self.ramp_dirty = true;
        let address = match self.entry_mut(name) {
            Some(e) => {
                e.up_since = (t.to == State::Up).then(Instant::now);
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
        for ev in std::mem::take(&mut self.pending) {
            self.broadcaster.publish(&ev);
        }
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
                at: SystemTime::now(),
            }));
            self.cadence.urgent();
        }
        self.cadence.changed();
    }

    fn on_request(&mut self, req: Request) {
        match req {
            Request::Action {
                backend,
                action,
                reply,
            } => {
                let r = self.action(&backend, action);
                let _ = reply.send(r);
            }
            Request::SetWeight {
                frontend,
                pool,
                backend,
                weight,
                flush,
                reply,
            } => {
                let r = self.set_weight(&frontend, &pool, &backend, weight, flush);
                let _ = reply.send(r);
            }
            Request::Heartbeat(seq) => {
                self.beat.answer(seq);
                if let Some(e) = &self.engine {
                    e.heartbeat(seq);
                }
            }
            Request::Reload(cfg) => {
                self.apply_config(cfg, false);
                self.emit(Event::ConfigReloaded);
                // The replaced state is freed: give the memory back.
                crate::limits::release_free_memory();
            }
            Request::Subscribe {
                tx,
                replay_frontends,
            } => {
                if replay_frontends {
                    let now = SystemTime::now();
                    for (name, st) in &self.frontend_states {
                        let _ = tx.try_send(Event::Frontend(FrontendEvent {
                            frontend: name.clone(),
                            from: *st,
                            to: *st,
                            at: now,
                        }));
                    }
                }
                self.broadcaster.add(tx);
            }
            Request::Publish(ev) => {
                // Nothing of the checker's own changed: no new snapshot.
                self.broadcaster.publish(&ev);
                return;
            }
            Request::Shutdown => {}
        }
        // Readers asking right after an action must see its effect.
        self.publish();
    }

    fn action(&mut self, name: &str, action: Action) -> Result<BackendView, CheckerError> {
        let Some(e) = self.entry_mut(name) else {
            return Err(CheckerError::NoBackend(name.to_string()));
        };
        let now = SystemTime::now();
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
        let now = SystemTime::now();
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
                    self.engine(Command::Stop { id });
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
    fn restart_engine_if_needed(&mut self, old: &crate::config::HealthChecker) {
        let new = self.config.healthchecker.clone();
        if old.threads == new.threads && old.netns == new.netns {
            return;
        }
        if let Some(e) = self.engine.take() {
            e.shutdown();
        }
        match Engine::start(
            new.threads,
            new.netns.clone(),
            self.report_tx.clone(),
            Arc::clone(&self.stats),
        ) {
            Ok(e) => {
                *self.prober_beats.lock().unwrap_or_else(|e| e.into_inner()) = e.beats();
                self.engine = Some(e);
            }
            Err(err) => {
                self.prober_beats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                error!("prober-restart-failed error={err}");
                return;
            }
        }
        warn!(
            "prober-restarted threads={} netns={}",
            new.threads,
            new.netns.as_deref().unwrap_or("-")
        );
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
        let now = Instant::now();
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
        self.snapshot.store(Arc::new(Snapshot {
            config: Arc::clone(&self.config),
            backends,
            frontends,
            users: Arc::clone(&self.users),
            at: SystemTime::now(),
        }));
        self.cadence.published(Instant::now());
        // Each snapshot of a large configuration replaces megabytes of
        // views; the allocator keeps the freed ones (10,000 backends: RSS
        // settled 10-20 MB above what is live). Hand them back.
        if self.names.len() >= TRIM_AT_BACKENDS {
            crate::limits::release_free_memory();
        }
    }
}

/// Configurations this large trim the heap after each publish.
const TRIM_AT_BACKENDS: usize = 500;
