//! One broken file per validation rule, asserting key path and line.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::*;

const BASE: &str = "\
maglev:
  healthchecker:
    transition-history: 5
  vpp:
    lb:
      ipv4-src-address: 192.0.2.254
      ipv6-src-address: 2001:db8::254
  healthchecks:
    http:
      type: http
      port: 80
      params:
        path: /healthz
    ping:
      type: icmp
  backends:
    web0: { address: 192.0.2.10, healthcheck: http }
    web1: { address: 192.0.2.11, healthcheck: http }
    web6: { address: 2001:db8::10, healthcheck: ping }
  frontends:
    web:
      address: 192.0.2.1
      protocol: tcp
      port: 80
      pools:
        - name: primary
          backends:
            web0: { weight: 100 }
        - name: fallback
          backends:
            web1: {}
";

/// `BASE` with `old` (which must occur) replaced by `new`.
fn with(old: &str, new: &str) -> String {
    assert!(BASE.contains(old), "BASE lacks {old:?}");
    BASE.replacen(old, new, 1)
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in text"))
        + 1
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, Path::new("t.yaml")) {
        Err(ConfigError::Semantic { problems, .. }) => problems,
        other => panic!("expected semantic errors, got {other:?}"),
    }
}

/// Asserts exactly one semantic problem at `path`, on the line containing `at`.
fn one_problem(text: &str, path: &str, at: &str, says: &str) {
    let ps = problems(text);
    assert_eq!(ps.len(), 1, "{ps:#?}");
    assert_eq!(ps[0].path, path, "{ps:#?}");
    assert_eq!(ps[0].line, Some(line_of(text, at)), "{ps:#?}");
    assert!(
        ps[0].message.contains(says),
        "{:?} lacks {says:?}",
        ps[0].message
    );
}

