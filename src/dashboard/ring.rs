//! The dashboard's event stream: the last events kept for replay, with ids
//! `<epoch>-<seq>` (epoch: when this process started, so an id from an
//! earlier run is never mistaken for one of this run), and the
//! Server-Sent Events framing. Pure.

use std::collections::VecDeque;
use std::sync::Arc;

/// Events kept for replay (the original's figure).
pub const REPLAY: usize = 2000;

/// One event as sent: kind and JSON data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Sequence number (`None`: not kept, not replayed: a frequent update
    /// that the next state read supersedes).
    pub seq: Option<u64>,
    /// SSE `event:` name.
    pub kind: &'static str,
    /// SSE `data:`: one line of JSON.
    pub data: Arc<str>,
}

impl Event {
    /// The SSE frame, with `id:` when kept (`epoch` of the ring).
    pub fn frame(&self, epoch: u64) -> String {
        match self.seq {
            Some(s) => format!(
                "id: {epoch}-{s}\nevent: {}\ndata: {}\n\n",
                self.kind, self.data
            ),
            None => format!("event: {}\ndata: {}\n\n", self.kind, self.data),
        }
    }
}

/// What a (re)connecting client gets before the live events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// No `Last-Event-ID`: live events only.
    Fresh,
    /// The events after the client's last one (maybe none).
    Replay(Vec<Event>),
    /// The client's last event is no longer kept, or is not of this run:
    /// it must read the state afresh.
    Resync,
}

/// The replay ring.
#[derive(Debug)]
pub struct Ring {
    epoch: u64,
    next: u64,
    cap: usize,
    kept: VecDeque<Event>,
}

impl Ring {
    /// An empty ring of `cap` events for a run that started at `epoch`.
    pub fn new(epoch: u64, cap: usize) -> Ring {
        Ring {
            epoch,
            next: 1,
            cap: cap.max(1),
            kept: VecDeque::new(),
        }
    }

    /// This run's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Keeps an event (dropping the oldest beyond the capacity) and
    /// returns it with its sequence number.
    pub fn push(&mut self, kind: &'static str, data: Arc<str>) -> Event {
        let e = Event {
            seq: Some(self.next),
            kind,
            data,
        };
        self.next += 1;
        if self.kept.len() == self.cap {
            self.kept.pop_front();
        }
        self.kept.push_back(e.clone());
        e
    }

    /// The last `n` kept events, oldest first (a page's first look at the
    /// history).
    pub fn recent(&self, n: usize) -> Vec<Event> {
        let skip = self.kept.len().saturating_sub(n);
        self.kept.iter().skip(skip).cloned().collect()
    }

    /// What a client whose last event was `last_id` missed.
    pub fn since(&self, last_id: Option<&str>) -> Since {
        let Some(id) = last_id.map(str::trim).filter(|s| !s.is_empty()) else {
            return Since::Fresh;
        };
        let parsed = id
            .split_once('-')
            .and_then(|(e, s)| Some((e.parse::<u64>().ok()?, s.parse::<u64>().ok()?)));
        let Some((epoch, seq)) = parsed else {
            return Since::Resync;
        };
        if epoch != self.epoch || seq >= self.next {
            return Since::Resync;
        }
        let oldest = self.kept.front().and_then(|e| e.seq).unwrap_or(self.next);
        // Events after `seq` must all still be here.
        if seq + 1 < oldest {
            return Since::Resync;
        }
        Since::Replay(
            self.kept
                .iter()
                .filter(|e| e.seq.is_some_and(|s| s > seq))
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn replays_exactly_the_missed_events() {
        let mut r = Ring::new(7, 3);
        let a = r.push("backend", data("{\"n\":1}"));
        assert_eq!(a.frame(7), "id: 7-1\nevent: backend\ndata: {\"n\":1}\n\n");
        r.push("log", data("2"));
        r.push("log", data("3"));
        assert_eq!(r.since(None), Since::Fresh);
        let Since::Replay(v) = r.since(Some("7-1")) else {
            panic!()
        };
        assert_eq!(v.iter().map(|e| e.seq.unwrap()).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(r.since(Some("7-3")), Since::Replay(Vec::new()));
        // A fourth event drops the first: from 7-1 the client missed 2..4,
        // all still here; from 7-0 it missed 1, gone.
        r.push("log", data("4"));
        assert!(matches!(r.since(Some("7-1")), Since::Replay(v) if v.len() == 3));
        assert_eq!(r.since(Some("7-0")), Since::Resync);
        let last_two: Vec<u64> = r.recent(2).iter().filter_map(|e| e.seq).collect();
        assert_eq!(last_two, [3, 4]);
        assert_eq!(r.recent(10).len(), 3);
    }

    #[test]
    fn ids_of_another_run_or_garbage_resync() {
        let mut r = Ring::new(7, 10);
        r.push("log", data("1"));
        assert_eq!(r.since(Some("6-1")), Since::Resync);
        assert_eq!(r.since(Some("7-9")), Since::Resync, "from the future");
        assert_eq!(r.since(Some("junk")), Since::Resync);
        assert_eq!(r.since(Some("  ")), Since::Fresh);
        let e = Event {
            seq: None,
            kind: "probes",
            data: data("[]"),
        };
        assert_eq!(e.frame(7), "event: probes\ndata: []\n\n");
    }
}
