//! The HTTP side: `/metrics` (collect, then encode in the negotiated format),
//! a landing page, health and readiness, and config reload. `run` (in
//! [`listen`]) takes its listener and shutdown future so tests serve the
//! real router on `127.0.0.1:0`.

mod listen;

pub use listen::run;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::collector::discovery::Discovery;
use crate::collector::{Collectors, unix_now_f64};
use crate::config::{CollectorKind, Config, LoadedConfig, Shard, TargetSpec};
use crate::graph::GraphClient;
use crate::graph::budget::{Budget, BudgetSettings};
use crate::metrics::Metrics;
use crate::metrics::encode::{Format, encode, only_target, with_unfinished_down};
use crate::telemetry;
use crate::web::{self, WebConfig};

/// Version and revision, as `--version` prints them.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git revision baked in by build.rs, or `unknown`.
pub const REVISION: &str = env!("WHATSAPP_EXPORTER_REVISION");

/// How the server runs, besides the configuration file's contents.
#[derive(Clone)]
pub struct Options {
    /// Where metrics are served.
    pub telemetry_path: String,
    /// Subtracted from Prometheus' scrape timeout to get the scrape deadline.
    pub timeout_offset: Duration,
    /// The file `POST /-/reload` and SIGHUP read again; `None` (demo, tests) cannot reload.
    pub config_file: Option<PathBuf>,
    /// `--web.config.file`: TLS, basic auth, headers.
    pub web: Arc<WebConfig>,
    /// On shutdown, how long requests in flight may take to finish.
    pub shutdown_timeout: Duration,
    /// `--shard`: overrides the config file's `shard:`.
    pub shard: Option<Shard>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            telemetry_path: "/metrics".into(),
            timeout_offset: Duration::from_millis(500),
            config_file: None,
            web: WebConfig::none(),
            shutdown_timeout: Duration::from_secs(15),
            shard: None,
        }
    }
}

/// Everything a request needs; built once.
pub struct AppState {
    /// Read-only after setup.
    pub registry: Registry,
    metrics: Metrics,
    budget: Arc<Budget>,
    /// The targets and their collection; replaced by a reload or a discovery.
    collectors: RwLock<Arc<Collectors>>,
    /// The targets the configuration file names.
    config_targets: RwLock<Vec<TargetSpec>>,
    /// Phone number listing; replaced by a reload.
    discovery: RwLock<Arc<Discovery>>,
    /// The shard of the targets this process collects, if sharded.
    shard: RwLock<Option<Shard>>,
    /// Server options.
    pub options: Options,
    reload_lock: tokio::sync::Mutex<()>,
}

fn budget_settings(loaded: &LoadedConfig) -> BudgetSettings {
    let c = &loaded.config.collect;
    BudgetSettings {
        threshold_percent: c.usage_threshold_percent,
        backoff_initial: c.backoff_initial,
        backoff_max: c.backoff_max,
        max_requests_per_hour: c.max_requests_per_hour,
    }
}

