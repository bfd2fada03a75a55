//! `maglevc preview` end to end: a real maglevd, real backends, the VPP
//! simulator. The preview of a change must be exactly what the reconciler
//! then sends (the simulator's journal, message by message) and predict
//! the table VPP then builds (bucket counts and fingerprint).

// Drives the VPP simulator (the default `vpp-sim` feature).
#![cfg(feature = "vpp-sim")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::servers::{Behaviour, Server, http};
use common::{Daemon, TempDir, maglevc, wait_until};
use serde_json::Value;
use vpp_maglev::vpp::client::VipSpec;
use vpp_maglev::vpp::lb::Op;
use vpp_maglev::vpp::sim::{Sim, SimOptions, is_mutation};
use vpp_maglev::vpp::wire::{
    LbAddDelAsV2, LbAddDelVipV2, LbAsSetWeight, LbConf, LbVip, Message, Prefix,
};

/// The simulator's journal as the reconciler's operations.
fn journal_ops(sim: &Sim) -> Vec<String> {
    sim.journal()
        .iter()
        .filter(|(n, _)| is_mutation(n))
        .map(|(n, body)| {
            let op = match n.as_str() {
                "lb_as_set_weight" => {
                    let m = LbAsSetWeight::decode(body).unwrap();
                    Op::SetWeight {
                        vip: key(m.pfx, m.protocol, m.port),
                        addr: m.as_address,
                        weight: m.weight,
                        flush: m.is_flush,
                    }
                }
                "lb_add_del_as_v2" => {
                    let m = LbAddDelAsV2::decode(body).unwrap();
                    let vip = key(m.pfx, m.protocol, m.port);
                    if m.is_del {
                        Op::DelAs {
                            vip,
                            addr: m.as_address,
                            flush: m.is_flush,
                        }
                    } else {
                        Op::AddAs {
                            vip,
                            addr: m.as_address,
                            weight: m.weight,
                        }
                    }
                }
                "lb_add_del_vip_v2" => {
                    let m = LbAddDelVipV2::decode(body).unwrap();
                    let k = key(m.pfx, m.protocol, m.port);
                    if m.is_del {
                        Op::DelVip(k)
                    } else {
                        Op::AddVip(VipSpec {
                            key: k,
                            encap: m.encap,
                            src_ip_sticky: m.src_ip_sticky,
                            new_flows_table_length: m.new_flows_table_length,
                        })
                    }
                }
                "lb_conf" => {
                    let m = LbConf::decode(body).unwrap();
                    Op::Conf(vpp_maglev::vpp::client::LbConfig {
                        ip4_src: m.ip4_src_address,
                        ip6_src: m.ip6_src_address,
                        sticky_buckets_per_core: m.sticky_buckets_per_core,
                        flow_timeout: m.flow_timeout,
                    })
                }
                other => panic!("unexpected {other}"),
            };
            op.to_string()
        })
        .collect()
}

fn key(pfx: Prefix, protocol: u8, port: u16) -> LbVip {
    LbVip {
        pfx,
        protocol,
        port,
    }
}

fn config(sock: &Path, port: u16, table: u32, weight_b: u8) -> String {
    format!(
        "maglev:
  vpp:
    api-socket: {}
    lb:
      ipv4-src-address: 192.0.2.254
      sync-interval: 1h
      startup-min-delay: 0s
      startup-max-delay: 0s
  healthchecks:
    web: {{ type: http, port: {port}, interval: 100ms, fast-interval: 100ms, timeout: 80ms, rise: 1, fall: 1 }}
    # e's server never answers and its probe waits an hour: it stays
    # unknown, so what its actions do is theirs alone.
    never: {{ type: http, port: {port}, interval: 1h, timeout: 1h }}
  backends:
    a: {{ address: 127.79.0.1, healthcheck: web }}
    b: {{ address: 127.79.0.2, healthcheck: web }}
    c: {{ address: 127.79.0.3, healthcheck: web }}
    d: {{ address: 127.79.0.4, healthcheck: web }}
    e: {{ address: 127.79.0.5, healthcheck: never }}
  frontends:
    web:
      address: 192.0.2.1
      protocol: tcp
      port: 80
      new-flows-table-length: {table}
      pools:
        - name: primary
          backends: {{ a: {{}}, b: {{ weight: {weight_b} }}, c: {{}}, d: {{ weight: 20 }}, e: {{}} }}
    api:
      address: 192.0.2.2
      protocol: tcp
      port: 443
      min-healthy: 50%
      pools:
        - name: main
          backends: {{ b: {{}}, c: {{}} }}
        - name: spare
          backends: {{ d: {{}} }}
",
        sock.display()
    )
}

