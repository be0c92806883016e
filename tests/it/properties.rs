//! Property tests of the dedupe and pagination core: for arbitrary
//! interleavings of new records, page fetches (with records added between
//! pages, offset-style, so pages shift under the walk), failures partway and
//! restarts with or without state, no event is counted twice, none that
//! existed before a baseline is counted, and every event that arrived after
//! the baseline is counted by the next complete collection.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use whatsapp_exporter::collector::seen::SeenEvents;
use whatsapp_exporter::collector::state_file::{StateFile, TargetRecord};
use whatsapp_exporter::collector::{activities, message_history};
use whatsapp_exporter::graph::model::{Activity, EventList, MessageHistory, Page, StatusEvent};

#[derive(Debug, Clone)]
enum Op {
    /// A new message with this many events (0..=3), or a new activity record.
    Add(u8),
    /// A new event on an existing message (picked modulo their number).
    AddEvent(usize),
    /// A collection: page size, records added after page k, fail when
    /// fetching page n, the API repeating page r (served twice in a row).
    Collect {
        page_size: usize,
        inserts: Vec<(usize, u8)>,
        fail_at: Option<usize>,
        repeat: Option<usize>,
    },
    /// Restart, keeping the state file or not.
    Restart { keep_state: bool },
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        3 => (0u8..4).prop_map(Op::Add),
        2 => any::<usize>().prop_map(Op::AddEvent),
        3 => (
            1usize..5,
            prop::collection::vec((0usize..6, 0u8..3), 0..4),
            prop::option::weighted(0.25, 0usize..4),
            prop::option::weighted(0.25, 0usize..4),
        )
            .prop_map(|(page_size, inserts, fail_at, repeat)| Op::Collect {
                page_size,
                inserts,
                fail_at,
                repeat,
            }),
        1 => any::<bool>().prop_map(|keep_state| Op::Restart { keep_state }),
    ];
    prop::collection::vec(op, 1..40)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    /// Existed before a baseline and was not counted by then: never to be counted.
    Never,
    /// Arrived while a baseline walk was under way: may or may not be counted.
    Maybe,
    /// Arrived after a baseline: must be counted once.
    Must,
}

/// A record or event: (truth id, has an API id, timestamp).
type Rec = (u64, bool, i64);

/// Every third record has no id: identified by its content.
fn rec(t: u64) -> Rec {
    (t, !t.is_multiple_of(3), 1_000 + t as i64)
}

/// The world (Graph API contents) plus the exporter's state and the bookkeeping.
#[derive(Default)]
struct Harness {
    // message id -> events; oldest message first
    messages: Vec<(String, Vec<Rec>)>,
    // activity records, oldest first
    records: Vec<Rec>,
    next: u64,
    class: HashMap<u64, Class>,
    counted: HashMap<u64, u32>,
    seen: SeenEvents,
    baseline_done: bool,
    in_baseline_walk: bool,
    partial: bool,
}

impl Harness {
    fn fresh(&mut self) -> u64 {
        self.next += 1;
        let class = if self.in_baseline_walk {
            Class::Maybe
        } else if self.baseline_done {
            Class::Must
        } else {
            Class::Never
        };
        self.class.insert(self.next, class);
        self.next
    }

    fn add(&mut self, activities: bool, n: u8) {
        if activities {
            let t = self.fresh();
            self.records.push(rec(t));
        } else {
            let events = (0..n).map(|_| rec(self.fresh())).collect();
            let id = format!("m{}", self.next);
            self.messages.push((id, events));
        }
    }

    fn add_event(&mut self, pick: usize) {
        if self.messages.is_empty() {
            return;
        }
        let i = pick % self.messages.len();
        let t = self.fresh();
        self.messages[i].1.push(rec(t));
    }

    fn existing(&self, activities: bool) -> Vec<u64> {
        if activities {
            self.records.iter().map(|r| r.0).collect()
        } else {
            self.messages
                .iter()
                .flat_map(|m| m.1.iter().map(|e| e.0))
                .collect()
        }
    }

