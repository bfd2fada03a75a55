//! Immutable snapshots published by an owner thread, read by anyone.
//!
//! The owner replaces the whole value; readers clone an `Arc` and then work
//! on a consistent view without holding any lock (never across I/O). The
//! lock is held only for the pointer swap or clone.

use std::sync::{Arc, RwLock};

/// A value that one thread publishes and many threads read.
#[derive(Debug)]
pub struct Published<T> {
    slot: Arc<RwLock<Arc<T>>>,
}

impl<T> Clone for Published<T> {
    fn clone(&self) -> Self {
        Published {
            slot: Arc::clone(&self.slot),
        }
    }
}

impl<T> Published<T> {
    /// Starts with `value`.
    pub fn new(value: T) -> Self {
        Published {
            slot: Arc::new(RwLock::new(Arc::new(value))),
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
        let mut guard = self.slot.write().unwrap_or_else(|e| e.into_inner());
        *guard = value;
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
}
