//! Probe-engine scale benchmark: maglevd's checker versus HAProxy.
//!
//! N TCP backends on distinct loopback addresses (one wildcard listener in a
//! separate process accepts them all), interval 1 s, one prober thread. For
//! each N it runs maglevd's checker and engine in a child process, then
//! HAProxy 2.x (`listen` with N `server ... check inter 1000`) against the
//! same listener, and prints probes/s, CPU % of one core, peak RSS and (for
//! maglevd) p99 scheduling lateness, plus the CPU and RSS ratios.
//!
//! Run by hand (needs Debian's `haproxy`; root lifts the fd limit):
//!   cargo bench --bench probe_scale                 # N = 100, 1000, 10000; 60 s each
//!   cargo bench --bench probe_scale -- --secs 20 --n 1000

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;
use common::{active_opens, backend_addr, listen_any, proc_usage};

use vpp_maglev::checker::Checker;
use vpp_maglev::config;
use vpp_maglev::health::state::State;

const WARMUP: Duration = Duration::from_secs(5);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --all-targets` runs bench binaries without `--bench`:
    // measuring belongs to `cargo bench` only.
    if !args
        .iter()
        .any(|a| a == "--bench" || a == "--listener" || a == "--maglev")
    {
        println!("benchmark: run it with `cargo bench --bench <name>`");
        return;
    }
    let arg = |name: &str| common::arg(&args, name);
    if let Some(port) = arg("--listener") {
        return listener(port.parse().expect("port"));
    }
    if let Some(n) = arg("--maglev") {
        let port = arg("--port").expect("--port").parse().expect("port");
        let secs = arg("--secs").expect("--secs").parse().expect("secs");
        return maglev_child(n.parse().expect("n"), port, secs);
    }
    let secs: u64 = arg("--secs").map_or(60, |s| s.parse().expect("secs"));
    let ns: Vec<usize> = match arg("--n") {
        Some(n) => vec![n.parse().expect("n")],
        None => vec![100, 1_000, 10_000],
    };
    orchestrate(&ns, secs);
}

/// Accepts and closes everything on 0.0.0.0:port, so every 127.81.x.y
/// backend address answers.
fn listener(port: u16) {
    let l = listen_any(port);
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let l = l.try_clone().unwrap();
            std::thread::spawn(move || {
                for s in l.incoming() {
                    drop(s);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}

struct Listener {
    child: Child,
}

impl Listener {
    fn start(port: u16) -> Listener {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--listener", &port.to_string()])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        Listener { child }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The maglevd side, in its own process so its RSS and CPU are its own.
fn maglev_child(n: usize, port: u16, secs: u64) {
    let mut yaml = format!(
        "maglev:\n  vpp: {{ api-socket: \"\" }}\n  healthchecks:\n    tcp:\n      type: tcp\n      port: {port}\n      interval: 1s\n      timeout: 1s\n  backends:\n"
    );
    for i in 0..n {
        yaml.push_str(&format!(
            "    b{i}: {{ address: {}, healthcheck: tcp }}\n",
            backend_addr(i)
        ));
    }
    let cfg = config::parse(&yaml, Path::new("bench.yaml")).expect("bench config");
    drop(yaml);
    let checker = Checker::start(Arc::new(cfg), Vec::new()).expect("checker");
    let stats = checker.engine_stats();
    std::thread::sleep(WARMUP);
    stats.reset_lateness();
    let me = std::process::id();
    let (cpu0, _, _) = proc_usage(me);
    let done0 = stats.finished.load(Ordering::Relaxed);
    let opens0 = active_opens();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let el = t0.elapsed().as_secs_f64();
    let (cpu1, _, hwm) = proc_usage(me);
    let done1 = stats.finished.load(Ordering::Relaxed);
    let opens1 = active_opens();
    let snap = checker.snapshot();
    let up = snap
        .backends
        .values()
        .filter(|b| b.state == State::Up)
        .count();
    println!(
        "RESULT probes_per_s={:.1} connects_per_s={:.1} cpu_pct={:.2} rss_kb={hwm} p99_ms={:.2} p50_ms={:.2} max_ms={:.2} up={up}",
        (done1 - done0) as f64 / el,
        (opens1 - opens0) as f64 / el,
        (cpu1 - cpu0) / el * 100.0,
        stats.lateness_quantile(0.99).as_secs_f64() * 1000.0,
        stats.lateness_quantile(0.50).as_secs_f64() * 1000.0,
        stats.max_late_us.load(Ordering::Relaxed) as f64 / 1000.0,
    );
}

struct Row {
    probes_per_s: f64,
    cpu_pct: f64,
    rss_kb: u64,
    p99_ms: Option<f64>,
    extra: String,
}

fn run_maglev(n: usize, port: u16, secs: u64) -> Row {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--maglev",
            &n.to_string(),
            "--port",
            &port.to_string(),
            "--secs",
            &secs.to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("maglev child");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("RESULT"))
        .unwrap_or_else(|| panic!("maglev child printed no RESULT: {text}"));
    let get = |k: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    Row {
        probes_per_s: get("probes_per_s"),
        cpu_pct: get("cpu_pct"),
        rss_kb: get("rss_kb") as u64,
        p99_ms: Some(get("p99_ms")),
        extra: format!(
            "{:.0} connects/s, p50 {:.2} ms, max {:.1} ms, {} of {n} up",
            get("connects_per_s"),
            get("p50_ms"),
            get("max_ms"),
            get("up")
        ),
    }
}

fn run_haproxy(n: usize, port: u16, secs: u64) -> Option<Row> {
    let dir = std::env::temp_dir().join(format!("maglev-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let cfg = dir.join("haproxy.cfg");
    let mut text = format!(
        "global\n  maxconn 4000\n\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n\nlisten bench\n  bind 127.0.0.1:{}\n  balance roundrobin\n",
        port + 1
    );
    for i in 0..n {
        text.push_str(&format!(
            "  server b{i} {}:{port} check inter 1000 rise 2 fall 3\n",
            backend_addr(i)
        ));
    }
    std::fs::write(&cfg, text).ok()?;
    let mut child = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| eprintln!("haproxy not runnable ({e}); apt-get install haproxy"))
        .ok()?;
    std::thread::sleep(WARMUP);
    let pid = child.id();
    let (cpu0, _, _) = proc_usage(pid);
    let a0 = active_opens();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let el = t0.elapsed().as_secs_f64();
    let (cpu1, _, hwm) = proc_usage(pid);
    let a1 = active_opens();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Some(Row {
        probes_per_s: (a1 - a0) as f64 / el,
        cpu_pct: (cpu1 - cpu0) / el * 100.0,
        rss_kb: hwm,
        p99_ms: None,
        extra: String::new(),
    })
}

fn orchestrate(ns: &[usize], secs: u64) {
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let _listener = Listener::start(port);
    println!(
        "probe scale: TCP backends on loopback, interval 1 s, 1 prober thread, {secs} s per run after {} s warm-up",
        WARMUP.as_secs()
    );
    println!(
        "{:>6} | {:>8} | {:>10} {:>7} {:>9} {:>9} | {:>10} {:>7} {:>9} | {:>9} {:>9}",
        "N",
        "",
        "probes/s",
        "CPU %",
        "RSS MB",
        "p99 late",
        "probes/s",
        "CPU %",
        "RSS MB",
        "CPU ratio",
        "RSS ratio"
    );
    for &n in ns {
        let m = run_maglev(n, port, secs);
        let h = run_haproxy(n, port, secs);
        let (hp, hc, hr, cr, rr) = match &h {
            Some(h) => (
                format!("{:.0}", h.probes_per_s),
                format!("{:.2}", h.cpu_pct),
                format!("{:.1}", h.rss_kb as f64 / 1024.0),
                format!("{:.2}", m.cpu_pct / h.cpu_pct),
                format!("{:.2}", m.rss_kb as f64 / h.rss_kb as f64),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:>6} | maglevd  | {:>10.0} {:>7.2} {:>9.1} {:>7.2}ms | haproxy {:>10} {:>7} {:>9} | {:>9} {:>9}   ({})",
            n,
            m.probes_per_s,
            m.cpu_pct,
            m.rss_kb as f64 / 1024.0,
            m.p99_ms.unwrap_or(f64::NAN),
            hp,
            hc,
            hr,
            cr,
            rr,
            m.extra
        );
    }
}
