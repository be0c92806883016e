//! The HTTP side: `/metrics` (collect, then encode in the negotiated format)
//! and a landing page. `run` takes its listener and shutdown future so tests
//! serve the real router on `127.0.0.1:0`.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::collector::Collectors;
use crate::config::LoadedConfig;
use crate::graph::GraphClient;
use crate::metrics::Metrics;
use crate::metrics::encode::{Format, encode};

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
}

impl AppState {
    /// Builds registry, metrics, client and collectors for a configuration.
    pub fn new(loaded: &LoadedConfig, telemetry_path: &str) -> anyhow::Result<Arc<Self>> {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry, VERSION, REVISION);
        let client = GraphClient::new(&loaded.config.graph_api, metrics.clone())?;
        let collectors = Arc::new(Collectors::new(loaded, client, metrics));
        Ok(Arc::new(AppState {
            registry,
            collectors,
            telemetry_path: telemetry_path.to_string(),
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
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    // Collect in a task of its own, so a scraper hanging up does not cut a
    // collection short halfway.
    let collectors = state.collectors.clone();
    if let Err(e) = tokio::spawn(async move { collectors.collect_all().await }).await {
        tracing::error!(error = %e, "collection task failed");
    }
    match encode(&state.registry, format) {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
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
