//! Which events a target has already counted, and how each was last seen.
//!
//! Each event is remembered as a 64-bit key of its identity (its id, or its
//! content plus its message's id when it has none; [`crate::fnv::hash`],
//! stable across builds and restarts, so it can be written to the state
//! file) with a [`Mark`]: its event time (so it can be pruned once it falls
//! behind the lookback edge) and, for message_history, the webhook state,
//! application and error it was last seen with (so a change after first
//! sight can be counted), and whether its message was still on its way.
//!
//! The table is an open-addressing hash table with linear probing over
//! 16-byte slots (key, packed mark), sized to any slot count rather than a
//! power of two: it grows when more than 4/5 full, to 3/5 full, and after a
//! prune shrinks when under 1/2 full. So it holds between 20 and 32 bytes per
//! remembered event at every size, including just after it grew (a
//! power-of-two table of 16-byte entries kept at most 7/8 full needs about 39
//! bytes there). Deletion shifts the rest of a cluster back (no tombstones).

/// Key of an empty slot; a key that hashes to it is stored as [`ZERO_KEY`].
const EMPTY: u64 = 0;
/// What key 0 is stored as (a 1 in 2^63 coincidence with a real key 1).
const ZERO_KEY: u64 = 1;

/// How one event was last seen. `state`, `app` and `error` are 0 when not
/// recorded (an entry from a state file of an earlier release, or an
/// activities record): such an event adopts what it is next seen with,
/// without counting a change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mark {
    /// Event time, unix seconds (kept as 32 bits: clamped to 0..=u32::MAX).
    pub time: i64,
    /// Webhook state, as an index into the target's interned states (0: none
    /// recorded; 7 bits, up to [`Interned::OTHER`]).
    pub state: u8,
    /// This is its message's earliest SENT event, and the message had no
    /// DELIVERED, READ, FAILED or DELETED event when last read: the message
    /// is on its way (so no memory per message is needed for
    /// `whatsapp_messages_undelivered`).
    pub undelivered: bool,
    /// Application, as an index into the target's interned applications (0: none recorded).
    pub app: u8,
    /// Fingerprint of the normalised error description (0: none).
    pub error: u16,
}

impl Mark {
    /// A mark with only a time (activities; state-file entries of version 1).
    pub fn at(time: i64) -> Mark {
        Mark {
            time,
            ..Mark::default()
        }
    }

    /// The mark as the 64 bits it is stored in (the state store keeps these).
    pub fn pack(self) -> u64 {
        let t = self.time.clamp(0, i64::from(u32::MAX)) as u64;
        let state = self.state.min(Interned::OTHER) | u8::from(self.undelivered) << 7;
        t | u64::from(state) << 32 | u64::from(self.app) << 40 | u64::from(self.error) << 48
    }

    /// The mark of 64 stored bits.
    pub fn unpack(v: u64) -> Mark {
        let state = (v >> 32) as u8;
        Mark {
            time: (v & 0xffff_ffff) as i64,
            state: state & 0x7f,
            undelivered: state & 0x80 != 0,
            app: (v >> 40) as u8,
            error: (v >> 48) as u16,
        }
    }
}

/// The remembered events of one target: key -> [`Mark`].
///
/// It also logs the keys whose mark was set or removed since the log was
/// last taken ([`SeenEvents::take_changes`]), so the state store writes what
/// a collection changed rather than everything.
#[derive(Debug, Clone, Default)]
pub struct SeenEvents {
    /// `(key, packed mark)`; key [`EMPTY`] is a free slot.
    slots: Vec<(u64, u64)>,
    len: usize,
    /// Keys changed since the log was taken (with repeats).
    log: Vec<u64>,
    /// The log overflowed or was given up: everything is to be written.
    all_changed: bool,
}

