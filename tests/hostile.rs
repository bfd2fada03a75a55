//! Hostile peers and exhausted resources against a running maglevd: the
//! daemon keeps running, keeps probing, answers maglevc and stops in 2 s.

// Drives the VPP simulator (the default `vpp-sim` feature).
#![cfg(feature = "vpp-sim")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::flood::{proc_status, raise_nofile};
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

#[test]
fn metrics_endpoint_survives_a_thousand_hostile_connections() {
    raise_nofile();
    let dir = TempDir::new("hostile-metrics");
    let port = common::free_port("127.0.0.1");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut d = start(&mut Command::new(maglevd_bin()), &dir, port);
    let pid = d.child.id();
    assert!(scrape(addr).is_some());
    let rss0 = proc_status(pid, "VmRSS:");
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
    let rss = proc_status(pid, "VmRSS:");
    let threads = proc_status(pid, "Threads:");
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
    // The example probes about 6 times a second and the burst lasted
    // 1.5 s: probing went on meanwhile (generous: CI is loaded).
    assert!(after >= before + 4, "probes {before} -> {after}");
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

#[test]
fn control_socket_path_holding_something_else_is_never_deleted() {
    let dir = TempDir::new("hostile-ctl");
    let cfg = repo_path("examples/maglev.yaml");
    let file = dir.write("file.sock", "precious\n");
    let sub = dir.path("dir.sock");
    std::fs::create_dir(&sub).unwrap();
    for (path, kind) in [(&file, "a regular file"), (&sub, "a directory")] {
        let mut d = Daemon::start_with(Command::new(maglevd_bin()).args([
            "--vpp-sim",
            "--config",
            cfg.to_str().unwrap(),
            "--control-socket",
            path.to_str().unwrap(),
        ]));
        assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(1));
        let line = d.wait_for(
            &["startup-failed", "control-socket"],
            Duration::from_secs(1),
        );
        assert!(
            line.contains(kind) && line.contains("not a socket"),
            "{line}"
        );
        assert!(
            !std::env::temp_dir()
                .join(format!("maglevd-vppsim-{}", d.child.id()))
                .exists(),
            "a failed start leaves its simulator directory"
        );
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious\n");
    assert!(sub.is_dir());
}

#[test]
fn a_killed_vpp_sim_daemon_leaves_nothing_behind_for_long() {
    let dir = TempDir::new("hostile-simdir");
    let port = common::free_port("127.0.0.1");
    let mut d = start(&mut Command::new(maglevd_bin()), &dir, port);
    let simdir = std::env::temp_dir().join(format!("maglevd-vppsim-{}", d.child.id()));
    assert!(simdir.exists());
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait_exit(Duration::from_secs(5));
    assert!(simdir.exists(), "SIGKILL cannot clean up");
    // The next --vpp-sim daemon removes what the dead one left.
    let dir2 = TempDir::new("hostile-simdir2");
    let mut d2 = start(
        &mut Command::new(maglevd_bin()),
        &dir2,
        common::free_port("127.0.0.1"),
    );
    assert!(!simdir.exists(), "stale simulator directory not removed");
    let own = std::env::temp_dir().join(format!("maglevd-vppsim-{}", d2.child.id()));
    let _ = d2.stop_within(STOP_LIMIT);
    assert!(!own.exists(), "a clean stop removes its own directory");
}

/// A stats socket that listens and never accepts (its backlog full).
#[test]
fn a_stats_socket_that_never_accepts_neither_hangs_nor_delays_stop() {
    use vpp_maglev::vpp::sim::{Sim, SimOptions};
    let dir = TempDir::new("hostile-stats");
    let api = dir.path("api.sock");
    let _sim = Sim::start(SimOptions::new(&api)).unwrap();
    let stats = dir.path("stats.sock");
    let deaf = common::deaf_listener(&stats, nix::sys::socket::SockType::SeqPacket);
    let cfg = dir.write(
        "m.yaml",
        &format!(
            "maglev:
  vpp:
    api-socket: {}
    stats-socket: {}
    stats-interval: 1s
    lb: {{ ipv4-src-address: 192.0.2.254, startup-min-delay: 0s, startup-max-delay: 0s }}
  healthchecks:
    t: {{ type: tcp, port: 1, interval: 200ms, timeout: 100ms }}
  backends:
    a: {{ address: 127.0.0.1, healthcheck: t }}
  frontends:
    web:
      address: 192.0.2.1
      protocol: tcp
      port: 80
      pools: [ {{ name: p, backends: {{ a: {{}} }} }} ]
",
            api.display(),
            stats.display()
        ),
    );
    let ctl = dir.path("ctl.sock");
    let mut d = Daemon::start_with(Command::new(maglevd_bin()).args([
        "--config",
        cfg.to_str().unwrap(),
        "--control-socket",
        ctl.to_str().unwrap(),
    ]));
    let line = d.wait_for(&["vpp-stats-unavailable"], Duration::from_secs(10));
    assert!(
        line.contains("not accepting") || line.contains("recvmsg"),
        "{line}"
    );
    // (The stats thread may speak before the control socket listens.)
    wait_until("maglevc answered", Duration::from_secs(5), || answers(&ctl));
    let (code, _) = d.stop_within(STOP_LIMIT);
    assert_eq!(code, Some(0));
    drop(deaf);
}

#[test]
fn maglevc_in_a_closed_pipe_and_over_the_client_limit() {
    let dir = TempDir::new("hostile-maglevc");
    let port = common::free_port("127.0.0.1");
    // 64 descriptors: the control socket serves 8 clients at once.
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=64:64", "--", maglevd_bin()]);
    let mut d = start(&mut cmd, &dir, port);
    let ctl = dir.path("ctl.sock");
    let maglevc = env!("CARGO_BIN_EXE_maglevc");
    // `maglevc ... | head -1`: quiet, SIGPIPE's usual status, no panic.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{maglevc} --socket {} show backends | head -1 >/dev/null; echo ${{PIPESTATUS[0]:-}}",
            ctl.display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("failed printing") && !err.contains("panicked"),
        "{err}"
    );
    // Audit: a mutating command names the peer.
    let o = common::maglevc(&ctl, &["set", "backend", "web-a", "pause"]);
    let line = d.wait_for(&["control-command", "pause"], Duration::from_secs(5));
    assert!(line.contains("uid=") && line.contains("pid="), "{line}");
    if !o.status.success() {
        // Not root: the refusal is logged the same way.
        assert!(line.contains("control-command-refused"), "{line}");
    }
    // Fill every client slot (connect until maglevd says it is full),
    // then ask: maglevd's own reason is shown. A slot the earlier commands'
    // threads still held may come free meanwhile: fill it and ask again.
    let mut idle: Vec<UnixStream> = Vec::new();
    let mut refused = None;
    for _ in 0..5 {
        loop {
            let s = UnixStream::connect(&ctl).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut buf = [0u8; 512];
            match (&s).read(&mut buf) {
                Ok(n) if String::from_utf8_lossy(&buf[..n]).contains("too many clients") => break,
                _ => idle.push(s),
            }
            assert!(idle.len() <= 16, "the client limit is not enforced");
        }
        let o = common::maglevc(&ctl, &["show", "version"]);
        if !o.status.success() {
            refused = Some(String::from_utf8_lossy(&o.stderr).to_string());
            break;
        }
    }
    let err = refused.expect("maglevc was never refused with every slot held");
    assert!(err.contains("too many clients"), "{err}");
    drop(idle);
    let (code, _) = d.stop_within(STOP_LIMIT);
    assert_eq!(code, Some(0));
}
