//! Health checking against real servers: the checker and prober threads
//! probe listeners that these tests start on loopback and inside network
//! namespaces, good and misbehaving, and each test asserts the state
//! sequence and the probe code. Needs root (raw ICMP sockets, `ip netns`).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, unbounded};

use common::netns::{Netns, veth};
use common::servers::{Behaviour, Counting, Server, http, http_chunked};
use vpp_maglev::checker::events::{BackendEvent, Event};
use vpp_maglev::checker::{Action, Checker, CheckerError};
use vpp_maglev::config;
use vpp_maglev::health::state::{ActionError, State};

struct Harness {
    checker: Checker,
    events: Receiver<Event>,
    pending: Vec<BackendEvent>,
    seen: Vec<BackendEvent>,
}

impl Harness {
    fn start(yaml: &str) -> Harness {
        let cfg = config::parse(yaml, Path::new("test.yaml"))
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}\n{yaml}"));
        let (tx, rx) = unbounded();
        let checker = Checker::start(Arc::new(cfg), vec![tx]).unwrap();
        Harness {
            checker,
            events: rx,
            pending: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// The next transition of `backend` within `timeout` (other backends'
    /// transitions stay queued for their own turn).
    fn next(&mut self, backend: &str, timeout: Duration) -> BackendEvent {
        if let Some(i) = self.pending.iter().position(|b| b.backend == backend) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Backend(b)) => {
                    self.seen.push(b.clone());
                    if b.backend == backend {
                        return b;
                    }
                    self.pending.push(b);
                }
                Ok(_) => {}
                Err(_) => panic!(
                    "no transition of {backend} within {timeout:?}; seen: {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Asserts the next transitions of `backend`: (from, to, code, detail part).
    fn expect(&mut self, backend: &str, seq: &[(State, State, &str, &str)]) {
        for (from, to, code, detail) in seq {
            let e = self.next(backend, Duration::from_secs(8));
            let got_code = e.code.map_or("-", |c| c.as_str());
            assert_eq!(
                (e.from, e.to, got_code),
                (*from, *to, *code),
                "{backend}: {e:?}"
            );
            assert!(
                e.detail.contains(detail),
                "{backend}: detail {:?} lacks {detail:?}",
                e.detail
            );
        }
    }
}

/// A config with one health check `hc` (given as YAML lines) and backends.
fn config(hc: &str, backends: &[(&str, &str)], extra_top: &str) -> String {
    let mut s = format!(
        "maglev:\n{extra_top}  vpp: {{ api-socket: \"\" }}\n  healthchecks:\n    hc:\n{hc}  backends:\n"
    );
    for (name, addr) in backends {
        s.push_str(&format!(
            "    {name}: {{ address: \"{addr}\", healthcheck: hc }}\n"
        ));
    }
    s
}

fn http_hc(port: u16, params: &str) -> String {
    format!(
        "      type: http\n      port: {port}\n      interval: 500ms\n      fast-interval: 100ms\n      timeout: 300ms\n      rise: 2\n      fall: 2\n      params:\n        path: /healthz\n{params}"
    )
}

use State::*;

#[test]
fn http_verdicts_against_real_servers() {
    // One port, many loopback addresses: each backend gets its own server.
    let ok = Server::start("127.77.1.1:0", Behaviour::Respond(http("200 OK", "all ok")));
    let port = ok.port();
    let at = |n: u8| format!("127.77.1.{n}:{port}");
    let _s503 = Server::start(
        &at(2),
        Behaviour::Respond(http("503 Service Unavailable", "busy")),
    );
    let _body = Server::start(
        &at(3),
        Behaviour::Respond(http("200 OK", "not what you want")),
    );
    let _slow = Server::start(
        &at(4),
        Behaviour::Slow(Duration::from_millis(800), http("200 OK", "ok")),
    );
    let _silent = Server::start(&at(5), Behaviour::Silent);
    // 127.77.1.6: nobody listens → refused.
    let _rst = Server::start(
        &at(7),
        Behaviour::ResetAfter(b"HTTP/1.1 200 OK\r\nContent-Le".to_vec()),
    );
    let _garbage = Server::start(
        &at(8),
        Behaviour::Immediate(b"SSH-2.0-OpenSSH_9.2\r\n".to_vec()),
    );
    let _chunked = Server::start(
        &at(9),
        Behaviour::Respond(http_chunked("200 OK", &["he", "llo o", "k!"])),
    );

    let yaml = config(
        &http_hc(port, "        expect-body: ok\n"),
        &[
            ("ok", "127.77.1.1"),
            ("s503", "127.77.1.2"),
            ("body", "127.77.1.3"),
            ("slow", "127.77.1.4"),
            ("silent", "127.77.1.5"),
            ("refused", "127.77.1.6"),
            ("rst", "127.77.1.7"),
            ("garbage", "127.77.1.8"),
            ("chunked", "127.77.1.9"),
        ],
        "",
    );
    let mut h = Harness::start(&yaml);
    h.expect("ok", &[(Unknown, Up, "L7OK", "HTTP 200")]);
    h.expect("s503", &[(Unknown, Down, "L7STS", "HTTP 503")]);
    h.expect(
        "body",
        &[(Unknown, Down, "L7RSP", "body does not contain \"ok\"")],
    );
    h.expect("slow", &[(Unknown, Down, "L7TOUT", "timeout after 300 ms")]);
    h.expect(
        "silent",
        &[(Unknown, Down, "L7TOUT", "timeout after 300 ms")],
    );
    h.expect("refused", &[(Unknown, Down, "L4CON", "connection refused")]);
    h.expect("rst", &[(Unknown, Down, "L7RSP", "")]);
    h.expect(
        "garbage",
        &[(Unknown, Down, "L7RSP", "not an HTTP response")],
    );
    h.expect("chunked", &[(Unknown, Up, "L7OK", "HTTP 200")]);
    let snap = h.checker.snapshot();
    let rst = &snap.backends["rst"];
    let detail = &rst.last.as_ref().unwrap().outcome.detail;
    assert!(
        detail.contains("reset") || detail.contains("closed in the response header"),
        "{detail}"
    );
    assert!(
        snap.backends["ok"].last.as_ref().unwrap().outcome.duration < Duration::from_millis(300)
    );
}

#[test]
fn server_dies_and_returns() {
    let srv = Server::start("127.77.2.1:0", Behaviour::Respond(http("200 OK", "ok")));
    let port = srv.port();
    let yaml = config(&http_hc(port, ""), &[("web", "127.77.2.1")], "");
    let mut h = Harness::start(&yaml);
    h.expect("web", &[(Unknown, Up, "L7OK", "HTTP 200")]);
    drop(srv);
    // fall=2 from counter 2 (rise): the first failure already takes it down.
    h.expect("web", &[(Up, Down, "L4CON", "connection refused")]);
    let _srv = Server::start(
        &format!("127.77.2.1:{port}"),
        Behaviour::Respond(http("200 OK", "ok")),
    );
    h.expect("web", &[(Down, Up, "L7OK", "HTTP 200")]);
}

#[test]
fn operator_actions_and_their_errors() {
    let _srv = Server::start("127.77.3.1:0", Behaviour::Respond(http("200 OK", "ok")));
    let port = _srv.port();
    let yaml = config(
        &format!(
            "      type: tcp\n      port: {port}\n      interval: 200ms\n      timeout: 100ms\n"
        ),
        &[("a", "127.77.3.1")],
        "",
    );
    let mut h = Harness::start(&yaml);
    h.expect("a", &[(Unknown, Up, "L4OK", "connected")]);
    let c = h.checker.client();
    assert_eq!(c.action("a", Action::Pause).unwrap().state, Paused);
    h.expect("a", &[(Up, Paused, "-", "paused by operator")]);
    assert_eq!(c.action("a", Action::Resume).unwrap().state, Unknown);
    h.expect(
        "a",
        &[
            (Paused, Unknown, "-", "resumed"),
            (Unknown, Up, "L4OK", "connected"),
        ],
    );
    assert_eq!(c.action("a", Action::Disable).unwrap().state, Disabled);
    h.expect("a", &[(Up, Disabled, "disabled", "disabled by operator")]);
    let err = c.action("a", Action::Pause).unwrap_err();
    assert_eq!(
        err,
        CheckerError::Refused {
            backend: "a".into(),
            action: Action::Pause,
            why: ActionError::Disabled,
        }
    );
    assert!(
        err.to_string().contains("disabled; enable it first"),
        "{err}"
    );
    let v = c.action("a", Action::Enable).unwrap();
    assert!(v.enabled);
    h.expect(
        "a",
        &[
            (Disabled, Unknown, "-", "enabled"),
            (Unknown, Up, "L4OK", "connected"),
        ],
    );
    assert_eq!(
        c.action("nope", Action::Pause).unwrap_err(),
        CheckerError::NoBackend("nope".into())
    );
}

#[test]
fn paused_backend_gets_no_probes() {
    // Count probes the engine starts: none may start while paused. (The
    // server cannot count them: a TCP probe never completes the handshake,
    // so the listener never accepts it.)
    let listener = std::net::TcpListener::bind("127.77.4.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let yaml = config(
        &format!(
            "      type: tcp\n      port: {port}\n      interval: 100ms\n      timeout: 100ms\n"
        ),
        &[("a", "127.77.4.1")],
        "",
    );
    let mut h = Harness::start(&yaml);
    let started = h.checker.engine_stats();
    let count = || started.started.load(std::sync::atomic::Ordering::SeqCst);
    h.expect("a", &[(Unknown, Up, "L4OK", "connected")]);
    h.checker.client().action("a", Action::Pause).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let before = count();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(count(), before, "probes while paused");
    h.checker.client().action("a", Action::Resume).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(count() > before + 2, "no probes after resume");
    drop(listener);
}

#[test]
fn reload_keeps_unchanged_restarts_changed_removes_gone() {
    let _srv = Server::start("127.77.5.1:0", Behaviour::Respond(http("200 OK", "ok")));
    let port = _srv.port();
    let tcp = format!(
        "      type: tcp\n      port: {port}\n      interval: 200ms\n      timeout: 100ms\n"
    );
    let yaml = config(
        &tcp,
        &[
            ("keep", "127.77.5.1"),
            ("gone", "127.77.5.1"),
            ("moved", "127.77.5.1"),
        ],
        "",
    );
    let mut h = Harness::start(&yaml);
    for b in ["keep", "gone", "moved"] {
        h.expect(b, &[(Unknown, Up, "L4OK", "")]);
    }
    let c = h.checker.client();
    c.action("keep", Action::Disable).unwrap();
    h.expect("keep", &[(Up, Disabled, "disabled", "")]);
    // keep: unchanged (stays disabled: runtime flag survives); gone: removed;
    // moved: new address → restarts at unknown, then down (refused).
    let yaml2 = config(&tcp, &[("keep", "127.77.5.1"), ("moved", "127.77.5.2")], "");
    c.reload(Arc::new(config::parse(&yaml2, Path::new("t")).unwrap()));
    h.expect("gone", &[(Up, Removed, "-", "removed from configuration")]);
    h.expect(
        "moved",
        &[
            (Up, Unknown, "-", "address changed"),
            (Unknown, Down, "L4CON", "refused"),
        ],
    );
    let snap = h.checker.snapshot();
    assert_eq!(snap.backends["keep"].state, Disabled);
    assert!(!snap.backends["keep"].enabled);
    assert!(!snap.backends.contains_key("gone"));
}

#[cfg(feature = "https")]
#[test]
fn https_certificates() {
    use common::TempDir;
    use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
    let dir = TempDir::new("tls");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    // A test CA, a server certificate it signs, and a self-signed one.
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=maglev test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=backend.test",
        ],
    ]
    .concat());
    std::fs::write(dir.path("ext"), "subjectAltName=DNS:backend.test\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "self.key",
            "-out",
            "self.pem",
            "-days",
            "2",
            "-subj",
            "/CN=backend.test",
            "-addext",
            "subjectAltName=DNS:backend.test",
        ],
    ]
    .concat());
    // The probe trusts the system store; point OpenSSL's default at our CA.
    // SAFETY: set before any TLS context exists in this process; no other
    // test here reads the environment concurrently.
    unsafe { std::env::set_var("SSL_CERT_FILE", dir.path("ca.pem")) };
    let acceptor = |cert: &str, key: &str| {
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        b.set_private_key_file(dir.path(key), SslFiletype::PEM)
            .unwrap();
        b.set_certificate_chain_file(dir.path(cert)).unwrap();
        b.build()
    };
    let good = Server::start(
        "127.77.6.1:0",
        Behaviour::Tls(acceptor("srv.pem", "srv.key"), http("200 OK", "ok")),
    );
    let port = good.port();
    let _self_signed = Server::start(
        &format!("127.77.6.2:{port}"),
        Behaviour::Tls(acceptor("self.pem", "self.key"), http("200 OK", "ok")),
    );
    let hc = |name: &str, sni: &str, verify: bool| {
        format!(
            "    {name}:\n      type: https\n      port: {port}\n      interval: 500ms\n      fast-interval: 100ms\n      timeout: 400ms\n      params:\n        tls-server-name: {sni}\n        tls-verify: {verify}\n"
        )
    };
    let yaml = format!(
        "maglev:\n  vpp: {{ api-socket: \"\" }}\n  healthchecks:\n{}{}{}{}  backends:\n    valid: {{ address: 127.77.6.1, healthcheck: valid }}\n    wrongname: {{ address: 127.77.6.1, healthcheck: wrongname }}\n    selfsigned: {{ address: 127.77.6.2, healthcheck: selfsigned }}\n    noverify: {{ address: 127.77.6.2, healthcheck: noverify }}\n",
        hc("valid", "backend.test", true),
        hc("wrongname", "other.test", true),
        hc("selfsigned", "backend.test", true),
        hc("noverify", "backend.test", false),
    );
    let mut h = Harness::start(&yaml);
    h.expect("valid", &[(Unknown, Up, "L7OK", "HTTP 200")]);
    h.expect(
        "wrongname",
        &[(Unknown, Down, "L6RSP", "certificate verify failed")],
    );
    h.expect(
        "selfsigned",
        &[(Unknown, Down, "L6RSP", "certificate verify failed")],
    );
    h.expect("noverify", &[(Unknown, Up, "L7OK", "HTTP 200")]);
    let snap = h.checker.snapshot();
    let why = &snap.backends["wrongname"]
        .last
        .as_ref()
        .unwrap()
        .outcome
        .detail;
    assert!(why.contains("hostname mismatch"), "{why}");
    // Later probes resume their TLS sessions (as HAProxy's checks do)...
    let t = Instant::now();
    while common::servers::TLS_RESUMED.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "no session was resumed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // ...but never across verification: the unverified session of
    // `noverify` is not offered to `selfsigned` (same address, port and
    // name), which stays down.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(h.checker.snapshot().backends["selfsigned"].state, Down);
    assert_eq!(h.checker.snapshot().backends["noverify"].state, Up);
    // Plain HTTP behind an https check: a server that answers the
    // ClientHello with a plain 400 fails the handshake at once (L6RSP);
    // one that waits for a request line times the handshake out (L6TOUT).
    drop(h);
    let _plain = Server::start(
        "127.77.6.3:0",
        Behaviour::Immediate(http("400 Bad Request", "plain HTTP to an HTTPS port")),
    );
    let p = _plain.port();
    let _waits = Server::start(
        &format!("127.77.6.4:{p}"),
        Behaviour::Respond(http("200 OK", "ok")),
    );
    let yaml = format!(
        "maglev:\n  vpp: {{ api-socket: \"\" }}\n  healthchecks:\n    hc:\n      type: https\n      port: {p}\n      interval: 500ms\n      timeout: 300ms\n      params: {{ tls-verify: false }}\n  backends:\n    plain: {{ address: 127.77.6.3, healthcheck: hc }}\n    waits: {{ address: 127.77.6.4, healthcheck: hc }}\n"
    );
    let mut h = Harness::start(&yaml);
    h.expect("plain", &[(Unknown, Down, "L6RSP", "TLS handshake failed")]);
    h.expect(
        "waits",
        &[(Unknown, Down, "L6TOUT", "timeout after 300 ms")],
    );
}

