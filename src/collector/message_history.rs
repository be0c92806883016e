//! `GET /{Phone-Number-ID}/message_history`: delivery-status events of the
//! recent messages, with the state of Meta's webhook delivery of each.
//!
//! New events can be added to any message inside the lookback window, so a
//! seen page is no boundary: each collection reads the head and the next
//! pages of a rolling sweep of the window ([`crate::collector::sweep`]), and
//! counts every event not seen before. An event's webhook state and error
//! description move after first sight (PENDING, then RETRYING, then FAILED,
//! with its error): the seen-state remembers both as last seen, and a change
//! counts once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::collector::driver::Collect;
use crate::collector::seen::Mark;
use crate::collector::target::{Phase, Scan, TargetState, Walk, widen};
use crate::fnv;
use crate::graph::Edge;
use crate::graph::model::{MessageHistory, Page, StatusEvent, Text};
use crate::graph::paging::PageVisitor;
use crate::metrics::EventMetrics;
use crate::metrics::labels::{
    DeliveryErrorLabels, PhoneLabels, StatusLabels, WebhookLabels, label_str,
};
use crate::metrics::labels::{MAX_LABEL_CHARS, truncate_chars};

/// Fields requested: the defaults omit the events.
pub const FIELDS: &str = "id,message_id,events{id,delivery_status,webhook_update_state,timestamp,application,error_description}";

/// Delivery statuses after which a message is no longer on its way.
const ENDED: [&str; 4] = ["DELIVERED", "READ", "FAILED", "DELETED"];

/// An event a scan found to count.
#[derive(Debug)]
pub struct Sighting<'p> {
    /// Its delivery status as read.
    pub status: Option<&'p str>,
    /// Its application, as interned in the target's state.
    pub app: u8,
    /// Its webhook state now, as interned in the target's state.
    pub state: u8,
    /// Its normalised error description to count: a new event's, or one a
    /// known event did not have when last seen.
    pub error: Option<String>,
    /// New, or how it changed.
    pub what: What,
}

/// What a sighting is.
#[derive(Debug, PartialEq)]
pub enum What {
    /// Not seen before; the seconds since its message's earliest SENT
    /// event, when it is not SENT itself and the message has one.
    New {
        /// Its timestamp minus the earliest SENT's, at least 0.
        latency: Option<i64>,
    },
    /// Seen before, now in another webhook state and/or with an error
    /// description it did not have.
    Changed {
        /// The webhook state changed.
        state: bool,
    },
}

