//! Hostile peers and exhausted resources against a running maglevd: the
//! daemon keeps running, keeps probing, answers maglevc and stops in 2 s.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, TempDir, maglevd_bin, repo_path, wait_until};

const STOP_LIMIT: Duration = Duration::from_secs(2);

fn start(cmd: &mut Command, dir: &TempDir, port: u16) -> Daemon {
    let ctl = dir.path("ctl.sock");
    let cfg = repo_path("examples/maglev.yaml");
    let mut d = Daemon::start_with(cmd.args([
        "--vpp-sim",
        "--config",
        cfg.to_str().unwrap(),
        "--control-socket",
        ctl.to_str().unwrap(),
        "--metrics-addr",
        &format!("127.0.0.1:{port}"),
    ]));
    d.wait_for(&["ready"], Duration::from_secs(10));
    d
}

/// One honest scrape; the body on success.
fn scrape(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.starts_with("HTTP/1.1 200").then_some(out)
}

/// `show version` over the control socket answers.
fn answers(ctl: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(ctl) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    if s.write_all(b"show version\n").is_err() {
        return false;
    }
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).is_ok() && line.contains("\"ok\":true")
}

/// The total of `maglev_probe_total` in a scrape.
fn probe_sum(body: &str) -> u64 {
    body.lines()
        .filter(|l| l.starts_with("maglev_probe_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn proc_field(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

#[test]
fn metrics_endpoint_survives_a_thousand_hostile_connections() {
    raise_nofile();
    let dir = TempDir::new("hostile-metrics");
    let port = common::free_port("127.0.0.1");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut d = start(&mut Command::new(maglevd_bin()), &dir, port);
    let pid = d.child.id();
    assert!(scrape(addr).is_some());
    let rss0 = proc_field(pid, "VmRSS:");
    let probes0 = scrape(addr).unwrap().matches("maglev_probe_total").count();
    assert!(probes0 > 0);

    let t0 = Instant::now();
    let mut hostile = Vec::new();
    // 600 that connect and say nothing (slow loris).
    for _ in 0..600 {
        if let Ok(s) = TcpStream::connect(addr) {
            hostile.push(s);
        }
    }
    // 200 that send a header that never ends (1 MB each, as fast as the
    // daemon takes it).
    let endless: Vec<_> = (0..200)
        .map(|_| {
            std::thread::spawn(move || {
                if let Ok(mut s) = TcpStream::connect(addr) {
                    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
                    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nX-Long: ");
                    let chunk = [b'a'; 4096];
                    for _ in 0..256 {
                        if s.write_all(&chunk).is_err() {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    // 200 that pipeline GETs and never read the answers.
    for _ in 0..200 {
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.set_nonblocking(true);
            let _ = s.write(&b"GET /metrics HTTP/1.1\r\n\r\n".repeat(50));
            hostile.push(s);
        }
    }
    // Honest scrapers during the attack: served.
    let mut served = 0;
    let mut tried = 0;
    while t0.elapsed() < Duration::from_secs(6) {
        tried += 1;
        if scrape(addr).is_some() {
            served += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for t in endless {
        let _ = t.join();
    }
    let rss = proc_field(pid, "VmRSS:");
    let threads = proc_field(pid, "Threads:");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    eprintln!(
        "under 1,000 hostile connections: honest scrapes {served}/{tried}, RSS {rss0} -> {rss} kB, \
         {threads} threads, {fds} fds"
    );
    assert!(
        served * 10 >= tried * 9,
        "honest scrapes served {served}/{tried}"
    );
    assert!(rss < rss0 + 20_000, "RSS grew from {rss0} to {rss} kB");
    assert!(threads < 40, "{threads} threads");
    assert!(answers(&dir.path("ctl.sock")), "maglevc not answered");
    // Probing went on.
    let after = scrape(addr).expect("scrape after the attack");
    assert!(after.contains("maglev_probe_total"));
    drop(hostile);
    let (code, _) = d.stop_within(STOP_LIMIT);
    assert_eq!(code, Some(0));
}

#[test]
fn metrics_endpoint_recovers_at_the_fd_limit() {
    let dir = TempDir::new("hostile-fd");
    let port = common::free_port("127.0.0.1");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // A daemon with 64 descriptors in all.
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=64:64", "--", maglevd_bin()]);
    let mut d = start(&mut cmd, &dir, port);
    std::thread::sleep(Duration::from_millis(500));
    let before = probe_sum(&scrape(addr).expect("scrape"));
    // Bursts on both sockets, far more than 64 descriptors' worth.
    let burst: Vec<_> = (0..80)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    let ctl: Vec<_> = (0..80)
        .filter_map(|_| UnixStream::connect(dir.path("ctl.sock")).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(d.child.try_wait().unwrap().is_none(), "maglevd died");
    drop(burst);
    drop(ctl);
    // It recovers: honest scrapes and maglevc work again.
    let mut after = 0;
    wait_until("scrape after the burst", Duration::from_secs(10), || {
        scrape(addr).is_some_and(|b| {
            after = probe_sum(&b);
            true
        })
    });
    // The example probes ~8 times a second: probing went on meanwhile.
    assert!(after >= before + 8, "probes {before} -> {after}");
    assert!(answers(&dir.path("ctl.sock")));
    // Running out of descriptors is this host's trouble: no backend was
    // marked down for it.
    let log = d.drain_log();
    for l in log.lines().filter(|l| l.contains("backend-transition")) {
        assert!(!l.contains("too many open files"), "blamed a backend: {l}");
    }
    let (code, _) = d.stop_within(STOP_LIMIT);
    assert_eq!(code, Some(0));
}
