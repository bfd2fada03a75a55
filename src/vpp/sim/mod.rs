//! A simulated VPP speaking the real binary API on a Unix socket.
//!
//! It exists so that the whole pipeline (and vpp_papi, the official
//! binding) can be exercised on any machine: tests start it in-process,
//! `vppsim` runs it as a process, `maglevd --vpp-sim` runs it beside the
//! daemon. Its message table deliberately uses ids VPP never uses, so no
//! client can get away with hard-coding them. Test hooks imitate the bad
//! days: a restart, a slow VPP, a connection cut mid-dump, an error reply.

pub mod lb;
pub mod stats;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use crate::wake::StopFd;

use self::lb::{Conf, LbState, VipArgs};

/// One `lb_add_del_vip(_v2)`: VPP reads only the key to delete.
fn add_or_del_vip(st: &mut LbState, v: &VipArgs, is_del: bool, now: Instant) -> i32 {
    if is_del {
        st.del_vip(v.pfx, v.protocol, v.port, now)
    } else {
        st.add_vip(v, now)
    }
}
use self::stats::SegmentWriter;
use super::stats::{LB_COUNTERS, kind};
use super::wire::*;

/// Which message table the simulator announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// This VPP version: every message maglevd needs.
    Current,
    /// A VPP from before the lb weight API: no `lb_conf_get`,
    /// `lb_add_del_as_v2`, `lb_as_set_weight` or `lb_as_v2_dump`.
    OldLb,
}

/// How to run a simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The API socket path to create.
    pub api_socket: PathBuf,
    /// Message table flavour.
    pub flavor: Flavor,
    /// How long deleted VIPs and ASes linger before collection.
    pub gc_delay: Duration,
    /// Serve a stats segment on this SEQPACKET socket.
    pub stats_socket: Option<PathBuf>,
    /// Counter rows in the stats segment (main thread + workers).
    pub threads: usize,
}

impl SimOptions {
    /// A current VPP on `api_socket`, collecting after 60 s as VPP does.
    pub fn new(api_socket: impl Into<PathBuf>) -> SimOptions {
        SimOptions {
            api_socket: api_socket.into(),
            flavor: Flavor::Current,
            gc_delay: Duration::from_secs(60),
            stats_socket: None,
            threads: 3,
        }
    }
}

/// The 28 memclnt messages with their fixed ids (PROTOCOL.md §2.2).
const MEMCLNT: &[(u16, &str, u32)] = &[
    (1, "memclnt_create", 0x9c5e1c2f),
    (2, "memclnt_create_reply", 0x42ec4560),
    (3, "memclnt_delete", 0x7e1c04e3),
    (4, "memclnt_delete_reply", 0x3d3b6312),
    (5, "rx_thread_exit", 0xc3a3a452),
    (6, "memclnt_rx_thread_suspend", 0xc3a3a452),
    (7, "memclnt_read_timeout", 0xc3a3a452),
    (8, "rpc_call", 0x7e8a2c95),
    (9, "rpc_call_reply", 0xe8d4e804),
    (10, "get_first_msg_id", 0xebf79a66),
    (11, "get_first_msg_id_reply", 0x7d337472),
    (12, "api_versions", 0x51077d14),
    (13, "api_versions_reply", 0x5f0d99d6),
    (14, "trace_plugin_msg_ids", 0xf476d3ce),
    (15, "sockclnt_create", 0x455fb9c4),
    (16, "sockclnt_create_reply", 0x35166268),
    (17, "sockclnt_delete", 0x8ac76db6),
    (18, "sockclnt_delete_reply", 0x8f38b1ee),
    (19, "sock_init_shm", 0x51646d92),
    (20, "sock_init_shm_reply", 0xe8d4e804),
    (21, "memclnt_keepalive", 0x51077d14),
    (22, "memclnt_keepalive_reply", 0xe8d4e804),
    (23, "control_ping", 0x51077d14),
    (24, "control_ping_reply", 0xf6b0b8ca),
    (25, "memclnt_create_v2", 0xc4bd4882),
    (26, "memclnt_create_v2_reply", 0x42ec4560),
    (27, "get_api_json", 0x51077d14),
    (28, "get_api_json_reply", 0xea715b59),
];

