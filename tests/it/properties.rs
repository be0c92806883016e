//! Property tests of the dedupe and pagination core: for arbitrary
//! interleavings of new records, page fetches (with records added between
//! pages, offset-style, so pages shift under the walk), failures partway,
//! restarts with or without state, and message_history's rolling sweep
//! (any `max_pages`, `sweep_pages` and head age; cursors kept across
//! collections and restarts, and sometimes refused), no event is counted
//! twice and none that existed before a baseline is counted. Nothing is
//! lost: an activities record, or a new message's events, once the next
//! complete collection is done; an event added to an old message once a
//! sweep that began after it completes. Events' webhook states move between
//! collections: no state is counted more often than events entered it, and
//! after a complete sweep the exporter knows where each event's state
//! stands.
//!
//! The exporter's own code does the work: its pager walks the pages of a
//! simulated world, its driver runs the real collectors over the target's
//! state (`begin`, `run`, `finish`), and what counts is read back from the
//! real counters.

use std::collections::HashMap;

use proptest::prelude::*;
use whatsapp_exporter::collector::TargetState;
use whatsapp_exporter::collector::activities::ActivitiesCollector;
use whatsapp_exporter::collector::driver::{Collect, run};
use whatsapp_exporter::collector::message_history::MessageHistoryCollector;
use whatsapp_exporter::collector::state_file::{self, StateFile};
use whatsapp_exporter::collector::sweep::{Reach, Step, Walked};
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
    /// A new message with this many events (1..=3: a message has its SENT
    /// when it appears), or a new activity record.
    Add(u8),
    /// A new event on an existing message (picked modulo their number).
    AddEvent(usize),
    /// An existing event (picked modulo their number) moves to webhook state
    /// `STATES[s]` (message_history; for activities, a new record).
    Change(usize, usize),
    /// A collection.
    Collect(Collection),
    /// Restart, keeping the state file or not.
    Restart { keep_state: bool },
}

/// One collection: page size, records added after page k, fail when
/// fetching page n, the API repeating page r (served twice in a row), how
/// far it reads (message_history), and whether the API has forgotten the
/// cursors it gave before.
#[derive(Debug, Clone)]
struct Collection {
    page_size: usize,
    inserts: Vec<(usize, u8)>,
    fail_at: Option<usize>,
    repeat: Option<usize>,
    max_pages: u32,
    sweep_pages: u32,
    head_age: i64,
    forget_cursors: bool,
}

