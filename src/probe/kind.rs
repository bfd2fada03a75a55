//! The one interface every probe kind has to the engine.
//!
//! A kind knows how its probes start, which descriptors it wants polled,
//! what a ready descriptor means, and what its timeout says; the engine
//! knows none of that: it owns the schedule, the deadlines, the pollset
//! and the slots, and dispatches readiness to the kind that asked for it.
//! The kinds: [`super::icmp::IcmpKind`] (echo over one shared socket per
//! family), [`super::syn::SynKind`] (half-open TCP over one shared raw
//! socket per family), [`super::conn::ConnKind`] (TCP, HTTP and HTTPS, a
//! socket per probe). Which kind runs which configured probe is
//! [`Tag::of`].
//!
//! A probe in flight is known to both sides by its *slot*, a small number
//! the engine gives it at start and reuses once the probe is over.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;

use super::stream::Kept;
use super::{Interest, Outcome, ProbeSpec};
use crate::config::{Probe, TcpMode};

/// Which kind runs a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    /// ICMP echo.
    Icmp,
    /// Half-open TCP (a SYN, its SYN-ACK or RST).
    Syn,
    /// A connection: TCP, HTTP, HTTPS.
    Conn,
}

impl Tag {
    /// The kind that runs `probe` (a half-open check may still be run by
    /// [`Tag::Conn`] instead: see [`Start::Instead`]).
    pub(crate) fn of(probe: &Probe) -> Tag {
        match probe {
            Probe::Icmp => Tag::Icmp,
            Probe::Tcp {
                mode: TcpMode::Syn, ..
            } => Tag::Syn,
            _ => Tag::Conn,
        }
    }
}

/// How a probe's start went.
pub(crate) enum Start {
    /// In flight: the engine gives it a deadline and polls for it.
    Pending,
    /// Decided at once (the packet could not be sent, a refusal on
    /// loopback, an answer already in on a kept connection), with the
    /// connection to keep for the backend's next check, if any.
    Done(Outcome, Option<Kept>),
    /// This kind cannot run it here (no raw socket for a half-open
    /// check): the engine starts it with that kind.
    Instead(Tag),
}

/// What a kind reports from [`Kind::ready`].
pub(crate) enum Event {
    /// The probe in `slot` is over; the kind has already let go of it.
    Done {
        /// The probe.
        slot: usize,
        /// Its outcome.
        outcome: Outcome,
        /// The connection to keep for the backend's next check.
        kept: Option<Kept>,
    },
    /// The probe in `slot` started again on a new connection (a kept one
    /// was found closed): it gets a new deadline of its whole timeout.
    Restarted {
        /// The probe.
        slot: usize,
    },
}

/// One probe kind (see the module docs).
pub(crate) trait Kind {
    /// Starts a probe of `spec` as `slot`; `kept` is what the backend's
    /// last check left (only [`Tag::Conn`] leaves anything).
    fn start(
        &mut self,
        slot: usize,
        spec: &Arc<ProbeSpec>,
        kept: Option<Kept>,
        now: Instant,
    ) -> Start;

    /// Every descriptor the kind wants polled now: `add(fd, interest,
    /// handle)`, `handle` being what [`Kind::ready`] is then given.
    fn watch(&self, add: &mut dyn FnMut(RawFd, Interest, u32));

    /// The descriptor of `handle` is ready (`error`: poll also said error
    /// or hang-up); probes it ends or restarts go to `out`.
    fn ready(&mut self, handle: u32, error: bool, now: Instant, out: &mut Vec<Event>);

    /// The probe in `slot` reached its deadline: its outcome. The kind
    /// lets go of it.
    fn timed_out(&mut self, slot: usize, now: Instant) -> Option<Outcome>;

    /// The probe in `slot` is abandoned (its backend stopped or replaced):
    /// the kind lets go of it silently.
    fn cancel(&mut self, slot: usize);
}

