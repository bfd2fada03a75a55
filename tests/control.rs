//! The control socket and `maglevc` against a running `maglevd --vpp-sim`:
//! every command (content, not just exit codes), the protocol's error
//! replies, authorisation by peer credentials, the shell in a real
//! pseudo-terminal, and 200 clients at once while backends flap.

// Drives the VPP simulator (the default `vpp-sim` feature).
#![cfg(feature = "vpp-sim")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::servers::{Behaviour, Server, http};
use common::{Daemon, TempDir};
use vpp_maglev::control::grammar;
use vpp_maglev::control::protocol::Reply;

fn maglevc(sock: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maglevc"))
        .env("MAGLEV_SOCKET", sock)
        .args(args)
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One exchange, read through the protocol's own types (a reply of the
/// wrong shape fails the test here).
fn reply(sock: &str, line: &str) -> Reply {
    let cmd = grammar::parse(line).unwrap();
    Reply::decode(&cmd, ask(sock, line.as_bytes()).trim_end())
        .unwrap()
        .unwrap_or_else(|f| panic!("{line}: {}", f.error))
}

/// One raw protocol exchange.
fn ask(sock: &str, line: &[u8]) -> String {
    let mut s = UnixStream::connect(sock).unwrap();
    s.write_all(line).unwrap();
    s.write_all(b"\n").unwrap();
    let mut r = BufReader::new(s);
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l
}

struct Setup {
    _dir: TempDir,
    _web: Server,
    d: Daemon,
    sock: String,
}

fn start(extra: &[&str]) -> Setup {
    let dir = TempDir::new("control");
    let web = Server::start("127.0.0.1:0", Behaviour::Respond(http("200 OK", "ok")));
    let cfg = dir.write(
        "maglev.yaml",
        &format!(
            "maglev:
  vpp:
    stats-interval: 1s
    lb:
      ipv4-src-address: 192.0.2.254
      startup-min-delay: 0s
      startup-max-delay: 0s
  healthchecks:
    web:
      type: http
      port: {}
      interval: 100ms
      params: {{ path: /health }}
    closed:
      type: tcp
      port: 1
      interval: 100ms
  backends:
    web-a: {{ address: 127.0.0.1, healthcheck: web }}
    web-b: {{ address: 127.0.0.2, healthcheck: closed }}
    spare-a: {{ address: 127.0.0.3, healthcheck: web }}
  frontends:
    web:
      address: 192.0.2.1
      protocol: tcp
      port: 80
      description: the web site
      pools:
        - name: main
          backends: {{ web-a: {{ weight: 60 }}, web-b: {{}} }}
        - name: spare
          backends: {{ spare-a: {{}} }}
",
            web.port()
        ),
    );
    let sock = dir.path("ctl.sock").to_str().unwrap().to_string();
    let mut args = vec![
        "--vpp-sim",
        "--config",
        cfg.to_str().unwrap(),
        "--control-socket",
        &sock,
    ];
    args.extend_from_slice(extra);
    let mut d = Daemon::start(&args);
    d.wait_for(&["ready"], Duration::from_secs(5));
    // Settled: web-a up, web-b down, and VPP programmed accordingly.
    let t = Instant::now();
    loop {
        let (Reply::LbState(v), Reply::Backend { backend: b }) = (
            reply(&sock, "show vpp lb state"),
            reply(&sock, "show backend web-b"),
        ) else {
            panic!("wrong replies");
        };
        let settled = b.state == vpp_maglev::control::protocol::State::Down
            && v.vips.first().is_some_and(|vip| {
                vip.ases
                    .iter()
                    .any(|x| x.address == "127.0.0.1" && x.weight == 60)
            });
        if settled {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "never settled: {v:?} {b:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Setup {
        _dir: dir,
        _web: web,
        d,
        sock,
    }
}

#[test]
fn every_command_answers_with_content() {
    if !common::needs_root("every_command_answers_with_content") {
        return;
    }
    let s = start(&[]);
    let sock = s.sock.as_str();
    let o = maglevc(sock, &["show", "version"]);
    assert!(
        out(&o).contains(&format!("maglevd  {}", vpp_maglev::VERSION)),
        "{}",
        out(&o)
    );
    let o = maglevc(sock, &["sh", "fr"]);
    let t = out(&o);
    assert!(
        t.starts_with("FRONTEND  ADDRESS    PROTOCOL  PORT  STATE"),
        "{t}"
    );
    assert!(
        t.contains("web       192.0.2.1  tcp       80    up     main"),
        "{t}"
    );
    let t = out(&maglevc(sock, &["show", "frontend", "web"]));
    assert!(
        t.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["description", "the", "web", "site"]),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["new-flows-table-length", "1024"]),
        "{t}"
    );
    assert!(t.contains("pool main (active)"), "{t}");
    assert!(
        t.contains("web-a                127.0.0.1        weight  60  effective  60  up"),
        "{t}"
    );
    assert!(
        t.contains("web-b                127.0.0.2        weight 100  effective   0  down"),
        "{t}"
    );
    let t = out(&maglevc(sock, &["show", "backends"]));
    assert!(t.contains("web-b    127.0.0.2  closed       down"), "{t}");
    let t = out(&maglevc(sock, &["show", "backend", "web-b"]));
    assert!(t.contains("last probe   L4CON connection refused"), "{t}");
    assert!(t.contains("unknown -> down  L4CON"), "{t}");
    let t = out(&maglevc(sock, &["show", "healthchecks"]));
    assert!(
        t.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["closed", "tcp", "1", "100ms", "100ms", "2/3"]),
        "{t}"
    );
    let t = out(&maglevc(sock, &["show", "healthcheck", "web"]));
    assert!(
        t.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["path", "/health"]),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["expect_status", "200-399"]),
        "{t}"
    );
    // The original's labels, times with their age, no empty fields.
    let t = out(&maglevc(sock, &["show", "vpp", "info"]));
    assert!(t.contains("26.10-rc0~vppsim"), "{t}");
    for label in [
        "version ",
        "build-date ",
        "build-dir ",
        "vpp-pid ",
        "vpp-boottime ",
        "connected ",
    ] {
        assert!(t.lines().any(|l| l.starts_with(label)), "{label}: {t}");
    }
    assert!(
        t.lines()
            .any(|l| l.starts_with("connected ") && l.ends_with(" ago)")),
        "{t}"
    );
    assert!(!t.contains(" -\n") && !t.contains("yes"), "{t}");
    let t = out(&maglevc(sock, &["show", "frontend", "web"]));
    assert!(t.contains("true") || t.contains("false"), "{t}");
    assert!(
        !t.contains("yes") && !t.lines().any(|l| l.trim_end().ends_with(" -")),
        "{t}"
    );
    let t = out(&maglevc(sock, &["show", "vpp", "lb", "state"]));
    assert!(
        t.contains("vip 192.0.2.1 protocol 6 port 80 encap gre4"),
        "{t}"
    );
    assert!(
        t.contains("127.0.0.1                                weight  60  buckets  1024"),
        "{t}"
    );
    // Counters appear after a scrape.
    let t0 = Instant::now();
    loop {
        let o = maglevc(sock, &["show", "vpp", "lb", "counters"]);
        if o.status.success() {
            let t = out(&o);
            assert!(
                t.contains("FIRST") && t.contains("web       192.0.2.1"),
                "{t}"
            );
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(4), "{}", err(&o));
        std::thread::sleep(Duration::from_millis(200));
    }
    let t = out(&maglevc(sock, &["sync", "vpp", "lb", "state", "web"]));
    assert!(t.starts_with("sync vip: 0 operation(s)"), "{t}");
    let o = maglevc(sock, &["set", "backend", "web-a", "disable"]);
    assert!(
        o.status.success() && out(&o).contains("disabled"),
        "{}{}",
        out(&o),
        err(&o)
    );
    let t = out(&maglevc(sock, &["show", "frontend", "web"]));
    // spare-a has no server: nothing left to carry the frontend.
    assert!(
        t.contains("disabled [disabled]")
            && t.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["state", "down"]),
        "{t}"
    );
    maglevc(sock, &["set", "backend", "web-a", "enable"]);
    let o = maglevc(
        sock,
        &[
            "set", "frontend", "web", "pool", "spare", "backend", "spare-a", "weight", "30",
            "flush",
        ],
    );
    assert!(out(&o).contains("weight  30"), "{}", out(&o));
    let t = out(&maglevc(sock, &["config", "check"]));
    assert!(t.contains("configuration OK"), "{t}");
    let t = out(&maglevc(sock, &["config", "reload"]));
    assert!(t.contains("configuration reloaded"), "{t}");
    // watch: the current frontend state first, then transitions.
    let o = maglevc(sock, &["watch", "events", "frontend", "num", "1"]);
    let t = out(&o);
    assert!(
        t.contains("\"type\":\"frontend\"") && t.contains("\"frontend\":\"web\""),
        "{t}"
    );
    // --json passes the protocol through.
    let t = out(&maglevc(sock, &["--json", "show", "backend", "web-a"]));
    let v: serde_json::Value = serde_json::from_str(t.trim()).unwrap();
    assert_eq!(v["backend"]["address"], "127.0.0.1");
}

