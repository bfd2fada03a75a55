//! A blocking client for VPP's binary API socket.
//!
//! One [`Client`] is one session: connect, `sockclnt_create`, resolve every
//! message id maglevd needs by `name_crc`, then strictly one request at a
//! time (VPP answers a connection's messages in order). Every socket
//! operation has a timeout, so a hung VPP costs at most that long, and an
//! [`Interrupt`] ends any call at once (stop must not wait for VPP). After
//! any I/O or protocol error the session is spent: the owner drops it and
//! connects anew (when is the reconciler core's decision), re-reading the
//! message table because ids change when VPP restarts.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::debug;

use super::errors::VppError;
use super::wire::*;

/// The messages maglevd sends or receives after the handshake. All must be
/// in VPP's table with exactly these CRCs.
pub const REQUIRED: &[(&str, u32)] = &[
    (ControlPing::NAME, ControlPing::CRC),
    (ControlPingReply::NAME, ControlPingReply::CRC),
    (SockclntDelete::NAME, SockclntDelete::CRC),
    (SockclntDeleteReply::NAME, SockclntDeleteReply::CRC),
    (ShowVersion::NAME, ShowVersion::CRC),
    (ShowVersionReply::NAME, ShowVersionReply::CRC),
    (CliInband::NAME, CliInband::CRC),
    (CliInbandReply::NAME, CliInbandReply::CRC),
    (IpRouteLookup::NAME, IpRouteLookup::CRC),
    (IpRouteLookupReply::NAME, IpRouteLookupReply::CRC),
    (LbConf::NAME, LbConf::CRC),
    (LbConfReply::NAME, LbConfReply::CRC),
    (LbConfGet::NAME, LbConfGet::CRC),
    (LbConfGetReply::NAME, LbConfGetReply::CRC),
    (LbAddDelVipV2::NAME, LbAddDelVipV2::CRC),
    (LbAddDelVipV2Reply::NAME, LbAddDelVipV2Reply::CRC),
    (LbAddDelAsV2::NAME, LbAddDelAsV2::CRC),
    (LbAddDelAsV2Reply::NAME, LbAddDelAsV2Reply::CRC),
    (LbAsSetWeight::NAME, LbAsSetWeight::CRC),
    (LbAsSetWeightReply::NAME, LbAsSetWeightReply::CRC),
    (LbVipDump::NAME, LbVipDump::CRC),
    (LbVipDetails::NAME, LbVipDetails::CRC),
    (LbAsV2Dump::NAME, LbAsV2Dump::CRC),
    (LbAsV2Details::NAME, LbAsV2Details::CRC),
];

/// What a VPP must be to have every message of [`REQUIRED`].
pub const REQUIRED_VPP: &str = "VPP 26.10 or newer (lb plugin API 1.2.0: lb_conf_get, \
     lb_add_del_as_v2, lb_as_set_weight, lb_as_v2_dump)";

/// Counts of API messages by (message, direction, result), for
/// `maglev_vpp_api_total`. Shared by every session of the process.
#[derive(Debug, Default)]
pub struct ApiCounters {
    counts: Mutex<BTreeMap<ApiKey, u64>>,
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// maglevd to VPP.
    Send,
    /// VPP to maglevd.
    Recv,
}

/// How a message fared (`retval` 0, or a write that went through).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ApiResult {
    /// Sent, or answered with `retval` 0.
    Success,
    /// Not sent, or answered with an error.
    Failure,
}

impl Direction {
    /// The label value (`maglev_vpp_api_total{direction}`, as the original's).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Send => "send",
            Direction::Recv => "recv",
        }
    }
}

impl ApiResult {
    /// The label value (`maglev_vpp_api_total{result}`, as the original's).
    pub fn as_str(self) -> &'static str {
        match self {
            ApiResult::Success => "success",
            ApiResult::Failure => "failure",
        }
    }

    fn of(retval: i32) -> ApiResult {
        if retval == 0 {
            ApiResult::Success
        } else {
            ApiResult::Failure
        }
    }
}

