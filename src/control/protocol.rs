//! The control protocol, defined once: every reply and every streamed event
//! as serde types, used by the server ([`super::handlers`]), by `maglevc`
//! ([`super::format`]), by `maglevd-frontend` and by the tests.
//!
//! A request is one line of command words ([`super::grammar::Command`] is
//! its parsed form). An answer is one JSON object on one line: the fields
//! of the reply type with `"ok":true` added, or a [`Failure`] with
//! `"ok":false`. Which reply type a command gets is decided by
//! [`Reply::decode`] from the command, so a client never guesses from the
//! keys it happens to find.
//!
//! `Option` fields are sent as `null` when empty (scripts see every key);
//! fields only the detailed views carry are left out of the summaries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::health::state::State;
pub use crate::health::weights::FrontendState;
pub use crate::probe::{Code, Connection};

use super::grammar::Command;
pub use crate::announce::rule::Reason;
pub use crate::checker::events::Dataplane;

/// `show version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// maglevd's version.
    pub version: String,
    /// The git commit it was built from.
    pub commit: String,
    /// maglevd's pid.
    pub pid: u32,
    /// Seconds since maglevd started.
    pub uptime_seconds: u64,
}

/// A backend's place in a frontend's pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolBackend {
    /// Backend name.
    pub name: String,
    /// Its address (`None`: the backend is not in the configuration).
    pub address: Option<String>,
    /// Configured weight, 0-100.
    pub weight: u8,
    /// Weight given to VPP now.
    pub effective_weight: u8,
    /// Flows are flushed when it is set to 0.
    pub flush: bool,
    /// Its share of the VIP's weights now (percent).
    pub share: f64,
    /// Its share of the VIP's new-flow table as VPP builds it from those
    /// weights (percent): off by more than a point when the table is too
    /// small for them.
    pub table_share: f64,
    /// Health state.
    pub state: State,
    /// Runtime enabled flag.
    pub enabled: bool,
}

/// One pool of a frontend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// Pool name.
    pub name: String,
    /// The pool that serves traffic now.
    pub active: bool,
    /// Its backends, in configuration order.
    pub backends: Vec<PoolBackend>,
}

/// Details only `show frontend` (and `set frontend`) carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontendDetail {
    /// VPP's per-VIP source-IP stickiness.
    pub src_ip_sticky: bool,
    /// Flush a backend's flows when it goes down.
    pub flush_on_down: bool,
    /// Buckets of the VIP's new-flow table.
    pub new_flows_table_length: u32,
    /// Pools, highest priority first.
    pub pools: Vec<Pool>,
    /// Operations VPP still needs to hold it as desired (0 when `vpp` is ok).
    #[serde(default)]
    pub vpp_unheld: usize,
    /// The last operation VPP refused for it, kept after it recovers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpp_refusal: Option<VppRefusal>,
}

/// `show announce`: the VIP addresses announced to BGP through BIRD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnounceState {
    /// `maglev.announce` is configured.
    pub enabled: bool,
    /// The BIRD fragment maglevd writes.
    pub file: Option<String>,
    /// `set announce withdraw` is in force (kept across restarts).
    pub maintenance: bool,
    /// Every VIP address, in address order.
    pub addresses: Vec<AnnouncedAddress>,
    /// The last run of the reload argv.
    pub last_reload: Option<AnnounceReload>,
    /// Why the last write of the file failed, if it did.
    pub write_error: Option<String>,
}

/// One address of [`AnnounceState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnouncedAddress {
    /// The VIP address.
    pub address: String,
    /// In the file BIRD reads.
    pub announced: bool,
    /// Why not (`vpp-down`, `not-programmed`, `no-serving-backend`,
    /// `warming-up`, `stopping`, `maintenance`, `never`, `hold-down`,
    /// `removed`); `null` while announced.
    pub reason: Option<Reason>,
    /// Since when (RFC 3339, UTC).
    pub since: String,
    /// The frontends at that address.
    pub frontends: Vec<String>,
}

/// The last reload of [`AnnounceState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnounceReload {
    /// When it ended (RFC 3339, UTC).
    pub at: String,
    /// `ok`, `failed` or `timeout`.
    pub result: String,
    /// What failed.
    pub detail: Option<String>,
    /// How long it ran, milliseconds.
    pub took_ms: f64,
}

/// An operation VPP refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VppRefusal {
    /// The operation (`as-add vip=... as=... weight=...`).
    pub op: String,
    /// VPP's error.
    pub error: String,
    /// When (RFC 3339, UTC).
    pub at: String,
}

