//! The reconciler thread: the only code that changes VPP.
//!
//! It listens to the checker's events and turns each backend transition
//! into a sync of the frontends that use the backend; it runs a full sync
//! every `sync-interval`, after a reload and after every (re)connect. A
//! full sync reads VPP; targeted syncs diff against the reconciler's own
//! record of what it last saw and did (it is VPP's only writer), so one
//! transition costs one message, not a dump of every VIP. Anything else
//! that changed VPP is corrected by the next full sync.
//!
//! VPP being slow or gone never blocks probing: the checker only offers
//! events, and events that arrive while VPP is unreachable just mark
//! frontends dirty; the next sync uses the state of that moment.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, select, unbounded};
use log::{debug, info, warn};

pub mod core;

use self::core::{Action, Core, Phase, Timing};
use super::client::{ApiCounters, Client, ClientConfig, Interrupt};
use super::errors::VppError;
use super::lb::{self, Actual, FlushRequests, Op, OpKind, Scope, ScopeKind};
use super::status::classify as classify_frontend;
use super::wire::{LbVip, Prefix};
use crate::checker::events::{DataplaneEvent, Event};
use crate::checker::{CheckerClient, Snapshot};
use crate::health::state::State;
use crate::heartbeat::Beat;
use crate::snapshot::Published;
use std::time::SystemTime;

/// Counters for `/metrics` and `show vpp lb state`.
#[derive(Debug, Default)]
pub struct SyncStats {
    ops: Mutex<BTreeMap<(ScopeKind, OpKind), u64>>,
    /// ASes whose VPP bucket count differed from `vpp::maglev`'s.
    pub drift_mismatches: AtomicU64,
    /// Syncs that completed.
    pub syncs: AtomicU64,
    /// Operations VPP refused.
    pub op_errors: AtomicU64,
    /// Whether a VPP session is up.
    pub connected: AtomicBool,
}

impl SyncStats {
    fn count(&self, scope: ScopeKind, kind: OpKind) {
        let mut m = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((scope, kind)).or_insert(0) += 1;
    }

    /// Operations sent, by (scope, kind).
    pub fn ops(&self) -> Vec<((ScopeKind, OpKind), u64)> {
        let m = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(k, v)| (*k, *v)).collect()
    }
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// A full or a targeted sync.
    pub scope: ScopeKind,
    /// Operations sent, in order.
    pub ops: Vec<String>,
    /// Operations VPP refused (with the reason).
    pub errors: Vec<String>,
    /// The refused operations and VPP's errors.
    pub refused: Vec<(Op, String)>,
    /// Desired state VPP does not hold after the sync (operations still
    /// needed, refused ones included) plus, on full syncs, bucket-count
    /// mismatches.
    pub drift: usize,
    /// Wall time.
    pub took: Duration,
}

pub use super::status::{Dataplane, FrontendVpp, Refusal, VipStatus, VppStatus};

enum Cmd {
    Sync {
        frontend: Option<String>,
        reply: Sender<Result<SyncReport, ReconcilerError>>,
    },
    Read {
        reply: Sender<Result<Actual, ReconcilerError>>,
    },
    Heartbeat(u64),
    Stop,
}

/// Why an operator's sync or read did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcilerError {
    /// `vpp.api-socket` is empty.
    Disabled,
    /// No session now.
    NotConnected {
        /// Milliseconds until the next connection attempt.
        next_attempt_ms: u128,
        /// Why the last session ended or the last attempt failed.
        last_error: Option<String>,
    },
    /// The checker has not published every frontend yet (startup).
    NotPublished,
    /// No frontend of that name.
    NoFrontend(String),
    /// VPP failed the call (the session may have ended with it).
    Vpp(VppError),
    /// The reconciler thread has stopped.
    NotRunning,
    /// It did not answer in time.
    NoAnswer,
}

impl std::fmt::Display for ReconcilerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReconcilerError::Disabled => {
                f.write_str("VPP integration is disabled (vpp.api-socket is empty)")
            }
            ReconcilerError::NotConnected {
                next_attempt_ms,
                last_error,
            } => write!(
                f,
                "VPP is not connected (next attempt in {next_attempt_ms} ms; last error: {})",
                last_error.as_deref().unwrap_or("none")
            ),
            ReconcilerError::NotPublished => f.write_str("health state not published yet"),
            ReconcilerError::NoFrontend(n) => write!(f, "no frontend named {n:?}"),
            ReconcilerError::Vpp(e) => e.fmt(f),
            ReconcilerError::NotRunning => f.write_str("reconciler is not running"),
            ReconcilerError::NoAnswer => f.write_str("reconciler did not answer in time"),
        }
    }
}

