//! `maglevc`'s human output: aligned tables and `label  value` blocks made
//! from the protocol's JSON. Pure, so every layout is unit-testable.

use serde_json::Value;

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

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        // As the original prints them (scripts match on these).
        Value::Bool(b) => if *b { "true" } else { "false" }.into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
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

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Renders a successful response for the command words it answers.
pub fn render(words: &[&str], v: &Value, st: Style) -> String {
    if let Some(fs) = v.get("frontends") {
        let rows: Vec<Vec<String>> = arr(fs)
            .iter()
            .map(|f| {
                vec![
                    text(&f["name"]),
                    text(&f["address"]),
                    text(&f["protocol"]),
                    text(&f["port"]),
                    text(&f["state"]),
                    text(&f["active_pool"]),
                    text(&f["backends"]),
                ]
            })
            .collect();
        return table(
            &[
                "FRONTEND",
                "ADDRESS",
                "PROTOCOL",
                "PORT",
                "STATE",
                "ACTIVE POOL",
                "BACKENDS",
            ],
            &rows,
            st,
        );
    }
    if let Some(f) = v.get("frontend") {
        let mut out = block(
            &[
                ("frontend", text(&f["name"])),
                ("address", text(&f["address"])),
                ("protocol", text(&f["protocol"])),
                ("port", text(&f["port"])),
                ("state", text(&f["state"])),
                ("src-ip-sticky", text(&f["src_ip_sticky"])),
                ("flush-on-down", text(&f["flush_on_down"])),
                ("description", text(&f["description"])),
            ],
            st,
        );
        for p in arr(&f["pools"]) {
            out.push_str(&format!(
                "{} {}{}\n",
                st.label("pool"),
                text(&p["name"]),
                if p["active"].as_bool() == Some(true) {
                    " (active)"
                } else {
                    ""
                }
            ));
            for b in arr(&p["backends"]) {
                out.push_str(&format!(
                    "  {:<20} {:<16} weight {:>3}  effective {:>3}  {}{}\n",
                    text(&b["name"]),
                    text(&b["address"]),
                    text(&b["weight"]),
                    text(&b["effective_weight"]),
                    text(&b["state"]),
                    if b["enabled"].as_bool() == Some(false) {
                        " [disabled]"
                    } else {
                        ""
                    }
                ));
            }
        }
        return out;
    }
    if let Some(bs) = v.get("backends").filter(|b| b.is_array()) {
        let rows: Vec<Vec<String>> = arr(bs)
            .iter()
            .map(|b| {
                vec![
                    text(&b["name"]),
                    text(&b["address"]),
                    text(&b["healthcheck"]),
                    text(&b["state"]),
                    text(&b["enabled"]),
                    text(&b["last"]["code"]),
                    text(&b["last"]["detail"]),
                ]
            })
            .collect();
        return table(
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
        );
    }
    if let Some(b) = v.get("backend") {
        let mut out = block(
            &[
                ("backend", text(&b["name"])),
                ("address", text(&b["address"])),
                ("healthcheck", text(&b["healthcheck"])),
                ("state", text(&b["state"])),
                ("enabled", text(&b["enabled"])),
                (
                    "counter",
                    format!("{}/{}", text(&b["counter"]), text(&b["counter_max"])),
                ),
                (
                    "last probe",
                    format!(
                        "{} {} ({} ms) at {}",
                        text(&b["last"]["code"]),
                        text(&b["last"]["detail"]),
                        text(&b["last"]["duration_ms"]),
                        text(&b["last"]["at"])
                    ),
                ),
            ],
            st,
        );
        let hist = arr(&b["history"]);
        if !hist.is_empty() {
            out.push_str(&st.label("history"));
            out.push('\n');
            for t in hist {
                out.push_str(&format!(
                    "  {}  {} -> {}  {} {}\n",
                    text(&t["at"]),
                    text(&t["from"]),
                    text(&t["to"]),
                    text(&t["code"]),
                    text(&t["detail"])
                ));
            }
        }
        return out;
    }
    if let Some(hs) = v.get("healthchecks") {
        let rows: Vec<Vec<String>> = arr(hs)
            .iter()
            .map(|h| {
                vec![
                    text(&h["name"]),
                    text(&h["type"]),
                    text(&h["port"]),
                    format!("{}ms", text(&h["interval_ms"])),
                    format!("{}ms", text(&h["timeout_ms"])),
                    format!("{}/{}", text(&h["rise"]), text(&h["fall"])),
                ]
            })
            .collect();
        return table(
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
        );
    }
    if let Some(h) = v.get("healthcheck") {
        let mut pairs = vec![
            ("healthcheck", text(&h["name"])),
            ("type", text(&h["type"])),
            ("port", text(&h["port"])),
            ("interval", format!("{} ms", text(&h["interval_ms"]))),
            (
                "fast-interval",
                format!("{} ms", text(&h["fast_interval_ms"])),
            ),
            (
                "down-interval",
                format!("{} ms", text(&h["down_interval_ms"])),
            ),
            ("timeout", format!("{} ms", text(&h["timeout_ms"]))),
            ("rise", text(&h["rise"])),
            ("fall", text(&h["fall"])),
        ];
        if let Some(p) = h.get("params").and_then(Value::as_object) {
            for (k, val) in p {
                pairs.push((k.as_str(), text(val)));
            }
        }
        return block(&pairs, st);
    }
    if words.starts_with(&["show", "vpp", "lb", "counters"]) {
        let rows: Vec<Vec<String>> = arr(&v["vips"])
            .iter()
            .map(|c| {
                vec![
                    text(&c["frontend"]),
                    host(&text(&c["prefix"])),
                    text(&c["protocol"]),
                    text(&c["port"]),
                    text(&c["first"]),
                    text(&c["next"]),
                    text(&c["untracked"]),
                    text(&c["no_server"]),
                    text(&c["fib_packets"]),
                    text(&c["fib_bytes"]),
                ]
            })
            .collect();
        return table(
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
        );
    }
    if words.starts_with(&["show", "vpp", "lb", "state"]) {
        let c = &v["conf"];
        let mut out = block(
            &[
                ("ip4-src-address", text(&c["ip4_src"])),
                ("ip6-src-address", text(&c["ip6_src"])),
                (
                    "sticky-buckets-per-core",
                    text(&c["sticky_buckets_per_core"]),
                ),
                ("flow-timeout", format!("{}s", text(&c["flow_timeout"]))),
            ],
            st,
        );
        for vip in arr(&v["vips"]) {
            out.push_str(&format!(
                "{} {} protocol {} port {} encap {} src-ip-sticky {} index {}\n",
                st.label("vip"),
                host(&text(&vip["prefix"])),
                text(&vip["protocol"]),
                text(&vip["port"]),
                text(&vip["encap"]),
                text(&vip["src_ip_sticky"]),
                text(&vip["index"])
            ));
            for a in arr(&vip["ases"]) {
                out.push_str(&format!(
                    "  {:<40} weight {:>3}  buckets {:>5}{}\n",
                    text(&a["address"]),
                    text(&a["weight"]),
                    text(&a["buckets"]),
                    if a["in_use"].as_bool() == Some(false) {
                        "  removed"
                    } else {
                        ""
                    }
                ));
            }
        }
        return out;
    }
    if words.starts_with(&["show", "vpp", "info"]) {
        // The original's labels: a time with how long ago it was.
        let since = |at: &Value, secs: &Value| match (at.as_u64(), secs.as_u64()) {
            (Some(at), Some(s)) => format!(
                "{} ({} ago)",
                crate::logging::rfc3339_utc(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(at)
                ),
                crate::config::format_duration(std::time::Duration::from_secs(s))
            ),
            _ => "-".into(),
        };
        return block(
            &[
                ("version", text(&v["version"])),
                ("build-date", text(&v["build_date"])),
                ("build-dir", text(&v["build_directory"])),
                ("vpp-pid", text(&v["pid"])),
                ("vpp-boottime", since(&v["boottime"], &v["uptime_seconds"])),
                (
                    "connected",
                    since(&v["connected_at"], &v["connected_seconds"]),
                ),
            ],
            st,
        );
    }
    if let Some(ops) = v.get("ops") {
        let mut out = format!(
            "sync {}: {} operation(s), {} refused, {} drift, {} ms\n",
            text(&v["scope"]),
            arr(ops).len(),
            arr(&v["errors"]).len(),
            text(&v["drift"]),
            text(&v["took_ms"])
        );
        for o in arr(ops) {
            out.push_str(&format!("  {}\n", text(o)));
        }
        return out;
    }
    if let Some(r) = v.get("result") {
        return format!("{}\n", text(r));
    }
    if v.get("version").is_some() && v.get("commit").is_some() {
        return block(
            &[
                ("maglevd", text(&v["version"])),
                ("commit", text(&v["commit"])),
                ("pid", text(&v["pid"])),
                ("uptime", format!("{}s", text(&v["uptime_seconds"]))),
            ],
            st,
        );
    }
    format!("{v}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PLAIN: Style = Style { color: false };

    #[test]
    fn tables_align_and_vips_drop_host_lengths() {
        let t = table(&["A", "LONGER"], &[vec!["xxxx".into(), "y".into()]], PLAIN);
        assert_eq!(t, "A     LONGER\nxxxx  y\n");
        assert_eq!(host("192.0.2.1/32"), "192.0.2.1");
        assert_eq!(host("2001:db8::1/128"), "2001:db8::1");
        assert_eq!(host("10.0.0.0/24"), "10.0.0.0/24");
    }

    #[test]
    fn counters_put_first_before_next() {
        let v = json!({"ok": true, "vips": [{"frontend": "web", "prefix": "192.0.2.1/32",
            "protocol": 6, "port": 80, "first": 3, "next": 5, "untracked": 0, "no_server": 1,
            "fib_packets": 9, "fib_bytes": 900}]});
        let out = render(&["show", "vpp", "lb", "counters"], &v, PLAIN);
        let head = out.lines().next().unwrap();
        assert!(head.find("FIRST").unwrap() < head.find("NEXT").unwrap());
        assert!(head.contains("FIB-PACKETS") && head.contains("FIB-BYTES"));
        assert!(
            out.lines()
                .nth(1)
                .unwrap()
                .starts_with("web       192.0.2.1  6"),
            "{out}"
        );
    }

    #[test]
    fn frontend_shows_pools_and_disabled_marker() {
        let v = json!({"ok": true, "frontend": {"name": "web", "address": "192.0.2.1",
            "protocol": "tcp", "port": 80, "state": "up", "src_ip_sticky": false,
            "flush_on_down": true, "description": "", "pools": [{"name": "main", "active": true,
            "backends": [{"name": "b1", "address": "10.0.0.1", "weight": 100,
            "effective_weight": 0, "state": "disabled", "enabled": false}]}]}});
        let out = render(&["show", "frontend", "web"], &v, PLAIN);
        assert!(out.contains("pool main (active)"), "{out}");
        assert!(out.contains("[disabled]"), "{out}");
        assert!(out.contains("weight 100  effective   0"), "{out}");
    }
}