/// A non-empty, trimmed value.
fn present(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

/// The 16-bit fingerprint of a normalised error description (never 0).
fn error_print(desc: &str) -> u16 {
    (fnv::hash(&["error", desc]) % 65_535) as u16 + 1
}

/// Finds the events of one page not seen before, or seen in another webhook
/// state or without the error they show now; remembers how each is seen now.
///
/// `edge` is set when the page has events and all are older than the walk's
/// edge; `stop` then, and in the head when the page's oldest message is older
/// than `walk.head_from`. An event first seen on a message older than
/// `walk.floor` is remembered without being counted.
pub fn scan_page<'p, S: Text>(
    page: &'p Page<MessageHistory<S>>,
    st: &mut TargetState,
    walk: &Walk,
) -> Scan<Sighting<'p>> {
    let edge = walk.edge;
    let cap = st.max_label_values();
    let TargetState {
        seen, states, apps, ..
    } = st;
    let mut scan = Scan::default();
    let mut any = false;
    let mut all_old = true;
    for msg in &page.data {
        let msg_key = msg
            .id
            .as_deref()
            .or(msg.message_id.as_deref())
            .unwrap_or("");
        let events = msg.events.iter().flat_map(|e| &e.data);
        // The message's earliest SENT event carries whether it is still on its way.
        let mut sent: Option<(i64, usize)> = None;
        let mut ended = false;
        let mut first: Option<i64> = None;
        for (n, ev) in events.clone().enumerate() {
            if let Some(t) = ev.timestamp {
                first = Some(first.map_or(t, |f| f.min(t)));
            }
            match (ev.delivery_status.as_deref(), ev.timestamp) {
                (Some("SENT"), Some(t)) if sent.is_none_or(|(s, _)| t < s) => sent = Some((t, n)),
                (Some(status), _) if ENDED.contains(&status) => ended = true,
                _ => {}
            }
        }
        let first_sent = sent.map(|(_, n)| n);
        let sent = sent.map(|(t, _)| t);
        if let Some(t) = first {
            scan.messages = widen(scan.messages, t, t);
        }
        // Older than what the baseline reached: history, not news.
        let history = walk.floor.is_some_and(|f| first.is_some_and(|t| t < f));
        for (n, ev) in events.enumerate() {
            let undelivered = first_sent == Some(n) && !ended;
            let Some(ts) = ev.timestamp else {
                scan.invalid.push("no_timestamp");
                continue;
            };
            any = true;
            scan.newest = scan.newest.max(Some(ts));
            if ts < edge {
                continue;
            }
            all_old = false;
            let key = identity(ev, msg_key);
            let state_now = present(ev.webhook_update_state.as_deref());
            let app_now = present(app_id(ev));
            let error_now = ev
                .error_description
                .as_deref()
                .map(normalise_error)
                .filter(|e| !e.is_empty());
            let print = error_now.as_deref().map(error_print);
            // An entry without a recorded state (a version 1 state file)
            // adopts what it shows now; a state, application or error that
            // disappears keeps the last one known.
            let (old, mark) = seen.update(key, |old| {
                let old = old.unwrap_or_default();
                let app = match app_now {
                    None if old.app != 0 => old.app,
                    a => apps.index_within(label_str(a), cap),
                };
                let state = match state_now {
                    None if old.state != 0 => old.state,
                    s => states.index_within(label_str(s), cap),
                };
                Mark {
                    time: ts.min(walk.ceiling),
                    state,
                    undelivered,
                    app,
                    error: print.unwrap_or(old.error),
                }
            });
            let (app, state) = (mark.app, mark.state);
            if old.is_none() && history {
                scan.touched = true;
                continue;
            }
            let Some(old) = old else {
                let latency = match (ev.delivery_status.as_deref(), sent) {
                    (Some("SENT"), _) | (_, None) => None,
                    (_, Some(s)) => Some((ts - s).max(0)),
                };
                scan.new += 1;
                scan.found.push(Sighting {
                    status: ev.delivery_status.as_deref(),
                    app,
                    state,
                    error: error_now,
                    what: What::New { latency },
                });
                continue;
            };
            let recorded = old.state != 0;
            let state_changed = recorded && state != old.state;
            let new_error = match (recorded, print) {
                (true, Some(p)) if p != old.error => error_now,
                _ => None,
            };
            if state_changed || new_error.is_some() {
                scan.changed += 1;
                scan.found.push(Sighting {
                    status: ev.delivery_status.as_deref(),
                    app,
                    state,
                    error: new_error,
                    what: What::Changed {
                        state: state_changed,
                    },
                });
            } else {
                scan.touched |= mark != old;
                scan.seen += 1;
            }
        }
    }
    scan.edge = any && all_old;
    let past_head = walk.phase == Phase::Head
        && scan
            .messages
            .is_some_and(|(oldest, _)| oldest < walk.head_from);
    scan.stop = scan.edge || past_head;
    scan
}

/// A [`PageVisitor`] that scans each page it is handed into a target's
/// state with [`scan_page`], as the driver does before it counts: how the
/// benchmarks and the fuzz target drive the client's borrowed decode.
pub struct ScanInto<'a> {
    /// The target's state the pages are scanned into.
    pub st: &'a mut TargetState,
    /// The walk they are scanned in.
    pub walk: &'a Walk,
}

/// What [`ScanInto`] found on a page: the tallies of its [`Scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Events not seen before.
    pub new: usize,
    /// Events seen before that changed.
    pub changed: usize,
    /// Events seen before, unchanged.
    pub seen: usize,
}

impl PageVisitor<MessageHistory> for ScanInto<'_> {
    type Out = Tally;

    fn visit<S: Text>(&mut self, page: &Page<MessageHistory<S>>) -> Tally {
        let scan = scan_page(page, self.st, self.walk);
        Tally {
            new: scan.new,
            changed: scan.changed,
            seen: scan.seen,
        }
    }
}

/// The dedupe key of an event: its id, else the fields that make it this
/// event (not the webhook state or error, which may change) plus its message.
fn identity<S: Text>(ev: &StatusEvent<S>, msg_key: &str) -> u64 {
    match ev.id.as_deref() {
        Some(id) if !id.is_empty() => fnv::hash(&["event", id]),
        _ => {
            let ts = ev.timestamp.unwrap_or_default().to_string();
            fnv::hash(&[
                "event-content",
                msg_key,
                ev.delivery_status.as_deref().unwrap_or(""),
                &ts,
                app_id(ev).unwrap_or(""),
            ])
        }
    }
}