/// Module ranges as `get_first_msg_id` names them.
const MODULES: &[(&str, &str)] = &[
    ("vlib_9a9e84e4", "cli_inband"),
    ("vpe_33b45969", "show_version"),
    ("ip_a092da9f", "ip_route_lookup"),
    ("lb_487dee0a", "lb_conf"),
];

const OLD_LB_MISSING: &[&str] = &[
    "lb_conf_get",
    "lb_conf_get_reply",
    "lb_add_del_as_v2",
    "lb_add_del_as_v2_reply",
    "lb_as_set_weight",
    "lb_as_set_weight_reply",
    "lb_as_v2_dump",
    "lb_as_v2_details",
];

/// The message table: memclnt at its fixed ids, everything else from id
/// 700 up in an order unlike VPP's.
fn message_table(flavor: Flavor) -> Vec<(u16, String)> {
    let mut out: Vec<(u16, String)> = MEMCLNT
        .iter()
        .map(|(id, n, crc)| (*id, name_crc(n, *crc)))
        .collect();
    let mut rest: Vec<(&str, u32)> = MESSAGES
        .iter()
        .copied()
        .filter(|(n, _)| !MEMCLNT.iter().any(|(_, m, _)| m == n))
        .filter(|(n, _)| flavor == Flavor::Current || !OLD_LB_MISSING.contains(n))
        .collect();
    rest.reverse();
    for (i, (n, crc)) in rest.into_iter().enumerate() {
        out.push((700 + 3 * i as u16, name_crc(n, crc)));
    }
    out
}

/// Requests that change VPP's state.
pub fn is_mutation(name: &str) -> bool {
    matches!(
        name,
        "lb_conf"
            | "lb_add_del_vip"
            | "lb_add_del_vip_v2"
            | "lb_add_del_as"
            | "lb_add_del_as_v2"
            | "lb_as_set_weight"
            | "lb_flush_vip"
    )
}

/// Faults a test can inject.
#[derive(Debug, Default, Clone)]
struct Hooks {
    delay: Duration,
    cut_dump_after: Option<usize>,
    fail_next: Vec<(String, i32)>,
}

struct Inner {
    opts: SimOptions,
    state: Mutex<LbState>,
    hooks: Mutex<Hooks>,
    conns: Mutex<Vec<(u64, UnixStream)>>,
    received: Mutex<HashMap<String, u64>>,
    /// The newest [`JOURNAL_MAX`] mutations (bounded: a simulator that
    /// runs for weeks under `--vpp-sim` must not grow).
    journal: Mutex<std::collections::VecDeque<(String, Vec<u8>)>>,
    table: Vec<(u16, String)>,
    ids: HashMap<String, u16>,
    names: HashMap<u16, String>,
    next_handle: AtomicU32,
    next_conn: AtomicU32,
    stopping: AtomicBool,
    /// Wakes the accept loops and the heartbeat at stop.
    stop: Arc<StopFd>,
    restarts: AtomicU32,
    stats: Mutex<Option<SegmentWriter>>,
}

