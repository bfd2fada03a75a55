//! What the probe benchmarks share: the backends' addresses, a listener
//! socket for all of them, and what /proc says about a process and the
//! kernel's TCP.
#![allow(dead_code)]

use std::net::Ipv4Addr;

/// The value after `--name` among `args`.
pub fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Backend `i`: 127.81.x.y (loopback: no setup, 62,500 of them).
pub fn backend_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 81, (i / 250) as u8, (i % 250 + 1) as u8)
}

/// A listening socket on 0.0.0.0:`port` (so every 127.81.x.y answers),
/// with a deep backlog.
pub fn listen_any(port: u16) -> std::net::TcpListener {
    use nix::sys::socket::*;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    setsockopt(&fd, sockopt::ReuseAddr, &true).unwrap();
    let sa = SockaddrIn::from(std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &sa).unwrap();
    listen(&fd, Backlog::new(65535).unwrap_or(Backlog::MAXCONN)).unwrap();
    std::net::TcpListener::from(fd)
}

/// TCP connections this namespace opened so far (`Tcp: ActiveOpens`).
pub fn active_opens() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "ActiveOpens")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user+system), current and peak RSS (kB) of a process.
pub fn proc_usage(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let cpu = (f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0))
        / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (cpu, field("VmRSS:"), field("VmHWM:"))
}
