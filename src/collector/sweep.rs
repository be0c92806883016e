//! The rolling sweep of a message_history target's lookback window.
//!
//! New events can be added to any message of the window, so every page must
//! be read again now and then; reading them all in every collection costs a
//! busy number hundreds of calls an hour. Instead each collection reads
//! - the **head**: the newest page, and on while a page holds messages newer
//!   than the previous head saw (their time above [`SweepState::head_mark`])
//!   or sent less than `collect.head_age` ago (their statuses still move), or
//!   is empty but has a next cursor;
//! - then at most `collect.sweep_pages` older pages of the **sweep**, going on
//!   from the cursor where the previous collection's sweep stopped. A sweep
//!   that reaches the lookback edge or the end of the data is complete; the
//!   next one starts behind the head of the collection after it. One that has
//!   read `collect.max_pages` pages without reaching the edge is truncated and
//!   starts over the same way.
//!
//! Cursors point at messages, so a sweep goes on where it was whatever was
//! added at the top in between; if the API hands out offsets instead, the
//! resumed cursor re-reads what was pushed down, and the seen-state makes
//! that harmless. A saved cursor the API refuses starts the sweep over.
//!
//! The baseline reads the whole window (to the edge or `max_pages`). If it
//! stopped at `max_pages`, the time of the oldest message it read becomes the
//! **floor**: an event first seen on an older message (which a later sweep,
//! starting a few pages further down, can reach) is remembered, not counted,
//! as it would have been had the baseline reached it.

use serde::{Deserialize, Serialize};

/// Where a target's sweep stands; kept in the state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SweepState {
    /// Cursor of the sweep's next page; `None`: the next sweep starts behind the head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Pages the sweep in progress has read.
    #[serde(default)]
    pub pages: u32,
    /// When the sweep in progress began (unix seconds): when the one before
    /// it, or the baseline, completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<f64>,
    /// Time of the newest message the last complete head (or baseline) read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_mark: Option<i64>,
    /// A truncated baseline read messages down to this time; events first
    /// seen on older messages are not counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<i64>,
}

impl SweepState {
    /// Whether it holds nothing (the state file leaves it out).
    pub fn is_empty(&self) -> bool {
        *self == SweepState::default()
    }

    /// The head reads on past a page whose oldest message is at least this
    /// recent: newer than `head_mark`, or within `head_age` seconds of `now`.
    /// Without a mark no message was ever read: every one is new.
    pub fn head_from(&self, now: i64, head_age: i64) -> i64 {
        let young = now.saturating_sub(head_age);
        match self.head_mark {
            Some(m) => young.min(m.saturating_add(1)),
            None => i64::MIN,
        }
    }

    /// The head completed, having read messages up to time `newest` (never
    /// past `now`: a message dated in the future must not hide new ones).
    pub fn head_read(&mut self, newest: Option<i64>, now: i64) {
        if let Some(n) = newest {
            self.head_mark = self.head_mark.max(Some(n.min(now)));
        }
    }

    /// The whole window was read (a baseline), down to messages of time
    /// `oldest`; `truncated` if it stopped at `max_pages` before the edge.
    pub fn baseline(
        &mut self,
        newest: Option<i64>,
        oldest: Option<i64>,
        truncated: bool,
        now: f64,
    ) {
        *self = SweepState {
            since: Some(now),
            floor: if truncated { oldest } else { None },
            ..SweepState::default()
        };
        self.head_read(newest, now as i64);
    }

    /// A sweep (or a head that covered the whole window) is complete at
    /// `now`; returns how long the sweep took, if it is known when it began.
    pub fn complete(&mut self, now: f64) -> Option<f64> {
        let took = self.since.map(|s| (now - s).max(0.0));
        self.since = Some(now);
        self.cursor = None;
        self.pages = 0;
        took
    }

    /// Forgets a floor that the lookback `edge` has passed.
    pub fn prune(&mut self, edge: i64) {
        if self.floor.is_some_and(|f| f <= edge) {
            self.floor = None;
        }
    }
}

/// How far a collection of a target reads.
#[derive(Debug, Clone, Copy)]
pub struct Reach {
    /// Pages of one walk: the baseline, the head, one whole sweep.
    pub max_pages: u32,
    /// Sweep pages per collection after the head.
    pub sweep_pages: u32,
    /// Seconds within which a message's statuses still move (`collect.head_age`).
    pub head_age: i64,
    /// Unix seconds now.
    pub now: f64,
}

/// What a collection's walk covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// One walk that stops at seen data (activities).
    Walk,
    /// The baseline read the whole window.
    Baseline,
    /// The head reached the lookback edge or the end of the data: the whole window.
    Covered,
    /// The sweep read its pages and goes on in the next collection.
    Continued,
    /// The sweep reached the lookback edge or the end of the data.
    Completed,
    /// The sweep read `max_pages` pages without reaching the lookback edge.
    Truncated,
}

impl Step {
    /// Its name in the `collection` span's `sweep` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Walk => "none",
            Step::Baseline => "baseline",
            Step::Covered => "covered",
            Step::Continued => "continued",
            Step::Completed => "completed",
            Step::Truncated => "truncated",
        }
    }
}

/// How a collection's walk went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Walked {
    /// What it covered.
    pub step: Step,
    /// A walk stopped at `max_pages` before the lookback edge (or seen data):
    /// a baseline, a sweep, the head, or an activities walk.
    pub truncated: bool,
    /// A sweep completed (or the head covered the window): how long it took.
    pub swept: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_reads_new_and_young_messages_and_never_trusts_the_future() {
        let mut s = SweepState::default();
        // Nothing read yet: every message is new.
        assert_eq!(s.head_from(1_000, 300), i64::MIN);
        s.head_read(Some(900), 1_000);
        // Young (since 700), or new since the last head (after 900).
        assert_eq!(s.head_from(1_000, 300), 700);
        assert_eq!(s.head_from(1_000, 0), 901);
        // A message dated far ahead moves the mark only to now.
        s.head_read(Some(i64::MAX), 1_000);
        assert_eq!(s.head_mark, Some(1_000));
        // And an older head never moves it back.
        s.head_read(Some(10), 2_000);
        assert_eq!(s.head_mark, Some(1_000));
    }

    #[test]
    fn a_sweep_takes_from_its_start_to_its_completion() {
        let mut s = SweepState::default();
        s.baseline(Some(90), Some(10), true, 100.0);
        assert_eq!(
            (s.floor, s.head_mark, s.since),
            (Some(10), Some(90), Some(100.0))
        );
        s.cursor = Some("c".into());
        s.pages = 4;
        assert_eq!(s.complete(160.5), Some(60.5));
        assert_eq!((s.cursor.as_deref(), s.pages), (None, 0));
        assert_eq!(s.complete(170.0), Some(9.5));
        s.prune(9);
        assert_eq!(s.floor, Some(10));
        s.prune(10);
        assert_eq!(s.floor, None);
        let mut fresh = SweepState::default();
        assert_eq!(fresh.complete(5.0), None);
        fresh.baseline(None, Some(3), false, 6.0);
        assert_eq!(fresh.floor, None);
    }
}
