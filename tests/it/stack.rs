//! The end-to-end harness shared by the alerting and dashboard tests: the
//! simulator with live traffic, the exporter, and a real Prometheus (1 s
//! scrapes and rule evaluation) scraping it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;
use whatsapp_exporter::sim::{
    SimActivity, SimEntity, SimEvent, SimPhoneNumber, SimTemplate, Simulator,
};

/// The business of the stack's account.
pub const BUSINESS: &str = "7777000011112222";

/// The health status of `phone`: the number and its WABA AVAILABLE, the
/// business LIMITED (a ticket, never a page).
pub fn account_health(phone: &str) -> Vec<SimEntity> {
    vec![
        SimEntity::new("PHONE_NUMBER", phone, "AVAILABLE"),
        SimEntity::new("WABA", WABA, "AVAILABLE"),
        SimEntity::new("BUSINESS", BUSINESS, "LIMITED"),
    ]
}

/// A running simulator + exporter + Prometheus; everything stops on drop.
pub struct Stack {
    pub sim: Simulator,
    pub exp: Option<Exporter>,
    pub prometheus: String,
    pub client: reqwest::Client,
    /// While set, half of PHONE2's events turn FAILED after first sight.
    pub failing: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    _prometheus: Running,
    pub dir: PathBuf,
}

impl Stack {
    /// Starts it all; `None` (after a notice) when `prometheus` is not installed.
    /// `alertmanager` is the port of an Alertmanager to send alerts to.
    pub async fn start(name: &str, rules: &Path, alertmanager: Option<u16>) -> Option<Stack> {
        let prometheus = external_tool("prometheus", "prometheus")?;
        let dir = temp_dir(name);
        let (sim, url) = simulator().await;
        // The account's numbers are discovered, so their health shows too.
        for (p, display) in [(PHONE, "+1 555-0100"), (PHONE2, "+1 555-0101")] {
            sim.list_phone(WABA, p, SimPhoneNumber::new(display, "Acme"));
        }
        // Account health: the WABA AVAILABLE (a test may block it), the
        // business LIMITED, one template PAUSED.
        for p in [PHONE, PHONE2] {
            sim.set_health(p, &account_health(p));
        }
        let mut paused = SimTemplate::new("801", "spring_sale", "PAUSED", Some("RED"));
        paused.category = "MARKETING".into();
        sim.set_templates(
            WABA,
            &[
                SimTemplate::new("800", "order_update", "APPROVED", Some("GREEN")),
                paused,
            ],
        );
        let yaml = config_yaml(
            &url,
            "  lookback: 1h\n  max_pages: 50\n",
            "health:\n  interval: 2s\n",
        )
        .replace(
            &format!("    phone_number_ids: [\"{PHONE}\", \"{PHONE2}\"]\n"),
            "",
        );
        assert!(!yaml.contains("phone_number_ids"), "{yaml}");
        let exp = Exporter::start(&yaml).await;
        let alerting = match alertmanager {
            Some(port) => format!(
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"127.0.0.1:{port}\"]\n"
            ),
            None => String::new(),
        };
        let (process, prometheus) = start_prometheus(
            &prometheus,
            &dir,
            &[exp.url.trim_start_matches("http://")],
            &format!("rule_files: [\"{}\"]\n{alerting}", rules.display()),
            &[],
        );
        let failing = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        tokio::spawn(traffic(sim.clone(), failing.clone(), stop.clone()));
        let stack = Stack {
            sim,
            exp: Some(exp),
            prometheus,
            client: reqwest::Client::new(),
            failing,
            stop,
            _prometheus: process,
            dir,
        };
        // Prometheus scrapes the exporter (in OpenMetrics) and it is up.
        eventually(
            Duration::from_secs(60),
            "Prometheus to scrape the exporter",
            || async {
                let r = stack.query("up{job=\"whatsapp\"} == 1").await.ok()?;
                (!r.as_array()?.is_empty()).then_some(())
            },
        )
        .await;
        Some(stack)
    }

    /// An instant query; `Err` with Prometheus' message if it is refused.
    pub async fn query(&self, q: &str) -> Result<Value, String> {
        let data = prometheus_api(&self.client, &self.prometheus, "query", &[("query", q)]).await?;
        Ok(data["result"].clone())
    }

