//! The traffic policies end to end: a real maglevd, real backends, the VPP
//! simulator. Slow start seen stepping in the simulator's journal, drain
//! --wait against the simulator's sticky flows, and min-healthy failing
//! open when the prober loses its network (in namespaces: needs root).

// Drives the VPP simulator (the default `vpp-sim` feature).
#![cfg(feature = "vpp-sim")]

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::servers::{Behaviour, Server, http};
use common::{Daemon, TempDir, maglevc, wait_until};
use vpp_maglev::vpp::sim::{Sim, SimOptions};
use vpp_maglev::vpp::wire::{LbAsSetWeight, LbVip, Message, Prefix};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn vip() -> LbVip {
    LbVip {
        pfx: Prefix::host(ip("192.0.2.1")),
        protocol: 6,
        port: 80,
    }
}

fn weight_of(sim: &Sim, addr: &str) -> Option<u8> {
    sim.with_state(|s| {
        s.ases(Prefix::any(), 0, 0)
            .into_iter()
            .find(|a| a.vip == vip() && a.addr == ip(addr) && a.flags & 1 == 1)
            .map(|a| a.weight)
    })
}

fn config(sock: &str, port: u16, lb: &str, pool: &str, fe: &str) -> String {
    format!(
        "maglev:
  vpp:
    api-socket: {sock}
    lb:
      ipv4-src-address: 192.0.2.254
      sync-interval: 1s
      startup-min-delay: 0s
      startup-max-delay: 0s
{lb}
  healthchecks:
    web: {{ type: http, port: {port}, interval: 100ms, fast-interval: 100ms, timeout: 80ms, rise: 2, fall: 2 }}
  backends:
    a: {{ address: 127.78.0.1, healthcheck: web }}
    b: {{ address: 127.78.0.2, healthcheck: web }}
  frontends:
    web:
      address: 192.0.2.1
      protocol: tcp
      port: 80
{fe}
      pools:
        - name: primary
{pool}
"
    )
}

fn up(addr: &str, port: u16) -> Server {
    Server::start(
        &format!("{addr}:{port}"),
        Behaviour::Respond(http("200 OK", "ok")),
    )
}

/// The weights VPP was told for `addr` (`lb_as_set_weight`), in order.
fn weights_sent(sim: &Sim, addr: &str) -> Vec<u8> {
    sim.journal()
        .iter()
        .filter(|(n, _)| n == "lb_as_set_weight")
        .filter_map(|(_, body)| LbAsSetWeight::decode(body).ok())
        .filter(|m| m.as_address == ip(addr))
        .map(|m| m.weight)
        .collect()
}

#[test]
fn a_recovered_backend_ramps_up_one_step_a_second() {
    let dir = TempDir::new("slowstart");
    let sock = dir.path("api.sock");
    let sim = Sim::start(SimOptions::new(&sock)).unwrap();
    let port = common::free_port("127.78.0.1");
    let _a = up("127.78.0.1", port);
    let cfg = dir.write(
        "m.yaml",
        &config(
            sock.to_str().unwrap(),
            port,
            "",
            "          slow-start: 3s\n          backends: { a: { weight: 100, slow-start: 0s }, b: { weight: 90 } }",
            "",
        ),
    );
    let mut d = Daemon::start(&["--config", cfg.to_str().unwrap()]);
    d.wait_for(&["ready"], Duration::from_secs(5));
    wait_until("a programmed at once", Duration::from_secs(5), || {
        weight_of(&sim, "127.78.0.1") == Some(100) && weight_of(&sim, "127.78.0.2") == Some(0)
    });
    sim.reset_received();
    // b comes up: 30, 60, 90, a second apart.
    let t = Instant::now();
    let _b = up("127.78.0.2", port);
    wait_until("b at its configured weight", Duration::from_secs(8), || {
        weight_of(&sim, "127.78.0.2") == Some(90)
    });
    let ramp_took = t.elapsed();
    // b's first down transition (nothing listened yet) may flush it with a
    // weight 0 after the journal was reset: that is not part of the ramp.
    let steps: Vec<u8> = weights_sent(&sim, "127.78.0.2")
        .into_iter()
        .skip_while(|w| *w == 0)
        .collect();
    assert_eq!(steps, [30, 60, 90], "one lb_as_set_weight per step");
    assert!(
        ramp_took >= Duration::from_secs(2) && ramp_took < Duration::from_secs(5),
        "{ramp_took:?}"
    );
    // A transition during a ramp ends it: b goes down at 30 and, back up,
    // ramps again from the start.
    drop(_b);
    wait_until("b down", Duration::from_secs(5), || {
        weight_of(&sim, "127.78.0.2") == Some(0)
    });
    let _b = up("127.78.0.2", port);
    wait_until("b ramping again", Duration::from_secs(5), || {
        weight_of(&sim, "127.78.0.2") == Some(30)
    });
    drop(_b);
    wait_until("b down mid-ramp", Duration::from_secs(5), || {
        weight_of(&sim, "127.78.0.2") == Some(0)
    });
    sim.reset_received();
    let _b = up("127.78.0.2", port);
    wait_until("b at its weight again", Duration::from_secs(8), || {
        weight_of(&sim, "127.78.0.2") == Some(90)
    });
    let steps = weights_sent(&sim, "127.78.0.2");
    assert_eq!(steps, [30, 60, 90], "the interrupted ramp started over");
    let _ = d.stop_within(Duration::from_secs(2));
}