/// Size of the simulated stats segment.
const SEGMENT_SIZE: usize = 16 << 20;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Inner {
    /// Copies the lb state's counters into the stats segment.
    fn publish_stats(&self) {
        let mut guard = lock(&self.stats);
        let Some(w) = guard.as_mut() else { return };
        let (vips, routes, traffic) = {
            let st = lock(&self.state);
            (st.all_vips(), st.routes(), st.route_traffic())
        };
        let threads = w.threads();
        let mut full = false;
        if let Some(max) = vips.iter().map(|v| v.index).max() {
            for (k, name) in LB_COUNTERS.iter().enumerate() {
                full |= !w.ensure(name, kind::COUNTER_VECTOR_SIMPLE, max + 1);
                for v in &vips {
                    let c = &v.counters;
                    let total = [
                        c.existing_sessions,
                        c.first_packet,
                        c.untracked,
                        c.no_server,
                    ][k];
                    w.set_simple(name, v.index, &stats::split(total, threads));
                }
            }
        }
        let max_route = routes
            .iter()
            .map(|(_, i)| *i)
            .chain(traffic.keys().copied())
            .max();
        if let Some(max) = max_route {
            full |= !w.ensure(
                "/net/route/to",
                kind::COUNTER_VECTOR_COMBINED,
                max as usize + 1,
            );
            for (i, (p, b)) in &traffic {
                let rows: Vec<(u64, u64)> = stats::split(*p, threads)
                    .into_iter()
                    .zip(stats::split(*b, threads))
                    .collect();
                w.set_combined("/net/route/to", *i as usize, &rows);
            }
        }
        if full {
            debug!(
                "vppsim-stats-segment-full used={} (counters beyond it are not published)",
                w.used()
            );
        }
    }

    fn new_segment(&self, boottime: u64) {
        if self.opts.stats_socket.is_none() {
            return;
        }
        match SegmentWriter::new(SEGMENT_SIZE, self.opts.threads, boottime) {
            Ok(w) => *lock(&self.stats) = Some(w),
            Err(e) => warn!("vppsim-stats-segment-failed error={e}"),
        }
    }
}

/// Mutations the journal keeps (the oldest go first).
pub const JOURNAL_MAX: usize = 100_000;

