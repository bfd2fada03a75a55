//! `vpp::client` against the simulator over the real Unix-socket protocol:
//! the happy path, VPP's errors, a restart, a dump cut in half, a slow VPP
//! and a VPP without the lb weight API.

// Drives the VPP simulator (the default `vpp-sim` feature).
#![cfg(feature = "vpp-sim")]

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::TempDir;
use vpp_maglev::vpp::client::{
    ApiCounters, ApiResult, Client, ClientConfig, Direction, LbConfig, VipSpec,
};
use vpp_maglev::vpp::errors::VppError;
use vpp_maglev::vpp::sim::{Flavor, Sim, SimOptions};
use vpp_maglev::vpp::wire::{Encap, LbVip, Prefix};

fn sim(dir: &TempDir) -> (Sim, ClientConfig) {
    let path = dir.path("api.sock");
    let s = Sim::start(SimOptions::new(&path)).expect("sim");
    let mut cfg = ClientConfig::new(&path);
    cfg.timeout = Duration::from_millis(800);
    (s, cfg)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn vip(addr: &str, protocol: u8, port: u16) -> VipSpec {
    let a = ip(addr);
    VipSpec {
        key: LbVip {
            pfx: Prefix::host(a),
            protocol,
            port,
        },
        encap: if a.is_ipv4() {
            Encap::Gre4
        } else {
            Encap::Gre6
        },
        src_ip_sticky: false,
        new_flows_table_length: 1024,
    }
}

#[test]
fn full_conversation_with_the_simulator() {
    let dir = TempDir::new("vppclient");
    let (sim, cfg) = sim(&dir);
    let counters = ApiCounters::new();
    let mut c = Client::connect(&cfg, counters.clone()).expect("connect");
    assert!(c.handle() & 0x8000_0000 != 0);
    assert_eq!(c.ping().unwrap(), std::process::id());
    let v = c.show_version().unwrap();
    assert_eq!(v.program, "vpe");

    let conf = c.lb_conf_get().unwrap();
    assert_eq!(conf.sticky_buckets_per_core, 1024);
    let new = LbConfig {
        ip4_src: "192.0.2.254".parse().unwrap(),
        ip6_src: "2001:db8::fe".parse().unwrap(),
        sticky_buckets_per_core: 1024,
        flow_timeout: 40,
    };
    c.lb_conf(&new).unwrap();
    assert_eq!(c.lb_conf_get().unwrap(), new);

    let v4 = vip("192.0.2.1", 6, 80);
    let v6 = vip("2001:db8::1", 17, 53);
    c.vip_add_del(&v4, false).unwrap();
    c.vip_add_del(&v6, false).unwrap();
    let dup = c.vip_add_del(&v4, false).unwrap_err();
    assert_eq!(dup.retval(), Some(-81));
    assert!(dup.to_string().contains("VALUE_EXIST"), "{dup}");
    assert!(
        c.is_healthy(),
        "a refused request leaves the session usable"
    );

    c.as_add_del(&v4.key, ip("10.0.0.1"), 50, false, false)
        .unwrap();
    c.as_add_del(&v4.key, ip("10.0.0.2"), 100, false, false)
        .unwrap();
    c.as_add_del(&v6.key, ip("2001:db8:1::10"), 100, false, false)
        .unwrap();
    let missing = c
        .as_add_del(
            &vip("203.0.113.1", 6, 80).key,
            ip("10.0.0.1"),
            1,
            false,
            false,
        )
        .unwrap_err();
    assert!(missing.to_string().contains("NO_SUCH_ENTRY"), "{missing}");

    let ases = c.as_dump().unwrap();
    let b: Vec<(IpAddr, u8, u32)> = ases
        .iter()
        .map(|a| (a.app_srv, a.weight, a.num_buckets))
        .collect();
    assert_eq!(
        b,
        vec![
            (ip("10.0.0.1"), 50, 350),
            (ip("10.0.0.2"), 100, 674),
            (ip("2001:db8:1::10"), 100, 1024)
        ]
    );
    c.as_set_weight(&v4.key, ip("10.0.0.2"), 0, true).unwrap();
    let ases = c.as_dump().unwrap();
    assert_eq!((ases[0].num_buckets, ases[1].num_buckets), (1024, 0));

    let vips = c.vip_dump().unwrap();
    assert_eq!(vips.len(), 2);
    assert_eq!(vips[0].vip, v4.key);
    assert_eq!(vips[1].encap, Encap::Gre6);

    let text = c.cli("show lb vips verbose").unwrap();
    assert!(text.starts_with(" ip4-gre4 [1] 192.0.2.1/32\n"), "{text}");
    let err = c.cli("show lb nonsense").unwrap_err();
    assert!(matches!(err, VppError::Cli { retval: -1, .. }), "{err}");
    assert!(err.to_string().contains("unknown input"), "{err}");

    let route = c.route_lookup(Prefix::host(ip("192.0.2.1"))).unwrap();
    assert_eq!(route.paths.len(), 1);
    let st = sim.with_state(|s| s.routes());
    assert_eq!(st[0].1, route.stats_index);

    let counts = counters.snapshot();
    assert!(counts.iter().any(|((m, d, r), n)| *m == "lb_add_del_vip_v2"
        && *d == Direction::Send
        && *r == ApiResult::Success
        && *n == 3));
    assert!(
        counts
            .iter()
            .any(|((m, d, r), n)| *m == "lb_add_del_vip_v2_reply"
                && *d == Direction::Recv
                && *r == ApiResult::Failure
                && *n == 1)
    );

    // A second client at the same time.
    let mut c2 = Client::connect(&cfg, ApiCounters::new()).unwrap();
    assert_eq!(c2.vip_dump().unwrap().len(), 2);
    assert_ne!(c2.handle(), c.handle());
    assert_eq!(sim.connections(), 2);
    c2.close().unwrap();
    c.close().unwrap();
    let t = Instant::now();
    while sim.connections() > 0 && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sim.connections(), 0, "sockclnt_delete closes the session");
}

