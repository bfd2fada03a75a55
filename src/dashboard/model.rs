//! What the dashboard knows of one maglevd: the replies of its `show`
//! commands, kept as the control protocol's types, plus what only the
//! event stream tells (recent probe latencies, recent transitions). Pure:
//! the hub feeds it replies and events and asks for its JSON.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;
use serde_json::{Value, json};

use crate::control::protocol as p;

/// Probe latencies kept per backend (the sparkline).
pub const LATENCIES: usize = 40;
/// Transitions kept per backend.
pub const TRANSITIONS: usize = 10;

/// One backend as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendInfo {
    /// `show backends`' summary.
    #[serde(flatten)]
    pub summary: p::Backend,
    /// Recent probe durations, ms, oldest first.
    pub latency: VecDeque<f64>,
    /// Recent transitions, oldest first (from the event stream).
    pub transitions: VecDeque<p::Transition>,
}

/// The state of one `show`-everything refresh.
#[derive(Debug, Clone, PartialEq)]
pub struct Full {
    /// `show version`.
    pub version: Option<p::Version>,
    /// `show frontend F` of every frontend.
    pub frontends: Vec<p::Frontend>,
    /// `show backends`.
    pub backends: Vec<p::Backend>,
    /// `show vpp info`, or why not.
    pub vpp: Result<p::VppInfo, String>,
    /// `show vpp lb state` and `show vpp lb counters`.
    pub lb: Lb,
}

/// VPP's load-balancer state and counters, or why not.
#[derive(Debug, Clone, PartialEq)]
pub struct Lb {
    /// `show vpp lb state`.
    pub state: Result<p::LbState, String>,
    /// `show vpp lb counters`.
    pub counters: Result<p::LbCounters, String>,
}

/// A probe result from the event stream's debug log.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Backend.
    pub backend: String,
    /// Result code.
    pub code: p::Code,
    /// For a check that keeps its connection: how it got it.
    pub connection: Option<p::Connection>,
    /// Duration, ms.
    pub ms: f64,
    /// When (RFC 3339).
    pub at: String,
}

/// Reads a `probe-done backend=B code=C [connection=K] detail=...
/// duration_ms=D` log line.
pub fn parse_probe(message: &str, at: &str) -> Option<Probe> {
    let rest = message.strip_prefix("probe-done ")?;
    let field = |name: &str| {
        rest.split(' ')
            .find_map(|w| w.strip_prefix(name))
            .map(str::to_string)
    };
    // The detail may hold spaces: the duration is the last field.
    let ms = rest.rsplit_once(" duration_ms=")?.1.trim().parse().ok()?;
    Some(Probe {
        backend: field("backend=")?,
        code: p::Code::parse(&field("code=")?)?,
        // (before the detail, which is free text)
        connection: rest
            .split(" detail=")
            .next()
            .and_then(|h| h.split(' ').find_map(|w| w.strip_prefix("connection=")))
            .and_then(p::Connection::parse),
        ms,
        at: at.to_string(),
    })
}

/// A frontend on the page: the protocol's fields and types, its pools
/// with VPP's bucket counts beside each member.
#[derive(Debug, serde::Serialize)]
struct PageFrontend<'a> {
    name: &'a str,
    address: &'a str,
    protocol: &'a str,
    port: u16,
    description: &'a str,
    state: p::FrontendState,
    vpp: p::Dataplane,
    announced: Option<bool>,
    announce_reason: Option<&'a p::Reason>,
    vpp_refusal: Option<&'a p::VppRefusal>,
    active_pool: Option<&'a str>,
    new_flows_table_length: u32,
    pools: Vec<PagePool<'a>>,
}

/// A pool on the page.
#[derive(Debug, serde::Serialize)]
struct PagePool<'a> {
    name: &'a str,
    active: bool,
    backends: Vec<PageMember<'a>>,
}

/// A pool member on the page: the protocol's [`p::PoolBackend`] as it
/// is, and the buckets VPP gives it.
#[derive(Debug, serde::Serialize)]
struct PageMember<'a> {
    #[serde(flatten)]
    member: &'a p::PoolBackend,
    buckets: Option<u32>,
    bucket_share: Option<f64>,
}

/// One maglevd.
#[derive(Debug, Clone)]
pub struct Maglevd {
    /// Its name on the page.
    pub name: String,
    /// Its control socket.
    pub socket: String,
    /// Whether the event stream is connected.
    pub reachable: bool,
    /// Why not.
    pub error: Option<String>,
    /// When reachability last changed (RFC 3339).
    pub since: Option<String>,
    /// The last refresh.
    pub full: Option<Full>,
    /// Backends by name.
    pub backends: BTreeMap<String, BackendInfo>,
    /// When the last full refresh arrived (RFC 3339).
    pub refreshed: Option<String>,
}

