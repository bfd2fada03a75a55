//! The dashboard hub's decisions, without the threads: when to connect to
//! each maglevd, when to read what, when to send the batched probe
//! results. The hub feeds it the time and what happened, asks
//! [`Core::poll`] what is due and [`Core::next_wakeup`] how long it may
//! sleep. Tested with a fake clock below.
//!
//! The policy:
//! - **Session.** Connect at once; after a failure or a lost stream try
//!   again [`RECONNECT_FIRST`] later, doubling to [`RECONNECT_MAX`].
//! - **Full state** (every `show`) on each new session and every
//!   [`FULL_EVERY`]; a reload or a lagged stream asks for one at once.
//! - **Frontends** whose backends changed are read again
//!   [`FRONTENDS_AFTER`] after the change (one read for a burst).
//! - **VPP's lb state** at most once per [`LB_EVERY`] after a change.
//! - **Probe results** go out batched, once per [`PROBES_EVERY`].

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::vpp::reconciler::core::Backoff;

/// First reconnect attempt after a failure.
pub const RECONNECT_FIRST: Duration = Duration::from_millis(500);
/// Reconnect attempts are never further apart than this.
pub const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// Full state refresh cadence.
pub const FULL_EVERY: Duration = Duration::from_secs(30);
/// Delay before reading frontends whose backends changed.
pub const FRONTENDS_AFTER: Duration = Duration::from_millis(100);
/// Minimum spacing of VPP lb state reads.
pub const LB_EVERY: Duration = Duration::from_secs(1);
/// Probe results are sent at most this often.
pub const PROBES_EVERY: Duration = Duration::from_secs(1);

/// Something due for one maglevd (by index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Open the event stream.
    Connect(usize),
    /// Read everything.
    Full(usize),
    /// Read these frontends.
    Frontends(usize, Vec<String>),
    /// Read VPP's lb state and counters.
    Lb(usize),
    /// Send the batched probe results.
    Probes(usize),
}

#[derive(Debug, Clone)]
struct Link {
    connected: bool,
    connecting: bool,
    backoff: Backoff,
    full_at: Option<Instant>,
    full_busy: bool,
    fe_pending: BTreeSet<String>,
    fe_at: Option<Instant>,
    fe_busy: bool,
    lb_at: Option<Instant>,
    lb_last: Option<Instant>,
    lb_busy: bool,
    probes_at: Option<Instant>,
}

/// The hub's state of mind, per maglevd.
#[derive(Debug, Clone)]
pub struct Core {
    links: Vec<Link>,
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Core {
    /// `n` maglevds, none connected yet.
    pub fn new(n: usize) -> Core {
        Core {
            links: (0..n)
                .map(|_| Link {
                    connected: false,
                    connecting: false,
                    backoff: Backoff::new(RECONNECT_FIRST, RECONNECT_MAX),
                    full_at: None,
                    full_busy: false,
                    fe_pending: BTreeSet::new(),
                    fe_at: None,
                    fe_busy: false,
                    lb_at: None,
                    lb_last: None,
                    lb_busy: false,
                    probes_at: None,
                })
                .collect(),
        }
    }

    /// Everything due at `now`, each marked as under way.
    pub fn poll(&mut self, now: Instant) -> Vec<Due> {
        let mut out = Vec::new();
        for (i, l) in self.links.iter_mut().enumerate() {
            if !l.connected {
                if !l.connecting && l.backoff.ready(now) {
                    l.connecting = true;
                    out.push(Due::Connect(i));
                }
                continue;
            }
            if !l.full_busy && l.full_at.is_some_and(|t| t <= now) {
                l.full_busy = true;
                l.full_at = None;
                // A full read covers the frontends and VPP too.
                l.fe_pending.clear();
                l.fe_at = None;
                out.push(Due::Full(i));
            }
            if !l.full_busy && !l.fe_busy && l.fe_at.is_some_and(|t| t <= now) {
                l.fe_busy = true;
                l.fe_at = None;
                out.push(Due::Frontends(
                    i,
                    std::mem::take(&mut l.fe_pending).into_iter().collect(),
                ));
            }
            if !l.full_busy && !l.lb_busy && l.lb_at.is_some_and(|t| t <= now) {
                l.lb_busy = true;
                l.lb_at = None;
                l.lb_last = Some(now);
                out.push(Due::Lb(i));
            }
            if l.probes_at.is_some_and(|t| t <= now) {
                l.probes_at = None;
                out.push(Due::Probes(i));
            }
        }
        out
    }

    /// When something is next due (`None`: nothing ever, until an input).
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        let mut at = None;
        for l in &self.links {
            if !l.connected {
                if !l.connecting {
                    at = min_opt(at, Some(l.backoff.next_try().unwrap_or(now)));
                }
                continue;
            }
            if !l.full_busy {
                at = min_opt(at, l.full_at);
                if !l.fe_busy {
                    at = min_opt(at, l.fe_at);
                }
                if !l.lb_busy {
                    at = min_opt(at, l.lb_at);
                }
            }
            at = min_opt(at, l.probes_at);
        }
        at
    }

