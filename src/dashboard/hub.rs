//! The hub thread: owns what the dashboard knows of every maglevd
//! ([`Maglevd`]), follows [`Core`]'s timing, turns the link threads'
//! reports into events for the browsers ([`Broker`]) and answers the web
//! threads' state requests.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, bounded, select};
use log::{debug, info, warn};
use serde_json::{Value, json};

use super::core::{Core, Due};
use super::link::{Job, Report};
use super::model::{Maglevd, parse_probe};
use super::ring::{Event, REPLAY, Ring, Since};
use crate::control::protocol::{StreamEvent, Transition};
use crate::logging::rfc3339_utc;

/// Events queued for one browser before it is dropped as too slow (it
/// reconnects and is replayed the missed events). Events are shared: this
/// is a queue of pointers.
const CLIENT_QUEUE: usize = 4096;

/// One browser's feed: its events, and while it is held the browser counts
/// as connected.
pub struct Feed {
    rx: Receiver<Event>,
    _alive: Arc<()>,
}

impl Feed {
    /// The next event, if one is queued (`Disconnected`: the broker let
    /// this browser go).
    pub fn try_recv(&self) -> Result<Event, crossbeam_channel::TryRecvError> {
        self.rx.try_recv()
    }
}

struct Subscriber {
    tx: Sender<Event>,
    alive: Arc<()>,
}

impl Subscriber {
    /// Its [`Feed`] is still held (the browser is connected).
    fn connected(&self) -> bool {
        Arc::strong_count(&self.alive) > 1
    }
}

/// The event stream's fan-out: the replay ring and the connected browsers,
/// under one lock so a browser joining never misses or doubles an event.
pub struct Broker {
    inner: Mutex<(Ring, Vec<Subscriber>)>,
    max_clients: usize,
    /// Woken after each event (the HTTP server then writes it).
    waker: Option<Arc<crate::wake::Waker>>,
}

/// Why a browser cannot subscribe.
#[derive(Debug, PartialEq, Eq)]
pub struct TooMany;

impl Broker {
    /// A broker for a run that started at `epoch` (unix seconds), for at
    /// most `max_clients` browsers, waking `waker` after each event.
    pub fn new(epoch: u64, max_clients: usize, waker: Option<Arc<crate::wake::Waker>>) -> Broker {
        Broker {
            inner: Mutex::new((Ring::new(epoch, REPLAY), Vec::new())),
            max_clients,
            waker,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Ring, Vec<Subscriber>)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ring's epoch.
    pub fn epoch(&self) -> u64 {
        self.lock().0.epoch()
    }

    /// Sends an event to every browser; `keep`: into the replay ring too.
    pub fn publish(&self, kind: &'static str, data: &Value, keep: bool) {
        let data: Arc<str> = Arc::from(data.to_string());
        let mut g = self.lock();
        let e = if keep {
            g.0.push(kind, data)
        } else {
            Event {
                seq: None,
                kind,
                data,
            }
        };
        // A browser that cannot keep up is let go; it comes back with its
        // Last-Event-ID.
        g.1.retain(|s| s.connected() && s.tx.try_send(e.clone()).is_ok());
        let any = !g.1.is_empty();
        drop(g);
        if any {
            if let Some(w) = &self.waker {
                w.wake();
            }
        }
    }

    /// A new browser: what it missed (by its `Last-Event-ID`), or without
    /// one the last `recent` events, and its live feed.
    pub fn subscribe(
        &self,
        last_id: Option<&str>,
        recent: usize,
    ) -> Result<(Since, Feed), TooMany> {
        let mut g = self.lock();
        g.1.retain(Subscriber::connected);
        if g.1.len() >= self.max_clients {
            return Err(TooMany);
        }
        let since = match g.0.since(last_id) {
            Since::Fresh if recent > 0 => Since::Replay(g.0.recent(recent)),
            s => s,
        };
        let (tx, rx) = bounded(CLIENT_QUEUE);
        let alive = Arc::new(());
        g.1.push(Subscriber {
            tx,
            alive: Arc::clone(&alive),
        });
        Ok((since, Feed { rx, _alive: alive }))
    }

    /// Browsers connected.
    pub fn clients(&self) -> usize {
        let mut g = self.lock();
        g.1.retain(Subscriber::connected);
        g.1.len()
    }
}

/// What the web threads ask the hub.
pub enum Ask {
    /// Every maglevd's state (or one by name: `None` if unknown).
    State(Option<String>, Sender<Option<Value>>),
    /// The maglevds: name, socket, reachable.
    Maglevds(Sender<Value>),
}

/// The hub and its links.
pub struct Hub {
    core: Core,
    maglevds: Vec<Maglevd>,
    connect: Vec<Sender<()>>,
    jobs: Vec<Sender<Job>>,
    broker: Arc<Broker>,
    probes: Vec<Vec<Value>>,
    last_lb: Vec<String>,
    /// Per maglevd, each frontend's JSON as the browsers last got it.
    sent: Vec<std::collections::HashMap<String, String>>,
    shape: Vec<String>,
}

fn now_text() -> String {
    rfc3339_utc(SystemTime::now())
}

impl Hub {
    /// A hub for `maglevds` (name, socket), with the link threads'
    /// channels.
    pub fn new(
        maglevds: &[(String, String)],
        connect: Vec<Sender<()>>,
        jobs: Vec<Sender<Job>>,
        broker: Arc<Broker>,
    ) -> Hub {
        let n = maglevds.len();
        Hub {
            core: Core::new(n),
            maglevds: maglevds.iter().map(|(n, s)| Maglevd::new(n, s)).collect(),
            connect,
            jobs,
            broker,
            probes: vec![Vec::new(); n],
            last_lb: vec![String::new(); n],
            sent: vec![Default::default(); n],
            shape: vec![String::new(); n],
        }
    }