/// The `flows:` VPP reports for `addr` on the web VIP.
fn flows(sim: &Sim, addr: &str) -> u32 {
    let text = sim.with_state(|s| s.show_vips_verbose());
    text.lines()
        .find(|l| l.trim_start().starts_with(&format!("{addr} ")))
        .and_then(|l| l.split("flows:").nth(1))
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `maglevc set backend b drain --wait --quiet-for 1s --timeout <timeout>`.
fn drain_b(ctl: &std::path::Path, timeout: &str) -> std::process::Output {
    maglevc(
        ctl,
        &[
            "set",
            "backend",
            "b",
            "drain",
            "--wait",
            "--quiet-for",
            "1s",
            "--timeout",
            timeout,
        ],
    )
}

#[test]
fn drain_wait_returns_when_the_flows_are_gone_and_times_out_when_not() {
    let dir = TempDir::new("drain");
    let sock = dir.path("api.sock");
    let ctl = dir.path("ctl.sock");
    let sim = Sim::start(SimOptions::new(&sock)).unwrap();
    let port = common::free_port("127.78.0.1");
    let _a = up("127.78.0.1", port);
    let _b = up("127.78.0.2", port);
    let cfg = dir.write(
        "m.yaml",
        &config(
            sock.to_str().unwrap(),
            port,
            "      flow-timeout: 1s\n      sticky-buckets-per-core: 16",
            "          backends: { a: {}, b: {} }",
            "",
        ),
    );
    let mut d = Daemon::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--control-socket",
        ctl.to_str().unwrap(),
    ]);
    d.wait_for(&["ready"], Duration::from_secs(5));
    wait_until("both programmed", Duration::from_secs(5), || {
        weight_of(&sim, "127.78.0.1") == Some(100) && weight_of(&sim, "127.78.0.2") == Some(100)
    });
    // Clients open flows; some are pinned to b.
    sim.with_state(|s| s.flows(&vip(), 0, 40, Instant::now()))
        .unwrap();
    let pinned = flows(&sim, "127.78.0.2");
    assert!(pinned > 0);

    // No new traffic: VPP keeps counting b's (expired) entries, so the
    // drain cannot complete and times out naming the VIP.
    let t = Instant::now();
    let o = drain_b(&ctl, "3s");
    let took = t.elapsed();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("192.0.2.1/32:6/80") && err.contains("flows"),
        "{err}"
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(
        weight_of(&sim, "127.78.0.2"),
        Some(0),
        "drained: weight 0..."
    );
    assert_eq!(flows(&sim, "127.78.0.2"), pinned, "...without a flush");

    // New clients arrive; once b's entries have expired (flow-timeout 1 s)
    // their slots are reused and b's count falls to zero: drained.
    let t = Instant::now();
    let o = std::thread::scope(|scope| {
        scope.spawn(|| {
            for round in 0..20u64 {
                std::thread::sleep(Duration::from_millis(300));
                sim.with_state(|s| s.flows(&vip(), 1000 + round * 500, 500, Instant::now()));
            }
        });
        drain_b(&ctl, "20s")
    });
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(out.lines().last(), Some("drained"), "{out}");
    assert_eq!(flows(&sim, "127.78.0.2"), 0);
    assert!(flows(&sim, "127.78.0.1") > 0, "a keeps its clients");
    eprintln!("drained in {:?}", t.elapsed());
    // resume undoes it.
    assert!(
        maglevc(&ctl, &["set", "backend", "b", "resume"])
            .status
            .success()
    );
    wait_until("b back", Duration::from_secs(5), || {
        weight_of(&sim, "127.78.0.2") == Some(100)
    });
    // The options only go with drain.
    let o = maglevc(&ctl, &["set", "backend", "b", "pause", "--wait"]);
    assert_eq!(o.status.code(), Some(2));
    let _ = d.stop_within(Duration::from_secs(2));
}

