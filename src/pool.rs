//! Per-frame result vectors from a pool, so steady state allocates nothing.
//!
//! A stage owns a [`VecPool`]; each frame takes a [`Pooled`] vector from it,
//! fills it and puts it in the record. When the record is dropped (after the
//! last sink), the vector goes back to the pool, cleared, with its capacity.
//! A leaf: it imports nothing of percept.

use crossbeam_channel::{Receiver, Sender};

/// A per-frame result vector borrowed from a [`VecPool`] and returned to it
/// when dropped.
#[derive(Debug)]
pub struct Pooled<T> {
    items: Vec<T>,
    home: Option<Sender<Vec<T>>>,
}

impl<T> Pooled<T> {
    /// Wraps a vector that goes back to `home` (cleared) when dropped.
    pub fn new(items: Vec<T>, home: Sender<Vec<T>>) -> Pooled<T> {
        Pooled {
            items,
            home: Some(home),
        }
    }

    /// Appends one item.
    pub fn push(&mut self, item: T) {
        self.items.push(item);
    }

    /// The vector itself, to fill in place.
    pub fn as_mut_vec(&mut self) -> &mut Vec<T> {
        &mut self.items
    }
}

impl<T> Default for Pooled<T> {
    fn default() -> Self {
        Pooled {
            items: Vec::new(),
            home: None,
        }
    }
}

impl<T> std::ops::Deref for Pooled<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items
    }
}

impl<T: Clone> Clone for Pooled<T> {
    /// A copy that does not return to the pool (tests and tools; the runtime
    /// shares records between sinks instead of copying them).
    fn clone(&self) -> Self {
        Pooled {
            items: self.items.clone(),
            home: None,
        }
    }
}

impl<T> Drop for Pooled<T> {
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            let mut items = std::mem::take(&mut self.items);
            items.clear();
            // A full pool just lets this vector go.
            let _ = home.try_send(items);
        }
    }
}

/// Vectors kept for reuse: enough for every record in flight on bounded edges.
pub const DEFAULT_POOL_SLOTS: usize = 64;

/// A stage's pool of result vectors.
#[derive(Debug)]
pub struct VecPool<T> {
    home: Sender<Vec<T>>,
    free: Receiver<Vec<T>>,
    capacity: usize,
}

impl<T> VecPool<T> {
    /// A pool keeping up to `slots` vectors; a new vector starts with room
    /// for `capacity` items.
    pub fn new(slots: usize, capacity: usize) -> VecPool<T> {
        let (home, free) = crossbeam_channel::bounded(slots.max(1));
        VecPool {
            home,
            free,
            capacity,
        }
    }

    /// An empty vector, reused when one has come back.
    pub fn take(&self) -> Pooled<T> {
        let items = self
            .free
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(self.capacity));
        Pooled::new(items, self.home.clone())
    }
}

impl<T> Default for VecPool<T> {
    fn default() -> Self {
        VecPool::new(DEFAULT_POOL_SLOTS, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_come_back_cleared_with_their_capacity() {
        let pool = VecPool::<u32>::new(2, 0);
        let mut a = pool.take();
        a.as_mut_vec().extend(0..100);
        let cap = a.as_mut_vec().capacity();
        drop(a);
        let mut b = pool.take();
        assert!(b.is_empty());
        assert_eq!(b.as_mut_vec().capacity(), cap);
        // A copy never returns to the pool.
        let c = b.clone();
        drop(c);
        assert!(pool.free.is_empty());
    }
}