fn app_id<S: Text>(ev: &StatusEvent<S>) -> Option<&str> {
    ev.application.as_ref().and_then(|a| a.id.as_deref())
}

/// `error_description` trimmed, inner white space collapsed, cut to 100 characters.
pub fn normalise_error(desc: &str) -> String {
    let mut out = String::new();
    for (n, word) in desc.split_whitespace().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    truncate_chars(&out, MAX_LABEL_CHARS).trim_end().to_string()
}

/// The message_history collector: counts each delivery-status event once,
/// by delivery status, webhook state and error, and each change of an
/// event's webhook state or error after first sight.
#[derive(Debug, Clone)]
pub struct MessageHistoryCollector {
    events: EventMetrics,
    failure_states: HashSet<String>,
    max_error_labels: usize,
    undelivered_after: Duration,
}

impl MessageHistoryCollector {
    /// Counting into `events`; `failure_states` are the webhook states that
    /// count as failures; at most `max_error_labels` error labels per number;
    /// a message is stuck when not delivered `undelivered_after` its SENT.
    pub fn new(
        events: EventMetrics,
        failure_states: HashSet<String>,
        max_error_labels: usize,
        undelivered_after: Duration,
    ) -> Self {
        MessageHistoryCollector {
            events,
            failure_states,
            max_error_labels,
            undelivered_after,
        }
    }

    /// The `error` label of `desc` for this number: itself, or `other` past the cap.
    fn error_label(&self, st: &mut TargetState, desc: String) -> String {
        if st.error_labels.contains(&desc) || st.error_labels.len() < self.max_error_labels {
            st.error_labels.insert(desc.clone());
            desc
        } else {
            "other".to_string()
        }
    }

    /// Counts a webhook update of `phone` to state `state` for `app`.
    fn webhook_update(&self, phone: &str, app: &str, state: &str, n: u64) {
        let m = &self.events;
        let webhook = WebhookLabels {
            phone_number_id: phone.to_string(),
            application_id: app.to_string(),
            webhook_update_state: state.to_string(),
        };
        m.webhook_updates.get_or_create(&webhook).inc_by(n);
        if self.failure_states.contains(state) {
            m.webhook_failures.get_or_create(&webhook).inc_by(n);
        }
    }

    fn delivery_error(&self, phone: &str, st: &mut TargetState, desc: String, n: u64) {
        let error = self.error_label(st, desc);
        self.events
            .delivery_errors
            .get_or_create(&DeliveryErrorLabels {
                phone_number_id: phone.to_string(),
                error,
            })
            .inc_by(n);
    }
}

impl Collect for MessageHistoryCollector {
    type Record = MessageHistory;
    type Found<'p> = Sighting<'p>;
    const EDGE: Edge = Edge::MessageHistory;
    const FIELDS: &'static str = FIELDS;
    const SWEEPS: bool = true;

