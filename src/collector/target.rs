//! One target's state and the synchronous steps of a collection over it:
//! [`TargetState::begin`] (prune, start a walk), [`TargetState::absorb`]
//! (take in a page's scan), [`TargetState::finish`] (baseline and the
//! partial-walk rule). The driver and the property tests call these same
//! functions.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::Mutex;

use crate::collector::seen::{Interned, SeenEvents};
use crate::collector::state_file::{SeenRecord, TargetRecord};
use crate::collector::store::TargetWrite;
use crate::collector::sweep::SweepState;
use crate::config::TargetSpec;
use crate::metrics::TargetLabels;
use crate::metrics::labels::LabelCap;

/// What one page scan found.
#[derive(Debug)]
pub struct Scan<F> {
    /// What is to be counted: records or events not seen before (now
    /// remembered), and events seen before in another state.
    pub found: Vec<F>,
    /// Of `found`, how many were not seen before.
    pub new: usize,
    /// Of `found`, how many were seen before and changed.
    pub changed: usize,
    /// Records or events within the window that were seen before, unchanged
    /// (or changed in nothing that counts).
    pub seen: usize,
    /// Something remembered changed without being counted (a state adopted).
    pub touched: bool,
    /// Reasons of records skipped as invalid.
    pub invalid: Vec<&'static str>,
    /// Newest event time on the page.
    pub newest: Option<i64>,
    /// Times of the oldest and the newest message on the page (a message's
    /// time is that of its earliest event).
    pub messages: Option<(i64, i64)>,
    /// The page reached the lookback edge: its events are all older.
    pub edge: bool,
    /// The walk should not go further back.
    pub stop: bool,
}

impl<F> Default for Scan<F> {
    fn default() -> Self {
        Scan {
            found: Vec::new(),
            new: 0,
            changed: 0,
            seen: 0,
            touched: false,
            invalid: Vec::new(),
            newest: None,
            messages: None,
            edge: false,
            stop: false,
        }
    }
}

/// What one collection found so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Not seen before (counted, or remembered by a baseline).
    pub new: u64,
    /// Seen before in another state (counted as a change).
    pub changed: u64,
    /// Seen before (on an overlapping page).
    pub seen: u64,
    /// Records skipped, by reason.
    pub invalid: BTreeMap<&'static str, u64>,
}

/// One walk over a target's pages, from [`TargetState::begin`].
#[derive(Debug)]
pub struct Walk {
    /// The lookback edge (unix seconds): older events are neither counted nor remembered.
    pub edge: i64,
    /// As far ahead of now as the edge is behind: a later event is
    /// remembered as of this time, so that it leaves with the window.
    pub ceiling: i64,
    /// The baseline is done: new events count (else they are only remembered).
    pub counting: bool,
    /// A record seen before this walk is the boundary (activities, after a complete walk).
    pub stop_at_seen: bool,
    /// Keys first seen in this walk.
    pub this_walk: HashSet<u64>,
    /// Which part of the window the pages being read are.
    pub phase: Phase,
    /// The head reads on past a page whose oldest message is at least this recent.
    pub head_from: i64,
    /// Events first seen on messages older than this are remembered, not counted.
    pub floor: Option<i64>,
    /// Oldest and newest message time on the pages read by this phase.
    pub messages: Option<(i64, i64)>,
    /// A page of this phase reached the lookback edge.
    pub at_edge: bool,
}

/// Which part of the window a walk's pages are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The whole window, to the edge, the end of data or `max_pages` (the
    /// baseline), or to seen data (activities).
    Whole,
    /// The newest pages: new messages and young ones.
    Head,
    /// Older pages, going on from where the last sweep stopped.
    Sweep,
}

/// `range` (oldest, newest) widened to take in `lo..=hi`.
pub fn widen(range: Option<(i64, i64)>, lo: i64, hi: i64) -> Option<(i64, i64)> {
    Some(range.map_or((lo, hi), |(o, n)| (o.min(lo), n.max(hi))))
}

