//! Life of a running exporter: config reload (POST /-/reload and SIGHUP)
//! keeping the state of kept targets, health endpoints, and SIGTERM with a
//! scrape in flight.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use whatsapp_exporter::config::Config;
use whatsapp_exporter::server::{self, AppState, Options};
use whatsapp_exporter::sim::{Fault, SimEvent, Simulator};

const PHONE3: &str = "1234567890123458";
const BIN: &str = env!("CARGO_BIN_EXE_whatsapp-exporter");

/// The simulator (with PHONE3 too) and a config file naming WABA, PHONE and
/// PHONE2, with a state file, all in `dir`.
async fn setup(dir: &Path) -> (Simulator, PathBuf) {
    let (sim, url) = simulator().await;
    sim.add_phone(PHONE3);
    let cfg = config_file_with_token_file(&url, dir);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!("state_file: {}\n", dir.join("state.db").display()));
    std::fs::write(&cfg, text).unwrap();
    (sim, cfg)
}

/// Rewrites the config's phone numbers.
fn set_phones(cfg: &Path, phones: &[&str]) {
    let text = std::fs::read_to_string(cfg).unwrap();
    let start = text.find("phone_number_ids: [").unwrap();
    let end = start + text[start..].find(']').unwrap() + 1;
    let list = phones
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let new = format!(
        "{}phone_number_ids: [{list}]{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(cfg, new).unwrap();
}

fn sent(m: &Metrics, phone: &str) -> Option<f64> {
    m.get(
        "whatsapp_message_status_events_total",
        &[("phone_number_id", phone), ("delivery_status", "SENT")],
    )
}

async fn get_text(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// The real server in process, reloadable from `cfg`, on 127.0.0.1:0.
struct Served {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    async fn start(cfg: &Path) -> Served {
        let loaded = Config::load(cfg).unwrap();
        let state: Arc<AppState> = AppState::new(
            &loaded,
            Options {
                config_file: Some(cfg.to_path_buf()),
                ..Options::default()
            },
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server::run(listener, state, async {
            let _ = stopped.await;
        }));
        Served { base, stop, server }
    }

    /// Graceful stop (writes the state file).
    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap().unwrap();
    }
}

async fn post(url: &str) -> (u16, String) {
    let r = reqwest::Client::new().post(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_kept_targets_drops_removed_ones_and_rejects_bad_configs() {
    let dir = temp_dir("reload");
    let (sim, cfg) = setup(&dir).await;
    let served = Served::start(&cfg).await;
    let base = served.base.clone();
    let scrape = || async {
        let text = get_text(&format!("{base}/metrics")).await;
        (Metrics::parse(&text), text)
    };

    for p in [PHONE, PHONE2, PHONE3] {
        sim.add_message(p, vec![SimEvent::new("SENT", now())]);
    }
    scrape().await; // baseline
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    sim.add_message(PHONE2, vec![SimEvent::new("SENT", now())]);
    let (m, _) = scrape().await;
    assert_eq!(sent(&m, PHONE), Some(1.0));
    assert_eq!(sent(&m, PHONE2), Some(1.0));
    let first_reload = m.val("whatsapp_config_last_reload_success_timestamp_seconds", &[]);
    assert_eq!(m.val("whatsapp_config_last_reload_successful", &[]), 1.0);

    // PHONE2 goes, PHONE3 comes.
    set_phones(&cfg, &[PHONE, PHONE3]);
    let (status, body) = post(&format!("{base}/-/reload")).await;
    assert_eq!(
        (status, body.trim()),
        (200, "configuration reloaded: 3 targets")
    );
    let (m, text) = scrape().await;
    assert!(
        !text.contains(PHONE2),
        "series of the removed target remain:\n{text}"
    );
    assert_eq!(
        sent(&m, PHONE),
        Some(1.0),
        "a kept target keeps its counters"
    );
    assert_eq!(up(&m, "message_history", PHONE3), Some(1.0));
    assert_eq!(
        sent(&m, PHONE3),
        Some(0.0),
        "a new target starts with a baseline"
    );
    assert!(m.val("whatsapp_config_last_reload_success_timestamp_seconds", &[]) >= first_reload);
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    sim.add_message(PHONE3, vec![SimEvent::new("SENT", now())]);
    let (m, _) = scrape().await;
    assert_eq!(
        sent(&m, PHONE),
        Some(2.0),
        "kept seen-state: nothing counted twice"
    );
    assert_eq!(sent(&m, PHONE3), Some(1.0));
    // The new target is saved; the removed one's record stays until it
    // falls behind the lookback (it may come back).
    let saved = stored(&dir.join("state.db"));
    assert!(
        saved.contains_key(&format!("message_history/{PHONE3}")),
        "{saved:?}"
    );

    // A bad file is rejected and changes nothing.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{good}bogus_key: 1\n")).unwrap();
    let (status, body) = post(&format!("{base}/-/reload")).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("previous one stays in force") && body.contains("bogus_key"),
        "{body}"
    );
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    let (m, _) = scrape().await;
    assert_eq!(m.val("whatsapp_config_last_reload_successful", &[]), 0.0);
    assert_eq!(
        sent(&m, PHONE),
        Some(3.0),
        "the old configuration keeps running"
    );
    assert_eq!(up(&m, "message_history", PHONE3), Some(1.0));

    std::fs::write(&cfg, &good).unwrap();
    assert_eq!(post(&format!("{base}/-/reload")).await.0, 200);
    let (m, _) = scrape().await;
    assert_eq!(m.val("whatsapp_config_last_reload_successful", &[]), 1.0);
    assert_eq!(sent(&m, PHONE), Some(3.0));

    // Health, readiness, the landing page; reload wants POST.
    let c = reqwest::Client::new();
    for (path, want) in [
        ("/-/healthy", "Healthy"),
        ("/-/ready", "Ready"),
        ("/", "/-/reload"),
    ] {
        let r = c.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.text().await.unwrap().contains(want), "{path}");
    }
    let r = c.get(format!("{base}/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 405);

    served.stop().await;
}

/// A reload while a collection is in flight: the collection's events are
/// counted once and the state file it ends with holds every target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_during_a_collection_loses_nothing_it_saw() {
    let dir = temp_dir("reload-in-flight");
    let (sim, cfg) = setup(&dir).await;
    let served = Served::start(&cfg).await;
    let base = served.base.clone();
    get_text(&format!("{base}/metrics")).await; // baseline
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    sim.set_fault(PHONE, Some(Fault::Delay(Duration::from_millis(1500))));
    let in_flight = tokio::spawn({
        let url = format!("{base}/metrics");
        async move { get_text(&url).await }
    });
    eventually(Duration::from_secs(5), "the slow collection", || async {
        (sim.in_flight() > 0).then_some(())
    })
    .await;
    let (status, body) = post(&format!("{base}/-/reload")).await;
    assert_eq!(status, 200, "{body}");
    let m = Metrics::parse(&in_flight.await.unwrap());
    assert_eq!(
        sent(&m, PHONE),
        Some(1.0),
        "the event seen in flight counts"
    );
    sim.set_fault(PHONE, None);
    let saved = stored(&dir.join("state.db"));
    for t in [
        format!("activities/{WABA}"),
        format!("message_history/{PHONE}"),
        format!("message_history/{PHONE2}"),
    ] {
        assert!(
            saved.contains_key(&t),
            "the state store lost {t}: {saved:?}"
        );
    }
    let m = Metrics::parse(&get_text(&format!("{base}/metrics")).await);
    assert_eq!(sent(&m, PHONE), Some(1.0), "and only once");
    served.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Starts the binary on `cfg`, logging into `dir/log.txt`; waits until it listens.
async fn start_binary(cfg: &Path, dir: &Path) -> (Running, String) {
    let port = free_port();
    let log = std::fs::File::create(dir.join("log.txt")).unwrap();
    let child = Command::new(BIN)
        .args([
            &format!("--config.file={}", cfg.display()),
            &format!("--web.listen-address=127.0.0.1:{port}"),
        ])
        .env_remove("WHATSAPP_ACCESS_TOKEN")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(20), "the exporter to listen", || {
        let url = format!("{base}/-/ready");
        async move { reqwest::get(url).await.ok().map(|_| ()) }
    })
    .await;
    (Running(child), base)
}

/// Waits for the exporter to exit on its own, and checks it exited 0.
async fn exits_cleanly(running: &mut Running) {
    let exit = eventually(Duration::from_secs(20), "the exporter to exit", || {
        let s = running.0.try_wait().ok().flatten();
        async move { s }
    })
    .await;
    assert!(exit.success(), "{exit:?}");
}

fn signal(running: &Running, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &running.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config() {
    let dir = temp_dir("sighup");
    let (_sim, cfg) = setup(&dir).await;
    let (running, base) = start_binary(&cfg, &dir).await;
    let text = get_text(&format!("{base}/metrics")).await;
    assert!(text.contains(PHONE2));
    set_phones(&cfg, &[PHONE]);
    signal(&running, "-HUP");
    eventually(Duration::from_secs(20), "the reload to take effect", || {
        let url = format!("{base}/metrics");
        async move {
            let text = reqwest::get(url).await.ok()?.text().await.ok()?;
            (!text.contains(PHONE2)).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_scrape_in_flight_and_writes_the_state_file() {
    let dir = temp_dir("sigterm");
    let (sim, cfg) = setup(&dir).await;
    let (mut running, base) = start_binary(&cfg, &dir).await;
    sim.set_fault(PHONE, Some(Fault::Delay(Duration::from_secs(2))));
    let scrape = tokio::spawn({
        let url = format!("{base}/metrics");
        async move {
            let r = reqwest::get(url).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    });
    eventually(Duration::from_secs(10), "the slow request to start", || {
        let n = sim.in_flight();
        async move { (n > 0).then_some(()) }
    })
    .await;
    signal(&running, "-TERM");
    // It stops accepting...
    eventually(
        Duration::from_secs(10),
        "new connections to be refused",
        || {
            let addr = base.trim_start_matches("http://").to_string();
            async move { tokio::net::TcpStream::connect(addr).await.err().map(|_| ()) }
        },
    )
    .await;
    // ...but the scrape in flight completes, with the slow target's result.
    let (status, text) = scrape.await.unwrap();
    assert_eq!(status, 200);
    let m = Metrics::parse(&text);
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0), "{text}");
    exits_cleanly(&mut running).await;
    let saved = stored(&dir.join("state.db"));
    for key in [
        format!("message_history/{PHONE}"),
        format!("activities/{WABA}"),
    ] {
        assert!(saved.contains_key(&key), "{key} not in {saved:?}");
    }
}

/// 20 parallel `/probe` clients while messages arrive: no write of the
/// state store fails, and a reader in another handle always finds it
/// complete. A `kill -9` in the middle of a probe flood then loses no
/// collection that completed: after the restart every event is remembered
/// and nothing is counted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_flood_fails_no_write_and_kill_9_loses_no_completed_collection() {
    let dir = temp_dir("probe-flood");
    let (sim, cfg) = setup(&dir).await;
    let store = dir.join("state.db");
    let (running, base) = start_binary(&cfg, &dir).await;
    get_text(&format!("{base}/metrics")).await; // baselines
    async fn probe(base: &str, phone: &str) {
        let url = format!("{base}/probe?target={phone}&collector=message_history");
        let r = reqwest::get(url).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let keys = [
        format!("activities/{WABA}"),
        format!("message_history/{PHONE}"),
        format!("message_history/{PHONE2}"),
    ];
    // Phase 1: messages arrive while 20 clients probe.
    let sent_total = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let (sim, base, sent_total) = (sim.clone(), base.clone(), sent_total.clone());
            tokio::spawn(async move {
                let phone = if i % 2 == 0 { PHONE } else { PHONE2 };
                for _ in 0..10 {
                    sim.add_message(phone, vec![SimEvent::new("SENT", now())]);
                    sent_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    probe(&base, phone).await;
                }
            })
        })
        .collect();
    let reader = tokio::spawn({
        let (store, keys) = (store.clone(), keys.clone());
        async move {
            let mut reads = 0;
            loop {
                let saved = stored(&store);
                for k in &keys {
                    assert!(saved.contains_key(k), "read {reads}: {k} missing");
                }
                reads += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    for c in clients {
        c.await.unwrap();
    }
    assert!(
        !reader.is_finished(),
        "the reader failed: {:?}",
        reader.await
    );
    reader.abort();
    // Every message arrived before the last probes: one more of each takes the rest in.
    probe(&base, PHONE).await;
    probe(&base, PHONE2).await;
    let m = Metrics::parse(&get_text(&format!("{base}/metrics")).await);
    assert_eq!(
        m.get("whatsapp_state_file_writes_total", &[("result", "failure")]),
        Some(0.0),
        "no write failed"
    );
    assert!(m.val("whatsapp_state_file_writes_total", &[("result", "success")]) >= 20.0);
    let remembered = m.val("whatsapp_seen_events", &[("target", PHONE)])
        + m.val("whatsapp_seen_events", &[("target", PHONE2)]);
    let total = sent_total.load(std::sync::atomic::Ordering::Relaxed) as f64;
    assert_eq!(total, 200.0);
    assert_eq!(
        sent(&m, PHONE).unwrap_or(0.0) + sent(&m, PHONE2).unwrap_or(0.0),
        total
    );

    // Phase 2: kill -9 in the middle of a flood of probes.
    let flood: Vec<_> = (0..20)
        .map(|i| {
            let url = format!(
                "{base}/probe?target={}&collector=message_history",
                if i % 2 == 0 { PHONE } else { PHONE2 }
            );
            tokio::spawn(async move {
                loop {
                    if reqwest::get(&url).await.is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(10), "the flood to be under way", || {
        let n = sim.requests("message_history", PHONE);
        async move { (n > 150).then_some(()) }
    })
    .await;
    signal(&running, "-KILL");
    for f in flood {
        f.await.unwrap();
    }
    drop(running);
    // One message while it is down: counted after the restart only if the
    // state survived (a new baseline would only remember it).
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    // A store left by kill -9 opens (redb recovers it) and holds every completed collection.
    let (restarted, base) = start_binary(&cfg, &dir).await;
    let m = Metrics::parse(&get_text(&format!("{base}/metrics")).await);
    for p in [PHONE, PHONE2] {
        assert_eq!(up(&m, "message_history", p), Some(1.0));
    }
    assert_eq!(
        sent(&m, PHONE),
        Some(1.0),
        "the downtime message, nothing again"
    );
    assert_eq!(
        sent(&m, PHONE2).unwrap_or(0.0),
        0.0,
        "nothing counted again"
    );
    let seen = m.val("whatsapp_seen_events", &[("target", PHONE)])
        + m.val("whatsapp_seen_events", &[("target", PHONE2)]);
    assert_eq!(seen, remembered + 1.0);
    assert!(remembered >= 200.0, "{remembered}");
    drop(restarted);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SIGHUP while a slow collection runs: the collection's event counts once,
/// and the store holds every kept target, during and after a clean stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_during_a_slow_collection_keeps_every_target_in_the_store() {
    let dir = temp_dir("sighup-in-flight");
    let (sim, cfg) = setup(&dir).await;
    let store = dir.join("state.db");
    let (mut running, base) = start_binary(&cfg, &dir).await;
    get_text(&format!("{base}/metrics")).await; // baselines
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    sim.set_fault(PHONE, Some(Fault::Delay(Duration::from_millis(1500))));
    let in_flight = tokio::spawn({
        let url = format!("{base}/metrics");
        async move { get_text(&url).await }
    });
    eventually(Duration::from_secs(5), "the slow collection", || {
        let n = sim.in_flight();
        async move { (n > 0).then_some(()) }
    })
    .await;
    signal(&running, "-HUP");
    let m = Metrics::parse(&in_flight.await.unwrap());
    assert_eq!(sent(&m, PHONE), Some(1.0));
    sim.set_fault(PHONE, None);
    let keys = [
        format!("activities/{WABA}"),
        format!("message_history/{PHONE}"),
        format!("message_history/{PHONE2}"),
    ];
    let saved = stored(&store);
    for k in &keys {
        assert!(saved.contains_key(k), "{k} missing after the reload");
    }
    signal(&running, "-TERM");
    exits_cleanly(&mut running).await;
    let saved = stored(&store);
    for k in &keys {
        assert!(saved.contains_key(k), "{k} missing after SIGTERM");
    }
    // The event seen in flight is remembered: after a restart only the
    // message sent while it was down counts (a lost state would take a baseline: 0).
    sim.add_message(PHONE, vec![SimEvent::new("SENT", now())]);
    let (restarted, base) = start_binary(&cfg, &dir).await;
    let m = Metrics::parse(&get_text(&format!("{base}/metrics")).await);
    assert_eq!(up(&m, "message_history", PHONE), Some(1.0));
    assert_eq!(sent(&m, PHONE), Some(1.0));
    drop(restarted);
    std::fs::remove_dir_all(&dir).unwrap();
}
