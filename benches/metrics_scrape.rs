//! Stats-segment scrape time for 1,000 VIPs and `/metrics` render time for
//! 1,000 backends. Run by hand: `cargo bench --bench metrics_scrape`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vpp_maglev::checker::Checker;
use vpp_maglev::config;
use vpp_maglev::metrics::{Sources, render};
use vpp_maglev::snapshot::Published;
use vpp_maglev::vpp::client::ApiCounters;
use vpp_maglev::vpp::reconciler::{SyncStats, VppStatus};
use vpp_maglev::vpp::sim::stats::SegmentWriter;
use vpp_maglev::vpp::stats::{LB_COUNTERS, Segment, kind};

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        ms(v[v.len() / 2]),
        ms(v[v.len() * 99 / 100]),
        ms(v[v.len() - 1])
    )
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark: run it with `cargo bench --bench metrics_scrape`");
        return;
    }
    // 1,000 VIPs on 3 counter rows, each with a route counter.
    let mut w = SegmentWriter::new(64 << 20, 3, 1).unwrap();
    for name in LB_COUNTERS {
        w.ensure(name, kind::COUNTER_VECTOR_SIMPLE, 1001);
        for i in 1..=1000 {
            w.set_simple(name, i, &[i as u64, 1, 2]);
        }
    }
    w.ensure("/net/route/to", kind::COUNTER_VECTOR_COMBINED, 1041);
    let seg = Segment::from_file(w.file().try_clone().unwrap()).unwrap();
    let vips: Vec<u32> = (1..=1000).collect();
    let routes: Vec<u32> = (40..1040).collect();
    let mut times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let r = seg.read(&vips, &routes).unwrap();
        times.push(t.elapsed());
        assert_eq!(r.vips.len(), 1000);
    }
    println!(
        "stats scrape, 1,000 VIPs + 1,000 routes: {}",
        summary(times)
    );

    // 1,000 backends in 100 frontends, probed (TCP to a closed port).
    let mut yaml = String::from(
        "maglev:\n  vpp: { api-socket: \"\", lb: { ipv4-src-address: 192.0.2.254 } }\n  healthchecks:\n    t: { type: tcp, port: 1, interval: 200ms, timeout: 100ms }\n  backends:\n",
    );
    for i in 0..1000 {
        yaml.push_str(&format!(
            "    b{i}: {{ address: 127.82.{}.{}, healthcheck: t }}\n",
            i / 250,
            i % 250 + 1
        ));
    }
    yaml.push_str("  frontends:\n");
    for f in 0..100 {
        yaml.push_str(&format!(
            "    f{f}:\n      address: 198.18.0.{}\n      protocol: tcp\n      port: 80\n      pools:\n        - name: p\n          backends: {{ ",
            f + 1
        ));
        for b in 0..10 {
            yaml.push_str(&format!("b{}: {{}}, ", f * 10 + b));
        }
        yaml.push_str("}\n");
    }
    let cfg = config::parse(&yaml, Path::new("bench.yaml")).unwrap();
    let checker = Checker::start(Arc::new(cfg), Vec::new()).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let src = Sources {
        checker: checker.published(),
        api: ApiCounters::new(),
        sync: Arc::new(SyncStats::default()),
        status: Published::new(VppStatus::default()),
        counters: None,
        engine: Some(checker.engine_stats()),
        announce: None,
    };
    let mut out = String::new();
    let mut times = Vec::new();
    for _ in 0..100 {
        out.clear();
        let t = Instant::now();
        render(&src, &mut out);
        times.push(t.elapsed());
    }
    println!(
        "/metrics render, 1,000 backends / 100 frontends ({} lines, {} KiB): {}",
        out.lines().count(),
        out.len() / 1024,
        summary(times)
    );
    checker.shutdown();
}
