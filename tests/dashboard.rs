//! maglevd-frontend end to end: two real `maglevd --vpp-sim`, real backend
//! listeners, the dashboard in its own process; HTTP and the event stream
//! read over raw sockets, as a browser would.

// The daemons program their in-process simulator (`vpp-sim`); the
// dashboard is the `dashboard` feature.
#![cfg(all(feature = "vpp-sim", feature = "dashboard"))]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::servers::{Behaviour, Server, http};
use common::{Daemon, TempDir, maglevc, wait_until};
use serde_json::Value;

pub const FRONTEND_BIN: &str = env!("CARGO_BIN_EXE_maglevd-frontend");

/// A maglevd config: frontend `web` with backends `<p>1`, `<p>2` at
/// 127.83.<net>.1 and .2 on `port`.
fn config(p: &str, net: u8, port: u16) -> String {
    format!(
        "maglev:
  vpp:
    lb:
      ipv4-src-address: 192.0.2.254
      startup-min-delay: 0s
      startup-max-delay: 0s
  healthchecks:
    web: {{ type: http, port: {port}, interval: 100ms, fast-interval: 100ms, down-interval: 100ms, timeout: 80ms, rise: 1, fall: 1 }}
  backends:
    {p}1: {{ address: 127.83.{net}.1, healthcheck: web }}
    {p}2: {{ address: 127.83.{net}.2, healthcheck: web }}
  frontends:
    web:
      address: 192.0.2.{}
      protocol: tcp
      port: 80
      pools:
        - name: main
          backends: {{ {p}1: {{}}, {p}2: {{ weight: 50 }} }}
",
        net + 1
    )
}

/// One HTTP exchange: (status, body).
fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
    (status, body)
}

fn get_json(port: u16, path: &str) -> Value {
    let (st, body) = request(port, "GET", path, &[], "");
    assert_eq!(st, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// A Server-Sent Events frame.
#[derive(Debug, Clone, PartialEq)]
struct Frame {
    id: Option<String>,
    event: String,
    data: Value,
}

impl Frame {
    fn seq(&self) -> Option<u64> {
        self.id.as_ref()?.split_once('-')?.1.parse().ok()
    }
}

/// An event-stream client.
struct Sse {
    rd: BufReader<TcpStream>,
    /// Every frame read, in order.
    seen: Vec<Frame>,
}

impl Sse {
    fn open(port: u16, last_id: Option<&str>) -> Sse {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut req = format!(
            "GET /view/api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
        );
        if let Some(id) = last_id {
            req.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut rd = BufReader::new(s);
        let mut head = String::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !head.ends_with("\r\n\r\n") {
            assert!(Instant::now() < deadline, "no headers: {head}");
            let mut l = String::new();
            if rd.read_line(&mut l).is_ok() {
                head.push_str(&l);
            }
        }
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("Content-Type: text/event-stream"), "{head}");
        assert!(head.contains("X-Accel-Buffering: no"), "{head}");
        Sse {
            rd,
            seen: Vec::new(),
        }
    }

    /// The next frame, or `None` after `timeout`.
    fn next(&mut self, timeout: Duration) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        let (mut id, mut event, mut data) = (None, String::from("message"), String::new());
        let mut line = String::new();
        loop {
            if Instant::now() > deadline {
                return None;
            }
            match self.rd.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) if line.ends_with('\n') => {}
                _ => continue,
            }
            let l = std::mem::take(&mut line);
            let l = l.trim_end_matches('\n');
            if l.is_empty() {
                if data.is_empty() {
                    continue;
                }
                let f = Frame {
                    id: id.take(),
                    event: std::mem::replace(&mut event, "message".into()),
                    data: serde_json::from_str(&std::mem::take(&mut data)).unwrap(),
                };
                self.seen.push(f.clone());
                return Some(f);
            }
            if let Some(v) = l.strip_prefix("id: ") {
                id = Some(v.to_string());
            } else if let Some(v) = l.strip_prefix("event: ") {
                event = v.to_string();
            } else if let Some(v) = l.strip_prefix("data: ") {
                data.push_str(v);
            }
        }
    }

    /// Reads until a frame satisfies `f`.
    fn until(&mut self, what: &str, timeout: Duration, f: impl Fn(&Frame) -> bool) -> Frame {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(fr) = self.next(Duration::from_millis(300)) {
                if f(&fr) {
                    return fr;
                }
            }
        }
        panic!(
            "no {what} within {timeout:?}; saw {:?}",
            self.seen.iter().map(|f| &f.event).collect::<Vec<_>>()
        );
    }
}