/// A frontend (VIP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frontend {
    /// Frontend name.
    pub name: String,
    /// VIP address.
    pub address: String,
    /// `tcp`, `udp` or `any`.
    pub protocol: String,
    /// Port (0: all).
    pub port: u16,
    /// Free text from the configuration.
    pub description: String,
    /// Aggregate state (`up`, `down`, `unknown`, ...).
    pub state: FrontendState,
    /// The pool serving now, if any.
    pub active_pool: Option<String>,
    /// Number of distinct backends.
    pub backends: usize,
    /// What VPP holds of it: `ok`, `refused`, `pending` or `off`.
    #[serde(default)]
    pub vpp: Dataplane,
    /// Its address is announced to BGP (`null`: announcing not configured).
    #[serde(default)]
    pub announced: Option<bool>,
    /// Why its address is not announced.
    #[serde(default)]
    pub announce_reason: Option<Reason>,
    /// Pools and flags (detailed view only).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<FrontendDetail>,
}

/// The last probe of a backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastProbe {
    /// Result code (`L4OK`, `L7STS`, ...).
    pub code: Code,
    /// Human detail.
    pub detail: String,
    /// How long it took.
    pub duration_ms: f64,
    /// When it ended (RFC 3339, UTC).
    pub at: String,
    /// For a check that keeps its connection (`reuse-connection`): `new`,
    /// `reused` or `reconnected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
}

/// A state transition of a backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// Probe code behind it, if a probe caused it.
    pub code: Option<Code>,
    /// Human detail.
    pub detail: String,
    /// When (RFC 3339, UTC).
    pub at: String,
}

/// Details only `show backend` carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendDetail {
    /// Rise/fall counter.
    pub counter: u32,
    /// Its maximum (rise + fall - 1).
    pub counter_max: u32,
    /// Recent transitions, oldest first.
    pub history: Vec<Transition>,
    /// Probes by result code since the backend was added.
    pub probes: BTreeMap<String, u64>,
    /// Checks that keep their connection, by how they got it (`new`,
    /// `reused`, `reconnected`); empty for other checks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connections: BTreeMap<String, u64>,
}

/// A backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backend {
    /// Backend name.
    pub name: String,
    /// Its address.
    pub address: String,
    /// Health check name (empty: none, always up).
    pub healthcheck: String,
    /// Health state.
    pub state: State,
    /// Runtime enabled flag.
    pub enabled: bool,
    /// The last probe, if one ran.
    pub last: Option<LastProbe>,
    /// Counter and history (detailed view only).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<BackendDetail>,
}

/// The parameters of an HTTP(S) health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpParams {
    /// Request path.
    pub path: String,
    /// `Host:` header, if set.
    pub host: Option<String>,
    /// `GET` or `HEAD`.
    pub method: String,
    /// Accepted status codes and ranges (`200`, `200-399`).
    pub expect_status: Vec<String>,
    /// Regular expression the body must match, if set.
    pub expect_body: Option<String>,
    /// TLS server name (HTTPS only).
    pub tls_server_name: Option<String>,
    /// Whether the certificate is verified (HTTPS only).
    pub tls_verify: Option<bool>,
    /// Whether the connection is kept between checks.
    #[serde(default)]
    pub reuse_connection: bool,
    /// How long a kept connection serves before a new one is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_lifetime_ms: Option<u64>,
}

/// A health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// Health check name.
    pub name: String,
    /// `icmp`, `tcp`, `http` or `https`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Port probed (`None` for ICMP).
    pub port: Option<u16>,
    /// Probe interval while up.
    pub interval_ms: u64,
    /// Interval while the state is changing.
    pub fast_interval_ms: u64,
    /// Interval while down.
    pub down_interval_ms: u64,
    /// Probe timeout.
    pub timeout_ms: u64,
    /// Successes to go up.
    pub rise: u32,
    /// Failures to go down.
    pub fall: u32,
    /// IPv4 source address of probes, if set.
    pub probe_ipv4_src: Option<String>,
    /// IPv6 source address of probes, if set.
    pub probe_ipv6_src: Option<String>,
    /// How a TCP check makes its handshake: `connect` or `syn` (TCP
    /// checks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// HTTP parameters (HTTP and HTTPS checks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<HttpParams>,
}

/// `show vpp info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VppInfo {
    /// A session to VPP is up.
    pub connected: bool,
    /// VPP's version string.
    pub version: Option<String>,
    /// When VPP was built.
    pub build_date: Option<String>,
    /// Where VPP was built.
    pub build_directory: Option<String>,
    /// VPP's pid.
    pub pid: Option<u32>,
    /// Seconds since the session came up.
    pub connected_seconds: Option<u64>,
    /// When it came up (Unix seconds).
    pub connected_at: Option<u64>,
    /// When VPP booted (Unix seconds, from the stats segment).
    pub boottime: Option<u64>,
    /// Seconds since VPP booted.
    pub uptime_seconds: Option<u64>,
}

/// VPP's global lb settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LbConf {
    /// IPv4 source of GRE packets.
    pub ip4_src: String,
    /// IPv6 source of GRE packets.
    pub ip6_src: String,
    /// Sticky table size per worker.
    pub sticky_buckets_per_core: u32,
    /// Idle flow timeout, seconds.
    pub flow_timeout: u32,
}