impl std::error::Error for ReconcilerError {}

impl From<VppError> for ReconcilerError {
    fn from(e: VppError) -> ReconcilerError {
        ReconcilerError::Vpp(e)
    }
}

/// A cloneable handle for other threads (the control socket).
#[derive(Clone)]
pub struct ReconcilerClient {
    tx: Sender<Cmd>,
    status: Published<VppStatus>,
    stats: Arc<SyncStats>,
}

impl ReconcilerClient {
    /// A sync now (full, or of one frontend), waiting up to `timeout`.
    pub fn sync(
        &self,
        frontend: Option<&str>,
        timeout: Duration,
    ) -> Result<SyncReport, ReconcilerError> {
        let (reply, rx) = bounded(1);
        self.tx
            .send(Cmd::Sync {
                frontend: frontend.map(str::to_string),
                reply,
            })
            .map_err(|_| ReconcilerError::NotRunning)?;
        rx.recv_timeout(timeout)
            .map_err(|_| ReconcilerError::NoAnswer)?
    }

    /// VPP's lb state, read now.
    pub fn read(&self, timeout: Duration) -> Result<Actual, ReconcilerError> {
        let (reply, rx) = bounded(1);
        self.tx
            .send(Cmd::Read { reply })
            .map_err(|_| ReconcilerError::NotRunning)?;
        rx.recv_timeout(timeout)
            .map_err(|_| ReconcilerError::NoAnswer)?
    }

    /// VPP as last seen.
    pub fn status(&self) -> Arc<VppStatus> {
        self.status.load()
    }

    /// Sync counters.
    pub fn stats(&self) -> Arc<SyncStats> {
        Arc::clone(&self.stats)
    }
}

/// How to start the reconciler.
#[derive(Debug, Clone)]
pub struct ReconcilerOptions {
    /// The process start: the warmup clock (a reload does not reset it).
    pub started: Instant,
    /// Use this API socket instead of the configured one (`--vpp-sim`).
    pub api_socket_override: Option<PathBuf>,
    /// Per-call timeout.
    pub timeout: Duration,
}

/// How long [`Reconciler::shutdown`] lets a sync in progress finish (and
/// the session close politely) before it cuts the session.
const STOP_GRACE: Duration = Duration::from_millis(300);

/// Handle to the reconciler thread.
pub struct Reconciler {
    tx: Sender<Cmd>,
    join: Option<JoinHandle<()>>,
    done: Receiver<()>,
    interrupt: Arc<Interrupt>,
    stats: Arc<SyncStats>,
    status: Published<VppStatus>,
    beat: Beat,
}

impl Reconciler {
    /// Starts the thread; `events` must be a checker subscription.
    pub fn start(
        checker: CheckerClient,
        events: Receiver<Event>,
        api: Arc<ApiCounters>,
        opts: ReconcilerOptions,
    ) -> std::io::Result<Reconciler> {
        let (tx, rx) = bounded(64);
        let (done_tx, done) = bounded::<()>(0);
        let stats = Arc::new(SyncStats::default());
        let status = Published::new(VppStatus::default());
        let interrupt = Interrupt::new();
        let beat = Beat::new();
        let snap = checker.snapshot();
        let (watch_tx, watch_rx) = unbounded();
        let mut w = Thread {
            core: Core::new(Timing::of(&snap.config), opts.started, false),
            status: status.clone(),
            routes: BTreeMap::new(),
            checker,
            api,
            opts,
            interrupt: Arc::clone(&interrupt),
            cfg: None,
            client: None,
            session: 0,
            watch: None,
            watch_tx,
            last_error: None,
            syncer: Syncer::default(),
            flushes: FlushRequests::default(),
            stats: Arc::clone(&stats),
            beat: beat.clone(),
            refusals: BTreeMap::new(),
            refused_last: Default::default(),
        };
        let join = std::thread::Builder::new()
            .name("reconciler".into())
            .spawn(move || {
                w.run(events, rx, watch_rx);
                drop(done_tx);
            })?;
        Ok(Reconciler {
            tx,
            join: Some(join),
            done,
            interrupt,
            stats,
            status,
            beat,
        })
    }

    /// A handle for other threads.
    pub fn client(&self) -> ReconcilerClient {
        ReconcilerClient {
            tx: self.tx.clone(),
            status: self.status.clone(),
            stats: Arc::clone(&self.stats),
        }
    }

    /// VPP as the reconciler last saw it.
    pub fn status(&self) -> Published<VppStatus> {
        self.status.clone()
    }

    /// Counters.
    pub fn stats(&self) -> Arc<SyncStats> {
        Arc::clone(&self.stats)
    }

