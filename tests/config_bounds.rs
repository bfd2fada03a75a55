//! Every duration and number in maglev.yaml, at every value that matters:
//! each either fails validation with a message naming the key and the
//! allowed range, or runs: the cores that compute with it (reconciler
//! timing, probe schedule, health cadence) are driven with it and must not
//! panic. Then the extreme accepted values go through SIGHUP into a
//! running daemon, which must survive, answer and stop in time. Plus a
//! bounded fuzz loop over the loader (random mutations of a valid file).

// Drives the VPP simulator (the default `vpp-sim` feature).
#![cfg(feature = "vpp-sim")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use vpp_maglev::config::{self, Config, ConfigError};
use vpp_maglev::probe::schedule::Schedule;
use vpp_maglev::vpp::reconciler::core::{Core, Timing};

const BASE: &str = "\
maglev:
  healthchecker:
    transition-history: @history@
    threads: @threads@
  vpp:
    api-socket: /run/vpp/api.sock
    stats-interval: @stats-interval@
    lb:
      ipv4-src-address: 192.0.2.254
      sticky-buckets-per-core: @sticky@
      flow-timeout: @flow-timeout@
      sync-interval: @sync-interval@
      startup-min-delay: @startup-min-delay@
      startup-max-delay: @startup-max-delay@
  healthchecks:
    h:
      type: http
      port: @port@
      interval: @interval@
      fast-interval: @fast-interval@
      down-interval: @down-interval@
      timeout: @timeout@
      rise: @rise@
      fall: @fall@
  backends:
    b: { address: 127.0.0.1, healthcheck: h }
  frontends:
    web:
      address: 192.0.2.1
      protocol: tcp
      port: @fe-port@
      pools:
        - name: p
          backends: { b: { weight: @weight@ } }
";

/// (placeholder, YAML key path, default) of every duration.
const DURATIONS: &[(&str, &str, &str)] = &[
    ("stats-interval", "maglev.vpp.stats-interval", "5s"),
    ("flow-timeout", "maglev.vpp.lb.flow-timeout", "40s"),
    ("sync-interval", "maglev.vpp.lb.sync-interval", "30s"),
    ("startup-min-delay", "maglev.vpp.lb.startup-min-delay", "0s"),
    ("startup-max-delay", "maglev.vpp.lb.startup-max-delay", "0s"),
    ("interval", "maglev.healthchecks.h.interval", "1h"),
    ("fast-interval", "maglev.healthchecks.h.fast-interval", "1s"),
    ("down-interval", "maglev.healthchecks.h.down-interval", "1s"),
    ("timeout", "maglev.healthchecks.h.timeout", "10ms"),
];

/// (placeholder, YAML key path, default) of every number.
const NUMBERS: &[(&str, &str, &str)] = &[
    ("history", "maglev.healthchecker.transition-history", "5"),
    ("threads", "maglev.healthchecker.threads", "1"),
    ("sticky", "maglev.vpp.lb.sticky-buckets-per-core", "1024"),
    ("port", "maglev.healthchecks.h.port", "80"),
    ("rise", "maglev.healthchecks.h.rise", "2"),
    ("fall", "maglev.healthchecks.h.fall", "3"),
    ("fe-port", "maglev.frontends.web.port", "80"),
    (
        "weight",
        "maglev.frontends.web.pools[0].backends.b.weight",
        "100",
    ),
];

const DURATION_VALUES: &[&str] = &[
    "0s",
    "1ns",
    "9ms",
    "10ms",
    "999ms",
    "1s",
    "40s",
    "121s",
    "59m",
    "1h",
    "61m",
    "24h",
    "25h",
    "8760h",
    "100000000h",
    "18446744073709551615s",
    "18446744073709551616s",
    "-1s",
    "1.5s",
    "abc",
    "0",
    "3600",
    "99999999999999999999",
];

