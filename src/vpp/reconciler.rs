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

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, select};
use log::{debug, info, warn};

use super::client::{ApiCounters, Client, ClientConfig, Connector, VersionInfo};
use super::errors::VppError;
use super::lb::{self, Actual, ActualAs, ActualVip, FlushRequests, Op, Scope};
use super::wire::{LbVip, Prefix};
use crate::checker::events::Event;
use crate::checker::{CheckerClient, Snapshot};
use crate::health::state::State;
use crate::snapshot::Published;
use std::time::SystemTime;

/// How often an idle session is checked with `control_ping`.
const PING_EVERY: Duration = Duration::from_secs(10);

/// Counters for `/metrics` and `show vpp lb state`.
#[derive(Debug, Default)]
pub struct SyncStats {
    ops: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
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
    fn count(&self, scope: &'static str, kind: &'static str) {
        let mut m = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((scope, kind)).or_insert(0) += 1;
    }

    /// Operations sent, by (scope, kind).
    pub fn ops(&self) -> Vec<((&'static str, &'static str), u64)> {
        let m = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(k, v)| (*k, *v)).collect()
    }
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// `all` or `vip`.
    pub scope: &'static str,
    /// Operations sent, in order.
    pub ops: Vec<String>,
    /// Operations VPP refused (with the reason).
    pub errors: Vec<String>,
    /// Bucket-count mismatches found (full syncs only).
    pub drift: usize,
    /// Wall time.
    pub took: Duration,
}

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
    /// The VIPs VPP held at the last full sync.
    pub vips: Vec<VipStatus>,
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
}

enum Cmd {
    Sync {
        frontend: Option<String>,
        reply: Sender<Result<SyncReport, String>>,
    },
    Read {
        reply: Sender<Result<Actual, String>>,
    },
    Stop,
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
    pub fn sync(&self, frontend: Option<&str>, timeout: Duration) -> Result<SyncReport, String> {
        let (reply, rx) = bounded(1);
        self.tx
            .send(Cmd::Sync {
                frontend: frontend.map(str::to_string),
                reply,
            })
            .map_err(|_| "reconciler is not running".to_string())?;
        rx.recv_timeout(timeout)
            .map_err(|_| "reconciler did not answer in time".to_string())?
    }

