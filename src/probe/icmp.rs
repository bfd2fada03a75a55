//! ICMP echo probes for IPv4 and IPv6 over raw sockets, or, without
//! `CAP_NET_RAW`, over unprivileged ping sockets (`SOCK_DGRAM` with
//! `IPPROTO_ICMP[V6]`, allowed to the groups in `net.ipv4.ping_group_range`,
//! which systemd opens to everyone on Debian).
//!
//! The packet code is pure. Each prober thread keeps one raw socket per
//! family (and per configured source address); replies are matched to
//! probes by identifier, sequence number and the address they come from,
//! so other hosts' packets and other processes' pings are ignored. ICMP
//! errors (destination unreachable, time exceeded) that quote one of our
//! requests fail that probe at once instead of letting it time out.
//! [`IcmpKind`] is the kind the engine runs: sockets, sequence numbers,
//! and the matching of answers to probes ([`IcmpKind::answer`], pure).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::debug;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrLike, SockaddrStorage, bind,
    recvfrom, sendto, socket,
};

use super::kind::{Event, Kind, Start};
use super::shared::{Naming, Probe, Sent, Sockets, send_failed};
use super::stream::Kept;
use super::{Code, Interest, Outcome, ProbeSpec, errno_detail};

/// Payload carried by every echo request (also identifies us in captures).
pub const PAYLOAD: &[u8; 16] = b"maglevd-probe\0\0\0";

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request; IPv4 carries its checksum, IPv6's is filled by the kernel.
pub fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + PAYLOAD.len());
    p.push(if v6 { 128 } else { 8 });
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(PAYLOAD);
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// A received ICMP message that concerns one of our probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Echo reply (its sender is the probed host).
    Echo {
        /// Identifier.
        id: u16,
        /// Sequence number.
        seq: u16,
    },
    /// An error quoting our request to `target`.
    Error {
        /// Identifier of the quoted request.
        id: u16,
        /// Sequence of the quoted request.
        seq: u16,
        /// Destination of the quoted request.
        target: IpAddr,
        /// What went wrong.
        detail: &'static str,
    },
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses what a raw IPv4 ICMP socket returns (IP header included).
pub fn parse_v4(pkt: &[u8]) -> Option<Reply> {
    let ihl = usize::from(pkt.first()? & 0x0f) * 4;
    if ihl < 20 {
        return None;
    }
    parse_v4_icmp(pkt.get(ihl..)?)
}

/// Parses an ICMPv4 message without its IP header (what a ping socket
/// returns).
pub fn parse_v4_icmp(icmp: &[u8]) -> Option<Reply> {
    match (*icmp.first()?, *icmp.get(1)?) {
        (0, 0) => Some(Reply::Echo {
            id: be16(icmp, 4)?,
            seq: be16(icmp, 6)?,
        }),
        (t @ (3 | 11), code) => {
            let inner = icmp.get(8..)?;
            let inner_ihl = usize::from(inner.first()? & 0x0f) * 4;
            if inner_ihl < 20 || *inner.get(9)? != 1 {
                return None;
            }
            let d = inner.get(16..20)?;
            let dst = Ipv4Addr::new(d[0], d[1], d[2], d[3]);
            let quoted = inner.get(inner_ihl..)?;
            if *quoted.first()? != 8 {
                return None;
            }
            let detail = match (t, code) {
                (11, _) => "time exceeded",
                (_, 0) => "network unreachable",
                (_, 1) => "host unreachable",
                (_, 9 | 10 | 13) => "administratively prohibited",
                _ => "destination unreachable",
            };
            Some(Reply::Error {
                id: be16(quoted, 4)?,
                seq: be16(quoted, 6)?,
                target: IpAddr::V4(dst),
                detail,
            })
        }
        _ => None,
    }
}