const NUMBER_VALUES: &[&str] = &[
    "0",
    "1",
    "2",
    "63",
    "64",
    "65",
    "100",
    "101",
    "1000",
    "1001",
    "65535",
    "65536",
    "1024",
    "1000000",
    "2147483648",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
    "1.5",
    "x",
];

fn text(key: &str, value: &str) -> String {
    let mut t = BASE.to_string();
    for (k, _, d) in DURATIONS.iter().chain(NUMBERS) {
        let v = if *k == key { value } else { d };
        t = t.replace(&format!("@{k}@"), v);
    }
    t
}

/// Computes with every time and number of `c` the way the daemon does.
fn exercise(c: &Config) {
    let t0 = Instant::now();
    let mut core = Core::new(Timing::of(c), t0, true);
    let mut now = t0;
    for _ in 0..50 {
        while core.poll(now).is_some() {
            core.connected(now);
            if let Some(vpp_maglev::vpp::reconciler::core::Action::Sync(s)) = core.poll(now) {
                core.synced(now, &s);
            }
        }
        match core.next_wakeup(now) {
            Some(w) => {
                assert!(w > now, "wake-up at or before now");
                now = w;
            }
            None => break,
        }
    }
    let mut s: Schedule<()> = Schedule::new(t0, vpp_maglev::probe::schedule::Jitter::new(7));
    for (i, hc) in c.healthchecks.values().enumerate() {
        for (k, d) in [hc.interval, hc.fast_interval, hc.down_interval, hc.timeout]
            .into_iter()
            .enumerate()
        {
            let id = (i * 4 + k) as u32;
            s.insert(id, (), d, d, t0);
            let late = t0.checked_add(d).unwrap_or(t0);
            while let Some((id, _)) = s.pop_due(late) {
                s.finished(id, late, late);
            }
            s.set_interval(id, d / 2, late);
            let _ = s.next_start().map(|t| s.on_tick(t));
        }
    }
}

#[test]
fn every_duration_and_number_is_refused_with_its_range_or_runs() {
    let mut accepted = 0;
    let mut refused = 0;
    for (key, path, _) in DURATIONS {
        for v in DURATION_VALUES {
            check(key, path, v, &mut accepted, &mut refused);
        }
    }
    for (key, path, _) in NUMBERS {
        for v in NUMBER_VALUES {
            check(key, path, v, &mut accepted, &mut refused);
        }
    }
    eprintln!("{accepted} accepted and exercised, {refused} refused with a reason");
    assert!(accepted > 40 && refused > 100);
}

fn check(key: &str, path: &str, value: &str, accepted: &mut usize, refused: &mut usize) {
    let t = text(key, value);
    match config::parse(&t, Path::new("b.yaml")) {
        Ok(c) => {
            exercise(&c);
            *accepted += 1;
        }
        Err(ConfigError::Semantic { problems, .. }) => {
            // The problem names this key, or a sibling it conflicts with
            // (a timeout above a shortened interval, tcp on port 0).
            let parent = |p: &str| {
                p.rsplit_once('.')
                    .map_or(String::new(), |x| x.0.to_string())
            };
            let p = problems
                .iter()
                .find(|p| p.path == path)
                .or_else(|| problems.iter().find(|p| parent(&p.path) == parent(path)))
                .unwrap_or_else(|| panic!("{key}={value}: no problem at {path}: {problems:?}"));
            let m = &p.message;
            let names_range = m.contains("outside")
                || m.contains("exceeds")
                || m.contains("between")
                || m.contains("..")
                || m.contains("needs a port");
            if !names_range {
                eprintln!("NO RANGE {key}={value}: {m}");
            }
            assert!(names_range, "{key}={value}: {m}");
            *refused += 1;
        }
        Err(e) => {
            // Stage 1 (type or syntax): the line of the key is named.
            let s = e.to_string();
            let line = t
                .lines()
                .position(|l| l.contains(&format!(": {value}")))
                .map(|i| i + 1);
            assert!(
                line.is_some_and(|l| s.contains(&format!("b.yaml:{l}:"))),
                "{key}={value}: error does not name the line: {s}"
            );
            *refused += 1;
        }
    }
}