impl Collection {
    /// A collection that fails nowhere and reads `max_pages`.
    fn clean(max_pages: u32) -> Collection {
        Collection {
            page_size: 3,
            inserts: Vec::new(),
            fail_at: None,
            repeat: None,
            max_pages,
            sweep_pages: 3,
            head_age: 2,
            forget_cursors: false,
        }
    }
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let collection = (
        1usize..5,
        prop::collection::vec((0usize..6, 1u8..4), 0..4),
        prop::option::weighted(0.25, 0usize..4),
        prop::option::weighted(0.25, 0usize..4),
        prop_oneof![3 => 1u32..8, 1 => Just(1000u32)],
        1u32..4,
        0i64..8,
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(page_size, inserts, fail_at, repeat, max_pages, sweep_pages, head_age, forget)| {
                Collection {
                    page_size,
                    inserts,
                    fail_at,
                    repeat,
                    max_pages,
                    sweep_pages: sweep_pages.min(max_pages),
                    head_age,
                    forget_cursors: forget,
                }
            },
        );
    let op = prop_oneof![
        3 => (1u8..4).prop_map(Op::Add),
        2 => any::<usize>().prop_map(Op::AddEvent),
        2 => (any::<usize>(), 0..STATES.len()).prop_map(|(p, s)| Op::Change(p, s)),
        4 => collection.prop_map(Op::Collect),
        1 => any::<bool>().prop_map(|keep_state| Op::Restart { keep_state }),
    ];
    prop::collection::vec(op, 1..48)
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
    /// Collections begun so far.
    collections: u64,
    /// Per event: the collections begun when it appeared, and whether it
    /// came with a new message (rather than on an existing one).
    born: HashMap<u64, (u64, bool)>,
    /// Cursors handed out (by any collection, so a sweep can go on with
    /// one): the offset each points at.
    cursors: HashMap<String, usize>,
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
        self.born.insert(self.next, (self.collections, false));
        self.state.insert(self.next, 0);
        self.entered[0] += 1;
        self.next
    }

    fn add(&mut self, n: u8) {
        if self.activities {
            let t = self.fresh();
            self.records.push(rec(t));
        } else {
            let events: Vec<Rec> = (0..n.max(1)).map(|_| rec(self.fresh())).collect();
            for e in &events {
                self.born.insert(e.0, (self.collections, true));
            }
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

    /// The time of the message event `t` is on (its earliest event's).
    fn message_time(&self, t: u64) -> Option<i64> {
        self.messages
            .iter()
            .find(|m| m.1.iter().any(|e| e.0 == t))
            .and_then(|m| m.1.iter().map(|e| e.2).min())
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
            Some(c) => match self.world.cursors.get(c) {
                Some(o) => *o,
                // A cursor the API has forgotten, as Graph refuses one.
                None => {
                    return Err(GraphError::Api {
                        status: 400,
                        code: 100,
                        subcode: None,
                        message: "(#100) Invalid cursor".into(),
                        is_transient: false,
                    });
                }
            },
        };
        let data = data(self.world, offset, self.page_size);
        // The API may serve the same page twice in a row (under a new cursor).
        let next = if self.repeat == Some(page_no) {
            offset
        } else {
            offset + self.page_size
        };
        let paging = (next < self.world.len()).then(|| {
            let cursor = format!("c{}-{page_no}", self.world.collections);
            self.world.cursors.insert(cursor.clone(), next);
            Paging {
                cursors: Some(Cursors {
                    after: Some(cursor),
                }),
                next: Some("https://graph.example/next".into()),
            }
        });
        Ok(Page {
            data,
            paging,
            invalid: Vec::new(),
        })
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
    /// The previous collection succeeded without a truncated walk.
    clean: bool,
    /// The sweep in progress began at this collection (events that appeared
    /// before it are owed once it completes), unless `None`.
    sweep_began: Option<u64>,
    /// A walk of the sweep in progress stopped at `max_pages`.
    sweep_truncated: bool,
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
            clean: false,
            sweep_began: None,
            sweep_truncated: false,
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

    /// Whether event `t` is owed a count: it appeared after a baseline, and
    /// not on a message older than what a truncated baseline reached.
    fn owed(&self, t: u64) -> bool {
        self.world.class[&t] == Class::Must
            && match (self.st.sweep.floor, self.world.message_time(t)) {
                (Some(floor), Some(time)) => time >= floor,
                _ => true,
            }
    }

    /// One collection through the exporter's pager, driver and state steps.
    fn collect(&mut self, c: &Collection) -> Option<Walked> {
        let baseline = !self.st.baseline_done;
        if baseline {
            for t in self.world.existing() {
                if self.counted(t) == 0 {
                    self.world.class.insert(t, Class::Never);
                }
            }
            self.world.in_baseline_walk = true;
        }
        if c.forget_cursors {
            self.world.cursors.clear();
        }
        self.world.collections += 1;
        let this = self.world.collections;
        let before = self.world.existing();
        let activities = self.world.activities;
        let reach = Reach {
            max_pages: if activities { 1000 } else { c.max_pages },
            sweep_pages: c.sweep_pages,
            head_age: c.head_age,
            now: (1_000 + self.world.next) as f64,
        };
        let mut walk = self.st.begin(0, i64::MAX);
        let pages = WorldPages {
            world: &mut self.world,
            page_size: c.page_size,
            inserts: c.inserts.clone(),
            fail_at: c.fail_at,
            repeat: c.repeat,
            fetches: 0,
        };
        let mut pager = Pager::new(pages, reach.max_pages);
        let result = if activities {
            self.rt.block_on(run(
                &self.activities,
                &mut pager,
                ID,
                &mut self.st,
                &mut walk,
                &reach,
            ))
        } else {
            self.rt.block_on(run(
                &self.message_history,
                &mut pager,
                ID,
                &mut self.st,
                &mut walk,
                &reach,
            ))
        };
        drop(pager);
        if !activities {
            self.message_history.settle(ID, &mut self.st, &walk, 10_000);
        }
        self.st.finish(&walk, result.is_ok());
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
        let walked = result.ok();
        let clean = walked.is_some_and(|w| !w.truncated);
        if activities {
            // A complete walk to seen data has everything that came before it.
            if clean && !baseline {
                for &t in &before {
                    if self.owed(t) {
                        assert_eq!(self.counted(t), 1, "record {t} lost");
                    }
                }
            }
        } else {
            self.check_sweep(walked, clean && self.clean && !baseline, this);
        }
        self.clean = clean;
        walked
    }

    /// message_history's promises after collection `this`: the head counts
    /// the new messages since the previous collection (when both read
    /// without truncation), and a complete sweep counts every event that
    /// appeared before it began.
    fn check_sweep(&mut self, walked: Option<Walked>, head_clean: bool, this: u64) {
        if head_clean {
            for t in self.world.existing() {
                let (born, with_message) = self.world.born[&t];
                if with_message && born == this - 1 && self.owed(t) {
                    assert_eq!(self.counted(t), 1, "event {t} of a new message lost");
                }
            }
        }
        let Some(w) = walked else { return };
        self.sweep_truncated |= w.truncated && w.step != Step::Continued;
        match w.step {
            Step::Continued | Step::Walk => return,
            Step::Baseline => {}
            Step::Covered | Step::Completed | Step::Truncated => {
                if let (Some(began), false) = (self.sweep_began, self.sweep_truncated) {
                    for t in self.world.existing() {
                        if self.world.born[&t].0 < began && self.owed(t) {
                            assert_eq!(self.counted(t), 1, "event {t} lost by a complete sweep");
                        }
                    }
                }
            }
        }
        self.sweep_began = Some(this + 1);
        self.sweep_truncated = false;
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
            self.st = TargetState::restored(back.targets["t"].clone(), 0, i64::MAX);
        } else {
            self.st = TargetState::default();
            self.sweep_began = None;
        }
        self.clean = false;
        self.world.counting = self.st.baseline_done;
    }

    fn run(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Add(n) => self.world.add(*n),
                Op::AddEvent(pick) => self.world.add_event(*pick),
                Op::Change(pick, to) => self.world.change(*pick, *to),
                Op::Collect(c) => {
                    self.collect(c);
                }
                Op::Restart { keep_state } => self.restart(*keep_state),
            }
        }
        // Final complete collections, until a sweep that began after the
        // last change has completed: everything owed is counted (checked
        // in `collect`), and the exporter knows where every event's webhook
        // state stands.
        let mut completed = 0;
        for _ in 0..1000 {
            let step = self.collect(&Collection::clean(1000)).map(|w| w.step);
            if matches!(step, Some(Step::Covered | Step::Completed | Step::Walk)) {
                completed += 1;
                if completed == 2 {
                    break;
                }
            }
        }
        assert_eq!(completed, 2, "the final sweeps never completed");
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