fn transition(f: &Frame, maglevd: &str, backend: &str, to: &str) -> bool {
    f.event == "backend"
        && f.data["maglevd"] == maglevd
        && f.data["backend"] == backend
        && f.data["to"] == to
}

fn up(addr: &str, port: u16) -> Server {
    Server::start(
        &format!("{addr}:{port}"),
        Behaviour::Respond(http("200 OK", "ok")),
    )
}

fn start_maglevd(dir: &TempDir, name: &str, net: u8, port: u16) -> (Daemon, std::path::PathBuf) {
    let cfg = dir.write(&format!("{name}.yaml"), &config(name, net, port));
    let sock = dir.path(&format!("{name}.sock"));
    let d = Daemon::start(&[
        "--vpp-sim",
        "--config",
        cfg.to_str().unwrap(),
        "--control-socket",
        sock.to_str().unwrap(),
    ]);
    (d, sock)
}

/// A dashboard of `servers` on a port of its own choosing (port 0: no race
/// with other tests for a free port): the process and its port.
fn start_frontend(servers: &str, admin: bool) -> (Daemon, u16) {
    let mut cmd = Command::new(FRONTEND_BIN);
    cmd.arg("--server")
        .arg(servers)
        .arg("--listen")
        .arg("127.0.0.1:0");
    if admin {
        cmd.env("MAGLEV_FRONTEND_USER", "ops")
            .env("MAGLEV_FRONTEND_PASSWORD", "s3cret");
    } else {
        cmd.env_remove("MAGLEV_FRONTEND_USER")
            .env_remove("MAGLEV_FRONTEND_PASSWORD");
    }
    let mut fe = Daemon::start_with(&mut cmd);
    let port = listening_port(&mut fe);
    (fe, port)
}

