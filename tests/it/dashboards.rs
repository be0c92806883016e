//! The shipped Grafana dashboards: well-formed, no hard-coded data source,
//! every query using its variables, and every query accepted by a real
//! Prometheus that scraped the exporter with live traffic, returning data.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::stack::Stack;
use crate::support::*;
use whatsapp_exporter::sim::Fault;

const DASHBOARDS: [&str; 2] = ["whatsapp-overview.json", "whatsapp-exporter-health.json"];

/// Panels that may legitimately be empty while nothing is wrong.
const MAY_BE_EMPTY: [&str; 1] = ["Firing WhatsApp alerts"];

fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dashboards")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The panels that show data: every panel but the rows that group them.
fn panels(d: &Value) -> Vec<&Value> {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .collect()
}

/// The rows' titles.
fn rows(d: &Value) -> Vec<&str> {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect()
}

/// (panel title, expression) of every query.
fn queries(d: &Value) -> Vec<(String, String)> {
    panels(d)
        .into_iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap().to_string();
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap().to_string()))
        })
        .collect()
}

fn variables(d: &Value) -> Vec<&Value> {
    d["templating"]["list"].as_array().unwrap().iter().collect()
}

/// Every `datasource` anywhere must be the `${datasource}` variable.
fn check_datasources(v: &Value, path: &str) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "datasource" {
                    assert_eq!(v["uid"], "${datasource}", "{path}.{k} is hard-coded: {v}");
                    assert_eq!(v["type"], "prometheus", "{path}.{k}");
                }
                check_datasources(v, &format!("{path}.{k}"));
            }
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| check_datasources(v, &format!("{path}[{i}]"))),
        _ => {}
    }
}

#[test]
fn dashboards_are_well_formed() {
    let mut uids = HashSet::new();
    for name in DASHBOARDS {
        let d = load(name);
        assert!(
            uids.insert(d["uid"].as_str().unwrap().to_string()),
            "{name}: uid"
        );
        assert!(!d["tags"].as_array().unwrap().is_empty(), "{name}: tags");
        check_datasources(&d, name);
        let vars = variables(&d);
        let ds = vars
            .iter()
            .find(|v| v["name"] == "datasource")
            .expect("datasource variable");
        assert_eq!(ds["type"], "datasource");
        assert_eq!(ds["query"], "prometheus");
        let mut ids = HashSet::new();
        for p in panels(&d) {
            assert!(
                ids.insert(p["id"].as_i64().unwrap()),
                "{name}: duplicate panel id {}",
                p["id"]
            );
            let title = p["title"].as_str().unwrap_or("");
            assert!(!title.is_empty(), "{name}: untitled panel");
            assert!(
                !p["description"].as_str().unwrap_or("").is_empty(),
                "{name}/{title}: no description"
            );
            assert!(
                p["fieldConfig"]["defaults"]["unit"].is_string(),
                "{name}/{title}: no unit"
            );
            assert!(
                !p["targets"].as_array().unwrap().is_empty(),
                "{name}/{title}: no query"
            );
        }
        // Every query uses the variables that scope its metric.
        let exprs = queries(&d);
        for (title, e) in &exprs {
            assert!(
                e.contains("job=~\"$job\""),
                "{name}/{title}: no $job in {e}"
            );
            let per_phone = [
                "whatsapp_message_",
                "whatsapp_webhook_",
                "whatsapp:webhook_",
            ];
            if name == "whatsapp-overview.json" && per_phone.iter().any(|m| e.contains(m)) {
                assert!(
                    e.contains("phone_number_id=~\"$phone_number_id\""),
                    "{name}/{title}: {e}"
                );
            }
            if name == "whatsapp-overview.json" && e.contains("whatsapp_activity_events_total") {
                assert!(e.contains("waba_id=~\"$waba_id\""), "{name}/{title}: {e}");
            }
        }
        // Every variable is used by some query, and scoped by $job.
        for v in vars.iter().filter(|v| v["name"] != "datasource") {
            let var = format!("${}", v["name"].as_str().unwrap());
            assert!(
                exprs.iter().any(|(_, e)| e.contains(&var)),
                "{name}: {var} unused"
            );
            let q = v["definition"].as_str().unwrap();
            assert!(q.starts_with("label_values("), "{name}: {q}");
            assert!(
                v["name"] == "job" || q.contains("$job"),
                "{name}: {var} not scoped by job"
            );
        }
    }
}

/// The expression Grafana would send, with the variables at their "All" values.
fn substitute(e: &str) -> String {
    e.replace("$__rate_interval", "30s")
        .replace("$__range", "5m")
        .replace("$job", "whatsapp")
        .replace("$phone_number_id", ".*")
        .replace("$waba_id", ".*")
}

/// `label_values(m{sel}, label)` as a query that returns those values.
fn variable_query(def: &str) -> String {
    let inner = def
        .trim_start_matches("label_values(")
        .trim_end_matches(')');
    match inner.rsplit_once(", ") {
        Some((metric, label)) => format!("group by ({label}) ({})", substitute(metric)),
        None => format!("group by ({inner}) ({{{inner}!=\"\"}})"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_runs_on_a_real_prometheus_and_shows_data() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts/whatsapp-exporter.rules.yml");
    let Some(stack) = Stack::start("e2e-dashboards", &rules, None).await else {
        return;
    };
    // Something for every panel: usage headers, a webhook failure, one API error.
    stack.sim.set_headers(
        PHONE,
        &[
            ("X-App-Usage", r#"{"call_count":12,"total_cputime":3,"total_time":4}"#),
            (
                "X-Business-Use-Case-Usage",
                r#"{"5678901234567890":[{"type":"whatsapp_business_management","call_count":20,"total_cputime":1,"total_time":2,"estimated_time_to_regain_access":0}]}"#,
            ),
        ],
    );
    stack.failing.store(true, Ordering::Relaxed);
    let body = r#"{"error":{"message":"try again","type":"x","code":2,"is_transient":true}}"#;
    stack.sim.set_fault(
        PHONE2,
        Some(Fault::Sequence(
            [(503, body.to_string())].into_iter().collect(),
        )),
    );

    let mut checked = 0;
    for name in DASHBOARDS {
        let d = load(name);
        for v in variables(&d).into_iter().filter(|v| v["type"] == "query") {
            let q = variable_query(v["definition"].as_str().unwrap());
            stack.wait_for_data(name, &q).await;
            checked += 1;
        }
        for (title, e) in queries(&d) {
            let q = substitute(&e);
            if MAY_BE_EMPTY.contains(&title.as_str()) {
                stack
                    .query(&q)
                    .await
                    .unwrap_or_else(|err| panic!("{name}/{title}: {q} refused: {err}"));
            } else {
                stack.wait_for_data(&format!("{name}/{title}"), &q).await;
            }
            checked += 1;
        }
    }
    // 4 variables, 23 overview queries (20 panels), 12 health queries.
    assert_eq!(checked, 4 + 23 + 12);
    assert_eq!(rows(&load("whatsapp-overview.json")), ["Account health"]);
    stack.stop().await;
}
