//! Probing backends: result vocabulary, probe kinds, and the engine.
//!
//! Each probe kind sits behind one interface ([`kind::Kind`]) in its own
//! file: [`icmp`] (echo), [`syn`] (half-open TCP), [`conn`] (TCP, HTTP and
//! HTTPS over a socket per check, with [`stream`] its transport, [`http`]
//! its request and judge, [`tls`] its handshake). The [`engine`] runs many
//! probes at once on a timing wheel ([`schedule`]) and `ppoll(2)`, and
//! knows no kind's packets.

pub(crate) mod conn;
pub(crate) mod engine;
pub(crate) mod http;
pub(crate) mod icmp;
pub(crate) mod idhash;
pub(crate) mod kind;
pub mod schedule;
pub(crate) mod shared;
pub(crate) mod stream;
pub mod syn;
#[cfg(feature = "https")]
pub(crate) mod tls;

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::config::{HealthCheck, Probe};

/// Result codes in HAProxy's vocabulary, plus `disabled`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Code {
    /// Layer 4 (or ICMP echo) passed.
    L4Ok,
    /// Layer 4 timed out (connect or echo).
    L4Tout,
    /// Layer 4 connection problem (refused, unreachable).
    L4Con,
    /// TLS handshake passed.
    L6Ok,
    /// TLS handshake timed out.
    L6Tout,
    /// TLS handshake failed.
    L6Rsp,
    /// HTTP check passed.
    L7Ok,
    /// No complete HTTP answer in time.
    L7Tout,
    /// Malformed or unexpected HTTP answer (including body mismatch).
    L7Rsp,
    /// HTTP status not expected.
    L7Sts,
    /// Synthetic: disabled by an operator.
    #[serde(rename = "disabled")]
    Disabled,
    /// The probe could not be attempted for a local reason (no descriptor,
    /// no buffer, local policy, no namespace): not a verdict on the
    /// backend, whose state it leaves alone.
    Local,
}

impl Code {
    /// Every code, for metrics.
    pub const ALL: [Code; 12] = [
        Code::L4Ok,
        Code::L4Tout,
        Code::L4Con,
        Code::L6Ok,
        Code::L6Tout,
        Code::L6Rsp,
        Code::L7Ok,
        Code::L7Tout,
        Code::L7Rsp,
        Code::L7Sts,
        Code::Disabled,
        Code::Local,
    ];

    /// The code named `word` ([`Code::as_str`]).
    pub fn parse(word: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == word)
    }

    /// HAProxy's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::L4Ok => "L4OK",
            Code::L4Tout => "L4TOUT",
            Code::L4Con => "L4CON",
            Code::L6Ok => "L6OK",
            Code::L6Tout => "L6TOUT",
            Code::L6Rsp => "L6RSP",
            Code::L7Ok => "L7OK",
            Code::L7Tout => "L7TOUT",
            Code::L7Rsp => "L7RSP",
            Code::L7Sts => "L7STS",
            Code::Disabled => "disabled",
            Code::Local => "LOCAL",
        }
    }

    /// Whether the probe counts as a pass.
    pub fn passed(self) -> bool {
        matches!(self, Code::L4Ok | Code::L6Ok | Code::L7Ok)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which readiness a probe's socket waits for (shared by the connection
/// and TLS state machines, so neither depends on the other for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Readable.
    Read,
    /// Writable.
    Write,
}

/// Identifies a backend to the engine (assigned by the checker); the
/// schedule and the engine share it.
pub type BackendId = u32;

/// How an HTTP(S) check that keeps its connection (`reuse-connection`)
/// got the connection it ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Connection {
    /// A new one: the first check, the kept one reached `reuse-lifetime`,
    /// or the last check did not end in a clean pass.
    New,
    /// The connection kept from the last check.
    Reused,
    /// The kept one had been closed or reset by the backend (seen before
    /// the request, or when it was sent): the check ran on a new one.
    Reconnected,
}