    /// The thread's answers to [`Reconciler::heartbeat`].
    pub fn beat(&self) -> Beat {
        self.beat.clone()
    }

    /// Asks the thread to answer `seq` on its [`Beat`] (watchdog).
    pub fn heartbeat(&self, seq: u64) {
        let _ = self.tx.try_send(Cmd::Heartbeat(seq));
    }

    /// A sync now (full, or of one frontend), waiting up to `timeout`.
    pub fn sync(
        &self,
        frontend: Option<&str>,
        timeout: Duration,
    ) -> Result<SyncReport, ReconcilerError> {
        self.client().sync(frontend, timeout)
    }

    /// Stops the thread: the session is closed politely if VPP answers
    /// within [`STOP_GRACE`], else cut (a hung VPP never delays a stop).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.tx.try_send(Cmd::Stop);
        if self.done.recv_timeout(STOP_GRACE).is_err() {
            // Still busy (a sync, a VPP that does not answer): cut it.
            self.interrupt.trigger();
            // The queue may have been full: the thread notices the
            // interrupt when its call fails, then needs the Stop.
            let _ = self.tx.send_timeout(Cmd::Stop, Duration::from_millis(200));
        }
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

impl Drop for Reconciler {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread side of the liveness watch of one session: a helper thread
/// that blocks in `poll(2)` on the API socket and says when it turns
/// readable or hangs up, so a VPP death is seen at once, not at the next
/// ping. It waits for `resume` before polling again (the reconciler reads
/// the socket in between), and ends with the session.
struct SessionWatch {
    resume: Sender<()>,
}

fn spawn_watch(
    stream: std::os::unix::net::UnixStream,
    session: u64,
    tx: Sender<u64>,
) -> std::io::Result<SessionWatch> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let (resume, resume_rx) = bounded::<()>(1);
    std::thread::Builder::new()
        .name("vpp-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                // A peer that closes makes the socket readable (EOF) and
                // raises POLLHUP; either wakes this poll.
                let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => return,
                }
                if tx.send(session).is_err() || resume_rx.recv().is_err() {
                    return;
                }
            }
        })?;
    Ok(SessionWatch { resume })
}

struct Thread {
    core: Core,
    status: Published<VppStatus>,
    /// FIB stats index per VIP prefix, for this session.
    routes: BTreeMap<Prefix, u32>,
    checker: CheckerClient,
    api: Arc<ApiCounters>,
    opts: ReconcilerOptions,
    interrupt: Arc<Interrupt>,
    /// How to reach VPP (`None`: integration disabled).
    cfg: Option<ClientConfig>,
    client: Option<Client>,
    /// Sessions opened so far; the current one's number.
    session: u64,
    watch: Option<SessionWatch>,
    watch_tx: Sender<u64>,
    last_error: Option<String>,
    syncer: Syncer,
    flushes: FlushRequests,
    stats: Arc<SyncStats>,
    beat: Beat,
    /// The last operation VPP refused, per frontend.
    refusals: BTreeMap<String, Refusal>,
    /// Frontends whose last sync had an operation refused.
    refused_last: std::collections::BTreeSet<String>,
}

/// Whether the thread's loop goes on.
enum Flow {
    Go,
    Stop,
}

impl Thread {
    fn run(&mut self, events: Receiver<Event>, cmds: Receiver<Cmd>, watch: Receiver<u64>) {
        self.configure(&self.checker.snapshot());
        loop {
            self.act();
            // Sleep until input or the core's next deadline; never a
            // deadline in the past (the core's tests guarantee it).
            let timer = self
                .core
                .next_wakeup(Instant::now())
                .map_or(crossbeam_channel::never(), crossbeam_channel::at);
            let flow = select! {
                recv(events) -> ev => match ev {
                    Ok(ev) => {
                        self.on_event(ev);
                        for ev in events.try_iter() {
                            self.on_event(ev);
                        }
                        self.release_known(&self.checker.snapshot());
                        Flow::Go
                    }
                    Err(_) => Flow::Stop,
                },
                recv(cmds) -> c => match c {
                    Ok(Cmd::Sync { frontend, reply }) => {
                        let r = self.operator_sync(frontend);
                        let _ = reply.send(r);
                        Flow::Go
                    }
                    Ok(Cmd::Read { reply }) => {
                        let r = self.operator_read();
                        let _ = reply.send(r);
                        Flow::Go
                    }
                    Ok(Cmd::Heartbeat(seq)) => {
                        self.beat.answer(seq);
                        Flow::Go
                    }
                    Ok(Cmd::Stop) | Err(_) => Flow::Stop,
                },
                recv(watch) -> s => {
                    if let Ok(s) = s {
                        self.on_socket_activity(s);
                    }
                    Flow::Go
                },
                recv(timer) -> _ => Flow::Go,
            };
            if matches!(flow, Flow::Stop) || self.interrupt.is_triggered() {
                break;
            }
        }
        self.watch = None;
        if let Some(c) = self.client.take() {
            if !self.interrupt.is_triggered() {
                let _ = c.close();
            }
        }
        info!("reconciler-stopped");
    }

