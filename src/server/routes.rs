//! The router and its handlers: `/metrics` and `/probe` (collect, then
//! answer in the negotiated format), the landing page, health, readiness
//! and reload.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::collector::Selection;
use crate::config::CollectorKind;
use crate::metrics::encode::Format;
use crate::metrics::{Exposition, Scope, TargetLabels};
use crate::server::state::{AppState, REVISION, VERSION};
use crate::telemetry;
use crate::web;

/// The router: telemetry path, landing page, health, readiness, reload and
/// probe, behind the web configuration's authentication and headers.
pub fn router(state: Arc<AppState>) -> Router {
    let path = state.options.telemetry_path.clone();
    let guard = web::Guard {
        web: state.options.web.clone(),
        http: state.http.clone(),
    };
    Router::new()
        .route(&path, get(metrics))
        .route("/", get(landing))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload))
        .route("/probe", get(probe))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(guard, web::guard))
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
    match state.fleet.reload().await {
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
        targets = state.fleet.current().members().len(),
        format = Empty,
        deadline_ms = Empty,
        unfinished = Empty,
        trace_id = Empty,
    );
    span.set_attribute("http.request.method", "GET");
    span.set_attribute("url.path", state.options.telemetry_path.clone());
    telemetry::continue_trace(&span, &headers);
    scrape(state, headers, span.clone(), Selection::All)
        .instrument(span)
        .await
}

/// `/probe?target=ID&collector=KIND`.
#[derive(Debug, Deserialize)]
struct ProbeQuery {
    target: Option<String>,
    collector: Option<CollectorKind>,
}

fn bad_request(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, format!("probe: {msg}\n")).into_response()
}

async fn probe(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ProbeQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return bad_request(e.body_text()),
    };
    let Some(id) = q.target.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
        return bad_request(format!(
            "the target parameter is missing: /probe?target=<WABA or phone number id>&collector=<{}>",
            CollectorKind::ALL.map(CollectorKind::as_str).join("|")
        ));
    };
    let Some(collector) = q.collector else {
        return bad_request(format!(
            "the collector parameter is missing: {}",
            CollectorKind::choices()
        ));
    };
    let target = TargetLabels {
        collector: collector.as_str(),
        target: id.to_string(),
    };
    let span = tracing::info_span!(
        "probe",
        otel.kind = "server",
        collector = collector.as_str(),
        target = id,
        format = Empty,
        deadline_ms = Empty,
        unfinished = Empty,
        trace_id = Empty,
    );
    telemetry::continue_trace(&span, &headers);
    scrape(state, headers, span.clone(), Selection::One(target))
        .instrument(span)
        .await
}

/// A scrape of every target, or (`/probe`) of one, answered with its series only.
async fn scrape(
    state: Arc<AppState>,
    headers: HeaderMap,
    span: tracing::Span,
    selection: Selection,
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
    let only = match &selection {
        Selection::One(t) => Some(t.clone()),
        Selection::All => None,
    };
    let down = match state.fleet.collect(selection, deadline).await {
        Ok(unfinished) => unfinished,
        Err(e) => {
            let what = only.map_or(String::new(), |t| {
                format!("{} target {:?} is ", t.collector, t.target)
            });
            return bad_request(format!("{what}{e}"));
        }
    };
    span.record("unfinished", down.len());
    let scope = Scope { only, down };
    let response = match encode_answer(state.exposition.clone(), format, scope).await {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
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

/// The answer for `scope` in `format`. Its parts, one per family, are made
/// on Tokio's blocking pool by as many threads as there are CPUs, each taking
/// the next family not yet taken, and joined in order: the largest answers
/// (10,000 numbers, about 280,000 series) take a quarter of a second on one
/// core, which a scrape would otherwise wait out on one core while holding
/// up one of the server's workers.
async fn encode_answer(
    exposition: Arc<Exposition>,
    format: Format,
    scope: Scope,
) -> Result<String, String> {
    let parts = exposition.parts();
    let threads = encode_threads().min(parts).max(1);
    let scope = Arc::new(scope);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::with_capacity(threads);
    for _ in 0..threads {
        let (exposition, scope, next) = (exposition.clone(), scope.clone(), next.clone());
        workers.push(tokio::task::spawn_blocking(move || {
            let mut made = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= exposition.parts() {
                    return Ok::<_, std::fmt::Error>(made);
                }
                made.push((i, exposition.encode_part(i, format, &scope)?));
            }
        }));
    }
    let mut made = vec![String::new(); parts];
    for w in workers {
        let done = w
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        for (i, part) in done {
            made[i] = part;
        }
    }
    Ok(Exposition::join(&made, format))
}

/// Threads that encode one answer: the CPUs this process may use, read once.
fn encode_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
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
    let choices = CollectorKind::ALL.map(CollectorKind::as_str).join("|");
    Html(format!(
        "<!doctype html><html><head><title>WhatsApp Exporter</title></head><body>\
         <h1>WhatsApp Exporter</h1><p>version {VERSION} (revision {REVISION})</p><ul>\
         <li><a href=\"{0}\">{0}</a>: metrics</li>\
         <li><a href=\"/-/healthy\">/-/healthy</a>: the process is up</li>\
         <li><a href=\"/-/ready\">/-/ready</a>: the configuration is loaded</li>\
         <li>POST /-/reload: read the configuration file again</li>\
         <li>/probe?target=ID&amp;collector={choices}: one target only</li></ul></body></html>",
        state.options.telemetry_path
    ))
}