/// What changed in a [`SeenEvents`] since the log was last taken.
#[derive(Debug, PartialEq)]
pub enum Changes {
    /// Everything: write every entry, drop what else was stored.
    All(Vec<(u64, Mark)>),
    /// These keys: their mark now, or `None` if removed.
    Keys(Vec<(u64, Option<Mark>)>),
}

impl PartialEq for SeenEvents {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.entries().all(|(k, m)| other.get(k) == Some(m))
    }
}

/// The slot count for `len` entries: 3/5 full (at least one free slot).
fn slots_for(len: usize) -> usize {
    (len * 5).div_ceil(3).max(len + 1)
}

/// SplitMix64's finaliser: the keys are FNV-1a hashes, whose high bits are
/// weak on short inputs; the slot is taken from the high bits.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn stored(key: u64) -> u64 {
    if key == EMPTY { ZERO_KEY } else { key }
}

impl SeenEvents {
    /// Bytes of heap this set holds: its slots.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<(u64, u64)>()
    }

    /// The home slot of `key` in a table of `n` slots.
    fn home(key: u64, n: usize) -> usize {
        ((u128::from(mix(key)) * n as u128) >> 64) as usize
    }

    /// The slot holding `key`, or the free slot where it would go.
    fn find(&self, key: u64) -> Result<usize, usize> {
        let n = self.slots.len();
        let mut i = Self::home(key, n);
        loop {
            match self.slots[i].0 {
                EMPTY => return Err(i),
                k if k == key => return Ok(i),
                _ => i = if i + 1 == n { 0 } else { i + 1 },
            }
        }
    }

    fn rebuild(&mut self, n: usize) {
        let old = std::mem::replace(&mut self.slots, vec![(EMPTY, 0); n]);
        for (k, v) in old.into_iter().filter(|(k, _)| *k != EMPTY) {
            if let Err(i) = self.find(k) {
                self.slots[i] = (k, v);
            }
        }
    }

    /// Remembers `key` with `mark`; returns the mark it had, if it was known.
    pub fn insert(&mut self, key: u64, mark: Mark) -> Option<Mark> {
        self.update(key, |_| mark).0
    }

    /// Sets the mark of `key` to what `mark` makes of its old one (`None`
    /// if it was not known), in one probe; returns the old mark and the new
    /// (as stored: its time clamped).
    pub fn update(
        &mut self,
        key: u64,
        mark: impl FnOnce(Option<Mark>) -> Mark,
    ) -> (Option<Mark>, Mark) {
        let key = stored(key);
        if (self.len + 1) * 5 > self.slots.len() * 4 {
            self.rebuild(slots_for(self.len + 1));
        }
        match self.find(key) {
            Ok(i) => {
                let was = self.slots[i].1;
                let new = mark(Some(Mark::unpack(was))).pack();
                self.slots[i].1 = new;
                if new != was {
                    self.logged(key);
                }
                (Some(Mark::unpack(was)), Mark::unpack(new))
            }
            Err(i) => {
                let new = mark(None).pack();
                self.slots[i] = (key, new);
                self.len += 1;
                self.logged(key);
                (None, Mark::unpack(new))
            }
        }
    }

    /// How `key` was last seen, if it is known.
    pub fn get(&self, key: u64) -> Option<Mark> {
        if self.len == 0 {
            return None;
        }
        self.find(stored(key))
            .ok()
            .map(|i| Mark::unpack(self.slots[i].1))
    }

    /// Whether the event is known.
    pub fn contains(&self, key: u64) -> bool {
        self.get(key).is_some()
    }

    /// Keeps the entries `keep` accepts; returns how many were removed.
    /// Shrinks the table when it is left under half full.
    pub fn retain(&mut self, mut keep: impl FnMut(u64, Mark) -> bool) -> usize {
        let n = self.slots.len();
        let before = self.len;
        let Some(start) = self.slots.iter().position(|s| s.0 == EMPTY) else {
            return 0;
        };
        // From a free slot on, no cluster wraps past the start: a removal
        // shifts later entries of its cluster back into the hole, onto
        // slots not yet looked at or the one being looked at again.
        let mut step = 1;
        while step < n {
            let i = (start + step) % n;
            let (k, v) = self.slots[i];
            if k != EMPTY && !keep(k, Mark::unpack(v)) {
                self.remove_at(i);
            } else {
                step += 1;
            }
        }
        if self.len * 2 < n && n > 2 {
            self.rebuild(slots_for(self.len));
        }
        before - self.len
    }

    /// Empties slot `hole` and shifts back the entries of its cluster that
    /// may move there (their home is not between the hole and them).
    fn remove_at(&mut self, mut hole: usize) {
        let n = self.slots.len();
        let key = self.slots[hole].0;
        self.logged(key);
        self.slots[hole] = (EMPTY, 0);
        self.len -= 1;
        let mut j = hole;
        loop {
            j = if j + 1 == n { 0 } else { j + 1 };
            let k = self.slots[j].0;
            if k == EMPTY {
                return;
            }
            let home = Self::home(k, n);
            // Distance from home to j, and from the hole to j (cyclically).
            let from_home = (j + n - home) % n;
            let from_hole = (j + n - hole) % n;
            if from_home >= from_hole {
                self.slots[hole] = self.slots[j];
                self.slots[j] = (EMPTY, 0);
                hole = j;
            }
        }
    }

    /// Forgets events older than `edge` (unix seconds); returns how many.
    pub fn prune(&mut self, edge: i64) -> usize {
        self.retain(|_, m| m.time >= edge)
    }

    /// Forgets events older than `edge` and brings back to `ceiling` any
    /// dated after it (a sender's clock far ahead), so that every entry
    /// leaves with the window; returns how many were forgotten or moved.
    pub fn prune_window(&mut self, edge: i64, ceiling: i64) -> usize {
        let mut moved = Vec::new();
        for slot in self.slots.iter_mut().filter(|s| s.0 != EMPTY) {
            let mut m = Mark::unpack(slot.1);
            if m.time > ceiling {
                m.time = ceiling;
                slot.1 = m.pack();
                moved.push(slot.0);
            }
        }
        for k in &moved {
            self.logged(*k);
        }
        moved.len() + self.prune(edge)
    }

    /// Number of remembered events.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// All entries.
    pub fn entries(&self) -> impl Iterator<Item = (u64, Mark)> + '_ {
        self.slots
            .iter()
            .filter(|(k, _)| *k != EMPTY)
            .map(|(k, v)| (*k, Mark::unpack(*v)))
    }

    /// Rebuilds from stored entries (nothing logged: they are stored already).
    pub fn from_entries(entries: impl IntoIterator<Item = (u64, Mark)>) -> Self {
        let mut s = SeenEvents::default();
        for (k, m) in entries {
            s.insert(k, m);
        }
        s.log.clear();
        s
    }

    fn logged(&mut self, key: u64) {
        if self.all_changed {
            return;
        }
        // Past twice the entries (plus slack) the log is worth less than a full write.
        if self.log.len() >= 2 * self.len + 1024 {
            self.all_changed = true;
            self.log = Vec::new();
        } else {
            self.log.push(key);
        }
    }

    /// Everything is to be written at the next [`SeenEvents::take_changes`]
    /// (a write failed, or what was stored is unknown).
    pub fn mark_all_changed(&mut self) {
        self.all_changed = true;
        self.log = Vec::new();
    }

    /// Whether anything changed since the log was last taken.
    pub fn has_changes(&self) -> bool {
        self.all_changed || !self.log.is_empty()
    }

    /// What changed since the last call, and clears the log.
    pub fn take_changes(&mut self) -> Changes {
        if std::mem::take(&mut self.all_changed) {
            self.log = Vec::new();
            return Changes::All(self.entries().collect());
        }
        let mut keys = std::mem::take(&mut self.log);
        keys.sort_unstable();
        keys.dedup();
        Changes::Keys(keys.into_iter().map(|k| (k, self.get(k))).collect())
    }
}

