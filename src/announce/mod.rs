//! Announcing: which VIP addresses this router announces to BGP, through
//! BIRD. One maglevd per router decides; BGP spreads it.
//!
//! An address is announced while this router can serve it ([`rule`]):
//! VPP holds its VIPs as desired and one of its frontends has a serving
//! pool. It is withdrawn the moment that stops, and announced again only
//! after `hold-down` of continuous servability ([`core`]). The decision
//! reaches BIRD as a fragment of two prefix sets ([`bird`]), written
//! atomically when it changes and followed by the reload argv (`birdc
//! configure`), one at a time, killed after `reload-timeout`, retried with
//! backoff. The thread here only performs what the core decides: it never
//! blocks the checker, the probers or the reconciler (a hung `birdc` holds
//! up only itself).

pub(crate) mod bird;
pub(crate) mod core;
pub(crate) mod rule;

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, bounded, select, unbounded};
use log::{debug, error, info, warn};

use self::core::{Action, Core, Outcome, Settings};
use self::rule::{Facts, FrontendFacts, Reason};
use crate::checker::events::{AnnounceEvent, Dataplane, Event};
use crate::checker::{CheckerClient, Snapshot};
use crate::config::{Announce, Config};
use crate::snapshot::Published;
use crate::vpp::status::VppStatus;

/// The file in the state directory that keeps a maintenance withdraw
/// across restarts.
pub const MAINTENANCE_FILE: &str = "announce-withdrawn";

/// Upper bounds (seconds) of the cause-to-reload-done histogram.
pub const LATENCY_BUCKETS: [f64; 9] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Calls of `notify` running at once; more wait in a queue.
const NOTIFY_AT_ONCE: usize = 4;
/// Calls of `notify` waiting at most; beyond, the oldest is dropped.
const NOTIFY_QUEUE: usize = 256;

/// One address, for `show announce` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressStatus {
    /// The VIP address.
    pub address: IpAddr,
    /// In the file BIRD reads.
    pub announced: bool,
    /// Why not, while withdrawn (or `hold-down` while waiting).
    pub reason: Option<Reason>,
    /// When `announced` last changed.
    pub since: SystemTime,
    /// The frontends at that address.
    pub frontends: Vec<String>,
}

/// The last reload, for `show announce`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadStatus {
    /// When it ended.
    pub at: SystemTime,
    /// `ok`, `failed` or `timeout`.
    pub result: &'static str,
    /// What failed, if it failed.
    pub detail: Option<String>,
    /// How long it ran.
    pub took: Duration,
}

/// What the announcer publishes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnnounceStatus {
    /// `maglev.announce` is configured.
    pub enabled: bool,
    /// The fragment's path.
    pub file: Option<PathBuf>,
    /// The operator's maintenance withdraw is in force.
    pub maintenance: bool,
    /// Every address, in address order.
    pub addresses: Vec<AddressStatus>,
    /// The last reload.
    pub last_reload: Option<ReloadStatus>,
    /// The last write failed with this (cleared by a write that works).
    pub write_error: Option<String>,
    /// Reloads by result (`ok`, `failed`, `timeout`).
    pub reloads: BTreeMap<&'static str, u64>,
    /// Cause-to-reload-done: cumulative counts per [`LATENCY_BUCKETS`]
    /// bound, then the sum (seconds) and the count.
    pub latency: (Vec<u64>, f64, u64),
}

enum Cmd {
    Maintenance(bool, Sender<Result<(), String>>),
    Stop(Instant),
}

/// How the announcer is started.
#[derive(Debug, Clone)]
pub struct AnnouncerOptions {
    /// When maglevd started: warmup (`startup-max-delay`) runs from here.
    pub started: Instant,
    /// Where the maintenance withdraw is kept.
    pub state_dir: PathBuf,
}

/// The announcer thread.
pub struct Announcer {
    tx: Sender<Cmd>,
    join: Option<JoinHandle<()>>,
    status: Published<AnnounceStatus>,
}

/// A handle for the control socket.
#[derive(Clone)]
pub struct AnnouncerClient {
    tx: Sender<Cmd>,
    status: Published<AnnounceStatus>,
}

