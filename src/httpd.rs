//! A small, bounded HTTP/1.1 server for `/metrics` and the dashboard: one
//! thread, one `poll(2)` over every connection, nothing a network client
//! can do to grow memory, hold the thread, exhaust threads or panic the
//! process.
//!
//! Why not `tiny_http`: it spawns a thread per connection (a burst under a
//! task limit aborted the daemon on "failed to spawn thread"; 3,000 idle
//! dashboard connections made 2,866 threads), unwraps where accept fails at
//! the fd limit, has no header size limit (an endless header grew the
//! dashboard to 228 MB) and no way to bound how long one slow client holds
//! a serving thread. Serving GET on a few paths needs none of its
//! generality.
//!
//! The bounds ([`Limits`]): at most `max_conns` connections (when full, the
//! oldest one still sending its request is dropped for the newcomer, so a
//! slow-loris crowd cannot lock out a scraper or a browser); a request head
//! of at most `max_head` bytes (431 beyond); a body of at most `max_body`
//! bytes with a `Content-Length` (413 beyond, 411 without a length);
//! `head_timeout` to send the head and `total_timeout` for the whole
//! exchange; one request per connection (`Connection: close`, no
//! pipelining). Accept errors (EMFILE, ENFILE, ENOBUFS) back off and
//! recover instead of ending the listener.
//!
//! A handler answers at once ([`Reply::Now`]) or hands a closure to one of
//! `workers` threads ([`Reply::Later`]) when answering may block (asking
//! another thread, a maglevd); the worker queue is bounded (503 beyond). A
//! response may be a stream ([`Stream`], Server-Sent Events): the server
//! pulls its chunks whenever its [`Waker`] is woken, holds at most
//! `stream_buffer` bytes of it per client, and drops a client that reads
//! nothing for `stream_stall`. Threads: one, plus `workers`, whatever the
//! clients do.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use log::{info, warn};

use crate::wake::{StopFd, Waker};

/// How much a client may ask of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections held at once (event streams included).
    pub max_conns: usize,
    /// Largest request head (request line and headers).
    pub max_head: usize,
    /// Largest request body (0: none accepted).
    pub max_body: usize,
    /// Time to send the request head.
    pub head_timeout: Duration,
    /// Time for the whole exchange (the response included; not streams).
    pub total_timeout: Duration,
    /// Threads that run [`Reply::Later`] (0: run on the server thread).
    pub workers: usize,
    /// Bytes of a stream held for one client before pulling stops.
    pub stream_buffer: usize,
    /// A stream client that takes none of what is pending for this long
    /// is dropped.
    pub stream_stall: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_conns: 128,
            max_head: 8 * 1024,
            max_body: 0,
            head_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(15),
            workers: 0,
            stream_buffer: 64 * 1024,
            stream_stall: Duration::from_secs(30),
        }
    }
}

/// A parsed request: what the handler needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// What follows `?` (empty without one).
    pub query: String,
    /// Header fields in order (names as sent).
    pub headers: Vec<(String, String)>,
    /// The body (at most [`Limits::max_body`]).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter `key` (not percent-decoded).
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query
            .split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }
}

/// One pull of a [`Stream`].
#[derive(Debug, PartialEq, Eq)]
pub enum Pull {
    /// The next chunk.
    Data(Vec<u8>),
    /// Nothing now; the producer wakes the server's [`Waker`] when there is.
    Empty,
    /// The stream is over (the connection closes once it is written).
    End,
}

/// A response body written as it is produced (Server-Sent Events).
pub struct Stream {
    /// The next chunk, called from the server thread; never blocks.
    pub next: Box<dyn FnMut() -> Pull + Send>,
    /// Written when nothing was for this long (`: ping` in SSE).
    pub keepalive: Duration,
    /// What is written then.
    pub keepalive_bytes: &'static [u8],
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("keepalive", &self.keepalive)
            .finish_non_exhaustive()
    }
}

/// What the handler answers.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Extra header lines (`Name: value`).
    pub headers: Vec<String>,
    /// The body (not sent for HEAD); with a stream, its first bytes.
    pub body: Vec<u8>,
    /// The rest of the body, as it comes (no `Content-Length`).
    pub stream: Option<Stream>,
}