/// What [`ApiCounters`] counts by: message name, direction, result.
pub type ApiKey = (&'static str, Direction, ApiResult);

impl ApiCounters {
    /// A new, empty set.
    pub fn new() -> Arc<ApiCounters> {
        Arc::new(ApiCounters::default())
    }

    /// Adds one.
    pub fn count(&self, msg: &'static str, direction: Direction, result: ApiResult) {
        let mut m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((msg, direction, result)).or_insert(0) += 1;
    }

    /// A copy of all counts.
    pub fn snapshot(&self) -> Vec<(ApiKey, u64)> {
        let m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(k, v)| (*k, *v)).collect()
    }
}

/// How to reach VPP.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The API socket (`vpp.api-socket`).
    pub socket: PathBuf,
    /// Our name in `show api clients`.
    pub name: String,
    /// Bound on every connect, read and write, and on each whole call.
    pub timeout: Duration,
    /// Ends the session's blocking calls from another thread (stop).
    pub interrupt: Option<Arc<Interrupt>>,
}

impl ClientConfig {
    /// Defaults for `socket`: name `maglevd`, 5 s timeout (vpp_papi's).
    pub fn new(socket: impl Into<PathBuf>) -> ClientConfig {
        ClientConfig {
            socket: socket.into(),
            name: "maglevd".into(),
            timeout: Duration::from_secs(5),
            interrupt: None,
        }
    }
}

/// Ends a session's blocking calls from another thread: `shutdown(2)` on
/// its socket wakes a blocked read or write at once, whatever VPP does.
/// Once triggered, every later session of the same config is shut down as
/// soon as it is created.
#[derive(Debug, Default)]
pub struct Interrupt {
    /// Triggered; the registered session (its number and socket).
    state: Mutex<(bool, Option<(u64, UnixStream)>)>,
    next: std::sync::atomic::AtomicU64,
}

impl Interrupt {
    /// A new, untriggered interrupt.
    pub fn new() -> Arc<Interrupt> {
        Arc::new(Interrupt::default())
    }

