//! TLS for HTTPS probes, through the system OpenSSL, non-blocking.
//!
//! OpenSSL (Debian's libssl3) rather than a pure-Rust stack: security fixes
//! arrive with Debian's updates, the trust store is the system's
//! (`/etc/ssl/certs`), and the binary grows by kilobytes, not megabytes.
//! The handshake runs on a non-blocking socket: OpenSSL says whether it
//! wants to read or write, and the engine polls for exactly that.

use std::net::TcpStream;

use openssl::ssl::{
    ErrorCode, HandshakeError, MidHandshakeSslStream, SslConnector, SslMethod, SslSession,
    SslStream, SslVerifyMode,
};
use openssl::x509::X509VerifyResult;

use super::Interest;

/// Per-thread TLS client context (loading the trust store is not free).
pub struct TlsContext {
    connector: SslConnector,
}

/// Progress of a handshake.
pub enum Handshake {
    /// Done: encrypted stream ready.
    Done(Box<SslStream<TcpStream>>),
    /// Needs readiness, then [`TlsContext::resume`].
    Want(Interest, Box<MidHandshakeSslStream<TcpStream>>),
    /// Failed; the detail says why.
    Failed(String),
}

/// Result of one TLS read or write attempt.
pub enum Io {
    /// Bytes moved (0 = clean close on read).
    Done(usize),
    /// Try again when ready.
    Want(Interest),
    /// Connection failed.
    Failed(String),
}

impl TlsContext {
    /// Builds the context with the system trust store.
    pub fn new() -> Result<TlsContext, String> {
        let mut b = SslConnector::builder(SslMethod::tls_client())
            .map_err(|e| format!("TLS setup failed: {e}"))?;
        // A connection kept between checks (`reuse-connection`) is idle
        // nearly all the time: its 2 × 17 KB record buffers go back to
        // the allocator between records (1,000 kept connections: tens of
        // MB less).
        b.set_mode(openssl::ssl::SslMode::RELEASE_BUFFERS);
        Ok(TlsContext {
            connector: b.build(),
        })
    }

    /// Starts a handshake; `name` is the SNI and certificate name (an IP
    /// literal means no SNI and verification against the address).
    /// `session`, from an earlier connection of this context to the same
    /// backend, is offered for resumption (the server may decline: then a
    /// full handshake, verified as always).
    pub fn connect(
        &self,
        stream: TcpStream,
        name: &str,
        verify: bool,
        session: Option<&SslSession>,
    ) -> Handshake {
        let mut cfg = match self.connector.configure() {
            Ok(c) => c,
            Err(e) => return Handshake::Failed(format!("TLS setup failed: {e}")),
        };
        if !verify {
            cfg.set_verify(SslVerifyMode::NONE);
            cfg = cfg.verify_hostname(false);
        }
        let mut ssl = match cfg.into_ssl(name) {
            Ok(s) => s,
            Err(e) => return Handshake::Failed(format!("TLS setup failed: {e}")),
        };
        if let Some(sess) = session {
            // SAFETY: every session offered here was taken from a
            // connection of this same context (TlsCache keeps one context
            // per prober thread, and its sessions with it).
            let _ = unsafe { ssl.set_session(sess) };
        }
        step(ssl.connect(stream))
    }

    /// Continues a handshake after readiness.
    pub fn resume(mid: MidHandshakeSslStream<TcpStream>) -> Handshake {
        step(mid.handshake())
    }
}

fn step(r: Result<SslStream<TcpStream>, HandshakeError<TcpStream>>) -> Handshake {
    match r {
        Ok(s) => Handshake::Done(Box::new(s)),
        Err(HandshakeError::WouldBlock(mid)) => {
            let interest = if mid.error().code() == ErrorCode::WANT_WRITE {
                Interest::Write
            } else {
                Interest::Read
            };
            Handshake::Want(interest, Box::new(mid))
        }
        Err(HandshakeError::Failure(mid)) => {
            let vr = mid.ssl().verify_result();
            if vr != X509VerifyResult::OK {
                Handshake::Failed(format!("certificate verify failed: {}", vr.error_string()))
            } else {
                Handshake::Failed(format!("TLS handshake failed: {}", brief(mid.error())))
            }
        }
        Err(HandshakeError::SetupFailure(e)) => Handshake::Failed(format!("TLS setup failed: {e}")),
    }
}

fn brief(e: &openssl::ssl::Error) -> String {
    if let Some(io) = e.io_error() {
        return io.to_string();
    }
    if let Some(stack) = e.ssl_error() {
        if let Some(first) = stack.errors().first() {
            return first
                .reason()
                .map(str::to_string)
                .unwrap_or_else(|| first.to_string());
        }
    }
    match e.code() {
        ErrorCode::SYSCALL => "connection closed during handshake".into(),
        ErrorCode::ZERO_RETURN => "peer closed the connection".into(),
        _ => e.to_string(),
    }
}

fn io_result(r: Result<usize, openssl::ssl::Error>) -> Io {
    match r {
        Ok(n) => Io::Done(n),
        Err(e) => match e.code() {
            ErrorCode::WANT_READ => Io::Want(Interest::Read),
            ErrorCode::WANT_WRITE => Io::Want(Interest::Write),
            ErrorCode::ZERO_RETURN => Io::Done(0),
            // An EOF without close_notify: many servers do this; treat as close.
            ErrorCode::SYSCALL if e.io_error().is_none() => Io::Done(0),
            _ => Io::Failed(brief(&e)),
        },
    }
}

/// Reads decrypted bytes.
pub fn read(s: &mut SslStream<TcpStream>, buf: &mut [u8]) -> Io {
    io_result(s.ssl_read(buf))
}

/// Writes bytes to be encrypted.
pub fn write(s: &mut SslStream<TcpStream>, buf: &[u8]) -> Io {
    io_result(s.ssl_write(buf))
}