impl Response {
    /// A response with `body`.
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body,
            stream: None,
        }
    }

    /// A plain-text response.
    pub fn text(status: u16, body: &str) -> Response {
        Response::new(
            status,
            "text/plain; charset=utf-8",
            body.as_bytes().to_vec(),
        )
    }

    /// Adds a header line.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push(format!("{name}: {value}"));
        self
    }

    fn encode(&self, head_only: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            302 => "Found",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            411 => "Length Required",
            413 => "Content Too Large",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\n",
            self.status, self.content_type,
        );
        if self.stream.is_none() {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str("Connection: close\r\n");
        for h in &self.headers {
            out.push_str(h);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

/// Work for a worker thread; its response goes to the same connection.
pub type Job = Box<dyn FnOnce() -> Response + Send>;

/// What a handler returns.
pub enum Reply {
    /// The response, now.
    Now(Response),
    /// Run this on a worker (it may block), then send its response.
    Later(Job),
}

/// Parses a request head (everything before the blank line).
pub fn parse_head(head: &[u8]) -> Result<Request, &'static str> {
    let text = std::str::from_utf8(head).map_err(|_| "request is not UTF-8")?;
    let mut lines = text.lines();
    let line = lines.next().ok_or("empty request")?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || method.is_empty() {
        return Err("malformed request line");
    }
    let mut headers = Vec::new();
    for l in lines.take_while(|l| !l.is_empty()) {
        let (n, v) = l.split_once(':').ok_or("malformed header line")?;
        if n.is_empty() || n.contains(char::is_whitespace) {
            return Err("malformed header line");
        }
        headers.push((n.to_string(), v.trim().to_string()));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: Vec::new(),
    })
}

/// A listen address as the original wrote them: `:PORT` is every address
/// (`[::]:PORT`, which [`HttpServer::start`] binds dual-stack); anything
/// else is as given.
pub fn every_address(listen: &str) -> std::borrow::Cow<'_, str> {
    match listen.strip_prefix(':') {
        Some(port) => format!("[::]:{port}").into(),
        None => listen.into(),
    }
}

/// Binds `addr`; the IPv6 wildcard `[::]` takes IPv4 too (dual-stack,
/// whatever `net.ipv6.bindv6only` says), and falls back to `0.0.0.0` on a
/// host without IPv6.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, SockaddrIn6, bind, listen, setsockopt, socket,
        sockopt,
    };
    let SocketAddr::V6(v6) = addr else {
        return TcpListener::bind(addr);
    };
    if !v6.ip().is_unspecified() {
        return TcpListener::bind(addr);
    }
    let dual = || -> nix::Result<TcpListener> {
        let fd = socket(
            AddressFamily::Inet6,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
        setsockopt(&fd, sockopt::Ipv6V6Only, &false)?;
        bind(fd.as_raw_fd(), &SockaddrIn6::from(v6))?;
        listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN))?;
        Ok(TcpListener::from(fd))
    };
    match dual() {
        Ok(l) => Ok(l),
        Err(nix::errno::Errno::EAFNOSUPPORT | nix::errno::Errno::EADDRNOTAVAIL) => {
            TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, v6.port()))
        }
        Err(e) => Err(e.into()),
    }
}

/// The request handler (runs on the server thread: must not block; what
/// may block goes in [`Reply::Later`]).
pub type Handler = Box<dyn FnMut(Request) -> Reply + Send>;

/// The running server.
pub struct HttpServer {
    stop: Arc<StopFd>,
    join: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl HttpServer {
    /// Binds `addr` and serves with `handler` on a thread named `name`
    /// (workers `name-w0`...). `waker`: the one stream producers wake
    /// (`None`: a new one).
    pub fn start(
        addr: SocketAddr,
        name: &str,
        limits: Limits,
        handler: Handler,
        waker: Option<Arc<Waker>>,
    ) -> std::io::Result<HttpServer> {
        let ctx = |what: String| {
            move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"))
        };
        let listener = bind(addr).map_err(ctx(format!("cannot listen on {addr}")))?;
        listener
            .set_nonblocking(true)
            .map_err(ctx(format!("cannot listen on {addr}")))?;
        let bound = listener.local_addr()?;
        let stop = Arc::new(StopFd::new().map_err(ctx("stop pipe".into()))?);
        let waker = match waker {
            Some(w) => w,
            None => Arc::new(Waker::new().map_err(ctx("wake pipe".into()))?),
        };
        let (job_tx, job_rx) = bounded::<(u64, Job)>(limits.workers * 8);
        let (done_tx, done_rx) = bounded::<(u64, Response)>(limits.workers * 8 + 8);
        for n in 0..limits.workers {
            let (rx, tx, w) = (job_rx.clone(), done_tx.clone(), Arc::clone(&waker));
            std::thread::Builder::new()
                .name(format!("{name}-w{n}"))
                .stack_size(256 * 1024)
                .spawn(move || {
                    // Ends when the server thread drops the queue.
                    while let Ok((id, job)) = rx.recv() {
                        let r = job();
                        if tx.send((id, r)).is_err() {
                            return;
                        }
                        w.wake();
                    }
                })
                .map_err(ctx(format!("{name} worker thread")))?;
        }
        let s2 = Arc::clone(&stop);
        let lp = Loop {
            listener,
            limits,
            handler,
            conns: Vec::new(),
            next_id: 0,
            jobs: (limits.workers > 0).then_some(job_tx),
            done: done_rx,
            waker,
            backoff_until: None,
            backoff: Duration::ZERO,
            accept_errors: 0,
            name: name.to_string(),
        };
        let join = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut lp = lp;
                lp.run(&s2)
            })
            .map_err(ctx(format!("{name} thread")))?;
        Ok(HttpServer {
            stop,
            join: Some(join),
            addr: bound,
        })
    }

    /// The address bound (a port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving (connections in progress are dropped; a worker busy
    /// with a job ends after it, unwaited).
    pub fn shutdown(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.trigger();
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.halt();
    }
}

