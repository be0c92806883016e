//! Format negotiation, and `promtool check metrics` on the classic output.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::*;
use whatsapp_exporter::sim::{Fault, SimActivity, SimEvent};

const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

async fn busy_exporter() -> (Exporter, whatsapp_exporter::sim::Simulator) {
    let (sim, url) = simulator().await;
    let exp = Exporter::start(&config_yaml(&url, "", "")).await;
    exp.scrape().await;
    sim.add_message(
        PHONE,
        vec![
            SimEvent::new("SENT", now()),
            SimEvent::new("FAILED", now())
                .webhook("FAILED")
                .error("a \"quoted\" \\ error"),
        ],
    );
    sim.add_activity(WABA, SimActivity::new("USER", "USER_ADDED", now()), true);
    sim.set_fault(
        PHONE2,
        Some(Fault::Raw {
            status: 200,
            body: "{".into(),
        }),
    );
    (exp, sim)
}

#[tokio::test]
async fn negotiates_like_the_go_client() {
    let (exp, _sim) = busy_exporter().await;
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{}/metrics", exp.url))
        .header("Accept", PROMETHEUS_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let om = resp.text().await.unwrap();
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE whatsapp_message_status_events counter\n"));
    assert!(om.contains("whatsapp_message_status_events_total{"));

    let resp = client
        .get(format!("{}/metrics", exp.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let classic = resp.text().await.unwrap();
    assert!(!classic.contains("# EOF"));
    assert!(classic.contains("# TYPE whatsapp_message_status_events_total counter\n"));
    let m = Metrics::parse(&classic);
    assert_eq!(
        m.val(
            "whatsapp_message_delivery_errors_total",
            &[("error", "a \"quoted\" \\ error")]
        ),
        1.0
    );
    // Every pinned metric is there.
    for name in [
        "whatsapp_activity_events_total",
        "whatsapp_message_status_events_total",
        "whatsapp_webhook_updates_total",
        "whatsapp_webhook_update_failures_total",
        "whatsapp_message_delivery_errors_total",
        "whatsapp_up",
        "whatsapp_scrape_duration_seconds",
        "whatsapp_last_success_timestamp_seconds",
        "whatsapp_last_event_timestamp_seconds",
        "whatsapp_collection_truncated_total",
        "whatsapp_graph_api_requests_total",
        "whatsapp_graph_api_errors_total",
        "whatsapp_graph_api_request_duration_seconds_bucket",
        "whatsapp_exporter_build_info",
    ] {
        assert!(
            classic.contains(&format!("# TYPE {}", name.trim_end_matches("_bucket"))),
            "no TYPE for {name}"
        );
    }
    exp.stop().await;
}

#[tokio::test]
async fn promtool_check_metrics_is_clean() {
    let Some(promtool) = external_tool("promtool", "prometheus") else {
        return;
    };
    let (exp, _sim) = busy_exporter().await;
    let classic = exp.scrape_text(None).await;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(classic.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool: {report}\n{classic}"
    );
    exp.stop().await;
}
