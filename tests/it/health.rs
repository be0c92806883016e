//! Account health: each phone number's health status
//! (`GET /{Phone-Number-ID}?fields=health_status`) and each account's
//! templates (`GET /{WABA-ID}/message_templates`), read once per
//! `health.interval` through the same budget, each with its own `whatsapp_up`.

use std::time::Duration;

use serde_json::json;

use crate::support::*;
use whatsapp_exporter::sim::{Fault, SimEntity, SimEvent, SimTemplate};

const BUSINESS: &str = "7777000011112222";
const APP: &str = "9876543210987654";

fn can_send(m: &Metrics, entity_type: &str, id: &str, state: &str) -> Option<f64> {
    m.get(
        "whatsapp_health_can_send_message",
        &[
            ("entity_type", entity_type),
            ("entity_id", id),
            ("state", state),
        ],
    )
}

fn template_status(m: &Metrics, id: &str, status: &str) -> Option<f64> {
    m.get(
        "whatsapp_template_status",
        &[("waba_id", WABA), ("template_id", id), ("status", status)],
    )
}

fn template_quality(m: &Metrics, id: &str, score: &str) -> Option<f64> {
    m.get(
        "whatsapp_template_quality",
        &[("waba_id", WABA), ("template_id", id), ("score", score)],
    )
}