enum Phase {
    /// The request so far; `head` once its head is in (the body follows).
    Reading {
        buf: Vec<u8>,
        head: Option<(Request, usize, usize)>,
    },
    /// A worker is answering (the request was a HEAD).
    Waiting(bool),
    Writing(Vec<u8>, usize),
    Streaming(Streaming),
}

struct Streaming {
    out: Vec<u8>,
    pos: usize,
    stream: Stream,
    ended: bool,
    /// Last time a byte was written.
    wrote: Instant,
    /// The socket's send buffer is bounded (done at the first write).
    sized: bool,
}

struct Conn {
    id: u64,
    stream: TcpStream,
    phase: Phase,
    accepted: Instant,
    /// A poll passed with nothing from it yet (evicted before the ones
    /// just accepted, whose request may be on its way).
    seen_silent: bool,
}

struct Loop {
    listener: TcpListener,
    limits: Limits,
    handler: Handler,
    conns: Vec<Conn>,
    next_id: u64,
    jobs: Option<Sender<(u64, Job)>>,
    done: Receiver<(u64, Response)>,
    waker: Arc<Waker>,
    /// Accepting paused until then (after an accept error).
    backoff_until: Option<Instant>,
    backoff: Duration,
    /// Accept errors since the last logged one.
    accept_errors: u64,
    /// The thread's name, the log events' prefix.
    name: String,
}

/// Connections accepted per turn of the loop at most.
const ACCEPT_BATCH: usize = 16;

/// What a connection waits for next; `None`: nothing timed.
fn deadline(l: &Limits, c: &Conn) -> Option<Instant> {
    match &c.phase {
        Phase::Reading { head: None, .. } => Some(c.accepted + l.head_timeout),
        Phase::Reading { .. } | Phase::Waiting(_) | Phase::Writing(..) => {
            Some(c.accepted + l.total_timeout)
        }
        Phase::Streaming(s) if s.pos < s.out.len() => Some(s.wrote + l.stream_stall),
        Phase::Streaming(s) => Some(s.wrote + s.stream.keepalive),
    }
}

impl Loop {
    fn run(&mut self, stop: &StopFd) {
        use nix::libc::{POLLIN, POLLOUT, pollfd};
        let mut fds: Vec<pollfd> = Vec::new();
        loop {
            let now = Instant::now();
            if self.backoff_until.is_some_and(|t| now >= t) {
                self.backoff_until = None;
            }
            let accepting = self.backoff_until.is_none();
            fds.clear();
            for fd in [
                stop.raw_fd(),
                self.waker.raw_fd(),
                if accepting {
                    self.listener.as_raw_fd()
                } else {
                    -1
                },
            ] {
                fds.push(pollfd {
                    fd,
                    events: POLLIN,
                    revents: 0,
                });
            }
            for c in &self.conns {
                fds.push(pollfd {
                    fd: c.stream.as_raw_fd(),
                    events: match &c.phase {
                        Phase::Reading { .. } => POLLIN,
                        Phase::Waiting(_) => 0,
                        Phase::Writing(..) => POLLOUT,
                        Phase::Streaming(s) if s.pos < s.out.len() => POLLIN | POLLOUT,
                        Phase::Streaming(_) => POLLIN,
                    },
                    revents: 0,
                });
            }
            let next = self
                .conns
                .iter()
                .filter_map(|c| deadline(&self.limits, c))
                .chain(self.backoff_until)
                .min();
            let timeout_ms: i32 = next.map_or(-1, |t| {
                t.saturating_duration_since(now)
                    .as_micros()
                    .div_ceil(1000)
                    .min(60_000) as i32
            });
            // SAFETY: `fds` is a valid, exclusively borrowed array of
            // pollfd whose descriptors stay open during the call.
            let n = unsafe {
                nix::libc::poll(fds.as_mut_ptr(), fds.len() as nix::libc::nfds_t, timeout_ms)
            };
            if stop.is_set() {
                return;
            }
            if n < 0 {
                continue; // EINTR; nothing else is expected here
            }
            let now = Instant::now();
            let woken = fds[1].revents != 0;
            if woken {
                self.waker.drain();
            }
            // Connections first (indexes match `fds[3..]`), newest last.
            let ready: Vec<i16> = fds[3..].iter().map(|p| p.revents).collect();
            let mut keep = Vec::with_capacity(self.conns.len());
            for (c, r) in std::mem::take(&mut self.conns).into_iter().zip(ready) {
                let c = if r != 0 || (woken && matches!(c.phase, Phase::Streaming(_))) {
                    self.progress(c, now, r)
                } else {
                    let mut c = c;
                    c.seen_silent = true;
                    Some(c)
                };
                if let Some(c) = c.and_then(|c| self.timed(c, now)) {
                    keep.push(c);
                }
            }
            self.conns = keep;
            if woken {
                self.collect_done(now);
            }
            if fds[2].revents != 0 {
                self.accept_all(now);
            }
        }
    }