/// The port a dashboard started on `127.0.0.1:0` says it listens on.
fn listening_port(fe: &mut Daemon) -> u16 {
    let line = fe.wait_for(&["starting", "listen=127.0.0.1:"], Duration::from_secs(5));
    line.split("listen=127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("the port in the log")
}

/// Two maglevds (`a`, `b`), each with a frontend of two backends served
/// by real listeners, and a dashboard of both (admin on).
struct Routers {
    /// The backends' port.
    port: u16,
    /// The backends' listeners: a1, a2, b1, b2 (`None`: killed).
    servers: Vec<Option<Server>>,
    da: Daemon,
    db: Daemon,
    /// The control socket of `a`.
    sa: std::path::PathBuf,
    /// The dashboard's port.
    http_port: u16,
    fe: Daemon,
}

fn two_routers(dir: &TempDir) -> Routers {
    let port = common::free_port("127.83.0.1");
    let servers = ["127.83.0.1", "127.83.0.2", "127.83.1.1", "127.83.1.2"]
        .iter()
        .map(|a| Some(up(a, port)))
        .collect();
    let (mut da, sa) = start_maglevd(dir, "a", 0, port);
    let (mut db, sb) = start_maglevd(dir, "b", 1, port);
    da.wait_for(&["ready"], Duration::from_secs(10));
    db.wait_for(&["ready"], Duration::from_secs(10));
    let (fe, http_port) = start_frontend(&format!("{},{}", sa.display(), sb.display()), true);
    assert!(fe.seen.iter().any(|l| l.contains("admin=on")));
    Routers {
        port,
        servers,
        da,
        db,
        sa,
        http_port,
        fe,
    }
}

/// `ops:s3cret`.
const AUTH: &str = "Basic b3BzOnMzY3JldA==";

#[test]
fn dashboard_state_events_replay_unreachable_and_admin() {
    let dir = TempDir::new("dashboard");
    let Routers {
        port,
        mut servers,
        mut da,
        mut db,
        sa,
        http_port,
        mut fe,
        ..
    } = two_routers(&dir);

    // The state: both maglevds, their frontend, pools, backends, weights,
    // VPP buckets, last probes.
    let mut st = Value::Null;
    wait_until(
        "both maglevds programmed and read",
        Duration::from_secs(15),
        || {
            let (code, body) = request(http_port, "GET", "/view/api/state", &[], "");
            if code != 200 {
                return false;
            }
            st = serde_json::from_str(&body).unwrap();
            st["maglevds"].as_array().is_some_and(|m| {
                m.len() == 2
                    && m.iter().all(|m| {
                        m["reachable"] == true
                            && m["frontends"][0]["pools"][0]["backends"]
                                .as_array()
                                .is_some_and(|b| {
                                    b.iter().all(|b| {
                                        b["state"] == "up" && b["buckets"].as_u64().unwrap_or(0) > 0
                                    })
                                })
                    })
            })
        },
    );
    let a = &st["maglevds"][0];
    assert_eq!(a["name"], "a");
    assert_eq!(st["maglevds"][1]["name"], "b");
    let fe_a = &a["frontends"][0];
    assert_eq!(
        (
            fe_a["name"].as_str(),
            fe_a["address"].as_str(),
            fe_a["state"].as_str()
        ),
        (Some("web"), Some("192.0.2.1"), Some("up"))
    );
    assert_eq!(fe_a["active_pool"], "main");
    let members = fe_a["pools"][0]["backends"].as_array().unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| (
                m["name"].as_str().unwrap(),
                m["weight"].as_u64().unwrap(),
                m["effective_weight"].as_u64().unwrap()
            ))
            .collect::<Vec<_>>(),
        [("a1", 100, 100), ("a2", 50, 50)]
    );
    let buckets: u64 = members.iter().map(|m| m["buckets"].as_u64().unwrap()).sum();
    assert_eq!(buckets, 1024, "VPP's table, all of it");
    assert!(members[0]["buckets"].as_u64() > members[1]["buckets"].as_u64());
    assert_eq!(a["backends"]["a1"]["last"]["code"], "L7OK");
    assert_eq!(a["vpp"]["connected"], true);
    assert_eq!(a["lb"]["vips"][0]["prefix"], "192.0.2.1/32");
    let one = get_json(http_port, "/view/api/state/b");
    assert_eq!(one["name"], "b");
    assert_eq!(
        request(http_port, "GET", "/view/api/state/zz", &[], "").0,
        404
    );
    let v = get_json(http_port, "/view/api/version");
    assert!(v["version"].is_string());
    assert_eq!(request(http_port, "GET", "/healthz", &[], "").0, 200);
    let (code, page) = request(http_port, "GET", "/view/", &[], "");
    assert!(code == 200 && page.contains("data-admin=\"0\"") && page.contains("/assets/app.js"));
    assert_eq!(request(http_port, "GET", "/favicon.ico", &[], "").0, 200);
    assert_eq!(request(http_port, "GET", "/assets/app.js", &[], "").0, 200);

    // Live: a backend killed is a transition on every stream.
    let mut s1 = Sse::open(http_port, None);
    let mut s2 = Sse::open(http_port, None);
    servers[0] = None;
    let ev = s1.until("a1 down", Duration::from_secs(5), |f| {
        transition(f, "a", "a1", "down")
    });
    assert!(ev.id.is_some(), "transitions are kept for replay");
    s2.until("a1 down", Duration::from_secs(5), |f| {
        transition(f, "a", "a1", "down")
    });
    // s2 goes away; events happen meanwhile; it comes back with its id.
    while s2.next(Duration::from_millis(300)).is_some() {}
    let last = s2.seen.iter().rev().find_map(|f| f.id.clone()).unwrap();
    let last_seq: u64 = last.split_once('-').unwrap().1.parse().unwrap();
    drop(s2);
    servers[2] = None;
    s1.until("b1 down", Duration::from_secs(5), |f| {
        transition(f, "b", "b1", "down")
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut s2 = Sse::open(http_port, Some(&last));
    let mut replayed = Vec::new();
    while let Some(f) = s2.next(Duration::from_millis(500)) {
        if f.id.is_some() {
            replayed.push(f);
        }
    }
    let seqs: Vec<u64> = replayed.iter().filter_map(Frame::seq).collect();
    assert!(!seqs.is_empty(), "something was missed");
    assert_eq!(
        seqs[0],
        last_seq + 1,
        "starts right after the last one seen"
    );
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap, no repeat: {seqs:?}"
    );
    assert!(
        replayed.iter().any(|f| transition(f, "b", "b1", "down")),
        "the missed transition"
    );
    // Each replayed event is the one the connected client got.
    while s1.next(Duration::from_millis(200)).is_some() {}
    for f in &replayed {
        let same = s1.seen.iter().find(|g| g.id == f.id);
        assert_eq!(same, Some(f), "replayed as sent");
    }
    // An id of another run (or too old) asks for a resync.
    let mut s3 = Sse::open(http_port, Some("1-1"));
    let f = s3.next(Duration::from_secs(2)).unwrap();
    assert_eq!(f.event, "resync");

    // A maglevd that goes away is shown unreachable; the other streams on.
    let _ = db.child.kill();
    let _ = db.child.wait();
    s1.until("b unreachable", Duration::from_secs(5), |f| {
        f.event == "maglevd" && f.data["maglevd"] == "b" && f.data["reachable"] == false
    });
    let m = get_json(http_port, "/view/api/maglevds");
    assert_eq!(m["maglevds"][1]["reachable"], false);
    assert_eq!(m["maglevds"][0]["reachable"], true);
    assert!(
        !m["maglevds"][1]["error"].as_str().unwrap().is_empty(),
        "{m}"
    );
    s1.until("probes of a after b left", Duration::from_secs(5), |f| {
        f.event == "probes" && f.data["maglevd"] == "a"
    });
    servers[0] = Some(up("127.83.0.1", port));
    s1.until("a1 back up", Duration::from_secs(5), |f| {
        transition(f, "a", "a1", "up")
    });

    // Admin: credentials, method, origin, then the action itself.
    let origin = format!("http://127.0.0.1:{http_port}");
    let pause = r#"{"maglevd":"a","action":"pause","backend":"a2"}"#;
    let json_ct = ("Content-Type", "application/json");
    assert_eq!(request(http_port, "GET", "/admin/", &[], "").0, 401);
    assert_eq!(
        request(
            http_port,
            "POST",
            "/admin/api/action",
            &[("Origin", &origin), json_ct],
            pause
        )
        .0,
        401
    );
    assert_eq!(
        request(
            http_port,
            "POST",
            "/admin/api/action",
            &[("Authorization", "Basic b3BzOndyb25n"), ("Origin", &origin)],
            pause
        )
        .0,
        401
    );
    let (code, page) = request(http_port, "GET", "/admin/", &[("Authorization", AUTH)], "");
    assert!(code == 200 && page.contains("data-admin=\"1\""));
    assert_eq!(
        request(
            http_port,
            "GET",
            "/admin/api/action",
            &[("Authorization", AUTH)],
            ""
        )
        .0,
        405
    );
    assert_eq!(
        request(
            http_port,
            "POST",
            "/admin/api/action",
            &[
                ("Authorization", AUTH),
                ("Origin", "http://evil.example"),
                json_ct
            ],
            pause
        )
        .0,
        403
    );
    assert_eq!(
        request(
            http_port,
            "POST",
            "/admin/api/action",
            &[("Authorization", AUTH), json_ct],
            pause
        )
        .0,
        403,
        "no origin at all"
    );
    assert_eq!(
        request(http_port, "POST", "/view/api/state", &[], "").0,
        405
    );
    let (code, body) = request(
        http_port,
        "POST",
        "/admin/api/action",
        &[("Authorization", AUTH), ("Origin", &origin), json_ct],
        pause,
    );
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    let o = maglevc(&sa, &["--json", "show", "backend", "a2"]);
    let b: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(b["backend"]["state"], "paused");
    s1.until("a2 paused", Duration::from_secs(5), |f| {
        transition(f, "a", "a2", "paused")
    });
    fe.wait_for(
        &[
            "admin-action",
            "user=ops",
            "maglevd=a",
            "set backend a2 pause",
            "ok=true",
        ],
        Duration::from_secs(2),
    );
    // A refusal is shown, not hidden: pausing a disabled backend.
    let disable = r#"{"maglevd":"a","action":"disable","backend":"a1"}"#;
    let (_, body) = request(
        http_port,
        "POST",
        "/admin/api/action",
        &[("Authorization", AUTH), ("Origin", &origin), json_ct],
        disable,
    );
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["ok"], true);
    let (_, body) = request(
        http_port,
        "POST",
        "/admin/api/action",
        &[("Authorization", AUTH), ("Origin", &origin), json_ct],
        r#"{"maglevd":"a","action":"pause","backend":"a1"}"#,
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ok"], false);
    assert!(
        v["error"].as_str().unwrap().contains("enable it first"),
        "{v}"
    );

    // SIGTERM: gone within 2 s with browsers connected.
    let (code, took) = fe.stop_within(Duration::from_secs(2));
    assert_eq!(code, Some(0), "exit status after {took:?}");
    drop((s1, s2, s3));
    let _ = da.stop_within(Duration::from_secs(2));
}