    fn scan<'p, S: Text>(
        &self,
        page: &'p Page<MessageHistory<S>>,
        st: &mut TargetState,
        walk: &mut Walk,
    ) -> Scan<Sighting<'p>> {
        scan_page(page, st, walk)
    }

    fn count(&self, phone: &str, found: &[Sighting<'_>], st: &mut TargetState, counting: bool) {
        // In baseline mode the series are created at 0 (so the first real
        // increment shows in rate()), but nothing is counted.
        let n = u64::from(counting);
        let m = &self.events;
        for s in found {
            let application_id = st.apps.value(s.app).to_string();
            let state = st.states.value(s.state).to_string();
            if !st.applications.contains(&application_id) {
                // The failure-state series of a new application start at 0, so
                // that its first failure shows in increase() and the alerts.
                for f in &self.failure_states {
                    let l = WebhookLabels {
                        phone_number_id: phone.to_string(),
                        application_id: application_id.clone(),
                        webhook_update_state: f.clone(),
                    };
                    m.webhook_updates.get_or_create(&l).inc_by(0);
                    m.webhook_failures.get_or_create(&l).inc_by(0);
                }
                st.applications.insert(application_id.clone());
            }
            match s.what {
                What::New { latency } => {
                    let cap = st.max_label_values();
                    let status = StatusLabels {
                        phone_number_id: phone.to_string(),
                        delivery_status: st.delivery_statuses.admit(label_str(s.status), cap),
                    };
                    m.status_events.get_or_create(&status).inc_by(n);
                    if let (Some(secs), true) = (latency, counting) {
                        m.status_latency.get_or_create(&status).observe(secs as f64);
                    }
                    self.webhook_update(phone, &application_id, &state, n);
                }
                What::Changed { state: changed } => {
                    if changed {
                        self.webhook_update(phone, &application_id, &state, n);
                    }
                }
            }
            if let Some(e) = &s.error {
                self.delivery_error(phone, st, e.clone(), n);
            }
        }
    }

    fn settle(&self, phone: &str, st: &mut TargetState, walk: &Walk, now: i64) {
        let m = &self.events;
        let after = i64::try_from(self.undelivered_after.as_secs()).unwrap_or(i64::MAX);
        let stuck_before = now.saturating_sub(after);
        let mut by_state: HashMap<(u8, u8), i64> = HashMap::new();
        let mut stuck = 0;
        for (_, mark) in st.seen.entries().filter(|(_, m)| m.time >= walk.edge) {
            if mark.state != 0 {
                *by_state.entry((mark.app, mark.state)).or_default() += 1;
            }
            if mark.undelivered && mark.time < stuck_before {
                stuck += 1;
            }
        }
        let pairs: Vec<(u8, u8)> = st
            .webhook_series
            .iter()
            .copied()
            .chain(by_state.keys().copied())
            .collect();
        for pair in pairs {
            let l = WebhookLabels {
                phone_number_id: phone.to_string(),
                application_id: st.apps.value(pair.0).to_string(),
                webhook_update_state: st.states.value(pair.1).to_string(),
            };
            m.webhook_events
                .get_or_create(&l)
                .set(by_state.get(&pair).copied().unwrap_or(0));
            st.webhook_series.insert(pair);
        }
        m.undelivered
            .get_or_create(&PhoneLabels {
                phone_number_id: phone.to_string(),
            })
            .set(stuck as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::model::{Application, EventList, MessageHistory};
    use crate::metrics::Exposition;
    use crate::metrics::labels::label_value;

    fn ev(id: Option<&str>, status: &str, ts: i64) -> StatusEvent {
        StatusEvent {
            id: id.map(String::from),
            delivery_status: Some(status.into()),
            timestamp: Some(ts),
            ..Default::default()
        }
    }

    fn hook(mut e: StatusEvent, state: &str) -> StatusEvent {
        e.webhook_update_state = Some(state.into());
        e.application = Some(Application {
            id: Some("42".into()),
        });
        e
    }

    fn page(msgs: Vec<(&str, Vec<StatusEvent>)>) -> Page<MessageHistory> {
        Page {
            data: msgs
                .into_iter()
                .map(|(id, events)| MessageHistory {
                    id: Some(id.into()),
                    message_id: Some(format!("wamid.{id}")),
                    events: Some(EventList { data: events }),
                })
                .collect(),
            paging: None,
            invalid: Vec::new(),
        }
    }

    fn scan<'p>(
        p: &'p Page<MessageHistory>,
        st: &mut TargetState,
        edge: i64,
    ) -> Scan<Sighting<'p>> {
        let walk = st.begin(edge, i64::MAX);
        scan_page(p, st, &walk)
    }

    #[test]
    fn counts_each_event_once_and_stops_at_old_pages() {
        let mut st = TargetState::default();
        let p = page(vec![
            (
                "m1",
                vec![
                    ev(Some("e1"), "SENT", 1000),
                    ev(Some("e2"), "DELIVERED", 1001),
                ],
            ),
            (
                "m2",
                vec![ev(None, "SENT", 1002), ev(Some("e0"), "SENT", 10)],
            ),
        ]);
        let s = scan(&p, &mut st, 500);
        assert_eq!(s.new, 3);
        assert_eq!(s.newest, Some(1002));
        assert_eq!(s.found[1].what, What::New { latency: Some(1) });
        assert!(!s.stop);
        let s = scan(&p, &mut st, 500);
        assert_eq!((s.new, s.changed, s.seen), (0, 0, 3));
        let old = page(vec![("m9", vec![ev(Some("x"), "SENT", 10)])]);
        let s = scan(&old, &mut st, 500);
        assert!(s.stop && s.new == 0);
        // A page of messages without events is not a reason to stop.
        let empty = page(vec![("m8", vec![])]);
        assert!(!scan(&empty, &mut st, 500).stop);
    }

    #[test]
    fn id_less_events_keyed_by_content_and_message() {
        let mut st = TargetState::default();
        let mut changed = ev(None, "SENT", 1000);
        let p1 = page(vec![
            ("m1", vec![changed.clone()]),
            ("m2", vec![ev(None, "SENT", 1000)]),
        ]);
        assert_eq!(scan(&p1, &mut st, 0).new, 2);
        // The webhook state of an event may change; it is still the same event.
        changed.webhook_update_state = Some("DELIVERED".into());
        let p2 = page(vec![("m1", vec![changed])]);
        let s = scan(&p2, &mut st, 0);
        assert_eq!((s.new, s.changed), (0, 1));
    }

    /// PENDING -> RETRYING -> FAILED (with its error) -> FAILED again: two
    /// changes, one new error, then nothing; a state that disappears keeps
    /// the last one.
    #[test]
    fn state_and_error_changes_are_found_once() {
        let mut st = TargetState::default();
        let at = |state: &str| {
            page(vec![(
                "m1",
                vec![hook(ev(Some("e1"), "SENT", 1000), state)],
            )])
        };
        let p = at("PENDING");
        assert_eq!(scan(&p, &mut st, 0).new, 1);
        let p = at("RETRYING");
        let s = scan(&p, &mut st, 0);
        assert_eq!(s.changed, 1);
        assert_eq!(st.states.value(s.found[0].state), "RETRYING");
        assert_eq!(s.found[0].what, What::Changed { state: true });
        assert_eq!(s.found[0].error, None);
        let mut failed = at("FAILED");
        failed.data[0].events.as_mut().unwrap().data[0].error_description =
            Some(" Webhook endpoint  returned HTTP 500".into());
        let s = scan(&failed, &mut st, 0);
        assert_eq!(s.found[0].what, What::Changed { state: true });
        assert_eq!(
            s.found[0].error.as_deref(),
            Some("Webhook endpoint returned HTTP 500")
        );
        let s = scan(&failed, &mut st, 0);
        assert_eq!((s.changed, s.seen), (0, 1));
        let mut gone = at("FAILED");
        gone.data[0].events.as_mut().unwrap().data[0].webhook_update_state = None;
        gone.data[0].events.as_mut().unwrap().data[0].application = None;
        let s = scan(&gone, &mut st, 0);
        assert_eq!((s.changed, s.seen), (0, 1));
        let mark = st.seen.entries().next().unwrap().1;
        assert_eq!(st.states.value(mark.state), "FAILED");
        assert_eq!(st.apps.value(mark.app), "42");
    }

    /// An entry from a version 1 state file (no state) adopts the state it
    /// is next seen with, silently; a change after that counts.
    #[test]
    fn entries_without_state_adopt_silently() {
        let mut st = TargetState::default();
        let p = page(vec![(
            "m1",
            vec![hook(ev(Some("e1"), "SENT", 1000), "PENDING")],
        )]);
        st.seen.insert(
            identity(&p.data[0].events.as_ref().unwrap().data[0], "m1"),
            Mark::at(1000),
        );
        let s = scan(&p, &mut st, 0);
        assert_eq!((s.new, s.changed, s.seen), (0, 0, 1));
        assert!(s.touched);
        let p = page(vec![(
            "m1",
            vec![hook(ev(Some("e1"), "SENT", 1000), "FAILED")],
        )]);
        assert_eq!(scan(&p, &mut st, 0).changed, 1);
    }

    #[test]
    fn changes_count_under_their_new_state_and_gauges_settle() {
        let mut exp = Exposition::default();
        let events = EventMetrics::register(&mut exp);
        let c = MessageHistoryCollector::new(
            events.clone(),
            ["FAILED".to_string()].into(),
            20,
            Duration::from_secs(600),
        );
        let mut st = TargetState::default();
        let mut walk = st.begin(0, i64::MAX);
        let run = |st: &mut TargetState, walk: &mut Walk, p: &Page<MessageHistory>, counting| {
            let s = c.scan(p, st, walk);
            c.count("1", &s.found, st, counting);
        };
        let at = |state: &str| {
            page(vec![(
                "m1",
                vec![
                    hook(ev(Some("s"), "SENT", 1000), "DELIVERED"),
                    hook(ev(Some("d"), "DELIVERED", 1030), state),
                ],
            )])
        };
        let stuck = page(vec![(
            "m2",
            vec![hook(ev(Some("x"), "SENT", 1000), "PENDING")],
        )]);
        // Baseline: remembered, not counted.
        run(&mut st, &mut walk, &at("PENDING"), false);
        run(&mut st, &mut walk, &stuck, false);
        for state in ["RETRYING", "FAILED", "FAILED", "RETRYING", "FAILED"] {
            run(&mut st, &mut walk, &at(state), true);
        }
        let webhook = |state: &str| WebhookLabels {
            phone_number_id: "1".into(),
            application_id: "42".into(),
            webhook_update_state: state.into(),
        };
        let updates = |state| events.webhook_updates.get(&webhook(state)).map(|c| c.get());
        assert_eq!(updates("PENDING"), Some(0));
        assert_eq!(updates("RETRYING"), Some(2));
        assert_eq!(updates("FAILED"), Some(2));
        assert_eq!(updates("DELIVERED"), Some(0));
        let failures = events.webhook_failures.get(&webhook("FAILED")).unwrap();
        assert_eq!(failures.get(), 2);
        let status = StatusLabels {
            phone_number_id: "1".into(),
            delivery_status: "DELIVERED".into(),
        };
        assert_eq!(events.status_events.get(&status).unwrap().get(), 0);
        // The baseline observed no latency; a new event after it does, once.
        assert!(events.status_latency.get(&status).is_none());
        let read = page(vec![(
            "m1",
            vec![
                hook(ev(Some("s"), "SENT", 1000), "DELIVERED"),
                hook(ev(Some("r"), "READ", 1100), "PENDING"),
            ],
        )]);
        run(&mut st, &mut walk, &read, true);
        run(&mut st, &mut walk, &read, true);
        let read_labels = StatusLabels {
            delivery_status: "READ".into(),
            ..status
        };
        let text = exp
            .encode(
                crate::metrics::encode::Format::OpenMetrics,
                &Default::default(),
            )
            .unwrap();
        assert!(
            text.contains(r#"whatsapp_message_status_latency_seconds_sum{phone_number_id="1",delivery_status="READ"} 100.0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"whatsapp_message_status_latency_seconds_count{phone_number_id="1",delivery_status="READ"} 1"#),
            "{text}"
        );
        assert_eq!(events.status_events.get(&read_labels).unwrap().get(), 1);
        // Now: s DELIVERED, d FAILED, x PENDING, r PENDING; m2 is stuck 10 min after its SENT.
        c.settle("1", &mut st, &walk, 1000 + 601);
        let gauge = |state| events.webhook_events.get(&webhook(state)).map(|g| g.get());
        assert_eq!(gauge("PENDING"), Some(2));
        assert_eq!(gauge("FAILED"), Some(1));
        assert_eq!(gauge("DELIVERED"), Some(1));
        let phone = PhoneLabels {
            phone_number_id: "1".into(),
        };
        assert_eq!(events.undelivered.get(&phone).unwrap().get(), 1);
        c.settle("1", &mut st, &walk, 1000 + 599);
        assert_eq!(events.undelivered.get(&phone).unwrap().get(), 0);
        // Past the lookback edge, the gauge drops the events (its series stay, at 0).
        let later = st.begin(2000, i64::MAX);
        c.settle("1", &mut st, &later, 3000);
        assert_eq!(gauge("PENDING"), Some(0));
    }

    #[test]
    fn missing_timestamp_is_invalid_not_counted() {
        let mut st = TargetState::default();
        let mut e = ev(Some("e1"), "SENT", 0);
        e.timestamp = None;
        let p = page(vec![("m1", vec![e])]);
        let s = scan(&p, &mut st, 0);
        assert_eq!(s.new, 0);
        assert_eq!(s.invalid, vec!["no_timestamp"]);
    }

    #[test]
    fn error_labels_normalised_and_capped() {
        assert_eq!(
            normalise_error("  Message \n  undeliverable\t "),
            "Message undeliverable"
        );
        let long = "é".repeat(150);
        assert_eq!(normalise_error(&long).chars().count(), 100);
        assert_eq!(label_value(Some(&long)).chars().count(), 100);
        assert_eq!(label_value(Some("  ")), "unknown");
        assert_eq!(label_value(None), "unknown");
    }
}