    /// Shuts the current session down, and every later one.
    pub fn trigger(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0 = true;
        if let Some((_, s)) = st.1.take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Whether [`Interrupt::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    /// Session `id` ended: let go of its socket (if it is still the one).
    fn forget(&self, id: u64) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.1.as_ref().is_some_and(|(n, _)| *n == id) {
            st.1 = None;
        }
    }

    /// Makes `stream` the one to shut down; its number, or `None` if
    /// already triggered.
    fn register(&self, stream: &UnixStream) -> Option<u64> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.0 {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return None;
        }
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        st.1 = stream.try_clone().ok().map(|s| (id, s));
        Some(id)
    }
}

/// Connects without ever blocking on a VPP that does not accept: a Unix
/// socket whose backlog is full answers EAGAIN to a non-blocking connect
/// instead of parking the caller.
fn connect_stream(path: &Path) -> std::io::Result<UnixStream> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    match connect(fd.as_raw_fd(), &UnixAddr::new(path)?) {
        Ok(()) => {}
        Err(nix::errno::Errno::EAGAIN) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "not accepting connections (listen backlog full)",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// What `show_version` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// `vpe`.
    pub program: String,
    /// e.g. `26.10-rc0~245-gb575ec2c5`.
    pub version: String,
    /// Build date.
    pub build_date: String,
    /// Build directory.
    pub build_directory: String,
}

/// The global lb settings (`lb_conf_get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LbConfig {
    /// Outer source of GRE4 packets.
    pub ip4_src: Ipv4Addr,
    /// Outer source of GRE6 packets.
    pub ip6_src: Ipv6Addr,
    /// Sticky table buckets per worker.
    pub sticky_buckets_per_core: u32,
    /// Idle seconds before a sticky entry expires.
    pub flow_timeout: u32,
}

/// One live session with VPP.
pub struct Client {
    stream: UnixStream,
    frames: FrameReader,
    handle: u32,
    ids: HashMap<String, u16>,
    names: HashMap<u16, String>,
    next_context: u32,
    timeout: Duration,
    counters: Arc<ApiCounters>,
    broken: bool,
    socket: PathBuf,
    /// Where stop can reach this session, and its number there.
    interrupt: Option<(Arc<Interrupt>, u64)>,
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> VppError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            VppError::Timeout(format!("{what} on {}", path.display()))
        }
        std::io::ErrorKind::UnexpectedEof => {
            VppError::Closed(format!("VPP closed {} during {what}", path.display()))
        }
        _ => VppError::Io(format!("{what} on {}: {e}", path.display())),
    }
}

impl Client {
    /// Connects, performs the handshake and checks that VPP has every
    /// message of [`REQUIRED`] with the expected layout.
    pub fn connect(cfg: &ClientConfig, counters: Arc<ApiCounters>) -> Result<Client, VppError> {
        let stream = connect_stream(&cfg.socket).map_err(|e| io_err(&cfg.socket, "connect", e))?;
        let interrupt = match &cfg.interrupt {
            None => None,
            Some(i) => match i.register(&stream) {
                Some(id) => Some((Arc::clone(i), id)),
                None => return Err(VppError::Closed("stopping".into())),
            },
        };
        stream
            .set_read_timeout(Some(cfg.timeout))
            .and_then(|_| stream.set_write_timeout(Some(cfg.timeout)))
            .map_err(|e| io_err(&cfg.socket, "set timeouts", e))?;
        let mut c = Client {
            stream,
            frames: FrameReader::new(),
            handle: 0,
            ids: HashMap::new(),
            names: HashMap::new(),
            next_context: 1,
            timeout: cfg.timeout,
            counters,
            broken: false,
            socket: cfg.socket.clone(),
            interrupt,
        };
        let hello = SockclntCreate {
            context: 0x6d61_676c,
            name: FixedStr(cfg.name.clone()),
        };
        c.write_payload(SockclntCreate::NAME, &hello.encode(SOCKCLNT_CREATE_ID))?;
        let deadline = Instant::now() + cfg.timeout;
        let reply = loop {
            let p = c.read_payload(deadline, SockclntCreate::NAME)?;
            if msg_id(&p).map_err(VppError::Decode)? == SOCKCLNT_CREATE_REPLY_ID {
                break SockclntCreateReply::decode(&p).map_err(VppError::Decode)?;
            }
        };
        c.counters.count(
            SockclntCreateReply::NAME,
            Direction::Recv,
            ApiResult::of(reply.response),
        );
        if reply.response != 0 {
            return Err(VppError::Protocol(format!(
                "sockclnt_create refused: response {}",
                reply.response
            )));
        }
        c.handle = reply.index;
        for e in &reply.message_table {
            c.ids.insert(e.name.0.clone(), e.index);
            c.names.insert(e.index, e.name.0.clone());
        }
        let missing: Vec<String> = REQUIRED
            .iter()
            .map(|(n, crc)| name_crc(n, *crc))
            .filter(|k| !c.ids.contains_key(k))
            .collect();
        if !missing.is_empty() {
            let _ = c.close();
            return Err(VppError::Incompatible {
                missing,
                needed: REQUIRED_VPP.to_string(),
            });
        }
        debug!(
            "vpp-api-handshake handle={:#x} messages={}",
            c.handle,
            reply.message_table.len()
        );
        Ok(c)
    }

    /// Our session handle.
    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// False once an error made the stream unusable.
    pub fn is_healthy(&self) -> bool {
        !self.broken
    }

    fn id_of<M: Message>(&self) -> Result<u16, VppError> {
        self.ids
            .get(&M::name_crc())
            .copied()
            .ok_or_else(|| VppError::Incompatible {
                missing: vec![M::name_crc()],
                needed: REQUIRED_VPP.to_string(),
            })
    }