    /// Runs until `stop` closes.
    pub fn run(mut self, reports: Receiver<Report>, asks: Receiver<Ask>, stop: Receiver<()>) {
        loop {
            let now = Instant::now();
            for due in self.core.poll(now) {
                self.start(due);
            }
            let wait = self
                .core
                .next_wakeup(now)
                .map(|t| t.saturating_duration_since(Instant::now()));
            let timeout = match wait {
                Some(d) => crossbeam_channel::after(d),
                None => crossbeam_channel::never(),
            };
            select! {
                recv(reports) -> r => match r {
                    Ok(r) => self.report(r),
                    Err(_) => return,
                },
                recv(asks) -> a => if let Ok(a) = a { self.ask(a) },
                recv(stop) -> _ => return,
                recv(timeout) -> _ => {}
            }
        }
    }

    fn start(&mut self, due: Due) {
        debug!("hub-due {due:?}");
        match due {
            Due::Connect(i) => {
                let _ = self.connect[i].send(());
            }
            Due::Full(i) => {
                let _ = self.jobs[i].send(Job::Full);
            }
            Due::Frontends(i, v) => {
                let _ = self.jobs[i].send(Job::Frontends(v));
            }
            Due::Lb(i) => {
                let _ = self.jobs[i].send(Job::Lb);
            }
            Due::Probes(i) => {
                let probes = std::mem::take(&mut self.probes[i]);
                if !probes.is_empty() {
                    let data = json!({"maglevd": self.maglevds[i].name, "probes": probes});
                    self.broker.publish("probes", &data, false);
                }
            }
        }
    }

    fn ask(&self, a: Ask) {
        match a {
            Ask::State(None, reply) => {
                let all: Vec<Value> = self.maglevds.iter().map(Maglevd::to_json).collect();
                let _ = reply.send(Some(json!({ "maglevds": all })));
            }
            Ask::State(Some(name), reply) => {
                let one = self
                    .maglevds
                    .iter()
                    .find(|m| m.name == name)
                    .map(Maglevd::to_json);
                let _ = reply.send(one);
            }
            Ask::Maglevds(reply) => {
                let v: Vec<Value> = self
                    .maglevds
                    .iter()
                    .map(|m| {
                        json!({"name": m.name, "socket": m.socket, "reachable": m.reachable,
                               "error": m.error, "since": m.since})
                    })
                    .collect();
                let _ = reply.send(json!({ "maglevds": v }));
            }
        }
    }

    fn reachability(&mut self, i: usize, reachable: bool, error: Option<String>) {
        let m = &mut self.maglevds[i];
        let changed = m.reachable != reachable || m.since.is_none();
        m.reachable = reachable;
        m.error = error.clone();
        if !changed {
            return;
        }
        m.since = Some(now_text());
        if reachable {
            info!("maglevd-connected maglevd={} socket={}", m.name, m.socket);
        } else {
            warn!(
                "maglevd-unreachable maglevd={} socket={} error={:?}",
                m.name,
                m.socket,
                error.as_deref().unwrap_or("")
            );
        }
        let data =
            json!({"maglevd": m.name, "reachable": reachable, "error": error, "at": m.since});
        self.broker.publish("maglevd", &data, true);
    }

