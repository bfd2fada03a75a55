//! Real TCP/HTTP/HTTPS servers, good and misbehaving, for probe tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How a server treats each connection.
#[derive(Clone)]
pub enum Behaviour {
    /// Read the request, send these bytes, close.
    Respond(Vec<u8>),
    /// Read the request, wait, then respond.
    Slow(Duration, Vec<u8>),
    /// Send these bytes as soon as the connection is accepted, then close
    /// (an SSH banner, or a plain-HTTP server's 400 to a TLS ClientHello).
    Immediate(Vec<u8>),
    /// Accept and never send anything (keeps the connection open).
    Silent,
    /// Read the request, send these bytes, then reset the connection.
    ResetAfter(Vec<u8>),
    /// HTTPS: TLS with this acceptor, then respond.
    #[cfg(feature = "https")]
    Tls(openssl::ssl::SslAcceptor, Vec<u8>),
}

pub fn http(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub fn http_chunked(status: &str, chunks: &[&str]) -> Vec<u8> {
    let mut s = format!("HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n");
    for c in chunks {
        s.push_str(&format!("{:x}\r\n{c}\r\n", c.len()));
    }
    s.push_str("0\r\n\r\n");
    s.into_bytes()
}

/// TLS handshakes these servers completed by resuming a session.
pub static TLS_RESUMED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A listening server; stops accepting and closes on drop.
pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

fn read_request(s: &mut TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

fn handle(mut s: TcpStream, b: Behaviour, stop: Arc<AtomicBool>) {
    match b {
        Behaviour::Respond(bytes) => {
            read_request(&mut s);
            let _ = s.write_all(&bytes);
        }
        Behaviour::Slow(d, bytes) => {
            read_request(&mut s);
            std::thread::sleep(d);
            let _ = s.write_all(&bytes);
        }
        Behaviour::Immediate(bytes) => {
            let _ = s.write_all(&bytes);
            std::thread::sleep(Duration::from_millis(50));
        }
        Behaviour::Silent => {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Behaviour::ResetAfter(bytes) => {
            read_request(&mut s);
            let _ = s.write_all(&bytes);
            let _ = s.flush();
            std::thread::sleep(Duration::from_millis(20));
            let linger = nix::libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            let _ = nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::Linger, &linger);
        }
        #[cfg(feature = "https")]
        Behaviour::Tls(acceptor, bytes) => {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            if let Ok(mut tls) = acceptor.accept(s) {
                if tls.ssl().session_reused() {
                    TLS_RESUMED.fetch_add(1, Ordering::Relaxed);
                }
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls.write_all(&bytes);
                let _ = tls.shutdown();
            }
        }
    }
}

impl Server {
    /// Serves on `addr` (port 0 picks one).
    pub fn start(addr: &str, b: Behaviour) -> Server {
        // A server started again on its old port can find it still taken
        // for a moment (seen once in CI): retry for up to 2 s.
        let t = std::time::Instant::now();
        let listener = loop {
            match TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse
                        && t.elapsed() < Duration::from_secs(2) =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("bind {addr}: {e}"),
            }
        };
        Self::on(listener, b)
    }

    pub fn on(listener: TcpListener, b: Behaviour) -> Server {
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&stop);
        let join = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (b, st) = (b.clone(), Arc::clone(&st));
                std::thread::spawn(move || handle(conn, b, st));
            }
        });
        Server {
            addr,
            stop,
            join: Some(join),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblock accept() so the listener closes now.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// A listener that counts the connections it accepts (and closes them):
/// a half-open check must leave it at zero.
pub struct Counting {
    pub addr: SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

impl Counting {
    pub fn on(listener: TcpListener) -> Counting {
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (n, st) = (Arc::clone(&accepted), Arc::clone(&stop));
        let join = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok(_) => {
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Counting {
            addr,
            accepted,
            stop,
            join: Some(join),
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// How a keep-alive server treats the connections it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepMode {
    /// Serves every request; closes a connection idle this long (as
    /// nginx's `keepalive_timeout` does), without a word.
    IdleClose(Duration),
    /// Answers with `Connection: close` and closes.
    AnswerClose,
    /// Serves a connection's first request; to the second it sends this
    /// many bytes of the response and resets the connection.
    ResetSecond(usize),
    /// Serves a connection's first request; at the second it closes the
    /// connection without answering.
    CloseSecond,
    /// TLS: after each response ends the TLS session (close_notify) and
    /// the connection, although the response did not say so.
    TlsDrop,
    /// TLS 1.2: asks for a renegotiation after each response.
    TlsRenegotiate,
    /// TLS 1.3: sends a key update after each response.
    TlsKeyUpdate,
}

/// An HTTP/1.1 server that keeps connections, counting the connections
/// it accepts, the requests it serves and (TLS) the renegotiations and
/// key updates completed.
pub struct KeepAlive {
    pub addr: SocketAddr,
    pub conns: Arc<std::sync::atomic::AtomicUsize>,
    pub requests: Arc<std::sync::atomic::AtomicUsize>,
    pub rekeys: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

#[cfg(feature = "https")]
unsafe extern "C" {
    fn SSL_renegotiate(ssl: *mut std::ffi::c_void) -> std::ffi::c_int;
    fn SSL_renegotiate_pending(ssl: *const std::ffi::c_void) -> std::ffi::c_int;
    fn SSL_key_update(ssl: *mut std::ffi::c_void, kind: std::ffi::c_int) -> std::ffi::c_int;
    fn SSL_do_handshake(ssl: *mut std::ffi::c_void) -> std::ffi::c_int;
}

/// Reads one request head; false at the end of the connection.
fn next_request(s: &mut impl Read) -> bool {
    let mut seen = Vec::new();
    let mut b = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => seen.push(b[0]),
            _ => return false,
        }
    }
    true
}

fn keep_serve(
    s: &mut (impl Read + Write),
    mode: KeepMode,
    requests: &std::sync::atomic::AtomicUsize,
    mut after: impl FnMut(&mut dyn Write),
) -> bool {
    let mut served = 0;
    while next_request(s) {
        requests.fetch_add(1, Ordering::Relaxed);
        served += 1;
        let ok = http("200 OK", "ok");
        match mode {
            KeepMode::AnswerClose => {
                let r = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
                let _ = s.write_all(r.as_bytes());
                return false;
            }
            KeepMode::ResetSecond(n) if served == 2 => {
                let _ = s.write_all(&ok[..n]);
                let _ = s.flush();
                std::thread::sleep(Duration::from_millis(20));
                return true; // reset by the caller
            }
            KeepMode::CloseSecond if served == 2 => return false,
            _ => {
                if s.write_all(&ok).is_err() {
                    return false;
                }
                if mode == KeepMode::TlsDrop {
                    return false;
                }
                after(s);
            }
        }
    }
    false
}

impl KeepAlive {
    /// Serves on `addr` (port 0 picks one); `tls` for the TLS modes.
    pub fn start(
        addr: &str,
        mode: KeepMode,
        #[cfg(feature = "https")] tls: Option<openssl::ssl::SslAcceptor>,
    ) -> KeepAlive {
        use std::sync::atomic::AtomicUsize;
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let rekeys = Arc::new(AtomicUsize::new(0));
        #[cfg_attr(not(feature = "https"), allow(unused_variables))]
        let (st, c, r, k) = (
            Arc::clone(&stop),
            Arc::clone(&conns),
            Arc::clone(&requests),
            Arc::clone(&rekeys),
        );
        let join = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                c.fetch_add(1, Ordering::Relaxed);
                let r = Arc::clone(&r);
                #[cfg(feature = "https")]
                let (k, tls) = (Arc::clone(&k), tls.clone());
                std::thread::spawn(move || {
                    let idle = match mode {
                        KeepMode::IdleClose(d) => d,
                        _ => Duration::from_secs(5),
                    };
                    let _ = s.set_read_timeout(Some(idle));
                    #[cfg(feature = "https")]
                    if let Some(acceptor) = tls {
                        let Ok(mut t) = acceptor.accept(s) else {
                            return;
                        };
                        // An `&SslRef` is the `SSL *` itself (openssl's
                        // foreign-type references).
                        let ssl = (t.ssl() as *const openssl::ssl::SslRef)
                            .cast_mut()
                            .cast::<std::ffi::c_void>();
                        let mut pending = false;
                        // SAFETY: `ssl` is the SSL of `t`, alive through
                        // the call; the socket blocks, so each call
                        // completes or fails.
                        keep_serve(&mut t, mode, &r, |_| unsafe {
                            match mode {
                                KeepMode::TlsRenegotiate => {
                                    // The last one completed once the
                                    // request after it was read.
                                    if pending && SSL_renegotiate_pending(ssl) == 0 {
                                        k.fetch_add(1, Ordering::Relaxed);
                                    }
                                    pending =
                                        SSL_renegotiate(ssl) == 1 && SSL_do_handshake(ssl) == 1;
                                }
                                // 1: SSL_KEY_UPDATE_REQUESTED
                                KeepMode::TlsKeyUpdate
                                    if SSL_key_update(ssl, 1) == 1
                                        && SSL_do_handshake(ssl) == 1 =>
                                {
                                    k.fetch_add(1, Ordering::Relaxed);
                                }
                                _ => {}
                            }
                        });
                        if mode == KeepMode::TlsDrop {
                            let _ = t.shutdown();
                        }
                        return;
                    }
                    if keep_serve(&mut s, mode, &r, |_| {}) {
                        let linger = nix::libc::linger {
                            l_onoff: 1,
                            l_linger: 0,
                        };
                        let _ = nix::sys::socket::setsockopt(
                            &s,
                            nix::sys::socket::sockopt::Linger,
                            &linger,
                        );
                    }
                });
            }
        });
        KeepAlive {
            addr,
            conns,
            requests,
            rekeys,
            stop,
            join: Some(join),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted and requests served so far.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.conns.load(Ordering::Relaxed),
            self.requests.load(Ordering::Relaxed),
        )
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}