#[test]
fn icmp_on_loopback_v4_and_v6() {
    if !common::needs_root("icmp_on_loopback_v4_and_v6") {
        return;
    }
    let yaml = config(
        "      type: icmp\n      interval: 200ms\n      timeout: 150ms\n",
        &[("v4", "127.77.7.1"), ("v6", "::1")],
        "",
    );
    let mut h = Harness::start(&yaml);
    h.expect("v4", &[(Unknown, Up, "L4OK", "echo reply")]);
    h.expect("v6", &[(Unknown, Up, "L4OK", "echo reply")]);
}

/// Namespaces `<tag>cli` (the prober) and `<tag>srv` (the backends) joined
/// by a veth link: 10.`net`.1.1 and fd00:`net`:1::1 on the prober's side,
/// .2 and ::2 on the backends', which route 10.`net`.99.0/24 into a black
/// hole. Returns both namespaces and the link's two ends.
fn prober_and_backends(tag: &str, net: u8) -> (Netns, Netns, String, String) {
    let cli = Netns::new(&format!("{tag}cli"));
    let srv = Netns::new(&format!("{tag}srv"));
    let link = format!("m{tag}{}", std::process::id() % 100_000);
    let (ca, sb) = veth(&link, &cli, &srv);
    cli.ip(&["addr", "add", &format!("10.{net}.1.1/24"), "dev", &ca]);
    let v6 = |host: u8| format!("fd00:{net}:1::{host}/64");
    cli.ip(&["-6", "addr", "add", &v6(1), "dev", &ca, "nodad"]);
    srv.ip(&["addr", "add", &format!("10.{net}.1.2/24"), "dev", &sb]);
    srv.ip(&["-6", "addr", "add", &v6(2), "dev", &sb, "nodad"]);
    srv.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    let hole = format!("10.{net}.99.0/24");
    srv.ip(&["route", "add", "blackhole", &hole]);
    cli.ip(&["route", "add", &hole, "via", &format!("10.{net}.1.2")]);
    (cli, srv, ca, sb)
}

