//! One VIP's prober: a blocking client on its own thread, so a VIP that
//! hangs only ever delays itself. HTTP(S) VIPs get `GET --uri`, reading
//! the status line and the `--header` that names the backend; TCP VIPs a
//! connect. Every step is bounded by `--timeout`.

use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::stats::{Answer, ErrorKind, Failure, Sample};
use super::target::{Kind, Target};
use crate::probe::http::{HEAD_CAP, find_head_end, parse_status_line};
use crate::probe::schedule::{Jitter, jittered};

/// How every VIP is probed (the command line).
#[derive(Debug, Clone)]
pub struct Options {
    /// Time between probe starts (±10 %).
    pub interval: Duration,
    /// Bound on connect plus answer.
    pub timeout: Duration,
    /// `Host:` header (default: the VIP).
    pub host: Option<String>,
    /// Request path.
    pub uri: String,
    /// The response header whose value names the backend.
    pub header: String,
    /// Skip certificate verification.
    pub insecure: bool,
    /// Reuse connections (off: every probe is a new flow, hashed afresh).
    pub keepalive: bool,
}

enum Conn {
    Plain(TcpStream),
    #[cfg(feature = "https")]
    Tls(Box<openssl::ssl::SslStream<TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            #[cfg(feature = "https")]
            Conn::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            #[cfg(feature = "https")]
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            #[cfg(feature = "https")]
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn fail(kind: ErrorKind, detail: impl Into<String>) -> Failure {
    Failure {
        kind,
        detail: detail.into(),
    }
}

fn io_fail(what: &str, e: &std::io::Error) -> Failure {
    match e.kind() {
        IoKind::WouldBlock | IoKind::TimedOut => {
            fail(ErrorKind::Timeout, format!("{what} timed out"))
        }
        _ => fail(ErrorKind::NetErr, format!("{what}: {e}")),
    }
}

/// The probing state of one VIP (its kept-alive connection, its TLS
/// context).
pub struct Prober {
    target: Target,
    opts: Arc<Options>,
    conn: Option<Conn>,
    request: Vec<u8>,
    #[cfg(feature = "https")]
    tls: Option<Result<crate::probe::tls::TlsContext, String>>,
}

impl Prober {
    /// A prober of `target`.
    pub fn new(target: Target, opts: Arc<Options>) -> Prober {
        let request = request(&target, &opts);
        Prober {
            target,
            opts,
            conn: None,
            request,
            #[cfg(feature = "https")]
            tls: None,
        }
    }

    /// One probe, within `--timeout`.
    pub fn probe(&mut self) -> Sample {
        let start = Instant::now();
        let deadline = start + self.opts.timeout;
        let result = match self.target.kind {
            Kind::Tcp => self.connect(deadline).map(|_| Answer {
                status: "connected".into(),
                backend: None,
            }),
            Kind::Http | Kind::Https => {
                let reused = self.conn.is_some();
                match self.exchange(deadline) {
                    // A kept-alive connection the server closed meanwhile:
                    // once more on a fresh one, as any HTTP client does.
                    Err(f) if reused && f.kind == ErrorKind::NetErr => {
                        self.conn = None;
                        self.exchange(deadline)
                    }
                    r => r,
                }
            }
        };
        if result.is_err() {
            self.conn = None;
        }
        Sample {
            latency: start.elapsed(),
            result,
        }
    }

    fn connect(&self, deadline: Instant) -> Result<TcpStream, Failure> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(fail(ErrorKind::Timeout, "connect timed out"));
        }
        let s = TcpStream::connect_timeout(&self.target.addr, left)
            .map_err(|e| io_fail("connect", &e))?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    fn open(&mut self, deadline: Instant) -> Result<Conn, Failure> {
        let s = self.connect(deadline)?;
        if self.target.kind == Kind::Http {
            return Ok(Conn::Plain(s));
        }
        self.tls_handshake(s, deadline)
    }

    #[cfg(feature = "https")]
    fn tls_handshake(&mut self, s: TcpStream, deadline: Instant) -> Result<Conn, Failure> {
        use crate::probe::tls::{Handshake, TlsContext};
        set_timeouts(&s, deadline)?;
        let ctx = self
            .tls
            .get_or_insert_with(TlsContext::new)
            .as_ref()
            .map_err(|e| fail(ErrorKind::NetErr, e.clone()))?;
        let name = self
            .target
            .server_name
            .clone()
            .or_else(|| self.opts.host.clone())
            .unwrap_or_else(|| self.target.addr.ip().to_string());
        match ctx.connect(s, &name, !self.opts.insecure, None) {
            Handshake::Done(t) => Ok(Conn::Tls(t)),
            // The socket's timeout ran out mid-handshake.
            Handshake::Want(..) => Err(fail(ErrorKind::Timeout, "TLS handshake timed out")),
            Handshake::Failed(why) => Err(fail(ErrorKind::NetErr, why)),
        }
    }

    #[cfg(not(feature = "https"))]
    fn tls_handshake(&mut self, _s: TcpStream, _deadline: Instant) -> Result<Conn, Failure> {
        Err(fail(
            ErrorKind::NetErr,
            "HTTPS: maglevt was built without it",
        ))
    }

    fn exchange(&mut self, deadline: Instant) -> Result<Answer, Failure> {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.open(deadline)?,
        };
        set_timeouts(conn.tcp(), deadline)?;
        conn.write_all(&self.request)
            .map_err(|e| io_fail("send", &e))?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        let (end, sep) = loop {
            if let Some(h) = find_head_end(&buf) {
                break h;
            }
            if buf.len() > HEAD_CAP {
                return Err(fail(ErrorKind::HttpErr, "response header too large"));
            }
            if buf.len() >= 5 && !buf.starts_with(b"HTTP/") {
                return Err(fail(ErrorKind::HttpErr, "not an HTTP response"));
            }
            match conn.read(&mut chunk) {
                Ok(0) if buf.is_empty() => {
                    return Err(fail(ErrorKind::NetErr, "closed without a response"));
                }
                Ok(0) => return Err(fail(ErrorKind::NetErr, "closed in the response header")),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => return Err(io_fail("response", &e)),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = head.lines();
        let status = parse_status_line(lines.next().unwrap_or(""))
            .map_err(|why| fail(ErrorKind::HttpErr, why))?;
        let mut backend = None;
        let mut length = None;
        let mut chunked = false;
        let mut close = false;
        for l in lines {
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case(&self.opts.header) {
                backend = Some(v.to_string());
            } else if k.eq_ignore_ascii_case("content-length") {
                length = v.parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.to_ascii_lowercase().contains("chunked");
            } else if k.eq_ignore_ascii_case("connection") {
                close = v.eq_ignore_ascii_case("close");
            }
        }
        if self.opts.keepalive && !close {
            let body = buf.split_off(end + sep);
            let bodiless = status == 204 || status == 304 || (100..200).contains(&status);
            let reusable = if bodiless {
                true
            } else if chunked {
                read_until_chunked_end(&mut conn, body)
            } else if let Some(n) = length {
                read_exactly(&mut conn, body.len(), n)
            } else {
                false
            };
            if reusable {
                self.conn = Some(conn);
            }
        }
        if (200..400).contains(&status) {
            Ok(Answer {
                status: format!("HTTP {status}"),
                backend,
            })
        } else {
            Err(fail(
                ErrorKind::HttpErr,
                match backend {
                    Some(b) => format!("HTTP {status} from {b}"),
                    None => format!("HTTP {status}"),
                },
            ))
        }
    }
}

/// Bodies larger than this end the kept-alive connection instead.
const BODY_CAP: usize = 1 << 20;

fn read_exactly(conn: &mut Conn, have: usize, want: usize) -> bool {
    if want > BODY_CAP {
        return false;
    }
    let mut left = want.saturating_sub(have);
    let mut chunk = [0u8; 4096];
    while left > 0 {
        match conn.read(&mut chunk[..left.min(4096)]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => left -= n,
        }
    }
    have <= want
}

/// Reads a chunked body to its last chunk (`0` CRLF CRLF).
fn read_until_chunked_end(conn: &mut Conn, mut seen: Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        if seen.ends_with(b"0\r\n\r\n") {
            return true;
        }
        if seen.len() > BODY_CAP {
            return false;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&chunk[..n]),
        }
    }
}