    fn report(&mut self, r: Report) {
        let now = Instant::now();
        match r {
            Report::Connected(i) => {
                self.core.connected(i, now);
                self.reachability(i, true, None);
            }
            Report::Lost(i, why) => {
                let wait = self.core.lost(i, now);
                debug!(
                    "maglevd-retry maglevd={} in_ms={}",
                    self.maglevds[i].name,
                    wait.as_millis()
                );
                self.probes[i].clear();
                self.reachability(i, false, Some(why));
            }
            Report::Event(i, ev) => self.event(i, ev, now),
            Report::Full(i, r) => {
                self.core.full_done(i, now);
                match r {
                    Ok(full) => {
                        let m = &mut self.maglevds[i];
                        m.apply_full(*full, &now_text());
                        // A new shape (a reload added or removed things):
                        // the browsers redraw this maglevd.
                        let shape = shape_of(m);
                        if shape != self.shape[i] {
                            self.shape[i] = shape;
                            let data = json!({"maglevd": m.name, "state": m.to_json()});
                            self.broker.publish("state", &data, false);
                            // The browsers redraw from this: what they have now.
                            self.sent[i] = full_frontends_json(m);
                        } else {
                            self.publish_frontends(i, None);
                        }
                        self.publish_lb(i);
                    }
                    Err(e) => warn!(
                        "maglevd-read-failed maglevd={} error={e:?}",
                        self.maglevds[i].name
                    ),
                }
            }
            Report::Frontends(i, r) => {
                self.core.frontends_done(i);
                match r {
                    Ok(v) => {
                        let names: BTreeSet<String> = v.iter().map(|f| f.name.clone()).collect();
                        self.maglevds[i].apply_frontends(v);
                        self.publish_frontends(i, Some(&names));
                    }
                    Err(e) => warn!(
                        "maglevd-read-failed maglevd={} error={e:?}",
                        self.maglevds[i].name
                    ),
                }
            }
            Report::Lb(i, lb) => {
                self.core.lb_done(i);
                self.maglevds[i].apply_lb(lb);
                self.publish_lb(i);
            }
        }
    }

    /// Sends the frontends (all, or `only` these) whose JSON changed since
    /// the browsers last got it, with their backends.
    fn publish_frontends(&mut self, i: usize, only: Option<&BTreeSet<String>>) {
        let m = &self.maglevds[i];
        let Some(full) = &m.full else { return };
        let sent = &mut self.sent[i];
        let mut fes = Vec::new();
        let mut backends = serde_json::Map::new();
        for f in &full.frontends {
            if only.is_some_and(|o| !o.contains(&f.name)) {
                continue;
            }
            let v = m.frontend_json(f);
            let text = v.to_string();
            if sent.get(&f.name) == Some(&text) {
                continue;
            }
            sent.insert(f.name.clone(), text);
            for pool in f.detail.iter().flat_map(|d| &d.pools) {
                for b in &pool.backends {
                    if let Some(info) = m.backends.get(&b.name) {
                        backends.insert(b.name.clone(), json!(info));
                    }
                }
            }
            fes.push(v);
        }
        if fes.is_empty() {
            return;
        }
        let data = json!({"maglevd": m.name, "frontends": fes, "backends": backends});
        self.broker.publish("frontends", &data, false);
    }

    fn publish_lb(&mut self, i: usize) {
        let data = self.maglevds[i].lb_json();
        let text = data.to_string();
        if text != self.last_lb[i] {
            self.last_lb[i] = text;
            self.broker.publish("lb", &data, false);
        }
    }

