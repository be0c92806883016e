//! Issue: Graph API resilience. Retries, rate limits and the budget, the
//! scrape deadline, and transport-level hostility. Each test asserts the API
//! call count and the metric values, not only that nothing crashed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;
use whatsapp_exporter::sim::{Fault, SimEvent};

fn graph_error(status: u16, code: i64, transient: bool) -> Option<Fault> {
    Some(Fault::GraphError {
        status,
        code,
        message: format!("simulated error {code}"),
        is_transient: transient,
    })
}

fn throttled(m: &Metrics, target: &str) -> Option<f64> {
    m.get("whatsapp_graph_api_throttled", &[("target", target)])
}

#[tokio::test]
async fn transient_errors_are_retried_permanent_ones_are_not() {
    let (sim, url) = simulator().await;
    let exp = Exporter::start(&config_yaml(&url, "", "")).await;
    exp.scrape().await;
    sim.set_fault(PHONE, graph_error(500, 1, false));
    sim.set_fault(PHONE2, graph_error(401, 190, false));
    sim.set_fault(WABA, graph_error(400, 100, true));
    let before = [
        sim.requests("message_history", PHONE),
        sim.requests("message_history", PHONE2),
        sim.requests("activities", WABA),
    ];
    let m = exp.scrape().await;
    assert_eq!(
        sim.requests("message_history", PHONE),
        before[0] + 3,
        "5xx: 1 + 2 retries"
    );
    assert_eq!(
        sim.requests("message_history", PHONE2),
        before[1] + 1,
        "190 is not retried"
    );
    assert_eq!(
        sim.requests("activities", WABA),
        before[2] + 1,
        "100 is not retried, even if transient"
    );
    assert_eq!(
        m.val(
            "whatsapp_graph_api_retries_total",
            &[("endpoint", "message_history")]
        ),
        2.0
    );
    // Never retried: no series.
    assert_eq!(
        m.get(
            "whatsapp_graph_api_retries_total",
            &[("endpoint", "activities")]
        ),
        None
    );

    // Transient once, then fine: the retry saves the collection.
    let body = r#"{"error":{"message":"try again","type":"x","code":2,"is_transient":true}}"#;
    sim.set_fault(
        PHONE,
        Some(Fault::Sequence(
            [(503, body.to_string())].into_iter().collect(),
        )),
    );
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    let before = sim.requests("message_history", PHONE);
    let m = exp.scrape().await;
    assert_eq!(sim.requests("message_history", PHONE), before + 2);
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    assert_eq!(
        m.val(
            "whatsapp_message_status_events_total",
            &[("phone_number_id", PHONE)]
        ),
        1.0
    );
    exp.stop().await;
}

#[tokio::test]
async fn max_retries_zero_makes_one_attempt() {
    let (sim, url) = simulator().await;
    let yaml = config_yaml(&url, "", "").replace(
        "  request_timeout: 5s\n",
        "  request_timeout: 5s\n  max_retries: 0\n",
    );
    let exp = Exporter::start(&yaml).await;
    sim.set_fault(PHONE, graph_error(503, 2, true));
    let m = exp.scrape().await;
    assert_eq!(sim.requests("message_history", PHONE), 1);
    assert_eq!(up(&m, "message_history", PHONE), Some(0.0));
    exp.stop().await;
}

#[tokio::test]
async fn rate_limit_error_holds_the_target_back_until_the_backoff_ends() {
    let (sim, url) = simulator().await;
    let exp = Exporter::start(&config_yaml(
        &url,
        "  backoff_initial: 1s\n  backoff_max: 2s\n",
        "",
    ))
    .await;
    exp.scrape().await;
    sim.set_fault(PHONE, graph_error(400, 80007, false));
    let m = exp.scrape().await;
    assert_eq!(up(&m, "message_history", PHONE), Some(0.0));
    assert_eq!(throttled(&m, PHONE), Some(1.0));
    assert_eq!(throttled(&m, PHONE2), Some(0.0));
    let held_at = sim.requests("message_history", PHONE);
    assert_eq!(held_at, 2, "baseline + one rate-limited call, no retry");
    let others = sim.requests("message_history", PHONE2);
    for _ in 0..3 {
        let m = exp.scrape().await;
        assert_eq!(throttled(&m, PHONE), Some(1.0));
    }
    assert_eq!(
        sim.requests("message_history", PHONE),
        held_at,
        "no call while held back"
    );
    assert_eq!(
        sim.requests("message_history", PHONE2),
        others + 3,
        "other targets go on"
    );

    sim.set_fault(PHONE, None);
    eventually(Duration::from_secs(10), "the backoff to end", || async {
        let m = exp.scrape().await;
        (up(&m, "message_history", PHONE) == Some(1.0) && throttled(&m, PHONE) == Some(0.0))
            .then_some(())
    })
    .await;
    assert_eq!(sim.requests("message_history", PHONE), held_at + 1);
    exp.stop().await;
}

