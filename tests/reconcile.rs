//! End to end: real HTTP backends the test starts and kills, a real
//! `maglevd` process, and the VPP simulator on a real Unix socket. VPP's
//! state is asserted from the simulator after every step.

// Drives the VPP simulator (the default `vpp-sim` feature).
#![cfg(feature = "vpp-sim")]

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::servers::{Behaviour, Server, http};
use common::{Daemon, TempDir, wait_until};
use vpp_maglev::vpp::sim::lb::VipArgs;
use vpp_maglev::vpp::sim::{Sim, SimOptions, is_mutation};
use vpp_maglev::vpp::wire::{LbVip, Prefix};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn web_vip() -> LbVip {
    LbVip {
        pfx: Prefix::host(ip("192.0.2.1")),
        protocol: 6,
        port: 80,
    }
}

/// In-use ASes of `vip` in the simulator: address → weight.
fn weights(sim: &Sim, vip: LbVip) -> BTreeMap<IpAddr, u8> {
    sim.with_state(|s| {
        s.ases(Prefix::any(), 0, 0)
            .into_iter()
            .filter(|a| a.vip == vip && a.flags & 1 == 1)
            .map(|a| (a.addr, a.weight))
            .collect()
    })
}

fn want(pairs: &[(&str, u8)]) -> BTreeMap<IpAddr, u8> {
    pairs.iter().map(|(a, w)| (ip(a), *w)).collect()
}

/// A free port on 127.79.0.1 (the other backends bind the same number).
fn free_port() -> u16 {
    common::free_port("127.79.0.1")
}

fn up(addr: &str, port: u16) -> Server {
    Server::start(
        &format!("{addr}:{port}"),
        Behaviour::Respond(http("200 OK", "ok")),
    )
}

fn config(sock: &str, port: u16, lb_extra: &str, extra_backends: &str, extra_fe: &str) -> String {
    format!(
        "maglev:
  vpp:
    api-socket: {sock}
    lb:
      ipv4-src-address: 192.0.2.254
      ipv6-src-address: 2001:db8::fe
{lb_extra}
  healthchecks:
    web:
      type: http
      port: {port}
      interval: 100ms
      fast-interval: 100ms
      timeout: 80ms
      rise: 2
      fall: 2
  backends:
    a: {{ address: 127.79.0.1, healthcheck: web }}
    b: {{ address: 127.79.0.2, healthcheck: web }}
    c: {{ address: 127.79.0.3, healthcheck: web }}
{extra_backends}
  frontends:
    web:
      address: 192.0.2.1
      protocol: tcp
      port: 80
      pools:
        - name: primary
          backends: {{ a: {{ weight: 100 }}, b: {{ weight: 50 }} }}
        - name: fallback
          backends: {{ c: {{}} }}
{extra_fe}"
    )
}

