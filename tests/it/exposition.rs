//! Format negotiation, `promtool check metrics` on the classic output, and
//! a golden `/metrics` of a scripted collection.

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
        "whatsapp_sweep_duration_seconds",
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

/// `promtool check metrics` finds nothing wrong in `classic`; false (after a
/// notice) when promtool is not installed and not required.
fn promtool_check_metrics(classic: &str) -> bool {
    let Some(promtool) = external_tool("promtool", "prometheus") else {
        return false;
    };
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
    true
}

#[tokio::test]
async fn promtool_check_metrics_is_clean() {
    let (exp, _sim) = busy_exporter().await;
    let classic = exp.scrape_text(None).await;
    promtool_check_metrics(&classic);
    exp.stop().await;
}

/// Series whose values depend on the clock, the machine or the build.
const VOLATILE: [&str; 7] = [
    "whatsapp_scrape_duration_seconds",
    "whatsapp_sweep_duration_seconds",
    "whatsapp_last_success_timestamp_seconds",
    "whatsapp_last_event_timestamp_seconds",
    "whatsapp_graph_api_request_duration_seconds",
    "whatsapp_config_last_reload_success_timestamp_seconds",
    "whatsapp_exporter_build_info",
];

/// The exposition with volatile values replaced by `<volatile>` and each
/// family's samples sorted (a family's series come in hash order).
fn normalised(classic: &str) -> String {
    let mut out = String::new();
    let mut samples: Vec<String> = Vec::new();
    let flush = |out: &mut String, samples: &mut Vec<String>| {
        samples.sort();
        for s in samples.drain(..) {
            out.push_str(&s);
            out.push('\n');
        }
    };
    for line in classic.lines() {
        if line.starts_with('#') {
            if line.starts_with("# HELP ") {
                flush(&mut out, &mut samples);
            }
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        // Open connections depend on how fast the test's earlier ones closed.
        let volatile =
            VOLATILE.iter().any(|v| name.starts_with(v)) || name == "whatsapp_http_connections";
        let sample = match (volatile, line.rsplit_once(' ')) {
            (true, Some(_)) if name == "whatsapp_exporter_build_info" => {
                "whatsapp_exporter_build_info{<volatile>} 1".to_string()
            }
            (true, Some((series, _))) => format!("{series} <volatile>"),
            _ => line.to_string(),
        };
        samples.push(sample);
    }
    flush(&mut out, &mut samples);
    out
}

/// A scripted collection (a baseline, new events of every kind, a webhook
/// failure with an error, a target whose page is broken) gives exactly the golden
/// exposition, and promtool finds nothing wrong in it.
#[tokio::test]
async fn scripted_collection_matches_the_golden_exposition() {
    let (sim, url) = simulator().await;
    sim.add_message(
        PHONE,
        vec![SimEvent::new("SENT", now() - 60).webhook("DELIVERED")],
    );
    sim.add_activity(
        WABA,
        SimActivity::new("USER", "USER_ADDED", now() - 60),
        true,
    );
    let exp = Exporter::start(&config_yaml(&url, "", "")).await;
    exp.scrape().await; // the baseline: remembered, not counted
    sim.add_message(
        PHONE,
        vec![
            SimEvent::new("SENT", now()).webhook("DELIVERED").app("111"),
            SimEvent::new("DELIVERED", now())
                .webhook("DELIVERED")
                .app("111"),
        ],
    );
    sim.add_message(
        PHONE,
        vec![
            SimEvent::new("SENT", now()).webhook("FAILED").app("111"),
            SimEvent::new("FAILED", now())
                .webhook("FAILED")
                .app("111")
                .error("Message  undeliverable"),
        ],
    );
    sim.add_activity(
        WABA,
        SimActivity::new("PHONE_NUMBER", "PHONE_NUMBER_ADDED", now()),
        true,
    );
    sim.set_fault(
        PHONE2,
        Some(Fault::Raw {
            status: 200,
            body: "{".into(),
        }),
    );
    let classic = exp.scrape_text(None).await;
    insta::assert_snapshot!("scripted_collection", normalised(&classic));
    promtool_check_metrics(&classic);
    exp.stop().await;
}
