//! The stats thread: every `vpp.stats-interval` it reads the lb counters
//! of every VIP and the route counters of their prefixes from the stats
//! segment into an immutable snapshot for `/metrics` and the CLI.
//!
//! It follows the reconciler's view of VPP (which VIPs exist, their pool
//! and FIB stats indexes); while VPP is disconnected the snapshot is empty
//! and the thread sleeps until VPP's status changes. A new VPP session, a
//! heartbeat that stopped, or a read error makes it fetch the segment
//! again; a changed boot time is logged (the new session that comes with
//! a restarted VPP is what replaces the segment).

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Sender, bounded};
use log::{info, warn};

use super::stats::Segment;
use super::status::VppStatus;
use super::wire::LbVip;
use crate::snapshot::Published;

/// The longest a stop waits for the stats thread.
const STOP_WAIT: Duration = Duration::from_millis(300);

/// VPP's heartbeat ticks every 10 s by default; three missed ticks mean
/// the segment belongs to a VPP that is gone.
const HEARTBEAT_STALE: Duration = Duration::from_secs(30);

/// Counters of one VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipCounters {
    /// The frontend it belongs to.
    pub frontend: Option<String>,
    /// The VIP.
    pub key: LbVip,
    /// Packets of established flows (`next`).
    pub next: u64,
    /// First packets of new flows.
    pub first: u64,
    /// New-flow packets not stored in the sticky table.
    pub untracked: u64,
    /// New-flow packets dropped for lack of a server.
    pub no_server: u64,
    /// `/net/route/to` packets and bytes of its prefix, if known.
    pub route: Option<(u64, u64)>,
}

/// One scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LbCounters {
    /// A stats socket is configured (false: counters are switched off,
    /// which readers report as such rather than as "not read yet").
    pub enabled: bool,
    /// `/sys/boottime`: when VPP started (Unix seconds).
    pub boottime: u64,
    /// Per VIP.
    pub vips: Vec<VipCounters>,
    /// When it was taken.
    pub at: Option<SystemTime>,
    /// How long the read took.
    pub took: Duration,
}

/// What the stats thread is told.
enum Msg {
    /// Follow this socket (`None`: no segment) at this interval.
    Configure(Option<PathBuf>, Duration),
    Stop,
}

/// Handle to the stats thread.
pub struct Scraper {
    tx: Sender<Msg>,
    done: crossbeam_channel::Receiver<()>,
    join: Option<JoinHandle<()>>,
    latest: Published<LbCounters>,
}

impl Scraper {
    /// Starts scraping `socket` (if any) every `interval`, following
    /// `status`. Without a socket the thread sleeps until reconfigured.
    pub fn start(
        socket: Option<PathBuf>,
        interval: Duration,
        status: Published<VppStatus>,
    ) -> std::io::Result<Scraper> {
        let (tx, rx) = bounded::<Msg>(4);
        let (done_tx, done) = bounded::<()>(0);
        let latest = Published::new(LbCounters::default());
        let out = latest.clone();
        let join = std::thread::Builder::new()
            .name("stats".into())
            .spawn(move || {
                let mut w = Reader {
                    socket,
                    status,
                    out,
                    seg: None,
                    session: None,
                    boottime: 0,
                    heartbeat: (0, Instant::now()),
                    last_error: None,
                };
                let mut interval = interval;
                // VPP's comings and goings wake the thread; while VPP is
                // away (or no socket is configured) nothing else does.
                let changes = w.status.changes();
                loop {
                    let timer = if w.socket.is_some() && w.status.load().connected {
                        w.scrape();
                        crossbeam_channel::after(interval)
                    } else {
                        w.clear();
                        crossbeam_channel::never()
                    };
                    crossbeam_channel::select! {
                        recv(rx) -> m => match m {
                            Ok(Msg::Configure(socket, every)) => {
                                if socket != w.socket {
                                    info!(
                                        "vpp-stats-socket-changed socket={}",
                                        socket.as_deref().map_or("-".into(), |p| p.display().to_string())
                                    );
                                    w.socket = socket;
                                    w.seg = None;
                                    w.last_error = None;
                                }
                                interval = every;
                            }
                            Ok(Msg::Stop) | Err(_) => break,
                        },
                        recv(changes) -> _ => {}
                        recv(timer) -> _ => {}
                    }
                }
                drop(done_tx);
            })?;
        Ok(Scraper {
            tx,
            done,
            join: Some(join),
            latest,
        })
    }