#[test]
fn admin_is_off_without_credentials() {
    let dir = TempDir::new("dashboard-noadmin");
    let (mut fe, http_port) = start_frontend(dir.path("none.sock").to_str().unwrap(), false);
    assert!(fe.seen.iter().any(|l| l.contains("admin=off")));
    assert_eq!(
        request(http_port, "GET", "/admin/", &[("Authorization", AUTH)], "").0,
        404
    );
    let m = get_json(http_port, "/view/api/maglevds");
    assert_eq!(m["maglevds"][0]["name"], "none");
    assert_eq!(m["maglevds"][0]["reachable"], false);
    let (code, _) = fe.stop_within(Duration::from_secs(2));
    assert_eq!(code, Some(0));
}

/// A maglevd with `fes` frontends of `per` backends each (TCP checks every
/// 2 s against one accepting listener on `port`).
fn big_config(fes: usize, per: usize, port: u16) -> String {
    let mut y = format!(
        "maglev:\n  vpp:\n    lb: {{ ipv4-src-address: 192.0.2.254, startup-min-delay: 0s, startup-max-delay: 0s }}\n  healthchecks:\n    t: {{ type: tcp, port: {port}, interval: 2s, rise: 1 }}\n  backends:\n"
    );
    for f in 0..fes {
        for b in 0..per {
            y.push_str(&format!(
                "    f{f}b{b}: {{ address: 127.84.{f}.{}, healthcheck: t }}\n",
                b + 1
            ));
        }
    }
    y.push_str("  frontends:\n");
    for f in 0..fes {
        y.push_str(&format!(
            "    fe{f}:\n      address: 198.18.{}.{}\n      protocol: tcp\n      port: 80\n      pools:\n        - name: main\n          backends:\n",
            f / 250,
            f % 250 + 1
        ));
        for b in 0..per {
            y.push_str(&format!("            f{f}b{b}: {{}}\n"));
        }
    }
    y
}