    /// Performs what the core asks for until it asks for nothing.
    fn act(&mut self) {
        // Bounded: each action changes the core's state; the cap is a
        // guard against a bug turning into a spin.
        for _ in 0..64 {
            let now = Instant::now();
            if self.core.phase(now) == Phase::Warming {
                self.release_known(&self.checker.snapshot());
            }
            let Some(action) = self.core.poll(now) else {
                return;
            };
            match action {
                Action::Connect => self.connect(),
                Action::WarmupDone => info!("vpp-warmup-done"),
                Action::Ping => match self.client.as_mut().map(Client::ping) {
                    Some(Ok(_)) => self.core.called(Instant::now()),
                    Some(Err(e)) => {
                        warn!("vpp-ping-failed error={:?}", e.to_string());
                        self.lost(&e.to_string());
                    }
                    None => self.lost("no session"),
                },
                Action::Sync(scope) => {
                    let snap = self.checker.snapshot();
                    match self.sync_once(scope.clone(), &snap, false) {
                        Ok(report) => self.after_sync(&scope, &snap, &report),
                        Err(e) => {
                            warn!("vpp-lbsync-failed error={:?}", e.to_string());
                            // A dead session was already reported lost
                            // (the core reconnects); otherwise retry later.
                            if self.client.is_some() {
                                self.core.sync_failed(Instant::now());
                            }
                        }
                    }
                }
            }
            if self.interrupt.is_triggered() {
                return;
            }
        }
        warn!("reconciler-busy actions=64 yielding");
    }

    /// Releases, during warmup, the frontends whose backends all have a
    /// known state.
    fn release_known(&mut self, snap: &Snapshot) {
        let now = Instant::now();
        if self.core.phase(now) != Phase::Warming {
            return;
        }
        let known = snap
            .config
            .frontends
            .iter()
            .filter(|(_, fe)| {
                fe.backend_names()
                    .iter()
                    .all(|b| snap.state_of(b) != State::Unknown)
            })
            .map(|(name, _)| name.clone());
        for name in self.core.frontends_known(now, known) {
            info!("vpp-warmup-release frontend={name}");
        }
    }

    /// Follows the configured API socket (a reload may change it).
    fn configure(&mut self, snap: &Snapshot) {
        self.core.set_timing(Timing::of(&snap.config));
        let socket = self
            .opts
            .api_socket_override
            .clone()
            .or_else(|| snap.config.vpp.api_socket.clone());
        if socket == self.cfg.as_ref().map(|c| c.socket.clone()) {
            // Frontends a reload added get a status at once.
            self.publish_dataplane(snap, &Scope::Frontends(Default::default()));
            return;
        }
        if let Some(c) = self.client.take() {
            self.watch = None;
            let _ = c.close();
            self.mark_disconnected();
        }
        self.syncer.cache = None;
        self.cfg = socket.map(|s| {
            let mut cfg = ClientConfig::new(s);
            cfg.timeout = self.opts.timeout;
            cfg.interrupt = Some(Arc::clone(&self.interrupt));
            cfg
        });
        self.core.set_enabled(self.cfg.is_some());
        self.publish_dataplane(snap, &Scope::All);
    }

    fn connect(&mut self) {
        let Some(cfg) = self.cfg.clone() else {
            return;
        };
        match Client::connect(&cfg, Arc::clone(&self.api)) {
            Ok(c) => {
                self.session += 1;
                info!(
                    "vpp-connect socket={} handle={:#x}",
                    cfg.socket.display(),
                    c.handle()
                );
                self.watch = match c.watch_handle() {
                    Ok(h) => spawn_watch(h, self.session, self.watch_tx.clone())
                        .map_err(|e| warn!("vpp-watch-failed error={e}"))
                        .ok(),
                    Err(e) => {
                        warn!("vpp-watch-failed error={e}");
                        None
                    }
                };
                self.client = Some(c);
                self.last_error = None;
                self.core.connected(Instant::now());
                self.new_session();
            }
            Err(e) => {
                // Measured from the failure, not from the attempt.
                let wait = self.core.connect_failed(Instant::now());
                let msg = e.to_string();
                if self.last_error.as_deref() != Some(&msg) {
                    warn!(
                        "vpp-connect-failed socket={} error={:?} retry-in-ms={}",
                        cfg.socket.display(),
                        msg,
                        wait.as_millis()
                    );
                }
                self.last_error = Some(msg);
            }
        }
    }

