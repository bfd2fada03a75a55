//! What scripts and pipelines written for the Go original rely on: log
//! event names, the JSON log shape, environment names, dual-stack metrics.

// Drives the VPP simulator (the default `vpp-sim` feature).
#![cfg(feature = "vpp-sim")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, TempDir, maglevd_bin, repo_path, wait_until};

#[test]
fn json_logs_are_one_slog_object_per_line_on_stdout() {
    let dir = TempDir::new("jsonlog");
    let cfg = repo_path("examples/maglev.yaml");
    let mut child = Command::new(maglevd_bin())
        .args(["--vpp-sim", "--log-format", "json", "--config"])
        .arg(&cfg)
        .arg("--control-socket")
        .arg(dir.path("ctl.sock"))
        .env("MAGLEV_METRICS_ADDR", "")
        .env("MAGLEV_LOCK_DIR", common::lock_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        let mut v = Vec::new();
        for l in BufReader::new(out).lines() {
            match l {
                Ok(l) => v.push(l),
                Err(_) => break,
            }
        }
        v
    });
    std::thread::sleep(Duration::from_secs(3));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    let lines = lines.join().unwrap();
    assert!(lines.len() > 5, "{lines:?}");
    let mut transition = None;
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(
            v["time"].is_string() && v["level"].is_string() && v["msg"].is_string(),
            "{l}"
        );
        if v["msg"] == "backend-transition" {
            transition = Some(v);
        }
    }
    let t = transition.expect("a backend-transition line");
    assert!(t["from"].is_string() && t["to"].is_string(), "{t}");
    assert!(t["backend"].is_string(), "{t}");
    assert!(lines[0].contains("\"msg\":\"starting\""), "{}", lines[0]);
}