/// The page in a real headless Chromium: every backend shown with its
/// state, a transition appearing live, a pause by clicking in /admin/, a
/// screenshot; then the render time of 100 frontends × 10 backends.
#[test]
fn the_page_in_a_real_browser() {
    if !common::webdriver::available("the_page_in_a_real_browser") {
        return;
    }
    let dir = TempDir::new("dashboard-browser");
    let Routers {
        mut servers,
        mut da,
        mut db,
        sa,
        http_port,
        mut fe,
        ..
    } = two_routers(&dir);
    let browser = common::webdriver::Browser::start(1400, 800);
    // The admin page asks for basic auth: the browser sends it.
    browser.cdp("Network.enable", serde_json::json!({}));
    browser.cdp(
        "Network.setExtraHTTPHeaders",
        serde_json::json!({"headers": {"Authorization": AUTH}}),
    );
    browser.goto(&format!("http://127.0.0.1:{http_port}/admin/"));
    let rows = "[...document.querySelectorAll('tr[data-b]')].map(r => r.dataset.m + '/' + r.dataset.b + '=' + r.querySelector('.c-state').textContent).sort().join(' ')";
    browser.wait(
        "every backend up",
        Duration::from_secs(15),
        &format!("return window.maglev && window.maglev.ready && ({rows}) === 'a/a1=up a/a2=up b/b1=up b/b2=up'"),
    );
    assert_eq!(
        browser.eval("return document.querySelectorAll('.router').length"),
        2
    );
    // Live: a backend killed turns red without a reload.
    servers[3] = None;
    browser.wait(
        "b2 down on the page",
        Duration::from_secs(10),
        "return document.querySelector('tr[data-m=\"b\"][data-b=\"b2\"] .c-state').textContent === 'down' && [...document.querySelectorAll('#event-list li')].some(l => l.textContent.includes('backend b2 up → down'))",
    );
    // Admin: pause a2 by clicking its button.
    browser.click("button[data-act=\"pause\"][data-m=\"a\"][data-b=\"a2\"]");
    browser.wait(
        "the pause confirmed",
        Duration::from_secs(10),
        "return document.getElementById('notice').textContent.startsWith('done: set backend a2 pause')",
    );
    let o = maglevc(&sa, &["--json", "show", "backend", "a2"]);
    let b: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(b["backend"]["state"], "paused");
    browser.wait(
        "a2 paused on the page",
        Duration::from_secs(10),
        "return document.querySelector('tr[data-m=\"a\"][data-b=\"a2\"] .c-state').textContent === 'paused'",
    );
    // The wall-screen view of the same: let the sparklines fill, then keep
    // a picture (the README's).
    browser.goto(&format!("http://127.0.0.1:{http_port}/view/"));
    browser.wait(
        "the view with a2 paused and b2 down",
        Duration::from_secs(10),
        "return !!(window.maglev && window.maglev.ready && document.querySelector('tr[data-m=\"a\"][data-b=\"a2\"] .c-state').textContent === 'paused' && document.querySelector('tr[data-m=\"b\"][data-b=\"b2\"] .c-state').textContent === 'down')",
    );
    std::thread::sleep(Duration::from_secs(3));
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let out = common::repo_path("target/dashboard.png");
    std::fs::write(&out, &png).unwrap();
    eprintln!("screenshot: {}", out.display());
    let _ = fe.stop_within(Duration::from_secs(2));
    let _ = da.stop_within(Duration::from_secs(2));
    let _ = db.stop_within(Duration::from_secs(2));
    drop(servers);
}

