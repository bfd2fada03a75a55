//! The runtime as an operator feels it, on real processes: idle cost,
//! bounded stop whatever VPP or the filesystem do, VPP outages noticed
//! and repaired, one daemon per VPP, make-before-break failover.
//! (The timing policies themselves are fake-clock unit tests beside the
//! cores; these are end-to-end checks with generous limits.)

// Drives the VPP simulator (the default `vpp-sim` feature).
#![cfg(feature = "vpp-sim")]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpListener};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, TempDir, clk_tck, maglevd_bin, repo_path, wait_until};
use nix::sys::signal::Signal;
use vpp_maglev::vpp::client::{ApiCounters, Client, ClientConfig};
use vpp_maglev::vpp::sim::{Sim, SimOptions};
use vpp_maglev::vpp::wire::{LbAddDelAsV2, LbAsSetWeight, LbVip, Message, Prefix};

const STOP_LIMIT: Duration = Duration::from_secs(2);

/// A config with `n` frontends (VIPs 198.18.x.y:80, the benchmarking
/// range: nothing is ever sent there) over TCP backends on loopback.
fn config(api_socket: &Path, port: u16, backends: &[&str], n: usize) -> String {
    let mut s = format!(
        "maglev:
  vpp:
    api-socket: {}
    stats-socket: \"\"
    lb:
      ipv4-src-address: 192.0.2.254
      sync-interval: 1h
      startup-min-delay: 0s
      startup-max-delay: 0s
  healthchecks:
    tcp:
      type: tcp
      port: {port}
      interval: 100ms
      timeout: 80ms
      rise: 1
      fall: 1
  backends:
",
        api_socket.display()
    );
    for (i, a) in backends.iter().enumerate() {
        s.push_str(&format!("    b{i}: {{ address: {a}, healthcheck: tcp }}\n"));
    }
    s.push_str("  frontends:\n");
    for i in 0..n {
        s.push_str(&format!(
            "    fe{i}:\n      address: 198.18.{}.{}\n      protocol: tcp\n      port: 80\n      pools:\n",
            i / 250,
            i % 250 + 1
        ));
        // Pool per backend: the first is primary, the rest fallbacks.
        for (j, _) in backends.iter().enumerate() {
            s.push_str(&format!(
                "        - name: p{j}\n          backends: {{ b{j}: {{}} }}\n"
            ));
        }
    }
    s
}

fn vip(i: usize) -> LbVip {
    LbVip {
        pfx: Prefix::host(
            format!("198.18.{}.{}", i / 250, i % 250 + 1)
                .parse()
                .unwrap(),
        ),
        protocol: 6,
        port: 80,
    }
}

fn start(cfg: &Path, ctl: &Path) -> Daemon {
    start_with(cfg, ctl, &[])
}

fn start_with(cfg: &Path, ctl: &Path, extra: &[&str]) -> Daemon {
    Daemon::start_with(
        Command::new(maglevd_bin())
            .args([
                "--config",
                cfg.to_str().unwrap(),
                "--control-socket",
                ctl.to_str().unwrap(),
            ])
            .args(extra),
    )
}

/// A `watch events` client that never reads after the first line.
fn idle_watcher(ctl: &Path, request: &str) -> UnixStream {
    let mut s = UnixStream::connect(ctl).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut first = String::new();
    BufReader::new(s.try_clone().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("\"watching\""), "{first}");
    s
}

#[test]
fn idle_daemon_costs_almost_nothing_even_with_watchers_and_a_disabled_backend() {
    // The README's first experience: --vpp-sim on the example config,
    // whose api-tls backend is disabled; two watchers, one without log.
    let dir = TempDir::new("idle");
    let ctl = dir.path("ctl.sock");
    let cfg = repo_path("examples/maglev.yaml");
    let t0 = Instant::now();
    let d = start_with(&cfg, &ctl, &["--vpp-sim"]);
    wait_until("control socket", Duration::from_secs(5), || {
        UnixStream::connect(&ctl).is_ok()
    });
    let _w1 = idle_watcher(&ctl, "watch events backend frontend\n");
    let _w2 = idle_watcher(&ctl, "watch events log level debug\n");
    let hz = clk_tck();
    std::thread::sleep(Duration::from_secs(5).saturating_sub(t0.elapsed()));
    let startup = d.cpu_ticks();
    // Later window: 5 s more (warmup releases and the first sync fall in
    // it, at 5 s).
    std::thread::sleep(Duration::from_secs(5));
    let window = d.cpu_ticks() - startup;
    eprintln!(
        "idle: {} ms CPU in the first 5 s, {} ms in the next 5 s",
        startup * 1000 / hz,
        window * 1000 / hz
    );
    assert!(
        startup * 10 <= hz,
        "first 5 s used {} ms of CPU (limit 100 ms)",
        startup * 1000 / hz
    );
    // 2 % of a core over 5 s = 100 ms.
    assert!(
        window * 10 <= hz,
        "5 s window used {} ms of CPU (limit 2 % = 100 ms)",
        window * 1000 / hz
    );
}