    /// The session died: forget it, say so everywhere at once.
    fn lost(&mut self, why: &str) {
        if self.client.take().is_none() && !self.core.is_connected() {
            return;
        }
        self.watch = None;
        let wait = self.core.session_lost(Instant::now());
        if let Some(cfg) = &self.cfg {
            warn!(
                "vpp-disconnect socket={} reason={why:?} retry-in-ms={}",
                cfg.socket.display(),
                wait.as_millis()
            );
        }
        self.last_error = Some(why.to_string());
        self.mark_disconnected();
    }

    fn mark_disconnected(&mut self) {
        self.syncer.cache = None;
        self.routes.clear();
        self.stats.connected.store(false, Ordering::Relaxed);
        let old = self.status.load();
        let gone = VppStatus {
            frontends: old.frontends.clone(),
            ..VppStatus::default()
        };
        if *old != gone {
            self.status.store(Arc::new(gone));
        }
        self.publish_dataplane(&self.checker.snapshot(), &Scope::All);
    }

    /// The watched socket turned readable or hung up.
    fn on_socket_activity(&mut self, session: u64) {
        if session != self.session {
            return; // a watch of an earlier session, ending
        }
        let Some(c) = self.client.as_mut() else {
            return;
        };
        match c.poll_unsolicited() {
            Ok(()) => {
                if let Some(w) = &self.watch {
                    let _ = w.resume.try_send(());
                }
            }
            Err(e) => self.lost(&e.to_string()),
        }
    }

    /// The client of a healthy session, or why there is none.
    fn session_client(&mut self) -> Result<&mut Client, ReconcilerError> {
        if self.cfg.is_none() {
            return Err(ReconcilerError::Disabled);
        }
        if self.client.as_ref().is_some_and(|c| !c.is_healthy()) {
            self.lost("session failed");
        }
        match self.client.as_mut() {
            Some(c) => Ok(c),
            None => {
                let next = self.core.next_connect().map_or(0, |t| {
                    t.saturating_duration_since(Instant::now()).as_millis()
                });
                Err(ReconcilerError::NotConnected {
                    next_attempt_ms: next,
                    last_error: self.last_error.clone(),
                })
            }
        }
    }

    /// Checks a call's error: a connection error ends the session.
    fn after_call(&mut self, e: &VppError) {
        if e.is_connection_error() || self.client.as_ref().is_some_and(|c| !c.is_healthy()) {
            self.lost(&e.to_string());
        }
    }

    fn operator_read(&mut self) -> Result<Actual, ReconcilerError> {
        let client = self.session_client()?;
        match Syncer::read(client) {
            Ok(a) => {
                self.core.called(Instant::now());
                Ok(a)
            }
            Err(e) => {
                self.after_call(&e);
                Err(e.into())
            }
        }
    }

    /// A new VPP session: forget per-session facts, learn VPP's version.
    fn new_session(&mut self) {
        self.routes.clear();
        self.syncer.cache = None;
        let Some(c) = self.client.as_mut() else {
            return;
        };
        let version = c.show_version();
        let pid = c.ping();
        if let Err(e) = version.as_ref().and(pid.as_ref()) {
            let e = e.clone();
            return self.after_call(&e);
        }
        let (version, pid) = (version.ok(), pid.ok());
        if let Some(v) = &version {
            info!(
                "vpp-version version={} build-date={} pid={}",
                v.version,
                v.build_date,
                pid.unwrap_or(0)
            );
        }
        self.stats.connected.store(true, Ordering::Relaxed);
        self.status.store(Arc::new(VppStatus {
            connected: true,
            connected_at: Some(SystemTime::now()),
            version,
            pid,
            vips: Vec::new(),
            frontends: self.status.load().frontends.clone(),
        }));
        // What VPP holds is known (and its counters readable) from the
        // first moment, warmup or not.
        let Some(c) = self.client.as_mut() else {
            return;
        };
        match Syncer::read(c) {
            Ok(a) => {
                self.syncer.cache = Some(a);
                let snap = self.checker.snapshot();
                self.publish_vips(&snap);
                self.publish_dataplane(&snap, &Scope::All);
            }
            Err(e) => self.after_call(&e),
        }
    }

