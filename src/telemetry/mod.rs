//! Logs and traces of the exporter itself.
//!
//! Logs: logfmt or JSON on stderr, level from `--log.level`; every line
//! carries the fields of the spans it happens in (and the trace id, when
//! tracing is on). Traces: OTLP over gRPC or HTTP/protobuf, configured by the
//! standard `OTEL_*` variables or `--tracing.otlp-endpoint`; when neither asks
//! for it no OpenTelemetry layer is installed at all. Spans are batched on a
//! background thread with a bounded queue, so a slow or dead collector costs
//! a scrape nothing: spans are dropped, never waited for.
//!
//! The access token never reaches a log line or a span: it only exists inside
//! [`crate::secret::AccessToken`], and URLs are recorded without query strings.

mod otlp;

pub use otlp::{Env, OtlpProtocol, OtlpSettings, ProcessEnv, resolve_otlp};

use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// `--log.format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `key=value` lines.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// Keeps the tracer provider alive; [`Telemetry::shutdown`] flushes it.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Longest wait for the last spans to leave on shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

impl Telemetry {
    /// Sends the spans still queued (waiting at most 5 s) and stops the exporter.
    pub fn shutdown(mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown_with_timeout(FLUSH_TIMEOUT)
        {
            tracing::warn!(error = %e, "could not flush the last spans");
        }
    }
}

/// Log filter: `level` for our lines, quieter for the HTTP and gRPC stacks.
fn log_filter(level: &str) -> anyhow::Result<EnvFilter> {
    Ok(EnvFilter::try_new(format!(
        "{level},h2=warn,hyper=warn,hyper_util=warn,reqwest=warn,rustls=warn,tonic=warn,tower=warn"
    ))?)
}

/// Installs the global subscriber: the log layer and, when `otlp` is given,
/// the OpenTelemetry layer. Must run inside the Tokio runtime (the gRPC
/// exporter starts its connection task there).
pub fn init(
    level: &str,
    format: LogFormat,
    otlp: Option<&OtlpSettings>,
) -> anyhow::Result<Telemetry> {
    let logs = match format {
        LogFormat::Logfmt => tracing_logfmt::builder()
            .layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(log_filter(level)?);
    let provider = otlp.map(otlp::build_provider).transpose()?;
    // Only the exporter's own spans (and the events in them) become trace
    // data: never the spans of the stacks that carry the traces out.
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("whatsapp-exporter"))
            .with_filter(EnvFilter::new("off,whatsapp_exporter=info"))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()?;
    if let Some(s) = otlp {
        tracing::info!(protocol = ?s.protocol, endpoint = s.endpoint.as_deref().unwrap_or("from OTEL_EXPORTER_OTLP_*"), "exporting traces over OTLP");
    }
    Ok(Telemetry { provider })
}

/// The trace id of `span`, if it is recorded by a sampled trace.
pub fn sampled_trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    (sc.is_valid() && sc.is_sampled()).then(|| sc.trace_id().to_string())
}

/// Adds W3C `traceparent` (and `tracestate`) for `span` to outgoing headers;
/// nothing when tracing is off.
pub fn inject_trace_context(span: &tracing::Span, headers: &mut reqwest::header::HeaderMap) {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
}

/// Makes `span` (a request's root span) a child of the W3C trace context in
/// incoming `headers`, if any, and records its `trace_id` field (declared
/// empty) when the trace is sampled, so its log lines name the trace.
pub fn continue_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if headers.get("traceparent").is_some() {
        let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        if cx.span().span_context().is_valid() {
            let _ = span.set_parent(cx);
        }
    }
    if let Some(id) = sampled_trace_id(span) {
        span.record("trace_id", id.as_str());
    }
}

struct HeaderInjector<'a>(&'a mut reqwest::header::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(key.as_bytes()),
            reqwest::header::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

struct HeaderExtractor<'a>(&'a axum::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_context_no_traceparent() {
        let mut h = reqwest::header::HeaderMap::new();
        inject_trace_context(&tracing::Span::none(), &mut h);
        assert!(h.is_empty());
        assert_eq!(sampled_trace_id(&tracing::Span::none()), None);
    }
}
