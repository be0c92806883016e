//! A failing target beside healthy ones, a bad token, hostile pages.

use crate::support::*;
use whatsapp_exporter::sim::{Fault, SimEvent};

fn api_errors(m: &Metrics, endpoint: &str, code: &str) -> f64 {
    m.val(
        "whatsapp_graph_api_errors_total",
        &[("endpoint", endpoint), ("error_code", code)],
    )
}

#[tokio::test]
async fn failing_target_beside_healthy_ones() {
    let (sim, url) = simulator().await;
    let exp = Exporter::start(&config_yaml(&url, "", "")).await;
    exp.scrape().await;
    sim.set_fault(
        PHONE2,
        Some(Fault::GraphError {
            status: 500,
            code: 2,
            message: "Service temporarily unavailable".into(),
            is_transient: true,
        }),
    );
    let t = now() - 1;
    sim.add_message(PHONE, vec![SimEvent::new("SENT", t)]);
    sim.add_message(PHONE2, vec![SimEvent::new("SENT", t)]);
    let m = exp.scrape().await;
    assert_eq!(up(&m, "message_history", PHONE2), Some(0.0));
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    assert_eq!(up(&m, "activities", WABA), Some(1.0));
    assert_eq!(
        m.val(
            "whatsapp_message_status_events_total",
            &[("phone_number_id", PHONE), ("delivery_status", "SENT")]
        ),
        1.0
    );
    // A transient error is retried twice (graph_api.max_retries), no more.
    assert_eq!(api_errors(&m, "message_history", "2"), 3.0);
    assert_eq!(
        m.val(
            "whatsapp_graph_api_requests_total",
            &[("endpoint", "message_history"), ("status_code", "500")]
        ),
        3.0
    );
    assert_eq!(
        m.val(
            "whatsapp_graph_api_retries_total",
            &[("endpoint", "message_history")]
        ),
        2.0
    );

    // Recovery: the event that arrived during the fault is counted, once.
    sim.set_fault(PHONE2, None);
    let m = exp.scrape().await;
    assert_eq!(up(&m, "message_history", PHONE2), Some(1.0));
    assert_eq!(
        m.val(
            "whatsapp_message_status_events_total",
            &[("phone_number_id", PHONE2), ("delivery_status", "SENT")]
        ),
        1.0
    );
    let m = exp.scrape().await;
    assert_eq!(
        m.val(
            "whatsapp_message_status_events_total",
            &[("phone_number_id", PHONE2), ("delivery_status", "SENT")]
        ),
        1.0
    );
    exp.stop().await;
}

#[tokio::test]
async fn failed_baseline_is_retried_not_counted() {
    let (sim, url) = simulator().await;
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now() - 50)]);
    sim.set_fault(
        PHONE,
        Some(Fault::Raw {
            status: 502,
            body: "<html>Bad Gateway</html>".into(),
        }),
    );
    let exp = Exporter::start(&config_yaml(&url, "", "")).await;
    let m = exp.scrape().await;
    assert_eq!(up(&m, "message_history", PHONE), Some(0.0));
    // 5xx is retried: three requests.
    assert_eq!(api_errors(&m, "message_history", "http_502"), 3.0);
    assert_eq!(sim.requests("message_history", PHONE), 3);
    assert!(
        m.get(
            "whatsapp_last_success_timestamp_seconds",
            &[("target", PHONE)]
        )
        .is_none()
    );
    sim.set_fault(PHONE, None);
    let m = exp.scrape().await;
    // That first successful collection is the baseline: history is not counted.
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    assert_eq!(
        m.sum(
            "whatsapp_message_status_events_total",
            &[("phone_number_id", PHONE)]
        ),
        0.0
    );
    exp.stop().await;
}

#[tokio::test]
async fn invalid_token_fails_every_target_and_never_leaks() {
    let (sim, url) = simulator().await;
    sim.set_token("another-token");
    let exp = Exporter::start(&config_yaml(&url, "", "")).await;
    let text = exp.scrape_text(None).await;
    let om = exp.scrape_text(Some("application/openmetrics-text")).await;
    let m = Metrics::parse(&text);
    for (c, t) in [
        ("activities", WABA),
        ("message_history", PHONE),
        ("message_history", PHONE2),
    ] {
        assert_eq!(up(&m, c, t), Some(0.0), "{c} {t}");
    }
    // One collection (the first scrape) of two phone numbers and one WABA.
    assert_eq!(api_errors(&m, "message_history", "190"), 2.0);
    assert_eq!(api_errors(&m, "activities", "190"), 1.0);
    assert!(!text.contains(TOKEN) && !om.contains(TOKEN));
    exp.stop().await;
}

