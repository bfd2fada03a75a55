//! The honest probe-cost benchmark: the real `maglevd` binary and HAProxy
//! probing the same N loopback backends at the same time, each measured
//! from /proc over the same window, every check verified passing on both
//! sides (maglevc's `show backends`, HAProxy's stats socket).
//!
//! Run by hand, as root (fd limits), with Debian's haproxy installed and
//! the release binaries built (`cargo build --release`):
//!   cargo bench --bench daemon_vs_haproxy                       # all rows, 60 s
//!   cargo bench --bench daemon_vs_haproxy -- --n 1000 --kinds http --secs 30
//!
//! Kinds: `tcp`, `syn` (maglevd's half-open `mode: syn` against HAProxy's
//! usual TCP check), `http`, `https`, and `http-reuse`, `https-reuse`
//! (maglevd keeps its connections, `reuse-connection: true`, against
//! HAProxy's usual checks). Backends: 127.81.x.y, one listener process on
//! 0.0.0.0 per run that accepts and closes (tcp, syn), answers `200` to
//! any request (http), or does the same over TLS with a fresh ECDSA P-256
//! certificate (https); it keeps a connection when the request asks (HTTP/1.1
//! without `Connection: close`), else closes it. Interval 1 s, timeout 1 s,
//! one maglevd prober thread.
//!
//! Packets per check: the kernel's `Ip: OutRequests` (on loopback every
//! packet of either side is one) over the window, less maglevd's share,
//! measured after the window with maglevd probing alone.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;
use common::{active_opens, backend_addr, listen_any, proc_usage};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench" || a == "--serve") {
        println!("benchmark: run it with `cargo bench --bench <name>`");
        return;
    }
    let arg = |name: &str| common::arg(&args, name);
    if let Some(kind) = arg("--serve") {
        let port = arg("--port").expect("--port").parse().expect("port");
        let dir = PathBuf::from(arg("--dir").expect("--dir"));
        return serve(&kind, port, &dir);
    }
    let secs: u64 = arg("--secs").map_or(60, |s| s.parse().expect("secs"));
    let ns: Vec<usize> = arg("--n").map_or(vec![1_000, 10_000], |s| {
        s.split(',').map(|n| n.parse().expect("n")).collect()
    });
    let kinds: Vec<String> = arg("--kinds").map_or(
        ["tcp", "syn", "http", "http-reuse", "https", "https-reuse"]
            .map(String::from)
            .to_vec(),
        |s| s.split(',').map(str::to_string).collect(),
    );
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release");
    for b in ["maglevd", "maglevc"] {
        assert!(
            bin.join(b).exists(),
            "build the release binaries first: cargo build --release"
        );
    }
    println!(
        "daemon vs HAProxy: same backends, same {secs} s window, interval 1 s, 1 prober thread"
    );
    println!(
        "{:>11} {:>6} | {:>9} {:>8} {:>8} {:>9} {:>8} | {:>9} {:>8} {:>8} {:>8} | {:>9} {:>9} | checks passing",
        "kind",
        "N",
        "probes/s",
        "CPU %",
        "RSS MB",
        "p99 late",
        "pkts/chk",
        "probes/s",
        "CPU %",
        "RSS MB",
        "pkts/chk",
        "CPU ratio",
        "RSS ratio"
    );
    for kind in &kinds {
        for &n in &ns {
            if kind.starts_with("https") && n > 1_000 {
                println!(
                    "{kind:>11} {n:>6} | skipped: the TLS listener alone would need ~{} cores for {} handshakes/s",
                    n * 2 / 3000 + 1,
                    2 * n
                );
                continue;
            }
            run(kind, n, secs, &bin);
        }
    }
}

/// The check kind without `-reuse`, and whether maglevd keeps connections.
fn base(kind: &str) -> (&str, bool) {
    match kind.strip_suffix("-reuse") {
        Some(b) => (b, true),
        None => (kind, false),
    }
}