/// Two namespaces: `cli` (where maglevd probes from, via `healthchecker.netns`)
/// and `srv` (the backends), joined by a veth link. `srv` routes a prefix
/// into a black hole.
#[test]
fn namespaces_icmp_link_down_and_black_hole() {
    if !common::needs_root("namespaces_icmp_link_down_and_black_hole") {
        return;
    }
    let (cli, srv, _, sb) = prober_and_backends("", 199);

    // A TCP server inside srv.
    let (tx, rx) = std::sync::mpsc::channel();
    srv.spawn(move || {
        let l = std::net::TcpListener::bind("10.199.1.2:0").unwrap();
        tx.send(l.local_addr().unwrap().port()).unwrap();
        for c in l.incoming() {
            drop(c);
        }
    });
    let port = rx.recv_timeout(Duration::from_secs(5)).unwrap();

    let yaml = format!(
        "maglev:\n  healthchecker:\n    netns: {}\n  vpp: {{ api-socket: \"\" }}\n  healthchecks:\n    ping:\n      type: icmp\n      interval: 300ms\n      fast-interval: 100ms\n      timeout: 200ms\n      fall: 2\n    tcp:\n      type: tcp\n      port: {port}\n      interval: 300ms\n      timeout: 250ms\n  backends:\n    v4: {{ address: 10.199.1.2, healthcheck: ping }}\n    v6: {{ address: \"fd00:199:1::2\", healthcheck: ping }}\n    tcp: {{ address: 10.199.1.2, healthcheck: tcp }}\n    hole: {{ address: 10.199.99.9, healthcheck: tcp }}\n    nohost: {{ address: 10.199.1.77, healthcheck: ping }}\n",
        cli.name
    );
    let mut h = Harness::start(&yaml);
    h.expect("v4", &[(Unknown, Up, "L4OK", "echo reply")]);
    h.expect("v6", &[(Unknown, Up, "L4OK", "echo reply")]);
    h.expect("tcp", &[(Unknown, Up, "L4OK", "connected")]);
    h.expect("hole", &[(Unknown, Down, "L4TOUT", "timeout after 250 ms")]);
    h.expect(
        "nohost",
        &[(Unknown, Down, "L4TOUT", "timeout after 200 ms")],
    );

    // Take the server's link down: echo requests go nowhere.
    srv.ip(&["link", "set", &sb, "down"]);
    for b in ["v4", "v6"] {
        let e = h.next(b, Duration::from_secs(5));
        assert_eq!((e.from, e.to), (Up, Down), "{e:?}");
        let code = e.code.unwrap().as_str();
        assert!(code == "L4TOUT" || code == "L4CON", "{b}: {e:?}");
    }
    srv.ip(&["link", "set", &sb, "up"]);
    h.expect("v4", &[(Down, Up, "L4OK", "echo reply")]);
}