impl Walk {
    /// Starts `phase`: forgets what the previous phase's pages held.
    pub fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.messages = None;
        self.at_edge = false;
    }
}

/// Mutable state of one target.
#[derive(Debug, Default)]
pub struct TargetState {
    /// Events already counted (or marked by the baseline), with how each was last seen.
    pub seen: SeenEvents,
    /// Webhook states of this target's events, as [`SeenEvents`] marks hold them.
    pub states: Interned,
    /// Applications of this target's events, as [`SeenEvents`] marks hold them.
    pub apps: Interned,
    /// `(application, state)` pairs with a `whatsapp_webhook_events` series.
    pub webhook_series: HashSet<(u8, u8)>,
    /// The first successful collection has been made (or restored from the state file).
    pub baseline_done: bool,
    /// Start of the last collection attempt.
    pub last_attempt: Option<Instant>,
    /// Newest event time seen.
    pub last_event: Option<i64>,
    /// `error` label values in use for this phone number.
    pub error_labels: HashSet<String>,
    /// Applications seen for this phone number (their failure-state series exist).
    pub applications: HashSet<String>,
    /// `error_code` of the failure in progress, for one log line per failure state.
    pub failing: Option<String>,
    /// Changed since the state store was last written.
    pub dirty: bool,
    /// The last walk failed after remembering records, so the next one
    /// reads the whole window instead of stopping at seen records.
    pub partial: bool,
    /// What the collection in progress found so far.
    pub tally: Tally,
    /// Where the sweep of the window stands (message_history).
    pub sweep: SweepState,
    /// The sweep moved since the state store was last written.
    pub sweep_moved: bool,
    /// `collect.max_label_values` (0: only [`Interned::MAX`]).
    pub label_cap: usize,
    /// Values of the `delivery_status` label of this target.
    pub delivery_statuses: LabelCap,
    /// Values of the `category` label of this target.
    pub categories: LabelCap,
    /// Values of the `event_type` label of this target.
    pub event_types: LabelCap,
}

impl TargetState {
    /// The state saved in the state file, pruned to the window from the
    /// lookback `edge` to `ceiling`.
    pub fn restored(rec: TargetRecord, edge: i64, ceiling: i64) -> TargetState {
        let mut seen = SeenEvents::from_entries(rec.seen.into_iter().map(|e| (e.key, e.mark)));
        // Entries moved back from the future are logged, so written next time.
        seen.prune_window(edge, ceiling);
        let mut sweep = rec.sweep;
        // A file from before the sweep: the head reads on to the newest event it knew.
        sweep.head_mark = sweep.head_mark.or(rec.last_event_timestamp);
        sweep.prune(edge);
        TargetState {
            sweep,
            seen,
            states: Interned::from_values(rec.webhook_states),
            apps: Interned::from_values(rec.applications),
            last_event: rec.last_event_timestamp,
            partial: rec.partial,
            baseline_done: true,
            ..TargetState::default()
        }
    }

    /// The most distinct values of an API-derived label of this target.
    pub fn max_label_values(&self) -> usize {
        match self.label_cap {
            0 => Interned::MAX,
            n => n.min(Interned::MAX),
        }
    }

    /// What the state store keeps of it.
    pub fn record(&self) -> TargetRecord {
        TargetRecord {
            seen: self
                .seen
                .entries()
                .map(|(key, mark)| SeenRecord { key, mark })
                .collect(),
            ..self.record_without_events()
        }
    }

    fn record_without_events(&self) -> TargetRecord {
        TargetRecord {
            last_event_timestamp: self.last_event,
            seen: Vec::new(),
            partial: self.partial,
            webhook_states: self.states.values().to_vec(),
            applications: self.apps.values().to_vec(),
            sweep: self.sweep.clone(),
        }
    }

