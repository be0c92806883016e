//! `GET /{WABA-ID}/activities`: administrative and operational events of an
//! account, newest first.
//!
//! Records are only ever added at the top, so the scan stops after the first
//! page that holds a record seen in an earlier collection, or one older than
//! the lookback edge: in steady state one request per account. A record seen
//! earlier in the same walk is not a reason to stop: records added at the
//! top while the walk is under way can push it onto the next page.

use std::collections::HashSet;

use crate::collector::driver::Collect;
use crate::collector::seen::{Mark, SeenEvents};
use crate::collector::target::{Scan, TargetState, Walk};
use crate::fnv;
use crate::graph::Edge;
use crate::graph::model::{Activity, Page, Text};
use crate::metrics::EventMetrics;
use crate::metrics::labels::ActivityLabels;
use crate::metrics::labels::label_str;

/// Fields requested: every documented field (the defaults omit id and category).
pub const FIELDS: &str = "id,actor_business_id,actor_id,category,event_type,timestamp";

/// Finds the records of one page not seen before and remembers them.
///
/// `this_walk` holds the keys first seen in the current collection; `stop`
/// is set when the page holds a record older than `edge`, or (with
/// `stop_at_seen`) one seen before this collection.
pub fn scan_page<'p>(
    page: &'p Page<Activity>,
    seen: &mut SeenEvents,
    this_walk: &mut HashSet<u64>,
    stop_at_seen: bool,
    (edge, ceiling): (i64, i64),
) -> Scan<&'p Activity> {
    let mut scan = Scan::default();
    for rec in &page.data {
        let Some(ts) = rec.timestamp else {
            scan.invalid.push("no_timestamp");
            continue;
        };
        scan.newest = scan.newest.max(Some(ts));
        if ts < edge {
            scan.stop = true;
            continue;
        }
        let key = identity(rec, ts);
        if seen.insert(key, Mark::at(ts.min(ceiling))).is_none() {
            this_walk.insert(key);
            scan.new += 1;
            scan.found.push(rec);
        } else {
            scan.seen += 1;
            if stop_at_seen && !this_walk.contains(&key) {
                scan.stop = true;
            }
        }
    }
    scan
}

fn identity(rec: &Activity, ts: i64) -> u64 {
    match rec.id.as_deref() {
        Some(id) if !id.is_empty() => fnv::hash(&["activity", id]),
        _ => fnv::hash(&[
            "activity-content",
            rec.event_type.as_deref().unwrap_or(""),
            rec.category.as_deref().unwrap_or(""),
            &ts.to_string(),
            rec.actor_id.as_deref().unwrap_or(""),
            rec.actor_business_id.as_deref().unwrap_or(""),
        ]),
    }
}

/// The activities collector: counts each record once by category and event type.
#[derive(Debug, Clone)]
pub struct ActivitiesCollector {
    events: EventMetrics,
}

impl ActivitiesCollector {
    /// Counting into `events`.
    pub fn new(events: EventMetrics) -> Self {
        ActivitiesCollector { events }
    }
}

impl Collect for ActivitiesCollector {
    type Record = Activity;
    type Found<'p> = &'p Activity;
    const EDGE: Edge = Edge::Activities;
    const FIELDS: &'static str = FIELDS;

    fn scan<'p, S: Text>(
        &self,
        page: &'p Page<Activity>,
        st: &mut TargetState,
        walk: &mut Walk,
    ) -> Scan<&'p Activity> {
        scan_page(
            page,
            &mut st.seen,
            &mut walk.this_walk,
            walk.stop_at_seen,
            (walk.edge, walk.ceiling),
        )
    }

    fn count(&self, waba: &str, found: &[&Activity], st: &mut TargetState, counting: bool) {
        // Baseline: series created at 0, nothing counted.
        let n = u64::from(counting);
        let cap = st.max_label_values();
        for rec in found {
            self.events
                .activity_events
                .get_or_create(&ActivityLabels {
                    waba_id: waba.to_string(),
                    category: st.categories.admit(label_str(rec.category.as_deref()), cap),
                    event_type: st
                        .event_types
                        .admit(label_str(rec.event_type.as_deref()), cap),
                })
                .inc_by(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: Option<&str>, ts: i64) -> Activity {
        Activity {
            id: id.map(String::from),
            event_type: Some("USER_ADDED".into()),
            category: Some("USER".into()),
            timestamp: Some(ts),
            ..Default::default()
        }
    }

    #[test]
    fn stops_at_seen_or_old() {
        let mut seen = SeenEvents::default();
        let mut walk = HashSet::new();
        let p = Page {
            data: vec![rec(Some("a2"), 200), rec(None, 150)],
            paging: None,
            invalid: Vec::new(),
        };
        let s = scan_page(&p, &mut seen, &mut walk, true, (100, i64::MAX));
        assert_eq!(s.new, 2);
        assert!(!s.stop);
        let p2 = Page {
            data: vec![rec(Some("a3"), 300), rec(Some("a2"), 200), rec(None, 150)],
            paging: None,
            invalid: Vec::new(),
        };
        // Seen in this same walk (pushed down by a new record): keep going.
        let s = scan_page(&p2, &mut seen, &mut walk, true, (100, i64::MAX));
        assert_eq!(s.new, 1);
        assert!(!s.stop);
        // In the next collection, a seen record is the boundary.
        let s = scan_page(&p2, &mut seen, &mut HashSet::new(), true, (100, i64::MAX));
        assert_eq!(s.new, 0);
        assert!(s.stop);
        // After a failed walk, seen records are no boundary.
        let s = scan_page(&p2, &mut seen, &mut HashSet::new(), false, (100, i64::MAX));
        assert!(!s.stop);
        let old = Page {
            data: vec![rec(Some("a0"), 50)],
            paging: None,
            invalid: Vec::new(),
        };
        let s = scan_page(&old, &mut seen, &mut HashSet::new(), true, (100, i64::MAX));
        assert!(s.stop && s.new == 0);
        assert!(!seen.contains(identity(&old.data[0], 50)));
    }
}
