//! Immutable snapshots published by an owner thread, read by anyone.
//!
//! The owner replaces the whole value; readers clone an `Arc` and then work
//! on a consistent view without holding any lock (never across I/O). The
//! lock is held only for the pointer swap or clone.

use std::sync::{Arc, Mutex, RwLock};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

/// A value that one thread publishes and many threads read.
#[derive(Debug)]
pub struct Published<T> {
    slot: Arc<RwLock<Arc<T>>>,
    /// Readers that want to sleep until the next store (see `changes`).
    watchers: Arc<Mutex<Vec<Sender<()>>>>,
}

impl<T> Clone for Published<T> {
    fn clone(&self) -> Self {
        Published {
            slot: Arc::clone(&self.slot),
            watchers: Arc::clone(&self.watchers),
        }
    }
}

impl<T> Published<T> {
    /// Starts with `value`.
    pub fn new(value: T) -> Self {
        Published {
            slot: Arc::new(RwLock::new(Arc::new(value))),
            watchers: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<T> {
        // A poisoned lock only means a writer panicked between two complete
        // values; the Arc inside is still a whole snapshot.
        let guard = self.slot.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&guard)
    }

    /// Replaces the snapshot; readers holding the old one keep it.
    pub fn store(&self, value: Arc<T>) {
        {
            let mut guard = self.slot.write().unwrap_or_else(|e| e.into_inner());
            *guard = value;
        }
        let mut w = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        // A full channel already holds a wake-up; a closed one is dropped.
        w.retain(|tx| !matches!(tx.try_send(()), Err(TrySendError::Disconnected(_))));
    }

    /// A channel that receives a message after each [`Published::store`]
    /// (several stores may fold into one): a reader can block on it
    /// instead of polling the snapshot.
    pub fn changes(&self) -> Receiver<()> {
        let (tx, rx) = bounded(1);
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_keep_their_snapshot() {
        let p = Published::new(1);
        let old = p.load();
        p.store(Arc::new(2));
        assert_eq!(*old, 1);
        assert_eq!(*p.load(), 2);
        let q = p.clone();
        q.store(Arc::new(3));
        assert_eq!(*p.load(), 3);
    }

    #[test]
    fn changes_wake_a_watcher_once_per_batch() {
        let p = Published::new(0);
        let rx = p.clone().changes();
        assert!(rx.try_recv().is_err());
        p.store(Arc::new(1));
        p.store(Arc::new(2));
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err(), "folded into one");
        drop(rx);
        p.store(Arc::new(3));
        assert!(
            p.watchers.lock().unwrap().is_empty(),
            "closed watcher dropped"
        );
    }
}
