//! One `reqwest::Client` for the process, talking to the configured base URL.
//!
//! Every request: token in `Authorization: Bearer` only, a per-request
//! timeout that covers the body, a cap on the body size, and the request
//! metrics (`whatsapp_graph_api_*`, the API group only). Anything taken from a response body is
//! redacted of the token before it becomes an error message.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::Status;
use rand::Rng;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use url::form_urlencoded;

use crate::config::GraphApiConfig;
use crate::error::GraphError;
use crate::graph::budget::Budget;
use crate::graph::edge::Edge;
use crate::graph::model::{Body, ErrorBody, Page, Paging, Record};
use crate::graph::paging::{PageSource, PageVisitor};
use crate::graph::usage::Usage;
use crate::metrics::ApiMetrics;
use crate::secret::AccessToken;
use crate::telemetry::{inject_trace_context, sampled_trace_id};

/// First pause before a retry; doubled each attempt, with jitter.
const RETRY_BASE: Duration = Duration::from_millis(250);
/// Longest pause before a retry.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Shared Graph API client.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
    version: String,
    timeout: Duration,
    max_bytes: usize,
    max_retries: u32,
    budget: Arc<Budget>,
    metrics: ApiMetrics,
}

/// The pages of one edge of one node: a [`PageSource`] for the pager.
#[derive(Clone, Copy)]
pub struct EdgeRequest<'a> {
    /// The client that fetches them.
    pub client: &'a GraphClient,
    /// Which edge.
    pub edge: Edge,
    /// WABA id or phone number id.
    pub id: &'a str,
    /// Token for this node.
    pub token: &'a AccessToken,
    /// `fields=` value.
    pub fields: &'a str,
    /// `limit=` value.
    pub limit: u32,
    /// No retry starts after this (the scrape deadline).
    pub deadline: Option<Instant>,
}

impl<T: Record + Send> PageSource<T> for EdgeRequest<'_> {
    async fn fetch(&mut self, after: Option<&str>) -> Result<Page<T>, GraphError> {
        self.client.get(self, after).await
    }

    /// The page decoded with its strings borrowed from the response body.
    async fn fetch_into<V: PageVisitor<T> + Send>(
        &mut self,
        after: Option<&str>,
        visitor: &mut V,
    ) -> Result<(V::Out, Option<Paging>), GraphError> {
        let mut decode = |body: &[u8]| visit_borrowed(body, visitor);
        self.client.get_with(self, after, &mut decode).await
    }

    fn walk_failed(&self, error: &GraphError) {
        self.client
            .metrics
            .error(self.edge.label(), error.error_code());
    }
}