#[test]
fn health_drives_vpp_failover_recovery_restart_and_drift() {
    let dir = TempDir::new("reconcile");
    let sock = dir.path("api.sock");
    let sim = Sim::start(SimOptions::new(&sock)).unwrap();
    let port = free_port();
    let mut a = Some(up("127.79.0.1", port));
    let mut b = Some(up("127.79.0.2", port));
    let _c = up("127.79.0.3", port);
    let lb = "      sync-interval: 1s\n      startup-min-delay: 0s\n      startup-max-delay: 0s";
    let cfg = dir.write(
        "maglev.yaml",
        &config(sock.to_str().unwrap(), port, lb, "", ""),
    );
    let mut d = Daemon::start(&["--config", cfg.to_str().unwrap()]);
    d.wait_for(&["ready"], Duration::from_secs(5));

    let primary = want(&[("127.79.0.1", 100), ("127.79.0.2", 50), ("127.79.0.3", 0)]);
    wait_until("primary pool programmed", Duration::from_secs(5), || {
        weights(&sim, web_vip()) == primary
    });
    let conf = sim.with_state(|s| s.conf());
    assert_eq!(conf.ip4_src.to_string(), "192.0.2.254");
    assert_eq!(conf.sticky_buckets_per_core, 65536);
    let sticky = sim.with_state(|s| s.vips()[0].sticky);
    assert!(!sticky);

    // a dies: weight 0 with flush within fall × fast-interval + 200 ms.
    sim.reset_received();
    a.take();
    let took = wait_until("a drained", Duration::from_secs(3), || {
        weights(&sim, web_vip())[&ip("127.79.0.1")] == 0
    });
    assert!(
        took <= Duration::from_millis(2 * 100 + 200),
        "took {took:?}"
    );
    let j = sim.journal();
    let (name, body) = &j[0];
    assert_eq!(name, "lb_as_set_weight");
    assert_eq!(
        body[48..50],
        [0, 1],
        "weight 0 with is_flush (flush-on-down)"
    );
    d.wait_for(
        &["backend-transition", "backend=a", "to=down"],
        Duration::from_secs(2),
    );

    // b dies too: the fallback pool takes over.
    b.take();
    wait_until("fallback active", Duration::from_secs(3), || {
        weights(&sim, web_vip())
            == want(&[("127.79.0.1", 0), ("127.79.0.2", 0), ("127.79.0.3", 100)])
    });

    // Both come back: primary again, fallback to standby.
    a = Some(up("127.79.0.1", port));
    b = Some(up("127.79.0.2", port));
    wait_until("primary restored", Duration::from_secs(3), || {
        weights(&sim, web_vip()) == primary
    });

    // VPP restarts with empty state: everything comes back.
    sim.restart();
    wait_until(
        "reprogrammed after VPP restart",
        Duration::from_secs(5),
        || weights(&sim, web_vip()) == primary,
    );
    d.wait_for(&["vpp-disconnect"], Duration::from_secs(1));
    d.wait_for(&["vpp-connect "], Duration::from_secs(1));

    // Drift: someone changes VPP behind our back.
    let now = Instant::now();
    sim.with_state(|s| {
        s.add_vip(
            &VipArgs::new("198.51.100.9/32".parse().unwrap(), 6, 443),
            now,
        );
        s.add_del_as(
            "192.0.2.1/32".parse().unwrap(),
            6,
            80,
            ip("10.9.9.9"),
            10,
            false,
            false,
            now,
        );
        s.set_weight(
            "192.0.2.1/32".parse().unwrap(),
            6,
            80,
            ip("127.79.0.2"),
            7,
            false,
        );
    });
    wait_until("drift corrected", Duration::from_secs(4), || {
        weights(&sim, web_vip()) == primary && sim.with_state(|s| s.vips().len()) == 1
    });

    // Sticky flipped behind our back: the VIP is recreated.
    sim.with_state(|s| {
        let pfx: Prefix = "192.0.2.1/32".parse().unwrap();
        s.del_vip(pfx, 6, 80, now);
        s.add_vip(
            &VipArgs {
                sticky: true,
                ..VipArgs::new(pfx, 6, 80)
            },
            now,
        );
    });
    wait_until("sticky restored", Duration::from_secs(4), || {
        sim.with_state(|s| s.vips().first().is_some_and(|v| !v.sticky))
            && weights(&sim, web_vip()) == primary
    });

    // Steady state: further full syncs change nothing.
    std::thread::sleep(Duration::from_millis(300));
    sim.reset_received();
    std::thread::sleep(Duration::from_millis(2200));
    let got = sim.received();
    assert!(
        got.get("lb_vip_dump").copied().unwrap_or(0) >= 1,
        "full syncs ran: {got:?}"
    );
    let mutations: Vec<_> = got.iter().filter(|(k, _)| is_mutation(k)).collect();
    assert!(mutations.is_empty(), "steady state sent {mutations:?}");

    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(3)), Some(0));
    drop((a, b));
}