fn entities(phone: &str, waba: &str) -> Vec<SimEntity> {
    vec![
        SimEntity::new("PHONE_NUMBER", phone, "AVAILABLE"),
        SimEntity::new("WABA", WABA, waba).error(141014, "The WABA is banned."),
        SimEntity::new("BUSINESS", BUSINESS, "LIMITED"),
        SimEntity::new("APP", APP, "AVAILABLE"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_templates_are_read_once_per_interval_and_follow_changes() {
    let (sim, url) = simulator().await;
    sim.set_health(PHONE, &entities(PHONE, "BLOCKED"));
    sim.set_health(PHONE2, &entities(PHONE2, "BLOCKED"));
    sim.set_templates(
        WABA,
        &[
            SimTemplate::new("801", "order_update", "APPROVED", Some("GREEN")),
            SimTemplate::new("802", "spring_sale", "PAUSED", Some("RED")),
            SimTemplate::new("803", "welcome", "PENDING", None),
        ],
    );
    let exp = Exporter::start(&config_yaml(
        &url,
        "  page_size: 2\n",
        "health:\n  interval: 2s\n",
    ))
    .await;

    let m = exp.scrape().await;
    for (collector, target) in [("health", PHONE), ("health", PHONE2), ("templates", WABA)] {
        assert_eq!(up(&m, collector, target), Some(1.0), "{collector} {target}");
    }
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    // One-hot over the three known states, for every entity.
    assert_eq!(can_send(&m, "WABA", WABA, "BLOCKED"), Some(1.0));
    assert_eq!(can_send(&m, "WABA", WABA, "AVAILABLE"), Some(0.0));
    assert_eq!(can_send(&m, "WABA", WABA, "LIMITED"), Some(0.0));
    assert_eq!(can_send(&m, "BUSINESS", BUSINESS, "LIMITED"), Some(1.0));
    assert_eq!(can_send(&m, "PHONE_NUMBER", PHONE2, "AVAILABLE"), Some(1.0));
    assert_eq!(can_send(&m, "PHONE_NUMBER", PHONE, "BLOCKED"), Some(0.0));
    // The WABA, business and app both numbers report are one series set each.
    let of = |t: &str| {
        m.find("whatsapp_health_can_send_message", &[("entity_type", t)])
            .len()
    };
    assert_eq!((of("WABA"), of("BUSINESS"), of("APP")), (3, 3, 3));
    assert_eq!(of("PHONE_NUMBER"), 6);
    assert_eq!(
        m.find("whatsapp_health_errors", &[]).len(),
        1,
        "one error, of one WABA"
    );
    assert_eq!(
        m.get(
            "whatsapp_health_errors",
            &[
                ("entity_type", "WABA"),
                ("entity_id", WABA),
                ("error_code", "141014")
            ]
        ),
        Some(1.0)
    );
    // Templates, listed over two pages of two.
    assert_eq!(
        m.get(
            "whatsapp_template_info",
            &[
                ("waba_id", WABA),
                ("template_id", "802"),
                ("name", "spring_sale"),
                ("language", "en_US"),
                ("category", "UTILITY")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(template_status(&m, "802", "PAUSED"), Some(1.0));
    assert_eq!(template_status(&m, "802", "APPROVED"), Some(0.0));
    assert_eq!(template_status(&m, "801", "APPROVED"), Some(1.0));
    assert_eq!(template_quality(&m, "802", "RED"), Some(1.0));
    assert_eq!(template_quality(&m, "801", "RED"), Some(0.0));
    assert_eq!(sim.requests("message_templates", WABA), 2);
    assert_eq!(sim.requests("health_status", PHONE), 1);

    // Within the interval: no new call.
    let _ = exp.scrape().await;
    assert_eq!(sim.requests("health_status", PHONE), 1);
    assert_eq!(sim.requests("message_templates", WABA), 2);

    // The WABA is unbanned, a template is deleted, another is approved.
    sim.set_health(PHONE, &entities(PHONE, "AVAILABLE")[..1]);
    sim.set_health(
        PHONE2,
        &[
            SimEntity::new("PHONE_NUMBER", PHONE2, "AVAILABLE"),
            SimEntity::new("WABA", WABA, "AVAILABLE"),
        ],
    );
    sim.set_templates(
        WABA,
        &[
            SimTemplate::new("801", "order_update", "APPROVED", Some("GREEN")),
            SimTemplate::new("803", "welcome", "APPROVED", Some("YELLOW")),
        ],
    );
    let m = eventually(Duration::from_secs(20), "the next health checks", || {
        let exp = &exp;
        async move {
            let m = exp.scrape().await;
            (can_send(&m, "WABA", WABA, "AVAILABLE") == Some(1.0)
                && template_status(&m, "803", "APPROVED") == Some(1.0))
            .then_some(m)
        }
    })
    .await;
    assert_eq!(can_send(&m, "WABA", WABA, "BLOCKED"), Some(0.0));
    assert!(m.find("whatsapp_health_errors", &[]).is_empty());
    // No number reports the business or the app any more: their series go.
    assert!(
        m.find(
            "whatsapp_health_can_send_message",
            &[("entity_id", BUSINESS)]
        )
        .is_empty()
    );
    assert!(
        m.find("whatsapp_health_can_send_message", &[("entity_id", APP)])
            .is_empty()
    );
    assert!(
        m.find("whatsapp_template_info", &[("template_id", "802")])
            .is_empty()
    );
    assert!(
        m.find("whatsapp_template_status", &[("template_id", "802")])
            .is_empty()
    );
    assert!(
        m.find("whatsapp_template_quality", &[("template_id", "802")])
            .is_empty()
    );
    assert_eq!(template_quality(&m, "803", "YELLOW"), Some(1.0));
    assert_eq!(template_quality(&m, "803", "unknown"), None);
    exp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_entities_and_templates_are_passed_through_or_skipped_and_counted() {
    let (sim, url) = simulator().await;
    sim.set_health_json(
        PHONE,
        json!({"can_send_message": "LIMITED", "entities": [
            {"entity_type": "PHONE_NUMBER", "id": PHONE},
            {"entity_type": "MARKETING_MESSAGES_LITE", "id": "42", "can_send_message": "LIMITED"},
            {"entity_type": "WABA", "id": WABA, "can_send_message": "SOMETIMES",
             "errors": [{"error_code": "141010"}, {"error_description": "no code"}, 5]},
            {"entity_type": "APP", "can_send_message": "AVAILABLE"},
            "not an entity"
        ]}),
    );
    sim.set_templates_json(
        WABA,
        vec![
            json!({"id": "901", "name": "no_score", "language": "en_US", "category": "UTILITY", "status": "PENDING"}),
            json!({"name": "no_id", "status": "APPROVED"}),
            json!("not a template"),
            json!({"id": 902, "name": {"odd": true}}),
            json!({"id": "903", "name": "new_status", "status": "IN_APPEAL", "quality_score": {"score": "GREEN"}}),
        ],
    );
    let exp = Exporter::start(&config_yaml(&url, "", "health:\n  interval: 1h\n")).await;
    let m = exp.scrape().await;
    assert_eq!(up(&m, "health", PHONE), Some(1.0));
    assert_eq!(up(&m, "templates", WABA), Some(1.0));
    // Without can_send_message: `unknown`, the known states 0, and counted.
    assert_eq!(can_send(&m, "PHONE_NUMBER", PHONE, "unknown"), Some(1.0));
    assert_eq!(can_send(&m, "PHONE_NUMBER", PHONE, "AVAILABLE"), Some(0.0));
    // An unknown entity type and an unknown state pass through.
    assert_eq!(
        can_send(&m, "MARKETING_MESSAGES_LITE", "42", "LIMITED"),
        Some(1.0)
    );
    assert_eq!(can_send(&m, "WABA", WABA, "SOMETIMES"), Some(1.0));
    assert_eq!(can_send(&m, "WABA", WABA, "BLOCKED"), Some(0.0));
    let codes: Vec<&str> = m
        .find("whatsapp_health_errors", &[("entity_id", WABA)])
        .iter()
        .map(|s| s.labels["error_code"].as_str())
        .collect();
    assert_eq!(codes.len(), 2, "{codes:?}");
    assert!(codes.contains(&"141010") && codes.contains(&"unknown"));
    let invalid = |collector: &str, target: &str, reason: &str| {
        m.get(
            "whatsapp_invalid_records_total",
            &[
                ("collector", collector),
                ("target", target),
                ("reason", reason),
            ],
        )
    };
    assert_eq!(invalid("health", PHONE, "no_can_send_message"), Some(1.0));
    assert_eq!(invalid("health", PHONE, "no_id"), Some(1.0));
    assert_eq!(invalid("health", PHONE, "not_an_object"), Some(1.0));
    // Templates: one without quality_score is kept with score `unknown`,
    // a record without an id, not an object, or of the wrong type is skipped.
    assert_eq!(template_status(&m, "901", "PENDING"), Some(1.0));
    assert_eq!(template_quality(&m, "901", "unknown"), Some(1.0));
    assert_eq!(template_quality(&m, "901", "UNKNOWN"), Some(0.0));
    assert_eq!(template_status(&m, "903", "IN_APPEAL"), Some(1.0));
    assert_eq!(template_status(&m, "903", "APPROVED"), Some(0.0));
    assert_eq!(m.find("whatsapp_template_info", &[]).len(), 2);
    assert_eq!(invalid("templates", WABA, "no_id"), Some(1.0));
    assert_eq!(invalid("templates", WABA, "not_an_object"), Some(1.0));
    assert_eq!(invalid("templates", WABA, "wrong_type"), Some(1.0));
    exp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_check_marks_its_own_up_and_leaves_the_collections_alone() {
    let (sim, url) = simulator().await;
    sim.set_health(PHONE, &entities(PHONE, "BLOCKED"));
    sim.set_templates(
        WABA,
        &[SimTemplate::new("801", "a", "APPROVED", Some("GREEN"))],
    );
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    let exp = Exporter::start(&config_yaml(&url, "", "health:\n  interval: 1s\n")).await;
    let m = exp.scrape().await;
    assert_eq!(up(&m, "health", PHONE), Some(1.0));
    assert_eq!(can_send(&m, "WABA", WABA, "BLOCKED"), Some(1.0));

    sim.set_edge_fault(
        "health_status",
        PHONE,
        Some(Fault::GraphError {
            status: 400,
            code: 100,
            message: format!("bad request for token {TOKEN}"),
            is_transient: false,
        }),
    );
    sim.set_edge_fault(
        "message_templates",
        WABA,
        Some(Fault::Raw {
            status: 200,
            body: "<html>not json</html>".into(),
        }),
    );
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    let (m, text) = eventually(Duration::from_secs(20), "the failing checks", || {
        let exp = &exp;
        async move {
            let text = exp.scrape_text(None).await;
            let m = Metrics::parse(&text);
            (up(&m, "health", PHONE) == Some(0.0) && up(&m, "templates", WABA) == Some(0.0))
                .then_some((m, text))
        }
    })
    .await;
    assert!(!text.contains(TOKEN), "the token leaked into /metrics");
    // The event collectors of the same ids are untouched.
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    assert_eq!(up(&m, "activities", WABA), Some(1.0));
    assert_eq!(
        m.get(
            STATUS,
            &[("phone_number_id", PHONE), ("delivery_status", "SENT")]
        ),
        Some(1.0)
    );
    assert_eq!(up(&m, "health", PHONE2), Some(1.0));
    // The last values stay; the failures are counted by endpoint.
    assert_eq!(can_send(&m, "WABA", WABA, "BLOCKED"), Some(1.0));
    assert_eq!(template_status(&m, "801", "APPROVED"), Some(1.0));
    assert!(
        m.sum(
            "whatsapp_graph_api_errors_total",
            &[("endpoint", "health_status"), ("error_code", "100")]
        ) >= 1.0
    );
    assert!(
        m.sum(
            "whatsapp_graph_api_errors_total",
            &[("endpoint", "message_templates"), ("error_code", "decode")]
        ) >= 1.0
    );
    // Recovered: up again, without waiting for another interval past the failure's retry.
    sim.set_edge_fault("health_status", PHONE, None);
    sim.set_edge_fault("message_templates", WABA, None);
    eventually(Duration::from_secs(20), "recovery", || {
        let exp = &exp;
        async move {
            let m = exp.scrape().await;
            (up(&m, "health", PHONE) == Some(1.0) && up(&m, "templates", WABA) == Some(1.0))
                .then_some(())
        }
    })
    .await;
    exp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_wait_for_the_budget_and_can_be_turned_off() {
    let (sim, url) = simulator().await;
    // PHONE's business use case is at 95%: its next calls wait, health included.
    sim.set_headers(
        PHONE,
        &[(
            "x-business-use-case-usage",
            &format!(
                r#"{{"{PHONE}": [{{"type": "whatsapp_business_management", "call_count": 95, "total_cputime": 1, "total_time": 1, "estimated_time_to_regain_access": 30}}]}}"#
            ),
        )],
    );
    let exp = Exporter::start(&config_yaml(&url, "", "health:\n  interval: 1s\n")).await;
    let m = exp.scrape().await;
    assert_eq!(
        m.get("whatsapp_graph_api_throttled", &[("target", PHONE)]),
        Some(1.0)
    );
    assert_eq!(sim.requests("health_status", PHONE), 0);
    assert_eq!(up(&m, "health", PHONE), None, "never checked, so no up yet");
    assert_eq!(sim.requests("health_status", PHONE2), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _ = exp.scrape().await;
    assert_eq!(sim.requests("health_status", PHONE), 0, "still held back");
    assert_eq!(sim.requests("health_status", PHONE2), 2);
    exp.stop().await;

    let (sim, url) = simulator().await;
    let exp = Exporter::start(&config_yaml(&url, "", "health:\n  enabled: false\n")).await;
    let m = exp.scrape().await;
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    assert!(m.find("whatsapp_up", &[("collector", "health")]).is_empty());
    assert!(
        m.find("whatsapp_up", &[("collector", "templates")])
            .is_empty()
    );
    assert_eq!(
        sim.requests("health_status", PHONE) + sim.requests("message_templates", WABA),
        0
    );
    exp.stop().await;
}