/// Label values of one target (webhook states, applications) interned to a
/// small index, so a [`Mark`] can hold them: index + 1, 0 being "none
/// recorded". At most [`Interned::MAX`] values; later ones share
/// [`Interned::OTHER`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interned {
    values: Vec<String>,
}

impl Interned {
    /// Distinct values kept.
    pub const MAX: usize = 126;
    /// The index of every value past [`Interned::MAX`], shown as `other`.
    pub const OTHER: u8 = 127;

    /// The index of `v`, interning it if new.
    pub fn index(&mut self, v: &str) -> u8 {
        self.index_within(v, Self::MAX)
    }

    /// The index of `v`, interning it if new and fewer than `max` (at most
    /// [`Interned::MAX`]) values are held; else [`Interned::OTHER`].
    pub fn index_within(&mut self, v: &str, max: usize) -> u8 {
        if let Some(i) = self.values.iter().position(|x| x == v) {
            return (i + 1) as u8;
        }
        if self.values.len() >= max.min(Self::MAX) {
            return Self::OTHER;
        }
        self.values.push(v.to_string());
        self.values.len() as u8
    }

    /// The value of index `i` (`other` past the cap, `unknown` for 0 or an
    /// index it does not hold).
    pub fn value(&self, i: u8) -> &str {
        match i {
            Self::OTHER => "other",
            0 => "unknown",
            i => self
                .values
                .get(usize::from(i) - 1)
                .map_or("unknown", String::as_str),
        }
    }