    /// Applies the connection's deadline: `None` when it is dropped.
    fn timed(&mut self, mut c: Conn, now: Instant) -> Option<Conn> {
        let Some(d) = deadline(&self.limits, &c) else {
            return Some(c);
        };
        if now < d {
            return Some(c);
        }
        match &mut c.phase {
            Phase::Reading { .. } => {
                // Best effort; a slow client gets no more time.
                let mut s = &c.stream;
                let _ = s.write(&Response::text(408, "request timeout\n").encode(false));
                None
            }
            Phase::Streaming(s) if s.pos >= s.out.len() => {
                // Quiet: the keepalive is due.
                s.out.clear();
                s.pos = 0;
                s.out.extend_from_slice(s.stream.keepalive_bytes);
                s.wrote = now;
                self.flush_stream(c, now)
            }
            _ => None,
        }
    }

    /// Hands responses from workers to their connections.
    fn collect_done(&mut self, now: Instant) {
        while let Ok((id, resp)) = self.done.try_recv() {
            let Some(i) = self.conns.iter().position(|c| c.id == id) else {
                continue; // the client left (or timed out) meanwhile
            };
            let mut c = self.conns.remove(i);
            let head_only = matches!(c.phase, Phase::Waiting(true));
            c.phase = start_response(resp, head_only, now);
            if let Some(c) = self.write_some(c, now) {
                self.conns.push(c);
            }
        }
    }

    fn accept_all(&mut self, now: Instant) {
        // A batch at a time: connections accepted earlier get their
        // request read before a crowd of newer ones can evict them.
        for _ in 0..ACCEPT_BATCH {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.accept_errors > 0 {
                        info!(
                            "{}-accept-recovered errors={}",
                            self.name, self.accept_errors
                        );
                        self.accept_errors = 0;
                    }
                    self.backoff = Duration::ZERO;
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    if self.conns.len() >= self.limits.max_conns {
                        // Make room: drop the oldest still sending its
                        // request (a scraper or a browser sends its request
                        // at once), one already seen silent first.
                        let reading = |c: &Conn| matches!(c.phase, Phase::Reading { .. });
                        let victim = self
                            .conns
                            .iter()
                            .position(|c| reading(c) && c.seen_silent)
                            .or_else(|| self.conns.iter().position(reading));
                        match victim {
                            Some(i) => {
                                self.conns.remove(i);
                            }
                            None => {
                                let mut s = &stream;
                                let _ = s.write(
                                    &Response::text(503, "busy\n")
                                        .with_header("Retry-After", "1")
                                        .encode(false),
                                );
                                continue;
                            }
                        }
                    }
                    self.next_id += 1;
                    self.conns.push(Conn {
                        id: self.next_id,
                        stream,
                        phase: Phase::Reading {
                            buf: Vec::new(),
                            head: None,
                        },
                        accepted: now,
                        seen_silent: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM: pause accepting,
                    // doubling up to a second, and come back.
                    self.backoff =
                        (self.backoff * 2).clamp(Duration::from_millis(50), Duration::from_secs(1));
                    self.backoff_until = Some(now + self.backoff);
                    if self.accept_errors == 0 {
                        warn!(
                            "{}-accept-failed error={e} retry-in-ms={}",
                            self.name,
                            self.backoff.as_millis()
                        );
                    }
                    self.accept_errors += 1;
                    return;
                }
            }
        }
    }