#[test]
fn warmup_holds_off_then_releases_per_frontend() {
    let dir = TempDir::new("warmup");
    let sock = dir.path("api.sock");
    let sim = Sim::start(SimOptions::new(&sock)).unwrap();
    let port = free_port();
    let _a = up("127.79.0.1", port);
    let _b = up("127.79.0.2", port);
    let _c = up("127.79.0.3", port);
    // A backend that accepts and never answers: no verdict for 5 s.
    let silent = Server::start("127.79.1.1:0", Behaviour::Silent);
    let lb = "      startup-min-delay: 1s\n      startup-max-delay: 3s";
    let backends = "    s: { address: 127.79.1.1, healthcheck: slow }\n";
    let fe = "    slow:
      address: 192.0.2.2
      protocol: tcp
      port: 80
      pools:
        - name: only
          backends: { s: {} }
";
    let mut text = config(sock.to_str().unwrap(), port, lb, backends, fe);
    text = text.replace(
        "  backends:\n",
        &format!(
            "    slow:\n      type: http\n      port: {}\n      interval: 5s\n      timeout: 5s\n  backends:\n",
            silent.port()
        ),
    );
    let cfg = dir.write("maglev.yaml", &text);
    let t0 = Instant::now();
    let mut d = Daemon::start(&["--config", cfg.to_str().unwrap()]);
    d.wait_for(&["ready"], Duration::from_secs(5));
    // A smoke test with generous limits: the windows themselves are
    // fake-clock tests of vpp::reconciler::core. Hands off before
    // startup-min-delay, although web's backends are up.
    std::thread::sleep(Duration::from_millis(500).saturating_sub(t0.elapsed()));
    assert!(
        sim.journal().is_empty(),
        "mutations during hands-off: {:?}",
        sim.journal()
    );
    // web is released once its backends are known; slow is not.
    wait_until("web released", Duration::from_secs(5), || {
        weights(&sim, web_vip()).len() == 3
    });
    let released_at = t0.elapsed();
    assert!(released_at >= Duration::from_millis(900), "{released_at:?}");
    let slow_vip = LbVip {
        pfx: Prefix::host(ip("192.0.2.2")),
        protocol: 6,
        port: 80,
    };
    assert!(sim.with_state(|s| s.vips().iter().all(|v| v.key != slow_vip)));
    // By startup-max-delay, everything is programmed (slow at weight 0;
    // the VIP and its AS are two messages: wait for both).
    wait_until("everything by max delay", Duration::from_secs(8), || {
        sim.with_state(|s| s.vips().len()) == 2
            && weights(&sim, slow_vip) == want(&[("127.79.1.1", 0)])
    });
    let at = t0.elapsed();
    assert!(
        at >= Duration::from_millis(2900) && at < Duration::from_secs(8),
        "{at:?}"
    );
    assert_eq!(weights(&sim, slow_vip), want(&[("127.79.1.1", 0)]));
    d.wait_for(&["vpp-warmup-done"], Duration::from_secs(1));
}

#[test]
fn two_daemons_with_the_same_states_send_identical_messages() {
    let dir = TempDir::new("determinism");
    let port = free_port();
    let _a = up("127.79.0.1", port);
    let _b = up("127.79.0.2", port);
    let _c = up("127.79.0.3", port);
    // Hands off until every backend is surely up, then one full sync.
    let lb =
        "      startup-min-delay: 1500ms\n      startup-max-delay: 1500ms\n      sync-interval: 1s";
    let more_backends = "    d: { address: 127.79.0.10, healthcheck: web }\n    e: { address: 127.79.0.9, healthcheck: web }\n";
    let more_fe = "    api:
      address: 2001:db8::80
      protocol: udp
      port: 53
      src-ip-sticky: true
      pools:
        - name: p
          backends: { e: { weight: 30 }, d: { weight: 70 }, a: {} }
";
    let mut journals = Vec::new();
    for run in 0..2 {
        let sock = dir.path(&format!("api{run}.sock"));
        let sim = Sim::start(SimOptions::new(&sock)).unwrap();
        let cfg = dir.write(
            &format!("m{run}.yaml"),
            &config(sock.to_str().unwrap(), port, lb, more_backends, more_fe),
        );
        let mut d = Daemon::start(&["--config", cfg.to_str().unwrap()]);
        d.wait_for(&["vpp-lbsync-done", "scope=all"], Duration::from_secs(5));
        let first = sim.journal();
        assert!(!first.is_empty());
        // A second full sync sends nothing.
        d.wait_for(
            &["vpp-lbsync-done", "scope=all", "ops=0"],
            Duration::from_secs(3),
        );
        assert_eq!(sim.journal().len(), first.len());
        journals.push(first);
    }
    assert_eq!(journals[0], journals[1], "byte-identical message sequences");
    // ASes in numeric order: .9 before .10 on the IPv6 VIP.
    let names: Vec<&str> = journals[0].iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], "lb_conf");
    let as_adds: Vec<&Vec<u8>> = journals[0]
        .iter()
        .filter(|(n, _)| n == "lb_add_del_as_v2")
        .map(|(_, b)| b)
        .collect();
    let order: Vec<IpAddr> = as_adds
        .iter()
        .map(|b| IpAddr::from([b[32], b[33], b[34], b[35]]))
        .collect();
    assert_eq!(
        order,
        vec![
            ip("127.79.0.1"),
            ip("127.79.0.2"),
            ip("127.79.0.3"),
            ip("127.79.0.1"),
            ip("127.79.0.9"),
            ip("127.79.0.10")
        ]
    );
}