/// What a change would do to VPP (`preview`, `config check`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    /// The change, in command words.
    pub change: String,
    /// What "now" is: `vpp` (VPP's state, read for this answer) or
    /// `maglevd` (what maglevd would program: VPP is not connected).
    pub basis: String,
    /// The `lb_conf` sent first, if any.
    pub conf: Option<String>,
    /// The VIPs that change, in the order their operations are sent.
    pub vips: Vec<PreviewVip>,
    /// How long the preview took to compute, milliseconds.
    pub took_ms: f64,
}

/// What a change does to one VIP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewVip {
    /// Its frontend (`None`: a VIP no frontend has, which a sync removes).
    pub frontend: Option<String>,
    /// Prefix (`192.0.2.1/32`).
    pub prefix: String,
    /// IP protocol number (255: any).
    pub protocol: u8,
    /// Port (0: all).
    pub port: u16,
    /// Deleted and added again: its established flows are cut.
    pub recreated: bool,
    /// New-flow table length now (`None`: no such VIP yet).
    pub buckets_before: Option<u32>,
    /// And after (`None`: removed).
    pub buckets_after: Option<u32>,
    /// The operations sent to VPP for it, in order.
    pub ops: Vec<String>,
    /// Every AS now or after.
    pub ases: Vec<PreviewAs>,
    /// Percent of new flows that would go to another AS.
    pub moved: f64,
    /// Of which to or from an AS the change touches.
    pub necessary: f64,
    /// Of which between ASes the change does not touch.
    pub collateral: f64,
    /// Table fingerprint now.
    pub fingerprint_before: Option<String>,
    /// Table fingerprint after.
    pub fingerprint_after: Option<String>,
}

/// One AS in a [`PreviewVip`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewAs {
    /// Address.
    pub address: String,
    /// The backends at that address.
    pub backends: Vec<String>,
    /// Weight now (`None`: not an AS of the VIP).
    pub weight_before: Option<u8>,
    /// Weight after.
    pub weight_after: Option<u8>,
    /// New-flow buckets now.
    pub buckets_before: u32,
    /// New-flow buckets after.
    pub buckets_after: u32,
}

/// An application server of a VIP, as VPP holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LbAs {
    /// AS address.
    pub address: String,
    /// Weight in VPP.
    pub weight: u8,
    /// New-flow buckets it holds.
    pub buckets: u32,
    /// Sticky flows pinned to it (expired ones count until their slot is
    /// reused: PROTOCOL.md §9.3).
    pub flows: u32,
    /// `false`: removed, waiting for VPP's garbage collection.
    pub in_use: bool,
}

/// A VIP as VPP holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LbVip {
    /// Prefix (`192.0.2.1/32`).
    pub prefix: String,
    /// IP protocol number (255: any).
    pub protocol: u8,
    /// Port (0: all).
    pub port: u16,
    /// Encapsulation (`gre4`, `gre6`, ...).
    pub encap: String,
    /// Source-IP stickiness, when VPP says.
    pub src_ip_sticky: Option<bool>,
    /// VPP's pool index of the VIP, when known.
    pub index: Option<u32>,
    /// Size of its new-flow table.
    pub new_flows_table_length: u32,
    /// The fingerprint of that table as the in-use ASes make it: equal on
    /// every router with the same ASes and weights.
    pub fingerprint: Option<String>,
    /// Its application servers.
    pub ases: Vec<LbAs>,
}

/// `show vpp lb state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LbState {
    /// Global settings, when VPP answered `lb_conf_get`.
    pub conf: Option<LbConf>,
    /// Every VIP.
    pub vips: Vec<LbVip>,
    /// ASes of deleted VIPs that VPP has not collected yet (a deleted VIP
    /// may share its key with a live one: these are not the live one's).
    #[serde(default)]
    pub removed: Vec<LbRemovedAs>,
}

/// An AS of a deleted VIP, awaiting VPP's garbage collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LbRemovedAs {
    /// The deleted VIP's prefix.
    pub prefix: String,
    /// Its protocol number (255: any).
    pub protocol: u8,
    /// Its port (0: all).
    pub port: u16,
    /// Its pool index in VPP.
    pub index: u32,
    /// AS address.
    pub address: String,
    /// Last weight.
    pub weight: u8,
    /// Sticky flows still pinned to it.
    pub flows: u32,
}

/// The counters of one VIP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VipCounters {
    /// The frontend it belongs to (`None`: not ours).
    pub frontend: Option<String>,
    /// Prefix.
    pub prefix: String,
    /// IP protocol number.
    pub protocol: u8,
    /// Port.
    pub port: u16,
    /// Packets that opened a flow.
    pub first: u64,
    /// Packets of known flows.
    pub next: u64,
    /// Packets not tracked (sticky table full).
    pub untracked: u64,
    /// Packets dropped for want of an AS.
    pub no_server: u64,
    /// Packets routed to the VIP's prefix.
    pub fib_packets: Option<u64>,
    /// Bytes routed to the VIP's prefix.
    pub fib_bytes: Option<u64>,
}