    fn event(&mut self, i: usize, ev: StreamEvent, now: Instant) {
        let name = self.maglevds[i].name.clone();
        if !matches!(&ev, StreamEvent::Log { level, .. } if level == "debug") {
            debug!("hub-event maglevd={name} {ev:?}");
        }
        match ev {
            StreamEvent::Backend {
                backend,
                from,
                to,
                code,
                detail,
                at,
            } => {
                let t = Transition {
                    from,
                    to,
                    code,
                    detail: detail.clone(),
                    at: at.clone(),
                };
                self.maglevds[i].apply_transition(&backend, t);
                let users = self.maglevds[i].users_of(&backend);
                self.core.frontends_changed(i, users, now);
                let data = json!({"maglevd": name, "backend": backend, "from": from, "to": to,
                                  "code": code, "detail": detail, "at": at});
                self.broker.publish("backend", &data, true);
            }
            StreamEvent::Frontend {
                frontend,
                from,
                to,
                at,
            } => {
                self.maglevds[i].apply_frontend_state(&frontend, to);
                // from == to: maglevd's replay of the current state.
                if from != to {
                    let data = json!({"maglevd": name, "frontend": frontend, "from": from, "to": to, "at": at});
                    self.broker.publish("frontend", &data, true);
                    self.core
                        .frontends_changed(i, BTreeSet::from([frontend]), now);
                }
            }
            StreamEvent::Vpp {
                frontend,
                from,
                to,
                error,
                at,
            } => {
                self.maglevds[i].apply_frontend_vpp(&frontend, to);
                let data = json!({"maglevd": name, "frontend": frontend, "from": from, "to": to,
                                  "error": error, "at": at});
                self.broker.publish("vpp", &data, true);
                // The detail (the refusal) comes with the refresh.
                self.core
                    .frontends_changed(i, BTreeSet::from([frontend]), now);
            }
            StreamEvent::Announce {
                address,
                announced,
                reason,
                frontends,
                at,
            } => {
                let data = json!({"maglevd": name, "address": address, "announced": announced,
                                  "reason": reason, "frontends": frontends, "at": at});
                self.broker.publish("announce", &data, true);
                self.core
                    .frontends_changed(i, frontends.into_iter().collect(), now);
            }
            StreamEvent::Log { level, message, at } => {
                if let Some(p) = parse_probe(&message, &at) {
                    self.maglevds[i].apply_probe(&p);
                    // The page shows the code and the latency; the time
                    // stays in the state for /view/api/state.
                    self.probes[i].push(json!([p.backend, p.code, p.ms]));
                    self.core.probe(i, now);
                    return;
                }
                let word = message.split(' ').next().unwrap_or("");
                match word {
                    "config-reloaded" => self.core.full_needed(i, now),
                    "vpp-connect" | "vpp-disconnect" => {
                        self.core.full_needed(i, now);
                    }
                    "weight-set" | "backend-action" => {
                        let fe: BTreeSet<String> = message
                            .split(' ')
                            .find_map(|w| w.strip_prefix("frontend="))
                            .map(|f| BTreeSet::from([f.to_string()]))
                            .unwrap_or_else(|| {
                                let b = message
                                    .split(' ')
                                    .find_map(|w| w.strip_prefix("backend="))
                                    .unwrap_or("");
                                self.maglevds[i].users_of(b)
                            });
                        self.core.frontends_changed(i, fe, now);
                    }
                    w if w.starts_with("vpp-lbsync") || w.starts_with("vpp-drift") => {
                        self.core.lb_changed(i, now);
                    }
                    _ => {}
                }
                if matches!(level.as_str(), "error" | "warn" | "info") {
                    let data =
                        json!({"maglevd": name, "level": level, "message": message, "at": at});
                    self.broker.publish("log", &data, true);
                }
            }
            StreamEvent::Lagged { missed } => {
                warn!("maglevd-events-lagged maglevd={name} missed={missed}");
                self.core.full_needed(i, now);
            }
        }
    }
}

/// Each frontend's JSON, by name.
fn full_frontends_json(m: &Maglevd) -> std::collections::HashMap<String, String> {
    m.full
        .iter()
        .flat_map(|f| &f.frontends)
        .map(|f| (f.name.clone(), m.frontend_json(f).to_string()))
        .collect()
}

/// What a redraw depends on: the frontends, their pools and members, and
/// the backends.
fn shape_of(m: &Maglevd) -> String {
    let mut s = String::new();
    if let Some(f) = &m.full {
        for fe in &f.frontends {
            s.push_str(&fe.name);
            s.push('|');
            s.push_str(&fe.address);
            if let Some(d) = &fe.detail {
                for p in &d.pools {
                    s.push_str(&p.name);
                    for b in &p.backends {
                        s.push(',');
                        s.push_str(&b.name);
                    }
                }
            }
            s.push(';');
        }
    }
    for b in m.backends.keys() {
        s.push_str(b);
        s.push(',');
    }
    s
}