    fn on_event(&mut self, ev: Event) {
        let snap = self.checker.snapshot();
        match (&ev, lb::event_effect(&snap, &ev, &mut self.flushes)) {
            (_, lb::Effect::Frontends(fes)) => self.core.frontends_changed(fes),
            (Event::ConfigReloaded, _) => {
                self.configure(&snap);
                self.core.full_sync_needed();
            }
            (Event::Lagged { missed }, _) => {
                debug!("reconciler-lagged missed={missed}");
                self.core.full_sync_needed();
            }
            (_, lb::Effect::All) => self.core.full_sync_needed(),
            (_, lb::Effect::Nothing) => {}
        }
        if !self.core.is_enabled() {
            self.flushes.clear();
        } else if self.core.phase(Instant::now()) == Phase::HandsOff
            && !self.core.dirty().is_empty()
        {
            debug!(
                "reconciler-warmup-suppressed frontends={}",
                self.core.dirty().len()
            );
        }
    }

    /// Publishes the VIPs of the last full read, with their counter
    /// indexes (route stats indexes looked up once per session and prefix).
    fn publish_vips(&mut self, snap: &Snapshot) {
        let Some(actual) = self.syncer.cache.clone() else {
            return;
        };
        let Some(client) = self.client.as_mut() else {
            return;
        };
        let owners = owners(snap);
        let mut vips = Vec::with_capacity(actual.vips.len());
        for (key, v) in &actual.vips {
            let pfx = key.pfx.normalized();
            if let std::collections::btree_map::Entry::Vacant(slot) = self.routes.entry(pfx) {
                match client.route_lookup(pfx) {
                    Ok(r) => {
                        slot.insert(r.stats_index);
                    }
                    Err(e) if e.is_connection_error() => return self.after_call(&e),
                    Err(e) => debug!("vpp-route-lookup-failed prefix={pfx} error={e}"),
                }
            }
            let facts = v.table_facts();
            vips.push(VipStatus {
                frontend: owners.get(key).cloned(),
                key: *key,
                index: v.index,
                stats_index: self.routes.get(&pfx).copied(),
                flows: v.ases.iter().map(|(a, x)| (*a, x.flows)).collect(),
                fingerprint: facts.as_ref().map(|f| f.0.clone()),
                share_error_centi: facts.map_or(0, |f| (f.1 * 100.0).round() as u32),
            });
        }
        // Tables the current weights outgrew (health changes can do it):
        // said once when it starts and once when it ends.
        let old = self.status.load();
        for v in &vips {
            let was = old
                .vips
                .iter()
                .find(|o| o.key == v.key)
                .is_some_and(|o| f64::from(o.share_error_centi) / 100.0 > lb::SHARE_TOLERANCE);
            let is = f64::from(v.share_error_centi) / 100.0 > lb::SHARE_TOLERANCE;
            if is && !was {
                warn!(
                    "vpp-table-share-skew frontend={} vip={}:{}/{} error_points={:.1} (see new-flows-table-length)",
                    v.frontend.as_deref().unwrap_or("-"),
                    v.key.pfx,
                    v.key.protocol,
                    v.key.port,
                    f64::from(v.share_error_centi) / 100.0
                );
            } else if was && !is {
                info!(
                    "vpp-table-share-ok frontend={} vip={}:{}/{}",
                    v.frontend.as_deref().unwrap_or("-"),
                    v.key.pfx,
                    v.key.protocol,
                    v.key.port
                );
            }
        }
        let mut st = (*self.status.load()).clone();
        st.vips = vips;
        self.status.store(Arc::new(st));
    }

    fn operator_sync(&mut self, frontend: Option<String>) -> Result<SyncReport, ReconcilerError> {
        let snap = self.checker.snapshot();
        self.session_client()?;
        let scope = match frontend {
            None => Scope::All,
            Some(f) => {
                if !snap.config.frontends.contains_key(&f) {
                    return Err(ReconcilerError::NoFrontend(f));
                }
                Scope::Frontends([f].into())
            }
        };
        let r = self.sync_once(scope.clone(), &snap, true);
        if let Ok(report) = &r {
            self.after_sync(&scope, &snap, report);
        }
        r
    }

    /// A sync of `scope` completed: the core learns it, refusals are kept,
    /// and what VPP was read to hold is published (counters, statuses).
    fn after_sync(&mut self, scope: &Scope, snap: &Snapshot, report: &SyncReport) {
        self.core.synced(Instant::now(), scope);
        self.refused_last.retain(|f| !scope.covers(f));
        if !report.refused.is_empty() {
            let owners = owners(snap);
            let at = SystemTime::now();
            for (op, error) in &report.refused {
                let Some(fe) = op.vip().and_then(|v| owners.get(&v)) else {
                    continue;
                };
                self.refused_last.insert(fe.clone());
                self.refusals.insert(
                    fe.clone(),
                    Refusal {
                        op: op.to_string(),
                        error: error.clone(),
                        at,
                    },
                );
            }
        }
        // A full sync reads VPP; a targeted one did when VPP refused.
        if *scope == Scope::All || !report.refused.is_empty() {
            self.publish_vips(snap);
        }
        self.publish_dataplane(snap, scope);
    }

