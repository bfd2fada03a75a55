//! Half-open TCP checks (`params: { mode: syn }`): no socket per probe.
//!
//! Each prober thread keeps, per address family (and configured source
//! address), one raw TCP socket and one ordinary TCP socket that is bound
//! to a port and never used otherwise. The bound socket *holds* the port:
//! the kernel gives it to no connection, and when a backend's SYN-ACK
//! arrives for it, finds no connection and answers with RST, which ends the
//! half-open connection on the backend before its application hears of it.
//! The SYN goes out of the raw socket from that port with a sequence number
//! that names the probe. A raw TCP socket receives a copy of every TCP
//! segment the host gets; a classic BPF filter attached to it keeps only
//! SYN-ACKs and RSTs to the held port, and a reply counts only if it
//! acknowledges one of our sequence numbers and comes from the address and
//! port that probe went to. A probe is one `sendto` and one `recvfrom`
//! instead of `socket`, `connect`, `poll` and `close`.
//!
//! Differences from `connect` mode an operator may notice: ICMP errors do
//! not end a probe early (it times out), and the segment is built here, so
//! the source address is the route's (looked up once a minute per backend,
//! and again after a timeout) or the configured `probe-ipv*-src`.
//!
//! The segment, the parser and the filter program are pure, and so is
//! the matching of answers to probes ([`SynKind::answer`]); [`SynKind`] is
//! the kind the engine runs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::debug;
use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrLike, SockaddrStorage, bind,
    connect, getsockname, recvfrom, sendto, setsockopt, socket, sockopt,
};

use super::icmp::checksum;
use super::idhash::IdMap;
use super::kind::{Event, Kind, Start, Tag};
use super::shared::{Naming, Probe, Sent, Sockets, send_failed};
use super::stream::Kept;
use super::{Code, Interest, Outcome, ProbeSpec, errno_detail};

/// TCP flag bits (byte 13 of the header).
pub const FIN: u8 = 0x01;
/// SYN.
pub const SYN: u8 = 0x02;
/// RST.
pub const RST: u8 = 0x04;
/// ACK.
pub const ACK: u8 = 0x10;

/// Length of our SYN: a 20-byte header and the MSS option.
pub const SEGMENT_LEN: usize = 24;

/// How long a looked-up source address is used before it is looked up
/// again (a timeout forgets it at once).
pub const ROUTE_TTL: Duration = Duration::from_secs(60);

/// Longest segment [`tcp_checksum`] sums: a TCP header with every option.
pub const MAX_HEADER: usize = 60;