/// The backends' side: one process, several threads, 0.0.0.0:port. A
/// plain connection kept (asked for by the request) moves to one event
/// loop, as in nginx or HAProxy; a TLS one to a thread of its own.
fn serve(kind: &str, port: u16, dir: &Path) {
    let l = listen_any(port);
    let (kind, _) = base(kind);
    let acceptor = (kind == "https").then(|| tls_acceptor(dir));
    // SAFETY: plain libc call; the descriptor is owned by this process.
    let ep = unsafe { nix::libc::epoll_create1(nix::libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0, "epoll_create1");
    std::thread::spawn(move || keep_loop(ep));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let l = l.try_clone().unwrap();
            let kind = kind.to_string();
            let acceptor = acceptor.clone();
            std::thread::spawn(move || {
                for s in l.incoming() {
                    let Ok(mut s) = s else { continue };
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    match kind.as_str() {
                        "http" if serve_one(&mut s) == Some(true) => keep_in(ep, s),
                        "https" => {
                            if let Ok(t) = acceptor.as_ref().unwrap().accept(s) {
                                answer(t);
                            }
                        }
                        _ => {}
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}

/// Hands a kept plain connection to the event loop.
fn keep_in(ep: i32, s: std::net::TcpStream) {
    use std::os::fd::IntoRawFd;
    let _ = s.set_nonblocking(true);
    let fd = s.into_raw_fd();
    let mut ev = nix::libc::epoll_event {
        events: nix::libc::EPOLLIN as u32,
        u64: fd as u64,
    };
    // SAFETY: `fd` is an open socket this process owns from here on; `ev`
    // is a live local.
    unsafe { nix::libc::epoll_ctl(ep, nix::libc::EPOLL_CTL_ADD, fd, &mut ev) };
}

/// Serves the kept plain connections: each readable one holds a request
/// (a health check's fits one segment), answered at once; closed or
/// asked to close, it is closed.
fn keep_loop(ep: i32) {
    const KEEP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
    let mut events = vec![nix::libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: `events` is a live buffer of the length passed.
        let n = unsafe { nix::libc::epoll_wait(ep, events.as_mut_ptr(), 256, -1) };
        for e in &events[..n.max(0) as usize] {
            let fd = e.u64 as i32;
            // SAFETY: `fd` is a kept socket owned by this loop; `buf` is
            // a live buffer of the length passed.
            let r = unsafe { nix::libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if r < 0 && nix::errno::Errno::last() == nix::errno::Errno::EAGAIN {
                continue;
            }
            let req = &buf[..r.max(0) as usize];
            let close = r <= 0
                || String::from_utf8_lossy(req)
                    .to_ascii_lowercase()
                    .contains("\r\nconnection: close");
            if r > 0 {
                // SAFETY: as above.
                unsafe { nix::libc::write(fd, KEEP.as_ptr().cast(), KEEP.len()) };
            }
            if close {
                // SAFETY: closed once; epoll forgets it with the close.
                unsafe { nix::libc::close(fd) };
            }
        }
    }
}

/// Answers the first request; a connection asked to stay is served on in
/// a thread of its own.
fn answer<S: Read + Write + Send + 'static>(mut s: S) {
    if serve_one(&mut s) == Some(true) {
        let _ = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || while serve_one(&mut s) == Some(true) {});
    }
}

/// Reads one request and answers it; whether the connection stays open
/// (`None`: it ended).
fn serve_one(s: &mut (impl Read + Write)) -> Option<bool> {
    const KEEP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
    const CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nok\n";
    let head = read_head(s).ok()?;
    if head.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let keep = text.contains(" http/1.1\r\n") && !text.contains("\r\nconnection: close");
    s.write_all(if keep { KEEP } else { CLOSE }).ok()?;
    Some(keep)
}

fn read_head(s: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 2048];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    Ok(seen)
}

fn tls_acceptor(dir: &Path) -> openssl::ssl::SslAcceptor {
    use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=bench",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl req");
    assert!(ok.success());
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    b.set_private_key_file(&key, SslFiletype::PEM).unwrap();
    b.set_certificate_chain_file(&cert).unwrap();
    b.build()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn maglevd_config(kind: &str, n: usize, port: u16) -> String {
    let (kind, reuse) = base(kind);
    let reuse = if reuse {
        ", reuse-connection: true"
    } else {
        ""
    };
    let check = match kind {
        "tcp" => format!("type: tcp, port: {port}"),
        "syn" => format!("type: tcp, port: {port}, params: {{ mode: syn }}"),
        "http" => format!("type: http, port: {port}, params: {{ path: /healthz{reuse} }}"),
        _ => format!(
            "type: https, port: {port}, params: {{ path: /healthz, tls-verify: false{reuse} }}"
        ),
    };
    let mut y = format!(
        "maglev:\n  vpp: {{ api-socket: \"\" }}\n  healthchecks:\n    c: {{ {check}, interval: 1s, timeout: 1s, rise: 2, fall: 3 }}\n  backends:\n"
    );
    for i in 0..n {
        y.push_str(&format!(
            "    b{i}: {{ address: {}, healthcheck: c }}\n",
            backend_addr(i)
        ));
    }
    y
}

fn haproxy_config(kind: &str, n: usize, port: u16, stats: &Path) -> String {
    let (kind, _) = base(kind);
    let mut t = format!(
        "global\n  maxconn 4000\n  stats socket {} mode 600 level admin\n\ndefaults\n  mode {}\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n  timeout check 1s\n\nlisten bench\n  bind 127.0.0.1:{}\n  balance roundrobin\n",
        stats.display(),
        if matches!(kind, "tcp" | "syn") {
            "tcp"
        } else {
            "http"
        },
        port + 1
    );
    if !matches!(kind, "tcp" | "syn") {
        t.push_str("  option httpchk GET /healthz\n");
    }
    let ssl = if kind == "https" {
        " check-ssl verify none"
    } else {
        ""
    };
    for i in 0..n {
        t.push_str(&format!(
            "  server b{i} {}:{port} check inter 1000 rise 2 fall 3{ssl}\n",
            backend_addr(i)
        ));
    }
    t
}

/// maglevd's /metrics: probes started, cumulative lateness buckets
/// (le seconds, count), and connections opened by checks that keep theirs.
struct Scrape {
    probes: u64,
    late: Vec<(f64, u64)>,
    opened: u64,
}

fn scrape(addr: &str) -> Scrape {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return Scrape {
            probes: 0,
            late: Vec::new(),
            opened: 0,
        };
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let mut count = 0;
    let mut buckets = Vec::new();
    let mut opened = 0;
    for l in text.lines() {
        if l.starts_with("maglev_probe_connections_total{") && !l.contains("connection=\"reused\"")
        {
            opened += l
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        } else if let Some(v) = l.strip_prefix("maglev_probe_lateness_seconds_count ") {
            count = v.trim().parse().unwrap_or(0);
        } else if let Some(rest) = l.strip_prefix("maglev_probe_lateness_seconds_bucket{le=\"") {
            let (le, n) = rest.split_once("\"} ").unwrap_or(("", "0"));
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(0.0)
            };
            buckets.push((le, n.trim().parse().unwrap_or(0)));
        }
    }
    Scrape {
        probes: count,
        late: buckets,
        opened,
    }
}

/// Packets this namespace's IP layer sent so far (`Ip: OutRequests`).
fn ip_out() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut ip = snmp.lines().filter(|l| l.starts_with("Ip:"));
    let (Some(names), Some(values)) = (ip.next(), ip.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "OutRequests")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// The p99 over a window from two scrapes: the smallest bucket bound that
/// holds 99 % of the window's probes.
fn p99(before: &[(f64, u64)], after: &[(f64, u64)]) -> f64 {
    let total = after.last().map_or(0, |b| b.1) - before.last().map_or(0, |b| b.1);
    for ((le, a), (_, b)) in after.iter().zip(before) {
        if (a - b) as f64 >= 0.99 * total as f64 {
            return *le;
        }
    }
    f64::INFINITY
}

/// Backends maglevd reports `up` (its `show backends` over the socket).
fn maglevd_up(bin: &Path, sock: &Path) -> usize {
    let out = Command::new(bin.join("maglevc"))
        .arg("--socket")
        .arg(sock)
        .args(["show", "backends"])
        .output();
    let Ok(out) = out else { return 0 };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().nth(3) == Some("up"))
        .count()
}

/// Servers HAProxy reports `UP`, and the sum of their failed checks.
fn haproxy_up(stats: &Path) -> (usize, u64) {
    let Ok(mut s) = UnixStream::connect(stats) else {
        return (0, 0);
    };
    let _ = s.write_all(b"show stat\n");
    let mut up = 0;
    let mut chkfail = 0;
    let mut cols: Vec<String> = Vec::new();
    for line in BufReader::new(s).lines().map_while(Result::ok) {
        if let Some(h) = line.strip_prefix("# ") {
            cols = h.split(',').map(str::to_string).collect();
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let col = |name: &str| {
            cols.iter()
                .position(|c| c == name)
                .and_then(|i| f.get(i).copied())
        };
        if matches!(col("svname"), Some("FRONTEND" | "BACKEND") | None) {
            continue;
        }
        if col("status").is_some_and(|s| s.starts_with("UP")) {
            up += 1;
        }
        chkfail += col("chkfail")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    (up, chkfail)
}

fn run(kind: &str, n: usize, secs: u64, bin: &Path) {
    let dir = std::env::temp_dir().join(format!("maglev-bench-{kind}-{n}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = 21_000 + (std::process::id() % 20_000) as u16;
    let _listener = Killed(
        Command::new(std::env::current_exe().unwrap())
            .args(["--serve", kind, "--port", &port.to_string(), "--dir"])
            .arg(&dir)
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let cfg = dir.join("maglev.yaml");
    std::fs::write(&cfg, maglevd_config(kind, n, port)).unwrap();
    let sock = dir.join("ctl.sock");
    let metrics = format!("127.0.0.1:{}", port + 2);
    let stats = dir.join("haproxy.sock");
    std::fs::write(
        dir.join("haproxy.cfg"),
        haproxy_config(kind, n, port, &stats),
    )
    .unwrap();
    let maglevd = Killed(
        Command::new(bin.join("maglevd"))
            .arg("--config")
            .arg(&cfg)
            .arg("--control-socket")
            .arg(&sock)
            .arg("--metrics-addr")
            .arg(&metrics)
            .arg("--lock-dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let haproxy = Killed(
        Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(dir.join("haproxy.cfg"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (apt-get install haproxy)"),
    );
    // Both fully up before measuring.
    let t = Instant::now();
    loop {
        let (m, (h, _)) = (maglevd_up(bin, &sock), haproxy_up(&stats));
        if m == n && h == n {
            break;
        }
        if t.elapsed() > Duration::from_secs(90) {
            println!("{kind:>11} {n:>6} | never all up: maglevd {m}/{n}, haproxy {h}/{n}");
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    std::thread::sleep(Duration::from_secs(5));
    let (mp, hp) = (maglevd.0.id(), haproxy.0.id());
    let (m0, _, _) = proc_usage(mp);
    let (h0, _, _) = proc_usage(hp);
    let (_, fail0) = haproxy_up(&stats);
    let s0 = scrape(&metrics);
    let (opens0, pkts0) = (active_opens(), ip_out());
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let el = t0.elapsed().as_secs_f64();
    let (m1, mrss, mhwm) = proc_usage(mp);
    let (h1, hrss, hhwm) = proc_usage(hp);
    let s1 = scrape(&metrics);
    let (opens1, pkts1) = (active_opens(), ip_out());
    let (m_up, (h_up, fail1)) = (maglevd_up(bin, &sock), haproxy_up(&stats));
    let m_rate = (s1.probes - s0.probes) as f64 / el;
    // Every probe of either side opens one connection, except maglevd's
    // half-open ones (none) and kept ones (counted by maglevd itself):
    // HAProxy's share is what maglevd's is not.
    let m_opens = match base(kind) {
        ("syn", _) => 0.0,
        (_, true) => (s1.opened - s0.opened) as f64 / el,
        _ => m_rate,
    };
    let h_rate = (opens1 - opens0) as f64 / el - m_opens;
    let late = p99(&s0.late, &s1.late) * 1000.0;
    let (mc, hc) = ((m1 - m0) / el * 100.0, (h1 - h0) / el * 100.0);
    // maglevd alone for a while: its packets per check; HAProxy's are the
    // rest of the window's.
    drop(haproxy);
    std::thread::sleep(Duration::from_secs(2));
    let (a0, p0) = (scrape(&metrics).probes, ip_out());
    std::thread::sleep(Duration::from_secs(secs.clamp(5, 10)));
    let (a1, p1) = (scrape(&metrics).probes, ip_out());
    let m_pkts = (p1 - p0) as f64 / (a1 - a0).max(1) as f64;
    let h_pkts = ((pkts1 - pkts0) as f64 - m_pkts * m_rate * el) / (h_rate * el).max(1.0);
    println!(
        "{kind:>11} {n:>6} | {m_rate:>9.0} {mc:>8.2} {:>8.1} {:>7}ms {m_pkts:>8.1} | {h_rate:>9.0} {hc:>8.2} {:>8.1} {h_pkts:>8.1} | {:>9.2} {:>9.2} | maglevd {m_up}/{n} up, haproxy {h_up}/{n} UP, {} failed checks (RSS peak {:.1} / {:.1} MB)",
        mrss as f64 / 1024.0,
        if late.is_finite() {
            format!("<={late:.1}")
        } else {
            ">1000".into()
        },
        hrss as f64 / 1024.0,
        mc / hc,
        mrss as f64 / hrss as f64,
        fail1 - fail0,
        mhwm as f64 / 1024.0,
        hhwm as f64 / 1024.0,
    );
    drop(maglevd);
    let _ = std::fs::remove_dir_all(&dir);
}