/// Asserts a parse error at `path` on the line containing `at`.
fn parse_problem(text: &str, path: Option<&str>, at: &str, says: &str) {
    match parse(text, Path::new("t.yaml")) {
        Err(ConfigError::Parse {
            path: p,
            line,
            message,
            ..
        }) => {
            assert_eq!(p.as_deref(), path, "{message}");
            assert_eq!(line, Some(line_of(text, at)), "{message}");
            assert!(message.contains(says), "{message:?} lacks {says:?}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn base_is_valid_with_defaults() {
    let c = parse(BASE, Path::new("t.yaml")).unwrap();
    assert_eq!(c.healthchecker.threads, 1);
    assert_eq!(c.healthchecker.netns, None);
    assert_eq!(
        c.vpp.api_socket.as_deref(),
        Some(Path::new("/run/vpp/api.sock"))
    );
    assert_eq!(
        c.vpp.stats_socket.as_deref(),
        Some(Path::new("/run/vpp/stats.sock"))
    );
    assert_eq!(c.vpp.lb.sticky_buckets_per_core, 65536);
    assert_eq!(c.vpp.lb.flow_timeout, Duration::from_secs(40));
    assert_eq!(c.vpp.lb.sync_interval, Duration::from_secs(30));
    assert_eq!(c.vpp.lb.startup_min_delay, Duration::from_secs(5));
    assert_eq!(c.vpp.lb.startup_max_delay, Duration::from_secs(30));
    let hc = &c.healthchecks["http"];
    assert_eq!(hc.interval, Duration::from_secs(2));
    assert_eq!(hc.fast_interval, Duration::from_secs(2));
    assert_eq!(hc.down_interval, Duration::from_secs(2));
    assert_eq!(hc.timeout, Duration::from_secs(1));
    assert_eq!((hc.rise, hc.fall), (2, 3));
    let Probe::Http(h) = &hc.probe else {
        panic!("not http")
    };
    assert_eq!(h.path, "/healthz");
    assert_eq!(h.method, HttpMethod::Get);
    assert_eq!(h.expect_status, vec![StatusRange { lo: 200, hi: 399 }]);
    assert!(h.status_ok(301) && !h.status_ok(404));
    assert_eq!(h.tls, None);
    assert_eq!(c.healthchecks["ping"].probe, Probe::Icmp);
    assert!(c.backends["web0"].enabled);
    let fe = &c.frontends["web"];
    assert_eq!(fe.protocol, Some(Protocol::Tcp));
    assert!(!fe.src_ip_sticky);
    assert!(fe.flush_on_down);
    assert_eq!(fe.pools[1].backends["web1"], 100);
    assert_eq!(fe.backend_names(), vec!["web0", "web1"]);
}

#[test]
fn https_params_and_intervals() {
    let text = with(
        "    ping:\n      type: icmp\n",
        "    ping:\n      type: icmp\n    tls:\n      type: https\n      port: 443\n      interval: 5s\n      fast-interval: 1s\n      down-interval: 30s\n      timeout: 2s\n      rise: 3\n      fall: 1\n      probe-ipv4-src: 192.0.2.200\n      params:\n        host: www.example.com\n        method: HEAD\n        expect-status: [200-299, 301]\n        tls-server-name: www.example.com\n        tls-verify: false\n",
    );
    let c = parse(&text, Path::new("t.yaml")).unwrap();
    let hc = &c.healthchecks["tls"];
    assert_eq!(hc.fast_interval, Duration::from_secs(1));
    assert_eq!(hc.down_interval, Duration::from_secs(30));
    assert_eq!(hc.probe.check_type(), CheckType::Https);
    assert_eq!(hc.probe.port(), Some(443));
    assert_eq!(hc.probe_ipv4_src, Some("192.0.2.200".parse().unwrap()));
    let Probe::Http(h) = &hc.probe else {
        panic!("not http")
    };
    assert_eq!(h.method, HttpMethod::Head);
    assert_eq!(h.expect_status.len(), 2);
    assert_eq!(
        h.tls,
        Some(TlsSettings {
            server_name: Some("www.example.com".into()),
            verify: false
        })
    );
}

#[test]
fn vpp_can_be_disabled_and_then_needs_no_src_addresses() {
    let text = with(
        "  vpp:\n    lb:\n      ipv4-src-address: 192.0.2.254\n      ipv6-src-address: 2001:db8::254\n",
        "  vpp:\n    api-socket: \"\"\n",
    );
    let c = parse(&text, Path::new("t.yaml")).unwrap();
    assert_eq!(c.vpp.api_socket, None);
}

// ---- stage 1: parse errors carry the line and the key path ----

#[test]
fn parse_unknown_key() {
    let text = with("        path: /healthz", "        paht: /healthz");
    parse_problem(
        &text,
        Some("maglev.healthchecks.http.params.paht"),
        "paht",
        "unknown field `paht`",
    );
}

#[test]
fn parse_unknown_top_level_section() {
    let text = format!("{BASE}  extra: 1\n");
    parse_problem(&text, Some("maglev.extra"), "extra", "unknown field");
}

#[test]
fn parse_missing_maglev() {
    parse_problem("other: 1\n", Some("other"), "other", "unknown field");
    match parse("", Path::new("t.yaml")) {
        Err(e @ ConfigError::Parse { .. }) => {
            assert!(e.to_string().contains("top-level `maglev:`"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn parse_wrong_type() {
    let text = with(
        "      port: 80\n      params",
        "      port: eighty\n      params",
    );
    parse_problem(
        &text,
        Some("maglev.healthchecks.http.port"),
        "eighty",
        "invalid type",
    );
}

#[test]
fn parse_port_out_of_range() {
    let text = with(
        "      port: 80\n      pools",
        "      port: 70000\n      pools",
    );
    parse_problem(&text, Some("maglev.frontends.web.port"), "70000", "u16");
}

#[test]
fn parse_bad_duration() {
    let text = with(
        "      type: icmp",
        "      type: icmp\n      interval: 2 seconds",
    );
    parse_problem(
        &text,
        Some("maglev.healthchecks.ping.interval"),
        "2 seconds",
        "invalid duration",
    );
    let text = with("      type: icmp", "      type: icmp\n      timeout: 5");
    parse_problem(
        &text,
        Some("maglev.healthchecks.ping.timeout"),
        "timeout: 5",
        "has no unit",
    );
}

#[test]
fn parse_bad_address() {
    let text = with("address: 192.0.2.11", "address: 192.0.2.311");
    parse_problem(
        &text,
        Some("maglev.backends.web1.address"),
        "192.0.2.311",
        "invalid IP address",
    );
    let text = with(
        "      address: 192.0.2.1\n",
        "      address: 192.0.2.1/32\n",
    );
    parse_problem(
        &text,
        Some("maglev.frontends.web.address"),
        "192.0.2.1/32",
        "invalid IP address",
    );
}

#[test]
fn parse_bad_enum_words() {
    let text = with("      type: icmp", "      type: ping");
    parse_problem(
        &text,
        Some("maglev.healthchecks.ping.type"),
        "type: ping",
        "unknown variant `ping`",
    );
    let text = with("      protocol: tcp", "      protocol: sctp");
    parse_problem(
        &text,
        Some("maglev.frontends.web.protocol"),
        "sctp",
        "unknown variant",
    );
    let text = with(
        "        path: /healthz",
        "        path: /healthz\n        method: POST",
    );
    parse_problem(
        &text,
        Some("maglev.healthchecks.http.params.method"),
        "POST",
        "unknown variant",
    );
}

#[test]
fn parse_bad_status() {
    let text = with(
        "        path: /healthz",
        "        path: /healthz\n        expect-status: [200, 2xx]",
    );
    parse_problem(
        &text,
        Some("maglev.healthchecks.http.params.expect-status[1]"),
        "2xx",
        "invalid HTTP status",
    );
    let text = with(
        "        path: /healthz",
        "        path: /healthz\n        expect-status: 600",
    );
    parse_problem(
        &text,
        Some("maglev.healthchecks.http.params.expect-status"),
        "600",
        "outside 100-599",
    );
}

#[test]
fn parse_negative_weight_and_missing_field() {
    let text = with("web0: { weight: 100 }", "web0: { weight: -1 }");
    parse_problem(
        &text,
        Some("maglev.frontends.web.pools[0].backends.web0.weight"),
        "weight: -1",
        "invalid",
    );
    let text = with("        - name: fallback\n", "        - nom: fallback\n");
    parse_problem(
        &text,
        Some("maglev.frontends.web.pools[1].nom"),
        "nom: fallback",
        "unknown field",
    );
}

#[test]
fn parse_yaml_syntax_error_has_a_line() {
    let text = with("web1: {}", "web1: {");
    match parse(&text, Path::new("t.yaml")) {
        Err(ConfigError::Parse { line: Some(_), .. }) => {}
        other => panic!("{other:?}"),
    }
}

// ---- stage 2: semantic rules, all reported, each with path and line ----

#[test]
fn reports_all_problems_at_once_in_line_order() {
    let text = with("web0: { weight: 100 }", "web0: { weight: 101 }")
        .replace("healthcheck: ping", "healthcheck: nope")
        .replace("transition-history: 5", "transition-history: 0");
    let ps = problems(&text);
    let paths: Vec<&str> = ps.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "maglev.healthchecker.transition-history",
            "maglev.backends.web6.healthcheck",
            "maglev.frontends.web.pools[0].backends.web0.weight",
        ]
    );
    let err = parse(&text, Path::new("t.yaml")).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert_eq!(err.lines().len(), 3);
    assert!(err.lines()[2].starts_with(&format!(
        "t.yaml:{}: maglev.frontends",
        line_of(&text, "101")
    )));
}

#[test]
fn weight_range() {
    let text = with("web0: { weight: 100 }", "web0: { weight: 200 }");
    one_problem(
        &text,
        "maglev.frontends.web.pools[0].backends.web0.weight",
        "weight: 200",
        "outside 0..100",
    );
}

#[test]
fn pool_backend_must_exist() {
    let text = with("            web1: {}", "            web9: {}");
    one_problem(
        &text,
        "maglev.frontends.web.pools[1].backends.web9",
        "web9",
        "does not exist",
    );
}

#[test]
fn backend_healthcheck_must_exist() {
    let text = with(
        "web1: { address: 192.0.2.11, healthcheck: http }",
        "web1: { address: 192.0.2.11, healthcheck: htp }",
    );
    one_problem(
        &text,
        "maglev.backends.web1.healthcheck",
        "htp",
        "`htp` does not exist",
    );
}

#[test]
fn families_consistent_within_a_frontend() {
    let text = with("            web1: {}", "            web6: {}");
    one_problem(
        &text,
        "maglev.frontends.web.pools[1].backends.web6",
        "web6: {}",
        "share one address family",
    );
}

#[test]
fn families_consistent_across_frontends_sharing_a_vip() {
    let text = format!(
        "{BASE}    dns:\n      address: 192.0.2.1\n      protocol: udp\n      port: 53\n      pools:\n        - name: p\n          backends: {{ web6: {{}} }}\n"
    );
    let ps = problems(&text);
    assert_eq!(ps.len(), 1, "{ps:#?}");
    assert_eq!(ps[0].path, "maglev.frontends.dns.address");
    assert!(ps[0].message.contains("one encapsulation per VIP"));
    // Different families on different VIPs are fine, and so is a v6 VIP with v4 backends.
    let ok = text.replace(
        "      address: 192.0.2.1\n      protocol: udp",
        "      address: 2001:db8::1\n      protocol: udp",
    );
    parse(&ok, Path::new("t.yaml")).unwrap();
}

#[test]
fn duplicate_vip() {
    let text = format!(
        "{BASE}    web2:\n      address: 192.0.2.1\n      protocol: tcp\n      port: 80\n      pools:\n        - name: p\n          backends: {{ web1: {{}} }}\n"
    );
    let ps = problems(&text);
    assert_eq!(ps.len(), 1, "{ps:#?}");
    assert_eq!(ps[0].path, "maglev.frontends.web2.address");
    assert_eq!(ps[0].line, Some(text.lines().count() - 5));
    assert!(ps[0].message.contains("already defines this VIP"));
}

#[test]
fn src_addresses_right_family() {
    let text = with(
        "ipv4-src-address: 192.0.2.254",
        "ipv4-src-address: 2001:db8::1",
    );
    one_problem(
        &text,
        "maglev.vpp.lb.ipv4-src-address",
        "ipv4-src-address",
        "not an IPv4 address",
    );
    let text = with(
        "ipv6-src-address: 2001:db8::254",
        "ipv6-src-address: 192.0.2.9",
    );
    one_problem(
        &text,
        "maglev.vpp.lb.ipv6-src-address",
        "ipv6-src-address",
        "not an IPv6 address",
    );
}

#[test]
fn src_addresses_present_when_needed() {
    let text = with("      ipv4-src-address: 192.0.2.254\n", "");
    one_problem(
        &text,
        "maglev.vpp.lb.ipv4-src-address",
        "    lb:",
        "required: frontend `web` has IPv4 backends",
    );
    // No IPv6 frontend: the IPv6 source may be absent.
    let text = with("      ipv6-src-address: 2001:db8::254\n", "");
    parse(&text, Path::new("t.yaml")).unwrap();
}

#[test]
fn probe_src_right_family() {
    let text = with(
        "      type: icmp",
        "      type: icmp\n      probe-ipv6-src: 192.0.2.1",
    );
    one_problem(
        &text,
        "maglev.healthchecks.ping.probe-ipv6-src",
        "probe-ipv6-src",
        "not an IPv6 address",
    );
    let text = with(
        "      type: icmp",
        "      type: icmp\n      probe-ipv4-src: ::1",
    );
    one_problem(
        &text,
        "maglev.healthchecks.ping.probe-ipv4-src",
        "probe-ipv4-src",
        "not an IPv4 address",
    );
}

#[test]
fn sticky_buckets_power_of_two() {
    let text = with(
        "      ipv6-src-address: 2001:db8::254\n",
        "      ipv6-src-address: 2001:db8::254\n      sticky-buckets-per-core: 1000\n",
    );
    one_problem(
        &text,
        "maglev.vpp.lb.sticky-buckets-per-core",
        "1000",
        "power of two",
    );
}

#[test]
fn flow_timeout_range() {
    for bad in ["0s", "121s", "1500ms"] {
        let text = with(
            "      ipv6-src-address: 2001:db8::254\n",
            &format!("      ipv6-src-address: 2001:db8::254\n      flow-timeout: {bad}\n"),
        );
        one_problem(
            &text,
            "maglev.vpp.lb.flow-timeout",
            "flow-timeout",
            "between 1s and 120s",
        );
    }
}

#[test]
fn stats_interval_has_a_floor() {
    let text = with(
        "  vpp:\n    lb:\n",
        "  vpp:\n    stats-interval: 10ms\n    lb:\n",
    );
    one_problem(
        &text,
        "maglev.vpp.stats-interval",
        "stats-interval",
        "10ms is outside 1s..",
    );
    let c = parse(BASE, Path::new("t.yaml")).unwrap();
    assert_eq!(c.vpp.stats_interval, Duration::from_secs(5));
}

#[test]
fn sync_interval_and_startup_delays() {
    let text = with(
        "      ipv6-src-address: 2001:db8::254\n",
        "      ipv6-src-address: 2001:db8::254\n      sync-interval: 100ms\n",
    );
    one_problem(
        &text,
        "maglev.vpp.lb.sync-interval",
        "sync-interval",
        "100ms is outside 1s..",
    );
    let text = with(
        "      ipv6-src-address: 2001:db8::254\n",
        "      ipv6-src-address: 2001:db8::254\n      startup-min-delay: 1m\n      startup-max-delay: 10s\n",
    );
    one_problem(
        &text,
        "maglev.vpp.lb.startup-min-delay",
        "startup-min-delay",
        "exceeds",
    );
    let text = with(
        "      ipv6-src-address: 2001:db8::254\n",
        "      ipv6-src-address: 2001:db8::254\n      startup-min-delay: 0s\n      startup-max-delay: 0s\n",
    );
    parse(&text, Path::new("t.yaml")).unwrap();
}

#[test]
fn socket_paths_absolute() {
    let text = with("  vpp:\n", "  vpp:\n    api-socket: run/api.sock\n");
    one_problem(
        &text,
        "maglev.vpp.api-socket",
        "api-socket",
        "absolute path",
    );
    let text = with("  vpp:\n", "  vpp:\n    stats-socket: stats.sock\n");
    one_problem(
        &text,
        "maglev.vpp.stats-socket",
        "stats-socket",
        "absolute path",
    );
}

#[test]
fn healthchecker_limits() {
    let text = with(
        "    transition-history: 5",
        "    transition-history: 5\n    threads: 0",
    );
    one_problem(
        &text,
        "maglev.healthchecker.threads",
        "threads",
        "outside 1..64",
    );
    let text = with("    transition-history: 5", "    transition-history: 0");
    one_problem(
        &text,
        "maglev.healthchecker.transition-history",
        "transition-history",
        "outside",
    );
    let text = with(
        "    transition-history: 5",
        "    transition-history: 5\n    netns: ../etc",
    );
    one_problem(
        &text,
        "maglev.healthchecker.netns",
        "netns",
        "not a namespace name",
    );
}

/// Asserts that `text` is accepted with exactly one warning at `path`,
/// on the line containing `at`.
fn one_warning(text: &str, path: &str, at: &str, says: &str) {
    let c = parse(text, Path::new("t.yaml")).unwrap_or_else(|e| panic!("refused: {e}"));
    assert_eq!(c.warnings.len(), 1, "{:#?}", c.warnings);
    let w = &c.warnings[0];
    assert_eq!(w.path, path);
    assert_eq!(w.line, Some(line_of(text, at)));
    assert!(w.message.contains(says), "{:?} lacks {says:?}", w.message);
}

#[test]
fn timeout_above_interval_is_accepted_with_a_warning() {
    // As in the original's README: interval 2s, timeout 3s.
    let text = with(
        "      type: icmp",
        "      type: icmp\n      interval: 2s\n      timeout: 3s",
    );
    one_warning(
        &text,
        "maglev.healthchecks.ping.timeout",
        "timeout: 3s",
        "exceeds interval 2s",
    );
    let c = parse(&text, Path::new("t.yaml")).unwrap();
    assert_eq!(c.healthchecks["ping"].timeout, Duration::from_secs(3));
    assert!(
        parse(BASE, Path::new("t.yaml"))
            .unwrap()
            .warnings
            .is_empty()
    );
    // A short interval alone lowers the default timeout, silently.
    let text = with(
        "      type: icmp",
        "      type: icmp\n      interval: 500ms",
    );
    let c = parse(&text, Path::new("t.yaml")).unwrap();
    assert_eq!(c.healthchecks["ping"].timeout, Duration::from_millis(500));
    assert!(c.warnings.is_empty());
}

#[test]
fn periods_have_a_floor() {
    let text = with(
        "      type: icmp",
        "      type: icmp\n      fast-interval: 1ms",
    );
    one_problem(
        &text,
        "maglev.healthchecks.ping.fast-interval",
        "fast-interval",
        "is outside 10ms..",
    );
    let text = with(
        "      type: icmp",
        "      type: icmp\n      down-interval: 0s",
    );
    one_problem(
        &text,
        "maglev.healthchecks.ping.down-interval",
        "down-interval",
        "is outside 10ms..",
    );
}

#[test]
fn rise_and_fall_at_least_one() {
    let text = with("      type: icmp", "      type: icmp\n      rise: 0");
    one_problem(
        &text,
        "maglev.healthchecks.ping.rise",
        "rise",
        "outside 1..1000",
    );
    let text = with("      type: icmp", "      type: icmp\n      fall: 5000");
    one_problem(
        &text,
        "maglev.healthchecks.ping.fall",
        "fall",
        "outside 1..1000",
    );
}

#[test]
fn ports_by_type() {
    let text = with("      type: icmp", "      type: icmp\n      port: 7");
    one_warning(
        &text,
        "maglev.healthchecks.ping.port",
        "port: 7",
        "does not use a port",
    );
    let text = with("      port: 80\n      params", "      params");
    one_problem(
        &text,
        "maglev.healthchecks.http.port",
        "    http:",
        "needs a port",
    );
    let text = with(
        "      port: 80\n      params",
        "      port: 0\n      params",
    );
    one_problem(
        &text,
        "maglev.healthchecks.http.port",
        "port: 0",
        "cannot be probed",
    );
}

#[test]
fn params_belong_to_their_type() {
    let text = with(
        "      type: icmp",
        "      type: icmp\n      params:\n        path: /x",
    );
    one_problem(
        &text,
        "maglev.healthchecks.ping.params.path",
        "path: /x",
        "not a parameter of type icmp",
    );
    let text = with(
        "        path: /healthz",
        "        path: /healthz\n        tls-verify: false",
    );
    one_problem(
        &text,
        "maglev.healthchecks.http.params.tls-verify",
        "tls-verify",
        "not a parameter of type http",
    );
}

#[test]
fn tcp_mode_is_connect_unless_syn_is_asked_for() {
    let tcp = |params: &str| {
        with(
            "      type: icmp",
            &format!("      type: tcp\n      port: 22{params}"),
        )
    };
    let c = parse(&tcp(""), Path::new("t.yaml")).unwrap();
    assert_eq!(
        c.healthchecks["ping"].probe,
        Probe::Tcp {
            port: 22,
            mode: TcpMode::Connect
        }
    );
    let c = parse(&tcp("\n      params: { mode: syn }"), Path::new("t.yaml")).unwrap();
    assert_eq!(
        c.healthchecks["ping"].probe,
        Probe::Tcp {
            port: 22,
            mode: TcpMode::Syn
        }
    );
    parse_problem(
        &tcp("\n      params: { mode: rst }"),
        Some("maglev.healthchecks.ping.params.mode"),
        "mode: rst",
        "unknown variant `rst`, expected `connect` or `syn`",
    );
    let text = with(
        "        path: /healthz",
        "        path: /healthz\n        mode: syn",
    );
    one_problem(
        &text,
        "maglev.healthchecks.http.params.mode",
        "mode: syn",
        "not a parameter of type http",
    );
}

#[test]
fn http_param_values() {
    let text = with("        path: /healthz", "        path: healthz");
    one_problem(
        &text,
        "maglev.healthchecks.http.params.path",
        "path: healthz",
        "request path",
    );
    let text = with(
        "        path: /healthz",
        "        path: /healthz\n        host: a b",
    );
    one_problem(
        &text,
        "maglev.healthchecks.http.params.host",
        "host: a b",
        "not a host name",
    );
    let text = with(
        "        path: /healthz",
        "        path: /healthz\n        method: HEAD\n        expect-body: ok",
    );
    one_problem(
        &text,
        "maglev.healthchecks.http.params.expect-body",
        "expect-body",
        "HEAD",
    );
    let text = with(
        "        path: /healthz",
        "        path: /healthz\n        expect-status: []",
    );
    one_problem(
        &text,
        "maglev.healthchecks.http.params.expect-status",
        "expect-status",
        "empty",
    );
}

#[test]
fn names_unique() {
    let text = with(
        "    web1: { address: 192.0.2.11, healthcheck: http }\n",
        "    web1: { address: 192.0.2.11, healthcheck: http }\n    web1: { address: 192.0.2.12, healthcheck: http }\n",
    );
    let ps = problems(&text);
    assert_eq!(ps.len(), 1, "{ps:#?}");
    assert_eq!(ps[0].path, "maglev.backends.web1");
    assert_eq!(ps[0].line, Some(line_of(&text, "192.0.2.12")));
    assert!(
        ps[0]
            .message
            .contains(&format!("first on line {}", line_of(&text, "192.0.2.11")))
    );
}

#[test]
fn names_spelled_plainly() {
    let text = with("    web6: {", "    \"web 6\": {").replace("backends: {x}", "");
    one_problem(&text, "maglev.backends.web 6", "\"web 6\"", "contains ' '");
}

#[test]
fn pools_rules() {
    let text = with("        - name: fallback", "        - name: primary");
    let ps = problems(&text);
    assert_eq!(ps.len(), 1, "{ps:#?}");
    assert_eq!(ps[0].path, "maglev.frontends.web.pools[1].name");
    assert_eq!(ps[0].line, Some(line_of(BASE, "- name: fallback")));
    assert!(ps[0].message.contains("used twice"));
    let text = with("        - name: fallback", "        - name: \"\"");
    one_problem(
        &text,
        "maglev.frontends.web.pools[1].name",
        "name: \"\"",
        "empty",
    );
    let text = with("            web1: {}", "            web0: {}");
    one_problem(
        &text,
        "maglev.frontends.web.pools[1].backends.web0",
        "            web0: {}",
        "already in pools[0]",
    );
    let text = with(
        "        - name: primary\n          backends:\n            web0: { weight: 100 }\n        - name: fallback\n          backends:\n            web1: {}\n",
        "        []\n",
    );
    let text = text.replace("      pools:\n        []", "      pools: []");
    one_problem(
        &text,
        "maglev.frontends.web.pools",
        "pools: []",
        "at least one pool",
    );
    let text = with(
        "          backends:\n            web1: {}",
        "          backends: {}",
    );
    one_problem(
        &text,
        "maglev.frontends.web.pools[1].backends",
        "backends: {}",
        "at least one backend",
    );
}

#[test]
fn two_names_for_one_address() {
    let text = with(
        "web1: { address: 192.0.2.11,",
        "web1: { address: 192.0.2.10,",
    );
    one_problem(
        &text,
        "maglev.frontends.web.pools[1].backends.web1",
        "            web1: {}",
        "same address",
    );
}

#[test]
fn protocol_and_port_go_together() {
    let text = with("      port: 80\n      pools", "      pools");
    one_problem(
        &text,
        "maglev.frontends.web.protocol",
        "protocol: tcp",
        "needs a port",
    );
    let text = with("      protocol: tcp\n", "");
    one_problem(
        &text,
        "maglev.frontends.web.protocol",
        "    web:",
        "needs a protocol",
    );
    let all_port = with("      protocol: tcp\n      port: 80\n", "");
    let c = parse(&all_port, Path::new("t.yaml")).unwrap();
    assert_eq!(
        (c.frontends["web"].protocol, c.frontends["web"].port),
        (None, 0)
    );
}

#[test]
fn addresses_must_be_unicast() {
    let text = with("      address: 192.0.2.1\n", "      address: 0.0.0.0\n");
    one_problem(
        &text,
        "maglev.frontends.web.address",
        "0.0.0.0",
        "unspecified",
    );
    let text = with("address: 2001:db8::10", "address: ff02::1");
    one_problem(
        &text,
        "maglev.backends.web6.address",
        "ff02::1",
        "multicast",
    );
    let _: IpAddr = "255.255.255.255".parse().unwrap();
}

#[test]
fn error_lines_read_like_compiler_output() {
    let text = with("web0: { weight: 100 }", "web0: { weight: 200 }");
    let err = parse(&text, Path::new("/etc/vpp-maglev/maglev.yaml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "/etc/vpp-maglev/maglev.yaml:{}: maglev.frontends.web.pools[0].backends.web0.weight: weight 200 is outside 0..100",
            line_of(&text, "weight: 200")
        )
    );
    let text = with("        path: /healthz", "        paht: /healthz");
    let err = parse(&text, Path::new("m.yaml")).unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert!(
        err.to_string().starts_with(&format!(
            "m.yaml:{}:9: maglev.healthchecks.http.params.paht: unknown field",
            line_of(&text, "paht")
        )),
        "{err}"
    );
}

#[test]
fn unreadable_file() {
    let err = load(Path::new("/nonexistent/maglev.yaml")).unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert!(err.to_string().contains("cannot read"));
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    for text in [
        format!("maglev: {}{}", "[".repeat(40_000), "]".repeat(40_000)),
        format!("maglev:\n{}", {
            let mut s = String::new();
            for i in 0..100 {
                s.push_str(&" ".repeat(i + 1));
                s.push_str(&format!("k{i}:\n"));
            }
            s
        }),
        format!("maglev:\n  x:\n{}y\n", "  - ".repeat(100)),
    ] {
        let err = parse(&text, Path::new("deep.yaml")).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(
            err.to_string().contains("nesting deeper than 64 levels"),
            "{err}"
        );
    }
    // Brackets inside quotes and comments are text, not nesting.
    let text = BASE.replace(
        "transition-history: 5",
        &format!("transition-history: 5 # {}", "[".repeat(200)),
    );
    parse(&text, Path::new("t.yaml")).unwrap();
}

#[test]
fn only_regular_files_of_bounded_size_are_read() {
    let dir = std::env::temp_dir().join(format!("maglev-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo.yaml");
    let _ = std::fs::remove_file(&fifo);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for p in [fifo.as_path(), Path::new("/dev/zero"), dir.as_path()] {
        let err = load(p).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
    let big = dir.join("big.yaml");
    let mut text = BASE.to_string();
    text.push_str(&format!("# {}\n", "x".repeat(MAX_FILE_BYTES as usize)));
    std::fs::write(&big, text).unwrap();
    let err = load(&big).unwrap_err();
    assert!(err.to_string().contains("more than the limit"), "{err}");
    let ok = dir.join("ok.yaml");
    std::fs::write(&ok, BASE).unwrap();
    load(&ok).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn slow_start_and_min_healthy() {
    let text = with(
        "      pools:\n        - name: primary\n          backends:\n            web0: { weight: 100 }",
        "      min-healthy: 50%\n      pools:\n        - name: primary\n          slow-start: 30s\n          backends:\n            web0: { weight: 100, slow-start: 5s }",
    );
    let c = parse(&text, Path::new("t.yaml")).unwrap();
    let fe = &c.frontends["web"];
    assert_eq!(fe.min_healthy, Some(50));
    assert_eq!(
        fe.pools[0].slow_start["web0"],
        Duration::from_secs(5),
        "the backend's own wins"
    );
    assert!(fe.pools[1].slow_start.is_empty(), "off unless set");
    // A bare number is a percentage too; the pool's default reaches its backends.
    let text = with(
        "      pools:\n        - name: primary\n",
        "      min-healthy: 25\n      pools:\n        - name: primary\n          slow-start: 2s\n",
    );
    let c = parse(&text, Path::new("t.yaml")).unwrap();
    assert_eq!(c.frontends["web"].min_healthy, Some(25));
    assert_eq!(
        c.frontends["web"].pools[0].slow_start["web0"],
        Duration::from_secs(2)
    );
    // Out of range: named with the key and line.
    let text = with("      pools:\n", "      min-healthy: 150%\n      pools:\n");
    one_problem(
        &text,
        "maglev.frontends.web.min-healthy",
        "min-healthy",
        "150% is outside 1%..100%",
    );
    let text = with(
        "            web0: { weight: 100 }",
        "            web0: { weight: 100, slow-start: 2h }",
    );
    one_problem(
        &text,
        "maglev.frontends.web.pools[0].backends.web0.slow-start",
        "slow-start",
        "outside",
    );
    let text = with("      pools:\n", "      min-healthy: most\n      pools:\n");
    parse_problem(
        &text,
        Some("maglev.frontends.web.min-healthy"),
        "min-healthy",
        "not a percentage",
    );
}

/// VPP's `ip46_address_is_ip4`: an IPv6 backend in ::/96 of an IPv6
/// frontend is refused by VPP (-97); one VIP in ::/96 would be held as IPv4.
#[test]
fn vpp_reads_ipv6_in_96_as_ipv4_and_check_warns() {
    let six = |backend: &str, vip: &str| {
        format!(
            "{BASE}    web6:\n      address: {vip}\n      protocol: tcp\n      port: 443\n      pools:\n        - name: main\n          backends:\n            web6: {{}}\n"
        )
        .replace("2001:db8::10", backend)
    };
    let text = six("\"::1\"", "2001:db8::1");
    one_warning(
        &text,
        "maglev.frontends.web6.pools[0].backends.web6",
        "            web6: {}",
        "-97, INVALID_ADDRESS_FAMILY",
    );
    let w = &parse(&text, Path::new("t.yaml")).unwrap().warnings[0].message;
    assert!(w.contains("::/96") && w.contains("fd00::1"), "{w}");
    for fine in ["\"::ffff:1.2.3.4\"", "fd00::1", "\"::1:0:0:1\""] {
        let c = parse(&six(fine, "2001:db8::1"), Path::new("t.yaml")).unwrap();
        assert!(c.warnings.is_empty(), "{fine}: {:#?}", c.warnings);
    }
    one_warning(
        &six("2001:db8::10", "\"::c000:201\""),
        "maglev.frontends.web6.address",
        "address: \"::c000:201\"",
        "as an IPv4 VIP",
    );
}

/// `BASE` with a `maglev.announce` section of these lines (indented
/// under `announce:`).
fn with_announce(lines: &str) -> String {
    format!("{BASE}  announce:\n{lines}")
}

#[test]
fn announce_defaults_and_frontend_mode() {
    let dir = std::env::temp_dir();
    let text = with_announce(&format!(
        "    bird:\n      file: {}/vips.conf\n      reload: [/bin/true]\n",
        dir.display()
    ));
    let c = parse(&text, Path::new("t.yaml")).unwrap();
    let a = c.announce.unwrap();
    assert_eq!(a.bird.ipv4_set, "MAGLEV_VIPS4");
    assert_eq!(a.bird.ipv6_set, "MAGLEV_VIPS6");
    assert_eq!(a.bird.reload, ["/bin/true"]);
    assert_eq!(a.bird.reload_timeout, Duration::from_secs(5));
    assert_eq!(a.hold_down, Duration::from_secs(5));
    assert_eq!(a.notify, None);
    assert_eq!(c.frontends["web"].announce, AnnounceMode::Healthy);
    // Without the section, nothing is announced.
    assert!(parse(BASE, Path::new("t.yaml")).unwrap().announce.is_none());
    let text = with(
        "      port: 80\n      pools:",
        "      port: 80\n      announce: always\n      pools:",
    );
    let c = parse(&text, Path::new("t.yaml")).unwrap();
    assert_eq!(c.frontends["web"].announce, AnnounceMode::Always);
}

#[test]
fn announce_bad_input_is_named_with_its_line() {
    let tmp = std::env::temp_dir().display().to_string();
    let text = with(
        "      port: 80\n      pools:",
        "      port: 80\n      announce: sometimes\n      pools:",
    );
    parse_problem(
        &text,
        Some("maglev.frontends.web.announce"),
        "announce: sometimes",
        "unknown variant",
    );
    one_problem(
        &with_announce("    hold-down: 5s\n"),
        "maglev.announce.bird",
        "announce:",
        "bird.file is required",
    );
    one_problem(
        &with_announce(&format!(
            "    bird:\n      file: {tmp}/v.conf\n      ipv4-set: 4VIPS\n      reload: [/bin/true]\n"
        )),
        "maglev.announce.bird.ipv4-set",
        "ipv4-set: 4VIPS",
        "not a BIRD symbol",
    );
    one_problem(
        &with_announce(&format!(
            "    bird:\n      file: {tmp}/v.conf\n      ipv6-set: filter\n      reload: [/bin/true]\n"
        )),
        "maglev.announce.bird.ipv6-set",
        "ipv6-set: filter",
        "BIRD keyword",
    );
    one_problem(
        &with_announce(&format!(
            "    bird:\n      file: {tmp}/v.conf\n      ipv4-set: S\n      ipv6-set: S\n      reload: [/bin/true]\n"
        )),
        "maglev.announce.bird.ipv6-set",
        "ipv6-set: S",
        "two names",
    );
    one_problem(
        &with_announce(&format!(
            "    bird:\n      file: {tmp}/v.conf\n      reload: [/no/such/birdc, configure]\n"
        )),
        "maglev.announce.bird.reload",
        "reload: [/no/such/birdc",
        "not an executable file",
    );
    one_problem(
        &with_announce(&format!(
            "    bird:\n      file: {tmp}/v.conf\n      reload: [/bin/true]\n    notify: [no-such-program-here]\n"
        )),
        "maglev.announce.notify",
        "notify: [no-such",
        "not an executable file here (nor on PATH)",
    );
    one_problem(
        &with_announce("    bird:\n      file: vips.conf\n      reload: [/bin/true]\n"),
        "maglev.announce.bird.file",
        "file: vips.conf",
        "absolute",
    );
    one_problem(
        &with_announce(&format!(
            "    bird:\n      file: {tmp}/v.conf\n      reload: [/bin/true]\n      reload-timeout: 10ms\n"
        )),
        "maglev.announce.bird.reload-timeout",
        "reload-timeout: 10ms",
        "outside",
    );
    // A directory that does not exist here may exist at run time: a warning.
    one_warning(
        &with_announce("    bird:\n      file: /no/such/dir/v.conf\n      reload: [/bin/true]\n"),
        "maglev.announce.bird.file",
        "file: /no/such/dir/v.conf",
        "cannot write the file until it exists",
    );
}

#[test]
fn reuse_connection_and_its_lifetime() {
    use crate::config::Probe;
    let reuse = |c: &Config| match &c.healthchecks["http"].probe {
        Probe::Http(h) => h.reuse,
        other => panic!("{other:?}"),
    };
    // Off by default: a connection per check, as before.
    assert_eq!(reuse(&parse(BASE, Path::new("t.yaml")).unwrap()), None);
    let text = with(
        "        path: /healthz",
        "        path: /healthz\n        reuse-connection: true",
    );
    let c = parse(&text, Path::new("t.yaml")).unwrap();
    assert_eq!(reuse(&c), Some(Duration::from_secs(30)));
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
    let text = with(
        "        path: /healthz",
        "        path: /healthz\n        reuse-connection: true\n        reuse-lifetime: 2m",
    );
    assert_eq!(
        reuse(&parse(&text, Path::new("t.yaml")).unwrap()),
        Some(Duration::from_secs(120))
    );
    // A lifetime without reuse, or no longer than the interval (2s by
    // default), is accepted and said to do nothing.
    let text = with(
        "        path: /healthz",
        "        path: /healthz\n        reuse-lifetime: 2m",
    );
    one_warning(
        &text,
        "maglev.healthchecks.http.params.reuse-lifetime",
        "reuse-lifetime: 2m",
        "no effect without reuse-connection",
    );
    let text = with(
        "        path: /healthz",
        "        path: /healthz\n        reuse-connection: true\n        reuse-lifetime: 1s",
    );
    one_warning(
        &text,
        "maglev.healthchecks.http.params.reuse-lifetime",
        "reuse-lifetime: 1s",
        "every check makes a new connection",
    );
    // Only HTTP(S) checks keep connections.
    let text = with(
        "      type: icmp",
        "      type: icmp\n      params:\n        reuse-connection: true",
    );
    one_problem(
        &text,
        "maglev.healthchecks.ping.params.reuse-connection",
        "reuse-connection: true",
        "not a parameter of type icmp",
    );
}