    /// VPP's lb state, read now.
    pub fn read(&self, timeout: Duration) -> Result<Actual, String> {
        let (reply, rx) = bounded(1);
        self.tx
            .send(Cmd::Read { reply })
            .map_err(|_| "reconciler is not running".to_string())?;
        rx.recv_timeout(timeout)
            .map_err(|_| "reconciler did not answer in time".to_string())?
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

/// Handle to the reconciler thread.
pub struct Reconciler {
    tx: Sender<Cmd>,
    join: Option<JoinHandle<()>>,
    stats: Arc<SyncStats>,
    status: Published<VppStatus>,
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
        let stats = Arc::new(SyncStats::default());
        let status = Published::new(VppStatus::default());
        let mut w = Worker {
            status: status.clone(),
            routes: BTreeMap::new(),
            checker,
            api,
            opts,
            conn: None,
            socket: None,
            gen_seen: 0,
            syncer: Syncer::default(),
            dirty: BTreeSet::new(),
            flushes: FlushRequests::default(),
            full_pending: false,
            next_full: None,
            warm_done: false,
            released: BTreeSet::new(),
            last_call: Instant::now(),
            stats: Arc::clone(&stats),
        };
        let join = std::thread::Builder::new()
            .name("reconciler".into())
            .spawn(move || w.run(events, rx))?;
        Ok(Reconciler {
            tx,
            join: Some(join),
            stats,
            status,
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

    /// A sync now (full, or of one frontend), waiting up to `timeout`.
    pub fn sync(&self, frontend: Option<&str>, timeout: Duration) -> Result<SyncReport, String> {
        self.client().sync(frontend, timeout)
    }

    /// Stops the thread (closing the VPP session politely).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.tx.send(Cmd::Stop);
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

struct Worker {
    status: Published<VppStatus>,
    /// FIB stats index per VIP prefix, for this session.
    routes: BTreeMap<Prefix, u32>,
    checker: CheckerClient,
    api: Arc<ApiCounters>,
    opts: ReconcilerOptions,
    conn: Option<Connector>,
    socket: Option<PathBuf>,
    gen_seen: u64,
    syncer: Syncer,
    dirty: BTreeSet<String>,
    flushes: FlushRequests,
    full_pending: bool,
    next_full: Option<Instant>,
    warm_done: bool,
    released: BTreeSet<String>,
    last_call: Instant,
    stats: Arc<SyncStats>,
}

impl Worker {
    fn run(&mut self, events: Receiver<Event>, cmds: Receiver<Cmd>) {
        self.configure(&self.checker.snapshot());
        loop {
            let wait = self
                .next_wake()
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(3600));
            select! {
                recv(events) -> ev => match ev {
                    Ok(ev) => {
                        self.on_event(ev);
                        for ev in events.try_iter() {
                            self.on_event(ev);
                        }
                    }
                    Err(_) => break,
                },
                recv(cmds) -> c => match c {
                    Ok(Cmd::Sync { frontend, reply }) => {
                        self.note_session();
                        let r = self.operator_sync(frontend);
                        let _ = reply.send(r);
                    }
                    Ok(Cmd::Read { reply }) => {
                        self.note_session();
                        let r = match self.conn.as_mut() {
                            None => Err("VPP integration is disabled (vpp.api-socket is empty)".into()),
                            Some(c) => c
                                .get()
                                .and_then(Syncer::read)
                                .map_err(|e| e.to_string()),
                        };
                        let _ = reply.send(r);
                    }
                    Ok(Cmd::Stop) | Err(_) => break,
                },
                default(wait) => {}
            }
            self.tick();
        }
        if let Some(mut c) = self.conn.take() {
            c.disconnect();
        }
        info!("reconciler-stopped");
    }

    /// Follows the configured API socket (a reload may change it).
    fn configure(&mut self, snap: &Snapshot) {
        let socket = self
            .opts
            .api_socket_override
            .clone()
            .or_else(|| snap.config.vpp.api_socket.clone());
        if socket == self.socket {
            return;
        }
        if let Some(mut c) = self.conn.take() {
            c.disconnect();
        }
        self.syncer.cache = None;
        self.socket = socket.clone();
        self.conn = socket.map(|s| {
            let mut cfg = ClientConfig::new(s);
            cfg.timeout = self.opts.timeout;
            Connector::new(cfg, Arc::clone(&self.api))
        });
        self.gen_seen = 0;
        self.full_pending = true;
    }

    fn users(snap: &Snapshot, backend: &str) -> Vec<String> {
        snap.config
            .frontends
            .iter()
            .filter(|(_, fe)| fe.pools.iter().any(|p| p.backends.contains_key(backend)))
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn on_event(&mut self, ev: Event) {
        let snap = self.checker.snapshot();
        match ev {
            Event::Backend(e) => {
                let addr = snap
                    .backends
                    .get(e.backend.as_str())
                    .map(|b| b.config.address);
                let flushy = matches!(e.to, State::Down | State::Disabled | State::Removed);
                for fe in Self::users(&snap, &e.backend) {
                    if let (true, Some(a)) = (flushy, addr) {
                        self.flushes.transitions.insert((fe.clone(), a));
                    }
                    self.dirty.insert(fe);
                }
            }
            Event::WeightChanged { frontend, flush } => {
                if let Some(b) = flush {
                    if let Some(v) = snap.backends.get(b.as_str()) {
                        self.flushes
                            .explicit
                            .insert((frontend.clone(), v.config.address));
                    }
                }
                self.dirty.insert(frontend);
            }
            Event::ConfigReloaded => {
                self.configure(&snap);
                self.full_pending = true;
            }
            Event::Lagged { missed } => {
                debug!("reconciler-lagged missed={missed}");
                self.full_pending = true;
            }
            Event::Frontend(_) => {}
        }
    }

    /// The warmup phase at `now`: (hands-off, warmup still running).
    fn warmup(&self, snap: &Snapshot, now: Instant) -> (bool, bool) {
        let lb = &snap.config.vpp.lb;
        if self.warm_done || (lb.startup_min_delay.is_zero() && lb.startup_max_delay.is_zero()) {
            return (false, false);
        }
        let t = now.saturating_duration_since(self.opts.started);
        if t < lb.startup_min_delay {
            return (true, true);
        }
        (false, t < lb.startup_max_delay)
    }

    fn next_wake(&self) -> Option<Instant> {
        let snap = self.checker.snapshot();
        let conn = self.conn.as_ref()?;
        let now = Instant::now();
        let lb = &snap.config.vpp.lb;
        let mut t: Vec<Instant> = Vec::new();
        if !self.warm_done {
            t.push(self.opts.started + lb.startup_min_delay);
            t.push(self.opts.started + lb.startup_max_delay);
            // Releases depend on probe results: look again soon.
            t.push(now + Duration::from_millis(100));
        }
        let pending = self.full_pending || !self.dirty.is_empty();
        if pending {
            t.push(conn.next_attempt().unwrap_or(now));
        }
        if let Some(f) = self.next_full {
            t.push(f);
        }
        if conn.is_connected() {
            t.push(self.last_call + PING_EVERY);
        }
        t.into_iter().min()
    }

    fn tick(&mut self) {
        if self.conn.is_none() {
            self.dirty.clear();
            self.flushes.clear();
            return;
        }
        let now = Instant::now();
        let snap = self.checker.snapshot();
        let (hands_off, warming) = self.warmup(&snap, now);
        if hands_off {
            if !self.dirty.is_empty() {
                debug!(
                    "reconciler-warmup-suppressed frontends={}",
                    self.dirty.len()
                );
            }
            return;
        }
        if warming {
            for (name, fe) in &snap.config.frontends {
                if self.released.contains(name) {
                    continue;
                }
                let known = fe
                    .backend_names()
                    .iter()
                    .all(|b| snap.state_of(b) != State::Unknown);
                if known {
                    info!("vpp-warmup-release frontend={name}");
                    self.released.insert(name.clone());
                    self.dirty.insert(name.clone());
                }
            }
        } else if !self.warm_done {
            self.warm_done = true;
            self.full_pending = true;
            info!("vpp-warmup-done");
        }
        if self.next_full.is_some_and(|t| now >= t) {
            self.full_pending = true;
        }
        let allowed: BTreeSet<String> = if warming {
            self.dirty.intersection(&self.released).cloned().collect()
        } else {
            self.dirty.clone()
        };
        let full = self.full_pending && !warming;
        let ping_due = now >= self.last_call + PING_EVERY;
        if !full && allowed.is_empty() && !ping_due {
            return;
        }
        let generation = {
            let conn = self.conn.as_mut().expect("checked");
            match conn.get() {
                Ok(_) => conn.generation,
                Err(_) => {
                    self.stats.connected.store(false, Ordering::Relaxed);
                    self.syncer.cache = None;
                    if self.status.load().connected {
                        self.status.store(Arc::new(VppStatus::default()));
                    }
                    return;
                }
            }
        };
        self.stats.connected.store(true, Ordering::Relaxed);
        if generation != self.gen_seen {
            self.gen_seen = generation;
            self.new_session();
            self.syncer.cache = None;
            if warming {
                // A new session during warmup: redo what was released.
                let mut again: BTreeSet<String> = self.released.clone();
                again.extend(allowed.iter().cloned());
                return self.run_sync(Scope::Frontends(again), &snap);
            }
            self.full_pending = true;
        }
        if self.full_pending && !warming {
            self.run_sync(Scope::All, &snap);
            self.publish_vips(&snap);
        } else if !allowed.is_empty() {
            self.run_sync(Scope::Frontends(allowed), &snap);
        } else if ping_due {
            self.last_call = now;
            let conn = self.conn.as_mut().expect("checked");
            if let Ok(c) = conn.get() {
                if let Err(e) = c.ping() {
                    warn!("vpp-ping-failed error={:?}", e.to_string());
                }
            }
        }
    }

    /// Connects if needed (operator commands may come before the first
    /// sync) and notices a new session.
    fn note_session(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if conn.get().is_ok() && conn.generation != self.gen_seen {
            self.gen_seen = conn.generation;
            self.syncer.cache = None;
            self.full_pending = true;
            self.new_session();
        }
    }

    /// A new VPP session: forget per-session facts, learn VPP's version.
    fn new_session(&mut self) {
        self.routes.clear();
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if let Ok(c) = conn.get() {
            let version = c.show_version().ok();
            let pid = c.ping().ok();
            if let Some(v) = &version {
                info!(
                    "vpp-version version={} build-date={} pid={}",
                    v.version,
                    v.build_date,
                    pid.unwrap_or(0)
                );
            }
            self.status.store(Arc::new(VppStatus {
                connected: true,
                connected_at: Some(SystemTime::now()),
                version,
                pid,
                vips: Vec::new(),
            }));
        }
    }

    /// Publishes the VIPs of the last full read, with their counter
    /// indexes (route stats indexes looked up once per session and prefix).
    fn publish_vips(&mut self, snap: &Snapshot) {
        let Some(actual) = self.syncer.cache.clone() else {
            return;
        };
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let Ok(client) = conn.get() else {
            return;
        };
        let owners: BTreeMap<LbVip, String> = snap
            .config
            .frontends
            .iter()
            .map(|(n, fe)| (lb::vip_key(fe), n.clone()))
            .collect();
        let mut vips = Vec::with_capacity(actual.vips.len());
        for (key, v) in &actual.vips {
            let pfx = key.pfx.normalized();
            if let std::collections::btree_map::Entry::Vacant(slot) = self.routes.entry(pfx) {
                match client.route_lookup(pfx) {
                    Ok(r) => {
                        slot.insert(r.stats_index);
                    }
                    Err(e) if e.is_connection_error() => return,
                    Err(e) => debug!("vpp-route-lookup-failed prefix={pfx} error={e}"),
                }
            }
            vips.push(VipStatus {
                frontend: owners.get(key).cloned(),
                key: *key,
                index: v.index,
                stats_index: self.routes.get(&pfx).copied(),
            });
        }
        let mut st = (*self.status.load()).clone();
        st.vips = vips;
        self.status.store(Arc::new(st));
    }

    fn operator_sync(&mut self, frontend: Option<String>) -> Result<SyncReport, String> {
        let snap = self.checker.snapshot();
        if self.conn.is_none() {
            return Err("VPP integration is disabled (vpp.api-socket is empty)".into());
        }
        let scope = match frontend {
            None => Scope::All,
            Some(f) => {
                if !snap.config.frontends.contains_key(&f) {
                    return Err(format!("no frontend named {f:?}"));
                }
                Scope::Frontends([f].into())
            }
        };
        self.sync_once(scope, &snap, true)
    }

    fn run_sync(&mut self, scope: Scope, snap: &Snapshot) {
        if let Err(e) = self.sync_once(scope, snap, false) {
            warn!("vpp-lbsync-failed error={e:?}");
        }
    }

    /// One sync. Connection errors leave the work pending for the next
    /// attempt; refused operations are logged and counted.
    fn sync_once(
        &mut self,
        scope: Scope,
        snap: &Snapshot,
        read_fresh: bool,
    ) -> Result<SyncReport, String> {
        if snap.frontends.len() < snap.config.frontends.len() {
            return Err("health state not published yet".into());
        }
        let conn = self.conn.as_mut().ok_or("VPP integration disabled")?;
        let client = conn.get().map_err(|e| e.to_string())?;
        let full = scope == Scope::All;
        self.last_call = Instant::now();

        let desired = lb::desired_for(snap, &scope);
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
                    Scope::All => {
                        self.dirty.clear();
                        self.flushes.clear();
                        self.full_pending = false;
                        self.next_full = Some(Instant::now() + snap.config.vpp.lb.sync_interval);
                    }
                    Scope::Frontends(f) => {
                        for n in f {
                            self.dirty.remove(n);
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
            Err(e) => Err(e.to_string()),
        }
    }
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
            scope: scope.label(),
            ops: Vec::with_capacity(ops.len()),
            errors: Vec::new(),
            drift: 0,
            took: Duration::ZERO,
        };
        let mut refused = false;
        for op in &ops {
            match apply(client, op) {
                Ok(()) => {
                    info!("vpp-lbsync scope={} {op}", scope.label());
                    stats.count(scope.label(), op.kind());
                    record(actual, op);
                }
                Err(e) if e.is_connection_error() => {
                    self.cache = None;
                    return Err(e);
                }
                Err(e) => {
                    warn!(
                        "vpp-lbsync-refused scope={} {op} error={:?}",
                        scope.label(),
                        e.to_string()
                    );
                    stats.op_errors.fetch_add(1, Ordering::Relaxed);
                    report.errors.push(format!("{op}: {e}"));
                    refused = true;
                }
            }
            report.ops.push(op.to_string());
        }
        if full {
            if !ops.is_empty() {
                *actual = Self::read(client)?;
            }
            for (vip, addr, have, want) in lb::drift(actual) {
                warn!(
                    "vpp-drift vip={}:{}/{} as={addr} vpp-buckets={have} expected-buckets={want}",
                    vip.pfx, vip.protocol, vip.port
                );
                stats.drift_mismatches.fetch_add(1, Ordering::Relaxed);
                report.drift += 1;
            }
        }
        if refused {
            // Our record may be wrong now: read VPP again next time.
            self.cache = None;
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

/// Updates our record of VPP after a successful operation.
fn record(actual: &mut Actual, op: &Op) {
    match *op {
        Op::Conf(c) => actual.conf = Some(c),
        Op::AddVip(spec) => {
            actual.vips.insert(
                spec.key,
                ActualVip {
                    encap: spec.encap,
                    sticky: Some(spec.src_ip_sticky),
                    index: None,
                    table_len: spec.new_flows_table_length,
                    ases: BTreeMap::new(),
                },
            );
        }
        Op::DelVip(key) => {
            actual.vips.remove(&key);
        }
        Op::AddAs { vip, addr, weight } => {
            if let Some(v) = actual.vips.get_mut(&vip) {
                v.ases.insert(
                    addr,
                    ActualAs {
                        weight,
                        in_use: true,
                        buckets: 0,
                    },
                );
            }
        }
        Op::DelAs { vip, addr, .. } => {
            if let Some(a) = actual
                .vips
                .get_mut(&vip)
                .and_then(|v| v.ases.get_mut(&addr))
            {
                a.in_use = false;
            }
        }
        Op::SetWeight {
            vip, addr, weight, ..
        } => {
            if let Some(a) = actual
                .vips
                .get_mut(&vip)
                .and_then(|v| v.ases.get_mut(&addr))
            {
                a.weight = weight;
            }
        }
    }
}