#[test]
fn stop_is_bounded_when_the_control_socket_file_was_removed() {
    let dir = TempDir::new("stop-ctl");
    let ctl = dir.path("ctl.sock");
    let mut d = start_with(&repo_path("examples/maglev.yaml"), &ctl, &["--vpp-sim"]);
    d.wait_for(&["control-listening"], Duration::from_secs(5));
    std::fs::remove_file(&ctl).unwrap();
    let (code, took) = d.stop_within(STOP_LIMIT);
    assert_eq!(code, Some(0));
    eprintln!("stop with the socket file gone: {took:?}");
}

/// A "VPP" whose API socket accepts and then never answers.
#[test]
fn stop_is_bounded_when_vpp_accepts_and_never_answers() {
    let dir = TempDir::new("stop-mute");
    let api = dir.path("api.sock");
    let listener = UnixListener::bind(&api).unwrap();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        while let Ok((c, _)) = listener.accept() {
            conns.push(c);
            if conns.len() >= 3 {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(12));
        drop(conns);
    });
    let port = common::free_port("127.0.0.1");
    let cfg = dir.write("m.yaml", &config(&api, port, &["127.0.0.1"], 1));
    let mut d = start(&cfg, &dir.path("ctl.sock"));
    d.wait_for(&["ready"], Duration::from_secs(5));
    // The handshake is in flight (VPP accepted, says nothing).
    std::thread::sleep(Duration::from_millis(300));
    let (code, took) = d.stop_within(STOP_LIMIT);
    assert_eq!(code, Some(0));
    eprintln!("stop against a mute VPP: {took:?}");
    drop(held);
}

/// A "VPP" that listens and never accepts (its backlog fills up).
#[test]
fn stop_is_bounded_when_vpp_never_accepts() {
    let dir = TempDir::new("stop-deaf");
    let api = dir.path("api.sock");
    let deaf = common::deaf_listener(&api, nix::sys::socket::SockType::Stream);
    let port = common::free_port("127.0.0.1");
    let cfg = dir.write("m.yaml", &config(&api, port, &["127.0.0.1"], 1));
    let mut d = start(&cfg, &dir.path("ctl.sock"));
    d.wait_for(&["vpp-connect-failed"], Duration::from_secs(5));
    let (code, _) = d.stop_within(STOP_LIMIT);
    assert_eq!(code, Some(0));
    drop(deaf);
}

#[test]
fn stop_is_bounded_during_a_full_sync_of_1000_vips() {
    let dir = TempDir::new("stop-sync");
    let api = dir.path("api.sock");
    let sim = Sim::start(SimOptions::new(&api)).unwrap();
    // A slow VPP: 2 ms per message, so the 2,000-message sync takes 4 s+.
    sim.set_delay(Duration::from_millis(2));
    let port = common::free_port("127.0.0.1");
    let cfg = dir.write("m.yaml", &config(&api, port, &["127.0.0.1"], 1000));
    let mut d = start(&cfg, &dir.path("ctl.sock"));
    wait_until("the full sync under way", Duration::from_secs(20), || {
        sim.journal().len() > 100
    });
    let (code, took) = d.stop_within(STOP_LIMIT);
    assert_eq!(code, Some(0));
    let sent = sim.journal().len();
    assert!(sent < 2000, "the sync had finished ({sent} messages)");
    eprintln!("stop during a 1,000-VIP sync after {sent} messages: {took:?}");
}

