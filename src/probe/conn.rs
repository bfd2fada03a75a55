//! TCP, HTTP and HTTPS probes: one non-blocking socket each, driven by
//! readiness.
//!
//! A probe says which readiness it waits for ([`Interest`]); the engine
//! polls and calls [`ConnProbe::ready`] until it yields an [`Outcome`].
//! The phase at a timeout decides the code: connect → `L4TOUT`, TLS
//! handshake → `L6TOUT`, request/response → `L7TOUT`.

use std::borrow::Cow;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, getsockopt, socket, sockopt,
};

pub use super::Interest;
use super::http::ResponseJudge;
use super::{Code, Outcome, ProbeSpec, errno_detail, local_errno, timeout_detail};
use crate::config::Probe;

/// What a probe needs next.
#[derive(Debug)]
pub enum Step {
    /// Poll for this readiness, then call `ready` again.
    Wait(Interest),
    /// Finished.
    Done(Outcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    /// TLS only: never entered in a build without the `https` feature.
    #[cfg_attr(not(feature = "https"), allow(dead_code))]
    Handshaking,
    Writing,
    Reading,
}

enum Stream {
    Connecting(OwnedFd),
    Plain(TcpStream),
    #[cfg(feature = "https")]
    Handshaking(Box<openssl::ssl::MidHandshakeSslStream<TcpStream>>),
    #[cfg(feature = "https")]
    Tls(Box<openssl::ssl::SslStream<TcpStream>>),
    Closed,
}

struct HttpState {
    request: std::sync::Arc<[u8]>,
    written: usize,
    judge: ResponseJudge,
    tls: Option<(String, bool)>,
    /// Backend address and port (whose TLS session this is).
    #[cfg_attr(not(feature = "https"), allow(dead_code))]
    peer: (IpAddr, u16),
}

/// One in-flight TCP/HTTP/HTTPS probe.
pub struct ConnProbe {
    fd: RawFd,
    stream: Stream,
    phase: Phase,
    started: Instant,
    timeout: std::time::Duration,
    http: Option<Box<HttpState>>,
}

/// The TLS context every HTTPS probe of a prober thread uses, made on
/// first use (or the reason it could not be; empty without HTTPS), and the
/// last session of each HTTPS backend, offered for resumption as HAProxy
/// does for its checks: the abbreviated handshake skips the certificate
/// and its verification (done on the full handshake that made the session).
#[derive(Default)]
pub struct TlsCache {
    #[cfg(feature = "https")]
    context: Option<Result<super::tls::TlsContext, String>>,
    #[cfg(feature = "https")]
    sessions: std::collections::HashMap<SessionKey, openssl::ssl::SslSession>,
}

/// Whose session: backend address, port, TLS name, and whether it was
/// verified (a session made without verification must never let a
/// verifying check skip it).
#[cfg(feature = "https")]
type SessionKey = (IpAddr, u16, String, bool);

impl TlsCache {
    #[cfg(feature = "https")]
    fn session(&self, key: &SessionKey) -> Option<&openssl::ssl::SslSession> {
        self.sessions.get(key)
    }

    /// Keeps `session` for `key` (`None`: forgets it, after a failure).
    #[cfg(feature = "https")]
    fn keep(&mut self, key: SessionKey, session: Option<openssl::ssl::SslSession>) {
        match session {
            Some(s) => {
                self.sessions.insert(key, s);
            }
            None => {
                self.sessions.remove(&key);
            }
        }
    }