#[test]
fn min_healthy_fails_open_when_the_prober_loses_its_network() {
    use common::netns::{Netns, veth};
    if !common::needs_root("min_healthy_fails_open_when_the_prober_loses_its_network") {
        return;
    }
    let dir = TempDir::new("panic");
    let sock = dir.path("api.sock");
    let sim = Sim::start(SimOptions::new(&sock)).unwrap();
    // The prober lives in `cli`, the backends in `srv`, one link between.
    let cli = Netns::new("pcli");
    let srv = Netns::new("psrv");
    let (ia, ib) = veth("mglpanic", &cli, &srv);
    cli.ip(&["addr", "add", "10.198.1.1/24", "dev", &ia]);
    srv.ip(&["addr", "add", "10.198.1.2/24", "dev", &ib]);
    srv.ip(&["addr", "add", "10.198.1.3/24", "dev", &ib]);
    let port = 18480;
    let (tx, rx) = std::sync::mpsc::channel();
    let _srv_thread = srv.spawn(move || {
        let servers: Vec<Server> = ["10.198.1.2", "10.198.1.3"]
            .iter()
            .map(|a| up(a, port))
            .collect();
        tx.send(()).unwrap();
        // Keep serving until the test process ends.
        std::thread::sleep(Duration::from_secs(60));
        drop(servers);
    });
    rx.recv().unwrap();
    let cfg = dir.write(
        "m.yaml",
        &format!(
            "maglev:
  healthchecker:
    netns: {ns}
  vpp:
    api-socket: {sock}
    lb:
      ipv4-src-address: 192.0.2.254
      sync-interval: 1s
      startup-min-delay: 0s
      startup-max-delay: 0s
  healthchecks:
    web: {{ type: tcp, port: {port}, interval: 100ms, fast-interval: 100ms, timeout: 80ms, rise: 2, fall: 2 }}
  backends:
    a: {{ address: 10.198.1.2, healthcheck: web }}
    b: {{ address: 10.198.1.3, healthcheck: web }}
  frontends:
    guarded:
      address: 192.0.2.1
      protocol: tcp
      port: 80
      min-healthy: 50%
      pools: [ {{ name: p, backends: {{ a: {{}}, b: {{}} }} }} ]
    plain:
      address: 192.0.2.2
      protocol: tcp
      port: 80
      pools: [ {{ name: p, backends: {{ a: {{}}, b: {{}} }} }} ]
",
            ns = cli.name,
            sock = sock.display()
        ),
    );
    let weights = |v: &str| -> Vec<u8> {
        sim.with_state(|s| {
            s.ases(Prefix::any(), 0, 0)
                .into_iter()
                .filter(|a| a.vip.pfx == Prefix::host(ip(v)) && a.flags & 1 == 1)
                .map(|a| a.weight)
                .collect()
        })
    };
    let mut d = Daemon::start(&["--config", cfg.to_str().unwrap()]);
    d.wait_for(&["ready"], Duration::from_secs(5));
    wait_until("both VIPs programmed", Duration::from_secs(5), || {
        weights("192.0.2.1") == [100, 100] && weights("192.0.2.2") == [100, 100]
    });
    // The prober's link goes down: every backend looks dead.
    cli.ip(&["link", "set", &ia, "down"]);
    let line = d.wait_for(
        &["frontend-transition", "frontend=guarded", "to=panic"],
        Duration::from_secs(5),
    );
    assert!(line.contains("WARN"), "{line}");
    wait_until("the unguarded VIP empties", Duration::from_secs(5), || {
        weights("192.0.2.2") == [0, 0]
    });
    assert_eq!(
        weights("192.0.2.1"),
        [100, 100],
        "the guarded VIP keeps serving"
    );
    // The link comes back: out of panic, everything up again.
    cli.ip(&["link", "set", &ia, "up"]);
    d.wait_for(
        &[
            "frontend-transition",
            "frontend=guarded",
            "from=panic",
            "to=up",
        ],
        Duration::from_secs(5),
    );
    wait_until("the unguarded VIP refills", Duration::from_secs(5), || {
        weights("192.0.2.2") == [100, 100]
    });
    let _ = d.stop_within(Duration::from_secs(2));
}

