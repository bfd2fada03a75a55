//! maglevd-frontend's cost: watching two release `maglevd --vpp-sim` with
//! 1,000 TCP backends each (1 s interval, every backend up), first with no
//! browser, then with 20 event-stream clients reading everything. CPU and
//! RSS of the dashboard (and of each maglevd) from /proc over the same
//! window.
//!
//! Run by hand: `cargo bench --bench dashboard_footprint [-- --secs 60]`.

mod common;
#[path = "../tests/common/flood.rs"]
mod flood;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn config(first: usize, n: usize, port: u16, net: u8) -> String {
    let mut y = format!(
        "maglev:\n  vpp:\n    lb: {{ ipv4-src-address: 192.0.2.254, startup-min-delay: 0s, startup-max-delay: 0s }}\n  healthchecks:\n    t: {{ type: tcp, port: {port}, interval: 1s, rise: 1 }}\n  backends:\n"
    );
    for i in first..first + n {
        y.push_str(&format!(
            "    b{i}: {{ address: {}, healthcheck: t }}\n",
            common::backend_addr(i)
        ));
    }
    y.push_str("  frontends:\n");
    for f in 0..n / 10 {
        y.push_str(&format!(
            "    fe{f}:\n      address: 198.{net}.{}.{}\n      protocol: tcp\n      port: 80\n      pools:\n        - name: main\n          backends:\n",
            f / 250,
            f % 250 + 1
        ));
        for b in 0..10 {
            y.push_str(&format!("            b{}: {{}}\n", first + f * 10 + b));
        }
    }
    y
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn get(port: u16, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// (CPU % of a core, RSS MB) of `pids` over `secs`.
fn measure(pids: &[u32], secs: u64) -> Vec<(f64, f64)> {
    let before: Vec<(f64, u64, u64)> = pids.iter().map(|p| common::proc_usage(*p)).collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let wall = t0.elapsed().as_secs_f64();
    pids.iter()
        .zip(before)
        .map(|(p, b)| {
            let a = common::proc_usage(*p);
            ((a.0 - b.0) / wall * 100.0, a.1 as f64 / 1024.0)
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("benchmark: run it with `cargo bench --bench <name>`");
        return;
    }
    let secs: u64 = common::arg(&args, "--secs")
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = std::env::temp_dir().join(format!("maglev-dash-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let listener = common::listen_any(0);
    let port = listener.local_addr().unwrap().port();
    // Accept and drop, so the backlog never fills.
    std::thread::spawn(move || {
        for c in listener.incoming() {
            drop(c);
        }
    });
    let mut daemons = Vec::new();
    let mut socks = Vec::new();
    for (i, first) in [0usize, 1000].iter().enumerate() {
        let cfg = dir.join(format!("r{i}.yaml"));
        std::fs::write(&cfg, config(*first, 1000, port, 18 + i as u8)).unwrap();
        let sock = dir.join(format!("r{i}.sock"));
        daemons.push(spawn(
            Command::new(env!("CARGO_BIN_EXE_maglevd"))
                .args(["--vpp-sim", "--log-level", "warn", "--config"])
                .arg(&cfg)
                .arg("--control-socket")
                .arg(&sock)
                .env("MAGLEV_METRICS_ADDR", ""),
        ));
        socks.push(sock);
    }
    std::thread::sleep(Duration::from_secs(2));
    let http = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut fe = spawn(
        Command::new(env!("CARGO_BIN_EXE_maglevd-frontend"))
            .arg("--server")
            .arg(format!("{},{}", socks[0].display(), socks[1].display()))
            .arg("--listen")
            .arg(format!("127.0.0.1:{http}")),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = get(http, "/view/api/state");
        let up = s.matches("\"state\":\"up\"").count();
        // Each backend appears twice as up: in its pool and in `backends`.
        if up >= 4000 {
            break;
        }
        assert!(Instant::now() < deadline, "not every backend up ({up})");
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(5));
    let pids = [fe.id(), daemons[0].id(), daemons[1].id()];
    let quiet = measure(&pids, secs);
    println!(
        "no browser:   maglevd-frontend {:.2} % CPU, RSS {:.1} MB; maglevds {:.2} % / {:.2} %",
        quiet[0].0, quiet[0].1, quiet[1].0, quiet[2].0
    );
    // 20 browsers reading the stream as fast as it comes.
    let mut readers = Vec::new();
    let bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let probes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    for _ in 0..20 {
        let mut s = TcpStream::connect(("127.0.0.1", http)).unwrap();
        write!(
            s,
            "GET /view/api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let b = std::sync::Arc::clone(&bytes);
        let p = std::sync::Arc::clone(&probes);
        readers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                b.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                // Probe results delivered (a code in a probes batch).
                let text = String::from_utf8_lossy(&buf[..n]);
                p.fetch_add(
                    text.matches(",\"L4OK\",").count() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(3));
    let b0 = bytes.load(std::sync::atomic::Ordering::Relaxed);
    let p0 = probes.load(std::sync::atomic::Ordering::Relaxed);
    let loaded = measure(&pids, secs);
    let rate = (bytes.load(std::sync::atomic::Ordering::Relaxed) - b0) as f64 / secs as f64 / 20.0;
    let delivered =
        (probes.load(std::sync::atomic::Ordering::Relaxed) - p0) as f64 / secs as f64 / 20.0;
    println!(
        "20 browsers:  maglevd-frontend {:.2} % CPU, RSS {:.1} MB; {:.1} KB/s and {delivered:.0} probe results/s per browser; maglevds {:.2} % / {:.2} %",
        loaded[0].0,
        loaded[0].1,
        rate / 1024.0,
        loaded[1].0,
        loaded[2].0
    );
    // Hostile: 3,000 silent connections and a 200 MB request head while
    // new clients ask for the page and the state (the 20 browsers stay).
    flood::raise_nofile();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    let threads0 = flood::proc_status(fe.id(), "Threads:");
    let peak0 = flood::proc_status(fe.id(), "VmHWM:");
    let crowd = flood::Flood::start(addr, 3000, 200 << 20);
    let (mut served, mut tries, mut slowest) = (0, 0, Duration::ZERO);
    let t0 = Instant::now();
    while (crowd.header_sent() < 200 << 20 || crowd.idle_opened() < 3000)
        && t0.elapsed() < Duration::from_secs(120)
    {
        for path in ["/view/", "/view/api/state"] {
            tries += 1;
            let (status, took) = flood::timed_get(addr, path, Duration::from_secs(2));
            if status == 200 {
                served += 1;
            }
            slowest = slowest.max(took);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let threads = flood::proc_status(fe.id(), "Threads:");
    let peak = flood::proc_status(fe.id(), "VmHWM:");
    let sent = crowd.stop();
    println!(
        "hostile:      {} silent connections + {} MB request head: maglevd-frontend peak RSS {:.1} MB ({:.1} MB before it), \
         threads {threads0} -> {threads}, new clients served {served}/{tries} (slowest {:.0} ms)",
        sent.idle_opened,
        sent.header_bytes >> 20,
        peak as f64 / 1024.0,
        peak0 as f64 / 1024.0,
        slowest.as_secs_f64() * 1000.0
    );
    let _ = fe.kill();
    for d in &mut daemons {
        let _ = d.kill();
        let _ = d.wait();
    }
    let _ = fe.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
