//! `GET /{Phone-Number-ID}/message_history`: delivery-status events of the
//! recent messages, with the state of Meta's webhook delivery of each.
//!
//! New events can be added to any message inside the lookback window, so the
//! scan reads from the newest page back until a page whose events are all
//! older than the edge (or `max_pages`), and counts every event not seen
//! before.

use std::collections::HashSet;

use crate::collector::driver::Collect;
use crate::collector::seen::SeenEvents;
use crate::collector::target::{Scan, TargetState, Walk};
use crate::fnv;
use crate::graph::Edge;
use crate::graph::model::{MessageHistory, Page, StatusEvent};
use crate::metrics::EventMetrics;
use crate::metrics::labels::{DeliveryErrorLabels, StatusLabels, WebhookLabels};
use crate::metrics::labels::{MAX_LABEL_CHARS, label_value, truncate_chars};

/// Fields requested: the defaults omit the events.
pub const FIELDS: &str = "id,message_id,events{id,delivery_status,webhook_update_state,timestamp,application,error_description}";

/// Finds the events of one page not seen before and remembers them.
///
/// `stop` is set when the page has events and all are older than `edge`.
pub fn scan_page<'p>(
    page: &'p Page<MessageHistory>,
    seen: &mut SeenEvents,
    edge: i64,
) -> Scan<'p, StatusEvent> {
    let mut scan = Scan::default();
    let mut any = false;
    let mut all_old = true;
    for msg in &page.data {
        let msg_key = msg
            .id
            .as_deref()
            .or(msg.message_id.as_deref())
            .unwrap_or("");
        for ev in msg.events.iter().flat_map(|e| &e.data) {
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
            if seen.insert(identity(ev, msg_key), ts) {
                scan.new.push(ev);
            } else {
                scan.seen += 1;
            }
        }
    }
    scan.stop = any && all_old;
    scan
}

/// The dedupe key of an event: its id, else the fields that make it this
/// event (not the webhook state or error, which may change) plus its message.
fn identity(ev: &StatusEvent, msg_key: &str) -> u64 {
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

fn app_id(ev: &StatusEvent) -> Option<&str> {
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
/// by delivery status, webhook state and error.
#[derive(Debug, Clone)]
pub struct MessageHistoryCollector {
    events: EventMetrics,
    failure_states: HashSet<String>,
    max_error_labels: usize,
}

impl MessageHistoryCollector {
    /// Counting into `events`; `failure_states` are the webhook states that
    /// count as failures; at most `max_error_labels` error labels per number.
    pub fn new(
        events: EventMetrics,
        failure_states: HashSet<String>,
        max_error_labels: usize,
    ) -> Self {
        MessageHistoryCollector {
            events,
            failure_states,
            max_error_labels,
        }
    }
}

impl Collect for MessageHistoryCollector {
    type Record = MessageHistory;
    type Found = StatusEvent;
    const EDGE: Edge = Edge::MessageHistory;
    const FIELDS: &'static str = FIELDS;

    fn scan<'p>(
        &self,
        page: &'p Page<MessageHistory>,
        st: &mut TargetState,
        walk: &mut Walk,
    ) -> Scan<'p, StatusEvent> {
        scan_page(page, &mut st.seen, walk.edge)
    }

    fn count(&self, phone: &str, new: &[&StatusEvent], st: &mut TargetState, counting: bool) {
        // In baseline mode the series are created at 0 (so the first real
        // increment shows in rate()), but nothing is counted.
        let n = u64::from(counting);
        let m = &self.events;
        for ev in new {
            m.status_events
                .get_or_create(&StatusLabels {
                    phone_number_id: phone.to_string(),
                    delivery_status: label_value(ev.delivery_status.as_deref()),
                })
                .inc_by(n);
            let state = label_value(ev.webhook_update_state.as_deref());
            let failed = self.failure_states.contains(&state);
            let application_id = label_value(app_id(ev));
            if !st.applications.contains(&application_id) {
                // The failure-state series of a new application start at 0, so
                // that its first failure shows in increase() and the alerts.
                for s in &self.failure_states {
                    let l = WebhookLabels {
                        phone_number_id: phone.to_string(),
                        application_id: application_id.clone(),
                        webhook_update_state: s.clone(),
                    };
                    m.webhook_updates.get_or_create(&l).inc_by(0);
                    m.webhook_failures.get_or_create(&l).inc_by(0);
                }
                st.applications.insert(application_id.clone());
            }
            let webhook = WebhookLabels {
                phone_number_id: phone.to_string(),
                application_id,
                webhook_update_state: state,
            };
            m.webhook_updates.get_or_create(&webhook).inc_by(n);
            if failed {
                m.webhook_failures.get_or_create(&webhook).inc_by(n);
            }
            let desc = ev.error_description.as_deref().map(normalise_error);
            if let Some(e) = desc.filter(|e| !e.is_empty()) {
                let error = if st.error_labels.contains(&e)
                    || st.error_labels.len() < self.max_error_labels
                {
                    st.error_labels.insert(e.clone());
                    e
                } else {
                    "other".to_string()
                };
                m.delivery_errors
                    .get_or_create(&DeliveryErrorLabels {
                        phone_number_id: phone.to_string(),
                        error,
                    })
                    .inc_by(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::model::{EventList, MessageHistory};

    fn ev(id: Option<&str>, status: &str, ts: i64) -> StatusEvent {
        StatusEvent {
            id: id.map(String::from),
            delivery_status: Some(status.into()),
            timestamp: Some(ts),
            ..Default::default()
        }
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
        }
    }

    #[test]
    fn counts_each_event_once_and_stops_at_old_pages() {
        let mut seen = SeenEvents::default();
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
        let s = scan_page(&p, &mut seen, 500);
        assert_eq!(s.new.len(), 3);
        assert_eq!(s.newest, Some(1002));
        assert!(!s.stop);
        let s = scan_page(&p, &mut seen, 500);
        assert!(s.new.is_empty());
        let old = page(vec![("m9", vec![ev(Some("x"), "SENT", 10)])]);
        let s = scan_page(&old, &mut seen, 500);
        assert!(s.stop && s.new.is_empty());
        // A page of messages without events is not a reason to stop.
        let empty = page(vec![("m8", vec![])]);
        assert!(!scan_page(&empty, &mut seen, 500).stop);
    }

    #[test]
    fn id_less_events_keyed_by_content_and_message() {
        let mut seen = SeenEvents::default();
        let mut changed = ev(None, "SENT", 1000);
        let p1 = page(vec![
            ("m1", vec![changed.clone()]),
            ("m2", vec![ev(None, "SENT", 1000)]),
        ]);
        assert_eq!(scan_page(&p1, &mut seen, 0).new.len(), 2);
        // The webhook state of an event may change; it is still the same event.
        changed.webhook_update_state = Some("DELIVERED".into());
        let p2 = page(vec![("m1", vec![changed])]);
        assert!(scan_page(&p2, &mut seen, 0).new.is_empty());
    }

    #[test]
    fn missing_timestamp_is_invalid_not_counted() {
        let mut seen = SeenEvents::default();
        let mut e = ev(Some("e1"), "SENT", 0);
        e.timestamp = None;
        let p = page(vec![("m1", vec![e])]);
        let s = scan_page(&p, &mut seen, 0);
        assert!(s.new.is_empty());
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