#[test]
fn debug_logs_use_the_originals_event_names() {
    let dir = TempDir::new("lognames");
    let cfg = repo_path("examples/maglev.yaml");
    let mut d = Daemon::start_with(Command::new(maglevd_bin()).args([
        "--vpp-sim",
        "--log-level",
        "debug",
        "--config",
        cfg.to_str().unwrap(),
        "--control-socket",
        dir.path("ctl.sock").to_str().unwrap(),
    ]));
    d.wait_for(&["vpp-connect "], Duration::from_secs(5));
    d.wait_for(&["probe-start", "backend="], Duration::from_secs(5));
    // The first full sync (at startup-max-delay) dumps VIPs and ASes;
    // an operator read does the same at once.
    let out = common::maglevc(&dir.path("ctl.sock"), &["show", "vpp", "lb", "state"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_for(
        &["vpp-api-send-multi", "msg=lb_vip_dump"],
        Duration::from_secs(5),
    );
    d.wait_for(
        &["vpp-api-recv-multi", "msg=lb_vip_dump"],
        Duration::from_secs(5),
    );
    let _ = d.stop_within(Duration::from_secs(2));
}

#[test]
fn maglevc_reads_the_same_socket_variable_as_maglevd() {
    let dir = TempDir::new("envname");
    let ctl = dir.path("ctl.sock");
    let cfg = repo_path("examples/maglev.yaml");
    let mut d = Daemon::start_with(Command::new(maglevd_bin()).args([
        "--vpp-sim",
        "--config",
        cfg.to_str().unwrap(),
        "--control-socket",
        ctl.to_str().unwrap(),
    ]));
    d.wait_for(&["control-listening"], Duration::from_secs(5));
    for var in ["MAGLEV_CONTROL_SOCKET", "MAGLEV_SOCKET"] {
        let out = Command::new(env!("CARGO_BIN_EXE_maglevc"))
            .args(["show", "version"])
            .env_remove("MAGLEV_CONTROL_SOCKET")
            .env_remove("MAGLEV_SOCKET")
            .env(var, &ctl)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{var}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Usage errors exit 2 in both binaries.
    let o = Command::new(maglevd_bin()).arg("--bogus").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(env!("CARGO_BIN_EXE_maglevc"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let _ = d.stop_within(Duration::from_secs(2));
}

#[test]
fn metrics_on_a_bare_port_answer_ipv4_and_ipv6() {
    let dir = TempDir::new("dualstack");
    let port = common::free_port("127.0.0.1");
    let cfg = repo_path("examples/maglev.yaml");
    let mut d = Daemon::start_with(Command::new(maglevd_bin()).args([
        "--vpp-sim",
        "--config",
        cfg.to_str().unwrap(),
        "--control-socket",
        dir.path("ctl.sock").to_str().unwrap(),
        "--metrics-addr",
        &format!(":{port}"),
    ]));
    d.wait_for(&["metrics-listening"], Duration::from_secs(5));
    let get = |host: &str| -> bool {
        let Ok(mut s) = TcpStream::connect((host, port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.starts_with("HTTP/1.1 200")
    };
    let t = Instant::now();
    wait_until("IPv4 scrape", Duration::from_secs(5), || get("127.0.0.1"));
    let ipv6_here = std::net::TcpListener::bind("[::1]:0").is_ok();
    if ipv6_here {
        assert!(get("::1"), "IPv6 scrape of :{port}");
    }
    eprintln!(
        "dual-stack checked (IPv6 present: {ipv6_here}) in {:?}",
        t.elapsed()
    );
    let _ = d.stop_within(Duration::from_secs(2));
}

#[test]
fn show_vpp_info_without_vpp_is_an_error() {
    let dir = TempDir::new("novpp");
    let ctl = dir.path("ctl.sock");
    let cfg = dir.write(
        "m.yaml",
        &format!(
            "maglev:
  vpp:
    api-socket: {}
    stats-socket: \"\"
    lb: {{ ipv4-src-address: 192.0.2.254 }}
  healthchecks:
    t: {{ type: tcp, port: 1 }}
  backends:
    a: {{ address: 127.0.0.1, healthcheck: t }}
  frontends:
    web: {{ address: 192.0.2.1, protocol: tcp, port: 80, pools: [ {{ name: p, backends: {{ a: {{}} }} }} ] }}
",
            dir.path("no-vpp.sock").display()
        ),
    );
    let mut d = Daemon::start_with(Command::new(maglevd_bin()).args([
        "--config",
        cfg.to_str().unwrap(),
        "--control-socket",
        ctl.to_str().unwrap(),
    ]));
    d.wait_for(&["vpp-connect-failed"], Duration::from_secs(5));
    // The first VPP attempt can come before the control socket listens.
    wait_until("the control socket", Duration::from_secs(5), || {
        std::os::unix::net::UnixStream::connect(&ctl).is_ok()
    });
    let o = common::maglevc(&ctl, &["show", "vpp", "info"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not connected"));
    // Counters switched off are said to be, not "not read yet".
    let o = common::maglevc(&ctl, &["show", "vpp", "lb", "counters"]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("VPP counters are disabled"), "{e}");
    let _ = d.stop_within(Duration::from_secs(2));
}

/// The README's quick start as an ordinary user (uid 65534), in a network
/// namespace of its own whose ping_group_range lets everyone ping: ICMP
/// backends go up over ping sockets (no CAP_NET_RAW), the control socket
/// falls back to $XDG_RUNTIME_DIR, and maglevc finds it there.
#[test]
fn the_quick_start_works_for_an_ordinary_user() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to create the namespace and switch user");
        return;
    }
    let ns = format!("mgl-user-{}", std::process::id());
    let ip = |args: &[&str]| {
        let st = Command::new("ip").args(args).status().unwrap();
        assert!(st.success(), "ip {args:?}");
    };
    ip(&["netns", "add", &ns]);
    struct DelNetns(String);
    impl Drop for DelNetns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _ns = DelNetns(ns.clone());
    ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
    ip(&[
        "netns",
        "exec",
        &ns,
        "sh",
        "-c",
        "echo 0 2147483647 > /proc/sys/net/ipv4/ping_group_range",
    ]);
    let dir = TempDir::new("user");
    let xdg = dir.path("xdg");
    std::fs::create_dir(&xdg).unwrap();
    nix::unistd::chown(
        &xdg,
        Some(nix::unistd::Uid::from_raw(65534)),
        Some(nix::unistd::Gid::from_raw(65534)),
    )
    .unwrap();
    let cfg = repo_path("examples/maglev.yaml");
    let as_nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns, "setpriv"])
        .args(as_nobody)
        .arg(maglevd_bin())
        .args(["--vpp-sim", "--metrics-addr", "", "--config"])
        .arg(&cfg)
        .env("XDG_RUNTIME_DIR", &xdg)
        .env_remove("MAGLEV_CONTROL_SOCKET")
        .env_remove("MAGLEV_LOCK_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = crossbeam_channel::unbounded::<String>();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let t = Instant::now();
    // spare-a, and web6's IPv4-mapped backend (probed at 127.0.0.1).
    let (mut up, mut v6_up) = (false, false);
    while t.elapsed() < Duration::from_secs(10) && !(up && v6_up) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            let went_up = l.contains("to=up") && l.contains("L4OK");
            up |= went_up && l.contains("backend=spare-a");
            v6_up |= went_up && l.contains("backend=v6-a");
            seen.push(l);
        }
    }
    let log = seen.join("\n");
    assert!(up, "spare-a did not go up over a ping socket:\n{log}");
    assert!(v6_up, "v6-a (::ffff:127.0.0.1) did not go up:\n{log}");
    assert!(log.contains("kind=ping"), "{log}");
    let sock = xdg.join("vpp-maglev").join("maglevd.sock");
    assert!(
        sock.exists(),
        "control socket not in XDG_RUNTIME_DIR:\n{log}"
    );
    let out = Command::new("setpriv")
        .args(as_nobody)
        .arg(env!("CARGO_BIN_EXE_maglevc"))
        .args(["show", "backends"])
        .env("XDG_RUNTIME_DIR", &xdg)
        .env_remove("MAGLEV_CONTROL_SOCKET")
        .env_remove("MAGLEV_SOCKET")
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("spare-a"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = child.wait();
}