#[tokio::test]
async fn http_429_holds_the_target_back() {
    let (sim, url) = simulator().await;
    let exp = Exporter::start(&config_yaml(&url, "", "")).await;
    sim.set_fault(
        PHONE,
        Some(Fault::Raw {
            status: 429,
            body: "slow down".into(),
        }),
    );
    let m = exp.scrape().await;
    assert_eq!(throttled(&m, PHONE), Some(1.0));
    assert_eq!(
        m.val(
            "whatsapp_graph_api_errors_total",
            &[("error_code", "http_429")]
        ),
        1.0
    );
    exp.scrape().await;
    assert_eq!(sim.requests("message_history", PHONE), 1);
    exp.stop().await;
}

#[tokio::test]
async fn app_level_limit_holds_every_target_on_the_same_token() {
    let (sim, url) = simulator().await;
    sim.add_token("second-token-abcdef");
    sim.add_waba("999");
    let dir = temp_dir("apptoken");
    let tok2 = dir.join("tok2");
    std::fs::write(&tok2, "second-token-abcdef").unwrap();
    let yaml = config_yaml(&url, "", "").replace(
        "collect:\n",
        &format!(
            "  - waba_id: \"999\"\n    access_token_file: {}\ncollect:\n",
            tok2.display()
        ),
    );
    let exp = Exporter::start(&yaml).await;
    exp.scrape().await;
    sim.set_fault(WABA, graph_error(400, 4, false));
    exp.scrape().await;
    let (p1, p2, w2) = (
        sim.requests("message_history", PHONE),
        sim.requests("message_history", PHONE2),
        sim.requests("activities", "999"),
    );
    let m = exp.scrape().await;
    for t in [WABA, PHONE, PHONE2] {
        assert_eq!(throttled(&m, t), Some(1.0), "{t} shares the token");
    }
    assert_eq!(throttled(&m, "999"), Some(0.0));
    assert_eq!(sim.requests("message_history", PHONE), p1);
    assert_eq!(sim.requests("message_history", PHONE2), p2);
    assert_eq!(
        sim.requests("activities", "999"),
        w2 + 1,
        "another token is not held back"
    );
    exp.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn usage_headers_become_metrics_and_hold_back_at_the_threshold() {
    let (sim, url) = simulator().await;
    let exp = Exporter::start(&config_yaml(&url, "", "")).await;
    let buc = format!(
        "{{\"{WABA}\":[{{\"type\":\"whatsapp_business_management\",\"call_count\":95,\"total_cputime\":10,\"total_time\":12,\"estimated_time_to_regain_access\":2}}]}}"
    );
    sim.set_headers(
        PHONE,
        &[
            ("X-Business-Use-Case-Usage", &buc),
            (
                "X-App-Usage",
                r#"{"call_count":40,"total_cputime":5,"total_time":6}"#,
            ),
        ],
    );
    sim.set_headers(
        PHONE2,
        &[(
            "X-App-Usage",
            r#"{"call_count":50,"total_cputime":5,"total_time":6}"#,
        )],
    );
    let m = exp.scrape().await;
    let usage = |t: &str, k: &str, metric: &str| {
        m.get(
            "whatsapp_graph_api_usage_percent",
            &[("target", t), ("usage_type", k), ("metric", metric)],
        )
    };
    assert_eq!(
        usage(PHONE, "whatsapp_business_management", "call_count"),
        Some(95.0)
    );
    assert_eq!(
        usage(PHONE, "whatsapp_business_management", "total_time"),
        Some(12.0)
    );
    assert_eq!(usage(PHONE, "app", "call_count"), Some(40.0));
    assert_eq!(usage(PHONE2, "app", "call_count"), Some(50.0));
    assert_eq!(
        m.get(
            "whatsapp_graph_api_regain_access_seconds",
            &[("target", PHONE)]
        ),
        Some(120.0)
    );
    // Not reported is not zero: no series.
    assert_eq!(
        m.get(
            "whatsapp_graph_api_regain_access_seconds",
            &[("target", PHONE2)]
        ),
        None
    );
    assert!(
        m.find("whatsapp_graph_api_usage_percent", &[("target", WABA)])
            .is_empty()
    );
    assert_eq!(throttled(&m, PHONE), Some(1.0));
    assert_eq!(throttled(&m, PHONE2), Some(0.0));
    let held = sim.requests("message_history", PHONE);
    let m = exp.scrape().await;
    assert_eq!(sim.requests("message_history", PHONE), held);
    assert_eq!(
        up(&m, "message_history", PHONE),
        Some(1.0),
        "the last values are served"
    );
    exp.stop().await;
}

#[tokio::test]
async fn hourly_cap_per_token_whatever_the_headers_say() {
    let (sim, url) = simulator().await;
    let exp = Exporter::start(&config_yaml(&url, "  max_requests_per_hour: 4\n", "")).await;
    for _ in 0..4 {
        exp.scrape().await;
    }
    assert_eq!(sim.total_requests(), 4);
    let m = exp.scrape().await;
    let held = m
        .find("whatsapp_graph_api_throttled", &[])
        .iter()
        .filter(|s| s.value == 1.0)
        .count();
    assert_eq!(held, 3);
    exp.stop().await;
}

#[tokio::test]
async fn scrape_deadline_serves_last_values_in_time_and_warms_the_cache() {
    let (sim, url) = simulator().await;
    let exp = Exporter::start(
        &config_yaml(&url, "", "").replace("min_interval: 0s", "min_interval: 60s"),
    )
    .await;
    sim.set_fault(PHONE, Some(Fault::Delay(Duration::from_secs(3))));
    // Deadline: 1.0 s - 0.5 s offset.
    let m = exp.scrape_with_timeout(1.0).await;
    assert_eq!(
        sim.in_flight(),
        1,
        "the scrape answered while the slow request was still running"
    );
    assert_eq!(up(&m, "message_history", PHONE), Some(0.0));
    assert_eq!(up(&m, "message_history", PHONE2), Some(1.0));
    assert_eq!(up(&m, "activities", WABA), Some(1.0));
    // The collection went on in the background; later scrapes serve its result.
    eventually(
        Duration::from_secs(10),
        "the background collection",
        || async {
            let m = exp.scrape_with_timeout(1.0).await;
            (up(&m, "message_history", PHONE) == Some(1.0)).then_some(())
        },
    )
    .await;
    assert_eq!(sim.requests("message_history", PHONE), 1);
    exp.stop().await;
}

#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// Close the connection after reading the request.
    Reset,
    /// Promise 100 bytes, send 10, close.
    CutShort,
    /// Promise 1000 bytes, send one every 300 ms.
    SlowLoris,
    /// Stream far more than the body cap.
    Huge,
}

