//! The shipped alert rules and Alertmanager example: checked with promtool
//! and amtool, and proven end to end with a real Prometheus and Alertmanager
//! scraping the exporter against the simulator.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::routing::post;
use serde_json::Value;
use serde_norway::Value as Yaml;
use whatsapp_exporter::sim::SimEntity;

use crate::stack::{BUSINESS, Stack, account_health};
use crate::support::*;

fn alerts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts")
}

#[test]
fn rules_pass_promtool_check_and_unit_tests() {
    let Some(promtool) = external_tool("promtool", "prometheus") else {
        return;
    };
    let mut check = Command::new(&promtool);
    check
        .args(["check", "rules"])
        .arg(alerts_dir().join("whatsapp-exporter.rules.yml"));
    let out = run_ok(check);
    assert!(out.contains("SUCCESS: 24 rules found"), "{out}");
    let mut test = Command::new(&promtool);
    test.current_dir(alerts_dir().join("tests")).args([
        "test",
        "rules",
        "whatsapp-exporter.test.yml",
    ]);
    assert!(run_ok(test).contains("SUCCESS"));
}

#[test]
fn alertmanager_example_passes_amtool() {
    let Some(amtool) = external_tool("amtool", "prometheus-alertmanager") else {
        return;
    };
    let mut cmd = Command::new(amtool);
    cmd.arg("check-config")
        .arg(alerts_dir().join("alertmanager.example.yml"));
    let out = run_ok(cmd);
    assert!(
        out.contains("SUCCESS") && out.contains("2 inhibit rules"),
        "{out}"
    );
}

#[test]
fn every_alert_has_severity_annotations_and_a_runbook_section() {
    let rules: Yaml = serde_norway::from_str(
        &std::fs::read_to_string(alerts_dir().join("whatsapp-exporter.rules.yml")).unwrap(),
    )
    .unwrap();
    let runbook = std::fs::read_to_string(alerts_dir().join("RUNBOOK.md")).unwrap();
    let tests =
        std::fs::read_to_string(alerts_dir().join("tests/whatsapp-exporter.test.yml")).unwrap();
    let mut alerts = 0;
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let Some(name) = rule["alert"].as_str() else {
                continue;
            };
            alerts += 1;
            let severity = rule["labels"]["severity"].as_str();
            assert!(
                matches!(severity, Some("page" | "ticket")),
                "{name}: severity"
            );
            for a in ["summary", "description", "runbook_url"] {
                assert!(rule["annotations"][a].as_str().is_some(), "{name}: no {a}");
            }
            let anchor = format!("alerts/RUNBOOK.md#{}", name.to_lowercase());
            assert_eq!(
                rule["annotations"]["runbook_url"].as_str(),
                Some(anchor.as_str())
            );
            assert!(
                runbook.contains(&format!("\n## {name}\n")),
                "{name}: no runbook section"
            );
            assert!(
                tests.matches(&format!("alertname: {name}\n")).count() >= 2,
                "{name}: needs a firing and a silent promtool case"
            );
        }
    }
    assert_eq!(alerts, 19);
}

/// Notifications received from Alertmanager: (receiver path, payload).
type Inbox = Arc<Mutex<Vec<(String, Value)>>>;

async fn start_receiver() -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let app =
        axum::Router::new()
            .route(
                "/{receiver}",
                post(
                    |State(inbox): State<Inbox>,
                     UrlPath(r): UrlPath<String>,
                     Json(v): Json<Value>| async move {
                        inbox.lock().unwrap().push((r, v));
                    },
                ),
            )
            .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, inbox)
}

/// The shipped rules with `for:` and range windows shortened so a test sees
/// alerts fire and resolve in seconds.
fn render_rules(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(alerts_dir().join("whatsapp-exporter.rules.yml")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.to_string();
        if line.trim_start().starts_with("for:") {
            let indent = &line[..line.len() - line.trim_start().len()];
            line = format!("{indent}for: 5s");
        }
        for w in ["10m", "15m", "30m", "1h"] {
            line = line
                .replace(&format!("[{w}]"), "[30s]")
                .replace(&format!("offset {w}"), "offset 30s");
        }
        out.push_str(&line);
        out.push('\n');
    }
    let path = dir.join("rules.yml");
    std::fs::write(&path, out).unwrap();
    path
}

/// The example routing with its webhooks pointed at the test's receiver and
/// its waits shortened.
fn render_alertmanager(dir: &Path, receiver: &str) -> PathBuf {
    let mut cfg: Yaml = serde_norway::from_str(
        &std::fs::read_to_string(alerts_dir().join("alertmanager.example.yml")).unwrap(),
    )
    .unwrap();
    for r in cfg["receivers"].as_sequence_mut().unwrap() {
        let name = r["name"].as_str().unwrap().to_string();
        r["webhook_configs"][0]["url"] = Yaml::from(format!("{receiver}/{name}"));
    }
    fn shorten(route: &mut Yaml) {
        for (k, v) in [("group_wait", "1s"), ("group_interval", "1s")] {
            if route.get(k).is_some() {
                route[k] = Yaml::from(v);
            }
        }
        if let Some(routes) = route.get_mut("routes").and_then(|r| r.as_sequence_mut()) {
            routes.iter_mut().for_each(shorten);
        }
    }
    shorten(&mut cfg["route"]);
    let path = dir.join("alertmanager.yml");
    std::fs::write(&path, serde_norway::to_string(&cfg).unwrap()).unwrap();
    path
}