/// `show vpp lb counters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LbCounters {
    /// When the stats segment was read (RFC 3339, UTC).
    pub at: Option<String>,
    /// Every VIP.
    pub vips: Vec<VipCounters>,
}

/// `sync vpp lb state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Synced {
    /// `all` or `vip`.
    pub scope: String,
    /// Operations sent, in order.
    pub ops: Vec<String>,
    /// Operations VPP refused, with the reason.
    pub errors: Vec<String>,
    /// Bucket-count mismatches found (full syncs only).
    pub drift: usize,
    /// Wall time.
    pub took_ms: f64,
}

/// What a `watch events` stream carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watching {
    /// Backend transitions.
    pub backend: bool,
    /// Frontend transitions.
    pub frontend: bool,
    /// Log lines at or above this level.
    pub log: Option<String>,
    /// The stream ends after this many events.
    pub num: Option<u64>,
}

/// The body of a successful answer. Read one with [`Reply::decode`]: the
/// command, not the keys present, says which variant it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// `show version`.
    Version(Version),
    /// `show frontends`.
    Frontends {
        /// Every frontend, summarised.
        frontends: Vec<Frontend>,
    },
    /// `show frontend F`, `set frontend ...` (`None`: the frontend went
    /// away with a reload meanwhile).
    Frontend {
        /// The frontend in detail.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        frontend: Option<Frontend>,
    },
    /// `show backends`.
    Backends {
        /// Every backend, summarised.
        backends: Vec<Backend>,
    },
    /// `show backend B` (detailed), `set backend B ...` (summarised).
    Backend {
        /// The backend.
        backend: Backend,
    },
    /// `show healthchecks`.
    Healthchecks {
        /// Every health check.
        healthchecks: Vec<Healthcheck>,
    },
    /// `show healthcheck H`.
    Healthcheck {
        /// The health check.
        healthcheck: Healthcheck,
    },
    /// `show vpp info`.
    VppInfo(VppInfo),
    /// `show vpp lb state`.
    LbState(LbState),
    /// `show vpp lb counters`.
    LbCounters(LbCounters),
    /// `show announce`, `set announce ...`.
    Announce(AnnounceState),
    /// `sync vpp lb state`.
    Synced(Synced),
    /// `preview ...`.
    Preview(Preview),
    /// `config check`, `config reload`.
    Config {
        /// One-line summary.
        result: String,
        /// `config check`: what a reload would do to VPP (absent when
        /// VPP integration is off).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<Preview>,
    },
    /// `watch events`: the first line of the stream.
    Watching {
        /// What follows.
        watching: Watching,
    },
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// What went wrong, for a human.
    pub error: String,
    /// Every problem of a configuration that failed to load, one per line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl Failure {
    /// A failure with only a message.
    pub fn new(error: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            problems: Vec::new(),
        }
    }
}

/// What a stream sends after [`Reply::Watching`], one per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StreamEvent {
    /// A backend changed state.
    Backend {
        /// Backend name.
        backend: String,
        /// State before.
        from: State,
        /// State after.
        to: State,
        /// Probe code behind it, if a probe caused it.
        code: Option<Code>,
        /// Human detail.
        detail: String,
        /// When (RFC 3339, UTC).
        at: String,
    },
    /// A frontend changed state (or, first on a stream, is replayed with
    /// `from` = `to`).
    Frontend {
        /// Frontend name.
        frontend: String,
        /// State before.
        from: FrontendState,
        /// State after.
        to: FrontendState,
        /// When (RFC 3339, UTC).
        at: String,
    },
    /// A frontend's VPP status changed (`ok`, `refused`, `pending`, `off`).
    Vpp {
        /// Frontend name.
        frontend: String,
        /// Status before.
        from: Dataplane,
        /// Status after.
        to: Dataplane,
        /// VPP's refusal, when `to` is `refused`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// When (RFC 3339, UTC).
        at: String,
    },
    /// An address was announced to BGP or withdrawn.
    Announce {
        /// The VIP address.
        address: String,
        /// Now announced.
        announced: bool,
        /// Why withdrawn.
        reason: Option<String>,
        /// The frontends at that address.
        frontends: Vec<String>,
        /// When (RFC 3339, UTC).
        at: String,
    },
    /// A log line of maglevd.
    Log {
        /// `error`, `warn`, `info`, `debug`, `trace`.
        level: String,
        /// The line as logged.
        message: String,
        /// When (RFC 3339, UTC).
        at: String,
    },
    /// The client fell behind and missed this many events.
    Lagged {
        /// How many.
        missed: u64,
    },
}

#[derive(Serialize)]
struct Envelope<'a, T> {
    ok: bool,
    #[serde(flatten)]
    body: &'a T,
}

