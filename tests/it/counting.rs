//! Exact counter values after scripted traffic.

use crate::support::*;
use whatsapp_exporter::sim::{SimActivity, SimEvent};

fn status(m: &Metrics, phone: &str, s: &str) -> f64 {
    m.val(
        STATUS,
        &[("phone_number_id", phone), ("delivery_status", s)],
    )
}

#[tokio::test]
async fn baseline_new_events_and_nothing_new() {
    let (sim, url) = simulator().await;
    let t = now() - 600;
    let mut old = Vec::new();
    for i in 0..5 {
        old.push(sim.add_message(
            PHONE,
            vec![
                SimEvent::new("SENT", t + i),
                SimEvent::new("DELIVERED", t + i + 1),
            ],
        ));
    }
    sim.add_activity(WABA, SimActivity::new("USER", "USER_ADDED", t), true);
    sim.add_activity(
        WABA,
        SimActivity::new("PHONE_NUMBER", "PHONE_NUMBER_ADDED", t + 1),
        true,
    );
    let exp = Exporter::start(&config_yaml(&url, "", "")).await;

    // Baseline: history is remembered, not counted; its series exist at 0.
    let m = exp.scrape().await;
    assert_eq!(
        m.get(
            STATUS,
            &[("phone_number_id", PHONE), ("delivery_status", "SENT")]
        ),
        Some(0.0)
    );
    assert_eq!(
        m.get(ACTIVITY, &[("waba_id", WABA), ("event_type", "USER_ADDED")]),
        Some(0.0)
    );
    // Failure-state series of each application seen start at 0.
    for state in ["FAILED", "ERROR", "RETRYING"] {
        let l = [
            ("phone_number_id", PHONE),
            ("application_id", "9876543210987654"),
            ("webhook_update_state", state),
        ];
        assert_eq!(m.get(FAILURES, &l), Some(0.0), "{state}");
    }
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    assert_eq!(up(&m, "message_history", PHONE2), Some(1.0));
    assert_eq!(up(&m, "activities", WABA), Some(1.0));
    assert_eq!(
        m.get(
            "whatsapp_last_event_timestamp_seconds",
            &[("collector", "message_history"), ("target", PHONE)]
        ),
        Some((t + 5) as f64)
    );
    assert_eq!(
        m.get(
            "whatsapp_seen_events",
            &[("collector", "message_history"), ("target", PHONE)]
        ),
        Some(10.0)
    );

    // New traffic: two new messages, a READ on an old one, a failed one, one activity.
    let t2 = now() - 5;
    sim.add_message(PHONE, vec![SimEvent::new("SENT", t2)]);
    sim.add_message(
        PHONE,
        vec![
            SimEvent::new("SENT", t2),
            SimEvent::new("FAILED", t2 + 1)
                .webhook("FAILED")
                .error("Message undeliverable"),
        ],
    );
    assert!(sim.add_event(PHONE, &old[0], SimEvent::new("READ", t2), false));
    sim.add_activity(WABA, SimActivity::new("USER", "USER_REMOVED", t2), true);
    let m = exp.scrape().await;
    assert_eq!(status(&m, PHONE, "SENT"), 2.0);
    assert_eq!(status(&m, PHONE, "READ"), 1.0);
    assert_eq!(status(&m, PHONE, "FAILED"), 1.0);
    assert_eq!(status(&m, PHONE, "DELIVERED"), 0.0);
    assert_eq!(m.sum(STATUS, &[("phone_number_id", PHONE2)]), 0.0);
    assert_eq!(
        m.val(
            WEBHOOK,
            &[
                ("phone_number_id", PHONE),
                ("application_id", "9876543210987654"),
                ("webhook_update_state", "DELIVERED")
            ]
        ),
        3.0
    );
    assert_eq!(
        m.val(
            FAILURES,
            &[
                ("phone_number_id", PHONE),
                ("webhook_update_state", "FAILED")
            ]
        ),
        1.0
    );
    assert_eq!(m.sum(FAILURES, &[]), 1.0);
    assert_eq!(
        m.val(
            ERRORS,
            &[
                ("phone_number_id", PHONE),
                ("error", "Message undeliverable")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.val(
            ACTIVITY,
            &[
                ("waba_id", WABA),
                ("category", "USER"),
                ("event_type", "USER_REMOVED")
            ]
        ),
        1.0
    );
    assert_eq!(m.sum(ACTIVITY, &[]), 1.0);

    // Nothing new: unchanged, and exactly one activities request.
    let before = sim.requests("activities", WABA);
    let m2 = exp.scrape().await;
    assert_eq!(sim.requests("activities", WABA), before + 1);
    for name in [STATUS, WEBHOOK, FAILURES, ERRORS, ACTIVITY] {
        assert_eq!(
            m.sum(name, &[]),
            m2.sum(name, &[]),
            "{name} changed with nothing new"
        );
    }
    exp.stop().await;
}

#[tokio::test]
async fn page_shifts_and_updates_deep_in_the_window() {
    let (sim, url) = simulator().await;
    let t = now() - 3000;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(sim.add_message(PHONE, vec![SimEvent::new("SENT", t + i * 10)]));
    }
    // A sweep as deep as the window: every collection reads all of it (the
    // sweep across collections is tests/it/sweep.rs).
    let exp = Exporter::start(&config_yaml(
        &url,
        "  page_size: 2\n  max_pages: 50\n  sweep_pages: 50\n",
        "",
    ))
    .await;
    let m = exp.scrape().await;
    assert_eq!(
        m.val(
            "whatsapp_collection_pages_total",
            &[("collector", "message_history"), ("target", PHONE)]
        ),
        5.0
    );

    // Five new messages push everything down 2.5 pages; an old message (now
    // on page 6) and one on page 3 get new events.
    let t2 = now() - 1;
    for _ in 0..5 {
        sim.add_message(PHONE, vec![SimEvent::new("SENT", t2)]);
    }
    sim.add_event(PHONE, &ids[0], SimEvent::new("DELIVERED", t2), false);
    sim.add_event(PHONE, &ids[6], SimEvent::new("DELIVERED", t2), false);
    let m = exp.scrape().await;
    assert_eq!(status(&m, PHONE, "SENT"), 5.0);
    assert_eq!(status(&m, PHONE, "DELIVERED"), 2.0);
    assert_eq!(
        m.val("whatsapp_collection_truncated_total", &[("target", PHONE)]),
        0.0
    );

    // Again with nothing new: the same numbers.
    let m = exp.scrape().await;
    assert_eq!(status(&m, PHONE, "SENT"), 5.0);
    assert_eq!(status(&m, PHONE, "DELIVERED"), 2.0);
    exp.stop().await;
}

#[tokio::test]
async fn label_values_pass_through_unknown_and_error_cap() {
    let (sim, url) = simulator().await;
    let exp = Exporter::start(&config_yaml(&url, "  max_error_labels: 3\n", "")).await;
    exp.scrape().await; // empty baseline
    let t = now() - 1;
    let odd = whatsapp_exporter::sim::SimEvent {
        id: None,
        delivery_status: Some("PLAYED_2027".into()),
        timestamp: t,
        webhook_update_state: None,
        application_id: None,
        webhook_uri: None,
        error_description: None,
    };
    sim.add_message(
        PHONE,
        vec![odd, SimEvent::new("SENT", t).webhook("RETRYING").app("42")],
    );
    let mut evs = Vec::new();
    for i in 0..5 {
        evs.push(SimEvent::new("FAILED", t).error(&format!("  error   number\n{i}  ")));
    }
    evs.push(SimEvent::new("FAILED", t).error(&"x".repeat(300)));
    sim.add_message(PHONE, evs);
    let mut a = SimActivity::new("X", "Y", t);
    a.category = None;
    sim.add_activity(WABA, a, true);

    let m = exp.scrape().await;
    assert_eq!(status(&m, PHONE, "PLAYED_2027"), 1.0);
    assert_eq!(
        m.val(
            WEBHOOK,
            &[
                ("phone_number_id", PHONE),
                ("application_id", "unknown"),
                ("webhook_update_state", "unknown")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.val(
            FAILURES,
            &[
                ("application_id", "42"),
                ("webhook_update_state", "RETRYING")
            ]
        ),
        1.0
    );
    // 3 named error labels (normalised), the rest under "other".
    let errors = m.find(ERRORS, &[("phone_number_id", PHONE)]);
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert_eq!(m.val(ERRORS, &[("error", "error number 0")]), 1.0);
    assert_eq!(m.val(ERRORS, &[("error", "error number 2")]), 1.0);
    assert_eq!(m.val(ERRORS, &[("error", "other")]), 3.0);
    assert!(
        errors
            .iter()
            .all(|s| s.labels["error"].chars().count() <= 100)
    );
    assert_eq!(
        m.val(ACTIVITY, &[("category", "unknown"), ("event_type", "Y")]),
        1.0
    );
    exp.stop().await;
}

#[tokio::test]
async fn configured_failure_states_replace_the_default() {
    let (sim, url) = simulator().await;
    let exp = Exporter::start(&config_yaml(
        &url,
        "  webhook_failure_states: [TIMED_OUT]\n",
        "",
    ))
    .await;
    exp.scrape().await;
    let t = now();
    sim.add_message(
        PHONE,
        vec![
            SimEvent::new("SENT", t).webhook("FAILED"),
            SimEvent::new("DELIVERED", t).webhook("TIMED_OUT"),
        ],
    );
    let m = exp.scrape().await;
    assert_eq!(m.sum(FAILURES, &[]), 1.0);
    assert_eq!(
        m.val(FAILURES, &[("webhook_update_state", "TIMED_OUT")]),
        1.0
    );
    assert_eq!(m.sum(WEBHOOK, &[]), 2.0);
    exp.stop().await;
}

#[tokio::test]
async fn id_less_events_and_records_count_once() {
    let (sim, url) = simulator().await;
    let exp = Exporter::start(&config_yaml(&url, "", "")).await;
    exp.scrape().await;
    let t = now() - 2;
    let msg = sim.add_message(PHONE, vec![]);
    for s in ["SENT", "DELIVERED"] {
        sim.add_event(PHONE, &msg, SimEvent::new(s, t), true);
    }
    sim.add_activity(WABA, SimActivity::new("USER", "USER_ADDED", t), false);
    sim.add_activity(WABA, SimActivity::new("USER", "USER_ADDED", t + 1), false);
    for _ in 0..3 {
        let m = exp.scrape().await;
        assert_eq!(status(&m, PHONE, "SENT"), 1.0);
        assert_eq!(status(&m, PHONE, "DELIVERED"), 1.0);
        assert_eq!(m.val(ACTIVITY, &[("event_type", "USER_ADDED")]), 2.0);
    }
    exp.stop().await;
}

#[tokio::test]
async fn lookback_bounds_counting_memory_and_pages() {
    let (sim, url) = simulator().await;
    let old = now() - 3 * 24 * 3600;
    let mut old_ids = Vec::new();
    for i in 0..6 {
        old_ids.push(sim.add_message(PHONE, vec![SimEvent::new("SENT", old + i)]));
    }
    let exp = Exporter::start(&config_yaml(&url, "  page_size: 2\n  lookback: 24h\n", "")).await;
    let m = exp.scrape().await;
    assert_eq!(
        m.get("whatsapp_seen_events", &[("target", PHONE)]),
        Some(0.0)
    );
    // Page 1 is all older than the edge: the scan stops there.
    assert_eq!(sim.requests("message_history", PHONE), 1);

    let t = now() - 1;
    sim.add_message(PHONE, vec![SimEvent::new("SENT", t)]);
    sim.add_message(PHONE, vec![SimEvent::new("SENT", t)]);
    // An event dated before the edge on an old message is neither counted nor remembered.
    sim.add_event(PHONE, &old_ids[5], SimEvent::new("READ", old + 100), false);
    let m = exp.scrape().await;
    assert_eq!(status(&m, PHONE, "SENT"), 2.0);
    // Never counted, so never even created.
    assert_eq!(
        m.get(
            STATUS,
            &[("phone_number_id", PHONE), ("delivery_status", "READ")]
        ),
        None
    );
    assert_eq!(
        m.get("whatsapp_seen_events", &[("target", PHONE)]),
        Some(2.0)
    );
    // New page 1, then page 2 is all old: two requests.
    assert_eq!(sim.requests("message_history", PHONE), 3);
    assert_eq!(
        m.val("whatsapp_collection_truncated_total", &[("target", PHONE)]),
        0.0
    );
    exp.stop().await;
}

#[tokio::test]
async fn max_pages_truncation_is_reported() {
    let (sim, url) = simulator().await;
    let t = now() - 100;
    for i in 0..10 {
        sim.add_message(PHONE, vec![SimEvent::new("SENT", t + i)]);
    }
    let exp = Exporter::start(&config_yaml(&url, "  page_size: 2\n  max_pages: 3\n", "")).await;
    let m = exp.scrape().await;
    assert_eq!(
        m.val(
            "whatsapp_collection_truncated_total",
            &[("collector", "message_history"), ("target", PHONE)]
        ),
        1.0
    );
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    assert_eq!(sim.requests("message_history", PHONE), 3);
    // PHONE2 has one (empty) page: not truncated.
    assert_eq!(
        m.val("whatsapp_collection_truncated_total", &[("target", PHONE2)]),
        0.0
    );
    exp.stop().await;
}

#[tokio::test]
async fn concurrent_scrapes_share_one_collection() {
    let (sim, url) = simulator().await;
    let yaml = config_yaml(&url, "", "").replace("min_interval: 0s", "min_interval: 60s");
    let exp = Exporter::start(&yaml).await;
    let scrapes = (0..6).map(|_| exp.scrape());
    let results = futures_util::future::join_all(scrapes).await;
    assert!(
        results
            .iter()
            .all(|m| up(m, "activities", WABA) == Some(1.0))
    );
    assert_eq!(sim.requests("activities", WABA), 1);
    assert_eq!(sim.requests("message_history", PHONE), 1);
    // Within min_interval: served from the last collection.
    exp.scrape().await;
    assert_eq!(sim.requests("activities", WABA), 1);
    exp.stop().await;
}

#[tokio::test]
async fn targets_are_collected_concurrently_up_to_the_limit() {
    use whatsapp_exporter::sim::Fault;
    for (concurrency, expected) in [(1, 1), (2, 2), (8, 3)] {
        let (sim, url) = simulator().await;
        for t in [WABA, PHONE, PHONE2] {
            sim.set_fault(t, Some(Fault::Delay(std::time::Duration::from_millis(300))));
        }
        let exp = Exporter::start(&config_yaml(
            &url,
            &format!("  concurrency: {concurrency}\n"),
            "",
        ))
        .await;
        let m = exp.scrape().await;
        assert_eq!(
            m.find("whatsapp_up", &[])
                .iter()
                .filter(|s| s.value == 1.0)
                .count(),
            6,
            "three collections and three health checks (same limit), all up"
        );
        assert_eq!(sim.max_in_flight(), expected, "concurrency {concurrency}");
        exp.stop().await;
    }
}

/// One event's webhook state moves after first sight: PENDING -> RETRYING
/// -> FAILED is three updates under three labels, FAILED -> RETRYING ->
/// FAILED two more; failures count the changes into failure states; the
/// error counts when it appears (not again for a state change with the same
/// one); the status event stays one; the gauge follows the last state.
#[tokio::test]
async fn webhook_state_changes_after_first_sight_count_once_each() {
    let (sim, url) = simulator().await;
    let yaml = config_yaml(&url, "  webhook_failure_states: [FAILED, RETRYING]\n", "");
    let exp = Exporter::start(&yaml).await;
    exp.scrape().await;
    let msg = sim.add_message(PHONE, vec![SimEvent::new("SENT", now()).webhook("PENDING")]);
    let set = |state: &str, error: Option<&str>| {
        assert!(sim.update_events(PHONE, &msg, |e| {
            e.webhook_update_state = Some(state.to_string());
            if let Some(d) = error {
                e.error_description = Some(d.to_string());
            }
        }));
    };
    let m = exp.scrape().await;
    assert_eq!(webhook(&m, WEBHOOK, "PENDING"), Some(1.0));
    assert_eq!(webhook(&m, "whatsapp_webhook_events", "PENDING"), Some(1.0));
    set("RETRYING", None);
    let m = exp.scrape().await;
    assert_eq!(webhook(&m, WEBHOOK, "RETRYING"), Some(1.0));
    assert_eq!(webhook(&m, FAILURES, "RETRYING"), Some(1.0));
    assert_eq!(webhook(&m, "whatsapp_webhook_events", "PENDING"), Some(0.0));
    assert_eq!(
        webhook(&m, "whatsapp_webhook_events", "RETRYING"),
        Some(1.0)
    );
    set("FAILED", Some("Webhook endpoint returned HTTP 500"));
    // Seen twice in the same state: one change.
    exp.scrape().await;
    let m = exp.scrape().await;
    assert_eq!(webhook(&m, WEBHOOK, "PENDING"), Some(1.0));
    assert_eq!(webhook(&m, WEBHOOK, "RETRYING"), Some(1.0));
    assert_eq!(webhook(&m, WEBHOOK, "FAILED"), Some(1.0));
    assert_eq!(webhook(&m, FAILURES, "FAILED"), Some(1.0));
    let error = [
        ("phone_number_id", PHONE),
        ("error", "Webhook endpoint returned HTTP 500"),
    ];
    assert_eq!(m.val(ERRORS, &error), 1.0);
    set("RETRYING", None);
    exp.scrape().await;
    set("FAILED", None);
    let m = exp.scrape().await;
    assert_eq!(webhook(&m, WEBHOOK, "RETRYING"), Some(2.0));
    assert_eq!(webhook(&m, WEBHOOK, "FAILED"), Some(2.0));
    assert_eq!(webhook(&m, FAILURES, "RETRYING"), Some(2.0));
    assert_eq!(webhook(&m, FAILURES, "FAILED"), Some(2.0));
    assert_eq!(webhook(&m, FAILURES, "PENDING"), None);
    assert_eq!(m.val(ERRORS, &error), 1.0, "same error, no new count");
    assert_eq!(status(&m, PHONE, "SENT"), 1.0, "one status event");
    assert_eq!(webhook(&m, "whatsapp_webhook_events", "FAILED"), Some(1.0));
    // A new error description on the same event counts; an unknown state
    // passes through as a label and is no failure; a state that disappears
    // keeps the last one.
    set("QUEUED", Some("Webhook endpoint timed out"));
    let m = exp.scrape().await;
    assert_eq!(webhook(&m, WEBHOOK, "QUEUED"), Some(1.0));
    assert_eq!(webhook(&m, FAILURES, "QUEUED"), None);
    assert_eq!(
        m.val(
            ERRORS,
            &[
                ("phone_number_id", PHONE),
                ("error", "Webhook endpoint timed out")
            ]
        ),
        1.0
    );
    assert!(sim.update_events(PHONE, &msg, |e| e.webhook_update_state = None));
    let m = exp.scrape().await;
    assert_eq!(webhook(&m, "whatsapp_webhook_events", "QUEUED"), Some(1.0));
    assert_eq!(webhook(&m, WEBHOOK, "unknown"), None);
    assert_eq!(m.sum(WEBHOOK, &[("phone_number_id", PHONE)]), 6.0);
    exp.stop().await;
}

const LATENCY: &str = "whatsapp_message_status_latency_seconds";

fn undelivered(m: &Metrics, phone: &str) -> f64 {
    m.val(
        "whatsapp_messages_undelivered",
        &[("phone_number_id", phone)],
    )
}

/// Latency is observed once per counted event, from the message's earliest
/// SENT; messages SENT more than `undelivered_after` ago with no end state
/// are undelivered, and the gauge exists (at 0) for every phone number.
#[tokio::test]
async fn latency_and_undelivered_messages() {
    let (sim, url) = simulator().await;
    let t = now();
    // Before the baseline: remembered, not observed.
    let old = sim.add_message(PHONE, vec![SimEvent::new("SENT", t - 3000)]);
    sim.add_message(
        PHONE2,
        vec![
            SimEvent::new("SENT", t - 3000),
            SimEvent::new("DELIVERED", t - 2990),
        ],
    );
    let exp = Exporter::start(&config_yaml(&url, "  undelivered_after: 20m\n", "")).await;
    let m = exp.scrape().await;
    assert_eq!(undelivered(&m, PHONE), 1.0);
    assert_eq!(undelivered(&m, PHONE2), 0.0);
    assert_eq!(m.get(&format!("{LATENCY}_count"), &[]), None);
    sim.add_event(PHONE, &old, SimEvent::new("DELIVERED", t - 2900), false);
    let recent = sim.add_message(PHONE, vec![SimEvent::new("SENT", t - 60)]);
    sim.add_message(PHONE2, vec![SimEvent::new("SENT", t - 1500)]);
    sim.add_message(PHONE2, vec![SimEvent::new("SENT", t - 1000)]);
    let m = exp.scrape().await;
    let delivered = [("phone_number_id", PHONE), ("delivery_status", "DELIVERED")];
    assert_eq!(m.val(&format!("{LATENCY}_count"), &delivered), 1.0);
    assert_eq!(m.val(&format!("{LATENCY}_sum"), &delivered), 100.0);
    let bucket = |m: &Metrics, le: &str| {
        let mut l = delivered.to_vec();
        l.push(("le", le));
        m.val(&format!("{LATENCY}_bucket"), &l)
    };
    assert_eq!(bucket(&m, "60.0"), 0.0);
    assert_eq!(bucket(&m, "120.0"), 1.0);
    // The delivered one is no longer undelivered; of PHONE2's, one is older than 20m.
    assert_eq!(undelivered(&m, PHONE), 0.0);
    assert_eq!(undelivered(&m, PHONE2), 1.0);
    // A state change of a counted event is no new observation; a READ is one.
    assert!(sim.update_events(PHONE, &old, |e| e.webhook_update_state =
        Some("FAILED".into())));
    sim.add_event(PHONE, &recent, SimEvent::new("READ", t - 30), false);
    let m = exp.scrape().await;
    assert_eq!(m.val(&format!("{LATENCY}_count"), &delivered), 1.0);
    let read = [("phone_number_id", PHONE), ("delivery_status", "READ")];
    assert_eq!(m.val(&format!("{LATENCY}_sum"), &read), 30.0);
    // No SENT of its own: no observation.
    sim.add_message(PHONE, vec![SimEvent::new("DELIVERED", t)]);
    let m = exp.scrape().await;
    assert_eq!(m.val(&format!("{LATENCY}_count"), &delivered), 1.0);
    exp.stop().await;
}

/// An event dated years ahead (a sender's clock gone wrong) counts once and
/// is remembered no later than now plus the lookback, so it leaves the
/// seen-state with the window instead of staying for years.
#[tokio::test]
async fn a_far_future_event_counts_once_and_leaves_with_the_window() {
    let (sim, url) = simulator().await;
    let dir = temp_dir("far-future");
    let path = dir.join("state.db");
    let yaml = config_yaml(
        &url,
        "  lookback: 1h\n",
        &format!("state_file: {}\n", path.display()),
    );
    let exp = Exporter::start(&yaml).await;
    exp.scrape().await; // baseline
    let years = 10 * 365 * 86_400;
    sim.add_activity(
        WABA,
        SimActivity::new("USER", "USER_ADDED", now() + years),
        true,
    );
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now() + years)]);
    for _ in 0..3 {
        let m = exp.scrape().await;
        assert_eq!(
            m.get(ACTIVITY, &[("waba_id", WABA), ("event_type", "USER_ADDED")]),
            Some(1.0)
        );
        assert_eq!(status(&m, PHONE, "SENT"), 1.0);
    }
    exp.stop().await;
    let ceiling = now() + 3600;
    let mut ahead = 0;
    for (key, rec) in stored(&path) {
        for e in &rec.seen {
            ahead += usize::from(e.mark.time > now() + 3000);
            assert!(
                e.mark.time <= ceiling,
                "{key}: an entry remembered at {} is past now plus the lookback ({ceiling})",
                e.mark.time
            );
        }
    }
    assert_eq!(
        ahead, 2,
        "the activity and the SENT event, brought back to the ceiling"
    );
}
