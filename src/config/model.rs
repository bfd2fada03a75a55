//! The validated configuration: every default applied, every rule checked.
//!
//! Other modules only ever see these types, so they never re-check what the
//! configuration already guarantees (a pool's backend exists, a weight is at
//! most 100, a frontend's backends share one address family).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The whole of `maglev.yaml`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `maglev.healthchecker`.
    pub healthchecker: HealthChecker,
    /// `maglev.vpp`.
    pub vpp: Vpp,
    /// `maglev.healthchecks`, by name.
    pub healthchecks: BTreeMap<String, HealthCheck>,
    /// `maglev.backends`, by name.
    pub backends: BTreeMap<String, Backend>,
    /// `maglev.frontends`, by name.
    pub frontends: BTreeMap<String, Frontend>,
    /// `maglev.announce`: `None` announces nothing (nothing is written).
    pub announce: Option<Announce>,
    /// What was accepted although odd (the original accepted it): logged
    /// once per load as `config-warning`, printed by `--check`.
    pub warnings: Vec<super::Problem>,
}

/// Settings of the probing machinery as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthChecker {
    /// Transitions kept per backend for `show backend`.
    pub transition_history: usize,
    /// Network namespace (`/run/netns/<name>`) every probe runs in.
    pub netns: Option<String>,
    /// Number of prober threads.
    pub threads: usize,
}

/// How to reach VPP and how to program its lb plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpp {
    /// Binary API socket; `None` (`api-socket: ""`) disables VPP integration.
    pub api_socket: Option<PathBuf>,
    /// Stats segment socket; `None` (`stats-socket: ""`) disables counters.
    pub stats_socket: Option<PathBuf>,
    /// How often the stats segment is scraped (`vpp.stats-interval`).
    pub stats_interval: Duration,
    /// `maglev.vpp.lb`.
    pub lb: LbSettings,
}

/// `maglev.vpp.lb`: the plugin's global conf plus reconciliation timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbSettings {
    /// GRE4 encapsulation source; required when an IPv4 frontend exists.
    pub ipv4_src_address: Option<Ipv4Addr>,
    /// GRE6 encapsulation source; required when an IPv6 frontend exists.
    pub ipv6_src_address: Option<Ipv6Addr>,
    /// Established-flow table buckets per worker (a power of two).
    pub sticky_buckets_per_core: u32,
    /// Idle time after which an established flow is forgotten (1..120 s).
    pub flow_timeout: Duration,
    /// Period of the full reconciliation that repairs drift.
    pub sync_interval: Duration,
    /// Hands-off window after start (see the warmup in `maglevd(8)`).
    pub startup_min_delay: Duration,
    /// When warmup ends and everything is programmed regardless.
    pub startup_max_delay: Duration,
}

/// `maglev.announce`: the VIPs this router can serve, announced to BGP
/// through BIRD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// `announce.bird`.
    pub bird: Bird,
    /// An address announces again only after this long servable.
    pub hold_down: Duration,
    /// argv called per change with `<frontend> <address> announce|withdraw
    /// <reason>` appended (`None`: none).
    pub notify: Option<Vec<String>>,
}

/// `announce.bird`: the BIRD 2 fragment maglevd writes and how BIRD is
/// told to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bird {
    /// The fragment (`define <set> = [ ... ];` lines).
    pub file: PathBuf,
    /// Name of the IPv4 prefix set.
    pub ipv4_set: String,
    /// Name of the IPv6 prefix set.
    pub ipv6_set: String,
    /// argv run after each write (no shell).
    pub reload: Vec<String>,
    /// The reload is killed after this long.
    pub reload_timeout: Duration,
}

/// When a frontend makes its VIP address announced (`frontends.*.announce`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AnnounceMode {
    /// While VPP holds it and it has a serving backend (the default).
    #[default]
    Healthy,
    /// While VPP holds it, serving backend or not.
    Always,
    /// It never makes its address announced.
    Never,
}

impl AnnounceMode {
    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            AnnounceMode::Healthy => "healthy",
            AnnounceMode::Always => "always",
            AnnounceMode::Never => "never",
        }
    }
}

/// One named health check: how to probe and how to judge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// What a probe does.
    pub probe: Probe,
    /// Probe period while the backend is fully up.
    pub interval: Duration,
    /// Probe period while the backend is unknown or degraded.
    pub fast_interval: Duration,
    /// Probe period once the backend is fully down.
    pub down_interval: Duration,
    /// Hard limit on one probe.
    pub timeout: Duration,
    /// Consecutive passes to go up.
    pub rise: u32,
    /// Consecutive failures to go down.
    pub fall: u32,
    /// Source address of IPv4 probes.
    pub probe_ipv4_src: Option<Ipv4Addr>,
    /// Source address of IPv6 probes.
    pub probe_ipv6_src: Option<Ipv6Addr>,
}

/// The probe a health check performs, with its type-specific parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// ICMP echo request/reply.
    Icmp,
    /// TCP handshake with `port`.
    Tcp {
        /// Destination port.
        port: u16,
        /// How the handshake is made (`params.mode`).
        mode: TcpMode,
    },
    /// HTTP or HTTPS request to `port`.
    Http(HttpProbe),
}

impl Probe {
    /// The config's `type:` word for this probe.
    pub fn check_type(&self) -> CheckType {
        match self {
            Probe::Icmp => CheckType::Icmp,
            Probe::Tcp { .. } => CheckType::Tcp,
            Probe::Http(h) if h.tls.is_some() => CheckType::Https,
            Probe::Http(_) => CheckType::Http,
        }
    }