#[tokio::test]
async fn hostile_pages_are_errors_not_crashes() {
    let (sim, url) = simulator().await;
    let exp = Exporter::start(&config_yaml(&url, "", "")).await;
    exp.scrape().await;
    let cases = [
        ("{\"data\": [", "decode"),
        ("{\"data\": {\"not\": \"a list\"}}", "decode"),
        ("null", "decode"),
    ];
    for (i, (body, code)) in cases.iter().enumerate() {
        sim.set_fault(
            PHONE,
            Some(Fault::Raw {
                status: 200,
                body: body.to_string(),
            }),
        );
        let m = exp.scrape().await;
        assert_eq!(up(&m, "message_history", PHONE), Some(0.0), "{body}");
        assert_eq!(up(&m, "message_history", PHONE2), Some(1.0));
        assert_eq!(
            api_errors(&m, "message_history", code),
            (i + 1) as f64,
            "{body}"
        );
    }
    sim.set_fault(PHONE, None);
    let m = exp.scrape().await;
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    exp.stop().await;
}

#[tokio::test]
async fn repeating_cursor_is_a_loop_and_next_urls_are_not_followed() {
    let (sim, url) = simulator().await;
    let exp = Exporter::start(&config_yaml(&url, "", "")).await;
    exp.scrape().await;
    // Every page has one event and the same cursor; `next` points elsewhere.
    let body = format!(
        "{{\"data\": [{{\"id\": \"9\", \"events\": {{\"data\": [{{\"id\": \"e9\", \"delivery_status\": \"SENT\", \"timestamp\": {}}}]}}}}],\
         \"paging\": {{\"cursors\": {{\"after\": \"c+/=\"}}, \"next\": \"http://127.0.0.1:9/steal-the-token\"}}}}",
        now()
    );
    sim.set_fault(PHONE, Some(Fault::Raw { status: 200, body }));
    let before = sim.requests("message_history", PHONE);
    let m = exp.scrape().await;
    assert_eq!(up(&m, "message_history", PHONE), Some(0.0));
    assert_eq!(api_errors(&m, "message_history", "cursor_loop"), 1.0);
    // First page, then the page the cursor leads to, which repeats it: stop.
    assert_eq!(sim.requests("message_history", PHONE), before + 2);
    // The event on those pages is counted once, however often it was shown.
    assert_eq!(
        m.val(
            "whatsapp_message_status_events_total",
            &[("phone_number_id", PHONE), ("delivery_status", "SENT")]
        ),
        1.0
    );

    sim.set_fault(PHONE, None);
    let m = exp.scrape().await;
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    exp.stop().await;
}

#[tokio::test]
async fn empty_page_with_a_cursor_is_not_the_end() {
    let (sim, url) = simulator().await;
    let exp = Exporter::start(&config_yaml(&url, "", "")).await;
    exp.scrape().await;
    let empty = "{\"data\": [], \"paging\": {\"cursors\": {\"after\": \"QUJD+/==\"}, \"next\": \"https://graph.facebook.com/x\"}}";
    let last = format!(
        "{{\"data\": [{{\"id\": \"7\", \"events\": {{\"data\": [{{\"id\": \"e7\", \"delivery_status\": \"DELIVERED\", \"timestamp\": {}}}]}}}}]}}",
        now()
    );
    sim.set_fault(
        PHONE,
        Some(Fault::Sequence(
            [(200, empty.to_string()), (200, last)]
                .into_iter()
                .collect(),
        )),
    );
    let before = sim.requests("message_history", PHONE);
    let m = exp.scrape().await;
    assert_eq!(sim.requests("message_history", PHONE), before + 2);
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    assert_eq!(
        m.val(
            "whatsapp_message_status_events_total",
            &[("phone_number_id", PHONE), ("delivery_status", "DELIVERED")]
        ),
        1.0
    );
    exp.stop().await;
}

/// A page mixing records that cannot be decoded with good ones: each bad
/// record (or event) is skipped and counted by reason, every good one
/// counts, and the target stays up.
#[tokio::test]
async fn a_bad_record_is_skipped_and_the_rest_of_its_page_counts() {
    let (sim, url) = simulator().await;
    let exp = Exporter::start(&config_yaml(&url, "", "")).await;
    exp.scrape().await; // baseline
    let t = now();
    let body = format!(
        r#"{{"data": [
            {{"id": "m1", "message_id": "wamid.1", "events": {{"data": [
                {{"id": "e1", "delivery_status": "SENT", "timestamp": {t}}},
                {{"id": "e2", "delivery_status": "DELIVERED", "timestamp": "soon"}},
                {{"id": "e3", "delivery_status": {{"not": "a string"}}, "timestamp": {t}}}
            ]}}}},
            {{"id": "m2", "events": ["not", "an", "object"]}},
            {{"id": "m3", "message_id": "wamid.3", "events": {{"data": [
                {{"id": "e4", "delivery_status": "READ", "timestamp": {t}}}
            ]}}}}
        ]}}"#
    );
    sim.set_fault(PHONE, Some(Fault::Raw { status: 200, body }));
    let m = exp.scrape().await;
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    let status = |s: &str| {
        m.get(
            STATUS,
            &[("phone_number_id", PHONE), ("delivery_status", s)],
        )
    };
    assert_eq!(status("SENT"), Some(1.0));
    assert_eq!(status("READ"), Some(1.0));
    assert_eq!(status("DELIVERED"), None, "the bad event is not counted");
    let invalid = |reason: &str| {
        m.get(
            "whatsapp_invalid_records_total",
            &[
                ("collector", "message_history"),
                ("target", PHONE),
                ("reason", reason),
            ],
        )
    };
    assert_eq!(invalid("bad_timestamp"), Some(1.0));
    assert_eq!(invalid("wrong_type"), Some(2.0), "e3, and m2's events");
    exp.stop().await;
}

