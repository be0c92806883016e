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

/// The scrape config of the README's "Multi-target mode", run by a real
/// Prometheus against two replicas: every target is probed, each on one
/// replica only, always the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_probe_config_spreads_targets_over_replicas() {
    let Some(prometheus) = external_tool("prometheus", "prometheus") else {
        return;
    };
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let section = &readme[readme.find("### Multi-target mode").unwrap()..];
    let block = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    // Two replicas, each with its own simulator, so requests tell who probed what.
    let (sim0, url0) = simulator().await;
    let (sim1, url1) = simulator().await;
    let exp0 = Exporter::start(&config_yaml(&url0, "", "")).await;
    let exp1 = Exporter::start(&config_yaml(&url1, "", "")).await;
    let config = block
        .replace("scrape_interval: 60s", "scrape_interval: 1s")
        .replace("scrape_timeout: 30s", "scrape_timeout: 1s")
        .replace(
            "whatsapp-exporter-0.whatsapp-exporter:9917",
            exp0.url.trim_start_matches("http://"),
        )
        .replace(
            "whatsapp-exporter-1.whatsapp-exporter:9917",
            exp1.url.trim_start_matches("http://"),
        );
    let dir = temp_dir("probe-prometheus");
    std::fs::write(dir.join("prometheus.yml"), &config).unwrap();
    let port = free_port();
    let _prom = Running(
        std::process::Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let prom = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let up = eventually(
        std::time::Duration::from_secs(60),
        "three probed targets up",
        || {
            let (client, prom) = (client.clone(), prom.clone());
            async move {
                let data = crate::stack::prometheus_api(
                    &client,
                    &prom,
                    "query",
                    &[("query", "whatsapp_up{job=\"whatsapp-probe\"} == 1")],
                )
                .await
                .ok()?;
                let r = data["result"].as_array()?.clone();
                (r.len() == 3).then_some(r)
            }
        },
    )
    .await;
    for s in &up {
        // Each probe's own series only, labelled with its target.
        assert_eq!(s["metric"]["instance"], s["metric"]["target"], "{s}");
    }
    // Each target went to one replica.
    for (edge, id) in [
        ("message_history", PHONE),
        ("message_history", PHONE2),
        ("activities", WABA),
    ] {
        let (a, b) = (sim0.requests(edge, id), sim1.requests(edge, id));
        assert!((a == 0) != (b == 0), "{id}: {a} and {b} requests");
    }
    exp0.stop().await;
    exp1.stop().await;
}
