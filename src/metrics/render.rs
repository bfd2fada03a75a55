//! The exposition text, one function per group of metric families, each
//! a pure function of the values it shows (unit-tested below on fixed
//! inputs; `promtool` checks the whole page in tests/metrics.rs).

use std::fmt::Write as _;
use std::time::SystemTime;

use super::{Sources, escape};
use crate::checker::{DURATION_BUCKETS, ProbeCounters, Snapshot};
use crate::health::state::State;
use crate::health::weights::FrontendState;
use crate::vpp::client::ApiKey;
use crate::vpp::lb::{OpKind, ScopeKind};
use crate::vpp::scraper::LbCounters;
use crate::vpp::status::VppStatus;

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

/// A metric family (name, help) and how to read its value from `T`.
type Family<T> = (&'static str, &'static str, fn(T) -> u64);

const BACKEND_STATES: [State; 5] = [
    State::Unknown,
    State::Up,
    State::Down,
    State::Paused,
    State::Disabled,
];

const FRONTEND_STATES: [FrontendState; 4] = [
    FrontendState::Unknown,
    FrontendState::Up,
    FrontendState::Down,
    FrontendState::Panic,
];

/// Renders every metric family into `out`.
pub fn render(src: &Sources, out: &mut String) {
    let snap = src.checker.load();
    let status = src.status.load();
    let now = SystemTime::now();
    let mut o = Out(out);
    build_info(&mut o);
    backends(&mut o, &snap);
    probes(&mut o, &snap);
    if let Some(e) = &src.engine {
        lateness(&mut o, e);
    }
    frontends(&mut o, &snap);
    programmed(&mut o, &snap, &status);
    if let Some(a) = &src.announce {
        let a = a.load();
        if a.enabled {
            announce(&mut o, &a);
        }
    }
    vpp_sync(
        &mut o,
        status.connected,
        &src.api.snapshot(),
        &src.sync.ops(),
        src.sync
            .drift_mismatches
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    if !status.connected {
        return;
    }
    vpp_session(&mut o, &status, now);
    vip_flows(&mut o, &status, &snap);
    vip_tables(&mut o, &status);
    if let Some(c) = &src.counters {
        let c = c.load();
        if c.at.is_some() {
            vpp_counters(&mut o, &c, now);
        }
    }
}

fn build_info(o: &mut Out) {
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
}

/// State, rise/fall counter, enabled flag and transitions per backend.
fn backends(o: &mut Out, snap: &Snapshot) {
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
        for ((from, to), n) in b.counters.transitions.iter() {
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
}

/// Probe counts by code and the probe duration histogram.
fn probes(o: &mut Out, snap: &Snapshot) {
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
        for (code, n) in b.counters.by_code.iter() {
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
        "maglev_probe_connections_total",
        "counter",
        "Checks that keep their connection (reuse-connection), by how they got it: new, reused, reconnected (the kept one had been closed or reset by the backend).",
    );
    for (name, b) in &snap.backends {
        let counts = ProbeCounters::CONNECTIONS
            .iter()
            .zip(b.counters.connections);
        for (c, n) in counts.filter(|(_, n)| *n > 0) {
            o.sample(
                "maglev_probe_connections_total",
                &[("backend", name), ("connection", c.as_str())],
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
}

/// Upper bounds of the probe-lateness histogram.
const LATENESS_BUCKETS: [f64; 9] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// How late probes started against their schedule (all prober threads).
fn lateness(o: &mut Out, e: &crate::probe::engine::Stats) {
    o.family(
        "maglev_probe_lateness_seconds",
        "histogram",
        "How late probes started against their schedule (250 us resolution).",
    );
    let bounds: Vec<std::time::Duration> = LATENESS_BUCKETS
        .iter()
        .map(|b| std::time::Duration::from_secs_f64(*b))
        .collect();
    let (cum, total) = e.lateness_cumulative(&bounds);
    for (le, n) in LATENESS_BUCKETS.iter().zip(cum) {
        o.sample(
            "maglev_probe_lateness_seconds_bucket",
            &[("le", &le.to_string())],
            n,
        );
    }
    o.sample(
        "maglev_probe_lateness_seconds_bucket",
        &[("le", "+Inf")],
        total,
    );
    o.sample(
        "maglev_probe_lateness_seconds_sum",
        &[],
        e.late_sum_us.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6,
    );
    o.sample("maglev_probe_lateness_seconds_count", &[], total);
}

/// Frontend state and every pool member's configured and effective weight.
fn frontends(o: &mut Out, snap: &Snapshot) {
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
    let weights: [Family<&crate::checker::PoolMember>; 2] = [
        (
            "maglev_frontend_pool_backend_weight",
            "Configured weight of a backend in a frontend's pool (runtime changes included).",
            |m| m.configured.into(),
        ),
        (
            "maglev_frontend_pool_backend_effective_weight",
            "Weight VPP gets for the backend (0 when down, standby, paused or disabled).",
            |m| m.effective.weight.into(),
        ),
    ];
    for (family, help, value) in weights {
        o.family(family, "gauge", help);
        for (name, f) in &snap.frontends {
            for p in &f.pools {
                for m in &p.members {
                    o.sample(
                        family,
                        &[
                            ("frontend", name),
                            ("pool", &p.name),
                            ("backend", &m.backend),
                        ],
                        value(m),
                    );
                }
            }
        }
    }
}

/// The session flag, API message counts and sync operations (shown even
/// while VPP is away: counters must not vanish).
fn vpp_sync(
    o: &mut Out,
    connected: bool,
    api: &[(ApiKey, u64)],
    ops: &[((ScopeKind, OpKind), u64)],
    drift: u64,
) {
    o.family(
        "maglev_vpp_connected",
        "gauge",
        "1 while a VPP API session is up.",
    );
    o.sample("maglev_vpp_connected", &[], u8::from(connected));
    o.family(
        "maglev_vpp_api_total",
        "counter",
        "VPP binary API messages by message, direction and result.",
    );
    for ((msg, dir, result), n) in api {
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
    for ((scope, kind), n) in ops {
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
    o.sample("maglev_vpp_lbsync_drift_mismatches_total", &[], drift);
}

/// How long the session has been up and which VPP it is (connected only).
/// Announced addresses, reloads by result, cause-to-reload-done times.
fn announce(o: &mut Out, a: &crate::announce::AnnounceStatus) {
    o.family(
        "maglev_vip_announced",
        "gauge",
        "1 while the VIP address is in the BIRD sets maglevd writes (announced to BGP), else 0.",
    );
    for x in &a.addresses {
        o.sample(
            "maglev_vip_announced",
            &[("address", &x.address.to_string())],
            u8::from(x.announced),
        );
    }
    o.family(
        "maglev_announce_reloads_total",
        "counter",
        "Runs of the BIRD reload argv, by result (ok, failed, timeout).",
    );
    for r in ["ok", "failed", "timeout"] {
        o.sample(
            "maglev_announce_reloads_total",
            &[("result", r)],
            a.reloads.get(r).copied().unwrap_or(0),
        );
    }
    o.family(
        "maglev_announce_reload_seconds",
        "histogram",
        "Seconds from a change of what is announced to the end of the reload that gave it to BIRD.",
    );
    let (buckets, sum, count) = &a.latency;
    for (le, n) in crate::announce::LATENCY_BUCKETS.iter().zip(buckets) {
        o.sample(
            "maglev_announce_reload_seconds_bucket",
            &[("le", &le.to_string())],
            n,
        );
    }
    o.sample(
        "maglev_announce_reload_seconds_bucket",
        &[("le", "+Inf")],
        count,
    );
    o.sample("maglev_announce_reload_seconds_sum", &[], sum);
    o.sample("maglev_announce_reload_seconds_count", &[], count);
}

/// Whether VPP holds each frontend as desired (its VPP status is `ok`).
fn programmed(o: &mut Out, snap: &Snapshot, status: &VppStatus) {
    o.family(
        "maglev_frontend_programmed",
        "gauge",
        "1 when VPP holds the frontend's VIP with the ASes and weights desired (VPP status ok), else 0.",
    );
    for name in snap.config.frontends.keys() {
        let ok = status
            .frontends
            .get(name)
            .is_some_and(|f| f.state == crate::vpp::status::Dataplane::Ok);
        o.sample(
            "maglev_frontend_programmed",
            &[("frontend", name)],
            u8::from(ok),
        );
    }
}

fn vpp_session(o: &mut Out, status: &VppStatus, now: SystemTime) {
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
}

/// Sticky flows per AS of our VIPs, as of the last full sync (what a drain
/// waits for).
fn vip_flows(o: &mut Out, status: &VppStatus, snap: &Snapshot) {
    o.family(
        "maglev_vip_as_flows",
        "gauge",
        "Sticky flows VPP holds per application server (show lb vips verbose, at the last full sync; expired entries count until reused).",
    );
    for v in &status.vips {
        let Some(fe) = v.frontend.as_deref() else {
            continue;
        };
        let pfx = v.key.pfx.to_string();
        for (addr, n) in &v.flows {
            let backend = snap
                .config
                .frontends
                .get(fe)
                .and_then(|f| {
                    f.backend_names().into_iter().find(|b| {
                        snap.config
                            .backends
                            .get(*b)
                            .is_some_and(|x| x.address == *addr)
                    })
                })
                .unwrap_or("");
            o.sample(
                "maglev_vip_as_flows",
                &[("frontend", fe), ("vip", &pfx), ("backend", backend)],
                n,
            );
        }
    }
}

/// The fingerprint of each VIP's new-flow table (as of the last full
/// sync): routers with the same configuration and health agree, so one
/// query finds the one that differs.
fn vip_tables(o: &mut Out, status: &VppStatus) {
    o.family(
        "maglev_vip_table_share_error_points",
        "gauge",
        "Largest gap between an AS's share of the VIP's new-flow table and its share of the weights, in percentage points (above 1: new-flows-table-length too small).",
    );
    for v in &status.vips {
        if let Some(fe) = v.frontend.as_deref() {
            o.sample(
                "maglev_vip_table_share_error_points",
                &[("frontend", fe), ("vip", &v.key.pfx.to_string())],
                f64::from(v.share_error_centi) / 100.0,
            );
        }
    }
    o.family(
        "maglev_vip_table_info",
        "gauge",
        "Fingerprint of each VIP's Maglev new-flow table (equal across routers with the same ASes and weights).",
    );
    for v in &status.vips {
        if let (Some(fe), Some(fp)) = (v.frontend.as_deref(), v.fingerprint.as_deref()) {
            o.sample(
                "maglev_vip_table_info",
                &[
                    ("frontend", fe),
                    ("vip", &v.key.pfx.to_string()),
                    ("fingerprint", fp),
                ],
                1,
            );
        }
    }
}

/// VPP's uptime and the per-VIP counters read from the stats segment.
fn vpp_counters(o: &mut Out, c: &LbCounters, now: SystemTime) {
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
    let routes: [Family<(u64, u64)>; 2] = [
        (
            "maglev_vip_route_packets_total",
            "Packets routed to the VIP's prefix (/net/route/to).",
            |r| r.0,
        ),
        (
            "maglev_vip_route_bytes_total",
            "Bytes routed to the VIP's prefix (/net/route/to).",
            |r| r.1,
        ),
    ];
    for (family, help, value) in routes {
        o.family(family, "counter", help);
        for v in &c.vips {
            if let Some(r) = v.route {
                o.sample(
                    family,
                    &[
                        ("frontend", v.frontend.as_deref().unwrap_or("")),
                        ("vip", &v.key.pfx.to_string()),
                    ],
                    value(r),
                );
            }
        }
    }
    o.family(
        "maglev_vpp_stats_scrape_seconds",
        "gauge",
        "Duration of the last stats-segment read.",
    );
    o.sample("maglev_vpp_stats_scrape_seconds", &[], c.took.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Connection;
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::checker::{BackendView, FrontendView, PoolMember, PoolView, ProbeCounters};
    use crate::health::weights::AsWeight;
    use crate::probe::Code;
    use crate::vpp::client::VersionInfo;
    use crate::vpp::client::{ApiResult, Direction};
    use crate::vpp::scraper::VipCounters;
    use crate::vpp::wire::{LbVip, Prefix};

    const T0: Duration = Duration::from_secs(1_800_000_000);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + T0 + Duration::from_secs(secs)
    }

    /// One frontend `web` with backends `a` (up) and `b` (down, disabled).
    fn snapshot() -> Snapshot {
        let yaml = "maglev:
  vpp:
    lb: { ipv4-src-address: 192.0.2.254 }
  healthchecks:
    h: { type: http, port: 80 }
  backends:
    a: { address: 192.0.2.1, healthcheck: h }
    b: { address: 192.0.2.2, healthcheck: h }
  frontends:
    web:
      address: 198.51.100.1
      protocol: tcp
      port: 80
      pools:
        - name: main
          backends: { a: { weight: 60 }, b: {} }
";
        let config = Arc::new(crate::config::parse(yaml, Path::new("t.yaml")).unwrap());
        let view = |name: &str, state: State, enabled: bool| {
            let mut counters = ProbeCounters::default();
            counters.record(
                Code::L7Ok,
                Duration::from_millis(3),
                Some(Connection::Reused),
            );
            counters.record(Code::L7Ok, Duration::from_millis(30), Some(Connection::New));
            counters.record(Code::L4Tout, Duration::from_secs(9), None);
            counters.transitions.add(State::Unknown, state);
            BackendView {
                config: Arc::new(config.backends[name].clone()),
                state,
                enabled,
                counter: (if state == State::Up { 3 } else { 0 }, 3),
                last: None,
                history: Arc::new([]),
                counters,
            }
        };
        let member = |b: &str, configured: u8, weight: u8, state: State| PoolMember {
            backend: b.into(),
            configured,
            effective: AsWeight {
                weight,
                flush: false,
            },
            state,
        };
        Snapshot {
            backends: BTreeMap::from([
                ("a".into(), view("a", State::Up, true)),
                ("b".into(), view("b", State::Disabled, false)),
            ]),
            frontends: BTreeMap::from([(
                "web".to_string(),
                FrontendView {
                    state: FrontendState::Up,
                    pools: vec![PoolView {
                        name: "main".into(),
                        active: true,
                        members: vec![
                            member("a", 60, 60, State::Up),
                            member("b", 100, 0, State::Disabled),
                        ],
                    }],
                },
            )]),
            users: Arc::default(),
            config,
            at: at(0),
        }
    }

    fn text(f: impl FnOnce(&mut Out)) -> String {
        let mut s = String::new();
        f(&mut Out(&mut s));
        s
    }

    fn samples(page: &str) -> Vec<&str> {
        page.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn backends_one_state_series_per_state() {
        let page = text(|o| backends(o, &snapshot()));
        let s = samples(&page);
        assert_eq!(s.len(), 2 * 5 + 2 + 2 + 2);
        assert!(s.contains(&r#"maglev_backend_state{backend="a",state="up"} 1"#));
        assert!(s.contains(&r#"maglev_backend_state{backend="a",state="down"} 0"#));
        assert!(s.contains(&r#"maglev_backend_state{backend="b",state="disabled"} 1"#));
        assert!(s.contains(&r#"maglev_backend_health{backend="a"} 3"#));
        assert!(s.contains(&r#"maglev_backend_enabled{backend="b"} 0"#));
        assert!(s.contains(
            &r#"maglev_backend_transitions_total{backend="b",from="unknown",to="disabled"} 1"#
        ));
        assert!(page.contains("# TYPE maglev_backend_transitions_total counter\n"));
    }

    #[test]
    fn probes_count_by_code_and_fill_a_cumulative_histogram() {
        let page = text(|o| probes(o, &snapshot()));
        let s = samples(&page);
        assert!(s.contains(
            &r#"maglev_probe_total{backend="a",type="http",result="success",code="L7OK"} 2"#
        ));
        assert!(s.contains(
            &r#"maglev_probe_total{backend="a",type="http",result="failure",code="L4TOUT"} 1"#
        ));
        assert!(s.contains(&r#"maglev_probe_connections_total{backend="a",connection="new"} 1"#));
        assert!(
            s.contains(&r#"maglev_probe_connections_total{backend="a",connection="reused"} 1"#)
        );
        assert!(
            !page.contains("connection=\"reconnected\""),
            "no zero samples"
        );
        // 3 ms falls in 0.005, 30 ms in 0.05, 9 s only in +Inf.
        assert!(s.contains(
            &r#"maglev_probe_duration_seconds_bucket{backend="a",type="http",le="0.0025"} 0"#
        ));
        assert!(s.contains(
            &r#"maglev_probe_duration_seconds_bucket{backend="a",type="http",le="0.005"} 1"#
        ));
        assert!(s.contains(
            &r#"maglev_probe_duration_seconds_bucket{backend="a",type="http",le="0.05"} 2"#
        ));
        assert!(s.contains(
            &r#"maglev_probe_duration_seconds_bucket{backend="a",type="http",le="5"} 2"#
        ));
        assert!(s.contains(
            &r#"maglev_probe_duration_seconds_bucket{backend="a",type="http",le="+Inf"} 3"#
        ));
        assert!(s.contains(&r#"maglev_probe_duration_seconds_count{backend="a",type="http"} 3"#));
        assert!(s.contains(&r#"maglev_probe_duration_seconds_sum{backend="a",type="http"} 9.033"#));
        assert!(page.contains("# TYPE maglev_probe_duration_seconds histogram\n"));
    }

    #[test]
    fn frontends_show_configured_and_effective_weights() {
        let page = text(|o| frontends(o, &snapshot()));
        let s = samples(&page);
        assert_eq!(s.len(), 4 + 2 + 2);
        assert!(s.contains(&r#"maglev_frontend_state{frontend="web",state="up"} 1"#));
        assert!(s.contains(
            &r#"maglev_frontend_pool_backend_weight{frontend="web",pool="main",backend="b"} 100"#
        ));
        assert!(s.contains(
            &r#"maglev_frontend_pool_backend_effective_weight{frontend="web",pool="main",backend="b"} 0"#
        ));
        assert!(s.contains(
            &r#"maglev_frontend_pool_backend_effective_weight{frontend="web",pool="main",backend="a"} 60"#
        ));
    }

    #[test]
    fn vpp_sync_counters_use_the_originals_labels() {
        let api = [
            (
                ("lb_add_del_vip_v2", Direction::Send, ApiResult::Success),
                3,
            ),
            (
                (
                    "lb_add_del_vip_v2_reply",
                    Direction::Recv,
                    ApiResult::Failure,
                ),
                1,
            ),
        ];
        let ops = [((ScopeKind::Vip, OpKind::AsWeightUpdated), 7)];
        let page = text(|o| vpp_sync(o, false, &api, &ops, 2));
        let s = samples(&page);
        assert_eq!(
            s,
            [
                "maglev_vpp_connected 0",
                r#"maglev_vpp_api_total{msg="lb_add_del_vip_v2",direction="send",result="success"} 3"#,
                r#"maglev_vpp_api_total{msg="lb_add_del_vip_v2_reply",direction="recv",result="failure"} 1"#,
                r#"maglev_vpp_lbsync_total{scope="vip",kind="as_weight_updated"} 7"#,
                "maglev_vpp_lbsync_drift_mismatches_total 2",
            ]
        );
    }

    #[test]
    fn vpp_session_says_how_long_and_which_vpp() {
        let status = VppStatus {
            connected: true,
            connected_at: Some(at(100)),
            version: Some(VersionInfo {
                version: "24.10".into(),
                build_date: "2024-10-30".into(),
                build_directory: "/w".into(),
                program: "vpe".into(),
            }),
            pid: Some(42),
            vips: Vec::new(),
            frontends: Default::default(),
        };
        let page = text(|o| vpp_session(o, &status, at(160)));
        assert_eq!(
            samples(&page),
            [
                "maglev_vpp_connected_seconds 60",
                r#"maglev_vpp_info{version="24.10",build_date="2024-10-30",pid="42"} 1"#,
            ]
        );
    }

    #[test]
    fn vpp_counters_per_vip_and_route() {
        let key = LbVip {
            pfx: Prefix::host("198.51.100.1".parse().unwrap()),
            protocol: 6,
            port: 80,
        };
        let c = LbCounters {
            enabled: true,
            boottime: (T0.as_secs()) + 10,
            vips: vec![
                VipCounters {
                    frontend: Some("web".into()),
                    key,
                    next: 1,
                    first: 2,
                    untracked: 3,
                    no_server: 4,
                    route: Some((5, 600)),
                },
                VipCounters {
                    frontend: None,
                    key: LbVip { port: 81, ..key },
                    next: 0,
                    first: 0,
                    untracked: 0,
                    no_server: 0,
                    route: None,
                },
            ],
            at: Some(at(70)),
            took: Duration::from_micros(250),
        };
        let page = text(|o| vpp_counters(o, &c, at(70)));
        let s = samples(&page);
        assert_eq!(s[0], "maglev_vpp_uptime_seconds 60");
        assert!(s.contains(&r#"maglev_vip_packets_total{frontend="web",vip="198.51.100.1/32",protocol="6",port="80",kind="no-server"} 4"#));
        assert!(s.contains(&r#"maglev_vip_packets_total{frontend="",vip="198.51.100.1/32",protocol="6",port="81",kind="next"} 0"#));
        assert!(s.contains(
            &r#"maglev_vip_route_packets_total{frontend="web",vip="198.51.100.1/32"} 5"#
        ));
        assert!(s.contains(
            &r#"maglev_vip_route_bytes_total{frontend="web",vip="198.51.100.1/32"} 600"#
        ));
        assert_eq!(
            s.iter()
                .filter(|l| l.starts_with("maglev_vip_route"))
                .count(),
            2,
            "a VIP without a route has no route series"
        );
        assert_eq!(
            *s.last().unwrap(),
            "maglev_vpp_stats_scrape_seconds 0.00025"
        );
    }
}