/// Per-slot state of one kind: a vector indexed by slot, as dense as the
/// engine's slots (which are reused).
pub(crate) struct Slots<T> {
    items: Vec<Option<T>>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots { items: Vec::new() }
    }
}

impl<T> Slots<T> {
    /// Puts `item` in `slot` (replacing what was there).
    pub(crate) fn put(&mut self, slot: usize, item: T) {
        if self.items.len() <= slot {
            self.items.resize_with(slot + 1, || None);
        }
        self.items[slot] = Some(item);
    }

    /// The item in `slot`.
    pub(crate) fn get(&self, slot: usize) -> Option<&T> {
        self.items.get(slot)?.as_ref()
    }

    /// The item in `slot`, to change.
    pub(crate) fn get_mut(&mut self, slot: usize) -> Option<&mut T> {
        self.items.get_mut(slot)?.as_mut()
    }

    /// Takes the item out of `slot`.
    pub(crate) fn take(&mut self, slot: usize) -> Option<T> {
        self.items.get_mut(slot)?.take()
    }

    /// Every occupied slot and its item.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(s, i)| i.as_ref().map(|i| (s, i)))
    }
}

/// One `poll(2)` (up to `ms`) of what `kind` watches, and the events of
/// what was ready: the engine's loop, for the kinds' tests.
#[cfg(test)]
pub(crate) fn poll_once(kind: &mut dyn Kind, ms: i32) -> Vec<Event> {
    let mut watched = Vec::new();
    kind.watch(&mut |fd, interest, handle| watched.push((fd, interest, handle)));
    let mut fds: Vec<nix::libc::pollfd> = watched
        .iter()
        .map(|&(fd, interest, _)| nix::libc::pollfd {
            fd,
            events: match interest {
                Interest::Read => nix::libc::POLLIN,
                Interest::Write => nix::libc::POLLOUT,
            },
            revents: 0,
        })
        .collect();
    // SAFETY: a live, exclusively borrowed array of pollfd whose
    // descriptors belong to `kind`, untouched until poll returns.
    let n = unsafe { nix::libc::poll(fds.as_mut_ptr(), fds.len() as _, ms) };
    assert!(n >= 0, "poll: {}", nix::errno::Errno::last());
    let mut out = Vec::new();
    for (p, &(_, _, handle)) in fds.iter().zip(&watched) {
        if p.revents != 0 {
            let error = p.revents & (nix::libc::POLLERR | nix::libc::POLLHUP) != 0;
            kind.ready(handle, error, Instant::now(), &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HttpMethod, HttpProbe};

    #[test]
    fn each_probe_goes_to_its_kind() {
        assert_eq!(Tag::of(&Probe::Icmp), Tag::Icmp);
        let tcp = |mode| Probe::Tcp { port: 80, mode };
        assert_eq!(Tag::of(&tcp(TcpMode::Syn)), Tag::Syn);
        assert_eq!(Tag::of(&tcp(TcpMode::Connect)), Tag::Conn);
        let http = Probe::Http(HttpProbe {
            port: 80,
            path: "/".into(),
            host: None,
            method: HttpMethod::Get,
            expect_status: Vec::new(),
            expect_body: None,
            tls: None,
            reuse: None,
        });
        assert_eq!(Tag::of(&http), Tag::Conn);
    }

    #[test]
    fn slots_grow_and_reuse() {
        let mut s = Slots::default();
        s.put(3, 'a');
        s.put(0, 'b');
        assert_eq!(s.get(3), Some(&'a'));
        assert_eq!(s.get(1), None);
        assert_eq!(s.get(9), None);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(0, &'b'), (3, &'a')]);
        assert_eq!(s.take(3), Some('a'));
        assert_eq!(s.take(3), None);
        s.put(3, 'c');
        *s.get_mut(3).unwrap() = 'd';
        assert_eq!(s.get(3), Some(&'d'));
    }
}