impl AnnouncerClient {
    /// The announcer's state now.
    pub fn status(&self) -> Arc<AnnounceStatus> {
        self.status.load()
    }

    /// Turns the maintenance withdraw on (`true`) or off; kept across
    /// restarts. Errors: not configured, the state cannot be saved.
    pub fn set_maintenance(&self, on: bool) -> Result<(), String> {
        let (reply, rx) = bounded(1);
        self.tx
            .send(Cmd::Maintenance(on, reply))
            .map_err(|_| "the announcer is not running".to_string())?;
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| "the announcer did not answer".to_string())?
    }
}

impl Announcer {
    /// Starts the thread; it follows `checker`'s events (and the
    /// configuration they carry) and `vpp`'s status.
    pub fn start(
        checker: CheckerClient,
        vpp: Published<VppStatus>,
        opts: AnnouncerOptions,
    ) -> std::io::Result<Announcer> {
        let status = Published::new(AnnounceStatus::default());
        let (tx, rx) = unbounded();
        let events = checker.subscribe(1024, false);
        let vpp_changes = vpp.changes();
        let (done_tx, done_rx) = unbounded();
        let (notified_tx, notified_rx) = unbounded();
        let mut t = Thread {
            checker,
            vpp,
            opts,
            status: status.clone(),
            run: None,
            maintenance: false,
            running: None,
            done_tx,
            notified_tx,
            notify_queue: VecDeque::new(),
            notifying: 0,
            reloads: BTreeMap::new(),
            latency: (vec![0; LATENCY_BUCKETS.len()], 0.0, 0),
        };
        t.maintenance = t.opts.state_dir.join(MAINTENANCE_FILE).exists();
        let join = std::thread::Builder::new()
            .name("announcer".into())
            .spawn(move || t.run(rx, events, vpp_changes, done_rx, notified_rx))?;
        Ok(Announcer {
            tx,
            join: Some(join),
            status,
        })
    }

    /// A handle for other threads.
    pub fn client(&self) -> AnnouncerClient {
        AnnouncerClient {
            tx: self.tx.clone(),
            status: self.status.clone(),
        }
    }

    /// What it publishes (for `/metrics`).
    pub fn status(&self) -> Published<AnnounceStatus> {
        self.status.clone()
    }

