//! A small, bounded HTTP/1.1 responder for `/metrics`: one thread, one
//! `poll(2)` over every connection, nothing a network client can do to
//! grow memory, hold the thread, exhaust threads or panic the process.
//!
//! Why not `tiny_http`: it spawns a thread per connection (a burst under a
//! task limit aborted the daemon on "failed to spawn thread"), unwraps
//! where accept fails at the fd limit, has no header size limit and no way
//! to bound how long one slow client holds the single serving thread.
//! Serving GET on a couple of paths needs none of its generality.
//!
//! The bounds ([`Limits`]): at most `max_conns` connections (when full, the
//! oldest one still sending its request is dropped for the newcomer, so a
//! slow-loris crowd cannot lock out a scraper); a request head of at most
//! `max_head` bytes (431 beyond); `head_timeout` to send it and
//! `total_timeout` for the whole exchange; one request per connection
//! (`Connection: close`, no pipelining). Accept errors (EMFILE, ENFILE,
//! ENOBUFS) back off and recover instead of ending the listener.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::wake::StopFd;

/// How much a client may ask of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections held at once.
    pub max_conns: usize,
    /// Largest request head (request line and headers).
    pub max_head: usize,
    /// Time to send the request head.
    pub head_timeout: Duration,
    /// Time for the whole exchange (the response included).
    pub total_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_conns: 128,
            max_head: 8 * 1024,
            head_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(15),
        }
    }
}

/// A parsed request: what the handler needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The path without the query.
    pub path: String,
}

/// What the handler answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Extra header lines (`Name: value`).
    pub headers: Vec<String>,
    /// The body (not sent for HEAD).
    pub body: Vec<u8>,
}