/// Parses what a raw ICMPv6 socket returns (no IP header).
pub fn parse_v6(icmp: &[u8]) -> Option<Reply> {
    match (*icmp.first()?, *icmp.get(1)?) {
        (129, 0) => Some(Reply::Echo {
            id: be16(icmp, 4)?,
            seq: be16(icmp, 6)?,
        }),
        (t @ (1 | 3), code) => {
            let inner = icmp.get(8..)?;
            if inner.len() < 48 || inner[6] != 58 {
                return None;
            }
            let mut dst = [0u8; 16];
            dst.copy_from_slice(&inner[24..40]);
            let quoted = &inner[40..];
            if quoted[0] != 128 {
                return None;
            }
            let detail = match (t, code) {
                (3, _) => "time exceeded",
                (_, 0) => "no route to destination",
                (_, 1) => "administratively prohibited",
                (_, 3) => "address unreachable",
                _ => "destination unreachable",
            };
            Some(Reply::Error {
                id: be16(quoted, 4)?,
                seq: be16(quoted, 6)?,
                target: IpAddr::V6(Ipv6Addr::from(dst)),
                detail,
            })
        }
        _ => None,
    }
}

/// Makes the kernel hand a raw socket only echo replies and the errors
/// that can quote our requests: a raw ICMP socket otherwise receives a
/// copy of every ICMP message the host gets (on a router, a lot), and on
/// loopback each of our own requests too. Best effort: without the filter
/// the parsers ignore what is not ours anyway.
fn only_replies_and_errors(fd: &OwnedFd, v6: bool) {
    use nix::libc::{c_void, setsockopt, socklen_t};
    let raw = fd.as_raw_fd();
    if v6 {
        // struct icmp6_filter: 256 bits, a set bit blocks that type.
        let mut f = [u32::MAX; 8];
        for t in [1u32, 3, 129] {
            f[(t >> 5) as usize] &= !(1 << (t & 31));
        }
        const ICMP6_FILTER: i32 = 1;
        // SAFETY: setsockopt reads exactly `len` bytes from a live local.
        let _ = unsafe {
            setsockopt(
                raw,
                nix::libc::IPPROTO_ICMPV6,
                ICMP6_FILTER,
                f.as_ptr() as *const c_void,
                std::mem::size_of_val(&f) as socklen_t,
            )
        };
    } else {
        // ICMP_FILTER (SOL_RAW): a set bit blocks that type (0..31).
        let mask: u32 = !((1 << 0) | (1 << 3) | (1 << 11));
        const SOL_RAW: i32 = 255;
        const ICMP_FILTER: i32 = 1;
        // SAFETY: as above.
        let _ = unsafe {
            setsockopt(
                raw,
                SOL_RAW,
                ICMP_FILTER,
                &mask as *const u32 as *const c_void,
                std::mem::size_of::<u32>() as socklen_t,
            )
        };
    }
}

/// One ICMP socket of one family, optionally bound to a source.
pub struct IcmpSocket {
    fd: OwnedFd,
    v6: bool,
    /// A ping socket: no IP header on receive, and the kernel puts its own
    /// identifier in our requests (and only gives us our replies).
    ping: bool,
    /// The identifier we last sent (replies on a ping socket carry the
    /// kernel's; they are reported with ours).
    sent_id: std::cell::Cell<u16>,
}

impl IcmpSocket {
    /// Opens a non-blocking raw socket (needs CAP_NET_RAW), or, where that
    /// is not permitted, an unprivileged ping socket.
    pub fn open(v6: bool, source: Option<IpAddr>) -> Result<IcmpSocket, Errno> {
        match Self::open_as(v6, source, SockType::Raw) {
            Err(Errno::EPERM | Errno::EACCES) => {}
            other => return other,
        }
        // No CAP_NET_RAW: a ping socket, if ping_group_range allows us.
        Self::open_as(v6, source, SockType::Datagram)
    }