/// A raw TCP server that misbehaves; returns its base URL and a request counter.
async fn hostile_server(how: Hostile) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                match how {
                    Hostile::Reset => {}
                    Hostile::CutShort => {
                        let _ = sock
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"data\": [")
                            .await;
                    }
                    Hostile::SlowLoris => {
                        let _ = sock
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
                            .await;
                        for _ in 0..100 {
                            if sock.write_all(b" ").await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        }
                    }
                    Hostile::Huge => {
                        let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"data\": [").await;
                        let chunk = vec![b' '; 64 * 1024];
                        for _ in 0..64 {
                            if sock.write_all(&chunk).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (url, count)
}

#[tokio::test]
async fn transport_hostility_is_an_error_per_target_never_a_stall() {
    for (how, code) in [
        (Hostile::Reset, "network"),
        (Hostile::CutShort, "network"),
        (Hostile::SlowLoris, "timeout"),
        (Hostile::Huge, "too_large"),
    ] {
        let (url, count) = hostile_server(how).await;
        let yaml = config_yaml(&url, "", "").replace(
            "  request_timeout: 5s\n",
            "  request_timeout: 1s\n  max_retries: 0\n  max_response_bytes: 65536\n",
        );
        let exp = Exporter::start(&yaml).await;
        let m = exp.scrape_with_timeout(10.0).await;
        for (c, t) in [
            ("activities", WABA),
            ("message_history", PHONE),
            ("message_history", PHONE2),
            ("templates", WABA),
            ("health", PHONE),
            ("health", PHONE2),
        ] {
            assert_eq!(up(&m, c, t), Some(0.0), "{how:?} {c} {t}");
        }
        // The three collections, and the three health checks after them.
        let errors = m.sum("whatsapp_graph_api_errors_total", &[("error_code", code)]);
        assert_eq!(
            errors,
            6.0,
            "{how:?}: {:?}",
            m.find("whatsapp_graph_api_errors_total", &[])
        );
        assert_eq!(
            count.load(Ordering::SeqCst),
            6,
            "{how:?}: one request per target and health check"
        );
        exp.stop().await;
    }
}