    /// Destination port, for the kinds that have one.
    pub fn port(&self) -> Option<u16> {
        match self {
            Probe::Icmp => None,
            Probe::Tcp { port, .. } => Some(*port),
            Probe::Http(h) => Some(h.port),
        }
    }
}

/// An HTTP(S) probe's request and success criteria.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    /// Destination port.
    pub port: u16,
    /// Request path (starts with `/`).
    pub path: String,
    /// Host header; `None` means the backend's address.
    pub host: Option<String>,
    /// GET or HEAD.
    pub method: HttpMethod,
    /// Status codes that count as a pass.
    pub expect_status: Vec<StatusRange>,
    /// Substring the body must contain, if any.
    pub expect_body: Option<String>,
    /// TLS settings; present exactly for `type: https`.
    pub tls: Option<TlsSettings>,
    /// `reuse-connection: true`: the connection is kept between checks
    /// and a new one made at least this often (`reuse-lifetime`); `None`:
    /// a connection per check.
    pub reuse: Option<Duration>,
}

impl HttpProbe {
    /// Whether `status` is one of the expected codes.
    pub fn status_ok(&self, status: u16) -> bool {
        self.expect_status.iter().any(|r| r.contains(status))
    }
}

/// TLS parameters of an HTTPS probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// SNI and the name the certificate must carry; `None` means the `host`
    /// parameter, else no SNI and verification against the address.
    pub server_name: Option<String>,
    /// Verify the certificate chain and name.
    pub verify: bool,
}

/// An inclusive range of HTTP status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    /// Lowest code.
    pub lo: u16,
    /// Highest code.
    pub hi: u16,
}

impl StatusRange {
    /// Whether `status` lies in the range.
    pub fn contains(&self, status: u16) -> bool {
        (self.lo..=self.hi).contains(&status)
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// `type:` of a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    /// ICMP echo.
    Icmp,
    /// TCP connect.
    Tcp,
    /// HTTP/1.1 request.
    Http,
    /// HTTP/1.1 over TLS.
    Https,
}

impl CheckType {
    /// The config word.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckType::Icmp => "icmp",
            CheckType::Tcp => "tcp",
            CheckType::Http => "http",
            CheckType::Https => "https",
        }
    }
}

impl fmt::Display for CheckType {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a TCP check makes its handshake (`params.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TcpMode {
    /// A socket per probe, connected and reset at the SYN-ACK (HAProxy's
    /// way; the default).
    #[default]
    Connect,
    /// Half-open: the SYN is sent from one raw socket per prober thread and
    /// the SYN-ACK or RST read back through a socket filter; the kernel
    /// resets the half-open connection. Needs `CAP_NET_RAW`, else falls
    /// back to `connect`.
    Syn,
}

impl TcpMode {
    /// The config's word.
    pub fn as_str(self) -> &'static str {
        match self {
            TcpMode::Connect => "connect",
            TcpMode::Syn => "syn",
        }
    }
}

/// HTTP request method of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HttpMethod {
    /// GET: the body is read and can be matched.
    #[serde(rename = "GET")]
    Get,
    /// HEAD: cheaper, no body.
    #[serde(rename = "HEAD")]
    Head,
}

impl HttpMethod {
    /// The request-line word.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
        }
    }
}

/// One application server: an address and how to check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Becomes the VPP application server (AS) address.
    pub address: IpAddr,
    /// Name of the health check in `healthchecks`.
    pub healthcheck: String,
    /// `false` starts the backend `disabled` (no probes, weight 0, flushed).
    pub enabled: bool,
}

/// One VIP with its priority-ordered pools of backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    /// Free text shown by `maglevc`.
    pub description: String,
    /// VIP address (programmed as a /32 or /128).
    pub address: IpAddr,
    /// `None` means any protocol (only with port 0).
    pub protocol: Option<Protocol>,
    /// 0 means all ports.
    pub port: u16,
    /// Hash on source address only.
    pub src_ip_sticky: bool,
    /// Flush established flows when a backend goes down.
    pub flush_on_down: bool,
    /// Priority tiers: the first with a usable backend carries traffic.
    pub pools: Vec<Pool>,
    /// `min-healthy`: below this share (percent) of healthy backends in
    /// the serving pool, with no lower pool above it, the frontend fails
    /// open (panic mode). `None`: never.
    pub min_healthy: Option<u8>,
    /// Buckets of the VIP's Maglev new-flow table in VPP (a power of two;
    /// changing it recreates the VIP).
    pub new_flows_table_length: u32,
    /// When it makes its address announced to BGP.
    pub announce: AnnounceMode,
}

impl Frontend {
    /// Names of every backend in any pool, sorted and without repeats.
    pub fn backend_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .pools
            .iter()
            .flat_map(|p| p.backends.keys().map(String::as_str))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// A priority tier of a frontend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Pool name, unique within its frontend.
    pub name: String,
    /// Backend name → configured weight (0..=100).
    pub backends: BTreeMap<String, u8>,
    /// Backend name → its slow start (`slow-start`, the backend's own or
    /// the pool's); backends without one are not listed.
    pub slow_start: BTreeMap<String, Duration>,
}

/// L4 protocol of a VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// IP protocol 6.
    Tcp,
    /// IP protocol 17.
    Udp,
}

impl Protocol {
    /// IANA protocol number, as VPP wants it.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    /// The config word.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}
