//! A hostile crowd against an HTTP listener, as an attacker on the same
//! host would send it: connections opened and left silent, and a request
//! head that never ends. Used by tests/dashboard.rs (bounds asserted) and
//! benches/dashboard_footprint.rs (the hostile row measured).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The crowd while it runs.
pub struct Flood {
    stop: Arc<AtomicBool>,
    idle: JoinHandle<u64>,
    header: JoinHandle<u64>,
    header_sent: Arc<AtomicU64>,
    idle_opened: Arc<AtomicU64>,
}

/// What a flood sent.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    /// Silent connections opened.
    pub idle_opened: u64,
    /// Bytes of never-ending request heads.
    pub header_bytes: u64,
}

impl Flood {
    /// Keeps `idle` silent connections open to `addr` (opening new ones as
    /// fast as the server takes them, the oldest closed beyond `idle`) and
    /// sends up to `header_bytes` of request heads that never end, in
    /// 8 KB header lines, reconnecting whenever the server cuts one.
    pub fn start(addr: SocketAddr, idle: usize, header_bytes: u64) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let s1 = Arc::clone(&stop);
        let idle_opened = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&idle_opened);
        let idle = std::thread::spawn(move || {
            let mut held = std::collections::VecDeque::new();
            let mut opened = 0;
            while !s1.load(Ordering::Relaxed) {
                match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                    Ok(s) => {
                        opened += 1;
                        count.store(opened, Ordering::Relaxed);
                        held.push_back(s);
                        if held.len() > idle {
                            held.pop_front();
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
                // Once `idle` are open, keep churning at a lower rate.
                if opened as usize >= idle {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            opened
        });
        let (s2, sent) = (Arc::clone(&stop), Arc::new(AtomicU64::new(0)));
        let sent2 = Arc::clone(&sent);
        let header = std::thread::spawn(move || {
            let line = {
                let mut l = b"X-Pad: ".to_vec();
                l.extend(std::iter::repeat_n(b'a', 8 * 1024 - 9));
                l.extend_from_slice(b"\r\n");
                l
            };
            while !s2.load(Ordering::Relaxed) && sent2.load(Ordering::Relaxed) < header_bytes {
                let Ok(mut s) = TcpStream::connect(addr) else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
                if s.write_all(b"GET /view/ HTTP/1.1\r\nHost: x\r\n").is_err() {
                    continue;
                }
                while !s2.load(Ordering::Relaxed)
                    && sent2.load(Ordering::Relaxed) < header_bytes
                    && s.write_all(&line).is_ok()
                {
                    sent2.fetch_add(line.len() as u64, Ordering::Relaxed);
                }
            }
            sent2.load(Ordering::Relaxed)
        });
        Flood {
            stop,
            idle,
            header,
            header_sent: sent,
            idle_opened,
        }
    }

    /// Silent connections opened so far.
    pub fn idle_opened(&self) -> u64 {
        self.idle_opened.load(Ordering::Relaxed)
    }

    /// Bytes of request heads sent so far.
    pub fn header_sent(&self) -> u64 {
        self.header_sent.load(Ordering::Relaxed)
    }

    /// Ends the crowd.
    pub fn stop(self) -> Sent {
        self.stop.store(true, Ordering::Relaxed);
        Sent {
            idle_opened: self.idle.join().unwrap_or(0),
            header_bytes: self.header.join().unwrap_or(0),
        }
    }
}

/// A GET of `path` by a new client, read to the end within `timeout`: its
/// status (0: none) and how long it took.
pub fn timed_get(addr: SocketAddr, path: &str, timeout: Duration) -> (u16, Duration) {
    let t0 = Instant::now();
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return (0, t0.elapsed());
    };
    let _ = s.set_read_timeout(Some(timeout));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, t0.elapsed());
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let status = String::from_utf8_lossy(&out[..out.len().min(16)])
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, t0.elapsed())
}

/// A number field of `/proc/<pid>/status` (`Threads:`, `VmHWM:` in kB).
pub fn proc_status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Raises this process's descriptor limit to its hard limit (3,000 idle
/// connections need more than the usual 1,024).
pub fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