/// The TCP checksum of `segment` (its checksum field zero) between `src`
/// and `dst` (RFC 9293 §3.1; RFC 8200 §8.1 for IPv6): headers only, at
/// most [`MAX_HEADER`] bytes (a longer one is summed to that length).
pub fn tcp_checksum(src: IpAddr, dst: IpAddr, segment: &[u8]) -> u16 {
    let mut buf = [0u8; 40 + MAX_HEADER];
    debug_assert!(segment.len() <= MAX_HEADER, "a header, not a payload");
    let len = segment.len().min(MAX_HEADER);
    let head = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            buf[0..4].copy_from_slice(&s.octets());
            buf[4..8].copy_from_slice(&d.octets());
            buf[9] = 6;
            buf[10..12].copy_from_slice(&(len as u16).to_be_bytes());
            12
        }
        (s, d) => {
            buf[0..16].copy_from_slice(&v6_octets(s));
            buf[16..32].copy_from_slice(&v6_octets(d));
            buf[32..36].copy_from_slice(&(len as u32).to_be_bytes());
            buf[39] = 6;
            40
        }
    };
    buf[head..head + len].copy_from_slice(&segment[..len]);
    checksum(&buf[..head + len])
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A SYN from `src`:`sport` to `dst`:`dport` with sequence number `seq`,
/// its checksum filled in. It offers an MSS (1460, 1440 over IPv6) and
/// nothing else: no options to negotiate, nothing kept.
pub fn syn_segment(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, seq: u32) -> [u8; 24] {
    let mut s = [0u8; SEGMENT_LEN];
    s[0..2].copy_from_slice(&sport.to_be_bytes());
    s[2..4].copy_from_slice(&dport.to_be_bytes());
    s[4..8].copy_from_slice(&seq.to_be_bytes());
    s[12] = ((SEGMENT_LEN / 4) as u8) << 4;
    s[13] = SYN;
    s[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let mss: u16 = if dst.is_ipv6() { 1440 } else { 1460 };
    s[20] = 2;
    s[21] = 4;
    s[22..24].copy_from_slice(&mss.to_be_bytes());
    let c = tcp_checksum(src, dst, &s);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

/// A SYN-ACK or RST addressed to one of our ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Who sent it (the probed backend, if it is ours).
    pub peer: SocketAddr,
    /// The port it is for (ours: the held port).
    pub port: u16,
    /// Its acknowledgment number: our sequence number + 1 if it is ours.
    pub ack: u32,
    /// RST (refused) rather than SYN-ACK (listening).
    pub reset: bool,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Reads a TCP segment from `from`: a SYN-ACK or an RST, else `None`.
pub fn parse_segment(from: IpAddr, seg: &[u8]) -> Option<Answer> {
    if seg.len() < 20 {
        return None;
    }
    let flags = seg[13];
    let reset = if flags & RST != 0 {
        true
    } else if flags & (SYN | ACK) == SYN | ACK {
        false
    } else {
        return None;
    };
    Some(Answer {
        peer: SocketAddr::new(from, be16(seg, 0)?),
        port: be16(seg, 2)?,
        ack: u32::from_be_bytes([seg[8], seg[9], seg[10], seg[11]]),
        reset,
    })
}

/// Reads what a raw IPv4 TCP socket returns (IP header included).
pub fn parse_v4(pkt: &[u8]) -> Option<Answer> {
    let ihl = usize::from(pkt.first()? & 0x0f) * 4;
    // TCP, and the first fragment (a later one has no header to read).
    if ihl < 20 || *pkt.get(9)? != 6 || be16(pkt, 6)? & 0x1fff != 0 {
        return None;
    }
    let s = pkt.get(12..16)?;
    let from = IpAddr::V4(Ipv4Addr::new(s[0], s[1], s[2], s[3]));
    parse_segment(from, pkt.get(ihl..)?)
}

/// One classic BPF instruction (`struct sock_filter`).
pub type Insn = nix::libc::sock_filter;

// Classic BPF opcodes (linux/bpf_common.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const H: u16 = 0x08;
const B: u16 = 0x10;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MSH: u16 = 0xa0;
const JEQ: u16 = 0x10;
const JSET: u16 = 0x40;
const AND: u16 = 0x50;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// The socket filter of a raw TCP socket that wants only SYN-ACKs and
/// RSTs to `port`. An IPv4 raw socket sees the IP header first (its length
/// comes from the header: `X = 4 * (IHL)`); an IPv6 one starts at TCP.
pub fn filter(v6: bool, port: u16) -> Vec<Insn> {
    // `at` addresses TCP's bytes: relative to X after the IPv4 header,
    // absolute for IPv6.
    let at = if v6 { LD | ABS } else { LD | IND };
    let mut p = Vec::with_capacity(9);
    if !v6 {
        p.push(insn(LDX | B | MSH, 0, 0, 0)); // X = 4 * (pkt[0] & 0xf)
    }
    // From here, 8 instructions: accept is 6, drop is 7 (of these).
    p.push(insn(at | H, 0, 0, 2)); // 0: A = destination port
    p.push(insn(JMP | JEQ, 0, 5, u32::from(port))); // 1: ours? else drop
    p.push(insn(at | B, 0, 0, 13)); // 2: A = flags
    p.push(insn(JMP | JSET, 2, 0, u32::from(RST))); // 3: RST → accept
    p.push(insn(ALU | AND, 0, 0, u32::from(SYN | ACK))); // 4
    p.push(insn(JMP | JEQ, 0, 1, u32::from(SYN | ACK))); // 5: SYN-ACK → accept
    p.push(insn(RET, 0, 0, 0xffff)); // 6: accept (whole packet)
    p.push(insn(RET, 0, 0, 0)); // 7: drop
    p
}

fn attach_filter(fd: &OwnedFd, prog: &mut [Insn]) -> Result<(), Errno> {
    let fprog = nix::libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `prog`, alive and of the stated length for
    // the duration of the call; the kernel copies the program.
    let r = unsafe {
        nix::libc::setsockopt(
            fd.as_raw_fd(),
            nix::libc::SOL_SOCKET,
            nix::libc::SO_ATTACH_FILTER,
            (&fprog as *const nix::libc::sock_fprog).cast(),
            std::mem::size_of::<nix::libc::sock_fprog>() as nix::libc::socklen_t,
        )
    };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// The source address the kernel would use towards `dst` (a connected
/// UDP socket sends nothing; its local address is the route's choice).
pub fn route_source(dst: IpAddr) -> Result<IpAddr, Errno> {
    let fam = if dst.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket(fam, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    connect(
        fd.as_raw_fd(),
        &SockaddrStorage::from(SocketAddr::new(dst, 9)),
    )?;
    local_ip(&fd)
}

fn local_ip(fd: &OwnedFd) -> Result<IpAddr, Errno> {
    let sa: SockaddrStorage = getsockname(fd.as_raw_fd())?;
    local_addr(&sa).map(|a| a.ip()).ok_or(Errno::EAFNOSUPPORT)
}

fn local_addr(sa: &SockaddrStorage) -> Option<SocketAddr> {
    match sa.family() {
        Some(AddressFamily::Inet) => sa
            .as_sockaddr_in()
            .map(|s| SocketAddr::new(IpAddr::V4(s.ip()), s.port())),
        Some(AddressFamily::Inet6) => sa
            .as_sockaddr_in6()
            .map(|s| SocketAddr::new(IpAddr::V6(s.ip()), s.port())),
        _ => None,
    }
}

/// One family's (and source's) raw socket with the port it holds.
pub struct SynSocket {
    raw: OwnedFd,
    /// Bound, never listening: holds `port` (see the module docs).
    _holder: OwnedFd,
    port: u16,
    v6: bool,
    source: Option<IpAddr>,
    /// Source address per destination, and when it was looked up.
    routes: IdMap<IpAddr, (IpAddr, Instant)>,
}

impl SynSocket {
    /// Opens the raw socket (needs `CAP_NET_RAW`: `EPERM` otherwise, the
    /// caller's cue to fall back to `connect`) and holds a port.
    pub fn open(v6: bool, source: Option<IpAddr>) -> Result<SynSocket, Errno> {
        let fam = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let raw = socket(
            fam,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::Tcp,
        )?;
        let holder = socket(fam, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
        if v6 {
            setsockopt(&holder, sockopt::Ipv6V6Only, &true)?;
        }
        let any = if v6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        let at = SockaddrStorage::from(SocketAddr::new(source.unwrap_or(any), 0));
        bind(holder.as_raw_fd(), &at)?;
        let sa: SockaddrStorage = getsockname(holder.as_raw_fd())?;
        let port = local_addr(&sa)
            .map(|a| a.port())
            .ok_or(Errno::EAFNOSUPPORT)?;
        attach_filter(&raw, &mut filter(v6, port))?;
        if source.is_some() {
            bind(raw.as_raw_fd(), &at)?;
        }
        // Replies of a busy tick arrive together: room for a few thousand
        // (the kernel caps this at net.core.rmem_max).
        let _ = setsockopt(&raw, sockopt::RcvBuf, &(1 << 20));
        Ok(SynSocket {
            raw,
            _holder: holder,
            port,
            v6,
            source,
            routes: IdMap::default(),
        })
    }

    /// The socket to poll.
    pub fn fd(&self) -> RawFd {
        self.raw.as_raw_fd()
    }

    /// The port our SYNs come from.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn source_for(&mut self, dst: IpAddr, now: Instant) -> Result<IpAddr, Errno> {
        if let Some(src) = self.source {
            return Ok(src);
        }
        if let Some(&(src, at)) = self.routes.get(&dst) {
            if now.saturating_duration_since(at) < ROUTE_TTL {
                return Ok(src);
            }
        }
        let src = route_source(dst)?;
        self.routes.insert(dst, (src, now));
        Ok(src)
    }

    /// Forgets the source looked up for `dst` (after a timeout: the route
    /// may have changed).
    pub fn forget_route(&mut self, dst: IpAddr) {
        self.routes.remove(&dst);
    }

    /// Sends a SYN with sequence number `seq` to `dst`.
    pub fn send(&mut self, dst: SocketAddr, seq: u32, now: Instant) -> Result<(), Errno> {
        let src = self.source_for(dst.ip(), now)?;
        let seg = syn_segment(src, dst.ip(), self.port, dst.port(), seq);
        // A raw socket's port field is the protocol or zero.
        let to = SockaddrStorage::from(SocketAddr::new(dst.ip(), 0));
        sendto(self.raw.as_raw_fd(), &seg, &to, MsgFlags::empty()).map(drop)
    }

    /// Receives one segment without blocking: `Ok(None)` when nothing is
    /// waiting, `Ok(Some(None))` for a segment that is not an answer to
    /// our port.
    pub fn recv(&self, buf: &mut [u8]) -> Result<Option<Option<Answer>>, Errno> {
        match recvfrom::<SockaddrStorage>(self.raw.as_raw_fd(), buf) {
            Ok((n, from)) => {
                let data = &buf[..n];
                let answer = if self.v6 {
                    from.as_ref()
                        .and_then(local_addr)
                        .and_then(|f| parse_segment(f.ip(), data))
                } else {
                    parse_v4(data)
                };
                Ok(Some(answer.filter(|a| a.port == self.port)))
            }
            Err(Errno::EAGAIN) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Half-open TCP probes of one prober thread (see the module docs).
pub(crate) struct SynKind {
    sockets: Sockets<SynSocket>,
    /// SYNs by (family, the acknowledgment number that answers them);
    /// only the probed address and port answer.
    sent: Sent<(bool, u32), SocketAddr>,
    /// Counts SYNs; their sequence numbers are this, scrambled.
    count: u32,
    secret: u32,
}

impl SynKind {
    /// The kind for a prober thread; `secret` scrambles its sequence
    /// numbers.
    pub(crate) fn new(secret: u32) -> SynKind {
        SynKind {
            sockets: Sockets::new(Naming {
                what: "syn",
                describe: |s: &SynSocket| format!("port={}", s.port()),
                denied: " fallback=connect reason=\"a raw socket needs CAP_NET_RAW\"",
            }),
            sent: Sent::default(),
            count: 0,
            secret,
        }
    }

    /// The acknowledgment number that will answer the next SYN of `v6`'s
    /// family. Sequence numbers are a bijection of a counter, so the ones
    /// in flight differ, scrambled so they cannot be guessed off-path.
    fn next_ack(&mut self, v6: bool) -> u32 {
        let mut ack = 0;
        for _ in 0..=u16::MAX {
            self.count = self.count.wrapping_add(1);
            let seq = self.count.wrapping_mul(0x9e37_79b1) ^ self.secret;
            ack = seq.wrapping_add(1);
            if !self.sent.contains(&(v6, ack)) {
                break;
            }
        }
        ack
    }

    /// What `answer` on `v6`'s socket ends: nothing unless it acknowledges
    /// a probe in flight and comes from where that probe went.
    fn answer(&mut self, v6: bool, answer: Answer, now: Instant) -> Option<Event> {
        // Not from where that probe went: it answers nothing.
        let (slot, took) = self.sent.answered((v6, answer.ack), answer.peer, now)?;
        let (code, detail) = if answer.reset {
            (Code::L4Con, "connection refused")
        } else {
            (Code::L4Ok, "syn-ack")
        };
        Some(Event::Done {
            slot,
            outcome: Outcome::new(code, detail, took),
            kept: None,
        })
    }
}

impl Kind for SynKind {
    /// Sends the SYN; without permission for raw sockets the check is
    /// made the `connect` way ([`Start::Instead`]).
    fn start(
        &mut self,
        slot: usize,
        spec: &Arc<ProbeSpec>,
        _: Option<Kept>,
        now: Instant,
    ) -> Start {
        let Some(port) = spec.probe.port() else {
            return Start::Instead(Tag::Conn);
        };
        let v6 = spec.address.is_ipv6();
        let ack = self.next_ack(v6);
        let (_, sock) = self
            .sockets
            .open(v6, spec.source, || SynSocket::open(v6, spec.source));
        let peer = SocketAddr::new(spec.address, port);
        let sent = match sock {
            Ok(sock) => sock.send(peer, ack.wrapping_sub(1), now),
            Err(Errno::EPERM | Errno::EACCES) => return Start::Instead(Tag::Conn),
            Err(e) => {
                let why = format!("cannot open raw TCP socket: {}", errno_detail(e));
                return Start::Done(Outcome::new(Code::Local, why, Duration::ZERO), None);
            }
        };
        if let Err(e) = sent {
            return Start::Done(send_failed(e), None);
        }
        let syn = Probe {
            key: (v6, ack),
            peer,
            started: now,
            timeout: spec.timeout,
        };
        self.sent.track(slot, syn);
        Start::Pending
    }

    fn watch(&self, add: &mut dyn FnMut(RawFd, Interest, u32)) {
        self.sockets
            .watch(SynSocket::fd, &mut |fd, h| add(fd, Interest::Read, h));
    }

    fn ready(&mut self, handle: u32, _: bool, now: Instant, out: &mut Vec<Event>) {
        let mut buf = [0u8; 256];
        for _ in 0..4096 {
            let (v6, r) = match self.sockets.get(handle) {
                Some((v6, sock)) => (v6, sock.recv(&mut buf)),
                None => return,
            };
            match r {
                Ok(Some(Some(a))) => out.extend(self.answer(v6, a, now)),
                Ok(Some(None)) => {}
                Ok(None) => return,
                Err(e) => {
                    debug!("syn-recv-failed error={e}");
                    return;
                }
            }
        }
    }

    /// A timeout also forgets the route to the backend: it may have
    /// changed.
    fn timed_out(&mut self, slot: usize, now: Instant) -> Option<Outcome> {
        let (syn, o) = self.sent.timed_out(slot, now)?;
        for sock in self.sockets.each_mut(syn.key.0) {
            sock.forget_route(syn.peer.ip());
        }
        Some(o)
    }

    fn cancel(&mut self, slot: usize) {
        self.sent.untrack(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic BPF interpreter for the instructions `filter` uses.
    fn run(prog: &[Insn], pkt: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let byte = |i: usize| u32::from(pkt[i]);
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                c if c == LDX | B | MSH => x = 4 * (byte(i.k as usize) & 0xf),
                c if c == LD | H | ABS => a = byte(i.k as usize) << 8 | byte(i.k as usize + 1),
                c if c == LD | B | ABS => a = byte(i.k as usize),
                c if c == LD | H | IND => {
                    let at = (x + i.k) as usize;
                    a = byte(at) << 8 | byte(at + 1)
                }
                c if c == LD | B | IND => a = byte((x + i.k) as usize),
                c if c == ALU | AND => a &= i.k,
                c if c == JMP | JEQ => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                c if c == JMP | JSET => pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
                c if c == RET => return i.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn reply(sport: u16, dport: u16, ack: u32, flags: u8) -> [u8; 20] {
        let mut s = [0u8; 20];
        s[0..2].copy_from_slice(&sport.to_be_bytes());
        s[2..4].copy_from_slice(&dport.to_be_bytes());
        s[8..12].copy_from_slice(&ack.to_be_bytes());
        s[12] = 5 << 4;
        s[13] = flags;
        s
    }

    fn ipv4(src: [u8; 4], options: usize, seg: &[u8]) -> Vec<u8> {
        let ihl = 20 + options;
        let mut p = vec![0u8; ihl];
        p[0] = 0x40 | (ihl / 4) as u8;
        p[9] = 6;
        p[12..16].copy_from_slice(&src);
        p.extend_from_slice(seg);
        p
    }

    #[test]
    fn checksum_of_a_syn_verifies_to_zero() {
        let pairs = [
            (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2])),
            (
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            ),
        ];
        for (src, dst) in pairs {
            let s = syn_segment(src, dst, 40000, 80, 0xdead_beef);
            // Summing a segment with its checksum in place gives 0 (the
            // complement of 0xffff).
            assert_eq!(tcp_checksum(src, dst, &s), 0, "{src} → {dst}");
            assert_eq!(&s[4..8], &0xdead_beefu32.to_be_bytes());
            assert_eq!(s[13], SYN);
            assert_eq!(s[12] >> 4, 6, "data offset: 6 words");
        }
    }

    #[test]
    fn checksum_agrees_with_a_sum_done_by_hand() {
        let mut seg = syn_segment(
            IpAddr::from([192, 168, 1, 10]),
            IpAddr::from([192, 168, 1, 20]),
            51234,
            80,
            1,
        );
        let ours = u16::from_be_bytes([seg[16], seg[17]]);
        seg[16] = 0;
        seg[17] = 0;
        // The pseudo-header's words written out: addresses, protocol,
        // length; then the segment's words.
        let mut sum: u32 = 0xc0a8 + 0x010a + 0xc0a8 + 0x0114 + 6 + 24;
        for w in seg.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(ours, !(sum as u16));
    }

    #[test]
    fn answers_are_parsed_and_others_ignored() {
        let synack = reply(80, 40000, 7, SYN | ACK);
        let a = parse_v4(&ipv4([10, 0, 0, 2], 0, &synack)).unwrap();
        assert_eq!(a.peer, "10.0.0.2:80".parse().unwrap());
        assert_eq!((a.port, a.ack, a.reset), (40000, 7, false));
        // With IP options the header is longer.
        let rst = reply(80, 40000, 9, RST | ACK);
        let a = parse_v4(&ipv4([10, 0, 0, 2], 8, &rst)).unwrap();
        assert_eq!((a.port, a.ack, a.reset), (40000, 9, true));
        // A plain ACK, a SYN, a FIN are not answers.
        for flags in [ACK, SYN, FIN | ACK] {
            assert_eq!(
                parse_v4(&ipv4([10, 0, 0, 2], 0, &reply(80, 40000, 1, flags))),
                None
            );
        }
        // Truncated.
        assert_eq!(parse_v4(&ipv4([10, 0, 0, 2], 0, &synack[..12])), None);
        let v6 = parse_segment("2001:db8::2".parse().unwrap(), &synack).unwrap();
        assert_eq!(v6.peer, "[2001:db8::2]:80".parse().unwrap());
    }

    #[test]
    fn the_filter_keeps_answers_to_our_port_only() {
        for v6 in [false, true] {
            let prog = filter(v6, 40000);
            let wrap = |seg: &[u8], options| {
                if v6 {
                    seg.to_vec()
                } else {
                    ipv4([10, 0, 0, 2], options, seg)
                }
            };
            for options in [0, 12] {
                let keep =
                    |flags, port| run(&prog, &wrap(&reply(80, port, 1, flags), options)) != 0;
                assert!(keep(SYN | ACK, 40000), "v6={v6}");
                assert!(keep(RST, 40000));
                assert!(keep(RST | ACK, 40000));
                assert!(!keep(SYN | ACK, 40001), "another port");
                assert!(!keep(ACK, 40000), "a plain ACK");
                assert!(!keep(SYN, 40000), "a SYN (our own, on loopback)");
                assert!(!keep(FIN | ACK, 40000));
                assert!(!keep(ACK | 0x08, 40000), "data");
            }
        }
    }

    // The kind: answers matched to probes, sequence numbers, timeouts.

    fn backend() -> SocketAddr {
        "192.0.2.1:80".parse().unwrap()
    }

    fn half_open(v6: bool, ack: u32, started: Instant) -> Probe<(bool, u32), SocketAddr> {
        Probe {
            key: (v6, ack),
            peer: backend(),
            started,
            timeout: Duration::from_millis(500),
        }
    }

    fn done(e: Option<Event>) -> Option<(usize, Code, String)> {
        match e? {
            Event::Done { slot, outcome, .. } => {
                Some((slot, outcome.code, outcome.detail.into_owned()))
            }
            Event::Restarted { .. } => panic!("a SYN is never restarted"),
        }
    }

    #[test]
    fn only_an_answer_from_the_probed_port_acknowledging_our_syn_counts() {
        let t0 = Instant::now();
        let mut k = SynKind::new(0);
        k.sent.track(3, half_open(false, 1001, t0));
        k.sent.track(4, half_open(false, 2001, t0));
        let answer = |peer: &str, ack, reset| Answer {
            peer: peer.parse().unwrap(),
            port: 40000,
            ack,
            reset,
        };
        assert_eq!(
            done(k.answer(false, answer("192.0.2.1:80", 1000, false), t0)),
            None
        );
        assert_eq!(
            done(k.answer(false, answer("192.0.2.1:81", 1001, false), t0)),
            None
        );
        assert_eq!(
            done(k.answer(false, answer("192.0.2.2:80", 1001, false), t0)),
            None
        );
        assert_eq!(
            done(k.answer(true, answer("192.0.2.1:80", 1001, false), t0)),
            None
        );
        assert_eq!(
            done(k.answer(false, answer("192.0.2.1:80", 1001, false), t0)),
            Some((3, Code::L4Ok, "syn-ack".into()))
        );
        assert_eq!(
            done(k.answer(false, answer("192.0.2.1:80", 2001, true), t0)),
            Some((4, Code::L4Con, "connection refused".into()))
        );
        assert_eq!(
            done(k.answer(false, answer("192.0.2.1:80", 1001, false), t0)),
            None
        );
        assert!(k.sent.is_empty());
    }

    #[test]
    fn sequence_numbers_differ_and_skip_those_in_flight() {
        let mut k = SynKind::new(0x5eed);
        let mut seen = std::collections::HashSet::new();
        for slot in 0..1000 {
            let ack = k.next_ack(false);
            assert!(seen.insert(ack), "ack {ack} twice");
            k.sent.track(slot, half_open(false, ack, Instant::now()));
        }
        // The counter comes round to an ack in flight: it is skipped.
        let mut again = SynKind::new(0x5eed);
        let first = again.next_ack(false);
        again.count = 0;
        again.sent.track(0, half_open(false, first, Instant::now()));
        assert_ne!(again.next_ack(false), first);
        // Unscrambled, they would be a plain count.
        assert_ne!(
            SynKind::new(1).next_ack(false),
            SynKind::new(2).next_ack(false)
        );
    }

    #[test]
    fn timeout_and_cancel_let_go() {
        let t0 = Instant::now();
        let mut k = SynKind::new(0);
        k.sent.track(0, half_open(false, 11, t0));
        k.sent.track(1, half_open(false, 12, t0));
        let o = k.timed_out(0, t0 + Duration::from_millis(500)).unwrap();
        assert_eq!(
            (o.code, &*o.detail, o.duration),
            (
                Code::L4Tout,
                "timeout after 500 ms",
                Duration::from_millis(500)
            )
        );
        assert!(k.timed_out(0, t0).is_none());
        k.cancel(1);
        assert!(k.sent.is_empty());
    }

    /// Through a real raw socket as root (a SYN-ACK from a listener, an
    /// RST from a closed port); without the permission the check goes to
    /// the `connect` kind.
    #[test]
    fn loopback_listener_and_closed_port_or_connect_instead() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap().port();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let spec = |port| {
            Arc::new(ProbeSpec {
                address: IpAddr::V4(Ipv4Addr::LOCALHOST),
                probe: crate::config::Probe::Tcp {
                    port,
                    mode: crate::config::TcpMode::Syn,
                },
                timeout: Duration::from_secs(2),
                source: None,
                request: Arc::from(&[][..]),
            })
        };
        let mut k = SynKind::new(7);
        let now = Instant::now();
        match k.start(0, &spec(open), None, now) {
            Start::Pending => {}
            Start::Instead(Tag::Conn) => {
                assert!(!nix::unistd::geteuid().is_root());
                return;
            }
            _ => panic!("neither sent nor sent elsewhere"),
        }
        assert!(matches!(
            k.start(1, &spec(closed), None, now),
            Start::Pending
        ));
        let mut got = Vec::new();
        let until = Instant::now() + Duration::from_secs(2);
        while got.len() < 2 && Instant::now() < until {
            for e in super::super::kind::poll_once(&mut k, 100) {
                got.extend(done(Some(e)));
            }
        }
        got.sort();
        assert_eq!(
            got,
            vec![
                (0, Code::L4Ok, "syn-ack".to_string()),
                (1, Code::L4Con, "connection refused".to_string())
            ]
        );
        // The listener's application never saw a connection.
        l.set_nonblocking(true).unwrap();
        assert!(l.accept().is_err());
    }
}
