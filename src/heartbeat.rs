//! Proof that a thread is alive, for the systemd watchdog.
//!
//! The main thread asks each long-lived thread (checker, probers,
//! reconciler) to answer a sequence number through its ordinary input
//! queue; a thread answers by storing the number in its [`Beat`]. The
//! watchdog is fed only when every thread answered the previous question,
//! so a wedged thread stops `WATCHDOG=1` and systemd restarts the daemon.
//! Nobody wakes for this but at the watchdog's own cadence.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One thread's last answer.
#[derive(Debug, Clone, Default)]
pub struct Beat(Arc<AtomicU64>);

impl Beat {
    /// A beat that has answered nothing yet.
    pub fn new() -> Beat {
        Beat::default()
    }

    /// The thread answers question `seq`.
    pub fn answer(&self, seq: u64) {
        self.0.fetch_max(seq, Ordering::Relaxed);
    }

    /// The newest question answered.
    pub fn last(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Named beats, checked together.
#[derive(Debug, Clone, Default)]
pub struct Beats(Vec<(String, Beat)>);

impl Beats {
    /// Adds a thread.
    pub fn add(&mut self, name: impl Into<String>, beat: Beat) {
        self.0.push((name.into(), beat));
    }

    /// The threads that have not answered `seq` (empty: all alive).
    pub fn missing(&self, seq: u64) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, b)| b.last() < seq)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_names_the_threads_behind() {
        let (a, b) = (Beat::new(), Beat::new());
        let mut all = Beats::default();
        all.add("checker", a.clone());
        all.add("reconciler", b.clone());
        assert_eq!(all.missing(1), vec!["checker", "reconciler"]);
        a.answer(1);
        assert_eq!(all.missing(1), vec!["reconciler"]);
        b.answer(2);
        a.answer(1);
        assert!(all.missing(1).is_empty());
        assert_eq!(all.missing(2), vec!["checker"]);
        // Answers never go backwards.
        b.answer(1);
        assert!(all.missing(2) == vec!["checker"]);
    }
}
