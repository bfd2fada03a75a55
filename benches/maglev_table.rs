//! The Maglev replica's cost, and a preview's:
//!
//! 1. 1,000 VIPs × 32 ASes (weight 100), one 1,024-bucket table each: the
//!    full rebuild a reload or a restarted VPP asks for;
//! 2. one 65,536-bucket table for 1,000 ASes (VPP wants a power of two;
//!    the Maglev paper's 1.8 ms is for 65,537), at weight 1 (the paper's
//!    one entry per backend) and at weight 100;
//! 3. `preview::plan` of one AS disabled in a 100-AS VIP (pure: diff,
//!    two tables, the moved-bucket count);
//! 4. `maglevc preview set backend B disable` against a running
//!    `maglevd --vpp-sim` whose frontend has 100 backends, all up: the
//!    daemon's own `took_ms` (snapshot, VPP read over the API socket,
//!    plan) and maglevc's wall time.
//!
//! Run by hand: `cargo bench --bench maglev_table`.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use vpp_maglev::vpp::client::VipSpec;
use vpp_maglev::vpp::lb::{Actual, Desired, DesiredAs, DesiredVip, FlushRequests, Scope};
use vpp_maglev::vpp::maglev::{Member, build_table};
use vpp_maglev::vpp::preview;
use vpp_maglev::vpp::wire::{Encap, LbVip, Prefix};

fn members(n: usize, weight: u8) -> Vec<Member> {
    (0..n)
        .map(|i| Member {
            addr: IpAddr::V4(common::backend_addr(i)),
            weight,
        })
        .collect()
}

/// Median and max of `runs` timings of `f`, in milliseconds.
fn time(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], t[t.len() - 1])
}

fn vip(n: usize) -> (LbVip, DesiredVip) {
    let key = LbVip {
        pfx: Prefix::host("192.0.2.1".parse().unwrap()),
        protocol: 6,
        port: 80,
    };
    let ases = members(n, 100)
        .into_iter()
        .map(|m| {
            (
                m.addr,
                DesiredAs {
                    weight: 100,
                    flush: false,
                },
            )
        })
        .collect();
    let d = DesiredVip {
        frontend: "web".into(),
        spec: VipSpec {
            key,
            encap: Encap::Gre4,
            src_ip_sticky: false,
            new_flows_table_length: 1024,
        },
        ases,
    };
    (key, d)
}

fn pure() {
    let m32 = members(32, 100);
    let t0 = Instant::now();
    let mut filled = 0;
    for _ in 0..1000 {
        filled += build_table(&m32, 1024).iter().flatten().count();
    }
    let all = t0.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(filled, 1000 * 1024);
    println!(
        "1,000 VIPs x 32 ASes, 1,024 buckets: {all:.1} ms in all, {:.1} us per table",
        all
    );
    for w in [1u8, 100] {
        let m = members(1000, w);
        let (med, max) = time(21, || {
            std::hint::black_box(build_table(&m, 65536));
        });
        println!("1,000 ASes at weight {w}, 65,536 buckets: median {med:.2} ms, max {max:.2} ms");
    }
    let (key, d) = vip(100);
    let now = Actual::predicted(&Desired {
        conf: None,
        vips: BTreeMap::from([(key, d.clone())]),
    });
    let mut after = d;
    let gone = *after.ases.keys().nth(50).unwrap();
    after.ases.insert(
        gone,
        DesiredAs {
            weight: 0,
            flush: true,
        },
    );
    let want = Desired {
        conf: None,
        vips: BTreeMap::from([(key, after)]),
    };
    let (med, max) = time(101, || {
        let p = preview::plan(&want, &now, &Scope::All, &FlushRequests::default());
        assert_eq!(p.vips[0].ops.len(), 1);
    });
    println!("preview::plan, 1 of 100 ASes disabled: median {med:.3} ms, max {max:.3} ms");
}

fn daemon() {
    let dir = std::env::temp_dir().join(format!("maglev-table-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let listener = common::listen_any(0);
    let port = listener.local_addr().unwrap().port();
    let mut yaml = format!(
        "maglev:\n  vpp:\n    lb: {{ ipv4-src-address: 192.0.2.254, startup-min-delay: 0s, startup-max-delay: 0s }}\n  healthchecks:\n    t: {{ type: tcp, port: {port}, interval: 1s, rise: 1 }}\n  backends:\n"
    );
    for i in 0..100 {
        yaml.push_str(&format!(
            "    b{i}: {{ address: {}, healthcheck: t }}\n",
            common::backend_addr(i)
        ));
    }
    yaml.push_str("  frontends:\n    web:\n      address: 192.0.2.1\n      protocol: tcp\n      port: 80\n      pools:\n        - name: main\n          backends:\n");
    for i in 0..100 {
        yaml.push_str(&format!("            b{i}: {{}}\n"));
    }
    let cfg = dir.join("m.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let ctl = dir.join("ctl.sock");
    let mut d = Command::new(env!("CARGO_BIN_EXE_maglevd"))
        .args(["--vpp-sim", "--log-level", "warn", "--config"])
        .arg(&cfg)
        .arg("--control-socket")
        .arg(&ctl)
        .spawn()
        .unwrap();
    let maglevc = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_maglevc"))
            .arg("--socket")
            .arg(&ctl)
            .args(args)
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = maglevc(&["--json", "show", "vpp", "lb", "state"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        let live = v["vips"][0]["ases"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|a| a["weight"] == 100).count());
        if live == 100 {
            break;
        }
        assert!(Instant::now() < deadline, "100 backends never all up");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut took = Vec::new();
    let (med, max) = time(51, || {
        let o = maglevc(&["--json", "preview", "set", "backend", "b50", "disable"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["vips"][0]["ops"].as_array().unwrap().len(), 1, "{v}");
        took.push(v["took_ms"].as_f64().unwrap());
    });
    took.sort_by(f64::total_cmp);
    println!(
        "maglevc preview, 100 backends, VPP read each time: daemon took_ms median {:.2} max {:.2}; maglevc wall median {med:.1} ms max {max:.1} ms",
        took[took.len() / 2],
        took[took.len() - 1]
    );
    let _ = d.kill();
    let _ = d.wait();
    drop(listener);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("benchmark: run it with `cargo bench --bench <name>`");
        return;
    }
    pure();
    daemon();
}