    #[cfg(feature = "https")]
    fn get(&mut self) -> Result<&super::tls::TlsContext, String> {
        self.context
            .get_or_insert_with(super::tls::TlsContext::new)
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// A probe just started: still pending, or already decided (refused on
/// loopback, no such source address, ...).
pub enum Started {
    /// Waiting for readiness.
    Pending(ConnProbe, Interest),
    /// Decided without waiting.
    Finished(Outcome),
}

/// Turns off `TCP_QUICKACK` before connecting, as HAProxy does for its
/// checks: the kernel then holds back the last ACK of the handshake. A
/// plain TCP probe is decided by the SYN-ACK and aborted with RST, so the
/// backend never completes the connection, never wakes its application and
/// logs nothing; an HTTP probe's request carries the ACK instead of a
/// packet of its own. Best effort: without it the probe works the same.
fn defer_handshake_ack(fd: RawFd) {
    let off: nix::libc::c_int = 0;
    // SAFETY: `fd` is an open socket owned by the caller and the option
    // value is a live `c_int` whose exact size is passed.
    unsafe {
        nix::libc::setsockopt(
            fd,
            nix::libc::IPPROTO_TCP,
            nix::libc::TCP_QUICKACK,
            (&off as *const nix::libc::c_int).cast(),
            std::mem::size_of::<nix::libc::c_int>() as nix::libc::socklen_t,
        );
    }
}

impl ConnProbe {
    /// Opens the socket and starts connecting.
    pub fn start(spec: &ProbeSpec, now: Instant, tls: &mut TlsCache) -> Started {
        match Self::open(spec, now) {
            Err(o) => Started::Finished(o),
            Ok((probe, false)) => Started::Pending(probe, Interest::Write),
            Ok((mut probe, true)) => match probe.ready(now, tls, false) {
                Step::Wait(i) => Started::Pending(probe, i),
                Step::Done(o) => Started::Finished(o),
            },
        }
    }

    /// Creates, binds and connects the socket; `true` if already connected.
    fn open(spec: &ProbeSpec, now: Instant) -> Result<(ConnProbe, bool), Outcome> {
        let fail = |code, detail: Cow<'static, str>| Outcome::new(code, detail, now.elapsed());
        let port = spec.probe.port().unwrap_or(0);
        let http = match &spec.probe {
            Probe::Http(h) => {
                let tls = h.tls.as_ref().map(|t| {
                    let name = t
                        .server_name
                        .clone()
                        .or_else(|| h.host.clone())
                        .unwrap_or_else(|| spec.address.to_string());
                    (name, t.verify)
                });
                #[cfg(not(feature = "https"))]
                if tls.is_some() {
                    return Err(fail(
                        Code::L6Rsp,
                        "HTTPS support not built in (cargo feature `https`)".into(),
                    ));
                }
                Some(Box::new(HttpState {
                    request: std::sync::Arc::clone(&spec.request),
                    written: 0,
                    judge: ResponseJudge::new(h),
                    tls,
                    peer: (spec.address, port),
                }))
            }
            _ => None,
        };
        let family = match spec.address {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        let fd = socket(
            family,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| {
            fail(
                Code::Local,
                format!("cannot create socket: {}", errno_detail(e)).into(),
            )
        })?;
        defer_handshake_ack(fd.as_raw_fd());
        if let Some(src) = spec.source {
            let sa = SockaddrStorage::from(SocketAddr::new(src, 0));
            bind(fd.as_raw_fd(), &sa).map_err(|e| {
                fail(
                    Code::Local,
                    format!("cannot bind source {src}: {}", errno_detail(e)).into(),
                )
            })?;
        }
        let sa = SockaddrStorage::from(SocketAddr::new(spec.address, port));
        let connected = match connect(fd.as_raw_fd(), &sa) {
            Ok(()) => true,
            Err(Errno::EINPROGRESS) => false,
            Err(e) if local_errno(e) => return Err(fail(Code::Local, errno_detail(e))),
            Err(e) => return Err(fail(Code::L4Con, errno_detail(e))),
        };
        let probe = ConnProbe {
            fd: fd.as_raw_fd(),
            stream: Stream::Connecting(fd),
            phase: Phase::Connecting,
            started: now,
            timeout: spec.timeout,
            http,
        };
        Ok((probe, connected))
    }

    /// The socket to poll.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// When the probe started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The outcome when the deadline passes first.
    pub fn timed_out(&self, now: Instant) -> Outcome {
        let code = match self.phase {
            Phase::Connecting => Code::L4Tout,
            Phase::Handshaking => Code::L6Tout,
            Phase::Writing | Phase::Reading => Code::L7Tout,
        };
        Outcome::new(
            code,
            timeout_detail(self.timeout),
            now.saturating_duration_since(self.started),
        )
    }

    /// Makes progress after readiness on the socket; `error` when `poll`
    /// also said error or hang-up (only then is the connect's outcome
    /// asked for: readiness alone means connected, one syscall less).
    pub fn ready(&mut self, now: Instant, tls: &mut TlsCache, error: bool) -> Step {
        loop {
            let step = match self.phase {
                Phase::Connecting => self.finish_connect(now, tls, error),
                Phase::Handshaking => self.handshake(now, tls),
                Phase::Writing => self.write(now),
                Phase::Reading => self.read(now, tls),
            };
            match step {
                Some(s) => return s,
                None => continue, // phase advanced: try the next one at once
            }
        }
    }

    /// Closes the socket with RST, as HAProxy ends its checks: the
    /// answer is in (or will never be), and neither side keeps a
    /// TIME_WAIT or exchanges FINs per probe.
    fn abort(&mut self) {
        if !matches!(self.stream, Stream::Closed) {
            let linger = nix::libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: `self.fd` is the open socket of `self.stream`,
            // closed only below; the value is a live `linger`.
            unsafe {
                nix::libc::setsockopt(
                    self.fd,
                    nix::libc::SOL_SOCKET,
                    nix::libc::SO_LINGER,
                    (&linger as *const nix::libc::linger).cast(),
                    std::mem::size_of::<nix::libc::linger>() as nix::libc::socklen_t,
                );
            }
            self.stream = Stream::Closed;
        }
    }

    fn done(
        &mut self,
        now: Instant,
        code: Code,
        detail: impl Into<Cow<'static, str>>,
    ) -> Option<Step> {
        self.abort();
        Some(Step::Done(Outcome::new(
            code,
            detail,
            now.saturating_duration_since(self.started),
        )))
    }

    fn finish_connect(&mut self, now: Instant, tls: &mut TlsCache, error: bool) -> Option<Step> {
        let Stream::Connecting(fd) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return self.done(now, Code::L4Con, "internal: no socket");
        };
        let failed = if error {
            match getsockopt(&fd, sockopt::SocketError) {
                Ok(0) => None,
                Ok(err) => Some(Errno::from_raw(err)),
                Err(e) => Some(e),
            }
        } else {
            None
        };
        if let Some(e) = failed {
            self.stream = Stream::Connecting(fd);
            return self.done(now, Code::L4Con, errno_detail(e));
        }
        let Some(http) = &self.http else {
            // Plain TCP check: connected is a pass (closed with RST).
            self.stream = Stream::Connecting(fd);
            return self.done(now, Code::L4Ok, "connected");
        };
        let stream = TcpStream::from(fd);
        match &http.tls {
            None => {
                self.stream = Stream::Plain(stream);
                self.phase = Phase::Writing;
                None
            }
            #[cfg(feature = "https")]
            Some((name, verify)) => {
                // The request follows the handshake's last flight at once,
                // not after its ACK (plain HTTP writes one segment and
                // needs no such thing).
                let _ = stream.set_nodelay(true);
                let session = tls
                    .session(&(http.peer.0, http.peer.1, name.clone(), *verify))
                    .cloned();
                let ctx = match tls.get() {
                    Ok(c) => c,
                    Err(e) => return self.done(now, Code::L6Rsp, e),
                };
                let hs = ctx.connect(stream, name, *verify, session.as_ref());
                self.phase = Phase::Handshaking;
                self.after_handshake(now, hs, tls)
            }
            #[cfg(not(feature = "https"))]
            Some(_) => {
                let _ = tls;
                self.done(now, Code::L6Rsp, "HTTPS support not built in")
            }
        }
    }

    #[cfg(feature = "https")]
    fn after_handshake(
        &mut self,
        now: Instant,
        hs: super::tls::Handshake,
        tls: &mut TlsCache,
    ) -> Option<Step> {
        use super::tls::Handshake;
        match hs {
            Handshake::Done(s) => {
                self.stream = Stream::Tls(s);
                self.phase = Phase::Writing;
                None
            }
            Handshake::Want(i, mid) => {
                self.stream = Stream::Handshaking(mid);
                Some(Step::Wait(i))
            }
            Handshake::Failed(why) => {
                // A session the server chokes on must not be offered again.
                if let Some(h) = self.http.as_ref() {
                    if let Some((name, verify)) = &h.tls {
                        tls.keep((h.peer.0, h.peer.1, name.clone(), *verify), None);
                    }
                }
                self.done(now, Code::L6Rsp, why)
            }
        }
    }

    fn handshake(&mut self, now: Instant, tls: &mut TlsCache) -> Option<Step> {
        #[cfg(feature = "https")]
        if let Stream::Handshaking(mid) = std::mem::replace(&mut self.stream, Stream::Closed) {
            let hs = super::tls::TlsContext::resume(*mid);
            return self.after_handshake(now, hs, tls);
        }
        #[cfg(not(feature = "https"))]
        let _ = tls;
        self.done(now, Code::L6Rsp, "internal: no handshake")
    }

    fn write(&mut self, now: Instant) -> Option<Step> {
        let Some(http) = self.http.as_mut() else {
            return self.done(now, Code::L7Rsp, "internal: no request");
        };
        while http.written < http.request.len() {
            let buf = &http.request[http.written..];
            let r = match &mut self.stream {
                Stream::Plain(s) => match s.write(buf) {
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        return Some(Step::Wait(Interest::Write));
                    }
                    Err(e) => Err(io_detail(&e)),
                },
                #[cfg(feature = "https")]
                Stream::Tls(s) => match super::tls::write(s, buf) {
                    super::tls::Io::Done(n) => Ok(n),
                    super::tls::Io::Want(i) => return Some(Step::Wait(i)),
                    super::tls::Io::Failed(e) => Err(e.into()),
                },
                _ => Err("internal: no stream".into()),
            };
            match r {
                Ok(0) => {
                    return self.done(
                        now,
                        Code::L7Rsp,
                        "connection closed while sending the request",
                    );
                }
                Ok(n) => http.written += n,
                Err(e) => return self.done(now, Code::L7Rsp, e),
            }
        }
        self.phase = Phase::Reading;
        None
    }

    fn read(&mut self, now: Instant, tls: &mut TlsCache) -> Option<Step> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let r = match &mut self.stream {
                Stream::Plain(s) => match s.read(&mut buf) {
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        return Some(Step::Wait(Interest::Read));
                    }
                    Err(e) => Err(io_detail(&e)),
                },
                #[cfg(feature = "https")]
                Stream::Tls(s) => match super::tls::read(s, &mut buf) {
                    super::tls::Io::Done(n) => Ok(n),
                    super::tls::Io::Want(i) => return Some(Step::Wait(i)),
                    super::tls::Io::Failed(e) => Err(e.into()),
                },
                _ => Err("internal: no stream".into()),
            };
            let Some(http) = self.http.as_mut() else {
                return self.done(now, Code::L7Rsp, "internal: no judge");
            };
            let verdict = match r {
                Ok(0) => http.judge.eof(),
                Ok(n) => match http.judge.feed(&buf[..n]) {
                    Some(v) => v,
                    None => continue,
                },
                Err(e) => {
                    self.keep_session(tls, false);
                    return self.done(now, Code::L7Rsp, e);
                }
            };
            // The exchange completed (whatever the status): the session,
            // its tickets received by now, serves the next probe.
            self.keep_session(tls, true);
            return self.done(now, verdict.code, verdict.detail);
        }
    }
}

impl Drop for ConnProbe {
    /// A probe dropped unfinished (timed out, stopped) ends with RST too.
    fn drop(&mut self) {
        self.abort();
    }
}

impl ConnProbe {
    /// Remembers (or, after a failure, forgets) this HTTPS backend's TLS
    /// session for the next probe. The connection is shut down first
    /// (close_notify, not waited for): OpenSSL marks the session of a
    /// connection freed without it as not resumable.
    fn keep_session(&mut self, tls: &mut TlsCache, ok: bool) {
        #[cfg(feature = "https")]
        if let (Stream::Tls(s), Some(http)) = (&mut self.stream, &self.http) {
            if let Some((name, verify)) = &http.tls {
                let key = (http.peer.0, http.peer.1, name.clone(), *verify);
                let session = if ok {
                    let _ = s.shutdown();
                    s.ssl().session().map(ToOwned::to_owned)
                } else {
                    None
                };
                tls.keep(key, session);
            }
        }
        #[cfg(not(feature = "https"))]
        let _ = (tls, ok);
    }
}

fn io_detail(e: &std::io::Error) -> Cow<'static, str> {
    match e.raw_os_error() {
        Some(n) => errno_detail(Errno::from_raw(n)),
        None => e.to_string().into(),
    }
}
