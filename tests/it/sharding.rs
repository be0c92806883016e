//! Sharding: two processes with `--shard 0/2` and `--shard 1/2` over one
//! config of 100 discovered phone numbers collect disjoint target sets that
//! together are all of them, and a real Prometheus scraping both sees exactly
//! the counts of one unsharded process.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::stack::{prometheus_api, start_prometheus};
use crate::support::*;
use whatsapp_exporter::sim::{SimEvent, SimPhoneNumber};

const BIN: &str = env!("CARGO_BIN_EXE_whatsapp-exporter");

async fn start(cfg: &Path, shard: Option<&str>) -> (Running, String) {
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args([
        &format!("--config.file={}", cfg.display()),
        &format!("--web.listen-address=127.0.0.1:{port}"),
    ])
    .env_remove("WHATSAPP_ACCESS_TOKEN")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if let Some(s) = shard {
        cmd.arg(format!("--shard={s}"));
    }
    let running = Running(cmd.spawn().unwrap());
    let addr = format!("127.0.0.1:{port}");
    eventually(Duration::from_secs(20), "the exporter to listen", || {
        let url = format!("http://{addr}/-/ready");
        async move { reqwest::get(url).await.ok().map(|_| ()) }
    })
    .await;
    (running, addr)
}

async fn scrape(addr: &str) -> Metrics {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    Metrics::parse(&text)
}

fn targets(m: &Metrics) -> BTreeSet<(String, String)> {
    m.find("whatsapp_up", &[])
        .iter()
        .map(|s| (s.labels["collector"].clone(), s.labels["target"].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_cover_every_target_once_and_sum_to_one_process() {
    let (sim, url) = simulator().await;
    let phones: Vec<String> = (0..100u64)
        .map(|i| (1_234_567_890_200_000 + i).to_string())
        .collect();
    for p in &phones {
        sim.list_phone(WABA, p, SimPhoneNumber::new("+1 555-0100", "Acme"));
        sim.add_message(p, vec![SimEvent::new("SENT", now())]);
    }
    let dir = temp_dir("sharding");
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    let cfg = dir.join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "graph_api:\n  base_url: {url}\n  access_token_file: {}\naccounts:\n  - waba_id: \"{WABA}\"\n\
             collect:\n  min_interval: 0s\n  concurrency: 16\ndiscovery:\n  interval: 1h\n",
            dir.join("token").display()
        ),
    )
    .unwrap();
    let (_s0, a0) = start(&cfg, Some("0/2")).await;
    let (_s1, a1) = start(&cfg, Some("1/2")).await;
    let (_single, all) = start(&cfg, None).await;

    let (m0, m1, m) = (scrape(&a0).await, scrape(&a1).await, scrape(&all).await);
    let (t0, t1, t) = (targets(&m0), targets(&m1), targets(&m));
    assert_eq!(
        t.len(),
        202,
        "100 discovered numbers and the account, each collected and health-checked"
    );
    assert!(
        t0.is_disjoint(&t1),
        "{:?}",
        t0.intersection(&t1).collect::<Vec<_>>()
    );
    assert_eq!(&t0 | &t1, t, "together the shards cover every target");
    assert!(!t0.is_empty() && !t1.is_empty());
    assert_eq!(
        m0.get("whatsapp_shard_info", &[("index", "0"), ("count", "2")]),
        Some(1.0)
    );
    assert!(m.find("whatsapp_shard_info", &[]).is_empty());

    let Some(prometheus) = external_tool("prometheus", "prometheus") else {
        return;
    };
    let (_prom, prom) = start_prometheus(&prometheus, &dir, &[&a0, &a1, &all], "", &[]);
    // New traffic after every baseline: 100 SENT and 50 READ events.
    for (i, p) in phones.iter().enumerate() {
        let id = sim.add_message(p, vec![SimEvent::new("SENT", now())]);
        if i % 2 == 0 {
            sim.add_event(p, &id, SimEvent::new("READ", now()), false);
        }
    }
    let client = reqwest::Client::new();
    let query = |q: String| {
        let (client, prom) = (client.clone(), prom.clone());
        async move {
            let data = prometheus_api(&client, &prom, "query", &[("query", &q)])
                .await
                .ok()?;
            data["result"][0]["value"][1].as_str()?.parse::<f64>().ok()
        }
    };
    let sharded = format!("instance=~\"{a0}|{a1}\"");
    let single = format!("instance=\"{all}\"");
    let (s, one) = eventually(
        Duration::from_secs(60),
        "the new events in Prometheus",
        || {
            let (sharded, single) = (sharded.clone(), single.clone());
            let query = &query;
            async move {
                let s = query(format!(
                    "sum(whatsapp_message_status_events_total{{{sharded}}})"
                ))
                .await?;
                let one = query(format!(
                    "sum(whatsapp_message_status_events_total{{{single}}})"
                ))
                .await?;
                (s == 150.0 && one == 150.0).then_some((s, one))
            }
        },
    )
    .await;
    assert_eq!(s, one);
    for status in ["SENT", "READ"] {
        let by = |sel: &str| {
            query(format!(
                "sum(whatsapp_message_status_events_total{{{sel},delivery_status=\"{status}\"}})"
            ))
        };
        assert_eq!(by(&sharded).await, by(&single).await, "{status}");
    }
}