    /// Follows a reload: another socket (or none) and interval; takes
    /// effect at once.
    pub fn configure(&self, socket: Option<PathBuf>, interval: Duration) {
        let _ = self.tx.send(Msg::Configure(socket, interval));
    }

    /// The latest scrape (empty while VPP is disconnected).
    pub fn latest(&self) -> Published<LbCounters> {
        self.latest.clone()
    }

    /// Stops the thread.
    pub fn shutdown(mut self) {
        self.halt();
    }

    /// Waits for the thread at most [`STOP_WAIT`]: a stats socket that
    /// accepts and never sends holds it in a read for up to a second, and
    /// a stop must not wait for that (the thread only reads).
    fn halt(&mut self) {
        let _ = self.tx.try_send(Msg::Stop);
        if self.done.recv_timeout(STOP_WAIT).is_ok() {
            if let Some(j) = self.join.take() {
                let _ = j.join();
            }
        }
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.halt();
    }
}

struct Reader {
    socket: Option<PathBuf>,
    status: Published<VppStatus>,
    out: Published<LbCounters>,
    seg: Option<Segment>,
    /// The API session the mapping belongs to: a new session may mean a
    /// restarted VPP with a new segment.
    session: Option<SystemTime>,
    boottime: u64,
    heartbeat: (u64, Instant),
    last_error: Option<String>,
}

impl Reader {
    fn clear(&mut self) {
        self.seg = None;
        let empty = LbCounters {
            enabled: self.socket.is_some(),
            ..LbCounters::default()
        };
        if *self.out.load() != empty {
            self.out.store(Arc::new(empty));
        }
    }

    fn scrape(&mut self) {
        let status = self.status.load();
        if !status.connected {
            return self.clear();
        }
        if self.session != status.connected_at {
            self.seg = None;
            self.session = status.connected_at;
        }
        if self.seg.is_none() {
            let Some(socket) = self.socket.clone() else {
                return self.clear();
            };
            match Segment::connect(&socket, Duration::from_secs(1)) {
                Ok(s) => {
                    self.last_error = None;
                    info!("vpp-stats-mapped socket={}", socket.display());
                    self.seg = Some(s);
                    self.heartbeat = (0, Instant::now());
                }
                Err(e) => {
                    // Once per outage, not every interval.
                    let msg = e.to_string();
                    if self.last_error.as_deref() != Some(&msg) {
                        warn!("vpp-stats-unavailable error={msg:?}");
                        self.last_error = Some(msg);
                    }
                    return self.clear();
                }
            }
        }
        let seg = self.seg.as_ref().expect("mapped above");
        let indexes: Vec<u32> = status.vips.iter().filter_map(|v| v.index).collect();
        let routes: Vec<u32> = status.vips.iter().filter_map(|v| v.stats_index).collect();
        let t0 = Instant::now();
        let r = match seg.read(&indexes, &routes) {
            Ok(r) => r,
            Err(e) => {
                warn!("vpp-stats-read-failed error={:?}", e.to_string());
                return self.clear();
            }
        };
        let took = t0.elapsed();
        if self.boottime != 0 && r.boottime != self.boottime {
            info!("vpp-stats-restart-detected boottime={}", r.boottime);
        }
        self.boottime = r.boottime;
        if r.heartbeat != self.heartbeat.0 {
            self.heartbeat = (r.heartbeat, Instant::now());
        } else if self.heartbeat.1.elapsed() > HEARTBEAT_STALE {
            warn!("vpp-stats-stale heartbeat={} remapping", r.heartbeat);
            return self.clear();
        }
        let vips = status
            .vips
            .iter()
            .map(|v| {
                let c = v
                    .index
                    .and_then(|i| r.vips.get(&i))
                    .copied()
                    .unwrap_or([0; 4]);
                VipCounters {
                    frontend: v.frontend.clone(),
                    key: v.key,
                    next: c[0],
                    first: c[1],
                    untracked: c[2],
                    no_server: c[3],
                    route: v.stats_index.and_then(|i| r.routes.get(&i)).copied(),
                }
            })
            .collect();
        self.out.store(Arc::new(LbCounters {
            enabled: true,
            boottime: r.boottime,
            vips,
            at: Some(SystemTime::now()),
            took,
        }));
    }
}