    /// Recomputes the VPP status of the frontends `scope` covers (and of
    /// any not known yet) from the last read of VPP, publishes it, and
    /// says each change (log line, event).
    fn publish_dataplane(&mut self, snap: &Snapshot, scope: &Scope) {
        let now = Instant::now();
        let enabled = self.cfg.is_some();
        let connected = self.client.is_some() && self.core.is_connected();
        let old = self.status.load();
        let todo: std::collections::BTreeSet<String> = snap
            .config
            .frontends
            .keys()
            .filter(|n| scope.covers(n) || !old.frontends.contains_key(*n))
            .cloned()
            .collect();
        let unheld = match (&self.syncer.cache, connected) {
            (Some(actual), true) if !todo.is_empty() => {
                let desired = lb::desired_for(snap, &Scope::Frontends(todo.clone()));
                Some(lb::unheld(&desired, actual))
            }
            _ => None,
        };
        self.refusals
            .retain(|n, _| snap.config.frontends.contains_key(n));
        let mut frontends = old.frontends.clone();
        frontends.retain(|n, _| snap.config.frontends.contains_key(n));
        let mut changes = Vec::new();
        for name in &todo {
            let u = unheld.as_ref().and_then(|m| m.get(name).copied());
            let state = classify_frontend(
                enabled,
                connected,
                self.core.programmable(name, now),
                u,
                self.refused_last.contains(name),
            );
            let next = FrontendVpp {
                state,
                unheld: if state == Dataplane::Pending {
                    0
                } else {
                    u.unwrap_or(0)
                },
                last_refusal: self.refusals.get(name).cloned(),
            };
            let before = frontends.insert(name.clone(), next.clone());
            let from = before.map_or(Dataplane::Pending, |b| b.state);
            if from != state {
                changes.push((name.clone(), from, next));
            }
        }
        if frontends == old.frontends {
            return;
        }
        let mut st = (*old).clone();
        st.frontends = frontends;
        self.status.store(Arc::new(st));
        for (name, from, now) in changes {
            let error = (now.state == Dataplane::Refused)
                .then(|| now.last_refusal.as_ref().map(|r| r.error.clone()))
                .flatten();
            match &error {
                Some(e) => warn!(
                    "frontend-vpp-state frontend={name} from={from} to={} unheld={} error={e:?}",
                    now.state, now.unheld
                ),
                None => info!(
                    "frontend-vpp-state frontend={name} from={from} to={}",
                    now.state
                ),
            }
            self.checker.publish(Event::Dataplane(DataplaneEvent {
                frontend: name,
                from,
                to: now.state,
                error,
                at: SystemTime::now(),
            }));
        }
    }

    /// One sync. A connection error ends the session (the core then
    /// reconnects and syncs fully); refused operations are logged and
    /// counted.
    fn sync_once(
        &mut self,
        scope: Scope,
        snap: &Snapshot,
        read_fresh: bool,
    ) -> Result<SyncReport, ReconcilerError> {
        if snap.frontends.len() < snap.config.frontends.len() {
            return Err(ReconcilerError::NotPublished);
        }
        let full = scope == Scope::All;
        let desired = lb::desired_for(snap, &scope);
        self.session_client()?;
        let Some(client) = self.client.as_mut() else {
            return Err(ReconcilerError::NotConnected {
                next_attempt_ms: 0,
                last_error: self.last_error.clone(),
            });
        };
        let r = self.syncer.sync(
            client,
            &desired,
            &scope,
            read_fresh,
            &self.flushes,
            &self.stats,
        );
        match r {
            Ok(report) => {
                match &scope {
                    Scope::All => self.flushes.clear(),
                    Scope::Frontends(f) => {
                        for n in f {
                            self.flushes.clear_frontend(n);
                        }
                    }
                }
                self.stats.syncs.fetch_add(1, Ordering::Relaxed);
                let took = report.took;
                if !report.ops.is_empty() || full {
                    info!(
                        "vpp-lbsync-done scope={} ops={} errors={} drift={} took_ms={:.1}",
                        report.scope,
                        report.ops.len(),
                        report.errors.len(),
                        report.drift,
                        took.as_secs_f64() * 1000.0
                    );
                }
                Ok(report)
            }
            Err(e) => {
                self.after_call(&e);
                Err(e.into())
            }
        }
    }
}

/// Each configured frontend's name by its VIP key.
fn owners(snap: &Snapshot) -> BTreeMap<LbVip, String> {
    snap.config
        .frontends
        .iter()
        .map(|(n, fe)| (lb::vip_key(fe), n.clone()))
        .collect()
}