    /// What the state store is to write after a collection: nothing before
    /// the baseline is done or when nothing changed; else the record and the
    /// events changed since the last write (taken from the change log: call
    /// [`TargetState::written`] with how the write went).
    pub fn store_write(&mut self, key: String, now: i64) -> Option<TargetWrite> {
        if !self.baseline_done || !(self.dirty || self.sweep_moved || self.seen.has_changes()) {
            return None;
        }
        Some(TargetWrite {
            key,
            record: self.record_without_events(),
            changes: self.seen.take_changes(),
            saved_at: now,
        })
    }

    /// How the write of [`TargetState::store_write`] went: after a failure
    /// the next write is of everything.
    pub fn written(&mut self, ok: bool) {
        if ok {
            self.dirty = false;
            self.sweep_moved = false;
        } else {
            self.seen.mark_all_changed();
        }
    }

    /// Starts a walk: forgets events older than `edge`, clears the tally.
    /// The walk remembers no event as later than `ceiling` (a restored
    /// state was brought under it by [`TargetState::restored`]).
    pub fn begin(&mut self, edge: i64, ceiling: i64) -> Walk {
        self.tally = Tally::default();
        if self.seen.prune(edge) > 0 {
            self.dirty = true;
        }
        self.sweep.prune(edge);
        Walk {
            edge,
            ceiling,
            counting: self.baseline_done,
            // After a walk that failed partway, records it saw sit above
            // records nobody has seen yet: no boundary until a walk completes.
            stop_at_seen: !self.partial,
            this_walk: HashSet::new(),
            phase: Phase::Whole,
            head_from: i64::MIN,
            floor: self.sweep.floor,
            messages: None,
            at_edge: false,
        }
    }

    /// Takes in the side results of a page scan.
    pub fn absorb<F>(&mut self, scan: &Scan<F>) {
        if !scan.found.is_empty() || scan.touched {
            self.dirty = true;
        }
        self.tally.new += scan.new as u64;
        self.tally.changed += scan.changed as u64;
        self.tally.seen += scan.seen as u64;
        if scan.newest.is_some() {
            self.last_event = self.last_event.max(scan.newest);
        }
        for reason in &scan.invalid {
            *self.tally.invalid.entry(reason).or_default() += 1;
        }
    }

    /// Ends a walk, `ok` or not. Returns true if this walk completed the
    /// baseline. A walk held back by the budget or failed leaves the baseline
    /// to come; one that failed after remembering records makes the next walk
    /// read the whole window.
    pub fn finish(&mut self, walk: &Walk, ok: bool) -> bool {
        self.partial = !ok && (self.partial || !walk.this_walk.is_empty());
        if ok && !self.baseline_done {
            self.baseline_done = true;
            self.dirty = true;
            return true;
        }
        false
    }
}

/// One target this process collects: its labels, state, and flags.
#[derive(Debug)]
pub struct Target {
    /// `{collector, target}` labels.
    pub labels: TargetLabels,
    /// Seen-state and bookkeeping; held for the whole of a collection.
    pub state: Mutex<TargetState>,
    /// A scrape asked for a collection of this target that has not finished yet.
    pending: AtomicBool,
    /// No generation has it any more: it is never collected again.
    retired: AtomicBool,
}

impl Target {
    /// A target of `spec` with `state`.
    pub fn new(spec: &TargetSpec, state: TargetState) -> Target {
        Target {
            labels: TargetLabels::from(spec),
            state: Mutex::new(state),
            pending: AtomicBool::new(false),
            retired: AtomicBool::new(false),
        }
    }

    /// A scrape waits for a collection of it.
    pub fn mark_pending(&self) {
        self.pending.store(true, Ordering::Release);
    }

    /// Whether a collection a scrape asked for has not finished.
    pub fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Clears the pending flag when the collection step ends, however it ends.
    pub fn pending_guard(&self) -> PendingGuard<'_> {
        PendingGuard(&self.pending)
    }

    /// Whether it was retired.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Waits for a collection in flight, then stops collecting this target.
    pub async fn retire(&self) {
        let _st = self.state.lock().await;
        self.retired.store(true, Ordering::Release);
    }
}

/// Clears a target's `pending` flag on drop.
pub struct PendingGuard<'a>(&'a AtomicBool);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