/// A running simulator. Dropping it stops it and removes the socket.
pub struct Sim {
    inner: Arc<Inner>,
    acceptor: Option<JoinHandle<()>>,
    stats_server: Option<StatsServer>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sim {
    /// Creates the socket (replacing a stale file) and starts serving.
    pub fn start(opts: SimOptions) -> std::io::Result<Sim> {
        let _ = std::fs::remove_file(&opts.api_socket);
        let listener = UnixListener::bind(&opts.api_socket)?;
        let table = message_table(opts.flavor);
        let ids = table.iter().map(|(i, n)| (n.clone(), *i)).collect();
        let names = table.iter().map(|(i, n)| (*i, n.clone())).collect();
        let inner = Arc::new(Inner {
            state: Mutex::new(LbState::new(opts.gc_delay)),
            opts,
            hooks: Mutex::new(Hooks::default()),
            conns: Mutex::new(Vec::new()),
            received: Mutex::new(HashMap::new()),
            journal: Mutex::new(std::collections::VecDeque::new()),
            table,
            ids,
            names,
            next_handle: AtomicU32::new(1),
            next_conn: AtomicU32::new(1),
            stopping: AtomicBool::new(false),
            stop: Arc::new(StopFd::new()?),
            restarts: AtomicU32::new(0),
            stats: Mutex::new(None),
        });
        inner.new_segment(unix_now());
        let stats_server = match &inner.opts.stats_socket {
            Some(path) => Some(StatsServer::start(path, Arc::clone(&inner))?),
            None => None,
        };
        let i2 = Arc::clone(&inner);
        let acceptor = std::thread::Builder::new()
            .name("vppsim-accept".into())
            .spawn(move || accept_loop(i2, listener))?;
        info!(
            "vppsim-listening api-socket={}",
            inner.opts.api_socket.display()
        );
        Ok(Sim {
            inner,
            acceptor: Some(acceptor),
            stats_server,
        })
    }

    /// The API socket path.
    pub fn api_socket(&self) -> &Path {
        &self.inner.opts.api_socket
    }

    /// The stats socket path, if the simulator serves a segment.
    pub fn stats_socket(&self) -> Option<&Path> {
        self.inner.opts.stats_socket.as_deref()
    }

    /// Reads the lb state (for assertions and the stats segment).
    /// Reads or changes the lb state (then refreshes the stats segment).
    pub fn with_state<R>(&self, f: impl FnOnce(&mut LbState) -> R) -> R {
        let r = f(&mut lock(&self.inner.state));
        self.inner.publish_stats();
        r
    }

    /// VPP restarted: every connection drops and the lb state is empty.
    pub fn restart(&self) {
        self.inner.restarts.fetch_add(1, Ordering::SeqCst);
        *lock(&self.inner.state) = LbState::new(self.inner.opts.gc_delay);
        for (_, c) in lock(&self.inner.conns).drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        // A restarted VPP has a new segment and a new boot time.
        let boot = unix_now().max(self.boottime() + 1);
        self.inner.new_segment(boot);
        info!("vppsim-restarted");
    }

    /// Every reply waits this long first (a slow or hung VPP).
    pub fn set_delay(&self, d: Duration) {
        lock(&self.inner.hooks).delay = d;
    }

    /// The next dump closes its connection after `n` details.
    pub fn cut_next_dump_after(&self, n: usize) {
        lock(&self.inner.hooks).cut_dump_after = Some(n);
    }

    /// The next request named `msg` is answered with `retval` and ignored.
    pub fn fail_next(&self, msg: &str, retval: i32) {
        lock(&self.inner.hooks)
            .fail_next
            .push((msg.to_string(), retval));
    }

    /// How many requests of each name arrived (mutations are what the
    /// reconciler's "no change, no message" rule is checked with).
    pub fn received(&self) -> HashMap<String, u64> {
        lock(&self.inner.received).clone()
    }

    /// Forgets the request counts and the journal.
    pub fn reset_received(&self) {
        lock(&self.inner.received).clear();
        lock(&self.inner.journal).clear();
    }

    /// Every mutating request so far, in arrival order: its name and its
    /// payload with id, client index and context zeroed (comparable
    /// between sessions and simulators).
    pub fn journal(&self) -> Vec<(String, Vec<u8>)> {
        lock(&self.inner.journal).iter().cloned().collect()
    }

    /// The boot time the stats segment reports (0 without a segment).
    pub fn boottime(&self) -> u64 {
        lock(&self.inner.stats).as_ref().map_or(0, |w| w.boottime())
    }

    /// Connections currently open.
    pub fn connections(&self) -> usize {
        lock(&self.inner.conns).len()
    }

    /// Stops accepting, closes every connection and removes the socket.
    pub fn stop(&mut self) {
        if self.inner.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wakes the accept loop without touching the socket file (which
        // may be gone).
        self.inner.stop.trigger();
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        for (_, c) in lock(&self.inner.conns).drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        if let Some(s) = self.stats_server.take() {
            s.stop();
        }
        let _ = std::fs::remove_file(&self.inner.opts.api_socket);
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(inner: Arc<Inner>, listener: UnixListener) {
    loop {
        let stream = match inner.stop.accept(&listener) {
            Ok(Some(s)) => s,
            Ok(None) => break,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let id = u64::from(inner.next_conn.fetch_add(1, Ordering::SeqCst));
        if let Ok(c) = stream.try_clone() {
            lock(&inner.conns).push((id, c));
        }
        let i2 = Arc::clone(&inner);
        let spawned = std::thread::Builder::new()
            .name("vppsim-conn".into())
            .spawn(move || {
                let mut conn = Conn {
                    inner: &i2,
                    stream,
                    handle: None,
                    restarts: i2.restarts.load(Ordering::SeqCst),
                };
                conn.serve();
                lock(&i2.conns).retain(|(c, _)| *c != id);
            });
        if let Err(e) = spawned {
            warn!("vppsim-spawn-failed error={e}");
        }
    }
}

/// Serves the segment on a SEQPACKET socket the way VPP does: one empty
/// message carrying the memfd (`SCM_RIGHTS`), then close. Also ticks
/// `/sys/heartbeat` once a second.
struct StatsServer {
    /// The listener (kept open until the threads are joined).
    _fd: std::os::fd::OwnedFd,
    path: PathBuf,
    stop: Arc<StopFd>,
    threads: Vec<JoinHandle<()>>,
}

impl StatsServer {
    fn start(path: &Path, inner: Arc<Inner>) -> std::io::Result<StatsServer> {
        use nix::sys::socket::{
            AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen, socket,
        };
        use std::os::fd::AsRawFd;
        let _ = std::fs::remove_file(path);
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
        listen(&fd, Backlog::new(16).unwrap_or(Backlog::MAXCONN))?;
        let stop = Arc::clone(&inner.stop);
        let listener = fd.try_clone()?;
        let (i2, s2) = (Arc::clone(&inner), Arc::clone(&stop));
        let acceptor = std::thread::Builder::new()
            .name("vppsim-stats".into())
            .spawn(move || {
                use std::os::fd::AsFd;
                while let Ok(crate::wake::Ready::Fd) =
                    s2.wait(listener.as_fd(), nix::poll::PollFlags::POLLIN, None)
                {
                    let Ok(c) = nix::sys::socket::accept(&listener) else {
                        continue;
                    };
                    let memfd = lock(&i2.stats).as_ref().map(|w| w.raw_fd());
                    if let Some(m) = memfd {
                        let fds = [m];
                        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
                        let iov = [std::io::IoSlice::new(&[])];
                        let _ = nix::sys::socket::sendmsg::<()>(
                            c.as_raw_fd(),
                            &iov,
                            &cmsg,
                            nix::sys::socket::MsgFlags::empty(),
                            None,
                        );
                    }
                    drop(c);
                }
            })?;
        let (i3, s3) = (inner, Arc::clone(&stop));
        let ticker = std::thread::Builder::new()
            .name("vppsim-heartbeat".into())
            .spawn(move || {
                let mut beat = 0u64;
                // One tick a second, like VPP's; a stop ends the sleep.
                while !s3.sleep(Duration::from_secs(1)) {
                    beat += 1;
                    if let Some(w) = lock(&i3.stats).as_mut() {
                        w.set_scalar("/sys/heartbeat", beat);
                    }
                    i3.publish_stats();
                }
            })?;
        info!("vppsim-stats-listening stats-socket={}", path.display());
        Ok(StatsServer {
            _fd: fd,
            path: path.to_path_buf(),
            stop,
            threads: vec![acceptor, ticker],
        })
    }

    fn stop(self) {
        self.stop.trigger();
        for t in self.threads {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What handling one request produced.
enum Answer {
    /// Reply payloads, in order.
    Send(Vec<Vec<u8>>),
    /// Reply payloads, then close the connection.
    SendAndClose(Vec<Vec<u8>>),
}

struct Conn<'a> {
    inner: &'a Inner,
    stream: UnixStream,
    handle: Option<u32>,
    restarts: u32,
}

impl Conn<'_> {
    fn serve(&mut self) {
        let mut frames = FrameReader::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            frames.push(&buf[..n]);
            loop {
                let payload = match frames.next_payload() {
                    Ok(Some(p)) => p,
                    Ok(None) => break,
                    Err(e) => {
                        warn!("vppsim-bad-frame error={e}");
                        return;
                    }
                };
                if self.inner.restarts.load(Ordering::SeqCst) != self.restarts {
                    return;
                }
                let answer = self.handle_payload(&payload);
                let delay = lock(&self.inner.hooks).delay;
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                let (replies, close) = match answer {
                    Answer::Send(r) => (r, false),
                    Answer::SendAndClose(r) => (r, true),
                };
                let mut out = Vec::new();
                for r in &replies {
                    out.extend_from_slice(&frame(r));
                }
                if !out.is_empty() && self.stream.write_all(&out).is_err() {
                    return;
                }
                if close {
                    let _ = self.stream.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        }
    }

    fn id(&self, name: &str, crc: u32) -> u16 {
        self.inner
            .ids
            .get(&name_crc(name, crc))
            .copied()
            .unwrap_or(0)
    }

    fn reply<M: Message>(&self, m: &M) -> Vec<u8> {
        m.encode(self.id(M::NAME, M::CRC))
    }

    fn handle_payload(&mut self, p: &[u8]) -> Answer {
        let Ok(id) = msg_id(p) else {
            return Answer::Send(Vec::new());
        };
        if id == SOCKCLNT_CREATE_ID {
            return self.handshake(p);
        }
        let Some(key) = self.inner.names.get(&id) else {
            debug!("vppsim-drop reason=unknown-id id={id}");
            return Answer::Send(Vec::new());
        };
        let name = key
            .rsplit_once('_')
            .map_or(key.as_str(), |(n, _)| n)
            .to_string();
        // Every request carries client_index at offset 2.
        let client_index = match Reader::new(p, "request").take(6) {
            Ok(b) => u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
            Err(_) => return Answer::Send(Vec::new()),
        };
        if Some(client_index) != self.handle {
            debug!("vppsim-drop reason=bad-client-index msg={name}");
            return Answer::Send(Vec::new());
        }
        *lock(&self.inner.received).entry(name.clone()).or_insert(0) += 1;
        if is_mutation(&name) {
            // Id, client index and context differ between sessions; the
            // rest is what the request asks VPP to do.
            let mut body = p.to_vec();
            body[..10.min(p.len())].fill(0);
            let mut j = lock(&self.inner.journal);
            if j.len() >= JOURNAL_MAX {
                j.pop_front();
            }
            j.push_back((name.clone(), body));
        }
        let injected = {
            let mut h = lock(&self.inner.hooks);
            h.fail_next
                .iter()
                .position(|(m, _)| *m == name)
                .map(|i| h.fail_next.remove(i).1)
        };
        let answer = self.dispatch(&name, p, injected);
        // Only VIP changes (new counter indexes, zeroed counters, routes)
        // and the traffic hook touch the segment; AS changes do not, and
        // publishing after each of 30,000 AS adds made big syncs quadratic.
        if name.starts_with("lb_add_del_vip") || name == "cli_inband" {
            self.inner.publish_stats();
        }
        match answer {
            Ok(a) => a,
            Err(e) => {
                // VPP drops truncated messages silently.
                debug!("vppsim-drop reason=decode msg={name} error={e}");
                Answer::Send(Vec::new())
            }
        }
    }

    fn handshake(&mut self, p: &[u8]) -> Answer {
        let Ok(req) = SockclntCreate::decode_lenient(p) else {
            return Answer::Send(Vec::new());
        };
        let handle = 0x8000_0000 | self.inner.next_handle.fetch_add(1, Ordering::SeqCst);
        self.handle = Some(handle);
        debug!("vppsim-client name={:?} handle={handle:#x}", req.name.0);
        let reply = SockclntCreateReply {
            client_index: 0,
            context: req.context,
            response: 0,
            index: handle,
            message_table: self
                .inner
                .table
                .iter()
                .map(|(i, n)| TableEntry {
                    index: *i,
                    name: FixedStr(n.clone()),
                })
                .collect(),
        };
        Answer::Send(vec![reply.encode(SOCKCLNT_CREATE_REPLY_ID)])
    }

    fn dispatch(&mut self, name: &str, p: &[u8], injected: Option<i32>) -> WireResult<Answer> {
        let now = Instant::now();
        macro_rules! plain {
            ($req:ty, $rep:ident, $body:expr) => {{
                let r = <$req>::decode_lenient(p)?;
                let retval = match injected {
                    Some(v) => v,
                    None => {
                        let f: &dyn Fn(&$req) -> i32 = &$body;
                        f(&r)
                    }
                };
                Answer::Send(vec![self.reply(&$rep {
                    context: r.context,
                    retval,
                })])
            }};
        }
        let inner = self.inner;
        let st = || lock(&inner.state);
        Ok(match name {
            "control_ping" => {
                let r = ControlPing::decode_lenient(p)?;
                Answer::Send(vec![self.reply(&ControlPingReply {
                    context: r.context,
                    retval: injected.unwrap_or(0),
                    client_index: r.client_index,
                    vpe_pid: std::process::id(),
                })])
            }
            "sockclnt_delete" => {
                let r = SockclntDelete::decode_lenient(p)?;
                let ok = Some(r.index) == self.handle;
                Answer::SendAndClose(vec![self.reply(&SockclntDeleteReply {
                    context: r.context,
                    response: if ok { 1 } else { -1 },
                })])
            }
            // VPP answers keepalives into its own shared-memory queue:
            // a socket client never sees the reply.
            "memclnt_keepalive" => Answer::Send(Vec::new()),
            "get_first_msg_id" => {
                let r = GetFirstMsgId::decode_lenient(p)?;
                let first = MODULES
                    .iter()
                    .find(|(m, _)| *m == r.name.0)
                    .and_then(|(_, first)| {
                        MESSAGES
                            .iter()
                            .find(|(n, _)| n == first)
                            .map(|(n, c)| self.id(n, *c))
                    });
                Answer::Send(vec![self.reply(&GetFirstMsgIdReply {
                    context: r.context,
                    retval: if first.is_some() { 0 } else { -7 },
                    first_msg_id: first.unwrap_or(0xffff),
                })])
            }
            "show_version" => {
                let r = ShowVersion::decode_lenient(p)?;
                Answer::Send(vec![self.reply(&ShowVersionReply {
                    context: r.context,
                    retval: injected.unwrap_or(0),
                    program: FixedStr("vpe".into()),
                    version: FixedStr("26.10-rc0~vppsim".into()),
                    build_date: FixedStr("2026-08-22T03:00:55".into()),
                    build_directory: FixedStr("/vpp-maglev/vppsim".into()),
                })])
            }
            "cli_inband" => {
                let r = CliInband::decode_lenient(p)?;
                let (retval, text) = match injected {
                    Some(v) => (v, "injected error\n".to_string()),
                    None => st().cli(&r.cmd.0),
                };
                Answer::Send(vec![self.reply(&CliInbandReply {
                    context: r.context,
                    retval,
                    reply: VarStr(text),
                })])
            }
            "ip_route_lookup" => {
                let r = IpRouteLookup::decode_lenient(p)?;
                let (mut retval, mut route) = st().route_lookup(r.table_id, r.exact != 0, r.prefix);
                if let Some(v) = injected {
                    retval = v;
                }
                if retval != 0 {
                    route = IpRoute {
                        table_id: 0,
                        stats_index: 0,
                        prefix: Prefix::any(),
                        paths: Vec::new(),
                    };
                }
                Answer::Send(vec![self.reply(&IpRouteLookupReply {
                    context: r.context,
                    retval,
                    route,
                })])
            }
            "lb_conf" => plain!(LbConf, LbConfReply, |r: &LbConf| st().set_conf(Conf {
                ip4_src: r.ip4_src_address,
                ip6_src: r.ip6_src_address,
                sticky_buckets_per_core: r.sticky_buckets_per_core,
                flow_timeout: r.flow_timeout,
            })),
            "lb_conf_get" => {
                let r = LbConfGet::decode_lenient(p)?;
                let c = st().conf();
                Answer::Send(vec![self.reply(&LbConfGetReply {
                    context: r.context,
                    retval: injected.unwrap_or(0),
                    ip4_src_address: c.ip4_src,
                    ip6_src_address: c.ip6_src,
                    sticky_buckets_per_core: c.sticky_buckets_per_core,
                    flow_timeout: c.flow_timeout,
                })])
            }
            "lb_add_del_vip" => plain!(LbAddDelVip, LbAddDelVipReply, |r: &LbAddDelVip| {
                let v = VipArgs {
                    pfx: r.pfx,
                    protocol: r.protocol,
                    port: r.port,
                    encap: r.encap.code(),
                    dscp: r.dscp,
                    table_len: r.new_flows_table_length,
                    sticky: false,
                };
                add_or_del_vip(&mut st(), &v, r.is_del, now)
            }),
            "lb_add_del_vip_v2" => {
                plain!(LbAddDelVipV2, LbAddDelVipV2Reply, |r: &LbAddDelVipV2| {
                    let v = VipArgs {
                        pfx: r.pfx,
                        protocol: r.protocol,
                        port: r.port,
                        encap: r.encap.code(),
                        dscp: r.dscp,
                        table_len: r.new_flows_table_length,
                        sticky: r.src_ip_sticky,
                    };
                    add_or_del_vip(&mut st(), &v, r.is_del, now)
                })
            }
            "lb_add_del_as" => plain!(LbAddDelAs, LbAddDelAsReply, |r: &LbAddDelAs| st()
                .add_del_as(
                    r.pfx,
                    r.protocol,
                    r.port,
                    r.as_address,
                    100,
                    r.is_del,
                    false,
                    now
                )),
            "lb_add_del_as_v2" => plain!(LbAddDelAsV2, LbAddDelAsV2Reply, |r: &LbAddDelAsV2| st()
                .add_del_as(
                    r.pfx,
                    r.protocol,
                    r.port,
                    r.as_address,
                    r.weight,
                    r.is_del,
                    r.is_flush,
                    now
                )),
            "lb_as_set_weight" => {
                plain!(LbAsSetWeight, LbAsSetWeightReply, |r: &LbAsSetWeight| st()
                    .set_weight(
                        r.pfx,
                        r.protocol,
                        r.port,
                        r.as_address,
                        r.weight,
                        r.is_flush
                    ))
            }
            // VPP ignores the lookup result: always 0.
            "lb_flush_vip" => plain!(LbFlushVip, LbFlushVipReply, |_r: &LbFlushVip| 0),
            "lb_vip_dump" => {
                let r = LbVipDump::decode_lenient(p)?;
                let details = st()
                    .vips()
                    .into_iter()
                    .map(|v| {
                        self.reply(&LbVipDetails {
                            context: r.context,
                            vip: v.key,
                            encap: v.encap,
                            dscp: v.dscp,
                            srv_type: 0,
                            target_port: 0,
                            flow_table_length: v.table_len as u16,
                        })
                    })
                    .collect();
                self.dump_answer(details)
            }
            "lb_as_dump" => {
                let r = LbAsDump::decode_lenient(p)?;
                let details = st()
                    .ases(r.pfx, r.protocol, r.port)
                    .into_iter()
                    .map(|a| {
                        self.reply(&LbAsDetails {
                            context: r.context,
                            vip: a.vip,
                            app_srv: a.addr,
                            flags: a.flags,
                            in_use_since: a.in_use_since,
                        })
                    })
                    .collect();
                self.dump_answer(details)
            }
            "lb_as_v2_dump" => {
                let r = LbAsV2Dump::decode_lenient(p)?;
                let details = st()
                    .ases(r.pfx, r.protocol, r.port)
                    .into_iter()
                    .map(|a| {
                        self.reply(&LbAsV2Details {
                            context: r.context,
                            vip: a.vip,
                            app_srv: a.addr,
                            flags: a.flags,
                            in_use_since: a.in_use_since,
                            weight: a.weight,
                            num_buckets: a.buckets,
                        })
                    })
                    .collect();
                self.dump_answer(details)
            }
            _ => {
                debug!("vppsim-drop reason=no-handler msg={name}");
                Answer::Send(Vec::new())
            }
        })
    }

    /// Details of a dump; cut short (and the connection closed) when a
    /// test asked for it.
    fn dump_answer(&self, mut details: Vec<Vec<u8>>) -> Answer {
        let cut = lock(&self.inner.hooks).cut_dump_after.take();
        match cut {
            Some(n) => {
                details.truncate(n);
                Answer::SendAndClose(details)
            }
            None => Answer::Send(details),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_keeps_memclnt_ids_and_moves_the_rest() {
        let t = message_table(Flavor::Current);
        assert!(t.contains(&(15, "sockclnt_create_455fb9c4".into())));
        assert!(t.contains(&(23, "control_ping_51077d14".into())));
        let lb = t
            .iter()
            .find(|(_, n)| n == "lb_add_del_vip_v2_7c520e0f")
            .unwrap();
        assert!(lb.0 >= 700);
        let mut ids: Vec<u16> = t.iter().map(|(i, _)| *i).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), t.len());
        let old = message_table(Flavor::OldLb);
        assert!(!old.iter().any(|(_, n)| n.starts_with("lb_as_set_weight_")));
        assert!(old.iter().any(|(_, n)| n.starts_with("lb_add_del_vip_v2_")));
    }
}