/// The sync core, without the thread: reads VPP (or trusts its record),
/// diffs, applies, checks drift. The reconciler drives it; benchmarks and
/// tests can call it directly.
#[derive(Debug, Default)]
pub struct Syncer {
    /// What VPP holds, as last read and since changed by us.
    pub cache: Option<Actual>,
}

impl Syncer {
    /// Reads VPP's whole lb state.
    pub fn read(client: &mut Client) -> Result<Actual, VppError> {
        let conf = client.lb_conf_get()?;
        let vips = client.vip_dump()?;
        let ases = client.as_dump()?;
        let verbose = match client.cli("show lb vips verbose") {
            Ok(t) => Some(t),
            Err(e) if !e.is_connection_error() => None,
            Err(e) => return Err(e),
        };
        Ok(lb::actual_from(
            Some(conf),
            &vips,
            &ases,
            verbose.as_deref(),
        ))
    }

    /// Makes VPP match `desired` within `scope`. A full sync (or
    /// `read_fresh`) reads VPP first; a targeted one trusts the record.
    pub fn sync(
        &mut self,
        client: &mut Client,
        desired: &lb::Desired,
        scope: &Scope,
        read_fresh: bool,
        flushes: &FlushRequests,
        stats: &SyncStats,
    ) -> Result<SyncReport, VppError> {
        let t0 = Instant::now();
        let full = *scope == Scope::All;
        if full || read_fresh || self.cache.is_none() {
            self.cache = Some(Self::read(client)?);
        }
        let actual = self.cache.as_mut().expect("read above");
        let ops = lb::diff(desired, actual, scope, flushes);
        let mut report = SyncReport {
            scope: scope.kind(),
            ops: Vec::with_capacity(ops.len()),
            errors: Vec::new(),
            refused: Vec::new(),
            drift: 0,
            took: Duration::ZERO,
        };
        for op in &ops {
            match apply(client, op) {
                Ok(()) => {
                    info!("vpp-lbsync scope={} {op}", scope.kind());
                    stats.count(scope.kind(), op.kind());
                    actual.apply(op);
                }
                Err(e) if e.is_connection_error() => {
                    self.cache = None;
                    return Err(e);
                }
                Err(e) => {
                    warn!(
                        "vpp-lbsync-refused scope={} {op} error={:?}",
                        scope.kind(),
                        e.to_string()
                    );
                    stats.op_errors.fetch_add(1, Ordering::Relaxed);
                    report.errors.push(format!("{op}: {e}"));
                    report.refused.push((*op, e.to_string()));
                }
            }
            report.ops.push(op.to_string());
        }
        // What VPP holds now is read, not assumed, after a full sync that
        // changed something and after any refusal (the record would be
        // wrong): status and counters come from that read.
        if (full && !ops.is_empty()) || !report.refused.is_empty() {
            match Self::read(client) {
                Ok(a) => *actual = a,
                Err(e) => {
                    self.cache = None;
                    return Err(e);
                }
            }
        }
        let unheld = lb::diff(desired, actual, scope, &FlushRequests::default());
        for op in &unheld {
            debug!("vpp-unheld scope={} {op}", scope.kind());
        }
        report.drift += unheld.len();
        if full {
            for (vip, addr, have, want) in lb::drift(actual) {
                warn!(
                    "vpp-drift vip={}:{}/{} as={addr} vpp-buckets={have} expected-buckets={want}",
                    vip.pfx, vip.protocol, vip.port
                );
                stats.drift_mismatches.fetch_add(1, Ordering::Relaxed);
                report.drift += 1;
            }
        }
        report.took = t0.elapsed();
        Ok(report)
    }
}

/// Sends one operation.
fn apply(client: &mut Client, op: &Op) -> Result<(), VppError> {
    match *op {
        Op::Conf(c) => client.lb_conf(&c),
        Op::AddVip(spec) => client.vip_add_del(&spec, false),
        Op::DelVip(key) => client.vip_add_del(
            &super::client::VipSpec {
                key,
                encap: super::wire::Encap::Gre4,
                src_ip_sticky: false,
                new_flows_table_length: lb::NEW_FLOWS_TABLE_LENGTH,
            },
            true,
        ),
        Op::AddAs { vip, addr, weight } => client.as_add_del(&vip, addr, weight, false, false),
        Op::DelAs { vip, addr, flush } => client.as_add_del(&vip, addr, 0, true, flush),
        Op::SetWeight {
            vip,
            addr,
            weight,
            flush,
        } => client.as_set_weight(&vip, addr, weight, flush),
    }
}
