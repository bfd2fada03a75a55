//! The sockets a kind shares among all its probes (ICMP, SYN): one per
//! family and configured source address, opened on first use, opened
//! again at the next probe after a failure (the cause may be gone), each
//! change of state logged once; and the table of the probes in flight on
//! them ([`Sent`]), found again by what their answer carries.

use std::hash::Hash;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use log::{info, warn};
use nix::errno::Errno;

use super::idhash::IdMap;
use super::kind::Slots;
use super::{Code, Outcome, errno_detail, local_errno, timeout_detail};

/// How the log names one kind of shared socket.
pub(crate) struct Naming<T> {
    /// Event prefix: `icmp` gives `icmp-socket-opened`, `icmp-socket-failed`.
    pub(crate) what: &'static str,
    /// The fields that tell an opened socket apart (`kind=raw`, `port=N`).
    pub(crate) describe: fn(&T) -> String,
    /// Added to the failure line when the socket is not permitted.
    pub(crate) denied: &'static str,
}

/// One socket, or why it could not be opened.
struct Entry<T> {
    source: Option<IpAddr>,
    socket: Result<T, Errno>,
}

/// The shared sockets of one kind, by family and source.
pub(crate) struct Sockets<T> {
    naming: Naming<T>,
    /// IPv4's, then IPv6's.
    families: [Vec<Entry<T>>; 2],
}

/// `ipv4` or `ipv6`, as the log says it.
pub(crate) fn family(v6: bool) -> &'static str {
    if v6 { "ipv6" } else { "ipv4" }
}

impl<T> Sockets<T> {
    /// None yet.
    pub(crate) fn new(naming: Naming<T>) -> Sockets<T> {
        Sockets {
            naming,
            families: [Vec::new(), Vec::new()],
        }
    }

    /// The socket of `v6`'s family for `source`, opening it (again, after
    /// a failure) with `open`: the socket's handle (for [`Sockets::get`])
    /// and the socket, or why it is not there.
    pub(crate) fn open(
        &mut self,
        v6: bool,
        source: Option<IpAddr>,
        open: impl FnOnce() -> Result<T, Errno>,
    ) -> (u32, Result<&mut T, Errno>) {
        let naming = &self.naming;
        let log = |socket: &Result<T, Errno>, again: bool| match socket {
            Err(e) => warn!(
                "{}-socket-failed family={} source={source:?} error={e}{}",
                naming.what,
                family(v6),
                if matches!(e, Errno::EPERM | Errno::EACCES) {
                    naming.denied
                } else {
                    ""
                }
            ),
            Ok(sock) => info!(
                "{}-socket-opened family={} source={source:?} {}{}",
                naming.what,
                family(v6),
                (naming.describe)(sock),
                if again { " after-failure" } else { "" }
            ),
        };
        let list = &mut self.families[usize::from(v6)];
        let k = match list.iter().position(|s| s.source == source) {
            Some(k) => {
                if list[k].socket.is_err() {
                    list[k].socket = open();
                    if list[k].socket.is_ok() {
                        log(&list[k].socket, true);
                    }
                }
                k
            }
            None => {
                let socket = open();
                log(&socket, false);
                list.push(Entry { source, socket });
                list.len() - 1
            }
        };
        let socket = list[k].socket.as_mut().map_err(|e| *e);
        (handle(v6, k), socket)
    }

    /// The open socket of `handle`: its family and itself.
    pub(crate) fn get(&self, handle: u32) -> Option<(bool, &T)> {
        let (v6, k) = unpack(handle);
        let s = self.families[usize::from(v6)].get(k)?;
        s.socket.as_ref().ok().map(|s| (v6, s))
    }

    /// Every open socket of `v6`'s family, to change.
    pub(crate) fn each_mut(&mut self, v6: bool) -> impl Iterator<Item = &mut T> {
        self.families[usize::from(v6)]
            .iter_mut()
            .filter_map(|s| s.socket.as_mut().ok())
    }

    /// Every open socket: its handle and descriptor.
    pub(crate) fn watch(&self, fd: fn(&T) -> RawFd, add: &mut dyn FnMut(RawFd, u32)) {
        for (fam, list) in self.families.iter().enumerate() {
            for (k, s) in list.iter().enumerate() {
                if let Ok(sock) = &s.socket {
                    add(fd(sock), handle(fam == 1, k));
                }
            }
        }
    }
}

/// One packet in flight on a shared socket: `key`, what its answer
/// carries (family and sequence number), and `peer`, where the answer must
/// come from.
pub(crate) struct Probe<K, A> {
    /// Family and the number that names it.
    pub(crate) key: K,
    /// Where it went.
    pub(crate) peer: A,
    /// When it was sent.
    pub(crate) started: Instant,
    /// Its timeout.
    pub(crate) timeout: Duration,
}

/// The probes in flight on one kind's shared sockets, by slot and by key.
pub(crate) struct Sent<K, A> {
    by_key: IdMap<K, usize>,
    probes: Slots<Probe<K, A>>,
}

impl<K, A> Default for Sent<K, A> {
    fn default() -> Self {
        Sent {
            by_key: IdMap::default(),
            probes: Slots::default(),
        }
    }
}

impl<K: Hash + Eq + Copy, A: PartialEq> Sent<K, A> {
    /// Whether a probe in flight uses `key`.
    pub(crate) fn contains(&self, key: &K) -> bool {
        self.by_key.contains_key(key)
    }