#[test]
fn runtime_weight_override_syncs_that_frontend_at_once() {
    use std::sync::Arc;
    use vpp_maglev::checker::Checker;
    use vpp_maglev::vpp::client::ApiCounters;
    use vpp_maglev::vpp::reconciler::{Reconciler, ReconcilerOptions};

    let dir = TempDir::new("override");
    let sock = dir.path("api.sock");
    let sim = Sim::start(SimOptions::new(&sock)).unwrap();
    let port = free_port();
    let _a = up("127.79.0.1", port);
    let _b = up("127.79.0.2", port);
    let _c = up("127.79.0.3", port);
    let lb = "      startup-min-delay: 0s\n      startup-max-delay: 0s";
    let text = config(sock.to_str().unwrap(), port, lb, "", "");
    let cfg = vpp_maglev::config::parse(&text, std::path::Path::new("t.yaml")).unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1024);
    let checker = Checker::start(Arc::new(cfg), vec![tx]).unwrap();
    let rec = Reconciler::start(
        checker.client(),
        rx,
        ApiCounters::new(),
        ReconcilerOptions {
            started: Instant::now(),
            api_socket_override: None,
            timeout: Duration::from_secs(2),
        },
    )
    .unwrap();
    let primary = want(&[("127.79.0.1", 100), ("127.79.0.2", 50), ("127.79.0.3", 0)]);
    wait_until("programmed", Duration::from_secs(5), || {
        weights(&sim, web_vip()) == primary
    });
    sim.reset_received();
    let t = Instant::now();
    checker
        .client()
        .set_weight("web", "primary", "b", 0, true)
        .expect("override");
    wait_until("override applied", Duration::from_secs(1), || {
        weights(&sim, web_vip())[&ip("127.79.0.2")] == 0
    });
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    let j = sim.journal();
    assert_eq!(j.len(), 1, "one message: {j:?}");
    assert_eq!(j[0].0, "lb_as_set_weight");
    assert_eq!(j[0].1[48..50], [0, 1], "weight 0 with the flush asked for");
    // An operator sync of one frontend with nothing to change sends nothing.
    let r = rec.sync(Some("web"), Duration::from_secs(2)).unwrap();
    assert!(r.ops.is_empty(), "{:?}", r.ops);
    assert!(rec.sync(Some("nope"), Duration::from_secs(2)).is_err());
    rec.shutdown();
    checker.shutdown();
}

