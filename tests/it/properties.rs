//! Property tests of the dedupe and pagination core: for arbitrary
//! interleavings of new records, page fetches (with records added between
//! pages, offset-style, so pages shift under the walk), failures partway and
//! restarts with or without state, no event is counted twice, none that
//! existed before a baseline is counted, and every event that arrived after
//! the baseline is counted by the next complete collection. Events' webhook
//! states move between collections: no state is counted more often than
//! events entered it, and after a complete collection the exporter knows
//! where each event's state stands.
//!
//! The exporter's own code does the work: its pager walks the pages of a
//! simulated world, its driver runs the real collectors over the target's
//! state (`begin`, `absorb`, `finish`), and what counts is read back from
//! the real counters.

use std::collections::HashMap;

use proptest::prelude::*;
use whatsapp_exporter::collector::TargetState;
use whatsapp_exporter::collector::activities::ActivitiesCollector;
use whatsapp_exporter::collector::driver::{Collect, drive};
use whatsapp_exporter::collector::message_history::MessageHistoryCollector;
use whatsapp_exporter::collector::state_file::{self, StateFile};
use whatsapp_exporter::error::GraphError;
use whatsapp_exporter::graph::model::{
    Activity, Cursors, EventList, MessageHistory, Page, Paging, StatusEvent,
};
use whatsapp_exporter::graph::{PageSource, Pager};
use whatsapp_exporter::metrics::labels::{ActivityLabels, StatusLabels, WebhookLabels};
use whatsapp_exporter::metrics::{Exposition, Metrics};

/// The target's id.
const ID: &str = "1000";
/// Webhook states an event moves through; every event starts in the first.
const STATES: [&str; 4] = ["PENDING", "RETRYING", "FAILED", "DELIVERED"];

#[derive(Debug, Clone)]
enum Op {
    /// A new message with this many events (0..=3), or a new activity record.
    Add(u8),
    /// A new event on an existing message (picked modulo their number).
    AddEvent(usize),
    /// An existing event (picked modulo their number) moves to webhook state
    /// `STATES[s]` (message_history; for activities, a new record).
    Change(usize, usize),
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
        2 => (any::<usize>(), 0..STATES.len()).prop_map(|(p, s)| Op::Change(p, s)),
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

/// The Graph API's contents and what each record is owed.
#[derive(Default)]
struct World {
    activities: bool,
    // message id -> events; oldest message first
    messages: Vec<(String, Vec<Rec>)>,
    // activity records, oldest first
    records: Vec<Rec>,
    next: u64,
    class: HashMap<u64, Class>,
    /// Webhook state of each event (index into STATES).
    state: HashMap<u64, usize>,
    /// How many times any event entered each state (its first included).
    entered: [u64; STATES.len()],
    /// The exporter counts (its baseline is done).
    counting: bool,
    in_baseline_walk: bool,
}

impl World {
    fn fresh(&mut self) -> u64 {
        self.next += 1;
        let class = if self.in_baseline_walk {
            Class::Maybe
        } else if self.counting {
            Class::Must
        } else {
            Class::Never
        };
        self.class.insert(self.next, class);
        self.state.insert(self.next, 0);
        self.entered[0] += 1;
        self.next
    }

    fn add(&mut self, n: u8) {
        if self.activities {
            let t = self.fresh();
            self.records.push(rec(t));
        } else {
            let events = (0..n).map(|_| rec(self.fresh())).collect();
            let id = format!("m{}", self.next);
            self.messages.push((id, events));
        }
    }

    fn add_event(&mut self, pick: usize) {
        if self.activities {
            return self.add(0);
        }
        if self.messages.is_empty() {
            return;
        }
        let i = pick % self.messages.len();
        let t = self.fresh();
        self.messages[i].1.push(rec(t));
    }

    fn change(&mut self, pick: usize, to: usize) {
        if self.activities {
            return self.add(0);
        }
        let all = self.existing();
        if all.is_empty() {
            return;
        }
        let t = all[pick % all.len()];
        if self.state.insert(t, to) != Some(to) {
            self.entered[to] += 1;
        }
    }

    fn existing(&self) -> Vec<u64> {
        if self.activities {
            self.records.iter().map(|r| r.0).collect()
        } else {
            self.messages
                .iter()
                .flat_map(|m| m.1.iter().map(|e| e.0))
                .collect()
        }
    }

