//! maglevd speaks systemd's notify protocol: READY=1 once running,
//! RELOADING=1 then READY=1 around a reload, WATCHDOG=1 when asked for,
//! STOPPING=1 on the way out — checked on a fake NOTIFY_SOCKET.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use common::{Daemon, TempDir, maglevd_bin, repo_path};

fn next(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The next notification that is not a watchdog ping.
fn next_state(sock: &UnixDatagram) -> String {
    loop {
        let m = next(sock);
        if m != "WATCHDOG=1" {
            return m;
        }
    }
}

#[test]
fn ready_reloading_watchdog_stopping() {
    let dir = TempDir::new("notify");
    let path = dir.path("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let cfg = repo_path("examples/maglev.yaml");
    let mut d = Daemon::start_with(
        Command::new(maglevd_bin())
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "200000")
            .args(["--config", cfg.to_str().unwrap()]),
    );
    let m = next_state(&sock);
    assert!(m.starts_with("READY=1\nSTATUS=running: "), "{m}");
    assert!(m.contains(&format!("MAINPID={}", d.child.id())), "{m}");
    // Watchdog pings at half of WATCHDOG_USEC.
    assert_eq!(next(&sock), "WATCHDOG=1");
    d.signal(nix::sys::signal::Signal::SIGHUP);
    let m = next_state(&sock);
    assert!(m.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{m}");
    assert!(next_state(&sock).starts_with("READY=1"));
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(next_state(&sock), "STOPPING=1");
    assert_eq!(d.wait_exit(Duration::from_secs(3)), Some(0));
}