impl GraphClient {
    /// Builds the client from the `graph_api` section.
    pub fn new(
        cfg: &GraphApiConfig,
        budget: Arc<Budget>,
        metrics: ApiMetrics,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("whatsapp-exporter/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(cfg.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(GraphClient {
            http,
            base: cfg.base_url.trim_end_matches('/').to_string(),
            version: cfg.version.clone(),
            timeout: cfg.request_timeout,
            max_bytes: cfg.max_response_bytes,
            max_retries: cfg.max_retries,
            budget,
            metrics,
        })
    }

    /// The budget this client spends.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Reads a node itself (`req.edge` is a node read, like
    /// [`Edge::HealthStatus`]), as a page is read: budget, retries, usage.
    pub async fn get_node<B: Body>(&self, req: &EdgeRequest<'_>) -> Result<B, GraphError> {
        self.get(req, None).await
    }

    /// Fetches one page or node: asks the budget first, retries transient failures
    /// (never past `req.deadline`), and feeds every response's usage headers
    /// and errors back to the budget.
    async fn get<B: Body>(
        &self,
        req: &EdgeRequest<'_>,
        after: Option<&str>,
    ) -> Result<B, GraphError> {
        self.get_with(req, after, &mut |body: &[u8]| B::decode(body))
            .await
    }

    /// [`GraphClient::get`], the body of a successful response handed to
    /// `decode` (which may be called again on a retry after its error).
    async fn get_with<R>(
        &self,
        req: &EdgeRequest<'_>,
        after: Option<&str>,
        decode: &mut (impl FnMut(&[u8]) -> Result<R, serde_json::Error> + Send),
    ) -> Result<R, GraphError> {
        let mut attempt = 0;
        loop {
            if let Err(hold) = self.budget.acquire(req.id, req.token) {
                let wait = hold.until().saturating_duration_since(Instant::now());
                return Err(GraphError::Throttled(wait));
            }
            let span = tracing::info_span!(
                "graph_api_request",
                otel.kind = "client",
                endpoint = req.edge.label(),
                attempt = attempt + 1,
                http.response.status_code = Empty,
                http.response.body.size = Empty,
                graph.error_code = Empty,
                error.type = Empty,
                duration_ms = Empty,
            );
            span.set_attribute("http.request.method", "GET");
            let (result, usage) = self.attempt(req, after, decode).instrument(span).await;
            self.record_usage(req.id, &usage);
            self.budget
                .observe(req.id, req.token, &usage, result.as_ref().err());
            let err = match result {
                Ok(page) => return Ok(page),
                Err(e) => e,
            };
            let pause = retry_pause(attempt);
            let in_time = req
                .deadline
                .is_none_or(|d| Instant::now() + pause + Duration::from_millis(50) < d);
            if attempt >= self.max_retries || !err.is_retryable() || !in_time {
                return Err(err);
            }
            attempt += 1;
            self.metrics.retry(req.edge.label());
            tracing::debug!(attempt, error_code = %err.error_code(), "retrying");
            tokio::time::sleep(pause).await;
        }
    }

    fn record_usage(&self, target: &str, usage: &Usage) {
        for (usage_type, metric, v) in &usage.values {
            self.metrics.usage(target, usage_type, metric, *v);
        }
        if let Some(r) = usage.regain {
            self.metrics.regain(target, r.as_secs_f64());
        }
    }

    /// One HTTP request: fetch and decode, recording the request metrics.
    async fn attempt<R>(
        &self,
        req: &EdgeRequest<'_>,
        after: Option<&str>,
        decode: &mut impl FnMut(&[u8]) -> Result<R, serde_json::Error>,
    ) -> (Result<R, GraphError>, Usage) {
        let endpoint = req.edge.label();
        let start = Instant::now();
        let mut usage = Usage::default();
        let result = tokio::time::timeout(self.timeout, self.fetch(req, after, &mut usage)).await;
        let elapsed = start.elapsed();
        let span = tracing::Span::current();
        // The bucket links to this request's trace when it is sampled.
        self.metrics
            .observe_duration(endpoint, elapsed.as_secs_f64(), sampled_trace_id(&span));
        let result = match result {
            Ok(Ok((status, body))) => decode_with(status, &body, req.token, decode),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(GraphError::Timeout(self.timeout)),
        };
        span.record("duration_ms", elapsed.as_millis() as u64);
        if let Err(e) = &result {
            self.metrics.error(endpoint, e.error_code());
            span.record("error.type", e.error_code().as_ref());
            if let GraphError::Api { code, .. } = e {
                span.record("graph.error_code", code);
            }
            span.set_status(Status::error(e.to_string()));
        }
        tracing::debug!("graph api request");
        (result, usage)
    }

    /// Sends the request and reads the body up to the cap.
    async fn fetch(
        &self,
        req: &EdgeRequest<'_>,
        after: Option<&str>,
        usage: &mut Usage,
    ) -> Result<(u16, Vec<u8>), GraphError> {
        let url = request_url(
            &self.base,
            &self.version,
            (req.edge, req.id),
            (req.fields, req.limit),
            after,
        );
        let span = tracing::Span::current();
        if !span.is_disabled() {
            // The address without its query (no cursor in a span).
            let path = url.split_once('?').map_or(url.as_str(), |(p, _)| p);
            span.set_attribute("url.full", path.to_string());
        }
        let mut headers = reqwest::header::HeaderMap::new();
        inject_trace_context(&span, &mut headers);
        let mut resp = self
            .http
            .get(&url)
            .headers(headers)
            .bearer_auth(req.token.expose())
            .send()
            .await
            .map_err(|e| transport_error(e, req.token, self.timeout))?;
        let status = resp.status().as_u16();
        span.record("http.response.status_code", status);
        // Header values are redacted like the body: they become label values.
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| req.token.redact(v))
        };
        *usage = Usage::parse(
            header("x-app-usage").as_deref(),
            header("x-business-use-case-usage").as_deref(),
        );
        self.metrics.request(req.edge.label(), status);
        let announced = resp.content_length();
        if announced.is_some_and(|n| n > self.max_bytes as u64) {
            return Err(GraphError::TooLarge(self.max_bytes));
        }
        // Sized once from the announced length, not grown and copied chunk
        // by chunk; a length announced but not sent reserves at most 1 MiB.
        let mut body = Vec::with_capacity(announced.map_or(0, |n| n as usize).min(PRESIZE_MAX));
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| transport_error(e, req.token, self.timeout))?
        {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(GraphError::TooLarge(self.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        span.record("http.response.body.size", body.len() as u64);
        Ok((status, body))
    }
}

/// The address of a request: the node or edge, `fields`, `limit` (edges
/// only) and the cursor, written once with its query form-encoded as
/// reqwest's `query` would, so that reqwest parses it once and serialises
/// nothing again.
fn request_url(
    base: &str,
    version: &str,
    (edge, id): (Edge, &str),
    (fields, limit): (&str, u32),
    after: Option<&str>,
) -> String {
    let mut url = String::with_capacity(base.len() + fields.len() * 2 + 96);
    let _ = write!(url, "{base}/{version}/{id}");
    if let Some(path) = edge.path() {
        url.push('/');
        url.push_str(path);
    }
    url.push_str("?fields=");
    url.extend(form_urlencoded::byte_serialize(fields.as_bytes()));
    if edge.path().is_some() {
        let _ = write!(url, "&limit={limit}");
    }
    if let Some(after) = after {
        url.push_str("&after=");
        url.extend(form_urlencoded::byte_serialize(after.as_bytes()));
    }
    url
}

/// The most a response's announced length reserves up front.
const PRESIZE_MAX: usize = 1 << 20;

/// Pause before retry number `attempt + 1`: exponential, capped, with jitter.
fn retry_pause(attempt: u32) -> Duration {
    let base = RETRY_BASE.as_secs_f64() * 2f64.powi(attempt.min(16) as i32);
    let capped = base.min(RETRY_MAX.as_secs_f64());
    Duration::from_secs_f64(capped * rand::rng().random_range(0.5..=1.0))
}

fn transport_error(e: reqwest::Error, token: &AccessToken, timeout: Duration) -> GraphError {
    if e.is_timeout() {
        return GraphError::Timeout(timeout);
    }
    let e = e.without_url();
    // The source chain says why (connection refused, reset, ...).
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    GraphError::Network(token.redact(&msg))
}

/// Turns a complete response (status and body) into a page or an error.
/// The body is redacted of `token` first, so no value taken from it (a
/// label value, an error message) can carry it.
pub fn decode_response<T: Record>(
    status: u16,
    body: &[u8],
    token: &AccessToken,
) -> Result<Page<T>, GraphError> {
    decode_body(status, body, token)
}

/// [`decode_response`] for any [`Body`]: a page or a node.
pub fn decode_body<B: Body>(
    status: u16,
    body: &[u8],
    token: &AccessToken,
) -> Result<B, GraphError> {
    decode_with(status, body, token, &mut |b: &[u8]| B::decode(b))
}

/// [`decode_response`] as the client reads pages: the page decoded with its
/// strings borrowed from the (redacted) body and handed to `visitor`;
/// returns what the visitor made of it and the page's paging.
pub fn decode_response_into<T: Record, V: PageVisitor<T>>(
    status: u16,
    body: &[u8],
    token: &AccessToken,
    visitor: &mut V,
) -> Result<(V::Out, Option<Paging>), GraphError> {
    decode_with(status, body, token, &mut |b: &[u8]| {
        visit_borrowed(b, visitor)
    })
}

/// A successful body read as a page borrowing from it, handed to `visitor`.
fn visit_borrowed<T: Record, V: PageVisitor<T>>(
    body: &[u8],
    visitor: &mut V,
) -> Result<(V::Out, Option<Paging>), serde_json::Error> {
    let body = std::str::from_utf8(body).map_err(serde::de::Error::custom)?;
    let page = T::decode_borrowed(body)?;
    let out = visitor.visit::<Cow<'_, str>>(&page);
    Ok((out, page.paging))
}

/// [`decode_body`] with `decode` making what a successful response holds.
fn decode_with<R>(
    status: u16,
    body: &[u8],
    token: &AccessToken,
    decode: &mut impl FnMut(&[u8]) -> Result<R, serde_json::Error>,
) -> Result<R, GraphError> {
    let body = &*token.redact_bytes(body);
    if (200..300).contains(&status) {
        return decode(body).map_err(|e| match serde_json::from_slice::<ErrorBody>(body) {
            Ok(err) => api_error(status, err, token),
            Err(_) => GraphError::Decode(token.redact(&e.to_string())),
        });
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(err) => Err(api_error(status, err, token)),
        Err(_) => Err(GraphError::Http { status }),
    }
}

fn api_error(status: u16, body: ErrorBody, token: &AccessToken) -> GraphError {
    let e = body.error;
    GraphError::Api {
        status,
        code: e.code,
        subcode: e.error_subcode,
        message: token.redact(&e.message),
        is_transient: e.is_transient.unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::model::Activity;

    fn tok() -> AccessToken {
        AccessToken::new("SECRET-TOKEN")
    }

    /// The address written by hand is the one reqwest's `query` made from
    /// the same parts (the client's way before), cursors and fields with
    /// every character that form encoding escapes.
    #[test]
    fn request_urls_are_the_ones_reqwest_query_made() {
        let http = reqwest::Client::new();
        let fields = "id,message_id,events{id,delivery_status,application{id}},a b+c";
        for edge in [Edge::MessageHistory, Edge::HealthStatus, Edge::Activities] {
            for after in [None, Some("QVFIUmxt+/=="), Some("a&b=c d%e\u{e9}#")] {
                let base = format!(
                    "http://127.0.0.1:9/v23.0/123456789{}",
                    edge.path().map_or(String::new(), |p| format!("/{p}"))
                );
                let limit = 100.to_string();
                let mut query = vec![("fields", fields)];
                if edge.path().is_some() {
                    query.push(("limit", &limit));
                }
                if let Some(a) = after {
                    query.push(("after", a));
                }
                let want = http.get(&base).query(&query).build().unwrap();
                let ours = request_url(
                    "http://127.0.0.1:9",
                    "v23.0",
                    (edge, "123456789"),
                    (fields, 100),
                    after,
                );
                let ours = http.get(&ours).build().unwrap();
                assert_eq!(ours.url(), want.url());
            }
        }
    }

    #[test]
    fn decode_classifies_bodies() {
        let ok = decode_response::<Activity>(200, br#"{"data":[]}"#, &tok()).unwrap();
        assert!(ok.data.is_empty());
        let e = decode_response::<Activity>(
            401,
            br#"{"error":{"message":"Invalid OAuth access token SECRET-TOKEN","type":"OAuthException","code":190}}"#,
            &tok(),
        )
        .unwrap_err();
        assert_eq!(e.error_code(), "190");
        assert!(!e.to_string().contains("SECRET-TOKEN"), "{e}");
        let e = decode_response::<Activity>(502, b"<html>bad gateway</html>", &tok()).unwrap_err();
        assert_eq!(e.error_code(), "http_502");
        let e =
            decode_response::<Activity>(200, br#"{"data":"SECRET-TOKEN"}"#, &tok()).unwrap_err();
        assert_eq!(e.error_code(), "decode");
        assert!(!e.to_string().contains("SECRET-TOKEN"), "{e}");
        let e = decode_response::<Activity>(200, br#"{"data":[{"id":"1"#, &tok()).unwrap_err();
        assert_eq!(e.error_code(), "decode");
    }
}
