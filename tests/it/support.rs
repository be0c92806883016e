//! Shared test plumbing: simulator + real exporter on loopback, scraping,
//! and an independent parser of the classic text format.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use whatsapp_exporter::config::{Config, TOKEN_ENV};
use whatsapp_exporter::server::{self, AppState, Options};
use whatsapp_exporter::sim::Simulator;

pub const TOKEN: &str = "EAAG-test-token-0123456789";
pub const WABA: &str = "5678901234567890";
pub const PHONE: &str = "1234567890123456";
pub const PHONE2: &str = "1234567890123457";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A simulator with one WABA and two phone numbers.
pub async fn simulator() -> (Simulator, String) {
    let sim = Simulator::new(TOKEN);
    sim.add_waba(WABA);
    sim.add_phone(PHONE);
    sim.add_phone(PHONE2);
    let url = sim.start().await.expect("simulator starts");
    (sim, url)
}

/// The event counters' names, as the tests read them.
pub const STATUS: &str = "whatsapp_message_status_events_total";
/// `whatsapp_webhook_updates_total`.
pub const WEBHOOK: &str = "whatsapp_webhook_updates_total";
/// `whatsapp_webhook_update_failures_total`.
pub const FAILURES: &str = "whatsapp_webhook_update_failures_total";
/// `whatsapp_message_delivery_errors_total`.
pub const ERRORS: &str = "whatsapp_message_delivery_errors_total";
/// `whatsapp_activity_events_total`.
pub const ACTIVITY: &str = "whatsapp_activity_events_total";

/// A series of `name` (a webhook family) of PHONE in webhook state `state`.
pub fn webhook(m: &Metrics, name: &str, state: &str) -> Option<f64> {
    m.get(
        name,
        &[("phone_number_id", PHONE), ("webhook_update_state", state)],
    )
}

/// Config YAML for the simulator; `collect` lines are appended under `collect:`.
pub fn config_yaml(base_url: &str, collect: &str, extra: &str) -> String {
    format!(
        "graph_api:\n  base_url: {base_url}\n  request_timeout: 5s\n\
         accounts:\n  - waba_id: \"{WABA}\"\n    phone_number_ids: [\"{PHONE}\", \"{PHONE2}\"]\n\
         collect:\n  min_interval: 0s\n{collect}{extra}"
    )
}

/// Writes `config.yml` for the simulator at `base_url` into `dir`, reading the
/// token from a file there (`graph_api.access_token_file`), not the
/// environment; returns the config's path. For tests of the real binary.
pub fn config_file_with_token_file(base_url: &str, dir: &std::path::Path) -> PathBuf {
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let cfg = dir.join("config.yml");
    let yaml = config_yaml(base_url, "", "").replace(
        "  request_timeout: 5s\n",
        &format!(
            "  request_timeout: 5s\n  access_token_file: {}\n",
            token_file.display()
        ),
    );
    std::fs::write(&cfg, yaml).unwrap();
    cfg
}

/// A running exporter (the real router and server) on 127.0.0.1:0.
pub struct Exporter {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Exporter {
    pub async fn start(yaml: &str) -> Exporter {
        let loaded = Config::from_yaml(yaml, "test", |k| {
            (k == TOKEN_ENV).then(|| TOKEN.to_string())
        })
        .expect("valid test config");
        let state: Arc<AppState> = AppState::new(&loaded, Options::default()).expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(listener, state, async {
            let _ = rx.await;
        }));
        Exporter {
            url,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Scrapes /metrics in the classic format and parses it.
    pub async fn scrape(&self) -> Metrics {
        let body = self.scrape_text(None).await;
        Metrics::parse(&body)
    }

    /// Scrapes /metrics as Prometheus does with a scrape timeout of `seconds`.
    pub async fn scrape_with_timeout(&self, seconds: f64) -> Metrics {
        let resp = reqwest::Client::new()
            .get(format!("{}/metrics", self.url))
            .header("X-Prometheus-Scrape-Timeout-Seconds", seconds.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        Metrics::parse(&resp.text().await.unwrap())
    }

    pub async fn scrape_text(&self, accept: Option<&str>) -> String {
        let client = reqwest::Client::new();
        let mut req = client.get(format!("{}/metrics", self.url));
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        let resp = req.send().await.expect("scrape");
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }

    /// Graceful stop (writes the state file).
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parsed exposition (classic text format), written independently of the exporter.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub samples: Vec<Sample>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (name, rest) = match line.find('{') {
                Some(i) => (&line[..i], &line[i..]),
                None => {
                    let (n, v) = line.split_once(' ').expect("sample has a value");
                    samples.push(Sample {
                        name: n.to_string(),
                        labels: BTreeMap::new(),
                        value: v.trim().parse().expect("number"),
                    });
                    continue;
                }
            };
            let mut labels = BTreeMap::new();
            let bytes: Vec<char> = rest.chars().collect();
            let mut i = 1;
            loop {
                if bytes[i] == '}' {
                    i += 1;
                    break;
                }
                if bytes[i] == ',' {
                    i += 1;
                    continue;
                }
                let mut key = String::new();
                while bytes[i] != '=' {
                    key.push(bytes[i]);
                    i += 1;
                }
                assert_eq!(bytes[i + 1], '"', "label value quoted in {line}");
                i += 2;
                let mut val = String::new();
                loop {
                    match bytes[i] {
                        '\\' => {
                            val.push(match bytes[i + 1] {
                                'n' => '\n',
                                c => c,
                            });
                            i += 2;
                        }
                        '"' => {
                            i += 1;
                            break;
                        }
                        c => {
                            val.push(c);
                            i += 1;
                        }
                    }
                }
                labels.insert(key, val);
            }
            let value: String = bytes[i..].iter().collect();
            samples.push(Sample {
                name: name.to_string(),
                labels,
                value: value.trim().parse().expect("number"),
            });
        }
        Metrics { samples }
    }