impl Maglevd {
    /// A maglevd not heard from yet.
    pub fn new(name: &str, socket: &str) -> Maglevd {
        Maglevd {
            name: name.to_string(),
            socket: socket.to_string(),
            reachable: false,
            error: Some("connecting".into()),
            since: None,
            full: None,
            backends: BTreeMap::new(),
            refreshed: None,
        }
    }

    /// Takes a full refresh (keeping latencies and transitions of backends
    /// that are still there).
    pub fn apply_full(&mut self, full: Full, at: &str) {
        let mut backends = BTreeMap::new();
        for b in &full.backends {
            let mut info = self.backends.remove(&b.name).unwrap_or(BackendInfo {
                summary: b.clone(),
                latency: VecDeque::new(),
                transitions: VecDeque::new(),
            });
            info.summary = b.clone();
            backends.insert(b.name.clone(), info);
        }
        self.backends = backends;
        self.full = Some(full);
        self.refreshed = Some(at.to_string());
    }

    /// Takes fresh `show frontend` replies.
    pub fn apply_frontends(&mut self, fresh: Vec<p::Frontend>) {
        let Some(full) = self.full.as_mut() else {
            return;
        };
        for f in fresh {
            match full.frontends.iter_mut().find(|x| x.name == f.name) {
                Some(x) => *x = f,
                None => full.frontends.push(f),
            }
        }
    }

    /// Takes a fresh VPP read.
    pub fn apply_lb(&mut self, lb: Lb) {
        if let Some(full) = self.full.as_mut() {
            full.lb = lb;
        }
    }

    /// A backend transition from the stream.
    pub fn apply_transition(&mut self, backend: &str, t: p::Transition) {
        let Some(b) = self.backends.get_mut(backend) else {
            return;
        };
        b.summary.state = t.to;
        b.summary.enabled = t.to != p::State::Disabled;
        if b.transitions.len() == TRANSITIONS {
            b.transitions.pop_front();
        }
        b.transitions.push_back(t);
    }

    /// A frontend's VPP status from the stream.
    pub fn apply_frontend_vpp(&mut self, frontend: &str, to: p::Dataplane) {
        if let Some(f) = self
            .full
            .as_mut()
            .and_then(|f| f.frontends.iter_mut().find(|f| f.name == frontend))
        {
            f.vpp = to;
        }
    }

    /// A frontend transition from the stream.
    pub fn apply_frontend_state(&mut self, frontend: &str, to: p::FrontendState) {
        if let Some(f) = self
            .full
            .as_mut()
            .and_then(|f| f.frontends.iter_mut().find(|f| f.name == frontend))
        {
            f.state = to;
        }
    }

    /// A probe result from the stream.
    pub fn apply_probe(&mut self, pr: &Probe) {
        let Some(b) = self.backends.get_mut(&pr.backend) else {
            return;
        };
        if b.latency.len() == LATENCIES {
            b.latency.pop_front();
        }
        b.latency.push_back((pr.ms * 100.0).round() / 100.0);
        b.summary.last = Some(p::LastProbe {
            code: pr.code,
            detail: String::new(),
            duration_ms: pr.ms,
            at: pr.at.clone(),
            connection: pr.connection,
        });
    }

    /// The frontends that use `backend`.
    pub fn users_of(&self, backend: &str) -> BTreeSet<String> {
        self.full
            .iter()
            .flat_map(|f| &f.frontends)
            .filter(|f| {
                f.detail.iter().any(|d| {
                    d.pools
                        .iter()
                        .any(|p| p.backends.iter().any(|b| b.name == backend))
                })
            })
            .map(|f| f.name.clone())
            .collect()
    }