fn vppsim(api: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vppsim"))
        .args(["--api-socket", api.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn vppsim_stops_within_two_seconds_with_its_socket_removed_and_a_client_on() {
    let dir = TempDir::new("vppsim-stop");
    let api = dir.path("api.sock");
    let mut p = vppsim(&api);
    wait_until("vppsim listening", Duration::from_secs(5), || {
        UnixStream::connect(&api).is_ok()
    });
    let c = Client::connect(&ClientConfig::new(&api), ApiCounters::new()).unwrap();
    std::fs::remove_file(&api).unwrap();
    let t = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.id() as i32), Signal::SIGTERM).unwrap();
    let mut code = None;
    while t.elapsed() < Duration::from_secs(5) {
        if let Some(s) = p.try_wait().unwrap() {
            code = s.code();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = t.elapsed();
    let _ = p.kill();
    let _ = p.wait();
    assert_eq!(code, Some(0), "vppsim did not exit 0 within 5 s");
    assert!(took <= STOP_LIMIT, "vppsim stop took {took:?}");
    drop(c);
}

/// The AS weights of VIP `i` as a fresh client reads them from VPP.
fn read_weights(api: &Path, v: LbVip) -> Option<BTreeMap<IpAddr, u8>> {
    let mut cfg = ClientConfig::new(api);
    cfg.timeout = Duration::from_millis(500);
    let mut c = Client::connect(&cfg, ApiCounters::new()).ok()?;
    let ases = c.as_dump().ok()?;
    let _ = c.close();
    Some(
        ases.into_iter()
            .filter(|a| a.vip == v && a.flags & 1 == 1)
            .map(|a| (a.app_srv, a.weight))
            .collect(),
    )
}

/// Kills VPP (the simulator, SIGKILL), keeps it away for `outage`,
/// brings it back; returns (time to notice, time to reprogram).
fn outage(tag: &str, outage: Duration) -> (Duration, Duration) {
    let dir = TempDir::new(tag);
    let api = dir.path("api.sock");
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = backend.local_addr().unwrap().port();
    let cfg = dir.write("m.yaml", &config(&api, port, &["127.0.0.1"], 3));
    let mut sim = vppsim(&api);
    wait_until("vppsim listening", Duration::from_secs(5), || {
        UnixStream::connect(&api).is_ok()
    });
    let mut d = start(&cfg, &dir.path("ctl.sock"));
    let want: BTreeMap<IpAddr, u8> = [("127.0.0.1".parse().unwrap(), 100)].into();
    wait_until("programmed", Duration::from_secs(10), || {
        (0..3).all(|i| read_weights(&api, vip(i)).as_ref() == Some(&want))
    });
    d.wait_for(&["vpp-lbsync-done", "scope=all"], Duration::from_secs(5));

    sim.kill().unwrap();
    let killed = Instant::now();
    sim.wait().unwrap();
    d.wait_for(&["vpp-disconnect"], Duration::from_secs(3));
    let noticed = killed.elapsed();

    std::thread::sleep(outage.saturating_sub(killed.elapsed()));
    let mut sim = vppsim(&api);
    wait_until("vppsim back", Duration::from_secs(5), || {
        UnixStream::connect(&api).is_ok()
    });
    let back = Instant::now();
    wait_until("reprogrammed", Duration::from_secs(10), || {
        (0..3).all(|i| read_weights(&api, vip(i)).as_ref() == Some(&want))
    });
    let reprogrammed = back.elapsed();
    let _ = d.stop_within(STOP_LIMIT);
    let _ = sim.kill();
    let _ = sim.wait();
    drop(backend);
    (noticed, reprogrammed)
}

#[test]
fn vpp_outages_are_noticed_at_once_and_repaired_within_two_seconds() {
    // The three outages run side by side (one daemon and one simulator
    // each), so the test lasts about as long as the longest.
    let runs: Vec<_> = [1u64, 20, 60]
        .into_iter()
        .map(|s| {
            std::thread::spawn(move || (s, outage(&format!("outage{s}"), Duration::from_secs(s))))
        })
        .collect();
    for r in runs {
        let (secs, (noticed, reprogrammed)) = r.join().unwrap();
        eprintln!(
            "outage {secs} s: noticed after {} ms, reprogrammed {} ms after VPP was back",
            noticed.as_millis(),
            reprogrammed.as_millis()
        );
        assert!(
            noticed <= Duration::from_secs(1),
            "{secs} s outage: noticed after {noticed:?}"
        );
        assert!(
            reprogrammed <= Duration::from_secs(2),
            "{secs} s outage: reprogrammed after {reprogrammed:?}"
        );
    }
}

#[test]
fn a_second_daemon_for_the_same_vpp_exits_1_before_sending_anything() {
    let dir = TempDir::new("second");
    let api = dir.path("api.sock");
    let sim = Sim::start(SimOptions::new(&api)).unwrap();
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = backend.local_addr().unwrap().port();
    let cfg = dir.write("m.yaml", &config(&api, port, &["127.0.0.1"], 2));
    let mut first = start(&cfg, &dir.path("ctl1.sock"));
    first.wait_for(&["vpp-lbsync-done", "scope=all"], Duration::from_secs(10));
    // Let the first daemon finish what follows its sync (route lookups).
    let mut received = sim.received();
    wait_until("the first daemon idle", Duration::from_secs(5), || {
        std::thread::sleep(Duration::from_millis(300));
        let now = sim.received();
        let same = now == received;
        received = now;
        same
    });
    let journal = sim.journal().len();

    // Same VPP, its own control socket: refused before any side effect.
    let mut second = start(&cfg, &dir.path("ctl2.sock"));
    assert_eq!(second.wait_exit(Duration::from_secs(5)), Some(1));
    let line = second.wait_for(&["startup-failed", "instance-lock"], Duration::from_secs(1));
    assert!(
        line.contains(&format!("pid {}", first.child.id())),
        "names the holder: {line}"
    );
    assert!(!dir.path("ctl2.sock").exists(), "no socket was bound");
    let mut now = sim.received();
    // The first daemon may have pinged meanwhile; nothing else arrived.
    now.remove("control_ping");
    let mut before = received;
    before.remove("control_ping");
    assert_eq!(now, before, "the simulator heard from the second daemon");
    assert_eq!(sim.journal().len(), journal);
    let _ = first.stop_within(STOP_LIMIT);
    drop(backend);
}

#[test]
fn failover_never_leaves_the_vip_without_a_server() {
    let dir = TempDir::new("mbb");
    let api = dir.path("api.sock");
    let sim = Sim::start(SimOptions::new(&api)).unwrap();
    // Primary on 127.0.0.1, fallback on 127.0.0.2 (same port).
    let primary = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = primary.local_addr().unwrap().port();
    let fallback = TcpListener::bind(("127.0.0.2", port)).unwrap();
    let cfg = dir.write(
        "m.yaml",
        &config(&api, port, &["127.0.0.1", "127.0.0.2"], 1),
    );
    let mut d = start(&cfg, &dir.path("ctl.sock"));
    let v = vip(0);
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let serving = |w: &BTreeMap<IpAddr, u8>, a: &str| w.get(&ip(a)).copied().unwrap_or(0) > 0;
    wait_until("primary serving", Duration::from_secs(10), || {
        read_weights(&api, v).is_some_and(|w| serving(&w, "127.0.0.1") && !serving(&w, "127.0.0.2"))
    });
    sim.reset_received();
    drop(primary); // the primary dies: failover to the fallback
    wait_until("fallback serving", Duration::from_secs(5), || {
        read_weights(&api, v).is_some_and(|w| serving(&w, "127.0.0.2") && !serving(&w, "127.0.0.1"))
    });
    let _ = d.stop_within(STOP_LIMIT);
    drop(fallback);

    // Replay what VPP was told, message by message.
    let mut w: BTreeMap<IpAddr, u8> = [(ip("127.0.0.1"), 100), (ip("127.0.0.2"), 0)].into();
    let journal = sim.journal();
    assert!(!journal.is_empty());
    for (i, (name, p)) in journal.iter().enumerate() {
        match name.as_str() {
            n if n == LbAsSetWeight::NAME => {
                let m = LbAsSetWeight::decode(p).unwrap();
                assert_eq!(m.pfx, v.pfx);
                w.insert(m.as_address, m.weight);
            }
            n if n == LbAddDelAsV2::NAME => {
                let m = LbAddDelAsV2::decode(p).unwrap();
                if m.is_del {
                    w.remove(&m.as_address);
                } else {
                    w.insert(m.as_address, m.weight);
                }
            }
            _ => continue,
        }
        assert!(
            w.values().any(|&x| x > 0),
            "after message {i} ({name}) the VIP has no server: {w:?}; journal {:?}",
            journal.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_reload_onto_a_vpp_another_daemon_holds_is_refused() {
    let dir = TempDir::new("relock");
    let (api_a, api_b) = (dir.path("a.sock"), dir.path("b.sock"));
    let _a = Sim::start(SimOptions::new(&api_a)).unwrap();
    let _b = Sim::start(SimOptions::new(&api_b)).unwrap();
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = backend.local_addr().unwrap().port();
    let cfg1 = dir.write("one.yaml", &config(&api_a, port, &["127.0.0.1"], 1));
    let cfg2 = dir.write("two.yaml", &config(&api_b, port, &["127.0.0.1"], 1));
    let mut one = start(&cfg1, &dir.path("ctl1.sock"));
    one.wait_for(&["instance-locked"], Duration::from_secs(5));
    let mut two = start(&cfg2, &dir.path("ctl2.sock"));
    two.wait_for(&["instance-locked"], Duration::from_secs(5));
    // The second is pointed at the first one's VPP.
    dir.write("two.yaml", &config(&api_a, port, &["127.0.0.1"], 1));
    two.signal(Signal::SIGHUP);
    let line = two.wait_for(&["config-reload-failed"], Duration::from_secs(5));
    assert!(
        line.contains(&format!("pid {}", one.child.id())) && line.contains("api-socket"),
        "{line}"
    );
    two.wait_for(&["config-reload-rejected"], Duration::from_secs(2));
    assert!(two.child.try_wait().unwrap().is_none());
    let _ = two.stop_within(STOP_LIMIT);
    let _ = one.stop_within(STOP_LIMIT);
    drop(backend);
}