    fn len(&self) -> usize {
        if self.activities {
            self.records.len()
        } else {
            self.messages.len()
        }
    }

    fn mh_page(&self, offset: usize, size: usize) -> Vec<MessageHistory> {
        self.messages
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
                            webhook_update_state: Some(STATES[self.state[t]].into()),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })
            .collect()
    }

    fn act_page(&self, offset: usize, size: usize) -> Vec<Activity> {
        self.records
            .iter()
            .rev()
            .skip(offset)
            .take(size)
            .map(|(t, has_id, ts)| Activity {
                id: has_id.then(|| format!("a{t}")),
                event_type: Some(format!("E{t}")),
                category: Some("USER".into()),
                timestamp: Some(*ts),
                actor_id: Some(t.to_string()),
                actor_business_id: None,
            })
            .collect()
    }
}

/// One collection's view of the world: offset-paginated pages behind
/// opaque cursors, records added between pages, a failure, a repeated page.
struct WorldPages<'w> {
    world: &'w mut World,
    page_size: usize,
    inserts: Vec<(usize, u8)>,
    fail_at: Option<usize>,
    repeat: Option<usize>,
    fetches: usize,
    offsets: HashMap<String, usize>,
}

impl WorldPages<'_> {
    fn page<T>(
        &mut self,
        after: Option<&str>,
        data: impl Fn(&World, usize, usize) -> Vec<T>,
    ) -> Result<Page<T>, GraphError> {
        let page_no = self.fetches;
        self.fetches += 1;
        if page_no > 0 {
            // Records added while the walk went from page k to page k + 1.
            for (_, n) in self.inserts.iter().filter(|(k, _)| *k + 1 == page_no) {
                self.world.add(*n);
            }
        }
        if self.fail_at == Some(page_no) {
            return Err(GraphError::Network("connection reset".into()));
        }
        let offset = match after {
            None => 0,
            Some(c) => *self.offsets.get(c).expect("a cursor this source gave"),
        };
        let data = data(self.world, offset, self.page_size);
        // The API may serve the same page twice in a row (under a new cursor).
        let next = if self.repeat == Some(page_no) {
            offset
        } else {
            offset + self.page_size
        };
        let paging = (next < self.world.len()).then(|| {
            let cursor = format!("c{page_no}");
            self.offsets.insert(cursor.clone(), next);
            Paging {
                cursors: Some(Cursors {
                    after: Some(cursor),
                }),
                next: Some("https://graph.example/next".into()),
            }
        });
        Ok(Page { data, paging })
    }
}

impl PageSource<MessageHistory> for WorldPages<'_> {
    async fn fetch(&mut self, after: Option<&str>) -> Result<Page<MessageHistory>, GraphError> {
        self.page(after, World::mh_page)
    }
}

impl PageSource<Activity> for WorldPages<'_> {
    async fn fetch(&mut self, after: Option<&str>) -> Result<Page<Activity>, GraphError> {
        self.page(after, World::act_page)
    }
}

/// The world plus the exporter's state, collectors and counters.
struct Harness {
    world: World,
    st: TargetState,
    metrics: Metrics,
    activities: ActivitiesCollector,
    message_history: MessageHistoryCollector,
    rt: tokio::runtime::Runtime,
}

impl Harness {
    fn new(activities: bool) -> Harness {
        let metrics = Metrics::register(&mut Exposition::default(), "test", "test");
        Harness {
            world: World {
                activities,
                ..World::default()
            },
            st: TargetState::default(),
            activities: ActivitiesCollector::new(metrics.events.clone()),
            message_history: MessageHistoryCollector::new(
                metrics.events.clone(),
                ["FAILED".to_string()].into(),
                20,
                std::time::Duration::from_secs(600),
            ),
            metrics,
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
        }
    }

    /// How often the real counters counted record `t`.
    fn counted(&self, t: u64) -> u64 {
        let e = &self.metrics.events;
        let c = if self.world.activities {
            e.activity_events.get(&ActivityLabels {
                waba_id: ID.into(),
                category: "USER".into(),
                event_type: format!("E{t}"),
            })
        } else {
            e.status_events.get(&StatusLabels {
                phone_number_id: ID.into(),
                delivery_status: format!("S{t}"),
            })
        };
        c.map_or(0, |c| c.get())
    }

