//! Multi-target mode: `/probe?target=...&collector=...` collects one target
//! and answers with its series only, as blackbox_exporter does.

use crate::support::*;
use whatsapp_exporter::sim::SimEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_collects_one_target_and_shows_only_its_series() {
    let (sim, url) = simulator().await;
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    sim.add_message(PHONE2, vec![SimEvent::new("SENT", now())]);
    let exp = Exporter::start(&config_yaml(&url, "", "")).await;
    let client = reqwest::Client::new();
    let probe = |q: String| {
        let req = client.get(format!("{}/probe?{q}", exp.url));
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let q = format!("target={PHONE}&collector=message_history");

    let (status, _) = probe(q.clone()).await; // baseline
    assert_eq!(status, 200);
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    let (status, text) = probe(q.clone()).await;
    assert_eq!(status, 200);
    let m = Metrics::parse(&text);
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    assert_eq!(
        m.get(
            "whatsapp_message_status_events_total",
            &[("phone_number_id", PHONE), ("delivery_status", "SENT")]
        ),
        Some(1.0)
    );
    for s in &m.samples {
        let mine = s.labels.get("target").map(String::as_str) == Some(PHONE)
            || s.labels.get("phone_number_id").map(String::as_str) == Some(PHONE);
        assert!(mine, "a series of another target: {s:?}");
    }
    assert!(!text.contains(PHONE2) && !text.contains(WABA), "{text}");
    assert_eq!(sim.requests("message_history", PHONE), 2);
    assert_eq!(
        sim.requests("message_history", PHONE2),
        0,
        "only the probed target is collected"
    );
    assert_eq!(sim.requests("activities", WABA), 0);

    // The activities target, in OpenMetrics.
    let om = client
        .get(format!(
            "{}/probe?target={WABA}&collector=activities",
            exp.url
        ))
        .header("Accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        om.contains(&format!(
            "whatsapp_up{{collector=\"activities\",target=\"{WABA}\"}} 1"
        )),
        "{om}"
    );
    assert!(om.ends_with("# EOF\n") && !om.contains(PHONE), "{om}");

    for (q, want) in [
        (
            "target=999&collector=message_history".to_string(),
            "not collected by this process",
        ),
        (format!("target={PHONE}"), "collector parameter is missing"),
        (
            format!("target={PHONE}&collector=webhooks"),
            "unknown collector",
        ),
        (
            "collector=activities".to_string(),
            "target parameter is missing",
        ),
    ] {
        let (status, body) = probe(q.clone()).await;
        assert_eq!(status, 400, "{q}");
        assert!(body.contains(want), "{q}: {body}");
    }
    exp.stop().await;
}