fn encode<T: Serialize>(ok: bool, body: &T) -> String {
    // Serialising these types cannot fail (string keys, no custom
    // serialisers); the fallback keeps the line valid JSON regardless.
    serde_json::to_string(&Envelope { ok, body }).unwrap_or_else(|e| {
        format!(
            "{{\"ok\":false,\"error\":{}}}",
            serde_json::Value::String(e.to_string())
        )
    })
}

/// An answer line that is not what the command gets.
#[derive(Debug)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unexpected reply: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

impl Reply {
    /// The answer line (without the newline).
    pub fn encode(&self) -> String {
        encode(true, self)
    }

    /// Reads the answer line to `cmd`: the reply, or maglevd's error.
    pub fn decode(cmd: &Command, line: &str) -> Result<Result<Reply, Failure>, DecodeError> {
        #[derive(Deserialize)]
        struct Ok {
            ok: bool,
        }
        let bad = |e: serde_json::Error| DecodeError(format!("{e}: {line}"));
        let ok: Ok = serde_json::from_str(line).map_err(bad)?;
        if !ok.ok {
            return serde_json::from_str(line).map(Err).map_err(bad);
        }
        // Each command's reply type, tried alone: an answer that has the
        // wrong shape is an error here, not a row of `-`.
        macro_rules! as_ {
            ($variant:ident { $field:ident : $ty:ty }) => {{
                #[derive(Deserialize)]
                struct B {
                    $field: $ty,
                }
                let b: B = serde_json::from_str(line).map_err(bad)?;
                Reply::$variant { $field: b.$field }
            }};
            ($variant:ident($ty:ty)) => {
                Reply::$variant(serde_json::from_str::<$ty>(line).map_err(bad)?)
            };
        }
        Ok(Ok(match cmd {
            Command::ShowVersion => as_!(Version(Version)),
            Command::ShowFrontends => as_!(Frontends {
                frontends: Vec<Frontend>
            }),
            Command::ShowFrontend(_) | Command::SetWeight { .. } => as_!(Frontend {
                frontend: Option<Frontend>
            }),
            Command::ShowBackends => as_!(Backends {
                backends: Vec<Backend>
            }),
            Command::ShowBackend(_) | Command::SetBackend(..) => as_!(Backend { backend: Backend }),
            Command::ShowHealthchecks => as_!(Healthchecks {
                healthchecks: Vec<Healthcheck>
            }),
            Command::ShowHealthcheck(_) => as_!(Healthcheck {
                healthcheck: Healthcheck
            }),
            Command::ShowVppInfo => as_!(VppInfo(VppInfo)),
            Command::ShowVppLbState => as_!(LbState(LbState)),
            Command::ShowVppLbCounters => as_!(LbCounters(LbCounters)),
            Command::ShowAnnounce | Command::SetAnnounce(_) => as_!(Announce(AnnounceState)),
            Command::SyncVppLbState(_) => as_!(Synced(Synced)),
            Command::Preview(_) => as_!(Preview(Preview)),
            Command::ConfigCheck | Command::ConfigReload => {
                #[derive(Deserialize)]
                struct B {
                    result: String,
                    #[serde(default)]
                    plan: Option<Preview>,
                }
                let b: B = serde_json::from_str(line).map_err(bad)?;
                Reply::Config {
                    result: b.result,
                    plan: b.plan,
                }
            }
            Command::Watch(_) => as_!(Watching { watching: Watching }),
        }))
    }
}

impl Failure {
    /// The answer line (without the newline).
    pub fn encode(&self) -> String {
        encode(false, self)
    }
}

impl StreamEvent {
    /// The stream line (without the newline).
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a stream line.
    pub fn decode(line: &str) -> Result<StreamEvent, DecodeError> {
        serde_json::from_str(line).map_err(|e| DecodeError(format!("{e}: {line}")))
    }
}

/// A preview with every field set.
#[cfg(test)]
fn sample_preview(change: &str) -> Preview {
    Preview {
        change: change.into(),
        basis: "vpp".into(),
        conf: Some(
            "lb-conf ip4-src=192.0.2.254 ip6-src=:: sticky-buckets=1024 flow-timeout=40".into(),
        ),
        vips: vec![PreviewVip {
            frontend: Some("web".into()),
            prefix: "198.51.100.1/32".into(),
            protocol: 6,
            port: 443,
            recreated: true,
            buckets_before: Some(1024),
            buckets_after: Some(2048),
            ops: vec![
                "as-weight vip=198.51.100.1/32:6/443 as=192.0.2.10 weight=0 flush=true".into(),
            ],
            ases: vec![PreviewAs {
                address: "192.0.2.10".into(),
                backends: vec!["b1".into()],
                weight_before: Some(100),
                weight_after: Some(0),
                buckets_before: 512,
                buckets_after: 7,
            }],
            moved: 50.5,
            necessary: 49.5,
            collateral: 1.5,
            fingerprint_before: Some("5e0c1b4f2a7d9e31".into()),
            fingerprint_after: Some("0123456789abcdef".into()),
        }],
        took_ms: 0.7,
    }
}