    /// The stream of `i` is up: read everything now.
    pub fn connected(&mut self, i: usize, now: Instant) {
        let l = &mut self.links[i];
        l.connected = true;
        l.connecting = false;
        l.backoff.succeeded();
        l.full_at = Some(now);
    }

    /// Connecting to `i` failed, or its stream ended; returns the wait
    /// before the next attempt.
    pub fn lost(&mut self, i: usize, now: Instant) -> Duration {
        let l = &mut self.links[i];
        l.connected = false;
        l.connecting = false;
        l.full_at = None;
        l.fe_pending.clear();
        l.fe_at = None;
        l.lb_at = None;
        l.probes_at = None;
        l.backoff.failed(now)
    }

    /// A full read of `i` finished (or failed): the next in
    /// [`FULL_EVERY`].
    pub fn full_done(&mut self, i: usize, now: Instant) {
        let l = &mut self.links[i];
        l.full_busy = false;
        if l.connected && l.full_at.is_none() {
            l.full_at = Some(now + FULL_EVERY);
        }
    }

    /// A frontends read of `i` finished.
    pub fn frontends_done(&mut self, i: usize) {
        self.links[i].fe_busy = false;
    }

    /// An lb read of `i` finished.
    pub fn lb_done(&mut self, i: usize) {
        self.links[i].lb_busy = false;
    }

    /// Read everything of `i` now (reload, lagged stream).
    pub fn full_needed(&mut self, i: usize, now: Instant) {
        let l = &mut self.links[i];
        if l.connected {
            l.full_at = Some(now);
        }
    }

    /// Backends of `i` changed: read `frontends` soon, and VPP. While a
    /// full read is under way (its answers may predate the change), or
    /// when the frontends are not known (none read yet), everything is
    /// read again after it.
    pub fn frontends_changed(&mut self, i: usize, frontends: BTreeSet<String>, now: Instant) {
        let l = &mut self.links[i];
        if !l.connected {
            return;
        }
        if l.full_busy || frontends.is_empty() {
            l.full_at = Some(now);
        } else {
            l.fe_pending.extend(frontends);
            l.fe_at.get_or_insert(now + FRONTENDS_AFTER);
        }
        self.lb_changed(i, now);
    }

    /// VPP's state of `i` may have changed: read it at most once per
    /// [`LB_EVERY`].
    pub fn lb_changed(&mut self, i: usize, now: Instant) {
        let l = &mut self.links[i];
        if !l.connected || l.lb_at.is_some() {
            return;
        }
        let earliest = l.lb_last.map_or(now, |t| (t + LB_EVERY).max(now));
        l.lb_at = Some(earliest);
    }