#[test]
fn reconnects_after_a_vpp_restart_with_empty_state() {
    let dir = TempDir::new("vpprestart");
    let (sim, cfg) = sim(&dir);
    let mut c = Client::connect(&cfg, ApiCounters::new()).unwrap();
    c.vip_add_del(&vip("192.0.2.1", 6, 80), false).unwrap();
    sim.restart();
    let err = c.vip_dump().unwrap_err();
    assert!(err.is_connection_error(), "{err}");
    assert!(!c.is_healthy(), "a failed session is spent");
    // Between calls, a hang-up is seen without blocking.
    let mut idle = Client::connect(&cfg, ApiCounters::new()).unwrap();
    assert!(idle.poll_unsolicited().is_ok(), "nothing to read yet");
    sim.restart();
    let t = Instant::now();
    let mut seen = false;
    while t.elapsed() < Duration::from_secs(1) {
        if idle.poll_unsolicited().is_err() {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(seen, "poll_unsolicited reports the closed session");
    // A new session sees the restarted, empty VPP.
    let mut c = Client::connect(&cfg, ApiCounters::new()).unwrap();
    assert!(
        c.vip_dump().unwrap().is_empty(),
        "restarted VPP has no VIPs"
    );
}

#[test]
fn a_dump_cut_in_half_is_a_clear_error_not_a_hang() {
    let dir = TempDir::new("vppcut");
    let (sim, cfg) = sim(&dir);
    let mut c = Client::connect(&cfg, ApiCounters::new()).unwrap();
    for i in 1..=3 {
        c.vip_add_del(&vip(&format!("192.0.2.{i}"), 6, 80), false)
            .unwrap();
    }
    sim.cut_next_dump_after(1);
    let t = Instant::now();
    let err = c.vip_dump().unwrap_err();
    assert!(
        t.elapsed() < Duration::from_millis(700),
        "took {:?}",
        t.elapsed()
    );
    let msg = err.to_string();
    assert!(
        msg.contains("in the middle of lb_vip_dump after 1 lb_vip_details"),
        "{msg}"
    );
    assert!(!c.is_healthy());
}

#[test]
fn a_slow_vpp_times_out_and_the_session_is_dropped() {
    let dir = TempDir::new("vppslow");
    let (sim, mut cfg) = sim(&dir);
    cfg.timeout = Duration::from_millis(300);
    let mut c = Client::connect(&cfg, ApiCounters::new()).unwrap();
    sim.set_delay(Duration::from_millis(900));
    let t = Instant::now();
    let err = c.ping().unwrap_err();
    assert!(matches!(err, VppError::Timeout(_)), "{err}");
    assert!(t.elapsed() < Duration::from_millis(700));
    assert!(!c.is_healthy());
    sim.set_delay(Duration::ZERO);
}

#[test]
fn injected_errors_are_named() {
    let dir = TempDir::new("vppinject");
    let (sim, cfg) = sim(&dir);
    let mut c = Client::connect(&cfg, ApiCounters::new()).unwrap();
    sim.fail_next("lb_conf_get", -3);
    let e = c.lb_conf_get().unwrap_err();
    assert_eq!(
        e.to_string(),
        "lb_conf_get failed: VNET_API_ERROR_NO_SUCH_FIB (-3)"
    );
    assert!(c.lb_conf_get().is_ok());
}

#[test]
fn a_vpp_without_the_weight_api_is_refused_with_every_missing_message() {
    let dir = TempDir::new("vppold");
    let path = dir.path("api.sock");
    let mut opts = SimOptions::new(&path);
    opts.flavor = Flavor::OldLb;
    let _sim = Sim::start(opts).unwrap();
    let err = match Client::connect(&ClientConfig::new(&path), ApiCounters::new()) {
        Err(e) => e,
        Ok(_) => panic!("an old VPP must be refused"),
    };
    let msg = err.to_string();
    for key in [
        "lb_conf_get_51077d14",
        "lb_add_del_as_v2_2f1d3b0e",
        "lb_as_set_weight_2d89bdbd",
        "lb_as_v2_dump_1063f819",
        "lb_as_v2_details_90064aae",
    ] {
        assert!(msg.contains(key), "{key} not named in: {msg}");
    }
    assert!(msg.contains("VPP 26.10 or newer"), "{msg}");
}

#[test]
fn connect_to_nothing_fails_fast() {
    let dir = TempDir::new("vppnone");
    let cfg = ClientConfig::new(dir.path("absent.sock"));
    let t = Instant::now();
    let err = match Client::connect(&cfg, ApiCounters::new()) {
        Err(e) => e,
        Ok(_) => panic!("nothing listens"),
    };
    assert!(matches!(err, VppError::Io(_)), "{err}");
    assert!(t.elapsed() < Duration::from_millis(200));
}