impl AppState {
    /// Builds registry, metrics, client and collectors for a configuration.
    pub fn new(loaded: &LoadedConfig, options: Options) -> anyhow::Result<Arc<Self>> {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry, VERSION, REVISION);
        let budget = Arc::new(Budget::new(budget_settings(loaded)));
        let client = GraphClient::new(&loaded.config.graph_api, budget.clone(), metrics.clone())?;
        let shard = effective_shard(options.shard, loaded).map_err(anyhow::Error::msg)?;
        metrics.set_shard(shard.map(|s| (s.index, s.count)));
        let collectors = Arc::new(Collectors::new(
            loaded,
            &in_shard(shard, loaded.targets.clone()),
            client,
            metrics.clone(),
        ));
        metrics.reload_successful.set(1);
        metrics.reload_timestamp.set(unix_now_f64());
        Ok(Arc::new(AppState {
            registry,
            metrics,
            budget,
            collectors: RwLock::new(collectors),
            config_targets: RwLock::new(loaded.targets.clone()),
            discovery: RwLock::new(Arc::new(Discovery::new(loaded))),
            shard: RwLock::new(shard),
            options,
            reload_lock: tokio::sync::Mutex::new(()),
        }))
    }

    /// The collectors of the configuration in force.
    pub fn collectors(&self) -> Arc<Collectors> {
        self.collectors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the configuration file again and switches to it: kept targets
    /// keep their counters and seen-state, removed ones disappear, new ones
    /// start with a baseline. A bad file changes nothing. Returns the number
    /// of targets, or why the file was rejected.
    pub async fn reload(&self) -> Result<usize, String> {
        let Some(path) = self.options.config_file.clone() else {
            // Nothing was loaded from a file: nothing to reload, no failure to record.
            return Err("no --config.file to reload (demo mode)".into());
        };
        let _one_at_a_time = self.reload_lock.lock().await;
        let result = self.try_reload(&path).await;
        match &result {
            Ok(n) => {
                self.metrics.reload_successful.set(1);
                self.metrics.reload_timestamp.set(unix_now_f64());
                tracing::info!(targets = n, "configuration reloaded");
            }
            Err(e) => {
                self.metrics.reload_successful.set(0);
                tracing::error!(error = %e, "configuration reload failed; the previous configuration stays in force");
            }
        }
        result
    }

    async fn try_reload(&self, path: &std::path::Path) -> Result<usize, String> {
        let loaded = Config::load(path).map_err(|e| e.to_string().trim_end().to_string())?;
        let budget = Arc::new(self.budget.with_settings(budget_settings(&loaded)));
        let client = GraphClient::new(&loaded.config.graph_api, budget, self.metrics.clone())
            .map_err(|e| format!("cannot build the Graph API client: {e}"))?;
        let shard = effective_shard(self.options.shard, &loaded)?;
        let discovery = Arc::new(Discovery::new(&loaded));
        discovery.take_over(&self.discovery()).await;
        let targets = in_shard(shard, merge(&loaded.targets, discovery.targets().await));
        let new = Arc::new(self.collectors().reload(&loaded, &targets, client).await);
        *self.collectors.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
        *self.discovery.write().unwrap_or_else(|p| p.into_inner()) = discovery;
        *self
            .config_targets
            .write()
            .unwrap_or_else(|p| p.into_inner()) = loaded.targets.clone();
        *self.shard.write().unwrap_or_else(|p| p.into_inner()) = shard;
        self.metrics.set_shard(shard.map(|s| (s.index, s.count)));
        new.save_state().await;
        Ok(targets.len())
    }

    fn discovery(&self) -> Arc<Discovery> {
        self.discovery
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Lists phone numbers if `discovery.interval` has passed; when the
    /// discovered numbers changed, switches to the new target list.
    pub async fn refresh_discovery(&self) {
        let discovery = self.discovery();
        if !discovery
            .refresh(self.collectors().client(), &self.metrics)
            .await
        {
            return;
        }
        let _one_at_a_time = self.reload_lock.lock().await;
        if !Arc::ptr_eq(&discovery, &self.discovery()) {
            return; // a reload came first and took the new list over
        }
        let configured = self
            .config_targets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let shard = *self.shard.read().unwrap_or_else(|p| p.into_inner());
        let targets = in_shard(shard, merge(&configured, discovery.targets().await));
        let new = Arc::new(self.collectors().retarget(&targets).await);
        *self.collectors.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
        new.save_state().await;
    }
}

/// `--shard` if given, else the config file's `shard:`.
fn effective_shard(flag: Option<Shard>, loaded: &LoadedConfig) -> Result<Option<Shard>, String> {
    match (flag, &loaded.config.shard) {
        (Some(s), _) => Ok(Some(s)),
        (None, Some(c)) => Shard::from_config(c, |k| std::env::var(k).ok()).map(Some),
        (None, None) => Ok(None),
    }
}

/// The targets of `shard` (all of them when not sharded).
fn in_shard(shard: Option<Shard>, targets: Vec<TargetSpec>) -> Vec<TargetSpec> {
    match shard {
        Some(s) => targets.into_iter().filter(|t| s.owns(t)).collect(),
        None => targets,
    }
}

/// The configured targets, then the discovered ones not configured already.
fn merge(configured: &[TargetSpec], discovered: Vec<TargetSpec>) -> Vec<TargetSpec> {
    let mut seen: std::collections::HashSet<(CollectorKind, String)> = configured
        .iter()
        .map(|t| (t.collector, t.id.clone()))
        .collect();
    let mut out = configured.to_vec();
    out.extend(
        discovered
            .into_iter()
            .filter(|t| seen.insert((t.collector, t.id.clone()))),
    );
    out
}

/// The router: telemetry path, landing page, health, readiness and reload,
/// behind the web configuration's authentication and headers.
pub fn router(state: Arc<AppState>) -> Router {
    let path = state.options.telemetry_path.clone();
    let web = state.options.web.clone();
    Router::new()
        .route(&path, get(metrics))
        .route("/", get(landing))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload))
        .route("/probe", get(probe))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(web, web::guard))
}

async fn healthy() -> &'static str {
    "Healthy\n"
}

/// Ready once the configuration is loaded, which it is before the server
/// listens; never gated on the Graph API.
async fn ready() -> &'static str {
    "Ready\n"
}