#[test]
fn missing_netns_is_a_local_error_with_the_reason_not_a_verdict() {
    let yaml = config(
        "      type: tcp\n      port: 80\n      interval: 200ms\n      timeout: 100ms\n",
        &[("a", "127.0.0.1")],
        "  healthchecker:\n    netns: mgl-does-not-exist\n",
    );
    let h = Harness::start(&yaml);
    // Probes run and fail locally; the backend is not blamed.
    let t = Instant::now();
    let last = loop {
        let snap = h.checker.snapshot();
        let b = &snap.backends["a"];
        if b.counters.by_code.get(vpp_maglev::probe::Code::Local) >= 3 {
            break b.clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "no local errors counted"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(last.state, Unknown);
    let lp = last.last.expect("last probe");
    assert!(
        lp.outcome
            .detail
            .contains("enter netns \"mgl-does-not-exist\""),
        "{lp:?}"
    );
    assert!(h.events.try_recv().is_err(), "no transition");
}

/// A TCP check in half-open mode (`mode: syn`), every family and answer.
fn syn_hc(name: &str, port: u16, extra: &str) -> String {
    format!(
        "    {name}:\n      type: tcp\n      port: {port}\n      interval: 300ms\n      timeout: 250ms\n      rise: 2\n      fall: 2\n{extra}      params: {{ mode: syn }}\n"
    )
}

fn syn_config(hcs: &[String], backends: &[(&str, &str, &str)], top: &str) -> String {
    let mut s = format!(
        "maglev:\n{top}  vpp: {{ api-socket: \"\" }}\n  healthchecks:\n{}  backends:\n",
        hcs.concat()
    );
    for (name, addr, hc) in backends {
        s.push_str(&format!(
            "    {name}: {{ address: \"{addr}\", healthcheck: {hc} }}\n"
        ));
    }
    s
}

/// Half-open checks on loopback: listening backends pass with the SYN-ACK
/// (and never see a connection), a closed port is refused.
#[test]
fn syn_mode_on_loopback_v4_and_v6_never_completes_a_connection() {
    if !common::needs_root("syn_mode_on_loopback_v4_and_v6_never_completes_a_connection") {
        return;
    }
    let l4 = Counting::on(std::net::TcpListener::bind("127.77.8.1:0").unwrap());
    let l6 = Counting::on(std::net::TcpListener::bind("[::1]:0").unwrap());
    let yaml = syn_config(
        &[
            syn_hc("hc4", l4.addr.port(), ""),
            syn_hc("hc6", l6.addr.port(), ""),
        ],
        &[
            ("up4", "127.77.8.1", "hc4"),
            ("up6", "::1", "hc6"),
            // Same port, an address nothing listens on.
            ("closed", "127.77.8.2", "hc4"),
        ],
        "",
    );
    let mut h = Harness::start(&yaml);
    h.expect("up4", &[(Unknown, Up, "L4OK", "syn-ack")]);
    h.expect("up6", &[(Unknown, Up, "L4OK", "syn-ack")]);
    h.expect("closed", &[(Unknown, Down, "L4CON", "connection refused")]);
    // More probes go by; none of them may reach the application.
    let t = Instant::now();
    loop {
        let snap = h.checker.snapshot();
        let ok = |b: &str| {
            snap.backends[b]
                .counters
                .by_code
                .get(vpp_maglev::probe::Code::L4Ok)
        };
        if ok("up4") >= 8 && ok("up6") >= 8 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "probes stopped");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        (l4.accepted(), l6.accepted()),
        (0, 0),
        "a connection completed"
    );
}

/// Half-open checks between network namespaces over a veth link, where the
/// backend's kernel verifies every checksum (shown first: a SYN with a bad
/// one is ignored, the same SYN with ours is answered): both families, a
/// configured source address, a closed port, a black hole.
#[test]
fn syn_mode_across_namespaces_checksums_source_and_black_hole() {
    use vpp_maglev::probe::syn::{SynSocket, syn_segment};
    if !common::needs_root("syn_mode_across_namespaces_checksums_source_and_black_hole") {
        return;
    }
    let (cli, srv, ca, sb) = prober_and_backends("s", 198);
    cli.ip(&["addr", "add", "10.198.1.3/24", "dev", &ca]);

    let (tx, rx) = std::sync::mpsc::channel();
    srv.spawn(move || {
        let l4 = std::net::TcpListener::bind("10.198.1.2:0").unwrap();
        let l6 = std::net::TcpListener::bind("[fd00:198:1::2]:0").unwrap();
        tx.send((l4, l6)).unwrap();
    })
    .join()
    .unwrap();
    let (l4, l6) = rx.recv().unwrap();
    let (l4, l6) = (Counting::on(l4), Counting::on(l6));
    let (p4, p6) = (l4.addr.port(), l6.addr.port());

    // The checksum, proven by the receiving kernel.
    cli.spawn(move || {
        use nix::sys::socket::*;
        use std::os::fd::AsRawFd;
        let mut sock = SynSocket::open(false, None).unwrap();
        let (src, dst) = ("10.198.1.1".parse().unwrap(), "10.198.1.2".parse().unwrap());
        let answer = |sock: &SynSocket| {
            let t = Instant::now();
            let mut buf = [0u8; 256];
            while t.elapsed() < Duration::from_millis(500) {
                match sock.recv(&mut buf).unwrap() {
                    Some(Some(a)) => return Some(a),
                    Some(None) => {}
                    None => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            None
        };
        let mut bad = syn_segment(src, dst, sock.port(), p4, 1000);
        bad[16] ^= 0x40;
        let raw = socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::Tcp,
        )
        .unwrap();
        let to = SockaddrStorage::from(std::net::SocketAddr::new(dst, 0));
        sendto(raw.as_raw_fd(), &bad, &to, MsgFlags::empty()).unwrap();
        assert_eq!(
            answer(&sock),
            None,
            "a SYN with a bad checksum was answered"
        );
        let peer = std::net::SocketAddr::new(dst, p4);
        sock.send(peer, 2000, Instant::now()).unwrap();
        let a = answer(&sock).expect("no answer to a good SYN");
        assert_eq!((a.peer, a.ack, a.reset), (peer, 2001, false));
    })
    .join()
    .unwrap();

    let yaml = syn_config(
        &[
            syn_hc("hc4", p4, ""),
            syn_hc("hc6", p6, ""),
            syn_hc("src", p4, "      probe-ipv4-src: 10.198.1.3\n"),
            syn_hc("closed", 9, ""),
        ],
        &[
            ("v4", "10.198.1.2", "hc4"),
            ("v6", "fd00:198:1::2", "hc6"),
            ("from3", "10.198.1.2", "src"),
            ("closed", "10.198.1.2", "closed"),
            ("hole", "10.198.99.9", "hc4"),
        ],
        &format!("  healthchecker:\n    netns: {}\n", cli.name),
    );
    let mut h = Harness::start(&yaml);
    h.expect("v4", &[(Unknown, Up, "L4OK", "syn-ack")]);
    h.expect("v6", &[(Unknown, Up, "L4OK", "syn-ack")]);
    h.expect("from3", &[(Unknown, Up, "L4OK", "syn-ack")]);
    h.expect("closed", &[(Unknown, Down, "L4CON", "connection refused")]);
    h.expect("hole", &[(Unknown, Down, "L4TOUT", "timeout after 250 ms")]);
    // The link goes down: the SYNs go nowhere.
    srv.ip(&["link", "set", &sb, "down"]);
    h.expect("v4", &[(Up, Down, "L4TOUT", "timeout after 250 ms")]);
    srv.ip(&["link", "set", &sb, "up"]);
    h.expect("v4", &[(Down, Up, "L4OK", "syn-ack")]);
    assert_eq!(
        (l4.accepted(), l6.accepted()),
        (0, 0),
        "a connection completed"
    );
}

/// Without `CAP_NET_RAW` (a normal user; as root, the capability taken out
/// of the bounding set) a half-open check says why once and connects
/// instead.
#[test]
fn syn_mode_without_cap_net_raw_falls_back_to_connect() {
    let l = Counting::on(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let dir = common::TempDir::new("synfb");
    let file = dir.write(
        "maglev.yaml",
        &syn_config(
            &[syn_hc("hc", l.addr.port(), "")],
            &[("a", "127.0.0.1", "hc")],
            "",
        ),
    );
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--bounding-set=-net_raw", "--"])
            .arg(common::maglevd_bin());
        c
    } else {
        std::process::Command::new(common::maglevd_bin())
    };
    cmd.args(["--config", file.to_str().unwrap()]);
    let mut d = common::Daemon::start_with(&mut cmd);
    d.wait_for(
        &[
            "syn-socket-failed",
            "family=ipv4",
            "fallback=connect",
            "CAP_NET_RAW",
        ],
        Duration::from_secs(5),
    );
    d.wait_for(
        &[
            "backend-transition",
            "backend=a",
            "to=up",
            "code=L4OK",
            "connected",
        ],
        Duration::from_secs(5),
    );
    // Said once, not per probe.
    std::thread::sleep(Duration::from_millis(600));
    let log = d.drain_log();
    assert_eq!(log.matches("syn-socket-failed").count(), 1, "{log}");
    d.stop_within(Duration::from_secs(2));
}

/// HTTP probes end as HAProxy's do: with RST once the answer is in, so the
/// backend keeps no TIME_WAIT and exchanges no FINs per probe. The server
/// answers, closes its side and then reads: RST shows as a reset, a
/// graceful close as end of file.
#[test]
fn http_probe_ends_with_rst_after_the_answer() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = std::net::TcpListener::bind("127.77.9.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (resets, graceful) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (r, g) = (Arc::clone(&resets), Arc::clone(&graceful));
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let (r, g) = (Arc::clone(&r), Arc::clone(&g));
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf);
                let _ = c.write_all(&http("200 OK", "ok"));
                let _ = c.shutdown(std::net::Shutdown::Write);
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                match c.read(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                        r.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(0) => {
                        g.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            });
        }
    });
    let mut h = Harness::start(&config(&http_hc(port, ""), &[("a", "127.77.9.1")], ""));
    h.expect("a", &[(Unknown, Up, "L7OK", "HTTP 200")]);
    std::thread::sleep(Duration::from_millis(300));
    let (r, g) = (
        resets.load(Ordering::Relaxed),
        graceful.load(Ordering::Relaxed),
    );
    assert!(r >= 2 && g == 0, "{r} ended with RST, {g} with FIN");
}