    fn context(&mut self) -> u32 {
        let c = self.next_context;
        self.next_context = self.next_context.wrapping_add(1).max(1);
        c
    }

    fn write_payload(&mut self, name: &'static str, payload: &[u8]) -> Result<(), VppError> {
        let r = self.stream.write_all(&frame(payload));
        if let Err(e) = r {
            self.broken = true;
            self.counters
                .count(name, Direction::Send, ApiResult::Failure);
            return Err(io_err(&self.socket, name, e));
        }
        self.counters
            .count(name, Direction::Send, ApiResult::Success);
        Ok(())
    }

    fn read_payload(&mut self, deadline: Instant, during: &str) -> Result<Vec<u8>, VppError> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.frames.next_payload() {
                Ok(Some(p)) => return Ok(p),
                Ok(None) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(VppError::Decode(e));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.broken = true;
                return Err(VppError::Timeout(format!(
                    "no answer to {during} within {} ms",
                    self.timeout.as_millis()
                )));
            }
            let _ = self.stream.set_read_timeout(Some(left));
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.broken = true;
                    return Err(VppError::Closed(format!(
                        "VPP closed the connection during {during}"
                    )));
                }
                Ok(n) => self.frames.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.broken = true;
                    return Err(io_err(&self.socket, during, e));
                }
            }
        }
    }

    fn encode<M: Message>(&self, mut m: M, context: u32) -> Result<Vec<u8>, VppError> {
        if self.broken {
            return Err(VppError::Closed("session already failed".into()));
        }
        let id = self.id_of::<M>()?;
        m.set_header(self.handle, context);
        Ok(m.encode(id))
    }

    fn send<M: Message>(&mut self, m: M, context: u32) -> Result<(), VppError> {
        let payload = self.encode(m, context)?;
        debug!(
            "vpp-api-send msg={} context={context} size={}",
            M::NAME,
            payload.len()
        );
        self.write_payload(M::NAME, &payload)
    }

    /// Answers `p` if it is a keepalive (true: handled, not a reply).
    fn keepalive(&mut self, id: u16, p: &[u8]) -> Result<bool, VppError> {
        let name = self.names.get(&id).map(String::as_str).unwrap_or("?");
        let is_keepalive = name.starts_with("memclnt_keepalive_") && !name.contains("reply");
        if !is_keepalive {
            return Ok(false);
        }
        let ka = MemclntKeepalive::decode_lenient(p).map_err(VppError::Decode)?;
        if let Ok(rid) = self.id_of::<MemclntKeepaliveReply>() {
            let r = MemclntKeepaliveReply {
                context: ka.context,
                retval: 0,
            };
            self.write_payload(MemclntKeepaliveReply::NAME, &r.encode(rid))?;
        }
        Ok(true)
    }

    /// Handles what VPP sent while no call was in flight, without
    /// blocking: answers keepalives, drops stray replies, and reports a
    /// closed or reset connection as an error (the session is then spent).
    /// Called when the socket turns readable between calls.
    pub fn poll_unsolicited(&mut self) -> Result<(), VppError> {
        use nix::sys::socket::{MsgFlags, recv};
        use std::os::fd::AsRawFd;
        if self.broken {
            return Err(VppError::Closed("session already failed".into()));
        }
        let mut buf = [0u8; 16 * 1024];
        loop {
            match recv(self.stream.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => {
                    self.broken = true;
                    return Err(VppError::Closed(format!(
                        "VPP closed {}",
                        self.socket.display()
                    )));
                }
                Ok(n) => self.frames.push(&buf[..n]),
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(io_err(&self.socket, "read", e.into()));
                }
            }
        }
        loop {
            let p = match self.frames.next_payload() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.broken = true;
                    return Err(VppError::Decode(e));
                }
            };
            let id = msg_id(&p).map_err(VppError::Decode)?;
            if !self.keepalive(id, &p)? {
                debug!("vpp-api-skip msg-id={id} unsolicited");
            }
        }
    }

    /// A second handle on the session's socket, for a thread that waits
    /// for it to turn readable or hang up (it must never read from it).
    pub fn watch_handle(&self) -> std::io::Result<UnixStream> {
        self.stream.try_clone()
    }

    /// Reads until a message with `context`, answering keepalives and
    /// skipping late replies to earlier (timed-out) requests.
    fn recv_for(
        &mut self,
        context: u32,
        deadline: Instant,
        during: &'static str,
    ) -> Result<(u16, Vec<u8>), VppError> {
        loop {
            let p = self.read_payload(deadline, during)?;
            let id = msg_id(&p).map_err(VppError::Decode)?;
            if self.keepalive(id, &p)? {
                continue;
            }
            let name = self.names.get(&id).map(String::as_str).unwrap_or("?");
            // Context is at offset 2 in replies and details.
            let ctx = Reader::new(&p, "context")
                .take(6)
                .map(|b| u32::from_be_bytes([b[2], b[3], b[4], b[5]]))
                .map_err(VppError::Decode)?;
            if ctx != context {
                debug!("vpp-api-skip msg={name} context={ctx} waiting-for={context}");
                continue;
            }
            return Ok((id, p));
        }
    }

    /// Sends `req`, waits for its reply; a non-zero `retval` is an error.
    pub fn call<Req: Message, Rep: Message>(&mut self, req: Req) -> Result<Rep, VppError> {
        let rep: Rep = self.call_any(req)?;
        match rep.retval().unwrap_or(0) {
            0 => Ok(rep),
            retval => Err(VppError::Retval {
                msg: Req::NAME,
                retval,
            }),
        }
    }

    /// Like [`Client::call`] but hands back replies with any `retval`.
    pub fn call_any<Req: Message, Rep: Message>(&mut self, req: Req) -> Result<Rep, VppError> {
        let context = self.context();
        self.send(req, context)?;
        let deadline = Instant::now() + self.timeout;
        let want = self.id_of::<Rep>()?;
        let (id, p) = self.recv_for(context, deadline, Req::NAME)?;
        if id != want {
            self.broken = true;
            return Err(VppError::Protocol(format!(
                "expected {} for context {context}, got message id {id}",
                Rep::NAME
            )));
        }
        let rep = Rep::decode(&p).map_err(|e| {
            self.broken = true;
            VppError::Decode(e)
        })?;
        let retval = rep.retval().unwrap_or(0);
        // The original's label values, so dashboards keep working.
        self.counters
            .count(Rep::NAME, Direction::Recv, ApiResult::of(retval));
        debug!(
            "vpp-api-recv msg={} context={context} retval={retval}",
            Rep::NAME
        );
        Ok(rep)
    }

    /// Sends a dump and a `control_ping` with the same context and collects
    /// the details until the ping's reply.
    pub fn dump<Req: Message, Det: Message>(&mut self, req: Req) -> Result<Vec<Det>, VppError> {
        let context = self.context();
        // Dump and ping in one write, as vpp_papi sends them back to back.
        let dump = self.encode(req, context)?;
        let ping = self.encode(
            ControlPing {
                client_index: 0,
                context: 0,
            },
            context,
        )?;
        let mut bytes = frame(&dump);
        bytes.extend_from_slice(&frame(&ping));
        debug!(
            "vpp-api-send-multi msg={} context={context} size={}",
            Req::NAME,
            bytes.len()
        );
        if let Err(e) = self.stream.write_all(&bytes) {
            self.broken = true;
            self.counters
                .count(Req::NAME, Direction::Send, ApiResult::Failure);
            return Err(io_err(&self.socket, Req::NAME, e));
        }
        self.counters
            .count(Req::NAME, Direction::Send, ApiResult::Success);
        self.counters
            .count(ControlPing::NAME, Direction::Send, ApiResult::Success);
        let det = self.id_of::<Det>()?;
        let ping = self.id_of::<ControlPingReply>()?;
        let deadline = Instant::now() + self.timeout;
        let mut out = Vec::new();
        loop {
            let (id, p) = match self.recv_for(context, deadline, Req::NAME) {
                Ok(x) => x,
                Err(VppError::Closed(_)) => {
                    return Err(VppError::Closed(format!(
                        "VPP closed the connection in the middle of {} after {} {}",
                        Req::NAME,
                        out.len(),
                        Det::NAME
                    )));
                }
                Err(e) => return Err(e),
            };
            if id == ping {
                self.counters
                    .count(ControlPingReply::NAME, Direction::Recv, ApiResult::Success);
                debug!(
                    "vpp-api-recv-multi msg={} context={context} details={}",
                    Req::NAME,
                    out.len()
                );
                return Ok(out);
            }
            if id != det {
                self.broken = true;
                return Err(VppError::Protocol(format!(
                    "unexpected message id {id} in {}",
                    Req::NAME
                )));
            }
            match Det::decode(&p) {
                Ok(d) => {
                    self.counters
                        .count(Det::NAME, Direction::Recv, ApiResult::Success);
                    out.push(d);
                }
                Err(e) => {
                    self.broken = true;
                    return Err(VppError::Decode(e));
                }
            }
        }
    }

    /// Liveness: a `control_ping` round trip; returns VPP's pid.
    pub fn ping(&mut self) -> Result<u32, VppError> {
        let r: ControlPingReply = self.call(ControlPing {
            client_index: 0,
            context: 0,
        })?;
        Ok(r.vpe_pid)
    }

    /// Which VPP this is.
    pub fn show_version(&mut self) -> Result<VersionInfo, VppError> {
        let r: ShowVersionReply = self.call(ShowVersion {
            client_index: 0,
            context: 0,
        })?;
        Ok(VersionInfo {
            program: r.program.0,
            version: r.version.0,
            build_date: r.build_date.0,
            build_directory: r.build_directory.0,
        })
    }

    /// Runs a CLI command; a failing command is [`VppError::Cli`] with its text.
    pub fn cli(&mut self, cmd: &str) -> Result<String, VppError> {
        let r: CliInbandReply = self.call_any(CliInband {
            client_index: 0,
            context: 0,
            cmd: VarStr(cmd.to_string()),
        })?;
        if r.retval != 0 {
            return Err(VppError::Cli {
                cmd: cmd.to_string(),
                retval: r.retval,
                text: r.reply.0.trim_end().to_string(),
            });
        }
        Ok(r.reply.0)
    }

    /// The FIB entry of `prefix` in table 0 (exact match).
    pub fn route_lookup(&mut self, prefix: Prefix) -> Result<IpRoute, VppError> {
        let r: IpRouteLookupReply = self.call(IpRouteLookup {
            client_index: 0,
            context: 0,
            table_id: 0,
            exact: 1,
            prefix,
        })?;
        Ok(r.route)
    }

    /// Global lb settings.
    pub fn lb_conf_get(&mut self) -> Result<LbConfig, VppError> {
        let r: LbConfGetReply = self.call(LbConfGet {
            client_index: 0,
            context: 0,
        })?;
        Ok(LbConfig {
            ip4_src: r.ip4_src_address,
            ip6_src: r.ip6_src_address,
            sticky_buckets_per_core: r.sticky_buckets_per_core,
            flow_timeout: r.flow_timeout,
        })
    }

    /// Sets the global lb settings.
    pub fn lb_conf(&mut self, c: &LbConfig) -> Result<(), VppError> {
        self.call::<_, LbConfReply>(LbConf {
            client_index: 0,
            context: 0,
            ip4_src_address: c.ip4_src,
            ip6_src_address: c.ip6_src,
            sticky_buckets_per_core: c.sticky_buckets_per_core,
            flow_timeout: c.flow_timeout,
        })
        .map(|_| ())
    }

    /// Adds (`is_del` false) or deletes a VIP.
    pub fn vip_add_del(&mut self, v: &VipSpec, is_del: bool) -> Result<(), VppError> {
        self.call::<_, LbAddDelVipV2Reply>(LbAddDelVipV2 {
            client_index: 0,
            context: 0,
            pfx: v.key.pfx,
            protocol: v.key.protocol,
            port: v.key.port,
            encap: v.encap,
            dscp: 0,
            r#type: 0,
            target_port: 0,
            node_port: 0,
            new_flows_table_length: v.new_flows_table_length,
            src_ip_sticky: v.src_ip_sticky,
            is_del,
        })
        .map(|_| ())
    }

    /// Adds or deletes an AS of `vip`.
    pub fn as_add_del(
        &mut self,
        vip: &LbVip,
        addr: IpAddr,
        weight: u8,
        is_del: bool,
        is_flush: bool,
    ) -> Result<(), VppError> {
        self.call::<_, LbAddDelAsV2Reply>(LbAddDelAsV2 {
            client_index: 0,
            context: 0,
            pfx: vip.pfx,
            protocol: vip.protocol,
            port: vip.port,
            as_address: addr,
            weight,
            is_del,
            is_flush,
        })
        .map(|_| ())
    }

    /// Changes an AS's weight.
    pub fn as_set_weight(
        &mut self,
        vip: &LbVip,
        addr: IpAddr,
        weight: u8,
        is_flush: bool,
    ) -> Result<(), VppError> {
        self.call::<_, LbAsSetWeightReply>(LbAsSetWeight {
            client_index: 0,
            context: 0,
            pfx: vip.pfx,
            protocol: vip.protocol,
            port: vip.port,
            as_address: addr,
            weight,
            is_flush,
        })
        .map(|_| ())
    }

    /// Every in-use VIP (VPP ignores dump filters).
    pub fn vip_dump(&mut self) -> Result<Vec<LbVipDetails>, VppError> {
        self.dump(LbVipDump {
            client_index: 0,
            context: 0,
            pfx: Prefix::any(),
            pfx_matcher: PrefixMatcher::default(),
            protocol: 255,
            port: 0,
        })
    }

    /// Every AS of every VIP, deleted-but-uncollected ones included (flags
    /// bit 0 clear). Unfiltered: VPP's filter never matches IPv4 VIPs.
    pub fn as_dump(&mut self) -> Result<Vec<LbAsV2Details>, VppError> {
        self.dump(LbAsV2Dump {
            client_index: 0,
            context: 0,
            pfx: Prefix::any(),
            protocol: 0,
            port: 0,
        })
    }

    /// Ends the session politely (`sockclnt_delete`); EOF instead of the
    /// reply is fine.
    pub fn close(mut self) -> Result<(), VppError> {
        if self.broken {
            return Ok(());
        }
        let context = self.context();
        let handle = self.handle;
        self.send(
            SockclntDelete {
                client_index: 0,
                context: 0,
                index: handle,
            },
            context,
        )?;
        let deadline = Instant::now() + self.timeout.min(Duration::from_secs(1));
        match self.recv_for(context, deadline, SockclntDelete::NAME) {
            Ok(_) => self.counters.count(
                SockclntDeleteReply::NAME,
                Direction::Recv,
                ApiResult::Success,
            ),
            Err(VppError::Closed(_)) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

/// What identifies and shapes a VIP as maglevd creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VipSpec {
    /// Prefix, protocol (255 = any), port (0 = all).
    pub key: LbVip,
    /// GRE4/GRE6, from the backends' family.
    pub encap: Encap,
    /// Hash new flows on the source address only.
    pub src_ip_sticky: bool,
    /// Buckets of the new-flow table (a power of two).
    pub new_flows_table_length: u32,
}

impl Drop for Client {
    /// Shuts the socket down, so a thread watching it for hang-up (the
    /// reconciler's liveness watch) wakes and ends with the session.
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some((i, id)) = &self.interrupt {
            i.forget(*id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_keys_are_unique() {
        let mut keys: Vec<String> = REQUIRED.iter().map(|(n, c)| name_crc(n, *c)).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), REQUIRED.len());
    }
}
