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

mod action;
pub(crate) mod cadence;
mod client;
mod core;
pub mod events;
mod view;
pub(crate) mod whatif;

pub use action::{Action, CheckerError};
pub use client::CheckerClient;
pub use view::{
    BackendView, DURATION_BUCKETS, FrontendView, PoolMember, PoolView, ProbeCounters, Snapshot,
};

use self::core::{Core, Input, Now, Output, Reply};
use client::Request;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, select, unbounded};
use log::{error, info, warn};

use crate::config::Config;
use crate::heartbeat::Beat;
use crate::probe::engine::{Engine, ReportBatch, Stats};
use crate::probe::schedule::Jitter;
use crate::snapshot::Published;
use events::{Broadcaster, Event, FrontendEvent};

/// Handle to the running checker thread.
pub struct Checker {
    beat: Beat,
    prober_beats: Arc<Mutex<Vec<(String, Beat)>>>,
    tx: Sender<Request>,
    snapshot: Published<Snapshot>,
    stats: Arc<Stats>,
    join: Option<JoinHandle<()>>,
}

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
        let (core, out) = Core::new(Arc::clone(&config), Now::read(), Jitter::from_clock(0));
        let mut shell = Shell {
            core,
            engine: Some(engine),
            report_tx: rep_tx,
            stats: Arc::clone(&stats),
            broadcaster: Broadcaster::default(),
            snapshot: snapshot.clone(),
            beat: Beat::new(),
            prober_beats: Arc::new(Mutex::new(engine_beats)),
        };
        for tx in subscribers {
            shell.broadcaster.add(tx);
        }
        shell.apply(out);
        let beat = shell.beat.clone();
        let prober_beats = Arc::clone(&shell.prober_beats);
        let join = std::thread::Builder::new()
            .name("checker".into())
            .spawn(move || shell.run(req_rx, rep_rx))?;
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

/// Configurations this large trim the heap after each publish.
const TRIM_AT_BACKENDS: usize = 500;

/// The checker thread around the [`Core`]: the engine, the channels, the
/// subscribers, the published snapshot and the clock, nothing else.
struct Shell {
    core: Core,
    engine: Option<Engine>,
    report_tx: Sender<ReportBatch>,
    stats: Arc<Stats>,
    broadcaster: Broadcaster,
    snapshot: Published<Snapshot>,
    beat: Beat,
    /// The probers' beats (replaced when the engine restarts).
    prober_beats: Arc<Mutex<Vec<(String, Beat)>>>,
}

impl Shell {
    fn run(&mut self, req_rx: Receiver<Request>, rep_rx: Receiver<ReportBatch>) {
        loop {
            // Block until input, or until the core's next timer: an idle
            // checker (nothing stale, nothing ramping) waits for input alone.
            let wake = self
                .core
                .poll_timeout(Instant::now())
                .map_or(crossbeam_channel::never(), crossbeam_channel::at);
            let input = select! {
                recv(rep_rx) -> batch => match batch {
                    // Drain what else is queued before publishing.
                    Ok(batch) => Input::Reports(
                        std::iter::once(batch)
                            .chain(rep_rx.try_iter().take(64))
                            .flatten()
                            .collect(),
                    ),
                    Err(_) => Input::Tick,
                },
                recv(req_rx) -> r => match r {
                    Ok(Request::Shutdown) | Err(_) => break,
                    Ok(req) => match self.request(req) {
                        Some(input) => input,
                        None => continue,
                    },
                },
                recv(wake) -> _ => Input::Tick,
            };
            let (_, out) = self.core.handle(Now::read(), input);
            self.apply(out);
        }
        if let Some(e) = self.engine.take() {
            e.shutdown();
        }
        info!("checker-stopped");
    }

    /// Serves what needs no decision; hands the rest to the core (and
    /// sends its reply).
    fn request(&mut self, req: Request) -> Option<Input> {
        match req {
            Request::Action {
                backend,
                action,
                reply,
            } => {
                let (r, out) = self
                    .core
                    .handle(Now::read(), Input::Action { backend, action });
                self.apply(out);
                if let Reply::Backend(r) = r {
                    let _ = reply.send(*r);
                }
                None
            }
            Request::SetWeight {
                frontend,
                pool,
                backend,
                weight,
                flush,
                reply,
            } => {
                let input = Input::SetWeight {
                    frontend,
                    pool,
                    backend,
                    weight,
                    flush,
                };
                let (r, out) = self.core.handle(Now::read(), input);
                self.apply(out);
                if let Reply::Frontend(r) = r {
                    let _ = reply.send(r);
                }
                None
            }
            Request::Preview { input, reply } => {
                let _ = reply.send(self.core.preview(Now::read(), input));
                None
            }
            Request::Heartbeat(seq) => {
                self.beat.answer(seq);
                if let Some(e) = &self.engine {
                    e.heartbeat(seq);
                }
                None
            }
            Request::Reload(cfg) => {
                let (_, out) = self.core.handle(Now::read(), Input::Reload(cfg));
                self.apply(out);
                // The replaced state is freed: give the memory back.
                crate::limits::release_free_memory();
                None
            }
            Request::Subscribe {
                tx,
                replay_frontends,
            } => {
                if replay_frontends {
                    let now = SystemTime::now();
                    for (name, st) in self.core.frontend_states() {
                        let _ = tx.try_send(Event::Frontend(FrontendEvent {
                            frontend: name.clone(),
                            from: *st,
                            to: *st,
                            at: now,
                        }));
                    }
                }
                self.broadcaster.add(tx);
                None
            }
            Request::Publish(ev) => {
                // Nothing of the checker's own changed: no new snapshot.
                self.broadcaster.publish(&ev);
                None
            }
            Request::Shutdown => None,
        }
    }

    /// Does what the core asked, in order.
    fn apply(&mut self, out: Vec<Output>) {
        for o in out {
            match o {
                Output::Engine(cmd) => {
                    if let Some(e) = &self.engine {
                        e.send(cmd);
                    }
                }
                Output::RestartEngine(hc) => self.restart_engine(&hc),
                Output::Publish(snap) => {
                    let large = snap.backends.len() >= TRIM_AT_BACKENDS;
                    self.snapshot.store(snap);
                    // Each snapshot of a large configuration replaces
                    // megabytes of views; the allocator keeps the freed
                    // ones (10,000 backends: RSS settled 10-20 MB above
                    // what is live). Hand them back.
                    if large {
                        crate::limits::release_free_memory();
                    }
                }
                Output::Event(ev) => self.broadcaster.publish(&ev),
            }
        }
    }

    /// A new engine with `hc`'s threads and namespace (the core starts
    /// every probed backend again in it).
    fn restart_engine(&mut self, hc: &crate::config::HealthChecker) {
        if let Some(e) = self.engine.take() {
            e.shutdown();
        }
        match Engine::start(
            hc.threads,
            hc.netns.clone(),
            self.report_tx.clone(),
            Arc::clone(&self.stats),
        ) {
            Ok(e) => {
                *self.prober_beats.lock().unwrap_or_else(|e| e.into_inner()) = e.beats();
                self.engine = Some(e);
                warn!(
                    "prober-restarted threads={} netns={}",
                    hc.threads,
                    hc.netns.as_deref().unwrap_or("-")
                );
            }
            Err(err) => {
                self.prober_beats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                error!("prober-restart-failed error={err}");
            }
        }
    }
}