fn set_timeouts(s: &TcpStream, deadline: Instant) -> Result<(), Failure> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(fail(ErrorKind::Timeout, "timed out"));
    }
    let _ = s.set_read_timeout(Some(left));
    let _ = s.set_write_timeout(Some(left));
    Ok(())
}

/// The request every probe of `target` sends.
pub fn request(target: &Target, opts: &Options) -> Vec<u8> {
    let default_port = if target.kind == Kind::Https { 443 } else { 80 };
    let host = opts.host.clone().unwrap_or_else(|| {
        let ip = match target.addr.ip() {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        if target.addr.port() == default_port {
            ip
        } else {
            format!("{ip}:{}", target.addr.port())
        }
    });
    format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: maglevt/{}\r\nAccept: */*\r\nConnection: {}\r\n\r\n",
        opts.uri,
        crate::VERSION,
        if opts.keepalive { "keep-alive" } else { "close" }
    )
    .into_bytes()
}

/// Probes `target` every `--interval` (±10 %, measured from each start)
/// until `stop` fires or the receiver of `results` is gone; each result is
/// sent with the VIP's index and the time it ended.
pub fn run(
    index: usize,
    target: Target,
    opts: Arc<Options>,
    results: Sender<(usize, Instant, Sample)>,
    stop: Receiver<()>,
) {
    let interval = opts.interval;
    let mut p = Prober::new(target, opts);
    let mut rng = Jitter::from_clock(index as u64);
    loop {
        let start = Instant::now();
        let s = p.probe();
        if results.send((index, Instant::now(), s)).is_err() {
            return;
        }
        let next = start + jittered(interval, rng.unit());
        match stop.recv_deadline(next) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}
