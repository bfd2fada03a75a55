//! systemd's notification protocol (`sd_notify`), without libsystemd:
//! datagrams like `READY=1` to the socket named by `NOTIFY_SOCKET` (a path,
//! or `@name` in the abstract namespace). Outside systemd it does nothing.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use log::debug;

/// Where notifications go, if anywhere.
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
}

enum Target {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// From the environment systemd gives a `Type=notify` service.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|v| {
            let b = std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()).to_vec();
            match b.first() {
                None => None,
                Some(b'@') => Some(Target::Abstract(b[1..].to_vec())),
                Some(_) => Some(Target::Path(v.into())),
            }
        });
        // WATCHDOG_PID, when set, must be us (a child must not feed it).
        let ours = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && ours)
            .map(Duration::from_micros);
        Notifier { target, watchdog }
    }

    /// How often `WATCHDOG=1` must arrive (systemd's `WatchdogSec`).
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends one notification (best effort: systemd not listening is not
    /// an error worth more than a debug line).
    pub fn send(&self, msg: &str) {
        let Some(t) = &self.target else { return };
        let Ok(sock) = UnixDatagram::unbound() else {
            return;
        };
        let r = match t {
            Target::Path(p) => sock.send_to(msg.as_bytes(), p),
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
            }
        };
        if let Err(e) = r {
            debug!("sd-notify-failed message={msg:?} error={e}");
        }
    }

    /// Configuration loaded and every thread running.
    pub fn ready(&self, status: &str) {
        self.send(&format!(
            "READY=1\nSTATUS={status}\nMAINPID={}",
            std::process::id()
        ));
    }

    /// A reload starts (systemd waits for the next `READY=1`).
    pub fn reloading(&self) {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
            .unwrap_or(0);
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={now}"));
    }

    /// Shutting down.
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// Still alive.
    pub fn watchdog_ping(&self) {
        self.send("WATCHDOG=1");
    }
}