#[test]
fn vpp_sim_flag_runs_the_example_end_to_end() {
    if !common::needs_root("vpp_sim_flag_runs_the_example_end_to_end") {
        return;
    }
    let mut d = Daemon::start(&[
        "--vpp-sim",
        "--config",
        common::repo_path("examples/maglev.yaml").to_str().unwrap(),
    ]);
    let line = d.wait_for(&["vpp-sim-started", "api-socket="], Duration::from_secs(5));
    let sock = line.split("api-socket=").nth(1).unwrap().trim().to_string();
    // The example holds VPP off for startup-min-delay (5 s), then releases
    // `web`, whose primary backends are down: the fallback pool carries it.
    d.wait_for(
        &["vpp-warmup-release", "frontend=web"],
        Duration::from_secs(8),
    );
    d.wait_for(
        &[
            "vpp-lbsync",
            "as-add",
            "vip=192.0.2.1/32:6/80",
            "as=127.0.0.21",
            "weight=100",
        ],
        Duration::from_secs(3),
    );
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(3)), Some(0));
    assert!(
        !std::path::Path::new(&sock).exists(),
        "private socket removed"
    );
}

#[test]
fn events_during_a_vpp_outage_are_coalesced_and_reload_resyncs() {
    let dir = TempDir::new("outage");
    let sock = dir.path("api.sock");
    let mut sim = Sim::start(SimOptions::new(&sock)).unwrap();
    let port = free_port();
    let mut a = Some(up("127.79.0.1", port));
    let _b = up("127.79.0.2", port);
    let _c = up("127.79.0.3", port);
    let lb = "      sync-interval: 30s\n      startup-min-delay: 0s\n      startup-max-delay: 0s";
    let text = config(sock.to_str().unwrap(), port, lb, "", "");
    let cfg = dir.write("maglev.yaml", &text);
    let mut d = Daemon::start(&["--config", cfg.to_str().unwrap()]);
    let primary = want(&[("127.79.0.1", 100), ("127.79.0.2", 50), ("127.79.0.3", 0)]);
    wait_until("programmed", Duration::from_secs(5), || {
        weights(&sim, web_vip()) == primary
    });

    // VPP goes away; a backend dies and comes back and dies again meanwhile.
    sim.stop();
    drop(sim);
    a.take();
    d.wait_for(
        &["backend-transition", "backend=a", "to=down"],
        Duration::from_secs(2),
    );
    a = Some(up("127.79.0.1", port));
    d.wait_for(
        &["backend-transition", "backend=a", "to=up"],
        Duration::from_secs(2),
    );
    a.take();
    d.wait_for(
        &["backend-transition", "backend=a", "to=down"],
        Duration::from_secs(2),
    );
    // Probing went on without VPP. VPP returns (empty): the latest state
    // is programmed, not the history.
    let sim = Sim::start(SimOptions::new(&sock)).unwrap();
    wait_until(
        "latest state after reconnect",
        Duration::from_secs(5),
        || {
            weights(&sim, web_vip())
                == want(&[("127.79.0.1", 0), ("127.79.0.2", 50), ("127.79.0.3", 0)])
        },
    );

    // A reload that changes a weight is applied by the full sync after it.
    dir.write(
        "maglev.yaml",
        &text.replace("b: { weight: 50 }", "b: { weight: 60 }"),
    );
    d.signal(nix::sys::signal::Signal::SIGHUP);
    d.wait_for(&["config-reloaded"], Duration::from_secs(2));
    wait_until("reloaded weight in VPP", Duration::from_secs(2), || {
        weights(&sim, web_vip()).get(&ip("127.79.0.2")) == Some(&60)
    });
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(3)), Some(0));
}