#[test]
fn a_bounded_fuzz_of_the_loader_never_panics() {
    // xorshift: reproducible, no dependency.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let base = text("", "");
    let bytes = base.as_bytes();
    let alphabet = b" \n\t:-[]{}#&*!|>'\"%@`,?0123456789abcxyzhms.";
    let t0 = Instant::now();
    let mut n = 0;
    while n < 20_000 && t0.elapsed() < Duration::from_secs(20) {
        let mut m = bytes.to_vec();
        for _ in 0..1 + rnd() % 8 {
            let at = (rnd() as usize) % m.len();
            match rnd() % 4 {
                0 => m[at] = alphabet[(rnd() as usize) % alphabet.len()],
                1 => {
                    m.remove(at);
                }
                2 => m.insert(at, alphabet[(rnd() as usize) % alphabet.len()]),
                _ => {
                    let len = (rnd() as usize) % 64;
                    let end = (at + len).min(m.len());
                    let chunk = m[at..end].to_vec();
                    m.splice(at..at, chunk);
                }
            }
        }
        let Ok(s) = String::from_utf8(m) else {
            continue;
        };
        if let Ok(c) = config::parse(&s, Path::new("f.yaml")) {
            exercise(&c);
        }
        n += 1;
    }
    eprintln!("fuzzed {n} mutations in {:?}", t0.elapsed());
    assert!(n >= 1000);
}

#[test]
fn extreme_accepted_values_through_sighup_keep_the_daemon_alive() {
    use common::{Daemon, TempDir, maglevd_bin};
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    let dir = TempDir::new("bounds");
    let api = dir.path("api.sock");
    let _sim =
        vpp_maglev::vpp::sim::Sim::start(vpp_maglev::vpp::sim::SimOptions::new(&api)).unwrap();
    let with_api = |t: String| t.replace("/run/vpp/api.sock", api.to_str().unwrap());
    let cfg = dir.write("m.yaml", &with_api(text("", "")));
    let ctl = dir.path("ctl.sock");
    let mut d = Daemon::start_with(std::process::Command::new(maglevd_bin()).args([
        "--config",
        cfg.to_str().unwrap(),
        "--control-socket",
        ctl.to_str().unwrap(),
    ]));
    d.wait_for(&["ready"], Duration::from_secs(5));
    let answers = || {
        let Ok(mut s) = UnixStream::connect(&ctl) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        let _ = s.write_all(b"show frontend web\n");
        let mut l = String::new();
        BufReader::new(s).read_line(&mut l).is_ok() && l.contains("\"ok\":true")
    };
    // The largest and smallest accepted, and refused ones, one by one.
    let cases: Vec<(&str, &str)> = vec![
        ("sync-interval", "24h"),
        ("sync-interval", "1s"),
        ("startup-min-delay", "1h"),
        ("startup-max-delay", "1h"),
        ("stats-interval", "1h"),
        ("interval", "10ms"),
        ("down-interval", "1h"),
        ("sync-interval", "18446744073709551615s"),
        ("interval", "100000000h"),
        ("threads", "64"),
        ("rise", "1000"),
    ];
    for (key, value) in cases {
        dir.write("m.yaml", &with_api(text(key, value)));
        d.signal(nix::sys::signal::Signal::SIGHUP);
        let line = loop {
            let l = d.wait_for(&["config-reload"], Duration::from_secs(5));
            if !l.contains("requested") && !l.contains("config-reload-failed") {
                break l;
            }
        };
        assert!(
            line.contains("config-reloaded") || line.contains("config-reload-rejected"),
            "{key}={value}: {line}"
        );
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            d.child.try_wait().unwrap().is_none(),
            "{key}={value} killed it"
        );
        assert!(answers(), "{key}={value}: no answer");
    }
    let (code, _) = d.stop_within(Duration::from_secs(2));
    assert_eq!(code, Some(0));
}