    /// The values in index order, for the state file.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Rebuilt from the state file (extra values past the cap dropped).
    pub fn from_values(mut values: Vec<String>) -> Self {
        values.truncate(Self::MAX);
        Interned { values }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn insert_and_prune() {
        let mut s = SeenEvents::default();
        assert!(s.insert(1, Mark::at(100)).is_none());
        assert_eq!(s.insert(1, Mark::at(100)), Some(Mark::at(100)));
        assert!(s.insert(2, Mark::at(50)).is_none());
        assert_eq!(s.prune(60), 1);
        assert!(s.contains(1) && !s.contains(2));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn far_future_entries_are_brought_back_and_leave_with_the_window() {
        let mut s = SeenEvents::default();
        s.insert(1, Mark::at(100));
        s.insert(2, Mark::at(4_000_000_000));
        let _ = s.take_changes();
        assert_eq!(s.prune_window(50, 200), 1);
        assert_eq!(s.get(2).map(|m| m.time), Some(200));
        assert!(s.has_changes(), "the move is written");
        assert_eq!(s.prune_window(150, 300), 1, "the early one leaves");
        assert_eq!(
            s.prune_window(201, 400),
            1,
            "the moved one leaves with the window"
        );
        assert!(s.is_empty());
    }

    #[test]
    fn the_change_log_holds_what_changed_once() {
        let mut s = SeenEvents::from_entries([(1, Mark::at(100)), (2, Mark::at(50))]);
        assert!(!s.has_changes(), "restored entries are stored already");
        s.insert(1, Mark::at(100)); // same mark: no change
        s.insert(3, Mark::at(120));
        s.insert(3, Mark::at(121));
        s.prune(60);
        assert_eq!(
            s.take_changes(),
            Changes::Keys(vec![(2, None), (3, Some(Mark::at(121)))])
        );
        assert_eq!(s.take_changes(), Changes::Keys(vec![]));
        s.mark_all_changed();
        let Changes::All(mut all) = s.take_changes() else {
            panic!("a full write")
        };
        all.sort_unstable_by_key(|e| e.0);
        assert_eq!(all, vec![(1, Mark::at(100)), (3, Mark::at(121))]);
        // A log longer than the set is worth becomes a full write.
        for t in 0..3_000 {
            s.insert(1, Mark::at(t));
        }
        assert!(matches!(s.take_changes(), Changes::All(v) if v.len() == 2));
    }

    #[test]
    fn interned_values_are_capped() {
        let mut i = Interned::default();
        assert_eq!(i.index("PENDING"), 1);
        assert_eq!(i.index("FAILED"), 2);
        assert_eq!(i.index("PENDING"), 1);
        assert_eq!(i.value(2), "FAILED");
        assert_eq!(i.value(0), "unknown");
        for n in 0..300 {
            i.index(&format!("S{n}"));
        }
        assert_eq!(i.values().len(), Interned::MAX);
        assert_eq!(i.index("late"), Interned::OTHER);
        assert_eq!(i.value(Interned::OTHER), "other");
    }

    #[test]
    fn marks_round_trip_and_clamp() {
        let m = Mark {
            time: 1_795_000_000,
            state: Interned::OTHER,
            undelivered: true,
            app: 255,
            error: 65_535,
        };
        assert_eq!(Mark::unpack(m.pack()), m);
        let m = Mark {
            undelivered: false,
            ..m
        };
        assert_eq!(Mark::unpack(m.pack()), m);
        assert_eq!(Mark::unpack(Mark::at(-5).pack()).time, 0);
        assert_eq!(
            Mark::unpack(Mark::at(i64::MAX).pack()).time,
            i64::from(u32::MAX)
        );
    }

    /// The table against a `HashMap` over random inserts, updates and
    /// prunes, with keys crowded onto few home slots (small tables, long
    /// clusters, wrap-around), and key 0.
    #[test]
    fn agrees_with_a_hash_map() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..200 {
            let mut s = SeenEvents::default();
            let mut m: HashMap<u64, Mark> = HashMap::new();
            let span = 1 + round * 7;
            for step in 0..2_000u64 {
                let key = next() % span;
                let mark = Mark {
                    time: (next() % 1_000) as i64,
                    state: (step % 5) as u8,
                    undelivered: step % 2 == 0,
                    app: 1,
                    error: (next() % 3) as u16 * 100,
                };
                if step % 3 == 0 {
                    let (old, new) = s.update(key, |old| Mark {
                        error: old.map_or(9, |o| o.error + 1),
                        ..mark
                    });
                    let want = m.get(&stored(key)).copied();
                    assert_eq!(old, want);
                    assert_eq!(new.error, want.map_or(9, |o| o.error + 1));
                    m.insert(stored(key), new);
                } else {
                    assert_eq!(s.insert(key, mark), m.insert(stored(key), mark));
                }
                if step % 97 == 0 {
                    let edge = (next() % 600) as i64;
                    let before = m.len();
                    m.retain(|_, v| v.time >= edge);
                    assert_eq!(s.prune(edge), before - m.len());
                }
                assert_eq!(s.len(), m.len());
                let probe = next() % span;
                assert_eq!(s.get(probe), m.get(&stored(probe)).copied());
            }
            for (k, v) in &m {
                assert_eq!(s.get(*k), Some(*v), "round {round} key {k}");
            }
            assert_eq!(s.entries().count(), m.len());
        }
    }

    /// At least 3/5 (after growing) and at most 4/5 full; at least 1/2 after a prune.
    #[test]
    fn bytes_per_event_stay_within_32() {
        let mut s = SeenEvents::default();
        for k in 1..=200_000u64 {
            s.insert(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), Mark::at(k as i64));
            let per = s.heap_bytes() as f64 / s.len() as f64;
            assert!(per <= 32.0, "{per} B/event at {} events", s.len());
        }
        for edge in [50_000, 120_000, 190_000, 199_990] {
            s.prune(edge);
            let per = s.heap_bytes() as f64 / s.len() as f64;
            assert!(per <= 32.0, "{per} B/event after a prune to {}", s.len());
        }
    }
}