impl Response {
    /// A plain-text response.
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn encode(&self, head_only: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
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

/// Parses a request head (everything before the blank line).
pub fn parse_head(head: &[u8]) -> Result<Request, &'static str> {
    let text = std::str::from_utf8(head).map_err(|_| "request is not UTF-8")?;
    let line = text.lines().next().ok_or("empty request")?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || method.is_empty() {
        return Err("malformed request line");
    }
    Ok(Request {
        method: method.to_string(),
        path: target.split('?').next().unwrap_or("").to_string(),
    })
}

/// Binds `addr`; the IPv6 wildcard `[::]` takes IPv4 too (dual-stack,
/// whatever `net.ipv6.bindv6only` says), and falls back to `0.0.0.0` on a
/// host without IPv6.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
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

/// The request handler.
pub type Handler = Box<dyn FnMut(&Request) -> Response + Send>;

/// The running server.
pub struct HttpServer {
    stop: Arc<StopFd>,
    join: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` and serves with `handler` on a thread named `name`.
    pub fn start(
        addr: SocketAddr,
        name: &str,
        limits: Limits,
        handler: Handler,
    ) -> std::io::Result<HttpServer> {
        let ctx = |what: String| {
            move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"))
        };
        let listener = bind(addr).map_err(ctx(format!("cannot listen on {addr}")))?;
        listener
            .set_nonblocking(true)
            .map_err(ctx(format!("cannot listen on {addr}")))?;
        let stop = Arc::new(StopFd::new().map_err(ctx("stop pipe".into()))?);
        let s2 = Arc::clone(&stop);
        let join = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || Loop::new(listener, limits, handler).run(&s2))
            .map_err(ctx(format!("{name} thread")))?;
        Ok(HttpServer {
            stop,
            join: Some(join),
        })
    }

    /// Stops serving (connections in progress are dropped).
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
    Reading(Vec<u8>),
    Writing(Vec<u8>, usize),
}

struct Conn {
    stream: TcpStream,
    phase: Phase,
    accepted: Instant,
}

struct Loop {
    listener: TcpListener,
    limits: Limits,
    handler: Handler,
    conns: Vec<Conn>,
    /// Accepting paused until then (after an accept error).
    backoff_until: Option<Instant>,
    backoff: Duration,
    /// Accept errors since the last logged one.
    accept_errors: u64,
}

impl Loop {
    fn new(listener: TcpListener, limits: Limits, handler: Handler) -> Loop {
        Loop {
            listener,
            limits,
            handler,
            conns: Vec::new(),
            backoff_until: None,
            backoff: Duration::ZERO,
            accept_errors: 0,
        }
    }

    fn deadline(&self, c: &Conn) -> Instant {
        match c.phase {
            Phase::Reading(_) => c.accepted + self.limits.head_timeout,
            Phase::Writing(..) => c.accepted + self.limits.total_timeout,
        }
    }

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
            fds.push(pollfd {
                fd: stop.raw_fd(),
                events: POLLIN,
                revents: 0,
            });
            fds.push(pollfd {
                fd: if accepting {
                    self.listener.as_raw_fd()
                } else {
                    -1
                },
                events: POLLIN,
                revents: 0,
            });
            for c in &self.conns {
                fds.push(pollfd {
                    fd: c.stream.as_raw_fd(),
                    events: match c.phase {
                        Phase::Reading(_) => POLLIN,
                        Phase::Writing(..) => POLLOUT,
                    },
                    revents: 0,
                });
            }
            let next = self
                .conns
                .iter()
                .map(|c| self.deadline(c))
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
            // Connections first (indexes match `fds[2..]`), newest last.
            let ready: Vec<bool> = fds[2..].iter().map(|p| p.revents != 0).collect();
            let mut keep = Vec::with_capacity(self.conns.len());
            for (c, r) in std::mem::take(&mut self.conns).into_iter().zip(ready) {
                let c = if r { self.progress(c) } else { Some(c) };
                if let Some(c) = c {
                    if now < self.deadline(&c) {
                        keep.push(c);
                    } else if matches!(c.phase, Phase::Reading(_)) {
                        // Best effort; a slow client gets no more time.
                        let mut s = &c.stream;
                        let _ = s.write(&Response::text(408, "request timeout\n").encode(false));
                    }
                }
            }
            self.conns = keep;
            if fds[1].revents != 0 {
                self.accept_all(now);
            }
        }
    }

    fn accept_all(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.accept_errors > 0 {
                        info!("metrics-accept-recovered errors={}", self.accept_errors);
                        self.accept_errors = 0;
                    }
                    self.backoff = Duration::ZERO;
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    if self.conns.len() >= self.limits.max_conns {
                        // Make room: drop the oldest still sending its
                        // request (a scraper sends its request at once).
                        match self
                            .conns
                            .iter()
                            .position(|c| matches!(c.phase, Phase::Reading(_)))
                        {
                            Some(i) => {
                                self.conns.remove(i);
                            }
                            None => {
                                let mut s = &stream;
                                let _ = s.write(&Response::text(503, "busy\n").encode(false));
                                continue;
                            }
                        }
                    }
                    self.conns.push(Conn {
                        stream,
                        phase: Phase::Reading(Vec::new()),
                        accepted: now,
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
                            "metrics-accept-failed error={e} retry-in-ms={}",
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
    fn progress(&mut self, mut c: Conn) -> Option<Conn> {
        match &mut c.phase {
            Phase::Reading(buf) => {
                let mut chunk = [0u8; 2048];
                loop {
                    match c.stream.read(&mut chunk) {
                        Ok(0) => return None,
                        Ok(n) => {
                            let start = buf.len().saturating_sub(3);
                            buf.extend_from_slice(&chunk[..n]);
                            if let Some(end) = find_head_end(&buf[start..]) {
                                let head = &buf[..start + end];
                                let resp = match parse_head(head) {
                                    Ok(req) => {
                                        let head_only = req.method == "HEAD";
                                        (self.handler)(&req).encode(head_only)
                                    }
                                    Err(why) => Response::text(400, why).encode(false),
                                };
                                c.phase = Phase::Writing(resp, 0);
                                break;
                            }
                            if buf.len() > self.limits.max_head {
                                let r = Response::text(431, "request head too large\n");
                                c.phase = Phase::Writing(r.encode(false), 0);
                                break;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(c),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => return None,
                    }
                }
                self.write_some(c)
            }
            Phase::Writing(..) => self.write_some(c),
        }
    }

    fn write_some(&mut self, mut c: Conn) -> Option<Conn> {
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
        assert_eq!(
            parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n"),
            Ok(Request {
                method: "GET".into(),
                path: "/metrics".into()
            })
        );
        assert!(parse_head(b"GET /metrics\r\n").is_err());
        assert!(parse_head(b"GET / HTTP/2 extra\r\n").is_err());
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

    #[test]
    fn serves_and_bounds_what_clients_send() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let probe = TcpListener::bind(addr).unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let limits = Limits {
            max_conns: 4,
            max_head: 256,
            head_timeout: Duration::from_millis(300),
            total_timeout: Duration::from_secs(2),
        };
        let srv = HttpServer::start(
            addr,
            "httpd-test",
            limits,
            Box::new(|r: &Request| Response::text(200, &format!("{} {}\n", r.method, r.path))),
        )
        .unwrap();
        let ok = get(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nGET /metrics\n"), "{ok}");
        let head = get(addr, b"HEAD / HTTP/1.1\r\n\r\n");
        assert!(
            head.contains("Content-Length: 7\r\n") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
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
}
