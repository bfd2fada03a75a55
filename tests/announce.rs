//! Announcing through a real BIRD 2 (Debian's `bird2`): an upstream router
//! and two load-balancing routers in network namespaces, BGP between them.
//! Each router has its own maglevd and its own VPP simulator (`vppsim`, a
//! process); maglevd writes the router's BIRD fragment and runs `birdc
//! configure`. The upstream's routing table (`birdc show route`) is the
//! oracle: which routers it learnt each VIP from.
//!
//! Needs root (namespaces) and `bird`; CI installs bird2 and sets
//! `MAGLEV_REQUIRE_BIRD=1`, elsewhere a missing bird is a visible skip.

#![cfg(feature = "vpp-sim")]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::{Netns, veth};
use common::servers::{Behaviour, Server, http};
use common::{Daemon, TempDir, wait_until};

const WEB: &str = "192.0.2.1/32";
const DEAD: &str = "192.0.2.2/32";
const HOLD_DOWN: Duration = Duration::from_secs(1);

/// A BIRD daemon in a namespace, killed on drop.
struct Bird {
    child: Child,
    sock: PathBuf,
}

impl Bird {
    fn start(ns: &Netns, conf: &Path, sock: &Path) -> Bird {
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "bird", "-f", "-c"])
            .arg(conf)
            .arg("-s")
            .arg(sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bird");
        let b = Bird {
            child,
            sock: sock.to_path_buf(),
        };
        wait_until("bird's control socket", Duration::from_secs(5), || {
            b.birdc(&["show", "status"]).contains("Daemon is up")
        });
        b
    }

    fn birdc(&self, args: &[&str]) -> String {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(&self.sock)
            .args(args)
            .output()
            .expect("run birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The BGP protocols the table has `prefix` from.
    fn paths(&self, prefix: &str) -> BTreeSet<String> {
        let text = self.birdc(&["show", "route", "for", prefix, "all"]);
        let mut out = BTreeSet::new();
        let mut inside = false;
        for line in text.lines() {
            let t = line.trim_start();
            if line.starts_with(prefix) {
                inside = true;
            } else if !line.starts_with(char::is_whitespace) {
                inside = false;
            }
            if inside {
                // `192.0.2.1/32  unicast [r1 06:40:01.123] * (100) [AS65001i]`
                if let Some(i) = t.find("unicast [") {
                    let rest = &t[i + 9..];
                    if let Some(name) = rest.split_whitespace().next() {
                        out.insert(name.to_string());
                    }
                }
            }
        }
        out
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A VPP simulator process, killed on drop.
struct Vpp {
    child: Option<Child>,
    sock: PathBuf,
}

impl Vpp {
    fn start(sock: &Path) -> Vpp {
        let mut v = Vpp {
            child: None,
            sock: sock.to_path_buf(),
        };
        v.restart();
        v
    }

    fn restart(&mut self) {
        let _ = std::fs::remove_file(&self.sock);
        self.child = Some(
            Command::new(env!("CARGO_BIN_EXE_vppsim"))
                .arg("--api-socket")
                .arg(&self.sock)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start vppsim"),
        );
        wait_until("vppsim's socket", Duration::from_secs(5), || {
            std::os::unix::net::UnixStream::connect(&self.sock).is_ok()
        });
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Vpp {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A router's BIRD configuration: `examples/bird.conf` (what the manual
/// pages show) with its include pointed at this router's file, and a BGP
/// session to the upstream that exports through its filter.
fn router_conf(id: &str, peer: &str, asn: u32, vips: &Path) -> String {
    let example = std::fs::read_to_string(common::repo_path("examples/bird.conf")).unwrap();
    assert!(example.contains("include \"/run/vpp-maglev/bird-vips.conf\";"));
    let example = example.replace(
        "/run/vpp-maglev/bird-vips.conf",
        &vips.display().to_string(),
    );
    format!(
        "router id {id};
protocol device {{}}
{example}
protocol bgp upstream {{
  local {id} as {asn}; neighbor {peer} as 65000;
  connect delay time 1; connect retry time 1; error wait time 1, 2;
  ipv4 {{ import none; export filter maglev_export4; next hop self; }};
}}
"
    )
}

fn upstream_conf() -> String {
    "router id 10.77.0.1;
protocol device {}
template bgp lb {
  local as 65000;
  connect delay time 1; connect retry time 1; error wait time 1, 2;
  ipv4 { import all; export none; };
}
protocol bgp r1 from lb { neighbor 10.77.1.2 as 65001; source address 10.77.1.1; }
protocol bgp r2 from lb { neighbor 10.77.2.2 as 65002; source address 10.77.2.1; }
"
    .to_string()
}

fn maglev_conf(vpp: &Path, vips: &Path, bird: &Path, port: u16) -> String {
    format!(
        "maglev:
  vpp:
    api-socket: {}
    stats-socket: \"\"
    lb:
      ipv4-src-address: 192.0.2.254
      sync-interval: 5s
      startup-min-delay: 0s
      startup-max-delay: 1s
  announce:
    bird:
      file: {}
      reload: [birdc, -s, {}, configure]
      reload-timeout: 2s
    hold-down: {}ms
  healthchecks:
    web:
      type: tcp
      port: {port}
      interval: 200ms
      fast-interval: 100ms
      timeout: 100ms
      rise: 2
      fall: 2
    closed:
      type: tcp
      port: 1
      interval: 200ms
      timeout: 100ms
  backends:
    a: {{ address: 127.78.0.1, healthcheck: web }}
    gone: {{ address: 127.78.0.2, healthcheck: closed }}
  frontends:
    web:
      address: 192.0.2.1
      protocol: tcp
      port: 80
      pools:
        - name: main
          backends: {{ a: {{}} }}
    dead:
      address: 192.0.2.2
      protocol: tcp
      port: 80
      pools:
        - name: main
          backends: {{ gone: {{}} }}
",
        vpp.display(),
        vips.display(),
        bird.display(),
        HOLD_DOWN.as_millis()
    )
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Waits until the upstream learns `prefix` from exactly `want`; returns
/// how long that took.
fn until_paths(up: &Bird, prefix: &str, want: &[&str], timeout: Duration) -> Duration {
    let want = set(want);
    let t = Instant::now();
    loop {
        let got = up.paths(prefix);
        if got == want {
            return t.elapsed();
        }
        if t.elapsed() > timeout {
            panic!(
                "upstream has {prefix} from {got:?}, not {want:?}, after {timeout:?}:\n{}",
                up.birdc(&["show", "route", "all"])
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bgp_through_real_bird_follows_what_each_router_can_serve() {
    if !common::needs_root("bgp_through_real_bird_follows_what_each_router_can_serve") {
        return;
    }
    if Command::new("bird").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("MAGLEV_REQUIRE_BIRD").is_none(),
            "MAGLEV_REQUIRE_BIRD is set but bird is not installed"
        );
        eprintln!("skipped bgp_through_real_bird: bird (Debian bird2) is not installed");
        return;
    }
    let dir = TempDir::new("announce");
    let up_ns = Netns::new("aup");
    let r1_ns = Netns::new("ar1");
    let r2_ns = Netns::new("ar2");
    let (u1, s1) = veth("mab1", &up_ns, &r1_ns);
    let (u2, s2) = veth("mab2", &up_ns, &r2_ns);
    up_ns.ip(&["addr", "add", "10.77.1.1/30", "dev", &u1]);
    r1_ns.ip(&["addr", "add", "10.77.1.2/30", "dev", &s1]);
    up_ns.ip(&["addr", "add", "10.77.2.1/30", "dev", &u2]);
    r2_ns.ip(&["addr", "add", "10.77.2.2/30", "dev", &s2]);

    // Each router's fragment exists before its BIRD reads its config.
    let frag = |n: &str| {
        dir.write(
            &format!("{n}-vips.conf"),
            "define MAGLEV_VIPS4 = [ ];\ndefine MAGLEV_VIPS6 = [ ];\n",
        )
    };
    let (v1, v2) = (frag("r1"), frag("r2"));
    let up_conf = dir.write("up.conf", &upstream_conf());
    let r1_conf = dir.write(
        "r1.conf",
        &router_conf("10.77.1.2", "10.77.1.1", 65001, &v1),
    );
    let r2_conf = dir.write(
        "r2.conf",
        &router_conf("10.77.2.2", "10.77.2.1", 65002, &v2),
    );
    let up = Bird::start(&up_ns, &up_conf, &dir.path("up.ctl"));
    let b1 = Bird::start(&r1_ns, &r1_conf, &dir.path("r1.ctl"));
    let b2 = Bird::start(&r2_ns, &r2_conf, &dir.path("r2.ctl"));

    let port = common::free_port("127.78.0.1");
    let mut backend = Some(Server::start(
        &format!("127.78.0.1:{port}"),
        Behaviour::Respond(http("200 OK", "ok")),
    ));
    let mut vpp1 = Vpp::start(&dir.path("vpp1.sock"));
    let vpp2 = Vpp::start(&dir.path("vpp2.sock"));
    let c1 = dir.write("m1.yaml", &maglev_conf(&vpp1.sock, &v1, &b1.sock, port));
    let c2 = dir.write("m2.yaml", &maglev_conf(&vpp2.sock, &v2, &b2.sock, port));
    let state1 = dir.path("state1");
    let state2 = dir.path("state2");
    let start = |cfg: &Path, state: &Path| {
        Daemon::start(&[
            "--config",
            cfg.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ])
    };
    let mut m1 = start(&c1, &state1);
    let mut m2 = start(&c2, &state2);
    let ctl1 = ctl_of(&mut m1);

    // A servable VIP from both routers, an unservable one from none.
    let t = until_paths(&up, WEB, &["r1", "r2"], Duration::from_secs(30));
    eprintln!("announced by both after {t:?}");
    assert!(up.paths(DEAD).is_empty(), "{:?}", up.paths(DEAD));
    let show = common::maglevc(&ctl1, &["show", "announce"]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("192.0.2.1") && l.contains(" yes "))
            && text
                .lines()
                .any(|l| l.starts_with("192.0.2.2") && l.contains("no-serving-backend")),
        "{text}"
    );

    // One router's VPP dies: its path goes within 3 s.
    let t0 = Instant::now();
    vpp1.kill();
    until_paths(&up, WEB, &["r2"], Duration::from_secs(3));
    let vpp_death = t0.elapsed();
    m1.wait_for(
        &["vip-withdraw", "address=192.0.2.1", "reason=vpp-down"],
        Duration::from_secs(1),
    );

    // Back: the path returns within hold-down + 4 s.
    let t0 = Instant::now();
    vpp1.restart();
    until_paths(&up, WEB, &["r1", "r2"], HOLD_DOWN + Duration::from_secs(4));
    let vpp_back = t0.elapsed();

    // Every backend down: withdrawn by both.
    let t0 = Instant::now();
    backend.take();
    until_paths(&up, WEB, &[], Duration::from_secs(4));
    let all_down = t0.elapsed();
    m2.wait_for(
        &[
            "vip-withdraw",
            "address=192.0.2.1",
            "reason=no-serving-backend",
        ],
        Duration::from_secs(1),
    );
    backend = Some(Server::start(
        &format!("127.78.0.1:{port}"),
        Behaviour::Respond(http("200 OK", "ok")),
    ));
    until_paths(&up, WEB, &["r1", "r2"], Duration::from_secs(6));

    // maglevd stopped (SIGTERM): its paths go within 3 s, inside the stop bound.
    let t0 = Instant::now();
    let (code, took) = m1.stop_within(Duration::from_secs(2));
    assert_eq!(code, Some(0));
    until_paths(&up, WEB, &["r2"], Duration::from_secs(3));
    let sigterm = t0.elapsed();
    assert!(
        std::fs::read_to_string(&v1)
            .unwrap()
            .contains("define MAGLEV_VIPS4 = [ ];"),
        "the stop left the sets empty"
    );
    eprintln!("SIGTERM: maglevd exited after {took:?}");

    // maglevd killed (SIGKILL): the unit's ExecStopPost (maglevd --withdraw).
    let t0 = Instant::now();
    m2.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = m2.wait_exit(Duration::from_secs(2));
    assert_eq!(
        up.paths(WEB),
        set(&["r2"]),
        "a killed maglevd withdraws nothing itself"
    );
    let out = Command::new(common::maglevd_bin())
        .args(["--withdraw", "--config", c2.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    until_paths(&up, WEB, &[], Duration::from_secs(3));
    let sigkill = t0.elapsed();
    drop(backend);

    eprintln!(
        "cause to path gone upstream: VPP killed {vpp_death:?}, all backends down {all_down:?}, \
         SIGTERM {sigterm:?}, SIGKILL + --withdraw {sigkill:?}; VPP back to path back {vpp_back:?}"
    );
}

/// The control socket a [`Daemon`] was given.
fn ctl_of(d: &mut Daemon) -> PathBuf {
    let line = d.wait_for(&["control-listening"], Duration::from_secs(5));
    let path = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("path="))
        .unwrap_or_default()
        .trim_matches('"');
    PathBuf::from(path)
}

/// A configuration for maglevd `--vpp-sim` (no root, no BIRD): `web` on a
/// backend the test serves, announce settings from `announce`.
fn sim_conf(port: u16, announce: &str) -> String {
    format!(
        "maglev:
  vpp:
    lb:
      ipv4-src-address: 192.0.2.254
      startup-min-delay: 0s
      startup-max-delay: 0s
{announce}
  healthchecks:
    web:
      type: tcp
      port: {port}
      interval: 100ms
      timeout: 80ms
      rise: 1
      fall: 1
  backends:
    a: {{ address: 127.78.1.1, healthcheck: web }}
  frontends:
    web:
      address: 192.0.2.1
      protocol: tcp
      port: 80
      pools:
        - name: main
          backends: {{ a: {{}} }}
"
    )
}

fn sim_daemon(cfg: &Path, state: &Path, ctl: &Path) -> Daemon {
    Daemon::start(&[
        "--vpp-sim",
        "--config",
        cfg.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--control-socket",
        ctl.to_str().unwrap(),
    ])
}

fn lines_of(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The reload and notify argvs as an operator's scripts see them; the
/// maintenance withdraw, kept across a restart; all without BIRD.
#[test]
fn reload_notify_and_maintenance_as_scripts_see_them() {
    let dir = TempDir::new("announce-sim");
    let port = common::free_port("127.78.1.1");
    let _backend = Server::start(
        &format!("127.78.1.1:{port}"),
        Behaviour::Respond(http("200 OK", "ok")),
    );
    let file = dir.path("vips.conf");
    let reloads = dir.path("reloads.log");
    let notes = dir.path("notify.log");
    let announce = format!(
        "  announce:
    bird:
      file: {}
      reload: [/bin/sh, -c, 'cat \"$0\" >> {}', {}]
    hold-down: 200ms
    notify: [/bin/sh, -c, 'echo \"$@\" >> {}', notify]",
        file.display(),
        reloads.display(),
        file.display(),
        notes.display()
    );
    let cfg = dir.write("m.yaml", &sim_conf(port, &announce));
    let state = dir.path("state");
    let ctl = dir.path("ctl.sock");
    let mut d = sim_daemon(&cfg, &state, &ctl);
    d.wait_for(
        &["vip-announce", "address=192.0.2.1", "frontends=web"],
        Duration::from_secs(5),
    );
    wait_until(
        "the reload read the announce",
        Duration::from_secs(2),
        || {
            lines_of(&reloads)
                .iter()
                .any(|l| l == "define MAGLEV_VIPS4 = [ 192.0.2.1/32 ];")
        },
    );
    // The first write is the empty sets (nothing announced at start).
    let r = lines_of(&reloads);
    let first = r
        .iter()
        .position(|l| l.starts_with("define MAGLEV_VIPS4"))
        .unwrap();
    assert_eq!(r[first], "define MAGLEV_VIPS4 = [ ];", "{r:?}");
    wait_until("notify announce", Duration::from_secs(2), || {
        lines_of(&notes).contains(&"web 192.0.2.1 announce -".to_string())
    });
    let show = |ctl: &Path| {
        String::from_utf8_lossy(&common::maglevc(ctl, &["--json", "show", "announce"]).stdout)
            .into_owned()
    };
    let v: serde_json::Value = serde_json::from_str(&show(&ctl)).unwrap();
    assert_eq!(v["addresses"][0]["announced"], true, "{v}");
    assert_eq!(v["last_reload"]["result"], "ok", "{v}");
    // The frontend's own view says the same (maglevc's BGP column).
    let fe = |ctl: &Path| {
        let out = common::maglevc(ctl, &["--json", "show", "frontend", "web"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["frontend"].clone()
    };
    assert_eq!(fe(&ctl)["announced"], true);
    let table = common::maglevc(&ctl, &["show", "frontends"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.lines().next().unwrap().ends_with("BGP"), "{table}");
    assert!(
        table.lines().nth(1).unwrap().ends_with("announced"),
        "{table}"
    );

    // Maintenance: withdrawn with its reason, kept across a restart.
    let out = common::maglevc(&ctl, &["set", "announce", "withdraw"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_for(
        &["vip-withdraw", "address=192.0.2.1", "reason=maintenance"],
        Duration::from_secs(2),
    );
    wait_until("notify withdraw", Duration::from_secs(2), || {
        lines_of(&notes).contains(&"web 192.0.2.1 withdraw maintenance".to_string())
    });
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("define MAGLEV_VIPS4 = [ ];")
    );
    d.stop_within(Duration::from_secs(2));
    let mut d = sim_daemon(&cfg, &state, &ctl);
    d.wait_for(&["ready"], Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(600));
    let v: serde_json::Value = serde_json::from_str(&show(&ctl)).unwrap();
    assert_eq!(v["maintenance"], true, "{v}");
    assert_eq!(v["addresses"][0]["announced"], false, "{v}");
    assert_eq!(v["addresses"][0]["reason"], "maintenance", "{v}");
    assert_eq!(fe(&ctl)["announced"], false);
    assert_eq!(fe(&ctl)["announce_reason"], "maintenance");
    let out = common::maglevc(&ctl, &["set", "announce", "restore"]);
    assert!(out.status.success());
    d.wait_for(
        &["vip-announce", "address=192.0.2.1"],
        Duration::from_secs(2),
    );
    d.stop_within(Duration::from_secs(2));
}

/// A reload that fails is logged, counted, retried with backoff and shown;
/// one that hangs is killed after reload-timeout, and stopping maglevd is
/// not held up by it.
#[test]
fn failing_and_hanging_reloads_are_bounded() {
    let dir = TempDir::new("announce-bad");
    let port = common::free_port("127.78.1.1");
    let _backend = Server::start(
        &format!("127.78.1.1:{port}"),
        Behaviour::Respond(http("200 OK", "ok")),
    );
    let file = dir.path("vips.conf");
    let failing = format!(
        "  announce:
    bird:
      file: {}
      reload: [/bin/sh, -c, 'echo bird says no >&2; exit 3']",
        file.display()
    );
    let cfg = dir.write("fail.yaml", &sim_conf(port, &failing));
    let ctl = dir.path("ctl.sock");
    let mut d = sim_daemon(&cfg, &dir.path("s1"), &ctl);
    let l = d.wait_for(
        &["announce-reload-failed", "result=failed"],
        Duration::from_secs(3),
    );
    assert!(
        l.contains("bird says no") && l.contains("retry-in-ms=1000"),
        "{l}"
    );
    let l = d.wait_for(&["announce-reload-failed"], Duration::from_secs(3));
    assert!(l.contains("retry-in-ms=2000"), "backoff doubles: {l}");
    let v: serde_json::Value =
        serde_json::from_slice(&common::maglevc(&ctl, &["--json", "show", "announce"]).stdout)
            .unwrap();
    assert_eq!(v["last_reload"]["result"], "failed", "{v}");
    assert!(
        v["last_reload"]["detail"]
            .as_str()
            .unwrap()
            .contains("bird says no")
    );
    d.stop_within(Duration::from_secs(2));

    let hanging = format!(
        "  announce:
    bird:
      file: {}
      reload: [/bin/sleep, '30']
      reload-timeout: 300ms
    hold-down: 0s",
        file.display()
    );
    let cfg = dir.write("hang.yaml", &sim_conf(port, &hanging));
    let mut d = sim_daemon(&cfg, &dir.path("s2"), &ctl);
    d.wait_for(&["vip-announce"], Duration::from_secs(5));
    let t = Instant::now();
    d.wait_for(
        &["announce-reload-failed", "result=timeout"],
        Duration::from_secs(3),
    );
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "killed after {:?}",
        t.elapsed()
    );
    // Stop while the retry (1 s later) hangs again: within the 2 s bound.
    std::thread::sleep(Duration::from_millis(1200));
    let (code, _) = d.stop_within(Duration::from_secs(2));
    assert_eq!(code, Some(0));
}