    /// Withdraws every address (file written, reload run) and stops,
    /// giving up after `budget`: a reload still running then is killed.
    pub fn shutdown(mut self, budget: Duration) {
        let _ = self.tx.send(Cmd::Stop(Instant::now() + budget));
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// The configured announcing, and the core deciding it.
struct Run {
    cfg: Announce,
    core: Core,
}

/// A reload in flight: its process group, to kill it.
struct Running {
    pgid: i32,
}

struct Thread {
    checker: CheckerClient,
    vpp: Published<VppStatus>,
    opts: AnnouncerOptions,
    status: Published<AnnounceStatus>,
    run: Option<Run>,
    maintenance: bool,
    running: Option<Running>,
    done_tx: Sender<Outcome>,
    notified_tx: Sender<()>,
    notify_queue: VecDeque<Vec<String>>,
    notifying: usize,
    reloads: BTreeMap<&'static str, u64>,
    latency: (Vec<u64>, f64, u64),
}

fn settings(cfg: &Config, started: Instant) -> Option<(Announce, Settings)> {
    let a = cfg.announce.clone()?;
    let s = Settings {
        hold_down: a.hold_down,
        reload_timeout: a.bird.reload_timeout,
        ipv4_set: a.bird.ipv4_set.clone(),
        ipv6_set: a.bird.ipv6_set.clone(),
        warm_until: started + cfg.vpp.lb.startup_max_delay,
    };
    Some((a, s))
}

/// The rule's facts from the checker's snapshot and VPP's status.
pub fn facts(snap: &Snapshot, vpp: &VppStatus) -> Facts {
    Facts {
        vpp_connected: vpp.connected,
        frontends: snap
            .config
            .frontends
            .iter()
            .map(|(name, fe)| FrontendFacts {
                name: name.clone(),
                address: fe.address,
                mode: fe.announce,
                state: snap
                    .frontends
                    .get(name)
                    .map_or(crate::health::weights::FrontendState::Unknown, |f| f.state),
                vpp: vpp
                    .frontends
                    .get(name)
                    .map_or(Dataplane::Pending, |f| f.state),
            })
            .collect(),
        ..Facts::default()
    }
}

impl Thread {
    fn run(
        &mut self,
        cmds: Receiver<Cmd>,
        events: Receiver<Event>,
        vpp_changes: Receiver<()>,
        done: Receiver<Outcome>,
        notified: Receiver<()>,
    ) {
        self.follow_config();
        let mut stop_at: Option<Instant> = None;
        loop {
            self.act();
            if let Some(deadline) = stop_at {
                let settled = self.run.as_ref().is_none_or(|r| r.core.settled());
                if settled || Instant::now() >= deadline {
                    if let Some(r) = self.running.take() {
                        warn!("announce-reload-killed reason=stopping");
                        kill_group(r.pgid);
                    }
                    break;
                }
            }
            let wake = self
                .run
                .as_ref()
                .and_then(|r| r.core.next_wakeup(Instant::now()));
            let wake = match (wake, stop_at) {
                (Some(w), Some(s)) => Some(w.min(s)),
                (w, s) => w.or(s),
            };
            let timer = wake.map_or(crossbeam_channel::never(), crossbeam_channel::at);
            select! {
                recv(cmds) -> c => match c {
                    Ok(Cmd::Maintenance(on, reply)) => {
                        let _ = reply.send(self.set_maintenance(on));
                    }
                    Ok(Cmd::Stop(deadline)) => {
                        stop_at = Some(deadline);
                        if let Some(r) = self.run.as_mut() {
                            r.core.stop();
                        }
                    }
                    Err(_) => break,
                },
                recv(events) -> e => match e {
                    Ok(Event::ConfigReloaded) => self.follow_config(),
                    Ok(Event::Frontend(_) | Event::Dataplane(_) | Event::Lagged { .. }) => {
                        for e in events.try_iter() {
                            if e == Event::ConfigReloaded {
                                self.follow_config();
                            }
                        }
                        self.refresh_facts();
                    }
                    Ok(_) => {}
                    Err(_) => break,
                },
                recv(vpp_changes) -> _ => self.refresh_facts(),
                recv(done) -> o => if let Ok(o) = o {
                    self.reload_done(o);
                },
                recv(notified) -> _ => {
                    self.notifying = self.notifying.saturating_sub(1);
                    self.start_notifies();
                },
                recv(timer) -> _ => {},
            }
        }
        debug!("announcer-stopped");
    }

    /// Follows `maglev.announce` of the configuration in force.
    fn follow_config(&mut self) {
        let snap = self.checker.snapshot();
        match (settings(&snap.config, self.opts.started), self.run.as_mut()) {
            (None, None) => {}
            (None, Some(_)) => {
                // Announcing switched off by a reload: withdraw what this
                // configuration's file holds, then forget it.
                info!("announce-disabled");
                if let Some(r) = self.run.as_mut() {
                    r.core.stop();
                }
            }
            (Some((cfg, s)), Some(r)) if r.cfg.bird.file == cfg.bird.file => {
                r.core.set_settings(s);
                r.cfg = cfg;
            }
            (Some((cfg, s)), _) => {
                info!(
                    "announce-enabled file={} hold-down-ms={}",
                    cfg.bird.file.display(),
                    cfg.hold_down.as_millis()
                );
                let mut core = Core::new(s, bird::read(&cfg.bird.file));
                core.set_maintenance(self.maintenance);
                self.run = Some(Run { cfg, core });
            }
        }
        self.refresh_facts();
    }

    fn refresh_facts(&mut self) {
        let snap = self.checker.snapshot();
        let vpp = self.vpp.load();
        if let Some(r) = self.run.as_mut() {
            r.core.set_facts(facts(&snap, &vpp));
        }
    }

    fn set_maintenance(&mut self, on: bool) -> Result<(), String> {
        if self.run.is_none() {
            return Err("announcing is not configured (maglev.announce)".into());
        }
        let path = self.opts.state_dir.join(MAINTENANCE_FILE);
        let saved = if on {
            std::fs::create_dir_all(&self.opts.state_dir)
                .and_then(|()| bird::write_atomic(&path, "withdraw\n"))
        } else {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        };
        saved.map_err(|e| format!("cannot keep the state in {}: {e}", path.display()))?;
        self.maintenance = on;
        info!(
            "announce-maintenance state={}",
            if on { "withdraw" } else { "restore" }
        );
        if let Some(r) = self.run.as_mut() {
            r.core.set_maintenance(on);
        }
        Ok(())
    }

    /// Performs what the core asks for until it asks for nothing, then
    /// publishes the state.
    fn act(&mut self) {
        for _ in 0..16 {
            let Some(r) = self.run.as_mut() else {
                break;
            };
            let actions = r.core.poll(Instant::now());
            if actions.is_empty() {
                break;
            }
            for a in actions {
                self.perform(a);
            }
        }
        // A switched-off configuration goes once its withdraw is read.
        if self.checker.snapshot().config.announce.is_none()
            && self.run.as_ref().is_some_and(|r| r.core.settled())
        {
            self.run = None;
        }
        self.publish();
    }

    fn perform(&mut self, a: Action) {
        let Some(r) = self.run.as_mut() else {
            return;
        };
        match a {
            Action::Write(content) => {
                let res = bird::write_atomic(&r.cfg.bird.file, &content).map_err(|e| e.to_string());
                match &res {
                    Ok(()) => debug!("announce-written file={}", r.cfg.bird.file.display()),
                    Err(e) => error!(
                        "announce-write-failed file={} error={e:?}",
                        r.cfg.bird.file.display()
                    ),
                }
                r.core.written(Instant::now(), content, res);
            }
            Action::Reload => match spawn(&r.cfg.bird.reload) {
                Ok(child) => {
                    let pgid = child.id() as i32;
                    let tx = self.done_tx.clone();
                    let spawned = std::thread::Builder::new()
                        .name("announce-reload".into())
                        .stack_size(64 * 1024)
                        .spawn(move || {
                            let _ = tx.send(outcome(child));
                        });
                    match spawned {
                        Ok(_) => self.running = Some(Running { pgid }),
                        Err(e) => {
                            kill_group(pgid);
                            self.reload_done(Outcome::Failed(format!("no thread: {e}")));
                        }
                    }
                }
                Err(e) => {
                    let argv0 = r.cfg.bird.reload.first().cloned().unwrap_or_default();
                    self.reload_done(Outcome::Failed(format!("cannot run {argv0}: {e}")));
                }
            },
            Action::KillReload => {
                if let Some(r) = &self.running {
                    kill_group(r.pgid);
                }
            }
            Action::Changed {
                address,
                announced,
                reason,
                frontends,
            } => {
                let names = frontends.join(",");
                if announced {
                    info!("vip-announce address={address} frontends={names}");
                } else {
                    let why = reason.map_or("-", Reason::as_str);
                    info!("vip-withdraw address={address} reason={why} frontends={names}");
                }
                if let Some(argv) = &r.cfg.notify {
                    let word = if announced { "announce" } else { "withdraw" };
                    let why = reason.map_or("-", Reason::as_str);
                    for f in &frontends {
                        let mut call = argv.clone();
                        call.extend([f.clone(), address.to_string(), word.into(), why.into()]);
                        if self.notify_queue.len() == NOTIFY_QUEUE {
                            self.notify_queue.pop_front();
                            warn!("announce-notify-dropped reason=queue-full");
                        }
                        self.notify_queue.push_back(call);
                    }
                }
                self.checker.publish(Event::Announce(AnnounceEvent {
                    address,
                    announced,
                    reason: reason.map(|r| r.as_str().to_string()),
                    frontends,
                    at: SystemTime::now(),
                }));
                self.start_notifies();
            }
        }
    }

    fn reload_done(&mut self, o: Outcome) {
        self.running = None;
        *self.reloads.entry(o.label()).or_insert(0) += 1;
        let Some(r) = self.run.as_mut() else {
            return;
        };
        let now = Instant::now();
        r.core.reload_done(now, o.clone());
        let took = r.core.last_reload().map_or(Duration::ZERO, |l| l.took);
        match &o {
            Outcome::Ok => info!(
                "announce-reloaded took_ms={:.1}",
                took.as_secs_f64() * 1000.0
            ),
            _ => {
                let retry = r
                    .core
                    .next_wakeup(now)
                    .map_or(0, |t| t.saturating_duration_since(now).as_millis());
                let detail = match &o {
                    Outcome::Failed(d) => d.clone(),
                    _ => format!("killed after {} ms", r.cfg.bird.reload_timeout.as_millis()),
                };
                warn!(
                    "announce-reload-failed result={} error={detail:?} retry-in-ms={retry}",
                    o.label()
                );
            }
        }
        for d in r.core.take_latencies() {
            let s = d.as_secs_f64();
            for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
                if s <= *b {
                    self.latency.0[i] += 1;
                }
            }
            self.latency.1 += s;
            self.latency.2 += 1;
        }
    }

    fn start_notifies(&mut self) {
        let timeout = self
            .run
            .as_ref()
            .map_or(Duration::from_secs(5), |r| r.cfg.bird.reload_timeout);
        while self.notifying < NOTIFY_AT_ONCE {
            let Some(argv) = self.notify_queue.pop_front() else {
                return;
            };
            let tx = self.notified_tx.clone();
            let spawned = std::thread::Builder::new()
                .name("announce-notify".into())
                .stack_size(64 * 1024)
                .spawn(move || {
                    run_notify(&argv, timeout);
                    let _ = tx.send(());
                });
            match spawned {
                Ok(_) => self.notifying += 1,
                Err(e) => warn!("announce-notify-failed error={e}"),
            }
        }
    }

    fn publish(&mut self) {
        let base = (Instant::now(), SystemTime::now());
        let wall = |t: Instant| base.1 - base.0.saturating_duration_since(t);
        let st = match &self.run {
            None => AnnounceStatus {
                maintenance: self.maintenance,
                ..AnnounceStatus::default()
            },
            Some(r) => AnnounceStatus {
                enabled: true,
                file: Some(r.cfg.bird.file.clone()),
                maintenance: self.maintenance,
                addresses: r
                    .core
                    .addresses()
                    .iter()
                    .map(|(ip, a)| AddressStatus {
                        address: *ip,
                        announced: a.announced,
                        reason: a.reason,
                        since: wall(a.since),
                        frontends: a.frontends.clone(),
                    })
                    .collect(),
                last_reload: r.core.last_reload().map(|l| ReloadStatus {
                    at: wall(l.at),
                    result: l.outcome.label(),
                    detail: match &l.outcome {
                        Outcome::Failed(d) => Some(d.clone()),
                        _ => None,
                    },
                    took: l.took,
                }),
                write_error: r.core.write_error().map(str::to_string),
                reloads: self.reloads.clone(),
                latency: self.latency.clone(),
            },
        };
        if *self.status.load() != st {
            self.status.store(Arc::new(st));
        }
    }
}

/// Starts `argv` (no shell) in its own process group, stdin closed,
/// output captured.
fn spawn(argv: &[String]) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty argv"))?;
    Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
}