    /// The real counter of webhook updates into state `s`, and the gauge of
    /// events in it now.
    fn webhook(&self, s: &str) -> (u64, i64) {
        let l = WebhookLabels {
            phone_number_id: ID.into(),
            application_id: "unknown".into(),
            webhook_update_state: s.into(),
        };
        let e = &self.metrics.events;
        (
            e.webhook_updates.get(&l).map_or(0, |c| c.get()),
            e.webhook_events.get(&l).map_or(0, |g| g.get()),
        )
    }

    /// One collection through the exporter's pager, driver and state steps.
    fn collect(
        &mut self,
        page_size: usize,
        inserts: &[(usize, u8)],
        fail_at: Option<usize>,
        repeat: Option<usize>,
    ) {
        let baseline = !self.st.baseline_done;
        if baseline {
            for t in self.world.existing() {
                if self.counted(t) == 0 {
                    self.world.class.insert(t, Class::Never);
                }
            }
            self.world.in_baseline_walk = true;
        }
        let before = self.world.existing();
        let activities = self.world.activities;
        let mut walk = self.st.begin(0);
        let pages = WorldPages {
            world: &mut self.world,
            page_size,
            inserts: inserts.to_vec(),
            fail_at,
            repeat,
            fetches: 0,
            offsets: HashMap::new(),
        };
        let mut pager = Pager::new(pages, 1000);
        let result = if activities {
            self.rt.block_on(drive(
                &self.activities,
                &mut pager,
                ID,
                &mut self.st,
                &mut walk,
            ))
        } else {
            self.rt.block_on(drive(
                &self.message_history,
                &mut pager,
                ID,
                &mut self.st,
                &mut walk,
            ))
        };
        drop(pager);
        if !activities {
            self.message_history.settle(ID, &mut self.st, &walk, 10_000);
        }
        self.st.finish(&walk, &result);
        self.world.in_baseline_walk = false;
        self.world.counting = self.st.baseline_done;
        for t in self.world.existing() {
            let n = self.counted(t);
            assert!(n <= 1, "event {t} counted {n} times");
            if n == 1 {
                assert_ne!(
                    self.world.class[&t],
                    Class::Never,
                    "event {t} from before the baseline counted"
                );
            }
        }
        // A state is counted at most as often as events entered it.
        for (i, s) in STATES.iter().enumerate() {
            let (counted, _) = self.webhook(s);
            assert!(
                counted <= self.world.entered[i],
                "{s} counted {counted} times, entered {}",
                self.world.entered[i]
            );
        }
        if result.is_ok() && !baseline {
            for t in before {
                if self.world.class[&t] == Class::Must {
                    assert_eq!(self.counted(t), 1, "event {t} lost");
                }
            }
        }
    }

    fn restart(&mut self, keep_state: bool) {
        // The counters stay, to add up across processes; a new process
        // starts with no gauges.
        self.metrics.events.webhook_events.retain(|_| false);
        if keep_state && self.st.baseline_done {
            let mut file = StateFile {
                version: state_file::VERSION,
                ..Default::default()
            };
            file.targets.insert("t".into(), self.st.record());
            let json = serde_json::to_string(&file).unwrap();
            let back: StateFile = serde_json::from_str(&json).unwrap();
            self.st = TargetState::restored(back.targets["t"].clone(), 0);
        } else {
            self.st = TargetState::default();
        }
        self.world.counting = self.st.baseline_done;
    }

    fn run(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Add(n) => self.world.add(*n),
                Op::AddEvent(pick) => self.world.add_event(*pick),
                Op::Change(pick, to) => self.world.change(*pick, *to),
                Op::Collect {
                    page_size,
                    inserts,
                    fail_at,
                    repeat,
                } => self.collect(*page_size, inserts, *fail_at, *repeat),
                Op::Restart { keep_state } => self.restart(*keep_state),
            }
        }
        // A final complete collection picks up everything still pending.
        self.collect(3, &[], None, None);
        self.collect(3, &[], None, None);
        // And the exporter knows where every event's webhook state stands.
        if !self.world.activities {
            for (i, s) in STATES.iter().enumerate() {
                let now = self.world.state.values().filter(|x| **x == i).count();
                assert_eq!(self.webhook(s).1, now as i64, "events in {s} now");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn message_history_counts_each_event_once_and_loses_none(ops in ops()) {
        Harness::new(false).run(&ops);
    }

    #[test]
    fn activities_count_each_record_once_and_lose_none(ops in ops()) {
        Harness::new(true).run(&ops);
    }
}