/// 100 frontends × 10 backends in the browser: every row drawn; the time
/// of a full repaint is printed (a figure for the notes and the README,
/// not a timed assertion).
#[test]
fn a_thousand_backends_in_a_real_browser() {
    if !common::webdriver::available("a_thousand_backends_in_a_real_browser") {
        return;
    }
    let dir = TempDir::new("dashboard-big");
    let browser = common::webdriver::Browser::start(1400, 800);
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let lport = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            drop(c);
        }
    });
    let cfg = dir.write("big.yaml", &big_config(100, 10, lport));
    let sock = dir.path("big.sock");
    let mut big = Daemon::start(&[
        "--vpp-sim",
        "--config",
        cfg.to_str().unwrap(),
        "--control-socket",
        sock.to_str().unwrap(),
    ]);
    big.wait_for(&["ready"], Duration::from_secs(10));
    let (mut fe, http_port) = start_frontend(sock.to_str().unwrap(), false);
    browser.goto(&format!("http://127.0.0.1:{http_port}/view/"));
    browser.wait(
        "1,000 backends up on the page",
        Duration::from_secs(30),
        "if (!(window.maglev && window.maglev.ready)) return false; window.maglev.rerender(); const s = [...document.querySelectorAll('tr[data-b] .c-state')]; return s.length === 1000 && s.every(x => x.textContent === 'up')",
    );
    let ms = browser.eval(
        "const t = []; for (let i = 0; i < 7; i++) t.push(window.maglev.rerender()); t.sort((a, b) => a - b); return t[3]",
    );
    eprintln!(
        "render of 100 frontends x 10 backends: median {:.1} ms",
        ms.as_f64().unwrap_or(f64::NAN)
    );
    assert!(ms.as_f64().is_some());
    let _ = fe.stop_within(Duration::from_secs(2));
    let _ = big.stop_within(Duration::from_secs(2));
}

