//! TCP, HTTP and HTTPS probes: one non-blocking socket each, driven by
//! readiness.
//!
//! A probe says which readiness it waits for ([`Interest`]); the engine
//! polls and calls [`ConnProbe::ready`] until it yields an [`Outcome`].
//! The phase at a timeout decides the code: connect → `L4TOUT`, TLS
//! handshake → `L6TOUT`, request/response → `L7TOUT`.
//!
//! An HTTP(S) check with `reuse-connection` keeps its connection after a
//! clean pass ([`ConnProbe::into_kept`]) and starts the next check on it
//! ([`ConnProbe::start`] given the [`Kept`]): the request, the response,
//! nothing else. Whether that is allowed is decided in one place each: the
//! response's framing by [`ResponseJudge::keep`], the connection's age and
//! state by [`Kept::usable`], a failure before any answer by
//! [`Step::Reconnect`].
//!
//! [`ConnKind`] is the kind the engine runs: the probes of one prober
//! thread in flight, their TLS context and sessions.

use std::borrow::Cow;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, getsockopt, socket, sockopt,
};

pub use super::Interest;
use super::http::{Keep, ResponseJudge, Verdict};
use super::kind::{Event, Kind, Slots, Start};
pub(crate) use super::stream::{Kept, TlsCache};
use super::stream::{Stream, abort};
use super::{Code, Connection, Outcome, ProbeSpec, errno_detail, local_errno, timeout_detail};
use crate::config::Probe;

/// What a probe needs next.
#[derive(Debug)]
pub enum Step {
    /// Poll for this readiness, then call `ready` again.
    Wait(Interest),
    /// Finished.
    Done(Outcome),
    /// A kept connection failed before any answer (closed or reset by the
    /// backend): the check starts again at once on a new connection
    /// ([`ConnProbe::reconnect`]), once.
    Reconnect,
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

struct HttpState {
    request: std::sync::Arc<[u8]>,
    written: usize,
    judge: ResponseJudge,
    tls: Option<(String, bool)>,
    /// Backend address and port (whose TLS session this is).
    #[cfg_attr(not(feature = "https"), allow(dead_code))]
    peer: (IpAddr, u16),
    /// `reuse-lifetime` when the connection is kept between checks.
    reuse: Option<std::time::Duration>,
    /// The verdict, given while the rest of the message is read so the
    /// connection can be kept.
    pending: Option<Verdict>,
}

/// One in-flight TCP/HTTP/HTTPS probe.
pub struct ConnProbe {
    fd: RawFd,
    stream: Stream,
    phase: Phase,
    started: Instant,
    timeout: std::time::Duration,
    http: Option<Box<HttpState>>,
    /// When the TCP connection was made (older than `started` when kept).
    opened: Instant,
    /// How this check got its connection.
    connection: Connection,
    /// The check passed on a clean, reusable connection: keep it.
    keep: bool,
}

/// A probe just started: still pending, or already decided (refused on
/// loopback, no such source address, ...).
pub enum Started {
    /// Waiting for readiness.
    Pending(ConnProbe, Interest),
    /// Decided without waiting (an answer can be in before the first
    /// wait on a kept connection), with the connection to keep, if any.
    Finished(Outcome, Option<Kept>),
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
    /// Starts a check: on `kept`, the connection the last check of this
    /// backend left, when it is still usable; else on a new socket.
    pub fn start(
        spec: &ProbeSpec,
        now: Instant,
        tls: &mut TlsCache,
        kept: Option<Kept>,
    ) -> Started {
        let mut connection = Connection::New;
        if let Some(mut k) = kept {
            let lifetime = match &spec.probe {
                Probe::Http(h) => h.reuse,
                _ => None,
            };
            match lifetime.map(|l| k.usable(now, l)) {
                Some(Ok(())) => return Self::on_kept(spec, now, tls, k),
                Some(Err(true)) => connection = Connection::Reconnected,
                Some(Err(false)) | None => {
                    let name = Self::tls_name(spec);
                    let port = spec.probe.port().unwrap_or(0);
                    k.retire(tls, name.as_ref().map(|n| (spec.address, port, n)));
                }
            }
        }
        Self::connect_new(spec, now, now, tls, connection)
    }

