//! The transport under a connecting check: its socket's stream (TCP or
//! TLS), how it closes (RST), the connection one check leaves for the next
//! ([`Kept`], with the rules for when it may serve), and each prober
//! thread's TLS context and sessions ([`TlsCache`]).

use std::net::{IpAddr, TcpStream};
use std::os::fd::{OwnedFd, RawFd};
use std::time::Instant;

use nix::errno::Errno;

/// A probe's socket in each of its lives.
pub(crate) enum Stream {
    /// Connecting (or connected, for a plain TCP check).
    Connecting(OwnedFd),
    /// Connected, for plain HTTP.
    Plain(TcpStream),
    /// In the TLS handshake.
    #[cfg(feature = "https")]
    Handshaking(Box<openssl::ssl::MidHandshakeSslStream<TcpStream>>),
    /// TLS established.
    #[cfg(feature = "https")]
    Tls(Box<openssl::ssl::SslStream<TcpStream>>),
    /// Closed (with RST): nothing left to close.
    Closed,
}

/// A connection kept between two checks of one backend (one job of one
/// prober thread: never shared across backends, TLS names or network
/// namespaces). Dropped, it closes with RST like every probe socket.
pub(crate) struct Kept {
    /// Its socket.
    pub(crate) fd: RawFd,
    /// Its stream (never [`Stream::Connecting`]).
    pub(crate) stream: Stream,
    /// When the TCP connection was made.
    pub(crate) opened: Instant,
}

impl Kept {
    /// Whether the next check may run on it: younger than `lifetime`
    /// (`Err(false)`: retire it, a new connection proves the connect path
    /// again), and nothing came from the backend while it was idle
    /// (`Err(true)`: it closed or reset the connection, or sent bytes
    /// nobody asked for, such as a `408` before closing).
    pub(crate) fn usable(
        &mut self,
        now: Instant,
        lifetime: std::time::Duration,
    ) -> Result<(), bool> {
        if now.saturating_duration_since(self.opened) >= lifetime {
            return Err(false);
        }
        let mut byte = [0u8; 1];
        // SAFETY: `self.fd` is the open socket of `self.stream`; the
        // buffer is a live local of the length passed.
        let n = unsafe {
            nix::libc::recv(
                self.fd,
                byte.as_mut_ptr().cast(),
                1,
                nix::libc::MSG_PEEK | nix::libc::MSG_DONTWAIT,
            )
        };
        if n < 0 && Errno::last() == Errno::EAGAIN {
            return Ok(()); // idle and open
        }
        if n <= 0 {
            return Err(true); // closed (0) or reset (error)
        }
        match &mut self.stream {
            // TLS records may arrive while idle (session tickets, a
            // renegotiation request, a key update): OpenSSL handles them;
            // only application data or the end make it unusable.
            #[cfg(feature = "https")]
            Stream::Tls(s) => match super::tls::read(s, &mut byte) {
                super::tls::Io::Want(_) => Ok(()),
                _ => Err(true),
            },
            _ => Err(true),
        }
    }

    /// Ends it: TLS says close_notify first, so its session stays
    /// resumable for the new connection.
    pub(crate) fn retire(
        mut self,
        tls: &mut TlsCache,
        key: Option<(IpAddr, u16, &(String, bool))>,
    ) {
        #[cfg(feature = "https")]
        if let (Stream::Tls(s), Some((ip, port, (name, verify)))) = (&mut self.stream, key) {
            let _ = s.shutdown();
            let session = s.ssl().session().map(ToOwned::to_owned);
            tls.keep((ip, port, name.clone(), *verify), session);
        }
        #[cfg(not(feature = "https"))]
        let _ = (tls, key);
        abort(self.fd, &mut self.stream);
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        abort(self.fd, &mut self.stream);
    }
}

/// Closes `stream` (whose socket is `fd`) with RST, as HAProxy ends its
/// checks: neither side keeps a TIME_WAIT or exchanges FINs per probe.
pub(crate) fn abort(fd: RawFd, stream: &mut Stream) {
    if !matches!(stream, Stream::Closed) {
        let linger = nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: `fd` is the open socket of `stream`, closed only below;
        // the value is a live `linger`.
        unsafe {
            nix::libc::setsockopt(
                fd,
                nix::libc::SOL_SOCKET,
                nix::libc::SO_LINGER,
                (&linger as *const nix::libc::linger).cast(),
                std::mem::size_of::<nix::libc::linger>() as nix::libc::socklen_t,
            );
        }
        *stream = Stream::Closed;
    }
}

/// The TLS context every HTTPS probe of a prober thread uses, made on
/// first use (or the reason it could not be; empty without HTTPS), and the
/// last session of each HTTPS backend, offered for resumption as HAProxy
/// does for its checks: the abbreviated handshake skips the certificate
/// and its verification (done on the full handshake that made the session).
#[derive(Default)]
pub(crate) struct TlsCache {
    #[cfg(feature = "https")]
    context: Option<Result<super::tls::TlsContext, String>>,
    #[cfg(feature = "https")]
    sessions: std::collections::HashMap<SessionKey, openssl::ssl::SslSession>,
}

/// Whose session: backend address, port, TLS name, and whether it was
/// verified (a session made without verification must never let a
/// verifying check skip it).
#[cfg(feature = "https")]
pub(crate) type SessionKey = (IpAddr, u16, String, bool);

impl TlsCache {
    /// The session kept for `key`.
    #[cfg(feature = "https")]
    pub(crate) fn session(&self, key: &SessionKey) -> Option<&openssl::ssl::SslSession> {
        self.sessions.get(key)
    }

    /// Keeps `session` for `key` (`None`: forgets it, after a failure).
    #[cfg(feature = "https")]
    pub(crate) fn keep(&mut self, key: SessionKey, session: Option<openssl::ssl::SslSession>) {
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
    /// The context, made on first use.
    pub(crate) fn get(&mut self) -> Result<&super::tls::TlsContext, String> {
        self.context
            .get_or_insert_with(super::tls::TlsContext::new)
            .as_ref()
            .map_err(Clone::clone)
    }
}
