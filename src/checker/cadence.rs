//! When the checker publishes its snapshot: the timing policy of the
//! checker thread, without the thread (fed the time, never reads a clock).
//!
//! Transitions and operator actions publish at once; routine probe results
//! only mark the snapshot stale, and a stale snapshot is published at most
//! [`PublishCadence::every`] after the previous one. Nothing stale, nothing
//! to wake for: an idle checker sleeps until input arrives.

use std::time::{Duration, Instant};

/// Publish bookkeeping for one snapshot owner.
#[derive(Debug, Clone)]
pub struct PublishCadence {
    every: Duration,
    stale: bool,
    urgent: bool,
    last: Instant,
}

impl PublishCadence {
    /// Starts stale and urgent (the first snapshot goes out at once).
    pub fn new(every: Duration, now: Instant) -> PublishCadence {
        PublishCadence {
            every,
            stale: true,
            urgent: true,
            last: now,
        }
    }

    /// Something readers see changed.
    pub fn changed(&mut self) {
        self.stale = true;
    }

    /// Something changed that must be published before the next event.
    pub fn urgent(&mut self) {
        self.urgent = true;
    }

    /// Whether the snapshot differs from what readers have.
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// Whether to publish now.
    pub fn due(&self, now: Instant) -> bool {
        self.stale && (self.urgent || now.saturating_duration_since(self.last) >= self.every)
    }

    /// A snapshot was published at `now`.
    pub fn published(&mut self, now: Instant) {
        self.stale = false;
        self.urgent = false;
        self.last = now;
    }

    /// When the thread must wake to publish, if ever (after [`Self::due`]
    /// was acted on, always later than `now`).
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        if !self.stale {
            return None;
        }
        let at = self.last + self.every;
        Some(if self.urgent || at <= now { now } else { at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn nothing_stale_means_no_wakeup_however_long_idle() {
        let t0 = Instant::now();
        let mut c = PublishCadence::new(S, t0);
        assert!(c.due(t0));
        c.published(t0);
        for secs in [0, 1, 2, 10, 3600] {
            let now = t0 + Duration::from_secs(secs);
            assert!(!c.due(now));
            assert_eq!(c.next_wakeup(now), None, "idle at +{secs}s");
        }
    }

    #[test]
    fn routine_changes_wait_for_the_cadence_then_publish_once() {
        let t0 = Instant::now();
        let mut c = PublishCadence::new(S, t0);
        c.published(t0);
        let t1 = t0 + Duration::from_millis(300);
        c.changed();
        assert!(!c.due(t1));
        assert_eq!(c.next_wakeup(t1), Some(t0 + S));
        assert!(c.next_wakeup(t1).unwrap() > t1);
        let t2 = t0 + S;
        assert!(c.due(t2));
        c.published(t2);
        // Published: quiet again, no wake-up (the old bug spun here).
        let t3 = t2 + Duration::from_millis(1500);
        assert_eq!(c.next_wakeup(t3), None);
        // A change long after the last publish goes out at once.
        c.changed();
        assert!(c.due(t3));
    }

    #[test]
    fn urgent_publishes_at_once() {
        let t0 = Instant::now();
        let mut c = PublishCadence::new(S, t0);
        c.published(t0);
        c.changed();
        c.urgent();
        let t1 = t0 + Duration::from_millis(10);
        assert!(c.due(t1));
        c.published(t1);
        assert!(!c.due(t1));
        assert_eq!(c.next_wakeup(t1), None);
        // Urgent alone (nothing stale) publishes nothing.
        c.urgent();
        assert!(!c.due(t1 + S));
        assert_eq!(c.next_wakeup(t1 + S), None);
    }
}