    /// Samples of `name` whose labels include all of `want`.
    pub fn find(&self, name: &str, want: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && want
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The one value of `name` with these labels, or None if absent.
    pub fn get(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        let found = self.find(name, want);
        assert!(
            found.len() <= 1,
            "{name} {want:?} matches {} series",
            found.len()
        );
        found.first().map(|s| s.value)
    }

    /// The value of a series that must exist: an absent series (a misspelt
    /// name, a label never set) fails the test instead of passing as 0.
    pub fn val(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.get(name, want).unwrap_or_else(|| {
            let names: std::collections::BTreeSet<&str> =
                self.samples.iter().map(|s| s.name.as_str()).collect();
            panic!("no series {name} {want:?}; the exposition has {names:?}")
        })
    }

    /// Sum over all series of `name` matching `want`.
    /// A misspelt name fails the test: `name` must be in the exposition
    /// (though no series of it may match `want`).
    pub fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        assert!(
            self.samples.iter().any(|s| s.name == name),
            "no series named {name} at all"
        );
        self.find(name, want).iter().map(|s| s.value).sum()
    }
}

/// `whatsapp_up` of a target.
pub fn up(m: &Metrics, collector: &str, target: &str) -> Option<f64> {
    m.get(
        "whatsapp_up",
        &[("collector", collector), ("target", target)],
    )
}

/// Finds an external tool; without it, returns None after a notice, or
/// panics when `WHATSAPP_EXPORTER_E2E=required`.
pub fn external_tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let msg = format!(
            "{name} not found on PATH: install it with `apt-get install -y {package}` to run this test"
        );
        if std::env::var("WHATSAPP_EXPORTER_E2E").as_deref() == Ok("required") {
            panic!("{msg} (WHATSAPP_EXPORTER_E2E=required)");
        }
        eprintln!("SKIPPED: {msg}");
    }
    found
}

/// Polls `check` until it returns Some, or panics after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh temporary directory for one test.
/// The target records of the state store at `path`, by `collector/target`
/// (read through a read-only handle, as another process may while the exporter runs).
pub fn stored(
    path: &std::path::Path,
) -> BTreeMap<String, whatsapp_exporter::collector::state_file::TargetRecord> {
    whatsapp_exporter::collector::store::read_all(path)
        .unwrap_or_else(|e| panic!("the state store {} cannot be read: {e}", path.display()))
}

/// Replaces the state store at `path` by a JSON state file of the previous
/// release holding its records as `edit` leaves them: the next start imports it.
pub fn store_to_json(
    path: &std::path::Path,
    edit: impl FnOnce(&mut BTreeMap<String, whatsapp_exporter::collector::state_file::TargetRecord>),
) -> serde_json::Value {
    use whatsapp_exporter::collector::state_file::{StateFile, VERSION};
    let mut targets = stored(path);
    edit(&mut targets);
    let file = serde_json::to_value(StateFile {
        version: VERSION,
        targets,
    })
    .unwrap();
    std::fs::remove_file(path).unwrap();
    std::fs::write(path, file.to_string()).unwrap();
    file
}

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "wa-exporter-{name}-{}-{}",
        std::process::id(),
        now()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed on drop, so a failing test leaves nothing running.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// Kills the process and returns what it wrote to stderr (if piped).
    pub fn stop_and_read_stderr(mut self) -> String {
        use std::io::Read;
        let _ = self.0.kill();
        let _ = self.0.wait();
        let mut s = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

/// Runs `cmd`, fails the test with its output unless it succeeds, and
/// returns its stdout and stderr.
pub fn run_ok(mut cmd: std::process::Command) -> String {
    let out = cmd.output().expect("tool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}
