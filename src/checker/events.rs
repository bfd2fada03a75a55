//! Events the checker emits, and their fan-out to any number of subscribers.
//!
//! Delivery never blocks the checker: each subscriber has a bounded queue,
//! and a subscriber that falls behind loses events. It is told how many with
//! a [`Event::Lagged`] before the next one it does get, so it can resync
//! from a snapshot instead of acting on a partial picture.

use std::time::SystemTime;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use serde::{Deserialize, Serialize};

use crate::health::state::State;
use crate::health::weights::FrontendState;
use crate::probe::Code;

/// A backend changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendEvent {
    /// Backend name.
    pub backend: String,
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// Probe code behind it, if a probe caused it.
    pub code: Option<Code>,
    /// Human detail.
    pub detail: String,
    /// When.
    pub at: SystemTime,
}

/// A frontend's aggregate state changed (or, for a new watcher, is replayed
/// with `from == to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendEvent {
    /// Frontend name.
    pub frontend: String,
    /// State before.
    pub from: FrontendState,
    /// State after.
    pub to: FrontendState,
    /// When.
    pub at: SystemTime,
}

/// Whether VPP holds what a frontend wants, from what VPP answered and
/// what the last read of VPP holds (never from maglevd's own record):
/// `maglevc show frontends`' VPP column, `maglev_frontend_programmed`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Dataplane {
    /// VPP holds the VIP with the ASes and weights desired.
    Ok,
    /// VPP refused an operation for it, and does not hold it as desired.
    Refused,
    /// Not programmed yet: warmup, VPP down, a sync under way.
    #[default]
    Pending,
    /// No VPP configured.
    Off,
}

impl Dataplane {
    /// The word shown and sent (`ok`, `refused`, `pending`, `off`).
    pub fn as_str(self) -> &'static str {
        match self {
            Dataplane::Ok => "ok",
            Dataplane::Refused => "refused",
            Dataplane::Pending => "pending",
            Dataplane::Off => "off",
        }
    }
}

impl std::fmt::Display for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A frontend's [`Dataplane`] status changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneEvent {
    /// Frontend name.
    pub frontend: String,
    /// Status before.
    pub from: Dataplane,
    /// Status after.
    pub to: Dataplane,
    /// VPP's refusal, when `to` is [`Dataplane::Refused`].
    pub error: Option<String>,
    /// When.
    pub at: SystemTime,
}

/// An address was announced to BGP or withdrawn (published by the
/// announcer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceEvent {
    /// The VIP address.
    pub address: std::net::IpAddr,
    /// Now announced.
    pub announced: bool,
    /// Why withdrawn (`vpp-down`, `maintenance`, ...), when withdrawn.
    pub reason: Option<String>,
    /// The frontends at that address.
    pub frontends: Vec<String>,
    /// When.
    pub at: SystemTime,
}

/// Something subscribers may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Backend transition.
    Backend(BackendEvent),
    /// Frontend transition.
    Frontend(FrontendEvent),
    /// A frontend's VPP status changed (published by the reconciler).
    Dataplane(DataplaneEvent),
    /// An address was announced or withdrawn (published by the announcer).
    Announce(AnnounceEvent),
    /// A frontend's configured weights changed at runtime; `flush` names a
    /// backend whose flows must be flushed.
    WeightChanged {
        /// Frontend name.
        frontend: String,
        /// Backend to flush, if asked.
        flush: Option<String>,
    },
    /// The configuration was replaced by a reload.
    ConfigReloaded,
    /// This subscriber missed `missed` events (its queue was full).
    Lagged {
        /// How many.
        missed: u64,
    },
}

struct Subscriber {
    tx: Sender<Event>,
    missed: u64,
}

/// The subscriber list.
#[derive(Default)]
pub struct Broadcaster {
    subs: Vec<Subscriber>,
}

impl Broadcaster {
    /// A new subscriber with a queue of `capacity` events.
    pub fn subscribe(&mut self, capacity: usize) -> Receiver<Event> {
        let (tx, rx) = bounded(capacity.max(2));
        self.add(tx);
        rx
    }

    /// Adds a subscriber whose queue the caller created.
    pub fn add(&mut self, tx: Sender<Event>) {
        self.subs.push(Subscriber { tx, missed: 0 });
    }

    /// Number of live subscribers.
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// Whether nobody listens.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// Offers `ev` to every subscriber without waiting; drops subscribers
    /// that went away.
    pub fn publish(&mut self, ev: &Event) {
        self.subs.retain_mut(|s| {
            if s.missed > 0 {
                match s.tx.try_send(Event::Lagged { missed: s.missed }) {
                    Ok(()) => s.missed = 0,
                    Err(TrySendError::Full(_)) => {
                        s.missed += 1;
                        return true;
                    }
                    Err(TrySendError::Disconnected(_)) => return false,
                }
            }
            match s.tx.try_send(ev.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    s.missed += 1;
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u64) -> Event {
        Event::Lagged { missed: 1000 + n }
    }

    #[test]
    fn slow_subscriber_never_blocks_and_learns_what_it_missed() {
        let mut b = Broadcaster::default();
        let fast = b.subscribe(100);
        let slow = b.subscribe(2);
        for n in 0..5 {
            b.publish(&ev(n));
        }
        assert_eq!(fast.try_iter().count(), 5);
        let got: Vec<Event> = slow.try_iter().collect();
        assert_eq!(got, vec![ev(0), ev(1)]);
        b.publish(&ev(5));
        let got: Vec<Event> = slow.try_iter().collect();
        assert_eq!(got, vec![Event::Lagged { missed: 3 }, ev(5)]);
    }

    #[test]
    fn gone_subscribers_are_dropped() {
        let mut b = Broadcaster::default();
        let rx = b.subscribe(4);
        drop(rx);
        b.publish(&ev(0));
        assert!(b.is_empty());
    }
}