    /// Starts the check again on a new connection after
    /// [`Step::Reconnect`]; `started` is when the check began.
    pub fn reconnect(
        spec: &ProbeSpec,
        started: Instant,
        now: Instant,
        tls: &mut TlsCache,
    ) -> Started {
        Self::connect_new(spec, started, now, tls, Connection::Reconnected)
    }

    fn connect_new(
        spec: &ProbeSpec,
        started: Instant,
        now: Instant,
        tls: &mut TlsCache,
        connection: Connection,
    ) -> Started {
        match Self::open(spec, started, now, connection) {
            Err(o) => Started::Finished(o, None),
            Ok((probe, false)) => Started::Pending(probe, Interest::Write),
            Ok((probe, true)) => probe.go(spec, now, tls),
        }
    }

    /// Runs the probe as far as it gets without waiting.
    fn go(mut self, spec: &ProbeSpec, now: Instant, tls: &mut TlsCache) -> Started {
        match self.ready(now, tls, false) {
            Step::Wait(i) => Started::Pending(self, i),
            Step::Done(o) => Started::Finished(o, self.into_kept()),
            // Only a kept connection asks for this; a new one never does.
            Step::Reconnect => {
                let started = self.started;
                drop(self);
                Self::reconnect(spec, started, now, tls)
            }
        }
    }

    /// The check on a kept connection: the request goes out at once.
    fn on_kept(spec: &ProbeSpec, now: Instant, tls: &mut TlsCache, mut k: Kept) -> Started {
        let http = match Self::http_state(spec, now) {
            Ok(Some(h)) => h,
            Ok(None) | Err(_) => {
                return Self::connect_new(spec, now, now, tls, Connection::New);
            }
        };
        let probe = ConnProbe {
            fd: k.fd,
            stream: std::mem::replace(&mut k.stream, Stream::Closed),
            phase: Phase::Writing,
            started: now,
            timeout: spec.timeout,
            http: Some(http),
            opened: k.opened,
            connection: Connection::Reused,
            keep: false,
        };
        probe.go(spec, now, tls)
    }

    /// The TLS name and whether it is verified, for an HTTPS check.
    fn tls_name(spec: &ProbeSpec) -> Option<(String, bool)> {
        match &spec.probe {
            Probe::Http(h) => h.tls.as_ref().map(|t| {
                let name = t
                    .server_name
                    .clone()
                    .or_else(|| h.host.clone())
                    .unwrap_or_else(|| spec.address.to_string());
                (name, t.verify)
            }),
            _ => None,
        }
    }

    /// The HTTP side of a check (`None` for a plain TCP one).
    fn http_state(spec: &ProbeSpec, now: Instant) -> Result<Option<Box<HttpState>>, Outcome> {
        let port = spec.probe.port().unwrap_or(0);
        let Probe::Http(h) = &spec.probe else {
            return Ok(None);
        };
        let tls = Self::tls_name(spec);
        #[cfg(not(feature = "https"))]
        if tls.is_some() {
            return Err(Outcome::new(
                Code::L6Rsp,
                "HTTPS support not built in (cargo feature `https`)",
                now.elapsed(),
            ));
        }
        let _ = now;
        Ok(Some(Box::new(HttpState {
            request: std::sync::Arc::clone(&spec.request),
            written: 0,
            judge: ResponseJudge::new(h),
            tls,
            peer: (spec.address, port),
            reuse: h.reuse,
            pending: None,
        })))
    }