/// An HTTP check that keeps its connection: every 200 ms, a new connection
/// at least every `lifetime`.
fn reuse_hc(kind: &str, port: u16, lifetime: &str, extra: &str) -> String {
    format!(
        "      type: {kind}\n      port: {port}\n      interval: 200ms\n      fast-interval: 200ms\n      timeout: 300ms\n      rise: 2\n      fall: 2\n      params:\n        path: /healthz\n        reuse-connection: true\n        reuse-lifetime: {lifetime}\n{extra}"
    )
}

/// Lets the checks of `backends` run for `d`, pauses them, and returns
/// the snapshot once it holds every check that ended (reports reach the
/// checker within a tick, snapshots are at most a second old). A check in
/// flight at the pause is abandoned: servers may count one connection and
/// request more than the checks.
fn run_checks(
    h: &mut Harness,
    backends: &[&str],
    d: Duration,
) -> Arc<vpp_maglev::checker::Snapshot> {
    std::thread::sleep(d);
    for b in backends {
        h.checker.client().action(b, Action::Pause).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1200));
    while let Ok(e) = h.events.try_recv() {
        if let Event::Backend(b) = e {
            h.seen.push(b);
        }
    }
    h.checker.snapshot()
}

/// Counts by name.
type Counts = Vec<(String, u64)>;

