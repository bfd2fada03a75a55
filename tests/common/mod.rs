//! Helpers for tests that start real `maglevd` processes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, unbounded};

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "maglev-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn maglevd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_maglevd")
}

/// Whether this test can run: it needs root (raw sockets, namespaces,
/// other users' credentials). As an ordinary user `cargo test` runs
/// everything else and says what it skipped; CI runs as root.
pub fn needs_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped {test}: needs root");
    false
}

/// The one-daemon-per-VPP lock directory of this test process (every
/// daemon a test starts shares it, as on one router).
pub fn lock_dir() -> PathBuf {
    std::env::temp_dir().join(format!("maglev-test-locks-{}", std::process::id()))
}

/// A running maglevd whose stderr lines arrive on a channel.
pub struct Daemon {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Daemon {
    pub fn start(args: &[&str]) -> Daemon {
        Self::start_with(Command::new(maglevd_bin()).args(args))
    }

    pub fn start_with(cmd: &mut Command) -> Daemon {
        // Each daemon gets its own control socket and no metrics port
        // unless the test asks (flags win over these).
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let sock =
            std::env::temp_dir().join(format!("maglev-test-ctl-{}-{n}.sock", std::process::id()));
        let mut child = cmd
            .env("MAGLEV_CONTROL_SOCKET", &sock)
            .env("MAGLEV_LOCK_DIR", lock_dir())
            .env("MAGLEV_METRICS_ADDR", "")
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn maglevd");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("MAGLEV_TEST_ECHO").is_some() {
                    eprintln!("maglevd| {line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line containing every one of `parts`; returns it.
    pub fn wait_for(&mut self, parts: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if parts.iter().all(|p| line.contains(p)) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {parts:?} within {timeout:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Waits up to `timeout` for exit; returns the exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Daemon {
    /// CPU time (user + system) the process has used so far, in clock
    /// ticks (dead threads included).
    pub fn cpu_ticks(&self) -> u64 {
        cpu_ticks(self.child.id())
    }

    /// SIGTERM, then the exit code and how long the exit took (panics if
    /// it took more than `limit`).
    pub fn stop_within(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let t = Instant::now();
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let code = self.wait_exit(limit + Duration::from_secs(3));
        let took = t.elapsed();
        assert!(
            took <= limit,
            "stop took {took:?} (limit {limit:?}); log:\n{}",
            self.drain_log()
        );
        (code, took)
    }

    /// Every log line seen so far (and what is queued).
    pub fn drain_log(&mut self) -> String {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        self.seen.join("\n")
    }
}

/// A Unix listener of `kind` at `path` that never accepts, its backlog
/// already full (a hung VPP): connecting to it cannot even be queued.
/// Keep both values alive for as long as it must stay deaf.
pub fn deaf_listener(
    path: &Path,
    kind: nix::sys::socket::SockType,
) -> (std::os::fd::OwnedFd, Vec<std::os::fd::OwnedFd>) {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, UnixAddr, bind, connect, listen, socket,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(AddressFamily::Unix, kind, SockFlag::SOCK_CLOEXEC, None).unwrap();
    bind(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()).unwrap();
    listen(&fd, Backlog::new(0).unwrap()).unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = socket(
            AddressFamily::Unix,
            kind,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .unwrap();
        let _ = connect(s.as_raw_fd(), &UnixAddr::new(path).unwrap());
        fillers.push(s);
    }
    (fd, fillers)
}

/// Runs maglevc with `args` against the control socket `sock`.
pub fn maglevc(sock: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_maglevc"))
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .unwrap()
}

/// utime + stime of process `pid` from /proc (clock ticks).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15; f[0] is field 3.
    get(11) + get(12)
}

/// Clock ticks per second.
pub fn clk_tck() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100, |v| v as u64)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failing test shows what the process said (its last lines).
        if std::thread::panicking() {
            let log = self.drain_log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "--- last {} log lines of pid {}:\n{}",
                tail.len(),
                self.child.id(),
                tail.join("\n")
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub mod flood;
pub mod netns;
pub mod pty;
pub mod servers;
#[cfg(feature = "dashboard")]
pub mod webdriver;

/// A TCP port free on `ip` right now (tests bind several addresses to it),
/// and never one this test process handed out before: tests run in
/// parallel threads, and the kernel may offer a just-closed port again to
/// the next caller, which then binds it first.
#[allow(dead_code)]
pub fn free_port(ip: &str) -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Polls `f` every 5 ms until it holds; panics naming `what` after
/// `timeout`. Returns how long it took.
#[allow(dead_code)]
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    t.elapsed()
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}
