//! Prometheus exposition on `/metrics` (text format 0.0.4) over
//! a small bounded responder ([`crate::httpd`]), from the snapshots the
//! other threads publish.
//!
//! Metric and label names follow the original maglevd so existing
//! dashboards keep working. Rendering reads immutable snapshots only: a
//! scrape never takes a lock another thread holds across I/O.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use log::info;

use crate::checker::{DURATION_BUCKETS, Snapshot};
use crate::health::state::State;
use crate::health::weights::FrontendState;
use crate::httpd::{HttpServer, Limits, Request, Response};
use crate::snapshot::Published;
use crate::vpp::client::ApiCounters;
use crate::vpp::reconciler::SyncStats;
use crate::vpp::scraper::LbCounters;
use crate::vpp::status::VppStatus;

/// Default `--metrics-addr`.
pub const DEFAULT_ADDR: &str = ":9091";

/// Where the numbers come from.
#[derive(Clone)]
pub struct Sources {
    /// Health state.
    pub checker: Published<Snapshot>,
    /// VPP API calls.
    pub api: Arc<ApiCounters>,
    /// LB sync operations.
    pub sync: Arc<SyncStats>,
    /// VPP session.
    pub status: Published<VppStatus>,
    /// Stats-segment counters, when a stats socket is configured.
    pub counters: Option<Published<LbCounters>>,
}

/// `:9091` → `[::]:9091` (IPv6 and IPv4, as Go listens); `""` → `None`
/// (disabled).
pub fn parse_addr(s: &str) -> Result<Option<SocketAddr>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let full = if s.starts_with(':') {
        format!("[::]{s}")
    } else {
        s.to_string()
    };
    full.parse()
        .map(Some)
        .map_err(|_| format!("`{s}` is not HOST:PORT (e.g. :9091, 127.0.0.1:9091, [::1]:9091)"))
}

/// Escapes a label value (`\`, `"`, newline).
pub fn escape(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

struct Out<'a>(&'a mut String);

impl Out<'_> {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

const BACKEND_STATES: [State; 5] = [
    State::Unknown,
    State::Up,
    State::Down,
    State::Paused,
    State::Disabled,
];

const FRONTEND_STATES: [FrontendState; 3] = [
    FrontendState::Unknown,
    FrontendState::Up,
    FrontendState::Down,
];

