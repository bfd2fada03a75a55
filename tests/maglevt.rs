//! maglevt against real HTTP backends behind a small test balancer that
//! stands in for the VIP: each new connection goes to a backend chosen by
//! a hash of the client's port, as Maglev hashes a new flow, so killing a
//! backend moves (and breaks) exactly its share of the clients.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::TempDir;
use common::servers::{Behaviour, Server};

/// Forwards each accepted connection to `backends[hash(client port)]`; a
/// backend that refuses gets the client's connection closed unanswered.
struct Balancer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Balancer {
    fn start(backends: Vec<SocketAddr>) -> Balancer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&stop);
        std::thread::spawn(move || {
            for c in l.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = c else { continue };
                let port = client.peer_addr().unwrap().port() as u64;
                let h = port.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
                let b = backends[(h % backends.len() as u64) as usize];
                std::thread::spawn(move || {
                    let Ok(server) = TcpStream::connect_timeout(&b, Duration::from_millis(200))
                    else {
                        return; // the client sees a close without an answer
                    };
                    let (mut c2, mut s2) =
                        (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let up = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c2, &mut s2);
                        let _ = s2.shutdown(std::net::Shutdown::Write);
                    });
                    let (mut s, mut c) = (server, client);
                    let _ = std::io::copy(&mut s, &mut c);
                    let _ = c.shutdown(std::net::Shutdown::Write);
                    let _ = up.join();
                });
            }
        });
        Balancer { addr, stop }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn backend(name: &str) -> Server {
    let body = "ok\n";
    let resp = format!(
        "HTTP/1.1 200 OK\r\nX-Served-By: {name}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    Server::start("127.0.0.1:0", Behaviour::Respond(resp.into_bytes()))
}

fn config(dir: &TempDir, vips: &[(&str, SocketAddr)]) -> std::path::PathBuf {
    let mut y = String::from(
        "maglev:
  vpp:
    lb: { ipv4-src-address: 192.0.2.254 }
  healthchecks:
    web: { type: http, port: 80, params: { path: /healthz } }
  backends:
    b1: { address: 10.0.0.1, healthcheck: web }
  frontends:
",
    );
    for (name, a) in vips {
        y.push_str(&format!(
            "    {name}: {{ address: {}, protocol: tcp, port: {}, pools: [ {{ name: p, backends: {{ b1: {{}} }} }} ] }}\n",
            a.ip(),
            a.port()
        ));
    }
    dir.write("maglev.yaml", &y)
}

/// maglevt in JSON mode, its lines on a channel.
struct Lines {
    child: std::process::Child,
    rx: crossbeam_channel::Receiver<serde_json::Value>,
}

impl Lines {
    fn start(args: &[&str]) -> Lines {
        let mut child = Command::new(env!("CARGO_BIN_EXE_maglevt"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                let v: serde_json::Value = serde_json::from_str(&l).unwrap();
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Lines { child, rx }
    }

    /// The next line about `frontend` that satisfies `ok`.
    fn until(
        &self,
        frontend: &str,
        within: Duration,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let t = Instant::now();
        let mut last = serde_json::Value::Null;
        while t.elapsed() < within {
            let Ok(v) = self.rx.recv_timeout(Duration::from_millis(500)) else {
                continue;
            };
            if v["frontend"] == frontend {
                if ok(&v) {
                    return v;
                }
                last = v;
            }
        }
        panic!("{frontend}: never got there; last: {last}");
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn failover_seen_from_the_client_side() {
    let dir = TempDir::new("maglevt");
    let a = backend("a");
    let b = backend("b");
    let lb = Balancer::start(vec![a.addr, b.addr]);
    // A VIP that accepts and never answers.
    let silent = Server::start("127.0.0.1:0", Behaviour::Silent);
    let cfg = config(&dir, &[("web", lb.addr), ("hung", silent.addr)]);
    let m = Lines::start(&[
        "--config",
        cfg.to_str().unwrap(),
        "--interval",
        "100ms",
        "--timeout",
        "500ms",
    ]);
    // Both backends answer (about half the new connections each).
    let v = m.until("web", Duration::from_secs(10), |v| {
        v["tally"]["a"]["recent"].as_u64() > Some(3) && v["tally"]["b"]["recent"].as_u64() > Some(3)
    });
    assert_eq!(v["kind"], "http");
    assert_eq!(v["failures"], 0, "{v}");
    assert!(v["p50_ms"].as_f64().is_some(), "{v}");
    // The hung VIP times out, and never slows the other: web keeps its
    // ten probes a second (about 50 in the 5 s window).
    let h = m.until("hung", Duration::from_secs(10), |v| {
        v["errors"]["timeout"].as_u64() > Some(2)
    });
    assert_eq!(h["probes"], h["failures"]);
    let v = m.until("web", Duration::from_secs(10), |v| {
        v["window_probes"].as_u64() >= Some(40)
    });
    assert!(v["window_probes"].as_u64() <= Some(60), "{v}");
    // Kill b: its share falls to nothing, its clients see failures
    // (classified as net-err), a keeps answering.
    drop(b);
    let t = Instant::now();
    let v = m.until("web", Duration::from_secs(15), |v| {
        v["tally"]["b"]["recent"] == 0 && v["errors"]["net-err"].as_u64() > Some(0)
    });
    assert!(v["tally"]["b"]["active"] == false && v["tally"]["b"]["count"].as_u64() > Some(0));
    assert!(v["tally"]["a"]["recent"].as_u64() > Some(10), "{v}");
    assert!(v["last"].is_string());
    eprintln!("b drained from the tally {:?} after the kill", t.elapsed());
    drop(lb);
    drop(a);
}

#[test]
fn the_screen_in_a_pseudo_terminal() {
    use nix::pty::Winsize;
    let dir = TempDir::new("maglevt-pty");
    let a = backend("a");
    let b = backend("b");
    let lb = Balancer::start(vec![a.addr, b.addr]);
    let refused = common::free_port("127.0.0.1");
    let cfg = config(
        &dir,
        &[
            ("web", lb.addr),
            ("gone", format!("127.0.0.1:{refused}").parse().unwrap()),
        ],
    );
    let ws = Winsize {
        ws_row: 30,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let common::pty::Pty {
        mut child,
        mut master,
        output: rx,
    } = common::pty::Pty::spawn(
        Command::new(env!("CARGO_BIN_EXE_maglevt")).args(["--config", cfg.to_str().unwrap()]),
        Some(ws),
    );
    let mut seen = Vec::new();
    let t = Instant::now();
    let has = |seen: &[u8], s: &str| String::from_utf8_lossy(seen).contains(s);
    // Every part of the screen, whichever redraw brings it (a row can
    // arrive in a later frame than the first tallies).
    let rows = ["FRONTEND", "web ", "gone ", "127.0.0.1:", "errors"];
    while !(has(&seen, "a ")
        && has(&seen, "b ")
        && has(&seen, "net-err")
        && rows.iter().all(|r| has(&seen, r)))
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{}",
            String::from_utf8_lossy(&seen)
        );
        if let Ok(b) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(b);
        }
    }
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(
        text.starts_with("\x1b[?1049h\x1b[?25l"),
        "alternate screen, cursor hidden"
    );
    // q quits at once and gives the terminal back.
    master.write_all(b"q").unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(2), "q did not quit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    while let Ok(b) = rx.recv_timeout(Duration::from_millis(300)) {
        seen.push(b);
    }
    let text = String::from_utf8_lossy(&seen);
    let leave = text.rfind("\x1b[?1049l").expect("main screen restored");
    assert!(
        text.rfind("\x1b[?25h").is_some_and(|i| i < leave),
        "cursor shown again"
    );
    assert!(text.rfind("\x1b[?1049h").is_some_and(|i| i < leave));
    drop(lb);
}