/// `maglevc --json show frontends`: name → VPP status.
fn vpp_words(sock: &std::path::Path) -> BTreeMap<String, String> {
    let out = common::maglevc(sock, &["--json", "show", "frontends"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["frontends"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["name"].as_str().unwrap_or("").to_string(),
                f["vpp"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The web6 story of a real VPP: an AS in ::/96 is IPv4 to VPP and
/// refused on an IPv6 VIP. That frontend says `refused` (with VPP's error)
/// and its drift counts it; every other frontend says `ok`; counters of
/// every VIP VPP holds are published, from the first read on (hands-off
/// warmup included), refusal or not.
#[test]
fn one_refused_vip_is_shown_and_hides_nothing_else() {
    let dir = TempDir::new("refused");
    let sock = dir.path("api.sock");
    let mut opts = SimOptions::new(&sock);
    opts.stats_socket = Some(dir.path("stats.sock"));
    let mut sim = Sim::start(opts).unwrap();
    // VPP already holds web (as a maglevd before this one left it), with traffic.
    let now = Instant::now();
    sim.with_state(|s| {
        s.add_vip(&VipArgs::new(web_vip().pfx, 6, 80), now);
        s.add_traffic(
            &web_vip(),
            vpp_maglev::vpp::sim::lb::VipCounters {
                existing_sessions: 7,
                first_packet: 3,
                untracked: 0,
                no_server: 1,
            },
        )
    });
    let port = free_port();
    let _a = up("127.79.0.1", port);
    let _b = up("127.79.0.2", port);
    let _c = up("127.79.0.3", port);
    let lb = "      sync-interval: 1s\n      startup-min-delay: 2s\n      startup-max-delay: 2s";
    let six = "    v6: { address: \"::1\", healthcheck: web }";
    let fe6 = "    web6:
      address: 2001:db8::1
      protocol: tcp
      port: 443
      pools:
        - name: main
          backends: { v6: {} }";
    let cfg = dir.write(
        "maglev.yaml",
        &config(sock.to_str().unwrap(), port, lb, six, fe6).replace(
            "  vpp:\n",
            &format!(
                "  vpp:\n    stats-socket: {}\n    stats-interval: 1s\n",
                dir.path("stats.sock").display()
            ),
        ),
    );
    let ctl = dir.path("ctl.sock");
    let mut d = Daemon::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--control-socket",
        ctl.to_str().unwrap(),
    ]);
    d.wait_for(&["ready"], Duration::from_secs(5));

    // Hands-off: nothing programmed, yet VPP's VIP and counters are known.
    let counters = |ctl: &std::path::Path| {
        String::from_utf8_lossy(&common::maglevc(ctl, &["show", "vpp", "lb", "counters"]).stdout)
            .into_owned()
    };
    wait_until("counters during warmup", Duration::from_secs(2), || {
        counters(&ctl)
            .lines()
            .any(|l| l.starts_with("web ") && l.contains(" 3 "))
    });
    let words = vpp_words(&ctl);
    assert_eq!(words["web"], "pending", "{words:?}");
    assert_eq!(words["web6"], "pending", "{words:?}");

    // After warmup: web6's AS is refused, web is ok, both have counters.
    let want = BTreeMap::from([
        ("web".to_string(), "ok".to_string()),
        ("web6".to_string(), "refused".to_string()),
    ]);
    wait_until("statuses after warmup", Duration::from_secs(5), || {
        vpp_words(&ctl) == want
    });
    d.wait_for(
        &["frontend-vpp-state", "frontend=web6", "to=refused", "-97"],
        Duration::from_secs(1),
    );
    let detail = common::maglevc(&ctl, &["show", "frontend", "web6"]);
    let text = String::from_utf8_lossy(&detail.stdout);
    assert!(
        text.contains("vpp-refusal             as-add vip=2001:db8::1/128:6/443 as=::1")
            && text.contains("INVALID_ADDRESS_FAMILY (-97)"),
        "{text}"
    );
    // Later full syncs: the refusal again, drift counts it, statuses hold.
    d.wait_for(
        &["vpp-lbsync-done", "scope=all", "errors=1", "drift=1"],
        Duration::from_secs(3),
    );
    assert_eq!(vpp_words(&ctl), want);
    let c = counters(&ctl);
    assert!(c.lines().any(|l| l.starts_with("web ")), "{c}");
    assert!(c.lines().any(|l| l.starts_with("web6 ")), "{c}");
    let json = common::maglevc(&ctl, &["--json", "show", "frontend", "web6"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["frontend"]["vpp"], "refused");
    assert_eq!(v["frontend"]["vpp_unheld"], 1);

    // VPP goes away: everything is pending at once.
    sim.stop();
    wait_until("pending while VPP is gone", Duration::from_secs(2), || {
        vpp_words(&ctl).values().all(|w| w == "pending")
    });
}