    /// VPP's buckets per AS address of `fe`'s VIP.
    fn buckets_of(&self, fe: &p::Frontend) -> BTreeMap<String, u32> {
        let Some(Ok(lb)) = self.full.as_ref().map(|f| &f.lb.state) else {
            return BTreeMap::new();
        };
        let proto = match fe.protocol.as_str() {
            "tcp" => 6,
            "udp" => 17,
            _ => 255,
        };
        lb.vips
            .iter()
            .find(|v| {
                v.prefix.split('/').next() == Some(fe.address.as_str())
                    && v.port == fe.port
                    && v.protocol == proto
            })
            .map(|v| {
                v.ases
                    .iter()
                    .filter(|a| a.in_use)
                    .map(|a| (a.address.clone(), a.buckets))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One frontend as the page shows it: pools, members with weights,
    /// VPP buckets and state.
    pub fn frontend_json(&self, fe: &p::Frontend) -> Value {
        serde_json::to_value(self.page_frontend(fe)).unwrap_or(Value::Null)
    }

    /// [`Self::frontend_json`], typed: the protocol's own objects with the
    /// bucket counts the page adds.
    fn page_frontend<'a>(&self, fe: &'a p::Frontend) -> PageFrontend<'a> {
        let buckets = self.buckets_of(fe);
        let table = fe
            .detail
            .as_ref()
            .map_or(1024, |d| d.new_flows_table_length);
        let pools = fe
            .detail
            .iter()
            .flat_map(|d| &d.pools)
            .map(|pool| PagePool {
                name: &pool.name,
                active: pool.active,
                backends: pool
                    .backends
                    .iter()
                    .map(|m| {
                        let b = m.address.as_ref().and_then(|a| buckets.get(a)).copied();
                        PageMember {
                            member: m,
                            buckets: b,
                            bucket_share: b.map(|b| f64::from(b) * 100.0 / f64::from(table.max(1))),
                        }
                    })
                    .collect(),
            })
            .collect();
        PageFrontend {
            name: &fe.name,
            address: &fe.address,
            protocol: &fe.protocol,
            port: fe.port,
            description: &fe.description,
            state: fe.state,
            vpp: fe.vpp,
            announced: fe.announced,
            announce_reason: fe.announce_reason.as_ref(),
            vpp_refusal: fe.detail.as_ref().and_then(|d| d.vpp_refusal.as_ref()),
            active_pool: fe.active_pool.as_deref(),
            new_flows_table_length: table,
            pools,
        }
    }

    /// Everything, for `/view/api/state`.
    pub fn to_json(&self) -> Value {
        let full = self.full.as_ref();
        let (lb, lb_error) = match full.map(|f| &f.lb.state) {
            Some(Ok(s)) => (json!(s), None),
            Some(Err(e)) => (Value::Null, Some(e.clone())),
            None => (Value::Null, None),
        };
        let (counters, _) = match full.map(|f| &f.lb.counters) {
            Some(Ok(c)) => (json!(c), None::<String>),
            _ => (Value::Null, None),
        };
        let (vpp, vpp_error) = match full.map(|f| &f.vpp) {
            Some(Ok(v)) => (json!(v), None),
            Some(Err(e)) => (Value::Null, Some(e.clone())),
            None => (Value::Null, None),
        };
        json!({
            "name": self.name,
            "socket": self.socket,
            "reachable": self.reachable,
            "error": self.error,
            "since": self.since,
            "refreshed": self.refreshed,
            "version": full.and_then(|f| f.version.as_ref()),
            "vpp": vpp,
            "vpp_error": vpp_error,
            "frontends": full.map_or(Vec::new(), |f| f.frontends.iter().map(|fe| self.frontend_json(fe)).collect()),
            "backends": self.backends,
            "lb": lb,
            "lb_error": lb_error,
            "counters": counters,
        })
    }

    /// The per-VIP bucket counts and counters, for the `lb` event.
    pub fn lb_json(&self) -> Value {
        let full = self.full.as_ref();
        json!({
            "maglevd": self.name,
            "frontends": full.map_or(Vec::new(), |f| f.frontends.iter().map(|fe| {
                let b = self.buckets_of(fe);
                json!({"name": fe.name, "buckets": b})
            }).collect()),
            "counters": full.and_then(|f| f.lb.counters.as_ref().ok()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(name: &str, address: &str) -> p::Backend {
        p::Backend {
            name: name.into(),
            address: address.into(),
            healthcheck: "hc".into(),
            state: p::State::Up,
            enabled: true,
            last: None,
            detail: None,
        }
    }

    fn frontend() -> p::Frontend {
        p::Frontend {
            name: "web".into(),
            address: "192.0.2.1".into(),
            protocol: "tcp".into(),
            port: 80,
            description: String::new(),
            state: p::FrontendState::Up,
            active_pool: Some("main".into()),
            backends: 2,
            vpp: p::Dataplane::Ok,
            announced: None,
            announce_reason: None,
            detail: Some(p::FrontendDetail {
                vpp_unheld: 0,
                vpp_refusal: None,
                src_ip_sticky: false,
                flush_on_down: true,
                new_flows_table_length: 1024,
                pools: vec![p::Pool {
                    name: "main".into(),
                    active: true,
                    backends: ["a", "b"]
                        .iter()
                        .enumerate()
                        .map(|(i, n)| p::PoolBackend {
                            name: n.to_string(),
                            address: Some(format!("10.0.0.{}", i + 1)),
                            weight: 100,
                            effective_weight: 100,
                            flush: false,
                            share: 50.0,
                            table_share: 50.0,
                            state: p::State::Up,
                            enabled: true,
                        })
                        .collect(),
                }],
            }),
        }
    }

    fn lb(buckets: [u32; 2]) -> p::LbState {
        p::LbState {
            conf: None,
            vips: vec![p::LbVip {
                prefix: "192.0.2.1/32".into(),
                protocol: 6,
                port: 80,
                encap: "gre4".into(),
                src_ip_sticky: Some(false),
                index: Some(1),
                new_flows_table_length: 1024,
                fingerprint: None,
                ases: buckets
                    .iter()
                    .enumerate()
                    .map(|(i, b)| p::LbAs {
                        address: format!("10.0.0.{}", i + 1),
                        weight: 100,
                        buckets: *b,
                        flows: 0,
                        in_use: true,
                    })
                    .collect(),
            }],
            removed: Vec::new(),
        }
    }

    #[test]
    fn probe_lines_are_read_detail_spaces_and_all() {
        let p = parse_probe(
            "probe-done backend=web-a code=L4CON detail=connection refused (os error 111) duration_ms=0.4",
            "2026-12-02T00:00:00Z",
        )
        .unwrap();
        assert_eq!(
            (p.backend.as_str(), p.code.as_str(), p.ms),
            ("web-a", "L4CON", 0.4)
        );
        assert_eq!(p.connection, None);
        let p = parse_probe(
            "probe-done backend=web-a code=L7OK connection=reused detail=\"HTTP 200\" duration_ms=0.2",
            "2026-12-02T00:00:00Z",
        )
        .unwrap();
        assert_eq!(
            (p.code, p.connection),
            (p::Code::L7Ok, Some(p::Connection::Reused))
        );
        let p = parse_probe(
            "probe-done backend=web-a code=L7RSP detail=\"x connection=reused\" duration_ms=0.2",
            "",
        )
        .unwrap();
        assert_eq!(p.connection, None, "not read from the detail");
        assert!(parse_probe("backend-transition backend=a", "").is_none());
    }

    #[test]
    fn state_joins_frontends_backends_and_vpp_buckets() {
        let mut m = Maglevd::new("r1", "/run/r1.sock");
        m.reachable = true;
        m.apply_full(
            Full {
                version: None,
                frontends: vec![frontend()],
                backends: vec![backend("a", "10.0.0.1"), backend("b", "10.0.0.2")],
                vpp: Err("VPP is not connected".into()),
                lb: Lb {
                    state: Ok(lb([700, 324])),
                    counters: Err("disabled".into()),
                },
            },
            "t0",
        );
        for i in 0..(LATENCIES + 5) {
            m.apply_probe(&Probe {
                backend: "a".into(),
                code: p::Code::L7Ok,
                connection: None,
                ms: i as f64,
                at: "t".into(),
            });
        }
        m.apply_transition(
            "b",
            p::Transition {
                from: p::State::Up,
                to: p::State::Down,
                code: Some(p::Code::L4Con),
                detail: "refused".into(),
                at: "t1".into(),
            },
        );
        let j = m.to_json();
        let members = &j["frontends"][0]["pools"][0]["backends"];
        // The protocol's words and fields, the page's additions beside.
        let fe = &j["frontends"][0];
        assert_eq!(fe["state"], "up");
        assert!(fe["new_flows_table_length"].is_u64() && fe["pools"][0]["name"].is_string());
        assert_eq!(members[0]["state"], "up");
        for key in [
            "name",
            "address",
            "weight",
            "effective_weight",
            "share",
            "table_share",
            "enabled",
        ] {
            assert!(!members[0][key].is_null(), "{key}");
        }
        assert_eq!(members[0]["buckets"], 700);
        assert_eq!(members[1]["buckets"], 324);
        assert_eq!(
            j["backends"]["a"]["latency"].as_array().unwrap().len(),
            LATENCIES
        );
        assert_eq!(j["backends"]["a"]["last"]["code"], "L7OK");
        assert_eq!(j["backends"]["b"]["state"], "down");
        assert_eq!(j["backends"]["b"]["transitions"][0]["to"], "down");
        assert_eq!(j["frontends"][0]["vpp"], "ok");
        m.apply_frontend_vpp("web", p::Dataplane::Refused);
        assert_eq!(m.to_json()["frontends"][0]["vpp"], "refused");
        assert_eq!(j["vpp_error"], "VPP is not connected");
        assert_eq!(m.users_of("b"), BTreeSet::from(["web".to_string()]));
        // A refresh keeps what only the stream told.
        let full = m.full.clone().unwrap();
        m.apply_full(full, "t2");
        assert_eq!(m.backends["a"].latency.len(), LATENCIES);
        assert_eq!(m.backends["b"].transitions.len(), 1);
    }
}
