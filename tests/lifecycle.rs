//! maglevd as a process: start, SIGHUP with a broken then a good file, SIGTERM.

mod common;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use common::{Daemon, TempDir};

const GOOD: &str = "\
maglev:
  vpp: { api-socket: \"\" }
  healthchecks:
    p: { type: tcp, port: 1 }
  backends:
    a: { address: 127.0.0.1, healthcheck: p }
";

#[test]
fn reload_keeps_old_config_on_error_then_applies_good_one_and_stops_fast() {
    let dir = TempDir::new("life");
    let file = dir.write("maglev.yaml", GOOD);
    let mut d = Daemon::start(&["--config", file.to_str().unwrap()]);
    d.wait_for(&["config-loaded", "backends=1"], Duration::from_secs(5));
    d.wait_for(&["ready"], Duration::from_secs(5));

    // Broken: an unknown key on line 6. The running config stays.
    std::fs::write(
        &file,
        GOOD.replace("healthcheck: p }", "healthcheck: p, wieght: 1 }"),
    )
    .unwrap();
    d.signal(Signal::SIGHUP);
    let line = d.wait_for(&["config-reload-failed"], Duration::from_secs(5));
    assert!(line.contains(&format!("{}:6:", file.display())), "{line}");
    assert!(line.contains("maglev.backends.a.wieght"), "{line}");
    d.wait_for(
        &["config-reload-rejected", "keeping=running-config"],
        Duration::from_secs(5),
    );

    // Semantic error: also rejected, with the key path.
    std::fs::write(
        &file,
        GOOD.replace("healthcheck: p }", "healthcheck: nope }"),
    )
    .unwrap();
    d.signal(Signal::SIGHUP);
    let line = d.wait_for(&["config-reload-failed"], Duration::from_secs(5));
    assert!(line.contains("maglev.backends.a.healthcheck"), "{line}");

    // Good: a second backend becomes active.
    std::fs::write(
        &file,
        format!("{GOOD}    b: {{ address: 127.0.0.2, healthcheck: p }}\n"),
    )
    .unwrap();
    d.signal(Signal::SIGHUP);
    let line = d.wait_for(&["config-reloaded"], Duration::from_secs(5));
    assert!(
        line.contains("backends=2") && line.contains("+backend:b"),
        "{line}"
    );

    let t = Instant::now();
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(2)), Some(0));
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn sigint_also_stops_cleanly() {
    let dir = TempDir::new("life");
    let file = dir.write("maglev.yaml", GOOD);
    let mut d = Daemon::start(&["--config", file.to_str().unwrap()]);
    d.wait_for(&["ready"], Duration::from_secs(5));
    d.signal(Signal::SIGINT);
    assert_eq!(d.wait_exit(Duration::from_secs(2)), Some(0));
}

#[test]
fn invalid_config_at_start_exits_with_check_codes() {
    let dir = TempDir::new("life");
    let file = dir.write("maglev.yaml", &GOOD.replace("port: 1", "port: 0"));
    let mut d = Daemon::start(&["--config", file.to_str().unwrap()]);
    d.wait_for(
        &["config-invalid", "maglev.healthchecks.p.port"],
        Duration::from_secs(5),
    );
    assert_eq!(d.wait_exit(Duration::from_secs(2)), Some(2));
}

#[test]
fn journal_stream_gets_syslog_priorities() {
    // With JOURNAL_STREAM naming stderr, lines carry <N> and no timestamp.
    let dir = TempDir::new("life");
    let file = dir.write("maglev.yaml", GOOD);
    let log = dir.path("stderr.log");
    let out = std::fs::File::create(&log).unwrap();
    let meta = std::os::unix::fs::MetadataExt::dev(&out.metadata().unwrap());
    let ino = std::os::unix::fs::MetadataExt::ino(&out.metadata().unwrap());
    let mut child = std::process::Command::new(common::maglevd_bin())
        .args(["--config", file.to_str().unwrap()])
        .env("JOURNAL_STREAM", format!("{meta}:{ino}"))
        .env("MAGLEV_LOCK_DIR", common::lock_dir())
        // Never the system path: a test must not touch /run/vpp-maglev.
        .env("MAGLEV_CONTROL_SOCKET", dir.path("ctl.sock"))
        .env("MAGLEV_METRICS_ADDR", "")
        .stderr(out)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&log).unwrap().contains("ready") {
        assert!(Instant::now() < deadline, "no ready line");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("<6>starting "), "{first}");
}