/// Waits for `child` and says how it ended (its first line of output
/// when it failed).
fn outcome(mut child: std::process::Child) -> Outcome {
    let mut text = String::new();
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    // Both pipes are read to their end (the child's exit closes them).
    let reader = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut s = String::new();
            if let Some(e) = err.as_mut() {
                let _ = e.take(4096).read_to_string(&mut s);
            }
            s
        });
    if let Some(o) = out.as_mut() {
        let _ = o.take(4096).read_to_string(&mut text);
        // The rest, unread, must not block the child.
        let _ = std::io::copy(o, &mut std::io::sink());
    }
    let errtext = reader.ok().and_then(|r| r.join().ok()).unwrap_or_default();
    match child.wait() {
        Ok(s) if s.success() => Outcome::Ok,
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            if s.signal() == Some(nix::libc::SIGKILL) {
                return Outcome::TimedOut;
            }
            let line = errtext
                .lines()
                .chain(text.lines())
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("")
                .to_string();
            Outcome::Failed(if line.is_empty() {
                s.to_string()
            } else {
                format!("{s}: {line}")
            })
        }
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

fn kill_group(pgid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(-pgid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Runs one `notify` call, killed after `timeout`; logs how it ended.
fn run_notify(argv: &[String], timeout: Duration) {
    let child = match spawn(argv) {
        Ok(c) => c,
        Err(e) => {
            warn!(
                "announce-notify-failed program={} error={e}",
                argv.first().map_or("", String::as_str)
            );
            return;
        }
    };
    let pgid = child.id() as i32;
    let (tx, rx) = bounded(1);
    let waiter = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = tx.send(outcome(child));
        });
    if waiter.is_err() {
        kill_group(pgid);
        return;
    }
    let o = match rx.recv_timeout(timeout) {
        Ok(o) => o,
        Err(_) => {
            kill_group(pgid);
            rx.recv().unwrap_or(Outcome::TimedOut)
        }
    };
    let args = argv.iter().skip(1).cloned().collect::<Vec<_>>().join(" ");
    match o {
        Outcome::Ok => info!("announce-notified args={args:?} status=0"),
        Outcome::TimedOut => warn!("announce-notify-failed args={args:?} result=timeout"),
        Outcome::Failed(d) => warn!("announce-notify-failed args={args:?} error={d:?}"),
    }
}

