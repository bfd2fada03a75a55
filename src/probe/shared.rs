//! The sockets a kind shares among all its probes (ICMP, SYN): one per
//! family and configured source address, opened on first use, opened
//! again at the next probe after a failure (the cause may be gone), each
//! change of state logged once.

use std::net::IpAddr;
use std::os::fd::RawFd;

use log::{info, warn};
use nix::errno::Errno;

use super::{Code, Outcome, errno_detail, local_errno};

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
    fn a_send_that_fails_here_gives_no_verdict() {
        assert_eq!(send_failed(Errno::ENOBUFS).code, Code::Local);
        let o = send_failed(Errno::EHOSTUNREACH);
        assert_eq!((o.code, &*o.detail), (Code::L4Con, "host unreachable"));
    }
}