    /// Reads or writes what the socket allows; `None` when done.
    fn progress(&mut self, mut c: Conn, now: Instant, revents: i16) -> Option<Conn> {
        match &mut c.phase {
            Phase::Reading { .. } => self.read_request(c, now),
            Phase::Waiting(_) => {
                // Only an error or hang-up wakes a waiting connection.
                (revents & (nix::libc::POLLERR | nix::libc::POLLHUP) == 0).then_some(c)
            }
            Phase::Writing(..) => self.write_some(c, now),
            Phase::Streaming(_) => {
                if revents & nix::libc::POLLIN != 0 {
                    // A stream client has nothing to say: its end of the
                    // connection, or bytes to discard.
                    let mut chunk = [0u8; 512];
                    match c.stream.read(&mut chunk) {
                        Ok(0) => return None,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => return None,
                    }
                }
                if revents & (nix::libc::POLLERR | nix::libc::POLLHUP) != 0 {
                    return None;
                }
                self.flush_stream(c, now)
            }
        }
    }

    fn read_request(&mut self, mut c: Conn, now: Instant) -> Option<Conn> {
        let Phase::Reading { buf, head } = &mut c.phase else {
            return Some(c);
        };
        let mut chunk = [0u8; 2048];
        let error = |status: u16, why: &str| {
            Phase::Writing(Response::text(status, &format!("{why}\n")).encode(false), 0)
        };
        loop {
            match c.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => {
                    let start = buf.len().saturating_sub(3);
                    buf.extend_from_slice(&chunk[..n]);
                    if head.is_none() {
                        if let Some(end) = find_head_end(&buf[start..]) {
                            let end = start + end;
                            let req = match parse_head(&buf[..end]) {
                                Ok(r) => r,
                                Err(why) => {
                                    c.phase = error(400, why);
                                    break;
                                }
                            };
                            let length = match body_length(&req) {
                                Ok(l) => l,
                                Err(status) => {
                                    let why = if status == 411 {
                                        "a body needs a Content-Length"
                                    } else {
                                        "malformed Content-Length"
                                    };
                                    c.phase = error(status, why);
                                    break;
                                }
                            };
                            if length > self.limits.max_body {
                                c.phase = error(413, "request body too large");
                                break;
                            }
                            if req
                                .header("Expect")
                                .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
                            {
                                let mut s = &c.stream;
                                let _ = s.write(b"HTTP/1.1 100 Continue\r\n\r\n");
                            }
                            *head = Some((req, end, length));
                        } else if buf.len() > self.limits.max_head {
                            c.phase = error(431, "request head too large");
                            break;
                        }
                    }
                    if let Some((_, end, length)) = head {
                        if buf.len() >= *end + *length {
                            let (mut req, end, length) = head.take().unwrap();
                            req.body = buf[end..end + length].to_vec();
                            let head_only = req.method == "HEAD";
                            c.phase = self.dispatch(c.id, req, head_only, now);
                            break;
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(c),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        self.write_some(c, now)
    }

    /// Runs the handler: a response to write, or a worker's job.
    fn dispatch(&mut self, id: u64, req: Request, head_only: bool, now: Instant) -> Phase {
        match (self.handler)(req) {
            Reply::Now(r) => start_response(r, head_only, now),
            Reply::Later(job) => match &self.jobs {
                None => start_response(job(), head_only, now),
                Some(q) => match q.try_send((id, job)) {
                    Ok(()) => Phase::Waiting(head_only),
                    Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => start_response(
                        Response::text(503, "busy\n").with_header("Retry-After", "1"),
                        false,
                        now,
                    ),
                },
            },
        }
    }

    fn write_some(&mut self, mut c: Conn, now: Instant) -> Option<Conn> {
        if matches!(c.phase, Phase::Streaming(_)) {
            return self.flush_stream(c, now);
        }
        let Phase::Writing(out, pos) = &mut c.phase else {
            return Some(c);
        };
        while *pos < out.len() {
            match c.stream.write(&out[*pos..]) {
                Ok(0) => return None,
                Ok(n) => *pos += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(c),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        let _ = c.stream.shutdown(std::net::Shutdown::Write);
        None
    }

    /// Pulls a stream's chunks (up to the buffer) and writes what the
    /// socket takes; `None` once it ended or its client is gone.
    fn flush_stream(&mut self, mut c: Conn, now: Instant) -> Option<Conn> {
        let cap = self.limits.stream_buffer;
        let Phase::Streaming(s) = &mut c.phase else {
            return Some(c);
        };
        if !s.sized {
            // The kernel would otherwise grow a stalled client's send
            // buffer to megabytes (tcp_wmem); a stream needs little.
            let _ = nix::sys::socket::setsockopt(
                &c.stream,
                nix::sys::socket::sockopt::SndBuf,
                &cap.max(4096),
            );
            s.sized = true;
        }
        loop {
            if s.pos == s.out.len() {
                s.out.clear();
                s.pos = 0;
            }
            while !s.ended && s.out.len() - s.pos < cap {
                match (s.stream.next)() {
                    Pull::Data(d) => s.out.extend_from_slice(&d),
                    Pull::Empty => break,
                    Pull::End => s.ended = true,
                }
            }
            if s.pos == s.out.len() {
                if s.ended {
                    let _ = c.stream.shutdown(std::net::Shutdown::Write);
                    return None;
                }
                return Some(c);
            }
            match c.stream.write(&s.out[s.pos..]) {
                Ok(0) => return None,
                Ok(n) => {
                    s.pos += n;
                    s.wrote = now;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(c),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }
}

/// The phase that writes `r`.
fn start_response(mut r: Response, head_only: bool, now: Instant) -> Phase {
    let bytes = r.encode(head_only);
    match r.stream.take() {
        Some(stream) if !head_only => Phase::Streaming(Streaming {
            out: bytes,
            pos: 0,
            stream,
            ended: false,
            wrote: now,
            sized: false,
        }),
        _ => Phase::Writing(bytes, 0),
    }
}

/// The body length a request announces: 0 without a body, `Err(411)` for
/// a body without a length (chunked), `Err(400)` for a malformed one.
fn body_length(req: &Request) -> Result<usize, u16> {
    if req.header("Transfer-Encoding").is_some() {
        return Err(411);
    }
    match req.header("Content-Length") {
        None => Ok(0),
        Some(v) => v.parse::<usize>().map_err(|_| 400),
    }
}

/// Where the blank line ending a request head is (the index after it).
fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| b.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        let r = parse_head(b"GET /metrics?x=1&y=2 HTTP/1.1\r\nHost: a\r\nX-A:  b \r\n").unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/metrics"));
        assert_eq!(r.query, "x=1&y=2");
        assert_eq!(r.query_param("y"), Some("2"));
        assert_eq!(r.query_param("x"), Some("1"));
        assert_eq!(r.query_param("z"), None);
        assert_eq!(r.header("host"), Some("a"));
        assert_eq!(r.header("x-a"), Some("b"));
        assert!(parse_head(b"GET /metrics\r\n").is_err());
        assert!(parse_head(b"GET / HTTP/2 extra\r\n").is_err());
        assert!(parse_head(b"GET / HTTP/1.1\r\nno colon\r\n").is_err());
        assert!(parse_head(b"\xff\xfe").is_err());
        assert!(parse_head(b"").is_err());
    }

    #[test]
    fn head_end_across_reads() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\n"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn bodies_need_a_length_within_the_limit() {
        let req = |h: &[u8]| parse_head(h).unwrap();
        assert_eq!(body_length(&req(b"GET / HTTP/1.1\r\n")), Ok(0));
        assert_eq!(
            body_length(&req(b"POST / HTTP/1.1\r\nContent-Length: 12\r\n")),
            Ok(12)
        );
        assert_eq!(
            body_length(&req(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n")),
            Err(411)
        );
        assert_eq!(
            body_length(&req(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n")),
            Err(400)
        );
    }

    #[test]
    fn the_ipv6_wildcard_serves_ipv4_too() {
        let l = bind("[::]:0".parse().unwrap()).unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok(), "IPv4");
        if TcpStream::connect(("::1", port)).is_err() {
            // A host without IPv6 on loopback: the fallback is IPv4 only.
            assert!(
                l.local_addr().unwrap().is_ipv4()
                    || std::fs::metadata("/proc/net/if_inet6").is_err()
            );
        }
    }

    fn get(addr: SocketAddr, req: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(req).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    fn echo(limits: Limits) -> HttpServer {
        HttpServer::start(
            "127.0.0.1:0".parse().unwrap(),
            "httpd-test",
            limits,
            Box::new(|r: Request| {
                let body = format!(
                    "{} {} {}\n",
                    r.method,
                    r.path,
                    String::from_utf8_lossy(&r.body)
                );
                if r.path == "/slow" {
                    Reply::Later(Box::new(move || {
                        std::thread::sleep(Duration::from_millis(300));
                        Response::text(200, &body)
                    }))
                } else {
                    Reply::Now(Response::text(200, &body))
                }
            }),
            None,
        )
        .unwrap()
    }

    #[test]
    fn serves_and_bounds_what_clients_send() {
        let limits = Limits {
            max_conns: 4,
            max_head: 256,
            max_body: 64,
            head_timeout: Duration::from_millis(300),
            total_timeout: Duration::from_secs(2),
            ..Limits::default()
        };
        let srv = echo(limits);
        let addr = srv.local_addr();
        let ok = get(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nGET /metrics \n"), "{ok}");
        let head = get(addr, b"HEAD / HTTP/1.1\r\n\r\n");
        assert!(
            head.contains("Content-Length: 8\r\n") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        // A body within the limit is read whole, in pieces or not.
        let post = get(addr, b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
        assert!(post.ends_with("POST /a hello\n"), "{post}");
        let big = get(addr, b"POST /a HTTP/1.1\r\nContent-Length: 65\r\n\r\n");
        assert!(big.starts_with("HTTP/1.1 413"), "{big}");
        let chunked = get(
            addr,
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert!(chunked.starts_with("HTTP/1.1 411"), "{chunked}");
        // A head that never ends is cut at the limit.
        let big = get(addr, &[b'a'; 4096]);
        assert!(big.starts_with("HTTP/1.1 431"), "{big}");
        // Silent clients fill every slot; a scraper still gets through
        // (the oldest silent one is dropped for it).
        let silent: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(50));
        let ok = get(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        // A silent client is timed out with 408.
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 408"), "{out:?}");
        drop(silent);
        srv.shutdown();
    }

    fn threads() -> usize {
        std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
    }

    #[test]
    fn blocking_answers_run_on_a_fixed_pool_and_others_pass_them() {
        let before = threads();
        let srv = echo(Limits {
            workers: 2,
            ..Limits::default()
        });
        let addr = srv.local_addr();
        let started = threads();
        assert!(
            started <= before + 3 || before == 0,
            "{before} -> {started}"
        );
        // Twelve slow answers at once: two workers, a queue of 16.
        let slow: Vec<_> = (0..12)
            .map(|_| std::thread::spawn(move || get(addr, b"GET /slow HTTP/1.1\r\n\r\n")))
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        // A quick one is not held up behind them.
        let t0 = Instant::now();
        let ok = get(addr, b"GET /quick HTTP/1.1\r\n\r\n");
        assert!(ok.ends_with("GET /quick \n"), "{ok}");
        assert!(
            t0.elapsed() < Duration::from_millis(250),
            "{:?}",
            t0.elapsed()
        );
        for t in slow {
            let r = t.join().unwrap();
            assert!(r.ends_with("GET /slow \n"), "{r}");
        }
        let head = get(addr, b"HEAD /slow HTTP/1.1\r\n\r\n");
        assert!(head.ends_with("\r\n\r\n"), "HEAD gets no body: {head}");
        srv.shutdown();
    }

    #[test]
    fn no_answer_is_lost_between_wakes() {
        // Quick jobs on two workers from eight clients at once, while
        // another thread wakes the server all the time (as the dashboard's
        // events do): every answer reaches its client.
        let srv = HttpServer::start(
            "127.0.0.1:0".parse().unwrap(),
            "httpd-wakes",
            Limits {
                workers: 2,
                ..Limits::default()
            },
            Box::new(|r: Request| {
                let path = r.path.clone();
                Reply::Later(Box::new(move || Response::text(200, &path)))
            }),
            None,
        )
        .unwrap();
        let addr = srv.local_addr();
        let clients: Vec<_> = (0..8)
            .map(|c| {
                std::thread::spawn(move || {
                    for i in 0..60 {
                        let mut s = TcpStream::connect(addr).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        s.write_all(format!("GET /{c}/{i} HTTP/1.1\r\n\r\n").as_bytes())
                            .unwrap();
                        let mut out = String::new();
                        let _ = s.read_to_string(&mut out);
                        assert!(
                            out.ends_with(&format!("/{c}/{i}")),
                            "client {c} try {i}: {out:?}"
                        );
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        srv.shutdown();
    }

    #[test]
    fn a_full_worker_queue_answers_503() {
        let srv = echo(Limits {
            workers: 1,
            ..Limits::default()
        });
        let addr = srv.local_addr();
        // 1 running + 8 queued; the rest are refused at once.
        let slow: Vec<_> = (0..16)
            .map(|_| std::thread::spawn(move || get(addr, b"GET /slow HTTP/1.1\r\n\r\n")))
            .collect();
        let answers: Vec<String> = slow.into_iter().map(|t| t.join().unwrap()).collect();
        let busy = answers
            .iter()
            .filter(|a| a.starts_with("HTTP/1.1 503"))
            .count();
        assert!(busy >= 1, "{answers:?}");
        assert!(
            answers
                .iter()
                .filter(|a| a.starts_with("HTTP/1.1 503"))
                .all(|a| a.contains("Retry-After: 1\r\n"))
        );
        srv.shutdown();
    }

    /// A stream fed from a channel, as the dashboard's events are.
    fn streaming(limits: Limits) -> (HttpServer, Sender<Vec<u8>>, Arc<Waker>) {
        let waker = Arc::new(Waker::new().unwrap());
        let (tx, rx) = bounded::<Vec<u8>>(1024);
        let rx = std::sync::Mutex::new(Some(rx));
        let srv = HttpServer::start(
            "127.0.0.1:0".parse().unwrap(),
            "httpd-stream",
            limits,
            Box::new(move |_r: Request| {
                let Some(rx) = rx.lock().unwrap().take() else {
                    return Reply::Now(Response::text(503, "one stream\n"));
                };
                let mut r = Response::new(200, "text/event-stream", b"retry: 1\n\n".to_vec());
                r.stream = Some(Stream {
                    next: Box::new(move || match rx.try_recv() {
                        Ok(d) => Pull::Data(d),
                        Err(crossbeam_channel::TryRecvError::Empty) => Pull::Empty,
                        Err(_) => Pull::End,
                    }),
                    keepalive: Duration::from_millis(200),
                    keepalive_bytes: b": ping\n\n",
                });
                Reply::Now(r)
            }),
            Some(Arc::clone(&waker)),
        )
        .unwrap();
        (srv, tx, waker)
    }

    #[test]
    fn streams_are_written_as_woken_pinged_and_ended() {
        let (srv, tx, waker) = streaming(Limits::default());
        let mut s = TcpStream::connect(srv.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(b"GET /events HTTP/1.1\r\n\r\n").unwrap();
        let mut got = Vec::new();
        let until = |want: &str, s: &mut TcpStream, got: &mut Vec<u8>| {
            while !String::from_utf8_lossy(got).contains(want) {
                let mut b = [0u8; 1024];
                let n = s.read(&mut b).unwrap();
                assert!(
                    n > 0,
                    "closed before {want:?}: {:?}",
                    String::from_utf8_lossy(got)
                );
                got.extend_from_slice(&b[..n]);
            }
        };
        until("retry: 1\n\n", &mut s, &mut got);
        let text = String::from_utf8_lossy(&got).into_owned();
        assert!(!text.contains("Content-Length"), "{text}");
        tx.send(b"data: one\n\n".to_vec()).unwrap();
        waker.wake();
        until("data: one\n\n", &mut s, &mut got);
        until(": ping\n\n", &mut s, &mut got);
        // The producer gone, the stream ends: the server closes it.
        drop(tx);
        waker.wake();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("closed by the server");
        srv.shutdown();
    }

    #[test]
    fn a_stream_client_that_reads_nothing_is_dropped_and_holds_little() {
        let (srv, tx, waker) = streaming(Limits {
            stream_buffer: 16 * 1024,
            stream_stall: Duration::from_millis(300),
            ..Limits::default()
        });
        let mut s = TcpStream::connect(srv.local_addr()).unwrap();
        s.write_all(b"GET /events HTTP/1.1\r\n\r\n").unwrap();
        // 8 MB offered, never read: the server takes 16 KB at a time and
        // leaves the rest in the channel.
        let chunk = vec![b'x'; 8 * 1024];
        let mut sent = 0;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(3) {
            match tx.try_send(chunk.clone()) {
                Ok(()) => sent += 1,
                Err(TrySendError::Full(_)) => std::thread::sleep(Duration::from_millis(10)),
                Err(TrySendError::Disconnected(_)) => break,
            }
            waker.wake();
        }
        // Dropped after the stall: the channel's receiver is gone, with
        // chunks still in it (the server stopped pulling once the socket
        // and one stream buffer were full: what it took is the kernel's
        // socket buffers plus 16 KB, never the whole offer).
        let left = tx.len();
        assert!(
            matches!(
                tx.try_send(chunk.clone()),
                Err(TrySendError::Disconnected(_))
            ),
            "the stalled client was not dropped"
        );
        assert!(
            left > 0,
            "all {sent} chunks were pulled for a client that reads nothing"
        );
        assert!((sent - left) * 8 < 1024, "{} KB taken", (sent - left) * 8);
        eprintln!("a client that reads nothing took {} KB", (sent - left) * 8);
        srv.shutdown();
    }
}