/// `backend`'s checks by code and by connection.
fn checks_of(snap: &vpp_maglev::checker::Snapshot, backend: &str) -> (Counts, Counts) {
    let b = &snap.backends[backend];
    let codes = b
        .counters
        .by_code
        .iter()
        .map(|(c, n)| (c.as_str().to_string(), n))
        .collect();
    let conns = vpp_maglev::checker::ProbeCounters::CONNECTIONS
        .iter()
        .zip(b.counters.connections)
        .map(|(c, n)| (c.as_str().to_string(), n))
        .collect();
    (codes, conns)
}

/// A server's count against the checks': equal, or one more (a check
/// abandoned in flight by the pause).
fn about(server: usize, checks: u64) -> bool {
    (checks..=checks + 1).contains(&(server as u64))
}

fn count(list: &[(String, u64)], key: &str) -> u64 {
    list.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n)
}

#[test]
fn kept_connection_carries_the_checks_and_is_renewed_at_its_lifetime() {
    use common::servers::{KeepAlive, KeepMode};
    let srv = KeepAlive::start(
        "127.77.10.1:0",
        KeepMode::IdleClose(Duration::from_secs(5)),
        #[cfg(feature = "https")]
        None,
    );
    let yaml = config(
        &reuse_hc("http", srv.port(), "1s", ""),
        &[("a", "127.77.10.1")],
        "",
    );
    let mut h = Harness::start(&yaml);
    h.expect("a", &[(Unknown, Up, "L7OK", "HTTP 200")]);
    let snap = run_checks(&mut h, &["a"], Duration::from_millis(3000));
    let (codes, conns) = checks_of(&snap, "a");
    let (accepted, requests) = srv.counts();
    let checks = count(&codes, "L7OK");
    assert_eq!(codes.len(), 1, "only passes: {codes:?}");
    assert!(checks >= 12, "{checks} checks");
    // A check every 200 ms on a connection renewed every second: ~5
    // checks per connection, never one per check.
    assert!(
        accepted as u64 <= checks / 3 && accepted >= 3,
        "{accepted} connections for {checks} checks"
    );
    assert!(about(requests, checks), "one request per check: {requests}");
    let new = count(&conns, "new");
    assert!(about(accepted, new), "{accepted} connections: {conns:?}");
    assert_eq!(count(&conns, "reused"), checks - new);
    assert_eq!(count(&conns, "reconnected"), 0);
    assert!(
        h.seen.iter().all(|t| t.to == Up || t.to == Paused),
        "no flap: {:?}",
        h.seen
    );
    let last = snap.backends["a"].last.clone().unwrap();
    assert!(last.outcome.connection.is_some());
}