    /// Which kind this is: `raw` or `ping`.
    pub fn kind(&self) -> &'static str {
        if self.ping { "ping" } else { "raw" }
    }

    fn open_as(v6: bool, source: Option<IpAddr>, ty: SockType) -> Result<IcmpSocket, Errno> {
        let (fam, proto) = if v6 {
            (AddressFamily::Inet6, SockProtocol::IcmpV6)
        } else {
            (AddressFamily::Inet, SockProtocol::Icmp)
        };
        let fd = socket(
            fam,
            ty,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            proto,
        )?;
        if ty == SockType::Raw {
            only_replies_and_errors(&fd, v6);
        }
        if let Some(src) = source {
            bind(
                fd.as_raw_fd(),
                &SockaddrStorage::from(SocketAddr::new(src, 0)),
            )?;
        }
        Ok(IcmpSocket {
            fd,
            v6,
            ping: ty == SockType::Datagram,
            sent_id: std::cell::Cell::new(0),
        })
    }

    /// The socket to poll.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sends an echo request to `dst`.
    pub fn send(&self, dst: IpAddr, id: u16, seq: u16) -> Result<(), Errno> {
        let pkt = echo_request(self.v6, id, seq);
        self.sent_id.set(id);
        let sa = SockaddrStorage::from(SocketAddr::new(dst, 0));
        sendto(self.fd.as_raw_fd(), &pkt, &sa, MsgFlags::empty()).map(drop)
    }

    /// Receives one message without blocking: `(sender, reply)`; `Ok(None)`
    /// when nothing is waiting. Messages that are not ours parse to `None`
    /// replies and are skipped by the caller.
    pub fn recv(&self, buf: &mut [u8]) -> Result<Option<(IpAddr, Option<Reply>)>, Errno> {
        match recvfrom::<SockaddrStorage>(self.fd.as_raw_fd(), buf) {
            Ok((n, from)) => {
                let from = from.and_then(|a| match a.family() {
                    Some(AddressFamily::Inet) => a.as_sockaddr_in().map(|s| IpAddr::V4(s.ip())),
                    Some(AddressFamily::Inet6) => a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())),
                    _ => None,
                });
                let Some(from) = from else {
                    return Ok(Some((IpAddr::V4(Ipv4Addr::UNSPECIFIED), None)));
                };
                let data = &buf[..n];
                let reply = match (self.v6, self.ping) {
                    (true, _) => parse_v6(data),
                    (false, false) => parse_v4(data),
                    (false, true) => parse_v4_icmp(data),
                };
                let reply = match reply {
                    // The kernel only hands a ping socket its own replies,
                    // under its own identifier: report them under ours.
                    Some(Reply::Echo { seq, .. }) if self.ping => Some(Reply::Echo {
                        id: self.sent_id.get(),
                        seq,
                    }),
                    r => r,
                };
                Ok(Some((from, reply)))
            }
            Err(Errno::EAGAIN) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// ICMP echo probes of one prober thread (see the module docs).
pub(crate) struct IcmpKind {
    sockets: Sockets<IcmpSocket>,
    /// Echoes by (family, sequence number); only their target answers.
    sent: Sent<(bool, u16), IpAddr>,
    /// Our identifier (per thread, so threads' replies are told apart).
    id: u16,
    /// The last sequence number sent.
    seq: u16,
}

impl IcmpKind {
    /// The kind for prober thread `index`.
    pub(crate) fn new(index: usize) -> IcmpKind {
        IcmpKind {
            sockets: Sockets::new(Naming {
                what: "icmp",
                describe: |s: &IcmpSocket| format!("kind={}", s.kind()),
                denied: "",
            }),
            sent: Sent::default(),
            id: (std::process::id() as u16).wrapping_add((index as u16).wrapping_mul(4099)),
            seq: 0,
        }
    }

    /// The next sequence number of `v6`'s family that no probe in flight
    /// uses.
    fn next_seq(&mut self, v6: bool) -> u16 {
        let mut seq = self.seq;
        for _ in 0..=u16::MAX {
            seq = seq.wrapping_add(1);
            if !self.sent.contains(&(v6, seq)) {
                break;
            }
        }
        self.seq = seq;
        seq
    }

