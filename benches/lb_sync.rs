//! LB sync at scale against the VPP simulator, through the real client
//! and the reconciler's sync core (`Syncer`):
//!
//! 1. full sync of N VIPs × M ASes from empty: messages and wall time;
//! 2. steady-state full sync: mutations (must be 0) and wall time;
//! 3. transition → `lb_as_set_weight` latency, p50/p99 over 1,000 targeted
//!    syncs (desired state of one frontend, diff, one round trip).
//!
//! Run by hand: `cargo bench --bench lb_sync [-- --vips N --ases M]`.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use vpp_maglev::config;
use vpp_maglev::vpp::client::{ApiCounters, Client, ClientConfig};
use vpp_maglev::vpp::lb::{self, Scope};
use vpp_maglev::vpp::reconciler::{SyncStats, Syncer};
use vpp_maglev::vpp::sim::{Sim, SimOptions};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sends(c: &ApiCounters) -> u64 {
    c.snapshot()
        .iter()
        .filter(|((_, d, _), _)| *d == vpp_maglev::vpp::client::Direction::Send)
        .map(|(_, n)| n)
        .sum()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --all-targets` runs bench binaries without `--bench`:
    // measuring belongs to `cargo bench` only.
    if !args.iter().any(|a| a == "--bench") {
        println!("benchmark: run it with `cargo bench --bench <name>`");
        return;
    }
    let nv = arg(&args, "--vips", 1000);
    let na = arg(&args, "--ases", 32);
    let mut yaml = String::from(
        "maglev:\n  vpp:\n    lb: { ipv4-src-address: 192.0.2.254, ipv6-src-address: 2001:db8::fe }\n  healthchecks:\n    t: { type: tcp, port: 80 }\n  backends:\n",
    );
    for v in 0..nv {
        for a in 0..na {
            yaml.push_str(&format!(
                "    b{v}-{a}: {{ address: 10.{}.{}.{}, healthcheck: t }}\n",
                v / 250,
                v % 250,
                a + 1
            ));
        }
    }
    yaml.push_str("  frontends:\n");
    for v in 0..nv {
        yaml.push_str(&format!(
            "    f{v}:\n      address: 198.18.{}.{}\n      protocol: tcp\n      port: 80\n      pools:\n        - name: p\n          backends: {{ ",
            v / 250,
            v % 250 + 1
        ));
        for a in 0..na {
            yaml.push_str(&format!("b{v}-{a}: {{}}, "));
        }
        yaml.push_str("}\n");
    }
    let t = Instant::now();
    let cfg = config::parse(&yaml, Path::new("bench.yaml")).expect("bench config");
    println!(
        "config: {nv} frontends x {na} backends parsed in {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let mut weights: HashMap<String, Vec<(String, u8, bool)>> = (0..nv)
        .map(|v| {
            (
                format!("f{v}"),
                (0..na).map(|a| (format!("b{v}-{a}"), 100, false)).collect(),
            )
        })
        .collect();

    let dir = std::env::temp_dir().join(format!("maglev-lbsync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("api.sock");
    let mut opts = SimOptions::new(&sock);
    opts.gc_delay = Duration::from_secs(3600);
    let _sim = Sim::start(opts).expect("sim");
    let counters = ApiCounters::new();
    let mut cc = ClientConfig::new(&sock);
    cc.timeout = Duration::from_secs(60);
    let mut client = Client::connect(&cc, counters.clone()).expect("connect");
    let stats = SyncStats::default();
    let mut syncer = Syncer::default();
    let none = lb::FlushRequests::default();

    let desired = lb::desired_from(&cfg, &Scope::All, |f| weights.get(f).cloned());
    let m0 = sends(&counters);
    let t = Instant::now();
    let r = syncer
        .sync(&mut client, &desired, &Scope::All, true, &none, &stats)
        .expect("full sync");
    println!(
        "full sync from empty: {} mutations, {} messages sent, {:.0} ms, drift {}",
        r.ops.len(),
        sends(&counters) - m0,
        t.elapsed().as_secs_f64() * 1000.0,
        r.drift
    );

    let mut steady = Vec::new();
    for _ in 0..5 {
        let m0 = sends(&counters);
        let t = Instant::now();
        let r = syncer
            .sync(&mut client, &desired, &Scope::All, true, &none, &stats)
            .expect("steady sync");
        steady.push((t.elapsed(), r.ops.len(), sends(&counters) - m0));
    }
    steady.sort();
    println!(
        "steady full sync (5 runs): {} mutations, {} messages, median {:.1} ms, max {:.1} ms",
        steady[2].1,
        steady[2].2,
        steady[2].0.as_secs_f64() * 1000.0,
        steady[4].0.as_secs_f64() * 1000.0
    );

    let mut lat = Vec::with_capacity(1000);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let m0 = sends(&counters);
    for _ in 0..1000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let v = (rng % nv as u64) as usize;
        let a = ((rng >> 32) % na as u64) as usize;
        let fe = format!("f{v}");
        let m = &mut weights.get_mut(&fe).unwrap()[a];
        let down = m.1 != 0;
        *m = (m.0.clone(), if down { 0 } else { 100 }, down);
        let t = Instant::now();
        let scope = Scope::Frontends([fe.clone()].into());
        let d = lb::desired_from(&cfg, &scope, |f| weights.get(f).cloned());
        let r = syncer
            .sync(&mut client, &d, &scope, false, &none, &stats)
            .expect("targeted sync");
        lat.push(t.elapsed());
        assert_eq!(r.ops.len(), 1, "one transition, one message: {:?}", r.ops);
    }
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "transition -> lb_as_set_weight (1000): {} messages, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        sends(&counters) - m0,
        ms(lat[499]),
        ms(lat[989]),
        ms(lat[999])
    );
    let _ = client.close();
    let _ = std::fs::remove_dir_all(&dir);
}