/// A response echoing the token in every field a label value is taken
/// from: no series carries it.
#[tokio::test]
async fn a_response_echoing_the_token_never_puts_it_in_a_label() {
    let (sim, url) = simulator().await;
    let exp = Exporter::start(&config_yaml(&url, "", "")).await;
    exp.scrape().await; // baseline
    let t = now();
    let body = format!(
        r#"{{"data": [{{"id": "m-{TOKEN}", "events": {{"data": [
            {{"id": "e-{TOKEN}", "delivery_status": "{TOKEN}", "timestamp": {t},
              "webhook_update_state": "x{TOKEN}", "application": {{"id": "{TOKEN}"}},
              "error_description": "token {TOKEN} refused"}}
        ]}}}}]}}"#
    );
    sim.set_fault(PHONE, Some(Fault::Raw { status: 200, body }));
    let body = format!(
        r#"{{"data": [{{"id": "a1", "event_type": "{TOKEN}", "category": "c{TOKEN}", "timestamp": {t},
            "actor_id": "{TOKEN}"}}]}}"#
    );
    sim.set_fault(WABA, Some(Fault::Raw { status: 200, body }));
    sim.set_headers(
        PHONE,
        &[(
            "x-business-use-case-usage",
            &format!(r#"{{"{WABA}": [{{"type": "{TOKEN}", "call_count": 5, "total_cputime": 1, "total_time": 1}}]}}"#),
        )],
    );
    for format in ["text/plain", "application/openmetrics-text"] {
        let text = exp.scrape_text(Some(format)).await;
        assert!(
            !text.contains(TOKEN),
            "{format}: the token is in /metrics:\n{text}"
        );
        assert!(text.contains("delivery_status=\"***\""), "{text}");
        assert!(text.contains("event_type=\"***\""), "{text}");
    }
    exp.stop().await;
}

/// 300 distinct values of every label taken from a response, for one
/// target: each label keeps at most `collect.max_label_values` (50) values
/// and counts the rest under `other`; nothing is pre-created past the cap.
#[tokio::test]
async fn labels_from_responses_are_capped_per_target() {
    let (sim, url) = simulator().await;
    let t = now();
    let messages: Vec<String> = (0..300)
        .map(|i| {
            format!(
                r#"{{"id": "m{i}", "events": {{"data": [{{"id": "e{i}", "delivery_status": "S{i}",
                    "timestamp": {t}, "webhook_update_state": "W{i}", "application": {{"id": "A{i}"}}}}]}}}}"#
            )
        })
        .collect();
    let body = format!(r#"{{"data": [{}]}}"#, messages.join(","));
    sim.set_fault(PHONE, Some(Fault::Raw { status: 200, body }));
    let records: Vec<String> = (0..300)
        .map(|i| {
            format!(
                r#"{{"id": "a{i}", "event_type": "E{i}", "category": "C{i}", "timestamp": {t}}}"#
            )
        })
        .collect();
    let body = format!(r#"{{"data": [{}]}}"#, records.join(","));
    sim.set_fault(WABA, Some(Fault::Raw { status: 200, body }));
    let usage: Vec<String> = (0..300)
        .map(|i| {
            format!(r#"{{"type": "U{i}", "call_count": 5, "total_cputime": 1, "total_time": 1}}"#)
        })
        .collect();
    sim.set_headers(
        WABA,
        &[(
            "x-business-use-case-usage",
            &format!(r#"{{"{WABA}": [{}]}}"#, usage.join(",")),
        )],
    );
    let exp = Exporter::start(&config_yaml(&url, "", "")).await;
    let m = exp.scrape().await;
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    let values = |metric: &str, label: &str| -> std::collections::BTreeSet<String> {
        m.samples
            .iter()
            .filter(|s| s.name.starts_with(metric))
            .filter_map(|s| s.labels.get(label).cloned())
            .collect()
    };
    for (metric, label) in [
        (STATUS, "delivery_status"),
        (WEBHOOK, "webhook_update_state"),
        (WEBHOOK, "application_id"),
        ("whatsapp_webhook_update_failures_total", "application_id"),
        ("whatsapp_activity_events_total", "category"),
        ("whatsapp_activity_events_total", "event_type"),
        ("whatsapp_graph_api_usage_percent", "usage_type"),
    ] {
        let v = values(metric, label);
        // 50 values and `other` (webhook states: plus the failure states pre-created).
        assert!(v.contains("other"), "{metric} {label}: {v:?}");
        assert!(
            (50..=54).contains(&v.len()),
            "{metric} {label}: {} values",
            v.len()
        );
    }
    exp.stop().await;
}