    fn mh_page(&self, offset: usize, size: usize) -> Page<MessageHistory> {
        let data = self
            .messages
            .iter()
            .rev()
            .skip(offset)
            .take(size)
            .map(|(id, evs)| MessageHistory {
                id: Some(id.clone()),
                message_id: Some(format!("wamid.{id}")),
                events: Some(EventList {
                    data: evs
                        .iter()
                        .map(|(t, has_id, ts)| StatusEvent {
                            id: has_id.then(|| format!("e{t}")),
                            delivery_status: Some(format!("S{t}")),
                            timestamp: Some(*ts),
                            webhook_uri: Some(t.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })
            .collect();
        Page { data, paging: None }
    }

    fn act_page(&self, offset: usize, size: usize) -> Page<Activity> {
        let data = self
            .records
            .iter()
            .rev()
            .skip(offset)
            .take(size)
            .map(|(t, has_id, ts)| Activity {
                id: has_id.then(|| format!("a{t}")),
                event_type: Some("USER_ADDED".into()),
                category: Some("USER".into()),
                timestamp: Some(*ts),
                actor_id: Some(t.to_string()),
                actor_business_id: None,
            })
            .collect();
        Page { data, paging: None }
    }

    fn count(&mut self, truth: u64, counting: bool) {
        if counting {
            let c = self.counted.entry(truth).or_default();
            *c += 1;
            assert!(*c <= 1, "event {truth} counted twice");
            assert_ne!(
                self.class[&truth],
                Class::Never,
                "event {truth} from before the baseline counted"
            );
        }
    }

    /// One collection, offset-paginated, as the exporter's walk drives it.
    fn collect(
        &mut self,
        activities: bool,
        page_size: usize,
        inserts: &[(usize, u8)],
        fail_at: Option<usize>,
        repeat: Option<usize>,
    ) {
        let baseline = !self.baseline_done;
        if baseline {
            for t in self.existing(activities) {
                if self.counted.get(&t).copied().unwrap_or(0) == 0 {
                    self.class.insert(t, Class::Never);
                }
            }
            self.in_baseline_walk = true;
        }
        let before = self.existing(activities);
        let stop_at_seen = !self.partial;
        let mut this_walk = HashSet::new();
        let mut offset = 0;
        let mut failed = false;
        for page_no in 0.. {
            if fail_at == Some(page_no) {
                failed = true;
                break;
            }
            let stop = if activities {
                let page = self.act_page(offset, page_size);
                if page.data.is_empty() {
                    break;
                }
                let scan =
                    activities::scan_page(&page, &mut self.seen, &mut this_walk, stop_at_seen, 0);
                let new: Vec<u64> = scan
                    .new
                    .iter()
                    .map(|r| r.actor_id.as_ref().unwrap().parse().unwrap())
                    .collect();
                for t in new {
                    self.count(t, !baseline);
                }
                scan.stop
            } else {
                let page = self.mh_page(offset, page_size);
                if page.data.is_empty() {
                    break;
                }
                let scan = message_history::scan_page(&page, &mut self.seen, 0);
                let new: Vec<u64> = scan
                    .new
                    .iter()
                    .map(|e| e.webhook_uri.as_ref().unwrap().parse().unwrap())
                    .collect();
                for t in new {
                    self.count(t, !baseline);
                }
                scan.stop
            };
            if stop {
                break;
            }
            for (_, n) in inserts.iter().filter(|(after, _)| *after == page_no) {
                self.add(activities, *n);
            }
            // The API may serve the same page twice in a row.
            if repeat != Some(page_no) {
                offset += page_size;
            }
        }
        if activities {
            self.partial = failed && (self.partial || !this_walk.is_empty());
        }
        self.in_baseline_walk = false;
        if failed {
            return;
        }
        self.baseline_done = true;
        if !baseline {
            for t in before {
                if self.class[&t] == Class::Must {
                    assert_eq!(
                        self.counted.get(&t).copied().unwrap_or(0),
                        1,
                        "event {t} lost"
                    );
                }
            }
        }
    }

    fn restart(&mut self, keep_state: bool) {
        if keep_state && self.baseline_done {
            let mut file = StateFile {
                version: 1,
                ..Default::default()
            };
            file.targets.insert(
                "t".into(),
                TargetRecord {
                    last_event_timestamp: None,
                    seen: self.seen.entries().collect(),
                    partial: self.partial,
                },
            );
            let json = serde_json::to_string(&file).unwrap();
            let back: StateFile = serde_json::from_str(&json).unwrap();
            let rec = &back.targets["t"];
            self.seen = SeenEvents::from_entries(rec.seen.iter().copied());
            self.partial = rec.partial;
        } else {
            self.seen = SeenEvents::default();
            self.baseline_done = false;
            self.partial = false;
        }
    }

    fn run(&mut self, activities: bool, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Add(n) => self.add(activities, *n),
                Op::AddEvent(pick) => {
                    if activities {
                        self.add(true, 0)
                    } else {
                        self.add_event(*pick)
                    }
                }
                Op::Collect {
                    page_size,
                    inserts,
                    fail_at,
                    repeat,
                } => self.collect(activities, *page_size, inserts, *fail_at, *repeat),
                Op::Restart { keep_state } => self.restart(*keep_state),
            }
        }
        // A final complete collection picks up everything still pending.
        self.collect(activities, 3, &[], None, None);
        self.collect(activities, 3, &[], None, None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn message_history_counts_each_event_once_and_loses_none(ops in ops()) {
        Harness::default().run(false, &ops);
    }

    #[test]
    fn activities_count_each_record_once_and_lose_none(ops in ops()) {
        Harness::default().run(true, &ops);
    }
}