/// `maglevd --withdraw`: writes the fragment with both sets empty and runs
/// the reload once (killed after `reload-timeout`), so that a maglevd that
/// died leaves no route behind. `Ok`: what was done.
pub fn withdraw_all(cfg: &Announce) -> Result<String, String> {
    let content = bird::render(&cfg.bird.ipv4_set, &cfg.bird.ipv6_set, &[]);
    bird::write_atomic(&cfg.bird.file, &content)
        .map_err(|e| format!("cannot write {}: {e}", cfg.bird.file.display()))?;
    let child = spawn(&cfg.bird.reload).map_err(|e| {
        format!(
            "wrote {}, but cannot run {}: {e}",
            cfg.bird.file.display(),
            cfg.bird.reload.join(" ")
        )
    })?;
    let pgid = child.id() as i32;
    let (tx, rx) = bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(outcome(child));
    });
    let o = rx
        .recv_timeout(cfg.bird.reload_timeout)
        .unwrap_or_else(|_| {
            kill_group(pgid);
            Outcome::TimedOut
        });
    match o {
        Outcome::Ok => Ok(format!(
            "withdrew every address: wrote {} and ran {}",
            cfg.bird.file.display(),
            cfg.bird.reload.join(" ")
        )),
        Outcome::TimedOut => Err(format!(
            "wrote {}, but {} did not end within {} ms (killed)",
            cfg.bird.file.display(),
            cfg.bird.reload.join(" "),
            cfg.bird.reload_timeout.as_millis()
        )),
        Outcome::Failed(d) => Err(format!(
            "wrote {}, but {} failed: {d}",
            cfg.bird.file.display(),
            cfg.bird.reload.join(" ")
        )),
    }
}

/// The state directory: `$STATE_DIRECTORY` (systemd's `StateDirectory=`)
/// if set, else `/var/lib/vpp-maglev`.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("STATE_DIRECTORY")
        .filter(|s| !s.is_empty())
        .map(|s| {
            // systemd may list several, separated by ':'.
            let s = s.to_string_lossy().into_owned();
            PathBuf::from(s.split(':').next().unwrap_or("/var/lib/vpp-maglev"))
        })
        .unwrap_or_else(|| PathBuf::from("/var/lib/vpp-maglev"))
}

/// Whether `path` holds a maintenance withdraw (for tests and tools).
pub fn maintenance_kept(state_dir: &Path) -> bool {
    state_dir.join(MAINTENANCE_FILE).exists()
}