/// One of every reply with every field set, for the tests of the
/// formatter and of this module.
#[cfg(test)]
pub fn samples() -> Vec<(Command, Reply)> {
    use super::grammar::WatchSpec;
    use crate::checker::Action;
    let pools = vec![Pool {
        name: "primary".into(),
        active: true,
        backends: vec![PoolBackend {
            name: "web-a".into(),
            address: Some("192.0.2.10".into()),
            weight: 70,
            effective_weight: 35,
            flush: true,
            share: 37.5,
            table_share: 36.9,
            state: State::Up,
            enabled: true,
        }],
    }];
    let frontend = |detail: bool| Frontend {
        name: "web".into(),
        address: "198.51.100.1".into(),
        protocol: "tcp".into(),
        port: 443,
        description: "public web".into(),
        state: FrontendState::Up,
        active_pool: Some("primary".into()),
        backends: 3,
        vpp: Dataplane::Refused,
        announced: Some(false),
        announce_reason: Some(Reason::NotProgrammed),
        detail: detail.then(|| FrontendDetail {
            vpp_unheld: 1,
            vpp_refusal: Some(VppRefusal {
                op: "as-add vip=198.51.100.1/32:6/443 as=::1 weight=100".into(),
                error: "VNET_API_ERROR_INVALID_ADDRESS_FAMILY (-97)".into(),
                at: "2026-12-07T06:00:00Z".into(),
            }),
            src_ip_sticky: true,
            flush_on_down: true,
            new_flows_table_length: 4096,
            pools: pools.clone(),
        }),
    };
    let backend = |detail: bool| Backend {
        name: "web-a".into(),
        address: "192.0.2.10".into(),
        healthcheck: "http".into(),
        state: State::Up,
        enabled: true,
        last: Some(LastProbe {
            code: Code::L7Ok,
            detail: "HTTP 204".into(),
            duration_ms: 1.5,
            at: "2026-12-01T10:00:00Z".into(),
            connection: Some(Connection::Reused),
        }),
        detail: detail.then(|| BackendDetail {
            counter: 4,
            counter_max: 5,
            history: vec![Transition {
                from: State::Unknown,
                to: State::Up,
                code: Some(Code::L7Ok),
                detail: "rise reached".into(),
                at: "2026-12-01T09:59:58Z".into(),
            }],
            probes: BTreeMap::from([("L7OK".into(), 812), ("L4TOUT".into(), 3)]),
            connections: BTreeMap::from([("new".into(), 28), ("reused".into(), 787)]),
        }),
    };
    let healthcheck = Healthcheck {
        name: "http".into(),
        kind: "https".into(),
        port: Some(8443),
        interval_ms: 2000,
        fast_interval_ms: 500,
        down_interval_ms: 5000,
        timeout_ms: 900,
        rise: 2,
        fall: 3,
        probe_ipv4_src: Some("192.0.2.254".into()),
        probe_ipv6_src: Some("2001:db8::fe".into()),
        mode: Some("syn".into()),
        params: Some(HttpParams {
            path: "/healthz".into(),
            host: Some("www.example.net".into()),
            method: "HEAD".into(),
            expect_status: vec!["200".into(), "300-399".into()],
            expect_body: Some("^ok".into()),
            tls_server_name: Some("origin.example.net".into()),
            tls_verify: Some(true),
            reuse_connection: true,
            reuse_lifetime_ms: Some(30_000),
        }),
    };
    vec![
        (
            Command::ShowVersion,
            Reply::Version(Version {
                version: "1.2.3".into(),
                commit: "abcdef0".into(),
                pid: 4242,
                uptime_seconds: 3601,
            }),
        ),
        (
            Command::ShowFrontends,
            Reply::Frontends {
                frontends: vec![frontend(false)],
            },
        ),
        (
            Command::ShowFrontend("web".into()),
            Reply::Frontend {
                frontend: Some(frontend(true)),
            },
        ),
        (
            Command::ShowBackends,
            Reply::Backends {
                backends: vec![backend(false)],
            },
        ),
        (
            Command::ShowBackend("web-a".into()),
            Reply::Backend {
                backend: backend(true),
            },
        ),
        (
            Command::SetBackend("web-a".into(), Action::Pause),
            Reply::Backend {
                backend: backend(false),
            },
        ),
        (
            Command::ShowHealthchecks,
            Reply::Healthchecks {
                healthchecks: vec![healthcheck.clone()],
            },
        ),
        (
            Command::ShowHealthcheck("http".into()),
            Reply::Healthcheck { healthcheck },
        ),
        (
            Command::ShowVppInfo,
            Reply::VppInfo(VppInfo {
                connected: true,
                version: Some("24.10-release".into()),
                build_date: Some("2024-10-30T12:00:00".into()),
                build_directory: Some("/w/workspace/vpp".into()),
                pid: Some(777),
                connected_seconds: Some(125),
                connected_at: Some(1_796_000_000),
                boottime: Some(1_795_990_000),
                uptime_seconds: Some(10_125),
            }),
        ),
        (
            Command::ShowVppLbState,
            Reply::LbState(LbState {
                conf: Some(LbConf {
                    ip4_src: "192.0.2.1".into(),
                    ip6_src: "2001:db8::1".into(),
                    sticky_buckets_per_core: 1024,
                    flow_timeout: 40,
                }),
                vips: vec![LbVip {
                    prefix: "198.51.100.1/32".into(),
                    protocol: 6,
                    port: 443,
                    encap: "gre4".into(),
                    src_ip_sticky: Some(true),
                    index: Some(7),
                    new_flows_table_length: 1024,
                    fingerprint: Some("5e0c1b4f2a7d9e31".into()),
                    ases: vec![LbAs {
                        address: "192.0.2.10".into(),
                        weight: 35,
                        buckets: 512,
                        flows: 77,
                        in_use: true,
                    }],
                }],
                removed: vec![LbRemovedAs {
                    prefix: "198.51.100.1/32".into(),
                    protocol: 6,
                    port: 443,
                    index: 3,
                    address: "192.0.2.11".into(),
                    weight: 50,
                    flows: 4,
                }],
            }),
        ),
        (
            Command::ShowAnnounce,
            Reply::Announce(AnnounceState {
                enabled: true,
                file: Some("/run/vpp-maglev/bird-vips.conf".into()),
                maintenance: false,
                addresses: vec![
                    AnnouncedAddress {
                        address: "198.51.100.1".into(),
                        announced: true,
                        reason: None,
                        since: "2026-12-01T10:00:00Z".into(),
                        frontends: vec!["web".into()],
                    },
                    AnnouncedAddress {
                        address: "198.51.100.2".into(),
                        announced: false,
                        reason: Some(Reason::NoServingBackend),
                        since: "2026-12-01T10:00:02Z".into(),
                        frontends: vec!["api".into(), "api-tls".into()],
                    },
                ],
                last_reload: Some(AnnounceReload {
                    at: "2026-12-01T10:00:02Z".into(),
                    result: "ok".into(),
                    detail: None,
                    took_ms: 3.5,
                }),
                write_error: None,
            }),
        ),
        (
            Command::ShowVppLbCounters,
            Reply::LbCounters(LbCounters {
                at: Some("2026-12-01T10:00:01Z".into()),
                vips: vec![VipCounters {
                    frontend: Some("web".into()),
                    prefix: "198.51.100.1/32".into(),
                    protocol: 6,
                    port: 443,
                    first: 11,
                    next: 12,
                    untracked: 13,
                    no_server: 14,
                    fib_packets: Some(15),
                    fib_bytes: Some(16),
                }],
            }),
        ),
        (
            Command::SyncVppLbState(Some("web".into())),
            Reply::Synced(Synced {
                scope: "vip".into(),
                ops: vec!["lb_as_set_weight 198.51.100.1/32 192.0.2.10 35".into()],
                errors: vec!["lb_as_add_del: -2 no such VIP".into()],
                drift: 2,
                took_ms: 0.8,
            }),
        ),
        (
            Command::ConfigCheck,
            Reply::Config {
                result: "configuration ok: 1 frontend".into(),
                plan: Some(sample_preview("config reload")),
            },
        ),
        (
            Command::Preview(crate::checker::whatif::Change::Action {
                backend: "b1".into(),
                action: crate::checker::Action::Disable,
            }),
            Reply::Preview(sample_preview("set backend b1 disable")),
        ),
        (
            Command::Watch(WatchSpec {
                num: Some(5),
                log: Some("debug".into()),
                backend: true,
                frontend: true,
            }),
            Reply::Watching {
                watching: Watching {
                    backend: true,
                    frontend: true,
                    log: Some("debug".into()),
                    num: Some(5),
                },
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reply_round_trips_through_its_command() {
        for (cmd, reply) in samples() {
            let line = reply.encode();
            assert!(line.starts_with("{\"ok\":true"), "{line}");
            let back = Reply::decode(&cmd, &line).unwrap().unwrap();
            assert_eq!(back, reply, "{cmd:?}");
        }
    }

    #[test]
    fn a_reply_of_the_wrong_shape_is_an_error_not_a_blank() {
        let line = Reply::Frontends { frontends: vec![] }.encode();
        assert!(Reply::decode(&Command::ShowBackends, &line).is_err());
        // A renamed field is caught the same way.
        let renamed = r#"{"ok":true,"version":"1","commit":"x","pid":1,"uptime":2}"#;
        assert!(Reply::decode(&Command::ShowVersion, renamed).is_err());
    }

    #[test]
    fn failures_and_events_keep_their_wire_form() {
        let f = Failure {
            error: "bad".into(),
            problems: vec!["line 3: x".into()],
        };
        assert_eq!(
            f.encode(),
            r#"{"ok":false,"error":"bad","problems":["line 3: x"]}"#
        );
        assert_eq!(
            Reply::decode(&Command::ConfigReload, &f.encode()).unwrap(),
            Err(f)
        );
        assert_eq!(Failure::new("x").encode(), r#"{"ok":false,"error":"x"}"#);
        let e = StreamEvent::Lagged { missed: 3 };
        assert_eq!(e.encode(), r#"{"type":"lagged","missed":3}"#);
        assert_eq!(StreamEvent::decode(&e.encode()).unwrap(), e);
        let e = StreamEvent::Vpp {
            frontend: "web6".into(),
            from: Dataplane::Pending,
            to: Dataplane::Refused,
            error: Some("-97".into()),
            at: "t".into(),
        };
        assert_eq!(
            e.encode(),
            r#"{"type":"vpp","frontend":"web6","from":"pending","to":"refused","error":"-97","at":"t"}"#
        );
        assert_eq!(StreamEvent::decode(&e.encode()).unwrap(), e);
    }

    /// The README's protocol section names what these types define.
    #[test]
    fn the_readme_describes_these_types() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("The protocol, for `socat`").unwrap()..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        let events = [
            StreamEvent::Backend {
                backend: String::new(),
                from: State::Up,
                to: State::Down,
                code: None,
                detail: String::new(),
                at: String::new(),
            },
            StreamEvent::Frontend {
                frontend: String::new(),
                from: FrontendState::Up,
                to: FrontendState::Down,
                at: String::new(),
            },
            StreamEvent::Log {
                level: String::new(),
                message: String::new(),
                at: String::new(),
            },
            StreamEvent::Vpp {
                frontend: String::new(),
                from: Dataplane::Ok,
                to: Dataplane::Ok,
                error: None,
                at: String::new(),
            },
            StreamEvent::Announce {
                address: String::new(),
                announced: false,
                reason: None,
                frontends: Vec::new(),
                at: String::new(),
            },
            StreamEvent::Lagged { missed: 0 },
        ];
        for e in events {
            let line = e.encode();
            let ty = &line[..line.find(',').unwrap()];
            assert!(section.contains(ty), "README lacks {ty}");
        }
        assert!(section.contains(r#"{"type":"lagged","missed":N}"#));
        assert!(section.contains(r#"{"ok":true,"watching":{...}}"#));
        assert!(section.contains(r#"{"ok":false,"error":"..."}"#));
        // Every command word the grammar answers is listed.
        for (cmd, _) in samples() {
            let word = match cmd {
                Command::ShowVppInfo => "vpp info",
                Command::ShowVppLbState => "vpp lb state",
                Command::ShowVppLbCounters => "vpp lb counters",
                Command::ShowAnnounce => "show announce",
                Command::SetAnnounce(_) => "set announce",
                Command::SyncVppLbState(_) => "sync vpp lb state",
                Command::SetBackend(..) => "set backend B",
                Command::ConfigCheck => "config check",
                Command::Preview(_) => "preview",
                Command::Watch(_) => "watch events",
                Command::ShowVersion => "show version",
                Command::ShowFrontends => "frontends",
                Command::ShowFrontend(_) => "frontend F",
                Command::ShowBackends => "backends",
                Command::ShowBackend(_) => "backend B",
                Command::ShowHealthchecks => "healthchecks",
                Command::ShowHealthcheck(_) => "healthcheck H",
                Command::SetWeight { .. } | Command::ConfigReload => continue,
            };
            assert!(section.contains(word), "README lacks {word}");
        }
    }

    #[test]
    fn states_and_codes_travel_as_their_operator_words() {
        let word = |v: serde_json::Value| v.as_str().unwrap().to_string();
        for st in State::ALL {
            assert_eq!(word(serde_json::to_value(st).unwrap()), st.as_str());
            let back: State = serde_json::from_value(st.as_str().into()).unwrap();
            assert_eq!(back, st);
        }
        for st in [
            FrontendState::Unknown,
            FrontendState::Up,
            FrontendState::Down,
            FrontendState::Panic,
        ] {
            assert_eq!(word(serde_json::to_value(st).unwrap()), st.as_str());
        }
        for c in Code::ALL {
            assert_eq!(word(serde_json::to_value(c).unwrap()), c.as_str());
            assert_eq!(Code::parse(c.as_str()), Some(c));
        }
        for c in Connection::ALL {
            assert_eq!(word(serde_json::to_value(c).unwrap()), c.as_str());
            assert_eq!(Connection::parse(c.as_str()), Some(c));
        }
        assert!(serde_json::from_str::<State>("\"sideways\"").is_err());
    }

    #[test]
    fn summaries_leave_out_the_detail_fields() {
        let (_, r) = &samples()[1];
        let line = r.encode();
        assert!(!line.contains("pools") && line.contains("\"active_pool\""));
    }
}