    /// A probe result of `i` waits to be sent.
    pub fn probe(&mut self, i: usize, now: Instant) {
        let l = &mut self.links[i];
        if l.connected {
            l.probes_at.get_or_insert(now + PROBES_EVERY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// One maglevd, connected and read once at the returned time.
    fn read_once() -> (Instant, Core) {
        let t0 = Instant::now();
        let mut c = Core::new(1);
        c.poll(t0);
        c.connected(0, t0);
        assert_eq!(c.poll(t0), vec![Due::Full(0)]);
        c.full_done(0, t0);
        (t0, c)
    }

    #[test]
    fn connects_reads_everything_then_every_30s() {
        let t0 = Instant::now();
        let mut c = Core::new(2);
        assert_eq!(c.poll(t0), vec![Due::Connect(0), Due::Connect(1)]);
        assert_eq!(c.poll(t0), vec![], "attempts under way");
        assert_eq!(c.next_wakeup(t0), None, "nothing to do until they report");
        c.connected(0, t0);
        assert_eq!(c.poll(t0), vec![Due::Full(0)]);
        c.full_done(0, t0 + ms(20));
        assert_eq!(c.next_wakeup(t0), Some(t0 + ms(20) + FULL_EVERY));
        assert_eq!(c.poll(t0 + ms(30_000)), vec![]);
        assert_eq!(c.poll(t0 + ms(30_020)), vec![Due::Full(0)]);
    }

    #[test]
    fn a_lost_maglevd_is_retried_with_backoff_the_other_unaffected() {
        let t0 = Instant::now();
        let mut c = Core::new(2);
        c.poll(t0);
        c.connected(1, t0);
        assert_eq!(c.lost(0, t0), RECONNECT_FIRST);
        assert_eq!(c.poll(t0), vec![Due::Full(1)]);
        assert_eq!(c.next_wakeup(t0), Some(t0 + RECONNECT_FIRST));
        assert_eq!(c.poll(t0 + RECONNECT_FIRST), vec![Due::Connect(0)]);
        assert_eq!(c.lost(0, t0 + RECONNECT_FIRST), ms(1000));
        assert_eq!(c.lost(0, t0 + ms(1500)), ms(2000));
        for _ in 0..5 {
            c.lost(0, t0);
        }
        assert_eq!(c.lost(0, t0), RECONNECT_MAX, "capped");
        c.connected(0, t0);
        assert_eq!(c.lost(0, t0), RECONNECT_FIRST, "a session resets it");
    }

    #[test]
    fn changes_are_read_once_per_burst_and_lb_at_most_once_a_second() {
        let (t0, mut c) = read_once();
        c.frontends_changed(0, BTreeSet::from(["web".to_string()]), t0);
        c.frontends_changed(0, BTreeSet::from(["api".to_string()]), t0 + ms(50));
        assert_eq!(c.poll(t0 + ms(50)), vec![Due::Lb(0)], "lb at once");
        assert_eq!(
            c.poll(t0 + ms(100)),
            vec![Due::Frontends(0, vec!["api".into(), "web".into()])]
        );
        c.frontends_done(0);
        c.lb_done(0);
        c.lb_changed(0, t0 + ms(200));
        assert_eq!(c.poll(t0 + ms(900)), vec![]);
        assert_eq!(c.next_wakeup(t0), Some(t0 + ms(1050)));
        assert_eq!(c.poll(t0 + ms(1050)), vec![Due::Lb(0)]);
        c.lb_done(0);
        // A change while everything is being read: read it again after.
        c.full_needed(0, t0 + ms(2000));
        assert_eq!(c.poll(t0 + ms(2000)), vec![Due::Full(0)]);
        c.frontends_changed(0, BTreeSet::from(["web".to_string()]), t0 + ms(2001));
        assert_eq!(c.poll(t0 + ms(2101)), vec![], "not during the read");
        c.full_done(0, t0 + ms(2102));
        assert_eq!(
            c.poll(t0 + ms(2102)),
            vec![Due::Full(0)],
            "at once after it"
        );
        c.full_done(0, t0 + ms(2103));
        assert_eq!(
            c.poll(t0 + ms(2103)),
            vec![Due::Lb(0)],
            "VPP too, held during the reads"
        );
        c.lb_done(0);
        // Probe results: one batch per second.
        c.probe(0, t0 + ms(3100));
        c.probe(0, t0 + ms(3500));
        assert_eq!(c.poll(t0 + ms(4099)), vec![]);
        assert_eq!(c.poll(t0 + ms(4100)), vec![Due::Probes(0)]);
    }

    #[test]
    fn idle_means_only_the_full_refresh() {
        let (t0, mut c) = read_once();
        assert_eq!(c.next_wakeup(t0), Some(t0 + FULL_EVERY));
        c.lost(0, t0);
        c.probe(0, t0);
        c.frontends_changed(0, BTreeSet::from(["web".to_string()]), t0);
        assert_eq!(
            c.next_wakeup(t0),
            Some(t0 + RECONNECT_FIRST),
            "only the reconnect"
        );
    }
}