#[test]
fn backend_idle_timeouts_and_closes_do_not_flap_health() {
    use common::servers::{KeepAlive, KeepMode};
    // Closes a connection idle for 150 ms: checks every 200 ms always find
    // theirs closed (before the request is sent).
    let idle = KeepAlive::start(
        "127.77.10.2:0",
        KeepMode::IdleClose(Duration::from_millis(150)),
        #[cfg(feature = "https")]
        None,
    );
    let port = idle.port();
    // Closes (FIN) or resets the kept connection when the second request
    // arrives on it, answering nothing: the race of an idle timeout with
    // the request.
    let fin = KeepAlive::start(
        &format!("127.77.10.3:{port}"),
        KeepMode::CloseSecond,
        #[cfg(feature = "https")]
        None,
    );
    let rst = KeepAlive::start(
        &format!("127.77.10.4:{port}"),
        KeepMode::ResetSecond(0),
        #[cfg(feature = "https")]
        None,
    );
    // Answers `Connection: close`: a new connection every check.
    let close = KeepAlive::start(
        &format!("127.77.10.5:{port}"),
        KeepMode::AnswerClose,
        #[cfg(feature = "https")]
        None,
    );
    // Half a response and a reset on the kept connection: a failure (an
    // answer had begun), never retried.
    let half = KeepAlive::start(
        &format!("127.77.10.6:{port}"),
        KeepMode::ResetSecond(20),
        #[cfg(feature = "https")]
        None,
    );
    let yaml = config(
        &reuse_hc("http", port, "30s", ""),
        &[
            ("idle", "127.77.10.2"),
            ("fin", "127.77.10.3"),
            ("rst", "127.77.10.4"),
            ("close", "127.77.10.5"),
            ("half", "127.77.10.6"),
        ],
        "",
    );
    let mut h = Harness::start(&yaml);
    for b in ["idle", "fin", "rst", "close"] {
        h.expect(b, &[(Unknown, Up, "L7OK", "HTTP 200")]);
    }
    let all = ["idle", "fin", "rst", "close", "half"];
    let snap = run_checks(&mut h, &all, Duration::from_millis(2500));
    let counts = |b: &str| {
        let c = &snap.backends[b].counters;
        let conns: Vec<u64> = c.connections.to_vec();
        let ok = c.by_code.get(vpp_maglev::probe::Code::L7Ok);
        let all: u64 = c.by_code.iter().map(|(_, n)| n).sum();
        (ok, all, conns)
    };
    for b in ["idle", "fin", "rst", "close"] {
        let (ok, all, _) = counts(b);
        assert!(ok >= 10 && ok == all, "{b}: {ok} of {all} checks passed");
        assert!(
            h.seen
                .iter()
                .filter(|t| t.backend == b)
                .all(|t| t.to == Up || t.to == Paused),
            "{b} flapped: {:?}",
            h.seen
        );
    }
    // idle: every check after the first found the connection closed.
    let (ok, _, c) = counts("idle");
    assert_eq!((c[0], c[1]), (1, 0), "idle: {c:?}");
    assert_eq!(c[2], ok - 1);
    assert!(about(idle.counts().0, ok), "a connection per check");
    // fin, rst: the first check on a new connection; every later one
    // finds the kept connection refused at its request (the server ends a
    // connection at its second request), and is made again on a new one,
    // which is kept in turn: each check passes, none flaps.
    for (b, srv) in [("fin", &fin), ("rst", &rst)] {
        let (ok, _, c) = counts(b);
        assert_eq!((c[0], c[1], c[2]), (1, 0, ok - 1), "{b}: {c:?}");
        // Every check a connection; a reconnected one two requests.
        let (accepted, requests) = srv.counts();
        assert!(
            about(accepted, ok) && about(requests, ok + c[2]),
            "{b}: {accepted} connections, {requests} requests, {ok} checks"
        );
    }
    let (ok, _, c) = counts("close");
    assert_eq!((c[0], c[1], c[2]), (ok, 0, 0), "close: all new: {c:?}");
    let (accepted, requests) = close.counts();
    assert!(
        about(accepted, ok) && about(requests, ok),
        "close: {accepted}, {requests}"
    );
    // half: passes on new connections, fails on the kept ones.
    let c = &snap.backends["half"].counters;
    let (ok, bad) = (
        c.by_code.get(vpp_maglev::probe::Code::L7Ok),
        c.by_code.get(vpp_maglev::probe::Code::L7Rsp),
    );
    assert!(
        ok >= 4 && ok.abs_diff(bad) <= 1,
        "half: {ok} passed, {bad} failed"
    );
    assert_eq!(c.connections[2], 0, "half: a started answer is not retried");
    let accepted = half.counts().0 as u64;
    assert!(
        about(accepted as usize, ok),
        "half: {accepted} connections, {ok} passes"
    );
}