/// Waits (up to `limit`) for a notification to `receiver` of an alert named
/// `alertname` in `status` that `also` accepts; returns the alert.
async fn notified(
    inbox: &Inbox,
    limit: Duration,
    (receiver, status, alertname): (&str, &str, &str),
    also: impl Fn(&Value) -> bool,
) -> Value {
    let what = format!("{alertname} {status} to {receiver}");
    eventually(limit, &what, || async {
        let inbox = inbox.lock().unwrap();
        alerts_in(&inbox, receiver, status)
            .into_iter()
            .find(|a| a["labels"]["alertname"] == alertname && also(a))
            .cloned()
    })
    .await
}

fn alerts_in<'a>(inbox: &'a [(String, Value)], receiver: &str, status: &str) -> Vec<&'a Value> {
    inbox
        .iter()
        .filter(|(r, _)| r == receiver)
        .flat_map(|(_, v)| v["alerts"].as_array().into_iter().flatten())
        .filter(|a| a["status"] == status)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_failure_pages_and_resolves_and_a_blocked_waba_pages_end_to_end() {
    let (Some(_), Some(alertmanager)) = (
        external_tool("prometheus", "prometheus"),
        external_tool("prometheus-alertmanager", "prometheus-alertmanager"),
    ) else {
        return;
    };
    let dir = temp_dir("e2e-am");
    let (receiver, inbox) = start_receiver().await;
    let am_port = free_port();
    let am_cfg = render_alertmanager(&dir, &receiver);
    let _am = Running(
        Command::new(alertmanager)
            .arg(format!("--config.file={}", am_cfg.display()))
            .arg(format!("--storage.path={}", dir.join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("alertmanager starts"),
    );
    let rules = render_rules(&dir);
    let Some(stack) = Stack::start("e2e-alerting", &rules, Some(am_port)).await else {
        return;
    };

    // Healthy traffic for a while: the failure ratio is 0 for both numbers.
    eventually(
        Duration::from_secs(60),
        "a failure ratio for both numbers",
        || async {
            let r = stack
                .query("whatsapp:webhook_failure_ratio:10m == 0")
                .await
                .ok()?;
            (r.as_array()?.len() == 2).then_some(())
        },
    )
    .await;

    stack.failing.store(true, Ordering::Relaxed);
    let page = notified(
        &inbox,
        Duration::from_secs(90),
        ("pager", "firing", "WhatsAppWebhookDeliveryFailing"),
        |_| true,
    )
    .await;
    assert_eq!(page["labels"]["phone_number_id"], PHONE2);
    // The failures it paged on were changes after first sight: the events
    // were counted PENDING first, and FAILED later.
    for state in ["PENDING", "FAILED"] {
        let q = format!(
            "whatsapp_webhook_updates_total{{phone_number_id=\"{PHONE2}\",webhook_update_state=\"{state}\"}} > 0"
        );
        let r = stack.query(&q).await.unwrap();
        assert_eq!(r.as_array().map(Vec::len), Some(1), "{q}: {r}");
    }
    assert_eq!(page["labels"]["severity"], "page");
    assert_eq!(page["labels"]["application_id"], "9876543210987654");
    assert!(
        page["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains(PHONE2)
    );

    stack.failing.store(false, Ordering::Relaxed);
    notified(
        &inbox,
        Duration::from_secs(120),
        ("pager", "resolved", "WhatsAppWebhookDeliveryFailing"),
        |a| a["labels"]["phone_number_id"] == PHONE2,
    )
    .await;

    // Nothing ever fired for the healthy number, and nothing else paged:
    // the WABA is AVAILABLE, and the LIMITED business and the PAUSED
    // template are tickets.
    let inbox_then = inbox.lock().unwrap().clone();
    for (receiver, payload) in &inbox_then {
        for a in payload["alerts"].as_array().unwrap() {
            assert_ne!(a["labels"]["phone_number_id"], PHONE, "{receiver}: {a}");
            if receiver == "pager" {
                assert_eq!(
                    a["labels"]["alertname"], "WhatsAppWebhookDeliveryFailing",
                    "{a}"
                );
            }
        }
    }
    assert!(
        stack
            .query(
                "whatsapp_health_can_send_message{entity_type=\"WABA\",state=\"AVAILABLE\"} == 1"
            )
            .await
            .unwrap()
            .as_array()
            .is_some_and(|r| r.len() == 1),
        "the healthy WABA was seen"
    );

    // Meta blocks the WABA: both numbers' health status says so, and it pages.
    for p in [PHONE, PHONE2] {
        let mut entities = account_health(p);
        entities[1] = SimEntity::new("WABA", WABA, "BLOCKED").error(141014, "The WABA is banned.");
        stack.sim.set_health(p, &entities);
    }
    let page = notified(
        &inbox,
        Duration::from_secs(90),
        ("pager", "firing", "WhatsAppSendingBlocked"),
        |_| true,
    )
    .await;
    assert_eq!(page["labels"]["entity_type"], "WABA");
    assert_eq!(page["labels"]["entity_id"], WABA);
    assert_eq!(page["labels"]["severity"], "page");
    // One page for the WABA, however many numbers report it, and none for
    // the entities that stayed AVAILABLE.
    let received = inbox.lock().unwrap().clone();
    let blocked: Vec<&Value> = alerts_in(&received, "pager", "firing")
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == "WhatsAppSendingBlocked")
        .collect();
    assert!(
        blocked.iter().all(|a| a["labels"]["entity_id"] == WABA),
        "{blocked:?}"
    );
    for a in alerts_in(&received, "pager", "firing") {
        assert_ne!(a["labels"]["entity_id"], BUSINESS, "{a}");
    }
    let limited = notified(
        &inbox,
        Duration::from_secs(60),
        ("tickets", "firing", "WhatsAppSendingLimited"),
        |_| true,
    )
    .await;
    assert_eq!(limited["labels"]["entity_id"], BUSINESS);
    stack.stop().await;
    drop(_am);
    let _ = std::fs::remove_dir_all(&dir);
}