/// Runs `maglevc --json preview ...` and returns the answer.
fn preview(ctl: &Path, args: &[&str]) -> Value {
    let mut a = vec!["--json", "preview"];
    a.extend_from_slice(args);
    let o = maglevc(ctl, &a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Every operation of a preview, in order.
fn planned(p: &Value) -> Vec<String> {
    let mut out: Vec<String> = p["conf"].as_str().map(str::to_string).into_iter().collect();
    for v in p["vips"].as_array().unwrap() {
        for o in v["ops"].as_array().unwrap() {
            out.push(o.as_str().unwrap().to_string());
        }
    }
    out
}

/// Per VIP: (prefix, table fingerprint, buckets per in-use AS address).
type Tables = Vec<(String, String, Vec<(String, u64)>)>;

/// The tables a preview predicts.
fn predicted(p: &Value) -> Tables {
    p["vips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let ases = v["ases"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| !a["weight_after"].is_null())
                .map(|a| {
                    (
                        a["address"].as_str().unwrap().to_string(),
                        a["buckets_after"].as_u64().unwrap(),
                    )
                })
                .collect();
            (
                v["prefix"].as_str().unwrap().to_string(),
                v["fingerprint_after"].as_str().unwrap().to_string(),
                ases,
            )
        })
        .collect()
}

/// The same facts from `show vpp lb state`, for the given VIP prefixes.
fn in_vpp(ctl: &Path, prefixes: &[String]) -> Tables {
    let o = maglevc(ctl, &["--json", "show", "vpp", "lb", "state"]);
    let st: Value = serde_json::from_slice(&o.stdout).unwrap();
    prefixes
        .iter()
        .map(|p| {
            let v = st["vips"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["prefix"] == p.as_str())
                .unwrap();
            let ases = v["ases"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["in_use"] == true)
                .map(|a| {
                    (
                        a["address"].as_str().unwrap().to_string(),
                        a["buckets"].as_u64().unwrap(),
                    )
                })
                .collect();
            (
                p.clone(),
                v["fingerprint"].as_str().unwrap().to_string(),
                ases,
            )
        })
        .collect()
}

/// A command that changes nothing VPP holds: the preview says so, and
/// nothing is sent when it is applied.
fn check_quiet(sim: &Sim, ctl: &Path, what: &[&str]) {
    let p = preview(ctl, what);
    assert!(planned(&p).is_empty(), "{what:?} changes nothing: {p}");
    sim.reset_received();
    assert!(maglevc(ctl, what).status.success(), "{what:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(journal_ops(sim), Vec::<String>::new(), "{what:?}");
}

/// Applies `what` with maglevc.
fn apply(ctl: &Path, what: &[&str]) {
    let o = maglevc(ctl, what);
    assert!(
        o.status.success(),
        "{what:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Previews, applies, and compares with what VPP received and built.
fn check(sim: &Sim, ctl: &Path, what: &[&str], apply: impl FnOnce()) -> Value {
    let p = preview(ctl, what);
    let ops = planned(&p);
    assert!(!ops.is_empty(), "{what:?} changes something: {p}");
    assert_eq!(p["basis"], "vpp", "{p}");
    sim.reset_received();
    apply();
    wait_until(
        &format!("{} operations of {what:?}", ops.len()),
        Duration::from_secs(5),
        || journal_ops(sim).len() >= ops.len(),
    );
    // Nothing more follows.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        journal_ops(sim),
        ops,
        "{what:?}: the preview is what was sent"
    );
    let want = predicted(&p);
    let prefixes: Vec<String> = want.iter().map(|w| w.0.clone()).collect();
    assert_eq!(
        in_vpp(ctl, &prefixes),
        want,
        "{what:?}: the table VPP built"
    );
    p
}

#[test]
fn the_preview_is_what_the_reconciler_then_sends() {
    let dir = TempDir::new("preview");
    let sock = dir.path("api.sock");
    let sim = Sim::start(SimOptions::new(&sock)).unwrap();
    let port = common::free_port("127.79.0.1");
    let mut _servers: Vec<Server> = (1..=4)
        .map(|i| {
            Server::start(
                &format!("127.79.0.{i}:{port}"),
                Behaviour::Respond(http("200 OK", "ok")),
            )
        })
        .collect();
    _servers.push(Server::start(
        &format!("127.79.0.5:{port}"),
        Behaviour::Silent,
    ));
    let cfg = dir.write("m.yaml", &config(&sock, port, 1024, 50));
    let ctl = dir.path("ctl.sock");
    let mut d = Daemon::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--control-socket",
        ctl.to_str().unwrap(),
    ]);
    d.wait_for(&["ready"], Duration::from_secs(5));
    let all_up = || {
        let o = maglevc(&ctl, &["--json", "show", "backends"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        v["backends"].as_array().is_some_and(|b| {
            b.len() == 5
                && b.iter()
                    .all(|b| b["state"] == "up" || (b["name"] == "e" && b["state"] == "unknown"))
        })
    };
    wait_until("all backends up", Duration::from_secs(5), all_up);
    wait_until("VPP programmed", Duration::from_secs(5), || {
        preview(&ctl, &["sync", "vpp", "lb", "state"])["vips"]
            .as_array()
            .is_some_and(|v| v.is_empty())
    });

    // A disable touches both frontends: weight 0 with flush in each.
    let p = check(&sim, &ctl, &["set", "backend", "b", "disable"], || {
        assert!(
            maglevc(&ctl, &["set", "backend", "b", "disable"])
                .status
                .success()
        );
    });
    assert_eq!(p["vips"].as_array().unwrap().len(), 2, "{p}");
    let web = &p["vips"][0];
    assert_eq!(web["frontend"], "web");
    let b = web["ases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["address"] == "127.79.0.2")
        .unwrap();
    assert_eq!(
        (b["weight_before"].as_u64(), b["weight_after"].as_u64()),
        (Some(50), Some(0))
    );
    assert_eq!(b["backends"], serde_json::json!(["b"]));
    // Necessary = b's buckets; some collateral between a, c and d.
    let share = b["buckets_before"].as_f64().unwrap() * 100.0 / 1024.0;
    assert!(
        (web["necessary"].as_f64().unwrap() - share).abs() < 0.05,
        "{web}"
    );
    assert!(web["collateral"].as_f64().unwrap() > 0.0, "{web}");
    let sum = web["necessary"].as_f64().unwrap() + web["collateral"].as_f64().unwrap();
    assert!((web["moved"].as_f64().unwrap() - sum).abs() < 0.05);

    // A pool weight, one frontend.
    check(
        &sim,
        &ctl,
        &[
            "set", "frontend", "web", "pool", "primary", "backend", "a", "weight", "30",
        ],
        || {
            let o = maglevc(
                &ctl,
                &[
                    "set", "frontend", "web", "pool", "primary", "backend", "a", "weight", "30",
                ],
            );
            assert!(o.status.success());
        },
    );

    // Pause an up backend: weight 0, flows kept.
    check(&sim, &ctl, &["set", "backend", "a", "pause"], || {
        apply(&ctl, &["set", "backend", "a", "pause"])
    });
    // e is unknown (weight 0): pausing, resuming and enabling it change
    // nothing VPP holds; disabling it flushes its flows.
    check_quiet(&sim, &ctl, &["set", "backend", "e", "pause"]);
    check_quiet(&sim, &ctl, &["set", "backend", "e", "resume"]);
    check(&sim, &ctl, &["set", "backend", "e", "disable"], || {
        apply(&ctl, &["set", "backend", "e", "disable"])
    });
    check_quiet(&sim, &ctl, &["set", "backend", "e", "enable"]);
    // A weight crossing min-healthy: api's main pool (b disabled, c up)
    // is at 50 %; c's weight 0 leaves it at 0 % of its weighted backends,
    // and the spare pool (d) serves.
    let c0 = [
        "set", "frontend", "api", "pool", "main", "backend", "c", "weight", "0",
    ];
    let p = check(&sim, &ctl, &c0, || apply(&ctl, &c0));
    let api = p["vips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["frontend"] == "api")
        .unwrap();
    let spare = api["ases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["address"] == "127.79.0.4")
        .unwrap();
    assert_eq!(
        (
            spare["weight_before"].as_u64(),
            spare["weight_after"].as_u64()
        ),
        (Some(0), Some(100)),
        "{api}"
    );
    // A sync of a VPP in line changes nothing.
    check_quiet(&sim, &ctl, &["sync", "vpp", "lb", "state"]);

    // A reload: a bigger table recreates the VIP and the runtime weight
    // of a is forgotten (b stays disabled: its check did not change);
    // config check shows the same plan.
    dir.write("m.yaml", &config(&sock, port, 2048, 70));
    let o = maglevc(&ctl, &["config", "check"]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        text.contains("configuration OK") && text.contains("preview config reload"),
        "{text}"
    );
    assert!(text.contains("deleted and added again"), "{text}");
    let p = check(&sim, &ctl, &["config", "reload"], || {
        assert!(maglevc(&ctl, &["config", "reload"]).status.success());
    });
    assert_eq!(p["vips"][0]["recreated"], true, "{p}");
    assert_eq!(p["vips"][0]["buckets_after"], 2048, "{p}");

    // Refusals are errors naming the problem.
    let o = maglevc(&ctl, &["preview", "set", "backend", "b", "pause"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("disabled"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = maglevc(&ctl, &["preview", "set", "backend", "zz", "pause"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no backend named `zz`"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let _ = d.stop_within(Duration::from_secs(2));
}