impl Connection {
    /// Every kind.
    pub const ALL: [Connection; 3] = [Connection::New, Connection::Reused, Connection::Reconnected];

    /// The kind named `word` ([`Connection::as_str`]).
    pub fn parse(word: &str) -> Option<Connection> {
        Connection::ALL.into_iter().find(|c| c.as_str() == word)
    }

    /// `new`, `reused`, `reconnected`: the word in logs, `show backend`
    /// and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Connection::New => "new",
            Connection::Reused => "reused",
            Connection::Reconnected => "reconnected",
        }
    }
}

impl std::fmt::Display for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Verdict.
    pub code: Code,
    /// Human detail: `HTTP 503`, `connection refused`, `timeout after 1000 ms`.
    /// Usually a constant, so it is borrowed rather than allocated per probe.
    pub detail: Cow<'static, str>,
    /// Time from start to verdict.
    pub duration: Duration,
    /// The connection it ran on, for checks that keep theirs (`None`
    /// for every other check).
    pub connection: Option<Connection>,
}

impl Outcome {
    /// Builds an outcome.
    pub fn new(code: Code, detail: impl Into<Cow<'static, str>>, duration: Duration) -> Outcome {
        Outcome {
            code,
            detail: detail.into(),
            duration,
            connection: None,
        }
    }
}

/// Everything a prober needs to probe one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// Backend address.
    pub address: IpAddr,
    /// Kind and parameters.
    pub probe: Probe,
    /// Hard limit for one probe.
    pub timeout: Duration,
    /// Source address of the backend's family, if configured.
    pub source: Option<IpAddr>,
    /// The HTTP request, made once (empty for other kinds).
    pub request: std::sync::Arc<[u8]>,
}

impl ProbeSpec {
    /// The spec for a backend at `address` checked by `hc`. An
    /// IPv4-mapped address (`::ffff:a.b.c.d`) is probed over IPv4 at
    /// a.b.c.d, the host a dual-stack socket would reach.
    pub fn new(address: IpAddr, hc: &HealthCheck) -> ProbeSpec {
        let address = address.to_canonical();
        let source = match address {
            IpAddr::V4(_) => hc.probe_ipv4_src.map(IpAddr::V4),
            IpAddr::V6(_) => hc.probe_ipv6_src.map(IpAddr::V6),
        };
        let request = match &hc.probe {
            Probe::Http(h) => http::request(h, address).into(),
            _ => std::sync::Arc::from(&[][..]),
        };
        ProbeSpec {
            address,
            probe: hc.probe.clone(),
            timeout: hc.timeout,
            source,
            request,
        }
    }
}

/// `timeout after 1000 ms`.
pub fn timeout_detail(timeout: Duration) -> String {
    format!("timeout after {} ms", timeout.as_millis())
}

/// Whether an error from creating, binding or connecting a probe's socket
/// is this host's problem (descriptors, memory, buffers, ports, local
/// policy) rather than the backend's.
pub fn local_errno(e: nix::errno::Errno) -> bool {
    use nix::errno::Errno::*;
    matches!(
        e,
        EMFILE | ENFILE | ENOBUFS | ENOMEM | EPERM | EACCES | EAGAIN | EADDRNOTAVAIL | EAFNOSUPPORT
    )
}

/// Short description of an OS error for a probe detail.
pub fn errno_detail(e: nix::errno::Errno) -> Cow<'static, str> {
    use nix::errno::Errno::*;
    match e {
        ECONNREFUSED => "connection refused".into(),
        ECONNRESET => "connection reset".into(),
        EHOSTUNREACH => "host unreachable".into(),
        ENETUNREACH => "network unreachable".into(),
        ETIMEDOUT => "connection timed out".into(),
        EADDRNOTAVAIL => "source address not available".into(),
        EACCES | EPERM => "not permitted".into(),
        other => other.desc().to_lowercase().into(),
    }
}