async fn reload(State(state): State<Arc<AppState>>) -> Response {
    match state.reload().await {
        Ok(n) => format!("configuration reloaded: {n} targets\n").into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("configuration not reloaded, the previous one stays in force:\n{e}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let span = tracing::info_span!(
        "scrape",
        otel.kind = "server",
        targets = state.collectors().targets().len(),
        format = Empty,
        deadline_ms = Empty,
        unfinished = Empty,
        trace_id = Empty,
    );
    span.set_attribute("http.request.method", "GET");
    span.set_attribute("url.path", state.options.telemetry_path.clone());
    telemetry::continue_trace(&span, &headers);
    scrape(state, headers, span.clone(), None)
        .instrument(span)
        .await
}

/// One target of `/probe`.
struct Probe {
    collector: String,
    target: Arc<crate::collector::Target>,
}

async fn probe(
    State(state): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let bad = |msg: String| (StatusCode::BAD_REQUEST, format!("{msg}\n")).into_response();
    let Some(id) = q.get("target").map(|t| t.trim()).filter(|t| !t.is_empty()) else {
        return bad("probe: the target parameter is missing: /probe?target=<WABA or phone number id>&collector=<activities|message_history>".into());
    };
    let collector = match q.get("collector").map(String::as_str) {
        Some(c @ ("activities" | "message_history")) => c,
        Some(other) => {
            return bad(format!(
                "probe: unknown collector {other:?}: activities or message_history"
            ));
        }
        None => {
            return bad(
                "probe: the collector parameter is missing: activities or message_history".into(),
            );
        }
    };
    let Some(target) = state.collectors().find(collector, id) else {
        return bad(format!(
            "probe: {collector} target {id:?} is not collected by this process: not in the configuration, not discovered, or in another shard"
        ));
    };
    let span = tracing::info_span!(
        "probe",
        otel.kind = "server",
        collector,
        target = id,
        format = Empty,
        deadline_ms = Empty,
        unfinished = Empty,
        trace_id = Empty,
    );
    telemetry::continue_trace(&span, &headers);
    let probe = Probe {
        collector: collector.to_string(),
        target,
    };
    scrape(state, headers, span.clone(), Some(probe))
        .instrument(span)
        .await
}

/// A scrape of every target, or (`/probe`) of one, answered with its series only.
async fn scrape(
    state: Arc<AppState>,
    headers: HeaderMap,
    span: tracing::Span,
    probe: Option<Probe>,
) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let deadline = scrape_deadline(&headers, state.options.timeout_offset);
    span.record("format", format.name());
    if let Some(d) = deadline {
        span.record(
            "deadline_ms",
            d.saturating_duration_since(Instant::now()).as_millis() as u64,
        );
    }
    // Collect in a task of its own: a scraper hanging up, or the deadline
    // passing, does not cut a collection short; it goes on and warms the
    // values the next scrape serves. (So the scrape span lasts until it ends.)
    let task = {
        let state = state.clone();
        let one = probe.as_ref().map(|p| p.target.clone());
        tokio::spawn(
            async move {
                match one {
                    Some(t) => state.collectors().collect(vec![t], deadline).await,
                    None => {
                        state.refresh_discovery().await;
                        state.collectors().collect_all(deadline).await
                    }
                }
            }
            .instrument(span.clone()),
        )
    };
    let joined = match deadline {
        Some(d) => tokio::time::timeout_at(d.into(), task).await,
        None => Ok(task.await),
    };
    let unfinished = match joined {
        Ok(Ok(())) => Vec::new(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "collection task failed");
            Vec::new()
        }
        Err(_) => {
            let unfinished = state.collectors().unfinished();
            tracing::warn!(
                unfinished = unfinished.len(),
                "scrape deadline reached: serving the last values, unfinished targets report whatsapp_up 0"
            );
            unfinished
        }
    };
    span.record("unfinished", unfinished.len());
    let response = match encode(&state.registry, format) {
        Ok(body) => {
            let body = with_unfinished_down(&body, &unfinished);
            let body = match &probe {
                Some(p) => only_target(&body, &p.collector, &p.target.labels.target),
                None => body,
            };
            ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    };
    span.set_attribute(
        "http.response.status_code",
        i64::from(response.status().as_u16()),
    );
    response
}

/// `X-Prometheus-Scrape-Timeout-Seconds` minus the offset, from now.
fn scrape_deadline(headers: &HeaderMap, offset: Duration) -> Option<Instant> {
    let secs: f64 = headers
        .get("x-prometheus-scrape-timeout-seconds")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if !secs.is_finite() || secs <= 0.0 {
        return None;
    }
    let budget = (secs - offset.as_secs_f64()).max(0.0);
    Some(Instant::now() + Duration::from_secs_f64(budget.min(3600.0)))
}

async fn landing(State(state): State<Arc<AppState>>) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><title>WhatsApp Exporter</title></head><body>\
         <h1>WhatsApp Exporter</h1><p>version {VERSION} (revision {REVISION})</p><ul>\
         <li><a href=\"{0}\">{0}</a>: metrics</li>\
         <li><a href=\"/-/healthy\">/-/healthy</a>: the process is up</li>\
         <li><a href=\"/-/ready\">/-/ready</a>: the configuration is loaded</li>\
         <li>POST /-/reload: read the configuration file again</li>\
         <li>/probe?target=ID&amp;collector=activities|message_history: one target only</li></ul></body></html>",
        state.options.telemetry_path
    ))
}