    /// Waits until `q` returns at least one series; panics if Prometheus
    /// refuses it or nothing comes within 90 s. `what` names it in messages.
    pub async fn wait_for_data(&self, what: &str, q: &str) {
        eventually(
            Duration::from_secs(90),
            &format!("{what}: data for {q}"),
            || async {
                let r = self
                    .query(q)
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {q} refused: {e}"));
                (!r.as_array()?.is_empty()).then_some(())
            },
        )
        .await;
    }

    /// Stops the traffic and the exporter (Prometheus stops on drop).
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(exp) = self.exp.take() {
            exp.stop().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Calls `GET /api/v1/<path>` of the Prometheus at `base`; its `data`, or
/// `Err` with Prometheus' message if it refuses.
pub async fn prometheus_api(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    params: &[(&str, &str)],
) -> Result<Value, String> {
    let v: Value = client
        .get(format!("{base}/api/v1/{path}"))
        .query(params)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    if v["status"] != "success" {
        return Err(format!("{}: {}", v["errorType"], v["error"]));
    }
    Ok(v["data"].clone())
}

/// Starts `prometheus` (1 s scrapes and rule evaluation) scraping job
/// `whatsapp` at `targets` (`host:port`), with `extra` config lines (rule
/// files, alerting) and `args`; returns the process and its URL.
pub fn start_prometheus(
    prometheus: &Path,
    dir: &Path,
    targets: &[&str],
    extra: &str,
    args: &[&str],
) -> (Running, String) {
    let targets = targets
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n{extra}\
             scrape_configs:\n  - job_name: whatsapp\n    static_configs:\n      - targets: [{targets}]\n",
        ),
    )
    .unwrap();
    let port = free_port();
    let process = Running(
        Command::new(prometheus)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    (process, format!("http://127.0.0.1:{port}"))
}

/// Two messages a second on each phone number moving to DELIVERED and READ,
/// one in a hundred FAILED with an error, an activity event now and then.
/// Webhook states move after first sight, as Meta's do: every event starts
/// PENDING and about 1.5 s later (after a scrape or two) turns DELIVERED;
/// while `failing`, half of PHONE2's turn FAILED, with their error.
async fn traffic(sim: Simulator, failing: Arc<AtomicBool>, stop: Arc<AtomicBool>) {
    let mut n = 0u64;
    // (tick it was sent, phone, message) of the messages whose webhook state is still to move.
    let mut pending: std::collections::VecDeque<(u64, &str, String)> = Default::default();
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let t = now();
        let first = sim.add_message(PHONE, vec![SimEvent::new("SENT", t).webhook("PENDING")]);
        sim.add_event(
            PHONE,
            &first,
            SimEvent::new("DELIVERED", t).webhook("PENDING"),
            false,
        );
        if n.is_multiple_of(3) {
            sim.add_event(PHONE, &first, SimEvent::new("READ", t), false);
        }
        pending.push_back((n, PHONE, first));
        // 1 % of SENT, well under the 5 % of WhatsAppMessageDeliveryFailuresHigh:
        // this number is the healthy one. The first comes at once, for the
        // dashboards' error panels.
        if n % 100 == 1 {
            let ev = SimEvent::new("FAILED", t).error("Message undeliverable");
            sim.add_message(PHONE, vec![ev]);
        }
        let second = sim.add_message(PHONE2, vec![SimEvent::new("SENT", t).webhook("PENDING")]);
        pending.push_back((n, PHONE2, second));
        while pending.front().is_some_and(|(born, _, _)| born + 3 <= n) {
            let Some((born, phone, msg)) = pending.pop_front() else {
                break;
            };
            let fail = phone == PHONE2 && failing.load(Ordering::Relaxed) && born.is_multiple_of(2);
            sim.update_events(phone, &msg, |e| {
                if fail {
                    e.webhook_update_state = Some("FAILED".into());
                    e.error_description = Some("Webhook endpoint returned HTTP 500".into());
                } else {
                    e.webhook_update_state = Some("DELIVERED".into());
                }
            });
        }
        if n.is_multiple_of(10) {
            let kind =
                [("USER", "USER_ADDED"), ("TEMPLATE", "TEMPLATE_APPROVED")][(n / 10 % 2) as usize];
            sim.add_activity(WABA, SimActivity::new(kind.0, kind.1, t), true);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