#[test]
fn changing_the_table_length_recreates_the_vip() {
    let dir = TempDir::new("tablelen");
    let sock = dir.path("api.sock");
    let sim = Sim::start(SimOptions::new(&sock)).unwrap();
    let port = common::free_port("127.78.0.1");
    let _a = up("127.78.0.1", port);
    let _b = up("127.78.0.2", port);
    let write = |fe: &str| {
        dir.write(
            "m.yaml",
            &config(
                sock.to_str().unwrap(),
                port,
                "",
                "          backends: { a: { weight: 100 }, b: { weight: 50 } }",
                fe,
            ),
        )
    };
    let cfg = write("");
    let ctl = dir.path("ctl.sock");
    let mut d = Daemon::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--control-socket",
        ctl.to_str().unwrap(),
    ]);
    d.wait_for(&["ready"], Duration::from_secs(5));
    let table = || sim.with_state(|s| s.vips().first().map(|v| v.table_len));
    wait_until(
        "programmed with 1024 buckets",
        Duration::from_secs(5),
        || table() == Some(1024) && weight_of(&sim, "127.78.0.2") == Some(50),
    );
    sim.reset_received();
    write("      new-flows-table-length: 4096");
    d.signal(nix::sys::signal::Signal::SIGHUP);
    wait_until(
        "recreated with 4096 buckets",
        Duration::from_secs(5),
        || {
            table() == Some(4096)
                && weight_of(&sim, "127.78.0.1") == Some(100)
                && weight_of(&sim, "127.78.0.2") == Some(50)
        },
    );
    let names: Vec<String> = sim.journal().into_iter().map(|(n, _)| n).collect();
    let del = names.iter().position(|n| n == "lb_add_del_vip_v2");
    let add = names.iter().rposition(|n| n == "lb_add_del_vip_v2");
    assert!(
        del.is_some() && add.is_some() && del < add,
        "delete then add: {names:?}"
    );
    assert_eq!(
        sim.with_state(|s| s.vips().len()),
        1,
        "one VIP, the new one"
    );
    // The deleted VIP lingers until VPP's garbage collection with its ASes
    // under the same key: they are listed apart, not as the live VIP's.
    let o = maglevc(&ctl, &["--json", "show", "vpp", "lb", "state"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let vips = st["vips"].as_array().unwrap();
    assert_eq!(vips.len(), 1, "{st}");
    let live: Vec<(&str, bool)> = vips[0]["ases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["address"].as_str().unwrap(),
                a["in_use"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(live, [("127.78.0.1", true), ("127.78.0.2", true)], "{st}");
    let removed: Vec<(&str, u64)> = st["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["address"].as_str().unwrap(), a["index"].as_u64().unwrap()))
        .collect();
    let old_index = removed.first().map(|r| r.1);
    assert_eq!(
        removed,
        [
            ("127.78.0.1", old_index.unwrap()),
            ("127.78.0.2", old_index.unwrap())
        ],
        "{st}"
    );
    assert_ne!(vips[0]["index"].as_u64(), old_index, "{st}");
    let text =
        String::from_utf8_lossy(&maglevc(&ctl, &["show", "vpp", "lb", "state"]).stdout).to_string();
    assert!(text.contains("removed vip 192.0.2.1"), "{text}");
    let _ = d.stop_within(Duration::from_secs(2));
}