/// The dashboard is a network surface: a flood of 3,000 silent
/// connections and a 200 MB request head neither grows its threads nor its
/// memory, and a new client is served meanwhile; event streams are capped
/// (503 with Retry-After beyond) and a stream that reads nothing is let go.
#[test]
fn the_dashboard_holds_under_a_flood() {
    use common::flood::{Flood, proc_status, raise_nofile, timed_get};
    raise_nofile();
    let dir = TempDir::new("dash-flood");
    let port = common::free_port("127.83.40.1");
    let _s = [up("127.83.40.1", port), up("127.83.40.2", port)];
    let (_d, sock) = start_maglevd(&dir, "f", 40, port);
    let (mut fe, http_port) = start_frontend(sock.to_str().unwrap(), true);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    let pid = fe.child.id();
    wait_until("the dashboard sees maglevd", Duration::from_secs(5), || {
        get_json(http_port, "/view/api/maglevds")["maglevds"][0]["reachable"] == true
    });
    let threads0 = proc_status(pid, "Threads:");

    let flood = Flood::start(addr, 3000, 200 << 20);
    // A new client, again and again while the crowd goes on: the page and
    // the state within 2 s each, every time.
    let mut tries = 0;
    let mut slowest = Duration::ZERO;
    while (flood.header_sent() < 200 << 20 || flood.idle_opened() < 3000) && tries < 2000 {
        for path in ["/view/", "/view/api/state"] {
            let (status, took) = timed_get(addr, path, Duration::from_secs(2));
            assert_eq!(
                status, 200,
                "{path} during the flood (try {tries}, {took:?})"
            );
            slowest = slowest.max(took);
        }
        tries += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let threads = proc_status(pid, "Threads:");
    let peak_kb = proc_status(pid, "VmHWM:");
    let sent = flood.stop();
    eprintln!(
        "flood: {} silent connections, {} MB of request head; {tries} new clients served \
         (slowest {slowest:?}); threads {threads0} -> {threads}; peak RSS {} kB",
        sent.idle_opened,
        sent.header_bytes >> 20,
        peak_kb
    );
    assert!(sent.idle_opened >= 3000, "{sent:?}");
    assert!(sent.header_bytes >= 200 << 20, "{sent:?}");
    assert_eq!(threads, threads0, "threads grew with clients");
    assert!(peak_kb < 48 * 1024, "peak RSS {peak_kb} kB");

    // Event streams: half the connection limit (64 by default), then 503.
    let mut streams = Vec::new();
    for _ in 0..32 {
        streams.push(Sse::open(http_port, None));
    }
    let (status, body) = request(http_port, "GET", "/view/api/events", &[], "");
    assert_eq!(status, 503, "{body}");
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.write_all(b"GET /view/api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut head = String::new();
    let _ = raw.read_to_string(&mut head);
    assert!(head.contains("Retry-After: 5\r\n"), "{head}");
    // One leaves: a newcomer gets its place.
    streams.pop();
    wait_until("a freed stream slot", Duration::from_secs(2), || {
        request(http_port, "GET", "/view/api/maglevds", &[], "").0 == 200
    });
    streams.push(Sse::open(http_port, None));
    // A body beyond the admin limit is refused whole.
    let big = "x".repeat(5000);
    let (status, _) = request(
        http_port,
        "POST",
        "/admin/api/action",
        &[("Authorization", AUTH)],
        &big,
    );
    assert_eq!(status, 413);
    assert_eq!(
        proc_status(pid, "Threads:"),
        threads0,
        "threads with 32 streams"
    );
    let (code, took) = fe.stop_within(Duration::from_secs(2));
    assert_eq!(code, Some(0), "exit after {took:?}");
}

/// At its descriptor limit the dashboard stops accepting for a moment,
/// logs it once, and serves again when descriptors come back.
#[test]
fn the_dashboard_recovers_at_the_fd_limit() {
    use common::flood::timed_get;
    let dir = TempDir::new("dash-fd");
    let port = common::free_port("127.83.41.1");
    let _s = up("127.83.41.1", port);
    let (_d, sock) = start_maglevd(&dir, "g", 41, port);
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=40:40", "--", FRONTEND_BIN])
        .arg("--server")
        .arg(&sock)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--max-connections")
        .arg("64");
    let mut fe = Daemon::start_with(&mut cmd);
    let http_port = listening_port(&mut fe);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    let burst: Vec<_> = (0..80)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    fe.wait_for(&["web-accept-failed"], Duration::from_secs(5));
    assert!(fe.child.try_wait().unwrap().is_none(), "the dashboard died");
    drop(burst);
    wait_until("served after the burst", Duration::from_secs(10), || {
        timed_get(addr, "/view/", Duration::from_secs(2)).0 == 200
    });
    fe.wait_for(&["web-accept-recovered"], Duration::from_secs(5));
    let (code, _) = fe.stop_within(Duration::from_secs(2));
    assert_eq!(code, Some(0));
}

/// Admin pages over plain HTTP on a network address are warned about at
/// start, unless the operator says a TLS proxy fronts the dashboard.
#[test]
fn admin_over_plain_http_off_loopback_is_warned_about() {
    let start = |extra: &[&str]| {
        let mut cmd = Command::new(FRONTEND_BIN);
        cmd.args(["--server", "/nonexistent.sock", "--listen", "0.0.0.0:0"])
            .args(extra)
            .env("MAGLEV_FRONTEND_USER", "ops")
            .env("MAGLEV_FRONTEND_PASSWORD", "s3cret");
        let mut fe = Daemon::start_with(&mut cmd);
        fe.wait_for(&["starting"], Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(100));
        let log = fe.drain_log();
        let _ = fe.stop_within(Duration::from_secs(2));
        log
    };
    let log = start(&[]);
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("admin-over-plain-http")),
        "{log}"
    );
    let log = start(&["--behind-proxy"]);
    assert!(!log.contains("admin-over-plain-http"), "{log}");
}