    /// Creates, binds and connects the socket; `true` if already connected.
    fn open(
        spec: &ProbeSpec,
        started: Instant,
        now: Instant,
        connection: Connection,
    ) -> Result<(ConnProbe, bool), Outcome> {
        let fail = |code, detail: Cow<'static, str>| {
            let mut o = Outcome::new(code, detail, now.saturating_duration_since(started));
            if matches!(&spec.probe, Probe::Http(h) if h.reuse.is_some()) {
                o.connection = Some(connection);
            }
            o
        };
        let port = spec.probe.port().unwrap_or(0);
        let http = Self::http_state(spec, now)?;
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
            started,
            timeout: spec.timeout,
            http,
            opened: now,
            connection,
            keep: false,
        };
        Ok((probe, connected))
    }

    /// The socket to poll.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// The outcome when the deadline passes first (the verdict, when it
    /// was given and only the rest of the message was awaited).
    pub fn timed_out(&self, now: Instant) -> Outcome {
        let code = match self.phase {
            Phase::Connecting => Code::L4Tout,
            Phase::Handshaking => Code::L6Tout,
            Phase::Writing | Phase::Reading => Code::L7Tout,
        };
        let o = match self.http.as_ref().and_then(|h| h.pending.as_ref()) {
            Some(v) => Outcome::new(v.code, v.detail.clone(), Default::default()),
            None => Outcome::new(code, timeout_detail(self.timeout), Default::default()),
        };
        self.outcome(o, now)
    }

    /// `o` with this check's duration and, for a check that keeps its
    /// connection, how it got it.
    fn outcome(&self, mut o: Outcome, now: Instant) -> Outcome {
        o.duration = now.saturating_duration_since(self.started);
        if self.http.as_ref().is_some_and(|h| h.reuse.is_some()) {
            o.connection = Some(self.connection);
        }
        o
    }

    /// The connection to keep for the next check, if this one ended
    /// cleanly on a reusable connection.
    pub fn into_kept(mut self) -> Option<Kept> {
        if !self.keep {
            return None;
        }
        Some(Kept {
            fd: self.fd,
            stream: std::mem::replace(&mut self.stream, Stream::Closed),
            opened: self.opened,
        })
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

    /// Ends the check with RST: the answer is in (or will never be).
    fn abort(&mut self) {
        abort(self.fd, &mut self.stream);
    }

    fn done(
        &mut self,
        now: Instant,
        code: Code,
        detail: impl Into<Cow<'static, str>>,
    ) -> Option<Step> {
        self.abort();
        Some(Step::Done(self.outcome(
            Outcome::new(code, detail, Default::default()),
            now,
        )))
    }

    /// A failure before any answer: on a kept connection, the backend
    /// closed or reset it while it was idle; the check is made again on a
    /// new connection instead of counting (idle timeouts must not flap).
    fn failed_unanswered(
        &mut self,
        now: Instant,
        code: Code,
        detail: impl Into<Cow<'static, str>>,
    ) -> Option<Step> {
        if self.connection == Connection::Reused {
            self.abort();
            return Some(Step::Reconnect);
        }
        self.done(now, code, detail)
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
                    return self.failed_unanswered(
                        now,
                        Code::L7Rsp,
                        "connection closed while sending the request",
                    );
                }
                Ok(n) => http.written += n,
                Err(e) => return self.failed_unanswered(now, Code::L7Rsp, e),
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
            let answered = http.judge.started();
            let verdict = match r {
                // Read through to the end of a passed message to keep the
                // connection: the verdict stands whatever comes after it.
                _ if http.pending.is_some() => {
                    if let Ok(n @ 1..) = r {
                        http.judge.feed(&buf[..n]);
                        if http.judge.keep() == Keep::More {
                            continue;
                        }
                    }
                    http.pending.take().expect("pending")
                }
                Ok(0) if !answered => {
                    return self.failed_unanswered(
                        now,
                        Code::L7Rsp,
                        "connection closed without a response",
                    );
                }
                Ok(0) => http.judge.eof(),
                Ok(n) => match http.judge.feed(&buf[..n]) {
                    Some(v) => v,
                    None => continue,
                },
                Err(e) if !answered => {
                    self.keep_session(tls, false);
                    return self.failed_unanswered(now, Code::L7Rsp, e);
                }
                Err(e) => {
                    self.keep_session(tls, false);
                    return self.done(now, Code::L7Rsp, e);
                }
            };
            // Kept only after a clean pass, read to its end.
            let keep = http.reuse.is_some() && verdict.code == Code::L7Ok;
            match (keep, http.judge.keep()) {
                (true, Keep::More) if r.is_ok_and(|n| n > 0) => {
                    http.pending = Some(verdict);
                    continue;
                }
                (true, Keep::Yes) => {
                    self.keep = true;
                    self.keep_session(tls, true);
                    return Some(Step::Done(self.outcome(
                        Outcome::new(verdict.code, verdict.detail, Default::default()),
                        now,
                    )));
                }
                _ => {}
            }
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
    /// connection freed without it as not resumable. A connection kept
    /// for the next check is not shut down (its session is remembered
    /// again when it is retired).
    fn keep_session(&mut self, tls: &mut TlsCache, ok: bool) {
        #[cfg(feature = "https")]
        if let (Stream::Tls(s), Some(http)) = (&mut self.stream, &self.http) {
            if let Some((name, verify)) = &http.tls {
                let key = (http.peer.0, http.peer.1, name.clone(), *verify);
                let session = if ok {
                    if !self.keep {
                        let _ = s.shutdown();
                    }
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

/// A connecting check in flight.
struct InFlight {
    probe: ConnProbe,
    interest: Interest,
    /// What it checks (a reconnect starts it again).
    spec: Arc<ProbeSpec>,
}

/// TCP, HTTP and HTTPS probes of one prober thread.
#[derive(Default)]
pub(crate) struct ConnKind {
    probes: Slots<InFlight>,
    tls: TlsCache,
}

impl ConnKind {
    fn started(&mut self, slot: usize, spec: &Arc<ProbeSpec>, s: Started) -> Start {
        match s {
            Started::Pending(probe, interest) => {
                let spec = Arc::clone(spec);
                self.probes.put(
                    slot,
                    InFlight {
                        probe,
                        interest,
                        spec,
                    },
                );
                Start::Pending
            }
            Started::Finished(o, kept) => Start::Done(o, kept),
        }
    }
}

impl Kind for ConnKind {
    fn start(
        &mut self,
        slot: usize,
        spec: &Arc<ProbeSpec>,
        kept: Option<Kept>,
        now: Instant,
    ) -> Start {
        let s = ConnProbe::start(spec, now, &mut self.tls, kept);
        self.started(slot, spec, s)
    }

    fn watch(&self, add: &mut dyn FnMut(RawFd, Interest, u32)) {
        for (slot, f) in self.probes.iter() {
            add(f.probe.fd(), f.interest, slot as u32);
        }
    }

    fn ready(&mut self, handle: u32, error: bool, now: Instant, out: &mut Vec<Event>) {
        let slot = handle as usize;
        let Some(f) = self.probes.get_mut(slot) else {
            return;
        };
        match f.probe.ready(now, &mut self.tls, error) {
            Step::Wait(i) => f.interest = i,
            Step::Done(outcome) => {
                let kept = self.probes.take(slot).and_then(|f| f.probe.into_kept());
                out.push(Event::Done {
                    slot,
                    outcome,
                    kept,
                });
            }
            Step::Reconnect => {
                let (started, spec) = (f.probe.started, Arc::clone(&f.spec));
                self.probes.take(slot);
                let s = ConnProbe::reconnect(&spec, started, now, &mut self.tls);
                match self.started(slot, &spec, s) {
                    Start::Done(outcome, kept) => out.push(Event::Done {
                        slot,
                        outcome,
                        kept,
                    }),
                    _ => out.push(Event::Restarted { slot }),
                }
            }
        }
    }

    /// The outcome says in which phase the check was; its socket closes
    /// with RST.
    fn timed_out(&mut self, slot: usize, now: Instant) -> Option<Outcome> {
        Some(self.probes.take(slot)?.probe.timed_out(now))
    }

    fn cancel(&mut self, slot: usize) {
        self.probes.take(slot);
    }
}

fn io_detail(e: &std::io::Error) -> Cow<'static, str> {
    match e.raw_os_error() {
        Some(n) => errno_detail(Errno::from_raw(n)),
        None => e.to_string().into(),
    }
}

#[cfg(test)]
mod tests {
    //! The kind against real sockets on loopback, driven by `poll(2)` as
    //! the engine drives it (no engine, no threads of the checker).

    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::time::Duration;

    use super::super::kind::poll_once;
    use super::*;
    use crate::config::{HttpMethod, HttpProbe, StatusRange};

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn tcp(port: u16) -> Arc<ProbeSpec> {
        Arc::new(ProbeSpec {
            address: LOOPBACK,
            probe: Probe::Tcp {
                port,
                mode: crate::config::TcpMode::Connect,
            },
            timeout: Duration::from_secs(2),
            source: None,
            request: Arc::from(&[][..]),
        })
    }

    fn http(port: u16, reuse: Option<Duration>) -> Arc<ProbeSpec> {
        let h = HttpProbe {
            port,
            path: "/healthz".into(),
            host: None,
            method: HttpMethod::Get,
            expect_status: vec![StatusRange { lo: 200, hi: 299 }],
            expect_body: None,
            tls: None,
            reuse,
        };
        let request = super::super::http::request(&h, LOOPBACK).into();
        Arc::new(ProbeSpec {
            address: LOOPBACK,
            probe: Probe::Http(h),
            timeout: Duration::from_secs(2),
            source: None,
            request,
        })
    }

    /// Polls until the kind reports an event: the events of that
    /// readiness.
    fn drive(kind: &mut ConnKind) -> Vec<Event> {
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let out = poll_once(kind, 100);
            if !out.is_empty() {
                return out;
            }
        }
        panic!("no event within 3 s");
    }

    /// The outcome of a probe that started as `slot`, what it kept, and
    /// how often it was restarted on the way.
    fn run(
        kind: &mut ConnKind,
        slot: usize,
        spec: &Arc<ProbeSpec>,
        kept: Option<Kept>,
    ) -> (Outcome, Option<Kept>, usize) {
        match kind.start(slot, spec, kept, Instant::now()) {
            Start::Done(o, k) => return (o, k, 0),
            Start::Pending => {}
            Start::Instead(t) => panic!("sent to {t:?}"),
        }
        let mut restarts = 0;
        loop {
            for e in drive(kind) {
                match e {
                    Event::Done {
                        slot: s,
                        outcome,
                        kept,
                    } if s == slot => return (outcome, kept, restarts),
                    Event::Restarted { slot: s } => {
                        assert_eq!(s, slot);
                        restarts += 1;
                    }
                    Event::Done { slot: s, .. } => panic!("slot {s} ended, not {slot}"),
                }
            }
        }
    }

    /// Reads one request head from `c`; `false` at its end.
    fn read_head(c: &mut TcpStream) -> bool {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match c.read(&mut b) {
                Ok(1) => head.push(b[0]),
                _ => return false,
            }
        }
        true
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    #[test]
    fn tcp_connected_and_refused() {
        let l = TcpListener::bind((LOOPBACK, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let mut kind = ConnKind::default();
        let (o, kept, _) = run(&mut kind, 0, &tcp(port), None);
        assert_eq!(
            (o.code, &*o.detail, o.connection),
            (Code::L4Ok, "connected", None)
        );
        assert!(kept.is_none());
        drop(l);
        let (o, _, _) = run(&mut kind, 0, &tcp(port), None);
        assert_eq!((o.code, &*o.detail), (Code::L4Con, "connection refused"));
        assert!(kind.probes.iter().next().is_none(), "the kind let go");
    }

    #[test]
    fn an_unanswered_request_times_out_in_its_phase_and_closes() {
        let l = TcpListener::bind((LOOPBACK, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let mut kind = ConnKind::default();
        assert!(matches!(
            kind.start(4, &http(port, None), None, Instant::now()),
            Start::Pending
        ));
        let (mut c, _) = l.accept().unwrap();
        // Connected and written; now waiting for the answer.
        for _ in 0..3 {
            assert!(poll_once(&mut kind, 20).is_empty());
        }
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        assert!(read_head(&mut c), "the request came");
        let o = kind.timed_out(4, Instant::now()).unwrap();
        assert_eq!(
            (o.code, &*o.detail),
            (Code::L7Tout, "timeout after 2000 ms")
        );
        assert!(kind.timed_out(4, Instant::now()).is_none(), "let go");
        // Closed with RST, not left open.
        let mut b = [0u8; 1];
        assert!(c.read(&mut b).map_or(true, |n| n == 0));
    }

    #[test]
    fn cancel_closes_silently() {
        let l = TcpListener::bind((LOOPBACK, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let mut kind = ConnKind::default();
        assert!(matches!(
            kind.start(0, &http(port, None), None, Instant::now()),
            Start::Pending
        ));
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        kind.cancel(0);
        let mut watched = 0;
        kind.watch(&mut |_, _, _| watched += 1);
        assert_eq!(watched, 0);
        // Closed: the end (or a reset) comes, no request ever does.
        let mut b = [0u8; 512];
        assert!(
            c.read(&mut b)
                .map_or_else(|e| e.kind() != std::io::ErrorKind::WouldBlock, |n| n == 0)
        );
    }

    #[test]
    fn http_pass_and_status_failure() {
        let l = TcpListener::bind((LOOPBACK, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for answer in [OK, b"HTTP/1.1 503 No\r\nContent-Length: 0\r\n\r\n"] {
                let (mut c, _) = l.accept().unwrap();
                assert!(read_head(&mut c));
                c.write_all(answer).unwrap();
            }
        });
        let mut kind = ConnKind::default();
        let (o, kept, _) = run(&mut kind, 0, &http(port, None), None);
        assert_eq!(o.code, Code::L7Ok, "{o:?}");
        assert!(kept.is_none(), "kept without reuse-connection");
        let (o, _, _) = run(&mut kind, 0, &http(port, None), None);
        assert_eq!((o.code, &*o.detail), (Code::L7Sts, "HTTP 503"));
        server.join().unwrap();
    }

    /// A kept connection serves the next check; closed by the backend at
    /// the second request (before any answer), the check starts again on
    /// a new connection under the same slot and passes.
    #[test]
    fn kept_reused_then_restarted_after_a_close_at_the_request() {
        let l = TcpListener::bind((LOOPBACK, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            for _ in 0..2 {
                assert!(read_head(&mut c));
                c.write_all(OK).unwrap();
            }
            assert!(read_head(&mut c), "third request");
            // Closed without an answer, once the check waits for one (an
            // end seen while still starting restarts it inside `start`).
            std::thread::sleep(Duration::from_millis(50));
            drop(c);
            let (mut c, _) = l.accept().unwrap();
            assert!(read_head(&mut c));
            c.write_all(OK).unwrap();
        });
        let spec = http(port, Some(Duration::from_secs(30)));
        let mut kind = ConnKind::default();
        let (o, kept, _) = run(&mut kind, 1, &spec, None);
        assert_eq!((o.code, o.connection), (Code::L7Ok, Some(Connection::New)));
        let (o, kept, restarts) = run(&mut kind, 1, &spec, Some(kept.expect("kept")));
        assert_eq!(
            (o.code, o.connection, restarts),
            (Code::L7Ok, Some(Connection::Reused), 0)
        );
        // The third check: restarted once on the way, then a pass.
        let (o, kept, restarts) = run(&mut kind, 1, &spec, Some(kept.expect("kept")));
        assert_eq!(
            (o.code, o.connection, restarts),
            (Code::L7Ok, Some(Connection::Reconnected), 1),
            "{o:?}"
        );
        drop(kept);
        server.join().unwrap();
    }
}
