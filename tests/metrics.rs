//! `/metrics` of a running `maglevd --vpp-sim`: every family present,
//! counters from the simulator's stats segment, and `promtool check
//! metrics` (Debian package `prometheus`) happy with a real scrape.

// Drives the VPP simulator (the default `vpp-sim` feature).
#![cfg(feature = "vpp-sim")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::servers::{Behaviour, Server, http};
use common::{Daemon, TempDir};
use vpp_maglev::vpp::client::{ApiCounters, Client, ClientConfig};

fn get(port: u16, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

#[test]
fn metrics_of_a_running_daemon_pass_promtool() {
    let dir = TempDir::new("metrics");
    let web = Server::start("127.0.0.1:0", Behaviour::Respond(http("200 OK", "ok")));
    let cfg = dir.write(
        "maglev.yaml",
        &format!(
            "maglev:
  vpp:
    stats-interval: 1s
    lb:
      ipv4-src-address: 192.0.2.254
      sync-interval: 1s
      startup-min-delay: 0s
      startup-max-delay: 0s
  announce:
    bird:
      file: {}
      reload: [/bin/true]
    hold-down: 0s
  healthchecks:
    web:
      type: http
      port: {}
      interval: 200ms
      params: {{ expect-body: ok }}
  backends:
    web-1: {{ address: 127.0.0.1, healthcheck: web }}
  frontends:
    web:
      address: 192.0.2.1
      protocol: tcp
      port: 80
      pools:
        - name: main
          backends: {{ web-1: {{}} }}
",
            dir.path("vips.conf").display(),
            web.port()
        ),
    );
    let port = common::free_port("127.0.0.1");
    let mut d = Daemon::start(&[
        "--vpp-sim",
        "--metrics-addr",
        &format!("127.0.0.1:{port}"),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    let line = d.wait_for(&["vpp-sim-started", "api-socket="], Duration::from_secs(5));
    let api = line.split("api-socket=").nth(1).unwrap().trim().to_string();
    d.wait_for(&["vpp-lbsync-done", "scope=all"], Duration::from_secs(5));

    // Traffic arrives at the VIP (the simulator's test hook).
    let mut c = Client::connect(&ClientConfig::new(&api), ApiCounters::new()).unwrap();
    c.cli("vppsim traffic 192.0.2.1/32 6 80 5 3 0 1").unwrap();
    let want = "maglev_vip_packets_total{frontend=\"web\",vip=\"192.0.2.1/32\",protocol=\"6\",port=\"80\",kind=\"first\"} 3";
    let t = Instant::now();
    let body = loop {
        let (status, head, body) = get(port, "GET", "/metrics");
        assert_eq!(status, 200);
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        // The backend up too (rise 2 at 200 ms: a loaded machine may
        // show the counters first).
        if body.contains(want)
            && body
                .contains("maglev_vip_route_packets_total{frontend=\"web\",vip=\"192.0.2.1/32\"} 9")
            && body.contains("maglev_backend_state{backend=\"web-1\",state=\"up\"} 1")
            && body.contains("maglev_vip_announced{address=\"192.0.2.1\"} 1")
            && body.contains("maglev_announce_reload_seconds_count 1")
        {
            break body;
        }
        assert!(
            t.elapsed() < Duration::from_secs(6),
            "counters never showed up:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for family in [
        "maglev_backend_state",
        "maglev_backend_health",
        "maglev_backend_enabled",
        "maglev_probe_total",
        "maglev_probe_duration_seconds",
        "maglev_backend_transitions_total",
        "maglev_frontend_state",
        "maglev_frontend_pool_backend_weight",
        "maglev_frontend_pool_backend_effective_weight",
        "maglev_vpp_connected",
        "maglev_vpp_uptime_seconds",
        "maglev_vpp_connected_seconds",
        "maglev_vpp_info",
        "maglev_vpp_api_total",
        "maglev_vpp_lbsync_total",
        "maglev_vpp_lbsync_drift_mismatches_total",
        "maglev_vip_packets_total",
        "maglev_vip_route_packets_total",
        "maglev_vip_route_bytes_total",
        "maglev_frontend_programmed",
        "maglev_vip_announced",
        "maglev_announce_reloads_total",
        "maglev_announce_reload_seconds",
    ] {
        assert!(
            body.contains(&format!("# TYPE {family} ")),
            "{family} missing"
        );
    }
    assert!(
        body.contains("maglev_backend_state{backend=\"web-1\",state=\"up\"} 1"),
        "{body}"
    );
    assert!(body.contains("maglev_vpp_connected 1"));
    assert!(body.contains("maglev_frontend_programmed{frontend=\"web\"} 1"));
    assert!(body.contains("maglev_announce_reloads_total{result=\"ok\"} 2"));
    assert!(body.contains("result=\"success\",code=\"L7OK\""));

    let path = dir.path("scrape.txt");
    std::fs::write(&path, &body).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .expect("promtool (Debian package prometheus; .ci/deps installs it)");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let (status, head, body) = get(port, "HEAD", "/metrics");
    assert_eq!(status, 200);
    assert!(body.is_empty() && head.contains("Content-Length"), "{head}");
    let (status, _, body) = get(port, "GET", "/");
    assert_eq!(status, 200);
    assert!(body.contains("href=\"/metrics\""));
    assert_eq!(get(port, "GET", "/other").0, 404);
    assert_eq!(get(port, "POST", "/metrics").0, 405);

    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(3)), Some(0));
}

/// The `fingerprint` label of the web VIP's `maglev_vip_table_info`.
fn fingerprint(port: u16) -> Option<String> {
    let (_, _, body) = get(port, "GET", "/metrics");
    body.lines()
        .find(|l| l.starts_with("maglev_vip_table_info{frontend=\"web\""))
        .and_then(|l| l.split("fingerprint=\"").nth(1))
        .and_then(|r| r.split('"').next())
        .map(str::to_string)
}

#[test]
fn two_routers_with_the_same_state_show_the_same_table_fingerprint() {
    let dir = TempDir::new("fingerprint");
    let a = Server::start("127.0.0.1:0", Behaviour::Respond(http("200 OK", "ok")));
    let port = a.port();
    let _b = Server::start(
        &format!("127.0.0.2:{port}"),
        Behaviour::Respond(http("200 OK", "ok")),
    );
    let cfg = dir.write(
        "maglev.yaml",
        &format!(
            "maglev:
  vpp:
    lb:
      ipv4-src-address: 192.0.2.254
      sync-interval: 1s
      startup-min-delay: 0s
      startup-max-delay: 0s
  healthchecks:
    h: {{ type: http, port: {port}, interval: 100ms, fast-interval: 100ms, timeout: 80ms, rise: 2, fall: 2 }}
  backends:
    a: {{ address: 127.0.0.1, healthcheck: h }}
    b: {{ address: 127.0.0.2, healthcheck: h }}
  frontends:
    web:
      address: 192.0.2.1
      protocol: tcp
      port: 80
      pools: [ {{ name: p, backends: {{ a: {{}}, b: {{ weight: 60 }} }} }} ]
"
        ),
    );
    let router = |n: &str| {
        let mport = common::free_port("127.0.0.1");
        let sock = dir.path(&format!("{n}.sock"));
        let lock = dir.path(&format!("{n}-lock"));
        std::fs::create_dir_all(&lock).unwrap();
        let mut d = Daemon::start(&[
            "--vpp-sim",
            "--config",
            cfg.to_str().unwrap(),
            "--metrics-addr",
            &format!("127.0.0.1:{mport}"),
            "--control-socket",
            sock.to_str().unwrap(),
            "--lock-dir",
            lock.to_str().unwrap(),
        ]);
        d.wait_for(&["ready"], Duration::from_secs(5));
        (d, mport, sock)
    };
    let (_r1, m1, s1) = router("r1");
    let (_r2, m2, s2) = router("r2");
    let settle = |what: &str, ok: &dyn Fn(Option<String>, Option<String>) -> bool| {
        let t = Instant::now();
        loop {
            let (f1, f2) = (fingerprint(m1), fingerprint(m2));
            if ok(f1.clone(), f2.clone()) {
                return (f1, f2);
            }
            assert!(
                t.elapsed() < Duration::from_secs(8),
                "{what}: {f1:?} {f2:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // Both serving a and b (then a full sync publishes the table).
    let serving = |m: u16| {
        get(m, "GET", "/metrics").2.contains(
            "maglev_frontend_pool_backend_effective_weight{frontend=\"web\",pool=\"p\",backend=\"b\"} 60",
        )
    };
    common::wait_until(
        "both routers serving a and b",
        Duration::from_secs(5),
        || serving(m1) && serving(m2),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let (both, _) = settle("same state, same table", &|a, b| a.is_some() && a == b);
    // One router disables b: its table (and fingerprint) changes.
    assert!(
        common::maglevc(&s1, &["set", "backend", "b", "disable"])
            .status
            .success()
    );
    let (one, two) = settle("r1 differs", &|a, b| a.is_some() && b.is_some() && a != b);
    assert_eq!(two, both);
    // The other does the same: they agree again.
    assert!(
        common::maglevc(&s2, &["set", "backend", "b", "disable"])
            .status
            .success()
    );
    let (x, _) = settle("agree again", &|a, b| a.is_some() && a == b);
    assert_eq!(x, one);
    drop(a);
}
