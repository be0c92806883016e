//! The HTTP side: `/metrics` (collect, then encode in the negotiated format)
//! and a landing page. `run` takes its listener and shutdown future so tests
//! serve the real router on `127.0.0.1:0`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::collector::Collectors;
use crate::config::LoadedConfig;
use crate::graph::GraphClient;
use crate::graph::budget::{Budget, BudgetSettings};
use crate::metrics::Metrics;
use crate::metrics::encode::{Format, encode, with_unfinished_down};
use crate::telemetry;

/// Version and revision, as `--version` prints them.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git revision baked in by build.rs, or `unknown`.
pub const REVISION: &str = env!("WHATSAPP_EXPORTER_REVISION");

/// Everything a request needs; built once.
pub struct AppState {
    /// Read-only after setup.
    pub registry: Registry,
    /// The targets and their collection.
    pub collectors: Arc<Collectors>,
    /// Where metrics are served.
    pub telemetry_path: String,
    /// Subtracted from Prometheus' scrape timeout to get the scrape deadline.
    pub timeout_offset: Duration,
}

impl AppState {
    /// Builds registry, metrics, client and collectors for a configuration.
    pub fn new(
        loaded: &LoadedConfig,
        telemetry_path: &str,
        timeout_offset: Duration,
    ) -> anyhow::Result<Arc<Self>> {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry, VERSION, REVISION);
        let c = &loaded.config.collect;
        let budget = Arc::new(Budget::new(BudgetSettings {
            threshold_percent: c.usage_threshold_percent,
            backoff_initial: c.backoff_initial,
            backoff_max: c.backoff_max,
            max_requests_per_hour: c.max_requests_per_hour,
        }));
        let client = GraphClient::new(&loaded.config.graph_api, budget, metrics.clone())?;
        let collectors = Arc::new(Collectors::new(loaded, client, metrics));
        Ok(Arc::new(AppState {
            registry,
            collectors,
            telemetry_path: telemetry_path.to_string(),
            timeout_offset,
        }))
    }
}

/// The router: telemetry path and landing page.
pub fn router(state: Arc<AppState>) -> Router {
    let path = state.telemetry_path.clone();
    Router::new()
        .route(&path, get(metrics))
        .route("/", get(landing))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let span = tracing::info_span!(
        "scrape",
        otel.kind = "server",
        targets = state.collectors.targets().len(),
        format = Empty,
        deadline_ms = Empty,
        unfinished = Empty,
        trace_id = Empty,
    );
    span.set_attribute("http.request.method", "GET");
    span.set_attribute("url.path", state.telemetry_path.clone());
    telemetry::continue_trace(&span, &headers);
    if let Some(id) = telemetry::sampled_trace_id(&span) {
        span.record("trace_id", id.as_str());
    }
    scrape(state, headers, span.clone()).instrument(span).await
}

async fn scrape(state: Arc<AppState>, headers: HeaderMap, span: tracing::Span) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let deadline = scrape_deadline(&headers, state.timeout_offset);
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
    let collectors = state.collectors.clone();
    let task = tokio::spawn(
        async move { collectors.collect_all(deadline).await }.instrument(span.clone()),
    );
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
            let unfinished = state.collectors.unfinished();
            tracing::warn!(
                unfinished = unfinished.len(),
                "scrape deadline reached: serving the last values, unfinished targets report whatsapp_up 0"
            );
            unfinished
        }
    };
    span.record("unfinished", unfinished.len());
    let response = match encode(&state.registry, format) {
        Ok(body) => (
            [(header::CONTENT_TYPE, format.content_type())],
            with_unfinished_down(&body, &unfinished),
        )
            .into_response(),
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
         <h1>WhatsApp Exporter</h1><p>version {VERSION} (revision {REVISION})</p>\
         <p><a href=\"{0}\">{0}</a></p></body></html>",
        state.telemetry_path
    ))
}

/// Serves until `shutdown` completes, then writes the state file.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let collectors = state.collectors.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    collectors.save_state().await;
    Ok(())
}