    /// What a message `reply` from `from` on `v6`'s socket ends: nothing
    /// unless it carries our identifier and the sequence number of a probe
    /// in flight, and comes from (or, for an error, quotes) that probe's
    /// target.
    fn answer(&mut self, v6: bool, from: IpAddr, reply: Reply, now: Instant) -> Option<Event> {
        let (id, seq, peer, code, detail) = match reply {
            Reply::Echo { id, seq } => (id, seq, from, Code::L4Ok, "echo reply".into()),
            Reply::Error {
                id,
                seq,
                target,
                detail,
            } => (
                id,
                seq,
                target,
                Code::L4Con,
                format!("{detail} (from {from})"),
            ),
        };
        if id != self.id {
            return None;
        }
        // A reply from some other host answers nothing.
        let (slot, took) = self.sent.answered((v6, seq), peer, now)?;
        Some(Event::Done {
            slot,
            outcome: Outcome::new(code, detail, took),
            kept: None,
        })
    }
}

impl Kind for IcmpKind {
    fn start(
        &mut self,
        slot: usize,
        spec: &Arc<ProbeSpec>,
        _: Option<Kept>,
        now: Instant,
    ) -> Start {
        let v6 = spec.address.is_ipv6();
        let seq = self.next_seq(v6);
        let (_, sock) = self
            .sockets
            .open(v6, spec.source, || IcmpSocket::open(v6, spec.source));
        let sent = match sock {
            Ok(sock) => sock.send(spec.address, self.id, seq),
            Err(e) => {
                let why = match e {
                    Errno::EPERM | Errno::EACCES => format!(
                        "cannot open an ICMP socket: a raw one needs CAP_NET_RAW, and gid {} \
                         is outside net.ipv4.ping_group_range for a ping socket",
                        nix::unistd::getegid()
                    ),
                    other => format!("cannot open raw ICMP socket: {}", errno_detail(other)),
                };
                // Not the backend's fault: no verdict.
                return Start::Done(Outcome::new(Code::Local, why, Duration::ZERO), None);
            }
        };
        if let Err(e) = sent {
            return Start::Done(send_failed(e), None);
        }
        let echo = Probe {
            key: (v6, seq),
            peer: spec.address,
            started: now,
            timeout: spec.timeout,
        };
        self.sent.track(slot, echo);
        Start::Pending
    }

    fn watch(&self, add: &mut dyn FnMut(RawFd, Interest, u32)) {
        self.sockets
            .watch(IcmpSocket::fd, &mut |fd, h| add(fd, Interest::Read, h));
    }

    fn ready(&mut self, handle: u32, _: bool, now: Instant, out: &mut Vec<Event>) {
        let mut buf = [0u8; 1500];
        for _ in 0..1024 {
            let (v6, r) = match self.sockets.get(handle) {
                Some((v6, sock)) => (v6, sock.recv(&mut buf)),
                None => return,
            };
            match r {
                Ok(Some((from, Some(reply)))) => out.extend(self.answer(v6, from, reply, now)),
                Ok(Some((_, None))) => {}
                Ok(None) => return,
                Err(e) => {
                    debug!("icmp-recv-failed error={e}");
                    return;
                }
            }
        }
    }

    fn timed_out(&mut self, slot: usize, now: Instant) -> Option<Outcome> {
        self.sent.timed_out(slot, now).map(|(_, o)| o)
    }