    /// Records `probe` as `slot`.
    pub(crate) fn track(&mut self, slot: usize, probe: Probe<K, A>) {
        self.by_key.insert(probe.key, slot);
        self.probes.put(slot, probe);
    }

    /// Lets go of `slot`'s probe.
    pub(crate) fn untrack(&mut self, slot: usize) -> Option<Probe<K, A>> {
        let p = self.probes.take(slot)?;
        self.by_key.remove(&p.key);
        Some(p)
    }

    /// The probe an answer carrying `key` from `from` ends, let go of:
    /// its slot and how long it took. Nothing for another host's packet.
    pub(crate) fn answered(&mut self, key: K, from: A, now: Instant) -> Option<(usize, Duration)> {
        let &slot = self.by_key.get(&key)?;
        if self.probes.get(slot)?.peer != from {
            return None;
        }
        let p = self.untrack(slot)?;
        Some((slot, now.saturating_duration_since(p.started)))
    }

    /// `slot`'s probe reached its deadline: let go of, with its outcome.
    pub(crate) fn timed_out(
        &mut self,
        slot: usize,
        now: Instant,
    ) -> Option<(Probe<K, A>, Outcome)> {
        let p = self.untrack(slot)?;
        let o = Outcome::new(
            Code::L4Tout,
            timeout_detail(p.timeout),
            now.saturating_duration_since(p.started),
        );
        Some((p, o))
    }

    /// Whether nothing is in flight.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.by_key.is_empty() && self.probes.iter().next().is_none()
    }
}

/// The outcome of a probe whose packet could not be sent: this host's
/// problem (no verdict), or the backend's (no route to it, ...).
pub(crate) fn send_failed(e: Errno) -> Outcome {
    let code = if local_errno(e) {
        Code::Local
    } else {
        Code::L4Con
    };
    Outcome::new(code, errno_detail(e), std::time::Duration::ZERO)
}

fn handle(v6: bool, k: usize) -> u32 {
    ((k as u32) << 1) | u32::from(v6)
}

fn unpack(handle: u32) -> (bool, usize) {
    (handle & 1 == 1, (handle >> 1) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sockets() -> Sockets<u32> {
        Sockets::new(Naming {
            what: "test",
            describe: |n| format!("n={n}"),
            denied: "",
        })
    }

    #[test]
    fn one_socket_per_family_and_source_opened_again_after_a_failure() {
        let mut s = sockets();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let (h4, r) = s.open(false, None, || Ok(4));
        assert_eq!(r, Ok(&mut 4));
        let (h6, _) = s.open(true, None, || Ok(6));
        let (ha, r) = s.open(false, Some(a), || Err(Errno::EPERM));
        assert_eq!(r, Err(Errno::EPERM));
        assert!(h4 != h6 && h4 != ha);
        // Already open: not opened again.
        let (again, r) = s.open(false, None, || panic!("opened twice"));
        assert_eq!((again, r), (h4, Ok(&mut 4)));
        // Failed: tried again, and kept when it works.
        assert_eq!(s.get(ha), None);
        let (h, r) = s.open(false, Some(a), || Ok(5));
        assert_eq!((h, r), (ha, Ok(&mut 5)));
        assert_eq!(s.get(ha), Some((false, &5)));
        assert_eq!(s.get(h6), Some((true, &6)));
        let mut fds = Vec::new();
        s.watch(|n| *n as RawFd, &mut |fd, h| fds.push((fd, h)));
        fds.sort();
        assert_eq!(fds, vec![(4, h4), (5, ha), (6, h6)]);
        assert_eq!(s.each_mut(false).count(), 2);
    }

    #[test]
    fn an_answer_ends_the_probe_of_its_key_from_its_peer_once() {
        let t0 = Instant::now();
        let mut sent: Sent<(bool, u16), IpAddr> = Sent::default();
        let (peer, other): (IpAddr, IpAddr) =
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let probe = |seq| Probe {
            key: (false, seq),
            peer,
            started: t0,
            timeout: Duration::from_millis(300),
        };
        sent.track(4, probe(1));
        sent.track(5, probe(2));
        assert!(sent.contains(&(false, 1)) && !sent.contains(&(true, 1)));
        let later = t0 + Duration::from_millis(2);
        assert_eq!(sent.answered((false, 1), other, later), None);
        assert_eq!(sent.answered((true, 1), peer, later), None);
        assert_eq!(
            sent.answered((false, 1), peer, later),
            Some((4, Duration::from_millis(2)))
        );
        assert_eq!(sent.answered((false, 1), peer, later), None, "once");
        let (p, o) = sent.timed_out(5, t0 + Duration::from_millis(300)).unwrap();
        assert_eq!(p.key, (false, 2));
        assert_eq!(
            (o.code, &*o.detail, o.duration),
            (
                Code::L4Tout,
                "timeout after 300 ms",
                Duration::from_millis(300)
            )
        );
        assert!(sent.timed_out(5, t0).is_none());
        assert!(sent.is_empty());
    }

    #[test]
    fn a_send_that_fails_here_gives_no_verdict() {
        assert_eq!(send_failed(Errno::ENOBUFS).code, Code::Local);
        let o = send_failed(Errno::EHOSTUNREACH);
        assert_eq!((o.code, &*o.detail), (Code::L4Con, "host unreachable"));
    }
}