#[cfg(feature = "https")]
#[test]
fn kept_tls_connection_survives_renegotiation_and_key_update_and_a_dropped_session() {
    use common::servers::{KeepAlive, KeepMode};
    use openssl::ssl::{SslAcceptor, SslMethod, SslVersion};
    let dir = common::TempDir::new("tls-reuse");
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
            "-days",
            "2",
            "-subj",
            "/CN=t",
        ])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(out.status.success());
    let acceptor = |max: SslVersion| {
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        b.set_private_key_file(dir.path("k.pem"), openssl::ssl::SslFiletype::PEM)
            .unwrap();
        b.set_certificate_chain_file(dir.path("c.pem")).unwrap();
        b.set_max_proto_version(Some(max)).unwrap();
        b.build()
    };
    let reneg = KeepAlive::start(
        "127.77.11.1:0",
        KeepMode::TlsRenegotiate,
        Some(acceptor(SslVersion::TLS1_2)),
    );
    let port = reneg.port();
    let keyupd = KeepAlive::start(
        &format!("127.77.11.2:{port}"),
        KeepMode::TlsKeyUpdate,
        Some(acceptor(SslVersion::TLS1_3)),
    );
    let drop = KeepAlive::start(
        &format!("127.77.11.3:{port}"),
        KeepMode::TlsDrop,
        Some(acceptor(SslVersion::TLS1_3)),
    );
    let yaml = config(
        &reuse_hc("https", port, "30s", "        tls-verify: false\n"),
        &[
            ("reneg", "127.77.11.1"),
            ("keyupd", "127.77.11.2"),
            ("drop", "127.77.11.3"),
        ],
        "",
    );
    let mut h = Harness::start(&yaml);
    for b in ["reneg", "keyupd", "drop"] {
        h.expect(b, &[(Unknown, Up, "L7OK", "HTTP 200")]);
    }
    let snap = run_checks(
        &mut h,
        &["reneg", "keyupd", "drop"],
        Duration::from_millis(2500),
    );
    for b in ["reneg", "keyupd", "drop"] {
        let c = &snap.backends[b].counters;
        let ok = c.by_code.get(vpp_maglev::probe::Code::L7Ok);
        let all: u64 = c.by_code.iter().map(|(_, n)| n).sum();
        assert!(ok >= 10 && ok == all, "{b}: {ok} of {all} passed");
    }
    // Renegotiated and rekeyed, the connection carries on: one for all.
    for (b, srv) in [("reneg", &reneg), ("keyupd", &keyupd)] {
        let c = snap.backends[b].counters.connections;
        assert_eq!((c[0], c[2]), (1, 0), "{b}: {c:?}");
        assert_eq!(srv.counts().0, 1, "{b}: one connection");
        let rekeys = srv.rekeys.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            rekeys >= 5,
            "{b}: {rekeys} renegotiations/key updates completed"
        );
    }
    // The session ended after each answer: found closed, made again.
    let c = snap.backends["drop"].counters.connections;
    let ok = snap.backends["drop"]
        .counters
        .by_code
        .get(vpp_maglev::probe::Code::L7Ok);
    assert_eq!((c[0], c[1], c[2]), (1, 0, ok - 1), "drop: {c:?}");
    assert!(about(drop.counts().0, ok), "{:?} {c:?}", drop.counts());
}