#[test]
fn errors_and_exit_codes() {
    let s = start(&[]);
    let sock = s.sock.as_str();
    let o = maglevc(sock, &["show", "bakends"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("did you mean `backends`"), "{}", err(&o));
    let o = maglevc(sock, &["show", "backend", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("no backend named `nope`"), "{}", err(&o));
    let o = maglevc("/nonexistent/x.sock", &["show", "version"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(err(&o).contains("/nonexistent/x.sock") && err(&o).contains("is maglevd running"));
    // Raw protocol: bad input gets an error reply, never a crash.
    assert!(ask(sock, b"frobnicate").contains("\"ok\":false"));
    assert!(ask(sock, &[b'x'; 5000]).contains("longer than 4096"));
    assert!(ask(sock, &[0xff, 0xfe, b'a']).contains("not valid UTF-8"));
    assert!(ask(sock, b"show version").contains("\"ok\":true"));
    // A stale socket file (no daemon behind it) is replaced.
    let stale = s._dir.path("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let stale = stale.to_str().unwrap().to_string();
    let mut d3 = Daemon::start(&[
        "--vpp-sim",
        "--control-socket",
        &stale,
        "--config",
        "examples/maglev.yaml",
    ]);
    d3.wait_for(&["control-socket-stale"], Duration::from_secs(5));
    d3.wait_for(&["ready"], Duration::from_secs(5));
    assert!(ask(&stale, b"show version").contains("\"ok\":true"));
    drop(d3);
    // A second maglevd on a live socket is refused.
    let mut d2 = Daemon::start(&[
        "--vpp-sim",
        "--control-socket",
        sock,
        "--config",
        "examples/maglev.yaml",
    ]);
    d2.wait_for(&["another maglevd is running"], Duration::from_secs(5));
    assert_eq!(d2.wait_exit(Duration::from_secs(3)), Some(1));
}

#[test]
fn only_root_and_the_admin_group_may_change_state() {
    if !common::needs_root("only_root_and_the_admin_group_may_change_state") {
        return;
    }
    // The admin group is `users` (gid 100) here; the socket is opened to
    // everyone so that a non-member can connect at all.
    let s = start(&["--admin-group", "users"]);
    let sock = s.sock.clone();
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let run_as = |gid: u32, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_maglevc"))
            .env("MAGLEV_SOCKET", &sock)
            .args(args)
            .uid(65534)
            .gid(gid)
            .output()
            .unwrap()
    };
    let o = run_as(65534, &["show", "backends"]);
    assert!(o.status.success(), "{}", err(&o));
    let o = run_as(65534, &["set", "backend", "web-a", "pause"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("permission denied: `set backend web-a pause`")
            && err(&o).contains("users"),
        "{}",
        err(&o)
    );
    let o = run_as(100, &["set", "backend", "web-a", "pause"]);
    assert!(o.status.success(), "{}", err(&o));
    // A member by a supplementary group only (as systemd's
    // SupplementaryGroups= makes one, no group file saying so).
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--groups=100", "--"])
        .arg(env!("CARGO_BIN_EXE_maglevc"))
        .args(["set", "backend", "web-a", "resume"])
        .env("MAGLEV_SOCKET", &sock)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let o = run_as(65534, &["sync", "vpp", "lb", "state"]);
    assert!(err(&o).contains("permission denied"), "{}", err(&o));
}

#[test]
fn the_shell_in_a_pseudo_terminal() {
    let s = start(&[]);
    let home = TempDir::new("shell-home");
    let common::pty::Pty {
        mut child,
        mut master,
        output: rx,
    } = common::pty::Pty::spawn(
        Command::new(env!("CARGO_BIN_EXE_maglevc"))
            .env("MAGLEV_SOCKET", &s.sock)
            .env("HOME", &home.0)
            .arg("--color=false"),
        None,
    );
    let mut seen = String::new();
    let expect = |what: &str, seen: &mut String| {
        let t = Instant::now();
        while !seen.contains(what) {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(b) => seen.push(b as char),
                Err(_) if t.elapsed() > Duration::from_secs(5) => {
                    panic!("never saw {what:?}; screen:\n{seen}")
                }
                Err(_) => {}
            }
        }
        let at = seen.find(what).unwrap() + what.len();
        seen.drain(..at);
    };
    expect("maglev> ", &mut seen);
    // TAB completes a keyword and a live backend name.
    master.write_all(b"sh\tbackend sp\t").unwrap();
    expect("show backend spare-a ", &mut seen);
    master.write_all(b"\r").unwrap();
    expect("address      127.0.0.3", &mut seen);
    // ? shows what may follow, birdc-style.
    master.write_all(b"show vpp ?").unwrap();
    expect("info", &mut seen);
    expect("VPP load balancer", &mut seen);
    master.write_all(&[21]).unwrap(); // Ctrl-U
    // Unique-prefix abbreviation.
    master.write_all(b"sh fr\r").unwrap();
    expect("web       192.0.2.1", &mut seen);
    // History: up arrow twice recalls the backend command.
    master.write_all(b"\x1b[A\x1b[A\r").unwrap();
    expect("address      127.0.0.3", &mut seen);
    // ? at the start of a line lists the shell's own words too.
    master.write_all(b"?").unwrap();
    expect("quit", &mut seen);
    expect("exit", &mut seen);
    master.write_all(&[21]).unwrap();
    // Home and End in all three encodings: "how frontend", Home, "s",
    // End, "s" makes "show frontends".
    for (home_key, end_key) in [
        (&b"\x1b[1~"[..], &b"\x1b[4~"[..]),
        (b"\x1b[H", b"\x1b[F"),
        (b"\x1bOH", b"\x1bOF"),
    ] {
        master.write_all(b"how frontend").unwrap();
        master.write_all(home_key).unwrap();
        master.write_all(b"s").unwrap();
        master.write_all(end_key).unwrap();
        master.write_all(b"s\r").unwrap();
        expect("web       192.0.2.1", &mut seen);
    }
    // Ctrl-L redraws (clears the screen first).
    master.write_all(&[12]).unwrap();
    expect("\x1b[2J", &mut seen);
    // watch events ends on any key, and on Ctrl-C, back at the prompt.
    for stop_key in [&b"x"[..], &[3u8][..]] {
        master.write_all(b"watch events frontend\r").unwrap();
        expect("\"type\":\"frontend\"", &mut seen);
        std::thread::sleep(Duration::from_millis(200));
        master.write_all(stop_key).unwrap();
        expect("maglev> ", &mut seen);
    }
    master.write_all(b"show version\r").unwrap();
    expect("version", &mut seen);
    master.write_all(b"quit\r").unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(3), "shell did not quit");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The history is kept across sessions.
    let h = std::fs::read_to_string(home.path(".maglevc_history")).unwrap();
    assert!(
        h.contains("show backend spare-a") && h.contains("show frontends"),
        "{h}"
    );
}

#[test]
fn two_hundred_clients_while_backends_flap() {
    let s = start(&[]);
    let sock = s.sock.clone();
    let port = s._web.port();
    // spare-a flaps: a server on its address comes and goes.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let st2 = stop.clone();
    let flapper = std::thread::spawn(move || {
        while !st2.load(std::sync::atomic::Ordering::Relaxed) {
            let srv = Server::start(
                &format!("127.0.0.3:{port}"),
                Behaviour::Respond(http("200 OK", "ok")),
            );
            std::thread::sleep(Duration::from_millis(300));
            drop(srv);
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    // 20 clients stuck mid-line.
    let stuck: Vec<UnixStream> = (0..20)
        .map(|_| {
            let mut c = UnixStream::connect(&sock).unwrap();
            c.write_all(b"show vers").unwrap();
            c
        })
        .collect();
    // 20 watchers.
    let watchers: Vec<_> = (0..20)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let mut c = UnixStream::connect(&sock).unwrap();
                c.write_all(b"watch events backend num 2\n").unwrap();
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                BufReader::new(c)
                    .lines()
                    .take(3)
                    .filter_map(Result::ok)
                    .count()
            })
        })
        .collect();
    // 160 clients asking over and over.
    let askers: Vec<_> = (0..160)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    match reply(&sock, "show backends") {
                        Reply::Backends { backends } => assert_eq!(backends.len(), 3),
                        other => panic!("{other:?}"),
                    }
                }
            })
        })
        .collect();
    // Probing keeps its pace under the load: web-b (closed port, every
    // 100 ms) gets about 10 probes a second.
    let probes = |sock: &str| -> u64 {
        let Reply::Backend { backend } = reply(sock, "show backend web-b") else {
            panic!("not a backend");
        };
        backend
            .detail
            .unwrap()
            .probes
            .get("L4CON")
            .copied()
            .unwrap_or(0)
    };
    let p0 = probes(&sock);
    std::thread::sleep(Duration::from_millis(2000));
    let p1 = probes(&sock);
    eprintln!("web-b probes in 2 s under load: {}", p1 - p0);
    assert!(p1 - p0 >= 14, "only {} probes in 2 s under load", p1 - p0);
    for a in askers {
        a.join().expect("every healthy client gets correct answers");
    }
    for w in watchers {
        assert_eq!(w.join().unwrap(), 3, "header and two transitions");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flapper.join().unwrap();
    drop(stuck);
    // Probing went on at its pace: web-b (100 ms interval) still probed.
    let mut d = s.d;
    let before = ask(&sock, b"show backend web-b");
    std::thread::sleep(Duration::from_millis(1500));
    let after = ask(&sock, b"show backend web-b");
    assert_ne!(before, after, "web-b's last probe moved on");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(3)), Some(0));
}
