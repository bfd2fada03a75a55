//! `maglevc`'s human output: aligned tables and `label  value` blocks made
//! from the [`protocol`](super::protocol) types. Pure, so every layout is
//! unit-testable. `-` stands for a value that is absent, never for one the
//! formatter failed to find.

use super::protocol::{self as p, Reply};

/// ANSI styling, on or off.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Emit colour escapes.
    pub color: bool,
}

impl Style {
    fn label(&self, s: &str) -> String {
        if self.color {
            format!("\x1b[34m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// An error line.
    pub fn error(&self, s: &str) -> String {
        if self.color {
            format!("\x1b[31m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// A value that may be absent: `-` then, as the original prints it.
fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), ToString::to_string)
}

/// A string that may be empty: `-` then.
fn txt(v: &str) -> String {
    if v.is_empty() { "-".into() } else { v.into() }
}

/// A duration or latency in milliseconds, one decimal.
fn dec(v: f64) -> String {
    format!("{v:.1}")
}

/// A VIP or prefix without `/32` or `/128`.
pub fn host(prefix: &str) -> String {
    prefix
        .strip_suffix("/32")
        .or_else(|| prefix.strip_suffix("/128").filter(|p| p.contains(':')))
        .unwrap_or(prefix)
        .to_string()
}

/// Columns padded to their widest cell (headers included).
pub fn table(headers: &[&str], rows: &[Vec<String>], st: Style) -> String {
    let mut w: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String, head: bool| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i].saturating_sub(c.chars().count());
            let cell = if head { st.label(c) } else { c.clone() };
            l.push_str(&cell);
            if i + 1 < cells.len() {
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(
        headers.iter().map(|h| h.to_string()).collect(),
        &mut out,
        true,
    );
    for r in rows {
        line(r.clone(), &mut out, false);
    }
    out
}

/// `label  value` lines; a field with no value (`-`) is left out, as the
/// original omits it.
fn block(pairs: &[(&str, String)], st: Style) -> String {
    let pairs: Vec<&(&str, String)> = pairs.iter().filter(|(_, v)| v != "-").collect();
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        out.push_str(&st.label(k));
        out.push_str(&" ".repeat(w - k.len() + 2));
        out.push_str(v);
        out.push('\n');
    }
    out
}

fn frontends(fs: &[p::Frontend], st: Style) -> String {
    let rows: Vec<Vec<String>> = fs
        .iter()
        .map(|f| {
            vec![
                f.name.clone(),
                f.address.clone(),
                f.protocol.clone(),
                f.port.to_string(),
                f.state.to_string(),
                opt(&f.active_pool),
                f.backends.to_string(),
                f.vpp.to_string(),
                bgp(f),
            ]
        })
        .collect();
    table(
        &[
            "FRONTEND",
            "ADDRESS",
            "PROTOCOL",
            "PORT",
            "STATE",
            "ACTIVE POOL",
            "BACKENDS",
            "VPP",
            "BGP",
        ],
        &rows,
        st,
    )
}

/// A frontend's BGP cell: `announced`, the reason its address is withdrawn,
/// or `-` when announcing is not configured.
fn bgp(f: &p::Frontend) -> String {
    match (f.announced, f.announce_reason) {
        (None, _) => "-".into(),
        (Some(true), _) => "announced".into(),
        (Some(false), Some(r)) => r.as_str().into(),
        (Some(false), None) => "withdrawn".into(),
    }
}

fn frontend(f: &p::Frontend, st: Style) -> String {
    let d = f.detail.as_ref();
    let mut out = block(
        &[
            ("frontend", f.name.clone()),
            ("address", f.address.clone()),
            ("protocol", f.protocol.clone()),
            ("port", f.port.to_string()),
            ("state", f.state.to_string()),
            ("active-pool", opt(&f.active_pool)),
            ("backends", f.backends.to_string()),
            ("vpp", f.vpp.to_string()),
            ("vpp-unheld", opt(&d.map(|d| d.vpp_unheld))),
            ("bgp", bgp(f)),
            (
                "vpp-refusal",
                d.and_then(|d| d.vpp_refusal.as_ref())
                    .map_or("-".to_string(), |r| {
                        format!("{} at {}: {}", r.op, r.at, r.error)
                    }),
            ),
            ("src-ip-sticky", opt(&d.map(|d| d.src_ip_sticky))),
            ("flush-on-down", opt(&d.map(|d| d.flush_on_down))),
            (
                "new-flows-table-length",
                opt(&d.map(|d| d.new_flows_table_length)),
            ),
            ("description", txt(&f.description)),
        ],
        st,
    );
    for pool in d.map_or(&[][..], |d| &d.pools) {
        out.push_str(&format!(
            "{} {}{}\n",
            st.label("pool"),
            pool.name,
            if pool.active { " (active)" } else { "" }
        ));
        for b in &pool.backends {
            out.push_str(&format!(
                "  {:<20} {:<16} weight {:>3}  effective {:>3}  {}{}{}  share {}% table {}%\n",
                b.name,
                opt(&b.address),
                b.weight,
                b.effective_weight,
                b.state,
                if b.enabled { "" } else { " [disabled]" },
                if b.flush { " [flush]" } else { "" },
                dec(b.share),
                dec(b.table_share),
            ));
        }
    }
    out
}

fn backends(bs: &[p::Backend], st: Style) -> String {
    let rows: Vec<Vec<String>> = bs
        .iter()
        .map(|b| {
            vec![
                b.name.clone(),
                b.address.clone(),
                txt(&b.healthcheck),
                b.state.to_string(),
                b.enabled.to_string(),
                opt(&b.last.as_ref().map(|l| &l.code)),
                opt(&b.last.as_ref().map(|l| txt(&l.detail))),
            ]
        })
        .collect();
    table(
        &[
            "BACKEND",
            "ADDRESS",
            "HEALTHCHECK",
            "STATE",
            "ENABLED",
            "LAST",
            "DETAIL",
        ],
        &rows,
        st,
    )
}

fn backend(b: &p::Backend, st: Style) -> String {
    let d = b.detail.as_ref();
    let mut out = block(
        &[
            ("backend", b.name.clone()),
            ("address", b.address.clone()),
            ("healthcheck", txt(&b.healthcheck)),
            ("state", b.state.to_string()),
            ("enabled", b.enabled.to_string()),
            (
                "counter",
                opt(&d.map(|d| format!("{}/{}", d.counter, d.counter_max))),
            ),
            (
                "last probe",
                opt(&b.last.as_ref().map(|l| {
                    let connection = match &l.connection {
                        Some(c) => format!(", {c} connection"),
                        None => String::new(),
                    };
                    format!(
                        "{} {} ({} ms{connection}) at {}",
                        l.code,
                        txt(&l.detail),
                        dec(l.duration_ms),
                        l.at
                    )
                })),
            ),
            (
                "probes",
                opt(&d.filter(|d| !d.probes.is_empty()).map(|d| {
                    d.probes
                        .iter()
                        .map(|(c, n)| format!("{c} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })),
            ),
            (
                "connections",
                opt(&d.filter(|d| !d.connections.is_empty()).map(|d| {
                    d.connections
                        .iter()
                        .map(|(c, n)| format!("{c} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })),
            ),
        ],
        st,
    );
    let hist = d.map_or(&[][..], |d| &d.history);
    if !hist.is_empty() {
        out.push_str(&st.label("history"));
        out.push('\n');
        for t in hist {
            out.push_str(&format!(
                "  {}  {} -> {}  {} {}\n",
                t.at,
                t.from,
                t.to,
                opt(&t.code),
                txt(&t.detail)
            ));
        }
    }
    out
}

fn healthchecks(hs: &[p::Healthcheck], st: Style) -> String {
    let rows: Vec<Vec<String>> = hs
        .iter()
        .map(|h| {
            vec![
                h.name.clone(),
                h.kind.clone(),
                opt(&h.port),
                format!("{}ms", h.interval_ms),
                format!("{}ms", h.timeout_ms),
                format!("{}/{}", h.rise, h.fall),
            ]
        })
        .collect();
    table(
        &[
            "HEALTHCHECK",
            "TYPE",
            "PORT",
            "INTERVAL",
            "TIMEOUT",
            "RISE/FALL",
        ],
        &rows,
        st,
    )
}

fn healthcheck(h: &p::Healthcheck, st: Style) -> String {
    let mut pairs = vec![
        ("healthcheck", h.name.clone()),
        ("type", h.kind.clone()),
        ("port", opt(&h.port)),
        ("interval", format!("{} ms", h.interval_ms)),
        ("fast-interval", format!("{} ms", h.fast_interval_ms)),
        ("down-interval", format!("{} ms", h.down_interval_ms)),
        ("timeout", format!("{} ms", h.timeout_ms)),
        ("rise", h.rise.to_string()),
        ("fall", h.fall.to_string()),
        ("probe-ipv4-src", opt(&h.probe_ipv4_src)),
        ("probe-ipv6-src", opt(&h.probe_ipv6_src)),
    ];
    if let Some(m) = &h.mode {
        pairs.push(("mode", m.clone()));
    }
    if let Some(x) = &h.params {
        // The keys as the original prints them (scripts match on these).
        pairs.extend([
            ("path", txt(&x.path)),
            ("host", opt(&x.host)),
            ("method", x.method.clone()),
            ("expect_status", x.expect_status.join(", ")),
            ("expect_body", opt(&x.expect_body)),
            ("tls_server_name", opt(&x.tls_server_name)),
            ("tls_verify", opt(&x.tls_verify)),
            ("reuse_connection", x.reuse_connection.to_string()),
        ]);
        if let Some(l) = x.reuse_lifetime_ms {
            pairs.push(("reuse_lifetime", format!("{l} ms")));
        }
    }
    block(&pairs, st)
}

fn lb_counters(c: &p::LbCounters, st: Style) -> String {
    let rows: Vec<Vec<String>> = c
        .vips
        .iter()
        .map(|c| {
            vec![
                opt(&c.frontend),
                host(&c.prefix),
                c.protocol.to_string(),
                c.port.to_string(),
                c.first.to_string(),
                c.next.to_string(),
                c.untracked.to_string(),
                c.no_server.to_string(),
                opt(&c.fib_packets),
                opt(&c.fib_bytes),
            ]
        })
        .collect();
    table(
        &[
            "FRONTEND",
            "VIP",
            "PROTO",
            "PORT",
            "FIRST",
            "NEXT",
            "UNTRACKED",
            "NO-SERVER",
            "FIB-PACKETS",
            "FIB-BYTES",
        ],
        &rows,
        st,
    )
}

fn lb_state(s: &p::LbState, st: Style) -> String {
    let c = s.conf.as_ref();
    let mut out = block(
        &[
            ("ip4-src-address", opt(&c.map(|c| &c.ip4_src))),
            ("ip6-src-address", opt(&c.map(|c| &c.ip6_src))),
            (
                "sticky-buckets-per-core",
                opt(&c.map(|c| c.sticky_buckets_per_core)),
            ),
            (
                "flow-timeout",
                opt(&c.map(|c| format!("{}s", c.flow_timeout))),
            ),
        ],
        st,
    );
    for vip in &s.vips {
        out.push_str(&format!(
            "{} {} protocol {} port {} encap {} src-ip-sticky {} index {} buckets {} fingerprint {}\n",
            st.label("vip"),
            host(&vip.prefix),
            vip.protocol,
            vip.port,
            vip.encap,
            opt(&vip.src_ip_sticky),
            opt(&vip.index),
            vip.new_flows_table_length,
            opt(&vip.fingerprint),
        ));
        for a in &vip.ases {
            out.push_str(&format!(
                "  {:<40} weight {:>3}  buckets {:>5}  flows {:>6}{}\n",
                a.address,
                a.weight,
                a.buckets,
                a.flows,
                if a.in_use { "" } else { "  removed" }
            ));
        }
    }
    // Grouped by deleted VIP, in VPP's order.
    let mut last: Option<u32> = None;
    for r in &s.removed {
        if last != Some(r.index) {
            out.push_str(&format!(
                "{} {} protocol {} port {} index {} (deleted; VPP has not collected it yet)\n",
                st.label("removed vip"),
                host(&r.prefix),
                r.protocol,
                r.port,
                r.index,
            ));
            last = Some(r.index);
        }
        out.push_str(&format!(
            "  {:<40} weight {:>3}  flows {:>6}  removed\n",
            r.address, r.weight, r.flows
        ));
    }
    out
}

fn vpp_info(v: &p::VppInfo, st: Style) -> String {
    // The original's labels: a time with how long ago it was.
    let since = |at: Option<u64>, secs: Option<u64>| match (at, secs) {
        (Some(at), Some(s)) => format!(
            "{} ({} ago)",
            crate::logging::rfc3339_utc(std::time::UNIX_EPOCH + std::time::Duration::from_secs(at)),
            crate::config::format_duration(std::time::Duration::from_secs(s))
        ),
        _ => "-".into(),
    };
    block(
        &[
            ("version", opt(&v.version)),
            ("build-date", opt(&v.build_date)),
            ("build-dir", opt(&v.build_directory)),
            ("vpp-pid", opt(&v.pid)),
            ("vpp-boottime", since(v.boottime, v.uptime_seconds)),
            ("connected", since(v.connected_at, v.connected_seconds)),
        ],
        st,
    )
}

fn synced(s: &p::Synced) -> String {
    let mut out = format!(
        "sync {}: {} operation(s), {} refused, {} drift, {} ms\n",
        s.scope,
        s.ops.len(),
        s.errors.len(),
        s.drift,
        dec(s.took_ms)
    );
    for o in &s.ops {
        out.push_str(&format!("  {o}\n"));
    }
    for e in &s.errors {
        out.push_str(&format!("  refused: {e}\n"));
    }
    out
}

/// `a -> b`, or `a` when nothing changes (`-` for absent).
fn change<T: std::fmt::Display + PartialEq>(a: &Option<T>, b: &Option<T>) -> String {
    if a == b {
        opt(a)
    } else {
        format!("{} -> {}", opt(a), opt(b))
    }
}

/// A preview, terraform-plan style: per VIP its operations in order, each
/// AS's weight and buckets before and after, and the new flows that move.
pub fn preview(v: &p::Preview, st: Style) -> String {
    let basis = match v.basis.as_str() {
        "vpp" => "against VPP's state, read now",
        _ => "against what maglevd programs: VPP is not connected",
    };
    let mut out = format!("{} {} ({basis})\n", st.label("preview"), v.change);
    if v.conf.is_none() && v.vips.is_empty() {
        out.push_str("no change to VPP\n");
        return out;
    }
    let mut n = 0;
    if let Some(c) = &v.conf {
        n += 1;
        out.push_str(&format!("{} 1. {c}\n", st.label("lb-conf")));
    }
    for vip in &v.vips {
        out.push_str(&format!(
            "{} {} protocol {} port {} frontend {}: {} operation(s)\n",
            st.label("vip"),
            host(&vip.prefix),
            vip.protocol,
            vip.port,
            opt(&vip.frontend),
            vip.ops.len()
        ));
        for o in &vip.ops {
            n += 1;
            out.push_str(&format!("  {n}. {o}\n"));
        }
        if vip.recreated {
            out.push_str("  the VIP is deleted and added again: its established flows are cut\n");
        }
        let rows: Vec<Vec<String>> = vip
            .ases
            .iter()
            .map(|a| {
                vec![
                    a.address.clone(),
                    txt(&a.backends.join(",")),
                    change(&a.weight_before, &a.weight_after),
                    change(&Some(a.buckets_before), &Some(a.buckets_after)),
                ]
            })
            .collect();
        for l in table(&["AS", "BACKENDS", "WEIGHT", "BUCKETS"], &rows, st).lines() {
            out.push_str(&format!("  {l}\n"));
        }
        out.push_str(&format!(
            "  table {} buckets, fingerprint {}\n",
            change(&vip.buckets_before, &vip.buckets_after),
            change(&vip.fingerprint_before, &vip.fingerprint_after),
        ));
        out.push_str(&format!(
            "  new flows moved: {}% (necessary {}%, collateral {}%)\n",
            dec(vip.moved),
            dec(vip.necessary),
            dec(vip.collateral)
        ));
    }
    out.push_str(&format!(
        "{} VIP(s), {n} operation(s); computed in {} ms\n",
        v.vips.len(),
        dec(v.took_ms)
    ));
    out
}

fn announce(a: &p::AnnounceState, st: Style) -> String {
    if !a.enabled {
        return "announcing is not configured (maglev.announce)\n".into();
    }
    let mut out = block(
        &[
            ("file", opt(&a.file)),
            (
                "maintenance",
                if a.maintenance {
                    "withdraw (set announce restore to end it)"
                } else {
                    "no"
                }
                .into(),
            ),
            (
                "last-reload",
                a.last_reload.as_ref().map_or("-".into(), |r| {
                    format!(
                        "{} at {} took {} ms{}",
                        r.result,
                        r.at,
                        dec(r.took_ms),
                        r.detail
                            .as_ref()
                            .map_or(String::new(), |d| format!(": {d}"))
                    )
                }),
            ),
            ("write-error", opt(&a.write_error)),
        ],
        st,
    );
    let rows: Vec<Vec<String>> = a
        .addresses
        .iter()
        .map(|x| {
            vec![
                x.address.clone(),
                if x.announced { "yes" } else { "no" }.into(),
                // Announced: the rule holds, nothing to explain.
                x.reason
                    .map_or("serving".into(), |r| r.as_str().to_string()),
                x.since.clone(),
                x.frontends.join(","),
            ]
        })
        .collect();
    out.push_str(&table(
        &["ADDRESS", "ANNOUNCED", "REASON", "SINCE", "FRONTENDS"],
        &rows,
        st,
    ));
    out
}

/// Renders a successful reply.
pub fn render(reply: &Reply, st: Style) -> String {
    match reply {
        Reply::Version(v) => block(
            &[
                ("maglevd", v.version.clone()),
                ("commit", v.commit.clone()),
                ("pid", v.pid.to_string()),
                ("uptime", format!("{}s", v.uptime_seconds)),
            ],
            st,
        ),
        Reply::Frontends { frontends: fs } => frontends(fs, st),
        Reply::Frontend { frontend: Some(f) } => frontend(f, st),
        Reply::Frontend { frontend: None } => "done\n".into(),
        Reply::Backends { backends: bs } => backends(bs, st),
        Reply::Backend { backend: b } => backend(b, st),
        Reply::Healthchecks { healthchecks: hs } => healthchecks(hs, st),
        Reply::Healthcheck { healthcheck: h } => healthcheck(h, st),
        Reply::VppInfo(v) => vpp_info(v, st),
        Reply::LbState(s) => lb_state(s, st),
        Reply::LbCounters(c) => lb_counters(c, st),
        Reply::Announce(a) => announce(a, st),
        Reply::Synced(s) => synced(s),
        Reply::Preview(v) => preview(v, st),
        Reply::Config { result, plan } => match plan {
            Some(pl) => format!("{result}\n{}", preview(pl, st)),
            None => format!("{result}\n"),
        },
        Reply::Watching { watching: w } => format!(
            "watching{}{}{}{}\n",
            if w.backend { " backend" } else { "" },
            if w.frontend { " frontend" } else { "" },
            w.log
                .as_ref()
                .map_or(String::new(), |l| format!(" log level {l}")),
            w.num.map_or(String::new(), |n| format!(" num {n}")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::State;
    use crate::control::protocol::samples;

    const PLAIN: Style = Style { color: false };

    #[test]
    fn tables_align_and_vips_drop_host_lengths() {
        let t = table(&["A", "LONGER"], &[vec!["xxxx".into(), "y".into()]], PLAIN);
        assert_eq!(t, "A     LONGER\nxxxx  y\n");
        assert_eq!(host("192.0.2.1/32"), "192.0.2.1");
        assert_eq!(host("2001:db8::1/128"), "2001:db8::1");
        assert_eq!(host("10.0.0.0/24"), "10.0.0.0/24");
    }

    /// Every leaf of a JSON value with its path.
    fn leaves(v: &serde_json::Value, path: String, out: &mut Vec<(String, String)>) {
        use serde_json::Value;
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    leaves(x, format!("{path}.{k}"), out);
                }
            }
            Value::Array(a) => {
                for x in a {
                    leaves(x, format!("{path}[]"), out);
                }
            }
            Value::String(s) => out.push((path, s.clone())),
            Value::Number(n) if n.is_f64() => {
                out.push((path, format!("{:.1}", n.as_f64().unwrap())))
            }
            Value::Number(n) => out.push((path, n.to_string())),
            Value::Bool(_) | Value::Null => {}
        }
    }

    /// Fields the human view leaves out on purpose (`--json` has them).
    const NOT_SHOWN: &[&str] = &[
        // Summaries: one line per object, the detail view has the rest.
        "ShowFrontends:.frontends[].description",
        // A VIP is shown without its host length; a time as "ago".
        "ShowVppLbState:.vips[].prefix",
        "ShowVppLbState:.removed[].prefix",
        // The basis is said in words; VIPs without their host length.
        "ConfigCheck:.plan.basis",
        "ConfigCheck:.plan.vips[].prefix",
        "Preview:.basis",
        "Preview:.vips[].prefix",
        "ShowVppLbCounters:.vips[].prefix",
        "ShowVppLbCounters:.at",
        "ShowVppInfo:.connected_at",
        "ShowVppInfo:.connected_seconds",
        "ShowVppInfo:.boottime",
        "ShowVppInfo:.uptime_seconds",
        // A table cell holds these as `rise/fall`, `NNms`.
        "ShowHealthchecks:.healthchecks[].fast_interval_ms",
        "ShowHealthchecks:.healthchecks[].down_interval_ms",
        "ShowHealthchecks:.healthchecks[].probe_ipv4_src",
        "ShowHealthchecks:.healthchecks[].probe_ipv6_src",
        "ShowHealthchecks:.healthchecks[].mode",
        "ShowHealthchecks:.healthchecks[].params.path",
        "ShowHealthchecks:.healthchecks[].params.host",
        "ShowHealthchecks:.healthchecks[].params.method",
        "ShowHealthchecks:.healthchecks[].params.expect_status[]",
        "ShowHealthchecks:.healthchecks[].params.expect_body",
        "ShowHealthchecks:.healthchecks[].params.tls_server_name",
        "ShowHealthchecks:.healthchecks[].params.reuse_lifetime_ms",
        "ShowBackends:.backends[].last.duration_ms",
        "ShowBackends:.backends[].last.connection",
        "SetBackend:.backend.last.connection",
        "ShowBackends:.backends[].last.at",
        "SetBackend:.backend.last.duration_ms",
        "SetBackend:.backend.last.at",
        "SetBackend:.backend.last.detail",
    ];

    /// The acceptance test of the shared protocol: every reply, with every
    /// field set, goes over the wire and through maglevc's formatter; no
    /// `-` stands where a value exists, and every value is shown unless
    /// listed in [`NOT_SHOWN`].
    #[test]
    fn every_reply_renders_every_value_and_no_placeholder() {
        for (cmd, reply) in samples() {
            let line = reply.encode();
            let decoded = Reply::decode(&cmd, &line).unwrap().unwrap();
            let out = render(&decoded, PLAIN);
            let name = format!("{cmd:?}");
            let name = name.split(['(', ' ', '{']).next().unwrap();
            for l in out.lines() {
                assert!(
                    !l.split_whitespace().any(|w| w == "-"),
                    "{name}: placeholder in {l:?}\n{out}"
                );
            }
            let mut all = Vec::new();
            leaves(
                &serde_json::from_str(&line).unwrap(),
                String::new(),
                &mut all,
            );
            for (path, value) in all {
                let key = format!("{name}:{path}");
                if NOT_SHOWN.contains(&key.as_str()) {
                    continue;
                }
                assert!(out.contains(&value), "{key} = {value:?} not shown:\n{out}");
            }
        }
    }

    #[test]
    fn absent_values_are_dashes_or_left_out() {
        let b = p::Backend {
            name: "b".into(),
            address: "192.0.2.9".into(),
            healthcheck: String::new(),
            state: State::Up,
            enabled: true,
            last: None,
            detail: None,
        };
        let out = render(
            &Reply::Backends {
                backends: vec![b.clone()],
            },
            PLAIN,
        );
        assert_eq!(
            out.lines().nth(1).unwrap(),
            "b        192.0.2.9  -            up     true     -     -"
        );
        // A block leaves absent fields out, as the original does.
        let out = render(&Reply::Backend { backend: b }, PLAIN);
        assert!(
            !out.contains("last probe") && !out.contains("counter"),
            "{out}"
        );
    }

    #[test]
    fn counters_put_first_before_next() {
        let (_, r) = samples()
            .into_iter()
            .find(|(c, _)| matches!(c, crate::control::grammar::Command::ShowVppLbCounters))
            .unwrap();
        let out = render(&r, PLAIN);
        let head = out.lines().next().unwrap();
        assert!(head.find("FIRST").unwrap() < head.find("NEXT").unwrap());
        assert!(head.contains("FIB-PACKETS") && head.contains("FIB-BYTES"));
        assert!(
            out.lines()
                .nth(1)
                .unwrap()
                .starts_with("web       198.51.100.1  6"),
            "{out}"
        );
    }

    #[test]
    fn frontend_shows_pools_and_disabled_marker() {
        let (_, mut r) = samples()
            .into_iter()
            .find(|(c, _)| matches!(c, crate::control::grammar::Command::ShowFrontend(_)))
            .unwrap();
        if let Reply::Frontend { frontend: Some(f) } = &mut r {
            let b = &mut f.detail.as_mut().unwrap().pools[0].backends[0];
            b.enabled = false;
            b.flush = false;
        }
        let out = render(&r, PLAIN);
        assert!(out.contains("pool primary (active)"), "{out}");
        assert!(out.contains("[disabled]"), "{out}");
        assert!(out.contains("weight  70  effective  35  up"), "{out}");
    }
}
