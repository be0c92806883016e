//! Which events a target has already counted.
//!
//! Each event is remembered as a 64-bit key of its identity (its id, or its
//! content plus its message's id when it has none; [`crate::fnv::hash`],
//! stable across builds and restarts, so it can be written to the state
//! file) with its event time, so it can be pruned once it falls behind the
//! lookback edge.

use std::collections::HashMap;

/// The remembered events of one target: key -> event time (unix seconds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeenEvents {
    map: HashMap<u64, i64>,
}

impl SeenEvents {
    /// Bytes of heap this set holds: the hash table's buckets (a 16-byte
    /// entry and a control byte each) and its trailing control group.
    pub fn heap_bytes(&self) -> usize {
        if self.map.capacity() == 0 {
            return 0;
        }
        // hashbrown keeps at most 7/8 of its buckets full; buckets are a power of two.
        let buckets = (self.map.capacity() * 8 / 7).next_power_of_two();
        buckets * (std::mem::size_of::<(u64, i64)>() + 1) + 16
    }

    /// Remembers an event; true if it was not known before.
    pub fn insert(&mut self, key: u64, time: i64) -> bool {
        self.map.insert(key, time).is_none()
    }

    /// Whether the event is known.
    pub fn contains(&self, key: u64) -> bool {
        self.map.contains_key(&key)
    }

    /// Forgets events older than `edge` (unix seconds); returns how many.
    pub fn prune(&mut self, edge: i64) -> usize {
        let before = self.map.len();
        self.map.retain(|_, t| *t >= edge);
        before - self.map.len()
    }

    /// Number of remembered events.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// All entries, for the state file.
    pub fn entries(&self) -> impl Iterator<Item = (u64, i64)> + '_ {
        self.map.iter().map(|(k, t)| (*k, *t))
    }

    /// Rebuilds from state-file entries.
    pub fn from_entries(entries: impl IntoIterator<Item = (u64, i64)>) -> Self {
        SeenEvents {
            map: entries.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_and_prune() {
        let mut s = SeenEvents::default();
        assert!(s.insert(1, 100));
        assert!(!s.insert(1, 100));
        assert!(s.insert(2, 50));
        assert_eq!(s.prune(60), 1);
        assert!(s.contains(1) && !s.contains(2));
        assert_eq!(s.len(), 1);
    }
}