    fn cancel(&mut self, slot: usize) {
        self.sent.untrack(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_rfc1071_example() {
        // RFC 1071 §3 example bytes sum to 0xddf2 → checksum 0x220d.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn v4_request_verifies() {
        let p = echo_request(false, 0x1234, 7);
        assert_eq!(&p[..2], &[8, 0]);
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
        assert_eq!(be16(&p, 4), Some(0x1234));
        assert_eq!(be16(&p, 6), Some(7));
        let p6 = echo_request(true, 1, 2);
        assert_eq!((p6[0], p6[2], p6[3]), (128, 0, 0));
    }

    fn ipv4_header(proto: u8, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h
    }

    #[test]
    fn parses_v4_echo_reply() {
        let mut pkt = ipv4_header(1, [192, 0, 2, 10], [192, 0, 2, 1]);
        let mut icmp = echo_request(false, 9, 42);
        icmp[0] = 0;
        pkt.extend_from_slice(&icmp);
        assert_eq!(parse_v4(&pkt), Some(Reply::Echo { id: 9, seq: 42 }));
        // Our own request seen on loopback is not a reply.
        let mut req = ipv4_header(1, [127, 0, 0, 1], [127, 0, 0, 1]);
        req.extend_from_slice(&echo_request(false, 9, 42));
        assert_eq!(parse_v4(&req), None);
    }

    #[test]
    fn parses_v4_unreachable_quoting_our_request() {
        let mut pkt = ipv4_header(1, [198, 51, 100, 1], [192, 0, 2, 1]);
        pkt.extend_from_slice(&[3, 1, 0, 0, 0, 0, 0, 0]);
        pkt.extend_from_slice(&ipv4_header(1, [192, 0, 2, 1], [192, 0, 2, 99]));
        pkt.extend_from_slice(&echo_request(false, 9, 43)[..8]);
        assert_eq!(
            parse_v4(&pkt),
            Some(Reply::Error {
                id: 9,
                seq: 43,
                target: "192.0.2.99".parse().unwrap(),
                detail: "host unreachable"
            })
        );
    }

    #[test]
    fn parses_v6() {
        let mut r = echo_request(true, 5, 6);
        r[0] = 129;
        assert_eq!(parse_v6(&r), Some(Reply::Echo { id: 5, seq: 6 }));
        let mut err = vec![1, 3, 0, 0, 0, 0, 0, 0];
        let mut ip6 = vec![0x60, 0, 0, 0, 0, 24, 58, 64];
        ip6.extend_from_slice(&[0u8; 16]);
        let dst: Ipv6Addr = "2001:db8::99".parse().unwrap();
        ip6.extend_from_slice(&dst.octets());
        err.extend_from_slice(&ip6);
        err.extend_from_slice(&echo_request(true, 5, 7));
        assert_eq!(
            parse_v6(&err),
            Some(Reply::Error {
                id: 5,
                seq: 7,
                target: IpAddr::V6(dst),
                detail: "address unreachable"
            })
        );
    }

    #[test]
    fn truncated_input_never_panics() {
        let mut pkt = ipv4_header(1, [1, 1, 1, 1], [2, 2, 2, 2]);
        pkt.extend_from_slice(&[3, 1, 0, 0, 0, 0, 0, 0]);
        pkt.extend_from_slice(&ipv4_header(1, [2, 2, 2, 2], [3, 3, 3, 3]));
        pkt.extend_from_slice(&echo_request(false, 1, 1));
        for n in 0..pkt.len() {
            let _ = parse_v4(&pkt[..n]);
            let _ = parse_v6(&pkt[..n]);
        }
        assert_eq!(parse_v4(&[0x41]), None, "IHL below 20");
    }

    // The kind: answers matched to probes, sequence numbers, timeouts.

    const TARGET: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    fn echo(v6: bool, seq: u16, target: IpAddr, started: Instant) -> Probe<(bool, u16), IpAddr> {
        Probe {
            key: (v6, seq),
            peer: target,
            started,
            timeout: Duration::from_millis(1000),
        }
    }

    fn done(e: Option<Event>) -> Option<(usize, Code, String, Duration)> {
        match e? {
            Event::Done { slot, outcome, .. } => Some((
                slot,
                outcome.code,
                outcome.detail.into_owned(),
                outcome.duration,
            )),
            Event::Restarted { .. } => panic!("an echo is never restarted"),
        }
    }

    #[test]
    fn only_our_reply_from_the_target_answers_a_probe() {
        let t0 = Instant::now();
        let mut k = IcmpKind::new(0);
        k.sent.track(2, echo(false, 7, TARGET, t0));
        let id = k.id;
        let other: IpAddr = "192.0.2.9".parse().unwrap();
        let later = t0 + Duration::from_millis(3);
        let reply = |id, seq| Reply::Echo { id, seq };
        assert_eq!(done(k.answer(false, TARGET, reply(id ^ 1, 7), later)), None);
        assert_eq!(done(k.answer(false, TARGET, reply(id, 8), later)), None);
        assert_eq!(done(k.answer(false, other, reply(id, 7), later)), None);
        assert_eq!(done(k.answer(true, TARGET, reply(id, 7), later)), None);
        assert_eq!(
            done(k.answer(false, TARGET, reply(id, 7), later)),
            Some((2, Code::L4Ok, "echo reply".into(), Duration::from_millis(3)))
        );
        // Answered once: a duplicate reply ends nothing.
        assert_eq!(done(k.answer(false, TARGET, reply(id, 7), later)), None);
        assert!(k.sent.is_empty());
    }

    #[test]
    fn an_error_quoting_a_probe_fails_it_at_once() {
        let t0 = Instant::now();
        let mut k = IcmpKind::new(1);
        k.sent.track(0, echo(false, 1, TARGET, t0));
        let router: IpAddr = "198.51.100.1".parse().unwrap();
        let error = |target| Reply::Error {
            id: k.id,
            seq: 1,
            target,
            detail: "host unreachable",
        };
        let (e_other, e_ours) = (error("192.0.2.2".parse().unwrap()), error(TARGET));
        assert_eq!(done(k.answer(false, router, e_other, t0)), None);
        assert_eq!(
            done(k.answer(false, router, e_ours, t0)),
            Some((
                0,
                Code::L4Con,
                "host unreachable (from 198.51.100.1)".into(),
                Duration::ZERO
            ))
        );
    }

    #[test]
    fn sequence_numbers_skip_those_in_flight_per_family() {
        let t0 = Instant::now();
        let mut k = IcmpKind::new(0);
        k.seq = 6;
        k.sent.track(0, echo(false, 7, TARGET, t0));
        k.sent.track(1, echo(false, 8, TARGET, t0));
        assert_eq!(k.next_seq(false), 9);
        k.seq = 6;
        assert_eq!(k.next_seq(true), 7, "the other family's are free");
        k.seq = u16::MAX;
        assert_eq!(k.next_seq(true), 0, "wraps");
    }

    #[test]
    fn timeout_and_cancel_let_go() {
        let t0 = Instant::now();
        let mut k = IcmpKind::new(0);
        k.sent.track(0, echo(false, 1, TARGET, t0));
        k.sent.track(1, echo(false, 2, TARGET, t0));
        let o = k.timed_out(0, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(
            (o.code, &*o.detail, o.duration),
            (
                Code::L4Tout,
                "timeout after 1000 ms",
                Duration::from_secs(1)
            )
        );
        assert!(k.timed_out(0, t0).is_none());
        k.cancel(1);
        let reply = Reply::Echo { id: k.id, seq: 2 };
        assert_eq!(done(k.answer(false, TARGET, reply, t0)), None);
        assert!(k.sent.is_empty());
    }

    /// Through a real socket: raw as root, a ping socket where
    /// ping_group_range allows this user, else a clear local failure.
    #[test]
    fn loopback_answers_or_the_socket_says_why_not() {
        let spec = Arc::new(ProbeSpec {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            probe: crate::config::Probe::Icmp,
            timeout: Duration::from_secs(2),
            source: None,
            request: Arc::from(&[][..]),
        });
        let mut k = IcmpKind::new(3);
        match k.start(5, &spec, None, Instant::now()) {
            Start::Pending => {}
            Start::Done(o, _) => {
                assert_eq!(o.code, Code::Local, "{o:?}");
                assert!(o.detail.contains("ping_group_range"), "{o:?}");
                return;
            }
            Start::Instead(t) => panic!("sent to {t:?}"),
        }
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            for e in super::super::kind::poll_once(&mut k, 100) {
                if let Some((slot, code, detail, _)) = done(Some(e)) {
                    assert_eq!((slot, code, &*detail), (5, Code::L4Ok, "echo reply"));
                    return;
                }
            }
        }
        panic!("no echo reply from 127.0.0.1");
    }
}