/// Renders every metric family into `out`.
pub fn render(src: &Sources, out: &mut String) {
    let snap = src.checker.load();
    let mut o = Out(out);
    o.family(
        "maglev_build_info",
        "gauge",
        "maglevd version and git commit.",
    );
    o.sample(
        "maglev_build_info",
        &[("version", crate::VERSION), ("commit", crate::GIT_COMMIT)],
        1,
    );

    o.family(
        "maglev_backend_state",
        "gauge",
        "1 for the backend's current health state, 0 for the others.",
    );
    for (name, b) in &snap.backends {
        for st in BACKEND_STATES {
            o.sample(
                "maglev_backend_state",
                &[("backend", name), ("state", st.as_str())],
                u8::from(b.state == st),
            );
        }
    }
    o.family(
        "maglev_backend_health",
        "gauge",
        "The backend's rise/fall counter (0 = fully down, rise+fall-1 = fully up).",
    );
    for (name, b) in &snap.backends {
        o.sample("maglev_backend_health", &[("backend", name)], b.counter.0);
    }
    o.family(
        "maglev_backend_enabled",
        "gauge",
        "1 if the backend is enabled.",
    );
    for (name, b) in &snap.backends {
        o.sample(
            "maglev_backend_enabled",
            &[("backend", name)],
            u8::from(b.enabled),
        );
    }
    o.family(
        "maglev_backend_transitions_total",
        "counter",
        "Backend state transitions.",
    );
    for (name, b) in &snap.backends {
        for ((from, to), n) in &b.counters.transitions {
            o.sample(
                "maglev_backend_transitions_total",
                &[
                    ("backend", name),
                    ("from", from.as_str()),
                    ("to", to.as_str()),
                ],
                n,
            );
        }
    }
    let kind_of = |hc: &str| {
        snap.config
            .healthchecks
            .get(hc)
            .map_or("unknown", |h| h.probe.check_type().as_str())
    };
    o.family(
        "maglev_probe_total",
        "counter",
        "Probes by result (success/failure) and HAProxy-style code.",
    );
    for (name, b) in &snap.backends {
        let ty = kind_of(&b.config.healthcheck);
        for (code, n) in &b.counters.by_code {
            let result = if code.passed() { "success" } else { "failure" };
            o.sample(
                "maglev_probe_total",
                &[
                    ("backend", name),
                    ("type", ty),
                    ("result", result),
                    ("code", code.as_str()),
                ],
                n,
            );
        }
    }
    o.family(
        "maglev_probe_duration_seconds",
        "histogram",
        "Probe duration, from start to verdict.",
    );
    for (name, b) in &snap.backends {
        let ty = kind_of(&b.config.healthcheck);
        let mut cum = 0u64;
        for (i, le) in DURATION_BUCKETS.iter().enumerate() {
            cum += b.counters.duration_buckets[i];
            o.sample(
                "maglev_probe_duration_seconds_bucket",
                &[("backend", name), ("type", ty), ("le", &le.to_string())],
                cum,
            );
        }
        cum += b.counters.duration_buckets[DURATION_BUCKETS.len()];
        o.sample(
            "maglev_probe_duration_seconds_bucket",
            &[("backend", name), ("type", ty), ("le", "+Inf")],
            cum,
        );
        o.sample(
            "maglev_probe_duration_seconds_sum",
            &[("backend", name), ("type", ty)],
            b.counters.duration_sum,
        );
        o.sample(
            "maglev_probe_duration_seconds_count",
            &[("backend", name), ("type", ty)],
            cum,
        );
    }

    o.family(
        "maglev_frontend_state",
        "gauge",
        "1 for the frontend's current state, 0 for the others.",
    );
    for (name, f) in &snap.frontends {
        for st in FRONTEND_STATES {
            o.sample(
                "maglev_frontend_state",
                &[("frontend", name), ("state", st.as_str())],
                u8::from(f.state == st),
            );
        }
    }
    o.family(
        "maglev_frontend_pool_backend_weight",
        "gauge",
        "Configured weight of a backend in a frontend's pool (runtime changes included).",
    );
    for (name, f) in &snap.frontends {
        for p in &f.pools {
            for m in &p.members {
                o.sample(
                    "maglev_frontend_pool_backend_weight",
                    &[
                        ("frontend", name),
                        ("pool", &p.name),
                        ("backend", &m.backend),
                    ],
                    m.configured,
                );
            }
        }
    }
    o.family(
        "maglev_frontend_pool_backend_effective_weight",
        "gauge",
        "Weight VPP gets for the backend (0 when down, standby, paused or disabled).",
    );
    for (name, f) in &snap.frontends {
        for p in &f.pools {
            for m in &p.members {
                o.sample(
                    "maglev_frontend_pool_backend_effective_weight",
                    &[
                        ("frontend", name),
                        ("pool", &p.name),
                        ("backend", &m.backend),
                    ],
                    m.effective.weight,
                );
            }
        }
    }

    let status = src.status.load();
    o.family(
        "maglev_vpp_connected",
        "gauge",
        "1 while a VPP API session is up.",
    );
    o.sample("maglev_vpp_connected", &[], u8::from(status.connected));
    o.family(
        "maglev_vpp_api_total",
        "counter",
        "VPP binary API messages by message, direction and result.",
    );
    for ((msg, dir, result), n) in src.api.snapshot() {
        o.sample(
            "maglev_vpp_api_total",
            &[
                ("msg", msg),
                ("direction", dir.as_str()),
                ("result", result.as_str()),
            ],
            n,
        );
    }
    o.family(
        "maglev_vpp_lbsync_total",
        "counter",
        "LB sync operations sent to VPP, by sync scope (all, vip) and kind.",
    );
    for ((scope, kind), n) in src.sync.ops() {
        o.sample(
            "maglev_vpp_lbsync_total",
            &[("scope", scope.as_str()), ("kind", kind.as_str())],
            n,
        );
    }
    o.family(
        "maglev_vpp_lbsync_drift_mismatches_total",
        "counter",
        "ASes whose VPP bucket count differed from maglevd's Maglev prediction.",
    );
    o.sample(
        "maglev_vpp_lbsync_drift_mismatches_total",
        &[],
        src.sync
            .drift_mismatches
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    if !status.connected {
        return;
    }
    let now = SystemTime::now();
    if let Some(t) = status.connected_at {
        o.family(
            "maglev_vpp_connected_seconds",
            "gauge",
            "Seconds since maglevd connected to VPP.",
        );
        o.sample(
            "maglev_vpp_connected_seconds",
            &[],
            now.duration_since(t).map_or(0, |d| d.as_secs()),
        );
    }
    if let Some(v) = &status.version {
        o.family(
            "maglev_vpp_info",
            "gauge",
            "VPP version, build date and pid.",
        );
        o.sample(
            "maglev_vpp_info",
            &[
                ("version", &v.version),
                ("build_date", &v.build_date),
                ("pid", &status.pid.unwrap_or(0).to_string()),
            ],
            1,
        );
    }
    let Some(counters) = &src.counters else {
        return;
    };
    let c = counters.load();
    if c.at.is_none() {
        return;
    }
    if c.boottime > 0 {
        let unix = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        o.family(
            "maglev_vpp_uptime_seconds",
            "gauge",
            "Seconds since VPP started (stats segment /sys/boottime).",
        );
        o.sample(
            "maglev_vpp_uptime_seconds",
            &[],
            unix.saturating_sub(c.boottime),
        );
    }
    o.family(
        "maglev_vip_packets_total",
        "counter",
        "Packets per VIP from VPP's lb counters: next (established flows), first (new flows), untracked, no-server (dropped).",
    );
    for v in &c.vips {
        let fe = v.frontend.as_deref().unwrap_or("");
        let pfx = v.key.pfx.to_string();
        let proto = v.key.protocol.to_string();
        let port = v.key.port.to_string();
        for (kind, n) in [
            ("next", v.next),
            ("first", v.first),
            ("untracked", v.untracked),
            ("no-server", v.no_server),
        ] {
            o.sample(
                "maglev_vip_packets_total",
                &[
                    ("frontend", fe),
                    ("vip", &pfx),
                    ("protocol", &proto),
                    ("port", &port),
                    ("kind", kind),
                ],
                n,
            );
        }
    }
    o.family(
        "maglev_vip_route_packets_total",
        "counter",
        "Packets routed to the VIP's prefix (/net/route/to).",
    );
    for v in &c.vips {
        if let Some((p, _)) = v.route {
            o.sample(
                "maglev_vip_route_packets_total",
                &[
                    ("frontend", v.frontend.as_deref().unwrap_or("")),
                    ("vip", &v.key.pfx.to_string()),
                ],
                p,
            );
        }
    }
    o.family(
        "maglev_vip_route_bytes_total",
        "counter",
        "Bytes routed to the VIP's prefix (/net/route/to).",
    );
    for v in &c.vips {
        if let Some((_, b)) = v.route {
            o.sample(
                "maglev_vip_route_bytes_total",
                &[
                    ("frontend", v.frontend.as_deref().unwrap_or("")),
                    ("vip", &v.key.pfx.to_string()),
                ],
                b,
            );
        }
    }
    o.family(
        "maglev_vpp_stats_scrape_seconds",
        "gauge",
        "Duration of the last stats-segment read.",
    );
    o.sample("maglev_vpp_stats_scrape_seconds", &[], c.took.as_secs_f64());
}

/// The `/metrics` HTTP server thread (see [`crate::httpd`] for its bounds).
pub struct MetricsServer {
    server: HttpServer,
}

impl MetricsServer {
    /// Binds `addr` and serves until [`MetricsServer::shutdown`].
    pub fn start(addr: SocketAddr, src: Sources) -> std::io::Result<MetricsServer> {
        // Size the next body like the last one: no regrowth, no copy.
        let mut last_len = 64 * 1024;
        let handler = move |req: &Request| -> Response {
            let get = req.method == "GET" || req.method == "HEAD";
            match (get, req.path.as_str()) {
                (true, "/metrics") => {
                    let mut buf = String::with_capacity(last_len);
                    render(&src, &mut buf);
                    last_len = buf.len() + buf.len() / 8;
                    Response {
                        status: 200,
                        content_type: "text/plain; version=0.0.4; charset=utf-8",
                        headers: Vec::new(),
                        body: buf.into_bytes(),
                    }
                }
                (true, "/") => Response {
                    status: 200,
                    content_type: "text/html; charset=utf-8",
                    headers: Vec::new(),
                    body: INDEX.as_bytes().to_vec(),
                },
                (true, _) => Response::text(404, "404 not found\n"),
                (false, _) => {
                    let mut r = Response::text(405, "405 method not allowed\n");
                    r.headers.push("Allow: GET, HEAD".into());
                    r
                }
            }
        };
        // A share of the descriptors that probes and VPP never lose.
        let limits = Limits {
            max_conns: crate::limits::metrics_conns(crate::limits::nofile()),
            ..Limits::default()
        };
        let server = HttpServer::start(addr, "metrics", limits, Box::new(handler))?;
        info!("metrics-listening addr={addr}");
        Ok(MetricsServer { server })
    }

    /// Stops serving.
    pub fn shutdown(self) {
        self.server.shutdown();
    }
}

const INDEX: &str = "<html><head><title>maglevd</title></head><body><h1>maglevd</h1>\
<p><a href=\"/metrics\">Metrics</a></p></body></html>\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_addr(":9091").unwrap(),
            Some("[::]:9091".parse().unwrap())
        );
        assert_eq!(parse_addr("").unwrap(), None);
        assert_eq!(
            parse_addr("[::1]:9").unwrap(),
            Some("[::1]:9".parse().unwrap())
        );
        assert!(parse_addr("9091").is_err());
    }

    #[test]
    fn label_escaping() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
